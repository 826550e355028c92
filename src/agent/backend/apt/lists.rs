//! apt's package lists, read in-process: the `Release`/`InRelease` and `Packages` files that
//! `apt-get update` stored in `/var/lib/apt/lists`, and what `apt-get -s dist-upgrade` would
//! upgrade over them under the host's policy ([`super::preferences`]).
//!
//! Default priorities (apt's `pkgPolicy::InitDefaults`): 500 for an ordinary suite, 1 for a
//! suite whose Release says `NotAutomatic: yes`, 100 when it also says
//! `ButAutomaticUpgrades: yes`, and 100 for the installed version (dpkg's status); the host's
//! pins change them. The candidate is the version of highest priority (the highest version on
//! ties), never below the installed one unless its priority is ≥ 1000. Packages held with
//! `dpkg --set-selections`/`apt-mark hold` are kept back, and so are upgrades apt's phasing
//! keeps back on this machine (`Phased-Update-Percentage`).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Read as _;

use super::aptconf::AptPolicyError;
use super::deb822::{
    Deb822Error, carriage_return_line, leading_field, paragraphs, parse_paragraph,
};
use super::dpkg::{DpkgDatabase, normalize_arch, parse_source_field};
use crate::agent::host::{
    HostBytes, HostError, HostRoot, MAX_DECOMPRESSED_BYTES, repair_utf8, repair_utf8_slice,
};

/// Directory where apt keeps downloaded lists.
pub const LISTS_DIR: &str = "/var/lib/apt/lists";

/// Pin priority of an ordinary suite.
pub const PRIORITY_DEFAULT: i32 = 500;
/// Pin priority of the installed version (dpkg's status file).
pub const PRIORITY_INSTALLED: i32 = 100;
/// Pin priority of a `NotAutomatic: yes` + `ButAutomaticUpgrades: yes` suite (backports).
pub const PRIORITY_BUT_AUTOMATIC_UPGRADES: i32 = 100;
/// Pin priority of a `NotAutomatic: yes` suite (experimental).
pub const PRIORITY_NOT_AUTOMATIC: i32 = 1;

/// Errors reading apt's lists.
#[derive(Debug, thiserror::Error)]
pub enum ListsError {
    /// A lists file is compressed with a format the agent does not read.
    #[error("{path}: unsupported compression {extension:?} (supported: none, .lz4, .gz)")]
    UnsupportedCompression {
        /// Host path.
        path: String,
        /// The extension.
        extension: String,
    },
    /// A compressed lists file could not be decompressed.
    #[error("{path}: cannot decompress: {source}")]
    Decompress {
        /// Host path.
        path: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A compressed lists file decompresses to more than [`MAX_DECOMPRESSED_BYTES`].
    #[error("{path}: decompresses to more than {limit} bytes")]
    TooLarge {
        /// Host path.
        path: String,
        /// The limit.
        limit: u64,
    },
    /// A lists file has a carriage return (CRLF line ends): apt writes LF only, and a CRLF file
    /// would read as one paragraph.
    #[error(
        "{path} line {line}: carriage return (CR) in an apt lists file; apt writes LF-only lines"
    )]
    CarriageReturn {
        /// Host path.
        path: String,
        /// Line of the first CR.
        line: usize,
    },
    /// A lists file is not valid deb822.
    #[error("{path}: {source}")]
    Malformed {
        /// Host path.
        path: String,
        /// What is wrong.
        #[source]
        source: Deb822Error,
    },
    /// Reading failed.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The host's apt configuration or preferences hold something apt rejects or the agent does
    /// not implement.
    #[error(transparent)]
    Policy(#[from] AptPolicyError),
}

impl ListsError {
    /// Bounded category for metrics and report reasons.
    pub fn category(&self) -> &'static str {
        match self {
            ListsError::UnsupportedCompression { .. } => "AptListsUnsupportedCompression",
            ListsError::Decompress { .. } => "AptListsCorrupt",
            ListsError::TooLarge { .. } => "AptListsTooLarge",
            ListsError::Malformed { .. } | ListsError::CarriageReturn { .. } => "AptListsCorrupt",
            ListsError::Host(e) => e.category(),
            ListsError::Policy(e) => e.category(),
        }
    }
}

