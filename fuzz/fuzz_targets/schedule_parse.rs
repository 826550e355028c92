//! Fuzz the schedule parser and, for every expression it accepts, the window arithmetic:
//! nothing may panic or loop, and the answers must respect the documented invariants.
#![no_main]

use jiff::{SignedDuration, Timestamp};
use libfuzzer_sys::fuzz_target;
use nodepatch::schedule::{Exclusion, Schedule, WindowDefinition, parse_duration, parse_time_zone};

/// Zones with DST gaps and folds of different sizes, a half-hour offset and no DST at all.
const ZONES: &[&str] = &[
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "Pacific/Apia",
];

fuzz_target!(|data: &[u8]| {
    // The first bytes pick the query; the rest is the expression.
    let Some((&[zone, hours, cutoff, offset, when_hi, when_lo], rest)) = data.split_first_chunk()
    else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let _ = parse_duration(text);
    let Ok(schedule) = Schedule::parse(text) else {
        return;
    };
    let Ok(time_zone) = parse_time_zone(ZONES[usize::from(zone) % ZONES.len()]) else {
        return;
    };
    // Instants between 1970 and about 2100, at whole seconds.
    let seconds = (i64::from(u16::from_be_bytes([when_hi, when_lo])) * 60_000) % 4_102_444_800;
    let Ok(now) = Timestamp::from_second(seconds) else {
        return;
    };
    let duration = SignedDuration::from_hours(1 + i64::from(hours % 24));
    let mut definition = WindowDefinition::new(schedule, time_zone, duration, now);
    definition.cutoff = SignedDuration::from_hours(i64::from(cutoff) % duration.as_hours());
    if definition.schedule.is_cron() {
        definition.offset_days = offset % 7;
    }
    if offset & 0x80 != 0
        && let Ok(end) = now.checked_add(SignedDuration::from_hours(i64::from(offset & 0x7f) + 1))
    {
        definition.exclusions.push(Exclusion {
            name: "fuzz".into(),
            start: now,
            end,
        });
    }
    assert!(definition.validate().is_ok());

    let windows = definition.next_windows(now, 3);
    for window in &windows {
        assert!(window.start > now);
        assert!(window.start < window.end && window.cutoff_at <= window.end);
    }
    for pair in windows.windows(2) {
        assert!(pair[0].start < pair[1].start);
    }
    if let Some(open) = definition.window_at(now) {
        assert!(open.contains(now));
    }
    if let Some(boundary) = definition.next_boundary(now) {
        assert!(boundary > now);
    }
});
