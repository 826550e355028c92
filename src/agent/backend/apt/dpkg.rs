//! dpkg's database, read in-process: `/var/lib/dpkg/status` plus the pending journal records in
//! `/var/lib/dpkg/updates/NNNN`, merged the way dpkg itself does when it loads the database
//! (records applied in numeric file order, each replacing the package's status entry).

use std::collections::BTreeMap;

use super::deb822::{Deb822Error, Paragraph, carriage_return_line, paragraphs};
use crate::agent::host::{HostError, HostRoot, repair_utf8};
use crate::baseline::version::VersionError;
use crate::baseline::version::deb::DebVersion;

/// Path of dpkg's status database on the host.
pub const STATUS_PATH: &str = "/var/lib/dpkg/status";
/// Directory of dpkg's pending journal records.
pub const UPDATES_DIR: &str = "/var/lib/dpkg/updates";
/// dpkg's list of foreign architectures.
pub const ARCH_PATH: &str = "/var/lib/dpkg/arch";

/// Errors reading dpkg's database.
#[derive(Debug, thiserror::Error)]
pub enum DpkgError {
    /// `/var/lib/dpkg/status` does not exist: not a dpkg system, or a broken one.
    #[error("dpkg status database {STATUS_PATH} is missing")]
    StatusMissing,
    /// A file of the database is not valid deb822.
    #[error("{path}: {source}")]
    Malformed {
        /// Host path of the file.
        path: String,
        /// What is wrong.
        #[source]
        source: Deb822Error,
    },
    /// A record lacks a field dpkg always writes.
    #[error("{path} line {line}: package record without {field}")]
    MissingField {
        /// Host path of the file.
        path: String,
        /// Line of the record.
        line: usize,
        /// The missing field.
        field: &'static str,
    },
    /// A `Status:` value is not three words dpkg knows.
    #[error("{path} line {line}: invalid Status {status:?}")]
    InvalidStatus {
        /// Host path of the file.
        path: String,
        /// Line of the record.
        line: usize,
        /// The value.
        status: String,
    },
    /// A version dpkg itself would refuse to load (`Version:` or `Config-Version:`): it cannot
    /// be ordered against candidates, so no verdict can be trusted.
    #[error("{path} line {line}: package {package}: {field}: {source}")]
    InvalidVersion {
        /// Host path of the file.
        path: String,
        /// Line of the record.
        line: usize,
        /// The package.
        package: String,
        /// `Version` or `Config-Version`.
        field: &'static str,
        /// What is wrong (boxed: keeps the error small).
        #[source]
        source: Box<VersionError>,
    },
    /// The file has a carriage return (CRLF line ends): dpkg writes LF only.
    #[error(
        "{path} line {line}: carriage return (CR) in dpkg's database; dpkg writes LF-only lines"
    )]
    CarriageReturn {
        /// Host path of the file.
        path: String,
        /// Line of the first CR.
        line: usize,
    },
    /// The database has no installed packages at all (dpkg itself is always installed).
    #[error(
        "dpkg status database {STATUS_PATH} lists no installed package of a machine architecture (dpkg itself always is one)"
    )]
    Empty,
    /// Reading failed.
    #[error(transparent)]
    Host(#[from] HostError),
}

impl DpkgError {
    /// Bounded category for metrics and report reasons.
    pub fn category(&self) -> &'static str {
        match self {
            DpkgError::StatusMissing => "DpkgStatusMissing",
            DpkgError::Malformed { .. }
            | DpkgError::MissingField { .. }
            | DpkgError::InvalidStatus { .. }
            | DpkgError::InvalidVersion { .. }
            | DpkgError::CarriageReturn { .. } => "DpkgStatusCorrupt",
            DpkgError::Empty => "DpkgStatusEmpty",
            DpkgError::Host(e) => e.category(),
        }
    }
}

/// dpkg's selection state (first word of `Status:`): what the administrator wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Selection {
    /// `install`.
    Install,
    /// `hold`: apt keeps the package back.
    Hold,
    /// `deinstall`.
    Deinstall,
    /// `purge`.
    Purge,
    /// `unknown`.
    Unknown,
}

/// dpkg's package state (third word of `Status:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PackageState {
    /// `not-installed`.
    NotInstalled,
    /// `config-files`: removed, configuration kept.
    ConfigFiles,
    /// `half-installed`: unpacking was interrupted.
    HalfInstalled,
    /// `unpacked`: not configured yet.
    Unpacked,
    /// `half-configured`: configuration failed or was interrupted.
    HalfConfigured,
    /// `triggers-awaited`: installed, waiting for another package's trigger processing.
    TriggersAwaited,
    /// `triggers-pending`: installed, its triggers not processed yet.
    TriggersPending,
    /// `installed`.
    Installed,
}