/// What a suite's `Release` file says about it (apt's "package file" metadata).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReleaseInfo {
    /// List-file prefix (`deb.debian.org_debian_dists_bookworm`), identifies the suite.
    pub list_prefix: String,
    /// `Origin:` (`Debian`, `Ubuntu`, `UbuntuESM`).
    pub origin: String,
    /// `Label:` (`Debian-Security`).
    pub label: String,
    /// `Suite:` (`oldstable-security`, `noble-updates`).
    pub suite: String,
    /// `Codename:` (`bookworm-security`, `noble`).
    pub codename: String,
    /// `Version:` (`12`, `24.04`).
    pub version: String,
    /// `NotAutomatic: yes`.
    pub not_automatic: bool,
    /// `ButAutomaticUpgrades: yes`.
    pub but_automatic_upgrades: bool,
    /// Host name of the source (`deb.debian.org`), empty for `file:` sources.
    pub site: String,
}

impl ReleaseInfo {
    /// apt's default pin priority of this suite.
    pub fn pin_priority(&self) -> i32 {
        match (self.not_automatic, self.but_automatic_upgrades) {
            (true, true) => PRIORITY_BUT_AUTOMATIC_UPGRADES,
            (true, false) => PRIORITY_NOT_AUTOMATIC,
            _ => PRIORITY_DEFAULT,
        }
    }

    /// A security suite of the distribution. The Release's `Origin`/`Label` name the
    /// distribution, and the site apt downloads it from (the host of its URI, as `apt-cache
    /// policy` shows it) must be the distribution's own, since any third-party repository can
    /// write `Origin: Debian` and `Label: Debian-Security` in its Release file:
    ///
    /// - Debian: `Origin: Debian`, `Label: Debian-Security`, from `debian.org` or a subdomain
    ///   (`security.debian.org`, `deb.debian.org`);
    /// - Ubuntu: `Origin: Ubuntu` and a `-security` Suite or Codename (`noble-security`), from
    ///   `ubuntu.com` or a subdomain (`security.ubuntu.com`, `archive.ubuntu.com`,
    ///   `ports.ubuntu.com`);
    /// - Ubuntu ESM: `Origin: UbuntuESM`/`UbuntuESMApps` and a `-security` Suite
    ///   (`noble-infra-security`, `noble-apps-security`), from `esm.ubuntu.com`.
    ///
    /// A `file:` (or `cdrom:`) source has no site: it is a directory on the node that only its
    /// administrator writes, and counts as the distribution's (a local mirror). A mirror or proxy
    /// under another host name is not security; [`ReleaseInfo::claims_security`] tells those
    /// apart so the scan can say so.
    pub fn is_security(&self) -> bool {
        self.claims_security() && self.site_is_distribution()
    }

    /// The Release's `Origin`/`Label`/suite say "the distribution's security archive",
    /// whoever serves it.
    pub fn claims_security(&self) -> bool {
        let security_suite =
            self.codename.ends_with("-security") || self.suite.ends_with("-security");
        match self.origin.as_str() {
            "Debian" => self.label == "Debian-Security",
            "Ubuntu" => security_suite,
            origin if origin.starts_with("UbuntuESM") => security_suite,
            _ => false,
        }
    }

    /// The site serving this suite is the distribution's own (see [`ReleaseInfo::is_security`]).
    fn site_is_distribution(&self) -> bool {
        if self.site.is_empty() {
            return true;
        }
        // `host:port` (apt escapes the colon in list names as `%3a`).
        let host = self
            .site
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let under = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
        match self.origin.as_str() {
            "Debian" => under("debian.org"),
            "Ubuntu" => under("ubuntu.com"),
            origin if origin.starts_with("UbuntuESM") => host == "esm.ubuntu.com",
            _ => false,
        }
    }

    /// The suite name used as the `Repository` filter value: the codename form
    /// (`bookworm-security`) when the Release has one, else the suite.
    pub fn repository(&self) -> &str {
        if !self.codename.is_empty() && (self.codename.contains('-') || !self.suite.contains('-')) {
            &self.codename
        } else if !self.suite.is_empty() {
            &self.suite
        } else {
            &self.codename
        }
    }

