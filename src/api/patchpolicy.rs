//! PatchPolicy: which nodes are patched, with which baselines, when and how fast.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{
    DURATION_PATTERN, NAME_PATTERN, NodeComplianceCounts, RebootOption, SeverityCounts,
};

/// Default scan schedule: daily at 01:00 UTC.
pub const DEFAULT_SCAN_SCHEDULE: &str = "cron(0 1 * * ? *)";

/// Targets, baselines, scan schedule, install windows and rollout limits for a set of nodes.
#[derive(CustomResource, KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq)]
#[kube(
    group = "nodepatch.dev",
    version = "v1alpha1",
    kind = "PatchPolicy",
    plural = "patchpolicies",
    shortname = "nppol",
    doc = "Where and how fast nodes are patched: a node selector, the PatchBaselines per operating system, a scan schedule, install maintenance windows and reboot option, rollout limits (concurrency, error budget) and drain settings. The controller starts PatchRuns from it and rolls their results up into its status (compliance counts, active run, conditions).",
    category = "nodepatch",
    status = "PatchPolicyStatus",
    printcolumn = r#"{"name":"Nodes","type":"integer","jsonPath":".status.nodes.total"}"#,
    printcolumn = r#"{"name":"Compliant","type":"integer","jsonPath":".status.nodes.compliant"}"#,
    printcolumn = r#"{"name":"NonCompliant","type":"integer","jsonPath":".status.nodes.nonCompliant"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","description":"phase of the active run","jsonPath":".status.activeRunPhase"}"#,
    printcolumn = r#"{"name":"Next Window","type":"string","format":"date-time","jsonPath":".status.nextInstallWindow"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PatchPolicySpec {
    /// Nodes this policy manages. Nodes labelled `nodepatch.dev/exclude=true` never match; a node
    /// matched by two policies is a conflict and is skipped by both until resolved.
    pub node_selector: LabelSelector,
    /// PatchBaselines to use, at most one per operating system. A node whose OS has none here
    /// uses that OS's default PatchBaseline, else the predefined one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 13),
        inner(length(min = 1, max = 253), pattern(NAME_PATTERN))
    )]
    pub baseline_refs: Vec<String>,
    /// Read-only compliance scans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanSpec>,
    /// Installs. Absent: a scan-only policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<InstallSpec>,
    /// How many nodes may be patched at once, error budget and ordering.
    #[serde(default)]
    pub rollout: RolloutSpec,
    /// How nodes are drained before a reboot.
    #[serde(default)]
    pub drain: DrainSpec,
    /// Finished PatchRuns of this policy kept (oldest deleted first).
    #[serde(default = "default_history_limit")]
    #[schemars(range(min = 1, max = 100))]
    pub history_limit: u32,
    /// Suspend the policy: no new runs start; an active run finishes its in-flight nodes.
    #[serde(default)]
    pub suspend: bool,
}

fn default_history_limit() -> u32 {
    10
}

/// Scan schedule.
#[derive(KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScanSpec {
    /// When scans run (same syntax as MaintenanceWindow.spec.schedule). Default daily 01:00.
    #[serde(default = "default_scan_schedule")]
    #[schemars(length(min = 1, max = 256))]
    pub schedule: String,
    /// IANA time zone of the schedule. Default UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), pattern(r"^[A-Za-z][A-Za-z0-9_+/-]*$"))]
    pub time_zone: Option<String>,
}

fn default_scan_schedule() -> String {
    DEFAULT_SCAN_SCHEDULE.to_string()
}

impl Default for ScanSpec {
    fn default() -> Self {
        ScanSpec {
            schedule: default_scan_schedule(),
            time_zone: None,
        }
    }
}

