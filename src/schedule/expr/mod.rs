//! Schedule expressions: AWS `cron(...)`, plain 5-field cron, `rate(...)` and `at(...)`.
//!
//! Cron fields are compiled to bitsets (minute, hour, month, year) plus day rules, so finding
//! the next match is a handful of bit scans per candidate day instead of a minute-by-minute walk.
//! Everything here works on civil (wall-clock) date-times; time zones and DST are applied by
//! [`crate::schedule::window`].

use std::fmt;

use jiff::SignedDuration;
use jiff::civil::{Date, DateTime};

/// Longest schedule expression accepted. Real expressions are far shorter; the bound keeps
/// error messages and parse work small for hostile input.
pub const MAX_EXPRESSION_LEN: usize = 256;

/// Longest piece of user input echoed back in an error message.
const MAX_ECHO: usize = 64;

/// First and last year an AWS `cron(...)` year field may name, as in EventBridge.
pub const AWS_MIN_YEAR: i16 = 1970;
/// Last year an AWS `cron(...)` year field may name.
pub const AWS_MAX_YEAR: i16 = 2199;

/// Why a schedule expression was rejected. Messages name the field and say why, e.g.
/// `dow: 'TUE#6' — nth weekday must be 1-5`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The expression as a whole has the wrong shape (unknown form, missing parenthesis,
    /// wrong number of fields).
    #[error("{field}: {reason}")]
    Syntax {
        /// `schedule`, `cron`, `rate` or `at`.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// One value inside a field is invalid.
    #[error("{field}: '{value}' — {reason}")]
    InvalidValue {
        /// `minute`, `hour`, `dom`, `month`, `dow`, `year`, `rate` or `at`.
        field: &'static str,
        /// The offending text as written (shortened if very long).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The day-of-month and day-of-week fields contradict each other.
    #[error("dom/dow: {reason}")]
    DayFields {
        /// What is wrong.
        reason: String,
    },
}

impl ScheduleError {
    /// A bounded label for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            ScheduleError::Syntax { .. } => "schedule-syntax",
            ScheduleError::InvalidValue { .. } => "schedule-invalid-value",
            ScheduleError::DayFields { .. } => "schedule-day-fields",
        }
    }

    fn syntax(field: &'static str, reason: impl Into<String>) -> Self {
        ScheduleError::Syntax {
            field,
            reason: reason.into(),
        }
    }

    fn value(field: &'static str, value: &str, reason: impl Into<String>) -> Self {
        ScheduleError::InvalidValue {
            field,
            value: echo(value),
            reason: reason.into(),
        }
    }
}

fn echo(input: &str) -> String {
    match input.char_indices().nth(MAX_ECHO) {
        Some((cut, _)) => format!("{}…", &input[..cut]),
        None => input.to_owned(),
    }
}

/// A parsed schedule expression. Keeps the text it was parsed from for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    expression: String,
    kind: ScheduleKind,
}

/// The three forms a schedule can take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleKind {
    /// A recurring wall-clock schedule (AWS `cron(...)` or plain 5-field cron).
    Cron(CronSchedule),
    /// A fixed interval counted from an anchor instant supplied by the caller.
    Rate(RateSchedule),
    /// A single wall-clock date-time, interpreted in the window's time zone.
    At(DateTime),
}

impl Schedule {
    /// Parses `cron(min hour dom month dow year)` (AWS), a plain 5-field cron expression,
    /// `rate(N unit)` or `at(YYYY-MM-DDThh:mm:ss)`. Surrounding whitespace is ignored.
    pub fn parse(expression: &str) -> Result<Schedule, ScheduleError> {
        let text = expression.trim();
        if text.is_empty() {
            return Err(ScheduleError::syntax("schedule", "empty expression"));
        }
        if text.len() > MAX_EXPRESSION_LEN {
            return Err(ScheduleError::syntax(
                "schedule",
                format!("expression is longer than {MAX_EXPRESSION_LEN} characters"),
            ));
        }
        let kind = if let Some(inner) = strip_call(text, "cron")? {
            ScheduleKind::Cron(CronSchedule::parse_aws(inner)?)
        } else if let Some(inner) = strip_call(text, "rate")? {
            ScheduleKind::Rate(RateSchedule::parse(inner)?)
        } else if let Some(inner) = strip_call(text, "at")? {
            ScheduleKind::At(parse_at(inner)?)
        } else if text.starts_with('@') {
            return Err(ScheduleError::syntax(
                "schedule",
                format!(
                    "'{}' — cron macros are not supported; write the 5 fields",
                    echo(text)
                ),
            ));
        } else if let Some(open) = text.find('(') {
            return Err(ScheduleError::syntax(
                "schedule",
                format!(
                    "unknown expression '{}(...)'; expected cron(...), rate(...), at(...) or a 5-field cron expression",
                    echo(text[..open].trim())
                ),
            ));
        } else {
            ScheduleKind::Cron(CronSchedule::parse_standard(text)?)
        };
        Ok(Schedule {
            expression: text.to_owned(),
            kind,
        })
    }

