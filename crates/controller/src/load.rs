//! Turns the mirrored cert-manager objects into what the engine runs, as the standalone loader
//! turns manifest files into it: one [`IssuerRuntime`] per Vault Issuer/ClusterIssuer, one
//! [`CertJob`] (with its [`CertMeta`]) per Certificate. Same ids (`Issuer/<ns>/<name>`,
//! `ClusterIssuer/<name>`, `<ns>/<name>`), same fingerprint rules (stable hash of the serde JSON of
//! the spec; a certificate's covers its issuer's), same reuse of an unchanged issuer's runtime.
//!
//! Secret references resolve to Secrets in the Issuer's namespace, or for a ClusterIssuer in the
//! configured cluster resource namespace (default `cert-manager`), read by name only:
//! - tokens, AppRole secret ids and Kubernetes JWTs are read from the API at every login
//!   ([`SecretRef`]), so rotating them re-issues nothing; only the reference is fingerprinted;
//! - CA bundles and client certificates are read when the issuer is built and their content is
//!   fingerprinted; a missing one leaves the issuer out (not Ready) until it appears.
//!
//! The CSR contents are derived from the spec exactly as in `certkeeper-daemon`'s loader
//! (`load/certificate.rs`); the duplication is deliberate for this first slice (that crate is
//! being edited concurrently) and should become one shared function.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use certkeeper_core::Secret;
use certkeeper_core::pki::{self, CsrRequest, Subject};
use certkeeper_core::schedule::stable_hash;
use certkeeper_core::spec::{
    self, Certificate, DEFAULT_CA_BUNDLE_KEY, DEFAULT_CLIENT_CERT_KEY, DEFAULT_CLIENT_CERTIFICATE_MOUNT_PATH,
    DEFAULT_CLIENT_KEY_KEY, DEFAULT_KUBERNETES_MOUNT_PATH, DEFAULT_TOKEN_KEY, IssuerKind, OutputFormat,
    Resource, RotationPolicy, VaultAuthMethod, VaultIssuer,
};
use certkeeper_engine::gate::{GateConfig, IssuerGate};
use certkeeper_engine::metrics::Metrics;
use certkeeper_engine::{CertJob, IssuerId, IssuerRuntime, JobLabels};
use certkeeper_vault::{AuthMethod, ClientIdentity, SecretProvider, SecretSource, VaultClient, VaultConfig};
use serde_json::Value;

use crate::kube::{KubeClient, secret_data, secret_path};

/// Settings of the issuers' clients and gates (the standalone `issuers:` section).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct IssuerLimits {
    pub concurrency: usize,
    pub rate_per_second: f64,
    pub burst: u32,
    pub connect_timeout: std::time::Duration,
    pub request_timeout: std::time::Duration,
}

