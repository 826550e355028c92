//! The dnf backend on real rpm roots built offline (rpmbuild, createrepo_c, modifyrepo_c with an
//! updateinfo): this machine's rpm and dnf run against each test root through the installroot
//! executor (`rpm --root`, `dnf --installroot`), exactly the argv the agent uses in production.
//! Scan verdicts are checked against hand-computed expectations under the predefined Rocky
//! Linux baseline (Security Critical/Important and Bugfix, 7 days after release), and an install
//! changes exactly the approved versions.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use support::reports::{message, patch};

use jiff::Timestamp;
use nodepatch::agent::backend::contract::NodeAgent;
use nodepatch::agent::host::HostRoot;
use nodepatch::agent::host::exec::InstallrootExecutor;
use nodepatch::agent::operation::{BaselineChoice, OperationRequest, run_operation};
use nodepatch::api::{Compliance, NodePatchReportStatus, Operation, OperationPhase, PatchState};
use support::rpmroots::{DNF_TOOLS, NOW, RpmRoot, require_tools};

fn agent(root: &RpmRoot) -> NodeAgent {
    NodeAgent {
        root: HostRoot::new(root.path()),
        executor: Arc::new(InstallrootExecutor::new(root.path())),
    }
}

fn operate(root: &RpmRoot, operation: Operation) -> NodePatchReportStatus {
    let now: Timestamp = NOW.parse().expect("now");
    let request = OperationRequest::new(operation, "test-run");
    run_operation(
        &agent(root),
        &request,
        &BaselineChoice::PredefinedForNode,
        &|| now,
    )
}

#[test]
fn scan_verdicts_match_the_predefined_rocky_baseline() {
    if !require_tools(
        "scan_verdicts_match_the_predefined_rocky_baseline",
        &DNF_TOOLS,
    ) {
        return;
    }
    let root = RpmRoot::rocky();
    let status = operate(&root, Operation::Scan);
    assert_eq!(
        status.operation.as_ref().map(|o| o.phase),
        Some(OperationPhase::Succeeded),
        "{}",
        message(&status)
    );
    assert_eq!(
        status.baseline.as_ref().map(|b| b.name.as_str()),
        Some("nodepatch-predefined-rocky")
    );
    assert_eq!(status.compliance, Compliance::NonCompliant);
    // Hand-computed: Critical/Important security and bugfix older than 7 days are approved
    // (np-crit, np-imp, np-fail, np-bug: Missing); Moderate (np-mod), enhancement (np-enh),
    // a Critical advisory updated 2 days ago (np-recent) and a package without updates
    // (np-other) are InstalledOther; np-done carries an applied Important advisory (Installed);
    // the advisory of the uninstalled np-new is not a candidate at all.
    assert_eq!(status.counts.missing, 4, "{:#?}", status.counts);
    assert_eq!(status.counts.installed, 1, "{:#?}", status.counts);
    assert_eq!(status.counts.installed_other, 4, "{:#?}", status.counts);
    assert_eq!(status.counts.failed, 0);
    assert_eq!(status.counts.not_applicable, 0);
    let mut names: Vec<&str> = status.patches.iter().map(|p| p.name.as_str()).collect();
    names.sort();
    assert_eq!(names, vec!["np-bug", "np-crit", "np-fail", "np-imp"]);
    let crit = patch(&status, "np-crit");
    assert_eq!(crit.state, PatchState::Missing);
    assert_eq!(crit.installed_version.as_deref(), Some("1.0-1"));
    assert_eq!(
        crit.available_version.as_deref(),
        Some("1.1-1"),
        "the advisory's version, not the newer 1.2-1 no advisory describes"
    );
    assert_eq!(crit.classification.as_deref(), Some("Security"));
    assert_eq!(crit.severity.as_deref(), Some("Critical"));
    assert_eq!(crit.advisory.as_deref(), Some("NPSA-2024:0001"));
    assert_eq!(crit.cves, vec!["CVE-2024-1001".to_string()]);
    assert_eq!(
        crit.release_date.as_ref().map(|t| t.0.to_string()),
        Some("2024-01-12T00:00:00Z".to_string()),
        "approveAfterDays counts from updated, not issued"
    );
    let imp = patch(&status, "np-imp");
    assert_eq!(imp.severity.as_deref(), Some("Important"));
    assert_eq!(
        imp.cves,
        vec!["CVE-2024-1002".to_string(), "CVE-2024-1003".to_string()]
    );
    assert_eq!(
        imp.release_date.as_ref().map(|t| t.0.to_string()),
        Some("2024-02-01T00:00:00Z".to_string()),
        "issued when there is no updated date"
    );
    let bug = patch(&status, "np-bug");
    assert_eq!(bug.classification.as_deref(), Some("Bugfix"));
    assert_eq!(bug.severity, None);
    assert_eq!(status.security_non_compliant, 3);
    assert_eq!(status.other_non_compliant, 1);
    assert!(!status.reboot_required, "nothing installed since boot");
    assert!(
        root.path()
            .join("var/lib/nodepatch/first-seen.json")
            .exists(),
        "first sightings recorded"
    );
    assert!(
        root.path().join("var/cache/dnf").is_dir(),
        "dnf's cache lives in the root"
    );
}

