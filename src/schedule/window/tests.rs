use super::*;
use proptest::prelude::*;

fn ts(text: &str) -> Timestamp {
    text.parse()
        .unwrap_or_else(|e| panic!("bad timestamp {text}: {e}"))
}

fn hours(n: i64) -> SignedDuration {
    SignedDuration::from_hours(n)
}

fn definition(expression: &str, zone: &str, duration: SignedDuration) -> WindowDefinition {
    let schedule = Schedule::parse(expression).unwrap_or_else(|e| panic!("{expression}: {e}"));
    let time_zone = parse_time_zone(zone).unwrap_or_else(|e| panic!("{zone}: {e}"));
    WindowDefinition::new(schedule, time_zone, duration, ts("2026-01-01T00:00:00Z"))
}

fn starts(definition: &WindowDefinition, now: &str, count: usize) -> Vec<String> {
    definition
        .next_windows(ts(now), count)
        .iter()
        .map(|w| w.start.to_string())
        .collect()
}

#[test]
fn second_tuesday_in_berlin_follows_the_zone_offset() {
    let d = definition("cron(0 2 ? * TUE#2 *)", "Europe/Berlin", hours(4));
    assert_eq!(
        starts(&d, "2026-01-01T00:00:00Z", 4),
        [
            "2026-01-13T01:00:00Z",
            "2026-02-10T01:00:00Z",
            "2026-03-10T01:00:00Z",
            // Summer time from March 29: 02:00 CEST is 00:00 UTC.
            "2026-04-14T00:00:00Z",
        ]
    );
}

#[test]
fn patch_tuesday_plus_two_days_is_the_following_thursday() {
    let mut d = definition("cron(0 2 ? * TUE#2 *)", "Europe/Berlin", hours(4));
    d.offset_days = 2;
    assert_eq!(
        starts(&d, "2026-01-01T00:00:00Z", 4),
        [
            "2026-01-15T01:00:00Z",
            "2026-02-12T01:00:00Z",
            "2026-03-12T01:00:00Z",
            "2026-04-16T00:00:00Z",
        ]
    );
    // Between the Tuesday match and its shifted start, the shifted start is still next.
    assert_eq!(
        starts(&d, "2026-01-14T00:00:00Z", 1),
        ["2026-01-15T01:00:00Z"]
    );
}

#[test]
fn offset_days_can_carry_a_window_into_the_next_month() {
    // The last Friday of December 2025 is the 26th; + 6 days is Thursday January 1. The
    // last Friday of January 2026 is the 30th; + 6 days is Thursday February 5.
    let mut d = definition("cron(0 22 ? * 6L *)", "UTC", hours(2));
    d.offset_days = 6;
    assert_eq!(
        starts(&d, "2026-01-01T00:00:00Z", 2),
        ["2026-01-01T22:00:00Z", "2026-02-05T22:00:00Z"]
    );
}

#[test]
fn last_friday_last_day_and_nearest_weekday_windows() {
    let last_friday = definition("cron(0 22 ? * 6L *)", "UTC", hours(2));
    assert_eq!(
        starts(&last_friday, "2026-01-01T00:00:00Z", 3),
        [
            "2026-01-30T22:00:00Z",
            "2026-02-27T22:00:00Z",
            "2026-03-27T22:00:00Z"
        ]
    );
    let last_day = definition("cron(0 23 L * ? *)", "UTC", hours(1));
    assert_eq!(
        starts(&last_day, "2027-12-31T23:30:00Z", 3),
        [
            "2028-01-31T23:00:00Z",
            "2028-02-29T23:00:00Z",
            "2028-03-31T23:00:00Z"
        ]
    );
    // 15 Feb 2026 is a Sunday → Monday 16th; 15 Aug 2026 a Saturday → Friday 14th.
    let nearest = definition("cron(0 3 15W 2,8 ? *)", "UTC", hours(1));
    assert_eq!(
        starts(&nearest, "2026-01-01T00:00:00Z", 2),
        ["2026-02-16T03:00:00Z", "2026-08-14T03:00:00Z"]
    );
    // 1 Aug 2026 is a Saturday → Monday 3rd (never Friday 31 July).
    let first = definition("cron(0 3 1W 8 ? 2026)", "UTC", hours(1));
    assert_eq!(
        starts(&first, "2026-01-01T00:00:00Z", 2),
        ["2026-08-03T03:00:00Z"]
    );
}

