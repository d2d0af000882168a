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
//! The issuer runtimes and jobs themselves are built by the engine's shared
//! [`certkeeper_engine::build`], the same code the standalone loader uses; this module only says
//! where Secrets come from ([`Resolver`]) and what the Kubernetes runtime keeps beside a job.

use certkeeper_engine::verify::{AddressError, DEFAULT_VERIFY_TIMEOUT, VerifyTarget};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use certkeeper_core::spec::{self, Certificate, VaultAuthMethod, VaultIssuer};
use certkeeper_core::{FailureClass, Secret};
use certkeeper_engine::build::{self, BuildError, CredentialError, SecretResolver};
use certkeeper_engine::metrics::Metrics;
use certkeeper_engine::outputs::OutputFormats;
use certkeeper_engine::{CertJob, IssuerId, IssuerRuntime};
use certkeeper_vault::aws::AwsEnvironment;
use certkeeper_vault::{SecretProvider, SecretSource};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::Value;

use crate::kube::{KubeClient, KubeError, secret_data, token_request_path};
use crate::objects::{CertificateObject, SpecProblem};

pub use certkeeper_engine::build::{IssuerLimits, VaultExtras};

/// The controller's own AWS identity and who may use it (`auth.aws` without
/// `serviceAccountRef`): cert-manager's `--issuer-ambient-credentials` (default off: an
/// Issuer's author in some namespace must not borrow the controller's identity) and
/// `--cluster-issuer-ambient-credentials` (default on).
#[derive(Debug, Clone)]
pub struct AwsAmbient {
    /// The controller's environment, read as the AWS SDKs read it.
    pub environment: AwsEnvironment,
    pub issuers: bool,
    pub cluster_issuers: bool,
}

impl Default for AwsAmbient {
    fn default() -> Self {
        AwsAmbient {
            environment: AwsEnvironment::from_process(),
            issuers: false,
            cluster_issuers: true,
        }
    }
}