impl PackageState {
    /// Files and configuration are in place (dpkg's "installed" and the trigger states, which
    /// apt also counts as installed).
    pub fn is_installed(self) -> bool {
        matches!(
            self,
            PackageState::Installed | PackageState::TriggersAwaited | PackageState::TriggersPending
        )
    }

    /// An operation on the package was interrupted or failed; `dpkg --configure -a` (or a
    /// reinstall) is needed.
    pub fn is_broken(self) -> bool {
        matches!(
            self,
            PackageState::HalfInstalled | PackageState::Unpacked | PackageState::HalfConfigured
        )
    }

    /// dpkg's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PackageState::NotInstalled => "not-installed",
            PackageState::ConfigFiles => "config-files",
            PackageState::HalfInstalled => "half-installed",
            PackageState::Unpacked => "unpacked",
            PackageState::HalfConfigured => "half-configured",
            PackageState::TriggersAwaited => "triggers-awaited",
            PackageState::TriggersPending => "triggers-pending",
            PackageState::Installed => "installed",
        }
    }
}

/// One package record of dpkg's database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpkgPackage {
    /// Package name.
    pub name: String,
    /// Architecture as recorded (`amd64`, `all`, …).
    pub arch: String,
    /// Installed version (empty for not-installed records).
    pub version: String,
    /// Selection (install / hold / …).
    pub selection: Selection,
    /// State.
    pub state: PackageState,
    /// Source package name (the binary name when no `Source:` field).
    pub source_name: String,
    /// Source version (the binary version when `Source:` has none).
    pub source_version: String,
    /// `Priority:` (lowercase as written), if any.
    pub priority: Option<String>,
    /// `Section:`, if any.
    pub section: Option<String>,
    /// `Config-Version:`: the last version whose configuration completed, kept by dpkg while a
    /// newer version is unpacked or half-configured.
    pub config_version: Option<String>,
}

impl DpkgPackage {
    /// The key apt and dpkg use for a package instance: name and architecture, with `all`
    /// counted as the native architecture (that is where apt files arch-all packages).
    pub fn key(&self, native_arch: &str) -> (String, String) {
        (
            self.name.clone(),
            normalize_arch(&self.arch, native_arch).to_string(),
        )
    }
}

/// `all` belongs to the native architecture in apt's model.
pub fn normalize_arch<'a>(arch: &'a str, native_arch: &'a str) -> &'a str {
    if arch == "all" || arch.is_empty() {
        native_arch
    } else {
        arch
    }
}

/// dpkg's database as loaded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DpkgDatabase {
    /// Every record with a state other than not-installed, sorted by name and architecture.
    pub packages: Vec<DpkgPackage>,
    /// Native architecture (the architecture of the `dpkg` package).
    pub native_arch: String,
    /// Foreign architectures enabled with `dpkg --add-architecture`.
    pub foreign_archs: Vec<String>,
    /// Journal records that were pending in `/var/lib/dpkg/updates` (dpkg was interrupted).
    pub pending_updates: usize,
}

impl DpkgDatabase {
    /// Packages whose files and configuration are in place.
    pub fn installed(&self) -> impl Iterator<Item = &DpkgPackage> {
        self.packages.iter().filter(|p| p.state.is_installed())
    }

    /// Packages an interrupted or failed operation left half-done.
    pub fn broken(&self) -> impl Iterator<Item = &DpkgPackage> {
        self.packages.iter().filter(|p| p.state.is_broken())
    }

    /// True when dpkg needs `dpkg --configure -a` (pending journal or half-done packages), what
    /// `dpkg --audit` reports.
    pub fn needs_repair(&self) -> bool {
        self.pending_updates > 0 || self.broken().next().is_some()
    }

    /// The installed record of `name` for architecture `arch` (`all` matches native).
    pub fn find_installed(&self, name: &str, arch: &str) -> Option<&DpkgPackage> {
        let want = normalize_arch(arch, &self.native_arch);
        self.installed()
            .find(|p| p.name == name && normalize_arch(&p.arch, &self.native_arch) == want)
    }

    /// Architectures whose packages apt considers: native, `all` and the foreign ones.
    pub fn architectures(&self) -> Vec<String> {
        let mut archs = vec![self.native_arch.clone(), "all".to_string()];
        archs.extend(self.foreign_archs.iter().cloned());
        archs
    }
}

