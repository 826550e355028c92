//! Differential tests of the agent's in-process apt candidate computation: on real Debian
//! roots (debootstrap minbase + a local repository), the upgrades the agent computes from
//! dpkg's status and apt's lists must equal the `Inst` lines of `apt-get -s dist-upgrade`
//! (and `upgrade`) run by the root's own apt through chroot — name, installed version,
//! candidate version, architecture and every origin.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use nodepatch::agent::backend::apt::AptSnapshot;
use nodepatch::agent::host::HostRoot;
use support::roots::{DebianRoot, InstLine, TestPackage, TestSuite, build_repo, run};

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
        .chain(&snapshot.downgrades)
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

/// apt_preferences(5) on a real root: named pins by version (prefix and glob), by release and
/// by origin, default (`Package: *`) pins, a target release from apt.conf, a negative pin and a
/// downgrade pin (≥ 1000), across `/etc/apt/preferences` and two `preferences.d` files; the
/// agent's candidates equal the root's own `apt-get -s dist-upgrade` and `upgrade`.
#[test]
fn candidates_equal_apt_with_pins_and_priorities() {
    let Some(root) = DebianRoot::with_standard_repo(
        "candidates_equal_apt_with_pins_and_priorities",
        &ALL_SUITES,
    ) else {
        return;
    };
    let before = assert_same_as_apt(&root, "dist-upgrade", "no pins");
    root.apt_get(&["install", "-y", "np-held=1.0-2"]);
    let etc = root.path().join("etc/apt");
    std::fs::write(
        etc.join("preferences"),
        "# kubelet-style hold: stay on the 1.0 series\nPackage: np-bugfix\nPin: version 1.0-*\nPin-Priority: 1001\n\nPackage: np-held\nPin: version 1.0-1\nPin-Priority: 1001\n",
    )
    .expect("preferences");
    std::fs::create_dir_all(etc.join("preferences.d")).expect("mkdir");
    std::fs::write(
        etc.join("preferences.d/10-experimental"),
        "Explanation: np-sec tracks experimental\nPackage: np-sec\nPin: release a=experimental\nPin-Priority: 990\n\nPackage: np-l?b np-app\nPin: release n=bookworm-updates\nPin-Priority: -1\n",
    )
    .expect("preferences.d");
    std::fs::write(
        etc.join("preferences.d/20-security.pref"),
        "Package: *\nPin: release l=Debian-Security\nPin-Priority: 50\n\nPackage: *\nPin: origin \"\"\nPin-Priority: 600\n",
    )
    .expect("preferences.d");
    // Ignored by apt (extension), so by the agent too.
    std::fs::write(
        etc.join("preferences.d/30-ignored.disabled"),
        "Package: *\nPin: release *\nPin-Priority: -1\n",
    )
    .expect("ignored");
    let pinned = assert_same_as_apt(&root, "dist-upgrade", "pinned");
    assert_ne!(pinned, before, "the pins change apt's decision");
    let by_name = |n: &str| pinned.iter().find(|l| l.name == n).cloned();
    assert_eq!(by_name("np-sec").map(|l| l.version), Some("9.0-1".into()));
    assert_eq!(
        by_name("np-bugfix").map(|l| l.version),
        Some("1.0-2".into())
    );
    assert_eq!(
        by_name("np-held").map(|l| l.version),
        Some("1.0-1".into()),
        "a downgrade"
    );
    assert!(by_name("np-lib").is_none() && by_name("np-app").is_none());
    assert_same_as_apt(&root, "upgrade", "pinned (upgrade)");
    let snapshot = AptSnapshot::read(&HostRoot::new(root.path())).expect("snapshot");
    assert_eq!(
        snapshot
            .downgrades
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>(),
        vec!["np-held"]
    );
    // Target release: bookworm-security at 990 through APT::Default-Release.
    std::fs::remove_file(etc.join("preferences.d/20-security.pref")).expect("rm");
    std::fs::write(
        etc.join("apt.conf"),
        "APT::Default-Release \"bookworm-security\";\n",
    )
    .expect("apt.conf");
    assert_same_as_apt(&root, "dist-upgrade", "target release");
}

