//! The zypper backend (SLES, openSUSE): the host's own `rpm` and `zypper`.
//!
//! - Inventory: `rpm -qa` (shared with dnf, [`super::rpm`]).
//! - Patches: `zypper --non-interactive --no-refresh --xmlout list-patches --all` gives each
//!   patch's status (needed, applied, not-needed), category, severity, `restart` (reboot
//!   suggested), `interactive`, issue date, CVEs and Bugzilla ids. `--category` does not filter
//!   the XML output, so nothing is filtered there: the baseline does it.
//! - Packages of a patch: the XML names none, so the repository's cached `updateinfo.xml(.gz)`
//!   under `/var/cache/zypp/raw/<alias>/repodata/` supplies them (the same parser as dnf's).
//!   Each package of a patch whose name and arch are installed is one candidate carrying the
//!   patch's metadata (`advisory` = patch name). Package updates that no patch carries are not
//!   candidates (the SUSE baselines approve patches).
//! - Install: `zypper --non-interactive --no-refresh install --auto-agree-with-licenses --
//!   patch:<id>… name=evr…`: the approved package versions exactly, and the patch itself when
//!   all of its installed packages are approved (so zypper records it applied). Under
//!   `rebootOption: NoReboot`, packages of interactive or reboot-suggesting patches are left out
//!   (zypper's `--with-interactive` gate, which only exists on `zypper patch`). Exit codes: 0 and
//!   100/101 success, 102 success and a reboot is needed, 103 zypper updated itself and is run
//!   again once, 7 another zypper holds the lock (the install fails with `ZypperLocked`); any
//!   other code is read back from rpm like the others.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use jiff::Timestamp;
use quick_xml::events::Event;

use super::command::{CommandStep, OutputDialect, command_failed, reason_for, rejected_among};
use super::contract::{
    BackendError, InstallReport, InstallRequest, NodeAgent, NodePackages, TargetOutcome,
};
use super::rpm::updateinfo::{self, Advisory, AdvisoryPackage, attribute};
use super::rpm::{
    AvailablePackage, RepoAdvisories, RpmPackage, build_candidates, installed_packages,
    is_satisfied, is_valid_arch, is_valid_rpm_name, read_inventory,
};
use crate::agent::host::HostRoot;
use crate::agent::host::command::{CommandOutput, HostCommand};
use crate::agent::os::DetectedOs;
use crate::agent::state::FirstSeen;
use crate::api::RebootOption;
use crate::baseline::version::rpm::{Evr, compare_evr};

/// Where zypper keeps the raw metadata of each repository.
pub const RAW_CACHE_DIR: &str = "/var/cache/zypp/raw";
/// zypper's exit code when another process holds the lock.
pub const EXIT_ZYPP_LOCKED: i32 = 7;
/// Success, updates needed.
pub const EXIT_INF_UPDATE_NEEDED: i32 = 100;
/// Success, security updates needed.
pub const EXIT_INF_SEC_UPDATE_NEEDED: i32 = 101;
/// Success, a reboot is needed.
pub const EXIT_INF_REBOOT_NEEDED: i32 = 102;
/// Success, zypper updated itself; run again for the rest.
pub const EXIT_INF_RESTART_NEEDED: i32 = 103;

/// One patch as `list-patches` reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZypperPatch {
    /// Patch name (`SUSE-SLE-Module-Basesystem-15-SP6-2024-1234`).
    pub name: String,
    /// Edition.
    pub edition: String,
    /// `needed`, `applied`, `not-needed`, …
    pub status: String,
    /// `security`, `recommended`, `optional`, `feature`, `document`, `yast`.
    pub category: String,
    /// `critical`, `important`, `moderate`, `low`, or empty.
    pub severity: String,
    /// Installing it needs a reboot.
    pub restart: bool,
    /// zypper treats it as interactive (reboot, message or license).
    pub interactive: bool,
    /// Issue date.
    pub issue_date: Option<Timestamp>,
    /// CVE ids.
    pub cves: Vec<String>,
    /// Bugzilla ids.
    pub bugzillas: Vec<String>,
    /// Alias of the repository offering it.
    pub repo: String,
}