fn parse_selection(word: &str) -> Option<Selection> {
    Some(match word {
        "install" => Selection::Install,
        "hold" => Selection::Hold,
        "deinstall" => Selection::Deinstall,
        "purge" => Selection::Purge,
        "unknown" => Selection::Unknown,
        _ => return None,
    })
}

fn parse_state(word: &str) -> Option<PackageState> {
    Some(match word {
        "not-installed" => PackageState::NotInstalled,
        "config-files" => PackageState::ConfigFiles,
        "half-installed" => PackageState::HalfInstalled,
        "unpacked" => PackageState::Unpacked,
        "half-configured" => PackageState::HalfConfigured,
        "triggers-awaited" => PackageState::TriggersAwaited,
        "triggers-pending" => PackageState::TriggersPending,
        "installed" => PackageState::Installed,
        _ => return None,
    })
}

/// Parse `Source: name` or `Source: name (version)`.
pub fn parse_source_field(
    value: &str,
    binary_name: &str,
    binary_version: &str,
) -> (String, String) {
    let value = value.trim();
    if value.is_empty() {
        return (binary_name.to_string(), binary_version.to_string());
    }
    match value.split_once('(') {
        Some((name, rest)) => {
            let version = rest.trim_end().trim_end_matches(')').trim();
            let version = if version.is_empty() {
                binary_version
            } else {
                version
            };
            // `Source: (1.0)` names no package: the binary's own name stands (found by fuzzing).
            let name = if name.trim().is_empty() {
                binary_name
            } else {
                name.trim()
            };
            (name.to_string(), version.to_string())
        }
        None => (value.to_string(), binary_version.to_string()),
    }
}

fn record_from(paragraph: &Paragraph<'_>, path: &str) -> Result<DpkgPackage, DpkgError> {
    let missing = |field| DpkgError::MissingField {
        path: path.to_string(),
        line: paragraph.line,
        field,
    };
    let name = paragraph
        .get("Package")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| missing("Package"))?;
    let status = paragraph.get("Status").ok_or_else(|| missing("Status"))?;
    let invalid = || DpkgError::InvalidStatus {
        path: path.to_string(),
        line: paragraph.line,
        status: status.to_string(),
    };
    let words: Vec<&str> = status.split_whitespace().collect();
    if words.len() != 3 {
        return Err(invalid());
    }
    let selection = parse_selection(words[0]).ok_or_else(invalid)?;
    let state = parse_state(words[2]).ok_or_else(invalid)?;
    let version = paragraph.get("Version").unwrap_or_default();
    if version.is_empty()
        && !matches!(
            state,
            PackageState::NotInstalled | PackageState::ConfigFiles
        )
    {
        return Err(missing("Version"));
    }
    let check_version = |field: &'static str, value: &str| {
        DebVersion::parse(value)
            .map(|_| ())
            .map_err(|source| DpkgError::InvalidVersion {
                path: path.to_string(),
                line: paragraph.line,
                package: name.to_string(),
                field,
                source: Box::new(source),
            })
    };
    if !version.is_empty() {
        check_version("Version", version)?;
    }
    let config_version = paragraph.get("Config-Version").filter(|v| !v.is_empty());
    if let Some(v) = config_version {
        check_version("Config-Version", v)?;
    }
    let (source_name, source_version) =
        parse_source_field(paragraph.get("Source").unwrap_or_default(), name, version);
    Ok(DpkgPackage {
        name: name.to_string(),
        arch: paragraph
            .get("Architecture")
            .unwrap_or_default()
            .to_string(),
        version: version.to_string(),
        selection,
        state,
        source_name,
        source_version,
        priority: paragraph.get("Priority").map(str::to_string),
        section: paragraph.get("Section").map(str::to_string),
        config_version: config_version.map(str::to_string),
    })
}

/// Parse the text of a status file (or of one journal record) into package records.
pub fn parse_status(text: &str, path: &str) -> Result<Vec<DpkgPackage>, DpkgError> {
    if let Some(line) = carriage_return_line(text) {
        return Err(DpkgError::CarriageReturn {
            path: path.to_string(),
            line,
        });
    }
    let mut records = Vec::new();
    for paragraph in paragraphs(text) {
        let paragraph = paragraph.map_err(|source| DpkgError::Malformed {
            path: path.to_string(),
            source,
        })?;
        records.push(record_from(&paragraph, path)?);
    }
    Ok(records)
}

