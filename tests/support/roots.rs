//! Real Debian node roots for agent tests: a cached `debootstrap --variant=minbase bookworm`
//! root (built by `e2e/roots/debian-root.sh`) extracted per test, and a local apt repository
//! with suites that mimic Debian's (`bookworm`, `bookworm-updates`, `bookworm-security`,
//! `bookworm-backports`, `experimental`) holding v1 and v2 of small test packages.
//!
//! Every apt and dpkg call runs inside the test root through `chroot`; nothing here touches the
//! machine's own package state. Prerequisites (root, chroot, debootstrap, dpkg-deb,
//! apt-ftparchive): when one is missing the test is skipped with the reason printed, except
//! with `CI=true`, where it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use super::repo_root;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", "command -v \"$1\" >/dev/null", "sh", program])
        .status()
        .is_ok_and(|s| s.success())
}

/// Why real roots cannot be used here, if they cannot.
pub fn missing_prerequisite() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("agent root tests need root (chroot, device nodes)".to_string());
    }
    for tool in [
        "chroot",
        "debootstrap",
        "dpkg-deb",
        "apt-ftparchive",
        "tar",
        "flock",
    ] {
        if !have(tool) {
            return Some(format!("`{tool}` is missing: run scripts/install-deps.sh"));
        }
    }
    None
}

/// Skip (outside CI) or fail (in CI) when real roots are unavailable. Returns false to skip.
pub fn require_roots(test: &str) -> bool {
    match missing_prerequisite() {
        None => true,
        Some(reason) if in_ci() => panic!("{test}: {reason} (CI=true makes this a failure)"),
        Some(reason) => {
            eprintln!("SKIPPED {test}: {reason}");
            false
        }
    }
}

