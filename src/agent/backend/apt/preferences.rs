//! apt's version policy with the host's preferences (`apt_preferences(5)`): the pins of
//! `/etc/apt/preferences` and `/etc/apt/preferences.d/*`, `APT::Default-Release`, and the
//! candidate rule of apt 2.x (`pkgPolicy::GetCandidateVer`, `GetPriority`, `InitDefaults`,
//! `pkgVersionMatch`), re-implemented from apt's source so the scan picks apt's candidate.
//!
//! Supported: `Package:` names, `*`, and glob patterns (`*`, `?`, `[...]`, case-insensitive as
//! apt's `fnmatch`); `Pin: version <v>` (a trailing `*` is a prefix match, else a glob),
//! `Pin: release <spec>` (`*`, a bare archive/codename or version, or `a=`, `n=`, `o=`, `l=`,
//! `c=`, `v=`, `b=` joined by commas), `Pin: origin <host>` (`""` for `file:` sources);
//! `Pin-Priority` integers and `never` (only with `Package: *`). Not implemented, so the scan
//! fails naming the file and line: `/regex/` patterns anywhere, `src:` pins and architecture
//! qualified names (`name:arch`). What apt itself rejects (no `Package`, priority 0, out of
//! range, `never` on a named package) fails the scan as it fails apt.

use super::aptconf::{AptConfig, AptPolicyError, apt_dir_files};
use super::lists::{AptLists, AvailableVersion, ReleaseInfo};
use super::phasing;
use crate::agent::host::HostRoot;
use crate::baseline::version::deb::compare as compare_deb;

/// apt's preferences file.
pub const PREFERENCES: &str = "/etc/apt/preferences";
/// apt's preferences fragments directory.
pub const PREFERENCES_DIR: &str = "/etc/apt/preferences.d";
/// `Pin-Priority: never` (apt's `NEVER_PIN`, the smallest short).
pub const NEVER_PIN: i32 = i16::MIN as i32;
/// Pin priority of `APT::Default-Release`.
pub const PRIORITY_TARGET_RELEASE: i32 = 990;

/// A `Pin: release` specification (`pkgVersionMatch` with type Release).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReleaseSpec {
    /// `*`.
    pub all: bool,
    /// `v=` or a bare version, with whether a trailing `*` made it a prefix.
    pub version: Option<(String, bool)>,
    /// `o=`.
    pub origin: Option<String>,
    /// `a=` (the Release file's `Suite`).
    pub archive: Option<String>,
    /// `n=`.
    pub codename: Option<String>,
    /// A bare archive or codename.
    pub release: Option<String>,
    /// `l=`.
    pub label: Option<String>,
    /// `c=`.
    pub component: Option<String>,
    /// `b=`.
    pub architecture: Option<String>,
}

/// What a pin selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PinTarget {
    /// `Pin: version`: the pattern (without a trailing `*`) and whether it is a prefix.
    Version(String, bool),
    /// `Pin: release`.
    Release(ReleaseSpec),
    /// `Pin: origin`: the site.
    Origin(String),
}

/// One pin: a preferences stanza for one package pattern (or all packages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    /// `None` for `Package: *` (a default pin, applied to package files), else a name or glob.
    pub package: Option<String>,
    /// What it selects.
    pub target: PinTarget,
    /// `Pin-Priority`.
    pub priority: i32,
    /// Where it was written (`path:line`).
    pub origin: String,
}

/// The host's pins in apt's order (`APT::Default-Release` first, then `/etc/apt/preferences`,
/// then `/etc/apt/preferences.d/*` sorted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preferences {
    /// Pins in order; for a version, the first matching named pin wins; for a package file,
    /// the first matching default pin (a `never` pin always wins).
    pub pins: Vec<Pin>,
}

fn is_regex(pattern: &str) -> bool {
    pattern.len() >= 2 && pattern.starts_with('/') && pattern.ends_with('/')
}

