//! Time of `WindowDefinition::next_windows(now, 1)` for the schedule shapes the unit tests cover.
//! Goal: at most 20 µs per call. Results and the command are in docs/benchmarks.md.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::{SignedDuration, Timestamp};
use nodepatch::schedule::{Exclusion, Schedule, WindowDefinition, parse_time_zone};

/// (benchmark name, expression, time zone, offset days)
const CASES: &[(&str, &str, &str, u8)] = &[
    (
        "second_tuesday",
        "cron(0 2 ? * TUE#2 *)",
        "Europe/Berlin",
        0,
    ),
    (
        "patch_tuesday_plus_2",
        "cron(0 2 ? * TUE#2 *)",
        "Europe/Berlin",
        2,
    ),
    ("last_friday", "cron(30 22 ? * 6L *)", "UTC", 0),
    ("last_day_of_month", "cron(0 23 L * ? *)", "UTC", 0),
    ("nearest_weekday_15w", "cron(0 3 15W * ? *)", "UTC", 0),
    ("rate_6_hours", "rate(6 hours)", "UTC", 0),
    (
        "dst_gap_new_york",
        "cron(30 2 * * ? *)",
        "America/New_York",
        0,
    ),
    (
        "dst_fold_berlin",
        "cron(30 2 ? * SUN *)",
        "Europe/Berlin",
        0,
    ),
    ("kolkata_plain_cron", "0 2 * * *", "Asia/Kolkata", 0),
    ("year_range", "cron(0 2 ? * TUE#2 2026-2027)", "UTC", 0),
    ("every_15_minutes", "*/15 * * * *", "UTC", 0),
    ("never_matches_feb_30", "cron(0 0 30 2 ? *)", "UTC", 0),
];

fn timestamp(text: &str) -> Timestamp {
    text.parse().expect("valid timestamp literal")
}

fn definition(expression: &str, zone: &str, offset_days: u8) -> WindowDefinition {
    let schedule = Schedule::parse(expression).expect("valid expression");
    let time_zone = parse_time_zone(zone).expect("known zone");
    let mut definition = WindowDefinition::new(
        schedule,
        time_zone,
        SignedDuration::from_hours(4),
        timestamp("2026-01-01T00:00:00Z"),
    );
    definition.cutoff = SignedDuration::from_hours(1);
    definition.offset_days = offset_days;
    definition
}

fn next_window(c: &mut Criterion) {
    // Just before the New York spring-forward night, so the DST cases resolve a gap or fold soon.
    let now = timestamp("2026-03-07T12:00:00Z");
    let mut group = c.benchmark_group("next_windows_1");
    for &(name, expression, zone, offset_days) in CASES {
        let definition = definition(expression, zone, offset_days);
        group.bench_function(name, |b| {
            b.iter(|| black_box(&definition).next_windows(black_box(now), 1))
        });
    }
    // The same second Tuesday with three exclusions to skip past.
    let mut excluded = definition("cron(0 2 ? * TUE#2 *)", "Europe/Berlin", 0);
    excluded.exclusions = (0..3)
        .map(|month| Exclusion {
            name: format!("freeze-{month}"),
            start: timestamp("2026-03-01T00:00:00Z")
                .checked_add(SignedDuration::from_hours(24 * 31 * month))
                .expect("in range"),
            end: timestamp("2026-03-28T00:00:00Z")
                .checked_add(SignedDuration::from_hours(24 * 31 * month))
                .expect("in range"),
        })
        .collect();
    group.bench_function("second_tuesday_3_exclusions", |b| {
        b.iter(|| black_box(&excluded).next_windows(black_box(now), 1))
    });
    group.finish();

    let mut group = c.benchmark_group("window_at");
    let daily = definition("cron(30 2 * * ? *)", "America/New_York", 0);
    group.bench_function("daily_new_york", |b| {
        b.iter(|| black_box(&daily).window_at(black_box(now)))
    });
    // Worst case for a valid definition: a start every minute and a 24-hour duration, so the
    // query walks the 1,440 starts of the last day.
    let mut every_minute = definition("* * * * *", "UTC", 0);
    every_minute.duration = SignedDuration::from_hours(24);
    group.bench_function("every_minute_24h_worst_case", |b| {
        b.iter(|| black_box(&every_minute).window_at(black_box(now)))
    });
    group.finish();

    let mut group = c.benchmark_group("parse");
    group.bench_function("aws_cron", |b| {
        b.iter(|| Schedule::parse(black_box("cron(0 2 ? * TUE#2 2026-2030)")))
    });
    group.finish();
}

criterion_group!(benches, next_window);
criterion_main!(benches);
