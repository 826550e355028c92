//! Maintenance-window arithmetic: when windows open, reach their cutoff and close.
//!
//! Rules (documented for users in `docs/maintenance-windows.md`):
//! - A cron or `at` start is a wall-clock time in the window's time zone. A start that falls in a
//!   DST gap (spring forward) opens at the first valid instant after the gap; a start in a
//!   repeated hour (fall back) opens once, at the earlier of the two instants. Several starts
//!   that land on the same instant (e.g. 02:00 and 02:30 in a gap) open one window.
//! - `rate(...)` starts are counted in elapsed time from the anchor (the first start), so they
//!   ignore DST, like AWS rate expressions.
//! - `offset_days` shifts every cron match by whole calendar days, keeping the wall-clock time.
//! - Windows may *start* only in `[start_date, end_date)`; a window that started before
//!   `end_date` runs to its normal end.
//! - No window starts inside an exclusion (`[start, end)`): that occurrence is skipped. A window
//!   that is open when an exclusion begins ends there; its cutoff moves no later than that.
//! - Windows may overlap when the duration is longer than the gap between starts; they are not
//!   merged, and [`WindowDefinition::window_at`] reports the most recently started one (which
//!   also ends last).
//! - Searches look at most [`SEARCH_HORIZON_YEARS`] ahead; a schedule that never matches (e.g.
//!   `cron(0 0 30 2 ? *)`) simply yields no windows.

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

use super::duration::format_duration;
use super::expr::{Schedule, ScheduleKind};

/// How many calendar years past `now` the window search looks before giving up. Eight years
/// covers a leap-day schedule (`cron(0 0 29 2 ? *)`) across 2100, which is not a leap year.
pub const SEARCH_HORIZON_YEARS: i16 = 8;

/// Upper bound on occurrences examined by one [`WindowDefinition::window_at`] query. A valid
/// definition needs at most 1,441 (a one-minute schedule with a 24-hour duration); the bound only
/// guards against unvalidated definitions.
const MAX_SCANNED_OCCURRENCES: usize = 10_000;

/// Upper bound on cron matches skipped because they resolve to an instant at or before the
/// search point, which happens only inside a repeated (fall-back) hour.
const MAX_FOLD_STEPS: usize = 100_000;

/// Shortest and longest allowed window.
const MIN_DURATION: SignedDuration = SignedDuration::from_hours(1);
const MAX_DURATION: SignedDuration = SignedDuration::from_hours(24);
/// Longest allowed cutoff.
const MAX_CUTOFF: SignedDuration = SignedDuration::from_hours(23);
/// Largest allowed `scheduleOffsetDays`.
const MAX_OFFSET_DAYS: u8 = 6;

/// What happens to nodes still being patched when a window reaches its cutoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CutoffBehavior {
    /// Nodes already in progress finish; no new node starts.
    #[default]
    ContinueTask,
    /// Nodes already in progress are cancelled as well.
    CancelTask,
}

/// A blackout range in which no window may start; an open window closes at its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusion {
    /// Name shown in messages (e.g. `year-end-freeze`).
    pub name: String,
    /// First instant of the blackout.
    pub start: Timestamp,
    /// First instant after the blackout (exclusive).
    pub end: Timestamp,
}

/// One window occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// When the window opens.
    pub start: Timestamp,
    /// When it closes (exclusive), after clipping at an exclusion.
    pub end: Timestamp,
    /// After this instant no new node starts: `end − cutoff`, clipped at an exclusion.
    pub cutoff_at: Timestamp,
}

impl Window {
    /// Whether the window is open at `at` (`start ≤ at < end`).
    pub fn contains(&self, at: Timestamp) -> bool {
        self.start <= at && at < self.end
    }

    /// Whether new work may start at `at` (`start ≤ at < cutoff_at`).
    pub fn accepts_new_work(&self, at: Timestamp) -> bool {
        self.start <= at && at < self.cutoff_at
    }
}

