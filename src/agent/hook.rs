//! Install hooks: the commands a run's policy asks the agent to run on the node before
//! installing (`install.preInstall`) and after installing, before any reboot
//! (`install.postInstall`).
//!
//! A hook is an argv run through the agent's one [`HostExecutor`], the same one that runs the
//! host's package manager: in production `nsenter` into the host's namespaces, for test roots
//! `chroot`. That keeps pre-hook → install → post-hook → reboot inside one agent operation, in
//! order, which a hook Pod scheduled beside the agent could not be without a second round trip
//! through the controller. No shell is added: each argv entry reaches the program verbatim, so
//! user text meets a shell only when the user wrote `sh -c` into the argv.
//!
//! A hook that exits non-zero, cannot start, or exceeds its timeout is a [`HookError`] whose
//! [`category`](HookError::category) (`HookFailed`, `HookTimeout`) becomes the report's reason
//! and whose message carries the last lines of the hook's output. On timeout the executor kills
//! the hook's whole process group (SIGTERM, then SIGKILL after a grace period).

use std::time::Duration;

use jiff::SignedDuration;

use super::host::HostError;
use super::host::command::{CommandOutput, HostCommand, HostExecutor};
use crate::api::{HookSpec, InstallHooks};
use crate::schedule::duration::{format_duration, parse_duration};

/// Most output lines a hook failure message carries (the last ones).
pub const TAIL_LINES: usize = 20;
/// Most bytes of output a hook failure message carries, so that the message still fits the
/// run's 1024-character target message with its header.
pub const TAIL_BYTES: usize = 800;
/// Bytes of each output stream kept while the hook runs (head and tail; only the tail is used).
const HOOK_OUTPUT_BYTES: usize = 64 * 1024;
/// Longest argv shown in a message.
const COMMAND_DISPLAY_CHARS: usize = 160;
/// The shortest and longest timeout a hook may have (admission enforces the same).
const TIMEOUT_BOUNDS: (SignedDuration, SignedDuration) =
    (SignedDuration::from_secs(1), SignedDuration::from_hours(1));

/// When a hook runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookStage {
    /// Before installing: a failure means nothing is installed.
    PreInstall,
    /// After installing, before any reboot: a failure does not undo the install.
    PostInstall,
}

impl HookStage {
    /// The API spelling (`preInstall`, `postInstall`), also the hook's `NODEPATCH_HOOK`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookStage::PreInstall => "preInstall",
            HookStage::PostInstall => "postInstall",
        }
    }
}

/// A hook ready to run: its stage, argv and timeout, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    /// When it runs.
    pub stage: HookStage,
    /// `command` followed by `args`.
    pub argv: Vec<String>,
    /// Killed (with its process group) after this long.
    pub timeout: Duration,
}

/// The hooks of one install operation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hooks {
    /// Run before installing.
    pub pre_install: Option<Hook>,
    /// Run after installing, before any reboot.
    pub post_install: Option<Hook>,
}

/// A hook that did not succeed. Every variant fails the node.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The hook in the run's status is not runnable (an empty argv, a timeout out of bounds).
    #[error("{stage} hook {command} is invalid: {reason}")]
    Invalid {
        /// `preInstall` or `postInstall`.
        stage: &'static str,
        /// The argv, shortened for the message.
        command: String,
        /// What is wrong.
        reason: String,
    },
    /// The executor could not start the hook (or refused it).
    #[error("{stage} hook {command} could not start: {source}")]
    Start {
        /// `preInstall` or `postInstall`.
        stage: &'static str,
        /// The argv, shortened for the message.
        command: String,
        /// Why.
        #[source]
        source: HostError,
    },
    /// The hook ran and did not exit 0.
    #[error("{stage} hook {command} failed ({status}){}", output_suffix(.output))]
    Failed {
        /// `preInstall` or `postInstall`.
        stage: &'static str,
        /// The argv, shortened for the message.
        command: String,
        /// `exit code N`, `killed by signal N`.
        status: String,
        /// The last lines of its output ([`output_tail`]).
        output: String,
    },
    /// The hook ran past its timeout; its process group was killed.
    #[error(
        "{stage} hook {command} timed out after {timeout}; its process group was killed{}",
        output_suffix(.output)
    )]
    TimedOut {
        /// `preInstall` or `postInstall`.
        stage: &'static str,
        /// The argv, shortened for the message.
        command: String,
        /// The hook's timeout (`10m`).
        timeout: String,
        /// The last lines of its output ([`output_tail`]).
        output: String,
    },
}

impl HookError {
    /// The node's failure reason: `HookTimeout` for a timeout, else `HookFailed`.
    pub fn category(&self) -> &'static str {
        match self {
            HookError::TimedOut { .. } => "HookTimeout",
            HookError::Invalid { .. } | HookError::Start { .. } | HookError::Failed { .. } => {
                "HookFailed"
            }
        }
    }
}

