//! Alternative patch sources (`PatchBaseline.spec.sources`, SSM's `Sources`): which sources a
//! node uses ([`repositories_for`]), the agent's own check of their text (the same expressions
//! as the CRD's CEL rules, [`crate::api::APT_SOURCE_LINE`] and [`crate::api::RPM_REPO_LINE`]),
//! and the private files they run with ([`AptSources`], [`DnfSources`]).
//!
//! The node's configuration is never changed. apt: the sources are written to a sources list
//! under nodepatch's state directory on the host, `apt-get update` fills a lists directory
//! there, and the scan reads those lists and `apt-get install` uses the same options, for that
//! operation only; the host's apt configuration, preferences (pins) and phasing still apply.
//! dnf: the sources are written to a `.repo` file in a private `reposdir`, and every dnf run of
//! the operation gets `--setopt=reposdir=` and `--setopt=cachedir=` pointing there, so dnf sees
//! only those repositories and keeps their metadata apart from `/var/cache/dnf`.

use std::sync::OnceLock;

use regex::Regex;
use sha2::Digest as _;

use crate::agent::host::{HostError, HostRoot};
use crate::api::{
    APT_SOURCE_ENTRY, APT_SOURCE_LINE, PackageFamily, PatchSource, RPM_REPO_LINE, RPM_REPO_START,
};
use crate::baseline::wildcard::wildcard_match;

/// Host directory of the private apt files of alternative patch sources.
pub const APT_SOURCES_DIR: &str = "/var/lib/nodepatch/apt-sources";
/// The private sources list (`Dir::Etc::SourceList`).
pub const APT_SOURCE_LIST: &str = "/var/lib/nodepatch/apt-sources/sources.list";
/// An empty directory standing in for `/etc/apt/sources.list.d` (`Dir::Etc::SourceParts`).
pub const APT_SOURCE_PARTS: &str = "/var/lib/nodepatch/apt-sources/sources.list.d";
/// The private lists directory (`Dir::State::Lists`).
pub const APT_LISTS_DIR: &str = "/var/lib/nodepatch/apt-sources/lists";
/// Which sources the private lists were last updated for (sha256 of the sources list).
pub const APT_LISTS_STAMP: &str = "/var/lib/nodepatch/apt-sources/lists-for";

/// Host directory of the private dnf files of alternative patch sources.
pub const DNF_SOURCES_DIR: &str = "/var/lib/nodepatch/dnf-sources";
/// The private repository directory (`--setopt=reposdir=`): only the sources' `.repo` file.
pub const DNF_REPOS_DIR: &str = "/var/lib/nodepatch/dnf-sources/repos.d";
/// The sources' `.repo` file.
pub const DNF_REPO_FILE: &str = "/var/lib/nodepatch/dnf-sources/repos.d/nodepatch-sources.repo";
/// The private metadata cache (`--setopt=cachedir=`), where the scan reads updateinfo.
pub const DNF_CACHE_DIR: &str = "/var/lib/nodepatch/dnf-sources/cache";
/// Which sources the private cache was last refreshed for (sha256 of the `.repo` file).
pub const DNF_CACHE_STAMP: &str = "/var/lib/nodepatch/dnf-sources/cache-for";

