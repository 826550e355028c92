use super::*;
use jiff::civil::date;

fn cron(expression: &str) -> CronSchedule {
    match Schedule::parse(expression) {
        Ok(Schedule {
            kind: ScheduleKind::Cron(c),
            ..
        }) => c,
        other => panic!("{expression}: {other:?}"),
    }
}

/// The first `count` matches after `from`.
fn matches_after(expression: &str, from: DateTime, count: usize) -> Vec<DateTime> {
    let schedule = cron(expression);
    let mut out = Vec::new();
    let mut at = from;
    while out.len() < count {
        let Some(next) = schedule.first_match_after(at, from.year() + 10) else {
            break;
        };
        assert!(
            schedule.matches(next),
            "{expression} does not match its own {next}"
        );
        out.push(next);
        at = next;
    }
    out
}

fn days(list: &[(i16, i8, i8)], hour: i8, minute: i8) -> Vec<DateTime> {
    list.iter()
        .map(|&(y, m, d)| date(y, m, d).at(hour, minute, 0, 0))
        .collect()
}

#[test]
fn second_tuesday_of_each_month() {
    let found = matches_after("cron(0 2 ? * TUE#2 *)", date(2026, 1, 1).at(0, 0, 0, 0), 4);
    assert_eq!(
        found,
        days(
            &[(2026, 1, 13), (2026, 2, 10), (2026, 3, 10), (2026, 4, 14)],
            2,
            0
        )
    );
    // Numeric AWS weekday 3 is Tuesday.
    assert_eq!(
        matches_after("cron(0 2 ? * 3#2 *)", date(2026, 1, 1).at(0, 0, 0, 0), 4),
        found
    );
}

#[test]
fn last_friday_of_each_month() {
    assert_eq!(
        matches_after("cron(30 22 ? * 6L *)", date(2026, 1, 1).at(0, 0, 0, 0), 3),
        days(&[(2026, 1, 30), (2026, 2, 27), (2026, 3, 27)], 22, 30)
    );
    assert_eq!(
        matches_after("cron(30 22 ? * FRIL *)", date(2026, 1, 1).at(0, 0, 0, 0), 1),
        days(&[(2026, 1, 30)], 22, 30)
    );
}

#[test]
fn last_day_of_month_including_leap_february() {
    assert_eq!(
        matches_after("cron(0 0 L * ? *)", date(2028, 1, 1).at(0, 0, 0, 0), 4),
        days(
            &[(2028, 1, 31), (2028, 2, 29), (2028, 3, 31), (2028, 4, 30)],
            0,
            0
        )
    );
}

#[test]
fn last_weekday_of_month() {
    // May 2026 ends on a Sunday (→ Fri 29), Jan 2026 on a Saturday (→ Fri 30),
    // Mar 2026 on a Tuesday.
    assert_eq!(
        matches_after(
            "cron(0 0 LW 1,3,5 ? 2026)",
            date(2026, 1, 1).at(0, 0, 0, 0),
            4
        ),
        days(&[(2026, 1, 30), (2026, 3, 31), (2026, 5, 29)], 0, 0)
    );
}

#[test]
fn nearest_weekday_to_the_fifteenth() {
    // 2026: Feb 15 is a Sunday (→ Mon 16), Mar 15 a Sunday (→ Mon 16),
    // Aug 15 a Saturday (→ Fri 14), Apr 15 a Wednesday.
    let found = matches_after("cron(0 3 15W * ? 2026)", date(2026, 2, 1).at(0, 0, 0, 0), 7);
    assert_eq!(
        found,
        days(
            &[
                (2026, 2, 16),
                (2026, 3, 16),
                (2026, 4, 15),
                (2026, 5, 15),
                (2026, 6, 15),
                (2026, 7, 15),
                (2026, 8, 14),
            ],
            3,
            0
        )
    );
}

