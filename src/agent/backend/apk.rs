//! The apk backend (Alpine).
//!
//! - Inventory: `/lib/apk/db/installed`, read in-process (`P:` name, `V:` version, `A:` arch,
//!   `o:` origin, `t:` build time; records separated by blank lines).
//! - Candidates: the host's `apk version -l '<'` (installed packages with a newer version in
//!   the indexes; apk repositories keep only the newest version of each package, so that is the
//!   one candidate).
//! - Security: Alpine's secdb (`secfixes`: fixed version → CVE ids; no severity, no date) when
//!   present on the host under `/var/lib/nodepatch/secdb/*.json`, keyed by origin (aports)
//!   name, so `libcrypto3` gets `openssl`'s fixes (Alpine does not install it;
//!   it is fetched from secdb.alpinelinux.org by whoever operates the nodes). A candidate is
//!   `Security` with those CVEs when a fix lies between the installed and the candidate
//!   version; the installed version gets a `Security` candidate too when it already contains
//!   fixes, so applied fixes count as Installed. Without a secdb nothing is a security update.
//! - Install: `apk add -- name=version…`, the approved versions exactly (the result is read back
//!   and a target counts as installed when that version or a newer one is installed). `apk add`
//!   records each `name=version` in `/etc/apk/world`, which would pin the package there for
//!   good, so the world file is put back as it was after the run. Under
//!   `rejectedPatchesAction: Block` the install's `apk add --simulate` must bring in no rejected
//!   package: a target whose own simulation does is Failed and left out.
//! - Reboot: the running kernel (`6.6.31-0-lts`) against the installed kernel package of its
//!   flavour (`linux-lts` `6.6.31-r0`).
//!
//! No live Alpine root can be built offline on the test machine (no apk-tools, no Alpine
//! mirror), so this backend is tested with recorded files (`tests/fixtures/apk/`) and a
//! scripted executor standing in for `apk`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use jiff::Timestamp;
use serde::Deserialize;

use super::command::{CommandStep, OutputDialect, reason_for, rejected_among, require_success};
use super::contract::{
    BackendError, InstallReport, InstallRequest, InstallTarget, NodeAgent, NodePackages,
    RebootState, TargetOutcome,
};
use crate::agent::host::HostRoot;
use crate::agent::host::command::{CommandOutput, HostCommand};
use crate::agent::os::DetectedOs;
use crate::agent::state::{FirstSeen, version_key};
use crate::baseline::model::{Candidate, InstalledPackage};
use crate::baseline::version::apk::{compare, validate};

/// apk's database of installed packages.
pub const INSTALLED_DB_PATH: &str = "/lib/apk/db/installed";
/// apk's world file: the packages (and constraints) the admin asked for.
pub const WORLD_PATH: &str = "/etc/apk/world";
/// Where the agent looks for Alpine secdb files.
pub const SECDB_DIR: &str = "/var/lib/nodepatch/secdb";

/// One installed apk package.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApkPackage {
    /// `P:`
    pub name: String,
    /// `V:`
    pub version: String,
    /// `A:`
    pub arch: String,
    /// `o:` (origin, the source package)
    pub origin: Option<String>,
}

/// Parse `/lib/apk/db/installed`.
pub fn parse_installed(text: &str) -> Result<Vec<ApkPackage>, BackendError> {
    let mut out = Vec::new();
    let mut current = ApkPackage::default();
    let mut flush = |current: &mut ApkPackage, line: usize| -> Result<(), BackendError> {
        if current == &ApkPackage::default() {
            return Ok(());
        }
        if current.name.is_empty() || current.version.is_empty() {
            return Err(BackendError::ApkDatabaseMalformed(format!(
                "{INSTALLED_DB_PATH}: record ending at line {line} has no P: or V:"
            )));
        }
        out.push(std::mem::take(current));
        Ok(())
    };
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() {
            flush(&mut current, n)?;
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(BackendError::ApkDatabaseMalformed(format!(
                "{INSTALLED_DB_PATH} line {}: not `X:value`: {line:?}",
                n + 1
            )));
        };
        match key {
            "P" => current.name = value.to_string(),
            "V" => current.version = value.to_string(),
            "A" => current.arch = value.to_string(),
            "o" => current.origin = Some(value.to_string()),
            _ => {}
        }
    }
    flush(&mut current, text.lines().count())?;
    Ok(out)
}

