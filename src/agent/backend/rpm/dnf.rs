//! The dnf backend (RHEL 8/9 and rebuilds, CentOS Stream, Oracle Linux, Amazon Linux 2023,
//! Fedora): the host's own `rpm` and `dnf` through the host executor.
//!
//! - Inventory: `rpm -qa --qf …` (name, epoch, version, release, arch, install time).
//! - Upgrades: `dnf -q -C repoquery --upgrades --qf …` (every newer version the enabled
//!   repositories offer, dnf's own view of excludes, modules and repository priorities), from
//!   the metadata cache (`-C`): a scan never downloads unless asked to refresh.
//! - Advisories: the cached `updateinfo.xml(.gz)` of each repository under `/var/cache/dnf`
//!   (dnf 5: `/var/cache/libdnf5`), parsed in-process (dnf 4 has no machine-readable
//!   `updateinfo` output, and its `--sec-severity` filters are OR'd).
//! - Install: `dnf -y --skip-broken upgrade -- name-evr.arch …`, then `rpm -qa` again: a target
//!   is installed only when rpm has it (or newer). A failed run is retried one package at a
//!   time, so one broken package does not keep the others out.
//! - Reboot: see [`super::reboot`], plus `needs-restarting -r` when the host has it.
//! - Alternative patch sources ([`crate::agent::backend::sources::DnfSources`]): every dnf run
//!   gets `--setopt=reposdir=` and `--setopt=cachedir=` of the private directories, and the
//!   advisories are read from the private cache only.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;

use super::updateinfo;
use super::{
    AvailablePackage, RepoAdvisories, RpmPackage, build_candidates, installed_packages,
    is_satisfied, nevra, read_inventory,
};
use crate::agent::backend::command::{
    CommandStep, OutputDialect, command_failed, reason_for, require_success,
};
use crate::agent::backend::contract::{
    BackendError, InstallReport, InstallRequest, InstallTarget, NodeAgent, NodePackages,
    TargetOutcome,
};
use crate::agent::backend::sources::{DNF_CACHE_DIR, Repositories};
use crate::agent::host::command::HostCommand;
use crate::agent::host::{HostError, HostRoot};
use crate::agent::os::DetectedOs;
use crate::agent::state::FirstSeen;

/// dnf metadata caches: dnf 4, then dnf 5.
pub const CACHE_DIRS: &[&str] = &["/var/cache/dnf", "/var/cache/libdnf5"];

/// The repoquery format: name, epoch, version, release, arch, repository id. The trailing
/// `\n` is for dnf 5 (dnf 4 adds its own; the blank lines are skipped).
pub const REPOQUERY_FORMAT: &str =
    "%{name}\\t%{epoch}\\t%{version}\\t%{release}\\t%{arch}\\t%{repoid}\\n";

/// Timeout of `dnf makecache`.
pub const REFRESH_TIMEOUT: Duration =
    Duration::from_secs(crate::rollout::budget::REFRESH_TIMEOUT.as_secs() as u64);
/// Timeout of one `dnf upgrade`.
pub const INSTALL_TIMEOUT: Duration =
    Duration::from_secs(crate::rollout::budget::INSTALL_TIMEOUT.as_secs() as u64);

