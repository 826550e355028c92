//! The command line of `kubectl nodepatch`: connection flags shared by every command (like
//! kubectl's), and one argument struct per command, each with examples in its help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::output::OutputFormat;

const EXAMPLES: &str = "Examples:
  kubectl nodepatch status
  kubectl nodepatch report --policy web -o csv > fleet.csv
  kubectl nodepatch report --patches --state Missing -l node-role.kubernetes.io/worker
  kubectl nodepatch why node-1 openssl
  kubectl nodepatch patch-now web --nodes node-1,node-2 --wait
  kubectl nodepatch preview -f stricter-baseline.yaml --fail-on-noncompliant
  kubectl nodepatch history web --node node-1
  kubectl nodepatch suspend web
  kubectl nodepatch cancel web-now-x7k2p --reason 'change freeze'
  kubectl nodepatch --context prod status";

/// `kubectl nodepatch`: fleet patch reports, runs and control for nodepatch.
#[derive(Parser, Debug)]
#[command(
    name = "kubectl-nodepatch",
    bin_name = "kubectl nodepatch",
    version,
    about = "nodepatch from kubectl: fleet compliance reports, patch runs, suspend, cancel and why a version is (not) approved",
    after_help = EXAMPLES
)]
pub struct Cli {
    /// How to reach the cluster.
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// How to reach the cluster, as kubectl does.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace of the PatchRun Events (`history`); the nodepatch kinds themselves are
    /// cluster-scoped and need none.
    #[arg(
        short = 'n',
        long,
        global = true,
        value_name = "NAMESPACE",
        default_value = "default"
    )]
    pub namespace: String,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Policies with node counts by compliance, active runs with progress, maintenance windows.
    Status(StatusArgs),
    /// One row per node (OS, compliance, level, non-compliant patches by level, reboot pending,
    /// last scan), or with --patches one row per node and non-compliant patch.
    Report(ReportArgs),
    /// Suspend a policy: no new runs start (an active run finishes its in-flight nodes).
    Suspend(PolicyArgs),
    /// Resume a suspended policy.
    Resume(PolicyArgs),
    /// Cancel a run: no new node starts, in-flight nodes finish, pending ones are skipped.
    Cancel(CancelArgs),
    /// Which rule or list approves or rejects each version of a package on a node, traced
    /// from the node's report.
    Why(WhyArgs),
    /// Start a manual PatchRun of a policy now (windows ignored, rollout limits kept).
    PatchNow(PatchNowArgs),
    /// What a draft baseline would change on the fleet, compared with today's verdicts: agents
    /// evaluate it on the nodes' real packages and install nothing.
    Preview(PreviewArgs),
    /// Finished runs, newest first (also those pruned by historyLimit, from their Events), or
    /// with --node the package changes runs made on one node.
    History(HistoryArgs),
}

/// `preview`.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  kubectl nodepatch preview -f stricter-baseline.yaml
  kubectl nodepatch preview -f stricter-baseline.yaml --policy web
  kubectl nodepatch preview -f draft.yaml -l topology.kubernetes.io/zone=zone-a -o json
  kubectl nodepatch preview -f draft.yaml --fail-on-noncompliant   # in a CI pipeline")]
pub struct PreviewArgs {
    /// The draft: a PatchBaseline manifest (the first of a multi-document file) or a bare spec;
    /// `-` reads stdin.
    #[arg(short = 'f', long = "filename", value_name = "BASELINE.yaml")]
    pub file: String,
    /// Preview on this policy's nodes only (default: every policy that is not suspended).
    #[arg(long, value_name = "POLICY", conflicts_with = "selector")]
    pub policy: Option<String>,
    /// Preview on the nodes with these labels only (one run per policy covering some of them).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Exit 1 when any node would be non-compliant under the draft (after printing the result).
    #[arg(long)]
    pub fail_on_noncompliant: bool,
    /// Give up waiting for the preview runs after this long (e.g. 10m); default: as long as they
    /// run.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = DocumentFormat::Table)]
    pub output: DocumentFormat,
}

/// `history`.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  kubectl nodepatch history
  kubectl nodepatch history web -o wide
  kubectl nodepatch history web --node node-1
  kubectl nodepatch history --node node-1 -o csv > node-1-changes.csv
  kubectl nodepatch history -n default -o json | jq '.[] | select(.requestedBy != \"system:nodepatch\")'")]
pub struct HistoryArgs {
    /// Only runs of this policy.
    pub policy: Option<String>,
    /// The package changes runs made on this node (one row per change) instead of the runs.
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// `status`.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  kubectl nodepatch status
  kubectl nodepatch status -l team=payments
  kubectl nodepatch status -o json | jq '.runs[] | select(.phase == \"Running\")'")]
pub struct StatusArgs {
    /// Only policies, runs and windows with these labels (a label selector, e.g. `team=web`).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Output format (json and yaml: one object with policies, runs and windows).
    #[arg(short = 'o', long, value_enum, default_value_t = StatusFormat::Table)]
    pub output: StatusFormat,
}

/// `-o` of the commands that print one document (`why`, `preview`): text, or the data.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DocumentFormat {
    /// Text: summary lines and tables.
    #[default]
    Table,
    /// The data as JSON.
    Json,
    /// The data as YAML.
    Yaml,
}

