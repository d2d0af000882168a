//! A thin async client for HashiCorp Vault and OpenBao, covering what cert-manager's
//! `spec.vault` can express and what certkeeper needs beyond it.
//!
//! - Transport ([`VaultConfig`]): server URL, CA bundle, `serverName` (verified name and SNI),
//!   mTLS client identity, namespace header (login and sign, never `sys/health`), connect and
//!   request timeouts, no automatic redirects, pooled connections.
//! - Auth ([`AuthMethod`]): token, AppRole, Kubernetes, JWT/OIDC, TLS certificate, AWS IAM
//!   ([`aws`]: a SigV4-signed `sts:GetCallerIdentity`, static or web-identity credentials).
//! - A token cache per client: renewed or replaced before expiry; a 403 drops the token (and
//!   revokes it, unless the user gave it) and triggers one fresh login before the failure is
//!   judged; a login that fails is shared with every request under way, not sent again by each.
//! - PKI sign ([`VaultClient::sign`]) and health ([`VaultClient::health`]).
//! - Several addresses for one Vault (`VaultConfig::addresses`, probed in the background): chosen by
//!   `sys/health`, switched at once when a node fails; and a login namespace apart from the
//!   PKI mount's (`VaultConfig::auth_namespace`).
//! - Failures ([`VaultError`]) carry the operation, status, Vault's messages, Retry-After and the
//!   transport cause; [`VaultError::class`] is the one place that decides their
//!   [`FailureClass`](certkeeper_core::FailureClass); [`VaultError::scope`] the one place that
//!   decides their [`FailureScope`] (the issuer as a whole, or this one request).

mod address;
pub mod aws;
mod client;
mod config;
mod credential;
mod error;
mod nodes;
mod path;
mod pki;
mod redact;
mod token;
mod transport;

pub use address::{
    AddressError, MAX_ADDRESSES, NamespaceError, parse_address, parse_addresses, parse_namespace,
};
pub use client::{Health, HealthStatus, TokenInfo, VaultClient};
pub use config::{
    AuthMethod, ClientIdentity, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, SecretProvider,
    SecretSource, VaultConfig, auth_mount,
};
// Re-exported so callers of `VaultError::scope` need not name certkeeper-core for it.
pub use certkeeper_core::FailureScope;
pub use credential::CredentialError;
pub use error::{ErrorKind, Operation, StsFailure, TransportCause, Unanswered, VaultError};
pub use path::PathError;
pub use pki::{SignRequest, SignedCertificate};
pub use redact::BodyExcerpt;
pub use transport::RequestObserver;
