//! One host command and what it produced, the [`HostExecutor`] trait the executors implement,
//! and running an argv: our environment only, a timeout that kills the process group, and
//! output captured within a bound (head and tail kept).
//!
//! A command outlives the agent if the agent dies: the child leads its own session (`setsid`,
//! so a signal to the agent's process group misses it) and writes its stdout and stderr into
//! unlinked files, not pipes (a pipe whose reader died ends apt and dpkg with `SIGPIPE` at their
//! next line of output). The executors add what the host needs on top (a systemd scope, or a
//! host cgroup, for package transactions: see [`super::exec`]).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::HostError;

/// PATH given to host commands: the standard Debian/RHEL/SUSE/Alpine search path.
pub const HOST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One command to run on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostCommand {
    /// Program and arguments; `argv[0]` is looked up in the host's PATH.
    pub argv: Vec<String>,
    /// Environment of the command besides `PATH` and `LC_ALL=C` (nothing is inherited).
    pub env: Vec<(String, String)>,
    /// Killed (process group, SIGTERM then SIGKILL) after this long.
    pub timeout: Duration,
    /// Bytes kept of each of stdout and stderr (half from the start, half from the end).
    pub max_output_bytes: usize,
    /// A package transaction (apt-get install, dpkg --configure, dnf, zypper, apk add, …): it
    /// must finish even when the agent's pod is deleted, so the production executor runs it
    /// outside the pod's cgroup, and an agent that is stopping starts none
    /// ([`StoppingExecutor`]).
    pub transaction: bool,
}

impl HostCommand {
    /// A command with the default limits: 10 minutes, 1 MiB of each output stream.
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> HostCommand {
        HostCommand {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            timeout: Duration::from_secs(600),
            max_output_bytes: 1024 * 1024,
            transaction: false,
        }
    }

    /// Mark the command as a package transaction (see [`HostCommand::transaction`]).
    pub fn as_transaction(mut self) -> HostCommand {
        self.transaction = true;
        self
    }

    /// Add an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> HostCommand {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Set the timeout.
    pub fn timeout(mut self, timeout: Duration) -> HostCommand {
        self.timeout = timeout;
        self
    }

    /// The argv joined for messages (not for execution).
    pub fn display(&self) -> String {
        self.argv.join(" ")
    }

    pub(super) fn check(&self) -> Result<(), HostError> {
        if self.argv.is_empty() || self.argv[0].is_empty() {
            return Err(HostError::InvalidCommand {
                argv: self.argv.clone(),
                reason: "empty argv",
            });
        }
        if self.argv.iter().any(|a| a.contains('\0')) {
            return Err(HostError::InvalidCommand {
                argv: self.argv.clone(),
                reason: "NUL byte in an argument",
            });
        }
        Ok(())
    }
}

/// What a finished (or killed) host command produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit code; `None` when killed by a signal.
    pub exit_code: Option<i32>,
    /// Signal that ended it, if any.
    pub signal: Option<i32>,
    /// True when it ran past its timeout and was killed.
    pub timed_out: bool,
    /// Captured stdout (bounded, lossily decoded).
    pub stdout: String,
    /// Captured stderr (bounded, lossily decoded).
    pub stderr: String,
    /// True when some output was dropped to stay within the bound.
    pub output_truncated: bool,
    /// Wall time.
    pub duration: Duration,
}

impl CommandOutput {
    /// Exited with code 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }

    /// "exit code N", "killed by signal N" or "timed out after …", for messages.
    pub fn describe_status(&self) -> String {
        if self.timed_out {
            format!("timed out after {:.0?}", self.duration)
        } else if let Some(code) = self.exit_code {
            format!("exit code {code}")
        } else if let Some(signal) = self.signal {
            format!("killed by signal {signal}")
        } else {
            "unknown status".to_string()
        }
    }

    /// The last `lines` non-empty lines of stderr, else of stdout: the part of apt's or dpkg's
    /// output that says what went wrong.
    pub fn tail(&self, lines: usize) -> String {
        let source = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let kept: Vec<&str> = source.lines().filter(|l| !l.trim().is_empty()).collect();
        kept[kept.len().saturating_sub(lines)..].join("\n")
    }
}

/// Runs commands on the host. A trait so that tests can inject failures.
pub trait HostExecutor: Send + Sync {
    /// Run one command to completion (or timeout) and return what it produced. An `Err` means
    /// it could not be started; a non-zero exit is an `Ok` with that exit code.
    fn run(&self, command: &HostCommand) -> Result<CommandOutput, HostError>;

    /// Short description for logs (`nsenter`, `chroot /tmp/root`).
    fn describe(&self) -> String;
}

