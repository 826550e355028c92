//! The apt backend (Debian, Ubuntu): inventory from dpkg's database and candidates from apt's
//! lists, both read in-process ([`AptSnapshot::read`]); refresh, repair and install run the
//! host's own `apt-get`/`dpkg` through the [`HostExecutor`](crate::agent::host::HostExecutor)
//! ([`install`]).

pub mod aptconf;
pub mod deb822;
pub mod dpkg;
pub mod install;
pub mod lists;
pub mod phasing;
pub mod preferences;
pub mod reboot;
pub mod upgrades;

use std::collections::HashMap;

use jiff::Timestamp;

use crate::agent::backend::contract::{
    BackendError, InstallReport, InstallRequest, NodeAgent, NodePackages, TargetOutcome,
};
use crate::agent::backend::sources::{APT_LISTS_DIR, Repositories};
use crate::agent::host::HostRoot;
use crate::agent::os::DetectedOs;
use crate::agent::state::{FirstSeen, version_key};
use crate::baseline::model::{Candidate, Dependency, InstalledPackage, Relation};
use crate::baseline::version::deb::compare as compare_deb;
use dpkg::{DpkgDatabase, DpkgError, DpkgPackage};
use install::AptCommands;
use lists::{AptLists, AptUpgrade, AvailableByPackage, AvailableVersion, ListsError, ReleaseInfo};
use preferences::{AptPolicy, Phasing, Preferences};

/// Errors of the apt backend's reads.
#[derive(Debug, thiserror::Error)]
pub enum AptError {
    /// dpkg's database could not be read.
    #[error(transparent)]
    Dpkg(#[from] DpkgError),
    /// apt's lists could not be read.
    #[error(transparent)]
    Lists(#[from] ListsError),
}

impl From<AptError> for BackendError {
    fn from(e: AptError) -> BackendError {
        match e {
            AptError::Dpkg(e) => BackendError::Dpkg(e),
            AptError::Lists(e) => BackendError::Lists(e),
        }
    }
}

impl AptError {
    /// Bounded category for metrics and report reasons.
    pub fn category(&self) -> &'static str {
        match self {
            AptError::Dpkg(e) => e.category(),
            AptError::Lists(e) => e.category(),
        }
    }
}

/// Classification of an apt candidate, from the suites that offer it:
/// `Security` when any is a security suite, else `Bugfix` when any is a regular suite (the
/// release itself, `-updates`, `-proposed`, third-party repositories), else `Enhancement`
/// (only `-backports`).
pub fn classify(releases: &[&ReleaseInfo]) -> &'static str {
    if releases.iter().any(|r| r.is_security()) {
        "Security"
    } else if releases.is_empty()
        || releases
            .iter()
            .any(|r| !r.repository().ends_with("-backports"))
    {
        "Bugfix"
    } else {
        "Enhancement"
    }
}

/// Parse a Debian relationship field (`Depends`) into the dependencies the evaluation can use
/// for `rejectedPatchesAction: Block`. Alternatives (`a | b`) cannot be expressed in the
/// evaluation model, so such groups are left out: they never block.
pub fn parse_dependencies(field: &str) -> Vec<Dependency> {
    let mut deps = Vec::new();
    for group in field.split(',') {
        let group = group.trim();
        if group.is_empty() || group.contains('|') {
            continue;
        }
        // `name[:arch] [(op version)] [arch restrictions] [<profiles>]`
        let (head, constraint) = match group.split_once('(') {
            Some((head, rest)) => (head, rest.split_once(')').map(|(c, _)| c.trim())),
            None => (group, None),
        };
        let name = head.split_whitespace().next().unwrap_or_default();
        let name = name.split(':').next().unwrap_or_default();
        if name.is_empty() {
            continue;
        }
        let (relation, version) = match constraint {
            Some(c) => {
                let op_len = c
                    .find(|ch: char| !matches!(ch, '<' | '>' | '='))
                    .unwrap_or(c.len());
                let relation = match &c[..op_len] {
                    "<<" => Some(Relation::Less),
                    "<=" | "<" => Some(Relation::LessOrEqual),
                    "=" => Some(Relation::Equal),
                    ">=" | ">" => Some(Relation::GreaterOrEqual),
                    ">>" => Some(Relation::Greater),
                    _ => None,
                };
                let version = c[op_len..].trim();
                match relation {
                    Some(r) if !version.is_empty() => (Some(r), Some(version.to_string())),
                    _ => (None, None),
                }
            }
            None => (None, None),
        };
        deps.push(Dependency {
            name: name.to_string(),
            relation,
            version,
        });
    }
    deps
}

