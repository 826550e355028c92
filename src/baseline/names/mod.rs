//! Grammars of the `approvedPatches` and `rejectedPatches` entries, per package family, and how
//! an entry matches a package. Modelled on SSM's "Package name formats for approved and rejected
//! patch lists".
//!
//! Every family first applies the same safety rules, because entries end up as package manager
//! arguments: 1–255 printable ASCII characters, first character a letter, digit, `_` or `*`
//! (never `-`, which would read as an option), no whitespace, no shell metacharacter
//! (`` ;&|$`'"<>()[]{}!?\#%=, ``). `*` is the only wildcard.
//!
//! | family | approvedPatches | rejectedPatches |
//! |---|---|---|
//! | Deb (apt) | package names (`[a-z0-9][a-z0-9+.-]+`) with `*` anywhere; no arch or version, as in SSM | same |
//! | Rpm (dnf/yum) | Bugzilla ids (digits only), CVE ids (`CVE-2024-1234`), advisory ids (`RHSA-2024:1234`, `ALAS2023-2025-123`, `ELSA-…`, `FEDORA-…`), or one of the 12 package shapes below | the 12 package shapes only |
//! | Zypper | patch names (`SUSE-SLE-Module-Basesystem-15-SP5-2024-1234`) or the 12 package shapes, also as a file name `name-version-release.arch.rpm` | same |
//! | Apk | package names (`[A-Za-z0-9_][A-Za-z0-9_+.-]*`) with `*` | same |
//!
//! The 12 rpm shapes, for `dbus.x86_64:1:1.12.28-1.amzn2023.0.1` (name `dbus`, arch `x86_64`,
//! epoch `1`, version `1.12.28`, release `1.amzn2023.0.1`): `name`, `name.arch`, `name-version`,
//! `name-version-release`, `name-version-release.arch`, `version`, `version-release`,
//! `epoch:version-release`, `name-epoch:version-release`, `name-epoch:version-release.arch`,
//! `epoch:name-version-release.arch`, `name.arch:epoch:version-release`. Each component holds
//! at most one `*` (`dbus*`, `dbus-1.12.2*`, `dbus-*:1.12.28-1.amzn2023.0.1.x86_64`).
//!
//! Matching follows dnf's own treatment of package specs: the package is rendered in each of the
//! shapes (with epoch `0` when it has none) and the entry matches when it glob-matches any
//! rendering. So `dbus*` matches `dbus` and `dbus-libs`; `1.12.28` matches every package at that
//! version. Advisory, CVE and Bugzilla entries match the candidate's advisory id, CVE ids and
//! Bugzilla ids. Names are case-sensitive.

use crate::api::PackageFamily;
use crate::baseline::version::rpm::Evr;
use crate::baseline::wildcard::{has_wildcard, wildcard_match};
use rustc_hash::FxHashSet;

/// Longest entry accepted (the CRD's limit).
pub const MAX_ENTRY_LEN: usize = 255;

/// Characters a shell gives a meaning to; never accepted in an entry.
pub const SHELL_METACHARACTERS: &str = ";&|$`'\"<>()[]{}!?\\#%=,";

/// Which list an entry belongs to: rpm accepts advisory, CVE and Bugzilla ids only in
/// approvedPatches (SSM's rejected list takes package names only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchListKind {
    /// `approvedPatches`.
    Approved,
    /// `rejectedPatches`.
    Rejected,
}

