//! Renewal windows and the renewal plan: cert-manager's grammar and verdicts, the window rule,
//! the latest safe point, and property tests of the plan.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;

use super::*;

const MIN: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;
/// 2025-01-06T00:00:00Z, a Monday.
const MONDAY: u64 = 1_736_121_600;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn window(cron: &str, tz: &str, secs: u64) -> RenewalWindow {
    RenewalWindow::parse(cron, tz, Duration::from_secs(secs)).expect("valid window")
}

fn windows(list: Vec<RenewalWindow>) -> RenewalWindows {
    RenewalWindows::new(list).expect("few windows")
}

fn policy(list: Vec<RenewalWindow>) -> RenewalPolicy {
    RenewalPolicy {
        automatic: AutomaticRenewal::RenewBefore(windows(list)),
        ..RenewalPolicy::default()
    }
}

fn reason(cron: &str) -> String {
    RenewalWindow::parse(cron, "", Duration::from_secs(HOUR))
        .expect_err("rejected")
        .to_string()
}

#[test]
fn robfig_grammar_is_accepted() {
    for cron in [
        "0 12 * * *",
        "*/15 2-4 * * mon-fri",
        "0 0 1,15 JAN,jul ?",
        "5/10 * * * *",
        "0 23 * * 1-5",
        "@daily",
        "@Weekly",
        "@midnight",
        "@hourly",
        "@annually",
        "CRON_TZ=Europe/Berlin 0 2 * * *",
        "TZ=UTC 0 2 * * *",
    ] {
        assert!(
            RenewalWindow::parse(cron, "", Duration::from_secs(HOUR)).is_ok(),
            "{cron}"
        );
    }
}

#[test]
fn what_robfig_rejects_is_rejected_with_the_field() {
    assert!(reason("* * * *").contains("expected exactly 5 fields, found 4"));
    assert!(reason("0 0 * * * *").contains("found 6"));
    assert!(reason("60 * * * *").contains("minute: 60 is above the maximum 59"));
    assert!(reason("0 0 * * 7").contains("day of week: 7 is above the maximum 6"));
    assert!(reason("0 0 0 * *").contains("day of month: 0 is below the minimum 1"));
    assert!(reason("0 0 L * *").contains("\"L\" is not a number"));
    assert!(reason("0 0 * * 1#2").contains("not a number"));
    assert!(reason("5-1 * * * *").contains("range start 5 is beyond its end 1"));
    assert!(reason("*/0 * * * *").contains("step must be a positive number"));
    assert!(reason("1-2-3 * * * *").contains("too many hyphens"));
    assert!(reason("@often").contains("unrecognized descriptor"));
    // cert-manager's own test case.
    assert!(reason("CRON_TZ=UTC").contains("expected a cron expression after the time zone prefix"));
    assert!(reason("@every 1h").contains("@every is not supported"));
    assert!(reason("0 0 30 2 *").contains("never fires"));
    assert_eq!(
        RenewalWindow::parse("0 0 * * *", "", Duration::ZERO).expect_err("zero"),
        WindowError::ZeroDuration
    );
    assert!(matches!(
        RenewalWindow::parse(&"1,".repeat(200), "", Duration::from_secs(HOUR)),
        Err(WindowError::CronTooLong { .. })
    ));
}

#[test]
fn zones_are_iana_names_matched_exactly() {
    assert!(RenewalWindow::parse("0 0 * * *", "America/Denver", Duration::from_secs(HOUR)).is_ok());
    for zone in ["america/denver", "Mars/Olympus", "Local", "../etc/passwd"] {
        assert_eq!(
            RenewalWindow::parse("0 0 * * *", zone, Duration::from_secs(HOUR)).expect_err(zone),
            WindowError::UnknownTimezone(zone.to_owned())
        );
    }
    assert!(matches!(
        RenewalWindow::parse("CRON_TZ=UTC 0 0 * * *", "Europe/Paris", Duration::from_secs(HOUR)),
        Err(WindowError::TimezoneTwice(_))
    ));
}