    /// The expression as written (trimmed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Which form the schedule takes, with its compiled contents.
    pub fn kind(&self) -> &ScheduleKind {
        &self.kind
    }

    /// Whether this is a cron schedule (the only form `scheduleOffsetDays` applies to).
    pub fn is_cron(&self) -> bool {
        matches!(self.kind, ScheduleKind::Cron(_))
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

impl std::str::FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Schedule::parse(s)
    }
}

/// If `text` is `name(...)`, returns the inside; errors when the parenthesis is not closed.
fn strip_call<'a>(text: &'a str, name: &str) -> Result<Option<&'a str>, ScheduleError> {
    let Some(rest) = text.strip_prefix(name) else {
        return Ok(None);
    };
    let Some(rest) = rest.trim_start().strip_prefix('(') else {
        return Ok(None);
    };
    let Some(inner) = rest.strip_suffix(')') else {
        return Err(ScheduleError::syntax(
            "schedule",
            format!("'{}' — missing closing ')'", echo(text)),
        ));
    };
    Ok(Some(inner.trim()))
}

// ---------------------------------------------------------------------------------------------
// rate(...)

/// The unit of a `rate(...)` expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateUnit {
    /// `minute` / `minutes`.
    Minutes,
    /// `hour` / `hours`.
    Hours,
    /// `day` / `days` (24 hours of elapsed time, not calendar days).
    Days,
}

/// `rate(N unit)`: a window every `N` units of elapsed time, counted from an anchor instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSchedule {
    value: u32,
    unit: RateUnit,
}

/// Longest accepted rate period, in minutes (one 365-day year). Longer periods are almost
/// certainly typos and would make "next window" meaningless.
const MAX_RATE_MINUTES: u64 = 365 * 24 * 60;

impl RateSchedule {
    fn parse(inner: &str) -> Result<RateSchedule, ScheduleError> {
        let mut parts = inner.split_whitespace();
        let (Some(number), Some(unit_text), None) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(ScheduleError::value(
                "rate",
                inner,
                "expected 'rate(N unit)' with unit minute(s), hour(s) or day(s)",
            ));
        };
        if !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ScheduleError::value(
                "rate",
                inner,
                "value must be a whole number",
            ));
        }
        let value: u32 = number
            .parse()
            .map_err(|_| ScheduleError::value("rate", inner, "value is too large"))?;
        if value == 0 {
            return Err(ScheduleError::value(
                "rate",
                inner,
                "value must be at least 1",
            ));
        }
        let (unit, singular) = match unit_text {
            "minute" => (RateUnit::Minutes, true),
            "minutes" => (RateUnit::Minutes, false),
            "hour" => (RateUnit::Hours, true),
            "hours" => (RateUnit::Hours, false),
            "day" => (RateUnit::Days, true),
            "days" => (RateUnit::Days, false),
            _ => {
                return Err(ScheduleError::value(
                    "rate",
                    inner,
                    format!(
                        "unknown unit '{}'; expected minute(s), hour(s) or day(s)",
                        echo(unit_text)
                    ),
                ));
            }
        };
        // AWS insists on the singular for 1 and the plural otherwise; so do we, so that an
        // expression accepted here is accepted there.
        if value == 1 && !singular {
            return Err(ScheduleError::value(
                "rate",
                inner,
                format!(
                    "use the singular unit '{}' for a value of 1",
                    unit_text.trim_end_matches('s')
                ),
            ));
        }
        if value != 1 && singular {
            return Err(ScheduleError::value(
                "rate",
                inner,
                format!("use the plural unit '{unit_text}s' for values other than 1"),
            ));
        }
        let rate = RateSchedule { value, unit };
        if rate.minutes() > MAX_RATE_MINUTES {
            return Err(ScheduleError::value(
                "rate",
                inner,
                "period must be at most 365 days",
            ));
        }
        Ok(rate)
    }

    /// The number of units between windows.
    pub fn value(&self) -> u32 {
        self.value
    }

    /// The unit of the interval.
    pub fn unit(&self) -> RateUnit {
        self.unit
    }

    fn minutes(&self) -> u64 {
        let per_unit = match self.unit {
            RateUnit::Minutes => 1,
            RateUnit::Hours => 60,
            RateUnit::Days => 24 * 60,
        };
        u64::from(self.value) * per_unit
    }

    /// The elapsed time between consecutive window starts.
    pub fn period(&self) -> SignedDuration {
        // At most MAX_RATE_MINUTES, so the conversion cannot overflow.
        SignedDuration::from_mins(self.minutes() as i64)
    }
}

