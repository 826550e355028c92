//! Alpine (apk) version ordering, following apk-tools' `src/version.c` (the tokenizer of
//! apk-tools 2.14 / 3.x).
//!
//! An apk version is `digits{.digits}...{letter}{_suffix{digits}}...{~hash}{-r digits}`, e.g.
//! `1.2.3b_rc2_p1~a1b2c3-r4`. Both versions are read token by token:
//!
//! | token | written as | compares |
//! |---|---|---|
//! | initial number | leading digits | numerically |
//! | number | `.digits` | numerically; if either has a leading `0`, as text (`1.02 < 1.1`) |
//! | letter | one `a`–`z` after a number | by letter |
//! | suffix | `_alpha` `_beta` `_pre` `_rc` (pre-releases) < none < `_cvs` `_svn` `_git` `_hg` `_p` | by that rank |
//! | suffix number | digits right after a suffix | numerically |
//! | commit hash | `~` + lowercase hex | as text |
//! | revision | `-r` + digits | numerically |
//!
//! While both sides have the same token type and value the walk continues. When the types
//! differ: equal if both ended (or both turned invalid); a side at a pre-release suffix is lower;
//! otherwise the side whose token type comes *later* in the order above is lower, which makes
//! `1.0 < 1.0.1`, `1.0 < 1.0-r1`, `1.0_alpha < 1.0`, and an invalid tail lower than anything
//! valid. Numbers compare by value at any length; apk-tools accumulates them in a fixed-width
//! integer, so the two can only disagree on numbers above 2^32, which no Alpine version uses.
//! Nothing here allocates.

use std::cmp::Ordering;

use super::error::VersionError;

/// Token types in apk's order (the order is part of the semantics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Token {
    InitialDigit,
    Digit,
    Letter,
    Suffix,
    SuffixNo,
    CommitHash,
    RevisionNo,
    End,
    Invalid,
}

/// Suffix ranks; `NONE` is the pivot between pre- and post-release suffixes.
const SUFFIX_INVALID: u8 = 0;
const SUFFIX_NONE: u8 = 5;

fn suffix_rank(suffix: &[u8]) -> u8 {
    match suffix {
        b"alpha" => 1,
        b"beta" => 2,
        b"pre" => 3,
        b"rc" => 4,
        b"cvs" => 6,
        b"svn" => 7,
        b"git" => 8,
        b"hg" => 9,
        b"p" => 10,
        _ => SUFFIX_INVALID,
    }
}

/// The token the cursor is on.
#[derive(Clone, Copy, Debug)]
struct TokenState<'a> {
    token: Token,
    suffix: u8,
    value: &'a [u8],
}

/// A cursor over one version string.
struct Tokenizer<'a> {
    rest: &'a [u8],
    current: TokenState<'a>,
}

