//! What the engine is given: certificates to keep valid, the issuers that sign them, and the
//! runtime that stores the results.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use certkeeper_core::pki::{CsrRequest, IssuedCertificate, KeyAlgorithm, KeyEncoding, PrivateKey};
use certkeeper_core::schedule::RenewalPolicy;
use certkeeper_core::spec::{IssuerKey, IssuerKind};
use certkeeper_core::{FailureClass, Secret};
use certkeeper_vault::VaultClient;

use crate::gate::IssuerGate;
use crate::state::CertState;

/// A Certificate's id, "namespace/name", in both runtimes (the standalone runtime's manifests
/// have namespaces too). Cheap to clone; compares, hashes and borrows as its text, so a map keyed
/// by ids is looked up with a `&str`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CertId(Arc<str>);

impl CertId {
    /// The one constructor: the id of Certificate `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> CertId {
        CertId(format!("{namespace}/{name}").into())
    }

    /// An id read back as text (a state database's key, a `renew` argument): `None` when it
    /// has no "namespace/name" shape.
    pub fn parse(text: &str) -> Option<CertId> {
        let (namespace, name) = text.split_once('/')?;
        (!name.is_empty() && !name.contains('/')).then(|| CertId::new(namespace, name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn namespace(&self) -> &str {
        self.0.split_once('/').map_or("", |(ns, _)| ns)
    }

    pub fn name(&self) -> &str {
        self.0.split_once('/').map_or(&*self.0, |(_, name)| name)
    }
}

/// An issuer's id: "Issuer/namespace/name" or "ClusterIssuer/name" (certkeeper's own kinds
/// alike: "VaultIssuer/namespace/name", "VaultClusterIssuer/name"), in both runtimes and for
/// other tools' CertificateRequests.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IssuerId(Arc<str>);

impl IssuerId {
    /// The one constructor: the id of an issuer of `kind` named `name`, in `namespace` when the
    /// kind is namespaced (`namespace` is ignored otherwise): `Issuer/<namespace>/<name>`,
    /// `ClusterIssuer/<name>`, `VaultIssuer/<namespace>/<name>`, `VaultClusterIssuer/<name>`.
    pub fn new(kind: IssuerKind, namespace: &str, name: &str) -> IssuerId {
        let kind_name = kind.as_str();
        IssuerId(
            if kind.namespaced() {
                format!("{kind_name}/{namespace}/{name}")
            } else {
                format!("{kind_name}/{name}")
            }
            .into(),
        )
    }

    /// The id of an issuer reference resolved to its key.
    pub fn of_key(key: &IssuerKey) -> IssuerId {
        IssuerId::new(key.kind, key.namespace.as_deref().unwrap_or_default(), &key.name)
    }

    /// The key this id was made from.
    pub fn key(&self) -> IssuerKey {
        let (kind_name, rest) = self.0.split_once('/').unwrap_or(("", &self.0));
        let kind = IssuerKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind_name)
            .unwrap_or(IssuerKind::ClusterIssuer);
        match rest.split_once('/') {
            Some((namespace, name)) if kind.namespaced() => IssuerKey {
                kind,
                namespace: Some(namespace.to_owned()),
                name: name.to_owned(),
            },
            _ => IssuerKey {
                kind,
                namespace: None,
                name: rest.to_owned(),
            },
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! id_text {
    ($t:ty) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&*self.0, f)
            }
        }
        /// An id reads as its text (maps, metric labels, log fields).
        impl std::ops::Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
        impl std::borrow::Borrow<str> for $t {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                &*self.0 == other
            }
        }
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                &*self.0 == *other
            }
        }
    };
}
id_text!(CertId);
id_text!(IssuerId);

