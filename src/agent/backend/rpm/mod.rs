//! What the rpm-based backends (dnf for the RHEL family, Amazon Linux and Fedora; zypper for
//! SUSE) share: the inventory from the host's `rpm -qa`, updateinfo advisories turned into
//! candidates, exact-version targets (`name-[epoch:]version-release.arch`), reading an install
//! back, and the reboot rules.
//!
//! Versions are ordered with the engine's rpm comparison
//! ([`crate::baseline::version::rpm::compare_evr`]), which is differentially tested against
//! librpm.

pub mod dnf;
pub mod reboot;
pub mod updateinfo;

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;

use crate::agent::backend::command::{CommandStep, require_success};
use crate::agent::backend::contract::{BackendError, InstallTarget};
use crate::agent::host::command::{HostCommand, HostExecutor};
use crate::agent::state::{FirstSeen, version_key};
use crate::baseline::model::{Candidate, InstalledPackage};
use crate::baseline::version::rpm::{Evr, compare_evr};
use updateinfo::Advisory;
pub use updateinfo::evr_string;

/// The `rpm -qa` query format: one tab-separated line per installed package.
pub const RPM_QUERY_FORMAT: &str =
    "%{NAME}\\t%{EPOCHNUM}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\t%{INSTALLTIME}\\t%{SOURCERPM}\\n";

/// One installed rpm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpmPackage {
    /// Name.
    pub name: String,
    /// Epoch (0 when none).
    pub epoch: String,
    /// Version.
    pub version: String,
    /// Release.
    pub release: String,
    /// Architecture.
    pub arch: String,
    /// When it was installed (seconds since the epoch).
    pub install_time: i64,
    /// Source rpm file name (`glibc-2.34-100.el9.src.rpm`), if any.
    pub source_rpm: Option<String>,
}

impl RpmPackage {
    /// `[epoch:]version-release`.
    pub fn evr(&self) -> String {
        evr_string(&self.epoch, &self.version, &self.release)
    }
}

/// The `rpm -qa` command (the host's rpm, its own database).
pub fn inventory_command() -> HostCommand {
    HostCommand::new(["rpm", "-qa", "--qf", RPM_QUERY_FORMAT])
        .timeout(std::time::Duration::from_secs(300))
}

/// Parse `rpm -qa --qf RPM_QUERY_FORMAT` output. `gpg-pubkey` pseudo-packages are skipped.
pub fn parse_inventory(text: &str) -> Result<Vec<RpmPackage>, BackendError> {
    let mut packages = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() < 6 {
            return Err(BackendError::RpmQueryMalformed(format!(
                "rpm -qa line {}: expected 7 tab-separated fields: {line:?}",
                n + 1
            )));
        }
        if fields[0] == "gpg-pubkey" {
            continue;
        }
        let install_time = fields[5].trim().parse::<i64>().unwrap_or(0);
        let source_rpm = fields
            .get(6)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty() && *s != "(none)")
            .map(str::to_string);
        packages.push(RpmPackage {
            name: fields[0].to_string(),
            epoch: if fields[1] == "(none)" {
                "0"
            } else {
                fields[1]
            }
            .to_string(),
            version: fields[2].to_string(),
            release: fields[3].to_string(),
            arch: fields[4].to_string(),
            install_time,
            source_rpm,
        });
    }
    Ok(packages)
}

/// Run the host's `rpm -qa` and parse it. An empty database is an error: every real node has
/// packages, and rpm answers an absent database (wrong root, wrong `_dbpath`) with nothing
/// rather than a failure, which would otherwise read as a compliant node.
pub fn read_inventory(executor: &dyn HostExecutor) -> Result<Vec<RpmPackage>, BackendError> {
    let command = inventory_command();
    let output = executor.run(&command)?;
    let output = require_success(&command, output, CommandStep::RpmQuery)?;
    let packages = parse_inventory(&output.stdout)?;
    if packages.is_empty() {
        return Err(BackendError::RpmDatabaseEmpty {
            command: command.display(),
            executor: executor.describe(),
        });
    }
    Ok(packages)
}