/// Read the installed database from the host root.
pub fn read_installed(root: &HostRoot) -> Result<Vec<ApkPackage>, BackendError> {
    let bytes = root.read(INSTALLED_DB_PATH)?;
    parse_installed(&String::from_utf8_lossy(&bytes))
}

/// One line of `apk version -l '<'`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApkUpgrade {
    /// Package name.
    pub name: String,
    /// Installed version.
    pub installed: String,
    /// Newer version in the indexes.
    pub available: String,
}

/// Parse `apk version -l '<'` output: a header line, then
/// `name-installedversion  <  availableversion` (extra columns ignored). `name-version` is split
/// with the installed database (names may contain `-` and digits), else at the `-` before the
/// version.
pub fn parse_version_list(text: &str, installed: &[ApkPackage]) -> Vec<ApkUpgrade> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(pkgver), Some(op), Some(available)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if op != "<" || validate(available).is_err() {
            continue;
        }
        let known = installed.iter().find(|p| {
            pkgver.len() == p.name.len() + 1 + p.version.len()
                && pkgver.starts_with(p.name.as_str())
                && pkgver[p.name.len()..].starts_with('-')
                && pkgver.ends_with(p.version.as_str())
        });
        let (name, version) = match known {
            Some(p) => (p.name.clone(), p.version.clone()),
            None => match split_name_version(pkgver) {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => continue,
            },
        };
        out.push(ApkUpgrade {
            name,
            installed: version,
            available: available.to_string(),
        });
    }
    out
}

/// Split `name-version-rN` at the `-` that starts a valid version.
pub fn split_name_version(pkgver: &str) -> Option<(&str, &str)> {
    pkgver
        .match_indices('-')
        .map(|(i, _)| i)
        .find(|&i| {
            let version = &pkgver[i + 1..];
            version.as_bytes().first().is_some_and(u8::is_ascii_digit) && validate(version).is_ok()
        })
        .map(|i| (&pkgver[..i], &pkgver[i + 1..]))
}

#[derive(Deserialize)]
struct SecDb {
    #[serde(default)]
    packages: Vec<SecDbEntry>,
}

#[derive(Deserialize)]
struct SecDbEntry {
    pkg: SecDbPackage,
}

#[derive(Deserialize)]
struct SecDbPackage {
    name: String,
    #[serde(default)]
    secfixes: BTreeMap<String, Vec<String>>,
}

/// Fixed versions and their CVE ids, per package name.
pub type SecFixes = HashMap<String, Vec<(String, Vec<String>)>>;

/// Parse one secdb JSON document (`main.json`, `community.json`) into `fixes`. CVE entries may
/// carry alias ids after a space (`CVE-2024-1 XSA-1`); only the first word is kept.
pub fn parse_secdb(json: &[u8], fixes: &mut SecFixes) -> Result<(), BackendError> {
    let db: SecDb = serde_json::from_slice(json).map_err(BackendError::ApkSecdbMalformed)?;
    for entry in db.packages {
        let list = fixes.entry(entry.pkg.name).or_default();
        for (version, ids) in entry.pkg.secfixes {
            let ids: Vec<String> = ids
                .iter()
                .filter_map(|id| id.split_whitespace().next())
                .map(str::to_string)
                .collect();
            list.push((version, ids));
        }
    }
    Ok(())
}

/// Read every `*.json` under [`SECDB_DIR`]; `None` when there is none.
pub fn read_secdb(root: &HostRoot) -> Result<Option<SecFixes>, BackendError> {
    let files: Vec<String> = root
        .list_dir(SECDB_DIR)?
        .into_iter()
        .filter(|f| f.ends_with(".json"))
        .collect();
    if files.is_empty() {
        return Ok(None);
    }
    let mut fixes = SecFixes::new();
    for file in files {
        let bytes = root.read(format!("{SECDB_DIR}/{file}"))?;
        parse_secdb(&bytes, &mut fixes)?;
    }
    Ok(Some(fixes))
}