// ---------------------------------------------------------------------------------------------
// at(...)

fn parse_at(inner: &str) -> Result<DateTime, ScheduleError> {
    const SHAPE: &[u8; 19] = b"dddd-dd-ddTdd:dd:dd";
    let bytes = inner.as_bytes();
    let shaped = bytes.len() == SHAPE.len()
        && bytes.iter().zip(SHAPE).all(|(&b, &s)| match s {
            b'd' => b.is_ascii_digit(),
            other => b == other,
        });
    if !shaped {
        return Err(ScheduleError::value(
            "at",
            inner,
            "expected YYYY-MM-DDThh:mm:ss (local time in the window's time zone)",
        ));
    }
    // The shape check guarantees ASCII digits at these positions.
    let number = |range: std::ops::Range<usize>| -> i32 {
        inner[range]
            .bytes()
            .fold(0, |acc, b| acc * 10 + i32::from(b - b'0'))
    };
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    let (hour, minute, second) = (number(11..13), number(14..16), number(17..19));
    let invalid = || ScheduleError::value("at", inner, "not a valid calendar date and time");
    let narrow = |v: i32| i8::try_from(v).map_err(|_| invalid());
    let year = i16::try_from(year).map_err(|_| invalid())?;
    DateTime::new(
        year,
        narrow(month)?,
        narrow(day)?,
        narrow(hour)?,
        narrow(minute)?,
        narrow(second)?,
        0,
    )
    .map_err(|_| invalid())
}

// ---------------------------------------------------------------------------------------------
// cron

/// Which cron dialect an expression was written in; they number weekdays differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronDialect {
    /// AWS `cron(min hour dom month dow year)`: weekdays 1=SUN … 7=SAT, `? L W #`, year field.
    Aws,
    /// Plain 5-field cron: weekdays 0=SUN … 6=SAT (7 is also SUN); when both day fields are
    /// restricted a day matching either one matches (Vixie cron).
    Standard,
}

/// How the day-of-month and day-of-week rules combine into "this day matches".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DayRule {
    /// AWS with `?` in day-of-week.
    DayOfMonth,
    /// AWS with `?` in day-of-month.
    DayOfWeek,
    /// Plain cron where at least one day field starts with `*`: both must match.
    Both,
    /// Plain cron where both day fields are restricted: either may match.
    Either,
}

/// Day-of-month rules, as bitsets indexed by day (bit 1 = the 1st).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct DaysOfMonth {
    /// Plain days.
    days: u32,
    /// `L`: the last day of the month.
    last: bool,
    /// `LW`: the last weekday (Mon–Fri) of the month.
    last_weekday: bool,
    /// `nW`: the weekday nearest to day n, without leaving the month.
    nearest_weekday: u32,
}

/// Day-of-week rules; weekdays are numbered 0=Sunday … 6=Saturday internally for both dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct DaysOfWeek {
    /// Every such weekday.
    days: u8,
    /// `nL`: the last such weekday of the month.
    last: u8,
    /// `d#n`: per weekday, bit n set for the nth such weekday of the month.
    nth: [u8; 7],
}