impl Default for IssuerLimits {
    fn default() -> Self {
        let gate = GateConfig::default();
        IssuerLimits {
            concurrency: gate.concurrency,
            rate_per_second: gate.rate_per_sec,
            burst: gate.burst,
            connect_timeout: std::time::Duration::from_secs(5),
            request_timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// What the Kubernetes runtime needs of a Certificate beyond the engine's job.
#[derive(Debug, Clone)]
pub struct CertMeta {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub secret_name: String,
    pub secret_labels: BTreeMap<String, String>,
    pub secret_annotations: BTreeMap<String, String>,
    pub combined_pem: bool,
    pub der: bool,
    /// `keystores.pkcs12` with `create: true`: `keystore.p12` (+ `truststore.p12`); the
    /// password's Secret is read at every write.
    pub pkcs12: Option<certkeeper_daemon::model::Pkcs12Output>,
    /// `spec.usages` (with cert-manager's default), wire names, for CertificateRequests.
    pub usages: Vec<String>,
    /// CertificateRequests kept (cert-manager's default since 1.18: 1).
    pub revision_history_limit: u32,
    pub issuer_name: String,
    pub issuer_kind: String,
    pub issuer_group: String,
    pub generation: i64,
}

/// Secrets read for one load, by (namespace, name); `None`: the Secret does not exist.
pub type SecretCache = HashMap<(String, String), Option<Arc<Value>>>;

/// A Secret key read through the API at each use (every Vault login).
#[derive(Debug)]
pub struct SecretRef {
    pub client: KubeClient,
    pub namespace: String,
    pub name: String,
    pub key: String,
}

impl SecretProvider for SecretRef {
    fn describe(&self) -> String {
        format!("Secret {}/{} key {:?}", self.namespace, self.name, self.key)
    }

    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Secret, String>> + Send + '_>> {
        Box::pin(async move {
            let secret = self
                .client
                .get(&secret_path(&self.namespace, &self.name))
                .await
                .map_err(|e| format!("{}: {e}", self.describe()))?
                .ok_or_else(|| format!("{} not found", self.describe()))?;
            let data = secret_data(&secret);
            let value = data
                .get(&self.key)
                .ok_or_else(|| format!("{}: no such key", self.describe()))?;
            let text =
                String::from_utf8(value.clone()).map_err(|_| format!("{}: not UTF-8", self.describe()))?;
            Ok(Secret::new(text.trim()))
        })
    }
}

/// A short-lived ServiceAccount token from the TokenRequest API, requested at each Vault login,
/// with cert-manager's audiences (`serviceAccountRef.audiences`, `vault://<ns>/<issuer>` or
/// `vault://<clusterissuer>`, the server address) and cert-manager's lifetime (600 s).
#[derive(Debug)]
pub struct ServiceAccountToken {
    pub client: KubeClient,
    pub namespace: String,
    pub service_account: String,
    pub audiences: Vec<String>,
}

/// Lifetime of requested ServiceAccount tokens (the API server's minimum, as cert-manager asks).
pub const SERVICE_ACCOUNT_TOKEN_SECONDS: u64 = 600;

impl SecretProvider for ServiceAccountToken {
    fn describe(&self) -> String {
        format!(
            "a token for ServiceAccount {}/{} (audiences {})",
            self.namespace,
            self.service_account,
            self.audiences.join(",")
        )
    }

    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Secret, String>> + Send + '_>> {
        Box::pin(async move {
            let path = format!(
                "/api/v1/namespaces/{}/serviceaccounts/{}/token",
                self.namespace, self.service_account
            );
            let body = serde_json::json!({
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"audiences": self.audiences, "expirationSeconds": SERVICE_ACCOUNT_TOKEN_SECONDS},
            });
            let answer = self
                .client
                .create(&path, &body)
                .await
                .map_err(|e| format!("{}: {e}", self.describe()))?;
            answer
                .pointer("/status/token")
                .and_then(Value::as_str)
                .map(Secret::new)
                .ok_or_else(|| format!("{}: no token in the answer", self.describe()))
        })
    }
}

/// The issuer key of an issuer id (`Issuer/<ns>/<name>` or `ClusterIssuer/<name>`).
fn issuer_key_of_id(id: &str) -> certkeeper_core::spec::IssuerKey {
    let mut parts = id.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("Issuer"), Some(ns), Some(name)) => certkeeper_core::spec::IssuerKey {
            kind: IssuerKind::Issuer,
            namespace: Some(ns.to_owned()),
            name: name.to_owned(),
        },
        (_, name, _) => certkeeper_core::spec::IssuerKey {
            kind: IssuerKind::ClusterIssuer,
            namespace: None,
            name: name.unwrap_or_default().to_owned(),
        },
    }
}