/// Why a window definition is invalid. Messages name the MaintenanceWindow field.
#[derive(Debug, thiserror::Error)]
pub enum WindowDefinitionError {
    /// `timeZone` is not an IANA time zone name known to the bundled database.
    #[error("timeZone: unknown time zone '{name}'")]
    UnknownTimeZone {
        /// The name as written.
        name: String,
        /// The lookup failure.
        #[source]
        source: jiff::Error,
    },
    /// `duration` is outside 1h–24h.
    #[error("duration: must be between 1h and 24h, got {0}")]
    Duration(String),
    /// `cutoff` is outside 0–23h.
    #[error("cutoff: must be between 0s and 23h, got {0}")]
    CutoffRange(String),
    /// `cutoff` is not shorter than `duration`.
    #[error("cutoff: must be shorter than duration ({duration}), got {cutoff}")]
    CutoffNotShorterThanDuration {
        /// The cutoff, formatted.
        cutoff: String,
        /// The duration, formatted.
        duration: String,
    },
    /// `scheduleOffsetDays` is above 6.
    #[error("scheduleOffsetDays: must be 0-6, got {0}")]
    OffsetDaysRange(u8),
    /// `scheduleOffsetDays` is set on a rate or at schedule.
    #[error("scheduleOffsetDays: only cron schedules can be offset, not '{0}'")]
    OffsetDaysNotCron(String),
    /// `endDate` is not after `startDate`.
    #[error("endDate: must be after startDate ({start_date}), got {end_date}")]
    EndDateNotAfterStartDate {
        /// The start date.
        start_date: Timestamp,
        /// The end date.
        end_date: Timestamp,
    },
    /// An exclusion's end is not after its start.
    #[error("exclusions[{index}] ({name}): end must be after start")]
    ExclusionEndNotAfterStart {
        /// Position in the list.
        index: usize,
        /// The exclusion's name.
        name: String,
    },
}

impl WindowDefinitionError {
    /// A bounded label for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            WindowDefinitionError::UnknownTimeZone { .. } => "invalid-time-zone",
            WindowDefinitionError::Duration(_) => "invalid-duration",
            WindowDefinitionError::CutoffRange(_)
            | WindowDefinitionError::CutoffNotShorterThanDuration { .. } => "invalid-cutoff",
            WindowDefinitionError::OffsetDaysRange(_)
            | WindowDefinitionError::OffsetDaysNotCron(_) => "invalid-offset-days",
            WindowDefinitionError::EndDateNotAfterStartDate { .. } => "invalid-dates",
            WindowDefinitionError::ExclusionEndNotAfterStart { .. } => "invalid-exclusion",
        }
    }
}

/// Looks up an IANA time zone name (`Europe/Berlin`); an empty name or `UTC` is UTC.
pub fn parse_time_zone(name: &str) -> Result<TimeZone, WindowDefinitionError> {
    let name = name.trim();
    if name.is_empty() || name == "UTC" {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name).map_err(|source| WindowDefinitionError::UnknownTimeZone {
        name: name.chars().take(64).collect(),
        source,
    })
}

/// Everything needed to compute a maintenance window's occurrences; the pure counterpart of a
/// MaintenanceWindow spec.
#[derive(Debug, Clone)]
pub struct WindowDefinition {
    /// When windows start.
    pub schedule: Schedule,
    /// The zone cron and `at` wall-clock times are read in.
    pub time_zone: TimeZone,
    /// How long each window lasts (1h–24h).
    pub duration: SignedDuration,
    /// How long before the end no new node starts (0–23h, shorter than `duration`).
    pub cutoff: SignedDuration,
    /// What happens to in-flight nodes at the cutoff (carried for the controller).
    pub cutoff_behavior: CutoffBehavior,
    /// Calendar days added to every cron match (0–6; "Patch Tuesday + 2").
    pub offset_days: u8,
    /// No window starts before this instant.
    pub start_date: Option<Timestamp>,
    /// No window starts at or after this instant.
    pub end_date: Option<Timestamp>,
    /// Blackout ranges.
    pub exclusions: Vec<Exclusion>,
    /// When true there are no windows at all.
    pub suspend: bool,
    /// The first start of a `rate(...)` schedule: the MaintenanceWindow's `startDate`, or its
    /// creation time when it has none. Ignored by cron and `at` schedules.
    pub anchor: Timestamp,
}

impl WindowDefinition {
    /// A definition with no cutoff, offset, date bounds or exclusions. Call
    /// [`WindowDefinition::validate`] after setting the remaining fields.
    pub fn new(
        schedule: Schedule,
        time_zone: TimeZone,
        duration: SignedDuration,
        anchor: Timestamp,
    ) -> WindowDefinition {
        WindowDefinition {
            schedule,
            time_zone,
            duration,
            cutoff: SignedDuration::ZERO,
            cutoff_behavior: CutoffBehavior::default(),
            offset_days: 0,
            start_date: None,
            end_date: None,
            exclusions: Vec::new(),
            suspend: false,
            anchor,
        }
    }