/// One certificate to keep valid, as the runtime derived it from its spec.
#[derive(Debug, Clone)]
pub struct CertJob {
    pub id: CertId,
    pub issuer: IssuerId,
    /// Changes whenever the certificate's spec or its issuer's spec changes: a changed
    /// fingerprint re-issues at once and resets any backoff.
    pub fingerprint: u64,
    pub csr: CsrRequest,
    pub key_algorithm: KeyAlgorithm,
    pub key_encoding: KeyEncoding,
    /// rotationPolicy Always: a new key for every issuance.
    pub rotate_key: bool,
    pub duration: Duration,
    pub renewal: RenewalPolicy,
    /// Revoke each certificate in Vault once its successor is in place
    /// ([`crate::build::REVOKE_ANNOTATION`]).
    pub revoke_superseded: bool,
    /// Revoke the certificate when its Certificate is deleted (the controller).
    pub revoke_deleted: bool,
    /// Labels for metrics and status.
    pub labels: JobLabels,
}

/// cert-manager's metric labels of a certificate.
#[derive(Debug, Clone, Default)]
pub struct JobLabels {
    pub name: String,
    pub namespace: String,
    pub issuer_name: String,
    pub issuer_kind: String,
    pub issuer_group: String,
}

/// A Vault issuer ready to sign.
#[derive(Debug, Clone)]
pub struct IssuerRuntime {
    pub id: IssuerId,
    pub client: Arc<VaultClient>,
    pub gate: IssuerGate,
    /// `spec.vault.path`: `<mount>/sign/<role>` or `<mount>/issuer/<ref>/sign/<role>`.
    pub path: String,
    /// Changes whenever the issuer's spec changes; part of every job fingerprint.
    pub fingerprint: u64,
    /// Hash of runtime settings (gate limits, timeouts) that shape how requests are sent but
    /// not what is issued: a change rebuilds the client and gate without re-issuing.
    pub settings: u64,
}

/// A verified certificate and the key it belongs to, ready to be written.
#[derive(Debug)]
pub struct Issued {
    pub key: PrivateKey,
    pub key_pem: Secret,
    /// The CSR sent to Vault, exactly as sent (for records such as CertificateRequests).
    pub csr_pem: String,
    pub certificate: IssuedCertificate,
    /// The revision this will become (status.revision).
    pub revision: u64,
}

/// A storage failure, classified by the runtime that knows what it means.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct RuntimeError {
    pub class: FailureClass,
    pub message: String,
}

/// Something a person may want to see (logs, Kubernetes Events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEvent {
    Issuing {
        reason: crate::state::IssueReason,
    },
    Issued {
        revision: u64,
        serial: String,
        not_after: i64,
        warning: Option<String>,
    },
    Failed {
        class: FailureClass,
        message: String,
        attempts: u32,
        next_attempt: Option<i64>,
    },
    /// A re-issue held by the issuance budget ([`crate::budget`]).
    IssuanceDeferred(crate::state::BudgetDeferral),
}

impl EngineEvent {
    /// Logs the event for `certificate`: the one wording of the engine's events in both
    /// runtimes' logs.
    pub fn log(&self, certificate: &str) {
        use certkeeper_core::time::rfc3339_unix;
        match self {
            EngineEvent::Issuing { reason } => {
                tracing::info!(certificate, reason = reason.as_str(), "issuing certificate");
            }
            EngineEvent::Issued {
                revision,
                serial,
                not_after,
                warning,
            } => {
                let not_after = rfc3339_unix(*not_after);
                if *revision > 1 {
                    tracing::info!(certificate, revision, serial, not_after, "renewed certificate");
                } else {
                    tracing::info!(certificate, revision, serial, not_after, "issued certificate");
                }
                if let Some(w) = warning {
                    tracing::warn!(
                        certificate,
                        warning = w,
                        "issued certificate is shorter than requested"
                    );
                }
            }
            EngineEvent::Failed {
                class,
                message,
                attempts,
                next_attempt,
            } if class.is_apply() => tracing::warn!(
                certificate,
                class = class.as_str(),
                attempts,
                next_attempt = next_attempt.map(rfc3339_unix).as_deref().unwrap_or("on change"),
                error = message,
                "certificate stored but not in use; retrying its hooks, not issuing again"
            ),
            EngineEvent::Failed {
                class,
                message,
                attempts,
                next_attempt,
            } => tracing::warn!(
                certificate,
                class = class.as_str(),
                attempts,
                next_attempt = next_attempt.map(rfc3339_unix).as_deref().unwrap_or("on change"),
                error = message,
                "issuance failed"
            ),
            EngineEvent::IssuanceDeferred(deferral) => tracing::warn!(
                certificate,
                reason = deferral.reason,
                budget = deferral.budget,
                next_attempt = rfc3339_unix(deferral.until),
                "re-issue held by the issuance budget; renewals still go at their time"
            ),
        }
    }
}