/// Errors of alternative patch sources; the operation fails with the category as its reason.
#[derive(Debug, thiserror::Error)]
pub enum SourcesError {
    /// A line the agent does not accept (admission should have refused it).
    #[error(
        "patch source {name:?} line {line}: {text:?} is not an accepted apt entry (`deb [option=value ...] http(s)-or-file-URI suite [component ...]`, blank or `#` comment)"
    )]
    InvalidLine {
        /// Source name.
        name: String,
        /// 1-based line.
        line: usize,
        /// The line.
        text: String,
    },
    /// A source without any `deb` entry.
    #[error("patch source {name:?} has no `deb` entry")]
    NoEntry {
        /// Source name.
        name: String,
    },
    /// A dnf source line the agent does not accept (admission should have refused it).
    #[error(
        "patch source {name:?} line {line}: {text:?} {problem} (a dnf .repo file: `[id]` sections, keys name, baseurl, gpgkey, gpgcheck, enabled, sslverify, module_hotfixes, priority, blank or `#` comment lines)"
    )]
    InvalidRepoLine {
        /// Source name.
        name: String,
        /// 1-based line.
        line: usize,
        /// The line.
        text: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A dnf source, or a repository section of one, that is incomplete.
    #[error("patch source {name:?}: {problem}")]
    InvalidRepo {
        /// Source name.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// Sources match a node whose package manager the agent cannot point at them.
    #[error(
        "patch sources {names:?} match this node's product {product}, but alternative sources are supported for apt (Debian, Ubuntu) and dnf (the RHEL family, Amazon Linux 2023, Fedora) only"
    )]
    Unsupported {
        /// Matching source names.
        names: Vec<String>,
        /// The node's product.
        product: String,
    },
    /// The private lists (apt) or metadata cache (dnf) are not those of these sources and no
    /// refresh ran.
    #[error(
        "the private metadata under {dir} was not refreshed for these patch sources; a scan with refresh is needed"
    )]
    ListsStale {
        /// The private directory ([`APT_LISTS_DIR`], [`DNF_CACHE_DIR`]).
        dir: &'static str,
    },
    /// The refresh (`apt-get update`, `dnf makecache`) of the sources failed: stale metadata
    /// would report the wrong versions.
    #[error("refreshing the patch sources {names:?} failed: {error}")]
    RefreshFailed {
        /// Source names.
        names: Vec<String>,
        /// The failure.
        error: String,
    },
    /// Writing the private files failed.
    #[error(transparent)]
    Host(#[from] HostError),
}

impl SourcesError {
    /// Bounded category for metrics and report reasons.
    pub fn category(&self) -> &'static str {
        match self {
            SourcesError::InvalidLine { .. }
            | SourcesError::NoEntry { .. }
            | SourcesError::InvalidRepoLine { .. }
            | SourcesError::InvalidRepo { .. } => "PatchSourceInvalid",
            SourcesError::Unsupported { .. } => "PatchSourceUnsupported",
            SourcesError::ListsStale { .. } | SourcesError::RefreshFailed { .. } => {
                "PatchSourceUnavailable"
            }
            SourcesError::Host(e) => e.category(),
        }
    }
}

/// The repositories an operation uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Repositories {
    /// The node's configured repositories.
    #[default]
    Node,
    /// Alternative apt sources, in private files.
    Apt(AptSources),
    /// Alternative dnf repositories, in a private reposdir.
    Dnf(DnfSources),
}

impl Repositories {
    /// The names of the alternative sources (empty for the node's own).
    pub fn source_names(&self) -> &[String] {
        match self {
            Repositories::Node => &[],
            Repositories::Apt(s) => &s.names,
            Repositories::Dnf(s) => &s.names,
        }
    }

    /// One line for the report message, when not the node's own.
    pub fn note(&self) -> Option<String> {
        match self {
            Repositories::Node => None,
            _ => Some(format!(
                "used the baseline's patch sources {} instead of the node's repositories",
                self.source_names().join(", ")
            )),
        }
    }
}

/// The sources whose `products` match `product` (`*` wildcards, ASCII case ignored as the
/// Product filter does), in list order.
pub fn matching_sources<'a>(sources: &'a [PatchSource], product: &str) -> Vec<&'a PatchSource> {
    sources
        .iter()
        .filter(|s| s.products.iter().any(|p| wildcard_match(p, product, true)))
        .collect()
}

fn line_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(&format!("^(?:{APT_SOURCE_LINE})$")).expect("APT_SOURCE_LINE"))
}

fn entry_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(APT_SOURCE_ENTRY).expect("APT_SOURCE_ENTRY"))
}

