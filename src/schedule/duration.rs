//! Kubernetes-style duration strings (`"4h"`, `"30m"`, `"1h30m"`, `"90s"`, `"0s"`).
//!
//! The accepted grammar is the subset of Go's `time.ParseDuration` that manifests use:
//! one or more `<number><unit>` terms with units `h`, `m`, `s` and `ms`, where the number may
//! carry a decimal fraction (`"1.5h"`), plus the bare `"0"`. Negative durations are rejected
//! because every duration in the API (window length, cutoff, drain timeout) is a length of time.

use jiff::SignedDuration;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string is empty.
    #[error("empty duration; write e.g. \"30m\" or \"1h30m\"")]
    Empty,
    /// The string starts with `-`.
    #[error("'{0}' — negative durations are not allowed")]
    Negative(String),
    /// A term has no number, or a malformed one.
    #[error("'{0}' — expected a number followed by a unit (h, m, s, ms), e.g. \"1h30m\"")]
    Malformed(String),
    /// A number is not followed by a unit.
    #[error("'{0}' — missing unit after the number; units are h, m, s, ms")]
    MissingUnit(String),
    /// A term uses a unit outside `h`, `m`, `s`, `ms`.
    #[error("'{input}' — unknown unit '{unit}'; units are h, m, s, ms")]
    UnknownUnit {
        /// The whole input, for context.
        input: String,
        /// The unit that was not recognised.
        unit: String,
    },
    /// The total does not fit in a 64-bit count of nanoseconds (about 292 years), as in Go.
    #[error("'{0}' — duration is too large")]
    TooLarge(String),
}

impl DurationError {
    /// A bounded label for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            DurationError::Empty => "duration-empty",
            DurationError::Negative(_) => "duration-negative",
            DurationError::Malformed(_) | DurationError::MissingUnit(_) => "duration-syntax",
            DurationError::UnknownUnit { .. } => "duration-unit",
            DurationError::TooLarge(_) => "duration-too-large",
        }
    }
}

/// Longest input echoed back in an error message, so a pasted blob cannot bloat Events.
const MAX_ECHO: usize = 64;

fn echo(input: &str) -> String {
    match input.char_indices().nth(MAX_ECHO) {
        Some((cut, _)) => format!("{}…", &input[..cut]),
        None => input.to_owned(),
    }
}

/// Parses a Kubernetes-style duration such as `"4h"`, `"30m"`, `"1h30m"`, `"90s"`, `"250ms"`,
/// `"1.5h"` or `"0s"`.
///
/// Surrounding whitespace is ignored. A leading `+` is accepted (as Go does); a leading `-` is
/// an error.
pub fn parse_duration(input: &str) -> Result<SignedDuration, DurationError> {
    let text = input.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.starts_with('-') {
        return Err(DurationError::Negative(echo(text)));
    }
    let body = text.strip_prefix('+').unwrap_or(text);
    // Go accepts a bare "0" (and only zero) without a unit.
    if body == "0" {
        return Ok(SignedDuration::ZERO);
    }
    if body.is_empty() {
        return Err(DurationError::Malformed(echo(text)));
    }

    let bytes = body.as_bytes();
    let mut pos = 0;
    let mut total_nanos: i128 = 0;
    while pos < bytes.len() {
        // Number: digits, optionally '.' and more digits; at least one digit overall.
        let int_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        let int_digits = &body[int_start..pos];
        let mut frac_digits = "";
        if pos < bytes.len() && bytes[pos] == b'.' {
            pos += 1;
            let frac_start = pos;
            while pos < bytes.len() && bytes[pos].is_ascii_digit() {
                pos += 1;
            }
            frac_digits = &body[frac_start..pos];
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(DurationError::Malformed(echo(text)));
        }
        let unit_start = pos;
        while pos < bytes.len() && !bytes[pos].is_ascii_digit() && bytes[pos] != b'.' {
            pos += 1;
        }
        let unit = &body[unit_start..pos];
        let unit_nanos: i128 = match unit {
            "" => return Err(DurationError::MissingUnit(echo(text))),
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            other => {
                return Err(DurationError::UnknownUnit {
                    input: echo(text),
                    unit: echo(other),
                });
            }
        };
        let too_large = || DurationError::TooLarge(echo(text));
        // Integer part: more than 20 digits cannot fit anyway; checked arithmetic below
        // catches the rest.
        let whole: i128 = if int_digits.is_empty() {
            0
        } else if int_digits.len() > 20 {
            return Err(too_large());
        } else {
            int_digits.parse::<i128>().map_err(|_| too_large())?
        };
        let mut term = whole.checked_mul(unit_nanos).ok_or_else(too_large)?;
        // Fraction: only the first 18 digits can matter at nanosecond resolution for any unit
        // up to an hour (3.6e12 ns), so longer fractions are truncated like Go does.
        let frac = &frac_digits[..frac_digits.len().min(18)];
        if !frac.is_empty() {
            let numerator: i128 = frac.parse::<i128>().map_err(|_| too_large())?;
            let scale = 10_i128.pow(frac.len() as u32);
            term = term
                .checked_add(numerator * unit_nanos / scale)
                .ok_or_else(too_large)?;
        }
        total_nanos = total_nanos.checked_add(term).ok_or_else(too_large)?;
        if total_nanos > i128::from(i64::MAX) {
            return Err(too_large());
        }
    }
    Ok(SignedDuration::from_nanos_i128(total_nanos))
}