#[test]
fn a_window_is_open_from_each_start_for_its_duration() {
    // Weekdays 23:00 to 05:00 UTC.
    let w = window("0 23 * * 1-5", "", 6 * HOUR);
    assert_eq!(
        w.first_open_from(at(MONDAY + 12 * HOUR)),
        Some(at(MONDAY + 23 * HOUR))
    );
    assert_eq!(
        w.first_open_from(at(MONDAY + 23 * HOUR)),
        Some(at(MONDAY + 23 * HOUR))
    );
    // Tuesday 04:59:59 is still inside Monday's window; 05:00 is not.
    let tuesday = MONDAY + DAY;
    assert_eq!(
        w.first_open_from(at(tuesday + 5 * HOUR - 1)),
        Some(at(tuesday + 5 * HOUR - 1))
    );
    assert_eq!(
        w.first_open_from(at(tuesday + 5 * HOUR)),
        Some(at(tuesday + 23 * HOUR))
    );
    // Friday night's window ends Saturday 05:00; the next opens Monday 23:00.
    let saturday = MONDAY + 5 * DAY;
    assert_eq!(
        w.first_open_from(at(saturday + 6 * HOUR)),
        Some(at(saturday + 2 * DAY + 23 * HOUR))
    );
}

#[test]
fn the_zone_moves_the_window() {
    // 02:00 in Denver (UTC-7 in January) is 09:00 UTC.
    let w = window("0 2 * * *", "America/Denver", HOUR);
    assert_eq!(w.first_open_from(at(MONDAY)), Some(at(MONDAY + 9 * HOUR)));
    let prefixed = window("CRON_TZ=America/Denver 0 2 * * *", "", HOUR);
    assert_eq!(prefixed.first_open_from(at(MONDAY)), Some(at(MONDAY + 9 * HOUR)));
}

#[test]
fn day_of_month_and_weekday_combine_as_in_cron() {
    // Neither is a star: the 1st OR a Monday. 2025-01-06 is a Monday.
    let either = window("0 0 1 * 1", "", MIN);
    assert_eq!(either.next_start_after(at(MONDAY - DAY)), Some(at(MONDAY)));
    // The star makes it AND: the 1st of the month and any weekday, so 2025-02-01.
    let first = window("0 0 1 * *", "", MIN);
    assert_eq!(first.next_start_after(at(MONDAY)), Some(at(1_738_368_000)));
    // */1 is still robfig's star; */2 is not.
    let stepped = window("0 0 */1 * 1", "", MIN);
    assert_eq!(stepped.next_start_after(at(MONDAY - DAY)), Some(at(MONDAY)));
}

#[test]
fn disabled_has_no_renewal_time() {
    let p = RenewalPolicy {
        automatic: AutomaticRenewal::Disabled,
        ..RenewalPolicy::default()
    };
    let plan = plan_renewal(at(MONDAY), at(MONDAY + 90 * DAY), &p, "ns/c");
    assert_eq!(plan, Renewal::Disabled);
    assert_eq!(plan.time(), None);
    assert!(
        plan.note()
            .expect("explained")
            .contains("automatic renewal is disabled")
    );
}

#[test]
fn without_windows_the_renewal_point_is_unchanged() {
    let (nb, na) = (at(MONDAY), at(MONDAY + 90 * DAY));
    let p = RenewalPolicy::default();
    assert_eq!(
        plan_renewal(nb, na, &p, "ns/c"),
        Renewal::At(renewal_time(nb, na, &p, "ns/c"))
    );
}

