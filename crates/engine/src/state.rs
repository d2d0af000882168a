//! What the engine remembers about each certificate, and the pure decision of what to do next.
//!
//! The runtime persists [`CertState`] (the embedded database standalone, the Certificate's status
//! in Kubernetes), so a restart neither forgets a backoff nor re-issues a certificate that is
//! still good. [`decide`] is a function of (state, spec fingerprint, now): nothing else.

use std::time::SystemTime;

use certkeeper_core::FailureClass;
use certkeeper_core::schedule::Renewal;
use serde::{Deserialize, Serialize};

/// Unix seconds and their conversions live in [`certkeeper_core::time`]; re-exported here for the
/// controller's modules that still import them from the engine.
use certkeeper_core::time::{UnixSeconds, from_unix, to_unix};

/// The certificate currently served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedInfo {
    pub serial: String,
    pub not_before: UnixSeconds,
    pub not_after: UnixSeconds,
    /// When automatic renewal starts ([`certkeeper_core::schedule::plan_renewal`]: the renewal
    /// point with its spread, moved into a renewal window), computed when it was issued; `None`
    /// when automatic renewal is disabled (`spec.renewal.policy: Disabled`).
    #[serde(default)]
    pub renewal_time: Option<UnixSeconds>,
    /// What status says about the renewal time, when it needs saying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_note: Option<RenewalNote>,
    /// Fingerprint of the certificate spec and issuer it was issued for.
    pub spec_fingerprint: u64,
    pub issued_at: UnixSeconds,
    /// Vault shortened the lifetime we asked for (capped TTL), or the issuing CA expires before
    /// the next renewal could be issued in full: the warning shown in status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// When the issuing CA expires (Unix seconds), when Vault's answer carried it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_not_after: Option<UnixSeconds>,
}

/// Why a renewal time is not simply the renewal point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RenewalNote {
    /// No renewal window opens before the latest safe point: renewal starts there anyway.
    OutsideWindows { message: String },
    /// `spec.renewal.policy: Disabled`: no automatic renewal.
    Disabled,
}

impl RenewalNote {
    pub fn message(&self) -> &str {
        match self {
            RenewalNote::OutsideWindows { message } => message,
            RenewalNote::Disabled => certkeeper_core::schedule::DISABLED_NOTE,
        }
    }
}

/// The persisted renewal fields of [`IssuedInfo`] from the schedule's plan.
pub fn renewal_fields(plan: Renewal) -> (Option<UnixSeconds>, Option<RenewalNote>) {
    let note = match plan {
        Renewal::At(_) => None,
        Renewal::Forced { .. } => plan.note().map(|message| RenewalNote::OutsideWindows { message }),
        Renewal::Disabled => Some(RenewalNote::Disabled),
    };
    (plan.time().map(to_unix), note)
}

/// The failure streak since the last success, as shown in status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    pub class: FailureClass,
    pub message: String,
    /// Consecutive failed attempts.
    pub attempts: u32,
    pub first_failure: UnixSeconds,
    pub last_failure: UnixSeconds,
    /// `None`: waiting for a change of the spec, the issuer or a referenced file.
    pub next_attempt: Option<UnixSeconds>,
    /// The spec fingerprint the failure was for: a changed spec is tried at once.
    pub spec_fingerprint: u64,
}

/// Everything persisted for one certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertState {
    /// Increments with every issued certificate (cert-manager's status.revision).
    pub revision: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued: Option<IssuedInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureRecord>,
    /// A re-issue held by the issuance budget ([`crate::budget`]), while it is (boxed: rarely
    /// there, and every status intent holds a state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferred: Option<Box<BudgetDeferral>>,
}

/// A re-issue the issuance budget holds ([`crate::budget::IssuanceBudget`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetDeferral {
    /// When it may go (Unix seconds).
    pub until: UnixSeconds,
    /// Why it was wanted ([`IssueReason::as_str`]).
    pub reason: String,
    /// The budget spent, as configured (`6/1h0m0s`).
    pub budget: String,
}

impl BudgetDeferral {
    /// What status shows.
    pub fn message(&self) -> String {
        format!(
            "re-issue ({}) held: the issuance budget ({}) is spent; next at {}; renewals still go at their time",
            self.reason,
            self.budget,
            certkeeper_core::time::rfc3339_unix(self.until)
        )
    }
}

/// Why a certificate is being issued (cert-manager's Issuing condition reasons where they exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueReason {
    DoesNotExist,
    /// The served certificate was issued for another spec (cert-manager's reason).
    RequestChanged,
    Expired,
    Renewing,
    ManuallyTriggered,
    /// A retry after a failure whose backoff has elapsed.
    Retry,
    /// Renewing at the latest safe point because no renewal window opens before it.
    RenewingOutsideWindows,
    /// The certificate stored is no longer where it is served (its Secret deleted, or edited to
    /// hold another certificate): issued again.
    Repair,
}

