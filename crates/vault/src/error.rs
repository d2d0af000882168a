//! Typed Vault failures and the one place that decides their class.
//!
//! Every call the client makes returns [`VaultError`] on failure: the operation, what went wrong
//! (transport, an HTTP status with Vault's error strings, an answer that could not be decoded, a
//! credential that could not be read, invalid configuration) and enough context to explain it.
//! [`VaultError::class`] maps it to a [`FailureClass`] following the catalog measured against
//! OpenBao 2.7.2 (`OPENBAO.md`), and [`VaultError::scope`] to a [`FailureScope`] (the issuer as a
//! whole, or this one request) from the same catalog; nothing else in certkeeper inspects status
//! codes or messages.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use certkeeper_core::{FailureClass, FailureScope};

use crate::credential::CredentialError;
use crate::path::PathError;
use crate::redact::{BodyExcerpt, redact};

/// What the client was doing when it failed. Also a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Login,
    RenewToken,
    LookupToken,
    /// Best-effort `revoke-self` of a token Vault refused (never retried, never returned).
    RevokeToken,
    Sign,
    /// Revoke an issued certificate by serial (`<mount>/revoke`).
    RevokeCertificate,
    Health,
}

impl Operation {
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Login => "login",
            Operation::RenewToken => "renew",
            Operation::LookupToken => "lookup",
            Operation::RevokeToken => "revoke",
            Operation::Sign => "sign",
            Operation::RevokeCertificate => "revoke_certificate",
            Operation::Health => "health",
        }
    }

    /// The verb phrase used in error messages ("failed to sign CSR").
    const fn verb(self) -> &'static str {
        match self {
            Operation::Login => "log in",
            Operation::RenewToken => "renew token",
            Operation::LookupToken => "look up token",
            Operation::RevokeToken => "revoke token",
            Operation::Sign => "sign CSR",
            Operation::RevokeCertificate => "revoke certificate",
            Operation::Health => "check health",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request never produced an HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportCause {
    /// Connection refused, unreachable, DNS failure.
    Connect,
    /// Connect or request timeout (a listener that accepts and never answers ends here).
    Timeout,
    /// We do not trust the server's certificate (unknown CA, wrong name, expired).
    TlsUntrusted,
    /// The server refused our client certificate (mTLS: certificate required, unknown CA).
    TlsClientRejected,
    /// The peer does not speak TLS (HTTPS sent to a plain listener).
    TlsProtocol,
    /// Connection reset or closed, an empty reply, bytes that are not HTTP, a truncated body.
    Broken,
}

impl TransportCause {
    pub(crate) const fn describe(self) -> &'static str {
        match self {
            TransportCause::Connect => "could not connect",
            TransportCause::Timeout => "timed out",
            TransportCause::TlsUntrusted => "server certificate not trusted",
            TransportCause::TlsClientRejected => "server rejected the client certificate",
            TransportCause::TlsProtocol => "server does not speak TLS on this address",
            TransportCause::Broken => "connection broken",
        }
    }
}

/// A request that produced no HTTP answer, to Vault or to AWS STS: where it went, why (see
/// [`TransportCause`]) and the HTTP client's error.
#[derive(Debug, thiserror::Error)]
#[error("{} ({url})", cause.describe())]
pub struct Unanswered {
    pub url: String,
    pub cause: TransportCause,
    #[source]
    pub source: reqwest::Error,
}

impl Unanswered {
    pub(crate) fn new(url: &str, source: reqwest::Error) -> Self {
        Unanswered {
            url: url.to_owned(),
            cause: transport_cause(&source),
            source,
        }
    }
}

