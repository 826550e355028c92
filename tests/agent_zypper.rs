//! The zypper backend on real rpm roots built offline: the same rpm-md repository as the dnf
//! tests (its updateinfo becomes zypper patches), this machine's zypper run against each test
//! root with `--root` through the installroot executor. Scan verdicts are checked against
//! hand-computed expectations under the predefined SUSE baseline (Security Critical/Important,
//! 7 days after release); installs change exactly the approved versions and honour the reboot
//! option for patches that need a reboot.

mod support;

use std::sync::Arc;
use support::reports::{changes, message, patch};

use jiff::Timestamp;
use nodepatch::agent::backend::contract::NodeAgent;
use nodepatch::agent::host::HostRoot;
use nodepatch::agent::host::exec::InstallrootExecutor;
use nodepatch::agent::operation::{BaselineChoice, OperationRequest, run_operation};
use nodepatch::api::{
    Compliance, NodePatchReportStatus, Operation, OperationPhase, PatchState, RebootOption,
};
use support::rpmroots::{NOW, RpmRoot, ZYPPER_TOOLS, require_tools};

fn operate(root: &RpmRoot, operation: Operation, reboot: RebootOption) -> NodePatchReportStatus {
    let agent = NodeAgent {
        root: HostRoot::new(root.path()),
        executor: Arc::new(InstallrootExecutor::new(root.path())),
    };
    let now: Timestamp = NOW.parse().expect("now");
    let mut request = OperationRequest::new(operation, "test-run");
    request.reboot_option = reboot;
    run_operation(
        &agent,
        &request,
        &BaselineChoice::PredefinedForNode,
        &|| now,
    )
}

#[test]
fn scan_verdicts_match_the_predefined_suse_baseline() {
    if !require_tools(
        "scan_verdicts_match_the_predefined_suse_baseline",
        &ZYPPER_TOOLS,
    ) {
        return;
    }
    let root = RpmRoot::sles();
    let status = operate(&root, Operation::Scan, RebootOption::RebootIfNeeded);
    assert_eq!(
        status.operation.as_ref().map(|o| o.phase),
        Some(OperationPhase::Succeeded),
        "{}",
        message(&status)
    );
    assert_eq!(
        status.baseline.as_ref().map(|b| b.name.as_str()),
        Some("nodepatch-predefined-suse")
    );
    assert_eq!(status.compliance, Compliance::NonCompliant);
    // Hand-computed: only security patches of severity Critical or Important released 7 days
    // ago: np-crit, np-imp, np-fail Missing; np-done's patch is applied (Installed); bugfix,
    // enhancement, Moderate and the 2-day-old Critical patch are not approved (InstalledOther,
    // with np-other).
    let mut names: Vec<&str> = status.patches.iter().map(|p| p.name.as_str()).collect();
    names.sort();
    assert_eq!(names, vec!["np-crit", "np-fail", "np-imp"]);
    assert_eq!(status.counts.missing, 3, "{:#?}", status.counts);
    assert_eq!(status.counts.installed, 1, "{:#?}", status.counts);
    assert_eq!(status.counts.installed_other, 5, "{:#?}", status.counts);
    let crit = patch(&status, "np-crit");
    assert_eq!(crit.available_version.as_deref(), Some("1.1-1"));
    assert_eq!(crit.advisory.as_deref(), Some("NPSA-2024:0001"));
    assert_eq!(crit.classification.as_deref(), Some("Security"));
    assert_eq!(crit.severity.as_deref(), Some("Critical"));
    assert_eq!(crit.cves, vec!["CVE-2024-1001".to_string()]);
    assert_eq!(
        crit.release_date.as_ref().map(|t| t.0.to_string()),
        Some("2024-01-12T00:00:00Z".to_string())
    );
    assert_eq!(status.security_non_compliant, 3);
    assert!(!status.reboot_required);
}

#[test]
fn install_applies_exact_versions_and_the_reboot_patch_requires_a_reboot() {
    let test = "install_applies_exact_versions_and_the_reboot_patch_requires_a_reboot";
    if !require_tools(test, &ZYPPER_TOOLS) {
        return;
    }
    let root = RpmRoot::sles();
    let before = root.versions();
    let status = operate(&root, Operation::Install, RebootOption::RebootIfNeeded);
    let after = root.versions();
    let msg = message(&status);
    assert_eq!(
        changes(&before, &after),
        vec!["np-crit 1.1-1".to_string(), "np-imp 1.1-1".to_string()],
        "the approved versions exactly (not np-crit 1.2-1): {msg}"
    );
    assert_eq!(patch(&status, "np-fail").state, PatchState::Failed, "{msg}");
    assert!(msg.contains("nothing provides np-nonexistent"), "{msg}");
    assert_eq!(
        status.operation.as_ref().map(|o| o.phase),
        Some(OperationPhase::Failed)
    );
    assert!(status.reboot_required, "{msg}");
    assert_eq!(
        patch(&status, "np-crit").state,
        PatchState::InstalledPendingReboot
    );
}

#[test]
fn no_reboot_leaves_out_patches_that_need_a_reboot() {
    let test = "no_reboot_leaves_out_patches_that_need_a_reboot";
    if !require_tools(test, &ZYPPER_TOOLS) {
        return;
    }
    let root = RpmRoot::sles();
    let before = root.versions();
    let status = operate(&root, Operation::Install, RebootOption::NoReboot);
    let after = root.versions();
    let msg = message(&status);
    assert_eq!(
        changes(&before, &after),
        vec!["np-imp 1.1-1".to_string()],
        "{msg}"
    );
    let crit = patch(&status, "np-crit");
    assert_eq!(
        crit.state,
        PatchState::Missing,
        "left out, not failed: {msg}"
    );
    assert!(
        msg.contains("not installed under rebootOption NoReboot"),
        "{msg}"
    );
    assert!(!status.reboot_required, "{msg}");
}
