//! Host access: reading files of the node's root filesystem from inside the agent's container,
//! and running the host's own programs.
//!
//! The agent sees the host's `/` at a *host root* (`/host` in the pod). Paths inside that tree
//! must be resolved the way the host would resolve them: an absolute symlink such as
//! `/host/var/run -> /run` points at the host's `/run`, i.e. `<root>/run`, not at the
//! container's `/run`. [`HostRoot`] resolves every path component itself, treating the root as
//! `/` (absolute links restart at the root, `..` never climbs above it).
//!
//! Commands go through one [`HostExecutor`]: production enters the host's namespaces with
//! `nsenter -t 1 -m -u -i -n -p -- argv` ([`NsenterExecutor`]); tests run the same argv with
//! `chroot <root> argv` on a real Debian root ([`ChrootExecutor`]); rpm-family fixture roots,
//! which have no shell or package manager inside, are driven by this machine's rpm/dnf/zypper
//! with the root option injected ([`InstallrootExecutor`]); unit tests inject a fake.
//! A command is always an argv vector (never a shell string built from data), runs with an
//! environment we set (nothing inherited), a timeout, and bounded captured output.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most symlinks followed while resolving one path (Linux's limit), so a loop ends with an error.
const MAX_SYMLINK_FOLLOWS: usize = 40;

/// Largest file [`HostRoot::read`] returns; package indexes are tens of MiB, anything larger is
/// not a file we mean to read.
pub const MAX_HOST_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// PATH given to host commands: the standard Debian/RHEL/SUSE/Alpine search path.
pub const HOST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Errors of host access.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A file under the host root could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// Host path (as the host sees it).
        path: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A path had too many levels of symbolic links.
    #[error("{path}: too many levels of symbolic links")]
    SymlinkLoop {
        /// Host path.
        path: String,
    },
    /// A file was larger than [`MAX_HOST_FILE_BYTES`].
    #[error("{path}: file larger than {limit} bytes")]
    TooLarge {
        /// Host path.
        path: String,
        /// The limit.
        limit: u64,
    },
    /// A command could not be started.
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        /// argv[0] as given to the executor.
        program: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A command was refused before it ran (empty argv, argument starting a shell, …).
    #[error("refused command {argv:?}: {reason}")]
    InvalidCommand {
        /// The argv.
        argv: Vec<String>,
        /// Why.
        reason: &'static str,
    },
}

