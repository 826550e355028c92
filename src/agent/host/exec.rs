//! The executors: how the agent runs the host's programs. Production enters the host's
//! namespaces ([`NsenterExecutor`]); test roots are run with `chroot` ([`ChrootExecutor`]) or
//! with this machine's package manager pointed at the root ([`InstallrootExecutor`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::HostError;
use super::HostRoot;
use super::command::{CommandOutput, HostCommand, HostExecutor, run_argv};
use crate::agent::os_release::OsRelease;

/// Production executor: the host's own programs in the host's namespaces, via
/// `nsenter -t 1 -m -u -i -n -p -- argv` (needs `hostPID: true`, a privileged pod, and
/// `nsenter` from util-linux in the agent image).
///
/// A package transaction ([`HostCommand::transaction`]) must survive the agent's pod: the
/// container runtime kills every process of the pod's cgroup when the pod is deleted, and
/// `nsenter` does not leave that cgroup. So a transaction runs
/// - where the host runs systemd (its root has `/run/systemd/system`): in a transient scope of
///   the host's systemd, `systemd-run --scope --collect --quiet --unit=nodepatch-tx-<pid>-<n>
///   -- argv`: `systemd-run` moves itself into the new scope (under `system.slice`) and then
///   execs argv, so apt and the dpkg it starts are outside the pod's cgroup, and the scope ends
///   (and is collected) when they exit;
/// - without systemd: in the host's root cgroup, entering PID 1's cgroup namespace too
///   (`nsenter … -C`) and running a fixed `sh` script that writes its own PID into the
///   writable `cgroup.procs` of the root of every mounted hierarchy (cgroup v2:
///   `/sys/fs/cgroup/cgroup.procs`; v1: `/sys/fs/cgroup/<controller>/cgroup.procs`) and then
///   execs argv (passed as the script's arguments, never interpolated).
///
/// In both cases the child also leads its own session and writes its output into files
/// ([`run_argv`]), so neither a signal to the agent's process group nor the agent's death ends
/// it; a timeout still kills it (the session's process group).
#[derive(Clone, Debug)]
pub struct NsenterExecutor {
    host_root: PathBuf,
}

/// The `sh` script of the no-systemd fallback: join the root cgroup of each hierarchy, then
/// exec the arguments.
pub const ROOT_CGROUP_SCRIPT: &str = "for f in /sys/fs/cgroup/cgroup.procs /sys/fs/cgroup/*/cgroup.procs; do [ -w \"$f\" ] && echo $$ > \"$f\"; done 2>/dev/null; exec \"$@\"";

impl NsenterExecutor {
    /// The host's namespaces; `host_root` is where the host's `/` is mounted in the agent (to
    /// see whether the host runs systemd).
    pub fn new(host_root: impl Into<PathBuf>) -> NsenterExecutor {
        NsenterExecutor {
            host_root: host_root.into(),
        }
    }

    /// True when the host runs systemd (`/run/systemd/system` exists, as `sd_booted(3)` checks).
    fn host_runs_systemd(&self) -> bool {
        HostRoot::new(&self.host_root)
            .resolve("/run/systemd/system")
            .is_ok_and(|path| path.is_dir())
    }

