//! Pure schedule engine for maintenance windows: parsing `cron(...)`, plain cron, `rate(...)`
//! and `at(...)` expressions, time zones and DST, and window arithmetic.
//!
//! Nothing here performs I/O or reads the clock: every query takes `now` as an argument, so the
//! controller, the `nodepatch windows` CLI and the tests all see the same answers.
//!
//! ```
//! use jiff::{SignedDuration, Timestamp};
//! use nodepatch::schedule::{Schedule, WindowDefinition, parse_time_zone};
//!
//! let schedule = Schedule::parse("cron(0 2 ? * TUE#2 *)")?;
//! let zone = parse_time_zone("Europe/Berlin")?;
//! let now: Timestamp = "2026-01-01T00:00:00Z".parse()?;
//! let window = WindowDefinition::new(schedule, zone, SignedDuration::from_hours(4), now);
//! window.validate()?;
//! let next = window.next_windows(now, 1);
//! assert_eq!(next[0].start.to_string(), "2026-01-13T01:00:00Z");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod duration;
pub mod expr;
pub mod window;

pub use duration::{DurationError, format_duration, parse_duration};
pub use expr::{
    CronDialect, CronSchedule, RateSchedule, RateUnit, Schedule, ScheduleError, ScheduleKind,
};
pub use window::{
    CutoffBehavior, Exclusion, SEARCH_HORIZON_YEARS, Window, WindowDefinition,
    WindowDefinitionError, parse_time_zone,
};