/// The source package name of a source rpm file name (`glibc-2.34-100.el9.src.rpm` → `glibc`).
pub fn source_name(source_rpm: &str) -> Option<&str> {
    let stem = source_rpm
        .strip_suffix(".src.rpm")
        .or_else(|| source_rpm.strip_suffix(".nosrc.rpm"))?;
    let (rest, _release) = stem.rsplit_once('-')?;
    let (name, _version) = rest.rsplit_once('-')?;
    Some(name)
}

/// The installed packages in the evaluation's model.
pub fn installed_packages(packages: &[RpmPackage]) -> Vec<InstalledPackage> {
    packages
        .iter()
        .map(|p| InstalledPackage {
            name: p.name.clone(),
            arch: Some(p.arch.clone()),
            version: p.evr(),
            source: p
                .source_rpm
                .as_deref()
                .and_then(source_name)
                .map(str::to_string),
        })
        .collect()
}

/// rpm's name grammar as nodepatch accepts it on a command line: ASCII alphanumerics and
/// `._+-`, not starting with `-` or `.`.
pub fn is_valid_rpm_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 255
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
}

/// An rpm architecture (`x86_64`, `noarch`, `aarch64`, `i686`).
pub fn is_valid_arch(arch: &str) -> bool {
    !arch.is_empty()
        && arch.len() <= 32
        && arch.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Check a target and render it as dnf's exact spec `name-[epoch:]version-release.arch`
/// (or `name-[epoch:]version-release` without an arch). Refused before any command runs.
pub fn nevra(target: &InstallTarget) -> Result<String, BackendError> {
    let invalid = |reason: String| BackendError::InvalidInstallTarget {
        name: target.name.clone(),
        version: target.version.clone(),
        reason: Some(reason),
    };
    if !is_valid_rpm_name(&target.name) {
        return Err(invalid("not an rpm package name".into()));
    }
    let evr = Evr::parse(&target.version).map_err(|e| invalid(e.to_string()))?;
    if evr.release.is_none() {
        return Err(invalid("an exact version needs a release".into()));
    }
    match target.arch.as_deref() {
        Some(arch) if !is_valid_arch(arch) => {
            Err(invalid(format!("invalid architecture {arch:?}")))
        }
        Some(arch) => Ok(format!("{}-{}.{arch}", target.name, target.version)),
        None => Ok(format!("{}-{}", target.name, target.version)),
    }
}

/// Packages rpm keeps several versions of by design (dnf's `installonlypkgs`, zypper's
/// multiversion): kernels.
fn is_install_only(name: &str) -> bool {
    name == "kernel" || name.starts_with("kernel-") || name == "installonlypkg"
}

/// rpmdb entries a killed transaction leaves behind: the same name and arch installed twice
/// (the new header was added, the old one never erased), kernels aside. One line per package:
/// `name.arch (evr, evr)`.
pub fn duplicate_entries(installed: &[RpmPackage]) -> Vec<String> {
    let mut by_key: HashMap<(&str, &str), Vec<String>> = HashMap::new();
    for p in installed.iter().filter(|p| !is_install_only(&p.name)) {
        by_key.entry((&p.name, &p.arch)).or_default().push(p.evr());
    }
    let mut out: Vec<String> = by_key
        .into_iter()
        .filter(|(_, evrs)| evrs.len() > 1)
        .map(|((name, arch), evrs)| format!("{name}.{arch} ({})", evrs.join(", ")))
        .collect();
    out.sort();
    out
}

/// `rpm -V --nomtime --nouser --nogroup --nomode -- name`: what rpm's database says the
/// package's files are, against the files.
pub fn verify_command(name: &str) -> HostCommand {
    HostCommand::new([
        "rpm",
        "-V",
        "--nomtime",
        "--nouser",
        "--nogroup",
        "--nomode",
        "--",
        name,
    ])
    .timeout(std::time::Duration::from_secs(300))
}

/// The problems in `rpm -V` output that mean a half-done transaction: missing files and files
/// whose size or digest differ, configuration files (`c`, edited locally on purpose) aside.
pub fn verify_problems(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let flags = fields.next()?;
            let rest: Vec<&str> = fields.collect();
            let (kind, path) = match rest.as_slice() {
                [kind, path] if kind.len() == 1 => (Some(*kind), *path),
                [path] => (None, *path),
                _ => return None,
            };
            if kind == Some("c") {
                return None;
            }
            if flags == "missing" {
                return Some(format!("{path} is missing"));
            }
            let attrs = flags.as_bytes();
            (attrs.len() == 9 && (attrs[0] == b'S' || attrs[2] == b'5'))
                .then(|| format!("{path} differs from the rpm database ({flags})"))
        })
        .collect()
}