/// Run a command, panicking with its output when it fails.
pub fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    if !output.status.success() {
        panic!(
            "{command:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output
}

/// The cached minbase tarball, built on first use by e2e/roots/debian-root.sh.
pub fn minbase_tarball() -> PathBuf {
    static TARBALL: OnceLock<PathBuf> = OnceLock::new();
    TARBALL
        .get_or_init(|| {
            let out = run(&mut Command::new(
                repo_root().join("e2e/roots/debian-root.sh"),
            ));
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        })
        .clone()
}

/// A test package: one version of one binary package.
#[derive(Clone, Debug)]
pub struct TestPackage {
    pub name: &'static str,
    pub version: &'static str,
    pub arch: &'static str,
    pub depends: Option<&'static str>,
    /// `Breaks:` field (an upgrade apt can only make by removing the broken package).
    pub breaks: Option<&'static str>,
    pub priority: &'static str,
    pub section: &'static str,
    /// Shell body of the postinst script (run on configure).
    pub postinst: Option<&'static str>,
    /// Shell body of the preinst script (run on install and upgrade).
    pub preinst: Option<&'static str>,
    /// A conffile `(path, content)`.
    pub conffile: Option<(&'static str, &'static str)>,
}

impl TestPackage {
    pub const fn new(name: &'static str, version: &'static str) -> TestPackage {
        TestPackage {
            name,
            version,
            arch: "all",
            depends: None,
            breaks: None,
            priority: "optional",
            section: "admin",
            postinst: None,
            preinst: None,
            conffile: None,
        }
    }
}

/// One suite of the test repository and what its Release file says.
#[derive(Clone, Debug)]
pub struct TestSuite {
    pub dist: &'static str,
    pub origin: &'static str,
    pub label: &'static str,
    pub suite: &'static str,
    pub codename: &'static str,
    pub version: &'static str,
    pub not_automatic: bool,
    pub but_automatic_upgrades: bool,
    pub packages: Vec<TestPackage>,
}

/// Postinst of the package that needs a reboot, as Debian's kernel and libc packages do it.
pub const REBOOT_POSTINST: &str = "touch /var/run/reboot-required\necho \"$DPKG_MAINTSCRIPT_PACKAGE\" >> /var/run/reboot-required.pkgs";

/// The standard test repository:
/// - `np-sec`: v2 (`1.0-1+deb12u1`) in bookworm-security and copied to bookworm-updates;
/// - `np-bugfix`: v2 in bookworm-updates, a newer backport and an experimental version;
/// - `np-reboot`: v2 in bookworm-security, its postinst writes /run/reboot-required;
/// - `np-fail`: v2 in bookworm-updates, its postinst fails;
/// - `np-badpre`: v2 in bookworm-updates, its preinst fails on upgrade (dpkg aborts the unpack,
///   apt stops the whole run);
/// - `np-conf`: v2 changes the conffile /etc/np-conf.conf;
/// - `np-held`: v2 in bookworm-updates (tests hold v1);
/// - `np-lib` and `np-app`: v2 of np-app needs v2 of np-lib (tests reject np-lib);
/// - `np-arch`: an amd64 package with a security update;
/// - `np-bpo`: only in backports (NotAutomatic + ButAutomaticUpgrades), two versions;
/// - `np-new`: never installed.
pub fn standard_suites() -> Vec<TestSuite> {
    let v1 = |name| TestPackage::new(name, "1.0-1");
    let base = vec![
        v1("np-sec"),
        v1("np-bugfix"),
        v1("np-reboot"),
        v1("np-fail"),
        v1("np-badpre"),
        TestPackage {
            conffile: Some(("/etc/np-conf.conf", "setting=v1\n")),
            ..v1("np-conf")
        },
        v1("np-held"),
        v1("np-lib"),
        TestPackage {
            depends: Some("np-lib (>= 1.0-1)"),
            ..v1("np-app")
        },
        TestPackage {
            arch: "amd64",
            priority: "important",
            section: "libs",
            ..v1("np-arch")
        },
        v1("np-new"),
    ];
    let sec = TestPackage::new("np-sec", "1.0-1+deb12u1");
    let security = vec![
        sec.clone(),
        TestPackage {
            postinst: Some(REBOOT_POSTINST),
            ..TestPackage::new("np-reboot", "1.0-1+deb12u1")
        },
        TestPackage {
            arch: "amd64",
            priority: "important",
            section: "libs",
            ..TestPackage::new("np-arch", "1.0-1+deb12u1")
        },
    ];
    let updates = vec![
        sec,
        TestPackage::new("np-bugfix", "1.0-2"),
        TestPackage {
            postinst: Some("echo 'np-fail: refusing to configure' >&2\nexit 1"),
            ..TestPackage::new("np-fail", "1.0-2")
        },
        TestPackage {
            preinst: Some(
                "if [ \"$1\" = upgrade ]; then echo 'np-badpre: refusing to upgrade' >&2; exit 1; fi",
            ),
            ..TestPackage::new("np-badpre", "1.0-2")
        },
        TestPackage {
            conffile: Some(("/etc/np-conf.conf", "setting=v2\n")),
            ..TestPackage::new("np-conf", "1.0-2")
        },
        TestPackage::new("np-held", "1.0-2"),
        TestPackage::new("np-lib", "2.0-1"),
        TestPackage {
            depends: Some("np-lib (>= 2.0-1)"),
            ..TestPackage::new("np-app", "2.0-1")
        },
        TestPackage::new("np-new", "1.0-2"),
    ];
    let backports = vec![
        TestPackage::new("np-bpo", "2.0-1~bpo12+1"),
        TestPackage::new("np-bpo", "2.0-2~bpo12+1"),
        TestPackage::new("np-bugfix", "1.5-1~bpo12+1"),
    ];
    let experimental = vec![
        TestPackage::new("np-bugfix", "9.0-1"),
        TestPackage::new("np-sec", "9.0-1"),
    ];
    let suite = |dist, label, suite, codename, packages| TestSuite {
        dist,
        origin: "Debian",
        label,
        suite,
        codename,
        version: "12",
        not_automatic: false,
        but_automatic_upgrades: false,
        packages,
    };
    vec![
        suite("bookworm", "Debian", "oldstable", "bookworm", base),
        suite(
            "bookworm-security",
            "Debian-Security",
            "oldstable-security",
            "bookworm-security",
            security,
        ),
        suite(
            "bookworm-updates",
            "Debian",
            "oldstable-updates",
            "bookworm-updates",
            updates,
        ),
        TestSuite {
            not_automatic: true,
            but_automatic_upgrades: true,
            version: "",
            ..suite(
                "bookworm-backports",
                "Debian Backports",
                "oldstable-backports",
                "bookworm-backports",
                backports,
            )
        },
        TestSuite {
            not_automatic: true,
            version: "",
            ..suite(
                "experimental",
                "Debian",
                "experimental",
                "rc-buggy",
                experimental,
            )
        },
    ]
}

/// The `v1` packages a fresh fixture installs (everything of the base suite except np-new).
pub const V1_INSTALLED: [&str; 10] = [
    "np-sec",
    "np-bugfix",
    "np-reboot",
    "np-fail",
    "np-badpre",
    "np-conf",
    "np-held",
    "np-lib",
    "np-app",
    "np-arch",
];

fn build_deb(work: &Path, pool: &Path, package: &TestPackage) {
    let dir = work.join(format!(
        "{}_{}_{}",
        package.name, package.version, package.arch
    ));
    let debian = dir.join("DEBIAN");
    std::fs::create_dir_all(&debian).expect("mkdir DEBIAN");
    let doc = dir.join("usr/share/doc").join(package.name);
    std::fs::create_dir_all(&doc).expect("mkdir doc");
    std::fs::write(
        doc.join("VERSION"),
        format!("{} {}\n", package.name, package.version),
    )
    .expect("write VERSION");
    let mut control = format!(
        "Package: {}\nVersion: {}\nArchitecture: {}\nMaintainer: nodepatch tests <tests@nodepatch.invalid>\nPriority: {}\nSection: {}\n",
        package.name, package.version, package.arch, package.priority, package.section
    );
    if let Some(depends) = package.depends {
        control.push_str(&format!("Depends: {depends}\n"));
    }
    if let Some(breaks) = package.breaks {
        control.push_str(&format!("Breaks: {breaks}\n"));
    }
    control.push_str(&format!(
        "Description: nodepatch test package {}\n",
        package.name
    ));
    std::fs::write(debian.join("control"), control).expect("write control");
    if let Some(body) = package.postinst {
        let script = debian.join("postinst");
        std::fs::write(
            &script,
            format!("#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then\n{body}\nfi\n"),
        )
        .expect("write postinst");
        run(Command::new("chmod").arg("0755").arg(&script));
    }
    if let Some(body) = package.preinst {
        let script = debian.join("preinst");
        std::fs::write(&script, format!("#!/bin/sh\nset -e\n{body}\n")).expect("write preinst");
        run(Command::new("chmod").arg("0755").arg(&script));
    }
    if let Some((path, content)) = package.conffile {
        let file = dir.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(file.parent().expect("conffile dir")).expect("mkdir conffile dir");
        std::fs::write(&file, content).expect("write conffile");
        std::fs::write(debian.join("conffiles"), format!("{path}\n")).expect("write conffiles");
    }
    std::fs::create_dir_all(pool).expect("mkdir pool");
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "-z1", "-b"])
        .arg(&dir)
        .arg(pool));
}

