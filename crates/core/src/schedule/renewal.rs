//! The renewal point of an issued certificate: cert-manager's rule, then a stable per-certificate
//! spread so that a fleet issued together does not renew together.

use std::time::{Duration, SystemTime};

use super::window::RenewalWindows;

/// How early to renew, from a Certificate's `spec.renewBefore` and `spec.renewBeforePercentage`.
///
/// Values cert-manager ignores (zero, not shorter than the lifetime, a percentage outside 1..=99)
/// fall back exactly as cert-manager falls back, so a policy is never an error here: reporting them
/// is spec validation's job, and a certificate must get a renewal point whatever its spec says.
///
/// `automatic` is `spec.renewal`: whether certkeeper renews on its own, and in which windows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenewalPolicy {
    pub renew_before: Option<Duration>,
    pub renew_before_percentage: Option<u32>,
    pub automatic: AutomaticRenewal,
}

/// `spec.renewal.policy`, with the windows that go with `RenewBefore`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutomaticRenewal {
    /// cert-manager's `RenewBefore` (also what an absent `spec.renewal` means): renewed at the
    /// renewal point, or, with windows, at the first time after it inside a window.
    RenewBefore(RenewalWindows),
    /// cert-manager's `Disabled`: never renewed on a timer, not even once expired. Still issued
    /// when missing, re-issued when the spec changes and when a renewal is requested by hand.
    Disabled,
}

impl Default for AutomaticRenewal {
    fn default() -> Self {
        AutomaticRenewal::RenewBefore(RenewalWindows::default())
    }
}

/// The spread window is at most `1 / SPREAD_DIVISOR` of the time from notBefore to the configured
/// renewal point. 10% keeps a short-lived certificate's renewal close to what was asked (a 1 h
/// certificate spreads over 4 min, a 1 min one over 4 s) while still separating its replicas.
pub const SPREAD_DIVISOR: u32 = 10;

/// The spread window never exceeds this. Without a cap a 90-day certificate could renew 6 days
/// early, which surprises whoever chose renewBefore; an hour already spreads 3600 certificates to
/// one a second, and the per-issuer rate limit smooths whatever is left.
pub const MAX_SPREAD: Duration = Duration::from_secs(60 * 60);

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// When to renew a certificate valid from `not_before` to `not_after`.
///
/// First cert-manager's point (`pkg/util/pki/renewaltime.go`): `renewBefore` if it is positive and
/// shorter than the lifetime, else `renewBeforePercentage` of the lifetime if it lies in 1..=99,
/// else a third of the lifetime, counted back from notAfter. Then the point moves earlier, never
/// later, by a fraction of the spread window (see [`SPREAD_DIVISOR`], [`MAX_SPREAD`]) taken from a
/// stable hash of `identity`, so thousands of certificates with the same lifetime do not all call
/// Vault in the same second, and a restart (or another replica) computes the same time.
///
/// `identity` must be stable for the certificate's whole life, e.g. `namespace/name`; never the
/// serial number or anything else that changes on renewal.
///
/// The result is truncated to a whole second, as cert-manager does, because it is persisted with
/// second precision: a re-check at the persisted time must find the certificate due. It is never
/// before notBefore. A certificate whose notAfter precedes its notBefore is renewed at its notAfter.
pub fn renewal_time(
    not_before: SystemTime,
    not_after: SystemTime,
    policy: &RenewalPolicy,
    identity: &str,
) -> SystemTime {
    let Ok(lifetime) = not_after.duration_since(not_before) else {
        return not_after;
    };
    let until_renewal = until_renewal_nanos(lifetime.as_nanos(), policy);
    let window = (until_renewal / u128::from(SPREAD_DIVISOR)).min(MAX_SPREAD.as_nanos());
    // window < 2^64 (capped at an hour), so this is < window, and the product fits in u128.
    let spread = (window * u128::from(spread_key(identity))) >> 64;
    point(not_before, until_renewal - spread)
}