/// Parse `zypper --xmlout list-patches` output. `<message type="error">` lines make it an
/// error.
pub fn parse_list_patches(xml: &str) -> Result<Vec<ZypperPatch>, BackendError> {
    let malformed = BackendError::ZypperOutputMalformed;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut patches = Vec::new();
    let mut current: Option<ZypperPatch> = None;
    let mut in_error = false;
    let mut errors = Vec::new();
    // The raw text of the current error message, unescaped at its end tag.
    let mut message = String::new();
    let mut saw_status = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| malformed(format!("zypper --xmlout list-patches: {e}")))?;
        match event {
            Event::Eof => break,
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                match e.local_name().as_ref() {
                    // Complete only at its end tag: a truncated document is an error.
                    "update-status" => saw_status = empty,
                    "message" => {
                        in_error = !empty && attribute(e, "type").as_deref() == Some("error")
                    }
                    "update" if attribute(e, "kind").as_deref() == Some("patch") => {
                        let flag = |n: &str| attribute(e, n).as_deref() == Some("true");
                        let patch = ZypperPatch {
                            name: attribute(e, "name").unwrap_or_default(),
                            edition: attribute(e, "edition").unwrap_or_default(),
                            status: attribute(e, "status").unwrap_or_default(),
                            category: attribute(e, "category").unwrap_or_default(),
                            severity: attribute(e, "severity").unwrap_or_default(),
                            restart: flag("restart"),
                            interactive: flag("interactive"),
                            ..ZypperPatch::default()
                        };
                        if empty {
                            patches.push(patch);
                        } else {
                            current = Some(patch);
                        }
                    }
                    "source" => {
                        if let Some(p) = current.as_mut() {
                            p.repo = attribute(e, "alias").unwrap_or_default();
                        }
                    }
                    "issue-date" => {
                        if let Some(p) = current.as_mut() {
                            p.issue_date =
                                attribute(e, "time_t").and_then(|t| updateinfo::parse_date(&t));
                        }
                    }
                    "issue" => {
                        if let Some(p) = current.as_mut() {
                            let id = attribute(e, "id").unwrap_or_default();
                            let list = match attribute(e, "type").as_deref() {
                                Some("cve") => Some(&mut p.cves),
                                Some("bugzilla") => Some(&mut p.bugzillas),
                                _ => None,
                            };
                            if let Some(list) = list
                                && !id.is_empty()
                                && !list.contains(&id)
                            {
                                list.push(id);
                            }
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(_) | Event::GeneralRef(_) if in_error => {
                updateinfo::push_raw_text(&mut message, &event);
            }
            Event::End(ref e) => match e.local_name().as_ref() {
                "update" => {
                    if let Some(p) = current.take() {
                        patches.push(p);
                    }
                }
                "message" => {
                    let raw = std::mem::take(&mut message);
                    let raw = raw.trim();
                    if in_error && !raw.is_empty() {
                        errors.push(
                            quick_xml::escape::unescape(raw)
                                .map(|s| s.into_owned())
                                .unwrap_or_default(),
                        );
                    }
                    in_error = false;
                }
                "update-status" => saw_status = true,
                _ => {}
            },
            _ => {}
        }
    }
    if !errors.is_empty() {
        return Err(BackendError::ZypperReportedErrors(errors));
    }
    if !saw_status {
        return Err(malformed(
            "zypper --xmlout list-patches printed no complete <update-status>".to_string(),
        ));
    }
    Ok(patches)
}

/// `zypper --non-interactive refresh`.
pub fn refresh_command() -> HostCommand {
    HostCommand::new(["zypper", "--non-interactive", "refresh"]).timeout(
        crate::rollout::budget::std_duration(crate::rollout::budget::REFRESH_TIMEOUT),
    )
}

/// `zypper --non-interactive --no-refresh --xmlout list-patches --all`.
pub fn list_patches_command() -> HostCommand {
    HostCommand::new([
        "zypper",
        "--non-interactive",
        "--no-refresh",
        "--xmlout",
        "list-patches",
        "--all",
    ])
    .timeout(Duration::from_secs(600))
}

/// `zypper --non-interactive --no-refresh install --dry-run --auto-agree-with-licenses --
/// arg…`: the solver's answer without changing anything (under Block, what would be installed).
pub fn dry_run_command(arguments: &[String]) -> HostCommand {
    let mut argv: Vec<String> = [
        "zypper",
        "--non-interactive",
        "--no-refresh",
        "install",
        "--dry-run",
        "--auto-agree-with-licenses",
        "--",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    argv.extend(arguments.iter().cloned());
    HostCommand::new(argv).timeout(Duration::from_secs(600))
}

/// The packages zypper's summary says it would install, upgrade, downgrade or reinstall
/// (`The following 2 packages are going to be upgraded:` and the indented names after it;
/// patches, patterns and products are not packages).
pub fn summary_packages(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_list = false;
    for line in text.lines() {
        if line.starts_with("The following ") {
            in_list = line.contains("going to be")
                && !line.contains("REMOVED")
                && !["patch", "pattern", "product", "source"]
                    .iter()
                    .any(|kind| line.contains(&format!(" {kind}")));
            continue;
        }
        if in_list && line.starts_with(' ') {
            names.extend(line.split_whitespace().map(str::to_string));
        } else {
            in_list = false;
        }
    }
    names
}

/// Under `rejectedPatchesAction: Block`: the rejected packages a `zypper install` of
/// `arguments` would bring in (its dry run), or an error when zypper cannot say.
fn rejected_in_dry_run(
    agent: &NodeAgent,
    arguments: &[String],
    patterns: &[String],
) -> Result<Vec<String>, BackendError> {
    let command = dry_run_command(arguments);
    let output = agent.executor.run(&command)?;
    match output.exit_code {
        Some(EXIT_ZYPP_LOCKED) => Err(locked(&command, &output)),
        // The solver had no answer for these: the real run will say why.
        _ => Ok(rejected_among(&summary_packages(&output.stdout), patterns)),
    }
}

/// `zypper --non-interactive --no-refresh install --auto-agree-with-licenses -- arg…`.
pub fn install_command(arguments: &[String]) -> HostCommand {
    let mut argv: Vec<String> = [
        "zypper",
        "--non-interactive",
        "--no-refresh",
        "install",
        "--auto-agree-with-licenses",
        "--",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    argv.extend(arguments.iter().cloned());
    HostCommand::new(argv)
        .timeout(crate::rollout::budget::std_duration(
            crate::rollout::budget::INSTALL_TIMEOUT,
        ))
        .as_transaction()
}

fn locked(command: &HostCommand, output: &CommandOutput) -> BackendError {
    BackendError::ZypperLocked {
        command: command.display(),
        tail: output.tail(2),
    }
}

/// Refresh the repositories.
pub fn refresh(agent: &NodeAgent) -> Result<(), BackendError> {
    let command = refresh_command();
    let output = agent.executor.run(&command)?;
    match output.exit_code {
        Some(0) => Ok(()),
        Some(EXIT_ZYPP_LOCKED) => Err(locked(&command, &output)),
        _ => Err(command_failed(&command, &output, CommandStep::ZypperRefresh).into()),
    }
}

/// Run `list-patches` and parse it.
pub fn list_patches(agent: &NodeAgent) -> Result<Vec<ZypperPatch>, BackendError> {
    let command = list_patches_command();
    let output = agent.executor.run(&command)?;
    match output.exit_code {
        Some(0 | EXIT_INF_UPDATE_NEEDED | EXIT_INF_SEC_UPDATE_NEEDED | EXIT_INF_REBOOT_NEEDED) => {
            parse_list_patches(&output.stdout)
        }
        Some(EXIT_ZYPP_LOCKED) => Err(locked(&command, &output)),
        _ => Err(command_failed(&command, &output, CommandStep::ZypperListPatches).into()),
    }
}

/// A repository alias as a path component (zypper's aliases are file names).
fn safe_alias(alias: &str) -> bool {
    !alias.is_empty() && alias != "." && alias != ".." && !alias.contains('/')
}

/// The cached advisories of the repositories named by `patches`.
pub fn read_raw_updateinfo(
    root: &HostRoot,
    patches: &[ZypperPatch],
) -> Result<HashMap<String, Vec<Advisory>>, BackendError> {
    let aliases: BTreeSet<&str> = patches
        .iter()
        .map(|p| p.repo.as_str())
        .filter(|a| safe_alias(a))
        .collect();
    let mut out = HashMap::new();
    for alias in aliases {
        let repodata = format!("{RAW_CACHE_DIR}/{alias}/repodata");
        let files = root.list_dir(&repodata)?;
        let Some(file) = files.iter().find(|f| f.contains("updateinfo.xml")) else {
            continue;
        };
        let path = format!("{repodata}/{file}");
        let bytes = root.read(&path)?;
        let xml = updateinfo::decompress(&path, &bytes)?;
        let advisories = updateinfo::parse(&path, &xml)?;
        out.insert(alias.to_string(), advisories);
    }
    Ok(out)
}

/// The packages of each patch, from the cached updateinfo (empty when not cached).
fn packages_of<'a>(
    patch: &ZypperPatch,
    raw: &'a HashMap<String, Vec<Advisory>>,
) -> &'a [AdvisoryPackage] {
    raw.get(&patch.repo)
        .and_then(|list| list.iter().find(|a| a.id == patch.name))
        .map(|a| a.packages.as_slice())
        .unwrap_or(&[])
}

/// The patches as advisories (zypper's metadata, updateinfo's package lists) and the package
/// versions needed patches offer.
fn advisories_and_upgrades(
    installed: &[RpmPackage],
    patches: &[ZypperPatch],
    raw: &HashMap<String, Vec<Advisory>>,
) -> (Vec<RepoAdvisories>, Vec<AvailablePackage>) {
    let mut by_repo: HashMap<&str, Vec<Advisory>> = HashMap::new();
    let mut available = Vec::new();
    for patch in patches {
        let mut packages = packages_of(patch, raw).to_vec();
        for p in &mut packages {
            p.reboot_suggested = p.reboot_suggested || patch.restart;
        }
        if patch.status == "needed" {
            for p in &packages {
                let evr = p.evr();
                let newer = installed
                    .iter()
                    .any(|i| i.name == p.name && compare_evr(&evr, &i.evr()).is_gt());
                if newer {
                    available.push(AvailablePackage {
                        name: p.name.clone(),
                        evr,
                        arch: p.arch.clone(),
                        repo: patch.repo.clone(),
                    });
                }
            }
        }
        by_repo
            .entry(patch.repo.as_str())
            .or_default()
            .push(Advisory {
                id: patch.name.clone(),
                kind: patch.category.clone(),
                severity: Some(patch.severity.clone()).filter(|s| !s.is_empty()),
                issued: patch.issue_date,
                updated: None,
                cves: patch.cves.clone(),
                bugzillas: patch.bugzillas.clone(),
                title: String::new(),
                packages,
            });
    }
    let advisories = by_repo
        .into_iter()
        .map(|(repo, advisories)| RepoAdvisories {
            repo: repo.to_string(),
            advisories,
        })
        .collect();
    (advisories, available)
}

/// The zypper backend's read.
pub fn read_node(
    agent: &NodeAgent,
    _detected: &DetectedOs,
    first_seen: &mut FirstSeen,
    now: Timestamp,
) -> Result<NodePackages, BackendError> {
    let installed = read_inventory(agent.executor.as_ref())?;
    let patches = list_patches(agent)?;
    let raw = read_raw_updateinfo(&agent.root, &patches)?;
    let mut notes = Vec::new();
    let unknown: Vec<&str> = patches
        .iter()
        .filter(|p| p.status == "needed" && packages_of(p, &raw).is_empty())
        .map(|p| p.name.as_str())
        .collect();
    if !unknown.is_empty() {
        notes.push(format!(
            "needed patches without cached package lists (refresh to fetch updateinfo): {}",
            unknown.join(", ")
        ));
    }
    let (advisories, available) = advisories_and_upgrades(&installed, &patches, &raw);
    let candidates = build_candidates(&installed, &available, &advisories, first_seen, now);
    let reboot = super::rpm::reboot::reboot_state(
        &installed,
        &candidates,
        super::rpm::reboot::boot_time(&agent.root),
    );
    Ok(NodePackages {
        installed: installed_packages(&installed),
        candidates,
        reboot,
        held: Vec::new(),
        notes,
        native_arch: None,
    })
}

/// A patch name as zypper accepts it on a command line.
pub fn is_valid_patch_name(name: &str) -> bool {
    name.as_bytes()
        .first()
        .is_some_and(u8::is_ascii_alphanumeric)
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-' | b':'))
}

/// Install the approved package versions (and their patches) with the host's zypper.
pub fn install(
    agent: &NodeAgent,
    request: &InstallRequest<'_>,
) -> Result<InstallReport, BackendError> {
    let mut report = InstallReport::default();
    if request.targets.is_empty() {
        return Ok(report);
    }
    let mut arguments: Vec<String> = Vec::new();
    for t in request.targets {
        let invalid = |reason: &str| BackendError::InvalidInstallTarget {
            name: t.name.clone(),
            version: t.version.clone(),
            reason: Some(reason.to_string()),
        };
        if !is_valid_rpm_name(&t.name) {
            return Err(invalid("not an rpm package name"));
        }
        Evr::parse(&t.version).map_err(|e| invalid(&e.to_string()))?;
        match t.arch.as_deref() {
            Some(arch) if !is_valid_arch(arch) => return Err(invalid("invalid architecture")),
            Some(arch) if arch != "noarch" => {
                arguments.push(format!("{}.{arch}={}", t.name, t.version))
            }
            _ => arguments.push(format!("{}={}", t.name, t.version)),
        }
    }
    let installed = read_inventory(agent.executor.as_ref())?;
    let patches = list_patches(agent)?;
    let raw = read_raw_updateinfo(&agent.root, &patches)?;
    let mut skipped: HashMap<usize, String> = HashMap::new();
    let mut patch_arguments = Vec::new();
    for patch in patches.iter().filter(|p| p.status == "needed") {
        let members: Vec<usize> = request
            .targets
            .iter()
            .enumerate()
            .filter(|(_, t)| t.advisories.contains(&patch.name))
            .map(|(i, _)| i)
            .collect();
        if members.is_empty() {
            continue;
        }
        if (patch.interactive || patch.restart) && request.reboot_option == RebootOption::NoReboot {
            for i in members {
                skipped.insert(
                    i,
                    format!(
                        "patch {} needs a reboot (interactive); not installed under rebootOption NoReboot",
                        patch.name
                    ),
                );
            }
            continue;
        }
        // The patch itself only when all of its installed packages are approved, so zypper
        // cannot pull in a version the baseline did not approve.
        let all_approved = packages_of(patch, &raw).iter().all(|p| {
            !installed.iter().any(|i| i.name == p.name)
                || request
                    .targets
                    .iter()
                    .any(|t| t.name == p.name && t.version == p.evr())
        });
        if all_approved && is_valid_patch_name(&patch.name) {
            patch_arguments.push(format!("patch:{}", patch.name));
        }
    }
    let patch_of = |i: usize| -> Vec<String> {
        request.targets[i]
            .advisories
            .iter()
            .map(|a| format!("patch:{a}"))
            .filter(|a| patch_arguments.contains(a))
            .collect()
    };
    let mut pending: Vec<usize> = (0..request.targets.len())
        .filter(|i| !skipped.contains_key(i))
        .collect();
    let mut reasons: HashMap<usize, String> = HashMap::new();
    // rejectedPatchesAction Block: zypper has no per-command exclude, so the solver's dry run
    // says what a transaction would bring in; a target whose own dry run pulls in a rejected
    // package is Failed and left out, and the rest run only when their dry run is clean.
    if !request.blocked_patterns.is_empty() && !pending.is_empty() {
        let batch_of = |indexes: &[usize]| {
            let mut batch: Vec<String> = patch_arguments.clone();
            batch.extend(indexes.iter().map(|&i| arguments[i].clone()));
            batch
        };
        if !rejected_in_dry_run(agent, &batch_of(&pending), request.blocked_patterns)?.is_empty() {
            for i in pending.clone() {
                let mut single = patch_of(i);
                single.push(arguments[i].clone());
                let rejected = rejected_in_dry_run(agent, &single, request.blocked_patterns)?;
                if !rejected.is_empty() {
                    reasons.insert(
                        i,
                        format!(
                            "installing it would also install rejected {} (rejectedPatchesAction Block)",
                            rejected.join(", ")
                        ),
                    );
                    pending.retain(|p| *p != i);
                }
            }
            let left = rejected_in_dry_run(agent, &batch_of(&pending), request.blocked_patterns)?;
            if !left.is_empty() {
                for i in pending.drain(..) {
                    reasons.insert(
                        i,
                        format!(
                            "installed together the approved packages would install rejected {} (rejectedPatchesAction Block)",
                            left.join(", ")
                        ),
                    );
                }
            }
        }
    }
    if !pending.is_empty() {
        let deadline = std::time::Instant::now()
            + crate::rollout::budget::std_duration(crate::rollout::budget::INSTALL_TIMEOUT);
        let mut batch: Vec<String> = patch_arguments.clone();
        batch.extend(pending.iter().map(|&i| arguments[i].clone()));
        let output = run_install(agent, &batch, &mut report, deadline)?;
        let installed = read_inventory(agent.executor.as_ref())?;
        let not_done: Vec<usize> = pending
            .iter()
            .copied()
            .filter(|&i| {
                let t = &request.targets[i];
                !is_satisfied(&installed, &t.name, t.arch.as_deref(), &t.version)
            })
            .collect();
        let succeeded = matches!(
            output.exit_code,
            Some(0 | EXIT_INF_UPDATE_NEEDED | EXIT_INF_SEC_UPDATE_NEEDED | EXIT_INF_REBOOT_NEEDED)
        );
        if !succeeded && pending.len() > 1 {
            // The solver refuses the whole transaction for one unsatisfiable package: install
            // the rest one at a time (with its patch) so one broken package does not keep the
            // others out.
            for i in not_done {
                let mut single = patch_of(i);
                single.push(arguments[i].clone());
                let output = run_install(agent, &single, &mut report, deadline)?;
                reasons.insert(
                    i,
                    reason_for(&request.targets[i].name, &output, OutputDialect::Rpm),
                );
            }
        } else {
            for i in not_done {
                reasons.insert(
                    i,
                    reason_for(&request.targets[i].name, &output, OutputDialect::Rpm),
                );
            }
        }
    }
    let after = read_inventory(agent.executor.as_ref())?;
    // The repair check (duplicate rpmdb entries, `rpm -V`) of what the transaction touched.
    let names: Vec<&str> = request
        .targets
        .iter()
        .filter(|t| is_satisfied(&after, &t.name, t.arch.as_deref(), &t.version))
        .map(|t| t.name.as_str())
        .collect();
    let problems = super::rpm::transaction_problems(
        agent.executor.as_ref(),
        &after,
        &names,
        &mut report.runs,
    )?;
    report.outcomes = request
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let problem = problems.get(&t.name);
            let installed =
                is_satisfied(&after, &t.name, t.arch.as_deref(), &t.version) && problem.is_none();
            let reason = (!installed).then(|| {
                problem
                    .or_else(|| skipped.get(&i))
                    .or_else(|| reasons.get(&i))
                    .cloned()
                    .unwrap_or_else(|| "not installed".to_string())
            });
            TargetOutcome {
                target: t.clone(),
                installed,
                skipped: !installed && skipped.contains_key(&i),
                reason,
            }
        })
        .collect();
    Ok(report)
}