/// A host error, saying that dnf itself is missing when it is.
fn host_error(e: HostError) -> BackendError {
    if matches!(&e, HostError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    {
        BackendError::DnfMissing(e)
    } else {
        BackendError::Host(e)
    }
}

/// `dnf <options> rest…`: `options` are the alternative sources' `--setopt`s (or none).
fn dnf_argv(options: &[String], rest: &[&str]) -> Vec<String> {
    let mut argv = vec!["dnf".to_string()];
    argv.extend(options.iter().cloned());
    argv.extend(rest.iter().map(|s| s.to_string()));
    argv
}

/// `dnf [options] -y makecache`.
pub fn refresh_command(options: &[String]) -> HostCommand {
    HostCommand::new(dnf_argv(options, &["-y", "makecache"])).timeout(REFRESH_TIMEOUT)
}

/// `dnf [options] -q -C repoquery --upgrades --qf …`.
pub fn upgrades_command(options: &[String]) -> HostCommand {
    HostCommand::new(dnf_argv(
        options,
        &[
            "-q",
            "-C",
            "repoquery",
            "--upgrades",
            "--qf",
            REPOQUERY_FORMAT,
        ],
    ))
    .timeout(REFRESH_TIMEOUT)
}

/// `dnf [options] -y --skip-broken [-x pattern]… upgrade -- nevra…`.
pub fn install_command(options: &[String], nevras: &[String], excludes: &[String]) -> HostCommand {
    let mut argv = dnf_argv(options, &["-y", "--skip-broken"]);
    for pattern in excludes {
        argv.push(format!("--exclude={pattern}"));
    }
    argv.push("upgrade".into());
    // `--` ends dnf's options: nothing after it can be read as one.
    argv.push("--".into());
    argv.extend(nevras.iter().cloned());
    HostCommand::new(argv)
        .timeout(INSTALL_TIMEOUT)
        .as_transaction()
}

/// Refresh the metadata cache (`options`: see [`refresh_command`]).
pub fn refresh(agent: &NodeAgent, options: &[String]) -> Result<(), BackendError> {
    let command = refresh_command(options);
    let output = agent.executor.run(&command).map_err(host_error)?;
    require_success(&command, output, CommandStep::DnfRefresh)?;
    Ok(())
}

/// Parse repoquery output in [`REPOQUERY_FORMAT`].
pub fn parse_upgrades(text: &str) -> Result<Vec<AvailablePackage>, BackendError> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 6 {
            return Err(BackendError::DnfQueryMalformed(format!(
                "dnf repoquery: expected 6 tab-separated fields: {line:?}"
            )));
        }
        out.push(AvailablePackage {
            name: f[0].to_string(),
            evr: super::evr_string(f[1], f[2], f[3]),
            arch: f[4].to_string(),
            repo: f[5].to_string(),
        });
    }
    Ok(out)
}

/// The repository id of a dnf cache directory (`baseos-8c2d5f1a2b3c4d5e` → `baseos`).
pub fn repo_of_cache_dir(dir: &str) -> Option<&str> {
    let (repo, hash) = dir.rsplit_once('-')?;
    (hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) && !repo.is_empty())
        .then_some(repo)
}

/// Host paths of the cached updateinfo files under `caches`, one per repository (the most
/// recently written cache directory wins when a repository has several).
pub fn updateinfo_files(
    root: &HostRoot,
    caches: &[&str],
) -> Result<Vec<(String, String)>, BackendError> {
    let mut newest: HashMap<String, (std::time::SystemTime, String)> = HashMap::new();
    for cache in caches {
        let entries = root.list_dir(cache)?;
        for dir in entries {
            let Some(repo) = repo_of_cache_dir(&dir) else {
                continue;
            };
            let repodata = format!("{cache}/{dir}/repodata");
            let files = root.list_dir(&repodata)?;
            let Some(file) = files.iter().find(|f| f.contains("updateinfo.xml")) else {
                continue;
            };
            let path = format!("{repodata}/{file}");
            let modified = root
                .resolve(&path)
                .ok()
                .and_then(|p| std::fs::metadata(p).ok())
                .and_then(|m| m.modified().ok())
                .unwrap_or(std::time::UNIX_EPOCH);
            match newest.get(repo) {
                Some((time, _)) if *time >= modified => {}
                _ => {
                    newest.insert(repo.to_string(), (modified, path));
                }
            }
        }
    }
    let mut files: Vec<(String, String)> = newest
        .into_iter()
        .map(|(repo, (_, path))| (repo, path))
        .collect();
    files.sort();
    Ok(files)
}

/// Read and parse the cached advisories of every repository under `caches`.
pub fn read_advisories(
    root: &HostRoot,
    caches: &[&str],
) -> Result<Vec<RepoAdvisories>, BackendError> {
    let mut out = Vec::new();
    for (repo, path) in updateinfo_files(root, caches)? {
        let bytes = root.read(&path)?;
        let xml = updateinfo::decompress(&path, &bytes)?;
        let advisories = updateinfo::parse(&path, &xml)?;
        out.push(RepoAdvisories { repo, advisories });
    }
    Ok(out)
}

