//! `nodepatch scan`: scan a node root offline (no cluster) and print its NodePatchReport status:
//! the OS, the compliance verdict against a baseline, and the missing patches.
//!
//! On Debian/Ubuntu nothing runs on the host by default: dpkg's database and apt's lists are
//! read in-process. rpm-family, SUSE and Alpine nodes are queried with the host's own `rpm`,
//! `dnf`, `zypper` or `apk` (read-only queries from their caches). `--refresh` refreshes the
//! metadata first (`apt-get update`, `dnf makecache`, `zypper refresh`, `apk update`). Host
//! commands run through nsenter (the default for the machine's own `/`), chroot (the default
//! for any other directory: the root's own package manager), or this machine's package manager
//! pointed at the root (`--host-exec installroot`, rpm-family fixture roots).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use jiff::Timestamp;

use crate::agent::backend::contract::NodeAgent;
use crate::agent::host::HostRoot;
use crate::agent::host::exec::HostExec;
use crate::agent::operation::{BaselineChoice, OperationRequest, run_operation};
use crate::api::{NodePatchReportStatus, Operation, OperationPhase};

/// Arguments of `nodepatch scan`.
#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "Examples:\n  nodepatch scan --host-root /\n  nodepatch scan --host-root /mnt/node --baseline nodepatch-predefined-debian --output json\n  nodepatch scan --host-root /srv/root --baseline my-baseline.yaml --refresh --host-exec chroot\n  nodepatch scan --host-root /srv/rocky9 --refresh --host-exec installroot"
)]
pub struct ScanArgs {
    /// Directory holding the node's root filesystem (`/` for this machine).
    #[arg(long, value_name = "DIR")]
    pub host_root: PathBuf,
    /// The baseline: a PatchBaseline manifest or bare spec (YAML/JSON file, `-` for stdin), or a
    /// predefined baseline name (`nodepatch-predefined-<os>`); default: the predefined baseline
    /// of the node's OS.
    #[arg(short = 'b', long, value_name = "FILE|PREDEFINED-NAME")]
    pub baseline: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = ScanOutput::Table)]
    pub output: ScanOutput,
    /// Refresh the package metadata first (`apt-get update`, `dnf makecache`, `zypper
    /// refresh`, `apk update`).
    #[arg(long)]
    pub refresh: bool,
    /// How host commands run (apt roots: only with --refresh; rpm, zypper and apk roots are
    /// always queried with their package manager). Default: the executor matching the root,
    /// `nsenter` for this machine's `/` and `chroot` for any other directory (its own package
    /// manager, never this machine's); `installroot` for rpm-family fixture roots that have no
    /// package manager of their own.
    #[arg(long, value_enum)]
    pub host_exec: Option<HostExec>,
    /// Do not write the first-seen record under the host root.
    #[arg(long)]
    pub read_only: bool,
}

/// Output formats of `nodepatch scan`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanOutput {
    /// A readable summary and the non-compliant patches.
    Table,
    /// The NodePatchReport status object as JSON.
    Json,
    /// The NodePatchReport status object as YAML.
    Yaml,
}

pub use super::baseline_arg::{BaselineArgError, load_baseline_arg};

