//! `Issuer` and `ClusterIssuer` with `spec.vault` (cert-manager's `types_issuer.go`), their
//! validation (cert-manager's `internal/apis/certmanager/validation/issuer.go`) and the defaults
//! cert-manager's Vault client applies at run time (`internal/vault/vault.go`), gathered here so
//! the Vault client and both runtimes resolve them the same way.
//!
//! Other issuer types (`acme`, `ca`, `selfSigned`, `venafi`) are recognised, kept undecoded and
//! reported as unsupported: certkeeper only talks to Vault and OpenBao. Their CRD schemas are
//! typed in [`super::unserved`], as is the schema of Vault's `auth.aws` (decoded here into
//! [`VaultAwsAuth`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

use super::error::{FieldError, FieldPath, Problem};
use super::meta::{IssuerKey, IssuerKind, ObjectMeta, SecretKeySelector, validate_object_name};
use super::syntax::{Base64Bytes, check_vault_path, is_kubernetes_api_audience, pem_has_certificate};

/// Secret key holding a Vault token (tokenSecretRef) or a ServiceAccount JWT (kubernetes
/// secretRef) when the reference names none.
pub const DEFAULT_TOKEN_KEY: &str = "token";
/// Secret key of `caBundleSecretRef` when none is named.
pub const DEFAULT_CA_BUNDLE_KEY: &str = "ca.crt";
/// Secret keys of `clientCertSecretRef` / `clientKeySecretRef` when none is named.
pub const DEFAULT_CLIENT_CERT_KEY: &str = "tls.crt";
pub const DEFAULT_CLIENT_KEY_KEY: &str = "tls.key";
/// Login mount paths when `mountPath` is empty. These include the `/v1` API prefix; the AppRole
/// `path` does not (it is a mount name under `/v1/auth/`): a cert-manager quirk kept as is.
pub const DEFAULT_KUBERNETES_MOUNT_PATH: &str = "/v1/auth/kubernetes";
pub const DEFAULT_CLIENT_CERTIFICATE_MOUNT_PATH: &str = "/v1/auth/cert";
/// AppRole mount name when `path` is empty (cert-manager's Vault client).
pub const DEFAULT_APPROLE_PATH: &str = "approle";
pub const DEFAULT_AWS_MOUNT_PATH: &str = "/v1/auth/aws";
/// The audience cert-manager always requests for an AWS web identity token (IRSA's).
pub const AWS_STS_AUDIENCE: &str = "sts.amazonaws.com";
/// The region cert-manager signs for when neither the Issuer nor the environment names one.
pub const DEFAULT_AWS_REGION: &str = "us-east-1";

/// A namespaced issuer: only Certificates in its namespace can use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Issuer {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: IssuerSpec,
}

/// A cluster-scoped issuer. A `metadata.namespace` in its manifest is ignored, as the API server
/// ignores it for cluster-scoped kinds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ClusterIssuer {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: IssuerSpec,
}

/// certkeeper's own `VaultIssuer` (namespaced) and `VaultClusterIssuer` (cluster-scoped), group
/// `certkeeper.io`, version `v1`: cert-manager's `spec.vault`, unchanged, is the whole `spec`,
/// and the status is an issuer's (a `Ready` condition). They are what cert-manager's
/// Certificates name when certkeeper runs beside cert-manager as an external issuer, and what
/// certkeeper's Certificates may name in its full mode, so a manifest moves between the modes
/// unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CertkeeperIssuer {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: VaultIssuer,
}

impl CertkeeperIssuer {
    /// Everything an Issuer's `spec.vault` is checked for, at `spec`; names as the API server
    /// checks them (a namespace only for a `VaultIssuer`).
    pub fn validate(&self, kind: IssuerKind) -> Vec<FieldError> {
        let mut errors = Vec::new();
        self.metadata
            .validate(&FieldPath::parse("metadata"), kind.namespaced(), &mut errors);
        self.spec.validate(&FieldPath::parse("spec"), &mut errors);
        errors
    }
}