/// A construct the agent does not implement fails the scan naming the file and line; it never
/// computes something else than apt.
#[test]
fn unsupported_preferences_fail_the_scan_with_file_and_line() {
    let Some(root) = DebianRoot::with_standard_repo(
        "unsupported_preferences_fail_the_scan_with_file_and_line",
        &["bookworm", "bookworm-updates"],
    ) else {
        return;
    };
    let dir = root.path().join("etc/apt/preferences.d");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("kube"),
        "Package: np-bugfix\nPin: version 1.0-1\nPin-Priority: 1001\n\nPackage: /^np-/\nPin: version 1.0-1\nPin-Priority: 1001\n",
    )
    .expect("write");
    let err = AptSnapshot::read(&HostRoot::new(root.path())).expect_err("regex pins");
    assert!(
        err.to_string()
            .starts_with("/etc/apt/preferences.d/kube:5:"),
        "{err}"
    );
    assert_eq!(err.category(), "AptPolicyUnsupported");
}

const MACHINE_ID: &str = "3d1219c7c4c5404aaa1f6d2a48adfda4";

/// `apt-get -s <command>` by this machine's apt on `root` (`-o Dir=`), which, unlike the root's
/// apt under chroot, phases updates (apt includes every phased update in a chroot). `apt_conf`
/// is the root's apt.conf, given as `APT_CONFIG` since `-o Dir` comes after apt reads its
/// configuration.
fn host_apt_inst_lines(root: &DebianRoot, command: &str) -> BTreeSet<InstLine> {
    let mut apt = Command::new("apt-get");
    apt.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C")
        .env("APT_CONFIG", root.path().join("etc/apt/apt.conf"))
        .arg("-q")
        .arg("-o")
        .arg(format!("Dir={}", root.path().display()))
        .args(["-o", "Dir::Bin::ischroot=/bin/false", "-s", command]);
    let out = run(&mut apt);
    if std::env::var_os("NODEPATCH_DEBUG_APT").is_some() {
        eprintln!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(InstLine::parse)
        .collect()
}

/// Ubuntu-shaped suites: `noble`, `noble-updates` with phased versions of 20 packages at
/// 0..95 % and two at 0 % (`np-phsec`, whose lower 1.0-2 is in `noble-security`, and
/// `np-phsec2`), and `noble-security`.
fn phased_repo(dir: &Path) {
    let names: Vec<&'static str> = (0..20)
        .map(|i| &*Box::leak(format!("np-ph{i:02}").into_boxed_str()))
        .collect();
    let suite = |dist: &'static str, suite: &'static str, packages| TestSuite {
        dist,
        origin: "Ubuntu",
        label: "Ubuntu",
        suite,
        codename: "noble",
        version: "24.04",
        not_automatic: false,
        but_automatic_upgrades: false,
        packages,
    };
    let mut base: Vec<TestPackage> = names.iter().map(|n| TestPackage::new(n, "1.0-1")).collect();
    base.push(TestPackage::new("np-phsec", "1.0-1"));
    base.push(TestPackage::new("np-phsec2", "1.0-1"));
    let mut updates: Vec<TestPackage> =
        names.iter().map(|n| TestPackage::new(n, "1.0-2")).collect();
    updates.push(TestPackage::new("np-phsec", "1.0-3"));
    updates.push(TestPackage::new("np-phsec2", "1.0-2"));
    let security = vec![TestPackage::new("np-phsec", "1.0-2")];
    build_repo(
        dir,
        &[
            suite("noble", "noble", base),
            suite("noble-updates", "noble-updates", updates),
            suite("noble-security", "noble-security", security),
        ],
    );
    // Add Phased-Update-Percentage to the updates suite as Launchpad publishes it, then
    // re-sign (re-hash) its Release.
    let packages = dir.join("dists/noble-updates/main/binary-amd64/Packages");
    let text = std::fs::read_to_string(&packages).expect("Packages");
    let mut out = String::new();
    for stanza in text.split("\n\n").filter(|s| !s.trim().is_empty()) {
        let name = stanza
            .lines()
            .find_map(|l| l.strip_prefix("Package: "))
            .unwrap_or_default();
        let percentage = match name {
            "np-phsec" | "np-phsec2" => Some(0),
            n => n
                .strip_prefix("np-ph")
                .and_then(|i| i.parse::<u32>().ok())
                .map(|i| i * 5),
        };
        out.push_str(stanza.trim_end());
        out.push('\n');
        if let Some(p) = percentage {
            out.push_str(&format!("Phased-Update-Percentage: {p}\n"));
        }
        out.push('\n');
    }
    std::fs::write(&packages, out).expect("write Packages");
    let dist = dir.join("dists/noble-updates");
    let release = run(Command::new("apt-ftparchive").current_dir(&dist).args([
        "-o",
        "APT::FTPArchive::Release::Origin=Ubuntu",
        "-o",
        "APT::FTPArchive::Release::Label=Ubuntu",
        "-o",
        "APT::FTPArchive::Release::Suite=noble-updates",
        "-o",
        "APT::FTPArchive::Release::Codename=noble",
        "-o",
        "APT::FTPArchive::Release::Version=24.04",
        "-o",
        "APT::FTPArchive::Release::Architectures=amd64",
        "-o",
        "APT::FTPArchive::Release::Components=main",
        "release",
        ".",
    ]));
    std::fs::write(dist.join("Release"), &release.stdout).expect("Release");
}

/// Ubuntu's phased updates on a real root: the agent keeps back exactly what this machine's apt
/// (2.6: keep-back by apt's machine-id roll, unless a version between is from `-security`)
/// keeps back, with the machine-id rule, and with `Always-`/`Never-Include-Phased-Updates`.
#[test]
fn candidates_equal_apt_with_phased_updates() {
    let Some(root) = DebianRoot::create("candidates_equal_apt_with_phased_updates") else {
        return;
    };
    // The repository sits at the same path on the machine and inside the root, so the root's
    // apt (under chroot) and the machine's apt (`-o Dir=`) read the same `file:` source.
    let repo = tempfile::Builder::new()
        .prefix("nodepatch-phased-repo-")
        .tempdir()
        .expect("tempdir");
    phased_repo(repo.path());
    let inside = root
        .path()
        .join(repo.path().strip_prefix("/").expect("absolute"));
    std::fs::create_dir_all(inside.parent().expect("parent")).expect("mkdir");
    run(Command::new("cp").arg("-a").arg(repo.path()).arg(&inside));
    let sources = |dists: &[&str]| {
        let lines: String = dists
            .iter()
            .map(|d| {
                format!(
                    "deb [trusted=yes] file:{} {d} main\n",
                    repo.path().display()
                )
            })
            .collect();
        std::fs::write(root.path().join("etc/apt/sources.list"), lines).expect("sources");
    };
    let mut names: Vec<String> = (0..20).map(|i| format!("np-ph{i:02}=1.0-1")).collect();
    names.push("np-phsec=1.0-1".into());
    names.push("np-phsec2=1.0-1".into());
    sources(&["noble"]);
    root.apt_get(&["update"]);
    let mut args = vec!["install", "-y"];
    args.extend(names.iter().map(String::as_str));
    root.apt_get(&args);
    sources(&["noble", "noble-updates", "noble-security"]);
    root.apt_get(&["update"]);
    std::fs::write(
        root.path().join("etc/machine-id"),
        format!("{MACHINE_ID}\n"),
    )
    .expect("machine-id");
    std::fs::write(root.path().join("etc/apt/apt.conf"), "// phasing test\n").expect("apt.conf");

    let apt = host_apt_inst_lines(&root, "dist-upgrade");
    let agent = agent_inst_lines(root.path());
    assert_eq!(agent, apt, "phased: agent (left) vs apt (right)");
    let kept = 22 - apt.len();
    assert!(
        kept > 2 && apt.len() > 2,
        "the fixture should phase some and not others: {apt:#?}"
    );
    let names_of = |l: &BTreeSet<InstLine>| l.iter().map(|l| l.name.clone()).collect::<Vec<_>>();
    assert!(
        names_of(&apt).contains(&"np-phsec".to_string()),
        "security below the candidate"
    );
    assert!(
        !names_of(&apt).contains(&"np-phsec2".to_string()),
        "0 % reaches no machine"
    );
    assert_eq!(
        agent_inst_lines(root.path()),
        host_apt_inst_lines(&root, "upgrade")
    );
    let snapshot = AptSnapshot::read(&HostRoot::new(root.path())).expect("snapshot");
    assert_eq!(snapshot.phased.len(), kept);

    // Another machine-id phases other packages.
    std::fs::write(
        root.path().join("etc/machine-id"),
        "0123456789abcdef0123456789abcdef\n",
    )
    .expect("machine-id");
    let other = host_apt_inst_lines(&root, "dist-upgrade");
    assert_ne!(other, apt, "the machine-id decides");
    assert_eq!(agent_inst_lines(root.path()), other);

    for option in [
        "APT::Get::Always-Include-Phased-Updates \"true\";\n",
        "APT { Get { Never-Include-Phased-Updates \"yes\"; }; };\n",
        "Update-Manager::Always-Include-Phased-Updates \"1\";\n",
    ] {
        std::fs::write(root.path().join("etc/apt/apt.conf"), option).expect("apt.conf");
        let apt = host_apt_inst_lines(&root, "dist-upgrade");
        assert_eq!(agent_inst_lines(root.path()), apt, "{option}");
    }
}
