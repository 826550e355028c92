//! `nodepatch scan` as users run it: the binary against a real Debian root.

mod support;

use std::process::Command;

use nodepatch::api::{Compliance, NodePatchReportStatus, OperationPhase};
use support::roots::DebianRoot;

fn nodepatch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nodepatch"))
}

#[test]
fn scan_prints_the_status_object_as_json_and_a_table() {
    let test = "scan_prints_the_status_object_as_json_and_a_table";
    let Some(root) = DebianRoot::with_standard_repo(
        test,
        &["bookworm", "bookworm-security", "bookworm-updates"],
    ) else {
        return;
    };
    let out = nodepatch()
        .args([
            "scan",
            "--baseline",
            "nodepatch-predefined-debian",
            "--output",
            "json",
            "--host-root",
        ])
        .arg(root.path())
        .output()
        .expect("run nodepatch scan");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: NodePatchReportStatus =
        serde_json::from_slice(&out.stdout).expect("stdout is a NodePatchReport status");
    assert_eq!(status.os.as_ref().map(|o| o.id.as_str()), Some("debian"));
    assert_eq!(
        status.baseline.as_ref().map(|b| b.name.as_str()),
        Some("nodepatch-predefined-debian")
    );
    assert_eq!(status.compliance, Compliance::NonCompliant);
    assert_eq!(
        status.operation.as_ref().map(|o| o.phase),
        Some(OperationPhase::Succeeded)
    );
    let mut missing: Vec<&str> = status.patches.iter().map(|p| p.name.as_str()).collect();
    missing.sort();
    assert_eq!(
        missing,
        vec!["np-arch", "np-reboot", "np-sec"],
        "security updates only"
    );
    assert!(
        status
            .patches
            .iter()
            .all(|p| p.classification.as_deref() == Some("Security"))
    );
    assert!(
        root.path()
            .join("var/lib/nodepatch/first-seen.json")
            .exists(),
        "first sightings recorded"
    );

    let yaml = nodepatch()
        .args(["scan", "-o", "yaml", "--read-only", "--host-root"])
        .arg(root.path())
        .output()
        .expect("yaml");
    assert!(yaml.status.success());
    let from_yaml: NodePatchReportStatus =
        serde_saphyr::from_slice(&yaml.stdout).expect("yaml status");
    assert_eq!(from_yaml.counts, status.counts);

    let table = nodepatch()
        .args(["scan", "--read-only", "--host-root"])
        .arg(root.path())
        .output()
        .expect("table");
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("Compliance: NonCompliant"), "{text}");
    assert!(text.contains("Debian GNU/Linux 12 (bookworm)"), "{text}");
    assert!(text.contains("missing 3"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("np-sec "))
        .unwrap_or_else(|| panic!("np-sec row in:\n{text}"));
    for cell in ["1.0-1", "1.0-1+deb12u1", "Missing", "Security"] {
        assert!(row.contains(cell), "{row}");
    }
}

#[test]
fn scan_refuses_a_malformed_baseline_before_touching_the_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let baseline = dir.path().join("bad.yaml");
    std::fs::write(
        &baseline,
        "apiVersion: nodepatch.dev/v1alpha1\nkind: PatchBaseline\nmetadata:\n  name: bad\nspec:\n  operatingSystem: Debian\n  approvedPatches: [\"np-sec\", \"--force-yes\"]\n",
    )
    .expect("write baseline");
    // The root does not even exist: the baseline error must come first.
    let out = nodepatch()
        .args(["scan", "--host-root", "/nonexistent/root", "--baseline"])
        .arg(&baseline)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("spec.approvedPatches[1]"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn scan_of_a_root_without_dpkg_status_reports_failed_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
    std::fs::write(
        dir.path().join("etc/os-release"),
        "ID=debian\nVERSION_ID=\"12\"\n",
    )
    .expect("os-release");
    let out = nodepatch()
        .args(["scan", "-o", "json", "--host-root"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let status: NodePatchReportStatus =
        serde_json::from_slice(&out.stdout).expect("status printed");
    assert_eq!(status.compliance, Compliance::Unknown);
    let op = status.operation.expect("operation");
    assert_eq!(op.phase, OperationPhase::Failed);
    assert!(
        op.message
            .unwrap_or_default()
            .contains("/var/lib/dpkg/status is missing")
    );
}

#[test]
fn scan_of_an_rpm_root_through_the_installroot_executor() {
    let test = "scan_of_an_rpm_root_through_the_installroot_executor";
    if !support::rpmroots::require_tools(test, &support::rpmroots::DNF_TOOLS) {
        return;
    }
    let root = support::rpmroots::RpmRoot::rocky();
    let out = nodepatch()
        .args([
            "scan",
            "--refresh",
            "--host-exec",
            "installroot",
            "--output",
            "json",
            "--host-root",
        ])
        .arg(root.path())
        .output()
        .expect("run nodepatch scan");
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let status: NodePatchReportStatus =
        serde_json::from_slice(&out.stdout).expect("stdout is a NodePatchReport status");
    assert_eq!(status.os.as_ref().map(|o| o.id.as_str()), Some("rocky"));
    assert_eq!(
        status.baseline.as_ref().map(|b| b.name.as_str()),
        Some("nodepatch-predefined-rocky"),
        "the node's predefined baseline by default"
    );
    assert_eq!(status.compliance, Compliance::NonCompliant);
    // At the real date every advisory is older than 7 days, so np-recent is approved too.
    let mut missing: Vec<&str> = status.patches.iter().map(|p| p.name.as_str()).collect();
    missing.sort();
    assert_eq!(
        missing,
        vec!["np-bug", "np-crit", "np-fail", "np-imp", "np-recent"]
    );

    // Without --refresh the scan reads dnf's cache the refresh left in the root; the table
    // shows the advisory columns.
    let table = nodepatch()
        .args([
            "scan",
            "--read-only",
            "--host-exec",
            "installroot",
            "--host-root",
        ])
        .arg(root.path())
        .output()
        .expect("table");
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success(), "{text}");
    assert!(text.contains("Rocky Linux 9.4"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("np-crit "))
        .unwrap_or_else(|| panic!("np-crit row in:\n{text}"));
    for cell in ["1.0-1", "1.1-1", "Missing", "Security", "Critical"] {
        assert!(row.contains(cell), "{row}");
    }
}