/// One `zypper install` (run again once after exit 103, when zypper updated itself first).
fn run_install(
    agent: &NodeAgent,
    arguments: &[String],
    report: &mut InstallReport,
    deadline: std::time::Instant,
) -> Result<CommandOutput, BackendError> {
    // The batch and its one-at-a-time retries share INSTALL_TIMEOUT (each gets what is left).
    let left = deadline
        .saturating_duration_since(std::time::Instant::now())
        .max(Duration::from_secs(1));
    let command = install_command(arguments).timeout(left);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let output = agent.executor.run(&command)?;
        report.runs.push(format!(
            "zypper install {} → {}",
            arguments.join(" "),
            output.describe_status()
        ));
        match output.exit_code {
            Some(EXIT_ZYPP_LOCKED) => return Err(locked(&command, &output)),
            Some(EXIT_INF_REBOOT_NEEDED) => report.reboot_required = true,
            Some(EXIT_INF_RESTART_NEEDED) if attempts < 2 => continue,
            _ => {}
        }
        return Ok(output);
    }
}

#[cfg(test)]
mod tests {
    fn far() -> std::time::Instant {
        std::time::Instant::now() + std::time::Duration::from_secs(3600)
    }

    use super::*;

    /// Recorded from `zypper --root <fixture> --non-interactive --xmlout list-patches --all`
    /// (zypper 1.14.42).
    const LIST_PATCHES: &str = r#"<?xml version='1.0'?>
<stream>
<message type="info">Loading repository data...</message>
<message type="info">Reading installed packages...</message>
<update-status version="0.6">
<update-list>
<update kind="patch" name="NPSA-2024:0001" edition="2" arch="noarch" status="needed" category="security" severity="critical" pkgmanager="false" restart="true" interactive="true"><summary>Critical: np-sec security update</summary><description>fix</description><license/><source url="file:/tmp/np-exp/repo" alias="np"/><issue-date time_t="1705017600" text="2024-01-12T00:00:00Z"/><issue-list><issue type="cve" id="CVE-2024-0001"><title>CVE-2024-0001</title><href>https://access.redhat.com/security/cve/CVE-2024-0001</href></issue><issue type="bugzilla" id="1001"><title>bug</title><href>https://bugzilla.example.com/1</href></issue></issue-list></update><update kind="patch" name="NPBA-2024:0002" edition="2" arch="noarch" status="applied" category="bugfix" severity="" pkgmanager="false" restart="false" interactive="false"><summary>np-bug bugfix</summary><description/><license/><source url="file:/tmp/np-exp/repo" alias="np"/><issue-date time_t="0" text="0"/><issue-list/></update></update-list>
</update-status>
</stream>
"#;

