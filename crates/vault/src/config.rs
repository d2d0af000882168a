//! What a client needs to reach one Vault issuer: transport settings and an auth method.
//!
//! The fields mirror cert-manager's `spec.vault` (server, path, namespace, caBundle,
//! caBundleSecretRef, serverName, clientCertSecretRef/clientKeySecretRef, auth.*). Runtimes resolve
//! secret references into [`SecretSource`]s; the client reads them at login time, so a rotated
//! file or Kubernetes Secret is picked up by the next login without rebuilding the client.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use certkeeper_core::Secret;

use crate::aws::AwsLogin;
use crate::credential::CredentialError;
use crate::path::{ApiPath, PathError};

/// Default connect timeout: loopback and LAN Vaults answer in milliseconds; a dead address
/// should not hold an issuer's single probe for long.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default whole-request timeout (headers and body), the bound on a listener that never answers.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Transport and identity settings for one Vault server.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// Base address, e.g. `https://vault.example.com:8200` (a trailing `/v1` is accepted).
    pub server: String,
    /// PEM bundle of CAs trusted for the server certificate (`caBundle` / `caBundleSecretRef`).
    /// When absent the platform's trust store is used.
    pub ca_bundle_pem: Option<String>,
    /// TLS name to verify and send as SNI when it differs from the host in `server` (`serverName`).
    pub server_name: Option<String>,
    /// Client certificate for mTLS (`clientCertSecretRef` + `clientKeySecretRef`).
    pub client_identity: Option<ClientIdentity>,
    /// Vault Enterprise / OpenBao namespace, sent as `X-Vault-Namespace` on sign, and on login
    /// unless `auth_namespace` is set; never on `sys/health`.
    pub namespace: Option<String>,
    /// The namespace of the auth method, when it differs from the PKI mount's (certkeeper's
    /// `authNamespace`): sent on login and on the token's own requests (renew, lookup, revoke).
    /// Checked by [`crate::parse_namespace`].
    pub auth_namespace: Option<String>,
    /// The addresses of the nodes of one Vault, tried in order of health instead of `server`
    /// alone (certkeeper's `addresses`); empty: `server` only. Checked by
    /// [`crate::parse_addresses`]. `server` still names the Vault elsewhere (the audience of a
    /// Kubernetes token).
    pub addresses: Vec<String>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

impl VaultConfig {
    pub fn new(server: impl Into<String>) -> Self {
        VaultConfig {
            server: server.into(),
            ca_bundle_pem: None,
            server_name: None,
            client_identity: None,
            namespace: None,
            auth_namespace: None,
            addresses: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// A PEM certificate chain and its private key.
#[derive(Clone)]
pub struct ClientIdentity {
    pub cert_pem: String,
    pub key_pem: Secret,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("cert_pem", &"<pem>")
            .field("key_pem", &self.key_pem)
            .finish()
    }
}

/// How the client proves who it is. Mount paths accept cert-manager's spellings
/// (`approle`, `/v1/auth/kubernetes`, `auth/jwt`) and are normalised by [`auth_mount`].
#[derive(Debug, Clone)]
pub enum AuthMethod {
    /// A Vault token (`tokenSecretRef`). Re-read from its source when Vault rejects it.
    Token { token: SecretSource },
    /// AppRole (`appRole`: path, roleId, secretRef).
    AppRole {
        mount: String,
        role_id: String,
        secret_id: SecretSource,
    },
    /// Kubernetes auth (`kubernetes`: role, mountPath, secretRef or serviceAccountRef). The JWT
    /// comes from the caller: a file, a Secret, or a TokenRequest made per login.
    Kubernetes {
        mount: String,
        role: String,
        jwt: SecretSource,
    },
    /// JWT/OIDC role login with a JWT from the caller.
    Jwt {
        mount: String,
        role: String,
        jwt: SecretSource,
    },
    /// AWS IAM auth (`aws`: mountPath, role, region, serviceAccountRef + iamRoleArn,
    /// vaultHeaderValue), see [`crate::aws`].
    Aws(Box<AwsLogin>),
    /// TLS certificate auth (`clientCertificate`: mountPath, name). The certificate is the
    /// transport's client identity, or `identity` when given (cert-manager's `secretName`).
    Cert {
        mount: String,
        name: Option<String>,
        identity: Option<ClientIdentity>,
    },
}

impl AuthMethod {
    /// A short label for logs and status ("approle", "kubernetes", ...).
    pub fn kind(&self) -> &'static str {
        match self {
            AuthMethod::Token { .. } => "token",
            AuthMethod::AppRole { .. } => "approle",
            AuthMethod::Kubernetes { .. } => "kubernetes",
            AuthMethod::Jwt { .. } => "jwt",
            AuthMethod::Cert { .. } => "cert",
            AuthMethod::Aws(_) => "aws",
        }
    }
}

/// Normalise a mount path to the form used after `/v1/`: `approle` -> `auth/approle`,
/// `/v1/auth/kubernetes` -> `auth/kubernetes`, `auth/jwt/` -> `auth/jwt`. A mount that could
/// leave `/v1/auth/` or the server (`..`, `//host`, `https://...`) is refused.
pub fn auth_mount(path: &str) -> Result<String, PathError> {
    ApiPath::auth_mount(path).map(|p| p.to_string())
}

/// Produces secret material on demand (a Kubernetes TokenRequest, a Secret read through an API).
pub trait SecretProvider: Send + Sync {
    /// A human-readable name of where the value comes from, for error messages.
    fn describe(&self) -> String;
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Secret, CredentialError>> + Send + '_>>;
}

/// Where a token, secret_id or JWT comes from. Read at every login.
#[derive(Clone)]
pub enum SecretSource {
    Value(Secret),
    /// A file whose content (trimmed) is the value; re-read at each login, so rotation works.
    File(PathBuf),
    /// An environment variable.
    Env(String),
    Provider(Arc<dyn SecretProvider>),
}

impl SecretSource {
    pub fn value(v: impl Into<Secret>) -> Self {
        SecretSource::Value(v.into())
    }