/// Build a repository with `suites` under `repo` (pool/<dist>/*.deb, dists/<dist>/...).
pub fn build_repo(repo: &Path, suites: &[TestSuite]) {
    let work = repo.join(".build");
    let debs = work.join("debs");
    for suite in suites {
        let pool = repo.join("pool").join(suite.dist);
        std::fs::create_dir_all(&pool).expect("mkdir pool");
        for package in &suite.packages {
            // One build per package version, copied into every suite that offers it, so the
            // suites carry byte-identical .debs as Debian's and Ubuntu's archives do (apt keeps
            // different builds of one version apart).
            let file = format!("{}_{}_{}.deb", package.name, package.version, package.arch);
            if !debs.join(&file).exists() {
                build_deb(&work, &debs, package);
            }
            std::fs::copy(debs.join(&file), pool.join(&file)).expect("copy deb into pool");
        }
        let binary = repo
            .join("dists")
            .join(suite.dist)
            .join("main/binary-amd64");
        std::fs::create_dir_all(&binary).expect("mkdir dists");
        let packages = run(Command::new("apt-ftparchive")
            .current_dir(repo)
            .arg("packages")
            .arg(format!("pool/{}", suite.dist)));
        std::fs::write(binary.join("Packages"), &packages.stdout).expect("write Packages");
        let mut release = Command::new("apt-ftparchive");
        let mut option = |key: &str, value: &str| {
            release
                .arg("-o")
                .arg(format!("APT::FTPArchive::Release::{key}={value}"));
        };
        option("Origin", suite.origin);
        option("Label", suite.label);
        option("Suite", suite.suite);
        option("Codename", suite.codename);
        if !suite.version.is_empty() {
            option("Version", suite.version);
        }
        option("Architectures", "amd64");
        option("Components", "main");
        if suite.not_automatic {
            option("NotAutomatic", "yes");
        }
        if suite.but_automatic_upgrades {
            option("ButAutomaticUpgrades", "yes");
        }
        let dist = repo.join("dists").join(suite.dist);
        let out = run(release.current_dir(&dist).args(["release", "."]));
        std::fs::write(dist.join("Release"), &out.stdout).expect("write Release");
    }
    let _ = std::fs::remove_dir_all(&work);
}

