//! A baseline's alternative patch sources (`spec.sources`) on real rpm roots with this machine's
//! dnf (installroot executor): the root's own `/etc/yum.repos.d` names only an empty
//! repository; the source is a `.repo` text naming the fixture repository, which the root has
//! not configured. The scan reports that repository's versions and advisories (read from the
//! private cache), the install installs from it, and the root's repository files and dnf cache
//! are byte-identical afterwards. Text the agent does not accept, a cache never refreshed for
//! the sources and a repository that cannot be fetched fail the operation.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use jiff::Timestamp;
use nodepatch::agent::backend::contract::NodeAgent;
use nodepatch::agent::backend::sources::{DNF_CACHE_DIR, DNF_REPO_FILE};
use nodepatch::agent::host::HostRoot;
use nodepatch::agent::host::exec::InstallrootExecutor;
use nodepatch::agent::operation::{BaselineChoice, OperationRequest, run_operation};
use nodepatch::api::{
    Compliance, ComplianceLevel, NodePatchReportStatus, OperatingSystem, Operation, OperationPhase,
    PatchBaselineSpec, PatchSource, PatchState, RejectedPatchesAction,
};
use nodepatch::baseline::ResolvedBaseline;
use support::reports::{message, patch, ready_reason};
use support::roots::run;
use support::rpmroots::{DNF_TOOLS, NOW, RpmRoot, fixture, require_tools};

fn spec(sources: Vec<PatchSource>) -> PatchBaselineSpec {
    PatchBaselineSpec {
        operating_system: OperatingSystem::Rocky,
        default: false,
        description: None,
        global_filters: Vec::new(),
        approval_rules: Vec::new(),
        approved_patches: vec!["np-crit".into(), "np-bug".into()],
        approved_patches_compliance_level: ComplianceLevel::Medium,
        approved_patches_enable_non_security: false,
        rejected_patches: Vec::new(),
        rejected_patches_action: RejectedPatchesAction::AllowAsDependency,
        sources,
    }
}

fn mirror(products: &[&str], configuration: &str) -> PatchSource {
    PatchSource {
        name: "mirror".into(),
        products: products.iter().map(|p| p.to_string()).collect(),
        configuration: configuration.into(),
    }
}

/// The source text: the fixture repository under an id the root does not have.
fn mirror_repo() -> String {
    format!(
        "# the internal mirror\n[mirror]\nname=internal mirror\nbaseurl=file://{}\ngpgcheck=0\nenabled=1\n",
        fixture().repo.display()
    )
}

fn resolved(spec: &PatchBaselineSpec) -> BaselineChoice {
    BaselineChoice::Resolved(Box::new(
        ResolvedBaseline::resolve("sources-baseline", spec).expect("valid baseline"),
    ))
}

fn operate(
    root: &RpmRoot,
    operation: Operation,
    baseline: &BaselineChoice,
    refresh: bool,
) -> NodePatchReportStatus {
    let agent = NodeAgent {
        root: HostRoot::new(root.path()),
        executor: Arc::new(InstallrootExecutor::new(root.path())),
    };
    let now: Timestamp = NOW.parse().expect("now");
    let mut request = OperationRequest::new(operation, "sources-run");
    request.refresh = refresh;
    run_operation(&agent, &request, baseline, &|| now)
}

