//! Install and scan operations of the agent on real Debian roots (debootstrap minbase + a local
//! repository), with the root's own apt and dpkg run through chroot: only approved packages
//! change, a failing package is reported Failed while the others install, the reboot package
//! sets rebootRequired, an interrupted dpkg is repaired, Block and AllowAsDependency behave as
//! specified, and bad input fails cleanly.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use support::reports::message;

use jiff::Timestamp;
use nodepatch::agent::backend::contract::NodeAgent;
use nodepatch::agent::host::HostRoot;
use nodepatch::agent::host::command::CommandOutput;
use nodepatch::agent::host::exec::ChrootExecutor;
use nodepatch::agent::host::scripted::ScriptedExecutor;
use nodepatch::agent::operation::{BaselineChoice, OperationRequest, run_operation};
use nodepatch::agent::state::{FIRST_SEEN_PATH, FirstSeen, LastOperation};
use nodepatch::api::{
    ApprovalRule, Compliance, ComplianceLevel, NodePatchReportStatus, OperatingSystem, Operation,
    OperationPhase, PatchBaselineSpec, PatchFilter, PatchFilterKey, PatchState,
    RejectedPatchesAction,
};
use nodepatch::baseline::ResolvedBaseline;
use support::roots::DebianRoot;

const ALL_SUITES: [&str; 3] = ["bookworm", "bookworm-security", "bookworm-updates"];

fn spec() -> PatchBaselineSpec {
    PatchBaselineSpec {
        operating_system: OperatingSystem::Debian,
        default: false,
        description: None,
        global_filters: Vec::new(),
        approval_rules: Vec::new(),
        approved_patches: Vec::new(),
        approved_patches_compliance_level: ComplianceLevel::Medium,
        // The fixture's updates are mostly in bookworm-updates: approvedPatches reach them only
        // with approvedPatchesEnableNonSecurity (honoured on apt since issue #20).
        approved_patches_enable_non_security: true,
        rejected_patches: Vec::new(),
        rejected_patches_action: RejectedPatchesAction::AllowAsDependency,
        sources: Vec::new(),
    }
}

fn resolved(spec: &PatchBaselineSpec) -> BaselineChoice {
    BaselineChoice::Resolved(Box::new(
        ResolvedBaseline::resolve("test-baseline", spec).expect("valid baseline"),
    ))
}

fn agent(root: &DebianRoot) -> NodeAgent {
    NodeAgent {
        root: HostRoot::new(root.path()),
        executor: Arc::new(ChrootExecutor::new(root.path())),
    }
}

fn operate(
    root: &DebianRoot,
    operation: Operation,
    baseline: &BaselineChoice,
) -> NodePatchReportStatus {
    let request = OperationRequest::new(operation, "test-run");
    run_operation(&agent(root), &request, baseline, &Timestamp::now)
}

fn versions(root: &DebianRoot) -> BTreeMap<String, String> {
    let out = root.chroot(&[
        "dpkg-query",
        "-W",
        "-f=${Package}\t${Version}\t${db:Status-Abbrev}\n",
    ]);
    out.lines()
        .filter_map(|l| {
            let mut parts = l.split('\t');
            Some((
                parts.next()?.to_string(),
                format!("{} {}", parts.next()?, parts.next()?.trim()),
            ))
        })
        .collect()
}

fn patch_state(status: &NodePatchReportStatus, name: &str) -> Option<PatchState> {
    status
        .patches
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.state)
}

