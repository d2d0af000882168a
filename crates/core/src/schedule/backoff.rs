//! Jittered exponential backoff (after linkerd2-proxy's `exp-backoff`), and the schedule each
//! failure class retries on.

use std::time::Duration;

use crate::FailureClass;

/// Delays that start at `min`, double with every consecutive failure up to `max`, and are shortened
/// by a random fraction of up to `jitter` (never below `min`).
///
/// Jitter only ever shortens a delay, so `max` is a promise: a failing certificate is retried at
/// least that often. The randomness is a parameter of [`ExponentialBackoff::delay`], which keeps
/// this a pure function the engine can persist the result of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExponentialBackoff {
    min: Duration,
    max: Duration,
    jitter: f64,
}

/// Why [`ExponentialBackoff::try_new`] refused its parameters.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum InvalidBackoff {
    /// A zero minimum would retry in a tight loop, and never grow.
    #[error("minimum delay must be greater than zero")]
    ZeroMinimum,
    #[error("maximum delay {max:?} is less than the minimum {min:?}")]
    MaximumBelowMinimum { min: Duration, max: Duration },
    #[error("jitter must be a fraction within [0, 1], got {0}")]
    JitterOutOfRange(f64),
}

/// How much of a delay may be cut at random: enough that certificates which failed together
/// (Vault went down) drift apart within a few attempts, small enough that the doubling still shows.
pub const BACKOFF_JITTER: f64 = 0.2;

/// [`FailureClass::Transient`]: the request may succeed in a moment (Vault restarting, a leader
/// election, a dropped connection), so start at 1 s; 5 min caps the wait once Vault is back (and
/// the issuer gate's probe releases waiting certificates earlier than that).
pub const TRANSIENT_BACKOFF: ExponentialBackoff = ExponentialBackoff {
    min: Duration::from_secs(1),
    max: Duration::from_secs(5 * 60),
    jitter: BACKOFF_JITTER,
};

/// [`FailureClass::AuthRejected`]: a 403 with a fresh token usually needs a policy edit or a
/// TokenReview outage to end. 30 s is long enough not to burn the auth backend, 30 min short
/// enough that a fixed policy takes effect without a manual renew.
pub const AUTH_REJECTED_BACKOFF: ExponentialBackoff = ExponentialBackoff {
    min: Duration::from_secs(30),
    max: Duration::from_secs(30 * 60),
    jitter: BACKOFF_JITTER,
};

/// [`FailureClass::Rejected`]: Vault refused the request and an administrator has to act. 5 min
/// doubling to 1 h, never terminal (unlike cert-manager's 32 h), so a 24 h certificate survives.
pub const REJECTED_BACKOFF: ExponentialBackoff = ExponentialBackoff {
    min: Duration::from_secs(5 * 60),
    max: Duration::from_secs(60 * 60),
    jitter: BACKOFF_JITTER,
};

/// [`FailureClass::Apply`]: a hook failed or the address named by `verify` serves another
/// certificate. Nothing is sent to Vault (only the hooks run again, locally), and whoever fixes
/// the server's configuration wants the failure to clear soon: 2 s doubling to the transient
/// cap of 5 min, so a hook that keeps failing runs at most about twelve times an hour.
pub const APPLY_BACKOFF: ExponentialBackoff = ExponentialBackoff {
    min: Duration::from_secs(2),
    max: Duration::from_secs(5 * 60),
    jitter: BACKOFF_JITTER,
};

/// The timer a failure of `class` retries on; `None` for [`FailureClass::Invalid`], which waits for
/// its input to change instead.
pub fn schedule_for(class: FailureClass) -> Option<ExponentialBackoff> {
    match class {
        FailureClass::Transient => Some(TRANSIENT_BACKOFF),
        FailureClass::AuthRejected => Some(AUTH_REJECTED_BACKOFF),
        FailureClass::Rejected => Some(REJECTED_BACKOFF),
        FailureClass::Invalid => None,
        FailureClass::Apply => Some(APPLY_BACKOFF),
    }
}