/// apt's `fnmatch(pattern, s, FNM_CASEFOLD)`: `*`, `?`, `[...]` (with `!`/`^` negation and
/// ranges), `\` escapes; `/` and leading dots are ordinary characters.
pub fn glob_match(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().flat_map(char::to_lowercase).collect();
    let s: Vec<char> = s.chars().flat_map(char::to_lowercase).collect();
    glob_at(&p, &s)
}

fn glob_at(p: &[char], s: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some('*') => (0..=s.len()).any(|i| glob_at(&p[1..], &s[i..])),
        Some('?') => !s.is_empty() && glob_at(&p[1..], &s[1..]),
        Some('[') => {
            let Some(c) = s.first() else { return false };
            let mut i = 1;
            let negate = matches!(p.get(1), Some('!' | '^'));
            if negate {
                i += 1;
            }
            let mut matched = false;
            let mut first = true;
            while i < p.len() && (p[i] != ']' || first) {
                first = false;
                let lo = p[i];
                if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|h| *h != ']') {
                    if lo <= *c && *c <= p[i + 2] {
                        matched = true;
                    }
                    i += 3;
                } else {
                    if lo == *c {
                        matched = true;
                    }
                    i += 1;
                }
            }
            if i >= p.len() {
                // No closing bracket: `[` is literal.
                return *c == '[' && glob_at(&p[1..], &s[1..]);
            }
            matched != negate && glob_at(&p[i + 1..], &s[1..])
        }
        Some('\\') if p.len() > 1 => !s.is_empty() && s[0] == p[1] && glob_at(&p[2..], &s[1..]),
        Some(c) => !s.is_empty() && s[0] == *c && glob_at(&p[1..], &s[1..]),
    }
}

/// apt's `ExpressionMatches` for a field that may be absent (an absent field never matches).
fn expr(pattern: &str, value: &str) -> bool {
    !value.is_empty() && glob_match(pattern, value)
}

/// apt's `MatchVer`: equal, or a prefix when `prefix`, case-insensitively.
fn match_ver(value: &str, pattern: &str, prefix: bool) -> bool {
    if value.is_empty() {
        return false;
    }
    let (v, p) = (value.to_ascii_lowercase(), pattern.to_ascii_lowercase());
    if prefix { v.starts_with(&p) } else { v == p }
}

impl ReleaseSpec {
    /// Parse a `Pin: release` value as `pkgVersionMatch` does.
    pub fn parse(data: &str) -> Result<ReleaseSpec, String> {
        let mut spec = ReleaseSpec::default();
        if data == "*" {
            spec.all = true;
            return Ok(spec);
        }
        let check = |v: &str| -> Result<String, String> {
            if is_regex(v) {
                Err(format!(
                    "regular expression {v:?} in `Pin: release` is not implemented"
                ))
            } else {
                Ok(v.to_string())
            }
        };
        if !data.contains('=') {
            if data.starts_with(|c: char| c.is_ascii_digit()) {
                let v = check(data)?;
                spec.version = Some(match v.strip_suffix('*') {
                    Some(p) => (p.to_string(), true),
                    None => (v, false),
                });
            } else if !data.is_empty() {
                spec.release = Some(check(data)?);
            }
            return Ok(spec);
        }
        for fragment in data.split(',').map(str::trim) {
            if fragment.len() < 3 {
                continue;
            }
            let (key, value) = fragment.split_at(2);
            let value = check(value)?;
            match key.to_ascii_lowercase().as_str() {
                "v=" => {
                    spec.version = Some(match value.strip_suffix('*') {
                        Some(p) => (p.to_string(), true),
                        None => (value, false),
                    })
                }
                "o=" => spec.origin = Some(value),
                "a=" => spec.archive = Some(value),
                "n=" => spec.codename = Some(value),
                "l=" => spec.label = Some(value),
                "c=" => spec.component = Some(value),
                "b=" => spec.architecture = Some(value),
                // apt ignores keys it does not know.
                _ => {}
            }
        }
        Ok(spec)
    }

