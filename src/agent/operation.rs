//! One agent operation on one node, from OS detection to the finished `NodePatchReport`
//! status: Scan (read-only apart from the metadata refresh and the first-seen record) or
//! Install (the run's preInstall hook, repair, refresh, evaluate, install the approved set,
//! read back, evaluate again, the postInstall hook). The flow is the same for every package
//! family; the [`Backend`] of the node's family reads it and installs.
//!
//! Operations never panic and never return an error: whatever goes wrong becomes a report with
//! `operation.phase: Failed`, the reason in the `Ready` condition and the message, and
//! `compliance: Unknown` when the node could not be evaluated.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::backend::contract::{InstallRequest, InstallTarget, NodeAgent, NodePackages};
use super::backend::sources::{Repositories, SourcesError, repositories_for};
use super::backend::{Backend, BackendSettings};
use super::changes::{FailedUpdate, package_changes};
use super::hook::{HookError, Hooks, run_hook};
use super::os::{DetectedOs, detect_os};
use super::state::{FirstSeen, LastOperation};
use crate::api::conditions::{
    ConditionStatus, Health, READY, find, new_condition, set_condition, set_health,
};
use crate::api::{
    Compliance, NodePatchReportStatus, Operation, OperationPhase, OperationStatus, PreviewResult,
    RebootOption, RejectedPatchesAction,
};
use crate::baseline::evaluate::{Evaluation, ResolvedBaseline, evaluate};
use crate::baseline::model::{EvaluationInput, InstallResult, PackageRef};
use crate::baseline::predefined::predefined_for;
use crate::baseline::preview::{preview_failure, preview_result};

/// Longest operation message (the CRD's limit).
pub const MAX_MESSAGE_CHARS: usize = 4096;

/// A source of the current time (the agent's only clock; tests pass a fixed one).
pub type Clock<'a> = &'a dyn Fn() -> Timestamp;

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperationRequest {
    /// Scan or Install.
    pub operation: Operation,
    /// PatchRun name (empty for local operations).
    pub run: String,
    /// Run `apt-get update` first.
    pub refresh: bool,
    /// Record first sightings of candidate versions in the host's state file.
    pub record_first_seen: bool,
    /// Packages whose install failed earlier in this run (a confirming scan after a reboot
    /// keeps reporting them Failed).
    pub previous_failures: Vec<PackageRef>,
    /// The run's reboot option: with NoReboot, updates the package manager only installs
    /// together with a reboot (zypper's interactive, reboot-suggested patches) are left out.
    pub reboot_option: RebootOption,
    /// The settings the node's backend is built with (apt's timeouts and lock wait).
    pub backends: BackendSettings,
    /// The run's install hooks (Install only; a scan runs none).
    pub hooks: Hooks,
}

impl OperationRequest {
    /// A request with the defaults: refresh and record first sightings.
    pub fn new(operation: Operation, run: impl Into<String>) -> OperationRequest {
        OperationRequest {
            operation,
            run: run.into(),
            refresh: true,
            record_first_seen: true,
            previous_failures: Vec::new(),
            reboot_option: RebootOption::default(),
            backends: BackendSettings::default(),
            hooks: Hooks::default(),
        }
    }
}

/// Which baseline to evaluate against.
#[derive(Clone, Debug)]
pub enum BaselineChoice {
    /// A resolved baseline (from a PatchRun snapshot, a file, or a predefined name).
    Resolved(Box<ResolvedBaseline>),
    /// The predefined baseline of whatever OS the node runs.
    PredefinedForNode,
}

/// The kstatus health of a report (docs/gitops.md): Reconciling while its operation is under way
/// (reason: the phase, e.g. `Installing`, `WaitingForReboot`); Stalled while `Ready` is False
/// (the last operation failed: reason and message are Ready's, the next run retries); otherwise
/// Current, compliant or not (compliance is what the report says, not its health).
pub fn report_health(status: &NodePatchReportStatus) -> Health {
    if let Some(op) = status.operation.as_ref().filter(|o| !o.phase.is_finished()) {
        let phase = format!("{:?}", op.phase);
        let message = format!("{phase} for run {}", op.run);
        return Health::reconciling(&phase, message);
    }
    match find(&status.conditions, READY) {
        Some(r) if r.status == "False" => Health::stalled(&r.reason, r.message.clone()),
        _ => Health::Current,
    }
}

/// `status` with its `Reconciling` and `Stalled` conditions set from [`report_health`]. A report
/// has no spec (its generation never moves), so the conditions carry no observedGeneration.
pub fn with_report_health(
    mut status: NodePatchReportStatus,
    now: Timestamp,
) -> NodePatchReportStatus {
    let health = report_health(&status);
    set_health(&mut status.conditions, &health, None, now);
    status
}