#[test]
fn rate_counts_elapsed_time_from_the_anchor() {
    let mut d = definition("rate(6 hours)", "Europe/Berlin", hours(1));
    d.anchor = ts("2026-03-28T21:00:00Z");
    // Before the anchor the first window is the anchor itself.
    assert_eq!(
        starts(&d, "2026-03-01T00:00:00Z", 2),
        ["2026-03-28T21:00:00Z", "2026-03-29T03:00:00Z"]
    );
    // Across the Berlin spring-forward night the interval stays six real hours.
    assert_eq!(
        starts(&d, "2026-03-29T03:00:00Z", 3),
        [
            "2026-03-29T09:00:00Z",
            "2026-03-29T15:00:00Z",
            "2026-03-29T21:00:00Z"
        ]
    );
    let open = d.window_at(ts("2026-03-29T09:30:00Z"));
    assert_eq!(
        open.map(|w| (w.start, w.end)),
        Some((ts("2026-03-29T09:00:00Z"), ts("2026-03-29T10:00:00Z")))
    );
}

#[test]
fn new_york_spring_forward_start_in_the_gap_opens_when_the_gap_ends() {
    // 2026-03-08 02:00 EST jumps to 03:00 EDT; 02:30 does not exist that day.
    let d = definition("cron(30 2 * * ? *)", "America/New_York", hours(1));
    assert_eq!(
        starts(&d, "2026-03-07T00:00:00Z", 3),
        [
            "2026-03-07T07:30:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-09T06:30:00Z"
        ]
    );
    let w = d.window_at(ts("2026-03-08T07:59:59Z"));
    assert_eq!(w.map(|w| w.end), Some(ts("2026-03-08T08:00:00Z")));
}

#[test]
fn starts_collapsing_into_one_gap_instant_open_one_window() {
    // 02:00, 02:15, 02:30, 02:45 and 03:00 all map to 03:00 EDT on 2026-03-08.
    let d = definition("cron(0/15 2-3 8 3 ? 2026)", "America/New_York", hours(1));
    assert_eq!(
        starts(&d, "2026-03-08T00:00:00Z", 3),
        [
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:15:00Z",
            "2026-03-08T07:30:00Z"
        ]
    );
}

#[test]
fn new_york_fall_back_start_in_the_repeated_hour_happens_once() {
    // 2026-11-01 02:00 EDT falls back to 01:00 EST; 01:00 and 01:30 occur twice.
    let d = definition("cron(0,30 1 * * ? *)", "America/New_York", hours(1));
    assert_eq!(
        starts(&d, "2026-10-31T12:00:00Z", 3),
        [
            "2026-11-01T05:00:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-02T06:00:00Z"
        ]
    );
    // Asking from inside the second 01:xx hour finds the next day, not a repeat.
    assert_eq!(
        starts(&d, "2026-11-01T06:10:00Z", 1),
        ["2026-11-02T06:00:00Z"]
    );
}

#[test]
fn berlin_dst_transitions() {
    let d = definition("cron(30 2 ? * SUN *)", "Europe/Berlin", hours(2));
    // Spring: 2026-03-29 02:30 does not exist → 03:00 CEST (01:00 UTC).
    assert_eq!(
        starts(&d, "2026-03-20T00:00:00Z", 3),
        [
            "2026-03-22T01:30:00Z",
            "2026-03-29T01:00:00Z",
            "2026-04-05T00:30:00Z"
        ]
    );
    // Autumn: 2026-10-25 02:30 happens twice → the earlier, 02:30 CEST (00:30 UTC).
    assert_eq!(
        starts(&d, "2026-10-20T00:00:00Z", 2),
        ["2026-10-25T00:30:00Z", "2026-11-01T01:30:00Z"]
    );
}

#[test]
fn kolkata_half_hour_offset() {
    let d = definition("0 2 * * *", "Asia/Kolkata", hours(3));
    assert_eq!(
        starts(&d, "2026-06-01T00:00:00Z", 2),
        ["2026-06-01T20:30:00Z", "2026-06-02T20:30:00Z"]
    );
}

