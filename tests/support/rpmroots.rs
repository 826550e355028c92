//! rpm-family fixture roots for agent tests, built offline: small noarch rpms (rpmbuild), an
//! rpm-md repository (createrepo_c, gzip metadata) with an updateinfo holding security
//! Critical/Important/Moderate, bugfix and enhancement notices with dates and CVEs
//! (modifyrepo_c), and per test a root with an os-release, an rpm database holding the base
//! versions (`rpm --root --dbpath /var/lib/rpm -i --nodeps --noscripts`), an injected boot time
//! (`/proc/stat` `btime`) and the repository configured for dnf (`/etc/yum.repos.d`) or zypper
//! (`zypper --root … addrepo`).
//!
//! The repository is built once per machine under `~/.cache/nodepatch/rpm-repo-<hash of the
//! fixture definition>` (built in a temporary directory and renamed into place, so concurrent
//! test binaries never see half a repository). Every rpm, dnf and zypper call runs against the
//! test root only (`--root`, `--installroot`); the machine's own rpm state is never touched.
//! When a tool is missing the test is skipped with the reason printed, except with `CI=true`,
//! where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use nodepatch::agent::host::command::{HostCommand, HostExecutor};
use nodepatch::agent::host::exec::InstallrootExecutor;
use sha2::{Digest, Sha256};

use super::roots::run;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", "command -v \"$1\" >/dev/null", "sh", program])
        .status()
        .is_ok_and(|s| s.success())
}

/// Skip (outside CI) or fail (in CI) when `tools` are missing. Returns false to skip.
pub fn require_tools(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !have(t)).collect();
    if missing.is_empty() {
        return true;
    }
    let reason = format!(
        "missing {}: run scripts/install-deps.sh",
        missing.join(", ")
    );
    if in_ci() {
        panic!("{test}: {reason} (CI=true makes this a failure)");
    }
    eprintln!("SKIPPED {test}: {reason}");
    false
}

/// The tools a dnf fixture needs.
pub const DNF_TOOLS: [&str; 5] = ["rpm", "rpmbuild", "createrepo_c", "modifyrepo_c", "dnf"];
/// The tools a zypper fixture needs.
pub const ZYPPER_TOOLS: [&str; 5] = ["rpm", "rpmbuild", "createrepo_c", "modifyrepo_c", "zypper"];

/// One rpm of the fixture.
#[derive(Clone, Copy, Debug)]
pub struct TestRpm {
    pub name: &'static str,
    pub version: &'static str,
    pub release: &'static str,
    /// A `Requires:` that nothing provides (the package cannot be installed).
    pub requires: Option<&'static str>,
}

const fn rpm(name: &'static str, version: &'static str) -> TestRpm {
    TestRpm {
        name,
        version,
        release: "1",
        requires: None,
    }
}

/// Base versions, installed in every fresh root.
pub const BASE: [TestRpm; 9] = [
    rpm("np-crit", "1.0"),
    rpm("np-imp", "1.0"),
    rpm("np-mod", "1.0"),
    rpm("np-bug", "1.0"),
    rpm("np-enh", "1.0"),
    rpm("np-recent", "1.0"),
    rpm("np-fail", "1.0"),
    rpm("np-done", "1.1"),
    rpm("np-other", "1.0"),
];

/// What the repository offers.
pub const REPO: [TestRpm; 10] = [
    rpm("np-crit", "1.1"),
    rpm("np-crit", "1.2"),
    rpm("np-imp", "1.1"),
    rpm("np-mod", "1.1"),
    rpm("np-bug", "1.1"),
    rpm("np-enh", "1.1"),
    rpm("np-recent", "1.1"),
    TestRpm {
        requires: Some("np-nonexistent"),
        ..rpm("np-fail", "1.1")
    },
    rpm("np-done", "1.1"),
    rpm("np-new", "1.0"),
];

/// The fixed "now" of the tests: np-recent's advisory (updated 2024-05-30) is two days old.
pub const NOW: &str = "2024-06-01T12:00:00Z";

