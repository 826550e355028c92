//! Changes on a Debian/Ubuntu host, with the host's own apt and dpkg: refresh the lists,
//! repair an interrupted dpkg, and install an exact set of `name=version` upgrades.
//!
//! What really happened is read back from dpkg's database after every apt run, never inferred
//! from apt's exit code alone: `--only-upgrade` skips a package that is not installed with
//! exit 0, and one failing maintainer script makes apt exit 100 although the other packages
//! were installed. When a run fails, the packages that caused it (named by dpkg's "Errors were
//! encountered while processing", apt's unmet dependencies or unknown versions, or left
//! half-configured) are set aside as Failed and the rest retried, so one broken package does
//! not keep the others from being installed; when no culprit can be named, the remaining
//! packages are installed one at a time.

use crate::rollout::budget;
use std::collections::BTreeMap;
use std::time::Duration;

use super::dpkg::{DpkgDatabase, DpkgError, load_database};
use crate::agent::backend::command::{
    CommandFailed, CommandStep, OutputDialect, reason_for, require_success,
};
use crate::agent::host::command::{CommandOutput, HostCommand, HostExecutor};
use crate::agent::host::{HostError, HostRoot};
use crate::baseline::version::deb::{DebVersion, compare as compare_deb};

/// Host path of the temporary apt preferences file that pins rejected packages to -1 during an
/// install under `rejectedPatchesAction: Block`.
pub const BLOCK_PREFERENCES_PATH: &str = "/run/nodepatch/rejected.pref";

/// dpkg's locks (fcntl record locks): apt holds the frontend lock for a whole run, dpkg the
/// database lock while it works.
pub const DPKG_LOCKS: [&str; 2] = ["/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock"];

/// Errors of host changes.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A command could not be started.
    #[error(transparent)]
    Host(#[from] HostError),
    /// A command ran and failed.
    #[error(transparent)]
    CommandFailed(#[from] CommandFailed),
    /// dpkg's database could not be read back.
    #[error("reading dpkg's database after install: {0}")]
    Dpkg(#[from] DpkgError),
    /// A package name or version from the lists is not one apt would accept; refused before any
    /// command runs.
    #[error("refusing to install {name:?} version {version:?}: {reason}")]
    InvalidTarget {
        /// Package name.
        name: String,
        /// Version.
        version: String,
        /// Why.
        reason: String,
    },
}

impl InstallError {
    /// Bounded category for metrics and report reasons.
    pub fn category(&self) -> &'static str {
        match self {
            InstallError::Host(e) => e.category(),
            InstallError::CommandFailed(e) => e.category(),
            InstallError::Dpkg(e) => e.category(),
            InstallError::InvalidTarget { .. } => "InvalidInstallTarget",
        }
    }
}

/// How the agent runs apt and dpkg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AptCommands {
    /// `DPkg::Lock::Timeout`: how long apt waits for another apt/dpkg to release the lock.
    pub lock_timeout_secs: u32,
    /// Timeout of `apt-get update`.
    pub refresh_timeout: Duration,
    /// Timeout of one `apt-get install`.
    pub install_timeout: Duration,
    /// Timeout of `dpkg --configure -a`.
    pub repair_timeout: Duration,
}

impl Default for AptCommands {
    fn default() -> Self {
        AptCommands {
            lock_timeout_secs: budget::LOCK_WAIT.as_secs() as u32,
            refresh_timeout: budget::std_duration(budget::REFRESH_TIMEOUT),
            install_timeout: budget::std_duration(budget::INSTALL_TIMEOUT),
            repair_timeout: budget::std_duration(budget::REPAIR_TIMEOUT),
        }
    }
}

/// Environment of every apt/dpkg command: no prompts, no needrestart interaction.
fn apt_env(command: HostCommand) -> HostCommand {
    command
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("NEEDRESTART_SUSPEND", "1")
}