/// Check one source's `configuration` line by line, exactly as admission does.
pub fn validate_apt_configuration(name: &str, text: &str) -> Result<(), SourcesError> {
    for (i, line) in text.split('\n').enumerate() {
        if !line_regex().is_match(line) {
            return Err(SourcesError::InvalidLine {
                name: name.to_string(),
                line: i + 1,
                text: line.to_string(),
            });
        }
    }
    if !entry_regex().is_match(text) {
        return Err(SourcesError::NoEntry {
            name: name.to_string(),
        });
    }
    Ok(())
}

fn repo_line_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(&format!("^(?:{RPM_REPO_LINE})$")).expect("RPM_REPO_LINE"))
}

fn repo_start_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(RPM_REPO_START).expect("RPM_REPO_START"))
}

/// Check one dnf source's `configuration` line by line with admission's expressions, then what
/// a regular expression cannot: every key belongs to a section, every section has a `baseurl`
/// and no key twice, no section is `main` (dnf's own options). Returns the repository ids.
pub fn validate_dnf_configuration(name: &str, text: &str) -> Result<Vec<String>, SourcesError> {
    let invalid = |line: usize, text: &str, problem: &'static str| SourcesError::InvalidRepoLine {
        name: name.to_string(),
        line,
        text: text.to_string(),
        problem,
    };
    let mut ids: Vec<String> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    let missing_baseurl = |id: &str| SourcesError::InvalidRepo {
        name: name.to_string(),
        problem: format!("repository [{id}] has no baseurl"),
    };
    for (i, line) in text.split('\n').enumerate() {
        if !repo_line_regex().is_match(line) {
            return Err(invalid(i + 1, line, "is not an accepted .repo line"));
        }
        let trimmed = line.trim_matches([' ', '\t']);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(id) = trimmed.strip_prefix('[') {
            let id = id.trim_end_matches([' ', '\t']).trim_end_matches(']');
            if let Some(previous) = ids.last()
                && !keys.iter().any(|k| k == "baseurl")
            {
                return Err(missing_baseurl(previous));
            }
            if id == "main" {
                return Err(invalid(
                    i + 1,
                    line,
                    "is dnf's [main] section, not a repository",
                ));
            }
            if ids.iter().any(|known| known == id) {
                return Err(invalid(i + 1, line, "repeats a repository id"));
            }
            ids.push(id.to_string());
            keys.clear();
            continue;
        }
        if ids.is_empty() {
            return Err(invalid(i + 1, line, "comes before any [id] section"));
        }
        let key = trimmed
            .split(['=', ' ', '\t'])
            .next()
            .unwrap_or_default()
            .to_string();
        if keys.contains(&key) {
            return Err(invalid(i + 1, line, "repeats a key of its section"));
        }
        keys.push(key);
    }
    match ids.last() {
        None => Err(SourcesError::InvalidRepo {
            name: name.to_string(),
            problem: "no [id] repository section".to_string(),
        }),
        Some(last) if !keys.iter().any(|k| k == "baseurl") => Err(missing_baseurl(last)),
        // Implied by the checks above; the same expression as admission's, checked anyway.
        Some(_) if !repo_start_regex().is_match(text) => Err(SourcesError::InvalidRepo {
            name: name.to_string(),
            problem: "does not start with an [id] section".to_string(),
        }),
        Some(_) => Ok(ids),
    }
}