/// The repair check after a transaction: for each installed target (names), duplicate rpmdb
/// entries and `rpm -V` problems. A target with a problem is not counted as installed; the
/// map gives the reason. `runs` gets one line per check that found something.
pub fn transaction_problems(
    executor: &dyn HostExecutor,
    installed: &[RpmPackage],
    names: &[&str],
    runs: &mut Vec<String>,
) -> Result<HashMap<String, String>, BackendError> {
    let mut problems: HashMap<String, String> = HashMap::new();
    let duplicates = duplicate_entries(installed);
    if !duplicates.is_empty() {
        runs.push(format!(
            "rpmdb duplicate entries: {}",
            duplicates.join(", ")
        ));
    }
    for name in names {
        let prefix = format!("{name}.");
        if let Some(d) = duplicates.iter().find(|d| d.starts_with(&prefix)) {
            problems.insert(
                name.to_string(),
                format!("the rpm database holds it twice after the transaction: {d}"),
            );
            continue;
        }
        let command = verify_command(name);
        let output = executor.run(&command)?;
        let found = verify_problems(&output.stdout);
        if !found.is_empty() {
            let shown: Vec<&str> = found.iter().take(3).map(String::as_str).collect();
            runs.push(format!("{} → {}", command.display(), shown.join("; ")));
            problems.insert(
                name.to_string(),
                format!(
                    "`rpm -V {name}` after the transaction: {}{}",
                    shown.join("; "),
                    if found.len() > 3 { "; …" } else { "" }
                ),
            );
        }
    }
    Ok(problems)
}

/// Before an install: a note when the rpm database holds duplicate entries (an earlier killed
/// transaction), `None` when it is clean.
pub fn database_note(executor: &dyn HostExecutor) -> Result<Option<String>, BackendError> {
    let duplicates = duplicate_entries(&read_inventory(executor)?);
    Ok((!duplicates.is_empty()).then(|| {
        format!(
            "the rpm database holds duplicate entries (an interrupted transaction; `dnf remove --duplicates` or `zypper verify` cleans them up): {}",
            duplicates.join(", ")
        )
    }))
}

/// Architectures that install on every architecture.
fn arch_independent(arch: &str) -> bool {
    arch == "noarch"
}

/// True when `installed` holds `name` (same arch, or noarch on either side) at `version` or
/// newer.
pub fn is_satisfied(
    installed: &[RpmPackage],
    name: &str,
    arch: Option<&str>,
    version: &str,
) -> bool {
    installed.iter().any(|p| {
        p.name == name
            && arch.is_none_or(|a| a == p.arch || arch_independent(a) || arch_independent(&p.arch))
            && compare_evr(&p.evr(), version).is_ge()
    })
}

/// A package version a repository offers as an upgrade of an installed package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvailablePackage {
    /// Name.
    pub name: String,
    /// `[epoch:]version-release`.
    pub evr: String,
    /// Architecture.
    pub arch: String,
    /// Repository id.
    pub repo: String,
}

/// Advisories of one repository.
#[derive(Clone, Debug, Default)]
pub struct RepoAdvisories {
    /// Repository id (dnf) or alias (zypper).
    pub repo: String,
    /// Its advisories.
    pub advisories: Vec<Advisory>,
}

/// (name, arch, evr) of an advisory package.
type PackageKey<'a> = (&'a str, &'a str, String);