    fn is_empty(&self) -> bool {
        !self.all
            && self.version.is_none()
            && self.origin.is_none()
            && self.archive.is_none()
            && self.codename.is_none()
            && self.release.is_none()
            && self.label.is_none()
            && self.component.is_none()
            && self.architecture.is_none()
    }
}

/// One package file of apt's cache as pins see it: a Packages index with its suite, or dpkg's
/// status file.
#[derive(Clone, Copy, Debug)]
pub struct FileView<'a> {
    /// The suite's Release data; `None` for the status file and lists without a Release file.
    pub release: Option<&'a ReleaseInfo>,
    /// Component (`main`; `now` for the status file).
    pub component: &'a str,
    /// Architecture of the index (`amd64`), empty when unknown.
    pub arch: &'a str,
    /// Site (host of the URI, empty for `file:`); `None` without a Release file.
    pub site: Option<&'a str>,
}

impl PinTarget {
    /// `pkgVersionMatch::FileMatch` for a package file.
    pub fn file_matches(&self, file: &FileView<'_>) -> bool {
        match (self, file.release) {
            (PinTarget::Version(..), _) => false,
            (PinTarget::Origin(site), Some(_)) => file.site.is_some_and(|s| glob_match(site, s)),
            (PinTarget::Origin(_), None) => false,
            (PinTarget::Release(spec), release) => {
                if let Some(r) = release {
                    if !spec.all {
                        if spec.is_empty() {
                            return false;
                        }
                        if let Some((v, prefix)) = &spec.version
                            && !match_ver(&r.version, v, *prefix)
                            && !expr(v, &r.version)
                        {
                            return false;
                        }
                        let checks = [
                            (&spec.origin, r.origin.as_str(), ""),
                            (&spec.archive, r.suite.as_str(), ""),
                            (&spec.codename, r.codename.as_str(), ""),
                            (&spec.label, r.label.as_str(), ""),
                        ];
                        if checks
                            .iter()
                            .any(|(p, v, _)| p.as_ref().is_some_and(|p| !expr(p, v)))
                        {
                            return false;
                        }
                        if let Some(p) = &spec.release
                            && !expr(p, &r.suite)
                            && !expr(p, &r.codename)
                        {
                            return false;
                        }
                    }
                } else {
                    // The status file (and lists without Release) store their archive ("now")
                    // in the component.
                    if let Some(p) = &spec.archive
                        && !expr(p, file.component)
                    {
                        return false;
                    }
                    if let Some(p) = &spec.release
                        && !expr(p, file.component)
                    {
                        return false;
                    }
                    if spec.origin.is_some()
                        || spec.label.is_some()
                        || spec.version.is_some()
                        || spec.codename.is_some()
                    {
                        return false;
                    }
                }
                if spec.all {
                    return true;
                }
                if let Some(p) = &spec.component
                    && !expr(p, file.component)
                {
                    return false;
                }
                if let Some(p) = &spec.architecture
                    && !expr(p, file.arch)
                {
                    return false;
                }
                true
            }
        }
    }
}

/// A preferences stanza: fields with the line each starts on.
struct Stanza {
    line: usize,
    fields: Vec<(String, String, usize)>,
}

impl Stanza {
    fn get(&self, name: &str) -> Option<(&str, usize)> {
        self.fields
            .iter()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v, l)| (v.as_str(), *l))
    }
}