    /// Checks the limits of the API: duration 1h–24h, cutoff 0–23h and shorter than the
    /// duration, offset 0–6 and only on cron schedules, `endDate` after `startDate`, and every
    /// exclusion ending after it starts. Returns the first violation.
    pub fn validate(&self) -> Result<(), WindowDefinitionError> {
        if self.duration < MIN_DURATION || self.duration > MAX_DURATION {
            return Err(WindowDefinitionError::Duration(format_duration(
                self.duration,
            )));
        }
        if self.cutoff.is_negative() || self.cutoff > MAX_CUTOFF {
            return Err(WindowDefinitionError::CutoffRange(format_duration(
                self.cutoff,
            )));
        }
        if self.cutoff >= self.duration {
            return Err(WindowDefinitionError::CutoffNotShorterThanDuration {
                cutoff: format_duration(self.cutoff),
                duration: format_duration(self.duration),
            });
        }
        if self.offset_days > MAX_OFFSET_DAYS {
            return Err(WindowDefinitionError::OffsetDaysRange(self.offset_days));
        }
        if self.offset_days > 0 && !self.schedule.is_cron() {
            return Err(WindowDefinitionError::OffsetDaysNotCron(
                self.schedule.expression().to_owned(),
            ));
        }
        if let (Some(start_date), Some(end_date)) = (self.start_date, self.end_date)
            && end_date <= start_date
        {
            return Err(WindowDefinitionError::EndDateNotAfterStartDate {
                start_date,
                end_date,
            });
        }
        if let Some((index, exclusion)) = self
            .exclusions
            .iter()
            .enumerate()
            .find(|(_, e)| e.end <= e.start)
        {
            return Err(WindowDefinitionError::ExclusionEndNotAfterStart {
                index,
                name: exclusion.name.clone(),
            });
        }
        Ok(())
    }

    /// The window open at `now` (`start ≤ now < end`), if any. When overlapping windows are
    /// open, the most recently started one.
    pub fn window_at(&self, now: Timestamp) -> Option<Window> {
        if self.suspend {
            return None;
        }
        let last_year = self.horizon_year(now);
        // Any window open at `now` started in (now − duration, now].
        let mut after = sub(now, self.duration);
        let mut latest = None;
        for _ in 0..MAX_SCANNED_OCCURRENCES {
            match self.next_window_after(after, last_year) {
                Some(window) if window.start <= now => {
                    after = window.start;
                    latest = Some(window);
                }
                _ => break,
            }
        }
        // The latest valid window ends no earlier than any earlier one: an earlier window
        // either ends before it starts or is clipped by the same exclusion.
        latest.filter(|window| window.end > now)
    }

    /// Up to `count` windows starting strictly after `now`, in order.
    pub fn next_windows(&self, now: Timestamp, count: usize) -> Vec<Window> {
        if self.suspend || count == 0 {
            return Vec::new();
        }
        let last_year = self.horizon_year(now);
        let mut windows = Vec::with_capacity(count.min(64));
        let mut after = now;
        while windows.len() < count {
            let Some(window) = self.next_window_after(after, last_year) else {
                break;
            };
            after = window.start;
            windows.push(window);
        }
        windows
    }

    /// The next instant after `now` at which the answer of [`WindowDefinition::window_at`] or
    /// the list of upcoming windows changes, or the open window reaches its cutoff: the
    /// controller requeues exactly then. `None` when nothing will happen within the search
    /// horizon.
    pub fn next_boundary(&self, now: Timestamp) -> Option<Timestamp> {
        if self.suspend {
            return None;
        }
        let open = self.window_at(now);
        let next_start = self.next_windows(now, 1).first().map(|window| window.start);
        let open_boundaries = open.into_iter().flat_map(|window| {
            let cutoff = (window.cutoff_at > now).then_some(window.cutoff_at);
            cutoff.into_iter().chain([window.end])
        });
        // An exclusion beginning or ending changes what the status says (its name is shown
        // while it is in force).
        let exclusion_boundaries = self
            .exclusions
            .iter()
            .flat_map(|e| [e.start, e.end])
            .filter(|at| *at > now);
        open_boundaries
            .chain(next_start)
            .chain(exclusion_boundaries)
            .min()
    }

    /// The exclusion in force at `now` (the one ending last when several overlap).
    pub fn exclusion_at(&self, now: Timestamp) -> Option<&Exclusion> {
        self.exclusions
            .iter()
            .filter(|e| e.start <= now && now < e.end)
            .max_by_key(|e| e.end)
    }

    /// The last calendar year (in the window's zone) the search may reach from `now`.
    fn horizon_year(&self, now: Timestamp) -> i16 {
        self.time_zone
            .to_datetime(now)
            .year()
            .saturating_add(SEARCH_HORIZON_YEARS)
            .min(9999)
    }

