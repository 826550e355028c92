//! PatchRun: one execution (scan or install) of a PatchPolicy.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{NAME_PATTERN, OperatingSystem, Operation, RebootOption};
use super::nodepatchreport::PackageChange;
use super::patchbaseline::PatchBaselineSpec;
use super::patchpolicy::{DrainSpec, InstallHooks, RolloutSpec};

/// One execution of a policy. Created by the controller on schedule, or by a user to
/// "patch now" (trigger Manual: runs at once, windows ignored, rollout limits kept).
#[derive(CustomResource, KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq)]
#[kube(
    group = "nodepatch.dev",
    version = "v1alpha1",
    kind = "PatchRun",
    plural = "patchruns",
    shortname = "nprun",
    doc = r#"One execution of a PatchPolicy: operation Scan, Install or Preview over its nodes, in waves within the policy's limits. Created by the controller on schedule or by a user ("patch now", trigger Manual); creating one can reboot nodes. The controller writes its status (targets, baseline snapshots, per-node outcome); set `spec.cancel` to stop it."#,
    category = "nodepatch",
    status = "PatchRunStatus",
    validation = Rule::new("self.spec.policyRef == oldSelf.spec.policyRef && self.spec.operation == oldSelf.spec.operation && self.spec.trigger == oldSelf.spec.trigger && has(self.spec.rebootOption) == has(oldSelf.spec.rebootOption) && (!has(self.spec.rebootOption) || self.spec.rebootOption == oldSelf.spec.rebootOption) && has(self.spec.nodes) == has(oldSelf.spec.nodes) && (!has(self.spec.nodes) || self.spec.nodes == oldSelf.spec.nodes) && has(self.spec.preview) == has(oldSelf.spec.preview)").message("spec is immutable except spec.cancel: create a new PatchRun instead").field_path(".spec"),
    validation = Rule::new("self.spec.operation == 'Preview' ? has(self.spec.preview) : !has(self.spec.preview)").message("spec.preview (the draft baseline) is required for operation Preview and allowed only there").field_path(".spec.preview"),
    validation = Rule::new("!has(self.spec.nodes) || size(self.spec.nodes) == 0 || self.spec.trigger == 'Manual'").message("spec.nodes (a node subset) is allowed only on Manual runs").field_path(".spec.nodes"),
    validation = Rule::new("!has(oldSelf.spec.cancel) || (has(self.spec.cancel) && self.spec.cancel == oldSelf.spec.cancel)").message("spec.cancel cannot be changed or removed once set").field_path(".spec.cancel"),
    validation = Rule::new("size(self.metadata.name) <= 63").message("metadata.name must be at most 63 characters: it is used as the nodepatch.dev/run label value"),
    printcolumn = r#"{"name":"Policy","type":"string","jsonPath":".spec.policyRef"}"#,
    printcolumn = r#"{"name":"Operation","type":"string","jsonPath":".spec.operation"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","description":"reason of the Progressing condition: Rollout, WaitingForActiveRun, Suspended, Canceling while running; the phase or the failure once finished","jsonPath":".status.conditions[?(@.type==\"Progressing\")].reason"}"#,
    printcolumn = r#"{"name":"Succeeded","type":"integer","jsonPath":".status.nodes.succeeded"}"#,
    printcolumn = r#"{"name":"Failed","type":"integer","jsonPath":".status.nodes.failed"}"#,
    printcolumn = r#"{"name":"Total","type":"integer","jsonPath":".status.nodes.total"}"#,
    printcolumn = r#"{"name":"Start","type":"date","jsonPath":".status.startTime"}"#,
    printcolumn = r#"{"name":"End","type":"date","jsonPath":".status.completionTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PatchRunSpec {
    /// The PatchPolicy this run executes.
    #[schemars(length(min = 1, max = 253), pattern(NAME_PATTERN))]
    pub policy_ref: String,
    /// Scan (read-only) or Install.
    pub operation: Operation,
    /// Overrides the policy's install.rebootOption for this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot_option: Option<RebootOption>,
    /// Who started the run: Schedule (the controller) or Manual (a user; windows are ignored).
    #[serde(default)]
    pub trigger: RunTrigger,
    /// Set to cancel the run (the one spec field that may be added after creation; it cannot
    /// be changed or removed once set). No new node starts; nodes in flight finish (an install
    /// is never interrupted, a node in its reboot sequence completes it); pending nodes are
    /// Skipped with reason `Canceled`; then the labels and the run's DaemonSet are removed and
    /// the phase is `Canceled`, with who canceled (the user stamped by the chart's admission
    /// policy, else the field manager) and the reason in the Progressing condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel: Option<RunCancel>,
    /// Manual runs only: patch (or scan, or preview) just these nodes of the policy instead of
    /// all its members (`kubectl nodepatch patch-now POLICY --nodes a,b`). Each must be a
    /// member of the policy when the run starts, else the run fails with reason
    /// `NodesNotMembers` naming them and touches no node. Rollout limits still apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 1000),
        inner(length(min = 1, max = 253), pattern(NAME_PATTERN))
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub nodes: Vec<String>,
    /// Operation Preview only: the draft baseline to evaluate on every target node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<RunPreview>,
}