/// The set of years a cron expression allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum YearSet {
    /// Plain cron has no year field.
    Any,
    /// AWS year field: bit `y - AWS_MIN_YEAR` set for each allowed year.
    Aws([u64; 4]),
}

impl YearSet {
    /// The first allowed year at or after `year`, if any.
    fn first_at_or_after(&self, year: i16) -> Option<i16> {
        match self {
            YearSet::Any => Some(year),
            YearSet::Aws(bits) => {
                let from = year.max(AWS_MIN_YEAR);
                if from > AWS_MAX_YEAR {
                    return None;
                }
                let mut index = (from - AWS_MIN_YEAR) as usize;
                while index < 256 {
                    let word = bits[index / 64] & (u64::MAX << (index % 64));
                    if word != 0 {
                        let found = (index / 64) * 64 + word.trailing_zeros() as usize;
                        // Only bits for 1970..=2199 are ever set.
                        return Some(AWS_MIN_YEAR + found as i16);
                    }
                    index = (index / 64 + 1) * 64;
                }
                None
            }
        }
    }

    fn contains(&self, year: i16) -> bool {
        self.first_at_or_after(year) == Some(year)
    }
}

/// A compiled cron expression (either dialect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    dialect: CronDialect,
    /// Bit m for minute m (0–59).
    minutes: u64,
    /// Bit h for hour h (0–23).
    hours: u32,
    /// Bit m for month m (1–12).
    months: u16,
    days_of_month: DaysOfMonth,
    days_of_week: DaysOfWeek,
    day_rule: DayRule,
    years: YearSet,
}

/// The numeric range and names of one cron field.
struct FieldSpec {
    /// Short name used in error messages (`minute`, `hour`, `dom`, `month`, `dow`, `year`).
    name: &'static str,
    min: u32,
    max: u32,
    /// Accepted names and their values (months, weekdays).
    names: &'static [(&'static str, u32)],
    /// Human description of the accepted values, for messages.
    accepted: &'static str,
}

const MONTH_NAMES: &[(&str, u32)] = &[
    ("JAN", 1),
    ("FEB", 2),
    ("MAR", 3),
    ("APR", 4),
    ("MAY", 5),
    ("JUN", 6),
    ("JUL", 7),
    ("AUG", 8),
    ("SEP", 9),
    ("OCT", 10),
    ("NOV", 11),
    ("DEC", 12),
];

const AWS_DAY_NAMES: &[(&str, u32)] = &[
    ("SUN", 1),
    ("MON", 2),
    ("TUE", 3),
    ("WED", 4),
    ("THU", 5),
    ("FRI", 6),
    ("SAT", 7),
];

const STANDARD_DAY_NAMES: &[(&str, u32)] = &[
    ("SUN", 0),
    ("MON", 1),
    ("TUE", 2),
    ("WED", 3),
    ("THU", 4),
    ("FRI", 5),
    ("SAT", 6),
];

const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    accepted: "0-59",
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    accepted: "0-23",
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "dom",
    min: 1,
    max: 31,
    names: &[],
    accepted: "1-31",
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: MONTH_NAMES,
    accepted: "1-12 or JAN-DEC",
};
const AWS_DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "dow",
    min: 1,
    max: 7,
    names: AWS_DAY_NAMES,
    accepted: "1-7 (1=SUN) or SUN-SAT",
};
const STANDARD_DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "dow",
    min: 0,
    max: 7,
    names: STANDARD_DAY_NAMES,
    accepted: "0-7 (0 and 7 = SUN) or SUN-SAT",
};
const YEAR: FieldSpec = FieldSpec {
    name: "year",
    min: AWS_MIN_YEAR as u32,
    max: AWS_MAX_YEAR as u32,
    names: &[],
    accepted: "1970-2199",
};