#[test]
fn at_schedule_opens_once() {
    let d = definition("at(2026-07-04T09:00:00)", "America/New_York", hours(2));
    assert_eq!(
        starts(&d, "2026-01-01T00:00:00Z", 3),
        ["2026-07-04T13:00:00Z"]
    );
    assert!(starts(&d, "2026-07-04T13:00:00Z", 1).is_empty());
    assert!(d.window_at(ts("2026-07-04T14:59:59Z")).is_some());
    assert_eq!(d.window_at(ts("2026-07-04T15:00:00Z")), None);
}

#[test]
fn year_field_limits_the_windows() {
    let d = definition("cron(0 2 ? * TUE#2 2026-2027)", "UTC", hours(1));
    let all = d.next_windows(ts("2026-01-01T00:00:00Z"), 100);
    assert_eq!(all.len(), 24);
    assert_eq!(
        all.last().map(|w| w.start),
        Some(ts("2027-12-14T02:00:00Z"))
    );
}

#[test]
fn never_matching_schedule_returns_nothing_and_terminates() {
    let d = definition("cron(0 0 30 2 ? *)", "UTC", hours(1));
    assert!(d.next_windows(ts("2026-01-01T00:00:00Z"), 3).is_empty());
    assert_eq!(d.window_at(ts("2026-01-01T00:00:00Z")), None);
    assert_eq!(d.next_boundary(ts("2026-01-01T00:00:00Z")), None);
}

#[test]
fn leap_day_schedule_is_found_across_2100() {
    let d = definition("cron(0 0 29 2 ? *)", "UTC", hours(1));
    assert_eq!(
        starts(&d, "2096-03-01T00:00:00Z", 1),
        ["2104-02-29T00:00:00Z"]
    );
}

#[test]
fn exclusion_skips_windows_starting_inside_it() {
    let mut d = definition("cron(0 2 ? * TUE *)", "UTC", hours(4));
    d.exclusions.push(Exclusion {
        name: "year-end-freeze".into(),
        start: ts("2026-12-20T00:00:00Z"),
        end: ts("2027-01-04T00:00:00Z"),
    });
    assert_eq!(
        starts(&d, "2026-12-14T00:00:00Z", 3),
        [
            "2026-12-15T02:00:00Z",
            "2027-01-05T02:00:00Z",
            "2027-01-12T02:00:00Z"
        ]
    );
    assert_eq!(d.window_at(ts("2026-12-22T03:00:00Z")), None);
}

#[test]
fn window_starting_exactly_when_an_exclusion_ends_is_allowed() {
    let mut d = definition("cron(0 2 ? * TUE *)", "UTC", hours(4));
    d.exclusions.push(Exclusion {
        name: "freeze".into(),
        start: ts("2026-12-20T00:00:00Z"),
        end: ts("2026-12-29T02:00:00Z"),
    });
    assert_eq!(
        starts(&d, "2026-12-20T00:00:00Z", 1),
        ["2026-12-29T02:00:00Z"]
    );
}

#[test]
fn exclusion_starting_inside_an_open_window_clips_end_and_cutoff() {
    let mut d = definition("cron(0 20 ? * FRI *)", "UTC", hours(6));
    d.cutoff = hours(1);
    d.exclusions.push(Exclusion {
        name: "launch".into(),
        start: ts("2026-01-02T22:00:00Z"),
        end: ts("2026-01-03T12:00:00Z"),
    });
    let clipped = Window {
        start: ts("2026-01-02T20:00:00Z"),
        end: ts("2026-01-02T22:00:00Z"),
        cutoff_at: ts("2026-01-02T22:00:00Z"),
    };
    assert_eq!(d.next_windows(ts("2026-01-01T00:00:00Z"), 1), [clipped]);
    assert_eq!(d.window_at(ts("2026-01-02T21:00:00Z")), Some(clipped));
    assert_eq!(d.window_at(ts("2026-01-02T22:00:00Z")), None);
    // Unclipped next week: cutoff one hour before the end.
    assert_eq!(
        d.next_windows(ts("2026-01-03T00:00:00Z"), 1),
        [Window {
            start: ts("2026-01-09T20:00:00Z"),
            end: ts("2026-01-10T02:00:00Z"),
            cutoff_at: ts("2026-01-10T01:00:00Z"),
        }]
    );
}