#[test]
fn install_changes_exactly_the_approved_set_and_a_reboot_advisory_requires_a_reboot() {
    let test = "install_changes_exactly_the_approved_set_and_a_reboot_advisory_requires_a_reboot";
    if !require_tools(test, &DNF_TOOLS) {
        return;
    }
    let root = RpmRoot::rocky();
    let before = root.versions();
    let status = operate(&root, Operation::Install);
    let after = root.versions();
    let changed: BTreeMap<&str, (&str, &str)> = after
        .iter()
        .filter(|(name, version)| before.get(*name) != Some(*version))
        .map(|(name, version)| {
            (
                name.as_str(),
                (
                    before.get(name).map(String::as_str).unwrap_or("-"),
                    version.as_str(),
                ),
            )
        })
        .collect();
    assert_eq!(
        changed,
        BTreeMap::from([
            ("np-bug", ("1.0-1", "1.1-1")),
            ("np-crit", ("1.0-1", "1.1-1")),
            ("np-imp", ("1.0-1", "1.1-1")),
        ]),
        "only the approved versions change: {}",
        message(&status)
    );
    assert_eq!(after.len(), before.len(), "nothing new installed");
    let operation = status.operation.as_ref().expect("operation");
    assert_eq!(
        operation.phase,
        OperationPhase::Failed,
        "np-fail cannot be installed: {}",
        message(&status)
    );
    let msg = message(&status);
    assert!(
        msg.starts_with("installed 3 of 4 approved updates"),
        "{msg}"
    );
    assert!(
        msg.contains("np-fail 1.1-1: dnf exited 0 without installing it")
            && msg.contains("nothing provides np-nonexistent"),
        "the failure names dnf's reason: {msg}"
    );
    assert_eq!(patch(&status, "np-fail").state, PatchState::Failed);
    // np-crit's advisory suggests a reboot and it was installed after the (injected) boot.
    assert!(status.reboot_required, "{msg}");
    assert_eq!(
        patch(&status, "np-crit").state,
        PatchState::InstalledPendingReboot
    );
    assert!(msg.contains("NPSA-2024:0001 suggests a reboot"), "{msg}");
    assert_eq!(status.counts.installed, 3, "{:#?}", status.counts);
    assert_eq!(status.counts.installed_pending_reboot, 1);
    assert_eq!(status.counts.failed, 1);
    assert_eq!(status.counts.missing, 0);
    assert!(status.last_install_time.is_none(), "a failed install");

    // A second install has nothing left that can be installed and changes nothing.
    let again = operate(&root, Operation::Install);
    assert_eq!(root.versions(), after);
    assert!(
        message(&again).starts_with("installed 0 of 1 approved updates"),
        "{}",
        message(&again)
    );
}

#[test]
fn a_root_without_an_rpm_database_is_a_failed_scan_not_a_compliant_node() {
    let test = "a_root_without_an_rpm_database_is_a_failed_scan_not_a_compliant_node";
    if !require_tools(test, &DNF_TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
    std::fs::write(
        dir.path().join("etc/os-release"),
        support::rpmroots::ROCKY_OS_RELEASE,
    )
    .expect("os-release");
    let agent = NodeAgent {
        root: HostRoot::new(dir.path()),
        executor: Arc::new(InstallrootExecutor::new(dir.path())),
    };
    let request = OperationRequest {
        refresh: false,
        ..OperationRequest::new(Operation::Scan, "")
    };
    let status = run_operation(
        &agent,
        &request,
        &BaselineChoice::PredefinedForNode,
        &Timestamp::now,
    );
    assert_eq!(status.compliance, Compliance::Unknown);
    let condition = status.conditions.first().expect("Ready condition");
    assert_eq!(
        condition.reason, "RpmDatabaseEmpty",
        "{}",
        condition.message
    );
    assert_eq!(
        status.operation.as_ref().map(|o| o.phase),
        Some(OperationPhase::Failed)
    );
}