/// The updateinfo of the repository:
/// | id | type | severity | package | dates | CVEs | reboot |
/// |---|---|---|---|---|---|---|
/// | NPSA-2024:0001 | security | Critical | np-crit 1.1-1 | issued 2024-01-10, updated 2024-01-12 | CVE-2024-1001 | yes |
/// | NPSA-2024:0002 | security | Important | np-imp 1.1-1 | issued 2024-02-01 | CVE-2024-1002, CVE-2024-1003 | no |
/// | NPSA-2024:0003 | security | Moderate | np-mod 1.1-1 | issued 2024-02-02 | CVE-2024-1004 | no |
/// | NPBA-2024:0004 | bugfix | - | np-bug 1.1-1 | issued 2024-02-03 | - | no |
/// | NPEA-2024:0005 | enhancement | - | np-enh 1.1-1 | issued 2024-02-04 | - | no |
/// | NPSA-2024:0006 | security | Important | np-fail 1.1-1 | issued 2024-02-05 | CVE-2024-1006 | no |
/// | NPSA-2024:0007 | security | Critical | np-recent 1.1-1 | issued 2024-05-29, updated 2024-05-30 | CVE-2024-1007 | no |
/// | NPSA-2023:0009 | security | Important | np-done 1.1-1 (installed) | issued 2023-11-01 | CVE-2023-9009 | no |
/// | NPSA-2024:0010 | security | Critical | np-new 1.0-1 (not installed) | issued 2024-01-01 | CVE-2024-1010 | no |
pub const UPDATEINFO: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<updates>
  <update from="tests@nodepatch.invalid" status="final" type="security" version="2">
    <id>NPSA-2024:0001</id>
    <title>Critical: np-crit security update</title>
    <issued date="2024-01-10 08:00:00"/>
    <updated date="2024-01-12 00:00:00"/>
    <severity>Critical</severity>
    <description>np-crit remote code execution</description>
    <references>
      <reference href="https://cve.invalid/CVE-2024-1001" id="CVE-2024-1001" title="CVE-2024-1001" type="cve"/>
      <reference href="https://bugzilla.invalid/1001" id="1001" title="np-crit" type="bugzilla"/>
    </references>
    <pkglist><collection short="np"><name>np</name>
      <package name="np-crit" version="1.1" release="1" epoch="0" arch="noarch" src="np-crit-1.1-1.src.rpm">
        <filename>np-crit-1.1-1.noarch.rpm</filename>
        <reboot_suggested>True</reboot_suggested>
      </package>
    </collection></pkglist>
  </update>
  <update from="tests@nodepatch.invalid" status="final" type="security" version="2">
    <id>NPSA-2024:0002</id>
    <title>Important: np-imp security update</title>
    <issued date="2024-02-01 00:00:00"/>
    <severity>Important</severity>
    <references>
      <reference href="https://cve.invalid/CVE-2024-1002" id="CVE-2024-1002" title="CVE-2024-1002" type="cve"/>
      <reference href="https://cve.invalid/CVE-2024-1003" id="CVE-2024-1003" title="CVE-2024-1003" type="cve"/>
    </references>
    <pkglist><collection short="np"><name>np</name>
      <package name="np-imp" version="1.1" release="1" epoch="0" arch="noarch"><filename>np-imp-1.1-1.noarch.rpm</filename></package>
    </collection></pkglist>
  </update>
  <update from="tests@nodepatch.invalid" status="final" type="security" version="2">
    <id>NPSA-2024:0003</id>
    <title>Moderate: np-mod security update</title>
    <issued date="2024-02-02 00:00:00"/>
    <severity>Moderate</severity>
    <references><reference href="https://cve.invalid/CVE-2024-1004" id="CVE-2024-1004" title="CVE-2024-1004" type="cve"/></references>
    <pkglist><collection short="np"><name>np</name>
      <package name="np-mod" version="1.1" release="1" epoch="0" arch="noarch"><filename>np-mod-1.1-1.noarch.rpm</filename></package>
    </collection></pkglist>
  </update>
  <update from="tests@nodepatch.invalid" status="final" type="bugfix" version="2">
    <id>NPBA-2024:0004</id>
    <title>np-bug bug fix update</title>
    <issued date="2024-02-03 00:00:00"/>
    <pkglist><collection short="np"><name>np</name>
      <package name="np-bug" version="1.1" release="1" epoch="0" arch="noarch"><filename>np-bug-1.1-1.noarch.rpm</filename></package>
    </collection></pkglist>
  </update>
  <update from="tests@nodepatch.invalid" status="final" type="enhancement" version="2">
    <id>NPEA-2024:0005</id>
    <title>np-enh enhancement update</title>
    <issued date="2024-02-04 00:00:00"/>
    <pkglist><collection short="np"><name>np</name>
      <package name="np-enh" version="1.1" release="1" epoch="0" arch="noarch"><filename>np-enh-1.1-1.noarch.rpm</filename></package>
    </collection></pkglist>
  </update>
  <update from="tests@nodepatch.invalid" status="final" type="security" version="2">
    <id>NPSA-2024:0006</id>
    <title>Important: np-fail security update</title>
    <issued date="2024-02-05 00:00:00"/>
    <severity>Important</severity>
    <references><reference href="https://cve.invalid/CVE-2024-1006" id="CVE-2024-1006" title="CVE-2024-1006" type="cve"/></references>
    <pkglist><collection short="np"><name>np</name>
      <package name="np-fail" version="1.1" release="1" epoch="0" arch="noarch"><filename>np-fail-1.1-1.noarch.rpm</filename></package>
    </collection></pkglist>
  </update>
  <update from="tests@nodepatch.invalid" status="final" type="security" version="2">
    <id>NPSA-2024:0007</id>
    <title>Critical: np-recent security update</title>
    <issued date="2024-05-29 00:00:00"/>
    <updated date="2024-05-30 00:00:00"/>
    <severity>Critical</severity>
    <references><reference href="https://cve.invalid/CVE-2024-1007" id="CVE-2024-1007" title="CVE-2024-1007" type="cve"/></references>
    <pkglist><collection short="np"><name>np</name>
      <package name="np-recent" version="1.1" release="1" epoch="0" arch="noarch"><filename>np-recent-1.1-1.noarch.rpm</filename></package>
    </collection></pkglist>
  </update>
  <update from="tests@nodepatch.invalid" status="final" type="security" version="2">
    <id>NPSA-2023:0009</id>
    <title>Important: np-done security update</title>
    <issued date="2023-11-01 00:00:00"/>
    <severity>Important</severity>
    <references><reference href="https://cve.invalid/CVE-2023-9009" id="CVE-2023-9009" title="CVE-2023-9009" type="cve"/></references>
    <pkglist><collection short="np"><name>np</name>
      <package name="np-done" version="1.1" release="1" epoch="0" arch="noarch"><filename>np-done-1.1-1.noarch.rpm</filename></package>
    </collection></pkglist>
  </update>
  <update from="tests@nodepatch.invalid" status="final" type="security" version="2">
    <id>NPSA-2024:0010</id>
    <title>Critical: np-new security update</title>
    <issued date="2024-01-01 00:00:00"/>
    <severity>Critical</severity>
    <references><reference href="https://cve.invalid/CVE-2024-1010" id="CVE-2024-1010" title="CVE-2024-1010" type="cve"/></references>
    <pkglist><collection short="np"><name>np</name>
      <package name="np-new" version="1.0" release="1" epoch="0" arch="noarch"><filename>np-new-1.0-1.noarch.rpm</filename></package>
    </collection></pkglist>
  </update>