/// What went wrong, with the context a person needs to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    #[error(transparent)]
    Transport(Unanswered),
    #[error("{}", status_message(*status, errors, body.as_ref(), location.as_deref()))]
    Status {
        status: u16,
        /// Vault's `errors` array, each trimmed of the "1 error occurred" wrapping and redacted
        /// (see [`crate::redact`]).
        errors: Vec<String>,
        /// A body that was not Vault JSON (a proxy's HTML page, plain text): a redacted excerpt,
        /// or only its size for answers that can carry a token.
        body: Option<BodyExcerpt>,
        retry_after: Option<Duration>,
        /// `Location` of a redirect (a standby pointing at a leader that may be dead), redacted.
        location: Option<String>,
    },
    /// `reason` never holds body content unredacted (built by [`crate::redact`]).
    #[error("unexpected answer (HTTP {status}): {reason}")]
    Decode { status: u16, reason: String },
    /// A request path from configuration (sign path, auth mount) that could leave `/v1/` or
    /// the configured server; refused before any request is built.
    #[error("invalid request path {path:?}: {problem}")]
    Path { path: String, problem: PathError },
    #[error("credential unavailable: {0}")]
    Credential(CredentialError),
    /// A login that failed moments ago while this request waited for it: the same verdict,
    /// without sending the same doomed login again (one per waiting request otherwise).
    #[error("{message} (login failed moments ago)")]
    Repeated {
        class: FailureClass,
        status: Option<u16>,
        message: String,
    },
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// AWS auth: the STS call that turns a web identity into credentials failed.
    #[error("AWS STS: {0}")]
    Sts(StsFailure),
}

/// Why `sts:AssumeRoleWithWebIdentity` (AWS auth with a web identity) produced no credentials.
/// No variant holds the token or the credentials.
#[derive(Debug, thiserror::Error)]
pub enum StsFailure {
    #[error(transparent)]
    Transport(Unanswered),
    /// STS answered with an error: `code` and `message` from its XML, redacted.
    #[error("HTTP {status}{}{}", code.as_deref().map(|c| format!(": {c}")).unwrap_or_default(), message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        status: u16,
        code: Option<String>,
        message: Option<String>,
    },
    #[error("unexpected answer (HTTP {status}): {reason}")]
    Decode { status: u16, reason: String },
}

/// STS error codes that are a passing condition of AWS, not a verdict on the identity.
const STS_TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "IDPCommunicationError",
    "ServiceUnavailable",
    "InternalFailure",
];

/// The class of an STS failure (see [`VaultError::class`]): unreachable, throttled or failing
/// STS is transient; a refused identity (AccessDenied, InvalidIdentityToken, ExpiredToken,
/// a role it may not assume) is a rejected login, retried on the slow schedule like Vault's.
fn classify_sts(failure: &StsFailure) -> FailureClass {
    match failure {
        StsFailure::Transport(unanswered) => classify_transport(unanswered.cause),
        StsFailure::Status { status, code, .. } => {
            let transient_code = code.as_deref().is_some_and(|c| STS_TRANSIENT_CODES.contains(&c));
            if transient_code || *status >= 500 || matches!(*status, 408 | 429) {
                FailureClass::Transient
            } else {
                FailureClass::Rejected
            }
        }
        StsFailure::Decode { .. } => FailureClass::Transient,
    }
}

fn classify_transport(cause: TransportCause) -> FailureClass {
    match cause {
        TransportCause::TlsUntrusted | TransportCause::TlsClientRejected | TransportCause::TlsProtocol => {
            FailureClass::Rejected
        }
        TransportCause::Connect | TransportCause::Timeout | TransportCause::Broken => FailureClass::Transient,
    }
}

fn status_message(
    status: u16,
    errors: &[String],
    body: Option<&BodyExcerpt>,
    location: Option<&str>,
) -> String {
    let mut msg = format!("HTTP {status}");
    if !errors.is_empty() {
        msg.push_str(": ");
        msg.push_str(&errors.join("; "));
    } else if let Some(body) = body {
        msg.push_str(": ");
        msg.push_str(&body.to_string());
    }
    if let Some(location) = location {
        msg.push_str(" (redirect to ");
        msg.push_str(location);
        msg.push(')');
    }
    msg
}

/// A failed Vault call.
#[derive(Debug)]
pub struct VaultError {
    pub operation: Operation,
    pub kind: ErrorKind,
    /// The request was made with a token obtained by a login during this same call: a 403 here
    /// is not explained by a stale cached token.
    pub fresh_token: bool,
}

impl VaultError {
    pub(crate) fn new(operation: Operation, kind: ErrorKind) -> Self {
        VaultError {
            operation,
            kind,
            fresh_token: false,
        }
    }

    pub(crate) fn config(operation: Operation, msg: impl Into<String>) -> Self {
        VaultError::new(operation, ErrorKind::Config(msg.into()))
    }