/// The paths whose content differs between two [`dnf_state`]s (readable failures).
fn changed_paths(a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    a.keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// Every file (path → bytes) under the root's repository configuration and dnf cache.
fn dnf_state(root: &Path) -> BTreeMap<String, Vec<u8>> {
    support::files_under(root, &["etc/yum.repos.d", "var/cache/dnf"])
}

/// A Rocky 9 root whose only configured repository (`np`) is empty: without sources nothing
/// newer is offered.
fn root_with_unconfigured_mirror() -> RpmRoot {
    let root = RpmRoot::rocky();
    let empty = root.path().join("srv/empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    run(Command::new("createrepo_c").arg("--quiet").arg(&empty));
    std::fs::write(
        root.path().join("etc/yum.repos.d/np.repo"),
        "[np]\nname=the node's own (empty) repository\nbaseurl=file:///srv/empty\ngpgcheck=0\nenabled=1\n"
            .replace("file:///srv/empty", &format!("file://{}", empty.display())),
    )
    .expect("repo file");
    root
}

#[test]
fn scan_and_install_use_the_dnf_sources_and_leave_the_node_configuration_alone() {
    let test = "scan_and_install_use_the_dnf_sources_and_leave_the_node_configuration_alone";
    if !require_tools(test, &DNF_TOOLS) {
        return;
    }
    let root = root_with_unconfigured_mirror();
    // Without sources: the node's repository offers nothing newer.
    let plain = operate(&root, Operation::Scan, &resolved(&spec(Vec::new())), true);
    assert_eq!(
        plain.compliance,
        Compliance::Compliant,
        "{}",
        message(&plain)
    );
    let before = dnf_state(root.path());
    assert!(
        before.keys().any(|k| k.starts_with("var/cache/dnf/np-")),
        "the node's own cache exists: {:?}",
        before.keys().collect::<Vec<_>>()
    );
    let versions_before = root.versions();

    let with_sources = resolved(&spec(vec![mirror(&["RockyLinux9"], &mirror_repo())]));
    let scan = operate(&root, Operation::Scan, &with_sources, true);
    assert_eq!(
        scan.operation.as_ref().map(|o| o.phase),
        Some(OperationPhase::Succeeded),
        "{}",
        message(&scan)
    );
    assert!(
        message(&scan).contains("used the baseline's patch sources mirror"),
        "{}",
        message(&scan)
    );
    assert_eq!(scan.compliance, Compliance::NonCompliant);
    let crit = patch(&scan, "np-crit");
    assert_eq!(crit.state, PatchState::Missing);
    assert_eq!(crit.available_version.as_deref(), Some("1.1-1"));
    // The advisory comes from the mirror's updateinfo in the private cache.
    assert_eq!(crit.advisory.as_deref(), Some("NPSA-2024:0001"));
    assert_eq!(crit.severity.as_deref(), Some("Critical"));
    assert_eq!(patch(&scan, "np-bug").state, PatchState::Missing);
    assert_eq!(
        std::fs::read_to_string(root.path().join(DNF_REPO_FILE.trim_start_matches('/')))
            .expect("private repo file")
            .matches("[mirror]")
            .count(),
        1
    );
    assert!(
        std::fs::read_dir(root.path().join(DNF_CACHE_DIR.trim_start_matches('/')))
            .expect("private cache")
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("mirror-")),
        "the mirror's metadata is in the private cache, inside the root"
    );
    assert!(
        !Path::new("/var/lib/nodepatch/dnf-sources").exists(),
        "nothing written outside the test root"
    );

    let install = operate(&root, Operation::Install, &with_sources, true);
    let after = root.versions();
    let changed: BTreeMap<&str, (&str, &str)> = after
        .iter()
        .filter(|(name, version)| versions_before.get(*name) != Some(*version))
        .map(|(name, version)| {
            (
                name.as_str(),
                (
                    versions_before.get(name).map(String::as_str).unwrap_or("-"),
                    version.as_str(),
                ),
            )
        })
        .collect();
    assert_eq!(
        changed,
        BTreeMap::from([
            ("np-bug", ("1.0-1", "1.1-1")),
            ("np-crit", ("1.0-1", "1.1-1"))
        ]),
        "the approved versions are installed from the mirror: {}",
        message(&install)
    );
    assert_eq!(
        install.operation.as_ref().map(|o| o.phase),
        Some(OperationPhase::Succeeded),
        "{}",
        message(&install)
    );

    // The node's repository files and dnf cache are exactly as before, and its own dnf still
    // sees only its own (empty) repository.
    assert_eq!(
        changed_paths(&dnf_state(root.path()), &before),
        Vec::<String>::new()
    );
    let own = operate(&root, Operation::Scan, &resolved(&spec(Vec::new())), false);
    assert_eq!(own.compliance, Compliance::Compliant, "{}", message(&own));
}

#[test]
fn refused_dnf_source_text_a_cache_never_refreshed_and_an_unreachable_source_fail() {
    let test = "refused_dnf_source_text_a_cache_never_refreshed_and_an_unreachable_source_fail";
    if !require_tools(test, &DNF_TOOLS) {
        return;
    }
    let root = root_with_unconfigured_mirror();
    let before = dnf_state(root.path());
    let versions = root.versions();
    // What admission refuses, handed to the agent directly: nothing is written or run.
    let bad = resolved(&spec(vec![mirror(
        &["*"],
        &format!("{}sslclientkey=/root/key\n", mirror_repo()),
    )]));
    let status = operate(&root, Operation::Install, &bad, true);
    assert_eq!(status.compliance, Compliance::Unknown);
    assert_eq!(
        status.operation.as_ref().map(|o| o.phase),
        Some(OperationPhase::Failed)
    );
    assert_eq!(ready_reason(&status), "PatchSourceInvalid");
    let msg = message(&status);
    assert!(
        msg.contains("\"mirror\" line 7") && msg.contains("sslclientkey"),
        "{msg}"
    );
    assert!(!root.path().join("var/lib/nodepatch/dnf-sources").exists());
    assert_eq!(root.versions(), versions);

    // Valid sources whose cache no refresh ever filled: never a Compliant verdict.
    let good = resolved(&spec(vec![mirror(&["*"], &mirror_repo())]));
    let stale = operate(&root, Operation::Scan, &good, false);
    assert_eq!(stale.compliance, Compliance::Unknown, "{}", message(&stale));
    assert_eq!(ready_reason(&stale), "PatchSourceUnavailable");

    // A source that cannot be fetched fails the scan rather than reading an old cache.
    let refreshed = operate(&root, Operation::Scan, &good, true);
    assert_eq!(
        refreshed.compliance,
        Compliance::NonCompliant,
        "{}",
        message(&refreshed)
    );
    let gone = resolved(&spec(vec![mirror(
        &["*"],
        "[mirror]\nbaseurl=file:///nonexistent/nodepatch-mirror\ngpgcheck=0\n",
    )]));
    let failed = operate(&root, Operation::Scan, &gone, true);
    assert_eq!(
        failed.compliance,
        Compliance::Unknown,
        "{}",
        message(&failed)
    );
    assert_eq!(ready_reason(&failed), "PatchSourceUnavailable");
    // And the earlier sources' cache no longer counts either.
    let after_gone = operate(&root, Operation::Scan, &good, false);
    assert_eq!(ready_reason(&after_gone), "PatchSourceUnavailable");
    assert_eq!(
        changed_paths(&dnf_state(root.path()), &before),
        Vec::<String>::new()
    );
    assert_eq!(root.versions(), versions);
}