impl BaselineChoice {
    /// The resolved baseline for a node running `os`: the chosen one, or that OS's predefined
    /// baseline (an error carries its category and message).
    fn resolve_for(
        &self,
        os: crate::api::OperatingSystem,
    ) -> Result<ResolvedBaseline, (&'static str, String)> {
        match self {
            BaselineChoice::Resolved(b) => Ok((**b).clone()),
            BaselineChoice::PredefinedForNode => {
                let predefined = predefined_for(os);
                ResolvedBaseline::resolve(predefined.name.clone(), &predefined.spec).map_err(|e| {
                    (
                        e.category(),
                        format!("predefined baseline {}: {e}", predefined.name),
                    )
                })
            }
        }
    }
}

/// Cut a message to the CRD's limit on a character boundary.
pub fn bound_message(mut message: String) -> String {
    if message.chars().count() > MAX_MESSAGE_CHARS {
        let cut = message
            .char_indices()
            .nth(MAX_MESSAGE_CHARS - 1)
            .map(|(i, _)| i)
            .unwrap_or(message.len());
        message.truncate(cut);
        message.push('…');
    }
    message
}

/// A report being built: OS, operation and notes gathered along the way.
struct ReportDraft {
    os: Option<DetectedOs>,
    operation: OperationStatus,
    notes: Vec<String>,
}

impl ReportDraft {
    fn finish(
        self,
        mut status: NodePatchReportStatus,
        phase: OperationPhase,
        reason: &str,
        ready: bool,
        now: Timestamp,
    ) -> NodePatchReportStatus {
        let mut operation = self.operation;
        operation.phase = phase;
        operation.end_time = Some(Time(now));
        let message = bound_message(self.notes.join("; "));
        operation.message = (!message.is_empty()).then(|| message.clone());
        status.os = self.os.map(|o| o.info);
        status.boot_id = operation.boot_id.clone();
        status.operation = Some(operation);
        let condition_message = if message.is_empty() {
            reason.to_string()
        } else {
            message
        };
        set_condition(
            &mut status.conditions,
            new_condition(
                READY,
                ConditionStatus::from(ready),
                reason,
                condition_message,
                None,
                now,
            ),
        );
        status
    }

    /// A report for an operation that could not evaluate the node.
    fn failed(mut self, category: &str, error: String, now: Timestamp) -> NodePatchReportStatus {
        self.notes.insert(0, error);
        let status = NodePatchReportStatus {
            compliance: Compliance::Unknown,
            ..NodePatchReportStatus::default()
        };
        self.finish(status, OperationPhase::Failed, category, false, now)
    }
}

/// Longest string copied from the host into a report field (a package name, version,
/// repository, advisory, CVE, the OS's names), in characters.
pub const MAX_REPORT_STRING_CHARS: usize = 256;

/// Largest report status, serialized as JSON (512 KiB): etcd refuses objects above 1.5 MiB,
/// and the object also carries its metadata and managed fields. Patches are left out from the
/// end of the list (least important last) until the status fits, and counted in
/// `patchesOmitted`.
pub const MAX_REPORT_BYTES: usize = 512 * 1024;

/// Run one operation and return the node's report status (see the module docs), bounded:
/// strings cut to [`MAX_REPORT_STRING_CHARS`], the whole under [`MAX_REPORT_BYTES`].
pub fn run_operation(
    agent: &NodeAgent,
    request: &OperationRequest,
    baseline: &BaselineChoice,
    clock: Clock<'_>,
) -> NodePatchReportStatus {
    bound_report(run_operation_unbounded(agent, request, baseline, clock))
}

fn cut_string(value: &mut String) {
    if let Some((cut, _)) = value.char_indices().nth(MAX_REPORT_STRING_CHARS) {
        value.truncate(cut);
        value.push('…');
    }
}

fn cut_optional(value: &mut Option<String>) {
    if let Some(v) = value {
        cut_string(v);
    }
}

