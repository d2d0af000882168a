//! From cert-manager.io/v1 objects to the engine's inputs, the same for every runtime: an
//! issuer's [`IssuerRuntime`] (Vault transport, auth, gate) and a Certificate's [`CertJob`]
//! (CSR contents, key, lifetime, renewal, fingerprint). A runtime only says where referenced
//! Secrets come from, through [`SecretResolver`]: files and environment variables standalone,
//! Kubernetes Secrets in a cluster.
//!
//! Fingerprints are [`stable_hash`] of serde JSON. An issuer's covers its spec and, per field,
//! where each Secret it reads at login resolves to and the content of what it reads once (CA
//! bundle, client certificate); a Certificate's covers its spec and its issuer's fingerprint, so
//! an issuer change re-issues its certificates. [`IssuerLimits`] are not fingerprinted: a change
//! rebuilds the client and gate (`IssuerRuntime::settings`) without re-issuing.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use certkeeper_core::FailureClass;
use certkeeper_core::Secret;
use certkeeper_core::pki::{self, CsrRequest, JKS_DEFAULT_ALIAS, PkiError, Subject};
use certkeeper_core::schedule::stable_hash;
use certkeeper_core::spec::{
    Certificate, DEFAULT_AWS_MOUNT_PATH, DEFAULT_CA_BUNDLE_KEY, DEFAULT_CLIENT_CERT_KEY,
    DEFAULT_CLIENT_CERTIFICATE_MOUNT_PATH, DEFAULT_CLIENT_KEY_KEY, DEFAULT_KUBERNETES_MOUNT_PATH,
    DEFAULT_TOKEN_KEY, FieldError, RotationPolicy, SecretKeySelector, VaultAuthMethod, VaultIssuer,
};
use certkeeper_vault::aws::{AwsCredentialSource, AwsEnvironment, AwsLogin, DEFAULT_SESSION_NAME};
use certkeeper_vault::{AuthMethod, ClientIdentity, SecretSource, VaultClient, VaultConfig, VaultError};

use crate::gate::{GateConfig, IssuerGate};
use crate::job::{CertId, CertJob, IssuerId, IssuerRuntime, JobLabels};
use crate::metrics::Metrics;
use crate::outputs::{JksOutput, OutputFormats, Pkcs12Output};

/// Gate limits and Vault timeouts applied to every issuer (the standalone `issuers:` section).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct IssuerLimits {
    /// Requests in flight to one issuer.
    pub concurrency: usize,
    pub rate_per_second: f64,
    pub burst: u32,
    /// Bound on establishing a connection to Vault.
    pub connect_timeout: Duration,
    /// Bound on a whole request (headers and body): a Vault that accepts and never answers.
    pub request_timeout: Duration,
}