/// An approved/rejected entry that does not follow its family's grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The entry is empty.
    #[error("entry is empty")]
    Empty,
    /// Longer than 255 characters.
    #[error("entry {entry:?} is {len} characters long; at most 255 are allowed")]
    TooLong {
        /// The entry (truncated to 64 characters).
        entry: String,
        /// Its length.
        len: usize,
    },
    /// Starts with `-`, so it would be read as a package manager option.
    #[error("entry {entry:?} starts with '-': it would be read as an option")]
    LeadingDash {
        /// The entry.
        entry: String,
    },
    /// Does not start with a letter, digit, `_` or `*`.
    #[error(
        "entry {entry:?} starts with {character:?}: entries start with a letter, digit, '_' or '*'"
    )]
    BadFirstCharacter {
        /// The entry.
        entry: String,
        /// Its first character.
        character: char,
    },
    /// Contains whitespace.
    #[error("entry {entry:?} contains whitespace at position {position}")]
    Whitespace {
        /// The entry.
        entry: String,
        /// Byte position of the whitespace.
        position: usize,
    },
    /// Contains a shell metacharacter.
    #[error(
        "entry {entry:?} contains the shell metacharacter {character:?} at position {position}"
    )]
    ShellMetacharacter {
        /// The entry.
        entry: String,
        /// The character.
        character: char,
        /// Byte position.
        position: usize,
    },
    /// Contains a character the family's names never contain.
    #[error(
        "entry {entry:?} contains {character:?} at position {position}; {family} entries use only {allowed}"
    )]
    InvalidCharacter {
        /// The entry.
        entry: String,
        /// The character.
        character: char,
        /// Byte position.
        position: usize,
        /// `apt`, `rpm`, `zypper` or `apk`.
        family: &'static str,
        /// The allowed characters, for the message.
        allowed: &'static str,
    },
    /// An apt package name shorter than two characters.
    #[error("entry {entry:?} is too short: apt package names have at least two characters")]
    TooShort {
        /// The entry.
        entry: String,
    },
    /// Not one of the 12 rpm package shapes.
    #[error(
        "entry {entry:?} is none of the rpm package name shapes (name, name.arch, name-version, name-version-release, \
         name-version-release.arch, version, version-release, epoch:version-release, name-epoch:version-release, \
         name-epoch:version-release.arch, epoch:name-version-release.arch, name.arch:epoch:version-release) with \
         a numeric epoch and at most one '*' per component"
    )]
    NotAnRpmShape {
        /// The entry.
        entry: String,
    },
    /// An advisory, CVE or Bugzilla id in rejectedPatches on an rpm system.
    #[error(
        "entry {entry:?} is {what}: on rpm systems rejectedPatches takes package names only (ids are for approvedPatches)"
    )]
    IdInRejectedList {
        /// The entry.
        entry: String,
        /// `an advisory id`, `a CVE id` or `a Bugzilla id`.
        what: &'static str,
    },
}

impl NameError {
    /// Bounded label for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            NameError::Empty => "EmptyPatchName",
            NameError::TooLong { .. } => "PatchNameTooLong",
            NameError::LeadingDash { .. } => "PatchNameLeadingDash",
            NameError::BadFirstCharacter { .. } => "PatchNameBadFirstCharacter",
            NameError::Whitespace { .. } => "PatchNameWhitespace",
            NameError::ShellMetacharacter { .. } => "PatchNameShellMetacharacter",
            NameError::InvalidCharacter { .. } => "PatchNameInvalidCharacter",
            NameError::TooShort { .. } => "PatchNameTooShort",
            NameError::NotAnRpmShape { .. } => "PatchNameNotAnRpmShape",
            NameError::IdInRejectedList { .. } => "PatchIdInRejectedList",
        }
    }
}

/// One parsed approved/rejected entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatchEntry {
    /// A package pattern, matched against the family's renderings of a package.
    Package(String),
    /// An advisory id (rpm), matched against the candidate's advisory.
    Advisory(String),
    /// A CVE id (rpm), matched against the candidate's CVE ids.
    Cve(String),
    /// A Bugzilla id (rpm), matched against the candidate's Bugzilla ids.
    Bugzilla(String),
    /// A zypper patch name or package pattern: matches the patch name or a package rendering.
    PatchOrPackage(String),
}

impl PatchEntry {
    /// The entry as written.
    pub fn as_str(&self) -> &str {
        match self {
            PatchEntry::Package(s)
            | PatchEntry::Advisory(s)
            | PatchEntry::Cve(s)
            | PatchEntry::Bugzilla(s)
            | PatchEntry::PatchOrPackage(s) => s,
        }
    }
}

fn short(entry: &str) -> String {
    entry.chars().take(64).collect()
}