#[test]
fn nearest_weekday_never_leaves_the_month() {
    // August 2026 starts on a Saturday: 1W is Monday the 3rd, not Friday July 31.
    assert_eq!(
        matches_after("cron(0 0 1W 8 ? 2026)", date(2026, 1, 1).at(0, 0, 0, 0), 1),
        days(&[(2026, 8, 3)], 0, 0)
    );
    // May 31 2026 is a Sunday: 31W is Friday the 29th, not Monday June 1.
    assert_eq!(
        matches_after("cron(0 0 31W 5 ? 2026)", date(2026, 1, 1).at(0, 0, 0, 0), 1),
        days(&[(2026, 5, 29)], 0, 0)
    );
    // A day the month does not have never matches (31W in April).
    assert_eq!(
        matches_after("cron(0 0 31W 4 ? 2026)", date(2026, 1, 1).at(0, 0, 0, 0), 1),
        Vec::<DateTime>::new()
    );
}

#[test]
fn year_field_ranges_lists_and_steps() {
    assert_eq!(
        matches_after(
            "cron(0 0 1 1 ? 2027-2028,2030)",
            date(2026, 6, 1).at(0, 0, 0, 0),
            5
        ),
        days(&[(2027, 1, 1), (2028, 1, 1), (2030, 1, 1)], 0, 0)
    );
    assert_eq!(
        matches_after("cron(0 0 1 1 ? 2026/2)", date(2026, 6, 1).at(0, 0, 0, 0), 2),
        days(&[(2028, 1, 1), (2030, 1, 1)], 0, 0)
    );
    // A year before now never matches again.
    assert!(matches_after("cron(0 0 * * ? 2020)", date(2026, 1, 1).at(0, 0, 0, 0), 1).is_empty());
}

#[test]
fn february_thirtieth_never_matches_and_the_search_ends() {
    assert!(matches_after("cron(0 0 30 2 ? *)", date(2026, 1, 1).at(0, 0, 0, 0), 1).is_empty());
    assert!(matches_after("0 0 30 2 *", date(2026, 1, 1).at(0, 0, 0, 0), 1).is_empty());
}

#[test]
fn plain_cron_steps_ranges_and_names() {
    assert_eq!(
        matches_after(
            "*/15 9-10 * * MON-FRI",
            date(2026, 1, 2).at(10, 40, 0, 0),
            3
        ),
        vec![
            date(2026, 1, 2).at(10, 45, 0, 0),
            date(2026, 1, 5).at(9, 0, 0, 0),
            date(2026, 1, 5).at(9, 15, 0, 0),
        ]
    );
    // 0 and 7 are both Sunday in plain cron.
    assert_eq!(
        matches_after("0 2 * * 7", date(2026, 1, 1).at(0, 0, 0, 0), 1),
        matches_after("0 2 * * 0", date(2026, 1, 1).at(0, 0, 0, 0), 1),
    );
    assert_eq!(
        matches_after("0 2 * jan,feb tue", date(2026, 1, 1).at(0, 0, 0, 0), 1),
        days(&[(2026, 1, 6)], 2, 0)
    );
}

#[test]
fn plain_cron_weekday_numbering_is_zero_based() {
    // "0 2 * * 2" is Tuesday in plain cron; AWS numbering would make 2 Monday.
    assert_eq!(
        matches_after("0 2 * * 2", date(2026, 1, 1).at(0, 0, 0, 0), 1),
        days(&[(2026, 1, 6)], 2, 0)
    );
    assert_eq!(
        matches_after("cron(0 2 ? * 2 *)", date(2026, 1, 1).at(0, 0, 0, 0), 1),
        days(&[(2026, 1, 5)], 2, 0)
    );
}

#[test]
fn plain_cron_restricted_day_fields_match_either_vixie_style() {
    // The 13th of the month or any Friday.
    assert_eq!(
        matches_after("0 0 13 * 5", date(2026, 2, 1).at(0, 0, 0, 0), 4),
        days(
            &[(2026, 2, 6), (2026, 2, 13), (2026, 2, 20), (2026, 2, 27)],
            0,
            0
        )
    );
    // With a '*'-led day field both must match: odd days that are Fridays.
    assert_eq!(
        matches_after("0 0 */2 * 5", date(2026, 2, 1).at(0, 0, 0, 0), 2),
        days(&[(2026, 2, 13), (2026, 2, 27)], 0, 0)
    );
}

