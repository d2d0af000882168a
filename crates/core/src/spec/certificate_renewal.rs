//! `spec.renewal` of a Certificate: its validation (cert-manager's webhook rules, plus windows
//! that can never hold a renewal) and the [`RenewalPolicy`] the schedule applies.

use super::certificate::{CertificateRenewalPolicy, CertificateSpec};
use super::certificate_rules::push;
use super::error::{FieldError, FieldPath, Problem};
use crate::schedule::{AutomaticRenewal, RenewalPolicy, RenewalWindow, RenewalWindows, WindowError};
use crate::spec::limits::MAX_RENEWAL_WINDOWS;

const POLICIES: &[&str] = &["Disabled", "RenewBefore"];

impl CertificateSpec {
    /// When to renew, with `spec.renewal` applied. On a spec that fails validation the windows
    /// that do not parse are left out (validation reports them; the schedule never fails).
    pub fn renewal_policy(&self) -> RenewalPolicy {
        RenewalPolicy {
            renew_before: self.renew_before.map(|d| d.get()),
            renew_before_percentage: self.renew_before_percentage.and_then(|p| u32::try_from(p).ok()),
            automatic: match &self.renewal {
                Some(renewal) if renewal.policy == Some(CertificateRenewalPolicy::Disabled) => {
                    AutomaticRenewal::Disabled
                }
                _ => AutomaticRenewal::RenewBefore(self.renewal_windows(&mut Vec::new())),
            },
        }
    }

    /// The parsed windows; problems go to `errors`.
    fn renewal_windows(&self, errors: &mut Vec<FieldError>) -> RenewalWindows {
        let Some(renewal) = &self.renewal else {
            return RenewalWindows::default();
        };
        let at = FieldPath::parse("spec.renewal.windows");
        if renewal.windows.len() > MAX_RENEWAL_WINDOWS {
            let problem = Problem::TooMany {
                max: MAX_RENEWAL_WINDOWS,
                len: renewal.windows.len(),
            };
            push(errors, at, problem);
            return RenewalWindows::default();
        }
        let mut windows = Vec::new();
        for (i, window) in renewal.windows.iter().enumerate() {
            let at = at.index(i);
            let Some(duration) = window.window_duration else {
                push(errors, at.field("windowDuration"), Problem::Required);
                continue;
            };
            if window.cron.is_empty() {
                push(errors, at.field("cron"), Problem::Required);
                continue;
            }
            match RenewalWindow::parse(&window.cron, &window.timezone, duration.get()) {
                Ok(parsed) => windows.push(parsed),
                Err(e) => {
                    let field = match e {
                        WindowError::TimezoneTooLong { .. } | WindowError::UnknownTimezone(_) => "timezone",
                        WindowError::ZeroDuration => "windowDuration",
                        _ => "cron",
                    };
                    push(errors, at.field(field), Problem::RenewalWindow(e));
                }
            }
        }
        // At most MAX_RENEWAL_WINDOWS, checked above.
        RenewalWindows::new(windows).unwrap_or_default()
    }

    /// cert-manager's `validateCertificateRenewal`, then certkeeper's frequency check.
    pub(super) fn validate_renewal(&self, spec: &FieldPath, errors: &mut Vec<FieldError>) {
        let Some(renewal) = &self.renewal else {
            return;
        };
        let at = spec.field("renewal");
        match renewal.policy {
            None => push(
                errors,
                at.field("policy"),
                Problem::UnsupportedValue {
                    value: String::new(),
                    supported: POLICIES,
                },
            ),
            Some(CertificateRenewalPolicy::Disabled) => {
                if !renewal.windows.is_empty() {
                    let problem =
                        Problem::Forbidden("windows cannot be set when `renewal.policy` is set to Disabled");
                    push(errors, at.field("windows"), problem);
                }
                return;
            }
            Some(CertificateRenewalPolicy::RenewBefore) => {}
        }
        let before = errors.len();
        let windows = self.renewal_windows(errors);
        if errors.len() == before
            && let Err(e) = windows.check_frequency(self.duration())
        {
            push(errors, at.field("windows"), Problem::RenewalWindow(e));
        }
    }
}
