//! Time, in the one shape certkeeper writes and reads it.
//!
//! - Unix seconds ([`UnixSeconds`]) are what the engine persists and compares; [`to_unix`] and
//!   [`from_unix`] convert from and to [`SystemTime`] (floor to the whole second).
//! - RFC 3339 in UTC with whole seconds (`2026-01-02T03:04:05Z`, Kubernetes' `metav1.Time`) is
//!   what status fields, Events and messages show: [`rfc3339`], [`rfc3339_unix`].
//! - RFC 3339 with microseconds (`2026-01-02T03:04:05.123456Z`, Kubernetes' `metav1.MicroTime`)
//!   is what a Lease's times are: [`rfc3339_micros`].
//! - [`parse_rfc3339`] and [`parse_rfc3339_unix`] read what the API server writes: an optional
//!   fraction, then `Z` or a numeric offset (`+02:00`).
//! - Go durations (`2160h`, `1h30m`), as cert-manager's specs carry them, are defined in
//!   [`crate::spec`] and re-exported here.
//!
//! The calendar arithmetic is Howard Hinnant's proleptic-Gregorian `days_from_civil` and
//! `civil_from_days`, exact for every year; no date crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use crate::spec::{DurationError, GoDuration, format_go_duration, parse_go_duration};

/// Seconds since the Unix epoch, negative before it: what is persisted and compared.
pub type UnixSeconds = i64;

/// `0000-01-01T00:00:00Z`, the first second RFC 3339 can write.
pub const RFC3339_MIN: UnixSeconds = -62_167_219_200;
/// `9999-12-31T23:59:59Z`, the last second RFC 3339 can write.
pub const RFC3339_MAX: UnixSeconds = 253_402_300_799;

const DAY: i64 = 86_400;
const NANOS_PER_SEC: u32 = 1_000_000_000;

/// Why a timestamp was not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 3339 time {input:?}: {reason}")]
pub struct TimeError {
    /// The text, cut to its first 64 characters.
    pub input: String,
    pub reason: &'static str,
}

impl TimeError {
    fn new(input: &str, reason: &'static str) -> TimeError {
        TimeError {
            input: input.chars().take(64).collect(),
            reason,
        }
    }
}

/// Whole seconds since the Unix epoch, rounded down (towards the past); saturates at the ends of
/// `i64`.
pub fn to_unix(t: SystemTime) -> UnixSeconds {
    split(t).0
}

/// The [`SystemTime`] at `secs` Unix seconds. A second the platform cannot represent is first
/// brought into RFC 3339's range (years 0000 to 9999), which every supported platform can.
pub fn from_unix(secs: UnixSeconds) -> SystemTime {
    checked_from_unix(secs)
        .or_else(|| checked_from_unix(secs.clamp(RFC3339_MIN, RFC3339_MAX)))
        .unwrap_or(UNIX_EPOCH)
}

fn checked_from_unix(secs: UnixSeconds) -> Option<SystemTime> {
    let magnitude = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    }
}

/// Whole seconds (rounded down) and the nanoseconds past them.
fn split(t: SystemTime) -> (UnixSeconds, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => (
            i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
            after.subsec_nanos(),
        ),
        Err(before) => {
            let before = before.duration();
            let secs = i64::try_from(before.as_secs()).map_or(i64::MIN, |s| -s);
            match before.subsec_nanos() {
                0 => (secs, 0),
                nanos => (secs.saturating_sub(1), NANOS_PER_SEC - nanos),
            }
        }
    }
}

/// RFC 3339 in UTC with whole seconds, `2026-01-02T03:04:05Z` (Kubernetes' `metav1.Time`). The
/// fraction of a second is dropped.
pub fn rfc3339(t: SystemTime) -> String {
    rfc3339_unix(to_unix(t))
}