#[test]
fn search_walks_across_hours_days_months_and_years() {
    assert_eq!(
        matches_after(
            "cron(59 23 31 12 ? *)",
            date(2026, 12, 31).at(23, 59, 0, 0),
            1
        ),
        days(&[(2027, 12, 31)], 23, 59)
    );
    assert_eq!(
        matches_after("5,10 1,3 * * *", date(2026, 1, 1).at(1, 10, 0, 0), 2),
        vec![
            date(2026, 1, 1).at(3, 5, 0, 0),
            date(2026, 1, 1).at(3, 10, 0, 0)
        ]
    );
}

#[test]
fn rate_expressions_parse_with_singular_and_plural_units() {
    let parsed = Schedule::parse("rate(6 hours)").map(|s| s.kind().clone());
    assert_eq!(
        parsed,
        Ok(ScheduleKind::Rate(RateSchedule {
            value: 6,
            unit: RateUnit::Hours
        }))
    );
    for ok in [
        "rate(1 minute)",
        "rate(1 day)",
        "rate(30 minutes)",
        "rate( 2 days )",
    ] {
        assert!(Schedule::parse(ok).is_ok(), "{ok}");
    }
}

#[test]
fn at_expressions_parse_as_local_date_times() {
    let parsed = Schedule::parse("at(2026-03-29T02:30:00)").map(|s| s.kind().clone());
    assert_eq!(
        parsed,
        Ok(ScheduleKind::At(date(2026, 3, 29).at(2, 30, 0, 0)))
    );
}

