//! A baseline's alternative patch sources (`spec.sources`) on real Debian roots: the root has
//! only `bookworm` configured, the sources point at a mirror under `/srv/mirror` it has not
//! configured. The scan reports the mirror's versions (the same set `apt-get -s dist-upgrade`
//! computes over those sources, the host's pins still applied), the install installs from it, and
//! the root's own sources and lists are byte-identical afterwards. Text the agent does not accept
//! and lists never updated for the sources fail the operation.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use jiff::Timestamp;
use nodepatch::agent::backend::contract::NodeAgent;
use nodepatch::agent::backend::sources::{APT_LISTS_DIR, APT_SOURCE_LIST, APT_SOURCE_PARTS};
use nodepatch::agent::host::HostRoot;
use nodepatch::agent::host::exec::ChrootExecutor;
use nodepatch::agent::operation::{BaselineChoice, OperationRequest, run_operation};
use nodepatch::api::{
    Compliance, ComplianceLevel, NodePatchReportStatus, OperatingSystem, Operation, OperationPhase,
    PatchBaselineSpec, PatchSource, PatchState, RejectedPatchesAction,
};
use nodepatch::baseline::ResolvedBaseline;
use support::reports::{message, patch, ready_reason};
use support::roots::{DebianRoot, run, standard_repo};

/// The mirror's suites, none of which the root has configured.
const MIRROR: &str = "# the internal mirror\ndeb [trusted=yes] file:/srv/mirror bookworm-security main\ndeb [trusted=yes] file:/srv/mirror bookworm-updates main\n";

fn spec(sources: Vec<PatchSource>) -> PatchBaselineSpec {
    PatchBaselineSpec {
        operating_system: OperatingSystem::Debian,
        default: false,
        description: None,
        global_filters: Vec::new(),
        approval_rules: Vec::new(),
        approved_patches: vec!["np-*".into()],
        approved_patches_compliance_level: ComplianceLevel::Medium,
        approved_patches_enable_non_security: true,
        rejected_patches: Vec::new(),
        rejected_patches_action: RejectedPatchesAction::AllowAsDependency,
        sources,
    }
}

fn mirror_source(products: &[&str], configuration: &str) -> PatchSource {
    PatchSource {
        name: "mirror".into(),
        products: products.iter().map(|p| p.to_string()).collect(),
        configuration: configuration.into(),
    }
}

fn resolved(spec: &PatchBaselineSpec) -> BaselineChoice {
    BaselineChoice::Resolved(Box::new(
        ResolvedBaseline::resolve("sources-baseline", spec).expect("valid baseline"),
    ))
}

fn operate(
    root: &DebianRoot,
    operation: Operation,
    baseline: &BaselineChoice,
    refresh: bool,
) -> NodePatchReportStatus {
    let agent = NodeAgent {
        root: HostRoot::new(root.path()),
        executor: Arc::new(ChrootExecutor::new(root.path())),
    };
    let mut request = OperationRequest::new(operation, "sources-run");
    request.refresh = refresh;
    run_operation(&agent, &request, baseline, &Timestamp::now)
}

/// Every file (path → bytes) under the root's apt sources, preferences and lists.
fn apt_state(root: &Path) -> BTreeMap<String, Vec<u8>> {
    support::files_under(
        root,
        &[
            "etc/apt/sources.list",
            "etc/apt/sources.list.d",
            "etc/apt/preferences.d",
            "var/lib/apt/lists",
        ],
    )
}

/// A root whose only configured suite is `bookworm` (v1 of the test packages), with the mirror
/// (the standard repository) copied to `/srv/mirror`, and a host pin that forbids np-bugfix's
/// update from bookworm-updates.
fn root_with_unconfigured_mirror(test: &str) -> Option<DebianRoot> {
    let root = DebianRoot::with_standard_repo(test, &["bookworm"])?;
    run(std::process::Command::new("cp")
        .arg("-a")
        .arg(standard_repo())
        .arg(root.path().join("srv/mirror")));
    std::fs::write(
        root.path().join("etc/apt/preferences.d/no-bugfix-update"),
        "Package: np-bugfix\nPin: release n=bookworm-updates\nPin-Priority: -1\n",
    )
    .expect("write pin");
    Some(root)
}

