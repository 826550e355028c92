//! Fuzz the version parsers and comparators of every family: no panic on any input, and each
//! comparison is reflexive and antisymmetric; a version that validates splits back into parts
//! that reassemble to it (deb, rpm).
#![no_main]

use std::cmp::Ordering;

use libfuzzer_sys::fuzz_target;
use nodepatch::api::PackageFamily;
use nodepatch::baseline::version::{apk, compare_versions, deb, rpm, validate_version};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (a, b) = text.split_once('\u{0}').unwrap_or((text, ""));
    for family in [PackageFamily::Deb, PackageFamily::Rpm, PackageFamily::Apk] {
        assert_eq!(
            compare_versions(family, a, a),
            Ordering::Equal,
            "{family:?} {a:?} not equal to itself"
        );
        assert_eq!(
            compare_versions(family, a, b),
            compare_versions(family, b, a).reverse(),
            "{family:?} {a:?} {b:?} not antisymmetric"
        );
        let _ = validate_version(family, a);
    }
    let _ = rpm::compare_evr_range(a, b);
    let _ = rpm::rpmvercmp(a, b);
    let _ = deb::verrevcmp(a.as_bytes(), b.as_bytes());
    let _ = apk::validate(a);
    if let Ok(v) = deb::DebVersion::parse(a) {
        let mut joined = String::new();
        if a.contains(':') {
            joined.push_str(v.epoch);
            joined.push(':');
        }
        joined.push_str(v.upstream);
        if !v.revision.is_empty() {
            joined.push('-');
            joined.push_str(v.revision);
        }
        assert_eq!(joined, a);
        assert_eq!(deb::compare(a, &joined), Ordering::Equal);
    }
    if let Ok(v) = rpm::Evr::parse(a) {
        let epoch = v.epoch.unwrap_or("0");
        let release = v.release.map(|r| format!("-{r}")).unwrap_or_default();
        assert_eq!(
            rpm::compare_evr(a, &format!("{epoch}:{}{release}", v.version)),
            Ordering::Equal
        );
    }
});