    /// The argv actually run for `command`.
    pub fn host_argv(&self, command: &HostCommand) -> Vec<String> {
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut argv = strings(&["nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p"]);
        if !command.transaction {
            argv.push("--".into());
        } else if self.host_runs_systemd() {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            argv.extend(strings(&[
                "--",
                "systemd-run",
                "--scope",
                "--collect",
                "--quiet",
            ]));
            argv.push(format!(
                "--unit=nodepatch-tx-{}-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            argv.push("--".into());
        } else {
            argv.extend(strings(&["-C", "--", "/bin/sh", "-c", ROOT_CGROUP_SCRIPT]));
            argv.push("nodepatch-transaction".into());
        }
        argv.extend(command.argv.iter().cloned());
        argv
    }
}

impl HostExecutor for NsenterExecutor {
    fn run(&self, command: &HostCommand) -> Result<CommandOutput, HostError> {
        command.check()?;
        run_argv(&self.host_argv(command), command)
    }

    fn describe(&self) -> String {
        "nsenter -t 1 -m -u -i -n -p".to_string()
    }
}

/// Test executor: the root's own programs via `chroot <root> argv` (needs root). Its commands
/// get the same session and output-file detachment as every command ([`run_argv`]), which is
/// what keeps a transaction alive on a host without systemd besides the cgroup move (tests run
/// on this machine, whose cgroups they leave alone).
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
/// dnf's `--setopt=reposdir=/path` and `--setopt=cachedir=/path` (alternative patch sources)
/// become `<root>/path`: dnf 4 (tested with 4.14) reads its *default* reposdir and cachedir
/// inside the installroot, but a path given with `--setopt` as it is, on this machine, so the
/// host path the backend builds would point outside the test root.
///
/// Any other program is refused: there is no way to run it "inside" the root without chroot.
/// librpm's database path is a macro, and Debian's rpm defaults it to `~/.rpmdb`, so every
/// command also gets `HOME` pointing at a private directory whose `.rpmmacros` sets
/// `%_dbpath /var/lib/rpm` (dnf and zypper have no `--dbpath`; they read the same macros).
#[derive(Clone, Debug)]
pub struct InstallrootExecutor {
    root: PathBuf,
    /// The private `HOME`, made on first use and removed when the last clone is dropped.
    home: Arc<std::sync::OnceLock<PrivateHome>>,
}

/// A directory made with `mkdtemp` (mode 0700, unpredictable name), so no other user can plant
/// macros or race its creation; removed on drop.
#[derive(Debug)]
struct PrivateHome(PathBuf);

impl PrivateHome {
    fn create() -> std::io::Result<PrivateHome> {
        use std::os::unix::ffi::OsStrExt as _;
        let template = std::env::temp_dir().join("nodepatch-installroot-XXXXXX");
        let mut bytes = template.as_os_str().as_bytes().to_vec();
        bytes.push(0);
        // SAFETY: `bytes` is a NUL-terminated, writable template ending in XXXXXX.
        let made = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
        if made.is_null() {
            return Err(std::io::Error::last_os_error());
        }
        bytes.pop();
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(&bytes));
        std::fs::write(path.join(".rpmmacros"), "%_dbpath /var/lib/rpm\n")?;
        Ok(PrivateHome(path))
    }
}

impl Drop for PrivateHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl InstallrootExecutor {
    /// Run package managers against `root`.
    pub fn new(root: impl Into<PathBuf>) -> InstallrootExecutor {
        InstallrootExecutor {
            root: root.into(),
            home: Arc::default(),
        }
    }

    /// The directory used as `HOME`: private to this executor (see [`PrivateHome`]), holding
    /// the `.rpmmacros` that sets the database path.
    pub fn macro_home(&self) -> Result<PathBuf, HostError> {
        if let Some(home) = self.home.get() {
            return Ok(home.0.clone());
        }
        let made = PrivateHome::create().map_err(|source| HostError::Io {
            path: std::env::temp_dir().display().to_string(),
            source,
        })?;
        // A concurrent first use may have won; its directory is used and ours dropped.
        let _ = self.home.set(made);
        Ok(self.home.get().map(|h| h.0.clone()).unwrap_or_default())
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
        let release = OsRelease::parse(&String::from_utf8_lossy(&text));
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
        if matches!(argv[0].as_str(), "dnf" | "yum") {
            let root = self.root.to_string_lossy();
            out.extend(rest.map(|arg| rooted_setopt(&root, arg)));
        } else {
            out.extend(rest);
        }
        Ok(out)
    }
}

/// `--setopt=reposdir=/p` / `--setopt=cachedir=/p` with `root` prefixed (see
/// [`InstallrootExecutor`]); any other argument unchanged.
fn rooted_setopt(root: &str, arg: String) -> String {
    for option in ["--setopt=reposdir=", "--setopt=cachedir="] {
        if let Some(path) = arg.strip_prefix(option)
            && path.starts_with('/')
        {
            return format!("{option}{}{path}", root.trim_end_matches('/'));
        }
    }
    arg
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
            HostExec::Nsenter => Arc::new(NsenterExecutor::new(root)),
            HostExec::Chroot => Arc::new(ChrootExecutor::new(root)),
            HostExec::Installroot => Arc::new(InstallrootExecutor::new(root)),
        }
    }
}