impl Default for IssuerLimits {
    fn default() -> Self {
        let gate = GateConfig::default();
        IssuerLimits {
            concurrency: gate.concurrency,
            rate_per_second: gate.rate_per_sec,
            burst: gate.burst,
            connect_timeout: certkeeper_vault::DEFAULT_CONNECT_TIMEOUT,
            request_timeout: certkeeper_vault::DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// What certkeeper adds to an issuer's `spec.vault`, where cert-manager's schema has no room:
/// the standalone configuration's `issuers.vault.<issuer>`, or the issuer's annotations in a
/// cluster (`certkeeper.io/vault-addresses`, `certkeeper.io/vault-auth-namespace`). Each runtime
/// checks them where they are written (naming its field or annotation); the client checks them
/// again. Not fingerprinted: a change rebuilds the issuer's client without re-issuing.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct VaultExtras {
    /// The addresses of the Vault's nodes, chosen by health instead of `spec.vault.server`
    /// alone; empty: `server` only.
    pub addresses: Vec<String>,
    /// The namespace of the login, when it is not `spec.vault.namespace` (which the PKI request
    /// keeps).
    pub auth_namespace: Option<String>,
}

/// Why a credential could not be had; defined beside [`SecretSource`], whose readers report it.
pub use certkeeper_vault::CredentialError;

/// Why an issuer's runtime or a Certificate's job could not be built from its spec. Every
/// message names the spec field concerned.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A referenced Secret (or what stands for it standalone) could not be resolved or read.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The Vault client refuses the issuer's settings (server URL, CA bundle, client identity).
    #[error("spec.vault: {0}")]
    Client(VaultError),
    #[error("spec.vault.auth: no supported authentication method")]
    NoAuthMethod,
    #[error("spec.vault.auth.kubernetes: neither secretRef nor serviceAccountRef")]
    NoKubernetesCredential,
    #[error(
        "spec.issuerRef: not an issuer certkeeper serves (Issuer or ClusterIssuer of cert-manager.io, VaultIssuer or VaultClusterIssuer of certkeeper.io)"
    )]
    NotAnIssuerRef,
    #[error(
        "metadata.annotations[certkeeper.io/revoke]: {0:?} is not a revocation policy (superseded, deleted)"
    )]
    RevokePolicy(String),
    /// `spec.privateKey` (the error names its field).
    #[error("{0}")]
    PrivateKey(FieldError),
    #[error("spec.usages: {0}")]
    Usages(PkiError),
    /// `spec.literalSubject`, `otherNames`, `nameConstraints` or `uris` (the error names its
    /// field).
    #[error("{0}")]
    Names(FieldError),
    #[error("spec.ipAddresses: {0:?} is not an IP address")]
    IpAddress(String),
    /// A keystore asked for without a password (`.0`: which keystore's field).
    #[error("{0}: no password")]
    NoKeystorePassword(&'static str),
    /// A Secret reference without `key` where the field has no default key (appRole
    /// `secretRef`, keystore `passwordSecretRef`; `.0` names it). cert-manager's webhook
    /// accepts it, and its controller fails the same way when it reads the key `""`.
    #[error(
        "{0}.key: not set, and this reference has no default key (cert-manager reads the key \"\", which no Secret has)"
    )]
    NoSecretKey(&'static str),
    /// A spec enum without a wire name (`field`: where it is).
    #[error("{field}: {source}")]
    WireName {
        field: &'static str,
        source: WireNameError,
    },
}

impl BuildError {
    /// The failure's class, the only place it is decided: a spec or a reference to fix, except
    /// where a credential's or the Vault client's own class says otherwise.
    pub fn class(&self) -> FailureClass {
        match self {
            BuildError::Credential(e) => e.class(),
            BuildError::Client(e) => e.class(),
            BuildError::NoAuthMethod
            | BuildError::NoKubernetesCredential
            | BuildError::NotAnIssuerRef
            | BuildError::PrivateKey(_)
            | BuildError::Names(_)
            | BuildError::Usages(_)
            | BuildError::IpAddress(_)
            | BuildError::NoKeystorePassword(_)
            | BuildError::NoSecretKey(_)
            | BuildError::RevokePolicy(_)
            | BuildError::WireName { .. } => FailureClass::Invalid,
        }
    }
}

/// Why a value has no wire name (serde did not make it a string).
#[derive(Debug, thiserror::Error)]
pub enum WireNameError {
    #[error("unexpected value {0}")]
    NotAString(serde_json::Value),
    #[error(transparent)]
    Serde(#[from] serde_json::Error),
}

/// Where an issuer's referenced Secrets come from. Errors name `field` (see
/// [`CredentialError::in_field`]).
pub trait SecretResolver {
    /// Secret `name` key `key` as a source the client reads at each login (tokens, secret IDs,
    /// JWTs), so rotating it needs no reload.
    fn source(&mut self, field: &str, name: &str, key: &str) -> Result<SecretSource, CredentialError>;
    /// Secret `name` key `key` read now (CA bundle, client certificate and key).
    fn read(&mut self, field: &str, name: &str, key: &str) -> Result<String, CredentialError>;
    /// `kubernetes.serviceAccountRef` and `aws.serviceAccountRef`: a token for
    /// `service_account` with `audiences`, requested at each login. Only a runtime inside a
    /// cluster can.
    fn service_account_token(
        &mut self,
        field: &str,
        service_account: &str,
        audiences: Vec<String>,
    ) -> Result<SecretSource, CredentialError>;
    /// The AWS settings of the runtime's environment (`auth.aws`: region, STS endpoint, and the
    /// runtime's own credentials).
    fn aws_environment(&self) -> AwsEnvironment;
    /// `auth.aws` without `serviceAccountRef` uses the runtime's own AWS credentials: `Ok` if
    /// this runtime lets issuer `id` do so (cert-manager's ambient-credentials flags).
    fn ambient_aws(&mut self, field: &str, id: &IssuerId) -> Result<(), CredentialError>;
}

/// Records, per field, what the fingerprint covers: where a source resolves to, or what was read.
struct Recorder<'a, R: SecretResolver + ?Sized> {
    inner: &'a mut R,
    inputs: BTreeMap<String, String>,
}