    pub(crate) fn path(operation: Operation, path: &str, problem: PathError) -> Self {
        VaultError::new(
            operation,
            ErrorKind::Path {
                path: path.to_owned(),
                problem,
            },
        )
    }

    /// The failure's class. This is the only function that interprets statuses and messages.
    pub fn class(&self) -> FailureClass {
        match &self.kind {
            ErrorKind::Transport(unanswered) => classify_transport(unanswered.cause),
            ErrorKind::Status { status, errors, .. } => classify_status(*status, errors),
            // A 2xx we cannot read is a proxy or a truncated body, not Vault's verdict.
            ErrorKind::Decode { .. } => FailureClass::Transient,
            ErrorKind::Credential(e) => e.class(),
            ErrorKind::Config(_) | ErrorKind::Path { .. } => FailureClass::Invalid,
            ErrorKind::Repeated { class, .. } => *class,
            ErrorKind::Sts(failure) => classify_sts(failure),
        }
    }

    /// Whether this failure is a verdict about the issuer as a whole (every certificate of the
    /// issuer would get the same answer now) or about this one request. This is the only function
    /// that decides it; rows below are those of the OPENBAO.md catalog.
    ///
    /// | failure | catalog rows | scope |
    /// |---|---|---|
    /// | no HTTP answer (any cause) | server down, hang, HTTPS to a plain listener, mTLS required / untrusted | issuer |
    /// | answer that cannot be decoded | proxy pages, truncated bodies | issuer |
    /// | credential, configuration, request path (class `invalid`) | (ours: the issuer's config) | issuer |
    /// | a login that failed while this request waited (`Repeated`) | as the login | issuer |
    /// | any failure of login, renew, lookup or revoke | AppRole "invalid role or secret ID", JWT "error validating token", JWT role "could not be found", cert auth 400s, login to a missing auth mount 403 | issuer |
    /// | 3xx | standby whose leader is dead (307) | issuer |
    /// | 401, 403 | bad/expired/revoked token, token without the policy, missing role or mount behind ACL, TokenReview says no or is unreachable (after one fresh login) | issuer |
    /// | 404 | missing mount "no handler for route", missing namespace | issuer |
    /// | 408, 412, 429 | rate-limit quota, standby behind X-Vault-Index | issuer |
    /// | 400 naming a missing role | "unknown role: NAME", role "x" could not be found | issuer |
    /// | 400 without Vault `errors` | plain HTTP to a TLS listener (not Vault's verdict on the request) | issuer |
    /// | other 4xx on sign | CN / SAN not allowed by role, key type not allowed, CSR unparsable / empty, ttl unparsable, ttl beyond the CA's notAfter | request |
    /// | 5xx | sealed, uninitialized, proxies' 502/504, no issuer / bad issuer_ref (PERMANENT_500) | issuer |
    /// | AWS STS failure (web identity exchange before an AWS login) | (not Vault's) | issuer |
    ///
    /// Only the sign path carries anything request-specific, so every other operation is about
    /// the issuer whatever it answered.
    pub fn scope(&self) -> FailureScope {
        match &self.kind {
            ErrorKind::Status { status, errors, .. } if self.operation == Operation::Sign => {
                sign_status_scope(*status, errors)
            }
            ErrorKind::Status { .. }
            | ErrorKind::Transport(_)
            | ErrorKind::Decode { .. }
            | ErrorKind::Credential(_)
            | ErrorKind::Config(_)
            | ErrorKind::Path { .. }
            | ErrorKind::Repeated { .. }
            | ErrorKind::Sts(_) => FailureScope::Issuer,
        }
    }

    /// The HTTP status, when Vault (or something in front of it) answered.
    pub fn status(&self) -> Option<u16> {
        match &self.kind {
            ErrorKind::Status { status, .. } | ErrorKind::Decode { status, .. } => Some(*status),
            ErrorKind::Repeated { status, .. } => *status,
            _ => None,
        }
    }