</updates>
"#;

const SPEC: &str = r#"Name: %{pname}
Version: %{pver}
Release: %{prel}
Summary: nodepatch test package
License: Apache-2.0
BuildArch: noarch
%{?preq:Requires: %{preq}}
%description
nodepatch test package.
%install
mkdir -p %{buildroot}/usr/share/%{pname}
echo %{pver}-%{prel} > %{buildroot}/usr/share/%{pname}/VERSION
%files
/usr/share/%{pname}/VERSION
"#;

fn cache_dir() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache/nodepatch")
}

fn build_rpm(topdir: &Path, spec: &Path, p: &TestRpm) -> PathBuf {
    let mut command = Command::new("rpmbuild");
    command
        .arg("-bb")
        .arg("--quiet")
        .args(["--define", &format!("_topdir {}", topdir.display())])
        .args(["--define", &format!("pname {}", p.name)])
        .args(["--define", &format!("pver {}", p.version)])
        .args(["--define", &format!("prel {}", p.release)]);
    if let Some(req) = p.requires {
        command.args(["--define", &format!("preq {req}")]);
    }
    run(command.arg(spec));
    topdir.join(format!(
        "RPMS/noarch/{}-{}-{}.noarch.rpm",
        p.name, p.version, p.release
    ))
}

/// The built fixture: base rpms and the repository.
pub struct RpmFixture {
    /// Directory of the base rpms.
    pub base: PathBuf,
    /// The rpm-md repository.
    pub repo: PathBuf,
}

/// Build (once per machine and fixture definition) the base rpms and the repository.
pub fn fixture() -> &'static RpmFixture {
    static FIXTURE: OnceLock<RpmFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut hasher = Sha256::new();
        hasher.update(SPEC);
        hasher.update(UPDATEINFO);
        hasher.update(format!("{BASE:?}{REPO:?}"));
        let key: String = hasher
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        let dir = cache_dir().join(format!("rpm-repo-{key}"));
        if !dir.join("repo/repodata/repomd.xml").exists() {
            std::fs::create_dir_all(cache_dir()).expect("cache dir");
            let work = cache_dir().join(format!("rpm-repo-{key}.tmp.{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&work);
            let top = work.join("top");
            let (base, repo) = (work.join("base"), work.join("repo"));
            for d in [&top, &base, &repo] {
                std::fs::create_dir_all(d).expect("mkdir");
            }
            let spec = work.join("np.spec");
            std::fs::write(&spec, SPEC).expect("spec");
            for (list, dest) in [(&BASE[..], &base), (&REPO[..], &repo)] {
                for p in list {
                    let built = build_rpm(&top, &spec, p);
                    std::fs::copy(&built, dest.join(built.file_name().expect("name")))
                        .expect("copy rpm");
                }
            }
            run(Command::new("createrepo_c")
                .args(["--quiet", "--general-compress-type", "gz"])
                .arg(&repo));
            let updateinfo = work.join("updateinfo.xml");
            std::fs::write(&updateinfo, UPDATEINFO).expect("updateinfo");
            run(Command::new("modifyrepo_c")
                .args(["--mdtype=updateinfo", "--compress-type", "gz"])
                .arg(&updateinfo)
                .arg(repo.join("repodata")));
            let _ = std::fs::remove_dir_all(&top);
            // Another test binary may have finished first: then keep its copy.
            if std::fs::rename(&work, &dir).is_err() {
                let _ = std::fs::remove_dir_all(&work);
            }
        }
        RpmFixture {
            base: dir.join("base"),
            repo: dir.join("repo"),
        }
    })
}

