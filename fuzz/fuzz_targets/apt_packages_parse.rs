//! Fuzz the agent's apt lists reader: Release/InRelease parsing (with the clear-signature
//! armour), the Packages scanner with its fast skip path, dependency parsing and apt's candidate
//! policy over what was read. Nothing may panic; a candidate is never older than installed.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use nodepatch::agent::backend::apt::deb822::{leading_field, paragraphs};
use nodepatch::agent::backend::apt::lists::{
    AptLists, AvailableByPackage, PackagesIndex, collect_from_packages_text, parse_release,
    strip_clearsign,
};
use nodepatch::agent::backend::apt::parse_dependencies;
use nodepatch::agent::backend::apt::preferences::AptPolicy;
use nodepatch::agent::backend::apt::upgrades::candidate_version;
use nodepatch::baseline::version::deb::compare;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // `Release` text, a NUL, then `Packages` text.
    let (release_text, packages_text) = text.split_once('\0').unwrap_or(("", &text));
    let _ = strip_clearsign(release_text);
    let releases: Vec<_> = parse_release(release_text, "fuzz_dists_x")
        .into_iter()
        .collect();
    // Want every package named in a leading `Package:` field, so the full parse path runs too;
    // names behind other first fields exercise the slow path.
    let mut cursor = paragraphs(packages_text);
    let mut wanted: HashMap<&str, ()> = HashMap::new();
    while let Some(raw) = cursor.next_raw() {
        if let Some(name) = leading_field(raw, "Package") {
            wanted.insert(name, ());
        }
    }
    let archs = vec!["amd64".to_string(), "all".to_string()];
    let mut available = AvailableByPackage::new();
    let index = PackagesIndex {
        file_name: "fuzz_Packages".into(),
        component: "main".into(),
        release: Some(0),
        arch: "amd64".into(),
    };
    if collect_from_packages_text(
        packages_text,
        "fuzz",
        (0, &index),
        &wanted,
        &archs,
        "amd64",
        &mut available,
    )
    .is_err()
    {
        return;
    }
    let lists = AptLists {
        releases,
        indexes: vec![index],
        ..AptLists::default()
    };
    let policy = AptPolicy::defaults(&lists, "amd64");
    for versions in available.values() {
        for v in versions {
            let _ = parse_dependencies(&v.depends);
        }
        let installed = versions
            .first()
            .map(|v| v.version.clone())
            .unwrap_or_default();
        if let Some(candidate) = candidate_version(&installed, versions, &lists, &policy) {
            assert!(
                compare(&candidate.version, &installed).is_gt(),
                "a candidate is newer than installed"
            );
        }
    }
});