impl FieldSpec {
    /// Parses one value: a number in range or (case-insensitively) a name.
    fn value(&self, item: &str, text: &str) -> Result<u32, ScheduleError> {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return match text.parse::<u32>() {
                Ok(v) if (self.min..=self.max).contains(&v) => Ok(v),
                _ => Err(ScheduleError::value(
                    self.name,
                    item,
                    format!("must be {}", self.accepted),
                )),
            };
        }
        if let Some(&(_, v)) = self
            .names
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text))
        {
            return Ok(v);
        }
        Err(ScheduleError::value(
            self.name,
            item,
            format!("expected {}", self.accepted),
        ))
    }

    /// Parses `*`, `*/s`, `a`, `a-b`, `a-b/s`, `a/s` into the list of values it selects.
    fn range_item(&self, item: &str) -> Result<Vec<u32>, ScheduleError> {
        let (range, step) = match item.split_once('/') {
            Some((range, step_text)) => {
                let step = if !step_text.is_empty() && step_text.bytes().all(|b| b.is_ascii_digit())
                {
                    step_text
                        .parse::<u32>()
                        .map_err(|_| ScheduleError::value(self.name, item, "step is too large"))?
                } else {
                    return Err(ScheduleError::value(
                        self.name,
                        item,
                        "step must be a whole number",
                    ));
                };
                if step == 0 {
                    return Err(ScheduleError::value(
                        self.name,
                        item,
                        "step must be at least 1",
                    ));
                }
                (range, Some(step))
            }
            None => (item, None),
        };
        let (start, end) = if range == "*" {
            (self.min, self.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let start = self.value(item, a)?;
            let end = self.value(item, b)?;
            if start > end {
                return Err(ScheduleError::value(
                    self.name,
                    item,
                    "range start is after its end",
                ));
            }
            (start, end)
        } else {
            let start = self.value(item, range)?;
            // `a/s` means "from a to the end of the field, every s" (as in AWS and Vixie).
            (start, if step.is_some() { self.max } else { start })
        };
        let step = step.unwrap_or(1) as usize;
        Ok((start..=end).step_by(step).collect())
    }
}

/// Characters that only AWS expressions may use in the day fields.
fn aws_only_message() -> String {
    "'?', 'L', 'W' and '#' need the AWS form cron(min hour dom month dow year)".to_owned()
}

fn split_items<'a>(
    spec: &FieldSpec,
    field: &'a str,
) -> Result<impl Iterator<Item = &'a str>, ScheduleError> {
    if field.split(',').any(str::is_empty) {
        return Err(ScheduleError::value(spec.name, field, "empty list item"));
    }
    Ok(field.split(','))
}

/// Parses a field that has no special characters (minute, hour, month, year) into a bitset.
fn plain_field_bits(spec: &FieldSpec, field: &str) -> Result<u64, ScheduleError> {
    if field == "?" {
        return Err(ScheduleError::value(
            spec.name,
            field,
            "'?' is only allowed in day-of-month or day-of-week",
        ));
    }
    let mut bits = 0_u64;
    for item in split_items(spec, field)? {
        for v in spec.range_item(item)? {
            bits |= 1 << v;
        }
    }
    Ok(bits)
}

fn year_field(field: &str) -> Result<YearSet, ScheduleError> {
    if field == "?" {
        return Err(ScheduleError::value(
            YEAR.name,
            field,
            "'?' is only allowed in day-of-month or day-of-week",
        ));
    }
    let mut bits = [0_u64; 4];
    for item in split_items(&YEAR, field)? {
        for v in YEAR.range_item(item)? {
            let index = (v - YEAR.min) as usize;
            bits[index / 64] |= 1 << (index % 64);
        }
    }
    Ok(YearSet::Aws(bits))
}