/// cert-manager's `IssuerConfig`: exactly one issuer type must be set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct IssuerSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vault: Option<VaultIssuer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<super::unserved::AcmeIssuer>")]
    pub acme: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<super::unserved::CaIssuer>")]
    pub ca: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<super::unserved::SelfSignedIssuer>")]
    pub self_signed: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<super::unserved::VenafiIssuer>")]
    pub venafi: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct VaultIssuer {
    pub auth: VaultAuth,
    /// `https://vault.example.com:8200`.
    pub server: String,
    /// TLS server name to verify instead of the host in `server`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub server_name: String,
    /// The sign endpoint without `/v1`: `pki_int/sign/example-dot-com`.
    pub path: String,
    /// Vault Enterprise / OpenBao namespace, sent as `X-Vault-Namespace`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// PEM CA bundle; base64 in the manifest because cert-manager's field is `[]byte`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<Base64Bytes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_bundle_secret_ref: Option<SecretKeySelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert_secret_ref: Option<SecretKeySelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key_secret_ref: Option<SecretKeySelector>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct VaultAuth {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeySelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_role: Option<VaultAppRole>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<VaultClientCertificateAuth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<VaultKubernetesAuth>,
    /// Vault's AWS IAM auth method: a signed sts:GetCallerIdentity request, made with the
    /// runtime's own AWS credentials or, with serviceAccountRef, with credentials of iamRoleArn
    /// obtained for a ServiceAccount token.
    // The CRD schema is `unserved::VaultAwsAuth`, which keeps `role` required as cert-manager's
    // does (the decoded type defaults every field).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<super::unserved::VaultAwsAuth>")]
    pub aws: Option<VaultAwsAuth>,
}