/// `needs-restarting -r` when the host has it: `Some(true)` when it says a reboot is needed.
fn needs_restarting(agent: &NodeAgent, notes: &mut Vec<String>) -> Option<bool> {
    if !agent.root.exists("/usr/bin/needs-restarting") {
        return None;
    }
    let command = HostCommand::new(["needs-restarting", "-r"]).timeout(Duration::from_secs(120));
    match agent.executor.run(&command) {
        Ok(output) if output.exit_code == Some(1) => Some(true),
        Ok(output) if output.exit_code == Some(0) => Some(false),
        Ok(output) => {
            notes.push(format!(
                "needs-restarting -r: {}; reboot need from install times only",
                output.describe_status()
            ));
            None
        }
        Err(e) => {
            notes.push(format!(
                "cannot run needs-restarting -r ({e}); reboot need from install times only"
            ));
            None
        }
    }
}

/// The dnf backend's read, of the node's repositories or of alternative sources (whose cache
/// must have been refreshed for exactly these sources).
pub fn read_node(
    agent: &NodeAgent,
    repositories: &Repositories,
    _detected: &DetectedOs,
    first_seen: &mut FirstSeen,
    now: Timestamp,
) -> Result<NodePackages, BackendError> {
    let (options, caches): (Vec<String>, &[&str]) = match repositories {
        Repositories::Dnf(sources) => {
            sources.check_cache(&agent.root)?;
            (sources.dnf_options(), &[DNF_CACHE_DIR])
        }
        _ => (Vec::new(), CACHE_DIRS),
    };
    let executor = agent.executor.as_ref();
    let installed = read_inventory(executor)?;
    let command = upgrades_command(&options);
    let output = executor.run(&command).map_err(host_error)?;
    let output = require_success(&command, output, CommandStep::DnfQuery)?;
    let available = parse_upgrades(&output.stdout)?;
    let advisories = read_advisories(&agent.root, caches)?;
    let mut notes = Vec::new();
    if advisories.is_empty() {
        notes.push(
            "no cached updateinfo: no advisory metadata (classification, severity, dates); run a refresh"
                .to_string(),
        );
    }
    let candidates = build_candidates(&installed, &available, &advisories, first_seen, now);
    let mut reboot = super::reboot::reboot_state(
        &installed,
        &candidates,
        super::reboot::boot_time(&agent.root),
    );
    if needs_restarting(agent, &mut notes) == Some(true) {
        reboot.required = true;
        reboot
            .reasons
            .push("needs-restarting -r reports that a reboot is required".to_string());
    }
    Ok(NodePackages {
        installed: installed_packages(&installed),
        candidates,
        reboot,
        held: Vec::new(),
        notes,
        native_arch: None,
    })
}

/// The rejectedPatches handed to dnf as `--exclude=` under Block, every one of them: a
/// pattern is an argv element (no shell), so rpm's version characters `~` and `^` and any
/// other printable character go as they are. One that cannot be an option's value (empty,
/// leading `-`, whitespace or a control character) fails the install before anything runs:
/// Block is never enforced with a pattern left out.
pub fn exclude_patterns(blocked: &[String]) -> Result<Vec<String>, BackendError> {
    for pattern in blocked {
        let bad = pattern.is_empty()
            || pattern.starts_with('-')
            || pattern.chars().any(|c| c.is_whitespace() || c.is_control());
        if bad {
            return Err(BackendError::BlockUnenforceable {
                pattern: pattern.clone(),
                reason: "dnf --exclude cannot take it (empty, leading `-`, whitespace or a control character)".into(),
            });
        }
    }
    Ok(blocked.to_vec())
}