impl<R: SecretResolver + ?Sized> Recorder<'_, R> {
    fn source(&mut self, field: &str, name: &str, key: &str) -> Result<SecretSource, CredentialError> {
        let source = self.inner.source(field, name, key)?;
        self.inputs.insert(field.to_owned(), source.describe());
        Ok(source)
    }

    /// `record_as` keeps two reads of one field (a certificate and its key) apart.
    fn read(
        &mut self,
        field: &str,
        record_as: &str,
        name: &str,
        key: &str,
    ) -> Result<String, CredentialError> {
        let value = self.inner.read(field, name, key)?;
        self.inputs.insert(record_as.to_owned(), value.clone());
        Ok(value)
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn or_default(s: &str, default: &str) -> String {
    if s.is_empty() { default } else { s }.to_owned()
}

/// Builds the runtime of issuer `id`, or reuses the one in `previous` when neither its
/// fingerprint nor the limits changed (keeping its token cache, gate and circuit state).
pub fn build_issuer<R: SecretResolver + ?Sized>(
    resolver: &mut R,
    id: &IssuerId,
    vault: &VaultIssuer,
    extras: &VaultExtras,
    limits: &IssuerLimits,
    metrics: &Metrics,
    previous: &HashMap<IssuerId, IssuerRuntime>,
) -> Result<IssuerRuntime, BuildError> {
    let mut r = Recorder {
        inner: resolver,
        inputs: BTreeMap::new(),
    };
    let mut cfg = VaultConfig::new(vault.server.clone());
    cfg.namespace = non_empty(&vault.namespace);
    cfg.addresses = extras.addresses.clone();
    cfg.auth_namespace = extras.auth_namespace.clone();
    cfg.server_name = non_empty(&vault.server_name);
    cfg.connect_timeout = limits.connect_timeout;
    cfg.request_timeout = limits.request_timeout;
    if let Some(pem) = vault.ca_bundle_pem() {
        cfg.ca_bundle_pem = Some(String::from_utf8_lossy(pem).into_owned());
    } else if let Some(sel) = &vault.ca_bundle_secret_ref {
        let field = "spec.vault.caBundleSecretRef";
        cfg.ca_bundle_pem = Some(r.read(field, field, &sel.name, sel.key_or(DEFAULT_CA_BUNDLE_KEY))?);
    }
    if let (Some(cert), Some(key)) = (&vault.client_cert_secret_ref, &vault.client_key_secret_ref) {
        let (cert_field, key_field) = ("spec.vault.clientCertSecretRef", "spec.vault.clientKeySecretRef");
        let cert_pem = r.read(
            cert_field,
            cert_field,
            &cert.name,
            cert.key_or(DEFAULT_CLIENT_CERT_KEY),
        )?;
        let key_pem = r.read(
            key_field,
            key_field,
            &key.name,
            key.key_or(DEFAULT_CLIENT_KEY_KEY),
        )?;
        cfg.client_identity = Some(ClientIdentity {
            cert_pem,
            key_pem: Secret::new(key_pem),
        });
    }
    let auth = auth_method(&mut r, id, vault)?;

    let fingerprint = stable_hash(
        serde_json::json!({ "spec": vault, "inputs": r.inputs })
            .to_string()
            .as_bytes(),
    );
    let settings = if *extras == VaultExtras::default() {
        stable_hash(serde_json::json!(limits).to_string().as_bytes())
    } else {
        stable_hash(
            serde_json::json!({ "limits": limits, "extras": extras })
                .to_string()
                .as_bytes(),
        )
    };
    if let Some(prev) = previous.get(id)
        && prev.fingerprint == fingerprint
        && prev.settings == settings
    {
        return Ok(prev.clone());
    }
    let client = VaultClient::with_observer(&cfg, auth, Some(metrics.vault_observer(id)))
        .map_err(BuildError::Client)?;
    let gate = IssuerGate::new(
        id.as_str(),
        &GateConfig {
            concurrency: limits.concurrency,
            rate_per_sec: limits.rate_per_second,
            burst: limits.burst,
            ..GateConfig::default()
        },
    );
    Ok(IssuerRuntime {
        id: id.clone(),
        client: Arc::new(client),
        gate,
        path: vault.path.clone(),
        fingerprint,
        settings,
    })
}

fn auth_method<R: SecretResolver + ?Sized>(
    r: &mut Recorder<'_, R>,
    id: &IssuerId,
    vault: &VaultIssuer,
) -> Result<AuthMethod, BuildError> {
    let method = vault.auth.method().ok_or(BuildError::NoAuthMethod)?;
    Ok(match method {
        VaultAuthMethod::Token(sel) => AuthMethod::Token {
            token: r.source(
                "spec.vault.auth.tokenSecretRef",
                &sel.name,
                sel.key_or(DEFAULT_TOKEN_KEY),
            )?,
        },
        VaultAuthMethod::AppRole(app_role) => {
            let field = "spec.vault.auth.appRole.secretRef";
            let key = app_role
                .secret_ref
                .explicit_key()
                .ok_or(BuildError::NoSecretKey(field))?;
            AuthMethod::AppRole {
                mount: app_role.mount().to_owned(),
                role_id: app_role.role_id.trim().to_owned(),
                secret_id: r.source(field, &app_role.secret_ref.name, key)?,
            }
        }
        VaultAuthMethod::Kubernetes(k) => {
            let jwt = match (
                k.secret_ref.as_ref().filter(|s| !s.name.is_empty()),
                k.service_account_ref.as_ref().filter(|s| !s.name.is_empty()),
            ) {
                (Some(sel), _) => r.source(
                    "spec.vault.auth.kubernetes.secretRef",
                    &sel.name,
                    sel.key_or(DEFAULT_TOKEN_KEY),
                )?,
                (None, Some(sa)) => {
                    let field = "spec.vault.auth.kubernetes.serviceAccountRef";
                    let audiences = k.token_audiences(&id.key(), &vault.server);
                    let source = r.inner.service_account_token(field, &sa.name, audiences)?;
                    r.inputs.insert(field.to_owned(), source.describe());
                    source
                }
                (None, None) => {
                    return Err(BuildError::NoKubernetesCredential);
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
                let cert_pem = r.read(
                    field,
                    &format!("{field} {DEFAULT_CLIENT_CERT_KEY}"),
                    &c.secret_name,
                    DEFAULT_CLIENT_CERT_KEY,
                )?;
                let key_pem = r.read(
                    field,
                    &format!("{field} {DEFAULT_CLIENT_KEY_KEY}"),
                    &c.secret_name,
                    DEFAULT_CLIENT_KEY_KEY,
                )?;
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
        VaultAuthMethod::Aws(a) => {
            let field = "spec.vault.auth.aws";
            let environment = r.inner.aws_environment();
            let credentials = match &a.service_account_ref {
                Some(sa) => {
                    let sa_field = "spec.vault.auth.aws.serviceAccountRef";
                    let token = r
                        .inner
                        .service_account_token(sa_field, &sa.name, a.token_audiences())?;
                    AwsCredentialSource::WebIdentity {
                        role_arn: a.iam_role_arn.clone(),
                        session_name: DEFAULT_SESSION_NAME.to_owned(),
                        token,
                    }
                }
                None => {
                    r.inner.ambient_aws(field, id)?;
                    AwsCredentialSource::Ambient(environment.clone())
                }
            };
            let login = AwsLogin {
                mount: or_default(&a.mount_path, DEFAULT_AWS_MOUNT_PATH),
                role: a.role.clone(),
                region: a.region(environment.region.as_deref()),
                server_id: non_empty(&a.vault_header_value),
                credentials,
                sts_endpoint: environment.sts_endpoint.clone(),
            };
            // Only what the spec decides: the environment's region and STS endpoint change how
            // the runtime logs in, never the certificate, and `status` runs elsewhere.
            r.inputs.insert(field.to_owned(), login.credentials.describe());
            AuthMethod::Aws(Box::new(login))
        }
    })
}

/// A serde enum's wire name (cert-manager's spelling), e.g. "digital signature" or "LegacyRC2".
pub fn wire_name<T: serde::Serialize>(value: &T) -> Result<String, WireNameError> {
    match serde_json::to_value(value)? {
        serde_json::Value::String(s) => Ok(s),
        other => Err(WireNameError::NotAString(other)),
    }
}

/// The issuer a Certificate refers to.
pub fn certificate_issuer(cert: &Certificate) -> Result<IssuerId, BuildError> {
    cert.issuer_key()
        .map(|key| IssuerId::of_key(&key))
        .ok_or(BuildError::NotAnIssuerRef)
}

/// `spec.usages` in cert-manager's spelling (defaults applied).
pub fn usage_names(cert: &Certificate) -> Result<Vec<String>, BuildError> {
    cert.usages()
        .iter()
        .map(wire_name)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| BuildError::WireName {
            field: "spec.usages",
            source,
        })
}

/// The engine job of `cert`, whose issuer has fingerprint `issuer_fingerprint` (0 while the
/// issuer is missing or unusable).
pub fn certificate_job(cert: &Certificate, issuer_fingerprint: u64) -> Result<CertJob, BuildError> {
    let namespace = cert.namespace();
    let name = &cert.metadata.name;
    let spec = &cert.spec;
    let issuer = certificate_issuer(cert)?;
    let private_key = cert.private_key().map_err(BuildError::PrivateKey)?;
    let (key_usages, extended_key_usages) =
        pki::parse_usages(&usage_names(cert)?).map_err(BuildError::Usages)?;
    let ip_addresses = spec
        .ip_addresses
        .iter()
        .map(|ip| {
            ip.parse::<IpAddr>()
                .map_err(|_| BuildError::IpAddress(ip.clone()))
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
            serial_number: non_empty(&s.serial_number),
        })
        .unwrap_or_default();
    let literal_subject = spec.literal_subject().map_err(BuildError::Names)?;
    let csr = CsrRequest {
        common_name: spec.common_name(literal_subject.as_ref()),
        other_names: spec.other_names().map_err(BuildError::Names)?,
        name_constraints: spec.name_constraints().map_err(BuildError::Names)?.map(Box::new),
        literal_subject,
        dns_names: spec.dns_names.clone(),
        ip_addresses,
        uris: spec.uris().map_err(BuildError::Names)?,
        email_addresses: spec.email_addresses.clone(),
        subject,
        is_ca: spec.is_ca,
        key_usages,
        extended_key_usages,
        encode_usages_in_request: spec.encode_usages_in_request(),
    };
    let fingerprint_input = serde_json::json!({ "spec": spec, "issuer": issuer_fingerprint });
    let (mut revoke_superseded, mut revoke_deleted) = (false, false);
    if let Some(policy) = cert.metadata.annotations.get(REVOKE_ANNOTATION) {
        for word in policy.split(',').map(str::trim) {
            match word {
                "superseded" => revoke_superseded = true,
                "deleted" => revoke_deleted = true,
                other => return Err(BuildError::RevokePolicy(other.chars().take(64).collect())),
            }
        }
    }
    Ok(CertJob {
        id: CertId::new(namespace, name),
        issuer,
        fingerprint: stable_hash(fingerprint_input.to_string().as_bytes()),
        csr,
        key_algorithm: private_key.algorithm.into(),
        key_encoding: private_key.encoding.into(),
        rotate_key: private_key.rotation_policy == RotationPolicy::Always,
        duration: cert.duration(),
        renewal: cert.renewal_policy(),
        revoke_superseded,
        revoke_deleted,
        labels: JobLabels {
            name: name.clone(),
            namespace: namespace.to_owned(),
            issuer_name: spec.issuer_ref.name.clone(),
            issuer_kind: spec.issuer_ref.kind.clone(),
            issuer_group: spec.issuer_ref.group.clone(),
        },
    })
}

/// The Certificate annotation that opts into revocation, a comma-separated list: `superseded`
/// revokes each certificate in Vault once its successor is in place (written, its hooks run and
/// its `verify` addresses serving it); `deleted` revokes the certificate of a Certificate
/// deleted from the cluster (the controller; a deletion, not an object turned invalid). Not part
/// of the spec's fingerprint: setting it re-issues nothing.
pub const REVOKE_ANNOTATION: &str = "certkeeper.io/revoke";

/// What a Certificate is stored as beyond `tls.crt`/`tls.key`/`ca.crt`, for both runtimes:
/// `additionalOutputFormats`, and the keystores with `create: true` with where their passwords
/// come from. `password_ref` resolves a `passwordSecretRef` in the Certificate's namespace
/// (its first argument names the field, for messages); a literal `password` is used as is.
pub fn output_formats(
    cert: &Certificate,
    mut password_ref: impl FnMut(&'static str, &SecretKeySelector) -> Result<SecretSource, CredentialError>,
) -> Result<OutputFormats, BuildError> {
    let keystores = cert.spec.keystores.as_ref();
    let mut password =
        |field: &'static str, secret_ref: Option<&SecretKeySelector>, literal: Option<&Secret>| match (
            secret_ref.filter(|r| !r.name.is_empty()),
            literal,
        ) {
            (Some(sel), _) if sel.explicit_key().is_none() => Err(BuildError::NoSecretKey(field)),
            (Some(sel), _) => Ok(password_ref(field, sel)?),
            (None, Some(password)) => Ok(SecretSource::Value(password.clone())),
            (None, None) => Err(BuildError::NoKeystorePassword(field)),
        };
    let pkcs12 = match keystores.and_then(|k| k.pkcs12.as_ref()).filter(|k| k.create) {
        Some(p12) => Some(Pkcs12Output {
            password: password(
                "spec.keystores.pkcs12.passwordSecretRef",
                p12.password_secret_ref.as_ref(),
                p12.password.as_ref(),
            )?,
            // cert-manager's default when absent.
            profile: p12.profile.map(Into::into).unwrap_or_default(),
        }),
        None => None,
    };
    let jks = match keystores.and_then(|k| k.jks.as_ref()).filter(|k| k.create) {
        Some(jks) => Some(JksOutput {
            password: password(
                "spec.keystores.jks.passwordSecretRef",
                jks.password_secret_ref.as_ref(),
                jks.password.as_ref(),
            )?,
            alias: jks.alias.clone().unwrap_or_else(|| JKS_DEFAULT_ALIAS.to_owned()),
        }),
        None => None,
    };
    Ok(OutputFormats::new(&cert.spec, pkcs12, jks))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn certificate(annotations: &str) -> Certificate {
        let text = format!(
            "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: web\n  namespace: apps\n{annotations}spec:\n  secretName: web-tls\n  dnsNames: [web.example.com]\n  issuerRef: {{name: vault}}\n"
        );
        match certkeeper_core::spec::parse_documents("web.yaml", &text)
            .unwrap()
            .remove(0)
        {
            certkeeper_core::spec::Resource::Certificate(c) => *c,
            other => panic!("{other:?}"),
        }
    }

    /// `certkeeper.io/revoke`: absent is no revocation, `superseded` opts in, anything else
    /// fails the Certificate (class invalid) naming the annotation, and the value never
    /// changes the fingerprint (setting it re-issues nothing).
    #[test]
    fn the_revoke_annotation_opts_in_and_refuses_what_it_does_not_know() {
        let plain = certificate_job(&certificate(""), 1).unwrap();
        assert!(!plain.revoke_superseded);
        let asked = certificate_job(
            &certificate("  annotations: {certkeeper.io/revoke: superseded}\n"),
            1,
        )
        .unwrap();
        assert!(asked.revoke_superseded && !asked.revoke_deleted);
        let both = certificate_job(
            &certificate("  annotations: {certkeeper.io/revoke: \"superseded, deleted\"}\n"),
            1,
        )
        .unwrap();
        assert!(both.revoke_superseded && both.revoke_deleted);
        assert_eq!(asked.fingerprint, plain.fingerprint);
        let unknown = certificate_job(
            &certificate("  annotations: {certkeeper.io/revoke: everything}\n"),
            1,
        )
        .unwrap_err();
        assert_eq!(unknown.class(), FailureClass::Invalid);
        assert_eq!(
            unknown.to_string(),
            "metadata.annotations[certkeeper.io/revoke]: \"everything\" is not a revocation policy (superseded, deleted)"
        );
    }
}