/// cert-manager's `VaultAWSAuth`: a login with a signed `sts:GetCallerIdentity`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct VaultAwsAuth {
    /// Full login mount path including `/v1`, [`DEFAULT_AWS_MOUNT_PATH`] if empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mount_path: String,
    /// The Vault role.
    pub role: String,
    /// The region to sign for (see [`VaultAwsAuth::region`]).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub region: String,
    /// A ServiceAccount whose token is exchanged for AWS credentials of `iamRoleArn` (IRSA);
    /// without it the runtime's own (ambient) AWS credentials are used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_ref: Option<ServiceAccountRef>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub iam_role_arn: String,
    /// Sent as `X-Vault-AWS-IAM-Server-ID` (Vault's `iam_server_id_header_value`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub vault_header_value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct VaultAppRole {
    /// Mount name of the AppRole backend (no `/v1/auth/` prefix); `approle` when empty.
    pub path: String,
    pub role_id: String,
    /// Secret and key holding the SecretID. The key has no default, as in cert-manager: without
    /// one, the issuer fails at login.
    pub secret_ref: SecretKeySelector,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct VaultClientCertificateAuth {
    /// Full login mount path including `/v1`, [`DEFAULT_CLIENT_CERTIFICATE_MOUNT_PATH`] if empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mount_path: String,
    /// A `kubernetes.io/tls` Secret (tls.crt, tls.key) presented during the TLS handshake.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub secret_name: String,
    /// The cert auth role; any matching role when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct VaultKubernetesAuth {
    /// Full login mount path including `/v1`, [`DEFAULT_KUBERNETES_MOUNT_PATH`] if empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mount_path: String,
    /// A Secret holding a ServiceAccount JWT (key [`DEFAULT_TOKEN_KEY`] by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeySelector>,
    /// A ServiceAccount to request short-lived tokens for (TokenRequest API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_ref: Option<ServiceAccountRef>,
    pub role: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ServiceAccountRef {
    pub name: String,
    /// Extra audiences; the defaults are always included (see
    /// [`VaultKubernetesAuth::token_audiences`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
}

/// The auth method an issuer uses. cert-manager never enforced "exactly one", so manifests with
/// several exist; like cert-manager, the first set in the order tokenSecretRef, appRole,
/// clientCertificate, kubernetes, aws wins and the rest are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VaultAuthMethod<'a> {
    Token(&'a SecretKeySelector),
    AppRole(&'a VaultAppRole),
    ClientCertificate(&'a VaultClientCertificateAuth),
    Kubernetes(&'a VaultKubernetesAuth),
    Aws(&'a VaultAwsAuth),
}

/// Go's `path.Join` for the absolute API paths used here: empty and `.` segments dropped.
fn join_path(parts: &[&str]) -> String {
    let mut out = String::new();
    for segment in parts
        .iter()
        .flat_map(|p| p.split('/'))
        .filter(|s| !s.is_empty() && *s != ".")
    {
        out.push('/');
        out.push_str(segment);
    }
    out
}

/// `POST` path of a login: `<mountPath>/login`, `default` when the manifest names no mount.
fn mount_login_path(mount_path: &str, default: &str) -> String {
    let mount = if mount_path.is_empty() {
        default
    } else {
        mount_path
    };
    join_path(&[mount, "login"])
}

/// Whether a PKI path is an `issue` endpoint (`<mount>/issue/<role>`, also
/// `<mount>/issuer/<ref>/issue/<role>`): the segment before the role is `issue`. There Vault
/// generates the key and, unless the role says `no_store`, stores every certificate: certkeeper
/// only ever signs a CSR (`sign/`, `sign-verbatim/`), so such a path is refused at validation
/// rather than turned into requests. A mount or role that happens to be named `issue`
/// (`issue/sign/web`, `pki/sign/issue`) is a sign path and passes.
fn is_issue_endpoint(path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    segments.len() >= 3 && segments[segments.len() - 2] == "issue"
}

fn has_dot_dot(path: &str) -> bool {
    path.split('/').any(|s| s == "..")
}

/// A Vault path from the manifest: `..` segments (cert-manager's own rule) and anything that is
/// not a plain path (see [`check_vault_path`]).
fn validate_vault_path(value: &str, path: FieldPath, errors: &mut Vec<FieldError>) {
    if has_dot_dot(value) {
        errors.push(FieldError::new(path, Problem::DotDotSegment));
    } else if let Err(reason) = check_vault_path(value) {
        let problem = Problem::InvalidVaultPath {
            value: value.to_owned(),
            reason,
        };
        errors.push(FieldError::new(path, problem));
    }
}

impl VaultAuth {
    /// The method in effect (see [`VaultAuthMethod`]); `None` when none is set.
    pub fn method(&self) -> Option<VaultAuthMethod<'_>> {
        if let Some(token) = &self.token_secret_ref {
            Some(VaultAuthMethod::Token(token))
        } else if let Some(app_role) = &self.app_role {
            Some(VaultAuthMethod::AppRole(app_role))
        } else if let Some(cert) = &self.client_certificate {
            Some(VaultAuthMethod::ClientCertificate(cert))
        } else if let Some(kubernetes) = &self.kubernetes {
            Some(VaultAuthMethod::Kubernetes(kubernetes))
        } else {
            self.aws.as_ref().map(VaultAuthMethod::Aws)
        }
    }
}

impl VaultAppRole {
    /// The mount name: `path`, or [`DEFAULT_APPROLE_PATH`] when it is empty.
    pub fn mount(&self) -> &str {
        if self.path.is_empty() {
            DEFAULT_APPROLE_PATH
        } else {
            &self.path
        }
    }

    /// `POST` path of the login call: `/v1/auth/<mount>/login`.
    pub fn login_path(&self) -> String {
        join_path(&["/v1/auth", self.mount(), "login"])
    }
}

impl VaultClientCertificateAuth {
    pub fn login_path(&self) -> String {
        mount_login_path(&self.mount_path, DEFAULT_CLIENT_CERTIFICATE_MOUNT_PATH)
    }
}

impl VaultKubernetesAuth {
    fn validate(&self, at: &FieldPath, errors: &mut Vec<FieldError>) {
        if self.role.is_empty() {
            errors.push(FieldError::new(at.field("role"), Problem::Required));
        }
        validate_vault_path(&self.mount_path, at.field("mountPath"), errors);
        let secret = self.secret_ref.as_ref().filter(|s| !s.name.is_empty());
        if let Some(secret) = secret {
            secret.validate(&at.field("secretRef"), errors);
        }
        if let Some(sa) = &self.service_account_ref {
            let at = at.field("serviceAccountRef");
            validate_object_name(&sa.name, &at.field("name"), errors);
            for (i, audience) in sa.audiences.iter().enumerate() {
                if is_kubernetes_api_audience(audience) {
                    let problem = Problem::KubernetesApiAudience(audience.clone());
                    errors.push(FieldError::new(at.field("audiences").index(i), problem));
                }
            }
        }
        const SOURCES: &[&str] = &["secretRef", "serviceAccountRef"];
        match (secret.is_some(), self.service_account_ref.is_some()) {
            (false, false) => errors.push(FieldError::new(at.clone(), Problem::RequiredOneOf(SOURCES))),
            (true, true) => errors.push(FieldError::new(at.clone(), Problem::OnlyOneOf(SOURCES))),
            _ => {}
        }
    }

    pub fn login_path(&self) -> String {
        mount_login_path(&self.mount_path, DEFAULT_KUBERNETES_MOUNT_PATH)
    }

    /// Audiences for a requested ServiceAccount token, as cert-manager sends them: the extra
    /// ones from the manifest, then `vault://<namespace>/<name>` (`vault://<name>` for a
    /// ClusterIssuer), then the Vault server address. Vault roles are commonly bound to these.
    pub fn token_audiences(&self, issuer: &IssuerKey, server: &str) -> Vec<String> {
        let mut audiences = self
            .service_account_ref
            .as_ref()
            .map(|r| r.audiences.clone())
            .unwrap_or_default();
        audiences.push(match &issuer.namespace {
            Some(namespace) => format!("vault://{namespace}/{}", issuer.name),
            None => format!("vault://{}", issuer.name),
        });
        audiences.push(server.to_owned());
        audiences
    }
}

impl VaultAwsAuth {
    fn validate(&self, at: &FieldPath, errors: &mut Vec<FieldError>) {
        if self.role.is_empty() {
            errors.push(FieldError::new(at.field("role"), Problem::Required));
        }
        validate_vault_path(&self.mount_path, at.field("mountPath"), errors);
        if let Some(sa) = &self.service_account_ref {
            validate_object_name(&sa.name, &at.field("serviceAccountRef").field("name"), errors);
            if self.iam_role_arn.is_empty() {
                let problem = Problem::RequiredWith("serviceAccountRef");
                errors.push(FieldError::new(at.field("iamRoleArn"), problem));
            }
        }
    }

    pub fn login_path(&self) -> String {
        mount_login_path(&self.mount_path, DEFAULT_AWS_MOUNT_PATH)
    }

    /// Whether the login uses the runtime's own AWS credentials (no `serviceAccountRef`).
    pub fn uses_ambient_credentials(&self) -> bool {
        self.service_account_ref.is_none()
    }

    /// The region the login signs for, as cert-manager chooses it from the Issuer's `region`
    /// and the environment's (`AWS_REGION`, else `AWS_DEFAULT_REGION`): with ambient
    /// credentials the environment's wins (cert-manager logs "Ignoring Issuer region"); with
    /// `serviceAccountRef` the Issuer's does; [`DEFAULT_AWS_REGION`] when neither is set.
    pub fn region(&self, environment: Option<&str>) -> String {
        let spec = Some(self.region.as_str()).filter(|r| !r.is_empty());
        let environment = environment.filter(|r| !r.is_empty());
        let chosen = if self.uses_ambient_credentials() {
            environment.or(spec)
        } else {
            spec.or(environment)
        };
        chosen.unwrap_or(DEFAULT_AWS_REGION).to_owned()
    }

    /// Audiences of the ServiceAccount token for `serviceAccountRef`, as cert-manager asks:
    /// [`AWS_STS_AUDIENCE`], then the extra ones from the manifest.
    pub fn token_audiences(&self) -> Vec<String> {
        let mut audiences = vec![AWS_STS_AUDIENCE.to_owned()];
        if let Some(sa) = &self.service_account_ref {
            audiences.extend(sa.audiences.iter().cloned());
        }
        audiences
    }
}

impl VaultIssuer {
    /// `POST` path of the sign call: `/v1/<path>`.
    pub fn sign_path(&self) -> String {
        join_path(&["/v1", &self.path])
    }

    /// The inline CA bundle (PEM), if one is set and not empty.
    pub fn ca_bundle_pem(&self) -> Option<&[u8]> {
        self.ca_bundle
            .as_ref()
            .map(|b| b.0.as_slice())
            .filter(|b| !b.is_empty())
    }

    fn validate(&self, path: &FieldPath, errors: &mut Vec<FieldError>) {
        let push = |errors: &mut Vec<FieldError>, path: FieldPath, problem| {
            errors.push(FieldError::new(path, problem))
        };
        // Any other value is accepted, as by cert-manager's webhook; the Vault client refuses
        // what is not an http(s) URL when the issuer is built, and the issuer fails then.
        if self.server.is_empty() {
            push(errors, path.field("server"), Problem::Required);
        }
        if self.path.is_empty() {
            push(errors, path.field("path"), Problem::Required);
        } else if is_issue_endpoint(&self.path) {
            push(
                errors,
                path.field("path"),
                Problem::IssueEndpoint(self.path.clone()),
            );
        } else {
            validate_vault_path(&self.path, path.field("path"), errors);
        }
        if let Some(pem) = self.ca_bundle_pem() {
            if !pem_has_certificate(pem) {
                push(errors, path.field("caBundle"), Problem::NoCertificateInBundle);
            }
            if self.ca_bundle_secret_ref.is_some() {
                let problem = Problem::MutuallyExclusive("caBundleSecretRef");
                push(errors, path.field("caBundle"), problem);
            }
        }
        let refs = [
            ("caBundleSecretRef", &self.ca_bundle_secret_ref),
            ("clientCertSecretRef", &self.client_cert_secret_ref),
            ("clientKeySecretRef", &self.client_key_secret_ref),
        ];
        for (field, reference) in refs {
            if let Some(reference) = reference {
                reference.validate(&path.field(field), errors);
            }
        }
        match (&self.client_cert_secret_ref, &self.client_key_secret_ref) {
            (Some(_), None) => push(
                errors,
                path.field("clientKeySecretRef"),
                Problem::RequiredWith("clientCertSecretRef"),
            ),
            (None, Some(_)) => push(
                errors,
                path.field("clientCertSecretRef"),
                Problem::RequiredWith("clientKeySecretRef"),
            ),
            _ => {}
        }
        self.auth.validate(&path.field("auth"), errors);
    }
}

impl VaultAuth {
    /// cert-manager validates every method that is present, not just the one in effect.
    fn validate(&self, path: &FieldPath, errors: &mut Vec<FieldError>) {
        if let Some(token) = &self.token_secret_ref {
            token.validate(&path.field("tokenSecretRef"), errors);
        }
        if let Some(app_role) = &self.app_role {
            let at = path.field("appRole");
            // An empty path is cert-manager's default mount (DEFAULT_APPROLE_PATH).
            validate_vault_path(&app_role.path, at.field("path"), errors);
            // cert-manager's webhook requires it as written; a blank one is trimmed at login.
            if app_role.role_id.is_empty() {
                errors.push(FieldError::new(at.field("roleId"), Problem::Required));
            }
            // No key is no error here: the login fails instead (SecretKeySelector::explicit_key).
            app_role.secret_ref.validate(&at.field("secretRef"), errors);
        }
        if let Some(cert) = &self.client_certificate {
            let at = path.field("clientCertificate");
            validate_vault_path(&cert.mount_path, at.field("mountPath"), errors);
            if !cert.secret_name.is_empty() {
                validate_object_name(&cert.secret_name, &at.field("secretName"), errors);
            }
        }
        if let Some(kubernetes) = &self.kubernetes {
            kubernetes.validate(&path.field("kubernetes"), errors);
        }
        if let Some(aws) = &self.aws {
            aws.validate(&path.field("aws"), errors);
        }
        if self.method().is_none() {
            const METHODS: &[&str] = &[
                "tokenSecretRef",
                "appRole",
                "clientCertificate",
                "kubernetes",
                "aws",
            ];
            errors.push(FieldError::new(path.clone(), Problem::RequiredOneOf(METHODS)));
        }
    }
}

const ISSUER_TYPES: &[&str] = &["acme", "ca", "selfSigned", "vault", "venafi"];

impl IssuerSpec {
    /// The Vault configuration; `None` only for a spec that failed validation.
    pub fn vault(&self) -> Option<&VaultIssuer> {
        self.vault.as_ref()
    }

    pub(super) fn validate(&self, path: &FieldPath, errors: &mut Vec<FieldError>) {
        let present = [
            ("acme", self.acme.is_some()),
            ("ca", self.ca.is_some()),
            ("selfSigned", self.self_signed.is_some()),
            ("vault", self.vault.is_some()),
            ("venafi", self.venafi.is_some()),
        ];
        match present.iter().filter(|(_, set)| *set).count() {
            0 => errors.push(FieldError::new(
                path.clone(),
                Problem::RequiredOneOf(ISSUER_TYPES),
            )),
            1 => {}
            _ => errors.push(FieldError::new(path.clone(), Problem::OnlyOneOf(ISSUER_TYPES))),
        }
        for (name, set) in present {
            if set && name != "vault" {
                errors.push(FieldError::new(
                    path.field(name),
                    Problem::UnsupportedIssuerType(name),
                ));
            }
        }
        if let Some(vault) = &self.vault {
            vault.validate(&path.field("vault"), errors);
        }
    }
}

impl Issuer {
    /// How Certificates find this issuer: its kind, namespace (default applied) and name.
    pub fn key(&self) -> IssuerKey {
        IssuerKey {
            kind: IssuerKind::Issuer,
            namespace: Some(self.metadata.namespace_or_default().to_owned()),
            name: self.metadata.name.clone(),
        }
    }

    /// Every problem cert-manager's webhook (and the API server's name checks) would report,
    /// plus certkeeper's own limits (Vault only).
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        self.metadata
            .validate(&FieldPath::parse("metadata"), true, &mut errors);
        self.spec.validate(&FieldPath::parse("spec"), &mut errors);
        errors
    }
}

impl ClusterIssuer {
    pub fn key(&self) -> IssuerKey {
        IssuerKey {
            kind: IssuerKind::ClusterIssuer,
            namespace: None,
            name: self.metadata.name.clone(),
        }
    }

    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        self.metadata
            .validate(&FieldPath::parse("metadata"), false, &mut errors);
        self.spec.validate(&FieldPath::parse("spec"), &mut errors);
        errors
    }
}