#[test]
fn install_changes_only_approved_packages_and_isolates_the_failing_one() {
    let test = "install_changes_only_approved_packages_and_isolates_the_failing_one";
    let Some(root) = DebianRoot::with_standard_repo(test, &ALL_SUITES) else {
        return;
    };
    root.hold("np-held");
    // A local edit of np-conf's conffile must survive its upgrade (--force-confold).
    std::fs::write(root.path().join("etc/np-conf.conf"), "setting=local\n").expect("edit conffile");
    let mut baseline = spec();
    baseline.approved_patches = [
        "np-sec",
        "np-bugfix",
        "np-reboot",
        "np-fail",
        "np-badpre",
        "np-conf",
        "np-held",
    ]
    .map(String::from)
    .to_vec();
    let baseline = resolved(&baseline);

    let scan = operate(&root, Operation::Scan, &baseline);
    assert_eq!(
        scan.operation.as_ref().map(|o| o.phase),
        Some(OperationPhase::Succeeded),
        "{}",
        message(&scan)
    );
    assert_eq!(scan.compliance, Compliance::NonCompliant);
    assert_eq!(
        scan.counts.missing, 7,
        "a held package's approved update is missing too: {:#?}",
        scan.patches
    );
    assert!(
        message(&scan).contains("held back (dpkg hold): np-held 1.0-2"),
        "{}",
        message(&scan)
    );

    let before = versions(&root);
    let status = operate(&root, Operation::Install, &baseline);
    eprintln!("install message: {}", message(&status));
    let after = versions(&root);
    let changed: Vec<&str> = after
        .iter()
        .filter(|(n, v)| before.get(*n) != Some(v))
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        changed,
        vec!["np-bugfix", "np-conf", "np-fail", "np-reboot", "np-sec"],
        "only approved packages change"
    );
    assert_eq!(
        root.installed_version("np-badpre").as_deref(),
        Some("1.0-1"),
        "its preinst refused the upgrade"
    );
    assert_eq!(
        root.installed_version("np-sec").as_deref(),
        Some("1.0-1+deb12u1")
    );
    assert_eq!(
        root.installed_version("np-bugfix").as_deref(),
        Some("1.0-2")
    );
    assert_eq!(
        root.installed_version("np-reboot").as_deref(),
        Some("1.0-1+deb12u1")
    );
    assert_eq!(root.installed_version("np-conf").as_deref(), Some("1.0-2"));
    assert_eq!(
        std::fs::read_to_string(root.path().join("etc/np-conf.conf")).expect("conffile"),
        "setting=local\n"
    );
    assert_eq!(
        root.installed_version("np-fail"),
        None,
        "np-fail's postinst fails: {}",
        root.dpkg_status("np-fail")
    );
    for untouched in ["np-held", "np-lib", "np-app", "np-arch"] {
        assert_eq!(
            root.installed_version(untouched).as_deref(),
            Some("1.0-1"),
            "{untouched} is not approved or held"
        );
    }

    let op = status.operation.as_ref().expect("operation");
    assert_eq!(
        op.phase,
        OperationPhase::Failed,
        "one package failed: {}",
        message(&status)
    );
    assert!(
        message(&status).contains("installed 4 of 6 approved updates"),
        "{}",
        message(&status)
    );
    assert!(message(&status).contains("np-fail"), "{}", message(&status));
    assert_eq!(
        patch_state(&status, "np-fail"),
        Some(PatchState::Failed),
        "{:#?}",
        status.patches
    );
    assert_eq!(
        patch_state(&status, "np-badpre"),
        Some(PatchState::Failed),
        "{:#?}",
        status.patches
    );
    assert_eq!(status.counts.failed, 2);
    assert!(
        status.reboot_required,
        "np-reboot's postinst wrote /run/reboot-required"
    );
    assert_eq!(
        patch_state(&status, "np-reboot"),
        Some(PatchState::InstalledPendingReboot)
    );
    assert_eq!(
        status.counts.installed, 3,
        "np-sec, np-bugfix, np-conf: {:#?}",
        status.counts
    );
    assert_eq!(
        patch_state(&status, "np-held"),
        Some(PatchState::Missing),
        "held: approved, never installed"
    );
    assert!(
        message(&status).contains("held (dpkg hold), not installed: np-held 1.0-2"),
        "{}",
        message(&status)
    );
    assert!(
        status.last_install_time.is_none(),
        "not a successful install"
    );
    assert!(status.last_scan_time.is_some());
    assert_eq!(status.compliance, Compliance::NonCompliant);

    // The record a restarted agent reads: the install of this run is done, np-fail failed.
    let last = LastOperation::load(&HostRoot::new(root.path()))
        .expect("state")
        .expect("recorded");
    assert!(last.install_done_for("test-run"));
    let mut failed: Vec<&str> = last.failed.iter().map(|r| r.name.as_str()).collect();
    failed.sort();
    assert_eq!(failed, vec!["np-badpre", "np-fail"]);
    // First sightings are recorded under the host root.
    let seen = FirstSeen::load(&HostRoot::new(root.path())).expect("first-seen");
    assert!(
        seen.first_seen("np-sec:all=1.0-1+deb12u1").is_some(),
        "{FIRST_SEEN_PATH}: {seen:?}"
    );
}

