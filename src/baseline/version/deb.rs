//! Debian version ordering, exactly as dpkg orders versions (`dpkg --compare-versions`,
//! `lib/dpkg/version.c`), which apt implements identically.
//!
//! A version is `[epoch:]upstream[-revision]`: the epoch is the text before the first `:`, the
//! revision the text after the last `-`. Parts compare in that order. Within upstream and
//! revision, non-digit runs compare character by character with `~` before everything (even the
//! end of the string), then the end, then letters, then everything else; digit runs compare
//! numerically. Nothing here allocates.

use std::cmp::Ordering;

use super::error::VersionError;

/// A Debian version split into its parts (borrowed from the input string).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebVersion<'a> {
    /// Digits before the first `:`; empty means epoch 0.
    pub epoch: &'a str,
    /// Upstream version: between the epoch's `:` and the last `-`.
    pub upstream: &'a str,
    /// Debian revision: after the last `-`; empty when there is none.
    pub revision: &'a str,
}

impl<'a> DebVersion<'a> {
    /// Split `version` the way dpkg does, without checking its syntax. Any string splits, so
    /// ordering never fails; use [`DebVersion::parse`] to reject what dpkg would reject.
    #[inline]
    pub fn split(version: &'a str) -> DebVersion<'a> {
        let (epoch, rest) = match version.find(':') {
            Some(colon) => (&version[..colon], &version[colon + 1..]),
            None => ("", version),
        };
        let (upstream, revision) = match rest.rfind('-') {
            Some(hyphen) => (&rest[..hyphen], &rest[hyphen + 1..]),
            None => (rest, ""),
        };
        DebVersion {
            epoch,
            upstream,
            revision,
        }
    }

    /// Split and check `version` against dpkg's syntax (`parseversion` plus Debian policy's
    /// character set): a numeric epoch, an upstream part that starts with a digit and uses only
    /// alphanumerics and `.+~-:`, a revision of alphanumerics and `.+~`.
    pub fn parse(version: &'a str) -> Result<DebVersion<'a>, VersionError> {
        let invalid_owned = |reason: String| VersionError::Invalid {
            family: "deb",
            version: version.to_owned(),
            reason,
        };
        let invalid = |reason: &str| invalid_owned(reason.to_owned());
        if version.is_empty() {
            return Err(invalid("the version is empty"));
        }
        if version.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(invalid("a version contains no whitespace"));
        }
        let parts = DebVersion::split(version);
        if version.contains(':') {
            if parts.epoch.is_empty() {
                return Err(invalid("the epoch before ':' is empty"));
            }
            if !parts.epoch.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("the epoch before ':' is not a number"));
            }
            // dpkg stores the epoch in an int and rejects larger values.
            if parts.epoch.trim_start_matches('0').len() > 10
                || parts
                    .epoch
                    .parse::<u64>()
                    .map_or(true, |e| e > i32::MAX as u64)
            {
                return Err(invalid("the epoch is too big"));
            }
            if parts.upstream.is_empty() && parts.revision.is_empty() {
                return Err(invalid("nothing after the epoch's ':'"));
            }
        }
        let has_revision = version[version.find(':').map_or(0, |c| c + 1)..].contains('-');
        if has_revision && parts.revision.is_empty() {
            return Err(invalid("the revision after the last '-' is empty"));
        }
        if parts.upstream.is_empty() {
            return Err(invalid("the upstream version is empty"));
        }
        if !parts.upstream.as_bytes()[0].is_ascii_digit() {
            return Err(invalid("the upstream version does not start with a digit"));
        }
        let has_epoch = version.contains(':');
        if let Some(bad) = parts.upstream.chars().find(|&c| {
            !(c.is_ascii_alphanumeric()
                || matches!(c, '.' | '+' | '~')
                || (c == '-' && has_revision)
                || (c == ':' && has_epoch))
        }) {
            return Err(invalid_owned(format!(
                "the upstream version contains {bad:?}; allowed are alphanumerics and . + ~ (- with a revision, : with an epoch)"
            )));
        }
        if let Some(bad) = parts
            .revision
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~')))
        {
            return Err(invalid_owned(format!(
                "the revision contains {bad:?}; allowed are alphanumerics and . + ~"
            )));
        }
        Ok(parts)
    }
}

/// Order two Debian versions like `dpkg --compare-versions`. Total on all strings (versions dpkg
/// would reject still get a consistent order) and allocation-free.
#[inline]
pub fn compare(a: &str, b: &str) -> Ordering {
    let a = DebVersion::split(a);
    let b = DebVersion::split(b);
    // The epoch is an integer in dpkg; verrevcmp orders digit strings numerically (leading zeros
    // ignored, any length), which equals integer order without overflow.
    verrevcmp(a.epoch.as_bytes(), b.epoch.as_bytes())
        .then_with(|| verrevcmp(a.upstream.as_bytes(), b.upstream.as_bytes()))
        .then_with(|| verrevcmp(a.revision.as_bytes(), b.revision.as_bytes()))
}

