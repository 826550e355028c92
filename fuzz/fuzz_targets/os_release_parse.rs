//! Fuzz os-release parsing and OS classification: any input parses (malformed lines are
//! skipped, as systemd does) and classifies without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodepatch::agent::os::classify;
use nodepatch::agent::os_release::OsRelease;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let release = OsRelease::parse(&text);
    let ostree = data.first().is_some_and(|b| b & 1 == 1);
    let os = classify(&release, ostree, "6.1.0-18-amd64".into());
    assert_eq!(os.info.id, release.id());
    if os.immutable.is_some() {
        assert!(os.info.family.is_none() && os.operating_system.is_none());
    }
    let _ = os.product();
});