#[test]
fn interrupted_dpkg_is_repaired_before_installing() {
    let test = "interrupted_dpkg_is_repaired_before_installing";
    let Some(root) = DebianRoot::with_standard_repo(test, &ALL_SUITES) else {
        return;
    };
    // Unpack without configuring: what a dpkg killed mid-transaction leaves behind.
    root.chroot(&[
        "dpkg",
        "--unpack",
        "/srv/repo/pool/bookworm-updates/np-bugfix_1.0-2_all.deb",
    ]);
    assert!(
        root.dpkg_status("np-bugfix").ends_with("unpacked"),
        "{}",
        root.dpkg_status("np-bugfix")
    );
    let scan = operate(&root, Operation::Scan, &BaselineChoice::PredefinedForNode);
    assert!(
        message(&scan).contains("dpkg was interrupted"),
        "{}",
        message(&scan)
    );
    let status = operate(
        &root,
        Operation::Install,
        &BaselineChoice::PredefinedForNode,
    );
    assert!(
        message(&status).contains("repaired an interrupted dpkg"),
        "{}",
        message(&status)
    );
    assert_eq!(
        root.installed_version("np-bugfix").as_deref(),
        Some("1.0-2"),
        "configured by the repair"
    );
    // The predefined Debian baseline approves security updates only.
    assert_eq!(
        root.installed_version("np-sec").as_deref(),
        Some("1.0-1+deb12u1")
    );
    assert_eq!(
        root.installed_version("np-arch").as_deref(),
        Some("1.0-1+deb12u1")
    );
    assert_eq!(
        root.installed_version("np-reboot").as_deref(),
        Some("1.0-1+deb12u1")
    );
    assert_eq!(
        root.installed_version("np-fail").as_deref(),
        Some("1.0-1"),
        "non-security update not approved"
    );
    assert_eq!(
        status.operation.as_ref().map(|o| o.phase),
        Some(OperationPhase::Succeeded),
        "{}",
        message(&status)
    );
    assert!(status.last_install_time.is_some());
    assert!(status.reboot_required);
}

fn app_and_rejected_lib(action: RejectedPatchesAction) -> BaselineChoice {
    let mut baseline = spec();
    baseline.approved_patches = vec!["np-app".into()];
    baseline.rejected_patches = vec!["np-lib".into()];
    baseline.rejected_patches_action = action;
    resolved(&baseline)
}

#[test]
fn allow_as_dependency_installs_a_rejected_dependency() {
    let test = "allow_as_dependency_installs_a_rejected_dependency";
    let Some(root) = DebianRoot::with_standard_repo(test, &ALL_SUITES) else {
        return;
    };
    let status = operate(
        &root,
        Operation::Install,
        &app_and_rejected_lib(RejectedPatchesAction::AllowAsDependency),
    );
    assert_eq!(
        root.installed_version("np-app").as_deref(),
        Some("2.0-1"),
        "{}",
        message(&status)
    );
    assert_eq!(
        root.installed_version("np-lib").as_deref(),
        Some("2.0-1"),
        "pulled in as a dependency"
    );
    assert_eq!(
        status.operation.as_ref().map(|o| o.phase),
        Some(OperationPhase::Succeeded),
        "{}",
        message(&status)
    );
    assert_eq!(
        status.compliance,
        Compliance::Compliant,
        "{:#?}",
        status.patches
    );
    assert!(status.counts.installed >= 1);
    assert!(
        patch_state(&status, "np-lib").is_none(),
        "np-lib is InstalledOther, which is compliant"
    );
}

#[test]
fn block_never_installs_a_rejected_package_nor_what_needs_it() {
    let test = "block_never_installs_a_rejected_package_nor_what_needs_it";
    let Some(root) = DebianRoot::with_standard_repo(test, &ALL_SUITES) else {
        return;
    };
    let status = operate(
        &root,
        Operation::Install,
        &app_and_rejected_lib(RejectedPatchesAction::Block),
    );
    assert_eq!(
        root.installed_version("np-lib").as_deref(),
        Some("1.0-1"),
        "{}",
        message(&status)
    );
    assert_eq!(
        root.installed_version("np-app").as_deref(),
        Some("1.0-1"),
        "np-app 2.0-1 needs the rejected np-lib 2.0-1"
    );
    assert!(
        message(&status).contains("needs rejected np-lib"),
        "{}",
        message(&status)
    );
    assert_eq!(
        patch_state(&status, "np-lib"),
        Some(PatchState::InstalledRejected),
        "{:#?}",
        status.patches
    );
    // SSM: "the package being updated is reported as MISSING for SCAN operations and as FAILED
    // for INSTALL operations" (it was InstalledOther before issue #20).
    assert_eq!(
        patch_state(&status, "np-app"),
        Some(PatchState::Failed),
        "{:#?}",
        status.patches
    );
    let scan = operate(
        &root,
        Operation::Scan,
        &app_and_rejected_lib(RejectedPatchesAction::Block),
    );
    assert_eq!(
        patch_state(&scan, "np-app"),
        Some(PatchState::Missing),
        "{:#?}",
        scan.patches
    );
    assert_eq!(status.compliance, Compliance::NonCompliant);
    assert!(
        !root.path().join("run/nodepatch/rejected.pref").exists(),
        "the temporary apt preferences file is removed"
    );
}

