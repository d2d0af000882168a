//! The next attempt after a failure: the class's backoff, the server's Retry-After, and never so late
//! that the certificate being served expires while certkeeper waits.

use std::time::{Duration, SystemTime};

use super::backoff::{TRANSIENT_BACKOFF, schedule_for};
use crate::FailureClass;

/// While a certificate is served, the next attempt comes within `1 / EXPIRY_CLAMP_DIVISOR` of its
/// remaining validity: the closer to expiry, the more often certkeeper tries, so even a slow
/// schedule gets about ten more attempts before the certificate expires.
pub const EXPIRY_CLAMP_DIVISOR: u32 = 10;

/// The expiry clamp never asks for less than this: in the last seconds of a certificate, retrying
/// faster would only load a Vault that is already failing.
pub const EXPIRY_CLAMP_FLOOR: Duration = Duration::from_secs(5);

/// What [`next_attempt`] needs to know about a failure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryInput {
    pub class: FailureClass,
    /// Consecutive failures including this one (1 for the first; 0 counts as 1).
    pub attempts: u32,
    pub failed_at: SystemTime,
    /// notAfter of the certificate currently served, if any.
    pub current_not_after: Option<SystemTime>,
    /// The server's `Retry-After`, if it sent one.
    pub retry_after: Option<Duration>,
    /// A uniform sample from [0, 1) for the jitter (see [`ExponentialBackoff::delay`]).
    ///
    /// [`ExponentialBackoff::delay`]: super::ExponentialBackoff::delay
    pub unit_random: f64,
}

/// When to try again after a failure, or `None` for [`FailureClass::Invalid`], which waits for its
/// input to change rather than for a timer.
///
/// The delay comes from the class's backoff ([`schedule_for`]). A server's Retry-After lengthens it
/// but never beyond the class's maximum: a 429 must not stall a certificate for a day. Last, the
/// expiry clamp shortens it, and wins over both:
/// - while a certificate is served, to at most a tenth of its remaining validity, at least
///   [`EXPIRY_CLAMP_FLOOR`] (see [`EXPIRY_CLAMP_DIVISOR`]);
/// - once the served certificate has expired, or before the first one is issued, to at most the
///   transient maximum (5 min). An outage is then already under way: each attempt can only shorten
///   it, so the slow schedules' hour is too long, while hammering a Vault that rejects the request
///   every few seconds would not help either. Nothing is terminal; it goes on at that pace.
pub fn next_attempt(input: &RetryInput) -> Option<SystemTime> {
    let backoff = schedule_for(input.class)?;
    let mut delay = backoff.delay(input.attempts.max(1), input.unit_random);
    if let Some(retry_after) = input.retry_after {
        delay = delay.max(retry_after.min(backoff.max()));
    }
    delay = delay.min(expiry_bound(input.failed_at, input.current_not_after));
    // Only a time at the very end of SystemTime's range can overflow; then try at once.
    Some(input.failed_at.checked_add(delay).unwrap_or(input.failed_at))
}

