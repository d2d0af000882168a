//! Renewal windows (`spec.renewal.windows`): when automatic renewals may start.
//!
//! A window opens at every time its five-field cron expression fires, in its IANA time zone (UTC
//! when unset), and stays open for `windowDuration`. cert-manager parses the expression with
//! robfig/cron (`Minute | Hour | Dom | Month | Dow | Descriptor`); [`RenewalWindow::parse`]
//! accepts exactly that grammar, so a manifest gets the same verdict here and there:
//! - fields `minute hour day-of-month month day-of-week` with `*`, `?`, `a`, `a-b`, `*/n`,
//!   `a-b/n`, `a/n` (from `a` to the field's end) and comma lists; month names `jan`..`dec`
//!   and weekday names `sun`..`sat` (any case); weekdays 0-6, Sunday = 0;
//! - descriptors `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`;
//! - a `CRON_TZ=Zone ` or `TZ=Zone ` prefix when `timezone` is unset.
//!
//! Day of month and day of week combine as in cron: when one of them is `*` (or `?`) both must
//! match, otherwise either may. The grammar is checked here and the expression handed to
//! [`croner`] in a canonical form (`*` or explicit value lists), which finds occurrences in the
//! zone on [`jiff`]'s zoned times, daylight saving time included (a start that falls into a
//! spring-forward gap opens at the first time after the gap; robfig/cron skips it that day).
//!
//! Not accepted, with their own errors: `@every <duration>` (robfig takes it, but it names no
//! fixed start time, so it defines no window), a zero `windowDuration` and an expression that
//! never fires (cert-manager accepts both and then never finds a window).
//!
//! Time zones come from `jiff`'s database: the system's `/usr/share/zoneinfo` (or `TZDIR`) when
//! present, else the IANA database compiled into certkeeper, so a machine without zoneinfo still
//! resolves every zone. Names are matched exactly, as Go's `time.LoadLocation` does.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::spec::limits::{MAX_CRON_BYTES, MAX_RENEWAL_WINDOWS, MAX_TIMEZONE_BYTES};

/// Why a renewal window was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("cron expression is {len} bytes, more than the limit of {max}")]
    CronTooLong { len: usize, max: usize },
    #[error("timezone is {len} bytes, more than the limit of {max}")]
    TimezoneTooLong { len: usize, max: usize },
    #[error("more than {max} renewal windows (the limit)")]
    TooManyWindows { max: usize },
    #[error("invalid cron syntax {cron:?}: {reason}")]
    Cron { cron: String, reason: CronSyntax },
    #[error(
        "@every is not supported by certkeeper in a renewal window: it names no fixed start time; use a five-field expression"
    )]
    Every,
    #[error("invalid value for timezone {0:?}: timezone must be an IANA time zone name")]
    UnknownTimezone(String),
    #[error("the cron expression sets a time zone ({0}) and so does timezone; set only one")]
    TimezoneTwice(String),
    #[error("windowDuration must be greater than 0")]
    ZeroDuration,
    #[error("the cron expression {0:?} never fires, so the window never opens")]
    NeverOpens(String),
    #[error(
        "the renewal windows open at most once every {}, longer than the certificate duration {}: a certificate issued in one window expires before the next one opens, so its renewals would be forced outside the windows",
        crate::time::format_go_duration(*.gap), crate::time::format_go_duration(*.duration)
    )]
    TooRare { gap: Duration, duration: Duration },
}

/// What is wrong with a cron expression's text (robfig/cron's rules).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronSyntax {
    #[error("expected exactly 5 fields, found {0}")]
    FieldCount(usize),
    #[error("unrecognized descriptor {0:?}")]
    Descriptor(String),
    #[error("expected a cron expression after the time zone prefix")]
    EmptyAfterPrefix,
    #[error("{field}: {problem}")]
    Field {
        field: &'static str,
        problem: FieldSyntax,
    },
}