/// What apt sees on a node: dpkg's database, the lists, and apt's upgrades.
#[derive(Clone, Debug)]
pub struct AptSnapshot {
    /// dpkg's database.
    pub dpkg: DpkgDatabase,
    /// Suites and Packages indexes.
    pub lists: AptLists,
    /// Versions offered for installed packages.
    pub available: AvailableByPackage,
    /// The host's version policy (pins, target release, phasing).
    pub policy: AptPolicy,
    /// What `apt-get dist-upgrade` would upgrade (held packages flagged, not removed).
    pub upgrades: Vec<AptUpgrade>,
    /// Downgrades the host's pins (priority ≥ 1000) ask for; never installed by nodepatch.
    pub downgrades: Vec<AptUpgrade>,
    /// Upgrades apt's phasing keeps back on this machine; not offered, so never Missing.
    pub phased: Vec<AptUpgrade>,
}

impl AptSnapshot {
    /// Read dpkg's database, apt's lists, configuration and preferences from the host root
    /// (no command runs).
    pub fn read(root: &HostRoot) -> Result<AptSnapshot, AptError> {
        AptSnapshot::read_with_lists(root, lists::LISTS_DIR)
    }

    /// [`AptSnapshot::read`] with the lists of `lists_dir` in place of apt's own (the private
    /// lists of alternative patch sources); the host's configuration, preferences and phasing
    /// apply as always.
    pub fn read_with_lists(root: &HostRoot, lists_dir: &str) -> Result<AptSnapshot, AptError> {
        let dpkg = dpkg::load_database(root)?;
        let lists = lists::discover_lists_in(root, lists_dir, &dpkg.architectures())?;
        let available = lists::collect_available_in(root, lists_dir, &lists, &dpkg)?;
        let config = aptconf::AptConfig::read(root).map_err(ListsError::from)?;
        let prefs = Preferences::read(root, &config).map_err(ListsError::from)?;
        let apt_version = dpkg
            .installed()
            .find(|p| p.name == "apt")
            .map(|p| p.version.as_str());
        let phasing = Phasing::read(root, &config, apt_version).map_err(ListsError::from)?;
        let policy =
            AptPolicy::new(&lists, &dpkg.native_arch, prefs, phasing).map_err(ListsError::from)?;
        let plan = upgrades::compute_upgrades_in(&dpkg, &lists, lists_dir, &available, &policy)?;
        Ok(AptSnapshot {
            dpkg,
            lists,
            available,
            policy,
            upgrades: plan.upgrades,
            downgrades: plan.downgrades,
            phased: plan.phased,
        })
    }

    /// The upgrades nodepatch may install: apt's candidates minus held packages (apt keeps those
    /// back, and so do we).
    pub fn installable_upgrades(&self) -> impl Iterator<Item = &AptUpgrade> {
        self.upgrades.iter().filter(|u| !u.held)
    }

    /// Held packages for which apt has a newer candidate.
    pub fn held_upgrades(&self) -> impl Iterator<Item = &AptUpgrade> {
        self.upgrades.iter().filter(|u| u.held)
    }

    /// The packages the evaluation sees as installed, with the version it counts: installed
    /// packages at their version, and packages a failed or interrupted dpkg run left half-done
    /// at the last version whose configuration completed (`Config-Version`), so a failed
    /// upgrade still shows as not done.
    pub fn evaluated_packages(&self) -> Vec<(&DpkgPackage, &str)> {
        self.dpkg
            .packages
            .iter()
            .filter_map(|p| {
                if p.state.is_installed() {
                    Some((p, p.version.as_str()))
                } else if p.state.is_broken() {
                    p.config_version.as_deref().map(|v| (p, v))
                } else {
                    None
                }
            })
            .collect()
    }

    /// The installed packages in the evaluation's model.
    pub fn installed_packages(&self) -> Vec<InstalledPackage> {
        self.evaluated_packages()
            .into_iter()
            .map(|(p, version)| InstalledPackage {
                name: p.name.clone(),
                arch: Some(p.arch.clone()),
                version: version.to_string(),
                source: Some(p.source_name.clone()),
            })
            .collect()
    }