    #[test]
    fn list_patches_xml_is_parsed_without_filtering() {
        let patches = parse_list_patches(LIST_PATCHES).expect("parses");
        assert_eq!(patches.len(), 2);
        let sec = &patches[0];
        assert_eq!(sec.name, "NPSA-2024:0001");
        assert_eq!(sec.status, "needed");
        assert_eq!(sec.category, "security");
        assert_eq!(sec.severity, "critical");
        assert!(sec.restart && sec.interactive);
        assert_eq!(sec.repo, "np");
        assert_eq!(
            sec.issue_date,
            Some(Timestamp::from_second(1705017600).expect("ts"))
        );
        assert_eq!(sec.cves, vec!["CVE-2024-0001".to_string()]);
        assert_eq!(sec.bugzillas, vec!["1001".to_string()]);
        let bug = &patches[1];
        assert_eq!(bug.issue_date, None, "time_t 0 is no date");
        assert!(!bug.restart);
    }

    #[test]
    fn error_messages_and_missing_status_are_errors() {
        let err = parse_list_patches(
            "<?xml version='1.0'?><stream><message type=\"error\">Repository 'np' is invalid.</message></stream>",
        )
        .expect_err("error message");
        assert!(err.to_string().contains("is invalid"), "{err}");
        let err = parse_list_patches(
            "<stream><message type=\"error\">Repository &apos;np&apos; is invalid.</message><message type=\"error\">No &lt;repodata&gt;</message></stream>",
        )
        .expect_err("error messages");
        assert_eq!(
            err.to_string(),
            "zypper list-patches: Repository 'np' is invalid.; No <repodata>"
        );
        assert_eq!(err.category(), "ZypperListPatchesFailed");
        assert!(parse_list_patches("<stream></stream>").is_err());
        assert!(parse_list_patches("<stream><update-status>").is_err());
    }