/// A fleet-wide what-if: the draft baseline a Preview run evaluates.
#[derive(KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunPreview {
    /// The draft, validated like a PatchBaseline's spec. Nodes of another operating system
    /// report the preview NotApplicable.
    pub baseline: PatchBaselineSpec,
}

/// A request to cancel a run.
#[derive(KubeSchema, Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RunCancel {
    /// Why (free text, shown in the run's condition and Event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub reason: Option<String>,
}

/// Who started a run.
#[derive(JsonSchema, Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
pub enum RunTrigger {
    /// Started by the controller from the policy's scan schedule or a maintenance window.
    Schedule,
    /// Started by a user ("patch now").
    #[default]
    Manual,
}

/// Phase of a run.
#[derive(JsonSchema, Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
pub enum RunPhase {
    /// Created, not started yet (e.g. waiting for another run of the policy to end).
    #[default]
    Pending,
    /// Nodes are being scanned or patched.
    Running,
    /// Every target node finished without error budget exhausted.
    Succeeded,
    /// More nodes failed than maxErrors allows: no new nodes were started.
    Halted,
    /// The run could not proceed (e.g. its policy or baseline is invalid).
    Failed,
    /// Canceled by a user (`spec.cancel`): in-flight nodes finished, pending ones were skipped.
    Canceled,
    /// The maintenance window closed with nodes left; they are listed and picked up by the next
    /// window's run.
    TimedOut,
}

impl RunPhase {
    /// True once the run can no longer change.
    pub fn is_finished(self) -> bool {
        !matches!(self, RunPhase::Pending | RunPhase::Running)
    }

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RunPhase::Pending => "Pending",
            RunPhase::Running => "Running",
            RunPhase::Succeeded => "Succeeded",
            RunPhase::Halted => "Halted",
            RunPhase::Failed => "Failed",
            RunPhase::Canceled => "Canceled",
            RunPhase::TimedOut => "TimedOut",
        }
    }
}

/// Observed state of a run.
#[derive(KubeSchema, Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PatchRunStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Phase of the run.
    #[serde(default)]
    pub phase: RunPhase,
    /// The resolved baselines every node of the run uses, one per operating system among its
    /// nodes, fixed at start (edits to a PatchBaseline do not change a running run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 13))]
    pub baseline_snapshots: Vec<BaselineSnapshot>,
    /// Reboot option in force for an install run (the run's, else its policy's), fixed at
    /// start; agents read it (zypper leaves out patches that need a reboot under NoReboot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot_option: Option<RebootOption>,
    /// Install hooks in force for an install run (its policy's install.preInstall and
    /// install.postInstall), fixed at start like the reboot option: editing the policy mid-run
    /// does not change them. Agents read them from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<InstallHooks>,
    /// The policy's rollout settings in force for this run (concurrency, error budget,
    /// topology, soak, node timeout), fixed at start like the reboot option: editing the
    /// policy mid-run neither changes nor fails the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSpec>,
    /// The policy's drain settings in force for an install run, fixed at start (see
    /// `rollout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainSpec>,
    /// Node counts by outcome.
    #[serde(default)]
    pub nodes: RunNodeCounts,
    /// Failed nodes with the reason (first 100).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub failed_nodes: Vec<FailedNode>,
    /// Per-node rollout state: the durable record the controller resumes from after a restart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10000))]
    pub targets: Vec<RunTarget>,
    /// Wave in progress (1-based); 0 before the first.
    #[serde(default)]
    pub current_wave: u32,
    /// When the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// When the last wave completed (start of the soak).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_wave_completion_time: Option<Time>,
    /// Human-readable summary of the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub message: Option<String>,
    /// Ready, Progressing, Degraded, and kstatus's Reconciling (True while Pending or Running)
    /// and Stalled (True once Halted, Failed or TimedOut).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Preview runs: the fleet total of the nodes' preview results (each node's own is in its
    /// report's `status.preview`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<RunPreviewSummary>,
    /// Install runs: the package changes per node, copied from each node's report when it
    /// finishes (audit history that outlives the reports' next operation). At most 32 changes
    /// per node and 2,000 in all, in node order; the rest are counted in `changesOmitted`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2000))]
    pub changes: Vec<NodeChanges>,
    /// Package changes left out of `changes` by its bounds.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(max = 100000000))]
    pub changes_omitted: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Most package changes a run's status lists per node.
pub const MAX_RUN_CHANGES_PER_NODE: usize = 32;
/// Most package changes a run's status lists in all.
pub const MAX_RUN_CHANGES: usize = 2000;