/// CVE ids of the fixes of `name` in the version range (`after`, `upto`].
fn cves_between(fixes: &SecFixes, name: &str, after: Option<&str>, upto: &str) -> Vec<String> {
    let mut cves: Vec<String> = fixes
        .get(name)
        .into_iter()
        .flatten()
        .filter(|(v, _)| {
            validate(v).is_ok()
                && compare(v, upto).is_le()
                && after.is_none_or(|a| compare(v, a).is_gt())
        })
        .flat_map(|(_, ids)| ids.iter().cloned())
        .collect();
    cves.sort();
    cves.dedup();
    cves
}

/// Candidates from the upgrades and the secdb (see the module docs).
pub fn build_candidates(
    installed: &[ApkPackage],
    upgrades: &[ApkUpgrade],
    fixes: Option<&SecFixes>,
    first_seen: &mut FirstSeen,
    now: Timestamp,
) -> Vec<Candidate> {
    let empty = SecFixes::new();
    let fixes = fixes.unwrap_or(&empty);
    let mut out = Vec::new();
    let security = |cves: Vec<String>, c: &mut Candidate| {
        if !cves.is_empty() {
            c.classification = Some("Security".to_string());
            c.cves = cves;
        }
    };
    for p in installed {
        let arch = Some(p.arch.clone()).filter(|a| !a.is_empty());
        // secdb is keyed by the aports (origin) name: libcrypto3's fixes are openssl's.
        let key = match &p.origin {
            Some(origin) if !fixes.contains_key(&p.name) => origin.as_str(),
            _ => p.name.as_str(),
        };
        let applied = cves_between(fixes, key, None, &p.version);
        if !applied.is_empty() {
            let mut c = Candidate {
                name: p.name.clone(),
                arch: arch.clone(),
                version: p.version.clone(),
                ..Candidate::default()
            };
            security(applied, &mut c);
            out.push(c);
        }
        if let Some(u) = upgrades.iter().find(|u| u.name == p.name) {
            let seen = first_seen.observe(version_key(&p.name, &p.arch, &u.available), now);
            let mut c = Candidate {
                name: p.name.clone(),
                arch,
                version: u.available.clone(),
                first_seen: Some(seen),
                ..Candidate::default()
            };
            security(
                cves_between(fixes, key, Some(&p.version), &u.available),
                &mut c,
            );
            out.push(c);
        }
    }
    out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    out
}

/// The reboot need: the running kernel `<version>-<n>-<flavour>` against the installed
/// `linux-<flavour>` package (`<version>-r<n>`).
pub fn reboot_state(installed: &[ApkPackage], running_kernel: &str) -> RebootState {
    let mut state = RebootState::default();
    let mut parts = running_kernel.splitn(3, '-');
    let (Some(version), Some(build), Some(flavour)) = (parts.next(), parts.next(), parts.next())
    else {
        return state;
    };
    let package = format!("linux-{flavour}");
    let running = format!("{version}-r{build}");
    if let Some(p) = installed.iter().find(|p| p.name == package)
        && compare(&p.version, &running).is_gt()
    {
        state.required = true;
        state.reasons.push(format!(
            "running kernel {running_kernel}, {package} {} installed",
            p.version
        ));
        state.pending_packages.push(package);
    }
    state
}

/// `apk update`.
pub fn refresh(agent: &NodeAgent) -> Result<(), BackendError> {
    let command = HostCommand::new(["apk", "update"]).timeout(
        crate::rollout::budget::std_duration(crate::rollout::budget::REFRESH_TIMEOUT),
    );
    let output = agent.executor.run(&command)?;
    require_success(&command, output, CommandStep::ApkRefresh)?;
    Ok(())
}

/// The apk backend's read.
pub fn read_node(
    agent: &NodeAgent,
    detected: &DetectedOs,
    first_seen: &mut FirstSeen,
    now: Timestamp,
) -> Result<NodePackages, BackendError> {
    let installed = read_installed(&agent.root)?;
    let command = HostCommand::new(["apk", "version", "-l", "<"]).timeout(Duration::from_secs(300));
    let output = agent.executor.run(&command)?;
    let output = require_success(&command, output, CommandStep::ApkQuery)?;
    let upgrades = parse_version_list(&output.stdout, &installed);
    let fixes = read_secdb(&agent.root)?;
    let mut notes = Vec::new();
    if fixes.is_none() {
        notes.push(format!(
            "no Alpine secdb under {SECDB_DIR}: no update is known to be a security fix"
        ));
    }
    let candidates = build_candidates(&installed, &upgrades, fixes.as_ref(), first_seen, now);
    Ok(NodePackages {
        installed: installed
            .iter()
            .map(|p| InstalledPackage {
                name: p.name.clone(),
                arch: Some(p.arch.clone()).filter(|a| !a.is_empty()),
                version: p.version.clone(),
                source: p.origin.clone(),
            })
            .collect(),
        candidates,
        reboot: reboot_state(&installed, &detected.info.kernel),
        held: Vec::new(),
        notes,
        native_arch: None,
    })
}