#[test]
fn invalid_expressions_are_rejected_with_field_and_reason() {
    let cases = [
        ("", "schedule: empty expression"),
        (
            "cron(0 2 ? * TUE#6 *)",
            "dow: 'TUE#6' — nth weekday must be 1-5",
        ),
        (
            "cron(0 2 ? * 3#0 *)",
            "dow: '3#0' — nth weekday must be 1-5",
        ),
        (
            "cron(0 2 1 * TUE *)",
            "dom/dow: one of day-of-month or day-of-week must be '?'",
        ),
        (
            "cron(0 2 ? * ? *)",
            "dom/dow: day-of-month and day-of-week cannot both be '?'",
        ),
        (
            "cron(0 2 ? * TUE)",
            "cron: expected 6 fields (minute hour day-of-month month day-of-week year), found 5",
        ),
        (
            "cron(0 2 ? * TUE *",
            "schedule: 'cron(0 2 ? * TUE *' — missing closing ')'",
        ),
        ("cron(60 2 ? * TUE *)", "minute: '60' — must be 0-59"),
        ("cron(0 24 ? * TUE *)", "hour: '24' — must be 0-23"),
        ("cron(0 2 32 * ? *)", "dom: '32' — must be 1-31"),
        ("cron(0 2 0 * ? *)", "dom: '0' — must be 1-31"),
        (
            "cron(0 2 ? FOO TUE *)",
            "month: 'FOO' — expected 1-12 or JAN-DEC",
        ),
        (
            "cron(0 2 ? * 8 *)",
            "dow: '8' — must be 1-7 (1=SUN) or SUN-SAT",
        ),
        ("cron(0 2 ? * TUE 1969)", "year: '1969' — must be 1970-2199"),
        ("cron(0 2 ? * TUE 2200)", "year: '2200' — must be 1970-2199"),
        (
            "cron(0 5-2 ? * TUE *)",
            "hour: '5-2' — range start is after its end",
        ),
        (
            "cron(*/0 2 ? * TUE *)",
            "minute: '*/0' — step must be at least 1",
        ),
        ("cron(0,,5 2 ? * TUE *)", "minute: '0,,5' — empty list item"),
        (
            "cron(? 2 ? * TUE *)",
            "minute: '?' — '?' is only allowed in day-of-month or day-of-week",
        ),
        (
            "cron(0 2 3#2 * ? *)",
            "dom: '3#2' — '#' is only allowed in day-of-week",
        ),
        (
            "cron(0 2 1-5W * ? *)",
            "dom: '1-5W' — 'W' takes a single day, e.g. '15W'",
        ),
        (
            "cron(0 2 L-2 * ? *)",
            "dom: 'L-2' — 'L' must stand alone (last day) or be written 'LW' (last weekday)",
        ),
        (
            "cron(0 2 ? * 2-3L *)",
            "dow: '2-3L' — 'L' takes a single weekday, e.g. '6L' (last Friday)",
        ),
        (
            "0 2 * * 8",
            "dow: '8' — must be 0-7 (0 and 7 = SUN) or SUN-SAT",
        ),
        (
            "0 2 L * *",
            "dom: 'L' — '?', 'L', 'W' and '#' need the AWS form cron(min hour dom month dow year)",
        ),
        (
            "0 2 * * TUE#2",
            "dow: 'TUE#2' — '?', 'L', 'W' and '#' need the AWS form cron(min hour dom month dow year)",
        ),
        (
            "0 2 * *",
            "cron: expected 5 fields (minute hour day-of-month month day-of-week), found 4",
        ),
        (
            "0 2 ? * TUE *",
            "cron: expected 5 fields (minute hour day-of-month month day-of-week), found 6; AWS 6-field expressions are written cron(min hour dom month dow year)",
        ),
        ("x 2 * * *", "minute: 'x' — expected 0-59"),
        (
            "@daily",
            "schedule: '@daily' — cron macros are not supported; write the 5 fields",
        ),
        (
            "every(5 minutes)",
            "schedule: unknown expression 'every(...)'; expected cron(...), rate(...), at(...) or a 5-field cron expression",
        ),
        (
            "rate(0 hours)",
            "rate: '0 hours' — value must be at least 1",
        ),
        (
            "rate(1 hours)",
            "rate: '1 hours' — use the singular unit 'hour' for a value of 1",
        ),
        (
            "rate(2 hour)",
            "rate: '2 hour' — use the plural unit 'hours' for values other than 1",
        ),
        (
            "rate(2 weeks)",
            "rate: '2 weeks' — unknown unit 'weeks'; expected minute(s), hour(s) or day(s)",
        ),
        (
            "rate(-2 hours)",
            "rate: '-2 hours' — value must be a whole number",
        ),
        (
            "rate(366 days)",
            "rate: '366 days' — period must be at most 365 days",
        ),
        (
            "rate(hours)",
            "rate: 'hours' — expected 'rate(N unit)' with unit minute(s), hour(s) or day(s)",
        ),
        (
            "at(2026-13-01T00:00:00)",
            "at: '2026-13-01T00:00:00' — not a valid calendar date and time",
        ),
        (
            "at(2026-02-30T00:00:00)",
            "at: '2026-02-30T00:00:00' — not a valid calendar date and time",
        ),
        (
            "at(2026-01-01 00:00:00)",
            "at: '2026-01-01 00:00:00' — expected YYYY-MM-DDThh:mm:ss (local time in the window's time zone)",
        ),
    ];
    for (expression, message) in cases {
        let error = Schedule::parse(expression).expect_err(expression);
        assert_eq!(error.to_string(), message, "expression {expression:?}");
    }
}

#[test]
fn overlong_input_is_rejected_and_echo_is_bounded() {
    let long = format!("cron(0 2 ? * {} *)", "TUE,".repeat(100));
    let error = Schedule::parse(&long).expect_err("too long");
    assert_eq!(
        error.to_string(),
        "schedule: expression is longer than 256 characters"
    );
    let bad_value = format!("0 2 * * {}", "X".repeat(200));
    let message = Schedule::parse(&bad_value).expect_err("bad").to_string();
    assert!(message.len() < 150, "{message}");
}

/// Matching days of one month, computed by the schedule.
fn matching_days(expression: &str, year: i16, month: i8) -> Vec<i8> {
    let schedule = cron(expression);
    (1..=date(year, month, 1).days_in_month())
        .filter(|&day| schedule.matches(date(year, month, day).at(0, 0, 0, 0)))
        .collect()
}

