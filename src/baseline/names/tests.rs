use proptest::prelude::*;

use super::*;

fn target<'a>(name: &'a str, arch: Option<&'a str>, version: &'a str) -> PatchTarget<'a> {
    PatchTarget {
        name,
        arch,
        version,
        advisory: None,
        cves: &[],
        bugzillas: &[],
    }
}

fn list(family: PackageFamily, entries: &[&str]) -> PatchNameList {
    let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
    PatchNameList::parse(family, PatchListKind::Approved, &entries).expect("valid list")
}

#[test]
fn all_twelve_rpm_shapes_of_the_ssm_example_parse_and_match() {
    let dbus = target("dbus", Some("x86_64"), "1:1.12.28-1.amzn2023.0.1");
    for shape in [
        "dbus",
        "dbus.x86_64",
        "dbus-1.12.28",
        "dbus-1.12.28-1.amzn2023.0.1",
        "dbus-1.12.28-1.amzn2023.0.1.x86_64",
        "1.12.28",
        "1.12.28-1.amzn2023.0.1",
        "1:1.12.28-1.amzn2023.0.1",
        "dbus-1:1.12.28-1.amzn2023.0.1",
        "dbus-1:1.12.28-1.amzn2023.0.1.x86_64",
        "1:dbus-1.12.28-1.amzn2023.0.1.x86_64",
        "dbus.x86_64:1:1.12.28-1.amzn2023.0.1",
        // The documented wildcard examples.
        "dbus*",
        "dbus-1.12.2*",
        "dbus-*:1.12.28-1.amzn2023.0.1.x86_64",
    ] {
        assert_eq!(
            parse_patch_entry(PackageFamily::Rpm, PatchListKind::Approved, shape),
            Ok(PatchEntry::Package(shape.into())),
            "{shape}"
        );
        assert!(
            list(PackageFamily::Rpm, &[shape]).matches(&dbus),
            "{shape} should match dbus"
        );
    }
    for other in [
        "dbus-libs",
        "dbus.aarch64",
        "dbus-1.12.29",
        "2:1.12.28-1.amzn2023.0.1",
        "dbus-1.12.28-2*",
    ] {
        assert!(
            !list(PackageFamily::Rpm, &[other]).matches(&dbus),
            "{other} should not match dbus"
        );
    }
}

#[test]
fn rpm_ids_are_recognised_and_approve_only() {
    for (entry, want) in [
        ("CVE-2024-3094", PatchEntry::Cve("CVE-2024-3094".into())),
        ("1234567", PatchEntry::Bugzilla("1234567".into())),
        (
            "RHSA-2017:0864",
            PatchEntry::Advisory("RHSA-2017:0864".into()),
        ),
        (
            "ALAS-2018-123",
            PatchEntry::Advisory("ALAS-2018-123".into()),
        ),
        (
            "ALAS2023-2025-123",
            PatchEntry::Advisory("ALAS2023-2025-123".into()),
        ),
        (
            "ELSA-2025-123",
            PatchEntry::Advisory("ELSA-2025-123".into()),
        ),
        (
            "ALAS2KERNEL-5.10-2024-045",
            PatchEntry::Advisory("ALAS2KERNEL-5.10-2024-045".into()),
        ),
        (
            "FEDORA-2024-1a2b3c4d5e",
            PatchEntry::Advisory("FEDORA-2024-1a2b3c4d5e".into()),
        ),
        (
            "FEDORA-EPEL-2024-1a2b3c",
            PatchEntry::Advisory("FEDORA-EPEL-2024-1a2b3c".into()),
        ),
    ] {
        assert_eq!(
            parse_patch_entry(PackageFamily::Rpm, PatchListKind::Approved, entry),
            Ok(want),
            "{entry}"
        );
        let err =
            parse_patch_entry(PackageFamily::Rpm, PatchListKind::Rejected, entry).expect_err(entry);
        assert_eq!(err.category(), "PatchIdInRejectedList", "{entry}");
    }
    let cves = vec!["CVE-2024-3094".to_string()];
    let bz = vec!["2270159".to_string()];
    let xz = PatchTarget {
        name: "xz",
        arch: Some("x86_64"),
        version: "5.4.6-1",
        advisory: Some("RHSA-2024:1234"),
        cves: &cves,
        bugzillas: &bz,
    };
    assert!(list(PackageFamily::Rpm, &["CVE-2024-3094"]).matches(&xz));
    assert!(list(PackageFamily::Rpm, &["2270159"]).matches(&xz));
    assert!(list(PackageFamily::Rpm, &["RHSA-2024:1234"]).matches(&xz));
    assert!(list(PackageFamily::Rpm, &["RHSA-2024:*"]).matches(&xz));
    assert!(!list(PackageFamily::Rpm, &["RHSA-2024:1235", "CVE-2024-0001"]).matches(&xz));
}

