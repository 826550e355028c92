//! The apk backend from recorded-format fixture files (`tests/fixtures/apk/`, see its README:
//! a live Alpine root cannot be built offline here). The root is real files (the installed
//! database, the secdb, os-release); `apk` itself is stood in for by an executor that answers
//! `apk version -l '<'` from the fixture and applies `apk upgrade` to the installed database.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use nodepatch::agent::backend::contract::NodeAgent;
use nodepatch::agent::host::command::{CommandOutput, HostCommand, HostExecutor};
use nodepatch::agent::host::{HostError, HostRoot};
use nodepatch::agent::operation::{BaselineChoice, OperationRequest, run_operation};
use nodepatch::api::{Compliance, NodePatchReportStatus, Operation, OperationPhase, PatchState};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/apk")
        .join(name)
}

fn alpine_root(with_secdb: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    for d in ["etc/apk", "lib/apk/db", "var/lib/nodepatch/secdb"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::write(root.join("etc/apk/world"), "alpine-base\nmusl\n").expect("world");
    std::fs::copy(fixture("os-release"), root.join("etc/os-release")).expect("os-release");
    std::fs::copy(fixture("installed"), root.join("lib/apk/db/installed")).expect("installed");
    if with_secdb {
        std::fs::copy(
            fixture("secdb-main.json"),
            root.join("var/lib/nodepatch/secdb/main.json"),
        )
        .expect("secdb");
    }
    dir
}

/// Stands in for the host's apk: `apk version -l <` prints the fixture, `apk upgrade names…`
/// rewrites the installed database to the fixture's available versions, `apk update` succeeds.
struct FakeApk {
    root: PathBuf,
    calls: Mutex<Vec<Vec<String>>>,
}

fn ok(stdout: String) -> CommandOutput {
    CommandOutput {
        exit_code: Some(0),
        stdout,
        ..CommandOutput::default()
    }
}

impl HostExecutor for FakeApk {
    fn run(&self, command: &HostCommand) -> Result<CommandOutput, HostError> {
        self.calls.lock().expect("lock").push(command.argv.clone());
        let argv: Vec<&str> = command.argv.iter().map(String::as_str).collect();
        let listing = std::fs::read_to_string(fixture("version-l.txt")).expect("fixture");
        match argv.as_slice() {
            ["apk", "update"] => Ok(ok(String::new())),
            ["apk", "version", "-l", "<"] => Ok(ok(listing)),
            // What apk would do: each spec's upgrade, and (the fake's one dependency) musl's
            // upgrade pulls in a zlib upgrade.
            ["apk", "add", "--simulate", "--", specs @ ..] => {
                let mut lines = Vec::new();
                for spec in specs {
                    let (name, version) = spec.split_once('=').expect("name=version");
                    lines.push(format!("Upgrading {name} (old -> {version})"));
                    if name == "musl" {
                        lines.push("Upgrading zlib (1.3.1-r0 -> 1.3.1-r1)".to_string());
                    }
                }
                let n = lines.len();
                let text: String = lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("({}/{n}) {l}\n", i + 1))
                    .collect();
                Ok(ok(text))
            }
            // `apk add name=version…`: exactly those versions, each recorded in the world file
            // with its version as apk does.
            ["apk", "add", "--", specs @ ..] => {
                let db_path = self.root.join("lib/apk/db/installed");
                let mut db = std::fs::read_to_string(&db_path).expect("db");
                let world_path = self.root.join("etc/apk/world");
                let mut world = std::fs::read_to_string(&world_path).unwrap_or_default();
                for spec in specs {
                    let (name, version) = spec.split_once('=').expect("name=version");
                    let installed = listing.lines().skip(1).find_map(|line| {
                        let pkgver = line.split_whitespace().next()?;
                        let (n, old) = nodepatch::agent::backend::apk::split_name_version(pkgver)?;
                        (n == name).then(|| old.to_string())
                    });
                    let old = installed.expect("an installed package of the fixture");
                    db = db.replace(
                        &format!("P:{name}\nV:{old}\n"),
                        &format!("P:{name}\nV:{version}\n"),
                    );
                    world.push_str(&format!("{spec}\n"));
                }
                std::fs::write(&db_path, db).expect("write db");
                std::fs::write(&world_path, world).expect("write world");
                Ok(ok(format!("OK: added {}\n", specs.join(" "))))
            }
            _ => Err(HostError::InvalidCommand {
                argv: command.argv.clone(),
                reason: "not an apk command this fake knows",
            }),
        }
    }

    fn describe(&self) -> String {
        "fake apk".to_string()
    }
}

fn operate(root: &Path, operation: Operation) -> (NodePatchReportStatus, Vec<Vec<String>>) {
    operate_with(root, operation, &BaselineChoice::PredefinedForNode)
}

fn operate_with(
    root: &Path,
    operation: Operation,
    baseline: &BaselineChoice,
) -> (NodePatchReportStatus, Vec<Vec<String>>) {
    let fake = Arc::new(FakeApk {
        root: root.to_path_buf(),
        calls: Mutex::new(Vec::new()),
    });
    let agent = NodeAgent {
        root: HostRoot::new(root),
        executor: fake.clone(),
    };
    let now: Timestamp = "2024-09-01T00:00:00Z".parse().expect("now");
    let status = run_operation(
        &agent,
        &OperationRequest::new(operation, "test-run"),
        baseline,
        &|| now,
    );
    let calls = fake.calls.lock().expect("lock").clone();
    (status, calls)
}