    /// Candidates in the evaluation's model. For each package: every version apt could install
    /// from the installed one up to apt's candidate (so a security-only baseline can install the
    /// security version when a newer non-security one exists), plus the installed version itself
    /// when a suite offers it (so an applied update counts as Installed). Held packages are
    /// evaluated like the others (an approved update of one is Missing: the node is not patched),
    /// but never installed. Each version's first sighting is recorded in `first_seen`.
    pub fn candidates(&self, first_seen: &mut FirstSeen, now: Timestamp) -> Vec<Candidate> {
        let native = self.dpkg.native_arch.as_str();
        let upgrades: HashMap<(&str, &str), &AptUpgrade> = self
            .upgrades
            .iter()
            .map(|u| ((u.name.as_str(), u.installed_arch.as_str()), u))
            .collect();
        let mut out = Vec::new();
        for (package, installed_version) in self.evaluated_packages() {
            let key = package.key(native);
            let Some(versions) = self.available.get(&key) else {
                continue;
            };
            let ceiling = if package.state.is_installed() {
                upgrades
                    .get(&(package.name.as_str(), package.arch.as_str()))
                    .map(|u| u.candidate.version.as_str())
            } else {
                // Half-done packages: apt's candidate from the last configured version.
                upgrades::candidate_version(installed_version, versions, &self.lists, &self.policy)
                    .map(|v| v.version.as_str())
            };
            for version in versions {
                let vs_installed = compare_deb(&version.version, installed_version);
                // A version the host's pins forbid (priority < 0) is never offered, not even
                // below the candidate.
                let forbidden = || {
                    self.policy.priority(
                        &self.lists,
                        &version.name,
                        &version.version,
                        &version.indexes,
                        version.arch == "all" || version.arch == native,
                        Some(installed_version),
                    ) < 0
                };
                let offered = vs_installed.is_eq()
                    || (vs_installed.is_gt()
                        && ceiling.is_some_and(|c| compare_deb(&version.version, c).is_le())
                        && !forbidden());
                if offered {
                    out.push(self.candidate_of(version, first_seen, now));
                }
            }
        }
        out.sort_by(|a, b| (&a.name, &a.arch, &a.version).cmp(&(&b.name, &b.arch, &b.version)));
        out
    }

    fn candidate_of(
        &self,
        version: &AvailableVersion,
        first_seen: &mut FirstSeen,
        now: Timestamp,
    ) -> Candidate {
        let releases: Vec<&ReleaseInfo> = version
            .releases
            .iter()
            .filter_map(|r| r.and_then(|i| self.lists.releases.get(i)))
            .collect();
        let mut repositories: Vec<String> = releases
            .iter()
            .map(|r| r.repository().to_string())
            .filter(|r| !r.is_empty())
            .collect();
        repositories.sort();
        repositories.dedup();
        let seen = first_seen.observe(
            version_key(&version.name, &version.arch, &version.version),
            now,
        );
        Candidate {
            name: version.name.clone(),
            arch: Some(version.arch.clone()),
            version: version.version.clone(),
            repositories,
            classification: Some(classify(&releases).to_string()),
            priority: version.priority.clone(),
            section: version.section.clone(),
            first_seen: Some(seen),
            dependencies: Some(parse_dependencies(&version.depends)),
            ..Candidate::default()
        }
    }
}

/// The apt backend's install preparation: repair an interrupted dpkg (`dpkg --audit`, then
/// `dpkg --configure -a`), since it blocks every apt run.
pub fn prepare_install(
    agent: &NodeAgent,
    commands: &AptCommands,
) -> Result<Option<String>, BackendError> {
    match install::repair_interrupted_dpkg(&agent.root, agent.executor.as_ref(), commands) {
        Ok(outcome) => {
            if let install::RepairOutcome::Failed { .. } = outcome {
                tracing::warn!("dpkg repair failed; installing anyway");
            }
            Ok(outcome.summary())
        }
        Err(e) => Err(BackendError::DpkgCheck(e)),
    }
}

/// The apt backend's read: dpkg's database and the lists in-process (apt's own, or the private
/// lists of alternative patch sources, which must have been updated for them), held packages,
/// the interrupted-dpkg note, reboot need.
pub fn read_node(
    agent: &NodeAgent,
    repositories: &Repositories,
    detected: &DetectedOs,
    first_seen: &mut FirstSeen,
    now: Timestamp,
) -> Result<NodePackages, BackendError> {
    let snapshot = match repositories {
        Repositories::Node => AptSnapshot::read(&agent.root)?,
        Repositories::Apt(sources) => {
            sources.check_lists(&agent.root)?;
            AptSnapshot::read_with_lists(&agent.root, APT_LISTS_DIR)?
        }
        Repositories::Dnf(_) => return Err(dnf_sources_on_apt(repositories)),
    };
    let mut notes = Vec::new();
    if !snapshot.lists.skipped_names.is_empty() {
        notes.push(format!(
            "skipped lists files whose names are not UTF-8: {}",
            snapshot.lists.skipped_names.join(", ")
        ));
    }
    for release in &snapshot.lists.releases {
        if release.claims_security() && !release.is_security() {
            notes.push(format!(
                "{} from {} calls itself the {} security archive, but that site is not the distribution's: its updates are not classified Security",
                release.repository(),
                release.site,
                release.origin
            ));
        }
    }
    if snapshot.dpkg.needs_repair() {
        let broken: Vec<String> = snapshot
            .dpkg
            .broken()
            .map(|p| format!("{} ({})", p.name, p.state.as_str()))
            .collect();
        notes.push(format!(
            "dpkg was interrupted ({} pending journal records; half-done: {}); the next install repairs it",
            snapshot.dpkg.pending_updates,
            if broken.is_empty() { "none".to_string() } else { broken.join(", ") }
        ));
    }
    for d in &snapshot.downgrades {
        notes.push(format!(
            "apt's pins would downgrade {} {} to {}; nodepatch installs no downgrades",
            d.name, d.installed_version, d.candidate.version
        ));
    }
    if !snapshot.phased.is_empty() {
        let phased: Vec<String> = snapshot
            .phased
            .iter()
            .map(|u| format!("{} {}", u.name, u.candidate.version))
            .collect();
        notes.push(format!(
            "phased updates apt keeps back on this machine (not offered): {}",
            phased.join(", ")
        ));
    }
    let candidates = snapshot.candidates(first_seen, now);
    let held = snapshot
        .held_upgrades()
        .map(|u| (u.name.clone(), u.candidate.version.clone()))
        .collect();
    let reboot = reboot::reboot_state(&agent.root, &snapshot.dpkg, &detected.info.kernel);
    Ok(NodePackages {
        installed: snapshot.installed_packages(),
        candidates,
        reboot,
        held,
        notes,
        native_arch: Some(snapshot.dpkg.native_arch.clone()),
    })
}