    pub fn describe(&self) -> String {
        match self {
            SecretSource::Value(_) => "inline value".to_owned(),
            SecretSource::File(p) => format!("file {}", p.display()),
            SecretSource::Env(v) => format!("environment variable {v}"),
            SecretSource::Provider(p) => p.describe(),
        }
    }

    /// Read the current value. Errors say which source failed and why, never the value.
    pub async fn read(&self) -> Result<Secret, CredentialError> {
        let value = match self {
            SecretSource::Value(v) => v.clone(),
            SecretSource::File(path) => match tokio::fs::read_to_string(path).await {
                Ok(s) => Secret::new(s.trim()),
                Err(source) => {
                    return Err(CredentialError::Unreadable {
                        what: self.describe(),
                        source,
                    });
                }
            },
            SecretSource::Env(name) => match std::env::var(name) {
                Ok(s) => Secret::new(s.trim()),
                Err(_) => return Err(CredentialError::EnvNotSet { name: name.clone() }),
            },
            SecretSource::Provider(p) => p.fetch().await?,
        };
        if value.is_empty() {
            return Err(CredentialError::Empty {
                what: self.describe(),
            });
        }
        Ok(value)
    }
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretSource({})", self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_in_every_spelling() {
        for (input, want) in [
            ("approle", "auth/approle"),
            ("/v1/auth/kubernetes", "auth/kubernetes"),
            ("v1/auth/kubernetes/", "auth/kubernetes"),
            ("auth/jwt", "auth/jwt"),
            ("/v1/auth/cert", "auth/cert"),
            ("my/nested/approle", "auth/my/nested/approle"),
        ] {
            assert_eq!(auth_mount(input).unwrap(), want, "{input}");
        }
    }

    #[tokio::test]
    async fn sources_read_trimmed_values_and_name_themselves_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s.abc\n").unwrap();
        let file = SecretSource::File(path.clone());
        assert_eq!(file.read().await.unwrap().expose(), "s.abc");

        std::fs::remove_file(&path).unwrap();
        let err = file.read().await.unwrap_err();
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");

        std::fs::write(&path, "  \n").unwrap();
        assert!(file.read().await.unwrap_err().to_string().contains("is empty"));

        let env = SecretSource::Env("CERTKEEPER_TEST_SURELY_UNSET_VAR".into());
        assert!(
            env.read()
                .await
                .unwrap_err()
                .to_string()
                .contains("CERTKEEPER_TEST_SURELY_UNSET_VAR")
        );
        assert!(!format!("{:?}", SecretSource::value("hvs.secret")).contains("hvs.secret"));
    }
}