/// The longest wait the served certificate allows (see [`next_attempt`]).
fn expiry_bound(failed_at: SystemTime, current_not_after: Option<SystemTime>) -> Duration {
    let remaining = current_not_after
        .and_then(|not_after| not_after.duration_since(failed_at).ok())
        .filter(|remaining| !remaining.is_zero());
    match remaining {
        Some(remaining) => (remaining / EXPIRY_CLAMP_DIVISOR).max(EXPIRY_CLAMP_FLOOR),
        None => TRANSIENT_BACKOFF.max(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::schedule::{AUTH_REJECTED_BACKOFF, REJECTED_BACKOFF};
    use proptest::prelude::*;

    const NOW: u64 = 1_700_000_000;
    const DAY: u64 = 24 * 60 * 60;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn input(class: FailureClass, attempts: u32, not_after: Option<u64>) -> RetryInput {
        RetryInput {
            class,
            attempts,
            failed_at: at(NOW),
            current_not_after: not_after.map(at),
            retry_after: None,
            unit_random: 0.0,
        }
    }

    /// Seconds from the failure to the next attempt.
    fn wait(input: RetryInput) -> u64 {
        let next = next_attempt(&input).expect("retried on a timer");
        next.duration_since(input.failed_at)
            .expect("not in the past")
            .as_secs()
    }

    #[test]
    fn invalid_waits_for_a_change() {
        assert_eq!(
            next_attempt(&input(FailureClass::Invalid, 1, Some(NOW + 10))),
            None
        );
        assert_eq!(next_attempt(&input(FailureClass::Invalid, 7, None)), None);
    }

    #[test]
    fn far_from_expiry_the_class_schedule_applies() {
        let valid = Some(NOW + 60 * DAY);
        assert_eq!(wait(input(FailureClass::Transient, 1, valid)), 1);
        assert_eq!(wait(input(FailureClass::Transient, 0, valid)), 1);
        assert_eq!(wait(input(FailureClass::Transient, 20, valid)), 300);
        assert_eq!(wait(input(FailureClass::AuthRejected, 1, valid)), 30);
        assert_eq!(wait(input(FailureClass::Rejected, 1, valid)), 300);
        assert_eq!(wait(input(FailureClass::Rejected, 2, valid)), 600);
        assert_eq!(wait(input(FailureClass::Rejected, 10, valid)), 3600);
    }

    #[test]
    fn a_failed_hook_is_retried_fast_and_capped_by_the_served_certificate() {
        let valid = Some(NOW + 60 * DAY);
        let waits: Vec<u64> = (1..=10)
            .map(|n| wait(input(FailureClass::Apply, n, valid)))
            .collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        // The certificate just written expires in 10 min: at most a tenth of that.
        assert_eq!(wait(input(FailureClass::Apply, 10, Some(NOW + 600))), 60);
        // Jitter only shortens, never below the minimum.
        let jittered = RetryInput {
            unit_random: 0.999,
            ..input(FailureClass::Apply, 6, valid)
        };
        assert!((51..=64).contains(&wait(jittered)), "{}", wait(jittered));
    }

    #[test]
    fn near_expiry_it_tries_more_often() {
        // 10 min left: at most a minute, even on the slow schedule.
        assert_eq!(wait(input(FailureClass::Rejected, 10, Some(NOW + 600))), 60);
        // 20 s left: the floor.
        assert_eq!(wait(input(FailureClass::Rejected, 10, Some(NOW + 20))), 5);
        // The clamp never lengthens a short delay.
        assert_eq!(wait(input(FailureClass::Transient, 1, Some(NOW + 20))), 1);
    }

    #[test]
    fn expired_or_never_issued_retries_at_the_transient_cap() {
        for not_after in [Some(NOW), Some(NOW - DAY), None] {
            assert_eq!(wait(input(FailureClass::Rejected, 10, not_after)), 300);
            assert_eq!(wait(input(FailureClass::AuthRejected, 10, not_after)), 300);
            assert_eq!(wait(input(FailureClass::AuthRejected, 1, not_after)), 30);
            assert_eq!(wait(input(FailureClass::Transient, 3, not_after)), 4);
        }
    }

    #[test]
    fn retry_after_lengthens_up_to_the_class_maximum() {
        let valid = Some(NOW + 60 * DAY);
        let with = |class, retry_after: u64, not_after| RetryInput {
            retry_after: Some(Duration::from_secs(retry_after)),
            ..input(class, 1, not_after)
        };
        assert_eq!(wait(with(FailureClass::Transient, 90, valid)), 90);
        assert_eq!(wait(with(FailureClass::Transient, DAY, valid)), 300);
        assert_eq!(wait(with(FailureClass::Rejected, DAY, valid)), 3600);
        // A shorter Retry-After does not shorten the backoff.
        assert_eq!(wait(with(FailureClass::Rejected, 1, valid)), 300);
        // The expiry clamp wins over Retry-After.
        assert_eq!(wait(with(FailureClass::Transient, 90, Some(NOW + 100))), 10);
    }

    fn any_class() -> impl Strategy<Value = FailureClass> {
        proptest::sample::select(FailureClass::ALL.to_vec())
    }

    fn any_input() -> impl Strategy<Value = RetryInput> {
        let not_after = proptest::option::of(-(400 * DAY as i64)..(800 * DAY as i64));
        let retry_after = proptest::option::of((0..10 * DAY).prop_map(Duration::from_secs));
        let sample = prop_oneof![0.0..1.0_f64, any::<f64>()];
        (
            any_class(),
            any::<u32>(),
            0..8_000_000_000_u64,
            not_after,
            retry_after,
            sample,
        )
            .prop_map(
                |(class, attempts, failed_at, not_after, retry_after, unit_random)| {
                    let failed_at = at(failed_at);
                    let current_not_after = not_after.map(|offset: i64| {
                        let by = Duration::from_secs(offset.unsigned_abs());
                        if offset < 0 {
                            failed_at - by
                        } else {
                            failed_at + by
                        }
                    });
                    RetryInput {
                        class,
                        attempts,
                        failed_at,
                        current_not_after,
                        retry_after,
                        unit_random,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn the_next_attempt_respects_every_bound(input in any_input()) {
            let Some(next) = next_attempt(&input) else {
                prop_assert_eq!(input.class, FailureClass::Invalid);
                return Ok(());
            };
            prop_assert_ne!(input.class, FailureClass::Invalid);
            let backoff = schedule_for(input.class).expect("timer class");
            let wait = next.duration_since(input.failed_at).expect("never before the failure");
            prop_assert!(wait <= backoff.max());
            let served = input.current_not_after.filter(|&not_after| not_after > input.failed_at);
            let bound = match served {
                Some(not_after) => {
                    let remaining = not_after.duration_since(input.failed_at).expect("served");
                    (remaining / EXPIRY_CLAMP_DIVISOR).max(EXPIRY_CLAMP_FLOOR)
                }
                None => TRANSIENT_BACKOFF.max(),
            };
            prop_assert!(wait <= bound, "{wait:?} > {bound:?}");
            // Only the expiry clamp may cut below the class minimum or the server's Retry-After.
            let floor = input.retry_after.map_or(backoff.min(), |r| r.min(backoff.max()).max(backoff.min()));
            prop_assert!(wait >= floor.min(bound), "{wait:?} < {floor:?}");
        }

        #[test]
        fn slow_classes_never_wait_longer_than_their_maximum(attempts in any::<u32>(), r in 0.0..1.0_f64) {
            for (class, backoff) in [(FailureClass::AuthRejected, AUTH_REJECTED_BACKOFF), (FailureClass::Rejected, REJECTED_BACKOFF)] {
                let input = RetryInput { unit_random: r, ..input(class, attempts, Some(NOW + 365 * DAY)) };
                prop_assert!(wait(input) <= backoff.max().as_secs());
            }
        }
    }
}