/// The candidate of `name`/`arch`/`evr` described by `advisory` (or by nothing).
fn candidate(
    name: &str,
    arch: &str,
    evr: &str,
    repo: &str,
    advisory: Option<&Advisory>,
    first_seen: &mut FirstSeen,
    now: Timestamp,
) -> Candidate {
    // Only versions without a vendor date need a sighting (the fallback release date); dated
    // advisories would only grow the node's record by every advisory ever applied.
    let seen = advisory
        .and_then(Advisory::release_date)
        .is_none()
        .then(|| first_seen.observe(version_key(name, arch, evr), now));
    let mut c = Candidate {
        name: name.to_string(),
        arch: Some(arch.to_string()),
        version: evr.to_string(),
        repositories: if repo.is_empty() {
            Vec::new()
        } else {
            vec![repo.to_string()]
        },
        first_seen: seen,
        ..Candidate::default()
    };
    if let Some(a) = advisory {
        c.advisory = Some(a.id.clone());
        c.classification = a.classification();
        c.severity = a.severity.as_deref().and_then(updateinfo::capitalize);
        c.release_date = a.release_date();
        c.cves = a.cves.clone();
        c.bugzillas = a.bugzillas.clone();
        c.reboot_suggested = a
            .packages
            .iter()
            .any(|p| p.reboot_suggested && p.name == name && p.evr() == evr && p.arch == arch);
    }
    c
}

