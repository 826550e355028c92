//! Alternative patch sources (`PatchBaseline.spec.sources`, SSM's `Sources`): which sources a
//! node uses ([`repositories_for`]), the agent's own check of their text (the same expressions
//! as the CRD's CEL rule, [`crate::api::APT_SOURCE_LINE`]), and the private apt files they run
//! with ([`AptSources`]).
//!
//! The node's configuration is never changed: the sources are written to a sources list under
//! nodepatch's state directory on the host, `apt-get update` fills a lists directory there, and
//! the scan reads those lists and `apt-get install` uses the same options, for that operation
//! only. The host's apt configuration, preferences (pins) and phasing still apply.

use std::sync::OnceLock;

use regex::Regex;
use sha2::Digest as _;

use crate::agent::host::{HostError, HostRoot};
use crate::api::{APT_SOURCE_ENTRY, APT_SOURCE_LINE, PackageFamily, PatchSource};
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
    /// Sources match a node whose package manager the agent cannot point at them.
    #[error(
        "patch sources {names:?} match this node's product {product}, but alternative sources are supported for apt (Debian, Ubuntu) only"
    )]
    Unsupported {
        /// Matching source names.
        names: Vec<String>,
        /// The node's product.
        product: String,
    },
    /// The private lists are not those of these sources and no refresh ran.
    #[error(
        "the private lists under {APT_LISTS_DIR} were not updated for these patch sources; a scan with refresh is needed"
    )]
    ListsStale,
    /// `apt-get update` of the sources failed: stale lists would report the wrong versions.
    #[error("apt-get update of the patch sources {names:?} failed: {error}")]
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
            SourcesError::InvalidLine { .. } | SourcesError::NoEntry { .. } => "PatchSourceInvalid",
            SourcesError::Unsupported { .. } => "PatchSourceUnsupported",
            SourcesError::ListsStale | SourcesError::RefreshFailed { .. } => {
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
}

impl Repositories {
    /// One line for the report message, when not the node's own.
    pub fn note(&self) -> Option<String> {
        match self {
            Repositories::Node => None,
            Repositories::Apt(s) => Some(format!(
                "used the baseline's patch sources {} instead of the node's repositories",
                s.names.join(", ")
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
    if family != PackageFamily::Deb {
        return Err(SourcesError::Unsupported {
            names: matching.iter().map(|s| s.name.clone()).collect(),
            product: product.to_string(),
        });
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
    Ok(Repositories::Apt(AptSources {
        names: matching.iter().map(|s| s.name.clone()).collect(),
        text,
    }))
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
        sha2::Sha256::digest(self.text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Write the private sources list and create the empty parts and the lists directories.
    pub fn prepare(&self, root: &HostRoot) -> Result<(), SourcesError> {
        root.write_atomic(APT_SOURCE_LIST, self.text.as_bytes())?;
        for dir in [APT_SOURCE_PARTS, &format!("{APT_LISTS_DIR}/partial")] {
            let path = root.resolve(dir)?;
            std::fs::create_dir_all(&path).map_err(|source| HostError::Io {
                path: dir.to_string(),
                source,
            })?;
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
            _ => Err(SourcesError::ListsStale),
        }
    }
}

#[cfg(test)]
mod tests;