#[test]
fn start_and_end_dates_bound_window_starts_only() {
    let mut d = definition("cron(0 22 * * ? *)", "UTC", hours(4));
    d.start_date = Some(ts("2026-05-03T22:00:00Z"));
    d.end_date = Some(ts("2026-05-05T23:00:00Z"));
    assert_eq!(
        starts(&d, "2026-05-01T00:00:00Z", 5),
        [
            "2026-05-03T22:00:00Z",
            "2026-05-04T22:00:00Z",
            "2026-05-05T22:00:00Z"
        ]
    );
    // The last window started before endDate and runs to its normal end.
    assert_eq!(
        d.window_at(ts("2026-05-06T01:00:00Z")).map(|w| w.end),
        Some(ts("2026-05-06T02:00:00Z"))
    );
    // A window exactly at endDate does not start (endDate is exclusive).
    d.end_date = Some(ts("2026-05-05T22:00:00Z"));
    assert_eq!(starts(&d, "2026-05-04T23:00:00Z", 5), Vec::<String>::new());
}

#[test]
fn suspended_definition_has_no_windows() {
    let mut d = definition("0 * * * *", "UTC", hours(1));
    d.suspend = true;
    assert!(d.next_windows(ts("2026-01-01T00:30:00Z"), 3).is_empty());
    assert_eq!(d.window_at(ts("2026-01-01T00:30:00Z")), None);
    assert_eq!(d.next_boundary(ts("2026-01-01T00:30:00Z")), None);
}

#[test]
fn overlapping_windows_report_the_latest_started() {
    let mut d = definition("rate(1 hour)", "UTC", hours(3));
    d.anchor = ts("2026-01-01T00:00:00Z");
    let open = d.window_at(ts("2026-01-01T05:30:00Z"));
    assert_eq!(open.map(|w| w.start), Some(ts("2026-01-01T05:00:00Z")));
    assert_eq!(open.map(|w| w.end), Some(ts("2026-01-01T08:00:00Z")));
}

#[test]
fn next_boundary_is_cutoff_then_end_then_next_open() {
    let mut d = definition("cron(0 2 * * ? *)", "UTC", hours(4));
    d.cutoff = hours(1);
    assert_eq!(
        d.next_boundary(ts("2026-01-01T00:00:00Z")),
        Some(ts("2026-01-01T02:00:00Z"))
    );
    assert_eq!(
        d.next_boundary(ts("2026-01-01T02:00:00Z")),
        Some(ts("2026-01-01T05:00:00Z"))
    );
    assert_eq!(
        d.next_boundary(ts("2026-01-01T05:00:00Z")),
        Some(ts("2026-01-01T06:00:00Z"))
    );
    assert_eq!(
        d.next_boundary(ts("2026-01-01T06:00:00Z")),
        Some(ts("2026-01-02T02:00:00Z"))
    );
}

#[test]
fn window_at_reports_cutoff_and_work_acceptance() {
    let mut d = definition("cron(0 2 * * ? *)", "UTC", hours(4));
    d.cutoff = hours(1);
    let w = d
        .window_at(ts("2026-01-01T04:00:00Z"))
        .expect("window open at 04:00");
    assert_eq!(w.cutoff_at, ts("2026-01-01T05:00:00Z"));
    assert!(w.accepts_new_work(ts("2026-01-01T04:59:59Z")));
    assert!(!w.accepts_new_work(ts("2026-01-01T05:00:00Z")));
    assert!(w.contains(ts("2026-01-01T05:59:59Z")));
    assert_eq!(d.window_at(ts("2026-01-01T06:00:00Z")), None);
    // The start instant is inside the window.
    assert!(d.window_at(ts("2026-01-01T02:00:00Z")).is_some());
}