/// Whether a certificate whose renewal point is `renewal_time` should be renewed at `now`.
pub fn is_due(now: SystemTime, renewal_time: SystemTime) -> bool {
    now >= renewal_time
}

/// cert-manager's renewal point without the spread; the reference the spread never exceeds.
#[cfg(test)]
fn unspread_renewal_time(
    not_before: SystemTime,
    not_after: SystemTime,
    policy: &RenewalPolicy,
) -> SystemTime {
    match not_after.duration_since(not_before) {
        Ok(lifetime) => point(not_before, until_renewal_nanos(lifetime.as_nanos(), policy)),
        Err(_) => not_after,
    }
}

/// Nanoseconds from notBefore to cert-manager's renewal point (its `desiredRenewalTime`).
pub(super) fn until_renewal_nanos(lifetime: u128, policy: &RenewalPolicy) -> u128 {
    let renew_before = match policy {
        RenewalPolicy {
            renew_before: Some(before),
            ..
        } if !before.is_zero() && before.as_nanos() < lifetime => before.as_nanos(),
        RenewalPolicy {
            renew_before_percentage: Some(percentage @ 1..=99),
            ..
        } => lifetime * u128::from(*percentage) / 100,
        _ => lifetime / 3,
    };
    lifetime - renew_before
}