impl AptCommands {
    /// `apt-get update`, with `options` (`-o` pairs: the private sources and lists of
    /// alternative patch sources, empty for the host's own).
    pub fn refresh_command(&self, options: &[String]) -> HostCommand {
        let mut argv: Vec<String> = vec!["apt-get".into(), "update".into(), "-o".into()];
        argv.push(format!("DPkg::Lock::Timeout={}", self.lock_timeout_secs));
        argv.extend(options.iter().cloned());
        apt_env(HostCommand::new(argv)).timeout(self.refresh_timeout)
    }

    /// `dpkg --audit`: lists packages an interrupted or failed run left half-done.
    pub fn audit_command(&self) -> HostCommand {
        apt_env(HostCommand::new(["dpkg", "--audit"]))
            .timeout(budget::std_duration(budget::AUDIT_TIMEOUT))
    }

    /// `dpkg --configure -a` with the same conffile policy as installs.
    pub fn repair_command(&self) -> HostCommand {
        apt_env(HostCommand::new([
            "dpkg",
            "--force-confdef",
            "--force-confold",
            "--configure",
            "-a",
        ]))
        .timeout(self.repair_timeout)
        .as_transaction()
    }

    /// `apt-get install` of exact versions, only upgrading what is installed, never removing a
    /// package (`--no-remove`: an upgrade that Breaks or Conflicts with an installed package,
    /// a container runtime say, fails instead of removing it), keeping locally modified
    /// conffiles, waiting for the dpkg lock; `options` are further `-o` pairs (the rejections'
    /// preferences file under Block, the private files of alternative sources).
    pub fn install_command(&self, arguments: &[String], options: &[String]) -> HostCommand {
        let mut argv: Vec<String> = [
            "apt-get",
            "install",
            "-y",
            "--only-upgrade",
            "--no-remove",
            "--no-install-recommends",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        argv.push("-o".into());
        argv.push(format!("DPkg::Lock::Timeout={}", self.lock_timeout_secs));
        argv.push("-o".into());
        argv.push("Dpkg::Options::=--force-confdef".into());
        argv.push("-o".into());
        argv.push("Dpkg::Options::=--force-confold".into());
        argv.extend(options.iter().cloned());
        // `--` ends apt's options: nothing after it can be read as one.
        argv.push("--".into());
        argv.extend(arguments.iter().cloned());
        let mut command = apt_env(HostCommand::new(argv)).as_transaction();
        command.timeout = self.install_timeout;
        command
    }
}

/// One package version to install.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct InstallTarget {
    /// Package name.
    pub name: String,
    /// Architecture of the version (`amd64`, `all`).
    pub arch: String,
    /// Version.
    pub version: String,
}

/// Debian policy's package name grammar: lowercase alphanumerics and `+-.`, starting with an
/// alphanumeric, at least two characters.
pub fn is_valid_package_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() >= 2
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes.iter().all(|&b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
        })
}

impl InstallTarget {
    /// Check name, architecture and version before they reach a command line.
    pub fn validate(&self) -> Result<(), InstallError> {
        let invalid = |reason: String| InstallError::InvalidTarget {
            name: self.name.clone(),
            version: self.version.clone(),
            reason,
        };
        if !is_valid_package_name(&self.name) {
            return Err(invalid("not a Debian package name".into()));
        }
        if !self
            .arch
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            || self.arch.is_empty()
        {
            return Err(invalid(format!("invalid architecture {:?}", self.arch)));
        }
        DebVersion::parse(&self.version).map_err(|e| invalid(e.to_string()))?;
        Ok(())
    }

    /// The apt argument: `name=version`, or `name:arch=version` for a foreign architecture.
    pub fn apt_argument(&self, native_arch: &str) -> String {
        if self.arch == "all" || self.arch == native_arch {
            format!("{}={}", self.name, self.version)
        } else {
            format!("{}:{}={}", self.name, self.arch, self.version)
        }
    }

    /// True when dpkg has this version (or a newer one) installed and configured.
    pub fn is_satisfied(&self, dpkg: &DpkgDatabase) -> bool {
        dpkg.find_installed(&self.name, &self.arch)
            .is_some_and(|p| compare_deb(&p.version, &self.version).is_ge())
    }
}