/// Where cached roots and repositories live: `NODEPATCH_ROOTS_CACHE`, else with `CI=true` the
/// machine's cache (`${NODEPATCH_CACHE:-~/.cache/nodepatch}/roots`, CI clones are fresh), else
/// `.local/cache/roots` (the same rule as e2e/roots/debian-root.sh).
pub fn roots_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NODEPATCH_ROOTS_CACHE") {
        return PathBuf::from(dir);
    }
    if in_ci() {
        let base = std::env::var_os("NODEPATCH_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                    .join(".cache/nodepatch")
            });
        return base.join("roots");
    }
    repo_root().join(".local/cache/roots")
}

/// The standard repository, built once and cached under `.local/cache/roots/` keyed by a hash
/// of its definition and of this file (so any change rebuilds it), then copied into each root.
pub fn standard_repo() -> PathBuf {
    static REPO: OnceLock<PathBuf> = OnceLock::new();
    REPO.get_or_init(|| {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(format!(
            "{:?}\n{}",
            standard_suites(),
            include_str!("roots.rs")
        ));
        let key: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let cache = roots_cache_dir();
        let dir = cache.join(format!("test-repo-{key}"));
        if dir.join("dists").is_dir() {
            return dir;
        }
        std::fs::create_dir_all(&cache).expect("mkdir cache");
        let work = tempfile::Builder::new()
            .prefix(".test-repo-")
            .tempdir_in(&cache)
            .expect("tempdir");
        build_repo(work.path(), &standard_suites());
        // Another test binary may have won the race: then keep its copy.
        let built = work.keep();
        if std::fs::rename(&built, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&built);
        }
        dir
    })
    .clone()
}

/// A Debian root extracted from the cached minbase tarball into a temporary directory.
pub struct DebianRoot {
    dir: tempfile::TempDir,
}

impl DebianRoot {
    /// A fresh minbase root, or `None` (skipped) when prerequisites are missing outside CI.
    pub fn create(test: &str) -> Option<DebianRoot> {
        if !require_roots(test) {
            return None;
        }
        let tarball = minbase_tarball();
        let dir = tempfile::Builder::new()
            .prefix("nodepatch-root-")
            .tempdir()
            .expect("tempdir");
        run(Command::new("tar")
            .arg("-C")
            .arg(dir.path())
            .arg("-xf")
            .arg(&tarball));
        Some(DebianRoot { dir })
    }

