//! Why a credential could not be had: a token, AppRole secret ID or JWT read at login, a CA
//! bundle or client certificate read when an issuer is built, a PKCS#12 password read when a
//! keystore is written. Every source reports through [`CredentialError`] (files and environment
//! variables standalone, Secrets and TokenRequests through the Kubernetes API), and
//! [`CredentialError::class`] is the one place that decides what such a failure means.

use std::path::PathBuf;

use certkeeper_core::FailureClass;

/// Why a credential could not be read. `what` names the source ("Secret default/vault key
/// \"token\"", "file /etc/certkeeper/token", ...); no variant ever holds the value.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The referenced Secret does not exist.
    #[error("{what} not found")]
    NotFound { what: String },
    /// The Secret exists without the key, or the key holds nothing usable.
    #[error("{what} has no key {key:?}")]
    MissingKey { what: String, key: String },
    /// The value is empty (or whitespace only).
    #[error("{what} is empty")]
    Empty { what: String },
    /// An environment variable named as the source is not set.
    #[error("environment variable {name} is not set")]
    EnvNotSet { name: String },
    /// A file named as the source cannot be read.
    #[error("cannot read {what}: {source}")]
    Unreadable { what: String, source: std::io::Error },
    /// A file under `secrets.dir` that resolves, through symlinks, outside it.
    #[error("{} resolves to {}, outside secrets.dir {}", path.display(), resolved.display(), root.display())]
    OutsideDirectory {
        path: PathBuf,
        resolved: PathBuf,
        root: PathBuf,
    },
    /// A namespace, Secret name or key the API server would not accept, refused before it is
    /// made into a path.
    #[error("{what} {value:?} is not valid: {reason}")]
    InvalidReference {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    /// The configuration resolves the reference to nothing (no `secrets.dir`, no `secrets.refs`
    /// entry).
    #[error("{what} resolves to nothing: set secrets.dir or add a secrets.refs entry to the configuration")]
    Unresolved { what: String },
    /// The value is there but not usable as it is (not UTF-8).
    #[error("{what}: {problem}")]
    InvalidContent { what: String, problem: &'static str },
    /// The Kubernetes API refused the read or the TokenRequest (`code`: its HTTP status), or
    /// could not be reached (`code` is `None`). `message` is the API client's error.
    #[error("{what}: {message}")]
    Api {
        what: String,
        code: Option<u16>,
        message: String,
    },
    /// certkeeper refuses to request a token with an audience the Kubernetes API server itself
    /// accepts: the Issuer's author chooses the audiences and the server the token is sent to.
    #[error(
        "{what}: refused: audience {audience:?} would make the token valid against the Kubernetes API \
         server itself"
    )]
    KubernetesApiAudience { what: String, audience: String },
    /// A TokenRequest answered without a token.
    #[error("{what}: no token in the answer")]
    NoToken { what: String },
    /// A ServiceAccount token, which only a runtime inside a cluster can request.
    #[error("{field} needs the Kubernetes runtime; use secretRef standalone")]
    NeedsKubernetes { field: String },
    /// AWS auth without `serviceAccountRef` and no AWS credentials in the runtime's environment.
    #[error(
        "no AWS credentials in the environment: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
         or AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE (IRSA)"
    )]
    NoAwsCredentials,
    /// AWS auth without `serviceAccountRef` on an issuer this runtime does not let use its own
    /// (ambient) AWS identity, as cert-manager's `--issuer-ambient-credentials` /
    /// `--cluster-issuer-ambient-credentials`.
    #[error(
        "{field}: refused: this {kind} may not use the controller's own AWS credentials; set \
         serviceAccountRef and iamRoleArn, or enable {option}"
    )]
    AmbientAwsRefused {
        field: String,
        kind: &'static str,
        option: &'static str,
    },
    /// Reading failed otherwise (the reading task died, the request path could not be built).
    #[error("{what}: {message}")]
    Failed { what: String, message: String },
    /// One of the above, for the spec field (`spec.vault.caBundleSecretRef`, ...) that refers
    /// to the source.
    #[error("{field}: {source}")]
    Field {
        field: String,
        source: Box<CredentialError>,
    },
}

impl CredentialError {
    /// The failure's class, the only place it is decided: every credential failure is our own
    /// input (a reference, a Secret, a file, the configuration) and waits for it to change.
    pub fn class(&self) -> FailureClass {
        match self {
            CredentialError::Field { source, .. } => source.class(),
            CredentialError::NotFound { .. }
            | CredentialError::MissingKey { .. }
            | CredentialError::Empty { .. }
            | CredentialError::EnvNotSet { .. }
            | CredentialError::Unreadable { .. }
            | CredentialError::OutsideDirectory { .. }
            | CredentialError::InvalidReference { .. }
            | CredentialError::Unresolved { .. }
            | CredentialError::InvalidContent { .. }
            | CredentialError::Api { .. }
            | CredentialError::KubernetesApiAudience { .. }
            | CredentialError::NoToken { .. }
            | CredentialError::NeedsKubernetes { .. }
            | CredentialError::NoAwsCredentials
            | CredentialError::AmbientAwsRefused { .. }
            | CredentialError::Failed { .. } => FailureClass::Invalid,
        }
    }

    /// The same failure, for spec field `field`.
    pub fn in_field(self, field: &str) -> CredentialError {
        CredentialError::Field {
            field: field.to_owned(),
            source: Box::new(self),
        }
    }

    /// The failure without the field it was reported for.
    pub fn cause(&self) -> &CredentialError {
        match self {
            CredentialError::Field { source, .. } => source.cause(),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_source_and_the_field() {
        let missing = CredentialError::NotFound {
            what: "Secret default/vault".into(),
        };
        assert_eq!(missing.to_string(), "Secret default/vault not found");
        let e = missing.in_field("spec.vault.caBundleSecretRef");
        assert_eq!(
            e.to_string(),
            "spec.vault.caBundleSecretRef: Secret default/vault not found"
        );
        assert!(matches!(e.cause(), CredentialError::NotFound { .. }));
        assert_eq!(
            CredentialError::EnvNotSet { name: "TOKEN".into() }.to_string(),
            "environment variable TOKEN is not set"
        );
        assert_eq!(
            CredentialError::NeedsKubernetes {
                field: "spec.vault.auth.kubernetes.serviceAccountRef".into()
            }
            .to_string(),
            "spec.vault.auth.kubernetes.serviceAccountRef needs the Kubernetes runtime; use secretRef standalone"
        );
    }

    #[test]
    fn every_credential_failure_waits_for_its_input() {
        let api = CredentialError::Api {
            what: "Secret default/vault key \"token\"".into(),
            code: Some(403),
            message: "GET /api/v1/namespaces/default/secrets/vault: 403 Forbidden: no".into(),
        };
        assert_eq!(api.class(), FailureClass::Invalid);
        assert_eq!(api.in_field("spec.x").class(), FailureClass::Invalid);
    }
}
