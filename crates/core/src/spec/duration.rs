//! Go duration strings (`2160h`, `1h30m`, `1.5h`, `300ms`).
//!
//! cert-manager's `duration`, `renewBefore` and renewal windows are `metav1.Duration`, which is
//! parsed by Go's `time.ParseDuration`. Manifests written for cert-manager must mean the same
//! here, so the parser follows Go's grammar and arithmetic exactly: an optional sign, then one or
//! more `<decimal><unit>` terms with units `ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`, `h`; a bare `0`
//! is allowed; fractions are truncated to whole nanoseconds the way Go truncates them; anything
//! above Go's limit (about 292 years) is an overflow. Negative durations parse in Go but make no
//! sense for a certificate, so they are rejected here with their own error.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("invalid duration {0:?}")]
    Invalid(String),
    #[error("missing unit in duration {0:?} (units: ns, us, ms, s, m, h)")]
    MissingUnit(String),
    #[error("unknown unit {unit:?} in duration {input:?} (units: ns, us, ms, s, m, h)")]
    UnknownUnit { unit: String, input: String },
    #[error("duration {0:?} is too large (more than 2562047h)")]
    Overflow(String),
    #[error("negative duration {0:?} is not allowed")]
    Negative(String),
}

/// Go's limit: durations are an int64 count of nanoseconds.
const MAX_NANOS: u64 = i64::MAX as u64;
/// The largest magnitude a term may reach while parsing (Go allows `1<<63` before the sign).
const LIMIT: u64 = 1 << 63;

fn unit_nanos(unit: &[u8]) -> Option<u64> {
    Some(match unit {
        b"ns" => 1,
        // "µs" (U+00B5 micro sign) and "μs" (U+03BC Greek mu), as Go accepts both.
        b"us" | [0xC2, 0xB5, b's'] | [0xCE, 0xBC, b's'] => 1_000,
        b"ms" => 1_000_000,
        b"s" => 1_000_000_000,
        b"m" => 60 * 1_000_000_000,
        b"h" => 3_600 * 1_000_000_000,
        _ => return None,
    })
}

/// Leading decimal integer; `None` on overflow past 2^63 (Go's `leadingInt`).
fn leading_int(s: &[u8]) -> Option<(u64, &[u8])> {
    let mut x: u64 = 0;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        if x > LIMIT / 10 {
            return None;
        }
        x = x * 10 + u64::from(s[i] - b'0');
        if x > LIMIT {
            return None;
        }
        i += 1;
    }
    Some((x, &s[i..]))
}

/// Leading fraction digits as an integer and its scale; digits past int64 precision are
/// dropped rather than failing (Go's `leadingFraction`).
fn leading_fraction(s: &[u8]) -> (u64, f64, &[u8]) {
    let mut x: u64 = 0;
    let mut scale = 1.0_f64;
    let mut overflow = false;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        if !overflow {
            if x > (LIMIT - 1) / 10 {
                overflow = true;
            } else {
                let y = x * 10 + u64::from(s[i] - b'0');
                if y > LIMIT {
                    overflow = true;
                } else {
                    x = y;
                    scale *= 10.0;
                }
            }
        }
        i += 1;
    }
    (x, scale, &s[i..])
}

/// Parses a Go duration string, as `time.ParseDuration` does, into a non-negative [`Duration`].
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(input.to_owned());
    let mut s = input.as_bytes();
    let mut negative = false;
    if let Some((&sign @ (b'-' | b'+'), rest)) = s.split_first() {
        negative = sign == b'-';
        s = rest;
    }
    if s == b"0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(if input.is_empty() {
            DurationError::Empty
        } else {
            invalid()
        });
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let before = s.len();
        // Go calls a run of digits past 2^63 "invalid"; it is a number too large.
        let (whole, rest) = leading_int(s).ok_or_else(|| DurationError::Overflow(input.to_owned()))?;
        s = rest;
        let has_int = before != s.len();
        let (mut fraction, mut scale, mut has_fraction) = (0, 1.0, false);
        if let Some((b'.', rest)) = s.split_first() {
            let before = rest.len();
            (fraction, scale, s) = leading_fraction(rest);
            has_fraction = before != s.len();
        }
        if !has_int && !has_fraction {
            return Err(invalid());
        }
        let unit_len = s
            .iter()
            .position(|&c| c == b'.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(input.to_owned()));
        }
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        let unit = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            unit: String::from_utf8_lossy(unit).into_owned(),
            input: input.to_owned(),
        })?;
        let overflow = || DurationError::Overflow(input.to_owned());
        if whole > LIMIT / unit {
            return Err(overflow());
        }
        let mut term = whole * unit;
        if fraction > 0 {
            // Go does this step in float64 and truncates; doing the same keeps `1.1s` and
            // friends bit-for-bit equal to what cert-manager computes.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let extra = (fraction as f64 * (unit as f64 / scale)) as u64;
            term = term
                .checked_add(extra)
                .filter(|&t| t <= LIMIT)
                .ok_or_else(overflow)?;
        }
        total = total
            .checked_add(term)
            .filter(|&t| t <= LIMIT)
            .ok_or_else(overflow)?;
    }
    if negative {
        return if total == 0 {
            Ok(Duration::ZERO)
        } else {
            Err(DurationError::Negative(input.to_owned()))
        };
    }
    if total > MAX_NANOS {
        return Err(DurationError::Overflow(input.to_owned()));
    }
    Ok(Duration::from_nanos(total))
}

