//! Fuzz the agent's bounded decompression of apt lists (`.gz`, `.lz4`) and the Packages reader
//! behind it: any bytes must give text no longer than the limit or an error naming the file,
//! never a panic or unbounded memory (a gzip bomb stops at the limit).
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use nodepatch::agent::backend::apt::lists::{
    AvailableByPackage, PackagesIndex, collect_from_packages_text, decompress_list,
};

/// A small limit, so a bomb is found (and cut) in one exec instead of 128 MiB.
const LIMIT: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let ext = if selector & 1 == 0 { ".gz" } else { ".lz4" };
    let path = format!("/var/lib/apt/lists/x_Packages{ext}");
    let text = match decompress_list(bytes, ext, &path, LIMIT) {
        Ok(text) => text,
        Err(e) => {
            assert!(e.to_string().contains(&path), "{e}");
            return;
        }
    };
    assert!(text.len() as u64 <= LIMIT, "repaired text stays within the limit");
    let index = PackagesIndex {
        file_name: "x_Packages".into(),
        component: "main".into(),
        release: None,
        arch: "amd64".into(),
    };
    let wanted: HashMap<&str, ()> = [("openssl", ()), ("dpkg", ())].into_iter().collect();
    let mut available = AvailableByPackage::new();
    let archs = vec!["amd64".to_string(), "all".to_string()];
    let _ = collect_from_packages_text(&text, &path, (0, &index), &wanted, &archs, "amd64", &mut available);
});