/// Install settings.
#[derive(KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstallSpec {
    /// MaintenanceWindows in which installs may run (any of them).
    #[schemars(
        length(min = 1, max = 10),
        inner(length(min = 1, max = 253), pattern(NAME_PATTERN))
    )]
    pub maintenance_window_refs: Vec<String>,
    /// RebootIfNeeded: cordon, drain, reboot and uncordon nodes whose updates need a reboot.
    /// NoReboot: never reboot.
    #[serde(default)]
    pub reboot_option: RebootOption,
    /// Optional command the agent runs on the node before installing: the argv `command` +
    /// `args`, in the host's namespaces, as root, no shell added (write `["sh", "-c", "..."]`
    /// for one). When it exits non-zero or exceeds its timeout, the node fails (reason
    /// HookFailed or HookTimeout, the output's last lines in the message) and nothing is
    /// installed on it. Fixed in the PatchRun when the run starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_install: Option<HookSpec>,
    /// Optional command the agent runs on the node after installing, before any reboot (like
    /// preInstall). It runs whenever preInstall (if any) succeeded, also after an install that
    /// failed. When it fails, the node fails (HookFailed or HookTimeout): the install is not
    /// undone and the node is not rebooted by this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_install: Option<HookSpec>,
}

/// Hook timeout when none is given.
pub const DEFAULT_HOOK_TIMEOUT: &str = "10m";

/// A command the agent runs on the node as an install hook: in the host's namespaces, through
/// the same executor as the host's package manager (so it is ordered exactly between the
/// install and the reboot), as the argv `command` + `args`. No shell is added: write
/// `["sh", "-c", "..."]` to use one. It runs as root with PATH, LC_ALL=C, NODEPATCH_RUN (the
/// PatchRun) and NODEPATCH_HOOK (preInstall or postInstall) in its environment; its whole
/// process group is killed when it exceeds its timeout. The last lines of its output are in
/// the node's failure message.
#[derive(KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HookSpec {
    /// Program and leading arguments (argv; `command[0]` is looked up in the host's PATH, or
    /// an absolute path). Each entry reaches the program verbatim.
    #[schemars(
        length(min = 1, max = 64),
        inner(length(min = 1, max = 4096), pattern(r"^[^\x00]+$"))
    )]
    pub command: Vec<String>,
    /// Further arguments, appended to `command` (verbatim, no shell).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 4096), pattern(r"^[^\x00]*$")))]
    pub args: Vec<String>,
    /// Time the hook may take (1s to 1h); past it, its process group is killed and the node
    /// fails with HookTimeout. Default 10m.
    #[serde(default = "default_hook_timeout")]
    #[schemars(length(min = 2, max = 32), pattern(DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s') && duration(self) <= duration('1h')").message("timeout must be between 1s and 1h"))]
    pub timeout: String,
}

fn default_hook_timeout() -> String {
    DEFAULT_HOOK_TIMEOUT.to_string()
}

/// A run's install hooks, copied from its policy's `install.preInstall` / `install.postInstall`
/// when the run starts.
#[derive(KubeSchema, Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstallHooks {
    /// Run before installing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_install: Option<HookSpec>,
    /// Run after installing, before any reboot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_install: Option<HookSpec>,
}

/// Rollout limits.
#[derive(KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Most nodes in progress at once: an integer from 1 to 2147483647 or a percentage of the
    /// run's nodes (`10%`, rounded down, at least 1 node).
    #[serde(default = "default_max_concurrency")]
    #[x_kube(validation = Rule::new("type(self) == int ? self >= 1 && self <= 2147483647 : self.matches('^([1-9][0-9]{0,9}|[1-9][0-9]?%|100%)$') && (self.endsWith('%') || int(self) <= 2147483647)").message("maxConcurrency must be an integer 1-2147483647 or a percentage 1%-100% (e.g. 10%)"))]
    pub max_concurrency: IntOrString,
    /// Failed nodes tolerated: an integer from 0 to 2147483647 or a percentage of the run's
    /// nodes. When more nodes fail, the run is Halted: no new nodes start and in-flight nodes
    /// finish.
    #[serde(default = "default_max_errors")]
    #[x_kube(validation = Rule::new("type(self) == int ? self >= 0 && self <= 2147483647 : self.matches('^([0-9]|[1-9][0-9]{1,9}|[0-9]%|[1-9][0-9]%|100%)$') && (self.endsWith('%') || int(self) <= 2147483647)").message("maxErrors must be an integer 0-2147483647 or a percentage 0%-100% (e.g. 1 or 5%)"))]
    pub max_errors: IntOrString,
    /// Patch one value of this node label at a time (e.g. `topology.kubernetes.io/zone`),
    /// smallest group first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 316), pattern(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"))]
    pub topology_key: Option<String>,
    /// Wait this long after a wave completes before starting the next. Default 0s.
    #[serde(default = "default_soak_time")]
    #[schemars(length(min = 2, max = 32), pattern(DURATION_PATTERN))]
    pub soak_time: String,
    /// A node not done within this time (from entering the run) is Failed. Default 2h30m. For
    /// a policy with `install`, it must cover the agent's worst case for one node's install
    /// (the hooks' timeouts + 1h52m: refresh 10m, lock wait 5m, audit 2m, two repairs of 15m,
    /// transactions 1h, scans 5m), else the
    /// policy is not Ready (reason InvalidRollout) and its install runs fail at start. A node
    /// whose agent is still installing at the timeout is Failed but keeps its agent until
    /// the transaction ends.
    #[serde(default = "default_node_timeout")]
    #[schemars(length(min = 2, max = 32), pattern(DURATION_PATTERN))]
    pub node_timeout: String,
}