impl AwsAmbient {
    /// Whether issuer `id` may use the controller's own AWS credentials; the refusal names the
    /// option that would allow it.
    pub fn check(&self, field: &str, id: &IssuerId) -> Result<(), CredentialError> {
        let kind = id.key().kind;
        let (allowed, option) = if kind.namespaced() {
            (self.issuers, "--issuer-ambient-credentials")
        } else {
            (self.cluster_issuers, "--cluster-issuer-ambient-credentials")
        };
        let kind = kind.as_str();
        if allowed {
            Ok(())
        } else {
            Err(CredentialError::AmbientAwsRefused {
                field: field.to_owned(),
                kind,
                option,
            })
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
    /// Optional formats; a PKCS#12 password's Secret is read at every write.
    pub formats: OutputFormats,
    /// `spec.usages` (with cert-manager's default), wire names, for CertificateRequests.
    pub usages: Vec<String>,
    /// CertificateRequests kept (cert-manager's default since 1.18: 1).
    pub revision_history_limit: u32,
    pub issuer_name: String,
    pub issuer_kind: String,
    pub issuer_group: String,
    pub generation: i64,
    /// Addresses that must serve the certificate once written ([`VERIFY_ANNOTATION`]).
    pub verify: Vec<VerifyTarget>,
}

/// A Certificate's annotation listing addresses (`host:port`, comma-separated, at most
/// [`MAX_VERIFY_TARGETS`]) that must serve its certificate once it is written: the served leaf
/// is compared with the Secret's (`certkeeper_engine::verify`), and while they differ the
/// certificate fails with class `apply` and the check is retried, never re-issuing.
pub const VERIFY_ANNOTATION: &str = "certkeeper.io/verify";
/// The SNI name sent to the [`VERIFY_ANNOTATION`] addresses (default: each address's host).
pub const VERIFY_SERVER_NAME_ANNOTATION: &str = "certkeeper.io/verify-server-name";
/// The most addresses one Certificate may list.
pub const MAX_VERIFY_TARGETS: usize = 16;

/// The verify targets of a Certificate's annotations, checked as hostile input.
pub fn verify_targets(annotations: &BTreeMap<String, String>) -> Result<Vec<VerifyTarget>, LoadError> {
    let Some(list) = annotations.get(VERIFY_ANNOTATION) else {
        return Ok(Vec::new());
    };
    let server_name = annotations.get(VERIFY_SERVER_NAME_ANNOTATION).map(String::as_str);
    let addresses: Vec<&str> = list.split(',').map(str::trim).filter(|a| !a.is_empty()).collect();
    if addresses.len() > MAX_VERIFY_TARGETS {
        return Err(LoadError::TooManyVerifyTargets(addresses.len()));
    }
    addresses
        .into_iter()
        .map(|address| {
            VerifyTarget::parse(address, server_name, DEFAULT_VERIFY_TIMEOUT).map_err(LoadError::Verify)
        })
        .collect()
}

impl CertMeta {
    /// The reference that makes an object the Certificate's (deleted with it), as
    /// cert-manager sets it on the CertificateRequests and Secrets it creates.
    pub fn owner_reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: certkeeper_core::spec::API_VERSION.to_owned(),
            kind: "Certificate".to_owned(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }
}

/// Why a mirrored object does not become an issuer runtime or a job.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The object is invalid, as a manifest file would be: every problem, with its field.
    #[error(transparent)]
    Spec(#[from] SpecProblem),
    /// The spec is valid but its issuer or job cannot be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("metadata.annotations[certkeeper.io/verify]: {0}")]
    Verify(AddressError),
    #[error("metadata.annotations[certkeeper.io/verify]: {0} addresses, at most 16")]
    TooManyVerifyTargets(usize),
}

impl LoadError {
    /// The failure's class, the only place it is decided: an object to fix, or what the
    /// builder decides.
    pub fn class(&self) -> FailureClass {
        match self {
            LoadError::Build(e) => e.class(),
            LoadError::Spec(_) | LoadError::Verify(_) | LoadError::TooManyVerifyTargets(_) => {
                FailureClass::Invalid
            }
        }
    }
}

/// A Kubernetes API failure while reading `what`, with the API's status code when it answered.
fn api_error(what: String, e: &KubeError) -> CredentialError {
    CredentialError::Api {
        what,
        code: e.code(),
        message: e.to_string(),
    }
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

    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Secret, CredentialError>> + Send + '_>> {
        Box::pin(async move {
            let secret = self
                .client
                .get_secret(&self.namespace, &self.name)
                .await
                .map_err(|e| api_error(self.describe(), &e))?
                .ok_or_else(|| CredentialError::NotFound {
                    what: self.describe(),
                })?;
            let data = secret_data(&secret);
            let value = data.get(&self.key).ok_or_else(|| CredentialError::MissingKey {
                what: format!("Secret {}/{}", self.namespace, self.name),
                key: self.key.clone(),
            })?;
            let text = String::from_utf8(value.clone()).map_err(|_| CredentialError::InvalidContent {
                what: self.describe(),
                problem: "not UTF-8",
            })?;
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
pub const SERVICE_ACCOUNT_TOKEN_SECONDS: i64 = 600;

impl SecretProvider for ServiceAccountToken {
    fn describe(&self) -> String {
        format!(
            "a token for ServiceAccount {}/{} (audiences {})",
            self.namespace,
            self.service_account,
            self.audiences.join(",")
        )
    }

    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Secret, CredentialError>> + Send + '_>> {
        Box::pin(async move {
            let path = token_request_path(&self.namespace, &self.service_account).map_err(|e| {
                CredentialError::Failed {
                    what: self.describe(),
                    message: e.to_string(),
                }
            })?;
            // Never mint a token the Kubernetes API itself would accept: the Issuer's author
            // chooses the audiences and the server the token is sent to.
            let api_audiences = self.client.api_audiences().await;
            let same = |a: &str, b: &str| {
                a.trim_end_matches('/')
                    .eq_ignore_ascii_case(b.trim_end_matches('/'))
            };
            if let Some(audience) = self
                .audiences
                .iter()
                .find(|a| spec::is_kubernetes_api_audience(a) || api_audiences.iter().any(|api| same(a, api)))
            {
                return Err(CredentialError::KubernetesApiAudience {
                    what: self.describe(),
                    audience: audience.clone(),
                });
            }
            let request = TokenRequest {
                spec: TokenRequestSpec {
                    audiences: self.audiences.clone(),
                    expiration_seconds: Some(SERVICE_ACCOUNT_TOKEN_SECONDS),
                    ..TokenRequestSpec::default()
                },
                ..TokenRequest::default()
            };
            let answer = self
                .client
                .create_object(&path, &request)
                .await
                .map_err(|e| api_error(self.describe(), &e))?;
            answer
                .status
                .map(|s| s.token)
                .filter(|t| !t.is_empty())
                .map(Secret::new)
                .ok_or_else(|| CredentialError::NoToken {
                    what: self.describe(),
                })
        })
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

struct Resolver<'a> {
    client: &'a KubeClient,
    secrets: &'a SecretCache,
    namespace: &'a str,
    aws: &'a AwsAmbient,
}

impl SecretResolver for Resolver<'_> {
    fn source(&mut self, _field: &str, name: &str, key: &str) -> Result<SecretSource, CredentialError> {
        Ok(SecretSource::Provider(Arc::new(SecretRef {
            client: self.client.clone(),
            namespace: self.namespace.to_owned(),
            name: name.to_owned(),
            key: key.to_owned(),
        })))
    }

    fn read(&mut self, field: &str, name: &str, key: &str) -> Result<String, CredentialError> {
        let what = || format!("Secret {}/{name}", self.namespace);
        let found = self
            .secrets
            .get(&(self.namespace.to_owned(), name.to_owned()))
            .cloned()
            .flatten()
            .ok_or_else(|| CredentialError::NotFound { what: what() }.in_field(field))?;
        let data = secret_data(&found);
        data.get(key)
            .and_then(|v| String::from_utf8(v.clone()).ok())
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| {
                CredentialError::MissingKey {
                    what: what(),
                    key: key.to_owned(),
                }
                .in_field(field)
            })
    }

    fn service_account_token(
        &mut self,
        _field: &str,
        service_account: &str,
        audiences: Vec<String>,
    ) -> Result<SecretSource, CredentialError> {
        Ok(SecretSource::Provider(Arc::new(ServiceAccountToken {
            client: self.client.clone(),
            namespace: self.namespace.to_owned(),
            service_account: service_account.to_owned(),
            audiences,
        })))
    }

    fn aws_environment(&self) -> AwsEnvironment {
        self.aws.environment.clone()
    }

    fn ambient_aws(&mut self, field: &str, id: &IssuerId) -> Result<(), CredentialError> {
        self.aws.check(field, id)
    }
}

/// Builds (or reuses from `previous`) the runtime of issuer `id`, whose Secrets live in
/// `namespace`.
#[allow(clippy::too_many_arguments)]
pub fn build_issuer(
    client: &KubeClient,
    secrets: &SecretCache,
    limits: &IssuerLimits,
    metrics: &Metrics,
    previous: &HashMap<IssuerId, IssuerRuntime>,
    id: &IssuerId,
    namespace: &str,
    vault: &VaultIssuer,
    extras: &VaultExtras,
    aws: &AwsAmbient,
) -> Result<IssuerRuntime, BuildError> {
    let mut resolver = Resolver {
        client,
        secrets,
        namespace,
        aws,
    };
    build::build_issuer(&mut resolver, id, vault, extras, limits, metrics, previous)
}

/// The issuer id a Certificate refers to.
pub fn issuer_id_of(cert: &Certificate) -> Result<IssuerId, BuildError> {
    build::certificate_issuer(cert)
}

/// The job and Kubernetes output settings of Certificate `object`; `issuers` maps the usable
/// issuers' ids to their fingerprints (a missing issuer counts as fingerprint 0).
pub fn build_certificate(
    client: &KubeClient,
    object: &CertificateObject,
    issuers: &HashMap<&str, u64>,
) -> Result<(CertJob, CertMeta), LoadError> {
    let cert = object.spec.as_ref().map_err(Clone::clone)?;
    let namespace = cert.namespace().to_owned();
    let name = cert.metadata.name.clone();
    let spec = &cert.spec;
    let issuer = issuer_id_of(cert)?;
    let issuer_fingerprint = issuers.get(issuer.as_str()).copied().unwrap_or(0);
    let job = build::certificate_job(cert, issuer_fingerprint)?;
    let usage_names = build::usage_names(cert)?;
    let template = spec.secret_template.clone().unwrap_or_default();
    let meta = CertMeta {
        namespace,
        name,
        uid: object.meta.uid.clone(),
        secret_name: spec.secret_name.clone(),
        secret_labels: template.labels,
        secret_annotations: template.annotations,
        formats: formats(client, cert)?,
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
        generation: object.meta.generation,
        verify: verify_targets(&cert.metadata.annotations)?,
    };
    Ok((job, meta))
}

/// The output formats, keystore passwords from Secrets in the Certificate's namespace (or the
/// literals).
fn formats(client: &KubeClient, cert: &Certificate) -> Result<OutputFormats, BuildError> {
    build::output_formats(cert, |_, sel| {
        Ok(SecretSource::Provider(Arc::new(SecretRef {
            client: client.clone(),
            namespace: cert.namespace().to_owned(),
            name: sel.name.clone(),
            key: sel.key.clone(),
        })))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use certkeeper_core::spec::IssuerKind;

    /// cert-manager's defaults: a ClusterIssuer may use the controller's own AWS identity, an
    /// Issuer may not; the refusal names the flag and waits for a change.
    #[test]
    fn ambient_aws_credentials_follow_cert_managers_flags() {
        let aws = AwsAmbient {
            environment: AwsEnvironment::default(),
            issuers: false,
            cluster_issuers: true,
        };
        let issuer = IssuerId::new(IssuerKind::Issuer, "apps", "vault");
        let cluster = IssuerId::new(IssuerKind::ClusterIssuer, "", "vault");
        aws.check("spec.vault.auth.aws", &cluster).unwrap();
        let refused = aws.check("spec.vault.auth.aws", &issuer).unwrap_err();
        assert!(
            refused.to_string().contains("--issuer-ambient-credentials"),
            "{refused}"
        );
        assert_eq!(refused.class(), FailureClass::Invalid);
        let open = AwsAmbient {
            issuers: true,
            cluster_issuers: false,
            ..aws
        };
        open.check("f", &issuer).unwrap();
        assert!(
            open.check("f", &cluster)
                .unwrap_err()
                .to_string()
                .contains("--cluster-issuer-ambient-credentials")
        );
    }
}
