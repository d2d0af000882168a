//! When automatic renewal starts: the renewal point ([`renewal_time`]) bent by `spec.renewal`.
//!
//! The one decision both runtimes use (through the engine) for a served certificate:
//! - policy `Disabled`: no renewal time at all ([`Renewal::Disabled`]);
//! - no windows: the renewal point, as before ([`Renewal::At`]);
//! - windows: the first time at or after the renewal point inside a window (cert-manager's
//!   rule), spread over the window's first minutes like the renewal point is spread, so a
//!   fleet waiting for the same window does not call Vault in the same second;
//! - beyond cert-manager: a window may defer a renewal only up to the [`latest_safe_point`].
//!   When no window opens before it, renewal starts there anyway ([`Renewal::Forced`]), and the
//!   runtimes say why. cert-manager would wait for the window even past notAfter.
//!
//! Pure: a function of (notBefore, notAfter, policy, identity), stable across restarts.

use std::time::{Duration, SystemTime};

use super::renewal::{
    AutomaticRenewal, MAX_SPREAD, RenewalPolicy, floor_to_second, point, renewal_time, spread_key,
    until_renewal_nanos,
};
use super::window::RenewalWindows;

/// A window may use at most `1 / WINDOW_DEFERRAL_DIVISOR` of the renewal margin (the time from
/// the renewal point to notAfter: `renewBefore`, or a third of the lifetime). The rest stays for
/// retries: with half of `renewBefore` left the expiry clamp (a tenth of what remains, see
/// [`super::EXPIRY_CLAMP_DIVISOR`]) still makes dozens of attempts before notAfter, and a slow
/// schedule's hour cap fits many times into any margin cert-manager accepts (renewBefore is at
/// least 5 minutes).
pub const WINDOW_DEFERRAL_DIVISOR: u32 = 2;

/// The latest time a renewal may start: the renewal point (without spread) plus
/// `1 / WINDOW_DEFERRAL_DIVISOR` of the margin between it and notAfter, to the second, never
/// after notAfter. For a 90-day certificate with the default policy: day 75.
pub fn latest_safe_point(
    not_before: SystemTime,
    not_after: SystemTime,
    policy: &RenewalPolicy,
) -> SystemTime {
    let Ok(lifetime) = not_after.duration_since(not_before) else {
        return not_after;
    };
    let lifetime = lifetime.as_nanos();
    let until_renewal = until_renewal_nanos(lifetime, policy);
    let margin = lifetime - until_renewal;
    point(
        not_before,
        until_renewal + margin / u128::from(WINDOW_DEFERRAL_DIVISOR),
    )
    .min(not_after)
}

/// When a served certificate is renewed automatically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// At this time: the renewal point, or with windows the time inside a window it moved to.
    At(SystemTime),
    /// No window opens between the renewal point (`desired`) and the latest safe point: renewal
    /// starts at `at`, the safe point, outside any window. `next_window` is when the next one
    /// would have opened (`None`: never again).
    Forced {
        at: SystemTime,
        desired: SystemTime,
        next_window: Option<SystemTime>,
    },
    /// `spec.renewal.policy: Disabled`.
    Disabled,
}

impl Renewal {
    /// The time automatic renewal starts, `None` when it is disabled.
    pub fn time(&self) -> Option<SystemTime> {
        match *self {
            Renewal::At(at) | Renewal::Forced { at, .. } => Some(at),
            Renewal::Disabled => None,
        }
    }

    /// What status shows next to the renewal time, when there is something to explain.
    pub fn note(&self) -> Option<String> {
        match *self {
            Renewal::At(_) => None,
            Renewal::Forced {
                at,
                desired,
                next_window,
            } => Some(format!(
                "renewal at {} outside the renewal windows: no window opens between the renewal point {} and this latest safe point (next window: {})",
                crate::time::rfc3339(at),
                crate::time::rfc3339(desired),
                next_window.map_or_else(|| "none".to_owned(), crate::time::rfc3339),
            )),
            Renewal::Disabled => Some(DISABLED_NOTE.to_owned()),
        }
    }
}

/// What status says for `renewal.policy: Disabled`.
pub const DISABLED_NOTE: &str = "automatic renewal is disabled (spec.renewal.policy: Disabled); renew by hand with certkeeper renew or cmctl renew";

/// When to renew a certificate valid from `not_before` to `not_after` (see the module docs).
/// `identity` is the stable per-certificate key of [`renewal_time`].
pub fn plan_renewal(
    not_before: SystemTime,
    not_after: SystemTime,
    policy: &RenewalPolicy,
    identity: &str,
) -> Renewal {
    let windows = match &policy.automatic {
        AutomaticRenewal::Disabled => return Renewal::Disabled,
        AutomaticRenewal::RenewBefore(windows) => windows,
    };
    let desired = renewal_time(not_before, not_after, policy, identity);
    if windows.is_empty() {
        return Renewal::At(desired);
    }
    let safe = latest_safe_point(not_before, not_after, policy).max(desired);
    match first_opening(windows, desired) {
        Some((open, _)) if open == desired => Renewal::At(desired),
        Some((open, open_for)) if open <= safe => {
            // Spread over the start of the window, staying inside it and not after `safe`.
            let room = open_for
                .min(MAX_SPREAD)
                .min(safe.duration_since(open).unwrap_or_default());
            let offset = (room.as_nanos() * u128::from(spread_key(identity))) >> 64;
            let offset = Duration::from_nanos(u64::try_from(offset).unwrap_or(0));
            Renewal::At(floor_to_second(open.checked_add(offset).unwrap_or(open)).max(open))
        }
        next_window => Renewal::Forced {
            at: safe,
            desired,
            next_window: next_window.map(|(open, _)| open),
        },
    }
}

/// The earliest time at or after `t` inside a window, with how long that window stays open
/// from then on.
fn first_opening(windows: &RenewalWindows, t: SystemTime) -> Option<(SystemTime, Duration)> {
    windows
        .iter()
        .filter_map(|w| {
            let open = w.first_open_from(t)?;
            // A window already open at `t` opened at most its duration ago; from a fresh start
            // it stays open for its whole duration.
            let left = if open == t {
                w.next_start_after(t.checked_sub(w.duration())?)
                    .and_then(|start| (start + w.duration()).duration_since(t).ok())
                    .unwrap_or_default()
            } else {
                w.duration()
            };
            Some((open, left))
        })
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
}
