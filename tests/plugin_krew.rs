//! The krew manifest (`plugins/nodepatch.yaml`) installs the binary Cargo builds: same binary
//! name, the crate's version, one archive per platform with a well-formed digest.

use std::collections::BTreeSet;

use serde_json::Value;

fn manifest() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/nodepatch.yaml");
    let text = std::fs::read_to_string(&path).expect("plugins/nodepatch.yaml");
    serde_saphyr::from_str(&text).expect("the manifest is YAML")
}

#[test]
fn the_krew_manifest_names_the_plugin_binary_and_the_crate_version() {
    let m = manifest();
    assert_eq!(
        m["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(m["kind"], "Plugin");
    // krew installs `kubectl-<name>`, which kubectl runs as `kubectl nodepatch`.
    assert_eq!(m["metadata"]["name"], "nodepatch");
    assert_eq!(
        m["spec"]["version"],
        format!("v{}", env!("CARGO_PKG_VERSION")),
        "the manifest's version is the crate's"
    );
    assert!(
        m["spec"]["shortDescription"]
            .as_str()
            .is_some_and(|d| d.len() <= 60)
    );
    let platforms = m["spec"]["platforms"].as_array().expect("platforms");
    assert!(!platforms.is_empty());
    let mut selectors = BTreeSet::new();
    for p in platforms {
        assert_eq!(p["bin"], "kubectl-nodepatch", "{p}");
        let labels = &p["selector"]["matchLabels"];
        let os = labels["os"].as_str().expect("os");
        let arch = labels["arch"].as_str().expect("arch");
        assert!(selectors.insert((os, arch)), "{os}/{arch} listed twice");
        let uri = p["uri"].as_str().expect("uri");
        assert!(
            uri.starts_with("https://") && uri.ends_with(&format!("-{os}-{arch}.tar.gz")),
            "{uri}"
        );
        let digest = p["sha256"].as_str().expect("sha256");
        assert!(
            digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
            "{digest}"
        );
    }
    assert!(selectors.contains(&("linux", "amd64")));
}

#[test]
fn cargo_builds_the_binary_the_manifest_installs() {
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_kubectl-nodepatch"));
    assert_eq!(
        bin.file_name().and_then(|n| n.to_str()),
        Some("kubectl-nodepatch")
    );
    let out = std::process::Command::new(&bin)
        .arg("--version")
        .output()
        .expect("run");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("kubectl-nodepatch {}\n", env!("CARGO_PKG_VERSION"))
    );
}