    #[test]
    fn patches_become_candidates_with_their_package_lists() {
        let patches = parse_list_patches(LIST_PATCHES).expect("parses");
        let raw = HashMap::from([(
            "np".to_string(),
            updateinfo::parse(
                "raw",
                br#"<updates><update type="security"><id>NPSA-2024:0001</id><pkglist><collection>
                <package name="np-sec" epoch="0" version="1.1" release="1" arch="noarch"/>
                <package name="np-absent" epoch="0" version="1" release="1" arch="noarch"/>
                </collection></pkglist></update></updates>"#,
            )
            .expect("updateinfo"),
        )]);
        let installed = vec![RpmPackage {
            name: "np-sec".into(),
            epoch: "0".into(),
            version: "1.0".into(),
            release: "1".into(),
            arch: "noarch".into(),
            install_time: 0,
            source_rpm: None,
        }];
        let (advisories, available) = advisories_and_upgrades(&installed, &patches, &raw);
        assert_eq!(available.len(), 1);
        assert_eq!(available[0].evr, "1.1-1");
        let mut seen = FirstSeen::default();
        let now = Timestamp::from_second(1_800_000_000).expect("ts");
        let candidates = build_candidates(&installed, &available, &advisories, &mut seen, now);
        assert_eq!(candidates.len(), 1);
        let c = &candidates[0];
        assert_eq!(c.advisory.as_deref(), Some("NPSA-2024:0001"));
        assert_eq!(c.classification.as_deref(), Some("Security"));
        assert_eq!(c.severity.as_deref(), Some("Critical"));
        assert!(c.reboot_suggested, "restart=true");
        assert_eq!(c.cves, vec!["CVE-2024-0001".to_string()]);
    }