/// Formats a duration as Go's `Duration.String` does (`2160h0m0s`, `1.5s`, `300ms`, `0s`), so
/// messages show durations the way cert-manager users know them. Parsing the result gives the
/// same duration back.
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000_000_000 {
        let (unit, precision) = match nanos {
            n if n < 1_000 => ("ns", 0),
            n if n < 1_000_000 => ("µs", 3),
            _ => ("ms", 6),
        };
        return format!("{}{unit}", decimal(nanos, precision));
    }
    let seconds = nanos / 1_000_000_000;
    let sub = nanos % 1_000_000_000;
    let mut out = String::new();
    let (hours, minutes) = (seconds / 3600, (seconds / 60) % 60);
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if seconds >= 60 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&decimal((seconds % 60) * 1_000_000_000 + sub, 9));
    out.push('s');
    out
}

/// `value / 10^precision` with the fraction's trailing zeros (and a bare point) omitted.
fn decimal(value: u128, precision: u32) -> String {
    let scale = 10u128.pow(precision);
    let (whole, fraction) = (value / scale, value % scale);
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:0width$}", width = precision as usize);
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// A `metav1.Duration` field: a Go duration string in YAML/JSON, a [`Duration`] in Rust.
///
/// Decoding fails (with the field's path) on a malformed string, so a decoded spec never holds
/// an unparsed duration and the resolved views need no error paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_go_duration(self.0))
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_go_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_go_duration(&text)
            .map(GoDuration)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Duration {
        parse_go_duration(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    const H: u64 = 3600;

    #[test]
    fn parses_what_cert_manager_manifests_use() {
        assert_eq!(parse("2160h"), Duration::from_secs(2160 * H));
        assert_eq!(parse("1h30m"), Duration::from_secs(H + 1800));
        assert_eq!(parse("90m"), Duration::from_secs(5400));
        assert_eq!(parse("45s"), Duration::from_secs(45));
        assert_eq!(parse("1.5h"), Duration::from_secs(H + 1800));
        assert_eq!(parse("300ms"), Duration::from_millis(300));
        assert_eq!(parse("1h0m0s"), Duration::from_secs(H));
        assert_eq!(parse("0"), Duration::ZERO);
        assert_eq!(parse("+5m"), Duration::from_secs(300));
        assert_eq!(parse("-0s"), Duration::ZERO);
        assert_eq!(parse(".5s"), Duration::from_millis(500));
        assert_eq!(parse("1.s"), Duration::from_secs(1));
        assert_eq!(parse("1µs2μs3us4ns"), Duration::from_nanos(6004));
        assert_eq!(parse("1.0000000000000000000001s"), Duration::from_secs(1));
        assert_eq!(
            parse("2562047h47m16.854775807s"),
            Duration::from_nanos(i64::MAX as u64)
        );
    }

    #[test]
    fn fractions_truncate_like_go() {
        // Go: time.ParseDuration("1.1ns") == 1ns, ("0.3333333333s") == 333333333ns.
        assert_eq!(parse("1.1ns"), Duration::from_nanos(1));
        assert_eq!(parse("0.3333333333s"), Duration::from_nanos(333_333_333));
        assert_eq!(parse("1.000000001s"), Duration::from_nanos(1_000_000_001));
    }

    #[test]
    fn rejects_what_go_rejects() {
        use DurationError::*;
        assert_eq!(parse_go_duration(""), Err(Empty));
        for bad in [
            "-", "+", ".", "h", "1.h.", "1h 30m", " 1h", "1..5h", ".s", "x1h", "1d", "1H",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_go_duration("90"), Err(MissingUnit("90".into())));
        assert_eq!(parse_go_duration("1h30"), Err(MissingUnit("1h30".into())));
        assert_eq!(
            parse_go_duration("90d"),
            Err(UnknownUnit {
                unit: "d".into(),
                input: "90d".into()
            })
        );
        assert!(matches!(
            parse_go_duration("2562047h47m16.854775808s"),
            Err(Overflow(_))
        ));
        assert!(matches!(
            parse_go_duration("9223372036854775808ns"),
            Err(Overflow(_))
        ));
        assert!(matches!(
            parse_go_duration("99999999999999999999h"),
            Err(Overflow(_))
        ));
        assert_eq!(parse_go_duration("-5m"), Err(Negative("-5m".into())));
    }

    #[test]
    fn formats_like_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_nanos(1_100), "1.1µs"),
            (Duration::from_millis(300), "300ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_secs(H), "1h0m0s"),
            (Duration::from_secs(2160 * H), "2160h0m0s"),
            (Duration::from_nanos(i64::MAX as u64), "2562047h47m16.854775807s"),
        ];
        for (d, s) in cases {
            assert_eq!(format_go_duration(d), s);
        }
    }

    #[test]
    fn serde_round_trip() {
        let d: GoDuration = serde_yaml_ng::from_str("1.5h").unwrap();
        assert_eq!(d.get(), Duration::from_secs(5400));
        assert_eq!(serde_yaml_ng::to_string(&d).unwrap().trim(), "1h30m0s");
        let err = serde_yaml_ng::from_str::<GoDuration>("90d")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown unit \"d\""), "{err}");
    }

    /// A duration as a sum of random terms in random units, with its exact value.
    fn terms() -> impl Strategy<Value = (String, u64)> {
        let unit = prop::sample::select(vec![
            ("h", 3_600_000_000_000u64),
            ("m", 60_000_000_000),
            ("s", 1_000_000_000),
            ("ms", 1_000_000),
            ("us", 1_000),
            ("µs", 1_000),
            ("ns", 1),
        ]);
        prop::collection::vec((0u64..10_000, unit), 1..5).prop_map(|terms| {
            let text = terms
                .iter()
                .map(|(n, (u, _))| format!("{n}{u}"))
                .collect::<String>();
            (text, terms.iter().map(|(n, (_, nanos))| n * nanos).sum())
        })
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(nanos in 0..=i64::MAX as u64) {
            let d = Duration::from_nanos(nanos);
            prop_assert_eq!(parse_go_duration(&format_go_duration(d)), Ok(d));
        }

        #[test]
        fn sums_of_terms_parse_exactly((text, nanos) in terms()) {
            prop_assert_eq!(parse_go_duration(&text), Ok(Duration::from_nanos(nanos)));
        }

        #[test]
        fn whole_seconds_as_fractional_hours(secs in 0u64..1_000_000) {
            // `x.y h` where the fraction is exact in decimal: 0.25h, 1.5h, ...
            let quarter_hours = secs / 900;
            let text = format!("{}.{:02}h", quarter_hours / 4, (quarter_hours % 4) * 25);
            prop_assert_eq!(parse_go_duration(&text), Ok(Duration::from_secs(quarter_hours * 900)));
        }

        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = parse_go_duration(&s);
        }

        /// Digits and units only, of any size: no panic, and what is accepted is within Go's
        /// bound and prints back to itself.
        #[test]
        fn hostile_huge_durations_are_refused_or_round_trip(
            s in "[0-9]{1,25}(\\.[0-9]{0,25})?(ns|us|ms|s|m|h)([0-9]{1,25}(ns|us|ms|s|m|h))?"
        ) {
            match parse_go_duration(&s) {
                Ok(d) => {
                    prop_assert!(d <= Duration::from_nanos(MAX_NANOS));
                    prop_assert_eq!(parse_go_duration(&format_go_duration(d)), Ok(d));
                }
                Err(e) => prop_assert!(matches!(e, DurationError::Overflow(_)), "{s}: {e}"),
            }
        }
    }
}