/// The family-independent safety rules.
fn check_common(entry: &str) -> Result<(), NameError> {
    let Some(first) = entry.chars().next() else {
        return Err(NameError::Empty);
    };
    if entry.len() > MAX_ENTRY_LEN {
        return Err(NameError::TooLong {
            entry: short(entry),
            len: entry.len(),
        });
    }
    if first == '-' {
        return Err(NameError::LeadingDash {
            entry: entry.to_owned(),
        });
    }
    for (position, c) in entry.char_indices() {
        if c.is_whitespace() {
            return Err(NameError::Whitespace {
                entry: entry.to_owned(),
                position,
            });
        }
        if SHELL_METACHARACTERS.contains(c) {
            return Err(NameError::ShellMetacharacter {
                entry: entry.to_owned(),
                character: c,
                position,
            });
        }
    }
    if !(first.is_ascii_alphanumeric() || first == '_' || first == '*') {
        return Err(NameError::BadFirstCharacter {
            entry: entry.to_owned(),
            character: first,
        });
    }
    Ok(())
}

fn check_charset(
    entry: &str,
    family: &'static str,
    allowed: &'static str,
    ok: impl Fn(char) -> bool,
) -> Result<(), NameError> {
    match entry.char_indices().find(|&(_, c)| !ok(c)) {
        Some((position, character)) => Err(NameError::InvalidCharacter {
            entry: entry.to_owned(),
            character,
            position,
            family,
            allowed,
        }),
        None => Ok(()),
    }
}

/// Parse one entry of `list` for `family`.
pub fn parse_patch_entry(
    family: PackageFamily,
    list: PatchListKind,
    entry: &str,
) -> Result<PatchEntry, NameError> {
    check_common(entry)?;
    match family {
        PackageFamily::Deb => {
            check_charset(
                entry,
                "apt",
                "lowercase letters, digits, '+', '.', '-' and '*'",
                |c| {
                    c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || matches!(c, '+' | '.' | '-' | '*')
                },
            )?;
            if !has_wildcard(entry) && entry.len() < 2 {
                return Err(NameError::TooShort {
                    entry: entry.to_owned(),
                });
            }
            Ok(PatchEntry::Package(entry.to_owned()))
        }
        PackageFamily::Apk => {
            check_charset(
                entry,
                "apk",
                "letters, digits, '_', '+', '.', '-' and '*'",
                |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '.' | '-' | '*'),
            )?;
            Ok(PatchEntry::Package(entry.to_owned()))
        }
        PackageFamily::Rpm | PackageFamily::Zypper => {
            let family_name = if family == PackageFamily::Rpm {
                "rpm"
            } else {
                "zypper"
            };
            check_charset(
                entry,
                family_name,
                "letters, digits, '_', '+', '.', '-', ':', '~', '^' and '*'",
                |c| {
                    c.is_ascii_alphanumeric()
                        || matches!(c, '_' | '+' | '.' | '-' | ':' | '~' | '^' | '*')
                },
            )?;
            if family == PackageFamily::Zypper {
                // Patch names are rpm-shaped names (`SUSE-SLE-…-2024-1234`), and packages may be
                // written as a file name; either way the name shapes validate the syntax.
                let package = entry.strip_suffix(".rpm").unwrap_or(entry);
                if !is_rpm_shape(package) {
                    return Err(NameError::NotAnRpmShape {
                        entry: entry.to_owned(),
                    });
                }
                return Ok(PatchEntry::PatchOrPackage(entry.to_owned()));
            }
            let id = if is_cve_id(entry) {
                Some(("a CVE id", PatchEntry::Cve(entry.to_owned())))
            } else if entry.bytes().all(|b| b.is_ascii_digit()) {
                Some(("a Bugzilla id", PatchEntry::Bugzilla(entry.to_owned())))
            } else if is_advisory_id(entry) {
                Some(("an advisory id", PatchEntry::Advisory(entry.to_owned())))
            } else {
                None
            };
            match (id, list) {
                (Some((_, parsed)), PatchListKind::Approved) => Ok(parsed),
                (Some((what, _)), PatchListKind::Rejected) => Err(NameError::IdInRejectedList {
                    entry: entry.to_owned(),
                    what,
                }),
                (None, _) if is_rpm_shape(entry) => Ok(PatchEntry::Package(entry.to_owned())),
                (None, _) => Err(NameError::NotAnRpmShape {
                    entry: entry.to_owned(),
                }),
            }
        }
    }
}