#[test]
fn validation_names_the_field() {
    let base = definition("cron(0 2 ? * TUE *)", "UTC", hours(4));
    let check = |edit: &dyn Fn(&mut WindowDefinition), message: &str, category: &str| {
        let mut d = base.clone();
        edit(&mut d);
        let error = d.validate().expect_err(message);
        assert_eq!(error.to_string(), message);
        assert_eq!(error.category(), category);
    };
    check(
        &|d| d.duration = SignedDuration::from_mins(30),
        "duration: must be between 1h and 24h, got 30m",
        "invalid-duration",
    );
    check(
        &|d| d.duration = hours(25),
        "duration: must be between 1h and 24h, got 25h",
        "invalid-duration",
    );
    check(
        &|d| d.cutoff = -hours(1),
        "cutoff: must be between 0s and 23h, got -1h",
        "invalid-cutoff",
    );
    check(
        &|d| d.cutoff = hours(4),
        "cutoff: must be shorter than duration (4h), got 4h",
        "invalid-cutoff",
    );
    check(
        &|d| d.offset_days = 7,
        "scheduleOffsetDays: must be 0-6, got 7",
        "invalid-offset-days",
    );
    check(
        &|d| {
            d.schedule = Schedule::parse("rate(1 day)").expect("rate");
            d.offset_days = 2;
        },
        "scheduleOffsetDays: only cron schedules can be offset, not 'rate(1 day)'",
        "invalid-offset-days",
    );
    check(
        &|d| {
            d.start_date = Some(ts("2026-02-01T00:00:00Z"));
            d.end_date = Some(ts("2026-01-01T00:00:00Z"));
        },
        "endDate: must be after startDate (2026-02-01T00:00:00Z), got 2026-01-01T00:00:00Z",
        "invalid-dates",
    );
    check(
        &|d| {
            d.exclusions.push(Exclusion {
                name: "backwards".into(),
                start: ts("2026-02-01T00:00:00Z"),
                end: ts("2026-01-01T00:00:00Z"),
            })
        },
        "exclusions[0] (backwards): end must be after start",
        "invalid-exclusion",
    );
    assert!(base.validate().is_ok());
}

#[test]
fn unvalidated_extreme_values_neither_panic_nor_hang() {
    let extremes = [
        SignedDuration::MIN,
        SignedDuration::MAX,
        SignedDuration::ZERO,
        -hours(5),
    ];
    for expression in ["* * * * *", "rate(1 minute)", "at(9999-12-31T23:59:00)"] {
        for duration in extremes {
            for cutoff in extremes {
                for now in [Timestamp::MIN, Timestamp::MAX, ts("2026-01-01T00:00:00Z")] {
                    let mut d = definition(expression, "America/New_York", duration);
                    d.cutoff = cutoff;
                    d.anchor = Timestamp::MIN;
                    d.offset_days = u8::MAX;
                    d.start_date = Some(Timestamp::MAX);
                    d.end_date = Some(Timestamp::MIN);
                    let _ = d.validate();
                    let _ = d.window_at(now);
                    let _ = d.next_windows(now, 2);
                    let _ = d.next_boundary(now);
                    d.start_date = None;
                    d.end_date = None;
                    let _ = d.window_at(now);
                    let _ = d.next_windows(now, 2);
                    let _ = d.next_boundary(now);
                }
            }
        }
    }
}

#[test]
fn unknown_time_zone_is_reported() {
    let error = parse_time_zone("Mars/Olympus_Mons").expect_err("unknown zone");
    assert_eq!(
        error.to_string(),
        "timeZone: unknown time zone 'Mars/Olympus_Mons'"
    );
    assert_eq!(error.category(), "invalid-time-zone");
    assert!(parse_time_zone("").is_ok());
    assert!(parse_time_zone("Asia/Kolkata").is_ok());
}

/// Schedules for the property tests, with the shortest gap between consecutive starts
/// (in hours, allowing for a one-hour DST shift) in the zones below.
const PROPERTY_SCHEDULES: &[(&str, i64)] = &[
    ("cron(0 2 ? * TUE#2 *)", 24 * 27),
    ("cron(30 22 ? * 6L *)", 24 * 27),
    ("cron(0 0 L * ? *)", 24 * 27),
    ("cron(0 3 15W * ? *)", 24 * 25),
    ("cron(30 2 * * ? *)", 22),
    ("cron(0,30 1 ? * SUN *)", 0),
    ("0 2 * * 2", 24 * 6),
    ("*/20 */6 * * *", 0),
    ("rate(6 hours)", 6),
    ("rate(90 minutes)", 1),
];
const PROPERTY_ZONES: &[&str] = &[
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
];

/// Indices of the property schedules whose starts are at least two hours apart.
fn periodic_schedules() -> Vec<usize> {
    (0..PROPERTY_SCHEDULES.len())
        .filter(|&i| PROPERTY_SCHEDULES[i].1 > 1)
        .collect()
}