/// The temporary preferences file of a Block install replaces /etc/apt/preferences for that
/// apt run: it must carry the host's pins. Here the host forbids np-lib 2.0-1, which np-app
/// 2.0-1 needs, so apt cannot install np-app 2.0-1 even though the baseline approves it.
#[test]
fn block_install_keeps_the_host_preferences() {
    let test = "block_install_keeps_the_host_preferences";
    let Some(root) = DebianRoot::with_standard_repo(test, &ALL_SUITES) else {
        return;
    };
    std::fs::write(
        root.path().join("etc/apt/preferences"),
        "Package: np-lib\nPin: version 2.0-1\nPin-Priority: -1\n",
    )
    .expect("host preferences");
    let mut baseline = spec();
    baseline.approved_patches = vec!["np-app".into(), "np-bugfix".into()];
    baseline.rejected_patches = vec!["np-held".into()];
    baseline.rejected_patches_action = RejectedPatchesAction::Block;
    let status = operate(&root, Operation::Install, &resolved(&baseline));
    assert_eq!(
        root.installed_version("np-bugfix").as_deref(),
        Some("1.0-2"),
        "{}",
        message(&status)
    );
    assert_eq!(
        root.installed_version("np-lib").as_deref(),
        Some("1.0-1"),
        "the host's pin forbids np-lib 2.0-1: {}",
        message(&status)
    );
    assert_eq!(root.installed_version("np-app").as_deref(), Some("1.0-1"));
    assert_eq!(
        std::fs::read_to_string(root.path().join("etc/apt/preferences")).expect("read"),
        "Package: np-lib\nPin: version 2.0-1\nPin-Priority: -1\n",
        "the host's file is untouched"
    );
}

#[test]
fn approve_after_days_counts_from_the_first_sighting() {
    let test = "approve_after_days_counts_from_the_first_sighting";
    let Some(root) = DebianRoot::with_standard_repo(test, &ALL_SUITES) else {
        return;
    };
    let mut baseline = spec();
    baseline.approval_rules = vec![ApprovalRule {
        filters: vec![PatchFilter {
            key: PatchFilterKey::Name,
            values: vec!["np-*".into()],
        }],
        approve_after_days: Some(7),
        approve_until_date: None,
        compliance_level: ComplianceLevel::High,
        enable_non_security: true,
    }];
    let baseline = resolved(&baseline);
    let agent = agent(&root);
    let day0: Timestamp = "2026-03-01T12:00:00Z".parse().expect("ts");
    let day8: Timestamp = "2026-03-09T12:00:00Z".parse().expect("ts");
    let mut request = OperationRequest::new(Operation::Scan, "");
    request.refresh = false;
    let first = run_operation(&agent, &request, &baseline, &|| day0);
    assert_eq!(
        first.compliance,
        Compliance::Compliant,
        "nothing approved on the first day: {:#?}",
        first.patches
    );
    let later = run_operation(&agent, &request, &baseline, &|| day8);
    assert_eq!(later.compliance, Compliance::NonCompliant);
    let sec = later
        .patches
        .iter()
        .find(|p| p.name == "np-sec")
        .expect("np-sec missing after 7 days");
    assert_eq!(
        sec.release_date.as_ref().map(|t| t.0),
        Some(day0),
        "release date = first sighting"
    );
}

#[test]
fn malformed_baseline_name_is_refused_before_any_command() {
    let mut baseline = spec();
    baseline.approved_patches = vec!["np-sec".into(), "-oAPT::Get::Trivial-Only=1".into()];
    let err = ResolvedBaseline::resolve("bad", &baseline).expect_err("refused");
    assert!(err.to_string().contains("approvedPatches[1]"), "{err}");
    // The CLI refuses it too (exit 2) before touching the root: see tests/agent_scan_cli.rs.
}

