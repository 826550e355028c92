//! Installs that survive the agent, on real Debian roots with the root's own apt and dpkg run
//! through chroot (the executor tests use; it detaches commands as production's nsenter does
//! without systemd: own session, output into files):
//! - the agent's process group is SIGKILLed in the middle of `dpkg --unpack` of a slow package
//!   (its preinst sleeps): dpkg still completes, and the next agent finds the node installed and
//!   Compliant, nothing half-configured;
//! - a SIGTERM mid-transaction: the agent waits for it and writes its report;
//! - an apt timeout is followed by `dpkg --configure -a`, and the report says so;
//! - an upgrade that Breaks an installed package (a "container runtime") is Failed with apt's
//!   reason instead of removing it (`--no-remove`).
//!
//! (The host's apt preferences under Block: tests/agent_apt_install.rs,
//! `block_install_keeps_the_host_preferences`.)
//!
//! The "agent" killed or stopped here is this test binary run again as a child process
//! (`helper_agent_install`, ignored otherwise), running the agent's own
//! `run_operation_through_sigterm`.

mod support;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use nodepatch::agent::backend::BackendSettings;
use nodepatch::agent::backend::apt::install::AptCommands;
use nodepatch::agent::backend::contract::NodeAgent;
use nodepatch::agent::cluster::{recover_interrupted_install, run_operation_through_sigterm};
use nodepatch::agent::host::HostRoot;
use nodepatch::agent::host::exec::ChrootExecutor;
use nodepatch::agent::operation::{BaselineChoice, OperationRequest, run_operation};
use nodepatch::api::{
    Compliance, ComplianceLevel, NodePatchReportStatus, OperatingSystem, Operation, OperationPhase,
    PatchBaselineSpec, PatchState, RejectedPatchesAction,
};
use nodepatch::baseline::ResolvedBaseline;
use support::reports::message;
use support::roots::{DebianRoot, TestPackage, TestSuite, build_repo};

/// Seconds the slow package's preinst sleeps on upgrade.
const SLOW_SECONDS: u32 = 6;
/// Written by the slow preinst when it starts (inside the root).
const PREINST_STARTED: &str = "tmp/np-slow-preinst-started";
const PREINST: &str =
    "if [ \"$1\" = upgrade ]; then touch /tmp/np-slow-preinst-started; sleep 6; fi";

const HELPER_ROOT_ENV: &str = "NODEPATCH_TEST_HELPER_ROOT";
const HELPER_REPORT_ENV: &str = "NODEPATCH_TEST_HELPER_REPORT";

/// The repository of these tests: `np-slow` (v2's preinst sleeps), `np-runtime` and `np-tool`
/// (v2 Breaks every np-runtime there is).
fn suites() -> Vec<TestSuite> {
    let v1 = |name| TestPackage::new(name, "1.0-1");
    let base = vec![v1("np-slow"), v1("np-runtime"), v1("np-tool")];
    let updates = vec![
        TestPackage {
            preinst: Some(PREINST),
            ..TestPackage::new("np-slow", "1.0-2")
        },
        TestPackage {
            breaks: Some("np-runtime (<< 2.0)"),
            ..TestPackage::new("np-tool", "1.0-2")
        },
    ];
    let suite = |dist, suite, packages| TestSuite {
        dist,
        origin: "Debian",
        label: "Debian",
        suite,
        codename: dist,
        version: "12",
        not_automatic: false,
        but_automatic_upgrades: false,
        packages,
    };
    vec![
        suite("bookworm", "oldstable", base),
        suite("bookworm-updates", "oldstable-updates", updates),
    ]
}

/// A minbase root with every v1 package of [`suites`] installed and both suites in its sources
/// (the repository is a few packages, built per test).
fn root(test: &str) -> Option<DebianRoot> {
    let root = DebianRoot::create(test)?;
    let repo = tempfile::tempdir().expect("tempdir");
    build_repo(repo.path(), &suites());
    root.add_repo(repo.path());
    root.set_sources(&["bookworm"]);
    root.apt_get(&["update"]);
    root.apt_get(&[
        "install",
        "-y",
        "--no-install-recommends",
        "np-slow=1.0-1",
        "np-runtime=1.0-1",
        "np-tool=1.0-1",
    ]);
    root.set_sources(&["bookworm", "bookworm-updates"]);
    root.apt_get(&["update"]);
    Some(root)
}

