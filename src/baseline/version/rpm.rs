//! RPM version ordering, exactly as librpm orders versions (`rpmvercmp` in
//! `rpmio/rpmvercmp.c`, `rpmverCmp` in `rpmio/rpmver.c`, rpm 4.18), used by dnf, yum and zypper.
//!
//! `rpmvercmp` walks both strings in segments: runs of ASCII letters or ASCII digits; any other
//! characters only separate segments. `~` sorts before everything, even the end of the string
//! (`1.0~rc1 < 1.0`); `^` sorts after the end but before any other segment (`1.0 < 1.0^git1 <
//! 1.0.1`). A numeric segment beats an alphabetic one; numeric segments compare as numbers of
//! any length, alphabetic ones as bytes. A full version `[epoch:]version[-release]` compares
//! epoch (missing = 0), then version, then release.
//!
//! A missing release needs a choice: librpm's `rpmverCmp` skips the release when either side
//! lacks one (so `1.0` equals both `1.0-1` and `1.0-2`, which is not transitive and would break
//! sorting); that is right for dependency ranges and is [`compare_evr_range`]. For ordering
//! packages, [`compare_evr`] is total and puts a missing release before any release, like
//! rpm's Python `labelCompare`. Installed packages and repository candidates always have a
//! release, so the two agree on them. Nothing here allocates.

use std::cmp::Ordering;

use super::error::VersionError;

/// An rpm EVR (`epoch:version-release`) split into its parts (borrowed from the input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evr<'a> {
    /// Epoch digits, when written (`1` in `1:2.0-3`).
    pub epoch: Option<&'a str>,
    /// Version (`2.0`).
    pub version: &'a str,
    /// Release (`3.el9`), when written.
    pub release: Option<&'a str>,
}

impl<'a> Evr<'a> {
    /// Split like librpm's `rpmverParse`: leading digits followed by `:` are the epoch (`:` alone
    /// means epoch 0), the text after the last `-` is the release. Never fails.
    #[inline]
    pub fn split(evr: &'a str) -> Evr<'a> {
        let digits = evr.bytes().take_while(u8::is_ascii_digit).count();
        let (epoch, rest) = if evr.as_bytes().get(digits) == Some(&b':') {
            let epoch = if digits == 0 { "0" } else { &evr[..digits] };
            (Some(epoch), &evr[digits + 1..])
        } else {
            (None, evr)
        };
        match rest.rfind('-') {
            Some(hyphen) => Evr {
                epoch,
                version: &rest[..hyphen],
                release: Some(&rest[hyphen + 1..]),
            },
            None => Evr {
                epoch,
                version: rest,
                release: None,
            },
        }
    }

    /// Split and check: version and release non-empty, made of ASCII alphanumerics and
    /// `._+~^`, no `-` in the version (rpm's `rpmCharCheck` for Version/Release).
    pub fn parse(evr: &'a str) -> Result<Evr<'a>, VersionError> {
        let invalid = |reason: String| VersionError::Invalid {
            family: "rpm",
            version: evr.to_owned(),
            reason,
        };
        if evr.is_empty() {
            return Err(invalid("the version is empty".into()));
        }
        let parts = Evr::split(evr);
        if evr.contains(':') && parts.epoch.is_none() {
            return Err(invalid("the epoch before ':' is not a number".into()));
        }
        if parts.version.is_empty() {
            return Err(invalid("the version is empty".into()));
        }
        if parts.release == Some("") {
            return Err(invalid("the release after the last '-' is empty".into()));
        }
        for (what, text) in [("version", Some(parts.version)), ("release", parts.release)] {
            let Some(text) = text else { continue };
            if let Some(bad) = text
                .chars()
                .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '~' | '^')))
            {
                return Err(invalid(format!(
                    "the {what} contains {bad:?}; allowed are alphanumerics and . _ + ~ ^"
                )));
            }
        }
        Ok(parts)
    }
}

