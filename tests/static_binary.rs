//! The container image ships one static (musl) binary. Where no container engine exists, this
//! checks that binary (built by scripts/build-static.sh, path in NODEPATCH_STATIC_BIN): it is
//! statically linked, runs, and serves both modes.

use std::path::PathBuf;
use std::process::Command;

fn static_binary() -> Option<PathBuf> {
    match std::env::var_os("NODEPATCH_STATIC_BIN") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "NODEPATCH_STATIC_BIN is not set: make test builds it with scripts/build-static.sh"
            )
        }
        None => {
            eprintln!(
                "SKIPPED (not CI): NODEPATCH_STATIC_BIN not set; run scripts/build-static.sh"
            );
            None
        }
    }
}

#[test]
fn image_binary_is_static_and_runs_controller_and_agent_modes() {
    let Some(bin) = static_binary() else { return };
    let file = Command::new("file")
        .arg("-L")
        .arg(&bin)
        .output()
        .expect("file(1)");
    let description = String::from_utf8_lossy(&file.stdout);
    assert!(
        description.contains("statically linked") || description.contains("static-pie linked"),
        "{description}"
    );
    let ldd = Command::new("ldd").arg(&bin).output().expect("ldd");
    let ldd_text = format!(
        "{}{}",
        String::from_utf8_lossy(&ldd.stdout),
        String::from_utf8_lossy(&ldd.stderr)
    );
    assert!(
        !ldd_text.contains("libc.so") && !ldd_text.contains("libssl"),
        "dynamic dependencies: {ldd_text}"
    );

    let version = Command::new(&bin)
        .arg("--version")
        .output()
        .expect("run --version");
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("nodepatch "));
    let crds = Command::new(&bin).arg("crd").output().expect("run crd");
    assert_eq!(
        String::from_utf8_lossy(&crds.stdout),
        nodepatch::api::crds_yaml(),
        "same API as the test build"
    );
    for mode in ["controller", "agent", "scan"] {
        let help = Command::new(&bin)
            .args([mode, "--help"])
            .output()
            .expect("run help");
        assert!(
            help.status.success(),
            "{mode} --help: {}",
            String::from_utf8_lossy(&help.stderr)
        );
    }
}