/// What is wrong with one field of a cron expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldSyntax {
    #[error("{0:?} is not a number or a name")]
    NotANumber(String),
    #[error("too many hyphens in {0:?}")]
    Hyphens(String),
    #[error("too many slashes in {0:?}")]
    Slashes(String),
    #[error("{value} is below the minimum {min}")]
    BelowMinimum { value: u32, min: u32 },
    #[error("{value} is above the maximum {max}")]
    AboveMaximum { value: u32, max: u32 },
    #[error("range start {start} is beyond its end {end}")]
    Inverted { start: u32, end: u32 },
    #[error("step must be a positive number")]
    ZeroStep,
}

/// One renewal window: a parsed cron expression, its zone and how long it stays open.
#[derive(Clone)]
pub struct RenewalWindow {
    /// The expression as written (for messages).
    text: String,
    /// The zone's name as written, `UTC` when unset.
    zone_name: String,
    zone: TimeZone,
    cron: Cron,
    duration: Duration,
}

impl fmt::Debug for RenewalWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for RenewalWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} in {} for {}",
            self.text,
            self.zone_name,
            crate::time::format_go_duration(self.duration)
        )
    }
}

/// Windows compare by what they were written as: the same text, zone and duration open at the
/// same times.
impl PartialEq for RenewalWindow {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text && self.zone_name == other.zone_name && self.duration == other.duration
    }
}
impl Eq for RenewalWindow {}

/// Where validation starts looking for openings (any fixed time works: cron schedules repeat;
/// a fixed one keeps validation a pure function of the manifest).
pub const VALIDATION_REFERENCE: i64 = 1_735_689_600; // 2025-01-01T00:00:00Z

impl RenewalWindow {
    /// A window from `spec.renewal.windows[]`: `cron`, `timezone` ("" for UTC) and
    /// `windowDuration`.
    pub fn parse(cron: &str, timezone: &str, duration: Duration) -> Result<RenewalWindow, WindowError> {
        if cron.len() > MAX_CRON_BYTES {
            return Err(WindowError::CronTooLong {
                len: cron.len(),
                max: MAX_CRON_BYTES,
            });
        }
        if timezone.len() > MAX_TIMEZONE_BYTES {
            return Err(WindowError::TimezoneTooLong {
                len: timezone.len(),
                max: MAX_TIMEZONE_BYTES,
            });
        }
        if duration.is_zero() {
            return Err(WindowError::ZeroDuration);
        }
        let syntax = |reason| WindowError::Cron {
            cron: cron.to_owned(),
            reason,
        };
        let (prefix_zone, expression) = split_zone_prefix(cron.trim()).map_err(syntax)?;
        let zone_name = match (prefix_zone, timezone) {
            (Some(prefix), "") => prefix,
            (Some(prefix), _) => return Err(WindowError::TimezoneTwice(prefix.to_owned())),
            (None, "") => "UTC",
            (None, zone) => zone,
        };
        let zone = lookup_zone(zone_name)?;
        if expression.starts_with("@every") {
            return Err(WindowError::Every);
        }
        let canonical = canonical_expression(expression).map_err(syntax)?;
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        // The canonical form is plain numbers, commas and `*`, which croner always takes; an
        // error here would be a disagreement between the two grammars, reported as such.
        let parsed = parser.parse(&canonical).map_err(|e| {
            syntax(CronSyntax::Descriptor(format!(
                "{canonical} (rejected by the evaluator: {e})"
            )))
        })?;
        let window = RenewalWindow {
            text: cron.to_owned(),
            zone_name: zone_name.to_owned(),
            zone,
            cron: parsed,
            duration,
        };
        let reference = crate::time::from_unix(VALIDATION_REFERENCE);
        if window.next_start_after(reference).is_none() {
            return Err(WindowError::NeverOpens(cron.to_owned()));
        }
        Ok(window)
    }

    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// The first start strictly after `t`, `None` when the expression fires no more (within
    /// croner's search range).
    pub fn next_start_after(&self, t: SystemTime) -> Option<SystemTime> {
        let at = Timestamp::try_from(t).ok()?.to_zoned(self.zone.clone());
        let next = self.cron.find_next_occurrence(&at, false).ok()?;
        Some(SystemTime::from(next.timestamp()))
    }

    /// The earliest time at or after `t` inside this window: `t` itself when a window that
    /// opened at most `windowDuration` ago is still open, else the next start.
    pub fn first_open_from(&self, t: SystemTime) -> Option<SystemTime> {
        let since = t.checked_sub(self.duration)?;
        let start = self.next_start_after(since)?;
        Some(start.max(t))
    }
}

