//! One host command and what it produced, the [`HostExecutor`] trait the executors implement,
//! and running an argv: our environment only, a timeout that kills the process group, and
//! output captured within a bound (head and tail kept).

use std::collections::VecDeque;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
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
}

impl HostCommand {
    /// A command with the default limits: 10 minutes, 1 MiB of each output stream.
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> HostCommand {
        HostCommand {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            timeout: Duration::from_secs(600),
            max_output_bytes: 1024 * 1024,
        }
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

/// Keeps the first and last `half` bytes of a stream, counting what it dropped.
pub(super) struct BoundedCapture {
    half: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    dropped: u64,
}

impl BoundedCapture {
    pub(super) fn new(max: usize) -> BoundedCapture {
        BoundedCapture {
            half: max / 2,
            head: Vec::new(),
            tail: VecDeque::new(),
            dropped: 0,
        }
    }

    pub(super) fn push(&mut self, mut bytes: &[u8]) {
        let to_head = (self.half - self.head.len()).min(bytes.len());
        self.head.extend_from_slice(&bytes[..to_head]);
        bytes = &bytes[to_head..];
        self.tail.extend(bytes);
        while self.tail.len() > self.half {
            self.tail.pop_front();
            self.dropped += 1;
        }
    }

    pub(super) fn finish(self) -> (String, bool) {
        let mut bytes = self.head;
        if self.dropped > 0 {
            bytes.extend_from_slice(format!("\n[… {} bytes dropped …]\n", self.dropped).as_bytes());
        }
        bytes.extend(self.tail);
        (
            String::from_utf8_lossy(&bytes).into_owned(),
            self.dropped > 0,
        )
    }
}

/// A stream being captured by a reader thread; shared so that the output can be taken even when
/// a daemon started by the command keeps the pipe open after the command itself exited.
type SharedCapture = Arc<Mutex<(BoundedCapture, bool)>>;

fn capture_stream(mut reader: impl Read + Send + 'static, max: usize) -> SharedCapture {
    let shared: SharedCapture = Arc::new(Mutex::new((BoundedCapture::new(max), false)));
    let writer = Arc::clone(&shared);
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Ok(mut guard) = writer.lock() {
                        guard.0.push(&buf[..n]);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        if let Ok(mut guard) = writer.lock() {
            guard.1 = true;
        }
    });
    shared
}

/// Wait (bounded) for a capture to reach end of file, then take what it holds.
fn take_capture(shared: Option<SharedCapture>, wait_until: Instant) -> (String, bool) {
    let Some(shared) = shared else {
        return (String::new(), false);
    };
    loop {
        let finished = shared.lock().map(|g| g.1).unwrap_or(true);
        if finished || Instant::now() >= wait_until {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    match shared.lock() {
        Ok(mut guard) => std::mem::replace(&mut guard.0, BoundedCapture::new(0)).finish(),
        Err(_) => (String::new(), true),
    }
}

/// Run `argv` (the executor's full argv) with the command's environment, timeout and bounds.
/// The child leads its own process group so a timeout kills apt *and* the dpkg it started.
pub(super) fn run_argv(argv: &[String], command: &HostCommand) -> Result<CommandOutput, HostError> {
    let started = Instant::now();
    let mut process = Command::new(&argv[0]);
    process
        .args(&argv[1..])
        .env_clear()
        .env("PATH", HOST_PATH)
        .env("LC_ALL", "C")
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = process.spawn().map_err(|source| HostError::Spawn {
        program: argv[0].clone(),
        source,
    })?;
    let stdout = child
        .stdout
        .take()
        .map(|s| capture_stream(s, command.max_output_bytes));
    let stderr = child
        .stderr
        .take()
        .map(|s| capture_stream(s, command.max_output_bytes));
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
            let grace = Instant::now() + Duration::from_secs(5);
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
    // A daemon started by a maintainer script may inherit the pipes; do not wait for it.
    let drain_until = Instant::now() + Duration::from_secs(2);
    let (stdout, stdout_cut) = take_capture(stdout, drain_until);
    let (stderr, stderr_cut) = take_capture(stderr, drain_until);
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

fn kill_group(pgid: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group we created for the child;
    // it has no memory-safety preconditions.
    unsafe {
        libc::kill(-pgid, signal);
    }
}
