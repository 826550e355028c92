//! Fuzz the approved/rejected list grammars: parsing never panics, an accepted entry is always
//! safe to hand to a package manager (no leading '-', no whitespace, no shell metacharacter,
//! printable ASCII only), and matching an accepted list against packages never panics and
//! agrees for an exact entry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodepatch::api::PackageFamily;
use nodepatch::baseline::names::{
    PatchListKind, PatchNameList, PatchTarget, SHELL_METACHARACTERS, parse_patch_entry,
};

const FAMILIES: [PackageFamily; 4] = [
    PackageFamily::Deb,
    PackageFamily::Rpm,
    PackageFamily::Zypper,
    PackageFamily::Apk,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let family = FAMILIES[usize::from(selector & 3)];
    let kind = if selector & 4 == 0 {
        PatchListKind::Approved
    } else {
        PatchListKind::Rejected
    };
    // Several entries, newline-separated; each checked alone, then the accepted ones as a list.
    let mut accepted = Vec::new();
    for entry in text.split('\n') {
        if parse_patch_entry(family, kind, entry).is_ok() {
            assert!(!entry.starts_with('-'), "accepted leading dash: {entry:?}");
            assert!(
                entry
                    .chars()
                    .all(|c| c.is_ascii_graphic() && !SHELL_METACHARACTERS.contains(c)),
                "accepted unsafe character: {entry:?}"
            );
            accepted.push(entry.to_owned());
        }
    }
    let Ok(list) = PatchNameList::parse(family, kind, &accepted) else {
        panic!("entries accepted one by one were rejected as a list: {accepted:?}");
    };
    // Targets built from the fuzz text itself: a name, and name-version-release.arch pieces.
    let mut parts = text.splitn(4, '|');
    let name = parts.next().unwrap_or_default();
    let version = parts.next().unwrap_or("1.0-1");
    let arch = parts.next();
    let cves = vec![text.to_owned()];
    let target = PatchTarget {
        name,
        arch,
        version,
        advisory: Some(text),
        cves: &cves,
        bugzillas: &cves,
    };
    let _ = list.matches(&target);
    // An exact package entry always matches a package of that name.
    for entry in &accepted {
        if !entry.contains('*')
            && !entry.contains(':')
            && !entry.contains('.')
            && !entry.contains('-')
        {
            let exact = PatchTarget {
                name: entry,
                arch: None,
                version: "1.0-1",
                advisory: None,
                cves: &[],
                bugzillas: &[],
            };
            let one = PatchNameList::parse(family, kind, std::slice::from_ref(entry))
                .expect("accepted entry");
            if one.entries().iter().all(|e| {
                matches!(
                    e,
                    nodepatch::baseline::names::PatchEntry::Package(_)
                        | nodepatch::baseline::names::PatchEntry::PatchOrPackage(_)
                )
            }) {
                assert!(one.matches(&exact), "{entry:?} does not match its own name");
            }
        }
    }
});