#[test]
fn apt_entries_are_names_only() {
    assert!(parse_patch_entry(PackageFamily::Deb, PatchListKind::Approved, "openssl").is_ok());
    assert!(
        parse_patch_entry(PackageFamily::Deb, PatchListKind::Approved, "linux-image-*").is_ok()
    );
    assert!(parse_patch_entry(PackageFamily::Deb, PatchListKind::Approved, "libstdc++6").is_ok());
    let err = parse_patch_entry(PackageFamily::Deb, PatchListKind::Approved, "openssl:amd64")
        .expect_err("arch");
    assert!(err.to_string().contains("':'"), "{err}");
    let err = parse_patch_entry(PackageFamily::Deb, PatchListKind::Approved, "OpenSSL")
        .expect_err("case");
    assert!(err.to_string().contains("lowercase"), "{err}");
    assert_eq!(
        parse_patch_entry(PackageFamily::Deb, PatchListKind::Approved, "a")
            .map_err(|e| e.category()),
        Err("PatchNameTooShort")
    );
    let kernel = target("linux-image-6.1.0-18-amd64", Some("amd64"), "6.1.76-1");
    assert!(list(PackageFamily::Deb, &["linux-image-*"]).matches(&kernel));
    // apt lists never match versions.
    assert!(!list(PackageFamily::Deb, &["6.1.76-1"]).matches(&kernel));
}

#[test]
fn zypper_entries_match_patch_names_and_package_files() {
    let z = PatchTarget {
        name: "example-pkg",
        arch: Some("x86_64"),
        version: "2018.11.4-46.17.1",
        advisory: Some("SUSE-SLE-Example-Package-12-2018-123"),
        cves: &[],
        bugzillas: &[],
    };
    for entry in [
        "SUSE-SLE-Example-Package-12-2018-123",
        "SUSE-SLE-Example-Package-12-2018-*",
        "example-pkg-2018.11.4-46.17.1.x86_64.rpm",
        "example-pkg-2018.11.4-46.17.1.*.rpm",
        "example-pkg",
    ] {
        assert!(list(PackageFamily::Zypper, &[entry]).matches(&z), "{entry}");
    }
    assert!(
        !list(
            PackageFamily::Zypper,
            &["SUSE-SLE-Example-Package-12-2018-124"]
        )
        .matches(&z)
    );
}

#[test]
fn errors_say_what_is_wrong() {
    let cases: [(PackageFamily, &str, &str); 9] = [
        (PackageFamily::Rpm, "", "empty"),
        (PackageFamily::Rpm, "-oDebug=1", "starts with '-'"),
        (PackageFamily::Deb, "curl;reboot", "shell metacharacter ';'"),
        (PackageFamily::Deb, "curl wget", "whitespace"),
        (
            PackageFamily::Rpm,
            "a**b",
            "none of the rpm package name shapes",
        ),
        (PackageFamily::Rpm, "dbus-x:1.0-1", "numeric epoch"),
        (
            PackageFamily::Rpm,
            "a:b:c:d",
            "none of the rpm package name shapes",
        ),
        (PackageFamily::Apk, ".hidden", "starts with '.'"),
        (PackageFamily::Rpm, "dbus/x", "contains '/'"),
    ];
    for (family, entry, want) in cases {
        let err = parse_patch_entry(family, PatchListKind::Approved, entry)
            .expect_err(entry)
            .to_string();
        assert!(err.contains(want), "{entry}: {err}");
    }
    let long = "a".repeat(256);
    assert!(
        parse_patch_entry(PackageFamily::Apk, PatchListKind::Approved, &long)
            .expect_err("long")
            .to_string()
            .contains("256")
    );
}

fn families() -> impl Strategy<Value = PackageFamily> {
    prop_oneof![
        Just(PackageFamily::Deb),
        Just(PackageFamily::Rpm),
        Just(PackageFamily::Zypper),
        Just(PackageFamily::Apk)
    ]
}

fn lists() -> impl Strategy<Value = PatchListKind> {
    prop_oneof![Just(PatchListKind::Approved), Just(PatchListKind::Rejected)]
}