proptest::proptest! {
    #[test]
    fn day_rules_agree_with_an_independent_calendar(
        year in AWS_MIN_YEAR..=AWS_MAX_YEAR,
        month in 1_i8..=12,
        aws_weekday in 1_i8..=7,
        nth in 1_i8..=5,
        day in 1_i8..=31,
    ) {
        use jiff::civil::Weekday;
        let first = date(year, month, 1);
        let last = first.last_of_month();
        let weekday = Weekday::from_sunday_one_offset(aws_weekday).expect("1-7");

        let expected_nth: Vec<i8> = first
            .nth_weekday_of_month(nth, weekday)
            .ok()
            .filter(|d| d.month() == month)
            .map(|d| d.day())
            .into_iter()
            .collect();
        let nth_expression = format!("cron(0 0 ? * {aws_weekday}#{nth} *)");
        proptest::prop_assert_eq!(matching_days(&nth_expression, year, month), expected_nth);

        let last_of_weekday = first.nth_weekday_of_month(-1, weekday).expect("exists");
        let last_expression = format!("cron(0 0 ? * {aws_weekday}L *)");
        proptest::prop_assert_eq!(
            matching_days(&last_expression, year, month),
            vec![last_of_weekday.day()]
        );

        proptest::prop_assert_eq!(matching_days("cron(0 0 L * ? *)", year, month), vec![last.day()]);

        // Nearest weekday, by searching outward without leaving the month.
        let is_weekday = |d: jiff::civil::Date| {
            !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday)
        };
        let expected_nearest: Vec<i8> = if day > last.day() {
            Vec::new()
        } else {
            let target = date(year, month, day);
            let nearest = [0_i8, -1, 1, -2, 2]
                .iter()
                .filter_map(|&delta| {
                    let candidate = i32::from(day) + i32::from(delta);
                    (1..=i32::from(last.day()))
                        .contains(&candidate)
                        .then(|| date(year, month, candidate as i8))
                })
                .filter(|&d| is_weekday(d))
                .min_by_key(|&d| (d.day() - target.day()).abs());
            nearest.map(|d| d.day()).into_iter().collect()
        };
        let nearest_expression = format!("cron(0 0 {day}W * ? *)");
        proptest::prop_assert_eq!(
            matching_days(&nearest_expression, year, month),
            expected_nearest
        );

        let last_weekday = (0..3)
            .map(|back| last.day() - back)
            .find(|&d| is_weekday(date(year, month, d)))
            .expect("a weekday in the last three days");
        proptest::prop_assert_eq!(
            matching_days("cron(0 0 LW * ? *)", year, month),
            vec![last_weekday]
        );
    }

    #[test]
    fn search_finds_the_first_match_a_minute_scan_finds(
        minute in proptest::sample::select(vec!["*", "*/7", "5", "0-10/3", "59", "15,45"]),
        hour in proptest::sample::select(vec!["*", "*/5", "3", "22-23", "0,12"]),
        dom in proptest::sample::select(vec!["*", "1-15", "*/2", "31", "13"]),
        dow in proptest::sample::select(vec!["*", "MON-FRI", "0,6", "5"]),
        start in 0_i64..(200 * 365 * 24 * 60),
    ) {
        let expression = format!("{minute} {hour} {dom} * {dow}");
        let schedule = cron(&expression);
        let after = date(1970, 1, 1)
            .at(0, 0, 0, 0)
            .checked_add(jiff::SignedDuration::from_mins(start))
            .expect("in range");
        let found = schedule.first_match_after(after, after.year() + 1);
        // Scan minute by minute up to the found match (or 3 days when none was found).
        let limit = found.map_or(3 * 24 * 60, |f| {
            (f.duration_since(after).as_secs() / 60) as i64
        });
        let mut at = after
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .expect("valid");
        for _ in 1..limit.min(3 * 24 * 60) {
            at = at.checked_add(jiff::SignedDuration::from_mins(1)).expect("in range");
            proptest::prop_assert!(!schedule.matches(at), "{} matches {} before {:?}", expression, at, found);
        }
        if let Some(found) = found {
            proptest::prop_assert!(found > after && schedule.matches(found));
        }
    }
}

#[test]
fn error_categories_are_bounded_labels() {
    let categories: Vec<&str> = ["", "cron(61 * * * ? *)", "cron(0 0 ? * ? *)"]
        .iter()
        .map(|e| Schedule::parse(e).expect_err(e).category())
        .collect();
    assert_eq!(
        categories,
        [
            "schedule-syntax",
            "schedule-invalid-value",
            "schedule-day-fields"
        ]
    );
}