    /// How apt names this origin in `apt-get -s` output (`Label:Version/Suite`, the
    /// `VerIterator::RelStr` format), so tests can compare with apt's `Inst` lines.
    pub fn apt_rel_str(&self) -> String {
        let mut s = String::new();
        if !self.label.is_empty() {
            s.push_str(&self.label);
            s.push(':');
        }
        if !self.suite.is_empty() {
            if !self.version.is_empty() {
                s.push_str(&self.version);
                s.push('/');
            }
            s.push_str(&self.suite);
        } else if self.site.is_empty() {
            s.push_str("localhost");
        } else {
            s.push_str(&self.site);
        }
        s
    }
}

/// Strip the OpenPGP clear-signature armour of an `InRelease` file, leaving the signed text.
pub fn strip_clearsign(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("-----BEGIN PGP SIGNED MESSAGE-----") else {
        return text;
    };
    // Armour headers ("Hash: SHA512") end at the first empty line.
    let body_start = rest.find("\n\n").map(|i| i + 2).unwrap_or(rest.len());
    let body = &rest[body_start..];
    let end = body
        .find("\n-----BEGIN PGP SIGNATURE-----")
        .map(|i| i + 1)
        .unwrap_or(body.len());
    &body[..end]
}

/// Parse a Release/InRelease text (dash-escaped lines, `- text`, never hold the fields we read).
pub fn parse_release(text: &str, list_prefix: &str) -> Result<ReleaseInfo, Deb822Error> {
    let body = strip_clearsign(text);
    let mut info = ReleaseInfo {
        list_prefix: list_prefix.to_string(),
        ..ReleaseInfo::default()
    };
    if let Some(paragraph) = paragraphs(body).next() {
        let paragraph = paragraph?;
        let get = |k: &str| paragraph.get(k).unwrap_or_default().to_string();
        let yes = |k: &str| {
            paragraph
                .get(k)
                .is_some_and(|v| v.eq_ignore_ascii_case("yes"))
        };
        info.origin = get("Origin");
        info.label = get("Label");
        info.suite = get("Suite");
        info.codename = get("Codename");
        info.version = get("Version");
        info.not_automatic = yes("NotAutomatic");
        info.but_automatic_upgrades = yes("ButAutomaticUpgrades");
    }
    info.site = site_of_prefix(list_prefix);
    Ok(info)
}

/// The host part of a list-file prefix (`deb.debian.org_debian_dists_x` → `deb.debian.org`);
/// `file:` sources start with `_` and have none.
fn site_of_prefix(prefix: &str) -> String {
    if prefix.starts_with('_') {
        return String::new();
    }
    prefix
        .split('_')
        .next()
        .unwrap_or_default()
        .replace("%3a", ":")
}

/// One `Packages` file of the lists directory and the suite it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackagesIndex {
    /// File name in the lists directory.
    pub file_name: String,
    /// Component (`main`, `non-free-firmware`, empty for flat repositories).
    pub component: String,
    /// Index into [`AptLists::releases`], `None` when no Release file matches (apt then uses
    /// the list with default priority and no origin data).
    pub release: Option<usize>,
    /// Architecture of the index (`amd64`, from `binary-amd64`), empty for flat repositories.
    pub arch: String,
}

/// The lists directory's suites and Packages indexes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AptLists {
    /// One per Release/InRelease file (InRelease preferred when both exist).
    pub releases: Vec<ReleaseInfo>,
    /// Packages indexes of the architectures dpkg uses.
    pub indexes: Vec<PackagesIndex>,
    /// Entries of the lists directory whose names are not UTF-8 (shown lossily): skipped,
    /// since apt never writes such names and no path can be built from them.
    pub skipped_names: Vec<String>,
}

const COMPRESSION_EXTENSIONS: [&str; 6] = [".lz4", ".gz", ".xz", ".zst", ".bz2", ".lzma"];

fn strip_compression(name: &str) -> (&str, &str) {
    for ext in COMPRESSION_EXTENSIONS {
        if let Some(base) = name.strip_suffix(ext) {
            return (base, ext);
        }
    }
    (name, "")
}