/// Outcome of one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetOutcome {
    /// The target.
    pub target: InstallTarget,
    /// Installed at (at least) the target version.
    pub installed: bool,
    /// Why not, when not.
    pub reason: Option<String>,
}

/// What an install did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstallReport {
    /// One outcome per target, in target order.
    pub outcomes: Vec<TargetOutcome>,
    /// One line per apt run: what was asked and how it ended.
    pub runs: Vec<String>,
}

impl InstallReport {
    /// Targets that were installed.
    pub fn installed(&self) -> impl Iterator<Item = &TargetOutcome> {
        self.outcomes.iter().filter(|o| o.installed)
    }

    /// Targets that failed.
    pub fn failed(&self) -> impl Iterator<Item = &TargetOutcome> {
        self.outcomes.iter().filter(|o| !o.installed)
    }
}

/// Outcome of the interrupted-dpkg check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepairOutcome {
    /// `dpkg --audit` reported nothing.
    NotNeeded,
    /// `dpkg --configure -a` completed; `audit` is what `dpkg --audit` had reported.
    Repaired {
        /// The audit report.
        audit: String,
    },
    /// `dpkg --configure -a` failed; installs go on (apt retries configuring), and the report
    /// says so.
    Failed {
        /// The audit report.
        audit: String,
        /// The repair error.
        error: String,
    },
}

impl RepairOutcome {
    /// One line for the report message, `None` when nothing was needed.
    pub fn summary(&self) -> Option<String> {
        let first_lines = |text: &str| {
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .take(3)
                .collect::<Vec<_>>()
                .join("; ")
        };
        match self {
            RepairOutcome::NotNeeded => None,
            RepairOutcome::Repaired { audit } => Some(format!(
                "repaired an interrupted dpkg with `dpkg --configure -a` (dpkg --audit: {})",
                first_lines(audit)
            )),
            RepairOutcome::Failed { audit, error } => Some(format!(
                "dpkg was interrupted (dpkg --audit: {}) and `dpkg --configure -a` failed: {error}",
                first_lines(audit)
            )),
        }
    }
}

/// `apt-get update` on the host (`options` as for [`AptCommands::refresh_command`]).
pub fn refresh_lists(
    executor: &dyn HostExecutor,
    commands: &AptCommands,
    options: &[String],
) -> Result<CommandOutput, InstallError> {
    let command = commands.refresh_command(options);
    let output = executor.run(&command)?;
    Ok(require_success(&command, output, CommandStep::Apt)?)
}

/// Check for an interrupted dpkg (`dpkg --audit`) and repair it (`dpkg --configure -a`) before
/// anything else touches the package database.
pub fn repair_interrupted_dpkg(
    root: &HostRoot,
    executor: &dyn HostExecutor,
    commands: &AptCommands,
) -> Result<RepairOutcome, InstallError> {
    // A transaction still running (an earlier agent's, which outlived its pod) looks
    // interrupted to `dpkg --audit` and makes `dpkg --configure -a` fail on the lock: wait for
    // it as apt waits for the lock (DPkg::Lock::Timeout).
    if !root.wait_until_unlocked(
        &DPKG_LOCKS,
        Duration::from_secs(commands.lock_timeout_secs.into()),
    )? {
        tracing::warn!(
            "dpkg is still locked after {}s; checking it anyway",
            commands.lock_timeout_secs
        );
    }
    let audit_command = commands.audit_command();
    let audit = executor.run(&audit_command)?;
    let report = format!("{}{}", audit.stdout, audit.stderr);
    if audit.success() && report.trim().is_empty() {
        return Ok(RepairOutcome::NotNeeded);
    }
    let repair_command = commands.repair_command();
    let repair = executor.run(&repair_command)?;
    Ok(
        match require_success(&repair_command, repair, CommandStep::Apt) {
            Ok(_) => RepairOutcome::Repaired { audit: report },
            Err(e) => RepairOutcome::Failed {
                audit: report,
                error: e.to_string(),
            },
        },
    )
}