/// The repositories of an operation on a node of `family` and `product` under a baseline's
/// `sources`: the node's own when none matches, else the matching sources, checked.
pub fn repositories_for(
    sources: &[PatchSource],
    product: &str,
    family: PackageFamily,
) -> Result<Repositories, SourcesError> {
    let matching = matching_sources(sources, product);
    if matching.is_empty() {
        return Ok(Repositories::Node);
    }
    let names: Vec<String> = matching.iter().map(|s| s.name.clone()).collect();
    match family {
        PackageFamily::Deb => {}
        PackageFamily::Rpm => return dnf_sources(&matching, names),
        PackageFamily::Zypper | PackageFamily::Apk => {
            return Err(SourcesError::Unsupported {
                names,
                product: product.to_string(),
            });
        }
    }
    let mut text = String::from(
        "# Written by the nodepatch agent: the baseline's patch sources, used instead of the\n# host's sources for nodepatch's own apt runs only.\n",
    );
    for source in &matching {
        validate_apt_configuration(&source.name, &source.configuration)?;
        text.push_str(&format!("\n# source {}\n", source.name));
        text.push_str(&source.configuration);
        if !source.configuration.ends_with('\n') {
            text.push('\n');
        }
    }
    Ok(Repositories::Apt(AptSources { names, text }))
}

/// The matching dnf sources, checked, as one `.repo` file (repository ids unique across them).
fn dnf_sources(
    matching: &[&PatchSource],
    names: Vec<String>,
) -> Result<Repositories, SourcesError> {
    let mut text = String::from(
        "# Written by the nodepatch agent: the baseline's patch sources, used instead of the\n# host's repositories for nodepatch's own dnf runs only.\n",
    );
    let mut repo_ids: Vec<String> = Vec::new();
    for source in matching {
        for id in validate_dnf_configuration(&source.name, &source.configuration)? {
            if repo_ids.contains(&id) {
                return Err(SourcesError::InvalidRepo {
                    name: source.name.clone(),
                    problem: format!("repository id [{id}] is also used by an earlier source"),
                });
            }
            repo_ids.push(id);
        }
        text.push_str(&format!("\n# source {}\n", source.name));
        text.push_str(&source.configuration);
        if !source.configuration.ends_with('\n') {
            text.push('\n');
        }
    }
    Ok(Repositories::Dnf(DnfSources { names, text }))
}

fn sha256_hex(text: &str) -> String {
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn mkdir(root: &HostRoot, dir: &str) -> Result<(), SourcesError> {
    let path = root.resolve(dir)?;
    std::fs::create_dir_all(&path).map_err(|source| HostError::Io {
        path: dir.to_string(),
        source,
    })?;
    Ok(())
}

/// Alternative apt sources: the private sources list's text and the names it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AptSources {
    /// Names of the sources, in order.
    pub names: Vec<String>,
    /// The sources list written to [`APT_SOURCE_LIST`].
    pub text: String,
}