impl IssueReason {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueReason::DoesNotExist => "DoesNotExist",
            IssueReason::RequestChanged => "RequestChanged",
            IssueReason::Expired => "Expired",
            IssueReason::Renewing => "Renewing",
            IssueReason::ManuallyTriggered => "ManuallyTriggered",
            IssueReason::Retry => "Retry",
            // cert-manager's trigger uses its reason Renewing for a renewal outside the windows.
            IssueReason::RenewingOutsideWindows => "Renewing",
            IssueReason::Repair => "SecretMismatch",
        }
    }

    /// What the `Issuing` condition and the Event say (cert-manager's wording where it has one).
    pub fn message(self) -> &'static str {
        match self {
            IssueReason::DoesNotExist => "Issuing certificate as Secret does not exist",
            IssueReason::RequestChanged => "Issuing certificate as the spec changed",
            IssueReason::Expired => "Issuing certificate as the certificate has expired",
            IssueReason::Renewing => "Renewing certificate as renewal was scheduled",
            IssueReason::ManuallyTriggered => "Issuing certificate as a renewal was requested",
            IssueReason::Retry => "Issuing certificate again after a failed attempt",
            IssueReason::RenewingOutsideWindows => {
                "Renewing certificate without satisfying renewal windows: none opens before the latest safe renewal point"
            }
            IssueReason::Repair => "Issuing certificate as its Secret was deleted or no longer holds it",
        }
    }
}

/// Whether a certificate is ready, and if not why (cert-manager's `Ready` reasons): the one
/// rule for the engine, the status rows of both runtimes and the controller's `Ready` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Issued, unexpired, and issued for the current spec.
    Ready,
    Expired,
    /// The served certificate was issued for another spec.
    RequestChanged,
    /// Nothing issued yet.
    DoesNotExist,
}

impl Readiness {
    /// The readiness of what `issued` describes for the spec with `fingerprint`, at `now`
    /// (Unix seconds).
    pub fn of(issued: Option<&IssuedInfo>, fingerprint: u64, now: i64) -> Self {
        match issued {
            None => Readiness::DoesNotExist,
            Some(i) if i.not_after <= now => Readiness::Expired,
            Some(i) if i.spec_fingerprint != fingerprint => Readiness::RequestChanged,
            Some(_) => Readiness::Ready,
        }
    }

    pub fn is_ready(self) -> bool {
        self == Readiness::Ready
    }

    /// cert-manager's reason of its `Ready` condition.
    pub fn reason(self) -> &'static str {
        match self {
            Readiness::Ready => "Ready",
            Readiness::Expired => "Expired",
            Readiness::RequestChanged => "RequestChanged",
            Readiness::DoesNotExist => "DoesNotExist",
        }
    }
}

/// What to do with a certificate now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Issue(IssueReason),
    /// The certificate stored is current, but putting it into use failed
    /// ([`FailureClass::Apply`]) and the retry is due: run the runtime's `apply` again (the
    /// hooks, the `verify` check), without issuing.
    Apply,
    WaitUntil(SystemTime),
    /// Nothing on a timer: the last failure needs a change of input.
    WaitForChange,
    /// Nothing to do at all: automatic renewal is disabled and the certificate served is for
    /// the current spec (even once it has expired, as cert-manager does).
    Idle,
}

/// Decide, from what is persisted, whether a certificate needs issuing now.
pub fn decide(state: &CertState, spec_fingerprint: u64, now: SystemTime, renew_now: bool) -> Decision {
    if renew_now {
        return Decision::Issue(IssueReason::ManuallyTriggered);
    }
    if let Some(f) = &state.failure
        && f.spec_fingerprint == spec_fingerprint
    {
        // A failed apply of the certificate stored for this spec: its hooks are retried on
        // their schedule, and the certificate's own lifecycle (renewal, expiry) goes on.
        if let (true, Some(issued)) = (f.class.is_apply(), &state.issued) {
            // The certificate whose apply failed was issued for another spec (the spec changed
            // while its hooks ran): this spec's certificate is issued, not the hooks re-run.
            if issued.spec_fingerprint != spec_fingerprint {
                return Decision::Issue(IssueReason::RequestChanged);
            }
            let retry = f.next_attempt.map(from_unix);
            return match (retry, decide_served(issued, now)) {
                (_, Decision::Issue(reason)) => Decision::Issue(reason),
                (Some(at), _) if at <= now => Decision::Apply,
                (Some(at), Decision::WaitUntil(renew)) => Decision::WaitUntil(at.min(renew)),
                (Some(at), _) => Decision::WaitUntil(at),
                (None, served) => served,
            };
        }
        return match f.next_attempt.map(from_unix) {
            None => Decision::WaitForChange,
            Some(at) if at > now => Decision::WaitUntil(at),
            Some(_) => Decision::Issue(IssueReason::Retry),
        };
    }
    let Some(issued) = &state.issued else {
        return Decision::Issue(IssueReason::DoesNotExist);
    };
    if issued.spec_fingerprint != spec_fingerprint {
        return Decision::Issue(IssueReason::RequestChanged);
    }
    decide_served(issued, now)
}