/// Build the database from the status file's records, the journal records in application order,
/// and the foreign-architecture list.
pub fn merge_database(
    status: Vec<DpkgPackage>,
    updates: Vec<Vec<DpkgPackage>>,
    foreign_archs: Vec<String>,
) -> Result<DpkgDatabase, DpkgError> {
    let pending_updates = updates.len();
    let mut by_key: BTreeMap<(String, String), DpkgPackage> = BTreeMap::new();
    for record in status.into_iter().chain(updates.into_iter().flatten()) {
        by_key.insert((record.name.clone(), record.arch.clone()), record);
    }
    let packages: Vec<DpkgPackage> = by_key
        .into_values()
        .filter(|p| p.state != PackageState::NotInstalled)
        .collect();
    // dpkg is always installed on a dpkg system and is built for the native architecture.
    // dpkg is always installed on a dpkg system and is built for the native architecture; a
    // record without a real architecture says nothing about it.
    let is_machine_arch = |arch: &str| !arch.is_empty() && arch != "all";
    let native_arch = packages
        .iter()
        .find(|p| p.name == "dpkg" && is_machine_arch(&p.arch))
        .or_else(|| {
            packages
                .iter()
                .find(|p| is_machine_arch(&p.arch) && p.state.is_installed())
        })
        .map(|p| p.arch.clone())
        .ok_or(DpkgError::Empty)?;
    Ok(DpkgDatabase {
        packages,
        native_arch,
        foreign_archs,
        pending_updates,
    })
}