/// Find the suites and the Packages indexes for `archs` in the host's lists directory.
///
/// Every list present is taken as configured: `apt-get update` deletes the lists of sources
/// that are no longer configured, so the directory reflects the sources of the last update.
pub fn discover_lists(root: &HostRoot, archs: &[String]) -> Result<AptLists, ListsError> {
    discover_lists_in(root, LISTS_DIR, archs)
}

/// [`discover_lists`] in another lists directory `dir` (the private lists of alternative patch
/// sources, [`crate::agent::backend::sources`]).
pub fn discover_lists_in(
    root: &HostRoot,
    dir: &str,
    archs: &[String],
) -> Result<AptLists, ListsError> {
    let listing = root.list_dir_entries(dir)?;
    let names = listing.names;
    let mut release_files: BTreeMap<String, String> = BTreeMap::new();
    for name in &names {
        if let Some(prefix) = name.strip_suffix("_InRelease") {
            release_files.insert(prefix.to_string(), name.clone());
        }
    }
    for name in &names {
        if let Some(prefix) = name.strip_suffix("_Release") {
            release_files
                .entry(prefix.to_string())
                .or_insert_with(|| name.clone());
        }
    }
    let mut releases = Vec::new();
    let mut prefixes: Vec<(String, usize)> = Vec::new();
    for (prefix, file) in &release_files {
        let text = root.read_to_string(format!("{dir}/{file}"))?;
        if let Some(line) = carriage_return_line(strip_clearsign(&text)) {
            return Err(ListsError::CarriageReturn {
                path: format!("{dir}/{file}"),
                line,
            });
        }
        let info = parse_release(&text, prefix).map_err(|source| ListsError::Malformed {
            path: format!("{dir}/{file}"),
            source,
        })?;
        prefixes.push((prefix.clone(), releases.len()));
        releases.push(info);
    }
    // Longest prefix first, so `..._bookworm-updates_` never matches the `..._bookworm` suite.
    prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
    let mut indexes = Vec::new();
    for name in &names {
        let (base, _) = strip_compression(name);
        let Some(stem) = base.strip_suffix("_Packages") else {
            continue;
        };
        // `<prefix>_<component>_binary-<arch>` or a flat repository's `<prefix>`.
        let (path_part, arch) = match stem.rfind("_binary-") {
            Some(i) => (&stem[..i], Some(&stem[i + "_binary-".len()..])),
            None => (stem, None),
        };
        if let Some(arch) = arch
            && !archs.iter().any(|a| a == arch)
        {
            continue;
        }
        let matched = prefixes.iter().find(|(prefix, _)| {
            path_part == prefix.as_str() || path_part.starts_with(&format!("{prefix}_"))
        });
        let (component, release) = match matched {
            Some((prefix, index)) => {
                let component = path_part[prefix.len()..]
                    .trim_start_matches('_')
                    .replace('_', "/");
                (component, Some(*index))
            }
            None => (String::new(), None),
        };
        indexes.push(PackagesIndex {
            file_name: name.clone(),
            component,
            release,
            arch: arch.unwrap_or_default().to_string(),
        });
    }
    Ok(AptLists {
        releases,
        indexes,
        skipped_names: listing.not_utf8,
    })
}

/// The text of a lists file: mapped when it is stored uncompressed (no copy of tens of MiB),
/// else decompressed into memory.
pub enum ListText {
    /// An uncompressed file, mapped.
    Mapped(HostBytes),
    /// Decompressed (or not valid UTF-8, repaired) text.
    Owned(String),
}

impl ListText {
    /// The text; invalid UTF-8 in a mapped file is replaced (a copy, for that file only).
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            ListText::Mapped(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => Cow::Borrowed(text),
                Err(_) => Cow::Owned(repair_utf8_slice(bytes)),
            },
            ListText::Owned(text) => Cow::Borrowed(text),
        }
    }
}

/// Read a lists file, decompressing `.lz4` and `.gz` (what apt stores with
/// `Acquire::GzipIndexes`).
pub fn read_list_file(root: &HostRoot, file_name: &str) -> Result<ListText, ListsError> {
    read_list_file_in(root, LISTS_DIR, file_name)
}