/// The lifecycle of a certificate stored for the current spec: when it renews.
fn decide_served(issued: &IssuedInfo, now: SystemTime) -> Decision {
    let Some(renewal_time) = issued.renewal_time else {
        return Decision::Idle;
    };
    if from_unix(issued.not_after) <= now {
        return Decision::Issue(IssueReason::Expired);
    }
    let renew_at = from_unix(renewal_time);
    if renew_at > now {
        return Decision::WaitUntil(renew_at);
    }
    match issued.renewal_note {
        Some(RenewalNote::OutsideWindows { .. }) => Decision::Issue(IssueReason::RenewingOutsideWindows),
        _ => Decision::Issue(IssueReason::Renewing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000;

    fn issued(fp: u64) -> IssuedInfo {
        IssuedInfo {
            serial: "aa".into(),
            not_before: T0,
            not_after: T0 + 3000,
            renewal_time: Some(T0 + 2000),
            renewal_note: None,
            spec_fingerprint: fp,
            issued_at: T0,
            warning: None,
            ca_not_after: None,
        }
    }

    #[test]
    fn readiness_is_issued_unexpired_and_for_the_current_spec() {
        let i = issued(7);
        assert_eq!(Readiness::of(None, 7, T0), Readiness::DoesNotExist);
        assert_eq!(Readiness::of(Some(&i), 7, T0 + 2999), Readiness::Ready);
        assert_eq!(Readiness::of(Some(&i), 7, T0 + 3000), Readiness::Expired);
        // Expired wins over a changed spec, as cert-manager reports it.
        assert_eq!(Readiness::of(Some(&i), 8, T0 + 3000), Readiness::Expired);
        assert_eq!(Readiness::of(Some(&i), 8, T0), Readiness::RequestChanged);
        assert!(Readiness::Ready.is_ready() && !Readiness::Expired.is_ready());
        assert_eq!(Readiness::RequestChanged.reason(), "RequestChanged");
    }

    fn failure(fp: u64, next: Option<i64>) -> FailureRecord {
        FailureRecord {
            class: FailureClass::Transient,
            message: "sealed".into(),
            attempts: 2,
            first_failure: T0 + 2000,
            last_failure: T0 + 2010,
            next_attempt: next,
            spec_fingerprint: fp,
        }
    }

    #[test]
    fn lifecycle_decisions() {
        let at = |s: i64| from_unix(T0 + s);
        let empty = CertState::default();
        assert_eq!(
            decide(&empty, 1, at(0), false),
            Decision::Issue(IssueReason::DoesNotExist)
        );

        let good = CertState {
            revision: 1,
            issued: Some(issued(1)),
            failure: None,
            deferred: None,
        };
        assert_eq!(decide(&good, 1, at(10), false), Decision::WaitUntil(at(2000)));
        assert_eq!(
            decide(&good, 1, at(2000), false),
            Decision::Issue(IssueReason::Renewing)
        );
        assert_eq!(
            decide(&good, 1, at(3000), false),
            Decision::Issue(IssueReason::Expired)
        );
        assert_eq!(
            decide(&good, 2, at(10), false),
            Decision::Issue(IssueReason::RequestChanged)
        );
        assert_eq!(
            decide(&good, 1, at(10), true),
            Decision::Issue(IssueReason::ManuallyTriggered)
        );
    }

    #[test]
    fn disabled_renewal_is_idle_but_issues_when_missing_changed_or_asked() {
        let at = |s: i64| from_unix(T0 + s);
        let disabled = CertState {
            revision: 1,
            issued: Some(IssuedInfo {
                renewal_time: None,
                renewal_note: Some(RenewalNote::Disabled),
                ..issued(1)
            }),
            failure: None,
            deferred: None,
        };
        assert_eq!(decide(&disabled, 1, at(10), false), Decision::Idle);
        // Not even once expired (cert-manager's trigger has no expiry check for Disabled).
        assert_eq!(decide(&disabled, 1, at(5000), false), Decision::Idle);
        assert_eq!(
            decide(&disabled, 2, at(10), false),
            Decision::Issue(IssueReason::RequestChanged)
        );
        assert_eq!(
            decide(&disabled, 1, at(10), true),
            Decision::Issue(IssueReason::ManuallyTriggered)
        );
        assert_eq!(
            decide(&CertState::default(), 1, at(10), false),
            Decision::Issue(IssueReason::DoesNotExist)
        );
    }

    #[test]
    fn a_forced_renewal_says_so() {
        let at = |s: i64| from_unix(T0 + s);
        let forced = CertState {
            revision: 1,
            issued: Some(IssuedInfo {
                renewal_note: Some(RenewalNote::OutsideWindows {
                    message: "no window".into(),
                }),
                ..issued(1)
            }),
            failure: None,
            deferred: None,
        };
        assert_eq!(decide(&forced, 1, at(1999), false), Decision::WaitUntil(at(2000)));
        assert_eq!(
            decide(&forced, 1, at(2000), false),
            Decision::Issue(IssueReason::RenewingOutsideWindows)
        );
    }

    #[test]
    fn backoff_holds_until_its_time_unless_the_spec_changes_or_renew_is_asked() {
        let at = |s: i64| from_unix(T0 + s);
        let failing = CertState {
            revision: 1,
            issued: Some(issued(1)),
            failure: Some(failure(1, Some(T0 + 2060))),
            deferred: None,
        };
        assert_eq!(
            decide(&failing, 1, at(2030), false),
            Decision::WaitUntil(at(2060))
        );
        assert_eq!(
            decide(&failing, 1, at(2060), false),
            Decision::Issue(IssueReason::Retry)
        );
        assert_eq!(
            decide(&failing, 2, at(2030), false),
            Decision::Issue(IssueReason::RequestChanged)
        );
        assert_eq!(
            decide(&failing, 1, at(2030), true),
            Decision::Issue(IssueReason::ManuallyTriggered)
        );

        let waiting = CertState {
            failure: Some(failure(1, None)),
            ..failing
        };
        assert_eq!(decide(&waiting, 1, at(2030), false), Decision::WaitForChange);
        assert_eq!(
            decide(&waiting, 3, at(2030), false),
            Decision::Issue(IssueReason::RequestChanged)
        );
    }

    #[test]
    fn a_failed_apply_reruns_the_hooks_and_never_issues_until_renewal() {
        let at = |s: i64| from_unix(T0 + s);
        let apply_failed = |next: Option<i64>| CertState {
            revision: 1,
            issued: Some(issued(1)),
            failure: Some(FailureRecord {
                class: FailureClass::Apply,
                next_attempt: next,
                ..failure(1, None)
            }),
            deferred: None,
        };
        let failing = apply_failed(Some(T0 + 100));
        assert_eq!(decide(&failing, 1, at(50), false), Decision::WaitUntil(at(100)));
        assert_eq!(decide(&failing, 1, at(100), false), Decision::Apply);
        assert_eq!(decide(&failing, 1, at(1999), false), Decision::Apply);
        // Its renewal point, expiry, a changed spec or a renew by hand still issue.
        assert_eq!(
            decide(&failing, 1, at(2000), false),
            Decision::Issue(IssueReason::Renewing)
        );
        assert_eq!(
            decide(&failing, 1, at(3000), false),
            Decision::Issue(IssueReason::Expired)
        );
        assert_eq!(
            decide(&failing, 2, at(50), false),
            Decision::Issue(IssueReason::RequestChanged)
        );
        assert_eq!(
            decide(&failing, 1, at(50), true),
            Decision::Issue(IssueReason::ManuallyTriggered)
        );
        // An apply failure recorded for this spec while the stored certificate is another
        // spec's (the spec changed while the hooks ran): issued for this spec at once.
        let mut changed_meanwhile = failing.clone();
        if let Some(f) = changed_meanwhile.failure.as_mut() {
            f.spec_fingerprint = 2;
        }
        assert_eq!(
            decide(&changed_meanwhile, 2, at(50), false),
            Decision::Issue(IssueReason::RequestChanged)
        );
        // A retry later than the renewal point waits only until the renewal.
        let late = apply_failed(Some(T0 + 2500));
        assert_eq!(decide(&late, 1, at(50), false), Decision::WaitUntil(at(2000)));
        // Nothing stored (cannot follow an apply, which comes after a write): retried as an issue.
        let nothing = CertState {
            issued: None,
            ..failing
        };
        assert_eq!(
            decide(&nothing, 1, at(100), false),
            Decision::Issue(IssueReason::Retry)
        );
    }

    #[test]
    fn state_round_trips_through_json() {
        let s = CertState {
            revision: 3,
            issued: Some(issued(7)),
            failure: Some(failure(7, None)),
            deferred: None,
        };
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"class\":\"transient\""), "{json}");
        assert_eq!(serde_json::from_str::<CertState>(&json).unwrap(), s);
    }
}