fn day_of_month_field(field: &str, dialect: CronDialect) -> Result<DaysOfMonth, ScheduleError> {
    let spec = &DAY_OF_MONTH;
    let mut days = DaysOfMonth::default();
    for item in split_items(spec, field)? {
        let upper = item.to_ascii_uppercase();
        let special = upper.contains(['L', 'W', '#', '?']);
        if special && dialect == CronDialect::Standard {
            return Err(ScheduleError::value(spec.name, item, aws_only_message()));
        }
        if upper == "?" {
            return Err(ScheduleError::value(
                spec.name,
                item,
                "'?' must be the whole field",
            ));
        }
        if upper.contains('#') {
            return Err(ScheduleError::value(
                spec.name,
                item,
                "'#' is only allowed in day-of-week",
            ));
        }
        if upper == "L" {
            days.last = true;
        } else if upper == "LW" {
            days.last_weekday = true;
        } else if upper.contains('L') {
            return Err(ScheduleError::value(
                spec.name,
                item,
                "'L' must stand alone (last day) or be written 'LW' (last weekday)",
            ));
        } else if let Some(day) = upper.strip_suffix('W') {
            if day.is_empty() || !day.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ScheduleError::value(
                    spec.name,
                    item,
                    "'W' takes a single day, e.g. '15W'",
                ));
            }
            let day = spec.value(item, day)?;
            days.nearest_weekday |= 1 << day;
        } else if upper.contains('W') {
            return Err(ScheduleError::value(
                spec.name,
                item,
                "'W' must follow a single day, e.g. '15W'",
            ));
        } else {
            for v in spec.range_item(item)? {
                days.days |= 1 << v;
            }
        }
    }
    Ok(days)
}

fn day_of_week_field(field: &str, dialect: CronDialect) -> Result<DaysOfWeek, ScheduleError> {
    let spec = match dialect {
        CronDialect::Aws => &AWS_DAY_OF_WEEK,
        CronDialect::Standard => &STANDARD_DAY_OF_WEEK,
    };
    // Both dialects are stored as 0=Sunday … 6=Saturday.
    let to_weekday = |v: u32| -> usize {
        match dialect {
            CronDialect::Aws => (v - 1) as usize,
            CronDialect::Standard => (v % 7) as usize,
        }
    };
    let mut days = DaysOfWeek::default();
    for item in split_items(spec, field)? {
        let upper = item.to_ascii_uppercase();
        let special = upper.contains(['L', 'W', '#', '?']);
        if special && dialect == CronDialect::Standard {
            return Err(ScheduleError::value(spec.name, item, aws_only_message()));
        }
        if upper == "?" {
            return Err(ScheduleError::value(
                spec.name,
                item,
                "'?' must be the whole field",
            ));
        }
        if let Some((day, nth)) = upper.split_once('#') {
            let weekday = spec.value(item, day)?;
            let n = match nth.parse::<u8>() {
                Ok(n) if (1..=5).contains(&n) && nth.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(ScheduleError::value(
                        spec.name,
                        item,
                        "nth weekday must be 1-5",
                    ));
                }
            };
            days.nth[to_weekday(weekday)] |= 1 << n;
        } else if upper == "L" {
            // `L` alone is the last day of the week: Saturday.
            days.days |= 1 << 6;
        } else if let Some(day) = upper.strip_suffix('L') {
            if day.contains(['-', '/', '*']) {
                return Err(ScheduleError::value(
                    spec.name,
                    item,
                    "'L' takes a single weekday, e.g. '6L' (last Friday)",
                ));
            }
            let weekday = spec.value(item, day)?;
            days.last |= 1 << to_weekday(weekday);
        } else if upper.contains(['L', 'W']) {
            return Err(ScheduleError::value(
                spec.name,
                item,
                format!(
                    "expected {}, 'dL' (last weekday d of the month) or 'd#n' (nth weekday d)",
                    spec.accepted
                ),
            ));
        } else {
            for v in spec.range_item(item)? {
                days.days |= 1 << to_weekday(v);
            }
        }
    }
    Ok(days)
}

/// Bit d set for every day d of a month with `days_in_month` days.
fn month_days_mask(days_in_month: u32) -> u32 {
    (((1_u64 << (days_in_month + 1)) - 2) & u64::from(u32::MAX)) as u32
}

/// Days (bits 1, 8, 15, 22, 29 shifted to start at `first`) falling on one weekday.
fn weekly_mask(first: u32, month_mask: u32) -> u32 {
    const EVERY_SEVENTH: u64 = 1 | 1 << 7 | 1 << 14 | 1 << 21 | 1 << 28;
    ((EVERY_SEVENTH << first) & u64::from(month_mask)) as u32
}