impl HostError {
    /// Bounded category for metrics and report reasons.
    pub fn category(&self) -> &'static str {
        match self {
            HostError::Io { .. } => "HostIo",
            HostError::SymlinkLoop { .. } => "HostSymlinkLoop",
            HostError::TooLarge { .. } => "HostFileTooLarge",
            HostError::Spawn { .. } => "HostCommandSpawn",
            HostError::InvalidCommand { .. } => "HostCommandInvalid",
        }
    }

    /// True when the error is "file not found".
    pub fn is_not_found(&self) -> bool {
        matches!(self, HostError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// The node's root filesystem as mounted into the agent (e.g. `/host`), or a test root.
#[derive(Clone, Debug)]
pub struct HostRoot {
    root: PathBuf,
}

impl HostRoot {
    /// A host root at `root` (made absolute against the current directory).
    pub fn new(root: impl Into<PathBuf>) -> HostRoot {
        let root = root.into();
        let root = if root.is_absolute() {
            root
        } else {
            std::env::current_dir()
                .map(|cwd| cwd.join(&root))
                .unwrap_or(root)
        };
        HostRoot { root }
    }

    /// The directory the host's `/` is mounted at.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Resolve `host_path` (a path as the host sees it, e.g. `/var/run/reboot-required`) to the
    /// path of the same file in this container: every symlink is followed *inside* the root,
    /// absolute link targets restart at the root and `..` stops at it. Components that do not
    /// exist are appended as they are (so the result can be created).
    pub fn resolve(&self, host_path: impl AsRef<Path>) -> Result<PathBuf, HostError> {
        let host_path = host_path.as_ref();
        let display = host_path.display().to_string();
        // Components still to walk, front first; `resolved` holds the walked ones (no `..`).
        let mut pending: VecDeque<OsString> = normal_components(host_path).collect();
        let mut resolved: Vec<OsString> = Vec::new();
        let mut follows = 0usize;
        while let Some(name) = pending.pop_front() {
            if name == ".." {
                resolved.pop();
                continue;
            }
            let candidate = self.join_components(&resolved).join(&name);
            match std::fs::symlink_metadata(&candidate) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    follows += 1;
                    if follows > MAX_SYMLINK_FOLLOWS {
                        return Err(HostError::SymlinkLoop { path: display });
                    }
                    let target =
                        std::fs::read_link(&candidate).map_err(|source| HostError::Io {
                            path: display.clone(),
                            source,
                        })?;
                    if target.is_absolute() {
                        resolved.clear();
                    }
                    // The link's components replace it, ahead of what was still pending.
                    for component in normal_components(&target)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                    {
                        pending.push_front(component);
                    }
                }
                Ok(_) => resolved.push(name),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // Nothing below a missing component can be a symlink: append the rest
                    // lexically, still clamping `..` at the root.
                    resolved.push(name);
                    for rest in pending.drain(..) {
                        if rest == ".." {
                            resolved.pop();
                        } else {
                            resolved.push(rest);
                        }
                    }
                }
                Err(source) => {
                    return Err(HostError::Io {
                        path: display,
                        source,
                    });
                }
            }
        }
        Ok(self.join_components(&resolved))
    }

    fn join_components(&self, components: &[OsString]) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(components);
        path
    }

    /// Read a whole file of the host (bounded by [`MAX_HOST_FILE_BYTES`]).
    pub fn read(&self, host_path: impl AsRef<Path>) -> Result<Vec<u8>, HostError> {
        let host_path = host_path.as_ref();
        let path = self.resolve(host_path)?;
        let display = || host_path.display().to_string();
        let file = std::fs::File::open(&path).map_err(|source| HostError::Io {
            path: display(),
            source,
        })?;
        // Package indexes are tens of MiB: size the buffer once instead of growing it.
        let expected = file
            .metadata()
            .map(|m| m.len().min(MAX_HOST_FILE_BYTES))
            .unwrap_or(0);
        let mut bytes =
            Vec::with_capacity(usize::try_from(expected).unwrap_or(0).saturating_add(1));
        // Read one byte past the limit to tell "exactly at the limit" from "larger".
        file.take(MAX_HOST_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| HostError::Io {
                path: display(),
                source,
            })?;
        if bytes.len() as u64 > MAX_HOST_FILE_BYTES {
            return Err(HostError::TooLarge {
                path: display(),
                limit: MAX_HOST_FILE_BYTES,
            });
        }
        Ok(bytes)
    }

    /// The bytes of a large, read-only host file without copying them: the file is mapped
    /// (pages populated up front), or read when it cannot be mapped (empty files, special file
    /// systems).
    ///
    /// Only for files that are replaced, never rewritten in place, while the agent reads them —
    /// apt's lists are (apt writes a new file and renames it over the old one, which leaves the
    /// mapped inode intact). A file truncated in place under the mapping would fault the reader.
    pub fn map(&self, host_path: impl AsRef<Path>) -> Result<HostBytes, HostError> {
        let host_path = host_path.as_ref();
        let path = self.resolve(host_path)?;
        let io = |source| HostError::Io {
            path: host_path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(&path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len > MAX_HOST_FILE_BYTES {
            return Err(HostError::TooLarge {
                path: host_path.display().to_string(),
                limit: MAX_HOST_FILE_BYTES,
            });
        }
        if len == 0 {
            return Ok(HostBytes::Owned(Vec::new()));
        }
        // SAFETY: a private read-only mapping; see the doc comment for why the file does not
        // change underneath it.
        match unsafe { memmap2::MmapOptions::new().populate().map(&file) } {
            Ok(map) => Ok(HostBytes::Mapped(map)),
            Err(_) => self.read(host_path).map(HostBytes::Owned),
        }
    }

    /// Read a file of the host as text (invalid UTF-8 replaced).
    pub fn read_to_string(&self, host_path: impl AsRef<Path>) -> Result<String, HostError> {
        let bytes = self.read(host_path)?;
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// Read a file of the host, `None` when it does not exist.
    pub fn read_optional(&self, host_path: impl AsRef<Path>) -> Result<Option<Vec<u8>>, HostError> {
        match self.read(host_path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// True when the host path exists (after resolving symlinks inside the root).
    pub fn exists(&self, host_path: impl AsRef<Path>) -> bool {
        self.resolve(host_path).is_ok_and(|p| p.exists())
    }

    /// Names of the entries of a host directory, sorted; empty when it does not exist.
    pub fn list_dir(&self, host_path: impl AsRef<Path>) -> Result<Vec<String>, HostError> {
        let host_path = host_path.as_ref();
        let path = self.resolve(host_path)?;
        let entries = match std::fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(HostError::Io {
                    path: host_path.display().to_string(),
                    source,
                });
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| HostError::Io {
                path: host_path.display().to_string(),
                source,
            })?;
            names.push(String::from_utf8_lossy(entry.file_name().as_bytes()).into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// Replace a host file atomically (write a sibling temporary file, then rename), creating
    /// its directory when missing. Readers never see a half-written file.
    pub fn write_atomic(&self, host_path: impl AsRef<Path>, bytes: &[u8]) -> Result<(), HostError> {
        let host_path = host_path.as_ref();
        let display = || host_path.display().to_string();
        let path = self.resolve(host_path)?;
        let dir = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir).map_err(|source| HostError::Io {
            path: display(),
            source,
        })?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            use std::io::Write as _;
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            HostError::Io {
                path: display(),
                source,
            }
        })
    }

    /// Remove a host file; a missing file is fine.
    pub fn remove_optional(&self, host_path: impl AsRef<Path>) -> Result<(), HostError> {
        let host_path = host_path.as_ref();
        let path = match self.resolve(host_path) {
            Ok(p) => p,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(HostError::Io {
                path: host_path.display().to_string(),
                source,
            }),
        }
    }
}

/// Bytes of a host file: mapped, or read into memory.
pub enum HostBytes {
    /// A read-only mapping of the file.
    Mapped(memmap2::Mmap),
    /// The file's content.
    Owned(Vec<u8>),
}

impl std::ops::Deref for HostBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            HostBytes::Mapped(map) => map,
            HostBytes::Owned(bytes) => bytes,
        }
    }
}