/// [`read_list_file`] in the lists directory `dir`.
pub fn read_list_file_in(
    root: &HostRoot,
    dir: &str,
    file_name: &str,
) -> Result<ListText, ListsError> {
    let path = format!("{dir}/{file_name}");
    let (_, ext) = strip_compression(file_name);
    if ext.is_empty() {
        return Ok(ListText::Mapped(root.map(&path)?));
    }
    let bytes = root.read(&path)?;
    decompress_list(&bytes, ext, &path, MAX_DECOMPRESSED_BYTES).map(ListText::Owned)
}

/// Decompress the bytes of the lists file `path` by its extension (`.lz4`, `.gz`; several gzip
/// members are read like one) into text of at most `limit` bytes (invalid UTF-8 replaced, never
/// growing the text).
pub fn decompress_list(
    bytes: &[u8],
    ext: &str,
    path: &str,
    limit: u64,
) -> Result<String, ListsError> {
    let capacity = bytes
        .len()
        .saturating_mul(4)
        .min(usize::try_from(limit).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(capacity);
    // One byte past the limit tells "exactly at the limit" from "larger".
    let decompressed = match ext {
        ".lz4" => lz4_flex::frame::FrameDecoder::new(bytes)
            .take(limit.saturating_add(1))
            .read_to_end(&mut out),
        ".gz" => flate2::read::MultiGzDecoder::new(bytes)
            .take(limit.saturating_add(1))
            .read_to_end(&mut out),
        other => {
            return Err(ListsError::UnsupportedCompression {
                path: path.to_string(),
                extension: other.to_string(),
            });
        }
    };
    decompressed.map_err(|source| ListsError::Decompress {
        path: path.to_string(),
        source,
    })?;
    if out.len() as u64 > limit {
        return Err(ListsError::TooLarge {
            path: path.to_string(),
            limit,
        });
    }
    Ok(repair_utf8(out))
}

/// One version of a package offered by the lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvailableVersion {
    /// Package name.
    pub name: String,
    /// `Architecture:` as written (`amd64`, `all`).
    pub arch: String,
    /// Version.
    pub version: String,
    /// Indexes into [`AptLists::releases`] of every suite offering this version (`None` for a
    /// list without Release file).
    pub releases: Vec<Option<usize>>,
    /// Positions in [`AptLists::indexes`] of every Packages index offering this version (the
    /// package files pins match).
    pub indexes: Vec<usize>,
    /// `Phased-Update-Percentage` when below 100.
    pub phased_percentage: Option<u32>,
    /// Set when lists disagree on the version's phasing (apt keeps the value of the first list
    /// in its sources order, which the agent does not model): the path of the other list.
    pub phased_conflict: Option<String>,
    /// Component of the first list offering it.
    pub component: String,
    /// `Priority:`.
    pub priority: Option<String>,
    /// `Section:`.
    pub section: Option<String>,
    /// Source package name.
    pub source_name: String,
    /// Source package version.
    pub source_version: String,
    /// `Pre-Depends:` and `Depends:` joined with `, ` (for Block-action dependency checks).
    pub depends: String,
}

/// An upgrade apt would make: the installed version and the candidate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AptUpgrade {
    /// Package name.
    pub name: String,
    /// Installed version.
    pub installed_version: String,
    /// Architecture of the installed package as dpkg records it.
    pub installed_arch: String,
    /// The candidate version, with every suite offering it.
    pub candidate: AvailableVersion,
    /// dpkg selection is `hold`: apt keeps it back, nodepatch does not install it.
    pub held: bool,
}

/// Versions offered for installed packages, gathered from every Packages index.
pub type AvailableByPackage = HashMap<(String, String), Vec<AvailableVersion>>;

/// Read every Packages index and keep the versions of packages that are installed, keyed by
/// (name, architecture with `all` as native). Uninteresting paragraphs are skipped after
/// their first line, which keeps a full Debian archive's lists fast to scan.
pub fn collect_available(
    root: &HostRoot,
    lists: &AptLists,
    dpkg: &DpkgDatabase,
) -> Result<AvailableByPackage, ListsError> {
    collect_available_in(root, LISTS_DIR, lists, dpkg)
}