/// Weight of one character in a non-digit run (dpkg's `order()`); `None` is the end of the string.
#[inline]
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        // dpkg receives a (signed) `char`: bytes >= 0x80 are negative there, so they weigh
        // c - 256 + 256, i.e. between letters and ASCII punctuation. Versions dpkg accepts are
        // ASCII; this only keeps the order identical for the ones it would reject.
        Some(c) if c >= 0x80 => i32::from(c as i8) + 256,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`: compare an upstream version or a revision.
pub fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0usize, 0usize);
    while i < a.len() || j < b.len() {
        // Non-digit prefix, character by character.
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).copied());
            let bc = order(b.get(j).copied());
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        // Digit run, numerically: skip leading zeros, longer run wins, else first difference.
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while i < a.len() && j < b.len() && a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if a.get(i).is_some_and(u8::is_ascii_digit) {
            return Ordering::Greater;
        }
        if b.get(j).is_some_and(u8::is_ascii_digit) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(a: &str, op: &str, b: &str) {
        let got = compare(a, b);
        let want = match op {
            "<" => Ordering::Less,
            "=" => Ordering::Equal,
            ">" => Ordering::Greater,
            _ => unreachable!("test operator"),
        };
        assert_eq!(got, want, "{a} {op} {b}");
        assert_eq!(compare(b, a), want.reverse(), "{b} reverse of {a} {op} {b}");
    }

    #[test]
    fn tilde_sorts_before_everything_even_the_end() {
        check("1.0~rc1", "<", "1.0");
        check("1.0~~", "<", "1.0~");
        check("1.0~~a", "<", "1.0~");
        check("1.0~", "<", "1.0");
        check("1.0", "<", "1.0a");
        check("1.0a", "<", "1.0+");
        check("1.0+", "<", "1.0.");
    }

    #[test]
    fn epoch_dominates_and_defaults_to_zero() {
        check("1:0.1", ">", "9.9");
        check("0:1.0", "=", "1.0");
        check("00:1.0", "=", "1.0");
        check("2:1.0", ">", "1:9.0");
        check("10:0.1", ">", "9:9.9");
        check("99999999999999999999:1", ">", "9999999999999999999:1");
    }

    #[test]
    fn digit_runs_compare_numerically_and_ignore_leading_zeros() {
        check("1.10", ">", "1.9");
        check("1.010", "=", "1.10");
        check("1.0010", "<", "1.011");
        check("10", ">", "9");
        check("1.2.3", ">", "1.2");
    }

    #[test]
    fn revision_compares_after_upstream_and_missing_equals_zero() {
        check("1.0-1", "<", "1.0-2");
        check("1.0-0", "=", "1.0");
        check("1.0-1", ">", "1.0");
        check("1.0-1+deb12u1", ">", "1.0-1");
        check("5.4.1-1+deb12u2", ">", "5.4.1-1+deb12u1");
        check("2.36-9+deb12u14", ">", "2.36-9+deb12u9");
        check("1.0-1ubuntu0.24.04.1", ">", "1.0-1ubuntu0.22.04.1");
        // The upstream part may contain '-' when a revision exists.
        check("1.0-rc-1", ">", "1.0-1");
    }

    #[test]
    fn parse_accepts_policy_versions_and_names_the_problem_otherwise() {
        for ok in [
            "1.0",
            "1:2.3-4",
            "2.36-9+deb12u14",
            "1.0~rc1-1",
            "0:0",
            "1.0-a-b",
            "1:2:3-4",
        ] {
            assert!(DebVersion::parse(ok).is_ok(), "{ok}");
        }
        for (bad, reason) in [
            ("", "empty"),
            ("a1.0", "does not start with a digit"),
            ("1.0-", "revision after the last '-' is empty"),
            (":1.0", "epoch before ':' is empty"),
            ("x:1.0", "not a number"),
            ("1:", "nothing after"),
            ("1.0 1", "whitespace"),
            ("1.0_1", "upstream version contains '_'"),
            ("1.0-1_2", "revision contains '_'"),
            ("99999999999:1", "too big"),
        ] {
            let err = DebVersion::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(reason), "{bad}: {err}");
        }
    }

    #[test]
    fn split_takes_first_colon_and_last_hyphen() {
        assert_eq!(
            DebVersion::split("1:2:3-4-5"),
            DebVersion {
                epoch: "1",
                upstream: "2:3-4",
                revision: "5"
            }
        );
        assert_eq!(
            DebVersion::split("2.0"),
            DebVersion {
                epoch: "",
                upstream: "2.0",
                revision: ""
            }
        );
    }
}