#[test]
fn the_safe_point_keeps_half_the_margin() {
    let (nb, na) = (at(MONDAY), at(MONDAY + 90 * DAY));
    assert_eq!(
        latest_safe_point(nb, na, &RenewalPolicy::default()),
        at(MONDAY + 75 * DAY)
    );
    let p = RenewalPolicy {
        renew_before: Some(Duration::from_secs(10 * DAY)),
        ..RenewalPolicy::default()
    };
    assert_eq!(latest_safe_point(nb, na, &p), at(MONDAY + 85 * DAY));
    // One hour: renew at 40 min, at the latest at 50 min.
    assert_eq!(
        latest_safe_point(nb, at(MONDAY + HOUR), &RenewalPolicy::default()),
        at(MONDAY + 50 * MIN)
    );
}

#[test]
fn a_renewal_waits_for_the_next_window() {
    // 90 days issued Monday 00:00: the renewal point is day 60 (a Friday) minus the spread.
    let (nb, na) = (at(MONDAY), at(MONDAY + 90 * DAY));
    let p = policy(vec![window("0 2 * * 0", "", 2 * HOUR)]); // Sundays 02:00-04:00
    let plan = plan_renewal(nb, na, &p, "ns/c");
    let Renewal::At(t) = plan else { panic!("{plan:?}") };
    // Day 62 is a Sunday.
    assert!(
        t >= at(MONDAY + 62 * DAY + 2 * HOUR) && t < at(MONDAY + 62 * DAY + 4 * HOUR),
        "{t:?}"
    );
    assert!(p_contains(&p, t));
    assert_eq!(plan.note(), None);
}

fn p_contains(p: &RenewalPolicy, t: SystemTime) -> bool {
    match &p.automatic {
        AutomaticRenewal::RenewBefore(w) => w.contains(t),
        AutomaticRenewal::Disabled => false,
    }
}

#[test]
fn a_renewal_inside_a_window_stays_where_it_is() {
    let (nb, na) = (at(MONDAY), at(MONDAY + 90 * DAY));
    let p = policy(vec![window("* * * * *", "", MIN)]);
    let desired = renewal_time(nb, na, &p, "ns/c");
    assert_eq!(plan_renewal(nb, na, &p, "ns/c"), Renewal::At(desired));
}

#[test]
fn no_window_before_the_safe_point_forces_the_renewal_there() {
    // A yearly window on 1 January; a 90-day certificate from 6 January renews at day 60,
    // and nothing opens before day 75.
    let (nb, na) = (at(MONDAY), at(MONDAY + 90 * DAY));
    let p = policy(vec![window("0 0 1 1 *", "", DAY)]);
    let plan = plan_renewal(nb, na, &p, "ns/c");
    assert_eq!(
        plan,
        Renewal::Forced {
            at: at(MONDAY + 75 * DAY),
            desired: renewal_time(nb, na, &p, "ns/c"),
            next_window: Some(at(1_767_225_600)), // 2026-01-01
        }
    );
    let note = plan.note().expect("explained");
    assert!(
        note.contains("outside the renewal windows") && note.contains("2026-01-01T00:00:00Z"),
        "{note}"
    );
}

#[test]
fn windows_rarer_than_the_duration_are_rejected() {
    let yearly = windows(vec![window("0 0 1 1 *", "", DAY)]);
    assert!(matches!(
        yearly.check_frequency(Duration::from_secs(90 * DAY)),
        Err(WindowError::TooRare { .. })
    ));
    assert!(yearly.check_frequency(Duration::from_secs(400 * DAY)).is_ok());
    let weekly = windows(vec![window("0 2 * * 0", "", 2 * HOUR)]);
    assert!(weekly.check_frequency(Duration::from_secs(90 * DAY)).is_ok());
    // Two-hourly windows cannot hold the renewals of a one-hour certificate.
    let two_hourly = windows(vec![window("0 */2 * * *", "", 10 * MIN)]);
    let err = two_hourly
        .check_frequency(Duration::from_secs(HOUR))
        .expect_err("rare");
    assert!(err.to_string().contains("at most once every 2h0m0s"), "{err}");
    // Leap days only: one opening in four years.
    let leap = windows(vec![window("0 0 29 2 *", "", DAY)]);
    assert!(leap.check_frequency(Duration::from_secs(90 * DAY)).is_err());
}