/// Package names (arch qualifiers removed) that apt or dpkg name as failing in `text`.
pub fn failing_packages(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut push = |name: &str| {
        let name = name
            .trim()
            .trim_matches(|c| c == '\'' || c == '"')
            .split(':')
            .next()
            .unwrap_or_default();
        if is_valid_package_name(name) && !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    };
    let mut in_error_list = false;
    let mut in_unmet = false;
    for line in text.lines() {
        if in_error_list {
            if let Some(name) = line.strip_prefix(' ') {
                // A package name, or the path of a .deb that failed to unpack.
                push(if name.ends_with(".deb") {
                    package_of_deb_path(name)
                } else {
                    name
                });
                continue;
            }
            in_error_list = false;
        }
        if line.starts_with("Errors were encountered while processing:") {
            in_error_list = true;
            continue;
        }
        if line.starts_with("The following packages have unmet dependencies:") {
            in_unmet = true;
            continue;
        }
        if in_unmet {
            // ` np-app : Depends: np-lib (>= 2.0-1) but 1.0-1 is to be installed`; continuation
            // lines of one package are indented further and have no ` : `.
            match line.strip_prefix(' ').and_then(|l| l.split_once(" : ")) {
                Some((name, _)) if !name.starts_with(' ') => push(name),
                _ if line.starts_with(' ') => {}
                _ => in_unmet = false,
            }
        }
        if let Some(rest) = line.strip_prefix("dpkg: error processing package ") {
            push(rest.split_whitespace().next().unwrap_or_default());
        }
        // dpkg: error processing archive /var/cache/apt/archives/np-x_1.0-2_all.deb (--unpack):
        if let Some(rest) = line.strip_prefix("dpkg: error processing archive ") {
            push(package_of_deb_path(
                rest.split_whitespace().next().unwrap_or_default(),
            ));
        }
        if let Some(rest) = line.strip_prefix("E: Unable to locate package ") {
            push(rest);
        }
        // E: Version '1.0-3' for 'np-x' was not found
        if line.starts_with("E: Version '")
            && let Some((_, rest)) = line.split_once("' for '")
            && let Some((name, _)) = rest.split_once('\'')
        {
            push(name);
        }
    }
    names
}

/// apt's message when `--no-remove` stops a solution that removes packages.
pub const REMOVE_DISABLED: &str = "E: Packages need to be removed but remove is disabled.";

/// The packages apt says it would remove (`The following packages will be REMOVED:` and the
/// indented names after it), arch qualifiers and `*` (purge) marks removed.
pub fn removed_packages(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_list = false;
    for line in text.lines() {
        if line.starts_with("The following packages will be REMOVED:") {
            in_list = true;
            continue;
        }
        if in_list {
            if !line.starts_with(' ') {
                in_list = false;
                continue;
            }
            for word in line.split_whitespace() {
                let name = word
                    .trim_end_matches('*')
                    .split(':')
                    .next()
                    .unwrap_or_default();
                if is_valid_package_name(name) && !names.iter().any(|n| n == name) {
                    names.push(name.to_string());
                }
            }
        }
    }
    names
}

/// The package name of a `.deb` path (`/x/np-x_1.0-2_all.deb` → `np-x`).
fn package_of_deb_path(path: &str) -> &str {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.split('_').next().unwrap_or(file)
}