    /// The first window starting strictly after `after` that respects the date bounds and the
    /// exclusions.
    fn next_window_after(&self, after: Timestamp, last_year: i16) -> Option<Window> {
        let mut after = after;
        if let Some(start_date) = self.start_date {
            // A start exactly at startDate is allowed.
            after = after.max(sub(start_date, SignedDuration::from_nanos(1)));
        }
        // Each round skips past at least one exclusion, so this ends.
        for _ in 0..=self.exclusions.len() {
            let start = self.next_start_after(after, last_year)?;
            if self.end_date.is_some_and(|end_date| start >= end_date) {
                return None;
            }
            match self.blackout_end_containing(start) {
                // Continue with starts at or after the blackout's end.
                Some(blackout_end) => after = sub(blackout_end, SignedDuration::from_nanos(1)),
                None => return Some(self.window_starting_at(start)),
            }
        }
        None
    }

    /// The latest end among the exclusions containing `at`.
    fn blackout_end_containing(&self, at: Timestamp) -> Option<Timestamp> {
        self.exclusions
            .iter()
            .filter(|e| e.start <= at && at < e.end)
            .map(|e| e.end)
            .max()
    }

    /// The window opening at `start`, clipped at the first exclusion that begins inside it.
    fn window_starting_at(&self, start: Timestamp) -> Window {
        let nominal_end = add(start, self.duration);
        let end = self
            .exclusions
            .iter()
            .map(|e| e.start)
            .filter(|&blackout| start < blackout && blackout < nominal_end)
            .min()
            .unwrap_or(nominal_end);
        let cutoff_at = sub(nominal_end, self.cutoff).min(end);
        Window {
            start,
            end,
            cutoff_at,
        }
    }

    /// The first schedule occurrence strictly after `after`, ignoring dates and exclusions.
    fn next_start_after(&self, after: Timestamp, last_year: i16) -> Option<Timestamp> {
        match self.schedule.kind() {
            ScheduleKind::Cron(cron) => {
                let shift = SignedDuration::from_hours(24 * i64::from(self.offset_days));
                let local_after = self.time_zone.to_datetime(after);
                // Matches are searched unshifted: a match m yields the start m + shift.
                let mut search_after = local_after.checked_sub(shift).ok()?;
                for _ in 0..MAX_FOLD_STEPS {
                    let matched = cron.first_match_after(search_after, last_year)?;
                    let local_start = matched.checked_add(shift).ok()?;
                    let start = resolve_local(&self.time_zone, local_start)?;
                    // Only in a repeated hour can a later wall-clock time map to an instant at
                    // or before `after`; keep walking then.
                    if start > after {
                        return Some(start);
                    }
                    search_after = matched;
                }
                None
            }
            ScheduleKind::Rate(rate) => {
                let period = rate.period().as_nanos();
                let anchor = self.anchor.as_nanosecond();
                let after = after.as_nanosecond();
                let steps = if after < anchor {
                    0
                } else {
                    (after - anchor) / period + 1
                };
                Timestamp::from_nanosecond(anchor + steps * period).ok()
            }
            ScheduleKind::At(local) => {
                resolve_local(&self.time_zone, *local).filter(|&start| start > after)
            }
        }
    }
}

/// `at + duration`, saturating at the ends of the supported range instead of failing.
fn add(at: Timestamp, duration: SignedDuration) -> Timestamp {
    at.checked_add(duration)
        .unwrap_or(if duration.is_negative() {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        })
}

/// `at − duration`, saturating at the ends of the supported range instead of failing (or
/// overflowing on negation, as `add(at, -duration)` could for unvalidated durations).
fn sub(at: Timestamp, duration: SignedDuration) -> Timestamp {
    at.checked_sub(duration)
        .unwrap_or(if duration.is_negative() {
            Timestamp::MAX
        } else {
            Timestamp::MIN
        })
}

/// The instant a wall-clock start refers to: a time in a DST gap maps to the end of the gap
/// (the first valid instant after it), a time in a repeated hour to its earlier occurrence.
fn resolve_local(time_zone: &TimeZone, local: DateTime) -> Option<Timestamp> {
    match time_zone.to_ambiguous_timestamp(local).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(local).ok(),
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(local).ok(),
        AmbiguousOffset::Gap { after, .. } => {
            // Read with the later offset, a time in the gap lands just before the transition;
            // the next transition is the end of the gap.
            let inside = after.to_timestamp(local).ok()?;
            time_zone
                .following(inside)
                .next()
                .map(|transition| transition.timestamp())
        }
    }
}

#[cfg(test)]
mod tests;