fn output_suffix(output: &str) -> String {
    if output.is_empty() {
        "; no output".to_string()
    } else {
        format!("; last output:\n{output}")
    }
}

/// The argv as a message shows it: quoted entries (so spaces stay visible), shortened.
fn display_command(argv: &[String]) -> String {
    let shown = format!("{argv:?}");
    if shown.chars().count() <= COMMAND_DISPLAY_CHARS {
        return shown;
    }
    let cut: String = shown.chars().take(COMMAND_DISPLAY_CHARS - 1).collect();
    format!("{cut}…")
}

impl Hook {
    /// The runnable hook of `spec` at `stage`: argv `command` + `args`, the timeout parsed and
    /// within 1s–1h (the bounds admission enforces, checked again because the agent trusts
    /// nothing it reads).
    pub fn from_spec(stage: HookStage, spec: &HookSpec) -> Result<Hook, HookError> {
        let argv: Vec<String> = spec.command.iter().chain(&spec.args).cloned().collect();
        let invalid = |reason: String| HookError::Invalid {
            stage: stage.as_str(),
            command: display_command(&argv),
            reason,
        };
        if spec.command.first().is_none_or(|c| c.is_empty()) {
            return Err(invalid("command needs a program".to_string()));
        }
        let timeout = parse_duration(&spec.timeout)
            .map_err(|e| invalid(format!("timeout {:?}: {e}", spec.timeout)))?;
        let (min, max) = TIMEOUT_BOUNDS;
        if timeout < min || timeout > max {
            return Err(invalid(format!(
                "timeout {} is not between {} and {}",
                spec.timeout,
                format_duration(min),
                format_duration(max)
            )));
        }
        Ok(Hook {
            stage,
            argv,
            timeout: timeout.unsigned_abs(),
        })
    }
}

impl Hooks {
    /// The hooks of a run's status (`None`: no hooks).
    pub fn from_run(hooks: Option<&InstallHooks>) -> Result<Hooks, HookError> {
        let Some(hooks) = hooks else {
            return Ok(Hooks::default());
        };
        let hook = |stage, spec: &Option<HookSpec>| {
            spec.as_ref().map(|s| Hook::from_spec(stage, s)).transpose()
        };
        Ok(Hooks {
            pre_install: hook(HookStage::PreInstall, &hooks.pre_install)?,
            post_install: hook(HookStage::PostInstall, &hooks.post_install)?,
        })
    }
}

/// The last [`TAIL_LINES`] non-empty lines of a hook's output (stdout, then stderr), cut from
/// the front to at most [`TAIL_BYTES`] on a character boundary.
pub fn output_tail(output: &CommandOutput) -> String {
    let lines: Vec<&str> = output
        .stdout
        .lines()
        .chain(output.stderr.lines())
        .filter(|l| !l.trim().is_empty())
        .collect();
    let text = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
    if text.len() <= TAIL_BYTES {
        return text;
    }
    let mut start = text.len() - (TAIL_BYTES - "…".len());
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

/// A hook that succeeded: how long it took and the tail of its output (for the agent's log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookRun {
    /// Wall time.
    pub duration: Duration,
    /// [`output_tail`] of its output.
    pub output: String,
}

/// Run `hook` for PatchRun `run` through `executor`, with `NODEPATCH_RUN` and `NODEPATCH_HOOK`
/// in its environment (besides the executor's PATH and LC_ALL=C; nothing else is inherited).
pub fn run_hook(executor: &dyn HostExecutor, hook: &Hook, run: &str) -> Result<HookRun, HookError> {
    let stage = hook.stage.as_str();
    let command = HostCommand {
        max_output_bytes: HOOK_OUTPUT_BYTES,
        ..HostCommand::new(hook.argv.iter().cloned())
            .env("NODEPATCH_RUN", run)
            .env("NODEPATCH_HOOK", stage)
            .timeout(hook.timeout)
    };
    let output = executor.run(&command).map_err(|source| HookError::Start {
        stage,
        command: display_command(&hook.argv),
        source,
    })?;
    let tail = output_tail(&output);
    if output.timed_out {
        return Err(HookError::TimedOut {
            stage,
            command: display_command(&hook.argv),
            timeout: format_duration(SignedDuration::try_from(hook.timeout).unwrap_or_default()),
            output: tail,
        });
    }
    if !output.success() {
        return Err(HookError::Failed {
            stage,
            command: display_command(&hook.argv),
            status: output.describe_status(),
            output: tail,
        });
    }
    Ok(HookRun {
        duration: output.duration,
        output: tail,
    })
}

#[cfg(test)]
mod tests;