/// Order two full versions `[epoch:]version[-release]` (rpm's `labelCompare`): epoch, version,
/// release, a missing release lowest. A total order on all strings; allocation-free.
#[inline]
pub fn compare_evr(a: &str, b: &str) -> Ordering {
    let a = Evr::split(a);
    let b = Evr::split(b);
    rpmvercmp(a.epoch.unwrap_or("0"), b.epoch.unwrap_or("0"))
        .then_with(|| rpmvercmp(a.version, b.version))
        .then_with(|| match (a.release, b.release) {
            (Some(ra), Some(rb)) => rpmvercmp(ra, rb),
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
        })
}

/// Compare like librpm's `rpmverCmp`, used for dependency ranges: the release is compared only
/// when both sides have one, so a requirement on `1.0` is met by every `1.0-*`. Not a total
/// order; never sort with it.
pub fn compare_evr_range(a: &str, b: &str) -> Ordering {
    let a = Evr::split(a);
    let b = Evr::split(b);
    rpmvercmp(a.epoch.unwrap_or("0"), b.epoch.unwrap_or("0"))
        .then_with(|| rpmvercmp(a.version, b.version))
        .then_with(|| match (a.release, b.release) {
            (Some(ra), Some(rb)) => rpmvercmp(ra, rb),
            _ => Ordering::Equal,
        })
}