/// The candidates of an rpm node:
/// - every upgrade the package manager offers (`available`), with the metadata of each
///   advisory listing that exact name/evr/arch (one candidate per advisory; none: no
///   classification, so only rules with `enableNonSecurity` approve it);
/// - every advisory package of an installed name and arch at a version not newer than the
///   installed one, so an applied advisory counts as Installed. Advisory versions newer than
///   the installed one that no repository offers are left out: they cannot be installed.
///
/// First sightings are recorded for versions no advisory dates (their fallback release date).
pub fn build_candidates(
    installed: &[RpmPackage],
    available: &[AvailablePackage],
    advisories: &[RepoAdvisories],
    first_seen: &mut FirstSeen,
    now: Timestamp,
) -> Vec<Candidate> {
    // Newest installed version per (name, arch).
    let mut newest: HashMap<(&str, &str), String> = HashMap::new();
    let mut arches: HashMap<&str, Vec<&str>> = HashMap::new();
    for p in installed {
        let evr = p.evr();
        newest
            .entry((p.name.as_str(), p.arch.as_str()))
            .and_modify(|v| {
                if compare_evr(&evr, v).is_gt() {
                    *v = evr.clone();
                }
            })
            .or_insert_with(|| evr.clone());
        arches
            .entry(p.name.as_str())
            .or_default()
            .push(p.arch.as_str());
    }
    let installed_arch = |name: &str, arch: &str| -> Option<&str> {
        let list = arches.get(name)?;
        list.iter().copied().find(|a| *a == arch).or_else(|| {
            (list.len() == 1 && (arch_independent(arch) || arch_independent(list[0])))
                .then_some(list[0])
        })
    };
    // Advisories by the exact package they carry.
    let mut by_package: HashMap<PackageKey<'_>, Vec<(&str, &Advisory)>> = HashMap::new();
    for repo in advisories {
        for a in &repo.advisories {
            for p in &a.packages {
                if installed_arch(&p.name, &p.arch).is_none() {
                    continue;
                }
                let entry = by_package
                    .entry((p.name.as_str(), p.arch.as_str(), p.evr()))
                    .or_default();
                if !entry.iter().any(|(_, e)| e.id == a.id) {
                    entry.push((repo.repo.as_str(), a));
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut offered: HashSet<(&str, &str, &str)> = HashSet::new();
    for p in available {
        if installed_arch(&p.name, &p.arch).is_none()
            || !offered.insert((p.name.as_str(), p.arch.as_str(), p.evr.as_str()))
        {
            continue;
        }
        match by_package.get(&(p.name.as_str(), p.arch.as_str(), p.evr.clone())) {
            Some(list) => {
                for (_, a) in list {
                    out.push(candidate(
                        &p.name,
                        &p.arch,
                        &p.evr,
                        &p.repo,
                        Some(a),
                        first_seen,
                        now,
                    ));
                }
            }
            None => out.push(candidate(
                &p.name, &p.arch, &p.evr, &p.repo, None, first_seen, now,
            )),
        }
    }
    for ((name, arch, evr), list) in &by_package {
        if offered.contains(&(*name, *arch, evr.as_str())) {
            continue;
        }
        let Some(inst_arch) = installed_arch(name, arch) else {
            continue;
        };
        let applied = newest
            .get(&(*name, inst_arch))
            .is_some_and(|inst| compare_evr(evr, inst).is_le());
        if applied {
            for (repo, a) in list {
                out.push(candidate(name, arch, evr, repo, Some(a), first_seen, now));
            }
        }
    }
    out.sort_by(|a, b| {
        (&a.name, &a.arch, &a.version, &a.advisory).cmp(&(
            &b.name,
            &b.arch,
            &b.version,
            &b.advisory,
        ))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use updateinfo::AdvisoryPackage;

    fn pkg(name: &str, evr: (&str, &str, &str), arch: &str) -> RpmPackage {
        RpmPackage {
            name: name.into(),
            epoch: evr.0.into(),
            version: evr.1.into(),
            release: evr.2.into(),
            arch: arch.into(),
            install_time: 0,
            source_rpm: None,
        }
    }

    #[test]
    fn inventory_lines_and_source_names() {
        let text = "glibc\t0\t2.34\t100.el9\tx86_64\t1714550400\tglibc-2.34-100.el9.src.rpm\ngpg-pubkey\t0\tfd431d51\t4ae0493b\t(none)\t1\t(none)\nbash\t1\t5.1\t8.el9\tx86_64\t1\t(none)\n";
        let packages = parse_inventory(text).expect("parses");
        assert_eq!(packages.len(), 2, "gpg-pubkey skipped");
        assert_eq!(packages[0].evr(), "2.34-100.el9");
        assert_eq!(packages[1].evr(), "1:5.1-8.el9");
        assert_eq!(packages[1].source_rpm, None);
        let installed = installed_packages(&packages);
        assert_eq!(installed[0].source.as_deref(), Some("glibc"));
        assert!(parse_inventory("only\tthree\tfields\n").is_err());
        assert_eq!(
            source_name("python3-libs-3.9.18-3.el9.src.rpm"),
            Some("python3-libs")
        );
    }

    #[test]
    fn targets_are_validated_and_rendered_as_nevras() {
        let t = |name: &str, version: &str, arch: Option<&str>| InstallTarget {
            name: name.into(),
            arch: arch.map(str::to_string),
            version: version.into(),
            advisories: Vec::new(),
        };
        assert_eq!(
            nevra(&t("glibc", "2.34-100.el9_4.2", Some("x86_64"))).expect("ok"),
            "glibc-2.34-100.el9_4.2.x86_64"
        );
        assert_eq!(
            nevra(&t("dbus", "1:1.12-8", None)).expect("ok"),
            "dbus-1:1.12-8"
        );
        for (name, version, arch) in [
            ("-x", "1-1", None),
            ("a b", "1-1", None),
            ("glibc", "2.34", None),
            ("glibc", "1-1;rm", None),
            ("glibc", "1-1", Some("x86 64")),
            ("glibc", "1-1", Some("--all")),
        ] {
            assert!(
                nevra(&t(name, version, arch)).is_err(),
                "{name} {version} {arch:?}"
            );
        }
    }

    #[test]
    fn candidates_join_upgrades_and_advisories() {
        let installed = vec![
            pkg("np-sec", ("0", "1.0", "1"), "noarch"),
            pkg("kernel", ("0", "5.14", "1"), "x86_64"),
            pkg("kernel", ("0", "5.14", "3"), "x86_64"),
        ];
        let available = vec![
            AvailablePackage {
                name: "np-sec".into(),
                evr: "1.1-1".into(),
                arch: "noarch".into(),
                repo: "np".into(),
            },
            AvailablePackage {
                name: "np-sec".into(),
                evr: "1.2-1".into(),
                arch: "noarch".into(),
                repo: "np".into(),
            },
            AvailablePackage {
                name: "other".into(),
                evr: "1-1".into(),
                arch: "noarch".into(),
                repo: "np".into(),
            },
        ];
        let adv =
            |id: &str, kind: &str, name: &str, version: &str, release: &str, arch: &str| Advisory {
                id: id.into(),
                kind: kind.into(),
                severity: Some("critical".into()),
                issued: Some("2024-01-01T00:00:00Z".parse().expect("ts")),
                packages: vec![AdvisoryPackage {
                    name: name.into(),
                    epoch: "0".into(),
                    version: version.into(),
                    release: release.into(),
                    arch: arch.into(),
                    reboot_suggested: true,
                }],
                ..Advisory::default()
            };
        let advisories = vec![RepoAdvisories {
            repo: "np".into(),
            advisories: vec![
                adv("A-1", "security", "np-sec", "1.1", "1", "noarch"),
                adv("K-1", "security", "kernel", "5.14", "2", "x86_64"),
                adv("K-9", "security", "kernel", "5.14", "9", "x86_64"),
                adv("X-1", "bugfix", "absent", "1", "1", "noarch"),
            ],
        }];
        let now: Timestamp = "2024-06-01T00:00:00Z".parse().expect("ts");
        let mut seen = FirstSeen::default();
        let candidates = build_candidates(&installed, &available, &advisories, &mut seen, now);
        let described: Vec<(&str, &str, Option<&str>)> = candidates
            .iter()
            .map(|c| (c.name.as_str(), c.version.as_str(), c.advisory.as_deref()))
            .collect();
        assert_eq!(
            described,
            vec![
                ("kernel", "5.14-2", Some("K-1")),
                ("np-sec", "1.1-1", Some("A-1")),
                ("np-sec", "1.2-1", None),
            ],
            "applied advisory kept, unavailable newer advisory and uninstalled names dropped"
        );
        let sec = &candidates[1];
        assert_eq!(sec.classification.as_deref(), Some("Security"));
        assert_eq!(sec.severity.as_deref(), Some("Critical"));
        assert!(sec.reboot_suggested);
        assert_eq!(sec.repositories, vec!["np".to_string()]);
        assert_eq!(candidates[2].classification, None);
        assert_eq!(
            candidates[2].first_seen,
            Some(now),
            "undated: first sighting"
        );
        assert_eq!(sec.first_seen, None, "dated by its advisory");
        assert_eq!(seen.versions.len(), 1);
    }

    #[test]
    fn satisfied_means_same_or_newer_version_of_the_arch() {
        let installed = vec![pkg("np-sec", ("0", "1.10", "1"), "noarch")];
        assert!(is_satisfied(&installed, "np-sec", Some("noarch"), "1.9-1"));
        assert!(is_satisfied(&installed, "np-sec", Some("x86_64"), "1.10-1"));
        assert!(!is_satisfied(&installed, "np-sec", None, "1.10-2"));
        assert!(!is_satisfied(&installed, "np-other", None, "1-1"));
    }

    #[test]
    fn a_killed_transaction_shows_as_duplicates_and_verify_problems() {
        let p = |name: &str, version: &str| RpmPackage {
            name: name.into(),
            epoch: "0".into(),
            version: version.into(),
            release: "1".into(),
            arch: "noarch".into(),
            install_time: 0,
            source_rpm: None,
        };
        let installed = vec![
            p("np-crit", "1.0"),
            p("np-crit", "1.1"),
            p("np-imp", "1.1"),
            p("kernel-core", "5.14"),
            p("kernel-core", "5.15"),
        ];
        assert_eq!(
            duplicate_entries(&installed),
            vec!["np-crit.noarch (1.0-1, 1.1-1)".to_string()],
            "kernels are installed side by side on purpose"
        );
        let verify = "missing     /usr/share/doc/np-imp/VERSION\nS.5......  c /etc/np-imp.conf\n..5......    /usr/bin/np-imp\n.......T.    /usr/lib/np\n";
        assert_eq!(
            verify_problems(verify),
            vec![
                "/usr/share/doc/np-imp/VERSION is missing".to_string(),
                "/usr/bin/np-imp differs from the rpm database (..5......)".to_string()
            ]
        );
        let mut runs = Vec::new();
        let executor = crate::agent::host::scripted::ScriptedExecutor::new().on(
            &["rpm", "-V"],
            crate::agent::host::command::CommandOutput {
                exit_code: Some(1),
                stdout: "missing     /usr/bin/np-imp\n".into(),
                ..Default::default()
            },
        );
        let problems =
            transaction_problems(&executor, &installed, &["np-crit", "np-imp"], &mut runs)
                .expect("check");
        assert!(problems["np-crit"].contains("twice"), "{problems:?}");
        assert!(
            problems["np-imp"].contains("/usr/bin/np-imp is missing"),
            "{problems:?}"
        );
        assert_eq!(runs.len(), 2, "{runs:?}");
    }
}
