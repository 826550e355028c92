//! Differential tests of the agent's in-process apt candidate computation: on real Debian
//! roots (debootstrap minbase + a local repository), the upgrades the agent computes from
//! dpkg's status and apt's lists must equal the `Inst` lines of `apt-get -s dist-upgrade`
//! (and `upgrade`) run by the root's own apt through chroot — name, installed version,
//! candidate version, architecture and every origin.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use nodepatch::agent::backend::apt::AptSnapshot;
use nodepatch::agent::host::HostRoot;
use support::roots::{DebianRoot, InstLine, run};

const ALL_SUITES: [&str; 5] = [
    "bookworm",
    "bookworm-security",
    "bookworm-updates",
    "bookworm-backports",
    "experimental",
];

/// The agent's view, in the shape of apt's Inst lines.
fn agent_inst_lines(root: &Path) -> BTreeSet<InstLine> {
    let snapshot = AptSnapshot::read(&HostRoot::new(root)).expect("agent reads dpkg and lists");
    snapshot
        .installable_upgrades()
        .map(|u| {
            let mut origins: Vec<String> = u
                .candidate
                .releases
                .iter()
                .map(|r| {
                    r.and_then(|i| snapshot.lists.releases.get(i))
                        .map(|r| r.apt_rel_str())
                        .unwrap_or_else(|| "localhost".into())
                })
                .collect();
            origins.sort();
            origins.dedup();
            InstLine {
                name: u.name.clone(),
                installed: Some(u.installed_version.clone()),
                version: u.candidate.version.clone(),
                origins,
                arch: u.candidate.arch.clone(),
            }
        })
        .collect()
}

fn assert_same_as_apt(root: &DebianRoot, command: &str, state: &str) -> BTreeSet<InstLine> {
    let apt: BTreeSet<InstLine> = root.simulated_inst_lines(command).into_iter().collect();
    let agent = agent_inst_lines(root.path());
    assert!(
        apt.iter().all(|l| l.installed.is_some()),
        "{state}: apt-get -s {command} installs new packages, the fixture should only upgrade: {apt:#?}"
    );
    assert_eq!(
        agent, apt,
        "{state}: agent candidates (left) differ from apt-get -s {command} (right)"
    );
    apt
}

fn names(lines: &BTreeSet<InstLine>) -> Vec<&str> {
    lines.iter().map(|l| l.name.as_str()).collect()
}

#[test]
fn inst_line_parses_every_part() {
    let line = InstLine::parse(
        "Inst liblzma5 [5.4.1-1+deb12u1] (5.4.1-1+deb12u2 Debian-Security:12/oldstable-security, Debian:12/oldstable [amd64])",
    )
    .expect("parse");
    assert_eq!(line.name, "liblzma5");
    assert_eq!(line.installed.as_deref(), Some("5.4.1-1+deb12u1"));
    assert_eq!(line.version, "5.4.1-1+deb12u2");
    assert_eq!(
        line.origins,
        vec![
            "Debian-Security:12/oldstable-security",
            "Debian:12/oldstable"
        ]
    );
    assert_eq!(line.arch, "amd64");
}

#[test]
fn candidates_equal_apt_with_all_suites_and_a_held_package() {
    let Some(root) = DebianRoot::with_standard_repo(
        "candidates_equal_apt_with_all_suites_and_a_held_package",
        &ALL_SUITES,
    ) else {
        return;
    };
    root.hold("np-held");
    let dist_upgrade = assert_same_as_apt(&root, "dist-upgrade", "all suites, np-held held");
    assert_eq!(
        names(&dist_upgrade),
        vec![
            "np-app",
            "np-arch",
            "np-badpre",
            "np-bugfix",
            "np-conf",
            "np-fail",
            "np-lib",
            "np-reboot",
            "np-sec"
        ],
        "held np-held kept back; np-bpo stays on the main suite; experimental never wins"
    );
    let sec = dist_upgrade
        .iter()
        .find(|l| l.name == "np-sec")
        .expect("np-sec");
    assert_eq!(
        sec.origins.len(),
        2,
        "np-sec is offered by security and updates: {sec:?}"
    );
    assert_same_as_apt(&root, "upgrade", "all suites, np-held held (upgrade)");
    let snapshot = AptSnapshot::read(&HostRoot::new(root.path())).expect("snapshot");
    let held: Vec<&str> = snapshot.held_upgrades().map(|u| u.name.as_str()).collect();
    assert_eq!(held, vec!["np-held"]);
}