impl AptSources {
    /// The `-o` options every apt run of the operation gets: the private sources list, an empty
    /// parts directory, the private lists, and no binary caches (they would be built from the
    /// private lists into the host's `/var/cache/apt`).
    pub fn apt_options(&self) -> Vec<String> {
        [
            format!("Dir::Etc::SourceList={APT_SOURCE_LIST}"),
            format!("Dir::Etc::SourceParts={APT_SOURCE_PARTS}"),
            format!("Dir::State::Lists={APT_LISTS_DIR}"),
            "Dir::Cache::pkgcache=".to_string(),
            "Dir::Cache::srcpkgcache=".to_string(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect()
    }

    fn digest(&self) -> String {
        sha256_hex(&self.text)
    }

    /// Write the private sources list and create the empty parts and the lists directories.
    pub fn prepare(&self, root: &HostRoot) -> Result<(), SourcesError> {
        root.write_atomic(APT_SOURCE_LIST, self.text.as_bytes())?;
        for dir in [APT_SOURCE_PARTS, &format!("{APT_LISTS_DIR}/partial")] {
            mkdir(root, dir)?;
        }
        // Only this agent writes here: anything in the parts directory would be read by apt.
        for name in root.list_dir(APT_SOURCE_PARTS)? {
            root.remove_optional(format!("{APT_SOURCE_PARTS}/{name}"))?;
        }
        Ok(())
    }

    /// Record that the private lists now belong to these sources (after `apt-get update`).
    pub fn mark_updated(&self, root: &HostRoot) -> Result<(), SourcesError> {
        root.write_atomic(APT_LISTS_STAMP, self.digest().as_bytes())?;
        Ok(())
    }

    /// Forget which sources the lists belong to (before `apt-get update`, so a failed update
    /// never leaves lists of other sources looking current).
    pub fn clear_stamp(&self, root: &HostRoot) -> Result<(), SourcesError> {
        root.remove_optional(APT_LISTS_STAMP)?;
        Ok(())
    }

    /// Fail unless the private lists were last updated for these sources.
    pub fn check_lists(&self, root: &HostRoot) -> Result<(), SourcesError> {
        match root.read_optional(APT_LISTS_STAMP)? {
            Some(stamp) if stamp == self.digest().as_bytes() => Ok(()),
            _ => Err(SourcesError::ListsStale { dir: APT_LISTS_DIR }),
        }
    }
}

/// Alternative dnf repositories: the private `.repo` file's text and the names it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnfSources {
    /// Names of the sources, in order.
    pub names: Vec<String>,
    /// The `.repo` file written to [`DNF_REPO_FILE`].
    pub text: String,
}

impl DnfSources {
    /// The options every dnf run of the operation gets (right after `dnf`): the private
    /// reposdir (dnf then reads no other `.repo` file, so the node's repositories are not used),
    /// the private cachedir (their metadata stays out of `/var/cache/dnf`), and
    /// `skip_if_unavailable=False` whatever the node's `dnf.conf` says (a source that cannot be
    /// fetched fails the refresh instead of silently offering nothing).
    pub fn dnf_options(&self) -> Vec<String> {
        vec![
            format!("--setopt=reposdir={DNF_REPOS_DIR}"),
            format!("--setopt=cachedir={DNF_CACHE_DIR}"),
            "--setopt=skip_if_unavailable=False".to_string(),
        ]
    }

    fn digest(&self) -> String {
        sha256_hex(&self.text)
    }

    /// Before a refresh: write the `.repo` file as the reposdir's only file, forget which
    /// sources the cache belonged to, and empty the cache when it was for other sources (so
    /// no cached repository of another source's URL or id can be read as these sources').
    pub fn prepare_refresh(&self, root: &HostRoot) -> Result<(), SourcesError> {
        mkdir(root, DNF_REPOS_DIR)?;
        for name in root.list_dir(DNF_REPOS_DIR)? {
            if format!("{DNF_REPOS_DIR}/{name}") != DNF_REPO_FILE {
                root.remove_optional(format!("{DNF_REPOS_DIR}/{name}"))?;
            }
        }
        root.write_atomic(DNF_REPO_FILE, self.text.as_bytes())?;
        let current = self.check_cache(root).is_ok();
        root.remove_optional(DNF_CACHE_STAMP)?;
        if !current {
            let path = root.resolve(DNF_CACHE_DIR)?;
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(HostError::Io {
                        path: DNF_CACHE_DIR.to_string(),
                        source,
                    }
                    .into());
                }
            }
        }
        mkdir(root, DNF_CACHE_DIR)
    }

    /// Record that the private cache now belongs to these sources (after `dnf makecache`).
    pub fn mark_refreshed(&self, root: &HostRoot) -> Result<(), SourcesError> {
        root.write_atomic(DNF_CACHE_STAMP, self.digest().as_bytes())?;
        Ok(())
    }

    /// Fail unless the private cache was last refreshed for these sources and the `.repo` file
    /// on disk is theirs (a scan without refresh reads them as they are).
    pub fn check_cache(&self, root: &HostRoot) -> Result<(), SourcesError> {
        let stale = SourcesError::ListsStale { dir: DNF_CACHE_DIR };
        match root.read_optional(DNF_CACHE_STAMP)? {
            Some(stamp) if stamp == self.digest().as_bytes() => {}
            _ => return Err(stale),
        }
        match root.read_optional(DNF_REPO_FILE)? {
            Some(text) if text == self.text.as_bytes() => Ok(()),
            _ => Err(stale),
        }
    }
}

#[cfg(test)]
mod tests;