/// The Secrets (namespace, name) an issuer refers to.
pub fn referenced_secrets(namespace: &str, vault: &VaultIssuer) -> Vec<(String, String)> {
    let mut names: Vec<&str> = Vec::new();
    if vault.ca_bundle_pem().is_none()
        && let Some(s) = &vault.ca_bundle_secret_ref
    {
        names.push(&s.name);
    }
    if let (Some(c), Some(k)) = (&vault.client_cert_secret_ref, &vault.client_key_secret_ref) {
        names.push(&c.name);
        names.push(&k.name);
    }
    match vault.auth.method() {
        Some(VaultAuthMethod::Token(s)) => names.push(&s.name),
        Some(VaultAuthMethod::AppRole(a)) => names.push(&a.secret_ref.name),
        Some(VaultAuthMethod::Kubernetes(k)) => {
            if let Some(s) = &k.secret_ref {
                names.push(&s.name);
            }
        }
        Some(VaultAuthMethod::ClientCertificate(c)) if !c.secret_name.is_empty() => {
            names.push(&c.secret_name)
        }
        _ => {}
    }
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .filter(|n| !n.is_empty())
        .map(|n| (namespace.to_owned(), n.to_owned()))
        .collect()
}

/// A decoded Issuer or ClusterIssuer with a Vault spec: (id, namespace of its Secrets, spec).
pub fn issuer_of(
    object: &Value,
    cluster_ns: &str,
) -> Result<Option<(IssuerId, String, VaultIssuer)>, String> {
    match decode(object)? {
        Resource::Issuer(r) => {
            let ns = r.metadata.namespace_or_default().to_owned();
            let id = format!("Issuer/{ns}/{}", r.metadata.name);
            Ok(r.spec.vault().cloned().map(|v| (id, ns, v)))
        }
        Resource::ClusterIssuer(r) => {
            let id = format!("ClusterIssuer/{}", r.metadata.name);
            Ok(r.spec.vault().cloned().map(|v| (id, cluster_ns.to_owned(), v)))
        }
        Resource::Certificate(_) => Ok(None),
    }
}

/// Decodes and validates an object from the API server, as a manifest file is.
pub fn decode(object: &Value) -> Result<Resource, String> {
    let yaml = serde_yaml_ng::to_value(object).map_err(|e| e.to_string())?;
    spec::parse_resource(&yaml).map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

struct Resolver<'a> {
    client: &'a KubeClient,
    issuer_id: &'a str,
    secrets: &'a SecretCache,
    namespace: &'a str,
    inputs: BTreeMap<String, String>,
}

impl Resolver<'_> {
    fn source(&mut self, field: &str, name: &str, key: &str) -> SecretSource {
        let r = SecretRef {
            client: self.client.clone(),
            namespace: self.namespace.to_owned(),
            name: name.to_owned(),
            key: key.to_owned(),
        };
        self.inputs.insert(field.to_owned(), r.describe());
        SecretSource::Provider(Arc::new(r))
    }

    fn read(&mut self, field: &str, name: &str, key: &str) -> Result<String, String> {
        let found = self
            .secrets
            .get(&(self.namespace.to_owned(), name.to_owned()))
            .cloned()
            .flatten()
            .ok_or_else(|| format!("{field}: Secret {}/{name} not found", self.namespace))?;
        let data = secret_data(&found);
        let value = data
            .get(key)
            .and_then(|v| String::from_utf8(v.clone()).ok())
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| format!("{field}: Secret {}/{name} has no key {key:?}", self.namespace))?;
        self.inputs.insert(field.to_owned(), value.clone());
        Ok(value)
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn or_default(s: &str, default: &str) -> String {
    if s.is_empty() { default } else { s }.to_owned()
}