/// librpm's `rpmvercmp`: order two version (or release) strings.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a == b {
        return Ordering::Equal;
    }
    let (mut i, mut j) = (0usize, 0usize);
    let at = |s: &[u8], k: usize| s.get(k).copied().unwrap_or(0);
    loop {
        if i >= a.len() && j >= b.len() {
            break;
        }
        // Skip separators: anything that is not alphanumeric, `~` or `^`.
        while i < a.len() && !is_segment_start(a[i]) {
            i += 1;
        }
        while j < b.len() && !is_segment_start(b[j]) {
            j += 1;
        }
        let (ca, cb) = (at(a, i), at(b, j));
        // Tilde: sorts before everything else.
        if ca == b'~' || cb == b'~' {
            if ca != b'~' {
                return Ordering::Greater;
            }
            if cb != b'~' {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        // Caret: like tilde, except that a string that ended is lower.
        if ca == b'^' || cb == b'^' {
            if ca == 0 {
                return Ordering::Less;
            }
            if cb == 0 {
                return Ordering::Greater;
            }
            if ca != b'^' {
                return Ordering::Greater;
            }
            if cb != b'^' {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if ca == 0 || cb == 0 {
            break;
        }
        // One segment: all digits or all letters, typed by the left string.
        let numeric = ca.is_ascii_digit();
        let in_segment: fn(&u8) -> bool = if numeric {
            u8::is_ascii_digit
        } else {
            u8::is_ascii_alphabetic
        };
        let end_a = i + a[i..].iter().take_while(|c| in_segment(c)).count();
        let end_b = j + b[j..].iter().take_while(|c| in_segment(c)).count();
        if end_b == j {
            // Different types: a numeric segment is newer than an alphabetic one.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (mut sa, mut sb) = (&a[i..end_a], &b[j..end_b]);
        if numeric {
            while sa.first() == Some(&b'0') {
                sa = &sa[1..];
            }
            while sb.first() == Some(&b'0') {
                sb = &sb[1..];
            }
            match sa.len().cmp(&sb.len()) {
                Ordering::Equal => {}
                longer => return longer,
            }
        }
        match sa.cmp(sb) {
            Ordering::Equal => {}
            other => return other,
        }
        i = end_a;
        j = end_b;
    }
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        // Whichever still has characters left wins.
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

#[inline]
fn is_segment_start(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'~' || c == b'^'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(f: fn(&str, &str) -> Ordering, a: &str, op: &str, b: &str) {
        let want = match op {
            "<" => Ordering::Less,
            "=" => Ordering::Equal,
            ">" => Ordering::Greater,
            _ => unreachable!("test operator"),
        };
        assert_eq!(f(a, b), want, "{a} {op} {b}");
        assert_eq!(f(b, a), want.reverse(), "{b} reverse {a} {op} {b}");
    }

    // Cases from rpm's own test suite semantics (rpmvercmp.at), written out here.
    #[test]
    fn rpmvercmp_segments() {
        let v = |a, op, b| check(rpmvercmp, a, op, b);
        v("1.0", "=", "1.0");
        v("1.0", "<", "2.0");
        v("2.0.1", ">", "2.0");
        v("2.0.1a", ">", "2.0.1");
        v("5.5p1", "<", "5.5p2");
        v("5.5p10", ">", "5.5p2");
        v("10xyz", ">", "9xyz");
        v("xyz10", "<", "xyz10.1");
        v("xyz.4", "<", "8");
        v("5.6.7", "=", "5.6.7");
        v("5.5p1", "=", "5.5.p1");
        v("5.5p1", "=", "5_5p1");
        v("1.0a", ">", "1.0");
        v("a", "<", "b");
        v("b", "<", "c");
        v("1", ">", "a");
        v("0001", "=", "1");
        v("1.2", "=", "1_2");
        v("2_0", ">", "1_9");
        v("20101121", ">", "20101120");
    }

    #[test]
    fn tilde_and_caret() {
        let v = |a, op, b| check(rpmvercmp, a, op, b);
        v("1.0~rc1", "<", "1.0");
        v("1.0~rc1", "<", "1.0~rc2");
        v("1.0~rc1~git123", "<", "1.0~rc1");
        v("1.0", ">", "1.0~rc1");
        v("1.0^", ">", "1.0");
        v("1.0^git1", ">", "1.0");
        v("1.0^git1", "<", "1.0.1");
        v("1.0^git1", "<", "1.0^git2");
        v("1.0^git1", ">", "1.0~rc1");
        v("1.0^20160101", "<", "1.0^20160102");
        v("1.0^20160101^git1", ">", "1.0^20160101");
        v("1.0~rc1^git1", "<", "1.0");
        v("1.0~rc1^git1", ">", "1.0~rc1");
        v("1.0^git1~pre", "<", "1.0^git1");
    }

    #[test]
    fn evr_epoch_version_release() {
        let v = |a, op, b| check(compare_evr, a, op, b);
        v("1:1.0-1", ">", "2.0-1");
        v("0:1.0-1", "=", "1.0-1");
        v(":1.0-1", "=", "0:1.0-1");
        v("1.0-2", ">", "1.0-1");
        v("1.0-1.el9_3", ">", "1.0-1.el9");
        v("1.12.28-1.amzn2023.0.1", "<", "1.12.28-1.amzn2023.0.2");
        v("3.0.7-25.el9_3", "<", "3.0.7-27.el9");
        // Ordering: a missing release is lowest; ranges: it matches any release.
        v("1.0", "<", "1.0-5");
        check(compare_evr_range, "1.0", "=", "1.0-5");
        check(compare_evr_range, "1:1.0", "=", "1:1.0-5");
        check(compare_evr_range, "1.0", "<", "1.1-1");
    }

    #[test]
    fn split_and_parse() {
        assert_eq!(
            Evr::split("1:2.0-3.el9"),
            Evr {
                epoch: Some("1"),
                version: "2.0",
                release: Some("3.el9")
            }
        );
        assert_eq!(
            Evr::split("2.0"),
            Evr {
                epoch: None,
                version: "2.0",
                release: None
            }
        );
        assert_eq!(
            Evr::split(":2.0-1"),
            Evr {
                epoch: Some("0"),
                version: "2.0",
                release: Some("1")
            }
        );
        assert!(Evr::parse("1:2.0-3.el9").is_ok());
        assert!(Evr::parse("2.0^git1~rc1").is_ok());
        for (bad, reason) in [
            ("", "empty"),
            ("x:1.0-1", "epoch"),
            ("1.0-", "release"),
            ("1.0/2-1", "'/'"),
            ("1:-1", "version is empty"),
        ] {
            let err = Evr::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(reason), "{bad}: {err}");
        }
    }
}