/// Bound a report status: host strings cut, patches left out (and counted in
/// `patchesOmitted`) until the JSON fits [`MAX_REPORT_BYTES`].
pub fn bound_report(mut status: NodePatchReportStatus) -> NodePatchReportStatus {
    if let Some(os) = &mut status.os {
        cut_string(&mut os.pretty_name);
        cut_string(&mut os.id);
        cut_string(&mut os.version_id);
        cut_string(&mut os.kernel);
    }
    cut_optional(&mut status.boot_id);
    for patch in &mut status.patches {
        cut_string(&mut patch.name);
        cut_optional(&mut patch.arch);
        cut_optional(&mut patch.installed_version);
        cut_optional(&mut patch.available_version);
        cut_optional(&mut patch.classification);
        cut_optional(&mut patch.severity);
        cut_optional(&mut patch.advisory);
        patch.cves.iter_mut().for_each(cut_string);
    }
    let sizes: Vec<usize> = status.patches.iter().map(|p| json_len(p) + 1).collect();
    let mut total = json_len(&status);
    let mut dropped = 0u32;
    while total > MAX_REPORT_BYTES && !status.patches.is_empty() {
        status.patches.pop();
        total -= sizes[status.patches.len()];
        dropped += 1;
    }
    if dropped > 0 {
        status.patches_omitted = status.patches_omitted.saturating_add(dropped);
        status.truncated = true;
    }
    status
}

/// The serialized JSON size of a report part (serializing these types cannot fail; a failure
/// counts as 0).
fn json_len<T: serde::Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).map_or(0, |v| v.len())
}

fn run_operation_unbounded(
    agent: &NodeAgent,
    request: &OperationRequest,
    baseline: &BaselineChoice,
    clock: Clock<'_>,
) -> NodePatchReportStatus {
    let start = clock();
    let boot_id = super::os::boot_id(&agent.root);
    let mut draft = ReportDraft {
        os: None,
        operation: OperationStatus {
            run: request.run.clone(),
            type_: Some(request.operation),
            phase: match request.operation {
                Operation::Scan | Operation::Preview => OperationPhase::Scanning,
                Operation::Install => OperationPhase::Installing,
            },
            boot_id: (!boot_id.is_empty()).then_some(boot_id),
            start_time: Some(Time(start)),
            ..OperationStatus::default()
        },
        notes: Vec::new(),
    };
    let detected = match detect_os(&agent.root) {
        Ok(os) => os,
        Err(e) => return draft.failed(e.category(), format!("cannot detect the OS: {e}"), clock()),
    };
    draft.os = Some(detected.clone());
    if let Some(immutable) = detected.immutable {
        draft.notes.push(format!(
            "{} is image-based and updated by its own update operator; nodepatch does not patch it",
            immutable.as_str()
        ));
        let status = NodePatchReportStatus {
            compliance: Compliance::NotApplicable,
            last_scan_time: Some(Time(start)),
            ..NodePatchReportStatus::default()
        };
        return draft.finish(
            status,
            OperationPhase::Succeeded,
            "NotApplicable",
            true,
            clock(),
        );
    }
    let Some(operating_system) = detected.operating_system else {
        let error = format!(
            "unsupported operating system {:?} ({})",
            detected.info.id, detected.info.pretty_name
        );
        return draft.failed("UnsupportedOperatingSystem", error, clock());
    };
    let Some(family) = detected.info.family else {
        let error = format!(
            "no package family known for {} ({})",
            operating_system.as_str(),
            detected.info.pretty_name
        );
        return draft.failed("UnsupportedPackageFamily", error, clock());
    };
    let backend = Backend::for_family(family, &request.backends);
    let baseline = match baseline.resolve_for(operating_system) {
        Ok(b) => b,
        Err((category, message)) => return draft.failed(category, message, clock()),
    };
    if baseline.operating_system() != operating_system {
        let error = format!(
            "baseline {} is for {}, the node runs {}",
            baseline.name(),
            baseline.operating_system(),
            operating_system
        );
        return draft.failed("OperatingSystemMismatch", error, clock());
    }
    // The baseline's alternative patch sources replace the node's repositories for this
    // operation when one matches the node's product; text the agent does not accept fails it.
    let repositories = match repositories_for(&baseline.spec().sources, &detected.product(), family)
    {
        Ok(r) => r,
        Err(e) => return draft.failed(e.category(), e.to_string(), clock()),
    };
    draft.notes.extend(repositories.note());
    let node = NodeContext {
        agent,
        backend,
        repositories: &repositories,
        detected: &detected,
    };
    match request.operation {
        // A preview is a scan against the draft (see run_preview); here it is one.
        Operation::Scan | Operation::Preview => scan(&node, request, &baseline, draft, clock),
        Operation::Install => install(&node, request, &baseline, draft, clock),
    }
}