fn stanzas(path: &str, text: &str) -> Result<Vec<Stanza>, AptPolicyError> {
    let mut out = Vec::new();
    let mut current: Option<Stanza> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.starts_with('#') {
            continue;
        }
        if raw.trim().is_empty() {
            if let Some(s) = current.take() {
                out.push(s);
            }
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            let Some(field) = current.as_mut().and_then(|s| s.fields.last_mut()) else {
                return Err(AptPolicyError::Invalid {
                    path: path.to_string(),
                    line,
                    message: "continuation line without a field".to_string(),
                });
            };
            field.1.push(' ');
            field.1.push_str(raw.trim());
            continue;
        }
        let Some((name, value)) = raw.split_once(':') else {
            return Err(AptPolicyError::Invalid {
                path: path.to_string(),
                line,
                message: format!("expected `Field: value`, found {raw:?}"),
            });
        };
        current
            .get_or_insert_with(|| Stanza {
                line,
                fields: Vec::new(),
            })
            .fields
            .push((name.trim().to_string(), value.trim().to_string(), line));
    }
    if let Some(s) = current.take() {
        out.push(s);
    }
    Ok(out)
}

impl Preferences {
    /// Read `APT::Default-Release` from `config` and the host's preferences files.
    pub fn read(root: &HostRoot, config: &AptConfig) -> Result<Preferences, AptPolicyError> {
        let mut prefs = Preferences::default();
        if let Some(release) = config.get("APT::Default-Release").filter(|r| !r.is_empty()) {
            let origin = config.origin("APT::Default-Release").unwrap_or_default();
            let spec =
                ReleaseSpec::parse(release).map_err(|message| AptPolicyError::Unsupported {
                    path: origin
                        .rsplit_once(':')
                        .map(|p| p.0)
                        .unwrap_or("")
                        .to_string(),
                    line: origin
                        .rsplit_once(':')
                        .and_then(|p| p.1.parse().ok())
                        .unwrap_or(0),
                    message,
                })?;
            prefs.pins.push(Pin {
                package: None,
                target: PinTarget::Release(spec),
                priority: PRIORITY_TARGET_RELEASE,
                origin: format!("APT::Default-Release ({origin})"),
            });
        }
        if let Some(bytes) = root.read_optional(PREFERENCES)? {
            prefs.parse(PREFERENCES, &String::from_utf8_lossy(&bytes))?;
        }
        for name in apt_dir_files(root, PREFERENCES_DIR, "pref")? {
            let path = format!("{PREFERENCES_DIR}/{name}");
            let text = root.read_to_string(&path)?;
            prefs.parse(&path, &text)?;
        }
        Ok(prefs)
    }