#[test]
fn missing_or_corrupt_dpkg_status_is_a_failed_report_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
    std::fs::write(
        dir.path().join("etc/os-release"),
        "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
    )
    .expect("os-release");
    // Commands are scripted: the scan must not depend on any.
    let scripted = ScriptedExecutor::new();
    let agent = NodeAgent {
        root: HostRoot::new(dir.path()),
        executor: Arc::new(scripted.clone()),
    };
    let mut request = OperationRequest::new(Operation::Scan, "");
    request.refresh = false;
    let missing = run_operation(
        &agent,
        &request,
        &BaselineChoice::PredefinedForNode,
        &Timestamp::now,
    );
    assert_eq!(
        missing.operation.as_ref().map(|o| o.phase),
        Some(OperationPhase::Failed)
    );
    assert_eq!(missing.compliance, Compliance::Unknown);
    assert!(
        message(&missing).contains("/var/lib/dpkg/status is missing"),
        "{}",
        message(&missing)
    );
    assert_eq!(missing.conditions[0].reason, "DpkgStatusMissing");

    std::fs::create_dir_all(dir.path().join("var/lib/dpkg")).expect("mkdir");
    std::fs::write(
        dir.path().join("var/lib/dpkg/status"),
        "Package: dpkg\nStatus: install ok installed\nVersion: 1\n\nthis line is garbage\n",
    )
    .expect("status");
    let corrupt = run_operation(
        &agent,
        &request,
        &BaselineChoice::PredefinedForNode,
        &Timestamp::now,
    );
    assert_eq!(
        corrupt.operation.as_ref().map(|o| o.phase),
        Some(OperationPhase::Failed)
    );
    assert!(
        message(&corrupt).contains("line 5"),
        "{}",
        message(&corrupt)
    );
    assert_eq!(corrupt.conditions[0].reason, "DpkgStatusCorrupt");
    assert!(
        scripted.calls().is_empty(),
        "no command ran: {:?}",
        scripted.calls()
    );

    // Install: dpkg --audit cannot even start → Failed report naming it.
    let install = run_operation(
        &agent,
        &OperationRequest::new(Operation::Install, "r"),
        &BaselineChoice::PredefinedForNode,
        &Timestamp::now,
    );
    assert_eq!(
        install.operation.as_ref().map(|o| o.phase),
        Some(OperationPhase::Failed)
    );
    assert!(
        message(&install).contains("cannot check dpkg"),
        "{}",
        message(&install)
    );
}

#[test]
fn failed_refresh_is_reported_and_the_scan_uses_the_existing_lists() {
    let test = "failed_refresh_is_reported_and_the_scan_uses_the_existing_lists";
    let Some(root) = DebianRoot::with_standard_repo(test, &ALL_SUITES) else {
        return;
    };
    let failing_update = CommandOutput {
        exit_code: Some(100),
        stderr: "E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  Could not resolve host".into(),
        ..CommandOutput::default()
    };
    let scripted = ScriptedExecutor::new().on(&["apt-get", "update"], failing_update);
    let agent = NodeAgent {
        root: HostRoot::new(root.path()),
        executor: Arc::new(scripted),
    };
    let status = run_operation(
        &agent,
        &OperationRequest::new(Operation::Scan, ""),
        &BaselineChoice::PredefinedForNode,
        &Timestamp::now,
    );
    assert_eq!(
        status.operation.as_ref().map(|o| o.phase),
        Some(OperationPhase::Succeeded)
    );
    assert!(
        message(&status).contains("apt-get update failed"),
        "{}",
        message(&status)
    );
    assert!(
        message(&status).contains("Could not resolve host"),
        "{}",
        message(&status)
    );
    assert_eq!(
        status.counts.missing, 3,
        "np-sec, np-arch, np-reboot from the security suite: {:#?}",
        status.patches
    );
}

#[test]
fn immutable_os_is_not_applicable() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
    std::fs::write(dir.path().join("etc/os-release"), "NAME=Bottlerocket\nID=bottlerocket\nVERSION_ID=1.20.0\nPRETTY_NAME=\"Bottlerocket OS 1.20.0\"\n")
        .expect("os-release");
    let scripted = ScriptedExecutor::new();
    let agent = NodeAgent {
        root: HostRoot::new(dir.path()),
        executor: Arc::new(scripted.clone()),
    };
    let status = run_operation(
        &agent,
        &OperationRequest::new(Operation::Install, "r"),
        &BaselineChoice::PredefinedForNode,
        &Timestamp::now,
    );
    assert_eq!(status.compliance, Compliance::NotApplicable);
    assert_eq!(
        status.os.as_ref().map(|o| o.version_id.as_str()),
        Some("1.20.0")
    );
    assert_eq!(
        status.operation.as_ref().map(|o| o.phase),
        Some(OperationPhase::Succeeded)
    );
    assert!(
        scripted.calls().is_empty(),
        "never runs a package manager there"
    );
}