/// `nodepatch scan`.
pub fn run(args: &ScanArgs) -> ExitCode {
    let baseline = match args.baseline.as_deref().map(load_baseline_arg).transpose() {
        Ok(Some(b)) => BaselineChoice::Resolved(Box::new(b)),
        Ok(None) => BaselineChoice::PredefinedForNode,
        Err(e) => {
            eprintln!("nodepatch scan: {e}");
            return ExitCode::from(2);
        }
    };
    let root = HostRoot::new(&args.host_root);
    if !root.path().is_dir() {
        eprintln!(
            "nodepatch scan: --host-root {}: not a directory",
            args.host_root.display()
        );
        return ExitCode::from(2);
    }
    let host_exec = args
        .host_exec
        .unwrap_or_else(|| default_host_exec(root.path()));
    let agent = NodeAgent {
        executor: host_exec.executor(root.path()),
        root,
    };
    let request = OperationRequest {
        refresh: args.refresh,
        record_first_seen: !args.read_only,
        ..OperationRequest::new(Operation::Scan, "")
    };
    let status = run_operation(&agent, &request, &baseline, &Timestamp::now);
    let rendered = match args.output {
        ScanOutput::Json => serde_json::to_string_pretty(&status)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
        ScanOutput::Yaml => crate::api::yaml::to_yaml_string(&status).map_err(|e| e.to_string()),
        ScanOutput::Table => Ok(render_table(&status)),
    };
    match rendered {
        Ok(text) => print!("{text}"),
        Err(e) => {
            eprintln!("nodepatch scan: writing output: {e}");
            return ExitCode::FAILURE;
        }
    }
    let failed = status
        .operation
        .as_ref()
        .is_some_and(|o| o.phase == OperationPhase::Failed);
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The executor matching a root: `nsenter` (the host's namespaces) only when the root is this
/// machine's own `/`, else `chroot` into it, so a scan of a directory never queries the package
/// manager of the machine it runs on.
pub fn default_host_exec(root: &std::path::Path) -> HostExec {
    let is_own_root = std::fs::canonicalize(root).is_ok_and(|p| p == std::path::Path::new("/"));
    if is_own_root {
        HostExec::Nsenter
    } else {
        HostExec::Chroot
    }
}

/// A readable summary of a report status and its non-compliant patches.
pub fn render_table(status: &NodePatchReportStatus) -> String {
    let mut out = String::new();
    if let Some(os) = &status.os {
        let family = os
            .family
            .map(|f| format!("{f:?}"))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "OS:         {} ({} {}, family {family}, kernel {})",
            os.pretty_name, os.id, os.version_id, os.kernel
        );
    }
    if let Some(b) = &status.baseline {
        let _ = writeln!(out, "Baseline:   {} (hash {})", b.name, b.hash);
    }
    if let Some(op) = &status.operation {
        let phase = format!("{:?}", op.phase);
        let _ = writeln!(
            out,
            "Operation:  {} {}",
            op.type_.map(|t| t.as_str()).unwrap_or("-"),
            phase
        );
        if let Some(message) = &op.message {
            let _ = writeln!(out, "Message:    {message}");
        }
    }
    let level = status
        .compliance_level
        .map(|l| format!(", level {}", l.as_str()))
        .unwrap_or_default();
    let _ = writeln!(out, "Compliance: {}{level}", status.compliance.as_str());
    let _ = writeln!(
        out,
        "Reboot:     {}",
        if status.reboot_required {
            "required"
        } else {
            "not required"
        }
    );
    let c = &status.counts;
    let _ = writeln!(
        out,
        "Patches:    installed {}, installedOther {}, installedPendingReboot {}, installedRejected {}, missing {}, failed {}, notApplicable {}",
        c.installed,
        c.installed_other,
        c.installed_pending_reboot,
        c.installed_rejected,
        c.missing,
        c.failed,
        c.not_applicable
    );
    let _ = writeln!(
        out,
        "Non-compliant: {} security, {} other",
        status.security_non_compliant, status.other_non_compliant
    );
    if status.patches.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "\nNon-compliant patches{}:",
        if status.truncated { " (truncated)" } else { "" }
    );
    // RELEASED is the vendor's release date (rpm updateinfo, zypper patches), or the first
    // sighting on the node where the repositories carry no dates (apt, apk).
    let mut rows: Vec<[String; 10]> = vec![[
        "NAME".into(),
        "ARCH".into(),
        "INSTALLED".into(),
        "AVAILABLE".into(),
        "STATE".into(),
        "CLASSIFICATION".into(),
        "SEVERITY".into(),
        "LEVEL".into(),
        "RELEASED".into(),
        "ADVISORY".into(),
    ]];
    for p in &status.patches {
        rows.push([
            p.name.clone(),
            p.arch.clone().unwrap_or_else(|| "-".into()),
            p.installed_version.clone().unwrap_or_else(|| "-".into()),
            p.available_version.clone().unwrap_or_else(|| "-".into()),
            format!("{:?}", p.state),
            p.classification.clone().unwrap_or_else(|| "-".into()),
            p.severity.clone().unwrap_or_else(|| "-".into()),
            p.compliance_level.map_or("-", |l| l.as_str()).to_string(),
            p.release_date
                .as_ref()
                .map(|t| t.0.strftime("%Y-%m-%d").to_string())
                .unwrap_or_else(|| "-".into()),
            p.advisory.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    let widths: Vec<usize> = (0..10)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_root_defaults_to_chroot_and_only_slash_to_nsenter() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(default_host_exec(dir.path()), HostExec::Chroot);
        assert_eq!(
            default_host_exec(std::path::Path::new("/")),
            HostExec::Nsenter
        );
        assert_eq!(
            default_host_exec(std::path::Path::new("/usr/..")),
            HostExec::Nsenter
        );
    }
}