#[test]
fn candidates_equal_apt_with_security_suite_only() {
    let Some(root) = DebianRoot::with_standard_repo(
        "candidates_equal_apt_with_security_suite_only",
        &["bookworm", "bookworm-security"],
    ) else {
        return;
    };
    let lines = assert_same_as_apt(&root, "dist-upgrade", "security only");
    assert_eq!(names(&lines), vec!["np-arch", "np-reboot", "np-sec"]);
}

#[test]
fn candidates_equal_apt_after_a_partial_upgrade() {
    let Some(root) =
        DebianRoot::with_standard_repo("candidates_equal_apt_after_a_partial_upgrade", &ALL_SUITES)
    else {
        return;
    };
    root.apt_get(&[
        "install",
        "-y",
        "np-sec=1.0-1+deb12u1",
        "np-bugfix=1.0-2",
        "np-lib=2.0-1",
        "np-app=2.0-1",
    ]);
    let lines = assert_same_as_apt(&root, "dist-upgrade", "partially patched");
    assert_eq!(
        names(&lines),
        vec![
            "np-arch",
            "np-badpre",
            "np-conf",
            "np-fail",
            "np-held",
            "np-reboot"
        ]
    );
}

#[test]
fn candidates_equal_apt_for_backports_and_not_automatic_suites() {
    let Some(root) = DebianRoot::with_standard_repo(
        "candidates_equal_apt_for_backports_and_not_automatic_suites",
        &ALL_SUITES,
    ) else {
        return;
    };
    // Installed from backports (ButAutomaticUpgrades): the newer backport is a candidate. A
    // package installed from experimental (NotAutomatic) gets no upgrade from there.
    root.apt_get(&["install", "-y", "np-bpo=2.0-1~bpo12+1", "np-bugfix=9.0-1"]);
    let lines = assert_same_as_apt(
        &root,
        "dist-upgrade",
        "backports and experimental installed",
    );
    let bpo = lines
        .iter()
        .find(|l| l.name == "np-bpo")
        .expect("np-bpo upgrade from backports");
    assert_eq!(bpo.version, "2.0-2~bpo12+1");
    assert!(
        lines.iter().all(|l| l.name != "np-bugfix"),
        "np-bugfix 9.0-1 from experimental has no upgrade"
    );
    assert_same_as_apt(
        &root,
        "upgrade",
        "backports and experimental installed (upgrade)",
    );
}

/// Real Debian lists: the machine's own `apt-get update` results (compressed as this machine's
/// apt stores them) copied into a minbase root whose sources name the same suites.
#[test]
fn candidates_equal_apt_on_real_debian_lists() {
    let lists = Path::new("/var/lib/apt/lists");
    let release_files: Vec<String> = std::fs::read_dir(lists)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let suites: Vec<(String, String)> = release_files
        .iter()
        .filter_map(|n| n.strip_suffix("_InRelease"))
        .filter_map(|prefix| {
            // `deb.debian.org_debian_dists_bookworm-updates` → (http://deb.debian.org/debian, bookworm-updates)
            let (base, suite) = prefix.split_once("_dists_")?;
            (suite.starts_with("bookworm")).then(|| {
                (
                    format!("http://{}", base.replace('_', "/")),
                    suite.to_string(),
                )
            })
        })
        .collect();
    if suites.is_empty() {
        eprintln!(
            "SKIPPED candidates_equal_apt_on_real_debian_lists: this machine has no bookworm lists in {}",
            lists.display()
        );
        return;
    }
    let Some(root) = DebianRoot::create("candidates_equal_apt_on_real_debian_lists") else {
        return;
    };
    let sources: String = suites
        .iter()
        .map(|(uri, suite)| format!("deb [trusted=yes] {uri} {suite} main\n"))
        .collect();
    std::fs::write(root.path().join("etc/apt/sources.list"), sources).expect("sources");
    let target = root.path().join("var/lib/apt/lists");
    for entry in std::fs::read_dir(&target).expect("lists") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::remove_file(path).expect("remove old list");
        }
    }
    for name in release_files.iter().filter(|n| {
        n.contains("_dists_bookworm") && (n.ends_with("_InRelease") || n.contains("_Packages"))
    }) {
        run(std::process::Command::new("cp")
            .arg(lists.join(name))
            .arg(&target));
    }
    // Make the root's apt store and read lists the way the machine's does (e.g. lz4).
    let gzip_indexes = Path::new("/etc/apt/apt.conf.d/docker-gzip-indexes");
    if gzip_indexes.exists() {
        run(std::process::Command::new("cp")
            .arg(gzip_indexes)
            .arg(root.path().join("etc/apt/apt.conf.d")));
    }
    let lines = assert_same_as_apt(&root, "dist-upgrade", "real Debian lists");
    eprintln!("real Debian lists: {} upgrades agree with apt", lines.len());
}
