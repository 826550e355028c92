//! `*` wildcard matching, the only pattern syntax of filter values and patch lists (`?` and `[`
//! are not special: they are rejected by the grammars instead).

/// True when `text` matches `pattern`, where `*` matches any run of characters (also empty).
/// With `ignore_case`, ASCII letters match regardless of case. Allocation-free; linear in
/// practice (greedy with single backtrack point, the classic glob algorithm).
pub fn wildcard_match(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let eq = |a: u8, b: u8| {
        if ignore_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut pi, mut ti) = (0usize, 0usize);
    // Position after the last `*` seen, and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            pi += 1;
            star = Some((pi, ti));
        } else if pi < p.len() && eq(p[pi], t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((after_star, tried)) = star {
            // Let the last `*` swallow one more character and retry.
            pi = after_star;
            ti = tried + 1;
            star = Some((after_star, tried + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// True when `pattern` contains a wildcard.
pub fn has_wildcard(pattern: &str) -> bool {
    pattern.contains('*')
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn star_matches_any_run_and_literals_match_exactly() {
        assert!(wildcard_match("*", "", false));
        assert!(wildcard_match("*", "anything", false));
        assert!(wildcard_match(
            "linux-image-*",
            "linux-image-6.1.0-18-amd64",
            false
        ));
        assert!(!wildcard_match("linux-image-*", "linux-headers-6.1", false));
        assert!(wildcard_match("*-security", "bookworm-security", false));
        assert!(wildcard_match("a*b*c", "aXbYbZc", false));
        assert!(!wildcard_match("a*b*c", "aXbYbZ", false));
        assert!(wildcard_match(
            "dbus-*:1.12.28-1.amzn2023.0.1.x86_64",
            "dbus-1:1.12.28-1.amzn2023.0.1.x86_64",
            false
        ));
        assert!(!wildcard_match("abc", "abcd", false));
        assert!(!wildcard_match("", "a", false));
    }

    #[test]
    fn case_folding_is_opt_in_and_ascii_only() {
        assert!(wildcard_match("security", "Security", true));
        assert!(!wildcard_match("security", "Security", false));
        assert!(wildcard_match("crit*", "CRITICAL", true));
    }

    /// Reference: the obvious exponential recursion.
    fn reference(p: &[u8], t: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'*', rest)) => (0..=t.len()).any(|k| reference(rest, &t[k..])),
            Some((&c, rest)) => t.first() == Some(&c) && reference(rest, &t[1..]),
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_recursive_definition(p in "[ab*]{0,8}", t in "[ab]{0,10}") {
            prop_assert_eq!(wildcard_match(&p, &t, false), reference(p.as_bytes(), t.as_bytes()));
        }
    }
}