/// Load dpkg's database from the host: status, pending journal records and architectures.
pub fn load_database(root: &HostRoot) -> Result<DpkgDatabase, DpkgError> {
    let status_bytes = root
        .read_optional(STATUS_PATH)?
        .ok_or(DpkgError::StatusMissing)?;
    let status = parse_status(&repair_utf8(status_bytes), STATUS_PATH)?;
    // Journal files are named by a decimal number; dpkg applies them in numeric order and
    // ignores anything else (such as its temporary file `tmp.i`).
    let mut journal: Vec<(u64, String)> = root
        .list_dir(UPDATES_DIR)?
        .into_iter()
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|n| n.parse::<u64>().ok().map(|i| (i, n)))
        .collect();
    journal.sort();
    let mut updates = Vec::with_capacity(journal.len());
    for (_, name) in journal {
        let path = format!("{UPDATES_DIR}/{name}");
        let bytes = root.read(&path)?;
        updates.push(parse_status(&repair_utf8(bytes), &path)?);
    }
    let foreign_archs = root
        .read_optional(ARCH_PATH)?
        .map(|bytes| {
            String::from_utf8_lossy(&bytes)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let mut db = merge_database(status, updates, Vec::new())?;
    db.foreign_archs = foreign_archs
        .into_iter()
        .filter(|a| *a != db.native_arch)
        .collect();
    Ok(db)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "\
Package: dpkg
Status: install ok installed
Priority: required
Section: admin
Architecture: amd64
Version: 1.21.22

Package: libc6
Status: hold ok installed
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4

Package: libc6
Status: install ok installed
Architecture: i386
Source: glibc (2.36-9+deb12u4)
Version: 2.36-9+deb12u4+b1

Package: gone
Status: deinstall ok config-files
Architecture: all
Version: 1.0

Package: never
Status: purge ok not-installed
Architecture: all
";

    #[test]
    fn status_records_and_source_forms() {
        let records = parse_status(STATUS, STATUS_PATH).expect("parse");
        let db = merge_database(records, Vec::new(), vec!["i386".into()]).expect("db");
        assert_eq!(db.native_arch, "amd64");
        assert_eq!(db.packages.len(), 4, "not-installed dropped");
        let installed: Vec<_> = db
            .installed()
            .map(|p| (p.name.as_str(), p.arch.as_str()))
            .collect();
        assert_eq!(
            installed,
            vec![("dpkg", "amd64"), ("libc6", "amd64"), ("libc6", "i386")]
        );
        let libc = db.find_installed("libc6", "amd64").expect("libc6");
        assert_eq!(libc.selection, Selection::Hold);
        assert_eq!(
            (libc.source_name.as_str(), libc.source_version.as_str()),
            ("glibc", "2.36-9+deb12u4")
        );
        let libc32 = db.find_installed("libc6", "i386").expect("libc6:i386");
        assert_eq!(libc32.source_version, "2.36-9+deb12u4");
        assert_eq!(
            db.find_installed("dpkg", "all").map(|p| p.name.as_str()),
            Some("dpkg")
        );
        assert!(!db.needs_repair());
    }

    #[test]
    fn journal_records_replace_status_entries_in_order() {
        let status = parse_status(STATUS, STATUS_PATH).expect("parse");
        let first = parse_status("Package: dpkg\nStatus: install ok half-configured\nArchitecture: amd64\nVersion: 1.21.23\n", "u/0000").expect("u0");
        let second = parse_status(
            "Package: dpkg\nStatus: install ok unpacked\nArchitecture: amd64\nVersion: 1.21.24\n",
            "u/0001",
        )
        .expect("u1");
        let db = merge_database(status, vec![first, second], Vec::new()).expect("db");
        let dpkg = db.packages.iter().find(|p| p.name == "dpkg").expect("dpkg");
        assert_eq!(dpkg.version, "1.21.24");
        assert_eq!(dpkg.state, PackageState::Unpacked);
        assert_eq!(db.pending_updates, 2);
        assert!(db.needs_repair());
        assert_eq!(db.broken().count(), 1);
    }

    #[test]
    fn corrupt_status_is_an_error_naming_the_line() {
        let err = parse_status(
            "Package: a\nStatus: install ok installed\nVersion: 1\n\nPackage: b\nStatus: bogus\n",
            STATUS_PATH,
        )
        .expect_err("invalid");
        assert!(
            matches!(err, DpkgError::InvalidStatus { line: 5, .. }),
            "{err}"
        );
        let err = parse_status("garbage without colon\n", STATUS_PATH).expect_err("malformed");
        assert_eq!(err.category(), "DpkgStatusCorrupt");
        let err = parse_status("Package: a\nStatus: install ok installed\n", STATUS_PATH)
            .expect_err("no version");
        assert!(matches!(
            err,
            DpkgError::MissingField {
                field: "Version",
                ..
            }
        ));
        assert!(matches!(
            merge_database(Vec::new(), Vec::new(), Vec::new()),
            Err(DpkgError::Empty)
        ));
        assert_eq!(
            parse_source_field(" (2.0)", "bin", "1.0"),
            ("bin".to_string(), "2.0".to_string())
        );
        // Found by fuzzing: a record with an empty Architecture must not become the native one.
        let no_arch = parse_status(
            "Package: dpkg\nStatus: install ok installed\nArchitecture:\nVersion: 1\n",
            STATUS_PATH,
        )
        .expect("parse");
        assert!(matches!(
            merge_database(no_arch, Vec::new(), Vec::new()),
            Err(DpkgError::Empty)
        ));
    }

    #[test]
    fn versions_dpkg_rejects_and_crlf_are_errors_naming_the_line() {
        // Before: `A:3.0` ordered above every candidate and hid the update.
        let err = parse_status(
            "Package: dpkg\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.21\n\nPackage: openssl\nStatus: install ok installed\nVersion: A:3.0\n",
            STATUS_PATH,
        )
        .expect_err("bad version");
        assert!(
            matches!(&err, DpkgError::InvalidVersion { line: 6, field: "Version", package, .. } if package == "openssl"),
            "{err}"
        );
        assert_eq!(err.category(), "DpkgStatusCorrupt");
        let err = parse_status(
            "Package: a\nStatus: install ok half-configured\nVersion: 2\nConfig-Version: 1 x\n",
            STATUS_PATH,
        )
        .expect_err("bad config version");
        assert!(
            matches!(
                err,
                DpkgError::InvalidVersion {
                    field: "Config-Version",
                    ..
                }
            ),
            "{err}"
        );
        let err = parse_status(
            "Package: a\nStatus: install ok installed\nVersion: 1\r\n",
            STATUS_PATH,
        )
        .expect_err("crlf");
        assert!(
            matches!(err, DpkgError::CarriageReturn { line: 3, .. }),
            "{err}"
        );
    }

    #[test]
    fn load_from_root_merges_numeric_journal_files_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lib = dir.path().join("var/lib/dpkg/updates");
        std::fs::create_dir_all(&lib).expect("mkdir");
        std::fs::write(dir.path().join("var/lib/dpkg/status"), STATUS).expect("write");
        std::fs::write(
            lib.join("0003"),
            "Package: gone\nStatus: install ok installed\nArchitecture: all\nVersion: 2.0\n",
        )
        .expect("write");
        std::fs::write(lib.join("tmp.i"), "garbage").expect("write");
        std::fs::write(dir.path().join("var/lib/dpkg/arch"), "amd64\ni386\n").expect("write");
        let db = load_database(&HostRoot::new(dir.path())).expect("load");
        assert_eq!(db.foreign_archs, vec!["i386".to_string()]);
        assert_eq!(
            db.find_installed("gone", "all").map(|p| p.version.as_str()),
            Some("2.0")
        );
        assert_eq!(db.pending_updates, 1);
        let empty = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            load_database(&HostRoot::new(empty.path())),
            Err(DpkgError::StatusMissing)
        ));
    }
}
