//! The ACME issuer (`spec.acme`) and its challenge solvers (schema only, see the parent module).

use std::collections::BTreeMap;

use super::{Http01PodTemplate, Json, ObjectMetaOverride, SecretKeyRef, ServiceAccountRef};
use schemars::JsonSchema;

/// `spec.acme`: an ACME server (Let's Encrypt and others) and how challenges are solved.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcmeIssuer {
    #[schemars(extend("format" = "byte"))]
    pub ca_bundle: Option<String>,
    pub disable_account_key_generation: Option<bool>,
    pub email: Option<String>,
    pub enable_duration_feature: Option<bool>,
    pub external_account_binding: Option<AcmeExternalAccountBinding>,
    #[schemars(extend("maxLength" = 64))]
    pub preferred_chain: Option<String>,
    pub private_key_secret_ref: SecretKeyRef,
    pub profile: Option<String>,
    pub server: String,
    #[serde(rename = "skipTLSVerify")]
    pub skip_tls_verify: Option<bool>,
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub solvers: Option<Vec<AcmeChallengeSolver>>,
}

/// An ACME account bound to an existing account at the CA (RFC 8555 7.3.4).
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcmeExternalAccountBinding {
    pub key_algorithm: Option<HmacKeyAlgorithm>,
    #[serde(rename = "keyID")]
    pub key_id: String,
    pub key_secret_ref: SecretKeyRef,
}

/// One challenge solver and the certificates (`selector`) it is used for.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcmeChallengeSolver {
    pub dns01: Option<AcmeSolverDns01>,
    pub http01: Option<AcmeSolverHttp01>,
    pub selector: Option<CertificateDnsNameSelector>,
    pub wait_instead_of_self_check: Option<String>,
}

/// A DNS-01 solver: one DNS provider.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcmeSolverDns01 {
    #[serde(rename = "acmeDNS")]
    pub acme_dns: Option<Dns01AcmeDns>,
    pub akamai: Option<Dns01Akamai>,
    #[serde(rename = "azureDNS")]
    pub azure_dns: Option<Dns01AzureDns>,
    #[serde(rename = "cloudDNS")]
    pub cloud_dns: Option<Dns01CloudDns>,
    pub cloudflare: Option<Dns01Cloudflare>,
    pub cname_strategy: Option<CnameStrategy>,
    pub digitalocean: Option<Dns01DigitalOcean>,
    pub rfc2136: Option<Dns01Rfc2136>,
    pub route53: Option<Dns01Route53>,
    pub webhook: Option<Dns01Webhook>,
}

/// DNS-01 through an acme-dns server.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dns01AcmeDns {
    pub account_secret_ref: SecretKeyRef,
    pub host: String,
}

/// DNS-01 through Akamai Edge DNS.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dns01Akamai {
    pub access_token_secret_ref: SecretKeyRef,
    pub client_secret_secret_ref: SecretKeyRef,
    pub client_token_secret_ref: SecretKeyRef,
    pub service_consumer_domain: String,
}

/// DNS-01 through Azure DNS.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dns01AzureDns {
    #[serde(rename = "clientID")]
    pub client_id: Option<String>,
    pub client_secret_secret_ref: Option<SecretKeyRef>,
    pub environment: Option<AzureEnvironment>,
    pub hosted_zone_name: Option<String>,
    pub managed_identity: Option<AzureManagedIdentity>,
    pub resource_group_name: String,
    #[serde(rename = "subscriptionID")]
    pub subscription_id: String,
    #[serde(rename = "tenantID")]
    pub tenant_id: Option<String>,
    pub zone_type: Option<AzureZoneType>,
}

/// An Azure managed identity.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureManagedIdentity {
    #[serde(rename = "clientID")]
    pub client_id: Option<String>,
    #[serde(rename = "resourceID")]
    pub resource_id: Option<String>,
    #[serde(rename = "tenantID")]
    pub tenant_id: Option<String>,
}

/// DNS-01 through Google Cloud DNS.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dns01CloudDns {
    pub hosted_zone_name: Option<String>,
    pub project: String,
    pub service_account_secret_ref: Option<SecretKeyRef>,
}

/// DNS-01 through Cloudflare.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dns01Cloudflare {
    pub api_key_secret_ref: Option<SecretKeyRef>,
    pub api_token_secret_ref: Option<SecretKeyRef>,
    pub email: Option<String>,
}

/// DNS-01 through DigitalOcean.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dns01DigitalOcean {
    pub token_secret_ref: SecretKeyRef,
}

/// DNS-01 through RFC 2136 dynamic updates.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dns01Rfc2136 {
    pub nameserver: String,
    pub protocol: Option<Rfc2136Protocol>,
    pub tsig_algorithm: Option<String>,
    pub tsig_key_name: Option<String>,
    pub tsig_secret_secret_ref: Option<SecretKeyRef>,
}

