use super::*;
use crate::agent::backend::apt::lists::PackagesIndex;

fn release(suite: &str, codename: &str, origin: &str, label: &str) -> ReleaseInfo {
    ReleaseInfo {
        suite: suite.into(),
        codename: codename.into(),
        origin: origin.into(),
        label: label.into(),
        version: "12".into(),
        ..ReleaseInfo::default()
    }
}

fn lists() -> AptLists {
    let releases = vec![
        release("oldstable", "bookworm", "Debian", "Debian"),
        release(
            "oldstable-security",
            "bookworm-security",
            "Debian",
            "Debian-Security",
        ),
        release("oldstable-updates", "bookworm-updates", "Debian", "Debian"),
    ];
    let indexes = (0..releases.len())
        .map(|i| PackagesIndex {
            file_name: format!("r{i}_Packages"),
            component: "main".into(),
            release: Some(i),
            arch: "amd64".into(),
        })
        .collect();
    AptLists {
        releases,
        indexes,
        ..AptLists::default()
    }
}

fn version(name: &str, v: &str, indexes: &[usize]) -> AvailableVersion {
    AvailableVersion {
        name: name.into(),
        arch: "amd64".into(),
        version: v.into(),
        releases: indexes.iter().map(|i| Some(*i)).collect(),
        indexes: indexes.to_vec(),
        phased_percentage: None,
        phased_conflict: None,
        component: "main".into(),
        priority: None,
        section: None,
        source_name: name.into(),
        source_version: v.into(),
        depends: String::new(),
    }
}

fn policy(text: &str) -> AptPolicy {
    let mut prefs = Preferences::default();
    prefs
        .parse("/etc/apt/preferences.d/test", text)
        .expect("parse");
    AptPolicy::new(&lists(), "amd64", prefs, Phasing::default()).expect("policy")
}

fn choice(policy: &AptPolicy, installed: &str, versions: &[AvailableVersion]) -> String {
    match policy.candidate(&lists(), Some(installed), versions) {
        CandidateChoice::None => "none".into(),
        CandidateChoice::Installed => "installed".into(),
        CandidateChoice::Upgrade(v) => format!("up {}", v.version),
        CandidateChoice::Downgrade(v) => format!("down {}", v.version),
    }
}

fn kubelet() -> Vec<AvailableVersion> {
    vec![
        version("kubelet", "1.29.1-1", &[0]),
        version("kubelet", "1.29.6-1", &[2]),
        version("kubelet", "1.30.2-1", &[2]),
    ]
}

#[test]
fn version_pins_select_with_prefix_and_glob() {
    let p = policy("Package: kubelet\nPin: version 1.29.*\nPin-Priority: 1001\n");
    assert_eq!(choice(&p, "1.29.1-1", &kubelet()), "up 1.29.6-1");
    let p = policy("Package: kube*\nPin: version 1.29.?-1\nPin-Priority: 990\n");
    assert_eq!(choice(&p, "1.29.1-1", &kubelet()), "up 1.29.6-1");
    // A pin ≥ 1000 downgrades.
    let p = policy("Package: kubelet\nPin: version 1.29.1-1\nPin-Priority: 1001\n");
    assert_eq!(choice(&p, "1.30.2-1", &kubelet()), "down 1.29.1-1");
    // Below 1000 it does not.
    let p = policy("Package: kubelet\nPin: version 1.29.1-1\nPin-Priority: 999\n");
    assert_eq!(choice(&p, "1.30.2-1", &kubelet()), "installed");
}

#[test]
fn negative_pins_forbid_and_the_first_pin_wins() {
    let p = policy("Package: kubelet\nPin: release n=bookworm-updates\nPin-Priority: -1\n");
    assert_eq!(choice(&p, "1.29.1-1", &kubelet()), "installed");
    let p = policy(
        "Package: kubelet\nPin: version 1.30*\nPin-Priority: -10\n\nPackage: kubelet\nPin: version *\nPin-Priority: 600\n",
    );
    assert_eq!(choice(&p, "1.29.1-1", &kubelet()), "up 1.29.6-1");
}

