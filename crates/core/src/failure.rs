//! The failure model shared by every layer (see DESIGN.md, "The failure model").
//!
//! Each error type in certkeeper has exactly one `class()` method that maps it to a
//! [`FailureClass`]; schedules, metrics labels and status messages are derived from the class, never
//! from the error's text. Next to it, `scope()` says who the failure is a verdict about
//! ([`FailureScope`]): the issuer as a whole, or the one request that was refused.

use std::fmt;

/// What a failure means for the next attempt.
///
/// None of the classes is terminal: a certificate that can still be renewed is always retried,
/// only the schedule differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The same request can succeed shortly: connection refused or reset, timeouts, a sealed or
    /// leaderless Vault, 429, a 5xx that is not known to be permanent, a garbled answer.
    /// Retried on the fast schedule (about 1 s doubling to a 5 min cap).
    Transient,
    /// Vault answered 403 even with a freshly obtained token. Usually a policy being edited or the
    /// Kubernetes TokenReview API being unreachable, so it stays retryable on the slow schedule.
    AuthRejected,
    /// Vault understood the request and refused it: the role does not allow the name, the mount or
    /// namespace does not exist, no issuer is configured, the CA would expire first, the server's
    /// TLS certificate is not trusted. Needs an administrator; retried on the slow schedule.
    Rejected,
    /// Our own input is invalid or incomplete: a configuration error, a referenced secret or file
    /// that does not exist. Retrying on a timer cannot help; retried when the input changes.
    Invalid,
    /// The certificate was issued and stored, but putting it into use failed: a hook exited
    /// non-zero, timed out or could not start, or the address named by `verify` still serves
    /// another certificate. Only the hooks (and the check) are retried, on their own schedule;
    /// the certificate is never issued again for it.
    Apply,
}

impl FailureClass {
    /// Every class, for exhaustive tables (metrics initialisation, tests).
    pub const ALL: [FailureClass; 5] = [
        FailureClass::Transient,
        FailureClass::AuthRejected,
        FailureClass::Rejected,
        FailureClass::Invalid,
        FailureClass::Apply,
    ];

    /// Stable lowercase label used in metrics, logs, status and Kubernetes Event reasons.
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureClass::Transient => "transient",
            FailureClass::AuthRejected => "auth_rejected",
            FailureClass::Rejected => "rejected",
            FailureClass::Invalid => "invalid",
            FailureClass::Apply => "apply",
        }
    }

    /// The class named by its label ([`FailureClass::as_str`]), as status and conditions write it.
    pub fn parse(label: &str) -> Option<FailureClass> {
        FailureClass::ALL.into_iter().find(|c| c.as_str() == label)
    }

    /// Whether a timer should drive the next attempt. `Invalid` waits for a change of input
    /// instead (the expiry-aware clamp still applies once something changes).
    pub const fn retries_on_timer(self) -> bool {
        !matches!(self, FailureClass::Invalid)
    }

    /// Whether the failure came after the certificate was stored: the next attempt re-runs the
    /// hooks (and the `verify` check) instead of issuing again.
    pub const fn is_apply(self) -> bool {
        matches!(self, FailureClass::Apply)
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a failure is a verdict about: this decides whether the issuer's other certificates should
/// keep trying on their own or wait behind one probe.
///
/// Independent of [`FailureClass`]: a sealed Vault (transient) and a deleted role (rejected) are
/// both about the issuer; a name the role does not allow (rejected) is about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureScope {
    /// Every certificate of the issuer would get the same answer now: its server, transport,
    /// credentials, auth mount, PKI mount, role or CA.
    Issuer,
    /// Only this request is refused (its names, key type, CSR, TTL); the issuer's other
    /// certificates can still succeed.
    Request,
}

impl FailureScope {
    /// Every scope, for exhaustive tables (metrics initialisation, tests).
    pub const ALL: [FailureScope; 2] = [FailureScope::Issuer, FailureScope::Request];

    /// Stable lowercase label used in metrics, logs and status.
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureScope::Issuer => "issuer",
            FailureScope::Request => "request",
        }
    }
}

impl fmt::Display for FailureScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_labels_are_distinct_and_lowercase() {
        let labels: Vec<_> = FailureScope::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(labels, ["issuer", "request"]);
        // Serialized as its label, like FailureClass.
        assert_eq!(
            serde_yaml_ng::to_string(&FailureScope::Request).unwrap().trim(),
            "request"
        );
    }

    #[test]
    fn labels_are_unique_and_lowercase() {
        let mut labels: Vec<_> = FailureClass::ALL.iter().map(|c| c.as_str()).collect();
        assert!(
            labels
                .iter()
                .all(|l| l.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), FailureClass::ALL.len());
    }

    #[test]
    fn apply_is_its_own_class_and_round_trips() {
        assert_eq!(FailureClass::parse("apply"), Some(FailureClass::Apply));
        assert!(FailureClass::Apply.is_apply() && FailureClass::Apply.retries_on_timer());
        assert!(FailureClass::ALL.iter().filter(|c| c.is_apply()).count() == 1);
        assert_eq!(
            serde_yaml_ng::to_string(&FailureClass::Apply).unwrap().trim(),
            "apply"
        );
    }

    #[test]
    fn only_invalid_waits_for_a_change() {
        for class in FailureClass::ALL {
            assert_eq!(
                class.retries_on_timer(),
                class != FailureClass::Invalid,
                "{class}"
            );
        }
    }
}