fn baseline(approved: &[&str]) -> BaselineChoice {
    let spec = PatchBaselineSpec {
        operating_system: OperatingSystem::Debian,
        default: false,
        description: None,
        global_filters: Vec::new(),
        approval_rules: Vec::new(),
        approved_patches: approved.iter().map(|s| s.to_string()).collect(),
        approved_patches_compliance_level: ComplianceLevel::Medium,
        approved_patches_enable_non_security: true,
        rejected_patches: Vec::new(),
        rejected_patches_action: RejectedPatchesAction::AllowAsDependency,
        sources: Vec::new(),
    };
    BaselineChoice::Resolved(Box::new(
        ResolvedBaseline::resolve("survives", &spec).expect("valid baseline"),
    ))
}

fn agent(root: &Path) -> NodeAgent {
    NodeAgent {
        root: HostRoot::new(root),
        executor: Arc::new(ChrootExecutor::new(root)),
    }
}

fn operate(
    root: &DebianRoot,
    operation: Operation,
    baseline: &BaselineChoice,
    backends: BackendSettings,
) -> NodePatchReportStatus {
    let mut request = OperationRequest::new(operation, "test-run");
    request.refresh = false;
    request.backends = backends;
    run_operation(&agent(root.path()), &request, baseline, &Timestamp::now)
}

fn patch_state(status: &NodePatchReportStatus, name: &str) -> Option<PatchState> {
    status
        .patches
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.state)
}

/// The agent for the tests that kill or stop it: installs the approved np-slow through
/// `run_operation_through_sigterm`, then writes `{"terminated": …, "status": …}`.
#[test]
#[ignore = "the agent process of the tests in this file (run by them, with its environment)"]
fn helper_agent_install() {
    let (Some(root), Some(report)) = (
        std::env::var_os(HELPER_ROOT_ENV),
        std::env::var_os(HELPER_REPORT_ENV),
    ) else {
        panic!("helper_agent_install runs only as the child of a test in this file");
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut request = OperationRequest::new(Operation::Install, "test-run");
    request.refresh = false;
    let (status, terminated) = runtime
        .block_on(run_operation_through_sigterm(
            agent(Path::new(&root)),
            request,
            baseline(&["np-slow"]),
        ))
        .expect("operation");
    let body = serde_json::json!({"terminated": terminated, "status": status});
    std::fs::write(report, body.to_string()).expect("write report");
}

/// Start [`helper_agent_install`] on `root` as the leader of its own process group.
fn start_agent(root: &Path, report: &Path, log: &Path) -> std::process::Child {
    let log = std::fs::File::create(log).expect("log");
    Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "helper_agent_install",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ROOT_ENV, root)
        .env(HELPER_REPORT_ENV, report)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("start the agent")
}