    /// Parse one preferences file (`ReadPinFile`), appending its pins.
    pub fn parse(&mut self, path: &str, text: &str) -> Result<(), AptPolicyError> {
        let invalid = |line: usize, message: String| AptPolicyError::Invalid {
            path: path.to_string(),
            line,
            message,
        };
        let unsupported = |line: usize, message: String| AptPolicyError::Unsupported {
            path: path.to_string(),
            line,
            message,
        };
        for stanza in stanzas(path, text)? {
            let Some((names, names_line)) = stanza.get("Package").filter(|(n, _)| !n.is_empty())
            else {
                return Err(invalid(
                    stanza.line,
                    "record without a Package header".to_string(),
                ));
            };
            let general = names == "*";
            let Some((pin, pin_line)) = stanza.get("Pin") else {
                continue;
            };
            let (kind, data) = match pin.split_once(char::is_whitespace) {
                Some((k, d)) => (k, d.trim_start()),
                None => (pin, ""),
            };
            let target = match kind.to_ascii_lowercase().as_str() {
                "version" if !general => {
                    if is_regex(data) {
                        return Err(unsupported(
                            pin_line,
                            format!(
                                "regular expression {data:?} in `Pin: version` is not implemented"
                            ),
                        ));
                    }
                    match data.strip_suffix('*') {
                        Some(p) => PinTarget::Version(p.to_string(), true),
                        None => PinTarget::Version(data.to_string(), false),
                    }
                }
                "release" => PinTarget::Release(
                    ReleaseSpec::parse(data).map_err(|m| unsupported(pin_line, m))?,
                ),
                "origin" => {
                    if is_regex(data) {
                        return Err(unsupported(
                            pin_line,
                            format!(
                                "regular expression {data:?} in `Pin: origin` is not implemented"
                            ),
                        ));
                    }
                    let site = data
                        .strip_prefix('"')
                        .and_then(|d| d.strip_suffix('"'))
                        .unwrap_or(data);
                    PinTarget::Origin(site.to_string())
                }
                // apt warns "Did not understand pin type" and skips the record.
                _ => continue,
            };
            let (priority_text, priority_line) =
                stanza.get("Pin-Priority").unwrap_or(("", stanza.line));
            let priority = if priority_text == "never" {
                if !general {
                    return Err(invalid(
                        priority_line,
                        "`Pin-Priority: never` can only be used for `Package: *` records"
                            .to_string(),
                    ));
                }
                NEVER_PIN
            } else {
                let value: i64 = if priority_text.is_empty() {
                    0
                } else {
                    priority_text.parse().map_err(|_| {
                        invalid(
                            priority_line,
                            format!("Pin-Priority {priority_text:?} is not an integer"),
                        )
                    })?
                };
                if value < i64::from(i16::MIN) || value > i64::from(i16::MAX) {
                    return Err(invalid(
                        priority_line,
                        format!("Pin-Priority {value} is outside -32768..32767"),
                    ));
                }
                if value == 0 {
                    return Err(invalid(
                        priority_line,
                        "no priority (or zero) specified for pin".to_string(),
                    ));
                }
                // apt clamps a numeric -32768 to -32767 (only `never` is the never pin).
                (value as i32).max(NEVER_PIN + 1)
            };
            let origin = format!("{path}:{}", stanza.line);
            if general {
                self.pins.push(Pin {
                    package: None,
                    target,
                    priority,
                    origin,
                });
                continue;
            }
            for name in names.split_whitespace() {
                if name.starts_with("src:") {
                    return Err(unsupported(
                        names_line,
                        format!("source package pins ({name}) are not implemented"),
                    ));
                }
                if name.contains(':') {
                    return Err(unsupported(
                        names_line,
                        format!("architecture-qualified pins ({name}) are not implemented"),
                    ));
                }
                if is_regex(name) {
                    return Err(unsupported(
                        names_line,
                        format!("regular expression package names ({name}) are not implemented"),
                    ));
                }
                self.pins.push(Pin {
                    package: Some(name.to_string()),
                    target: target.clone(),
                    priority,
                    origin: origin.clone(),
                });
            }
        }
        Ok(())
    }
}

/// A package file of a version: a Packages index (position in [`AptLists::indexes`]) or the
/// status file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileRef {
    /// A Packages index.
    Index(usize),
    /// dpkg's status file (the installed version only).
    Status,
}

/// Which of apt's phasing implementations runs on the root (from its `apt` package version).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhasingRule {
    /// apt 2.5.3 to 2.6.x (`upgrade.cc` `PhasedUpgrader`): an upgrade is not phased when a
    /// version *between* the installed one and the candidate is in a `-security` suite.
    SecurityBelowCandidate,
    /// apt 2.7 and later (`depcache.cc` `PhasingApplied`): the candidate itself counts too.
    SecurityUpToCandidate,
}

/// apt's phasing settings on the root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Phasing {
    /// The rule of the root's apt; `None` when its apt version's phasing is not implemented.
    pub rule: Option<PhasingRule>,
    /// The root's apt version (for messages).
    pub apt_version: Option<String>,
    /// `APT::Get::Always-Include-Phased-Updates` (or Update-Manager's).
    pub always: bool,
    /// `APT::Get::Never-Include-Phased-Updates` (or Update-Manager's).
    pub never: bool,
    /// `APT::Machine-ID`, else the first line of `/etc/machine-id`.
    pub machine_id: String,
}