#[test]
fn scan_and_install_use_the_sources_and_leave_the_node_configuration_alone() {
    let test = "scan_and_install_use_the_sources_and_leave_the_node_configuration_alone";
    let Some(root) = root_with_unconfigured_mirror(test) else {
        return;
    };
    let before = apt_state(root.path());

    // Without sources: the node's repositories offer nothing newer.
    let plain = operate(&root, Operation::Scan, &resolved(&spec(Vec::new())), true);
    assert_eq!(
        plain.compliance,
        Compliance::Compliant,
        "{}",
        message(&plain)
    );

    let with_sources = resolved(&spec(vec![mirror_source(&["Debian12"], MIRROR)]));
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
    let sec = patch(&scan, "np-sec");
    assert_eq!(sec.state, PatchState::Missing);
    assert_eq!(sec.available_version.as_deref(), Some("1.0-1+deb12u1"));
    // The host's pin applies to the sources' lists as it would to its own.
    assert!(
        scan.patches
            .iter()
            .all(|p| p.name != "np-bugfix" || p.state != PatchState::Missing),
        "{:#?}",
        scan.patches
    );

    // The oracle: apt itself over the same private sources and lists.
    let mut argv = vec!["-s"];
    let options = [
        format!("Dir::Etc::SourceList={APT_SOURCE_LIST}"),
        format!("Dir::Etc::SourceParts={APT_SOURCE_PARTS}"),
        format!("Dir::State::Lists={APT_LISTS_DIR}"),
        "Dir::Cache::pkgcache=".to_string(),
        "Dir::Cache::srcpkgcache=".to_string(),
    ];
    for o in &options {
        argv.extend(["-o", o.as_str()]);
    }
    argv.push("dist-upgrade");
    let apt_says: Vec<(String, String)> = root
        .apt_get(&argv)
        .lines()
        .filter_map(support::roots::InstLine::parse)
        .map(|l| (l.name, l.version))
        .collect();
    let mut missing: Vec<(String, String)> = scan
        .patches
        .iter()
        .filter(|p| p.state == PatchState::Missing)
        .map(|p| {
            (
                p.name.clone(),
                p.available_version.clone().unwrap_or_default(),
            )
        })
        .collect();
    missing.sort();
    let mut apt_sorted = apt_says.clone();
    apt_sorted.sort();
    assert_eq!(missing, apt_sorted, "the scan over the sources equals apt");
    assert!(!apt_says.iter().any(|(n, _)| n == "np-bugfix"));

    let install = operate(&root, Operation::Install, &with_sources, true);
    assert!(
        root.installed_version("np-sec").as_deref() == Some("1.0-1+deb12u1"),
        "np-sec installed from the mirror: {}",
        message(&install)
    );
    // The report lists what is not compliant: np-sec is no longer among it.
    assert!(
        install.patches.iter().all(|p| p.name != "np-sec"),
        "{:#?}",
        install.patches
    );
    assert_eq!(
        root.installed_version("np-bugfix").as_deref(),
        Some("1.0-1")
    );

    // The node's own sources, pins and lists are exactly as before.
    assert_eq!(apt_state(root.path()), before);
    // And the node's apt still sees only its own repositories.
    let own = root.simulated_inst_lines("dist-upgrade");
    assert!(own.is_empty(), "{own:?}");
}

#[test]
fn sources_for_other_products_leave_the_node_repositories_in_use() {
    let test = "sources_for_other_products_leave_the_node_repositories_in_use";
    let Some(root) = root_with_unconfigured_mirror(test) else {
        return;
    };
    let baseline = resolved(&spec(vec![mirror_source(&["Ubuntu*", "Debian11"], MIRROR)]));
    let scan = operate(&root, Operation::Scan, &baseline, true);
    assert_eq!(scan.compliance, Compliance::Compliant, "{}", message(&scan));
    assert!(
        !message(&scan).contains("patch sources"),
        "{}",
        message(&scan)
    );
}