/// The renewal windows of one Certificate; empty means renewals may start at any time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenewalWindows(Arc<[RenewalWindow]>);

impl RenewalWindows {
    /// Windows from a list, bounded by [`MAX_RENEWAL_WINDOWS`].
    pub fn new(windows: Vec<RenewalWindow>) -> Result<RenewalWindows, WindowError> {
        if windows.len() > MAX_RENEWAL_WINDOWS {
            return Err(WindowError::TooManyWindows {
                max: MAX_RENEWAL_WINDOWS,
            });
        }
        Ok(RenewalWindows(windows.into()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &RenewalWindow> {
        self.0.iter()
    }

    /// The earliest time at or after `t` inside any window; `None` without windows or when none
    /// opens again.
    pub fn first_open_from(&self, t: SystemTime) -> Option<SystemTime> {
        self.0.iter().filter_map(|w| w.first_open_from(t)).min()
    }

    /// Whether renewals may start at `t`.
    pub fn contains(&self, t: SystemTime) -> bool {
        self.first_open_from(t) == Some(t)
    }

    /// Rejects windows that open less often than once per certificate `duration` (see
    /// [`WindowError::TooRare`]), looking at eight years of openings (leap days included), at
    /// most [`MAX_GAPS_CHECKED`] of them.
    pub fn check_frequency(&self, duration: Duration) -> Result<(), WindowError> {
        if self.is_empty() {
            return Ok(());
        }
        let from = crate::time::from_unix(VALIDATION_REFERENCE);
        match self.shortest_gap(from, EIGHT_YEARS, duration, MAX_GAPS_CHECKED) {
            Some(gap) if gap <= duration => Ok(()),
            Some(gap) => Err(WindowError::TooRare { gap, duration }),
            None => Err(WindowError::TooRare {
                gap: EIGHT_YEARS,
                duration,
            }),
        }
    }

    /// The shortest time between two consecutive openings (of any window), looked at over
    /// `span` from `from` and at most `max_openings` openings; `None` when fewer than two
    /// openings lie in that span. Stops early at the first gap not longer than `enough`.
    pub fn shortest_gap(
        &self,
        from: SystemTime,
        span: Duration,
        enough: Duration,
        max_openings: usize,
    ) -> Option<Duration> {
        let end = from.checked_add(span)?;
        let next = |t: SystemTime| self.0.iter().filter_map(|w| w.next_start_after(t)).min();
        let mut previous = next(from)?;
        let mut shortest: Option<Duration> = None;
        for _ in 0..max_openings {
            let Some(opening) = next(previous).filter(|&o| o <= end) else {
                break;
            };
            let gap = opening.duration_since(previous).unwrap_or_default();
            shortest = Some(shortest.map_or(gap, |s| s.min(gap)));
            if gap <= enough {
                break;
            }
            previous = opening;
        }
        shortest
    }
}

/// Eight years and two days: every leap day and weekday combination a cron can name recurs.
const EIGHT_YEARS: Duration = Duration::from_secs((8 * 365 + 4) * 86_400);
/// The most consecutive openings [`RenewalWindows::check_frequency`] measures; openings repeat
/// with the calendar, so their gaps are all seen long before.
pub const MAX_GAPS_CHECKED: usize = 2_000;

/// The zone named `name`, exactly as written (Go's `LoadLocation` is case-sensitive; jiff's
/// lookup is not, so the canonical name must equal the input).
fn lookup_zone(name: &str) -> Result<TimeZone, WindowError> {
    let unknown = || WindowError::UnknownTimezone(name.to_owned());
    if name == "UTC" {
        return Ok(TimeZone::UTC);
    }
    let zone = jiff::tz::db().get(name).map_err(|_| unknown())?;
    match zone.iana_name() {
        Some(canonical) if canonical == name => Ok(zone),
        _ => Err(unknown()),
    }
}

/// robfig/cron's `CRON_TZ=` / `TZ=` prefix: the zone and the rest of the expression.
fn split_zone_prefix(cron: &str) -> Result<(Option<&str>, &str), CronSyntax> {
    let Some(rest) = cron.strip_prefix("CRON_TZ=").or_else(|| cron.strip_prefix("TZ=")) else {
        return Ok((None, cron));
    };
    match rest.split_once(' ') {
        Some((zone, expression)) if !expression.trim().is_empty() => Ok((Some(zone), expression.trim())),
        _ => Err(CronSyntax::EmptyAfterPrefix),
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names for the values from `min` on.
    names: &'static [&'static str],
}

const FIELDS: [FieldSpec; 5] = [
    FieldSpec {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    FieldSpec {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    FieldSpec {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
    },
    FieldSpec {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
    },
    FieldSpec {
        name: "day of week",
        min: 0,
        max: 6,
        names: &WEEKDAYS,
    },
];

/// The expression in croner's terms: descriptors expanded, every field either `*` (robfig's
/// "star" that makes day of month and day of week combine with AND) or an explicit list.
fn canonical_expression(expression: &str) -> Result<String, CronSyntax> {
    let expanded = if expression.starts_with('@') {
        match expression.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            _ => return Err(CronSyntax::Descriptor(expression.to_owned())),
        }
    } else {
        expression
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    if fields.len() != FIELDS.len() {
        return Err(CronSyntax::FieldCount(fields.len()));
    }
    let mut out = Vec::with_capacity(FIELDS.len());
    for (text, spec) in fields.iter().zip(&FIELDS) {
        let (values, star) = parse_field(text, spec).map_err(|problem| CronSyntax::Field {
            field: spec.name,
            problem,
        })?;
        out.push(if star {
            "*".to_owned()
        } else {
            values.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
        });
    }
    Ok(out.join(" "))
}

/// One field: its values in order and whether robfig marks it as a star.
fn parse_field(text: &str, spec: &FieldSpec) -> Result<(Vec<u32>, bool), FieldSyntax> {
    let mut set = [false; 60];
    let mut star = false;
    for part in text.split(',') {
        let (range, step) = match part.split('/').collect::<Vec<_>>()[..] {
            [range] => (range, None),
            [range, step] => (range, Some(number(step)?)),
            _ => return Err(FieldSyntax::Slashes(part.to_owned())),
        };
        let bounds: Vec<&str> = range.split('-').collect();
        let (mut start, mut end, mut part_star) = match bounds[..] {
            ["*" | "?"] => (spec.min, spec.max, true),
            [single] => {
                let v = value(single, spec)?;
                (v, v, false)
            }
            [low, high] => (value(low, spec)?, value(high, spec)?, false),
            _ => return Err(FieldSyntax::Hyphens(part.to_owned())),
        };
        let step = match step {
            None => 1,
            Some(step) => {
                // "N/step" runs from N to the field's end.
                if bounds.len() == 1 {
                    end = spec.max;
                }
                if step > 1 {
                    part_star = false;
                }
                step
            }
        };
        if part_star {
            start = spec.min;
        }
        if start < spec.min {
            return Err(FieldSyntax::BelowMinimum {
                value: start,
                min: spec.min,
            });
        }
        if end > spec.max {
            return Err(FieldSyntax::AboveMaximum {
                value: end,
                max: spec.max,
            });
        }
        if start > end {
            return Err(FieldSyntax::Inverted { start, end });
        }
        if step == 0 {
            return Err(FieldSyntax::ZeroStep);
        }
        let mut v = start;
        while v <= end {
            // Bounded by max <= 59.
            if let Some(slot) = set.get_mut(v as usize) {
                *slot = true;
            }
            v = v.saturating_add(step);
        }
        star |= part_star;
    }
    let values = (spec.min..=spec.max).filter(|v| set[*v as usize]).collect();
    Ok((values, star))
}

fn value(text: &str, spec: &FieldSpec) -> Result<u32, FieldSyntax> {
    let lower = text.to_ascii_lowercase();
    if let Some(index) = spec.names.iter().position(|n| *n == lower) {
        // At most 12 names.
        return Ok(spec.min + index as u32);
    }
    number(text)
}

fn number(text: &str) -> Result<u32, FieldSyntax> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 9 {
        return Err(FieldSyntax::NotANumber(text.to_owned()));
    }
    text.parse().map_err(|_| FieldSyntax::NotANumber(text.to_owned()))
}
