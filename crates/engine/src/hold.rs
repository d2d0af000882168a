//! An issuer held by an issuer-wide refusal: Vault answered for the issuer as a whole (a 403
//! with a freshly obtained token, a missing mount or role: `VaultError::scope`), so every
//! certificate of that issuer would get the same answer. Instead of each certificate retrying on
//! its own schedule (measured: 20 certificates sent 5.1 requests a second to a Vault refusing
//! them, each 403 buying a fresh login), they wait behind one probe:
//! - the probe's time is never later than the expiry-aware retry schedule of the soonest-expiring
//!   waiting certificate ([`probe_time`]): nothing expires for want of trying;
//! - nor later than [`REFUSED_PROBE_MAX`] (from [`REFUSED_PROBE_MIN`], doubling): a refusal is
//!   usually a policy being edited or a leader being elected, and its end should be noticed
//!   within seconds, not at the slow schedule's next step (minutes). One probe is a login, a
//!   sign and the revocation of the refused token: about 0.6 requests a second at the cap, for
//!   the whole issuer, whatever the number of certificates;
//! - one success (or an answer about one request, which proves the issuer works) releases every
//!   waiting certificate at once; the gate's rate limit spreads them.
//!
//! Pure: the driver supplies the clock and the waiting certificates.

use std::time::{Duration, SystemTime};

use certkeeper_core::FailureClass;
use certkeeper_core::schedule::{RetryInput, next_attempt};
use certkeeper_core::time::{UnixSeconds, from_unix, rfc3339};

use crate::job::CertId;

/// What is known of a held issuer, for the engine and for status.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuerHold {
    /// Vault's verdict: `auth_rejected` or `rejected`.
    pub class: FailureClass,
    /// The last refusal's message.
    pub message: String,
    /// When the refusal started (the first refused request).
    pub since: SystemTime,
    /// Refused requests so far (the first one and every failed probe).
    pub probes: u32,
    /// When the next probe goes.
    pub probe_at: SystemTime,
    /// The certificate that carries the next probe.
    pub owner: CertId,
}

impl IssuerHold {
    /// What the issuer's own status says.
    pub fn issuer_message(&self) -> String {
        format!(
            "Vault refuses this issuer ({}) since {}, {} refused request(s); its certificates wait for \
             the next probe at {}: {}",
            self.class,
            rfc3339(self.since),
            self.probes,
            rfc3339(self.probe_at),
            self.message
        )
    }

    /// What a waiting certificate's status says.
    pub fn waiting_message(&self, issuer: &str) -> String {
        format!(
            "waiting for issuer {issuer}'s next probe at {}: Vault refuses the issuer ({}) since {}: {}",
            rfc3339(self.probe_at),
            self.class,
            rfc3339(self.since),
            self.message
        )
    }
}

/// First and last delay between the probes of a held issuer.
pub const REFUSED_PROBE_MIN: Duration = Duration::from_secs(2);
pub const REFUSED_PROBE_MAX: Duration = Duration::from_secs(5);

/// When the next probe of a held issuer goes: the probe backoff ([`REFUSED_PROBE_MIN`] doubling
/// to [`REFUSED_PROBE_MAX`] with the issuer's probe count), or sooner if any waiting
/// certificate's own expiry-aware schedule asks for it. `not_afters` holds the notAfter of each
/// waiting certificate (`None`: none served yet).
pub fn probe_time(
    class: FailureClass,
    probes: u32,
    not_afters: impl IntoIterator<Item = Option<UnixSeconds>>,
    now: SystemTime,
    unit_random: f64,
) -> SystemTime {
    let at = |not_after: Option<UnixSeconds>| {
        next_attempt(&RetryInput {
            class,
            attempts: probes.max(1),
            failed_at: now,
            current_not_after: not_after.map(from_unix),
            retry_after: None,
            unit_random,
        })
    };
    let factor = 1u32
        .checked_shl(probes.saturating_sub(1).min(16))
        .unwrap_or(u32::MAX);
    let backoff = now + REFUSED_PROBE_MIN.saturating_mul(factor).min(REFUSED_PROBE_MAX);
    not_afters
        .into_iter()
        .filter_map(at)
        .fold(backoff, SystemTime::min)
}

#[cfg(test)]
mod tests {
    use super::*;
    use certkeeper_core::time::to_unix;
    use proptest::prelude::*;

    const NOW: u64 = 1_800_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn wait(probe: SystemTime) -> u64 {
        probe.duration_since(at(NOW)).unwrap().as_secs()
    }

    #[test]
    fn probes_back_off_to_a_few_seconds_and_never_wait_past_what_expiry_allows() {
        let far = Some(to_unix(at(NOW + 30 * 86_400)));
        let close = Some(to_unix(at(NOW + 30)));
        let probes: Vec<u64> = (1..=5)
            .map(|n| wait(probe_time(FailureClass::AuthRejected, n, [far], at(NOW), 0.0)))
            .collect();
        assert_eq!(probes, [2, 4, 5, 5, 5]);
        // A certificate 30 s from expiry: its own schedule's floor (5 s) is not later.
        assert_eq!(
            wait(probe_time(
                FailureClass::AuthRejected,
                5,
                [far, close, far],
                at(NOW),
                0.0
            )),
            5
        );
        // Nothing served yet: the probe backoff.
        assert_eq!(
            wait(probe_time(FailureClass::Rejected, 1, [None], at(NOW), 0.0)),
            2
        );
    }

    proptest! {
        /// However many certificates wait and however long the refusal lasts, the next probe is
        /// never later than what the most urgent certificate's own schedule asks for nor than
        /// the probe cap, and never sooner than the first probe delay.
        #[test]
        fn never_later_than_the_most_urgent_certificate_needs(
            probes in 1u32..40,
            remaining in proptest::collection::vec(proptest::option::of(1u64..10_000_000), 1..50),
            r in 0.0f64..1.0,
        ) {
            let now = at(NOW);
            let not_afters: Vec<Option<i64>> = remaining.iter().map(|r| r.map(|s| to_unix(at(NOW + s)))).collect();
            let probe = probe_time(FailureClass::AuthRejected, probes, not_afters.clone(), now, r);
            for n in &not_afters {
                let own = probe_time(FailureClass::AuthRejected, probes, [*n], now, r);
                prop_assert!(probe <= own);
            }
            prop_assert!(probe >= now + REFUSED_PROBE_MIN);
            prop_assert!(probe <= now + REFUSED_PROBE_MAX);
        }
    }
}