/// A definition from the property tables, with a duration shorter than the schedule's
/// shortest period when the period allows it, and up to two exclusions near `now`.
fn arbitrary_definition() -> impl Strategy<Value = (WindowDefinition, Timestamp)> {
    (
        0..PROPERTY_SCHEDULES.len(),
        0..PROPERTY_ZONES.len(),
        1_i64..=24,
        0_u8..=3,
        // 2000-01-01 .. 2090-01-01
        946_684_800_i64..3_786_825_600,
        proptest::collection::vec((-30_i64 * 24..30 * 24, 1_i64..24 * 10), 0..=2),
    )
        .prop_map(|(s, z, duration_hours, offset, now, blackouts)| {
            let (expression, _) = PROPERTY_SCHEDULES[s];
            let mut d = definition(expression, PROPERTY_ZONES[z], hours(duration_hours));
            d.cutoff = hours(duration_hours / 2);
            if d.schedule.is_cron() {
                d.offset_days = offset;
            }
            let now = Timestamp::from_second(now).expect("in range");
            d.anchor = add(now, -hours(24 * 100));
            d.exclusions = blackouts
                .into_iter()
                .enumerate()
                .map(|(i, (from_hours, length_hours))| {
                    let start = add(now, hours(from_hours));
                    Exclusion {
                        name: format!("blackout-{i}"),
                        start,
                        end: add(start, hours(length_hours)),
                    }
                })
                .collect();
            (d, now)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn next_windows_start_after_now_in_order((d, now) in arbitrary_definition()) {
        prop_assert!(d.validate().is_ok());
        let windows = d.next_windows(now, 6);
        for w in &windows {
            prop_assert!(w.start > now);
            prop_assert!(w.start < w.end);
            prop_assert!(w.start < w.cutoff_at && w.cutoff_at <= w.end);
        }
        for pair in windows.windows(2) {
            prop_assert!(pair[0].start < pair[1].start);
        }
    }

    #[test]
    fn windows_do_not_overlap_when_shorter_than_the_period(
        (s, z) in (proptest::sample::select(periodic_schedules()), 0..PROPERTY_ZONES.len()),
        duration_fraction in 0.0_f64..1.0,
        now in 946_684_800_i64..3_786_825_600,
    ) {
        let (expression, min_period_hours) = PROPERTY_SCHEDULES[s];
        let longest = min_period_hours.min(25) - 1;
        let duration_hours = 1 + ((longest - 1) as f64 * duration_fraction) as i64;
        let zone = PROPERTY_ZONES[z];
        // Lord Howe shifts by 30 minutes, within the one-hour allowance.
        let d = definition(expression, zone, hours(duration_hours));
        let windows = d.next_windows(Timestamp::from_second(now).expect("in range"), 8);
        for pair in windows.windows(2) {
            prop_assert!(pair[0].end <= pair[1].start, "{pair:?}");
        }
    }

    #[test]
    fn window_at_agrees_with_windows_listed_from_earlier(
        (d, now) in arbitrary_definition(),
        probe_minutes in 0_i64..=48 * 60,
    ) {
        // Windows containing the probe start within 24h before it, so at most 48h before now.
        let earlier = add(now, -hours(49));
        let probe = add(now, SignedDuration::from_mins(probe_minutes - 24 * 60));
        let listed = d.next_windows(earlier, 800);
        let containing: Vec<&Window> = listed.iter().filter(|w| w.contains(probe)).collect();
        let open = d.window_at(probe);
        prop_assert_eq!(open.is_some(), !containing.is_empty(), "probe {} open {:?}", probe, open);
        if let Some(open) = open {
            prop_assert_eq!(Some(&open), containing.last().copied());
        }
    }

    #[test]
    fn next_boundary_is_after_now_and_no_later_than_the_next_start(
        (d, now) in arbitrary_definition(),
    ) {
        let boundary = d.next_boundary(now);
        if let Some(boundary) = boundary {
            prop_assert!(boundary > now);
        }
        if let Some(next) = d.next_windows(now, 1).first() {
            prop_assert!(boundary.is_some_and(|b| b <= next.start));
        }
        // Nothing observable changes strictly between now and the boundary.
        if let Some(boundary) = boundary {
            let before = add(boundary, SignedDuration::from_nanos(-1));
            prop_assert_eq!(d.window_at(now), d.window_at(before));
            prop_assert_eq!(d.next_windows(now, 3), d.next_windows(before, 3));
        }
    }
}