/// Install `targets` with the host's apt (see the module docs for the retry rules). Under
/// `rejectedPatchesAction: Block`, `blocked_patterns` (the baseline's rejectedPatches) are pinned
/// to priority -1 for the duration, so apt cannot pull them in as dependencies either; the
/// host's own `/etc/apt/preferences` is kept after them in that file. `options` (alternative
/// patch sources) go to every `apt-get install`.
pub fn install_packages(
    root: &HostRoot,
    executor: &dyn HostExecutor,
    commands: &AptCommands,
    targets: &[InstallTarget],
    blocked_patterns: &[String],
    options: &[String],
) -> Result<InstallReport, InstallError> {
    for target in targets {
        target.validate()?;
    }
    let mut report = InstallReport::default();
    if targets.is_empty() {
        return Ok(report);
    }
    let native_arch = load_database(root)?.native_arch;
    let preferences = if blocked_patterns.is_empty() {
        None
    } else {
        let mut text =
            String::from("# Written by the nodepatch agent for one install; removed afterwards.\n");
        for pattern in blocked_patterns {
            text.push_str(&format!(
                "\nPackage: {pattern}\nPin: version *\nPin-Priority: -1\n"
            ));
        }
        // This file stands in for /etc/apt/preferences for the one install, so the host's pins
        // follow ours (apt applies the first pin matching a version: the rejections win, every
        // other host pin still holds); /etc/apt/preferences.d is read by apt as always.
        if let Some(host) = root.read_optional(super::preferences::PREFERENCES)? {
            text.push_str("\n# /etc/apt/preferences of the host, unchanged:\n");
            text.push_str(&String::from_utf8_lossy(&host));
            text.push('\n');
        }
        root.write_atomic(BLOCK_PREFERENCES_PATH, text.as_bytes())?;
        Some(BLOCK_PREFERENCES_PATH)
    };
    // The rejections' preferences file first, then the options of alternative sources.
    let mut run_options: Vec<String> = preferences
        .map(|path| vec!["-o".to_string(), format!("Dir::Etc::Preferences={path}")])
        .unwrap_or_default();
    run_options.extend(options.iter().cloned());
    let result = install_with_retries(
        root,
        executor,
        commands,
        targets,
        &native_arch,
        &run_options,
        &mut report,
    );
    if preferences.is_some()
        && let Ok(path) = root.resolve(BLOCK_PREFERENCES_PATH)
    {
        let _ = std::fs::remove_file(path);
    }
    result?;
    report.outcomes = targets
        .iter()
        .map(|t| {
            let failure = failures_lookup(&report, t);
            TargetOutcome {
                target: t.clone(),
                installed: failure.is_none(),
                reason: failure,
            }
        })
        .collect();
    Ok(report)
}

/// Failure reasons are collected in `report.outcomes` during the retries (only failures); this
/// finds the one of `target`.
fn failures_lookup(report: &InstallReport, target: &InstallTarget) -> Option<String> {
    report
        .outcomes
        .iter()
        .find(|o| &o.target == target)
        .and_then(|o| o.reason.clone())
}