impl CronSchedule {
    fn parse_aws(inner: &str) -> Result<CronSchedule, ScheduleError> {
        let fields: Vec<&str> = inner.split_whitespace().collect();
        if fields.len() != 6 {
            return Err(ScheduleError::syntax(
                "cron",
                format!(
                    "expected 6 fields (minute hour day-of-month month day-of-week year), found {}",
                    fields.len()
                ),
            ));
        }
        let dialect = CronDialect::Aws;
        let minutes = plain_field_bits(&MINUTE, fields[0])?;
        let hours = plain_field_bits(&HOUR, fields[1])? as u32;
        let (dom, dow) = (fields[2], fields[4]);
        let months = plain_field_bits(&MONTH, fields[3])? as u16;
        let day_rule = match (dom == "?", dow == "?") {
            (true, true) => {
                return Err(ScheduleError::DayFields {
                    reason: "day-of-month and day-of-week cannot both be '?'".to_owned(),
                });
            }
            (false, false) => {
                return Err(ScheduleError::DayFields {
                    reason: "one of day-of-month or day-of-week must be '?'".to_owned(),
                });
            }
            (false, true) => DayRule::DayOfMonth,
            (true, false) => DayRule::DayOfWeek,
        };
        let days_of_month = match day_rule {
            DayRule::DayOfMonth => day_of_month_field(dom, dialect)?,
            _ => DaysOfMonth::default(),
        };
        let days_of_week = match day_rule {
            DayRule::DayOfWeek => day_of_week_field(dow, dialect)?,
            _ => DaysOfWeek::default(),
        };
        let years = year_field(fields[5])?;
        Ok(CronSchedule {
            dialect,
            minutes,
            hours,
            months,
            days_of_month,
            days_of_week,
            day_rule,
            years,
        })
    }