    /// How long the server asked us to wait (429 with Retry-After).
    pub fn retry_after(&self) -> Option<Duration> {
        match &self.kind {
            ErrorKind::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Vault's error strings, if it sent any.
    pub fn vault_errors(&self) -> &[String] {
        match &self.kind {
            ErrorKind::Status { errors, .. } => errors,
            _ => &[],
        }
    }

    pub(crate) fn is_forbidden(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Status {
                status: 401 | 403,
                ..
            }
        )
    }

    /// 400 "lease is not renewable" and friends: renewal cannot work, log in instead.
    /// Whether this failure is about the node that was asked rather than about the request, so
    /// another address of the same Vault may well answer: no HTTP answer at all, a redirect (a
    /// standby whose leader is gone), sealed or uninitialised (503, 501), a proxy's 502 or 504.
    /// The one place that decides when a client with several addresses moves on at once.
    pub fn is_node_failure(&self) -> bool {
        match &self.kind {
            ErrorKind::Transport(_) => true,
            // A standby that is unsealed but has not found the active node yet (after an
            // election, or when it rejoins) answers what it would forward with this 500.
            ErrorKind::Status {
                status: 500, errors, ..
            } => errors.iter().any(|e| e.contains("active cluster node not found")),
            ErrorKind::Status { status, .. } => {
                matches!(*status, 300..=399 | 501 | 502 | 503 | 504)
            }
            _ => false,
        }
    }

    pub(crate) fn is_not_renewable(&self) -> bool {
        self.vault_errors().iter().any(|e| e.contains("not renewable"))
    }
}

impl fmt::Display for VaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed to {}: {}", self.operation.verb(), self.kind)?;
        if self.fresh_token && self.is_forbidden() {
            f.write_str(" (with a freshly obtained token)")?;
        }
        Ok(())
    }
}

impl StdError for VaultError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.kind.source()
    }
}

/// Messages of HTTP 500 answers that are configuration, not a passing fault: the PKI mount has
/// no issuer, or `issuer_ref` names one that does not exist. Retrying fast cannot fix them.
const PERMANENT_500: &[&str] = &[
    "could not fetch the CA certificate",
    "unable to find PKI issuer",
    "no default issuer",
];

/// 400 messages on the sign path that name the role itself, not the request: the same for every
/// certificate of the issuer ("unknown role: NAME"; "role \"x\" could not be found").
const ISSUER_400: &[&str] = &["unknown role", "could not be found"];

/// The scope of an HTTP status answered to a sign request (see [`VaultError::scope`]).
fn sign_status_scope(status: u16, errors: &[String]) -> FailureScope {
    match status {
        // Auth, missing mount or namespace, rate limits and index lag: the path, not the CSR.
        401 | 403 | 404 | 408 | 412 | 429 => FailureScope::Issuer,
        400 if errors.is_empty() => FailureScope::Issuer,
        400 if errors.iter().any(|e| ISSUER_400.iter().any(|p| e.contains(p))) => FailureScope::Issuer,
        400..=499 => FailureScope::Request,
        // 3xx, 5xx (transient or PERMANENT_500) and anything else: the server or its CA.
        _ => FailureScope::Issuer,
    }
}

fn classify_status(status: u16, errors: &[String]) -> FailureClass {
    match status {
        // 307 from a standby whose leader is dead or unknown: the cluster is electing.
        300..=399 => FailureClass::Transient,
        // 403 covers a bad or expired token, a missing policy, and a TokenReview outage alike:
        // the caller has already retried with a fresh token before this is judged.
        401 | 403 => FailureClass::AuthRejected,
        // 412: X-Vault-Index not reached yet; 429: rate-limit quota or a lagging standby.
        408 | 412 | 429 => FailureClass::Transient,
        400..=499 => FailureClass::Rejected,
        500 if errors.iter().any(|e| PERMANENT_500.iter().any(|p| e.contains(p))) => FailureClass::Rejected,
        // 503 sealed / uninitialized, 502/504 from a proxy, other 500s.
        _ => FailureClass::Transient,
    }
}

/// Strip Vault's multierror wrapping ("1 error occurred:\n\t* msg\n\n") down to the messages,
/// and redact them: they are quoted in errors like a body is.
pub(crate) fn clean_vault_errors(errors: Vec<String>) -> Vec<String> {
    unwrap_vault_errors(errors).iter().map(|e| redact(e)).collect()
}