#[test]
fn default_pins_set_file_priorities_and_never_overrides() {
    // Security at 990 beats updates at 500 even for a lower version.
    let versions = vec![
        version("p", "1.0-1", &[0]),
        version("p", "1.0-2", &[1]),
        version("p", "1.0-3", &[2]),
    ];
    let p = policy("Package: *\nPin: release l=Debian-Security\nPin-Priority: 990\n");
    assert_eq!(choice(&p, "1.0-1", &versions), "up 1.0-2");
    let p = policy(
        "Package: *\nPin: release a=oldstable-updates\nPin-Priority: 50\n\nPackage: *\nPin: release *\nPin-Priority: never\n",
    );
    // Everything is never (the status file too): apt has no candidate.
    assert_eq!(choice(&p, "1.0-1", &versions), "none");
    let p = policy(
        "# comment\nExplanation: keep updates low\nPackage: *\nPin: release bookworm-updates\nPin-Priority: 50\n",
    );
    assert_eq!(choice(&p, "1.0-1", &versions), "up 1.0-2");
    let p = policy("Package: *\nPin: origin \"\"\nPin-Priority: 1\n");
    assert_eq!(choice(&p, "1.0-1", &versions), "installed");
}

#[test]
fn what_apt_rejects_and_what_is_not_implemented_fail_with_file_and_line() {
    for (text, line, unsupported) in [
        ("Pin: version 1\nPin-Priority: 1\n", 1, false),
        ("Package: a\nPin: version 1\n", 1, false),
        (
            "Package: a\nPin: version 1\nPin-Priority: never\n",
            3,
            false,
        ),
        (
            "Package: a\nPin: version 1\nPin-Priority: 40000\n",
            3,
            false,
        ),
        ("Package: a\nPin: version 1\nPin-Priority: high\n", 3, false),
        (
            "\nPackage: /^kube/\nPin: version 1\nPin-Priority: 1\n",
            2,
            true,
        ),
        (
            "Package: src:kubernetes\nPin: version 1\nPin-Priority: 1\n",
            1,
            true,
        ),
        (
            "Package: kubelet:amd64\nPin: version 1\nPin-Priority: 1\n",
            1,
            true,
        ),
        (
            "Package: a\nPin: release o=/Deb/\nPin-Priority: 1\n",
            2,
            true,
        ),
    ] {
        let err = Preferences::default()
            .parse("/etc/apt/preferences", text)
            .expect_err(text);
        let (l, is_unsupported) = match &err {
            AptPolicyError::Unsupported { line, .. } => (*line, true),
            AptPolicyError::Invalid { line, .. } => (*line, false),
            AptPolicyError::Host(_) => unreachable!(),
        };
        assert_eq!((l, is_unsupported), (line, unsupported), "{text}: {err}");
        assert!(
            err.to_string().starts_with("/etc/apt/preferences:"),
            "{err}"
        );
    }
}

#[test]
fn globs_match_as_fnmatch_casefold() {
    assert!(glob_match("kube*", "kubelet"));
    assert!(glob_match("KUBE?et", "kubelet"));
    assert!(glob_match("lib[a-c]x", "libbx"));
    assert!(!glob_match("lib[!a-c]x", "libbx"));
    assert!(glob_match("*", ""));
    assert!(!glob_match("a", "ab"));
}

#[test]
fn phasing_keeps_back_by_roll_unless_security_or_always() {
    let mut p = policy("");
    let mut phased = version("np-phased", "1.0-2", &[2]);
    phased.phased_percentage = Some(10);
    let versions = vec![version("np-phased", "1.0-1", &[0]), phased.clone()];
    p.phasing = Phasing {
        rule: Some(PhasingRule::SecurityBelowCandidate),
        machine_id: "3d1219c7c4c5404aaa1f6d2a48adfda4".into(),
        ..Phasing::default()
    };
    // The roll of "np-phased-1.0-2-<id>" is 24 (see phasing's golden values): above 10.
    assert_eq!(
        p.phased_back(&lists(), "1.0-1", &phased, &versions),
        Ok(true)
    );
    let mut wide = phased.clone();
    wide.phased_percentage = Some(24);
    assert_eq!(
        p.phased_back(&lists(), "1.0-1", &wide, &versions),
        Ok(false)
    );
    p.phasing.always = true;
    assert_eq!(
        p.phased_back(&lists(), "1.0-1", &phased, &versions),
        Ok(false)
    );
    p.phasing.always = false;
    // The candidate itself in -security counts only from apt 2.7 on.
    let mut sec = phased.clone();
    sec.indexes = vec![1];
    assert_eq!(p.phased_back(&lists(), "1.0-1", &sec, &versions), Ok(true));
    p.phasing.rule = Some(PhasingRule::SecurityUpToCandidate);
    let with_sec = vec![version("np-phased", "1.0-1", &[0]), sec.clone()];
    assert_eq!(p.phased_back(&lists(), "1.0-1", &sec, &with_sec), Ok(false));
    p.phasing.rule = None;
    assert!(
        p.phased_back(&lists(), "1.0-1", &phased, &versions)
            .is_err()
    );
}