/// Storage and event sinks supplied by a runtime (files + embedded database standalone,
/// Secrets + status in Kubernetes).
pub trait Runtime: Send + Sync + 'static {
    /// The private key currently served, for rotationPolicy Never. `None` if there is none or
    /// it cannot be read (a new key is generated then).
    fn current_key(&self, job: &CertJob) -> impl Future<Output = Option<Secret>> + Send;
    /// The key of an earlier attempt that failed (cert-manager's next private key), kept by
    /// [`store_pending_key`](Self::store_pending_key): a retry reuses it, so every request of
    /// one revision carries the same public key. `None`: there is none (a new key then).
    fn pending_key(&self, _job: &CertJob) -> impl Future<Output = Option<Secret>> + Send {
        std::future::ready(None)
    }
    /// Keep the new key of an attempt that failed, for the next attempt; `write` discards it
    /// once a certificate for it is stored. A failure here is logged: the next attempt then
    /// generates another key. A runtime that keeps nothing between attempts forgets it.
    fn store_pending_key(
        &self,
        _job: &CertJob,
        _key_pem: &Secret,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        std::future::ready(Ok(()))
    }
    /// Write the certificate and key where readers find them.
    fn write(&self, job: &CertJob, issued: &Issued) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Put the certificate just written (or written earlier, when a failed apply is retried)
    /// into use: the standalone runtime runs the certificate's hooks, then checks what its
    /// `verify` addresses serve. A failure is the certificate's, of class
    /// [`FailureClass::Apply`]: retried on its schedule by calling this again, never by issuing
    /// again. Runtimes with nothing to do after a write keep the default.
    fn apply(&self, _job: &CertJob) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        std::future::ready(Ok(()))
    }
    /// Persist the state of the certificates whose attempts just finished. The engine batches
    /// outcomes that complete together, so a runtime can commit them at once (one fsync, not one
    /// per certificate).
    fn save_states(
        &self,
        states: Vec<(CertId, CertState)>,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    fn event(&self, job: &CertJob, event: EngineEvent);
}

#[cfg(test)]
mod tests {
    use certkeeper_core::spec::IssuerKind;

    use super::*;

    #[test]
    fn ids_are_made_in_one_place() {
        assert_eq!(CertId::new("apps", "web"), "apps/web");
        let web = CertId::new("apps", "web");
        assert_eq!((web.namespace(), web.name()), ("apps", "web"));
        assert_eq!(CertId::parse("apps/web"), Some(web));
        for bad in ["", "web", "apps/", "a/b/c"] {
            assert_eq!(CertId::parse(bad), None, "{bad}");
        }
        let issuer = IssuerId::new(IssuerKind::Issuer, "apps", "vault");
        assert_eq!(issuer, "Issuer/apps/vault");
        assert_eq!(IssuerId::of_key(&issuer.key()), issuer);
        let cluster = IssuerId::new(IssuerKind::ClusterIssuer, "ignored", "vault");
        assert_eq!(cluster, "ClusterIssuer/vault");
        assert_eq!(IssuerId::of_key(&cluster.key()), cluster);
        let own = IssuerId::new(IssuerKind::VaultIssuer, "apps", "vault");
        assert_eq!(own, "VaultIssuer/apps/vault");
        assert_eq!(own.key().kind, IssuerKind::VaultIssuer);
        assert_eq!(IssuerId::of_key(&own.key()), own);
        let own_cluster = IssuerId::new(IssuerKind::VaultClusterIssuer, "ignored", "vault");
        assert_eq!(own_cluster, "VaultClusterIssuer/vault");
        assert_eq!(IssuerId::of_key(&own_cluster.key()), own_cluster);
        // Maps keyed by ids are looked up by text.
        let map = std::collections::HashMap::from([(CertId::new("apps", "web"), 1)]);
        assert_eq!(map.get("apps/web"), Some(&1));
    }
}