/// DNS-01 through AWS Route 53.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dns01Route53 {
    #[serde(rename = "accessKeyID")]
    pub access_key_id: Option<String>,
    #[serde(rename = "accessKeyIDSecretRef")]
    pub access_key_id_secret_ref: Option<SecretKeyRef>,
    pub auth: Option<Route53Auth>,
    #[serde(rename = "hostedZoneID")]
    pub hosted_zone_id: Option<String>,
    pub region: Option<String>,
    pub role: Option<String>,
    pub secret_access_key_secret_ref: Option<SecretKeyRef>,
}

/// How the Route 53 solver gets AWS credentials.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Route53Auth {
    pub kubernetes: Route53KubernetesAuth,
}

/// AWS credentials from a ServiceAccount token (web identity).
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Route53KubernetesAuth {
    pub service_account_ref: ServiceAccountRef,
}

/// DNS-01 through an external webhook solver.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dns01Webhook {
    pub config: Option<Json>,
    pub group_name: String,
    pub solver_name: String,
}

/// An HTTP-01 solver: an Ingress or a Gateway API HTTPRoute.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcmeSolverHttp01 {
    #[serde(rename = "gatewayHTTPRoute")]
    pub gateway_http_route: Option<Http01GatewayHttpRoute>,
    pub ingress: Option<Http01Ingress>,
}

/// HTTP-01 through a Gateway API HTTPRoute.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Http01GatewayHttpRoute {
    pub labels: Option<BTreeMap<String, String>>,
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub parent_refs: Option<Vec<GatewayParentReference>>,
    pub pod_template: Option<Http01PodTemplate>,
    pub service_type: Option<String>,
}

/// Gateway API `ParentReference`.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayParentReference {
    #[schemars(extend("maxLength" = 253, "pattern" = "^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", "x-certkeeper-default" = "gateway.networking.k8s.io"))]
    pub group: Option<String>,
    #[schemars(extend("maxLength" = 63, "minLength" = 1, "pattern" = "^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$", "x-certkeeper-default" = "Gateway"))]
    pub kind: Option<String>,
    #[schemars(extend("maxLength" = 253, "minLength" = 1))]
    pub name: String,
    #[schemars(extend("maxLength" = 63, "minLength" = 1, "pattern" = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: Option<String>,
    #[schemars(extend("maximum" = 65535, "minimum" = 1))]
    pub port: Option<i32>,
    #[schemars(extend("maxLength" = 253, "minLength" = 1, "pattern" = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"))]
    pub section_name: Option<String>,
}

/// HTTP-01 through an Ingress.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Http01Ingress {
    pub class: Option<String>,
    pub ingress_class_name: Option<String>,
    pub ingress_template: Option<Http01IngressTemplate>,
    pub name: Option<String>,
    pub pod_template: Option<Http01PodTemplate>,
    pub service_type: Option<String>,
}

/// Labels and annotations of the solver's Ingress.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Http01IngressTemplate {
    pub metadata: Option<ObjectMetaOverride>,
}

/// Which certificates a solver is used for.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateDnsNameSelector {
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub dns_names: Option<Vec<String>>,
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub dns_zones: Option<Vec<String>>,
    pub match_labels: Option<BTreeMap<String, String>>,
}

/// The MAC algorithm of an external account binding key.
#[derive(Debug, JsonSchema)]
pub enum HmacKeyAlgorithm {
    #[serde(rename = "HS256")]
    Hs256,
    #[serde(rename = "HS384")]
    Hs384,
    #[serde(rename = "HS512")]
    Hs512,
}

/// The Azure cloud.
#[derive(Debug, JsonSchema)]
pub enum AzureEnvironment {
    #[serde(rename = "AzurePublicCloud")]
    AzurePublicCloud,
    #[serde(rename = "AzureChinaCloud")]
    AzureChinaCloud,
    #[serde(rename = "AzureGermanCloud")]
    AzureGermanCloud,
    #[serde(rename = "AzureUSGovernmentCloud")]
    AzureUsGovernmentCloud,
}

/// Public or private Azure DNS zone.
#[derive(Debug, JsonSchema)]
pub enum AzureZoneType {
    #[serde(rename = "AzurePublicZone")]
    AzurePublicZone,
    #[serde(rename = "AzurePrivateZone")]
    AzurePrivateZone,
}

/// Whether DNS-01 follows CNAMEs of `_acme-challenge` records.
#[derive(Debug, JsonSchema)]
pub enum CnameStrategy {
    #[serde(rename = "None")]
    None,
    #[serde(rename = "Follow")]
    Follow,
}

/// The transport of RFC 2136 updates.
#[derive(Debug, JsonSchema)]
pub enum Rfc2136Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
}