#[test]
fn scan_marks_secdb_fixes_security_by_origin_and_counts_applied_fixes() {
    let root = alpine_root(true);
    let (status, _) = operate(root.path(), Operation::Scan);
    let message = status
        .operation
        .as_ref()
        .and_then(|o| o.message.clone())
        .unwrap_or_default();
    assert_eq!(
        status.operation.as_ref().map(|o| o.phase),
        Some(OperationPhase::Succeeded),
        "{message}"
    );
    assert_eq!(
        status.baseline.as_ref().map(|b| b.name.as_str()),
        Some("nodepatch-predefined-alpine")
    );
    assert_eq!(status.compliance, Compliance::NonCompliant);
    let mut missing: Vec<(&str, &str, Vec<String>)> = status
        .patches
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.available_version.as_deref().unwrap_or("-"),
                p.cves.clone(),
            )
        })
        .collect();
    missing.sort();
    assert_eq!(
        missing,
        vec![
            (
                "libcrypto3",
                "3.3.2-r0",
                // Every fix after the installed 3.3.1-r0 up to the candidate: 3.3.1-r1, 3.3.2-r0.
                vec!["CVE-2024-5535".to_string(), "CVE-2024-6119".to_string()]
            ),
            ("musl", "1.2.5-r1", vec!["CVE-2025-26519".to_string()]),
        ],
        "busybox's update fixes nothing in secdb; libcrypto3 gets openssl's fixes"
    );
    assert!(
        status
            .patches
            .iter()
            .all(|p| p.state == PatchState::Missing
                && p.classification.as_deref() == Some("Security"))
    );
    // busybox r29 and zlib contain secdb fixes already; linux-lts and the baselayout have none.
    assert_eq!(status.counts.installed, 2, "{:#?}", status.counts);
    assert_eq!(status.counts.installed_other, 2, "{:#?}", status.counts);
}

#[test]
fn install_upgrades_only_the_security_fixes_and_reads_the_database_back() {
    let root = alpine_root(true);
    let (status, calls) = operate(root.path(), Operation::Install);
    assert!(
        calls.contains(&vec![
            "apk".to_string(),
            "add".to_string(),
            "--".to_string(),
            "libcrypto3=3.3.2-r0".to_string(),
            "musl=1.2.5-r1".to_string()
        ]),
        "the approved versions exactly: {calls:?}"
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("etc/apk/world")).expect("world"),
        "alpine-base\nmusl\n",
        "the world file is put back (no name=version pins left)"
    );
    assert!(
        !calls.iter().flatten().any(|a| a == "busybox"),
        "busybox's update is not approved: {calls:?}"
    );
    assert_eq!(status.compliance, Compliance::Compliant, "{status:#?}");
    assert_eq!(status.counts.installed, 4);
    assert_eq!(
        status.operation.as_ref().map(|o| o.phase),
        Some(OperationPhase::Succeeded)
    );
    let db = std::fs::read_to_string(root.path().join("lib/apk/db/installed")).expect("db");
    assert!(db.contains("P:musl\nV:1.2.5-r1\n"), "{db}");
    assert!(db.contains("P:busybox\nV:1.36.1-r29\n"), "{db}");
}

#[test]
fn without_secdb_nothing_is_a_security_update_and_the_report_says_why() {
    let root = alpine_root(false);
    let (status, _) = operate(root.path(), Operation::Scan);
    assert_eq!(status.compliance, Compliance::Compliant);
    let message = status
        .operation
        .as_ref()
        .and_then(|o| o.message.clone())
        .unwrap_or_default();
    assert!(message.contains("no Alpine secdb"), "{message}");
}

#[test]
fn block_keeps_out_a_target_whose_install_would_bring_in_a_rejected_package() {
    use nodepatch::api::{
        ComplianceLevel, OperatingSystem, PatchBaselineSpec, RejectedPatchesAction,
    };
    let root = alpine_root(true);
    let spec = PatchBaselineSpec {
        operating_system: OperatingSystem::Alpine,
        default: false,
        description: None,
        global_filters: Vec::new(),
        approval_rules: Vec::new(),
        approved_patches: vec!["libcrypto3".into(), "musl".into()],
        approved_patches_compliance_level: ComplianceLevel::Critical,
        approved_patches_enable_non_security: true,
        rejected_patches: vec!["zlib*".into()],
        rejected_patches_action: RejectedPatchesAction::Block,
        sources: Vec::new(),
    };
    let baseline = BaselineChoice::Resolved(Box::new(
        nodepatch::baseline::ResolvedBaseline::resolve("block", &spec).expect("baseline"),
    ));
    let (status, calls) = operate_with(root.path(), Operation::Install, &baseline);
    let message = status
        .operation
        .as_ref()
        .and_then(|o| o.message.clone())
        .unwrap_or_default();
    let musl = status
        .patches
        .iter()
        .find(|p| p.name == "musl")
        .expect("musl reported");
    assert_eq!(musl.state, PatchState::Failed, "{message}");
    assert!(
        message.contains("would also install rejected zlib"),
        "{message}"
    );
    assert!(
        calls.contains(&vec![
            "apk".to_string(),
            "add".to_string(),
            "--".to_string(),
            "libcrypto3=3.3.2-r0".to_string()
        ]),
        "{calls:?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.len() > 2 && c[2] == "--" && c.iter().any(|a| a.starts_with("musl="))),
        "musl's install never ran: {calls:?}"
    );
    let db = std::fs::read_to_string(root.path().join("lib/apk/db/installed")).expect("db");
    assert!(db.contains("P:musl\nV:1.2.5-r0\n"), "{db}");
}