fn install_with_retries(
    root: &HostRoot,
    executor: &dyn HostExecutor,
    commands: &AptCommands,
    targets: &[InstallTarget],
    native_arch: &str,
    options: &[String],
    report: &mut InstallReport,
) -> Result<(), InstallError> {
    let mut pending: Vec<InstallTarget> = targets.to_vec();
    let mut failed: BTreeMap<InstallTarget, String> = BTreeMap::new();
    let mut one_at_a_time = false;
    // Every run either installs, or sets aside at least one target, or switches to one at a
    // time; this bound only guards against a package manager that keeps changing its mind.
    let max_runs = targets.len() * 2 + 2;
    let mut runs = 0;
    // All apt runs of one install share `install_timeout` (each gets what is left of it), so
    // the install's worst case does not grow with the retries; see docs/agent.md.
    let deadline = std::time::Instant::now() + commands.install_timeout;
    while !pending.is_empty() {
        if runs == max_runs {
            for t in pending.drain(..) {
                failed.insert(t, format!("not installed after {max_runs} apt runs"));
            }
            break;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            for t in pending.drain(..) {
                failed.insert(
                    t,
                    format!(
                        "not installed: the install's {}s budget (all apt runs) was used up",
                        commands.install_timeout.as_secs()
                    ),
                );
            }
            break;
        }
        runs += 1;
        let batch: Vec<InstallTarget> = if one_at_a_time {
            vec![pending[0].clone()]
        } else {
            pending.clone()
        };
        let arguments: Vec<String> = batch.iter().map(|t| t.apt_argument(native_arch)).collect();
        let command = commands.install_command(&arguments, options).timeout(left);
        let output = executor.run(&command)?;
        let mut dpkg = load_database(root)?;
        let not_done: Vec<InstallTarget> = batch
            .iter()
            .filter(|t| !t.is_satisfied(&dpkg))
            .cloned()
            .collect();
        report.runs.push(format!(
            "apt-get install {} → {}, {} of {} installed",
            arguments.join(" "),
            output.describe_status(),
            batch.len() - not_done.len(),
            batch.len()
        ));
        pending.retain(|t| !batch.contains(t) || not_done.contains(t));
        if not_done.is_empty() {
            continue;
        }
        if output.timed_out {
            // The timeout killed apt and the dpkg it ran, maybe in the middle of an unpack:
            // let dpkg finish or roll back what it can before anything else touches the
            // database, and say so in every reason.
            let repair = executor.run(&commands.repair_command())?;
            let line = format!("dpkg --configure -a → {}", repair.describe_status());
            report.runs.push(line.clone());
            dpkg = load_database(root)?;
            let audit = if dpkg.needs_repair() {
                "dpkg still reports half-done packages"
            } else {
                "dpkg's database is consistent"
            };
            for t in not_done {
                pending.retain(|p| p != &t);
                if t.is_satisfied(&dpkg) {
                    continue;
                }
                failed.insert(
                    t,
                    format!(
                        "apt-get install {}; ran {line} afterwards ({audit})",
                        output.describe_status()
                    ),
                );
            }
            continue;
        }
        let removals =
            if output.stdout.contains(REMOVE_DISABLED) || output.stderr.contains(REMOVE_DISABLED) {
                removed_packages(&format!("{}\n{}", output.stdout, output.stderr))
            } else {
                Vec::new()
            };
        if !removals.is_empty() && batch.len() == 1 {
            // apt's solution for this one package removes others: never (--no-remove).
            let t = batch[0].clone();
            pending.retain(|p| p != &t);
            failed.insert(
                t,
                format!(
                    "apt-get would remove {} to install it; an install never removes packages (--no-remove): {REMOVE_DISABLED}",
                    removals.join(", ")
                ),
            );
            continue;
        }
        if !removals.is_empty() {
            // Which of the batch needs the removal is not said: find out one at a time.
            one_at_a_time = true;
            continue;
        }
        let named = failing_packages(&format!("{}\n{}", output.stdout, output.stderr));
        let broken_at_target = |t: &InstallTarget| {
            dpkg.packages
                .iter()
                .find(|p| {
                    p.name == t.name
                        && p.state.is_broken()
                        && compare_deb(&p.version, &t.version).is_ge()
                })
                .map(|p| p.state.as_str())
        };
        // Only packages dpkg or apt name are culprits: the others may merely have been left
        // unpacked because apt stopped after the culprit's failure.
        let culprits: Vec<(InstallTarget, String)> = not_done
            .iter()
            .filter(|t| named.iter().any(|n| n == &t.name))
            .map(|t| {
                let state = broken_at_target(t)
                    .map(|s| format!("dpkg left it {s}: "))
                    .unwrap_or_default();
                (
                    t.clone(),
                    format!(
                        "{state}{}",
                        reason_for(&t.name, &output, OutputDialect::Apt)
                    ),
                )
            })
            .collect();
        if dpkg.needs_repair() {
            // Let dpkg finish what apt left unpacked before the next run; a culprit's own
            // failure repeats here and is expected.
            let repair = executor.run(&commands.repair_command())?;
            report.runs.push(format!(
                "dpkg --configure -a → {}",
                repair.describe_status()
            ));
        }
        if one_at_a_time || (culprits.is_empty() && (output.success() || not_done.len() == 1)) {
            // Alone, or apt succeeded without installing them (not installed, kept back): these
            // targets cannot be installed.
            for t in not_done {
                let reason = culprits
                    .iter()
                    .find(|(c, _)| c == &t)
                    .map(|(_, r)| r.clone())
                    .unwrap_or_else(|| {
                        if output.success() {
                            "apt-get did not install it (package not installed, or kept back)"
                                .to_string()
                        } else {
                            reason_for(&t.name, &output, OutputDialect::Apt)
                        }
                    });
                pending.retain(|p| p != &t);
                failed.insert(t, reason);
            }
        } else if culprits.is_empty() {
            one_at_a_time = true;
        } else {
            for (t, reason) in culprits {
                pending.retain(|p| p != &t);
                failed.insert(t, reason);
            }
        }
    }
    report.outcomes = failed
        .into_iter()
        .map(|(target, reason)| TargetOutcome {
            target,
            installed: false,
            reason: Some(reason),
        })
        .collect();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_command_has_the_exact_flags() {
        let command = AptCommands::default().install_command(&["np-sec=1.0-1+deb12u1".into()], &[]);
        assert_eq!(
            command.argv,
            vec![
                "apt-get",
                "install",
                "-y",
                "--only-upgrade",
                "--no-remove",
                "--no-install-recommends",
                "-o",
                "DPkg::Lock::Timeout=300",
                "-o",
                "Dpkg::Options::=--force-confdef",
                "-o",
                "Dpkg::Options::=--force-confold",
                "--",
                "np-sec=1.0-1+deb12u1"
            ]
        );
        assert!(
            command
                .env
                .contains(&("DEBIAN_FRONTEND".into(), "noninteractive".into()))
        );
        assert!(
            command
                .env
                .contains(&("NEEDRESTART_SUSPEND".into(), "1".into()))
        );
    }

    #[test]
    fn targets_are_validated_before_any_command() {
        let ok = InstallTarget {
            name: "libc6".into(),
            arch: "amd64".into(),
            version: "2.36-9+deb12u4".into(),
        };
        assert!(ok.validate().is_ok());
        assert_eq!(ok.apt_argument("amd64"), "libc6=2.36-9+deb12u4");
        assert_eq!(ok.apt_argument("arm64"), "libc6:amd64=2.36-9+deb12u4");
        for (name, version) in [
            ("-oAPT::x", "1"),
            ("Libc", "1"),
            ("a;b", "1"),
            ("libc6", "1 2"),
            ("libc6", ""),
        ] {
            let bad = InstallTarget {
                name: name.into(),
                arch: "amd64".into(),
                version: version.into(),
            };
            assert!(bad.validate().is_err(), "{name} {version}");
        }
    }

    #[test]
    fn failing_packages_from_dpkg_and_apt_messages() {
        let dpkg = "Setting up np-fail (1.0-2) ...\ndpkg: error processing package np-fail (--configure):\n installed np-fail package post-installation script subprocess returned error exit status 1\nErrors were encountered while processing:\n np-fail\n np-other:amd64\nE: Sub-process /usr/bin/dpkg returned an error code (1)\n";
        assert_eq!(
            failing_packages(dpkg),
            vec!["np-fail".to_string(), "np-other".to_string()]
        );
        let unmet = "Some packages could not be installed.\nThe following packages have unmet dependencies:\n np-app : Depends: np-lib (>= 2.0-1) but 1.0-1 is to be installed\n          Depends: other\n np-b : Depends: x\nE: Unable to correct problems, you have held broken packages.\n";
        assert_eq!(
            failing_packages(unmet),
            vec!["np-app".to_string(), "np-b".to_string()]
        );
        let unpack = "dpkg: error processing archive /srv/repo/pool/bookworm-updates/np-badpre_1.0-2_all.deb (--unpack):\n new np-badpre package pre-installation script subprocess returned error exit status 1\nErrors were encountered while processing:\n /srv/repo/pool/bookworm-updates/np-badpre_1.0-2_all.deb\n";
        assert_eq!(failing_packages(unpack), vec!["np-badpre".to_string()]);
        let missing =
            "E: Version '9.9' for 'np-sec' was not found\nE: Unable to locate package np-gone\n";
        assert_eq!(
            failing_packages(missing),
            vec!["np-sec".to_string(), "np-gone".to_string()]
        );
    }

    #[test]
    fn repair_summary_mentions_the_audit() {
        let outcome = RepairOutcome::Repaired {
            audit: "The following packages are only half configured:\n np-x\n".into(),
        };
        assert!(
            outcome
                .summary()
                .expect("summary")
                .contains("half configured")
        );
        assert_eq!(RepairOutcome::NotNeeded.summary(), None);
    }
}
