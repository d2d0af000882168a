//! Schemas of the issuer configurations certkeeper recognises but does not serve: `spec.acme`,
//! `spec.ca`, `spec.selfSigned`, `spec.venafi`; and the schema of Vault's `spec.vault.auth.aws`,
//! which certkeeper serves (decoded into [`super::VaultAwsAuth`], whose serde defaults would
//! drop `role` from `required` in a derived schema). All are shaped as
//! cert-manager's `types_issuer.go` and `acme/types_issuer.go` shape them (field names, required
//! fields, enums, patterns, defaults, list and map markers).
//!
//! These types are only for the CRD schemas (`certkeeper-crds`), so that certkeeper's CRDs,
//! installed in place of cert-manager's, keep every field cert-manager's own issuers are written
//! with. Nothing decodes into them: [`IssuerSpec`](super::IssuerSpec) keeps the unserved
//! subtrees as undecoded values and reports them as unsupported. `required` follows from the types (a
//! field that is not an `Option` is required); defaults are the `x-certkeeper-default` extension,
//! which the CRD generator turns into `default`.
//!
//! Left out of cert-manager's schemas, to keep the CRDs valid on the oldest API server
//! certkeeper is tested on (v1.20): the CEL rule of `spec.venafi` (`x-kubernetes-validations`,
//! "exactly one of tpp, cloud, or ngts", Kubernetes 1.25+), and the solver pod's
//! `imagePullSecrets` is an atomic list without the `default: ""` of its `name` instead of a map
//! list keyed by `name` (v1.20 reads an empty default as `null`, and refuses a map key that has
//! no default and is not required).

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

mod acme;
mod pod;

pub use acme::*;
pub use pod::*;

/// Arbitrary JSON, as cert-manager's `apiextensions.JSON` fields (a webhook solver's `config`).
#[derive(Debug)]
pub struct Json;

impl JsonSchema for Json {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Json".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
    }
}

/// A Kubernetes resource quantity (`100m`, `128Mi`, `1`): an integer or a string, as the API
/// server's `resource.Quantity` accepts it.
#[derive(Debug)]
pub struct Quantity(pub String);

impl JsonSchema for Quantity {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Quantity".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [{ "type": "integer" }, { "type": "string" }],
            "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$",
            "x-kubernetes-int-or-string": true,
        })
    }
}

/// `spec.ca`: signs with a CA key pair from a Secret.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaIssuer {
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub crl_distribution_points: Option<Vec<String>>,
    #[serde(rename = "issuingCertificateURLs")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub issuing_certificate_urls: Option<Vec<String>>,
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub ocsp_servers: Option<Vec<String>>,
    pub secret_name: String,
}

/// `spec.selfSigned`: every certificate signs itself.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelfSignedIssuer {
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub crl_distribution_points: Option<Vec<String>>,
}

/// `spec.venafi`. cert-manager also requires exactly one of `tpp`, `cloud` and `ngts` with a CEL
/// rule, left out (see the module docs).
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VenafiIssuer {
    pub cloud: Option<VenafiCloud>,
    pub ngts: Option<VenafiNgts>,
    pub tpp: Option<VenafiTpp>,
    pub zone: String,
}

/// `spec.venafi.cloud`.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VenafiCloud {
    pub api_token_secret_ref: SecretKeyRef,
    pub url: Option<String>,
}

/// `spec.venafi.ngts`.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VenafiNgts {
    pub credentials_ref: LocalObjectRef,
    pub token_endpoint: Option<String>,
    #[serde(rename = "tsgID")]
    pub tsg_id: String,
    pub url: Option<String>,
}

/// `spec.venafi.tpp`.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VenafiTpp {
    #[schemars(extend("format" = "byte"))]
    pub ca_bundle: Option<String>,
    pub ca_bundle_secret_ref: Option<SecretKeyRef>,
    pub credentials_ref: LocalObjectRef,
    pub url: String,
}

/// A reference to an object in the issuer's namespace, by name.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectRef {
    pub name: String,
}

/// A key in a Secret; `name` is required here (unlike certkeeper's decoded
/// `SecretKeySelector`, which reports a missing name with its path).
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    pub key: Option<String>,
    pub name: String,
}

/// A ServiceAccount to request tokens for, with extra audiences.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountRef {
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub audiences: Option<Vec<String>>,
    pub name: String,
}

/// `spec.vault.auth.aws`: Vault's AWS IAM auth method.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultAwsAuth {
    pub iam_role_arn: Option<String>,
    pub mount_path: Option<String>,
    pub region: Option<String>,
    #[schemars(extend("minLength" = 1))]
    pub role: String,
    pub service_account_ref: Option<ServiceAccountRef>,
    pub vault_header_value: Option<String>,
}