    fn scripted_agent(
        answers: &[(&[&str], i32)],
    ) -> (NodeAgent, crate::agent::host::scripted::ScriptedExecutor) {
        let mut scripted = crate::agent::host::scripted::ScriptedExecutor::new();
        for (prefix, code) in answers {
            scripted = scripted.on(
                prefix,
                CommandOutput {
                    exit_code: Some(*code),
                    stdout: LIST_PATCHES.to_string(),
                    stderr:
                        "System management is locked by the application with pid 4242 (zypper)."
                            .into(),
                    ..CommandOutput::default()
                },
            );
        }
        let agent = NodeAgent {
            root: HostRoot::new(std::env::temp_dir()),
            executor: std::sync::Arc::new(scripted.clone()),
        };
        (agent, scripted)
    }

    #[test]
    fn exit_codes_locked_reboot_and_restart() {
        let (agent, _) = scripted_agent(&[(&["zypper"], EXIT_ZYPP_LOCKED)]);
        let err = list_patches(&agent).expect_err("locked");
        assert_eq!(err.category(), "ZypperLocked");
        assert_eq!(
            refresh(&agent).expect_err("locked").category(),
            "ZypperLocked"
        );
        let mut report = InstallReport::default();
        let err =
            run_install(&agent, &["np-sec=1.1-1".into()], &mut report, far()).expect_err("locked");
        assert!(err.to_string().contains("pid 4242"), "{err}");

        let (agent, _) = scripted_agent(&[(&["zypper"], EXIT_INF_SEC_UPDATE_NEEDED)]);
        assert_eq!(list_patches(&agent).expect("101 is success").len(), 2);

        let (agent, _) = scripted_agent(&[(&["zypper"], EXIT_INF_REBOOT_NEEDED)]);
        let mut report = InstallReport::default();
        run_install(&agent, &["np-sec=1.1-1".into()], &mut report, far()).expect("102");
        assert!(report.reboot_required);

        let (agent, scripted) = scripted_agent(&[(&["zypper"], EXIT_INF_RESTART_NEEDED)]);
        let mut report = InstallReport::default();
        run_install(&agent, &["np-sec=1.1-1".into()], &mut report, far()).expect("103");
        assert_eq!(
            scripted.calls().len(),
            2,
            "run again once after zypper updated itself"
        );
        assert!(!report.reboot_required);
    }

