//! Fuzz the agent's dpkg status reader: the deb822 paragraph parser, the record checks and the
//! journal merge. Any input must give records or an error, never a panic; accepted records must
//! keep the invariants the evaluation relies on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodepatch::agent::backend::apt::dpkg::{merge_database, parse_status};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The first half is the status file, the second a journal record (`updates/0000`).
    let split = text
        .char_indices()
        .nth(text.chars().count() / 2)
        .map_or(text.len(), |(i, _)| i);
    let (status, journal) = text.split_at(split);
    let Ok(records) = parse_status(status, "/var/lib/dpkg/status") else {
        return;
    };
    for record in &records {
        assert!(!record.name.is_empty());
        assert!(!record.source_name.is_empty());
    }
    let updates = parse_status(journal, "/var/lib/dpkg/updates/0000")
        .into_iter()
        .collect();
    if let Ok(db) = merge_database(records, updates, vec!["i386".into()]) {
        assert!(!db.native_arch.is_empty());
        for p in db.installed() {
            assert!(!p.version.is_empty(), "an installed package has a version");
            let _ = db.find_installed(&p.name, &p.arch);
        }
        let _ = db.needs_repair();
    }
});