fn default_max_concurrency() -> IntOrString {
    IntOrString::String("10%".to_string())
}
fn default_max_errors() -> IntOrString {
    IntOrString::Int(1)
}
fn default_soak_time() -> String {
    "0s".to_string()
}
fn default_node_timeout() -> String {
    "2h30m".to_string()
}

impl Default for RolloutSpec {
    fn default() -> Self {
        RolloutSpec {
            max_concurrency: default_max_concurrency(),
            max_errors: default_max_errors(),
            topology_key: None,
            soak_time: default_soak_time(),
            node_timeout: default_node_timeout(),
        }
    }
}

/// Drain settings (used only for nodes that need a reboot).
#[derive(KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DrainSpec {
    /// Drain before rebooting. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Give up draining after this long: the node is Failed and uncordoned. Default 15m.
    #[serde(default = "default_drain_timeout")]
    #[schemars(length(min = 2, max = 32), pattern(DURATION_PATTERN))]
    pub timeout: String,
    /// Override each pod's terminationGracePeriodSeconds when evicting (at most 4294967295s,
    /// the most the Eviction request carries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 32), pattern(DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) <= duration('4294967295s')").message("gracePeriod must be at most 4294967295s"))]
    pub grace_period: Option<String>,
    /// Evict pods using emptyDir volumes (their data is lost). Default true.
    #[serde(default = "default_true")]
    pub delete_empty_dir_data: bool,
    /// Only evict pods matching this selector (others are left running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    /// Delete pods not managed by a controller (they are not recreated). Default false: such
    /// pods block the drain.
    #[serde(default)]
    pub force: bool,
}

fn default_true() -> bool {
    true
}
fn default_drain_timeout() -> String {
    "15m".to_string()
}

impl Default for DrainSpec {
    fn default() -> Self {
        DrainSpec {
            enabled: true,
            timeout: default_drain_timeout(),
            grace_period: None,
            delete_empty_dir_data: true,
            pod_selector: None,
            force: false,
        }
    }
}

/// Observed state of a PatchPolicy.
#[derive(KubeSchema, Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PatchPolicyStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Matched nodes by compliance (conflicting nodes counted apart).
    #[serde(default)]
    pub nodes: NodeComplianceCounts,
    /// Missing patches over all nodes, by compliance level.
    #[serde(default)]
    pub missing_by_severity: SeverityCounts,
    /// Last completed scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan_time: Option<Time>,
    /// Last completed install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_install_time: Option<Time>,
    /// Start of the next install window (the open one while open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_install_window: Option<Time>,
    /// The PatchRun in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_run: Option<String>,
    /// Phase of the active run (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_run_phase: Option<String>,
    /// Nodes also matched by another policy (first 100).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub conflicts: Vec<PolicyConflict>,
    /// Ready (references valid; reason Suspended when `spec.suspend`), Progressing (a run is
    /// active), Degraded, and kstatus's Reconciling and Stalled: Stalled True while the policy is
    /// not Ready or has node conflicts, both False otherwise (an active run is not Reconciling).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// A node matched by this policy and another one.
#[derive(KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct PolicyConflict {
    /// The node.
    pub node: String,
    /// The other policy that selects it.
    pub other_policy: String,
}