/// `not_before + offset`, truncated to the second but not before `not_before`. `offset` never
/// exceeds the lifetime, so the sum exists; the fallback only keeps this free of panics.
pub(super) fn point(not_before: SystemTime, offset_nanos: u128) -> SystemTime {
    let secs = u64::try_from(offset_nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
    // The remainder is below 10^9 and always fits.
    let nanos = u32::try_from(offset_nanos % NANOS_PER_SEC).unwrap_or(0);
    let at = not_before
        .checked_add(Duration::new(secs, nanos))
        .unwrap_or(not_before);
    floor_to_second(at).max(not_before)
}

/// The latest whole second (counted from the Unix epoch) not after `t`.
pub(super) fn floor_to_second(t: SystemTime) -> SystemTime {
    crate::time::from_unix(crate::time::to_unix(t))
}

/// Where in the spread window a certificate lands, uniform over u64.
///
/// FNV-1a is stable across Rust releases and platforms (std's `DefaultHasher` is not), but its
/// high bits barely change between identities that differ only in their last characters
/// (`cert-1`, `cert-2`), and the high bits pick the offset. The splitmix64 finaliser spreads every
/// input bit over the whole word.
pub(super) fn spread_key(identity: &str) -> u64 {
    mix64(fnv1a64(identity.as_bytes()))
}

/// FNV-1a, 64 bit (http://www.isthe.com/chongo/tech/comp/fnv/).
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// splitmix64's finaliser (Steele, Lea, Flood 2014): a bijection with full avalanche.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use proptest::prelude::*;

    const DAY: u64 = 24 * 60 * 60;
    const HOUR: u64 = 60 * 60;
    const ID: &str = "default/web";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// A certificate issued on 2023-11-14T22:13:20Z.
    const ISSUED: u64 = 1_700_000_000;

    fn policy(renew_before: Option<u64>, percentage: Option<u32>) -> RenewalPolicy {
        RenewalPolicy {
            renew_before: renew_before.map(Duration::from_secs),
            renew_before_percentage: percentage,
            ..RenewalPolicy::default()
        }
    }

    /// Asserts the cert-manager point and that the spread stays within `window` before it.
    fn assert_renews(lifetime: u64, policy: RenewalPolicy, expected: u64, window: u64) {
        let (nb, na) = (at(ISSUED), at(ISSUED + lifetime));
        assert_eq!(unspread_renewal_time(nb, na, &policy), at(ISSUED + expected));
        let spread = renewal_time(nb, na, &policy, ID);
        assert!(spread <= at(ISSUED + expected), "{spread:?}");
        assert!(spread >= at(ISSUED + expected - window), "{spread:?}");
    }

    #[test]
    fn ninety_day_default_renews_at_day_60_minus_up_to_an_hour() {
        assert_renews(90 * DAY, RenewalPolicy::default(), 60 * DAY, HOUR);
    }

    #[test]
    fn renew_before_720h() {
        // cert-manager's documented example: duration 2160h, renewBefore 720h.
        assert_renews(2160 * HOUR, policy(Some(720 * HOUR), None), 1440 * HOUR, HOUR);
        assert_renews(90 * DAY, policy(Some(15 * DAY), None), 75 * DAY, HOUR);
    }

    #[test]
    fn renew_before_percentage_25() {
        assert_renews(90 * DAY, policy(None, Some(25)), 90 * DAY * 3 / 4, HOUR);
    }

    #[test]
    fn renew_before_not_shorter_than_duration_falls_back_to_a_third() {
        for before in [90 * DAY, 100 * DAY, 0] {
            assert_renews(90 * DAY, policy(Some(before), None), 60 * DAY, HOUR);
        }
    }

    #[test]
    fn percentage_outside_1_to_99_falls_back_to_a_third() {
        for percentage in [0, 100, 150] {
            assert_renews(90 * DAY, policy(None, Some(percentage)), 60 * DAY, HOUR);
        }
        assert_renews(90 * DAY, policy(None, Some(1)), 90 * DAY - 90 * DAY / 100, HOUR);
        assert_renews(90 * DAY, policy(None, Some(99)), 90 * DAY / 100, 90 * DAY / 1000);
    }

    #[test]
    fn an_unusable_renew_before_defers_to_the_percentage_as_cert_manager_does() {
        assert_renews(90 * DAY, policy(Some(90 * DAY), Some(50)), 45 * DAY, HOUR);
        assert_renews(90 * DAY, policy(Some(10 * DAY), Some(50)), 80 * DAY, HOUR);
    }

    #[test]
    fn short_lifetimes_spread_over_a_tenth() {
        // A 1 h certificate renews at 40 min, spread over the 4 min before.
        assert_renews(HOUR, RenewalPolicy::default(), 40 * 60, 4 * 60);
        // A 1 min certificate renews at 40 s, spread over 4 s: still more than one second.
        assert_renews(60, RenewalPolicy::default(), 40, 4);
        let times: std::collections::BTreeSet<_> = (0..100)
            .map(|i| {
                renewal_time(
                    at(ISSUED),
                    at(ISSUED + 60),
                    &RenewalPolicy::default(),
                    &format!("ns/c{i}"),
                )
            })
            .collect();
        assert!(times.len() >= 4, "{times:?}");
    }

    #[test]
    fn the_spread_is_pinned() {
        // Persisted renewal times and other replicas rely on this never changing.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        let nb = at(ISSUED);
        let na = at(ISSUED + 90 * DAY);
        assert_eq!(
            renewal_time(nb, na, &RenewalPolicy::default(), ID),
            at(ISSUED + 60 * DAY - 459)
        );
    }

    #[test]
    fn identities_spread_evenly_over_the_window() {
        let (nb, na) = (at(ISSUED), at(ISSUED + 90 * DAY));
        let unspread = at(ISSUED + 60 * DAY);
        let mut deciles = [0_u32; 10];
        for i in 0..10_000 {
            let identity = format!("namespace-{}/cert-{i}", i % 37);
            let early = unspread
                .duration_since(renewal_time(nb, na, &RenewalPolicy::default(), &identity))
                .expect("never later than the unspread point");
            let decile = usize::try_from(early.as_secs() * 10 / HOUR).expect("small");
            deciles[decile.min(9)] += 1;
        }
        // 1000 expected in each; a standard deviation is 30.
        assert!(deciles.iter().all(|&n| (850..=1150).contains(&n)), "{deciles:?}");
    }

    #[test]
    fn sub_second_validity_is_never_renewed_before_not_before() {
        let nb = at(ISSUED) + Duration::from_millis(900);
        let na = nb + Duration::from_millis(600);
        let rt = renewal_time(nb, na, &RenewalPolicy::default(), ID);
        assert!(rt >= nb && rt < na, "{rt:?}");
    }

    #[test]
    fn inverted_validity_renews_at_not_after() {
        assert_eq!(
            renewal_time(at(ISSUED), at(ISSUED - 1), &RenewalPolicy::default(), ID),
            at(ISSUED - 1)
        );
        assert_eq!(
            renewal_time(at(ISSUED), at(ISSUED), &RenewalPolicy::default(), ID),
            at(ISSUED)
        );
    }

    #[test]
    fn before_the_epoch_truncates_towards_the_past() {
        let t = UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(floor_to_second(t), UNIX_EPOCH - Duration::from_secs(2));
        assert_eq!(
            floor_to_second(UNIX_EPOCH - Duration::from_secs(2)),
            UNIX_EPOCH - Duration::from_secs(2)
        );
    }

    #[test]
    fn due_from_the_renewal_time_on() {
        assert!(!is_due(at(ISSUED - 1), at(ISSUED)));
        assert!(is_due(at(ISSUED), at(ISSUED)));
        assert!(is_due(at(ISSUED + 1), at(ISSUED)));
    }

    fn time() -> impl Strategy<Value = SystemTime> {
        (0..8_000_000_000_u64, 0..1_000_000_000_u32).prop_map(|(s, n)| UNIX_EPOCH + Duration::new(s, n))
    }

    fn lifetime() -> impl Strategy<Value = Duration> {
        prop_oneof![
            (1..120_u64).prop_map(Duration::from_secs),
            (1..10 * 365 * DAY, 0..1_000_000_000_u32).prop_map(|(s, n)| Duration::new(s, n)),
        ]
    }

    fn any_policy() -> impl Strategy<Value = RenewalPolicy> {
        let before = prop_oneof![
            (0..120_u64).prop_map(Duration::from_secs),
            (0..20 * 365 * DAY).prop_map(Duration::from_secs)
        ];
        (proptest::option::of(before), proptest::option::of(0..=120_u32)).prop_map(
            |(renew_before, renew_before_percentage)| RenewalPolicy {
                renew_before,
                renew_before_percentage,
                ..RenewalPolicy::default()
            },
        )
    }

    proptest! {
        #[test]
        fn within_not_before_and_the_configured_point(
            nb in time(), life in lifetime(), policy in any_policy(), identity in "\\PC{0,40}",
        ) {
            let na = nb + life;
            let rt = renewal_time(nb, na, &policy, &identity);
            prop_assert!(rt >= nb);
            prop_assert!(rt <= unspread_renewal_time(nb, na, &policy));
            prop_assert_eq!(rt, renewal_time(nb, na, &policy, &identity));
        }

        #[test]
        fn monotone_in_not_after(
            nb in time(), life in lifetime(), longer in 0..30 * DAY, policy in any_policy(), identity in "\\PC{0,40}",
        ) {
            let (short, long) = (life, life + Duration::from_secs(longer));
            // cert-manager's own rule jumps back where renewBefore starts being shorter than the
            // lifetime; across that point, compare without renewBefore instead.
            let uses_before = |l: Duration| policy.renew_before.is_some_and(|b| !b.is_zero() && b < l);
            let policy = if uses_before(short) == uses_before(long) {
                policy.clone()
            } else {
                RenewalPolicy { renew_before: None, ..policy }
            };
            prop_assert!(renewal_time(nb, nb + short, &policy, &identity) <= renewal_time(nb, nb + long, &policy, &identity));
        }

        #[test]
        fn spreads_whenever_the_window_spans_seconds(life in 200..90 * DAY) {
            let (nb, na) = (at(ISSUED), at(ISSUED + life));
            let distinct: std::collections::BTreeSet<_> = (0..64)
                .map(|i| renewal_time(nb, na, &RenewalPolicy::default(), &format!("team-{i}/api")))
                .collect();
            // The window is at least 13 s here; 64 identities must land on several seconds.
            prop_assert!(distinct.len() >= 5, "{}", distinct.len());
        }
    }
}