    fn parse_standard(text: &str) -> Result<CronSchedule, ScheduleError> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != 5 {
            let hint = if fields.len() == 6 {
                "; AWS 6-field expressions are written cron(min hour dom month dow year)"
            } else {
                ""
            };
            return Err(ScheduleError::syntax(
                "cron",
                format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week), found {}{hint}",
                    fields.len()
                ),
            ));
        }
        let dialect = CronDialect::Standard;
        let minutes = plain_field_bits(&MINUTE, fields[0])?;
        let hours = plain_field_bits(&HOUR, fields[1])? as u32;
        let days_of_month = day_of_month_field(fields[2], dialect)?;
        let months = plain_field_bits(&MONTH, fields[3])? as u16;
        let days_of_week = day_of_week_field(fields[4], dialect)?;
        // Vixie cron: a day field starting with '*' (including "*/2") is unrestricted; when
        // both are restricted, a day matching either one matches.
        let day_rule = if fields[2].starts_with('*') || fields[4].starts_with('*') {
            DayRule::Both
        } else {
            DayRule::Either
        };
        Ok(CronSchedule {
            dialect,
            minutes,
            hours,
            months,
            days_of_month,
            days_of_week,
            day_rule,
            years: YearSet::Any,
        })
    }

    /// The dialect the expression was written in.
    pub fn dialect(&self) -> CronDialect {
        self.dialect
    }

    /// Bitset of the matching days (bit d = day d) of one month.
    fn day_mask(&self, year: i16, month: u32) -> u32 {
        // `month` is 1–12 and `year` within jiff's range whenever this is called.
        let Ok(first) = Date::new(year, month as i8, 1) else {
            return 0;
        };
        let days_in_month = first.days_in_month() as u32;
        let month_mask = month_days_mask(days_in_month);
        let first_weekday = first.weekday().to_sunday_zero_offset() as u32;
        let weekday_of = |day: u32| (first_weekday + day - 1) % 7;
        // First day of the month falling on `weekday` (0=Sunday).
        let first_on = |weekday: u32| 1 + (weekday + 7 - first_weekday) % 7;

        let dom = || {
            let spec = &self.days_of_month;
            let mut mask = spec.days & month_mask;
            if spec.last {
                mask |= 1 << days_in_month;
            }
            if spec.last_weekday {
                let last = match weekday_of(days_in_month) {
                    6 => days_in_month - 1,
                    0 => days_in_month - 2,
                    _ => days_in_month,
                };
                mask |= 1 << last;
            }
            let mut nearest = spec.nearest_weekday & month_mask;
            while nearest != 0 {
                let day = nearest.trailing_zeros();
                nearest &= nearest - 1;
                // Nearest weekday without leaving the month: a Saturday 1st moves forward to
                // Monday the 3rd, a Sunday last day moves back to Friday.
                let weekday_day = match weekday_of(day) {
                    6 if day == 1 => 3,
                    6 => day - 1,
                    0 if day == days_in_month => day - 2,
                    0 => day + 1,
                    _ => day,
                };
                mask |= 1 << weekday_day;
            }
            mask
        };
        let dow = || {
            let spec = &self.days_of_week;
            let mut mask = 0;
            for weekday in 0..7_u32 {
                let first = first_on(weekday);
                if spec.days & (1 << weekday) != 0 {
                    mask |= weekly_mask(first, month_mask);
                }
                if spec.last & (1 << weekday) != 0 {
                    mask |= 1 << (first + (days_in_month - first) / 7 * 7);
                }
                let nth = spec.nth[weekday as usize];
                if nth != 0 {
                    for n in 1..=5 {
                        let day = first + 7 * (n - 1);
                        if nth & (1 << n) != 0 && day <= days_in_month {
                            mask |= 1 << day;
                        }
                    }
                }
            }
            mask
        };
        match self.day_rule {
            DayRule::DayOfMonth => dom(),
            DayRule::DayOfWeek => dow(),
            DayRule::Both => dom() & dow(),
            DayRule::Either => dom() | dow(),
        }
    }

    /// First (hour, minute) at or after `hour:minute` on one day; `minute` may be 60.
    fn first_time_from(&self, hour: u32, minute: u32) -> Option<(u32, u32)> {
        let first_minute = self.minutes.trailing_zeros();
        let h = next_bit(u64::from(self.hours), hour)?;
        if h == hour {
            if let Some(m) = next_bit(self.minutes, minute) {
                return Some((h, m));
            }
            let later = next_bit(u64::from(self.hours), hour + 1)?;
            return Some((later, first_minute));
        }
        Some((h, first_minute))
    }

    /// The first matching minute strictly after `after`, searching no later than the end of
    /// `last_year`. Returns `None` when nothing matches in that span.
    pub fn first_match_after(&self, after: DateTime, last_year: i16) -> Option<DateTime> {
        let last_year = last_year.min(9999);
        let mut year = after.year();
        let mut month = after.month() as u32;
        let mut day = after.day() as u32;
        let mut hour = after.hour() as u32;
        // Matches are whole minutes, so the first candidate is the next minute; 60 makes the
        // walk move on to the next hour.
        let mut minute = after.minute() as u32 + 1;
        while year <= last_year {
            let allowed = self.years.first_at_or_after(year)?;
            if allowed > last_year {
                return None;
            }
            if allowed != year {
                (year, month, day, hour, minute) = (allowed, 1, 1, 0, 0);
            }
            while month <= 12 {
                if self.months & (1 << month) != 0 {
                    let mut days = self.day_mask(year, month) & (u32::MAX << day);
                    while days != 0 {
                        let d = days.trailing_zeros();
                        days &= days - 1;
                        let (from_hour, from_minute) =
                            if d == day { (hour, minute) } else { (0, 0) };
                        if let Some((h, m)) = self.first_time_from(from_hour, from_minute) {
                            return DateTime::new(
                                year,
                                month as i8,
                                d as i8,
                                h as i8,
                                m as i8,
                                0,
                                0,
                            )
                            .ok();
                        }
                    }
                }
                (month, day, hour, minute) = (month + 1, 1, 0, 0);
            }
            (year, month, day, hour, minute) = (year + 1, 1, 1, 0, 0);
        }
        None
    }

    /// Whether `at` (to the minute, with zero seconds) matches the expression.
    pub fn matches(&self, at: DateTime) -> bool {
        at.second() == 0
            && at.subsec_nanosecond() == 0
            && self.minutes & (1 << at.minute()) != 0
            && self.hours & (1 << at.hour()) != 0
            && self.months & (1 << at.month()) != 0
            && self.years.contains(at.year())
            && self.day_mask(at.year(), at.month() as u32) & (1 << at.day()) != 0
    }
}

/// The lowest set bit at or above `from`, if any.
fn next_bit(bits: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let remaining = bits & (u64::MAX << from);
    (remaining != 0).then(|| remaining.trailing_zeros())
}

#[cfg(test)]
mod tests;
