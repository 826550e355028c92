//! What every backend does with a package manager's command: require that it succeeded
//! ([`require_success`], [`command_failed`]) and say why a package was not installed from its
//! output ([`reason_for`]). One copy for apt, dnf, zypper and apk; where the package managers'
//! output differs, the difference is a value ([`OutputDialect`]), not another copy.

use crate::agent::host::command::{CommandOutput, HostCommand};

/// Which package-manager command failed: the bounded category of a [`CommandFailed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandStep {
    /// Any apt-get or dpkg command (refresh, repair, install).
    Apt,
    /// `rpm -qa`.
    RpmQuery,
    /// `dnf makecache`.
    DnfRefresh,
    /// `dnf repoquery --upgrades`.
    DnfQuery,
    /// `dnf upgrade`.
    DnfInstall,
    /// `zypper refresh`.
    ZypperRefresh,
    /// `zypper list-patches`.
    ZypperListPatches,
    /// `apk update`.
    ApkRefresh,
    /// `apk version -l '<'`.
    ApkQuery,
}

impl CommandStep {
    /// Bounded category for metrics and report reasons.
    pub fn category(self) -> &'static str {
        match self {
            CommandStep::Apt => "AptCommandFailed",
            CommandStep::RpmQuery => "RpmQueryFailed",
            CommandStep::DnfRefresh => "DnfRefreshFailed",
            CommandStep::DnfQuery => "DnfQueryFailed",
            CommandStep::DnfInstall => "DnfInstallFailed",
            CommandStep::ZypperRefresh => "ZypperRefreshFailed",
            CommandStep::ZypperListPatches => "ZypperListPatchesFailed",
            CommandStep::ApkRefresh => "ApkRefreshFailed",
            CommandStep::ApkQuery => "ApkQueryFailed",
        }
    }
}

/// A host command that ran and failed: which step, the command, how it ended and the tail of
/// its output (what the package manager said went wrong).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{command}` failed ({status}): {tail}")]
pub struct CommandFailed {
    /// Which command it was (its category).
    pub step: CommandStep,
    /// The argv joined.
    pub command: String,
    /// Exit status description.
    pub status: String,
    /// Last lines of its output.
    pub tail: String,
}

impl CommandFailed {
    /// Bounded category for metrics and report reasons.
    pub fn category(&self) -> &'static str {
        self.step.category()
    }
}

/// The output when the command succeeded, else the failure with its tail.
pub fn require_success(
    command: &HostCommand,
    output: CommandOutput,
    step: CommandStep,
) -> Result<CommandOutput, CommandFailed> {
    if output.success() {
        Ok(output)
    } else {
        Err(command_failed(command, &output, step))
    }
}

/// The failure of `command` that produced `output`.
pub fn command_failed(
    command: &HostCommand,
    output: &CommandOutput,
    step: CommandStep,
) -> CommandFailed {
    CommandFailed {
        step,
        command: command.display(),
        status: output.describe_status(),
        tail: output.tail(5),
    }
}

/// How a package manager's output names what went wrong with a package, for [`reason_for`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputDialect {
    /// apt-get and dpkg: lines naming the package with `error`, `Depends`, `E:` or `returned`;
    /// else the output's tail.
    Apt,
    /// dnf, zypper and apk: lines naming the package that say what went wrong (`Problem:`,
    /// `nothing provides`, `error`, `No match`, …) first, else any line naming it
    /// (transaction-table rows and progress lines skipped), else the output's tail.
    Rpm,
}

/// Words that make a line of dnf's, zypper's or apk's output say why (matched lowercase).
const RPM_TELLING: [&str; 7] = [
    "problem",
    "nothing provides",
    "error",
    "no match",
    "conflict",
    "failed",
    "not installed",
];

/// Progress lines of dnf's transaction that name a package without saying anything about it.
const RPM_PROGRESS: [&str; 5] = [
    "Upgrading",
    "Verifying",
    "Cleanup",
    "Running scriptlet",
    "Installing",
];