/// Builds (or reuses from `previous`) the runtime of issuer `id`.
#[allow(clippy::too_many_arguments)]
pub fn build_issuer(
    client: &KubeClient,
    secrets: &SecretCache,
    limits: &IssuerLimits,
    metrics: &Metrics,
    previous: &HashMap<IssuerId, IssuerRuntime>,
    id: &str,
    namespace: &str,
    vault: &VaultIssuer,
) -> Result<IssuerRuntime, String> {
    let mut r = Resolver {
        client,
        issuer_id: id,
        secrets,
        namespace,
        inputs: BTreeMap::new(),
    };
    let mut cfg = VaultConfig::new(vault.server.clone());
    cfg.namespace = non_empty(&vault.namespace);
    cfg.server_name = non_empty(&vault.server_name);
    if let Some(pem) = vault.ca_bundle_pem() {
        cfg.ca_bundle_pem = Some(String::from_utf8_lossy(pem).into_owned());
    } else if let Some(sel) = &vault.ca_bundle_secret_ref {
        let pem = r.read(
            "spec.vault.caBundleSecretRef",
            &sel.name,
            sel.key_or(DEFAULT_CA_BUNDLE_KEY),
        )?;
        cfg.ca_bundle_pem = Some(pem);
    }
    if let (Some(cert), Some(key)) = (&vault.client_cert_secret_ref, &vault.client_key_secret_ref) {
        let cert_pem = r.read(
            "spec.vault.clientCertSecretRef",
            &cert.name,
            cert.key_or(DEFAULT_CLIENT_CERT_KEY),
        )?;
        let key_pem = r.read(
            "spec.vault.clientKeySecretRef",
            &key.name,
            key.key_or(DEFAULT_CLIENT_KEY_KEY),
        )?;
        cfg.client_identity = Some(ClientIdentity {
            cert_pem,
            key_pem: Secret::new(key_pem),
        });
    }
    let auth = auth_method(&mut r, vault)?;
    cfg.connect_timeout = limits.connect_timeout;
    cfg.request_timeout = limits.request_timeout;
    let fingerprint = stable_hash(
        serde_json::json!({ "spec": vault, "inputs": r.inputs })
            .to_string()
            .as_bytes(),
    );
    let settings = stable_hash(serde_json::json!(limits).to_string().as_bytes());
    if let Some(prev) = previous.get(id)
        && prev.fingerprint == fingerprint
        && prev.settings == settings
    {
        return Ok(prev.clone());
    }
    let client = VaultClient::with_observer(&cfg, auth, Some(metrics.vault_observer(id)))
        .map_err(|e| format!("spec.vault: {e}"))?;
    let gate = IssuerGate::new(
        id,
        &GateConfig {
            concurrency: limits.concurrency,
            rate_per_sec: limits.rate_per_second,
            burst: limits.burst,
            ..GateConfig::default()
        },
    );
    Ok(IssuerRuntime {
        id: id.to_owned(),
        client: Arc::new(client),
        gate,
        path: vault.path.clone(),
        fingerprint,
        settings,
    })
}