/// Install `targets` with the host's dnf (`options`: the alternative sources' `--setopt`s, or
/// none) and read each back from rpm.
pub fn install(
    agent: &NodeAgent,
    options: &[String],
    request: &InstallRequest<'_>,
) -> Result<InstallReport, BackendError> {
    let specs: Vec<String> = request
        .targets
        .iter()
        .map(nevra)
        .collect::<Result<_, _>>()?;
    let mut report = InstallReport::default();
    if request.targets.is_empty() {
        return Ok(report);
    }
    let excludes = exclude_patterns(request.blocked_patterns)?;
    let executor = agent.executor.as_ref();
    let mut reasons: HashMap<usize, String> = HashMap::new();
    // The batch and its one-at-a-time retries share INSTALL_TIMEOUT (each gets what is left).
    let deadline = std::time::Instant::now() + INSTALL_TIMEOUT;
    let run = |indexes: &[usize],
               report: &mut InstallReport,
               reasons: &mut HashMap<usize, String>|
     -> Result<(Vec<usize>, bool), BackendError> {
        let batch: Vec<String> = indexes.iter().map(|&i| specs[i].clone()).collect();
        let left = deadline
            .saturating_duration_since(std::time::Instant::now())
            .max(Duration::from_secs(1));
        let command = install_command(options, &batch, &excludes).timeout(left);
        let output = executor.run(&command).map_err(host_error)?;
        let after: Vec<RpmPackage> = read_inventory(executor)?;
        let not_done: Vec<usize> = indexes
            .iter()
            .copied()
            .filter(|&i| !done(&after, &request.targets[i]))
            .collect();
        report.runs.push(format!(
            "dnf upgrade {} → {}, {} of {} installed",
            batch.join(" "),
            output.describe_status(),
            indexes.len() - not_done.len(),
            indexes.len()
        ));
        for &i in &not_done {
            let t = &request.targets[i];
            let reason = if output.success() {
                format!(
                    "dnf exited 0 without installing it: {}",
                    reason_for(&t.name, &output, OutputDialect::Rpm)
                )
            } else if output.timed_out {
                format!("dnf upgrade {}", output.describe_status())
            } else {
                reason_for(&t.name, &output, OutputDialect::Rpm)
            };
            reasons.insert(i, reason);
        }
        if !output.success() && not_done.is_empty() {
            tracing::warn!(
                "{}",
                command_failed(&command, &output, CommandStep::DnfInstall)
            );
        }
        Ok((not_done, output.success() || output.timed_out))
    };
    let all: Vec<usize> = (0..request.targets.len()).collect();
    let (not_done, conclusive) = run(&all, &mut report, &mut reasons)?;
    // A failed transaction may have taken good packages down with a bad one: retry the rest
    // one at a time (a package alone is conclusive either way).
    if !conclusive && all.len() > 1 {
        for i in not_done {
            run(&[i], &mut report, &mut reasons)?;
        }
    }
    let after = read_inventory(executor)?;
    // The repair check: what a transaction that was killed (or failed midway) left behind is
    // not an installed package.
    let names: Vec<&str> = request
        .targets
        .iter()
        .filter(|t| done(&after, t))
        .map(|t| t.name.as_str())
        .collect();
    let problems = super::transaction_problems(executor, &after, &names, &mut report.runs)?;
    report.outcomes = request
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let problem = problems.get(&t.name).cloned();
            let installed = done(&after, t) && problem.is_none();
            TargetOutcome {
                target: t.clone(),
                installed,
                skipped: false,
                reason: if installed {
                    None
                } else {
                    problem.or_else(|| reasons.get(&i).cloned())
                },
            }
        })
        .collect();
    Ok(report)
}