/// A Preview: read the node once (refreshing its metadata like a scan, recording no first
/// sightings, installing nothing) and evaluate both the node's current baseline and the draft
/// against that read. The node's repositories are the draft's alternative sources when it has
/// some for the node's product, else the node's own. Never fails: what cannot be evaluated is a
/// result with `compliance: Unknown` and the reason (NotApplicable when the draft is for
/// another OS, or the node's OS is image-based).
pub fn run_preview(
    agent: &NodeAgent,
    request: &OperationRequest,
    current: &BaselineChoice,
    draft: &ResolvedBaseline,
    clock: Clock<'_>,
) -> PreviewResult {
    let run = request.run.as_str();
    let fail = |message: String| preview_failure(run, Compliance::Unknown, message, clock());
    let detected = match detect_os(&agent.root) {
        Ok(os) => os,
        Err(e) => return fail(format!("cannot detect the OS: {e}")),
    };
    let not_applicable =
        |message: String| preview_failure(run, Compliance::NotApplicable, message, clock());
    if let Some(immutable) = detected.immutable {
        return not_applicable(format!(
            "{} is image-based; nodepatch does not patch it",
            immutable.as_str()
        ));
    }
    let Some(operating_system) = detected.operating_system else {
        return not_applicable(format!(
            "unsupported operating system {:?}",
            detected.info.id
        ));
    };
    if draft.operating_system() != operating_system {
        return not_applicable(format!(
            "the draft is for {}, the node runs {}",
            draft.operating_system(),
            operating_system
        ));
    }
    let Some(family) = detected.info.family else {
        return fail(format!(
            "no package family known for {}",
            operating_system.as_str()
        ));
    };
    let current = match current.resolve_for(operating_system) {
        Ok(b) => b,
        Err((_, message)) => return fail(message),
    };
    let repositories = match repositories_for(&draft.spec().sources, &detected.product(), family) {
        Ok(r) => r,
        Err(e) => return fail(e.to_string()),
    };
    let node = NodeContext {
        agent,
        backend: Backend::for_family(family, &request.backends),
        repositories: &repositories,
        detected: &detected,
    };
    let mut notes = Vec::new();
    if request.refresh {
        match refresh(&node) {
            Ok(note) => notes.extend(note),
            Err((error, _)) => return fail(error),
        }
    }
    let read_only = OperationRequest {
        record_first_seen: false,
        ..request.clone()
    };
    let now = clock();
    let today = match evaluate_node(&node, &read_only, &current, Vec::new(), &mut notes, now) {
        Ok(evaluated) => evaluated,
        Err((error, _)) => return fail(error),
    };
    let drafted = match evaluate(draft, &today.input, now) {
        Ok(evaluation) => evaluation,
        Err(e) => return fail(format!("evaluating the draft: {e}")),
    };
    let mut result = preview_result(run, &today.evaluation.status, &drafted.status, now);
    let message = bound_message(notes.join("; "));
    result.message = (!message.is_empty()).then_some(message);
    result
}

/// The node an operation works on: where, with which backend, from which repositories.
struct NodeContext<'a> {
    agent: &'a NodeAgent,
    backend: Backend,
    repositories: &'a Repositories,
    detected: &'a DetectedOs,
}

/// The node read and evaluated once.
struct NodeEvaluation {
    /// What the backend read, without the installed packages and candidates (moved into
    /// `input`).
    packages: NodePackages,
    input: EvaluationInput,
    evaluation: Evaluation,
}

/// Read the node through its backend, record first sightings, evaluate.
fn evaluate_node(
    node: &NodeContext<'_>,
    request: &OperationRequest,
    baseline: &ResolvedBaseline,
    failed: Vec<PackageRef>,
    notes: &mut Vec<String>,
    now: Timestamp,
) -> Result<NodeEvaluation, (String, &'static str)> {
    let NodeContext {
        agent,
        backend,
        repositories,
        detected,
    } = *node;
    let (mut first_seen, first_seen_note) = match FirstSeen::load(&agent.root) {
        Ok(record) => (record, None),
        Err(e) => (
            FirstSeen::default(),
            Some(format!("{e}; starting a new first-seen record")),
        ),
    };
    let mut packages = backend
        .read(agent, repositories, detected, &mut first_seen, now)
        .map_err(|e| (e.to_string(), e.category()))?;
    notes.append(&mut packages.notes);
    notes.extend(first_seen_note);
    if request.record_first_seen {
        first_seen.prune(now);
        if let Err(e) = first_seen.save(&agent.root) {
            notes.push(format!("cannot record first-seen dates: {e}"));
        }
    }
    let held: Vec<String> = packages
        .held
        .iter()
        .map(|(name, version)| format!("{name} {version}"))
        .collect();
    if !held.is_empty() && request.operation == Operation::Scan {
        notes.push(format!("held back (dpkg hold): {}", held.join(", ")));
    }
    let reboot = &packages.reboot;
    let input = EvaluationInput {
        operating_system: detected.operating_system,
        product: Some(detected.product()),
        installed: std::mem::take(&mut packages.installed),
        candidates: std::mem::take(&mut packages.candidates),
        install_result: InstallResult {
            failed,
            pending_reboot: reboot
                .pending_packages
                .iter()
                .map(|name| PackageRef {
                    name: name.clone(),
                    arch: None,
                    version: None,
                })
                .collect(),
            reboot_required: reboot.required,
        },
    };
    let evaluation = evaluate(baseline, &input, now).map_err(|e| (e.to_string(), e.category()))?;
    Ok(NodeEvaluation {
        packages,
        input,
        evaluation,
    })
}