impl Phasing {
    /// The settings from the root's apt version, configuration and machine-id.
    pub fn read(
        root: &HostRoot,
        config: &AptConfig,
        apt_version: Option<&str>,
    ) -> Result<Phasing, AptPolicyError> {
        let rule = apt_version.and_then(|v| {
            if compare_deb(v, "2.7~").is_ge() {
                Some(PhasingRule::SecurityUpToCandidate)
            } else if compare_deb(v, "2.5.3~").is_ge() {
                Some(PhasingRule::SecurityBelowCandidate)
            } else {
                None
            }
        });
        let always = config.bool_or(
            "APT::Get::Always-Include-Phased-Updates",
            config.bool_or("Update-Manager::Always-Include-Phased-Updates", false),
        );
        let never = config.bool_or(
            "APT::Get::Never-Include-Phased-Updates",
            config.bool_or("Update-Manager::Never-Include-Phased-Updates", false),
        );
        let machine_id = match config.get("APT::Machine-ID").filter(|m| !m.is_empty()) {
            Some(id) => id.to_string(),
            None => root
                .read_optional("/etc/machine-id")?
                .map(|b| {
                    String::from_utf8_lossy(&b)
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_string()
                })
                .unwrap_or_default(),
        };
        Ok(Phasing {
            rule,
            apt_version: apt_version.map(str::to_string),
            always,
            never,
            machine_id,
        })
    }
}