fn any_window() -> impl Strategy<Value = RenewalWindow> {
    let minute = prop_oneof![
        Just("*".to_owned()),
        (0..60_u32).prop_map(|m| m.to_string()),
        Just("*/15".to_owned())
    ];
    let hour = prop_oneof![
        Just("*".to_owned()),
        (0..24_u32).prop_map(|h| h.to_string()),
        Just("1-5".to_owned())
    ];
    let dom = prop_oneof![Just("*".to_owned()), (1..29_u32).prop_map(|d| d.to_string())];
    let dow = prop_oneof![
        Just("*".to_owned()),
        (0..7_u32).prop_map(|d| d.to_string()),
        Just("mon-fri".to_owned())
    ];
    let zone = proptest::sample::select(vec![
        "",
        "America/Denver",
        "Europe/Berlin",
        "Asia/Kolkata",
        "Australia/Lord_Howe",
    ]);
    let duration = prop_oneof![1..=60_u64, (1..=48_u64).prop_map(|h| h * HOUR)]
        .prop_map(|n| if n < 61 { n * MIN } else { n });
    (minute, hour, dom, dow, zone, duration)
        .prop_map(|(m, h, d, w, zone, secs)| window(&format!("{m} {h} {d} * {w}"), zone, secs))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_plan_is_bounded_inside_a_window_and_stable(
        issued in 1_600_000_000..2_000_000_000_u64,
        lifetime in prop_oneof![HOUR..2 * DAY, 2 * DAY..400 * DAY],
        list in proptest::collection::vec(any_window(), 1..4),
        identity in "[a-z]{1,8}/[a-z]{1,8}",
    ) {
        let (nb, na) = (at(issued), at(issued + lifetime));
        let p = policy(list);
        let desired = renewal_time(nb, na, &p, &identity);
        let safe = latest_safe_point(nb, na, &p);
        let plan = plan_renewal(nb, na, &p, &identity);
        let AutomaticRenewal::RenewBefore(w) = &p.automatic else { unreachable!() };
        let t = plan.time().expect("renewal enabled");
        // Never before the renewal point, never after the safe point, never after notAfter.
        prop_assert!(t >= desired && t <= safe && t <= na, "{plan:?}");
        match plan {
            Renewal::At(t) => prop_assert!(w.contains(t), "{t:?} outside the windows"),
            Renewal::Forced { at: forced, next_window, .. } => {
                prop_assert_eq!(forced, safe);
                // Forced only when no window opens in [desired, safe].
                prop_assert!(w.first_open_from(desired).is_none_or(|open| open > safe));
                prop_assert_eq!(next_window, w.first_open_from(desired));
            }
            Renewal::Disabled => prop_assert!(false),
        }
        // Stable: the same inputs give the same plan (a restart computes what was persisted).
        prop_assert_eq!(plan, plan_renewal(nb, na, &p, &identity));
        // Whole seconds, as persisted.
        prop_assert_eq!(crate::time::from_unix(crate::time::to_unix(t)), t);
    }

    #[test]
    fn when_a_window_fits_the_renewal_is_inside_it(
        issued in 1_600_000_000..2_000_000_000_u64,
        lifetime in DAY..200 * DAY,
        list in proptest::collection::vec(any_window(), 1..3),
    ) {
        let (nb, na) = (at(issued), at(issued + lifetime));
        let p = policy(list);
        let AutomaticRenewal::RenewBefore(w) = &p.automatic else { unreachable!() };
        let desired = renewal_time(nb, na, &p, "ns/c");
        if w.first_open_from(desired).is_some_and(|open| open <= latest_safe_point(nb, na, &p)) {
            let plan = plan_renewal(nb, na, &p, "ns/c");
            prop_assert!(matches!(plan, Renewal::At(t) if w.contains(t)), "{plan:?}");
        }
    }
}