/// The normal components of a path, with `.` dropped and `..` kept (the root is implicit).
fn normal_components(path: &Path) -> impl Iterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(name) => Some(name.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

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

    fn check(&self) -> Result<(), HostError> {
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

/// Production executor: the host's own programs in the host's namespaces, via
/// `nsenter -t 1 -m -u -i -n -p -- argv` (needs `hostPID: true`, a privileged pod, and
/// `nsenter` from util-linux in the agent image).
#[derive(Clone, Debug, Default)]
pub struct NsenterExecutor;

impl HostExecutor for NsenterExecutor {
    fn run(&self, command: &HostCommand) -> Result<CommandOutput, HostError> {
        command.check()?;
        let mut argv: Vec<String> = ["nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p", "--"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        argv.extend(command.argv.iter().cloned());
        run_argv(&argv, command)
    }

    fn describe(&self) -> String {
        "nsenter -t 1 -m -u -i -n -p".to_string()
    }
}

/// Test executor: the root's own programs via `chroot <root> argv` (needs root).
#[derive(Clone, Debug)]
pub struct ChrootExecutor {
    root: PathBuf,
}

impl ChrootExecutor {
    /// Run commands chrooted into `root`.
    pub fn new(root: impl Into<PathBuf>) -> ChrootExecutor {
        ChrootExecutor { root: root.into() }
    }
}

impl HostExecutor for ChrootExecutor {
    fn run(&self, command: &HostCommand) -> Result<CommandOutput, HostError> {
        command.check()?;
        let mut argv = vec![
            "chroot".to_string(),
            self.root.to_string_lossy().into_owned(),
        ];
        argv.extend(command.argv.iter().cloned());
        run_argv(&argv, command)
    }

    fn describe(&self) -> String {
        format!("chroot {}", self.root.display())
    }
}

/// Test executor for rpm-family and Alpine roots that cannot run their own programs (no shell,
/// no dnf inside a fixture root): runs *this machine's* package manager with its root option
/// injected, so the argv a backend builds for production (relative to the host's `/`) works
/// unchanged:
///
/// | argv[0] | becomes |
/// |---|---|
/// | `rpm` | `rpm --root <root> --dbpath /var/lib/rpm …` |
/// | `dnf`, `yum` | `dnf --installroot=<root> --noplugins --releasever=<os-release VERSION_ID major> …` |
/// | `zypper` | `zypper --root <root> …` |
/// | `apk` | `apk --root <root> …` |
///
/// Any other program is refused: there is no way to run it "inside" the root without chroot.
/// librpm's database path is a macro, and Debian's rpm defaults it to `~/.rpmdb`, so every
/// command also gets `HOME` pointing at a private directory whose `.rpmmacros` sets
/// `%_dbpath /var/lib/rpm` (dnf and zypper have no `--dbpath`; they read the same macros).
#[derive(Clone, Debug)]
pub struct InstallrootExecutor {
    root: PathBuf,
}

impl InstallrootExecutor {
    /// Run package managers against `root`.
    pub fn new(root: impl Into<PathBuf>) -> InstallrootExecutor {
        InstallrootExecutor { root: root.into() }
    }

    /// The directory used as `HOME`, holding the `.rpmmacros` that sets the database path.
    fn macro_home(&self) -> Result<PathBuf, HostError> {
        let home = std::env::temp_dir().join(format!(
            "nodepatch-installroot-{}-{}",
            // SAFETY: geteuid has no preconditions.
            unsafe { libc::geteuid() },
            std::process::id()
        ));
        let macros = home.join(".rpmmacros");
        let content = "%_dbpath /var/lib/rpm\n";
        if std::fs::read_to_string(&macros).ok().as_deref() != Some(content) {
            let io = |source| HostError::Io {
                path: macros.display().to_string(),
                source,
            };
            std::fs::create_dir_all(&home).map_err(io)?;
            let tmp = home.join(format!(".rpmmacros.{:?}", std::thread::current().id()));
            std::fs::write(&tmp, content).map_err(io)?;
            std::fs::rename(&tmp, &macros).map_err(io)?;
        }
        Ok(home)
    }

    /// `--releasever` for dnf: the major of the root's os-release `VERSION_ID` (dnf would read it
    /// from the root's `system-release` package, which fixture roots do not have).
    fn releasever(&self) -> Option<String> {
        let root = HostRoot::new(&self.root);
        let text = root
            .read_optional("/etc/os-release")
            .ok()
            .flatten()
            .or_else(|| root.read_optional("/usr/lib/os-release").ok().flatten())?;
        let release = super::os::OsRelease::parse(&String::from_utf8_lossy(&text));
        let major = release.get("VERSION_ID")?.split('.').next()?.to_string();
        (!major.is_empty() && major.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(major)
    }

    /// The argv actually run for `argv`.
    pub fn rooted_argv(&self, argv: &[String]) -> Result<Vec<String>, HostError> {
        let root = self.root.to_string_lossy().into_owned();
        let rest = argv[1..].iter().cloned();
        let mut out: Vec<String> = Vec::new();
        match argv[0].as_str() {
            "rpm" => {
                out.extend(["rpm".into(), "--root".into(), root, "--dbpath".into()]);
                out.push("/var/lib/rpm".into());
            }
            "dnf" | "yum" => {
                out.push("dnf".into());
                out.push(format!("--installroot={root}"));
                out.push("--noplugins".into());
                if let Some(release) = self.releasever() {
                    out.push(format!("--releasever={release}"));
                }
            }
            "zypper" => out.extend(["zypper".into(), "--root".into(), root]),
            "apk" => out.extend(["apk".into(), "--root".into(), root]),
            _ => {
                return Err(HostError::InvalidCommand {
                    argv: argv.to_vec(),
                    reason: "only rpm, dnf, yum, zypper and apk can run against an installroot",
                });
            }
        }
        out.extend(rest);
        Ok(out)
    }
}

impl HostExecutor for InstallrootExecutor {
    fn run(&self, command: &HostCommand) -> Result<CommandOutput, HostError> {
        command.check()?;
        let argv = self.rooted_argv(&command.argv)?;
        let home = self.macro_home()?;
        let mut command = command.clone();
        command
            .env
            .push(("HOME".to_string(), home.to_string_lossy().into_owned()));
        run_argv(&argv, &command)
    }

    fn describe(&self) -> String {
        format!("installroot {}", self.root.display())
    }
}

/// Keeps the first and last `half` bytes of a stream, counting what it dropped.
struct BoundedCapture {
    half: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    dropped: u64,
}

impl BoundedCapture {
    fn new(max: usize) -> BoundedCapture {
        BoundedCapture {
            half: max / 2,
            head: Vec::new(),
            tail: VecDeque::new(),
            dropped: 0,
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        let to_head = (self.half - self.head.len()).min(bytes.len());
        self.head.extend_from_slice(&bytes[..to_head]);
        bytes = &bytes[to_head..];
        self.tail.extend(bytes);
        while self.tail.len() > self.half {
            self.tail.pop_front();
            self.dropped += 1;
        }
    }

    fn finish(self) -> (String, bool) {
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
fn run_argv(argv: &[String], command: &HostCommand) -> Result<CommandOutput, HostError> {
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

/// How the agent runs programs of the host (a command-line choice).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostExec {
    /// `nsenter -t 1 -m -u -i -n -p -- argv`: the host's namespaces (production; needs hostPID).
    Nsenter,
    /// `chroot <host-root> argv`: for node roots that are not the running host (tests).
    Chroot,
    /// This machine's rpm/dnf/zypper/apk with the root option (`--root`, `--installroot`)
    /// pointing at the host root: for rpm-family fixture roots that have no shell or package
    /// manager of their own (tests). See [`InstallrootExecutor`].
    Installroot,
}

impl HostExec {
    /// The executor for `root`.
    pub fn executor(self, root: &Path) -> Arc<dyn HostExecutor> {
        match self {
            HostExec::Nsenter => Arc::new(NsenterExecutor),
            HostExec::Chroot => Arc::new(ChrootExecutor::new(root)),
            HostExec::Installroot => Arc::new(InstallrootExecutor::new(root)),
        }
    }
}

/// An argv prefix and the output a [`ScriptedExecutor`] answers commands starting with it.
type ScriptedAnswer = (Vec<String>, CommandOutput);

/// A scripted executor for unit and integration tests of error paths: each command is matched
/// against the rules in order (first rule whose argv prefix matches wins); unmatched commands
/// fail to start. Every command run is recorded.
#[derive(Clone, Default)]
pub struct ScriptedExecutor {
    rules: Arc<Mutex<Vec<ScriptedAnswer>>>,
    calls: Arc<Mutex<Vec<HostCommand>>>,
}

impl ScriptedExecutor {
    /// An executor with no rules.
    pub fn new() -> ScriptedExecutor {
        ScriptedExecutor::default()
    }

    /// Answer commands whose argv starts with `prefix` with `output`.
    pub fn on(self, prefix: &[&str], output: CommandOutput) -> ScriptedExecutor {
        if let Ok(mut rules) = self.rules.lock() {
            rules.push((prefix.iter().map(|s| s.to_string()).collect(), output));
        }
        self
    }

    /// The commands run so far.
    pub fn calls(&self) -> Vec<HostCommand> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl HostExecutor for ScriptedExecutor {
    fn run(&self, command: &HostCommand) -> Result<CommandOutput, HostError> {
        command.check()?;
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(command.clone());
        }
        let rules = self.rules.lock().map(|r| r.clone()).unwrap_or_default();
        rules
            .into_iter()
            .find(|(prefix, _)| command.argv.starts_with(prefix))
            .map(|(_, output)| output)
            .ok_or_else(|| HostError::Spawn {
                program: command.argv[0].clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no scripted answer"),
            })
    }

    fn describe(&self) -> String {
        "scripted".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root_with(files: &[&str]) -> (tempfile::TempDir, HostRoot) {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in files {
            let p = dir.path().join(f.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, f.as_bytes()).expect("write");
        }
        let root = HostRoot::new(dir.path());
        (dir, root)
    }

    #[test]
    fn absolute_symlink_resolves_inside_the_root() {
        let (dir, root) = root_with(&["/run/reboot-required"]);
        std::fs::create_dir_all(dir.path().join("var")).expect("mkdir");
        symlink("/run", dir.path().join("var/run")).expect("symlink");
        let resolved = root.resolve("/var/run/reboot-required").expect("resolve");
        assert_eq!(resolved, dir.path().join("run/reboot-required"));
        assert_eq!(
            root.read_to_string("/var/run/reboot-required")
                .expect("read"),
            "/run/reboot-required"
        );
    }

    #[test]
    fn dot_dot_is_clamped_at_the_root() {
        let (dir, root) = root_with(&["/etc/os-release"]);
        assert_eq!(
            root.resolve("/../../etc/os-release").expect("resolve"),
            dir.path().join("etc/os-release")
        );
        std::fs::create_dir_all(dir.path().join("a")).expect("mkdir");
        symlink("../../../../etc", dir.path().join("a/up")).expect("symlink");
        assert_eq!(
            root.resolve("/a/up/os-release").expect("resolve"),
            dir.path().join("etc/os-release")
        );
    }

    #[test]
    fn relative_symlink_chain_is_followed() {
        let (dir, root) = root_with(&["/usr/lib/os-release"]);
        std::fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
        symlink("../usr/lib/os-release", dir.path().join("etc/os-release")).expect("symlink");
        symlink("os-release", dir.path().join("etc/os-release-link")).expect("symlink");
        assert_eq!(
            root.resolve("/etc/os-release-link").expect("resolve"),
            dir.path().join("usr/lib/os-release")
        );
    }

    #[test]
    fn symlink_loop_is_an_error_not_a_hang() {
        let (dir, root) = root_with(&[]);
        symlink("/b", dir.path().join("a")).expect("symlink");
        symlink("/a", dir.path().join("b")).expect("symlink");
        assert!(matches!(
            root.resolve("/a/x"),
            Err(HostError::SymlinkLoop { .. })
        ));
    }

    #[test]
    fn missing_components_are_appended_lexically() {
        let (dir, root) = root_with(&[]);
        assert_eq!(
            root.resolve("/var/lib/x/../y").expect("resolve"),
            dir.path().join("var/lib/y")
        );
        assert!(root.read_optional("/nope").expect("read").is_none());
    }

    #[test]
    fn write_atomic_creates_directories_inside_the_root() {
        let (dir, root) = root_with(&[]);
        std::fs::create_dir_all(dir.path().join("var")).expect("mkdir");
        symlink("/srv/state", dir.path().join("var/lib")).expect("symlink");
        root.write_atomic("/var/lib/nodepatch/x.json", b"{}")
            .expect("write");
        assert_eq!(
            std::fs::read(dir.path().join("srv/state/nodepatch/x.json")).expect("read"),
            b"{}"
        );
    }

    #[test]
    fn command_output_is_bounded_head_and_tail() {
        let mut capture = BoundedCapture::new(10);
        capture.push(b"0123456789abcdefghij");
        let (text, cut) = capture.finish();
        assert!(cut);
        assert!(text.starts_with("01234"));
        assert!(text.ends_with("fghij"));
    }

    #[test]
    fn command_runs_with_our_environment_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let command = HostCommand::new(["env"]).env("DEBIAN_FRONTEND", "noninteractive");
        // Run directly (no chroot) to check the environment handling of run_argv.
        let out = run_argv(&command.argv, &command).expect("run env");
        assert!(out.success());
        assert!(out.stdout.contains("DEBIAN_FRONTEND=noninteractive"));
        assert!(out.stdout.contains("LC_ALL=C"));
        assert!(
            !out.stdout.contains("HOME="),
            "environment leaked: {}",
            out.stdout
        );
        drop(dir);
    }

    #[test]
    fn command_timeout_kills_the_process_group() {
        let command = HostCommand::new(["sh", "-c", "sleep 30 & sleep 30"])
            .timeout(Duration::from_millis(200));
        let out = run_argv(&command.argv, &command).expect("run");
        assert!(out.timed_out);
        assert!(!out.success());
        assert!(out.duration < Duration::from_secs(10));
    }

    #[test]
    fn installroot_injects_the_root_option_per_package_manager() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
        std::fs::write(
            dir.path().join("etc/os-release"),
            "ID=rocky\nVERSION_ID=\"9.4\"\n",
        )
        .expect("write");
        let exec = InstallrootExecutor::new(dir.path());
        let root = dir.path().to_string_lossy().into_owned();
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            exec.rooted_argv(&argv(&["rpm", "-qa"])).expect("rpm"),
            argv(&["rpm", "--root", &root, "--dbpath", "/var/lib/rpm", "-qa"])
        );
        assert_eq!(
            exec.rooted_argv(&argv(&["dnf", "-y", "makecache"]))
                .expect("dnf"),
            argv(&[
                "dnf",
                &format!("--installroot={root}"),
                "--noplugins",
                "--releasever=9",
                "-y",
                "makecache"
            ])
        );
        assert_eq!(
            exec.rooted_argv(&argv(&["zypper", "-n", "ref"]))
                .expect("zypper"),
            argv(&["zypper", "--root", &root, "-n", "ref"])
        );
        assert!(matches!(
            exec.rooted_argv(&argv(&["needs-restarting", "-r"])),
            Err(HostError::InvalidCommand { .. })
        ));
    }

    #[test]
    fn empty_argv_is_refused() {
        let command = HostCommand::new(Vec::<String>::new());
        assert!(matches!(
            ChrootExecutor::new("/nonexistent").run(&command),
            Err(HostError::InvalidCommand { .. })
        ));
    }
}