/// Formats a duration the way manifests write it: `"4h"`, `"1h30m"`, `"90s"` → `"1m30s"`,
/// `"250ms"`, `"0s"`. The output parses back to the same value with [`parse_duration`].
pub fn format_duration(duration: SignedDuration) -> String {
    if duration.is_zero() {
        return "0s".to_owned();
    }
    let mut out = String::new();
    if duration.is_negative() {
        out.push('-');
    }
    let nanos = duration.as_nanos().unsigned_abs();
    let hours = nanos / 3_600_000_000_000;
    let minutes = nanos / 60_000_000_000 % 60;
    let seconds = nanos / 1_000_000_000 % 60;
    let sub_second_nanos = nanos % 1_000_000_000;
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    if sub_second_nanos == 0 {
        if seconds > 0 {
            out.push_str(&format!("{seconds}s"));
        }
    } else if sub_second_nanos.is_multiple_of(1_000_000) && seconds == 0 {
        out.push_str(&format!("{}ms", sub_second_nanos / 1_000_000));
    } else {
        // Fractional seconds: trim trailing zeros of the nine-digit fraction.
        let fraction = format!("{sub_second_nanos:09}");
        out.push_str(&format!("{seconds}.{}s", fraction.trim_end_matches('0')));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_style_durations() {
        let cases = [
            ("4h", SignedDuration::from_hours(4)),
            ("30m", SignedDuration::from_mins(30)),
            ("1h30m", SignedDuration::from_mins(90)),
            ("90s", SignedDuration::from_secs(90)),
            ("0s", SignedDuration::ZERO),
            ("0", SignedDuration::ZERO),
            ("250ms", SignedDuration::from_millis(250)),
            ("1.5h", SignedDuration::from_mins(90)),
            (".5m", SignedDuration::from_secs(30)),
            ("1h0m5s", SignedDuration::from_secs(3605)),
            ("+10m", SignedDuration::from_mins(10)),
            (" 15m ", SignedDuration::from_mins(15)),
            ("2h2h", SignedDuration::from_hours(4)),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_duration(input), Ok(expected), "input {input:?}");
        }
    }

    #[test]
    fn rejects_malformed_durations_with_reasons() {
        let cases = [
            ("", "empty duration; write e.g. \"30m\" or \"1h30m\""),
            ("-5m", "'-5m' — negative durations are not allowed"),
            (
                "5",
                "'5' — missing unit after the number; units are h, m, s, ms",
            ),
            (
                "1h30",
                "'1h30' — missing unit after the number; units are h, m, s, ms",
            ),
            ("3d", "'3d' — unknown unit 'd'; units are h, m, s, ms"),
            (
                "h",
                "'h' — expected a number followed by a unit (h, m, s, ms), e.g. \"1h30m\"",
            ),
            (
                "1.h.",
                "'1.h.' — expected a number followed by a unit (h, m, s, ms), e.g. \"1h30m\"",
            ),
            (
                "+",
                "'+' — expected a number followed by a unit (h, m, s, ms), e.g. \"1h30m\"",
            ),
            ("3000000h", "'3000000h' — duration is too large"),
            (
                "99999999999999999999999h",
                "'99999999999999999999999h' — duration is too large",
            ),
        ];
        for (input, message) in cases {
            let error = parse_duration(input).expect_err(input);
            assert_eq!(error.to_string(), message, "input {input:?}");
        }
    }

    #[test]
    fn formats_durations_that_parse_back() {
        let cases = [
            (SignedDuration::ZERO, "0s"),
            (SignedDuration::from_hours(4), "4h"),
            (SignedDuration::from_mins(90), "1h30m"),
            (SignedDuration::from_secs(3605), "1h5s"),
            (SignedDuration::from_millis(250), "250ms"),
            (SignedDuration::from_millis(1500), "1.5s"),
        ];
        for (duration, text) in cases {
            assert_eq!(format_duration(duration), text);
            assert_eq!(parse_duration(text), Ok(duration));
        }
        assert_eq!(format_duration(SignedDuration::from_mins(-5)), "-5m");
    }
}