/// The boot time written to the root's `/proc/stat`: long before any test install.
pub const BOOT_TIME: i64 = 1_000_000_000;

/// A root for one test (removed on drop).
pub struct RpmRoot {
    dir: tempfile::TempDir,
}

pub const ROCKY_OS_RELEASE: &str = "NAME=\"Rocky Linux\"\nVERSION=\"9.4 (Blue Onyx)\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\nPRETTY_NAME=\"Rocky Linux 9.4 (Blue Onyx)\"\n";
pub const SLES_OS_RELEASE: &str = "NAME=\"SLES\"\nVERSION=\"15-SP6\"\nVERSION_ID=\"15.6\"\nPRETTY_NAME=\"SUSE Linux Enterprise Server 15 SP6\"\nID=\"sles\"\nID_LIKE=\"suse\"\n";

impl RpmRoot {
    /// A root with `os_release`, the base versions installed and the boot time injected.
    fn new(os_release: &str) -> RpmRoot {
        let fixture = fixture();
        let dir = tempfile::Builder::new()
            .prefix("nodepatch-rpmroot-")
            .tempdir()
            .expect("tempdir");
        let root = dir.path();
        for d in ["etc", "proc", "var/lib/rpm"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        std::fs::write(root.join("etc/os-release"), os_release).expect("os-release");
        std::fs::write(
            root.join("proc/stat"),
            format!("cpu  1 2 3 4\nbtime {BOOT_TIME}\nprocesses 1\n"),
        )
        .expect("proc/stat");
        let rpm = || {
            let mut c = Command::new("rpm");
            c.arg("--root").arg(root).args(["--dbpath", "/var/lib/rpm"]);
            c
        };
        run(rpm().arg("--initdb"));
        let mut install = rpm();
        install.args(["-i", "--nodeps", "--noscripts"]);
        for p in BASE {
            install.arg(
                fixture
                    .base
                    .join(format!("{}-{}-{}.noarch.rpm", p.name, p.version, p.release)),
            );
        }
        run(&mut install);
        RpmRoot { dir }
    }

    /// A Rocky Linux 9 root whose dnf repository file points at the fixture repository.
    pub fn rocky() -> RpmRoot {
        let root = RpmRoot::new(ROCKY_OS_RELEASE);
        let repos = root.path().join("etc/yum.repos.d");
        std::fs::create_dir_all(&repos).expect("mkdir");
        std::fs::write(
            repos.join("np.repo"),
            format!(
                "[np]\nname=nodepatch test repository\nbaseurl=file://{}\ngpgcheck=0\nenabled=1\n",
                fixture().repo.display()
            ),
        )
        .expect("repo file");
        root
    }

    /// A SLES 15 root with the fixture repository added to zypper (alias `np`, no GPG checks).
    pub fn sles() -> RpmRoot {
        let root = RpmRoot::new(SLES_OS_RELEASE);
        // Through the agent's own installroot executor, so zypper sees the root's rpm database.
        let url = format!("file://{}", fixture().repo.display());
        let out = InstallrootExecutor::new(root.path())
            .run(&HostCommand::new([
                "zypper",
                "--non-interactive",
                "addrepo",
                "--no-gpgcheck",
                url.as_str(),
                "np",
            ]))
            .expect("run zypper addrepo");
        assert!(
            out.success(),
            "zypper addrepo: {}\n{}",
            out.stdout,
            out.stderr
        );
        root
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `name` → `version-release` of the installed packages.
    pub fn versions(&self) -> std::collections::BTreeMap<String, String> {
        let out = run(Command::new("rpm").arg("--root").arg(self.path()).args([
            "--dbpath",
            "/var/lib/rpm",
            "-qa",
            "--qf",
            "%{NAME}\\t%{VERSION}-%{RELEASE}\\n",
        ]));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }
}