fn unwrap_vault_errors(errors: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(errors.len());
    for e in errors {
        if e.contains("error occurred:") || e.contains("errors occurred:") {
            out.extend(
                e.lines()
                    .filter_map(|l| l.trim().strip_prefix("* "))
                    .map(|l| l.trim().to_owned())
                    .filter(|l| !l.is_empty()),
            );
        } else {
            let e = e.trim();
            if !e.is_empty() {
                out.push(e.to_owned());
            }
        }
    }
    out
}

/// Decide why a request produced no HTTP answer, by walking the error chain down to rustls or
/// the I/O error. `io::Error::source` skips the wrapped error, so `get_ref` is followed too.
pub(crate) fn transport_cause(err: &reqwest::Error) -> TransportCause {
    if err.is_timeout() {
        return TransportCause::Timeout;
    }
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return tls_cause(tls);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return TransportCause::Timeout;
            }
            if let Some(inner) = io.get_ref() {
                if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                    return tls_cause(tls);
                }
                // tokio-rustls reports alerts that arrive after the handshake (TLS 1.3 client
                // certificate checks) as an I/O error carrying only rustls' message.
                if let Some(cause) = tls_cause_from_message(&inner.to_string()) {
                    return cause;
                }
                cur = Some(inner);
                continue;
            }
        }
        cur = e.source();
    }
    if err.is_connect() {
        TransportCause::Connect
    } else {
        TransportCause::Broken
    }
}

/// Alerts by which a server refuses our client certificate, as rustls names them.
const CLIENT_REJECTED_ALERTS: &[&str] = &[
    "CertificateRequired",
    "UnknownCA",
    "BadCertificate",
    "UnsupportedCertificate",
    "CertificateRevoked",
    "CertificateExpired",
    "CertificateUnknown",
    "AccessDenied",
];

fn tls_cause_from_message(msg: &str) -> Option<TransportCause> {
    let alert = msg.strip_prefix("received fatal alert: ")?;
    CLIENT_REJECTED_ALERTS
        .contains(&alert.trim())
        .then_some(TransportCause::TlsClientRejected)
}