/// [`collect_available`] from the lists directory `dir` that `lists` was discovered in.
pub fn collect_available_in(
    root: &HostRoot,
    dir: &str,
    lists: &AptLists,
    dpkg: &DpkgDatabase,
) -> Result<AvailableByPackage, ListsError> {
    // Installed packages, and half-done ones (their versions are needed to report a failed
    // upgrade as still missing).
    let mut installed_names: HashMap<&str, ()> = HashMap::new();
    for p in dpkg
        .packages
        .iter()
        .filter(|p| p.state.is_installed() || p.state.is_broken())
    {
        installed_names.insert(p.name.as_str(), ());
    }
    let archs = dpkg.architectures();
    let mut available: AvailableByPackage = HashMap::new();
    for (position, index) in lists.indexes.iter().enumerate() {
        let list = read_list_file_in(root, dir, &index.file_name)?;
        let text = list.text();
        let path = format!("{dir}/{}", index.file_name);
        collect_from_packages_text(
            &text,
            &path,
            (position, index),
            &installed_names,
            &archs,
            &dpkg.native_arch,
            &mut available,
        )?;
    }
    Ok(available)
}

/// Scan one Packages text (see [`collect_available`]).
pub fn collect_from_packages_text(
    text: &str,
    path: &str,
    (position, index): (usize, &PackagesIndex),
    wanted: &HashMap<&str, ()>,
    archs: &[String],
    native_arch: &str,
    available: &mut AvailableByPackage,
) -> Result<(), ListsError> {
    if let Some(line) = carriage_return_line(text) {
        return Err(ListsError::CarriageReturn {
            path: path.to_string(),
            line,
        });
    }
    let mut cursor = paragraphs(text);
    while let Some(raw) = cursor.next_raw() {
        // apt-ftparchive, dak and reprepro all write `Package:` first; anything else gets a
        // full parse.
        if let Some(name) = leading_field(raw, "Package")
            && !wanted.contains_key(name)
        {
            continue;
        }
        let paragraph = match parse_paragraph(raw, 1, false) {
            Ok(p) => p,
            Err(e) => {
                let source = e.at_paragraph_line(cursor.line());
                return Err(ListsError::Malformed {
                    path: path.to_string(),
                    source,
                });
            }
        };
        let (Some(name), Some(version)) = (paragraph.get("Package"), paragraph.get("Version"))
        else {
            continue;
        };
        if !wanted.contains_key(name) || version.is_empty() {
            continue;
        }
        let arch = paragraph.get("Architecture").unwrap_or("all");
        if !archs.iter().any(|a| a == arch) {
            continue;
        }
        let key = (
            name.to_string(),
            normalize_arch(arch, native_arch).to_string(),
        );
        let versions = available.entry(key).or_default();
        // apt ignores a value above 100 (with a warning) and keeps 100.
        let phased_percentage = paragraph
            .get("Phased-Update-Percentage")
            .and_then(|p| p.parse::<u32>().ok())
            .filter(|p| *p < 100);
        if let Some(existing) = versions.iter_mut().find(|v| v.version == version) {
            if !existing.releases.contains(&index.release) {
                existing.releases.push(index.release);
            }
            if !existing.indexes.contains(&position) {
                existing.indexes.push(position);
            }
            if existing.phased_percentage != phased_percentage {
                existing.phased_conflict = Some(path.to_string());
            }
            continue;
        }
        let (source_name, source_version) =
            parse_source_field(paragraph.get("Source").unwrap_or_default(), name, version);
        let depends = [paragraph.get("Pre-Depends"), paragraph.get("Depends")]
            .into_iter()
            .flatten()
            .filter(|d| !d.is_empty())
            .collect::<Vec<_>>()
            .join(", ");
        versions.push(AvailableVersion {
            name: name.to_string(),
            arch: arch.to_string(),
            version: version.to_string(),
            releases: vec![index.release],
            indexes: vec![position],
            phased_percentage,
            phased_conflict: None,
            component: index.component.clone(),
            priority: paragraph.get("Priority").map(str::to_string),
            section: paragraph.get("Section").map(str::to_string),
            source_name,
            source_version,
            depends,
        });
    }
    Ok(())
}