/// Refresh the metadata. A failure is a note with the node's repositories (the cached metadata
/// is used) and fails the operation with alternative sources (their private lists would be
/// missing or stale, and the scan would report versions the sources no longer offer).
fn refresh(node: &NodeContext<'_>) -> Result<Option<String>, (String, &'static str)> {
    match node.backend.refresh(node.agent, node.repositories) {
        Ok(()) => Ok(None),
        Err(e) => match node.repositories {
            Repositories::Node => Ok(Some(node.backend.refresh_failure_note(&e))),
            sources => {
                let e = SourcesError::RefreshFailed {
                    names: sources.source_names().to_vec(),
                    error: e.to_string(),
                };
                Err((e.to_string(), e.category()))
            }
        },
    }
}

fn scan(
    node: &NodeContext<'_>,
    request: &OperationRequest,
    baseline: &ResolvedBaseline,
    mut draft: ReportDraft,
    clock: Clock<'_>,
) -> NodePatchReportStatus {
    if request.refresh {
        match refresh(node) {
            Ok(note) => draft.notes.extend(note),
            Err((error, category)) => return draft.failed(category, error, clock()),
        }
    }
    let now = clock();
    match evaluate_node(
        node,
        request,
        baseline,
        request.previous_failures.clone(),
        &mut draft.notes,
        now,
    ) {
        Ok(node) => {
            if node.packages.reboot.required {
                draft.notes.push(format!(
                    "reboot required: {}",
                    node.packages.reboot.reasons.join(", ")
                ));
            }
            let mut status = node.evaluation.status;
            status.last_scan_time = Some(Time(now));
            draft.finish(status, OperationPhase::Succeeded, "Scanned", true, clock())
        }
        Err((error, category)) => draft.failed(category, error, clock()),
    }
}