/// The package changes of one node in a run.
#[derive(KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NodeChanges {
    /// Node name.
    pub node: String,
    /// Its changes (at most 32).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub changes: Vec<PackageChange>,
}

/// A Preview run's fleet totals.
#[derive(KubeSchema, Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RunPreviewSummary {
    /// Nodes that reported a preview result for this run.
    #[serde(default)]
    pub nodes: u32,
    /// Nodes compliant under the draft.
    #[serde(default)]
    pub compliant: u32,
    /// Nodes non-compliant under the draft.
    #[serde(default)]
    pub non_compliant: u32,
    /// Nodes compliant today that the draft would make non-compliant.
    #[serde(default)]
    pub would_become_non_compliant: u32,
    /// Nodes non-compliant today that the draft would make compliant.
    #[serde(default)]
    pub would_become_compliant: u32,
    /// Patches newly non-compliant under the draft, summed over the nodes.
    #[serde(default)]
    pub newly_missing: u32,
    /// Patches no longer non-compliant under the draft, summed over the nodes.
    #[serde(default)]
    pub no_longer_missing: u32,
}

/// A resolved baseline fixed for the run.
#[derive(KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BaselineSnapshot {
    /// Operating system of the nodes using it.
    pub operating_system: OperatingSystem,
    /// PatchBaseline name, or `nodepatch-predefined-<os>` for a built-in one.
    pub name: String,
    /// Content hash of the resolved baseline.
    pub hash: String,
    /// The resolved baseline content agents evaluate.
    pub baseline: PatchBaselineSpec,
}

/// Node counts of a run.
#[derive(KubeSchema, Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RunNodeCounts {
    /// Target nodes.
    #[serde(default)]
    pub total: u32,
    /// Not started.
    #[serde(default)]
    pub pending: u32,
    /// In progress.
    #[serde(default)]
    pub in_progress: u32,
    /// Finished.
    #[serde(default)]
    pub succeeded: u32,
    /// Finished but a reboot is still needed (NoReboot).
    #[serde(default)]
    pub succeeded_reboot_required: u32,
    /// Failed.
    #[serde(default)]
    pub failed: u32,
    /// Skipped: not patched by this run. Reasons (each target's `reason`): the node was
    /// deleted (`NodeDeleted`), got the opt-out label `nodepatch.dev/exclude=true` before it
    /// started (`Excluded`), runs an OS nodepatch does not patch (`UnsupportedOS`,
    /// `ImmutableOS`, `EndOfLife`), the run was canceled before it started (`Canceled`), or the
    /// window closed before it was reached (`WindowClosed`, `CanceledAtCutoff`). Nodes another
    /// policy also selects are not targets at all (the policies list them as conflicts).
    #[serde(default)]
    pub skipped: u32,
}

/// A failed node.
#[derive(KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FailedNode {
    /// Node name.
    pub node: String,
    /// Machine-readable reason (e.g. InstallFailed, DrainTimeout, NodeTimeout).
    pub reason: String,
    /// Details.
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub message: String,
}

/// State of one node in a run.
#[derive(JsonSchema, Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
pub enum TargetState {
    /// Not started.
    #[default]
    Pending,
    /// Labelled into the run; the agent is scanning or installing.
    InProgress,
    /// Cordoned and being drained before a reboot.
    Draining,
    /// Drained; the agent was told to reboot and the controller waits for a new boot ID.
    Rebooting,
    /// Back after reboot; waiting for the agent's confirming scan.
    Verifying,
    /// Done.
    Succeeded,
    /// Done; a reboot is still needed (NoReboot).
    SucceededRebootRequired,
    /// Failed.
    Failed,
    /// Skipped.
    Skipped,
}

impl TargetState {
    /// True once the node's part of the run is over.
    pub fn is_done(self) -> bool {
        matches!(
            self,
            TargetState::Succeeded
                | TargetState::SucceededRebootRequired
                | TargetState::Failed
                | TargetState::Skipped
        )
    }
}

/// One node's record in a run.
#[derive(KubeSchema, Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunTarget {
    /// Node name.
    pub node: String,
    /// State in this run.
    #[serde(default)]
    pub state: TargetState,
    /// Wave the node was started in (1-based); 0 while pending.
    #[serde(default)]
    pub wave: u32,
    /// Value of the policy's topologyKey label on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<String>,
    /// When the node entered the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the node finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
    /// True when the controller cordoned the node (only then does it uncordon it).
    #[serde(default)]
    pub cordoned: bool,
    /// Boot ID seen before the reboot was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// When the node entered its current state (the drain timeout and the wait for the reboot
    /// count from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_time: Option<Time>,
    /// Reason for a failure or skip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Details of a failure found by the controller (a drain that could not finish, a node that
    /// did not come back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub message: Option<String>,
}