/// An apk package name as nodepatch passes it to apk: `[A-Za-z0-9_][A-Za-z0-9_+.-]*`.
pub fn is_valid_apk_name(name: &str) -> bool {
    name.as_bytes()
        .first()
        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'.' | b'-'))
}

/// The packages `apk add --simulate` says it would install or upgrade:
/// `(1/2) Upgrading musl (1.2.5-r0 -> 1.2.5-r1)`, `(2/2) Installing zlib (1.3.1-r1)`.
pub fn simulated_packages(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix('(')?.split_once(") ")?.1;
            let mut words = rest.split_whitespace();
            let action = words.next()?;
            matches!(
                action,
                "Installing" | "Upgrading" | "Downgrading" | "Replacing"
            )
            .then(|| words.next().map(str::to_string))
            .flatten()
        })
        .collect()
}

/// `apk add --simulate -- spec…`.
fn simulate_command(specs: &[String]) -> HostCommand {
    let mut argv = vec![
        "apk".to_string(),
        "add".into(),
        "--simulate".into(),
        "--".into(),
    ];
    argv.extend(specs.iter().cloned());
    HostCommand::new(argv).timeout(Duration::from_secs(600))
}

/// The rejected packages an `apk add` of `specs` would bring in.
fn rejected_in_simulation(
    agent: &NodeAgent,
    specs: &[String],
    patterns: &[String],
) -> Result<Vec<String>, BackendError> {
    let output = agent.executor.run(&simulate_command(specs))?;
    Ok(rejected_among(
        &simulated_packages(&output.stdout),
        patterns,
    ))
}