/// Wraps an executor so that, once `stop` is set (the agent got SIGTERM), no new package
/// transaction starts: the one running finishes (the executor waits for it), the next one is
/// refused with [`HostError::Stopping`], and the agent writes its report and exits. Reads
/// (`dpkg-query`, `rpm -qa`, …) still run so the report says what the node has.
pub struct StoppingExecutor {
    inner: Arc<dyn HostExecutor>,
    stop: Arc<AtomicBool>,
}

impl StoppingExecutor {
    /// `inner`, refusing transactions once `stop` is set.
    pub fn new(inner: Arc<dyn HostExecutor>, stop: Arc<AtomicBool>) -> StoppingExecutor {
        StoppingExecutor { inner, stop }
    }
}

impl HostExecutor for StoppingExecutor {
    fn run(&self, command: &HostCommand) -> Result<CommandOutput, HostError> {
        if command.transaction && self.stop.load(Ordering::SeqCst) {
            return Err(HostError::Stopping {
                command: command.display(),
            });
        }
        self.inner.run(command)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// An unlinked file in the agent's temporary directory for one output stream of a command: the
/// command keeps writing to it when the agent is gone, and nothing is left behind.
fn output_file() -> Result<File, HostError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path: PathBuf = std::env::temp_dir().join(format!(
        ".nodepatch-output-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let io = |source| HostError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io)?;
    std::fs::remove_file(&path).map_err(io)?;
    Ok(file)
}

/// What a command wrote into `file`: all of it when it is at most `max` bytes, else the first
/// and last `max / 2` bytes with a note of how many were dropped in between.
pub(super) fn read_captured(file: &mut File, max: usize) -> (String, bool) {
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let half = (max / 2) as u64;
    let mut read_range = |from: u64, count: u64| -> Vec<u8> {
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(from)).is_ok() {
            let _ = file.by_ref().take(count).read_to_end(&mut bytes);
        }
        bytes
    };
    if len <= max as u64 {
        let bytes = read_range(0, len);
        return (String::from_utf8_lossy(&bytes).into_owned(), false);
    }
    let mut bytes = read_range(0, half);
    let dropped = len - 2 * half;
    bytes.extend_from_slice(format!("\n[… {dropped} bytes dropped …]\n").as_bytes());
    bytes.extend(read_range(len - half, half));
    (String::from_utf8_lossy(&bytes).into_owned(), true)
}

/// Run `argv` (the executor's full argv) with the command's environment, timeout and bounds.
/// The child leads its own session and process group: a timeout kills apt *and* the dpkg it
/// started, while a signal to the agent's own group (or the agent's death) leaves it running
/// to completion, writing into files instead of pipes (see the module docs).
pub(super) fn run_argv(argv: &[String], command: &HostCommand) -> Result<CommandOutput, HostError> {
    let started = Instant::now();
    let mut stdout = output_file()?;
    let mut stderr = output_file()?;
    let io = |source| HostError::Io {
        path: "command output file".to_string(),
        source,
    };
    let mut process = Command::new(&argv[0]);
    process
        .args(&argv[1..])
        .env_clear()
        .env("PATH", HOST_PATH)
        .env("LC_ALL", "C")
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(stdout.try_clone().map_err(io)?)
        .stderr(stderr.try_clone().map_err(io)?);
    // SAFETY: setsid(2) is async-signal-safe and touches no memory of the parent; it cannot fail
    // in a freshly forked child, which is never a process group leader.
    unsafe {
        process.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = process.spawn().map_err(|source| HostError::Spawn {
        program: argv[0].clone(),
        source,
    })?;
    // Drop our copies of the child's ends: the Command holds them until it is dropped.
    drop(process);
    let pgid = child.id() as i32;
    let deadline = started + command.timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(_) => break None,
        }
        if Instant::now() >= deadline {
            timed_out = true;
            kill_group(pgid, libc::SIGTERM);
            // Give apt/dpkg a moment to stop cleanly before the hard kill.
            let grace = Instant::now() + KILL_GRACE;
            while Instant::now() < grace {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            kill_group(pgid, libc::SIGKILL);
            break child.wait().ok();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // A daemon started by a maintainer script may keep the files open; what is in them now is
    // the command's output.
    let (stdout, stdout_cut) = read_captured(&mut stdout, command.max_output_bytes);
    let (stderr, stderr_cut) = read_captured(&mut stderr, command.max_output_bytes);
    Ok(CommandOutput {
        exit_code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        timed_out,
        stdout,
        stderr,
        output_truncated: stdout_cut || stderr_cut,
        duration: started.elapsed(),
    })
}

/// How long a timed-out command gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

fn kill_group(pgid: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group we created for the child;
    // it has no memory-safety preconditions.
    unsafe {
        libc::kill(-pgid, signal);
    }
}