fn tls_cause(err: &rustls::Error) -> TransportCause {
    use rustls::AlertDescription as A;
    match err {
        rustls::Error::InvalidCertificate(_) | rustls::Error::UnsupportedNameType => {
            TransportCause::TlsUntrusted
        }
        rustls::Error::AlertReceived(
            A::CertificateRequired
            | A::UnknownCA
            | A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::AccessDenied,
        ) => TransportCause::TlsClientRejected,
        rustls::Error::InvalidMessage(_)
        | rustls::Error::InappropriateMessage { .. }
        | rustls::Error::InappropriateHandshakeMessage { .. } => TransportCause::TlsProtocol,
        // Handshake EOFs, resets mid-handshake and other alerts are not a verdict on trust.
        _ => TransportCause::Broken,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, errors: &[&str]) -> VaultError {
        answered(Operation::Sign, status, errors)
    }

    fn answered(operation: Operation, status: u16, errors: &[&str]) -> VaultError {
        VaultError::new(
            operation,
            ErrorKind::Status {
                status,
                errors: errors.iter().map(|s| s.to_string()).collect(),
                body: None,
                retry_after: None,
                location: None,
            },
        )
    }

    /// Another node may answer these: a standby whose leader is gone, sealed, uninitialised, a
    /// proxy in front of a node that is down. Vault's verdicts on the request are not.
    #[test]
    fn node_failures_are_the_answers_another_address_may_not_give() {
        for code in [307, 308, 501, 502, 503, 504] {
            assert!(status(code, &[]).is_node_failure(), "{code}");
        }
        for code in [200, 400, 403, 404, 412, 429, 500] {
            assert!(!status(code, &["x"]).is_node_failure(), "{code}");
        }
        assert!(!VaultError::config(Operation::Sign, "x").is_node_failure());
        assert!(status(500, &["local node not active but active cluster node not found"]).is_node_failure());
        assert!(!status(500, &["could not fetch the CA certificate"]).is_node_failure());
    }

    /// The catalog of OPENBAO.md, row by row (operation, status and body as OpenBao 2.7.2
    /// sends them), with the class and the scope each must get.
    #[test]
    fn catalog_rows_have_their_class_and_scope() {
        use FailureClass::*;
        use FailureScope::{Issuer, Request};
        use Operation::{Login, Sign};
        let rows: &[(Operation, u16, &str, FailureClass, FailureScope)] = &[
            (Sign, 403, "permission denied", AuthRejected, Issuer),
            (Login, 403, "permission denied", AuthRejected, Issuer),
            (Sign, 400, "unknown role: nope", Rejected, Issuer),
            (
                Sign,
                404,
                "no handler for route \"pki_x/sign/r\". route entry not found.",
                Rejected,
                Issuer,
            ),
            (Sign, 404, "namespace not found", Rejected, Issuer),
            (
                Sign,
                400,
                "common name x.other.org not allowed by this role",
                Rejected,
                Request,
            ),
            (
                Sign,
                400,
                "subject alternate name x not allowed by this role",
                Rejected,
                Request,
            ),
            (Sign, 400, "role requires keys of type rsa", Rejected, Request),
            (
                Sign,
                400,
                "certificate request could not be parsed",
                Rejected,
                Request,
            ),
            (Sign, 400, "csr contains no data", Rejected, Request),
            (Sign, 400, "\"csr\" is empty", Rejected, Request),
            (
                Sign,
                400,
                "Field validation failed: error converting input 1x for field \"ttl\"",
                Rejected,
                Request,
            ),
            (
                Sign,
                400,
                "cannot satisfy request, as TTL would result in notAfter 2040 that is beyond",
                Rejected,
                Request,
            ),
            (
                Sign,
                500,
                "could not fetch the CA certificate (was one set?): no default issuer currently configured",
                Rejected,
                Issuer,
            ),
            (
                Sign,
                500,
                "could not fetch the CA certificate (was one set?): unable to find PKI issuer for reference: x",
                Rejected,
                Issuer,
            ),
            (Sign, 500, "internal error", Transient, Issuer),
            (Sign, 503, "Vault is sealed", Transient, Issuer),
            (Login, 503, "Vault is sealed", Transient, Issuer),
            (Sign, 429, "rate limit quota exceeded", Transient, Issuer),
            (Sign, 429, "", Transient, Issuer),
            (Sign, 307, "", Transient, Issuer),
            // Plain HTTP to a TLS listener: a 400 without Vault's errors array.
            (Sign, 400, "", Rejected, Issuer),
            (Login, 400, "invalid role or secret ID", Rejected, Issuer),
            (
                Login,
                400,
                "error validating token: token is expired",
                Rejected,
                Issuer,
            ),
            (Login, 400, "role \"x\" could not be found", Rejected, Issuer),
            (Login, 400, "no client certificate found", Rejected, Issuer),
            (
                Login,
                400,
                "invalid certificate or no client certificate supplied",
                Rejected,
                Issuer,
            ),
            (
                Operation::RenewToken,
                400,
                "lease is not renewable",
                Rejected,
                Issuer,
            ),
            (Sign, 502, "", Transient, Issuer),
            (Sign, 504, "", Transient, Issuer),
            (Sign, 412, "", Transient, Issuer),
        ];
        for (op, code, msg, class, scope) in rows {
            let errors: Vec<&str> = if msg.is_empty() { vec![] } else { vec![msg] };
            let e = answered(*op, *code, &errors);
            assert_eq!(e.class(), *class, "{op} {code} {msg}");
            assert_eq!(e.scope(), *scope, "{op} {code} {msg}");
        }
    }

    #[test]
    fn local_and_repeated_failures_are_about_the_issuer() {
        let repeated = VaultError::new(
            Operation::Login,
            ErrorKind::Repeated {
                class: FailureClass::AuthRejected,
                status: Some(403),
                message: "HTTP 403: permission denied".into(),
            },
        );
        let path = VaultError::path(Operation::Sign, "pki/../x", PathError::DotSegment("..".into()));
        for e in [
            repeated,
            path,
            VaultError::config(Operation::Sign, "bad CA"),
            VaultError::new(
                Operation::Login,
                ErrorKind::Credential(CredentialError::EnvNotSet { name: "TOKEN".into() }),
            ),
            VaultError::new(
                Operation::Sign,
                ErrorKind::Decode {
                    status: 200,
                    reason: "html".into(),
                },
            ),
        ] {
            assert_eq!(e.scope(), FailureScope::Issuer, "{e}");
        }
    }

    /// The web-identity exchange of AWS auth: a refused identity waits on the slow schedule, an
    /// STS that is down, throttled or failing on its side is transient; all about the issuer.
    #[test]
    fn sts_failures_have_their_class_and_scope() {
        let sts = |status: u16, code: &str| {
            VaultError::new(
                Operation::Login,
                ErrorKind::Sts(StsFailure::Status {
                    status,
                    code: Some(code.to_owned()),
                    message: Some("m".into()),
                }),
            )
        };
        for (status, code, class) in [
            (403, "AccessDenied", FailureClass::Rejected),
            (400, "InvalidIdentityToken", FailureClass::Rejected),
            (400, "ExpiredTokenException", FailureClass::Rejected),
            (400, "Throttling", FailureClass::Transient),
            (400, "IDPCommunicationError", FailureClass::Transient),
            (503, "ServiceUnavailable", FailureClass::Transient),
            (500, "InternalFailure", FailureClass::Transient),
        ] {
            let e = sts(status, code);
            assert_eq!(e.class(), class, "{e}");
            assert_eq!(e.scope(), FailureScope::Issuer, "{e}");
            assert_eq!(e.status(), None, "an STS status is not Vault's");
        }
        assert_eq!(
            sts(403, "AccessDenied").to_string(),
            "failed to log in: AWS STS: HTTP 403: AccessDenied: m"
        );
        let decode = VaultError::new(
            Operation::Login,
            ErrorKind::Sts(StsFailure::Decode {
                status: 200,
                reason: "no Credentials in the answer".into(),
            }),
        );
        assert_eq!(decode.class(), FailureClass::Transient);
    }

    #[test]
    fn multierror_wrapping_is_removed() {
        let cleaned = clean_vault_errors(vec![
            "1 error occurred:\n\t* could not fetch the CA certificate (was one set?): x\n\n".into(),
            "permission denied".into(),
        ]);
        assert_eq!(
            cleaned,
            vec![
                "could not fetch the CA certificate (was one set?): x",
                "permission denied"
            ]
        );
    }

    #[test]
    fn local_problems_wait_for_a_change() {
        assert_eq!(
            VaultError::config(Operation::Login, "bad CA").class(),
            FailureClass::Invalid
        );
        let e = VaultError::new(
            Operation::Login,
            ErrorKind::Credential(CredentialError::EnvNotSet { name: "TOKEN".into() }),
        );
        assert_eq!(e.class(), FailureClass::Invalid);
        let d = VaultError::new(
            Operation::Sign,
            ErrorKind::Decode {
                status: 200,
                reason: "html".into(),
            },
        );
        assert_eq!(d.class(), FailureClass::Transient);
    }

    #[test]
    fn messages_name_the_operation_and_vault_errors() {
        let mut e = status(403, &["permission denied"]);
        e.fresh_token = true;
        assert_eq!(
            e.to_string(),
            "failed to sign CSR: HTTP 403: permission denied (with a freshly obtained token)"
        );
        let r = VaultError::new(
            Operation::Sign,
            ErrorKind::Status {
                status: 307,
                errors: vec![],
                body: None,
                retry_after: None,
                location: Some("http://127.0.0.1:8431/v1/x".into()),
            },
        );
        assert_eq!(
            r.to_string(),
            "failed to sign CSR: HTTP 307 (redirect to http://127.0.0.1:8431/v1/x)"
        );
    }

    #[test]
    fn tls_trust_failures_are_rejections_and_eofs_are_transient() {
        use rustls::CertificateError;
        assert_eq!(
            tls_cause(&rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            )),
            TransportCause::TlsUntrusted
        );
        assert_eq!(
            tls_cause(&rustls::Error::AlertReceived(
                rustls::AlertDescription::CertificateRequired
            )),
            TransportCause::TlsClientRejected
        );
        assert_eq!(
            tls_cause(&rustls::Error::AlertReceived(
                rustls::AlertDescription::InternalError
            )),
            TransportCause::Broken
        );
    }
}