/// Why `name` was not installed, from a package manager's output in `dialect`: at most three
/// lines joined with `; `, else the output's last three lines.
pub fn reason_for(name: &str, output: &CommandOutput, dialect: OutputDialect) -> String {
    let text = format!("{}\n{}", output.stdout, output.stderr);
    let chosen: Vec<String> = match dialect {
        OutputDialect::Apt => text
            .lines()
            .map(str::trim)
            .filter(|l| {
                l.contains(name)
                    && (l.contains("error")
                        || l.contains("Depends")
                        || l.starts_with("E:")
                        || l.contains("returned"))
            })
            .take(3)
            .map(str::to_string)
            .collect(),
        OutputDialect::Rpm => {
            let mentioning: Vec<String> = text
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|l| l.contains(name))
                .filter(|l| {
                    // ` np-fail  noarch  1.1-1  np  6.0 k`: a row of dnf's transaction table.
                    l.split(' ').next() != Some(name)
                        && !RPM_PROGRESS.iter().any(|p| l.starts_with(p))
                })
                .collect();
            let telling: Vec<String> = mentioning
                .iter()
                .filter(|l| {
                    let lower = l.to_ascii_lowercase();
                    RPM_TELLING.iter().any(|t| lower.contains(t))
                })
                .cloned()
                .collect();
            let chosen = if telling.is_empty() {
                mentioning
            } else {
                telling
            };
            chosen.into_iter().take(3).collect()
        }
    };
    if chosen.is_empty() {
        output.tail(3)
    } else {
        chosen.join("; ")
    }
}

/// The names among `names` (packages a dry run says a transaction would install or upgrade)
/// that a rejectedPatches entry matches, by package name (`*` the wildcard, as the baseline's
/// grammar has it): under `rejectedPatchesAction: Block` such a transaction must not run.
pub fn rejected_among(names: &[String], patterns: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|name| {
            patterns
                .iter()
                .any(|p| crate::baseline::wildcard::wildcard_match(p, name, false))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(stdout: &str, stderr: &str) -> CommandOutput {
        CommandOutput {
            exit_code: Some(100),
            stdout: stdout.to_string(),
            stderr: stderr.to_string(),
            ..CommandOutput::default()
        }
    }

    #[test]
    fn require_success_keeps_the_step_as_category_and_the_tail_as_message() {
        let command = HostCommand::new(["dnf", "-y", "makecache"]);
        let err = require_success(
            &command,
            failed("", "a\nb\nCurl error (6)\n"),
            CommandStep::DnfRefresh,
        )
        .expect_err("failed");
        assert_eq!(err.category(), "DnfRefreshFailed");
        assert_eq!(
            err.to_string(),
            "`dnf -y makecache` failed (exit code 100): a\nb\nCurl error (6)"
        );
    }

    #[test]
    fn apt_dialect_falls_back_to_the_tail_when_no_line_says_why() {
        let out = failed(
            "Setting up np-x (1.0-2) ...\n",
            "E: Sub-process returned an error\n",
        );
        assert_eq!(
            reason_for("np-x", &out, OutputDialect::Apt),
            "E: Sub-process returned an error"
        );
        let out = failed("", "dpkg: error processing package np-x (--configure):\n");
        assert_eq!(
            reason_for("np-x", &out, OutputDialect::Apt),
            "dpkg: error processing package np-x (--configure):"
        );
    }

    #[test]
    fn rpm_dialect_prefers_telling_lines_then_any_mention() {
        let out = failed(
            " np-fail   noarch   1.1-1   np   6.0 k\nUpgrading : np-fail\nnp-fail scriptlet said hi\n",
            "Error: Transaction failed for np-fail\n",
        );
        assert_eq!(
            reason_for("np-fail", &out, OutputDialect::Rpm),
            "Error: Transaction failed for np-fail"
        );
        let out = failed("np-fail: something happened\n", "");
        assert_eq!(
            reason_for("np-fail", &out, OutputDialect::Rpm),
            "np-fail: something happened"
        );
    }

    #[test]
    fn failure_reasons_prefer_the_lines_that_say_what_went_wrong() {
        let output = CommandOutput {
            exit_code: Some(0),
            stdout: "Skipping packages with broken dependencies:\n np-fail    noarch    1.1-1    np    6.0 k\nSkipped:\n  np-fail-1.1-1.noarch\n".into(),
            stderr: " Problem: cannot install the best update candidate for package np-fail-1.0-1.noarch\n  - nothing provides np-nonexistent needed by np-fail-1.1-1.noarch\n".into(),
            ..CommandOutput::default()
        };
        assert_eq!(
            reason_for("np-fail", &output, OutputDialect::Rpm),
            "Problem: cannot install the best update candidate for package np-fail-1.0-1.noarch; - nothing provides np-nonexistent needed by np-fail-1.1-1.noarch"
        );
        assert_eq!(
            reason_for("np-other", &output, OutputDialect::Rpm),
            output.tail(3)
        );
    }
}