/// Wait until the slow preinst runs: dpkg is in the middle of `--unpack`.
fn wait_for_unpack(root: &DebianRoot, agent: &mut std::process::Child, log: &Path) {
    let marker = root.path().join(PREINST_STARTED);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !marker.exists() {
        if let Ok(Some(status)) = agent.try_wait() {
            panic!(
                "the agent exited ({status}) before the unpack: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "the slow preinst never started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn dpkg_audit(root: &DebianRoot) -> String {
    let out = root.chroot_output(&["dpkg", "--audit"]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn killing_the_agent_mid_unpack_leaves_dpkg_to_finish_and_the_next_agent_reports_installed() {
    let test =
        "killing_the_agent_mid_unpack_leaves_dpkg_to_finish_and_the_next_agent_reports_installed";
    let Some(root) = root(test) else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let (report, log) = (
        work.path().join("report.json"),
        work.path().join("agent.log"),
    );
    let mut agent_process = start_agent(root.path(), &report, &log);
    wait_for_unpack(&root, &mut agent_process, &log);
    // The agent's whole process group, as a container runtime kills a pod's processes.
    let pgid = agent_process.id() as i32;
    // SAFETY: kill(2) on the process group of the child we started.
    assert_eq!(unsafe { libc::kill(-pgid, libc::SIGKILL) }, 0);
    let _ = agent_process.wait();
    assert!(!report.exists(), "the agent was killed before its report");

    // dpkg goes on without the agent: np-slow 1.0-2 ends installed and configured.
    let deadline = Instant::now() + Duration::from_secs(u64::from(SLOW_SECONDS) + 60);
    loop {
        let status = root.dpkg_status("np-slow");
        let version = root.installed_version("np-slow");
        if status == "install ok installed" && version.as_deref() == Some("1.0-2") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dpkg did not complete after the agent was killed: np-slow is {status:?} at {version:?}; dpkg --audit: {}",
            dpkg_audit(&root)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The next agent: waits for the transaction's locks, repairs what is left (nothing), and
    // its scan reports the node as it is.
    let note = recover_interrupted_install(
        &HostRoot::new(root.path()),
        Arc::new(ChrootExecutor::new(root.path())),
        &BackendSettings::default(),
    );
    assert!(!note.contains("failed"), "{note}");
    assert_eq!(dpkg_audit(&root).trim(), "", "nothing is left half-done");
    let scan = operate(
        &root,
        Operation::Scan,
        &baseline(&["np-slow"]),
        BackendSettings::default(),
    );
    assert_eq!(
        scan.operation.as_ref().map(|o| o.phase),
        Some(OperationPhase::Succeeded),
        "{}",
        message(&scan)
    );
    assert_eq!(scan.compliance, Compliance::Compliant, "{}", message(&scan));
    assert_eq!(
        (
            scan.counts.installed,
            scan.counts.missing,
            scan.counts.failed
        ),
        (1, 0, 0),
        "np-slow counts as installed: {:#?}",
        scan.counts
    );
}

#[test]
fn sigterm_lets_the_transaction_finish_and_the_agent_reports() {
    let test = "sigterm_lets_the_transaction_finish_and_the_agent_reports";
    let Some(root) = root(test) else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let (report, log) = (
        work.path().join("report.json"),
        work.path().join("agent.log"),
    );
    let mut agent_process = start_agent(root.path(), &report, &log);
    wait_for_unpack(&root, &mut agent_process, &log);
    let signalled = Instant::now();
    // SAFETY: kill(2) on the child we started.
    assert_eq!(
        unsafe { libc::kill(agent_process.id() as i32, libc::SIGTERM) },
        0
    );
    let exit = agent_process.wait().expect("wait");
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        exit.success(),
        "the agent failed after SIGTERM ({exit}): {log_text}"
    );
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "the agent did not wait for the transaction: {log_text}"
    );
    // When the agent exits, the transaction is over and the report is written.
    assert_eq!(root.dpkg_status("np-slow"), "install ok installed");
    assert_eq!(root.installed_version("np-slow").as_deref(), Some("1.0-2"));
    let body: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("the agent's report"))
            .expect("json");
    assert_eq!(body["terminated"], true, "{body}");
    let status: NodePatchReportStatus =
        serde_json::from_value(body["status"].clone()).expect("status");
    assert_eq!(
        status.compliance,
        Compliance::Compliant,
        "{}",
        message(&status)
    );
    assert_eq!(
        (status.counts.installed, status.counts.failed),
        (1, 0),
        "{}",
        message(&status)
    );
    assert_eq!(
        status.operation.as_ref().map(|o| o.phase),
        Some(OperationPhase::Succeeded),
        "{}",
        message(&status)
    );
}

#[test]
fn an_apt_timeout_is_followed_by_the_dpkg_repair_and_says_so() {
    let test = "an_apt_timeout_is_followed_by_the_dpkg_repair_and_says_so";
    let Some(root) = root(test) else {
        return;
    };
    let backends = BackendSettings {
        apt: AptCommands {
            install_timeout: Duration::from_secs(2),
            ..AptCommands::default()
        },
    };
    let status = operate(&root, Operation::Install, &baseline(&["np-slow"]), backends);
    let msg = message(&status);
    assert_eq!(
        patch_state(&status, "np-slow"),
        Some(PatchState::Failed),
        "{msg}"
    );
    assert!(msg.contains("timed out"), "{msg}");
    assert!(
        msg.contains("dpkg --configure -a"),
        "the repair after the timeout is reported: {msg}"
    );
    // dpkg was repaired (or rolled back) right after the kill, not left for the next run.
    let audit = dpkg_audit(&root);
    assert!(
        !root.dpkg_status("np-slow").contains("half-configured"),
        "np-slow left half-configured: {audit}"
    );
}

#[test]
fn an_upgrade_that_breaks_an_installed_package_fails_instead_of_removing_it() {
    let test = "an_upgrade_that_breaks_an_installed_package_fails_instead_of_removing_it";
    let Some(root) = root(test) else {
        return;
    };
    let status = operate(
        &root,
        Operation::Install,
        &baseline(&["np-tool"]),
        BackendSettings::default(),
    );
    let msg = message(&status);
    assert_eq!(
        root.installed_version("np-runtime").as_deref(),
        Some("1.0-1"),
        "the runtime was removed: {msg}"
    );
    assert_eq!(root.installed_version("np-tool").as_deref(), Some("1.0-1"));
    assert_eq!(
        patch_state(&status, "np-tool"),
        Some(PatchState::Failed),
        "{msg}"
    );
    assert!(
        msg.contains("would remove np-runtime") && msg.contains("remove is disabled"),
        "apt's reason: {msg}"
    );
}