/// `-o` of `status`: its three tables, or one object holding them.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StatusFormat {
    /// Three tables.
    #[default]
    Table,
    /// Three tables with the extra columns.
    Wide,
    /// `{policies, runs, windows}` as JSON.
    Json,
    /// `{policies, runs, windows}` as YAML.
    Yaml,
}

/// `report`.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  kubectl nodepatch report
  kubectl nodepatch report --policy web --state NonCompliant
  kubectl nodepatch report -l topology.kubernetes.io/zone=zone-a -o wide
  kubectl nodepatch report --patches --state Missing -o csv > missing.csv
  kubectl nodepatch report -o json | jq -r '.[] | select(.complianceLevel == \"Critical\") | .node'")]
pub struct ReportArgs {
    /// Only nodes with these labels (a label selector over Nodes; reports are named after
    /// their node). Nodes selected but without a report show as Unknown.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Only nodes the policy's node selector covers.
    #[arg(long, value_name = "POLICY")]
    pub policy: Option<String>,
    /// Only nodes with this compliance, or (patch states) nodes and patches in this state.
    #[arg(long, value_enum, value_name = "STATE")]
    pub state: Option<StateFilter>,
    /// One row per node and non-compliant patch instead of one per node.
    #[arg(long)]
    pub patches: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// `--state` of `report`: a node compliance or a patch state.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateFilter {
    /// Nodes whose report is Compliant.
    #[value(name = "Compliant")]
    Compliant,
    /// Nodes whose report is NonCompliant.
    #[value(name = "NonCompliant")]
    NonCompliant,
    /// Nodes not scanned yet, whose last scan failed, or without a report.
    #[value(name = "Unknown")]
    Unknown,
    /// Nodes nodepatch does not patch.
    #[value(name = "NotApplicable")]
    NotApplicable,
    /// Patches approved and not installed (and their nodes).
    #[value(name = "Missing")]
    Missing,
    /// Patches whose install failed (and their nodes).
    #[value(name = "Failed")]
    Failed,
    /// Patches installed that wait for a reboot (and their nodes).
    #[value(name = "InstalledPendingReboot")]
    InstalledPendingReboot,
    /// Rejected patches installed although blocked (and their nodes).
    #[value(name = "InstalledRejected")]
    InstalledRejected,
}

/// `suspend` and `resume`.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  kubectl nodepatch suspend web
  kubectl nodepatch resume web")]
pub struct PolicyArgs {
    /// The PatchPolicy.
    pub policy: String,
}

/// `cancel`.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  kubectl nodepatch cancel web-now-x7k2p
  kubectl nodepatch cancel web-scan-20260105 --reason 'change freeze until Monday'")]
pub struct CancelArgs {
    /// The PatchRun.
    pub run: String,
    /// Why (shown in the run's condition and Event).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

/// `why`.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  kubectl nodepatch why node-1 openssl
  kubectl nodepatch why node-1 openssl -o json | jq '.candidates[] | {version, reason}'")]
pub struct WhyArgs {
    /// The node (its NodePatchReport has the same name).
    pub node: String,
    /// The package, as the report names it.
    pub package: String,
    /// Evaluate as of this time (RFC 3339 or YYYY-MM-DD); default now.
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
    /// Output format: table (the trace), json or yaml (`{baseline, status, candidates}`, as
    /// `nodepatch evaluate` prints them).
    #[arg(short = 'o', long, value_enum, default_value_t = DocumentFormat::Table)]
    pub output: DocumentFormat,
}

/// `patch-now`.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  kubectl nodepatch patch-now web
  kubectl nodepatch patch-now web --nodes node-1,node-2 --wait
  kubectl nodepatch patch-now web -l topology.kubernetes.io/zone=zone-a --reboot-option NoReboot
  kubectl nodepatch patch-now web --operation Scan --wait")]
pub struct PatchNowArgs {
    /// The PatchPolicy to run.
    pub policy: String,
    /// Only these nodes of the policy (comma-separated); each must be one of its members.
    #[arg(
        long,
        value_name = "NODE,…",
        value_delimiter = ',',
        conflicts_with = "selector"
    )]
    pub nodes: Vec<String>,
    /// Only the policy's nodes with these labels (resolved to node names here).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Override the policy's reboot option for this run.
    #[arg(long, value_enum, value_name = "OPTION")]
    pub reboot_option: Option<RebootChoice>,
    /// What the run does.
    #[arg(long, value_enum, default_value_t = OperationChoice::Install)]
    pub operation: OperationChoice,
    /// Follow the run until it finishes (a progress bar on a terminal); exit 1 unless it
    /// Succeeded.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long (e.g. 30m); default: wait as long as it runs.
    #[arg(long, value_name = "DURATION", requires = "wait")]
    pub timeout: Option<String>,
}

/// `--reboot-option`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RebootChoice {
    /// Cordon, drain and reboot nodes whose updates need it.
    #[value(name = "RebootIfNeeded")]
    RebootIfNeeded,
    /// Never reboot.
    #[value(name = "NoReboot")]
    NoReboot,
}

/// `--operation` of `patch-now`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationChoice {
    /// Install the approved patches.
    #[value(name = "Install")]
    Install,
    /// Scan only.
    #[value(name = "Scan")]
    Scan,
}