/// [`rfc3339`] of a Unix second.
pub fn rfc3339_unix(secs: UnixSeconds) -> String {
    let (date, [hh, mm, ss]) = civil(secs);
    format!("{date}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// RFC 3339 in UTC with microseconds, `2026-01-02T03:04:05.123456Z` (Kubernetes'
/// `metav1.MicroTime`, as in a Lease's `acquireTime` and `renewTime`). Nanoseconds are dropped.
pub fn rfc3339_micros(t: SystemTime) -> String {
    let (secs, nanos) = split(t);
    let (date, [hh, mm, ss]) = civil(secs);
    format!("{date}T{hh:02}:{mm:02}:{ss:02}.{:06}Z", nanos / 1_000)
}

/// The date (`YYYY-MM-DD`) and the time of day of a Unix second.
fn civil(secs: UnixSeconds) -> (String, [i64; 3]) {
    let (days, rem) = (secs.div_euclid(DAY), secs.rem_euclid(DAY));
    let (year, month, day) = civil_from_days(days);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        [rem / 3600, rem % 3600 / 60, rem % 60],
    )
}

/// Parses an RFC 3339 timestamp as the API server writes it, to Unix seconds (a fraction is
/// dropped, rounding towards the past).
pub fn parse_rfc3339_unix(s: &str) -> Result<UnixSeconds, TimeError> {
    parse(s).map(|(secs, _)| secs)
}

/// Parses an RFC 3339 timestamp as the API server writes it, keeping the fraction (to the
/// nanosecond; further digits are dropped).
pub fn parse_rfc3339(s: &str) -> Result<SystemTime, TimeError> {
    let (secs, nanos) = parse(s)?;
    checked_from_unix(secs)
        .and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nanos))))
        .ok_or_else(|| TimeError::new(s, "out of this platform's range"))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`, `T` and `Z` in either case (RFC 3339,
/// section 5.6). Seconds run to 59: leap seconds are refused, as Go's `time.Parse` refuses them.
fn parse(s: &str) -> Result<(UnixSeconds, u32), TimeError> {
    let err = |reason| TimeError::new(s, reason);
    let b = s.as_bytes();
    let field = |at: usize, len: usize| -> Option<i64> {
        let digits = b.get(at..at + len)?;
        digits.iter().try_fold(0i64, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    let sep = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));
    let date = (|| {
        let (y, m, d) = (field(0, 4)?, field(5, 2)?, field(8, 2)?);
        (sep(4, b"-") && sep(7, b"-")).then_some((y, m, d))
    })()
    .ok_or_else(|| err("expected a date YYYY-MM-DD"))?;
    if !sep(10, b"Tt") {
        return Err(err("expected 'T' after the date"));
    }
    let clock = (|| {
        let (hh, mm, ss) = (field(11, 2)?, field(14, 2)?, field(17, 2)?);
        (sep(13, b":") && sep(16, b":")).then_some((hh, mm, ss))
    })()
    .ok_or_else(|| err("expected a time HH:MM:SS"))?;

    let mut rest = b.get(19..).unwrap_or_default();
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let len = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 {
            return Err(err("expected digits after '.'"));
        }
        nanos = fraction[..len]
            .iter()
            .chain(std::iter::repeat(&b'0'))
            .take(9)
            .fold(0, |n, &d| n * 10 + u32::from(d - b'0'));
        rest = &fraction[len..];
    }
    let offset = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |a: u8, b: u8| {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| i64::from(a - b'0') * 10 + i64::from(b - b'0'))
            };
            let (Some(oh), Some(om)) = (two(*h1, *h2), two(*m1, *m2)) else {
                return Err(err("expected an offset ±HH:MM"));
            };
            if oh > 23 || om > 59 {
                return Err(err("offset out of range"));
            }
            let magnitude = oh * 3600 + om * 60;
            if *sign == b'-' { -magnitude } else { magnitude }
        }
        [] => return Err(err("missing time zone ('Z' or ±HH:MM)")),
        _ => return Err(err("expected 'Z' or an offset ±HH:MM after the time")),
    };

    let (year, month, day) = date;
    if !(1..=12).contains(&month) {
        return Err(err("month out of range"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(err("day out of range"));
    }
    let (hh, mm, ss) = clock;
    if hh > 23 || mm > 59 || ss > 59 {
        return Err(err("time of day out of range"));
    }
    let secs = days_from_civil(year, month, day) * DAY + hh * 3600 + mm * 60 + ss - offset;
    Ok((secs, nanos))
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic-Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic-Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn formats_whole_seconds_in_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_unix(1_800_000_000), "2027-01-15T08:00:00Z");
        assert_eq!(rfc3339_unix(1_767_323_045), "2026-01-02T03:04:05Z");
        assert_eq!(rfc3339_unix(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339_unix(RFC3339_MIN), "0000-01-01T00:00:00Z");
        assert_eq!(rfc3339_unix(RFC3339_MAX), "9999-12-31T23:59:59Z");
        // The fraction is dropped, rounding towards the past on both sides of the epoch.
        assert_eq!(
            rfc3339(from_unix(5) + Duration::from_millis(999)),
            "1970-01-01T00:00:05Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_millis(1)),
            "1969-12-31T23:59:59Z"
        );
    }

    #[test]
    fn leap_days() {
        assert_eq!(rfc3339_unix(951_782_400), "2000-02-29T00:00:00Z"); // divisible by 400
        assert_eq!(rfc3339_unix(951_782_400 + DAY), "2000-03-01T00:00:00Z");
        assert_eq!(rfc3339_unix(1_709_164_800), "2024-02-29T00:00:00Z");
        assert_eq!(parse_rfc3339_unix("2024-02-29T00:00:00Z"), Ok(1_709_164_800));
        assert_eq!(parse_rfc3339_unix("2000-02-29T00:00:00Z"), Ok(951_782_400));
        // 1900 and 2100 are not leap years (divisible by 100, not by 400); 2023 is not either.
        for refused in [
            "2100-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2023-02-29T00:00:00Z",
        ] {
            assert_eq!(
                parse_rfc3339_unix(refused).map_err(|e| e.reason),
                Err("day out of range")
            );
        }
        assert_eq!(rfc3339_unix(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(parse_rfc3339_unix("2100-02-28T23:59:59Z"), Ok(4_107_542_399));
    }

    #[test]
    fn unix_seconds_round_trip_and_round_down() {
        assert_eq!(to_unix(from_unix(-5)), -5);
        assert_eq!(to_unix(from_unix(1_800_000_000)), 1_800_000_000);
        assert_eq!(to_unix(from_unix(7) + Duration::from_nanos(999_999_999)), 7);
        assert_eq!(to_unix(UNIX_EPOCH - Duration::from_millis(1500)), -2);
        assert_eq!(to_unix(from_unix(i64::MAX)), i64::MAX);
    }

    #[test]
    fn micro_time_has_microseconds() {
        let t = UNIX_EPOCH + Duration::from_nanos(1_800_000_000_123_456_789);
        assert_eq!(rfc3339_micros(t), "2027-01-15T08:00:00.123456Z");
        assert_eq!(rfc3339_micros(from_unix(0)), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339_micros(UNIX_EPOCH - Duration::from_micros(1)),
            "1969-12-31T23:59:59.999999Z"
        );
        assert_eq!(
            parse_rfc3339(&rfc3339_micros(t)),
            Ok(t - Duration::from_nanos(789))
        );
    }

    #[test]
    fn parses_fractions() {
        let whole = parse_rfc3339_unix("2026-01-02T03:04:05Z");
        assert_eq!(whole, Ok(1_767_323_045));
        for s in [
            "2026-01-02T03:04:05.1Z",
            "2026-01-02T03:04:05.123Z",
            "2026-01-02T03:04:05.999999999999Z",
        ] {
            assert_eq!(parse_rfc3339_unix(s), whole, "{s}");
        }
        let at = |s| parse_rfc3339(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap_or_default());
        assert_eq!(at("1970-01-01T00:00:01.5Z"), Ok(Duration::from_millis(1500)));
        assert_eq!(at("1970-01-01T00:00:00.000000001Z"), Ok(Duration::from_nanos(1)));
        assert_eq!(
            at("1970-01-01T00:00:00.1234567891Z"),
            Ok(Duration::from_nanos(123_456_789))
        );
    }

    #[test]
    fn parses_offsets_and_lower_case() {
        let utc = Ok(1_767_323_045);
        assert_eq!(parse_rfc3339_unix("2026-01-02T05:04:05+02:00"), utc);
        assert_eq!(parse_rfc3339_unix("2026-01-01T21:34:05-05:30"), utc);
        assert_eq!(parse_rfc3339_unix("2026-01-02T03:04:05+00:00"), utc);
        assert_eq!(parse_rfc3339_unix("2026-01-02T03:04:05-00:00"), utc);
        assert_eq!(parse_rfc3339_unix("2026-01-02t03:04:05z"), utc);
        assert_eq!(parse_rfc3339_unix("2026-01-02T05:04:05.25+02:00"), utc);
        // An offset can move the date across a year boundary.
        assert_eq!(parse_rfc3339_unix("1969-12-31T23:00:00-01:00"), Ok(0));
    }

    #[test]
    fn refuses_garbage() {
        for s in [
            "",
            "yesterday",
            "2026-01-02",
            "2026-01-02T03:04:05",
            "2026-01-02 03:04:05Z",
            "2026-01-02T03:04Z",
            "2026-1-02T03:04:05Z",
            "+026-01-02T03:04:05Z",
            "2026-+1-02T03:04:05Z",
            "2026-01-02T03:04:05.Z",
            "2026-01-02T03:04:05.5",
            "2026-01-02T03:04:05ZZ",
            "2026-01-02T03:04:05garbageZ",
            "2026-01-02T03:04:05+0200",
            "2026-01-02T03:04:05+02",
            "2026-01-02T03:04:05+24:00",
            "2026-01-02T03:04:05+02:60",
            "2026-01-02T03:04:05 Z",
            "2026-13-02T03:04:05Z",
            "2026-00-02T03:04:05Z",
            "2026-01-00T03:04:05Z",
            "2026-04-31T03:04:05Z",
            "2026-01-32T03:04:05Z",
            "2026-01-02T24:00:00Z",
            "2026-01-02T23:60:00Z",
            "2026-12-31T23:59:60Z",
            "２026-01-02T03:04:05Z",
            " 2026-01-02T03:04:05Z",
        ] {
            assert!(parse_rfc3339_unix(s).is_err(), "{s:?} was accepted");
            assert!(parse_rfc3339(s).is_err(), "{s:?} was accepted");
        }
        let e = parse_rfc3339_unix("yesterday").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"invalid RFC 3339 time "yesterday": expected a date YYYY-MM-DD"#
        );
        assert_eq!(parse_rfc3339_unix(&"9".repeat(1000)).unwrap_err().input.len(), 64);
    }

    #[test]
    fn civil_days_agree_with_counting() {
        // An independent calendar: walk every day from 1970 to 9999 and compare.
        let (mut y, mut m, mut d) = (1970, 1, 1);
        for days in 0..=RFC3339_MAX / DAY {
            assert_eq!(civil_from_days(days), (y, m, d));
            assert_eq!(days_from_civil(y, m, d), days);
            d += 1;
            if d > days_in_month(y, m) {
                (m, d) = (m + 1, 1);
            }
            if m > 12 {
                (y, m) = (y + 1, 1);
            }
        }
        assert_eq!((y, m, d), (10_000, 1, 1));
    }

    /// Any second of years 1970 to 9999.
    fn second() -> impl Strategy<Value = UnixSeconds> {
        0..=RFC3339_MAX
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(secs in second()) {
            let text = rfc3339_unix(secs);
            prop_assert_eq!(text.len(), 20);
            prop_assert_eq!(parse_rfc3339_unix(&text), Ok(secs));
            prop_assert_eq!(parse_rfc3339(&text), Ok(from_unix(secs)));
            prop_assert_eq!(rfc3339(from_unix(secs)), text);
        }

        #[test]
        fn micro_time_round_trips(secs in second(), micros in 0u32..1_000_000) {
            let t = from_unix(secs) + Duration::from_micros(u64::from(micros));
            let text = rfc3339_micros(t);
            prop_assert_eq!(&text[..19], &rfc3339_unix(secs)[..19]);
            prop_assert_eq!(parse_rfc3339(&text), Ok(t));
            prop_assert_eq!(parse_rfc3339_unix(&text), Ok(secs));
        }

        #[test]
        fn offsets_name_the_same_instant(secs in 86_400..=RFC3339_MAX - 86_400, minutes in -1439i64..=1439) {
            // The local time `minutes` away from UTC, written with that offset.
            let local = rfc3339_unix(secs + minutes * 60);
            let sign = if minutes < 0 { '-' } else { '+' };
            let offset = format!("{sign}{:02}:{:02}", minutes.abs() / 60, minutes.abs() % 60);
            let text = format!("{}{offset}", local.trim_end_matches('Z'));
            prop_assert_eq!(parse_rfc3339_unix(&text), Ok(secs));
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,40}") {
            let _ = parse_rfc3339(&s);
        }

        #[test]
        fn parsing_near_misses_never_panics(s in "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?([Zz]|[+-][0-9]{2}:[0-9]{2})?") {
            if let Ok(secs) = parse_rfc3339_unix(&s) {
                prop_assert!((RFC3339_MIN - DAY..=RFC3339_MAX + DAY).contains(&secs));
            }
        }
    }
}