/// `apk add -- name=version…` (the world file put back afterwards), then read the database back.
pub fn install(
    agent: &NodeAgent,
    request: &InstallRequest<'_>,
) -> Result<InstallReport, BackendError> {
    let mut report = InstallReport::default();
    for t in request.targets {
        if !is_valid_apk_name(&t.name) || validate(&t.version).is_err() {
            return Err(BackendError::InvalidInstallTarget {
                name: t.name.clone(),
                version: t.version.clone(),
                reason: None,
            });
        }
    }
    if request.targets.is_empty() {
        return Ok(report);
    }
    let spec = |t: &InstallTarget| format!("{}={}", t.name, t.version);
    let mut pending: Vec<&InstallTarget> = request.targets.iter().collect();
    let mut refused: HashMap<String, String> = HashMap::new();
    let patterns = request.blocked_patterns;
    let specs_of = |targets: &[&InstallTarget]| targets.iter().map(|t| spec(t)).collect::<Vec<_>>();
    if !patterns.is_empty()
        && !rejected_in_simulation(agent, &specs_of(&pending), patterns)?.is_empty()
    {
        for t in pending.clone() {
            let rejected = rejected_in_simulation(agent, &[spec(t)], patterns)?;
            if !rejected.is_empty() {
                refused.insert(
                    t.name.clone(),
                    format!(
                        "installing it would also install rejected {} (rejectedPatchesAction Block)",
                        rejected.join(", ")
                    ),
                );
                pending.retain(|p| p.name != t.name);
            }
        }
        let left = rejected_in_simulation(agent, &specs_of(&pending), patterns)?;
        if !left.is_empty() {
            for t in pending.drain(..) {
                refused.insert(
                    t.name.clone(),
                    format!(
                        "installed together the approved packages would install rejected {} (rejectedPatchesAction Block)",
                        left.join(", ")
                    ),
                );
            }
        }
    }
    let mut output = CommandOutput::default();
    if !pending.is_empty() {
        let world = agent.root.read_optional(WORLD_PATH)?;
        let mut argv = vec!["apk".to_string(), "add".to_string(), "--".to_string()];
        argv.extend(specs_of(&pending));
        let command = HostCommand::new(argv)
            .timeout(crate::rollout::budget::std_duration(
                crate::rollout::budget::INSTALL_TIMEOUT,
            ))
            .as_transaction();
        let result = agent.executor.run(&command);
        // `name=version` in the world file would hold the package at that version forever.
        if let Some(world) = world
            && agent.root.read_optional(WORLD_PATH)?.as_ref() != Some(&world)
        {
            agent.root.write_atomic(WORLD_PATH, &world)?;
        }
        output = result?;
        report.runs.push(format!(
            "{} → {}",
            command.display(),
            output.describe_status()
        ));
    }
    let after = read_installed(&agent.root)?;
    report.outcomes = request
        .targets
        .iter()
        .map(|t| {
            let installed = after
                .iter()
                .any(|p| p.name == t.name && compare(&p.version, &t.version).is_ge());
            TargetOutcome {
                target: t.clone(),
                installed,
                skipped: false,
                reason: (!installed).then(|| {
                    refused
                        .get(&t.name)
                        .cloned()
                        .unwrap_or_else(|| reason_for(&t.name, &output, OutputDialect::Rpm))
                }),
            }
        })
        .collect();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_versions_split_at_the_version() {
        assert_eq!(
            split_name_version("busybox-1.36.1-r29"),
            Some(("busybox", "1.36.1-r29"))
        );
        assert_eq!(
            split_name_version("py3-pip-24.0-r2"),
            Some(("py3-pip", "24.0-r2"))
        );
        assert_eq!(split_name_version("nover"), None);
        assert!(is_valid_apk_name("libcrypto3"));
        assert!(!is_valid_apk_name("-U"));
    }

    #[test]
    fn recorded_database_version_list_and_secdb_parse() {
        let installed =
            parse_installed(include_str!("../../../tests/fixtures/apk/installed")).expect("db");
        let names: Vec<&str> = installed.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "alpine-baselayout-data",
                "musl",
                "busybox",
                "libcrypto3",
                "zlib",
                "linux-lts"
            ]
        );
        assert_eq!(installed[3].origin.as_deref(), Some("openssl"));
        assert_eq!(installed[1].version, "1.2.5-r0");
        let upgrades = parse_version_list(
            include_str!("../../../tests/fixtures/apk/version-l.txt"),
            &installed,
        );
        assert_eq!(
            upgrades,
            vec![
                ApkUpgrade {
                    name: "busybox".into(),
                    installed: "1.36.1-r29".into(),
                    available: "1.36.1-r30".into()
                },
                ApkUpgrade {
                    name: "libcrypto3".into(),
                    installed: "3.3.1-r0".into(),
                    available: "3.3.2-r0".into()
                },
                ApkUpgrade {
                    name: "musl".into(),
                    installed: "1.2.5-r0".into(),
                    available: "1.2.5-r1".into()
                },
            ]
        );
        let mut fixes = SecFixes::new();
        parse_secdb(
            include_bytes!("../../../tests/fixtures/apk/secdb-main.json"),
            &mut fixes,
        )
        .expect("secdb");
        assert_eq!(
            cves_between(&fixes, "openssl", None, "3.1.4-r0"),
            vec!["CVE-2023-5363".to_string()],
            "alias ids after the CVE are dropped"
        );
        assert!(parse_installed("P:x\nno colon here\n").is_err());
        assert!(
            parse_installed("A:x86_64\n\n").is_err(),
            "record without P:/V:"
        );
    }

    #[test]
    fn kernel_flavour_reboot() {
        let installed = vec![ApkPackage {
            name: "linux-lts".into(),
            version: "6.6.32-r0".into(),
            arch: "x86_64".into(),
            origin: None,
        }];
        assert!(reboot_state(&installed, "6.6.31-0-lts").required);
        assert!(!reboot_state(&installed, "6.6.32-0-lts").required);
        assert!(!reboot_state(&installed, "6.6.31-0-virt").required);
        assert!(!reboot_state(&installed, "").required);
    }

    #[test]
    fn the_simulation_names_what_apk_would_install() {
        let text = "(1/3) Upgrading musl (1.2.5-r0 -> 1.2.5-r1)\n(2/3) Installing zlib (1.3.1-r1)\n(3/3) Purging old (1)\nOK: 10 MiB in 20 packages\n";
        assert_eq!(simulated_packages(text), vec!["musl", "zlib"]);
    }
}