fn auth_method(r: &mut Resolver<'_>, vault: &VaultIssuer) -> Result<AuthMethod, String> {
    let method = vault
        .auth
        .method()
        .ok_or_else(|| "spec.vault.auth: no supported authentication method".to_owned())?;
    Ok(match method {
        VaultAuthMethod::Token(sel) => AuthMethod::Token {
            token: r.source(
                "spec.vault.auth.tokenSecretRef",
                &sel.name,
                sel.key_or(DEFAULT_TOKEN_KEY),
            ),
        },
        VaultAuthMethod::AppRole(a) => AuthMethod::AppRole {
            mount: a.path.clone(),
            role_id: a.role_id.trim().to_owned(),
            secret_id: r.source(
                "spec.vault.auth.appRole.secretRef",
                &a.secret_ref.name,
                &a.secret_ref.key,
            ),
        },
        VaultAuthMethod::Kubernetes(k) => {
            let jwt = match (
                k.secret_ref.as_ref().filter(|s| !s.name.is_empty()),
                k.service_account_ref.as_ref().filter(|s| !s.name.is_empty()),
            ) {
                (Some(sel), _) => r.source(
                    "spec.vault.auth.kubernetes.secretRef",
                    &sel.name,
                    sel.key_or(DEFAULT_TOKEN_KEY),
                ),
                (None, Some(sa)) => {
                    let source = ServiceAccountToken {
                        client: r.client.clone(),
                        namespace: r.namespace.to_owned(),
                        service_account: sa.name.clone(),
                        audiences: k.token_audiences(&issuer_key_of_id(r.issuer_id), &vault.server),
                    };
                    r.inputs.insert(
                        "spec.vault.auth.kubernetes.serviceAccountRef".to_owned(),
                        source.describe(),
                    );
                    SecretSource::Provider(Arc::new(source))
                }
                (None, None) => {
                    return Err(
                        "spec.vault.auth.kubernetes: neither secretRef nor serviceAccountRef".to_owned(),
                    );
                }
            };
            AuthMethod::Kubernetes {
                mount: or_default(&k.mount_path, DEFAULT_KUBERNETES_MOUNT_PATH),
                role: k.role.clone(),
                jwt,
            }
        }
        VaultAuthMethod::ClientCertificate(c) => {
            let identity = if c.secret_name.is_empty() {
                None
            } else {
                let field = "spec.vault.auth.clientCertificate.secretName";
                let cert_pem = r.read(field, &c.secret_name, DEFAULT_CLIENT_CERT_KEY)?;
                let key_pem = r.read(field, &c.secret_name, DEFAULT_CLIENT_KEY_KEY)?;
                Some(ClientIdentity {
                    cert_pem,
                    key_pem: Secret::new(key_pem),
                })
            };
            AuthMethod::Cert {
                mount: or_default(&c.mount_path, DEFAULT_CLIENT_CERTIFICATE_MOUNT_PATH),
                name: non_empty(&c.name),
                identity,
            }
        }
    })
}

fn wire_name<T: serde::Serialize>(value: &T) -> Result<String, String> {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => Ok(s),
        Ok(other) => Err(format!("unexpected value {other}")),
        Err(e) => Err(e.to_string()),
    }
}

/// The issuer id a Certificate refers to.
pub fn issuer_id_of(cert: &Certificate) -> Result<IssuerId, String> {
    let key = cert
        .issuer_key()
        .ok_or_else(|| "spec.issuerRef: not an Issuer or ClusterIssuer of cert-manager.io".to_owned())?;
    Ok(match (key.kind, &key.namespace) {
        (IssuerKind::Issuer, Some(ns)) => format!("Issuer/{ns}/{}", key.name),
        _ => format!("ClusterIssuer/{}", key.name),
    })
}

