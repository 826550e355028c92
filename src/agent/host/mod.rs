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
//!
//! - this file: [`HostRoot`], the host's files read and written through the root, bounded;
//!   [`HostError`].
//! - [`command`]: one host command ([`HostCommand`](command::HostCommand)), what it produced
//!   ([`CommandOutput`](command::CommandOutput)), the [`HostExecutor`](command::HostExecutor)
//!   trait, and running an argv with bounded captured output.
//! - [`exec`]: the executors (nsenter for production, chroot and installroot for test roots).
//! - `scripted`: a scripted executor for tests only (compiled under `cfg(test)` or the
//!   `test-support` feature, never into the shipped binary).

pub mod command;
pub mod exec;
#[cfg(any(test, feature = "test-support"))]
pub mod scripted;

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Most symlinks followed while resolving one path (Linux's limit), so a loop ends with an error.
const MAX_SYMLINK_FOLLOWS: usize = 40;

/// Largest host file the agent reads or maps (128 MiB). The biggest package index we know of
/// (Ubuntu's universe `Packages`, uncompressed) is well under half of this; the agent's memory
/// limit (512 MiB in the chart) must hold one such file plus its decompressed text
/// ([`MAX_DECOMPRESSED_BYTES`]) with room to spare.
pub const MAX_HOST_FILE_BYTES: u64 = 128 * 1024 * 1024;

/// Largest text a compressed host file may decompress to (128 MiB): a gzip bomb stops here.
pub const MAX_DECOMPRESSED_BYTES: u64 = 128 * 1024 * 1024;

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
    /// A path the agent reads as a file is a FIFO, device, socket or directory: reading it could
    /// block forever or never end.
    #[error("{path}: not a regular file (a {kind})")]
    NotRegular {
        /// Host path.
        path: String,
        /// What it is instead.
        kind: &'static str,
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
    /// A package transaction was not started because the agent is stopping (SIGTERM): the one
    /// running finished, no new one starts.
    #[error("not started `{command}`: the agent is stopping (SIGTERM)")]
    Stopping {
        /// The command, for messages.
        command: String,
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
            HostError::NotRegular { .. } => "HostFileNotRegular",
            HostError::Spawn { .. } => "HostCommandSpawn",
            HostError::InvalidCommand { .. } => "HostCommandInvalid",
            HostError::Stopping { .. } => "AgentStopping",
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

    /// Open a host file for reading, refusing anything but a regular file: the open itself does
    /// not block (`O_NONBLOCK`, so a FIFO cannot hang the agent) and the opened file is checked
    /// (`fstat`), so a file swapped between check and open is caught. Returns the file and its
    /// size.
    pub fn open_regular(
        &self,
        host_path: impl AsRef<Path>,
    ) -> Result<(std::fs::File, u64), HostError> {
        use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
        let host_path = host_path.as_ref();
        let path = self.resolve(host_path)?;
        let display = || host_path.display().to_string();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&path)
            .map_err(|source| HostError::Io {
                path: display(),
                source,
            })?;
        let meta = file.metadata().map_err(|source| HostError::Io {
            path: display(),
            source,
        })?;
        let kind = meta.file_type();
        if !kind.is_file() {
            let kind = if kind.is_dir() {
                "directory"
            } else if kind.is_fifo() {
                "FIFO"
            } else if kind.is_socket() {
                "socket"
            } else if kind.is_char_device() {
                "character device"
            } else if kind.is_block_device() {
                "block device"
            } else {
                "special file"
            };
            return Err(HostError::NotRegular {
                path: display(),
                kind,
            });
        }
        Ok((file, meta.len()))
    }

    /// Read a whole regular file of the host (bounded by [`MAX_HOST_FILE_BYTES`]).
    pub fn read(&self, host_path: impl AsRef<Path>) -> Result<Vec<u8>, HostError> {
        let host_path = host_path.as_ref();
        let display = || host_path.display().to_string();
        let (file, len) = self.open_regular(host_path)?;
        if len > MAX_HOST_FILE_BYTES {
            return Err(HostError::TooLarge {
                path: display(),
                limit: MAX_HOST_FILE_BYTES,
            });
        }
        // Package indexes are tens of MiB: size the buffer once instead of growing it.
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0).saturating_add(1));
        // Read one byte past the limit to tell "exactly at the limit" from "larger" (a file
        // growing while it is read).
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
        let (file, len) = self.open_regular(host_path)?;
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

    /// Read a file of the host as text (invalid UTF-8 replaced, see [`repair_utf8`]).
    pub fn read_to_string(&self, host_path: impl AsRef<Path>) -> Result<String, HostError> {
        Ok(repair_utf8(self.read(host_path)?))
    }

    /// True when some process holds a POSIX record lock (`fcntl`, as dpkg and rpm take them)
    /// on the host file `host_path`; false when it is unlocked or does not exist.
    pub fn is_locked(&self, host_path: impl AsRef<Path>) -> Result<bool, HostError> {
        let host_path = host_path.as_ref();
        let path = self.resolve(host_path)?;
        let io = |source| HostError::Io {
            path: host_path.display().to_string(),
            source,
        };
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io(e)),
        };
        // SAFETY: an all-zero `flock` is a valid value of the plain C struct.
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        lock.l_type = libc::F_WRLCK as libc::c_short;
        lock.l_whence = libc::SEEK_SET as libc::c_short;
        // SAFETY: F_GETLK reads and writes only the `flock` we pass, on a descriptor we own.
        let rc = unsafe {
            libc::fcntl(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                libc::F_GETLK,
                &mut lock,
            )
        };
        if rc != 0 {
            return Err(io(std::io::Error::last_os_error()));
        }
        Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
    }

    /// Wait until none of `host_paths` is locked ([`HostRoot::is_locked`]), at most `timeout`;
    /// true when they all are free. A transaction started by an earlier agent (that survived
    /// its pod) is still running while its package manager holds the lock.
    pub fn wait_until_unlocked(
        &self,
        host_paths: &[&str],
        timeout: std::time::Duration,
    ) -> Result<bool, HostError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let mut locked = false;
            for path in host_paths {
                locked |= self.is_locked(path)?;
            }
            if !locked {
                return Ok(true);
            }
            if std::time::Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
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

    /// Names of the entries of a host directory, sorted; empty when it does not exist. Names
    /// that are not UTF-8 are left out with a warning (no file the agent reads has one; see
    /// [`HostRoot::list_dir_entries`] to report them).
    pub fn list_dir(&self, host_path: impl AsRef<Path>) -> Result<Vec<String>, HostError> {
        let listing = self.list_dir_entries(&host_path)?;
        for name in &listing.not_utf8 {
            tracing::warn!(
                dir = %host_path.as_ref().display(),
                name = %name,
                "skipping a directory entry whose name is not UTF-8"
            );
        }
        Ok(listing.names)
    }

    /// The entries of a host directory: UTF-8 names sorted, and the others (shown lossily)
    /// apart. Empty when the directory does not exist.
    pub fn list_dir_entries(&self, host_path: impl AsRef<Path>) -> Result<DirListing, HostError> {
        let host_path = host_path.as_ref();
        let path = self.resolve(host_path)?;
        let entries = match std::fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(DirListing::default());
            }
            Err(source) => {
                return Err(HostError::Io {
                    path: host_path.display().to_string(),
                    source,
                });
            }
        };
        let mut listing = DirListing::default();
        for entry in entries {
            let entry = entry.map_err(|source| HostError::Io {
                path: host_path.display().to_string(),
                source,
            })?;
            match entry.file_name().into_string() {
                Ok(name) => listing.names.push(name),
                Err(raw) => listing
                    .not_utf8
                    .push(String::from_utf8_lossy(raw.as_bytes()).into_owned()),
            }
        }
        listing.names.sort();
        listing.not_utf8.sort();
        Ok(listing)
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

/// Host bytes as text, each invalid UTF-8 sequence replaced by `?`: never longer than the input
/// (`String::from_utf8_lossy` writes three bytes for each, which could triple a bounded file in
/// memory), and without a copy when the bytes are valid.
pub fn repair_utf8(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => repair_utf8_slice(e.as_bytes()),
    }
}

/// [`repair_utf8`] for borrowed bytes (always a copy).
pub fn repair_utf8_slice(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            text.push('?');
        }
    }
    text
}

/// A host directory's entries ([`HostRoot::list_dir_entries`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirListing {
    /// UTF-8 names, sorted.
    pub names: Vec<String>,
    /// Names that are not UTF-8, lossily converted for messages (no path can be built from
    /// them), sorted.
    pub not_utf8: Vec<String>,
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

#[cfg(test)]
mod tests;