/// `CVE-YYYY-NNNN…` (four or more digits).
pub fn is_cve_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("CVE-") else {
        return false;
    };
    let Some((year, number)) = rest.split_once('-') else {
        return false;
    };
    year.len() == 4
        && year.bytes().all(|b| b.is_ascii_digit())
        && number.len() >= 4
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// Advisory ids of the rpm distributions: `PREFIX[-SEGMENT…]-YYYY(:|-)ID[-N]`, where the prefix
/// segments are upper-case letters, digits and dots (`RHSA`, `ALAS2023`, `ALAS2KERNEL-5.10`,
/// `FEDORA-EPEL`) or `openSUSE`, the year is four digits and the id is letters/digits (at most one
/// `*`). Examples: `RHSA-2024:1234`, `ALAS-2018-123`, `ALAS2023-2025-123`, `ELSA-2025-123`,
/// `FEDORA-2024-1a2b3c4d5e`, `SUSE-SU-2024:1234-1`.
pub fn is_advisory_id(s: &str) -> bool {
    let bytes = s.as_bytes();
    // Find "-YYYY" followed by ':' or '-' whose prefix is a valid advisory prefix.
    for (i, _) in s.match_indices('-') {
        let year = &bytes[i + 1..];
        if year.len() < 6
            || !year[..4].iter().all(u8::is_ascii_digit)
            || !matches!(year[4], b':' | b'-')
        {
            continue;
        }
        let prefix = &s[..i];
        let id = &s[i + 6..];
        let prefix_ok = prefix.split('-').enumerate().all(|(k, seg)| {
            !seg.is_empty()
                && (seg == "openSUSE"
                    || (seg
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'.')
                        && (k > 0 || seg.as_bytes()[0].is_ascii_uppercase())))
        });
        let (id_main, id_suffix) = match id.split_once('-') {
            Some((m, n)) => (m, Some(n)),
            None => (id, None),
        };
        let id_ok = !id_main.is_empty()
            && id_main
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'*')
            && id_main.matches('*').count() <= 1
            && id_suffix.is_none_or(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if prefix_ok && id_ok {
            return true;
        }
    }
    false
}

fn one_star(s: &str) -> bool {
    s.matches('*').count() <= 1
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && one_star(s)
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'.' | b'-' | b'*'))
}

fn valid_version_part(s: &str) -> bool {
    !s.is_empty()
        && one_star(s)
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'.' | b'~' | b'^' | b'*')
        })
}

fn valid_epoch(s: &str) -> bool {
    s == "*" || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
}

fn valid_arch(s: &str) -> bool {
    !s.is_empty()
        && one_star(s)
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'*'))
}

fn name_version(s: &str) -> bool {
    s.rsplit_once('-')
        .is_some_and(|(n, v)| valid_name(n) && valid_version_part(v))
}

fn version_release(s: &str) -> bool {
    s.rsplit_once('-')
        .is_some_and(|(v, r)| valid_version_part(v) && valid_version_part(r))
}

fn name_version_release(s: &str) -> bool {
    s.rsplit_once('-')
        .is_some_and(|(nv, r)| valid_version_part(r) && name_version(nv))
}

fn with_arch(s: &str, inner: impl Fn(&str) -> bool) -> bool {
    s.rsplit_once('.')
        .is_some_and(|(rest, arch)| valid_arch(arch) && inner(rest))
}

/// True when `s` is one of the 12 rpm package shapes, each component with at most one `*`.
pub fn is_rpm_shape(s: &str) -> bool {
    match s.matches(':').count() {
        0 => {
            valid_name(s)
                || with_arch(s, valid_name)
                || name_version(s)
                || name_version_release(s)
                || with_arch(s, name_version_release)
                || valid_version_part(s)
                || version_release(s)
        }
        1 => {
            let Some((left, right)) = s.split_once(':') else {
                return false;
            };
            // epoch:version-release
            (valid_epoch(left) && version_release(right))
                // name-epoch:version-release and name-epoch:version-release.arch
                || (left.rsplit_once('-').is_some_and(|(n, e)| valid_name(n) && valid_epoch(e))
                    && (version_release(right) || with_arch(right, version_release)))
                // epoch:name-version-release.arch
                || (valid_epoch(left) && with_arch(right, name_version_release))
        }
        2 => {
            // name.arch:epoch:version-release
            let mut parts = s.splitn(3, ':');
            let (Some(na), Some(e), Some(vr)) = (parts.next(), parts.next(), parts.next()) else {
                return false;
            };
            with_arch(na, valid_name) && valid_epoch(e) && version_release(vr)
        }
        _ => false,
    }
}

