//! The issuance budget: how many times one certificate may be re-issued in a window before
//! certkeeper stops re-issuing it for nothing scheduled. cert-manager and Vault Agent users have
//! filled Vault's storage (and etcd) with thousands of certificates from loops: a spec flapping
//! between two writers, something deleting the Secret as soon as it is written, a reload check
//! that never passes. Each of those re-issues for a reason the schedule did not plan
//! ([`IssueReason::budgeted`]: the Secret missing or no longer holding the certificate, the spec
//! changed); past the budget, such a re-issue waits until the oldest one in the window leaves it,
//! and says so (status, log/Event, metric).
//!
//! The budget never lets a certificate expire: renewals at the renewal point, an expired
//! certificate, retries of a failed attempt and a renew asked for by hand are never held by it.
//! Only re-issues that succeeded count.

use std::time::{Duration, SystemTime};

use certkeeper_core::spec::parse_go_duration;
use certkeeper_core::time::{UnixSeconds, from_unix, to_unix};

use crate::state::IssueReason;

/// At most `count` budgeted issuances of one certificate per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuanceBudget {
    pub count: u32,
    pub window: Duration,
}

impl Default for IssuanceBudget {
    /// Six per hour: a handful of spec edits or repairs in an hour goes through at once; a loop
    /// is stopped after six certificates instead of thousands.
    fn default() -> Self {
        IssuanceBudget {
            count: 6,
            window: Duration::from_secs(3600),
        }
    }
}

/// Why a budget setting (`6/1h`, `off`) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error("expected COUNT/WINDOW (e.g. 6/1h) or off, got {0:?}")]
    Syntax(String),
    #[error("the count must be a whole number from 1 to 10000, got {0:?}")]
    Count(String),
    #[error("the window must be a duration from 1m to 24h (e.g. 1h), got {0:?}")]
    Window(String),
}

impl IssuanceBudget {
    /// `COUNT/WINDOW` (`6/1h`, `20/30m`), or `off` for no budget (`None`).
    pub fn parse(text: &str) -> Result<Option<IssuanceBudget>, BudgetError> {
        let text = text.trim();
        if text == "off" {
            return Ok(None);
        }
        let (count, window) = text
            .split_once('/')
            .ok_or_else(|| BudgetError::Syntax(text.to_owned()))?;
        let count = count
            .parse::<u32>()
            .ok()
            .filter(|c| (1..=10_000).contains(c))
            .ok_or_else(|| BudgetError::Count(count.to_owned()))?;
        let window = parse_go_duration(window)
            .ok()
            .filter(|w| (Duration::from_secs(60)..=Duration::from_secs(86_400)).contains(w))
            .ok_or_else(|| BudgetError::Window(window.to_owned()))?;
        Ok(Some(IssuanceBudget { count, window }))
    }

    /// `recent` (budgeted issuances, Unix seconds) without those older than the window at `now`.
    pub fn trim(&self, recent: &mut Vec<UnixSeconds>, now: SystemTime) {
        let oldest = to_unix(now) - i64::try_from(self.window.as_secs()).unwrap_or(i64::MAX);
        recent.retain(|&t| t > oldest);
    }

    /// When a budgeted issuance may go, if not now: the budget is spent while `count`
    /// issuances of `recent` are inside the window; then the earliest time one leaves it.
    pub fn deferred_until(&self, recent: &[UnixSeconds], now: SystemTime) -> Option<SystemTime> {
        let window = i64::try_from(self.window.as_secs()).unwrap_or(i64::MAX);
        let now_unix = to_unix(now);
        let mut inside: Vec<UnixSeconds> = recent
            .iter()
            .copied()
            .filter(|&t| t > now_unix - window)
            .collect();
        if inside.len() < self.count as usize {
            return None;
        }
        inside.sort_unstable();
        // The one whose leaving brings the count below the budget.
        let leaving = inside[inside.len() - self.count as usize];
        Some(from_unix(leaving.saturating_add(window)))
    }

    /// `6/1h`, as it is written in the configuration.
    pub fn text(&self) -> String {
        format!(
            "{}/{}",
            self.count,
            certkeeper_core::spec::format_go_duration(self.window)
        )
    }
}

impl IssueReason {
    /// Whether an issuance for this reason is held by the budget ([`IssuanceBudget`]): one the
    /// renewal schedule did not plan. Renewals, expiry, retries of failures and renews asked for
    /// by hand are not.
    pub fn budgeted(self) -> bool {
        matches!(
            self,
            IssueReason::DoesNotExist | IssueReason::RequestChanged | IssueReason::Repair
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    const T0: u64 = 1_800_000_000;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(T0 + s)
    }

    fn unix(s: u64) -> UnixSeconds {
        to_unix(at(s))
    }

    #[test]
    fn settings_parse_and_refuse_what_they_should() {
        assert_eq!(IssuanceBudget::parse("6/1h"), Ok(Some(IssuanceBudget::default())));
        assert_eq!(
            IssuanceBudget::parse(" 20/30m "),
            Ok(Some(IssuanceBudget {
                count: 20,
                window: Duration::from_secs(1800)
            }))
        );
        assert_eq!(IssuanceBudget::parse("off"), Ok(None));
        for (text, error) in [
            ("6", BudgetError::Syntax("6".into())),
            ("0/1h", BudgetError::Count("0".into())),
            ("-1/1h", BudgetError::Count("-1".into())),
            ("10001/1h", BudgetError::Count("10001".into())),
            ("6/forever", BudgetError::Window("forever".into())),
            ("6/30s", BudgetError::Window("30s".into())),
            ("6/25h", BudgetError::Window("25h".into())),
        ] {
            assert_eq!(IssuanceBudget::parse(text), Err(error), "{text}");
        }
        assert_eq!(IssuanceBudget::default().text(), "6/1h0m0s");
    }

    #[test]
    fn the_budget_holds_once_spent_until_the_oldest_leaves_the_window() {
        let budget = IssuanceBudget {
            count: 3,
            window: Duration::from_secs(3600),
        };
        let recent = [unix(0), unix(100), unix(200)];
        assert_eq!(budget.deferred_until(&recent[..2], at(300)), None);
        assert_eq!(budget.deferred_until(&recent, at(300)), Some(at(3600)));
        // Once the first leaves, one may go again.
        assert_eq!(budget.deferred_until(&recent, at(3600)), None);
        // Unsorted input, and more than the budget (a restart's history).
        let many = [unix(200), unix(0), unix(150), unix(100)];
        assert_eq!(budget.deferred_until(&many, at(300)), Some(at(3700)));
        let mut trimmed = many.to_vec();
        budget.trim(&mut trimmed, at(3650));
        assert_eq!(trimmed, [unix(200), unix(150), unix(100)]);
    }

    #[test]
    fn only_unplanned_reasons_are_budgeted() {
        for reason in [
            IssueReason::DoesNotExist,
            IssueReason::RequestChanged,
            IssueReason::Repair,
        ] {
            assert!(reason.budgeted(), "{reason:?}");
        }
        for reason in [
            IssueReason::Expired,
            IssueReason::Renewing,
            IssueReason::RenewingOutsideWindows,
            IssueReason::ManuallyTriggered,
            IssueReason::Retry,
        ] {
            assert!(!reason.budgeted(), "{reason:?}");
        }
    }
}