/// The apt backend's install: `apt-get install name=version` with apt's retry rules.
pub fn install_targets(
    agent: &NodeAgent,
    commands: &AptCommands,
    repositories: &Repositories,
    before: &NodePackages,
    request: &InstallRequest<'_>,
) -> Result<InstallReport, BackendError> {
    let options = match repositories {
        Repositories::Node => Vec::new(),
        Repositories::Apt(sources) => {
            sources.prepare(&agent.root)?;
            sources.apt_options()
        }
        Repositories::Dnf(_) => return Err(dnf_sources_on_apt(repositories)),
    };
    let native_arch = before.native_arch.clone().unwrap_or_default();
    let apt_targets: Vec<install::InstallTarget> = request
        .targets
        .iter()
        .map(|t| install::InstallTarget {
            name: t.name.clone(),
            arch: t.arch.clone().unwrap_or_else(|| native_arch.clone()),
            version: t.version.clone(),
        })
        .collect();
    let report = install::install_packages(
        &agent.root,
        agent.executor.as_ref(),
        commands,
        &apt_targets,
        request.blocked_patterns,
        &options,
    )?;
    let outcomes = report
        .outcomes
        .iter()
        .zip(request.targets)
        .map(|(o, t)| TargetOutcome {
            target: t.clone(),
            installed: o.installed,
            skipped: false,
            reason: o.reason.clone(),
        })
        .collect();
    Ok(InstallReport {
        outcomes,
        runs: report.runs,
        reboot_required: false,
    })
}

/// dnf sources given to apt ([`crate::agent::backend::sources::repositories_for`] never builds
/// that).
fn dnf_sources_on_apt(repositories: &Repositories) -> BackendError {
    BackendError::Sources(crate::agent::backend::sources::SourcesError::Unsupported {
        names: repositories.source_names().to_vec(),
        product: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_keep_single_alternatives_and_strip_qualifiers() {
        let deps = parse_dependencies(
            "libc6 (>= 2.34), np-lib:any (>> 2.0-1), a | b, perl:any, c [amd64], d (= 1:2.0) <!nocheck>",
        );
        let names: Vec<_> = deps.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, vec!["libc6", "np-lib", "perl", "c", "d"]);
        assert_eq!(deps[0].relation, Some(Relation::GreaterOrEqual));
        assert_eq!(deps[0].version.as_deref(), Some("2.34"));
        assert_eq!(deps[1].relation, Some(Relation::Greater));
        assert_eq!(deps[2].relation, None);
        assert_eq!(deps[4].version.as_deref(), Some("1:2.0"));
        assert!(parse_dependencies("").is_empty());
    }

    #[test]
    fn classification_prefers_security_then_regular_suites() {
        let sec = ReleaseInfo {
            origin: "Debian".into(),
            label: "Debian-Security".into(),
            codename: "bookworm-security".into(),
            suite: "oldstable-security".into(),
            ..Default::default()
        };
        let upd = ReleaseInfo {
            codename: "bookworm-updates".into(),
            suite: "oldstable-updates".into(),
            ..Default::default()
        };
        let bpo = ReleaseInfo {
            codename: "bookworm-backports".into(),
            suite: "oldstable-backports".into(),
            ..Default::default()
        };
        assert_eq!(classify(&[&upd, &sec]), "Security");
        assert_eq!(classify(&[&upd, &bpo]), "Bugfix");
        assert_eq!(classify(&[&bpo]), "Enhancement");
        assert_eq!(classify(&[]), "Bugfix");
    }
}