/// apt's candidate for one package, relative to the installed version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CandidateChoice<'a> {
    /// No version has a positive priority: apt has no candidate and leaves the package alone.
    None,
    /// The installed version.
    Installed,
    /// A newer version.
    Upgrade(&'a AvailableVersion),
    /// An older version (a pin of priority ≥ 1000): apt would downgrade.
    Downgrade(&'a AvailableVersion),
}

/// apt's version policy on one root: per-file priorities after the default pins, the named
/// pins, and the phasing settings.
#[derive(Clone, Debug)]
pub struct AptPolicy {
    prefs: Preferences,
    index_priority: Vec<i32>,
    status_priority: i32,
    native_arch: String,
    /// Phasing settings.
    pub phasing: Phasing,
}

impl AptPolicy {
    /// apt's defaults: no pins, no phasing.
    pub fn defaults(lists: &AptLists, native_arch: &str) -> AptPolicy {
        AptPolicy::new(
            lists,
            native_arch,
            Preferences::default(),
            Phasing::default(),
        )
        .unwrap_or_else(|_| unreachable!("no Default-Release pin to validate"))
    }

    /// The policy with the host's pins (`InitDefaults`), checking `APT::Default-Release`
    /// names a suite as apt does.
    pub fn new(
        lists: &AptLists,
        native_arch: &str,
        prefs: Preferences,
        phasing: Phasing,
    ) -> Result<AptPolicy, AptPolicyError> {
        if let Some(pin) = prefs
            .pins
            .iter()
            .find(|p| p.origin.starts_with("APT::Default-Release"))
            && let PinTarget::Release(spec) = &pin.target
        {
            let value = spec
                .release
                .clone()
                .or_else(|| spec.version.as_ref().map(|v| v.0.clone()))
                .unwrap_or_default();
            let found = spec.all
                || spec.release.is_none() && spec.version.is_none()
                || lists.releases.iter().any(|r| {
                    expr(&value, &r.suite) || expr(&value, &r.codename) || expr(&value, &r.version)
                })
                || glob_match(&value, "now");
            if !found {
                return Err(AptPolicyError::Invalid {
                    path: pin.origin.clone(),
                    line: 0,
                    message: format!(
                        "APT::Default-Release {value:?} names no release in the sources (apt refuses it)"
                    ),
                });
            }
        }
        let mut policy = AptPolicy {
            prefs,
            index_priority: Vec::new(),
            status_priority: PRIORITY_STATUS,
            native_arch: native_arch.to_string(),
            phasing,
        };
        let mut files: Vec<(FileRef, i32)> = lists
            .indexes
            .iter()
            .enumerate()
            .map(|(i, index)| {
                let base = index
                    .release
                    .and_then(|r| lists.releases.get(r))
                    .map(ReleaseInfo::pin_priority)
                    .unwrap_or(super::lists::PRIORITY_DEFAULT);
                (FileRef::Index(i), base)
            })
            .collect();
        files.push((FileRef::Status, PRIORITY_STATUS));
        let mut fixed = vec![false; files.len()];
        for pin in policy.prefs.pins.iter().filter(|p| p.package.is_none()) {
            for (slot, (file, priority)) in files.iter_mut().enumerate() {
                if (!fixed[slot] || pin.priority == NEVER_PIN)
                    && *priority != NEVER_PIN
                    && pin.target.file_matches(&file_view(lists, *file))
                {
                    *priority = pin.priority;
                    fixed[slot] = true;
                }
            }
        }
        policy.status_priority = files.last().map(|f| f.1).unwrap_or(PRIORITY_STATUS);
        files.pop();
        policy.index_priority = files.into_iter().map(|f| f.1).collect();
        Ok(policy)
    }

    fn file_priority(&self, file: FileRef) -> i32 {
        match file {
            FileRef::Index(i) => self
                .index_priority
                .get(i)
                .copied()
                .unwrap_or(super::lists::PRIORITY_DEFAULT),
            FileRef::Status => self.status_priority,
        }
    }

    /// `GetPriority(Ver, ConsiderFiles=true)` of `version` (`installed`: the package's
    /// installed version, whose version also sits in the status file).
    pub fn priority(
        &self,
        lists: &AptLists,
        name: &str,
        version: &str,
        indexes: &[usize],
        is_native: bool,
        installed: Option<&str>,
    ) -> i32 {
        let mut files: Vec<FileRef> = indexes.iter().map(|i| FileRef::Index(*i)).collect();
        if installed.is_some_and(|i| compare_deb(i, version).is_eq()) {
            files.push(FileRef::Status);
        }
        if is_native
            && let Some(pin) = self.prefs.pins.iter().find(|p| {
                p.package
                    .as_deref()
                    .is_some_and(|pkg| pkg == name || glob_match(pkg, name))
                    && match &p.target {
                        PinTarget::Version(v, prefix) => {
                            match_ver(version, v, *prefix) || expr(v, version)
                        }
                        target => files
                            .iter()
                            .any(|f| target.file_matches(&file_view(lists, *f))),
                    }
            })
        {
            if pin.priority == NEVER_PIN {
                return NEVER_PIN;
            }
            if files.iter().any(|f| self.file_priority(*f) != NEVER_PIN) {
                return pin.priority;
            }
        }
        files
            .iter()
            .map(|f| self.file_priority(*f))
            .max()
            .unwrap_or(0)
    }

    /// `GetCandidateVer`: the version of highest priority (the highest such version on ties),
    /// never below the installed one unless its priority is ≥ 1000; none with priority ≤ 0.
    pub fn candidate<'a>(
        &self,
        lists: &AptLists,
        installed: Option<&str>,
        versions: &'a [AvailableVersion],
    ) -> CandidateChoice<'a> {
        let mut ordered: Vec<Option<&'a AvailableVersion>> = versions.iter().map(Some).collect();
        if let Some(i) = installed
            && !versions.iter().any(|v| compare_deb(&v.version, i).is_eq())
        {
            ordered.push(None);
        }
        let version_of = |v: &Option<&AvailableVersion>| -> String {
            match v {
                Some(v) => v.version.clone(),
                None => installed.unwrap_or_default().to_string(),
            }
        };
        ordered.sort_by(|a, b| compare_deb(&version_of(b), &version_of(a)));
        let mut best: Option<Option<&'a AvailableVersion>> = None;
        let mut best_priority = -1;
        for v in ordered {
            let version = version_of(&v);
            let priority = match v {
                Some(av) => self.priority(
                    lists,
                    &av.name,
                    &av.version,
                    &av.indexes,
                    av.arch == "all" || av.arch == self.native_arch,
                    installed,
                ),
                None => self.priority(
                    lists,
                    versions
                        .first()
                        .map(|f| f.name.as_str())
                        .unwrap_or_default(),
                    &version,
                    &[],
                    true,
                    installed,
                ),
            };
            if priority == 0 || priority <= best_priority {
                continue;
            }
            if let Some(i) = installed
                && priority < 1000
                && compare_deb(&version, i).is_lt()
            {
                continue;
            }
            best_priority = priority;
            best = Some(v);
        }
        match (best, installed) {
            (None, _) => CandidateChoice::None,
            (Some(None), _) => CandidateChoice::Installed,
            (Some(Some(v)), Some(i)) => match compare_deb(&v.version, i) {
                std::cmp::Ordering::Greater => CandidateChoice::Upgrade(v),
                std::cmp::Ordering::Equal => CandidateChoice::Installed,
                std::cmp::Ordering::Less => CandidateChoice::Downgrade(v),
            },
            (Some(Some(v)), None) => CandidateChoice::Upgrade(v),
        }
    }

    /// Whether apt's phasing keeps the upgrade of `installed` to `candidate` back on this root.
    /// `Err` names the apt version when its phasing is not implemented and it matters.
    pub fn phased_back(
        &self,
        lists: &AptLists,
        installed: &str,
        candidate: &AvailableVersion,
        versions: &[AvailableVersion],
    ) -> Result<bool, String> {
        if let Some(other) = &candidate.phased_conflict {
            return Err(format!(
                "{} {}: the lists disagree on its Phased-Update-Percentage ({other} among them); apt takes the first list in its sources order, which the agent does not model",
                candidate.name, candidate.version
            ));
        }
        let Some(percentage) = candidate.phased_percentage else {
            return Ok(false);
        };
        let Some(rule) = self.phasing.rule else {
            return Err(format!(
                "{} {} is phased ({percentage}%) and the phasing of apt {} is not implemented",
                candidate.name,
                candidate.version,
                self.phasing
                    .apt_version
                    .as_deref()
                    .unwrap_or("(not installed)")
            ));
        };
        let security = versions.iter().any(|v| {
            let above_installed = compare_deb(&v.version, installed).is_gt();
            let vs_candidate = compare_deb(&v.version, &candidate.version);
            let in_range = match rule {
                PhasingRule::SecurityBelowCandidate => vs_candidate.is_lt(),
                PhasingRule::SecurityUpToCandidate => vs_candidate.is_le(),
            };
            above_installed
                && in_range
                && v.indexes.iter().any(|i| {
                    lists
                        .indexes
                        .get(*i)
                        .and_then(|x| x.release)
                        .and_then(|r| lists.releases.get(r))
                        .is_some_and(|r| r.suite.ends_with("-security"))
                })
        });
        if security || self.phasing.always {
            return Ok(false);
        }
        if self.phasing.never {
            return Ok(true);
        }
        // apt also includes every phased update in a chroot and under SOURCE_DATE_EPOCH; the
        // agent decides for the booted node, which is neither.
        if self.phasing.machine_id.is_empty() {
            return Ok(false);
        }
        Ok(phasing::excluded_by_roll(
            &candidate.source_name,
            &candidate.source_version,
            &self.phasing.machine_id,
            percentage,
        ))
    }
}

/// Priority of dpkg's status file before pins.
const PRIORITY_STATUS: i32 = super::lists::PRIORITY_INSTALLED;

fn file_view(lists: &AptLists, file: FileRef) -> FileView<'_> {
    match file {
        FileRef::Status => FileView {
            release: None,
            component: "now",
            arch: "",
            site: None,
        },
        FileRef::Index(i) => {
            let index = &lists.indexes[i];
            let release = index.release.and_then(|r| lists.releases.get(r));
            FileView {
                release,
                component: &index.component,
                arch: &index.arch,
                site: release.map(|r| r.site.as_str()),
            }
        }
    }
}

#[cfg(test)]
mod tests;