#[test]
fn refused_source_text_and_lists_never_updated_fail_the_operation() {
    let test = "refused_source_text_and_lists_never_updated_fail_the_operation";
    let Some(root) = root_with_unconfigured_mirror(test) else {
        return;
    };
    let before = apt_state(root.path());
    // What admission refuses, handed to the agent directly: nothing runs.
    let bad = resolved(&spec(vec![mirror_source(
        &["*"],
        "deb [trusted=yes] file:/srv/mirror bookworm-security main\ndeb file:/srv/mirror $(touch /tmp/x) main\n",
    )]));
    let status = operate(&root, Operation::Install, &bad, true);
    assert_eq!(status.compliance, Compliance::Unknown);
    assert_eq!(
        status.operation.as_ref().map(|o| o.phase),
        Some(OperationPhase::Failed)
    );
    assert_eq!(ready_reason(&status), "PatchSourceInvalid");
    assert!(message(&status).contains("line 2"), "{}", message(&status));
    assert!(
        message(&status).contains("mirror"),
        "the source is named: {}",
        message(&status)
    );
    assert!(!root.path().join("var/lib/nodepatch/apt-sources").exists());
    assert_eq!(root.installed_version("np-sec").as_deref(), Some("1.0-1"));

    // Valid sources, but no refresh ever fetched their lists: never a Compliant verdict.
    let good = resolved(&spec(vec![mirror_source(&["*"], MIRROR)]));
    let stale = operate(&root, Operation::Scan, &good, false);
    assert_eq!(stale.compliance, Compliance::Unknown, "{}", message(&stale));
    assert_eq!(ready_reason(&stale), "PatchSourceUnavailable");

    // A source that cannot be fetched fails the scan rather than reading old lists.
    let refreshed = operate(&root, Operation::Scan, &good, true);
    assert_eq!(refreshed.compliance, Compliance::NonCompliant);
    let gone = resolved(&spec(vec![mirror_source(
        &["*"],
        "deb [trusted=yes] file:/srv/nowhere bookworm-security main",
    )]));
    let failed = operate(&root, Operation::Scan, &gone, true);
    assert_eq!(
        failed.compliance,
        Compliance::Unknown,
        "{}",
        message(&failed)
    );
    assert_eq!(ready_reason(&failed), "PatchSourceUnavailable");
    assert_eq!(apt_state(root.path()), before);
}

/// `rejectedPatchesAction: Block` with sources: the install run gets both the rejections'
/// preferences file and the sources' options; the mirror's np-sec is installed, np-app (whose
/// update needs the rejected np-lib) and np-lib are not.
#[test]
fn block_rejections_hold_with_sources() {
    let test = "block_rejections_hold_with_sources";
    let Some(root) = root_with_unconfigured_mirror(test) else {
        return;
    };
    let mut baseline = spec(vec![mirror_source(&["Debian*"], MIRROR)]);
    baseline.approved_patches = vec!["np-app".into(), "np-sec".into()];
    baseline.rejected_patches = vec!["np-lib".into()];
    baseline.rejected_patches_action = RejectedPatchesAction::Block;
    let status = operate(&root, Operation::Install, &resolved(&baseline), true);
    assert_eq!(
        root.installed_version("np-sec").as_deref(),
        Some("1.0-1+deb12u1"),
        "{}",
        message(&status)
    );
    assert_eq!(root.installed_version("np-lib").as_deref(), Some("1.0-1"));
    assert_eq!(root.installed_version("np-app").as_deref(), Some("1.0-1"));
    assert!(
        message(&status).contains("needs rejected np-lib"),
        "{}",
        message(&status)
    );
    assert!(!root.path().join("run/nodepatch/rejected.pref").exists());
}