impl<'a> Tokenizer<'a> {
    fn new(version: &'a str) -> Tokenizer<'a> {
        let mut t = Tokenizer {
            rest: version.as_bytes(),
            current: TokenState {
                token: Token::InitialDigit,
                suffix: 0,
                value: &[],
            },
        };
        t.parse_digits();
        t
    }

    /// Take a run of digits as the current token's value; no digits makes the token invalid.
    fn parse_digits(&mut self) {
        let n = self.rest.iter().take_while(|c| c.is_ascii_digit()).count();
        self.current.value = &self.rest[..n];
        self.rest = &self.rest[n..];
        if n == 0 {
            self.current.token = Token::Invalid;
        }
    }

    fn advance(&mut self) {
        let Some(&first) = self.rest.first() else {
            self.current.token = Token::End;
            return;
        };
        let token = self.current.token;
        match first {
            b'a'..=b'z' => {
                if token > Token::Digit {
                    return self.invalid();
                }
                self.current.value = &self.rest[..1];
                self.current.token = Token::Letter;
                self.rest = &self.rest[1..];
            }
            b'.' | b'0'..=b'9' => {
                if first == b'.' {
                    if token > Token::Digit {
                        return self.invalid();
                    }
                    self.rest = &self.rest[1..];
                }
                self.current.token = match token {
                    Token::InitialDigit | Token::Digit => Token::Digit,
                    Token::Suffix => Token::SuffixNo,
                    _ => return self.invalid(),
                };
                self.parse_digits();
            }
            b'_' => {
                if token > Token::SuffixNo {
                    return self.invalid();
                }
                self.rest = &self.rest[1..];
                let n = self
                    .rest
                    .iter()
                    .take_while(|c| c.is_ascii_lowercase())
                    .count();
                self.current.value = &self.rest[..n];
                self.rest = &self.rest[n..];
                self.current.suffix = suffix_rank(self.current.value);
                if self.current.suffix == SUFFIX_INVALID {
                    return self.invalid();
                }
                self.current.token = Token::Suffix;
            }
            b'~' => {
                if token >= Token::CommitHash {
                    return self.invalid();
                }
                self.rest = &self.rest[1..];
                let n = self
                    .rest
                    .iter()
                    .take_while(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
                    .count();
                if n == 0 {
                    return self.invalid();
                }
                self.current.value = &self.rest[..n];
                self.rest = &self.rest[n..];
                self.current.token = Token::CommitHash;
            }
            b'-' => {
                if token >= Token::RevisionNo || !self.rest.starts_with(b"-r") {
                    return self.invalid();
                }
                self.rest = &self.rest[2..];
                self.current.token = Token::RevisionNo;
                self.parse_digits();
            }
            _ => self.invalid(),
        }
    }

    fn invalid(&mut self) {
        self.current.token = Token::Invalid;
    }
}

/// Compare two digit strings as numbers of any length.
fn numeric_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let a = &a[a.iter().take_while(|&&c| c == b'0').count()..];
    let b = &b[b.iter().take_while(|&&c| c == b'0').count()..];
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Compare two tokens of the same type (apk's `token_cmp`).
fn token_cmp(a: &TokenState<'_>, b: &TokenState<'_>) -> Ordering {
    match a.token {
        Token::Digit if a.value.first() == Some(&b'0') || b.value.first() == Some(&b'0') => {
            a.value.cmp(b.value)
        }
        Token::InitialDigit | Token::Digit | Token::SuffixNo | Token::RevisionNo => {
            numeric_cmp(a.value, b.value)
        }
        Token::Letter => a.value.first().cmp(&b.value.first()),
        Token::Suffix => a.suffix.cmp(&b.suffix),
        _ => a.value.cmp(b.value),
    }
}

/// Order two apk versions like `apk version -t`. Total on all strings and allocation-free.
pub fn compare(a: &str, b: &str) -> Ordering {
    let mut ta = Tokenizer::new(a);
    let mut tb = Tokenizer::new(b);
    while ta.current.token == tb.current.token && ta.current.token < Token::End {
        let r = token_cmp(&ta.current, &tb.current);
        if r != Ordering::Equal {
            return r;
        }
        ta.advance();
        tb.advance();
    }
    let (a, b) = (ta.current, tb.current);
    if a.token == b.token {
        return Ordering::Equal;
    }
    if a.token == Token::Suffix && a.suffix < SUFFIX_NONE {
        return Ordering::Less;
    }
    if b.token == Token::Suffix && b.suffix < SUFFIX_NONE {
        return Ordering::Greater;
    }
    // The side whose next token comes later in the token order is lower (End and Invalid last).
    b.token.cmp(&a.token)
}

/// Check `version` against apk's grammar (`apk_version_validate`).
pub fn validate(version: &str) -> Result<(), VersionError> {
    let mut t = Tokenizer::new(version);
    while t.current.token < Token::End {
        t.advance();
    }
    if t.current.token == Token::End {
        Ok(())
    } else {
        let consumed = version.len() - t.rest.len();
        Err(VersionError::Invalid {
            family: "apk",
            version: version.to_owned(),
            reason: format!(
                "not an apk version (digits{{.digits}}{{letter}}{{_suffix{{n}}}}{{~hash}}{{-rN}}): invalid near byte {consumed}"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(a: &str, op: &str, b: &str) {
        let want = match op {
            "<" => Ordering::Less,
            "=" => Ordering::Equal,
            ">" => Ordering::Greater,
            _ => unreachable!("test operator"),
        };
        assert_eq!(compare(a, b), want, "{a} {op} {b}");
        assert_eq!(compare(b, a), want.reverse(), "{b} reverse {a} {op} {b}");
    }

    #[test]
    fn numbers_letters_and_revisions() {
        check("1.0", "=", "1.0");
        check("1.0", "<", "1.0.1");
        check("1.10", ">", "1.9");
        check("2.0", ">", "1.99.99");
        check("1.0", "<", "1.0-r1");
        check("1.0-r1", "<", "1.0-r2");
        check("1.0-r10", ">", "1.0-r9");
        check("1.0a", ">", "1.0");
        check("1.0a", "<", "1.0b");
        check("1.0b", "<", "1.0.1");
        check("1.0z-r5", "<", "1.0.0");
        check("3.0.15-r0", "<", "3.1.4-r0");
        check("20240101", ">", "3.0");
        check("1.2.3.4", ">", "1.2.3");
    }

    #[test]
    fn leading_zero_numbers_compare_as_text_except_the_first() {
        check("1.02", "<", "1.1");
        check("1.02", ">", "1.0");
        check("1.01", "<", "1.1");
        check("006", ">", "1.0");
        check("06", "=", "6");
    }

    #[test]
    fn suffixes_rank_pre_releases_below_the_release() {
        check("1.0_alpha", "<", "1.0_beta");
        check("1.0_beta", "<", "1.0_pre");
        check("1.0_pre", "<", "1.0_rc");
        check("1.0_rc", "<", "1.0");
        check("1.0_rc2", ">", "1.0_rc1");
        check("1.0_rc10", ">", "1.0_rc9");
        check("1.0", "<", "1.0_cvs");
        check("1.0_cvs", "<", "1.0_svn");
        check("1.0_svn", "<", "1.0_git");
        check("1.0_git", "<", "1.0_hg");
        check("1.0_hg", "<", "1.0_p");
        check("1.0_p1", "<", "1.0_p2");
        check("1.0_alpha_pre", "<", "1.0_alpha");
        check("1.0_git20240101", ">", "1.0");
        check("1.0_rc1-r3", "<", "1.0-r0");
        check("1.0_p1-r0", ">", "1.0-r9");
    }

    #[test]
    fn commit_hashes_and_invalid_tails() {
        check("1.0~abc", "=", "1.0~abc");
        check("1.0~abc", "<", "1.0~abd");
        check("1.0~abc-r1", ">", "1.0~abc");
        // A tail apk cannot parse makes the version lower than the valid one with the same head.
        check("1.0", "<", "1.0bc");
        check("1.0.", "<", "1.0");
        check("1.0_foo", "<", "1.0");
        check("1.0-x", "<", "1.0");
        check("", "=", "x");
    }

    #[test]
    fn validate_accepts_the_grammar_and_rejects_the_rest() {
        for ok in [
            "1",
            "1.2.3",
            "1.2.3a",
            "1.2_rc1",
            "1.2_alpha_pre2",
            "1.0_git20240101-r3",
            "1.0~deadbeef-r0",
            "0.1",
        ] {
            assert!(validate(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "1.",
            "1..2",
            "1.0-1",
            "1.0_foo",
            "1.0ab",
            "1.0~",
            "1.0~XYZ",
            "1.0-r",
            "1.0 1",
            "1.0-r1-r2",
        ] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }
}