/// The package identity an entry is matched against.
#[derive(Clone, Copy, Debug)]
pub struct PatchTarget<'a> {
    /// Package name.
    pub name: &'a str,
    /// Architecture, if known.
    pub arch: Option<&'a str>,
    /// Version in the family's syntax (`[epoch:]version[-release]` on rpm).
    pub version: &'a str,
    /// Advisory id (rpm) or patch name (zypper).
    pub advisory: Option<&'a str>,
    /// CVE ids.
    pub cves: &'a [String],
    /// Bugzilla ids.
    pub bugzillas: &'a [String],
}

/// A parsed approvedPatches or rejectedPatches list, ready for matching.
#[derive(Clone, Debug, Default)]
pub struct PatchNameList {
    family: Option<PackageFamily>,
    entries: Vec<PatchEntry>,
    /// Package patterns without `*`: matched by set lookup of each rendering.
    exact_packages: FxHashSet<String>,
    /// Package patterns with `*`.
    wildcard_packages: Vec<String>,
    /// Literal prefix (text before the first `*`) of every package pattern: a rendering can
    /// only match when its leading component (name, version or epoch) agrees with one, which
    /// skips rendering for almost every package.
    package_prefixes: Vec<String>,
    /// First bytes of the non-empty prefixes, and whether some prefix is empty (an entry that
    /// starts with `*`): a cheap first test before `could_lead`.
    prefix_first_bytes: [u64; 4],
    empty_prefix: bool,
    advisories: Vec<String>,
    cves: FxHashSet<String>,
    bugzillas: FxHashSet<String>,
}

impl PatchNameList {
    /// Parse every entry; on error, the index of the first bad entry and why.
    pub fn parse(
        family: PackageFamily,
        list: PatchListKind,
        entries: &[String],
    ) -> Result<PatchNameList, (usize, NameError)> {
        let mut parsed = PatchNameList {
            family: Some(family),
            ..PatchNameList::default()
        };
        for (i, raw) in entries.iter().enumerate() {
            let entry = parse_patch_entry(family, list, raw).map_err(|e| (i, e))?;
            match &entry {
                PatchEntry::Package(p) if has_wildcard(p) => {
                    parsed.wildcard_packages.push(p.clone())
                }
                PatchEntry::Package(p) => {
                    parsed.exact_packages.insert(p.clone());
                }
                PatchEntry::PatchOrPackage(p) => {
                    // A zypper entry matches the patch name as well as the package renderings.
                    parsed.advisories.push(p.clone());
                    if has_wildcard(p) {
                        parsed.wildcard_packages.push(p.clone());
                    } else {
                        parsed.exact_packages.insert(p.clone());
                    }
                }
                PatchEntry::Advisory(a) => parsed.advisories.push(a.clone()),
                PatchEntry::Cve(c) => {
                    parsed.cves.insert(c.clone());
                }
                PatchEntry::Bugzilla(b) => {
                    parsed.bugzillas.insert(b.clone());
                }
            }
            if let PatchEntry::Package(p) | PatchEntry::PatchOrPackage(p) = &entry {
                let prefix = p.split('*').next().unwrap_or_default();
                match prefix.bytes().next() {
                    Some(b) => parsed.prefix_first_bytes[usize::from(b >> 6)] |= 1 << (b & 63),
                    None => parsed.empty_prefix = true,
                }
                parsed.package_prefixes.push(prefix.to_owned());
            }
            parsed.entries.push(entry);
        }
        Ok(parsed)
    }

    /// The parsed entries, in list order.
    pub fn entries(&self) -> &[PatchEntry] {
        &self.entries
    }