/// Reference matcher: render every shape of the SSM list and glob-match every entry.
fn brute_force(family: PackageFamily, entries: &[String], t: &PatchTarget<'_>) -> bool {
    let evr = Evr::split(t.version);
    let (n, e, v) = (t.name, evr.epoch.unwrap_or("0"), evr.version);
    let mut renderings = vec![n.to_string()];
    if matches!(family, PackageFamily::Rpm | PackageFamily::Zypper) {
        renderings.push(format!("{n}-{v}"));
        renderings.push(v.to_string());
        if let Some(a) = t.arch {
            renderings.push(format!("{n}.{a}"));
        }
        if let Some(r) = evr.release {
            renderings.extend([
                format!("{n}-{v}-{r}"),
                format!("{v}-{r}"),
                format!("{e}:{v}-{r}"),
                format!("{n}-{e}:{v}-{r}"),
            ]);
            if let Some(a) = t.arch {
                renderings.extend([
                    format!("{n}-{v}-{r}.{a}"),
                    format!("{n}-{e}:{v}-{r}.{a}"),
                    format!("{e}:{n}-{v}-{r}.{a}"),
                    format!("{n}.{a}:{e}:{v}-{r}"),
                ]);
                if family == PackageFamily::Zypper {
                    renderings.push(format!("{n}-{v}-{r}.{a}.rpm"));
                }
            }
        }
    }
    entries
        .iter()
        .any(|entry| renderings.iter().any(|r| wildcard_match(entry, r, false)))
}

proptest! {
    #[test]
    fn prefiltered_matching_equals_rendering_every_shape(
        family in prop_oneof![Just(PackageFamily::Rpm), Just(PackageFamily::Zypper), Just(PackageFamily::Deb)],
        entries in prop::collection::vec("[a-c1-2*][a-c1-2.*-]{0,6}(:[0-2*][a-c1-2.*-]{0,5})?", 1..4),
        name in "[a-c][a-c1-2-]{0,3}",
        arch in prop::option::of("[a-c12]{1,3}"),
        version in "([0-2]:)?[1-2][a-c1-2.]{0,3}(-[1-2][a-c1-2.]{0,2})?",
    ) {
        let valid: Vec<String> = entries.into_iter().filter(|e| parse_patch_entry(family, PatchListKind::Rejected, e).is_ok()).collect();
        prop_assume!(!valid.is_empty());
        let list = PatchNameList::parse(family, PatchListKind::Rejected, &valid).expect("filtered valid");
        let t = PatchTarget { name: &name, arch: arch.as_deref(), version: &version, advisory: None, cves: &[], bugzillas: &[] };
        prop_assert_eq!(list.matches(&t), brute_force(family, &valid, &t), "{:?} vs {} {:?} {}", valid, name, arch, version);
    }

    #[test]
    fn entries_starting_with_dash_are_never_accepted(family in families(), kind in lists(), rest in "[a-z0-9.*:-]{0,20}") {
        let entry = format!("-{}", rest);
        prop_assert!(parse_patch_entry(family, kind, &entry).is_err());
    }

    #[test]
    fn entries_with_whitespace_are_never_accepted(family in families(), kind in lists(), a in "[a-z0-9.*]{0,10}", ws in "[ \t\n\r\u{b}\u{c}\u{a0}\u{2003}]", b in "[a-z0-9.*]{0,10}") {
        let entry = format!("{}{}{}", a, ws, b);
        prop_assert!(parse_patch_entry(family, kind, &entry).is_err());
    }

    #[test]
    fn entries_with_shell_metacharacters_are_never_accepted(family in families(), kind in lists(), a in "[a-z0-9.*]{0,10}", m in "[;&|$`'\"<>(){}!?\\\\#%=,\\[\\]]", b in "[a-z0-9.*]{0,10}") {
        let entry = format!("{}{}{}", a, m, b);
        prop_assert!(parse_patch_entry(family, kind, &entry).is_err());
    }

    #[test]
    fn accepted_entries_are_always_safe_to_pass_as_arguments(family in families(), kind in lists(), entry in "\\PC{0,30}") {
        if parse_patch_entry(family, kind, &entry).is_ok() {
            prop_assert!(!entry.starts_with('-'));
            prop_assert!(!entry.chars().any(|c| c.is_whitespace() || SHELL_METACHARACTERS.contains(c) || !c.is_ascii_graphic()));
        }
    }
}