/// The advisories (patch names) of the input candidates of `name`/`arch`/`version`.
fn advisories_of(
    input: &EvaluationInput,
    name: &str,
    arch: Option<&str>,
    version: &str,
) -> Vec<String> {
    let mut out: Vec<String> = input
        .candidates
        .iter()
        .filter(|c| c.name == name && c.arch.as_deref() == arch && c.version == version)
        .filter_map(|c| c.advisory.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// An install with the run's hooks around it: the preInstall hook first, before the package
/// manager is touched (failed: the node fails and nothing is installed, not even a repair of
/// an interrupted dpkg); then the install; then, once the pre-hook succeeded, the postInstall
/// hook whatever the install's outcome (so a hook pair that stops and starts a service stays
/// paired). A failed post-hook fails the node without undoing the install; the report says
/// Failed, so the controller never reboots the node for this run.
fn install(
    node: &NodeContext<'_>,
    request: &OperationRequest,
    baseline: &ResolvedBaseline,
    mut draft: ReportDraft,
    clock: Clock<'_>,
) -> NodePatchReportStatus {
    if let Some(hook) = &request.hooks.pre_install {
        match run_hook(node.agent.executor.as_ref(), hook, &request.run) {
            Ok(ran) => {
                tracing::info!(duration = ?ran.duration, output = %ran.output, "preInstall hook succeeded");
                draft
                    .notes
                    .push(format!("preInstall hook succeeded in {:.1?}", ran.duration));
            }
            Err(e) => {
                tracing::warn!("{e}");
                // Finished (so a restarted agent never installs for this run) and failed.
                let record = LastOperation {
                    run: request.run.clone(),
                    operation: Operation::Install,
                    boot_id: draft.operation.boot_id.clone().unwrap_or_default(),
                    finished_at: clock(),
                    succeeded: false,
                    failed: Vec::new(),
                };
                if let Err(e) = record.save(&node.agent.root) {
                    draft
                        .notes
                        .push(format!("cannot record the operation on the node: {e}"));
                }
                let message = format!("nothing was installed: {e}");
                return draft.failed(e.category(), message, clock());
            }
        }
    }
    let status = install_packages(node, request, baseline, draft, clock);
    let Some(hook) = &request.hooks.post_install else {
        return status;
    };
    match run_hook(node.agent.executor.as_ref(), hook, &request.run) {
        Ok(ran) => {
            tracing::info!(duration = ?ran.duration, output = %ran.output, "postInstall hook succeeded");
            with_note(
                status,
                format!("postInstall hook succeeded in {:.1?}", ran.duration),
            )
        }
        Err(e) => {
            tracing::warn!("{e}");
            post_hook_failed(&node.agent.root, status, &e, clock())
        }
    }
}

/// `status` with `note` appended to its operation message.
fn with_note(mut status: NodePatchReportStatus, note: String) -> NodePatchReportStatus {
    if let Some(op) = status.operation.as_mut() {
        let message = match op.message.take() {
            Some(m) if !m.is_empty() => format!("{m}; {note}"),
            _ => note,
        };
        op.message = Some(bound_message(message));
    }
    status
}

/// The finished install `status` after its postInstall hook failed: the operation Failed with
/// the hook's error first in the message (the run's target keeps the first 1000 characters),
/// reason `HookFailed`/`HookTimeout` unless the install had already failed for its own reason,
/// and the node's record marked failed so a restarted agent's confirming scan keeps the verdict.
/// What was installed stays installed.
fn post_hook_failed(
    root: &super::host::HostRoot,
    mut status: NodePatchReportStatus,
    error: &HookError,
    now: Timestamp,
) -> NodePatchReportStatus {
    let Some(op) = status.operation.as_mut() else {
        return status;
    };
    let earlier_reason = (op.phase == OperationPhase::Failed)
        .then(|| find(&status.conditions, READY).map(|c| c.reason.clone()))
        .flatten();
    let mut message = match op.message.take() {
        Some(m) if !m.is_empty() => format!("{error}\nthe install is not undone: {m}"),
        _ => error.to_string(),
    };
    match LastOperation::load(root) {
        Ok(Some(mut record)) if record.install_done_for(&op.run) => {
            record.succeeded = false;
            if let Err(e) = record.save(root) {
                message.push_str(&format!("; cannot record the operation on the node: {e}"));
            }
        }
        Ok(_) => {}
        Err(e) => message.push_str(&format!("; cannot record the operation on the node: {e}")),
    }
    let message = bound_message(message);
    op.phase = OperationPhase::Failed;
    op.message = Some(message.clone());
    let reason = earlier_reason.unwrap_or_else(|| error.category().to_string());
    set_condition(
        &mut status.conditions,
        new_condition(READY, ConditionStatus::False, &reason, message, None, now),
    );
    status
}

/// Repair, refresh, evaluate, install the approved set, read back and evaluate again.
fn install_packages(
    node: &NodeContext<'_>,
    request: &OperationRequest,
    baseline: &ResolvedBaseline,
    mut draft: ReportDraft,
    clock: Clock<'_>,
) -> NodePatchReportStatus {
    let NodeContext {
        agent,
        backend,
        repositories,
        ..
    } = *node;
    // An interrupted package manager blocks every run (apt: dpkg): repair it before anything.
    match backend.prepare_install(agent) {
        Ok(Some(summary)) => draft.notes.push(summary),
        Ok(None) => {}
        Err(e) => return draft.failed(e.category(), e.to_string(), clock()),
    }
    if request.refresh {
        match refresh(node) {
            Ok(note) => draft.notes.extend(note),
            Err((error, category)) => return draft.failed(category, error, clock()),
        }
    }
    let before = match evaluate_node(
        node,
        request,
        baseline,
        Vec::new(),
        &mut draft.notes,
        clock(),
    ) {
        Ok(node) => node,
        Err((error, category)) => return draft.failed(category, error, clock()),
    };
    let held: Vec<&str> = before
        .packages
        .held
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    let (kept_back, installable): (Vec<_>, Vec<_>) = before
        .evaluation
        .install_set()
        .partition(|v| held.contains(&v.name.as_str()));
    if !kept_back.is_empty() {
        let names: Vec<String> = kept_back
            .iter()
            .map(|v| format!("{} {}", v.name, v.version))
            .collect();
        draft.notes.push(format!(
            "approved but held (dpkg hold), not installed: {}",
            names.join(", ")
        ));
    }
    let targets: Vec<InstallTarget> = installable
        .into_iter()
        .map(|v| InstallTarget {
            name: v.name.clone(),
            arch: v.arch.clone(),
            version: v.version.clone(),
            advisories: advisories_of(&before.input, &v.name, v.arch.as_deref(), &v.version),
        })
        .collect();
    let blocked_patterns =
        if baseline.spec().rejected_patches_action == RejectedPatchesAction::Block {
            baseline.spec().rejected_patches.clone()
        } else {
            Vec::new()
        };
    let blocked: Vec<String> = before
        .evaluation
        .candidates
        .iter()
        .filter_map(|c| {
            c.blocked_by
                .as_ref()
                .map(|dep| format!("{} {} (needs rejected {dep})", c.name, c.version))
        })
        .collect();
    if !blocked.is_empty() {
        draft.notes.push(format!(
            "not installed under rejectedPatchesAction Block: {}",
            blocked.join(", ")
        ));
    }
    let install_request = InstallRequest {
        targets: &targets,
        blocked_patterns: &blocked_patterns,
        reboot_option: request.reboot_option,
    };
    let report = match backend.install(agent, repositories, &before.packages, &install_request) {
        Ok(report) => report,
        Err(e) => return draft.failed(e.category(), format!("install failed: {e}"), clock()),
    };
    for run in &report.runs {
        tracing::info!("{run}");
    }
    // SSM: an update kept out because its dependency is now rejected (Block) is reported
    // FAILED for INSTALL operations (MISSING for scans): the evaluation after the install sees
    // those versions as failed installs.
    let failed: Vec<PackageRef> = report
        .failed()
        .map(|o| PackageRef {
            name: o.target.name.clone(),
            arch: None,
            version: Some(o.target.version.clone()),
        })
        .chain(
            before
                .evaluation
                .candidates
                .iter()
                .filter(|c| c.blocked_by.is_some())
                .map(|c| PackageRef {
                    name: c.name.clone(),
                    arch: None,
                    version: Some(c.version.clone()),
                }),
        )
        .collect();
    let installed: Vec<String> = report
        .installed()
        .map(|o| format!("{} {}", o.target.name, o.target.version))
        .collect();
    if targets.is_empty() {
        draft.notes.insert(
            0,
            "nothing to install: no approved update is missing".to_string(),
        );
    } else {
        draft.notes.insert(
            0,
            format!(
                "installed {} of {} approved updates{}",
                installed.len(),
                targets.len(),
                if installed.is_empty() {
                    String::new()
                } else {
                    format!(": {}", installed.join(", "))
                }
            ),
        );
    }
    let failures: Vec<String> = report
        .failed()
        .map(|o| {
            format!(
                "{} {}: {}",
                o.target.name,
                o.target.version,
                o.reason.as_deref().unwrap_or("failed")
            )
        })
        .collect();
    if !failures.is_empty() {
        draft
            .notes
            .insert(1, format!("failed: {}", failures.join("; ")));
    }
    let skipped: Vec<String> = report
        .skipped()
        .map(|o| {
            format!(
                "{} {}: {}",
                o.target.name,
                o.target.version,
                o.reason.as_deref().unwrap_or("left out")
            )
        })
        .collect();
    if !skipped.is_empty() {
        draft
            .notes
            .push(format!("left out: {}", skipped.join("; ")));
    }
    let now = clock();
    let after = match evaluate_node(
        node,
        request,
        baseline,
        failed.clone(),
        &mut Vec::new(),
        now,
    ) {
        Ok(node) => node,
        Err((error, category)) => {
            return draft.failed(
                category,
                format!("reading the node after install: {error}"),
                clock(),
            );
        }
    };
    let mut reboot = after.packages.reboot.clone();
    if report.reboot_required && !reboot.required {
        reboot.required = true;
        reboot.reasons.push(format!(
            "{} reported that a reboot is needed",
            backend.name()
        ));
    }
    if reboot.required {
        draft
            .notes
            .push(format!("reboot required: {}", reboot.reasons.join(", ")));
    }
    let failed_updates: Vec<FailedUpdate> = report
        .failed()
        .map(|o| FailedUpdate {
            name: o.target.name.clone(),
            arch: o.target.arch.clone(),
            version: o.target.version.clone(),
        })
        .collect();
    let (changes, omitted) = package_changes(
        &before.input.installed,
        &after.input.installed,
        &failed_updates,
    );
    draft.operation.changes = changes;
    draft.operation.changes_omitted = omitted;
    let end = clock();
    let record = LastOperation {
        run: request.run.clone(),
        operation: Operation::Install,
        boot_id: draft.operation.boot_id.clone().unwrap_or_default(),
        finished_at: end,
        succeeded: failures.is_empty(),
        failed,
    };
    if let Err(e) = record.save(&agent.root) {
        draft
            .notes
            .push(format!("cannot record the operation on the node: {e}"));
    }
    let mut status = after.evaluation.status;
    status.last_scan_time = Some(Time(now));
    if reboot.required {
        status.reboot_required = true;
    }
    if failures.is_empty() {
        status.last_install_time = Some(Time(end));
        draft.finish(status, OperationPhase::Succeeded, "Installed", true, end)
    } else {
        draft.finish(status, OperationPhase::Failed, "InstallFailed", true, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::{RECONCILING, STALLED};

    #[test]
    fn a_report_is_cut_to_its_size_cap_and_counts_what_it_left_out() {
        // Cut to 257 characters, 20 CVEs each: ~6 KiB per patch, 500 of them over the cap.
        let long = "x".repeat(1000);
        let patch = |i: usize| -> crate::api::PatchStatus {
            serde_json::from_value(serde_json::json!({
                "name": format!("p{i}-{long}"),
                "installedVersion": long,
                "availableVersion": "2",
                "state": "Missing",
                "cves": vec![long.clone(); 20],
                "advisory": long,
            }))
            .expect("patch")
        };
        let status = NodePatchReportStatus {
            os: Some(crate::api::OsInfo {
                pretty_name: long.clone(),
                ..Default::default()
            }),
            patches: (0..500).map(patch).collect(),
            security_non_compliant: 600,
            patches_omitted: 100,
            truncated: true,
            ..Default::default()
        };
        let bounded = bound_report(status);
        let size = serde_json::to_vec(&bounded).expect("json").len();
        assert!(size <= MAX_REPORT_BYTES, "{size} bytes");
        assert!(!bounded.patches.is_empty(), "some patches still listed");
        assert!(bounded.patches.len() < 500);
        assert_eq!(
            bounded.patches_omitted as usize,
            100 + 500 - bounded.patches.len(),
            "the verdict's 100 plus what the size cap dropped"
        );
        assert!(bounded.truncated);
        let first = &bounded.patches[0];
        assert_eq!(
            first.name.chars().count(),
            MAX_REPORT_STRING_CHARS + 1,
            "cut, with …"
        );
        assert!(
            first.name.starts_with("p0-"),
            "the most important patches stay"
        );
        assert!(
            first
                .cves
                .iter()
                .all(|c| c.chars().count() <= MAX_REPORT_STRING_CHARS + 1)
        );
        let os = bounded.os.as_ref().expect("os");
        assert!(os.pretty_name.chars().count() <= MAX_REPORT_STRING_CHARS + 1);
        // A small report is left as it is.
        let small = NodePatchReportStatus {
            patches: vec![
                serde_json::from_value(serde_json::json!({"name": "openssl", "state": "Missing"}))
                    .expect("patch"),
            ],
            other_non_compliant: 1,
            ..Default::default()
        };
        assert_eq!(bound_report(small.clone()), small);
    }

    fn report(phase: OperationPhase, ready: Option<bool>) -> NodePatchReportStatus {
        let mut status = NodePatchReportStatus {
            operation: Some(OperationStatus {
                run: "r1".into(),
                phase,
                ..Default::default()
            }),
            ..Default::default()
        };
        if let Some(ready) = ready {
            set_condition(
                &mut status.conditions,
                new_condition(
                    READY,
                    ready.into(),
                    if ready { "Scanned" } else { "InstallFailed" },
                    "m",
                    None,
                    Timestamp::UNIX_EPOCH,
                ),
            );
        }
        status
    }

    fn kstatus(status: NodePatchReportStatus) -> (String, String, String) {
        let s = with_report_health(status, Timestamp::UNIX_EPOCH);
        let of = |t| find(&s.conditions, t).expect("kstatus condition");
        let (r, st) = (of(RECONCILING), of(STALLED));
        let reason = if r.status == "True" {
            &r.reason
        } else {
            &st.reason
        };
        (r.status.clone(), st.status.clone(), reason.clone())
    }

    #[test]
    fn a_report_reconciles_while_its_operation_runs_and_stalls_when_it_failed() {
        assert_eq!(
            kstatus(report(OperationPhase::Installing, Some(false))),
            ("True".into(), "False".into(), "Installing".into()),
            "a new operation after a failed one is in progress, not stalled"
        );
        assert_eq!(
            kstatus(report(OperationPhase::WaitingForReboot, Some(true))).2,
            "WaitingForReboot"
        );
        assert_eq!(
            kstatus(report(OperationPhase::Failed, Some(false))),
            ("False".into(), "True".into(), "InstallFailed".into())
        );
        assert_eq!(
            kstatus(report(OperationPhase::Succeeded, Some(true))),
            ("False".into(), "False".into(), "Current".into())
        );
    }
}