fn done(installed: &[RpmPackage], t: &InstallTarget) -> bool {
    is_satisfied(installed, &t.name, t.arch.as_deref(), &t.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repoquery_output_and_cache_directories() {
        let text = "np-sec\t0\t1.1\t1\tnoarch\tnp\n\nbash\t1\t5.2\t2.el9\tx86_64\tbaseos\n";
        let upgrades = parse_upgrades(text).expect("parses");
        assert_eq!(upgrades.len(), 2);
        assert_eq!(upgrades[0].evr, "1.1-1");
        assert_eq!(upgrades[1].evr, "1:5.2-2.el9");
        assert_eq!(upgrades[1].repo, "baseos");
        assert!(parse_upgrades("a\tb\n").is_err());
        assert_eq!(
            repo_of_cache_dir("appstream-4d1a2b3c4d5e6f70"),
            Some("appstream")
        );
        assert_eq!(
            repo_of_cache_dir("amazonlinux-kernel-livepatch-0123456789abcdef"),
            Some("amazonlinux-kernel-livepatch")
        );
        assert_eq!(repo_of_cache_dir("np.solv"), None);
        assert_eq!(repo_of_cache_dir("expired_repos.json"), None);
    }

    #[test]
    fn read_runs_the_hosts_rpm_and_dnf_and_honours_needs_restarting() {
        use crate::agent::host::command::CommandOutput;
        use crate::agent::host::scripted::ScriptedExecutor;
        use std::sync::Arc;
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir
            .path()
            .join("var/cache/dnf/baseos-0123456789abcdef/repodata");
        std::fs::create_dir_all(&cache).expect("mkdir");
        std::fs::write(
            cache.join("abc-updateinfo.xml"),
            r#"<updates><update type="security"><id>RHSA-2024:1</id><severity>Important</severity>
            <issued date="2024-01-01 00:00:00"/><pkglist><collection>
            <package name="bash" epoch="0" version="5.1" release="9.el9" arch="x86_64"/>
            </collection></pkglist></update></updates>"#,
        )
        .expect("updateinfo");
        std::fs::create_dir_all(dir.path().join("usr/bin")).expect("mkdir");
        std::fs::write(dir.path().join("usr/bin/needs-restarting"), "").expect("write");
        let ok = |stdout: &str, code: i32| CommandOutput {
            exit_code: Some(code),
            stdout: stdout.to_string(),
            ..CommandOutput::default()
        };
        let scripted = ScriptedExecutor::new()
            .on(
                &["rpm", "-qa"],
                ok(
                    "bash\t0\t5.1\t8.el9\tx86_64\t1\tbash-5.1-8.el9.src.rpm\n",
                    0,
                ),
            )
            .on(
                &["dnf", "-q", "-C", "repoquery", "--upgrades"],
                ok("bash\t0\t5.1\t9.el9\tx86_64\tbaseos\n", 0),
            )
            .on(&["needs-restarting", "-r"], ok("Reboot is required", 1));
        let agent = NodeAgent {
            root: HostRoot::new(dir.path()),
            executor: Arc::new(scripted.clone()),
        };
        let detected = crate::agent::os::classify(
            &crate::agent::os_release::OsRelease::parse("ID=rocky\nVERSION_ID=9.4\n"),
            false,
            String::new(),
        );
        let now: Timestamp = "2024-06-01T00:00:00Z".parse().expect("ts");
        let node = read_node(
            &agent,
            &Repositories::Node,
            &detected,
            &mut FirstSeen::default(),
            now,
        )
        .expect("read");
        assert_eq!(node.candidates.len(), 1);
        let c = &node.candidates[0];
        assert_eq!(
            (
                c.version.as_str(),
                c.advisory.as_deref(),
                c.repositories.as_slice()
            ),
            (
                "5.1-9.el9",
                Some("RHSA-2024:1"),
                &["baseos".to_string()][..]
            )
        );
        assert!(node.reboot.required, "needs-restarting -r exit 1");
        let argv: Vec<Vec<String>> = scripted.calls().into_iter().map(|c| c.argv).collect();
        assert_eq!(argv[0][..2], ["rpm".to_string(), "-qa".to_string()]);
        assert_eq!(argv[1], upgrades_command(&[]).argv);
        assert_eq!(
            argv[2],
            vec!["needs-restarting".to_string(), "-r".to_string()]
        );
    }

    #[test]
    fn install_command_is_argv_with_an_option_terminator() {
        let command = install_command(
            &[],
            &["np-sec-1.1-1.noarch".into()],
            &exclude_patterns(&[
                "np-bad*".into(),
                "np-x-1.0~rc1*".into(),
                "np-y-2^git*".into(),
            ])
            .expect("patterns"),
        );
        assert_eq!(
            command.argv,
            vec![
                "dnf",
                "-y",
                "--skip-broken",
                "--exclude=np-bad*",
                "--exclude=np-x-1.0~rc1*",
                "--exclude=np-y-2^git*",
                "upgrade",
                "--",
                "np-sec-1.1-1.noarch"
            ]
        );
    }

    #[test]
    fn block_patterns_are_all_excluded_or_the_install_fails() {
        assert_eq!(
            exclude_patterns(&["_np*".into(), "np@x".into()]).expect("kept"),
            vec!["_np*".to_string(), "np@x".to_string()],
            "nothing is dropped"
        );
        for bad in ["-rf", "a b", "", "x\ty"] {
            let error = exclude_patterns(&["np-ok".into(), bad.into()]).expect_err(bad);
            assert_eq!(error.category(), "BlockUnenforceable");
            assert!(error.to_string().contains(&format!("{bad:?}")), "{error}");
        }
    }
}