    #[test]
    fn install_command_ends_options_before_arguments() {
        let c = install_command(&["patch:NPSA-2024:0001".into(), "np-sec=1.1-1".into()]);
        assert_eq!(
            c.argv,
            vec![
                "zypper",
                "--non-interactive",
                "--no-refresh",
                "install",
                "--auto-agree-with-licenses",
                "--",
                "patch:NPSA-2024:0001",
                "np-sec=1.1-1"
            ]
        );
        assert!(is_valid_patch_name(
            "SUSE-SLE-Module-Basesystem-15-SP6-2024-1234"
        ));
        assert!(!is_valid_patch_name("-x"));
        assert!(!is_valid_patch_name("a b"));
    }

    #[test]
    fn the_dry_run_summary_names_the_packages_to_install() {
        let text = "Loading repository data...\nResolving package dependencies...\n\nThe following 2 packages are going to be upgraded:\n  np-crit np-lib\n\nThe following NEW package is going to be installed:\n  np-extra\n\nThe following NEW patch is going to be installed:\n  NPSA-2024:0001\n\nThe following package is going to be REMOVED:\n  np-old\n\n2 packages to upgrade, 1 new.\n";
        assert_eq!(
            summary_packages(text),
            vec!["np-crit", "np-lib", "np-extra"]
        );
        assert_eq!(
            rejected_among(&summary_packages(text), &["np-l*".to_string()]),
            vec!["np-lib"]
        );
    }
}