impl ExponentialBackoff {
    /// A backoff from `min` to `max` (`0 < min <= max`) whose delays are cut by up to `jitter`
    /// (`0 <= jitter <= 1`) of themselves.
    pub fn try_new(min: Duration, max: Duration, jitter: f64) -> Result<Self, InvalidBackoff> {
        if min.is_zero() {
            return Err(InvalidBackoff::ZeroMinimum);
        }
        if max < min {
            return Err(InvalidBackoff::MaximumBelowMinimum { min, max });
        }
        // Also refuses NaN, which is in no range.
        if !(0.0..=1.0).contains(&jitter) {
            return Err(InvalidBackoff::JitterOutOfRange(jitter));
        }
        Ok(Self { min, max, jitter })
    }

    /// The shortest delay, the first one without jitter.
    pub const fn min(&self) -> Duration {
        self.min
    }

    /// The longest delay: a failing operation is retried at least this often.
    pub const fn max(&self) -> Duration {
        self.max
    }

    /// The largest fraction of a delay that jitter may cut.
    pub const fn jitter(&self) -> f64 {
        self.jitter
    }

    /// The delay after the `attempt`-th consecutive failure (1 for the first; 0 counts as 1).
    ///
    /// `unit_random` is a uniform sample from [0, 1) supplied by the caller; values outside are
    /// clamped and NaN counts as 0, so a bad sample can cost jitter but never break the bounds.
    /// The result always lies in [`min`, `max`], for every attempt.
    ///
    /// [`min`]: Self::min
    /// [`max`]: Self::max
    pub fn delay(&self, attempt: u32, unit_random: f64) -> Duration {
        let ceiling = self.ceiling(attempt);
        let sample = if unit_random.is_nan() {
            0.0
        } else {
            unit_random.clamp(0.0, 1.0)
        };
        // Non-negative and at most the ceiling; only rounding at Duration's limit could fail.
        let cut =
            Duration::try_from_secs_f64(ceiling.as_secs_f64() * self.jitter * sample).unwrap_or_default();
        ceiling.saturating_sub(cut).max(self.min)
    }