    /// True when the list has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when some entry matches `target`.
    pub fn matches(&self, target: &PatchTarget<'_>) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        if let Some(advisory) = target.advisory
            && self
                .advisories
                .iter()
                .any(|a| wildcard_match(a, advisory, false))
        {
            return true;
        }
        if target.cves.iter().any(|c| self.cves.contains(c))
            || target.bugzillas.iter().any(|b| self.bugzillas.contains(b))
        {
            return true;
        }
        if self.exact_packages.is_empty() && self.wildcard_packages.is_empty() {
            return false;
        }
        let family = self.family.unwrap_or(PackageFamily::Deb);
        let matches_rendering = |rendering: &str| {
            self.exact_packages.contains(rendering)
                || self
                    .wildcard_packages
                    .iter()
                    .any(|p| wildcard_match(p, rendering, false))
        };
        if matches!(family, PackageFamily::Deb | PackageFamily::Apk) {
            return matches_rendering(target.name);
        }
        // Cheap first-byte tests before splitting the version: most packages match no prefix.
        let digits = target
            .version
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        let has_epoch = target.version.as_bytes().get(digits) == Some(&b':');
        let epoch_first = if has_epoch && digits > 0 {
            target.version.as_bytes()[0]
        } else {
            b'0'
        };
        let version_first = target
            .version
            .as_bytes()
            .get(if has_epoch { digits + 1 } else { 0 })
            .copied();
        let quick = |first: Option<u8>| {
            self.empty_prefix
                || first.is_some_and(|b| {
                    self.prefix_first_bytes[usize::from(b >> 6)] & (1 << (b & 63)) != 0
                })
        };
        let name_lead = quick(target.name.bytes().next()) && self.could_lead(target.name);
        if !name_lead && !quick(version_first) && !quick(Some(epoch_first)) {
            return false;
        }
        let evr = Evr::split(target.version);
        let leads = Leads {
            name: name_lead,
            version: quick(version_first) && self.could_lead(evr.version),
            epoch: quick(Some(epoch_first)) && self.could_lead(evr.epoch.unwrap_or("0")),
        };
        if !(leads.name || leads.version || leads.epoch) {
            return false;
        }
        let mut found = false;
        for_each_rendering(family, target, &evr, leads, |rendering| {
            found = matches_rendering(rendering);
            found
        });
        found
    }

    /// Could a rendering that starts with `field` match some package pattern?
    fn could_lead(&self, field: &str) -> bool {
        self.package_prefixes
            .iter()
            .any(|p| field.starts_with(p.as_str()) || p.starts_with(field))
    }
}

/// Which leading components of a rendering are worth rendering.
#[derive(Clone, Copy)]
struct Leads {
    name: bool,
    version: bool,
    epoch: bool,
}

/// Call `visit` with each way the rpm list syntax names `target` (skipping shapes whose leading
/// component `leads` rules out), until it returns true.
fn for_each_rendering(
    family: PackageFamily,
    target: &PatchTarget<'_>,
    evr: &Evr<'_>,
    leads: Leads,
    mut visit: impl FnMut(&str) -> bool,
) {
    if leads.name && visit(target.name) {
        return;
    }
    let (n, e, v) = (target.name, evr.epoch.unwrap_or("0"), evr.version);
    let mut buf = String::with_capacity(n.len() + target.version.len() + 24);
    // Render one shape into the reused buffer and visit it; true stops the walk.
    let mut emit = |parts: &[&str]| {
        buf.clear();
        for p in parts {
            buf.push_str(p);
        }
        visit(&buf)
    };
    let (ln, lv, le) = (leads.name, leads.version, leads.epoch);
    if let Some(a) = target.arch
        && ln
        && emit(&[n, ".", a])
    {
        return;
    }
    if (ln && emit(&[n, "-", v])) || (lv && emit(&[v])) {
        return;
    }
    let Some(r) = evr.release else { return };
    if (ln && emit(&[n, "-", v, "-", r]))
        || (lv && emit(&[v, "-", r]))
        || (le && emit(&[e, ":", v, "-", r]))
        || (ln && emit(&[n, "-", e, ":", v, "-", r]))
    {
        return;
    }
    let Some(a) = target.arch else { return };
    if (ln && (emit(&[n, "-", v, "-", r, ".", a]) || emit(&[n, "-", e, ":", v, "-", r, ".", a])))
        || (le && emit(&[e, ":", n, "-", v, "-", r, ".", a]))
        || (ln && emit(&[n, ".", a, ":", e, ":", v, "-", r]))
    {
        return;
    }
    if family == PackageFamily::Zypper && ln {
        emit(&[n, "-", v, "-", r, ".", a, ".rpm"]);
    }
}

#[cfg(test)]
mod tests;
