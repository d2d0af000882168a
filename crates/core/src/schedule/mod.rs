//! When to act: the renewal point of a certificate and the next attempt after a failure.
//!
//! These are the only places that decide time in certkeeper (DESIGN.md, "The failure model" and
//! "Certificate semantics"); the engine and both runtimes call them instead of re-deriving policy.
//! Everything here is pure: `now` and any randomness are parameters, so the decisions are unit- and
//! property-tested without a clock, and a restarted process recomputes exactly what it persisted.
//!
//! - [`renewal_time`]: cert-manager's renewal point, moved earlier by a stable per-certificate spread.
//! - [`ExponentialBackoff`] and [`schedule_for`]: the jittered retry delays of each [`FailureClass`].
//! - [`next_attempt`]: the retry delay bounded by the validity left on the certificate being served.
//! - [`plan_renewal`]: when automatic renewal starts, `spec.renewal` applied to the renewal point
//!   (policy `Disabled`, renewal windows, and the latest safe point no window may pass).
//!
//! [`FailureClass`]: crate::FailureClass

mod backoff;
mod plan;
mod renewal;
mod retry;
mod window;
#[cfg(test)]
mod window_tests;

pub use backoff::{
    APPLY_BACKOFF, AUTH_REJECTED_BACKOFF, BACKOFF_JITTER, ExponentialBackoff, InvalidBackoff,
    REJECTED_BACKOFF, TRANSIENT_BACKOFF, schedule_for,
};
pub use plan::{DISABLED_NOTE, Renewal, WINDOW_DEFERRAL_DIVISOR, latest_safe_point, plan_renewal};
pub use renewal::{AutomaticRenewal, MAX_SPREAD, RenewalPolicy, SPREAD_DIVISOR, is_due, renewal_time};
pub use retry::{EXPIRY_CLAMP_DIVISOR, EXPIRY_CLAMP_FLOOR, RetryInput, next_attempt};
pub use window::{CronSyntax, FieldSyntax, RenewalWindow, RenewalWindows, WindowError};

/// A hash that stays the same across Rust releases and platforms (FNV-1a 64): for anything
/// persisted or compared across restarts, such as spec fingerprints and renewal spreads.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    renewal::fnv1a64(bytes)
}