    /// The delay without jitter: `min * 2^(attempt - 1)`, capped at `max`. Non-decreasing in
    /// `attempt`; doubling stops at `max`, so a huge attempt count costs at most ~100 steps.
    fn ceiling(&self, attempt: u32) -> Duration {
        let mut delay = self.min;
        for _ in 1..attempt {
            if delay >= self.max {
                break;
            }
            delay = delay.checked_mul(2).unwrap_or(self.max);
        }
        delay.min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn try_new_refuses_what_cannot_work() {
        assert_eq!(
            ExponentialBackoff::try_new(Duration::ZERO, secs(1), 0.0),
            Err(InvalidBackoff::ZeroMinimum)
        );
        assert_eq!(
            ExponentialBackoff::try_new(secs(2), secs(1), 0.0),
            Err(InvalidBackoff::MaximumBelowMinimum {
                min: secs(2),
                max: secs(1)
            })
        );
        for jitter in [-0.1, 1.1, f64::INFINITY] {
            assert_eq!(
                ExponentialBackoff::try_new(secs(1), secs(2), jitter),
                Err(InvalidBackoff::JitterOutOfRange(jitter))
            );
        }
        assert!(ExponentialBackoff::try_new(secs(1), secs(2), f64::NAN).is_err());
        assert!(ExponentialBackoff::try_new(secs(1), secs(1), 0.0).is_ok());
        assert!(ExponentialBackoff::try_new(Duration::from_nanos(1), Duration::MAX, 1.0).is_ok());
    }

    #[test]
    fn class_schedules_are_valid_and_as_designed() {
        let expected = [
            (FailureClass::Transient, Some((1, 5 * 60))),
            (FailureClass::AuthRejected, Some((30, 30 * 60))),
            (FailureClass::Rejected, Some((5 * 60, 60 * 60))),
            (FailureClass::Invalid, None),
            (FailureClass::Apply, Some((2, 5 * 60))),
        ];
        for (class, bounds) in expected {
            let schedule = schedule_for(class);
            assert_eq!(
                schedule.map(|b| (b.min().as_secs(), b.max().as_secs())),
                bounds,
                "{class}"
            );
            if let Some(b) = schedule {
                assert_eq!(
                    ExponentialBackoff::try_new(b.min(), b.max(), b.jitter()),
                    Ok(b),
                    "{class}"
                );
                assert_eq!(b.jitter(), BACKOFF_JITTER);
            }
        }
    }

    #[test]
    fn transient_doubles_from_one_second_to_five_minutes() {
        let delays: Vec<u64> = (1..=11)
            .map(|a| TRANSIENT_BACKOFF.delay(a, 0.0).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(TRANSIENT_BACKOFF.delay(0, 0.0), secs(1));
        assert_eq!(TRANSIENT_BACKOFF.delay(u32::MAX, 0.0), secs(300));
    }

    #[test]
    fn apply_doubles_from_two_seconds_to_five_minutes() {
        let delays: Vec<u64> = (1..=10).map(|a| APPLY_BACKOFF.delay(a, 0.0).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }

    #[test]
    fn jitter_shortens_by_up_to_its_fraction_but_not_below_min() {
        let about = |delay: Duration, millis: u64| {
            delay.abs_diff(Duration::from_millis(millis)) < Duration::from_micros(1)
        };
        assert!(about(TRANSIENT_BACKOFF.delay(4, 0.5), 7_200));
        assert!(about(TRANSIENT_BACKOFF.delay(u32::MAX, 0.999_999_999), 240_000));
        assert_eq!(TRANSIENT_BACKOFF.delay(1, 0.999), secs(1));
        assert_eq!(TRANSIENT_BACKOFF.delay(4, f64::NAN), secs(8));
        assert!(about(TRANSIENT_BACKOFF.delay(4, 7.0), 6_400));
        assert_eq!(TRANSIENT_BACKOFF.delay(4, -1.0), secs(8));
    }

    fn any_backoff() -> impl Strategy<Value = ExponentialBackoff> {
        let duration =
            |max_secs: u64| (0..max_secs, 0..1_000_000_000_u32).prop_map(|(s, n)| Duration::new(s, n));
        (
            duration(1 << 40),
            prop_oneof![duration(1 << 40), duration(u64::MAX / 2), Just(Duration::MAX)],
            0.0..=1.0_f64,
        )
            .prop_filter_map("zero minimum", |(min, extra, jitter)| {
                ExponentialBackoff::try_new(min, min.saturating_add(extra), jitter).ok()
            })
    }

    proptest! {
        #[test]
        fn every_delay_lies_within_min_and_max(backoff in any_backoff(), attempt in any::<u32>(), r in 0.0..1.0_f64) {
            let delay = backoff.delay(attempt, r);
            prop_assert!(backoff.min() <= delay && delay <= backoff.max(), "{delay:?} {backoff:?}");
            prop_assert!(delay <= backoff.ceiling(attempt));
        }

        #[test]
        fn the_envelope_never_decreases(backoff in any_backoff(), attempt in any::<u32>()) {
            let next = attempt.saturating_add(1);
            prop_assert!(backoff.ceiling(attempt) <= backoff.ceiling(next));
            prop_assert_eq!(backoff.ceiling(attempt), backoff.delay(attempt, 0.0));
        }

        #[test]
        fn any_sample_keeps_the_bounds(backoff in any_backoff(), attempt in any::<u32>(), r in any::<f64>()) {
            let delay = backoff.delay(attempt, r);
            prop_assert!(backoff.min() <= delay && delay <= backoff.max());
        }
    }
}