    /// A root with the standard repository at /srv/repo, sources for `dists`, lists updated,
    /// and the v1 test packages installed.
    pub fn with_standard_repo(test: &str, dists: &[&str]) -> Option<DebianRoot> {
        let root = DebianRoot::create(test)?;
        root.add_repo(&standard_repo());
        root.set_sources(&["bookworm"]);
        root.apt_get(&["update"]);
        let v1: Vec<String> = V1_INSTALLED.iter().map(|n| format!("{n}=1.0-1")).collect();
        let mut args = vec!["install", "-y", "--no-install-recommends"];
        args.extend(v1.iter().map(String::as_str));
        root.apt_get(&args);
        root.set_sources(dists);
        root.apt_get(&["update"]);
        Some(root)
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Copy a repository to /srv/repo inside the root.
    pub fn add_repo(&self, repo: &Path) {
        let target = self.path().join("srv/repo");
        let _ = std::fs::remove_dir_all(&target);
        std::fs::create_dir_all(self.path().join("srv")).expect("mkdir srv");
        run(Command::new("cp").arg("-a").arg(repo).arg(&target));
    }

    /// Replace the root's apt sources with `deb [trusted=yes] file:/srv/repo <dist> main` lines.
    pub fn set_sources(&self, dists: &[&str]) {
        let lines: String = dists
            .iter()
            .map(|d| format!("deb [trusted=yes] file:/srv/repo {d} main\n"))
            .collect();
        std::fs::write(self.path().join("etc/apt/sources.list"), lines)
            .expect("write sources.list");
    }

    /// Run a command chrooted into the root (no check of the exit status).
    pub fn chroot_output(&self, argv: &[&str]) -> Output {
        Command::new("chroot")
            .arg(self.path())
            .args(argv)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("LC_ALL", "C")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .expect("run chroot")
    }

    /// Run a command chrooted into the root, panicking when it fails; returns stdout.
    pub fn chroot(&self, argv: &[&str]) -> String {
        let mut command = Command::new("chroot");
        command
            .arg(self.path())
            .args(argv)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("LC_ALL", "C")
            .env("DEBIAN_FRONTEND", "noninteractive");
        String::from_utf8_lossy(&run(&mut command).stdout).into_owned()
    }

    /// `apt-get <args>` in the root.
    pub fn apt_get(&self, args: &[&str]) -> String {
        let mut argv = vec!["apt-get", "-q"];
        argv.extend_from_slice(args);
        self.chroot(&argv)
    }

    /// Version of an installed package per dpkg-query, `None` when not installed.
    pub fn installed_version(&self, name: &str) -> Option<String> {
        let out = self.chroot_output(&["dpkg-query", "-W", "-f=${Status}\t${Version}", name]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (status, version) = text.split_once('\t')?;
        (out.status.success() && status.ends_with(" installed")).then(|| version.to_string())
    }

    /// dpkg's Status of a package.
    pub fn dpkg_status(&self, name: &str) -> String {
        let out = self.chroot_output(&["dpkg-query", "-W", "-f=${Status}", name]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `apt-mark hold <name>`.
    pub fn hold(&self, name: &str) {
        self.chroot(&["apt-mark", "hold", name]);
    }

    /// The `Inst` lines of `apt-get -s <command>` (the oracle of differential tests).
    pub fn simulated_inst_lines(&self, command: &str) -> Vec<InstLine> {
        let out = self.apt_get(&["-s", command]);
        out.lines().filter_map(InstLine::parse).collect()
    }
}

/// One `Inst` line of `apt-get -s`:
/// `Inst np-sec [1.0-1] (1.0-1+deb12u1 Debian-Security:12/oldstable-security, Debian:12/oldstable-updates [all])`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct InstLine {
    pub name: String,
    pub installed: Option<String>,
    pub version: String,
    pub origins: Vec<String>,
    pub arch: String,
}

impl InstLine {
    pub fn parse(line: &str) -> Option<InstLine> {
        let rest = line.strip_prefix("Inst ")?;
        let (name, rest) = rest.split_once(' ')?;
        let (installed, rest) = match rest.strip_prefix('[') {
            Some(r) => {
                let (old, r) = r.split_once("] ")?;
                (Some(old.to_string()), r)
            }
            None => (None, rest),
        };
        let inner = rest.strip_prefix('(')?;
        let inner = &inner[..inner.find(')')?];
        let (version, rest) = inner.split_once(' ')?;
        let arch_start = rest.rfind(" [")?;
        let arch = rest[arch_start + 2..].trim_end_matches(']').to_string();
        let mut origins: Vec<String> = rest[..arch_start].split(", ").map(str::to_string).collect();
        origins.sort();
        Some(InstLine {
            name: name.to_string(),
            installed,
            version: version.to_string(),
            origins,
            arch,
        })
    }
}