/// The job and Kubernetes output settings of Certificate `object`; `issuers` maps the usable
/// issuers' ids to their fingerprints (a missing issuer counts as fingerprint 0).
pub fn build_certificate(
    client: &KubeClient,
    object: &Value,
    issuers: &HashMap<&str, u64>,
) -> Result<(CertJob, CertMeta), String> {
    let Resource::Certificate(cert) = decode(object)? else {
        return Err("not a Certificate".into());
    };
    let namespace = cert.namespace().to_owned();
    let name = cert.metadata.name.clone();
    let spec = &cert.spec;
    let issuer = issuer_id_of(&cert)?;
    let issuer_fingerprint = issuers.get(issuer.as_str()).copied().unwrap_or(0);
    let private_key = cert.private_key().map_err(|e| e.to_string())?;
    let usage_names = cert
        .usages()
        .iter()
        .map(wire_name)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("spec.usages: {e}"))?;
    let (key_usages, extended_key_usages) =
        pki::parse_usages(usage_names.as_slice()).map_err(|e| format!("spec.usages: {e}"))?;
    let ip_addresses = spec
        .ip_addresses
        .iter()
        .map(|ip| {
            ip.parse::<IpAddr>()
                .map_err(|_| format!("spec.ipAddresses: {ip:?} is not an IP address"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let subject = spec
        .subject
        .as_ref()
        .map(|s| Subject {
            organizations: s.organizations.clone(),
            countries: s.countries.clone(),
            organizational_units: s.organizational_units.clone(),
            localities: s.localities.clone(),
            provinces: s.provinces.clone(),
            street_addresses: s.street_addresses.clone(),
            postal_codes: s.postal_codes.clone(),
            serial_number: (!s.serial_number.is_empty()).then(|| s.serial_number.clone()),
        })
        .unwrap_or_default();
    let csr = CsrRequest {
        common_name: (!spec.common_name.is_empty()).then(|| spec.common_name.clone()),
        dns_names: spec.dns_names.clone(),
        ip_addresses,
        uris: spec.uris.clone(),
        email_addresses: spec.email_addresses.clone(),
        subject,
        is_ca: spec.is_ca,
        key_usages,
        extended_key_usages,
        encode_usages_in_request: spec.encode_usages_in_request(),
    };
    let fingerprint_input = serde_json::json!({ "spec": spec, "issuer": issuer_fingerprint });
    let job = CertJob {
        id: format!("{namespace}/{name}"),
        issuer,
        fingerprint: stable_hash(fingerprint_input.to_string().as_bytes()),
        csr,
        key_algorithm: private_key.algorithm.into(),
        key_encoding: private_key.encoding.into(),
        rotate_key: private_key.rotation_policy == RotationPolicy::Always,
        duration: cert.duration(),
        renewal: cert.renewal_policy(),
        labels: JobLabels {
            name: name.clone(),
            namespace: namespace.clone(),
            issuer_name: spec.issuer_ref.name.clone(),
            issuer_kind: spec.issuer_ref.kind.clone(),
            issuer_group: spec.issuer_ref.group.clone(),
        },
    };
    let template = spec.secret_template.clone().unwrap_or_default();
    let meta = CertMeta {
        namespace,
        name,
        uid: crate::kube::meta_str(object, "uid").to_owned(),
        secret_name: spec.secret_name.clone(),
        secret_labels: template.labels,
        secret_annotations: template.annotations,
        combined_pem: spec
            .additional_output_formats
            .iter()
            .any(|f| f.format == OutputFormat::CombinedPEM),
        der: spec
            .additional_output_formats
            .iter()
            .any(|f| f.format == OutputFormat::Der),
        pkcs12: pkcs12(client, &cert)?,
        usages: usage_names,
        revision_history_limit: spec
            .revision_history_limit
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= 1)
            .unwrap_or(1),
        issuer_name: spec.issuer_ref.name.clone(),
        issuer_kind: if spec.issuer_ref.kind.is_empty() {
            "Issuer".into()
        } else {
            spec.issuer_ref.kind.clone()
        },
        issuer_group: spec.issuer_ref.group.clone(),
        generation: object
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0),
    };
    Ok((job, meta))
}

/// `keystores.pkcs12` with `create: true`: the password's source (a Secret in the Certificate's
/// namespace, or the literal) and the profile.
fn pkcs12(
    client: &KubeClient,
    cert: &Certificate,
) -> Result<Option<certkeeper_daemon::model::Pkcs12Output>, String> {
    let Some(keystore) = cert
        .spec
        .keystores
        .as_ref()
        .and_then(|k| k.pkcs12.as_ref())
        .filter(|k| k.create)
    else {
        return Ok(None);
    };
    let field = "spec.keystores.pkcs12";
    let password = match (&keystore.password_secret_ref, &keystore.password) {
        (Some(sel), _) if !sel.name.is_empty() => SecretSource::Provider(Arc::new(SecretRef {
            client: client.clone(),
            namespace: cert.namespace().to_owned(),
            name: sel.name.clone(),
            key: sel.key.clone(),
        })),
        (_, Some(password)) => SecretSource::Value(password.clone()),
        _ => return Err(format!("{field}: no password")),
    };
    let profile = match &keystore.profile {
        None => pki::Pkcs12Profile::default(),
        Some(p) => wire_name(p)?
            .parse()
            .map_err(|e| format!("{field}.profile: {e}"))?,
    };
    Ok(Some(certkeeper_daemon::model::Pkcs12Output { password, profile }))
}
