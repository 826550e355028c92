//! The agent's in-process apt scan vs `apt-get -s dist-upgrade` on the same root.
//!
//! Two roots, both a debootstrap minbase bookworm root (e2e/roots/debian-root.sh) so the root's
//! own apt can run in it through chroot:
//! - `synthetic`: 1,000 extra installed packages in dpkg's status and full-size lists (a 60,000
//!   package `bookworm` index of real-sized stanzas, plus `bookworm-updates` and
//!   `bookworm-security` with 300 and 200 upgrades);
//! - `machine`: this machine's own dpkg status and `apt-get update` lists (real Debian data,
//!   lz4-compressed as this machine stores them), when present.
//!
//! Before timing, the candidate sets are checked to be identical (the bench panics otherwise).
//! Goal: in-process ≤ 100 ms and ≥ 10× faster than apt-get. Results and the exact command are in
//! docs/benchmarks.md. Without root or debootstrap only the in-process side of `synthetic` runs
//! (on a root without apt).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::Timestamp;
use nodepatch::agent::backend::apt::AptSnapshot;
use nodepatch::agent::backend::contract::NodeAgent;
use nodepatch::agent::host::HostRoot;
use nodepatch::agent::host::exec::ChrootExecutor;
use nodepatch::agent::operation::{BaselineChoice, OperationRequest, run_operation};
use nodepatch::api::Operation;

const INSTALLED: usize = 1_000;
const AVAILABLE: usize = 60_000;
const UPDATES: usize = 300;
const SECURITY: usize = 200;

fn can_chroot() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let have = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool} >/dev/null")])
            .status()
            .is_ok_and(|s| s.success())
    };
    root && have("chroot") && have("debootstrap")
}

/// Extract the cached minbase root into `dir`, or `None` when it cannot be had.
fn minbase_root(dir: &Path) -> Option<()> {
    if !can_chroot() {
        eprintln!("apt_scan: not root or no debootstrap: timing the in-process side only");
        return None;
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(repo.join("e2e/roots/debian-root.sh"))
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "apt_scan: e2e/roots/debian-root.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let tarball = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-xf")
        .arg(tarball)
        .status()
        .ok()?
        .success()
        .then_some(())
}

/// A Packages stanza of realistic size (~850 bytes, like Debian's).
fn stanza(out: &mut String, name: &str, version: &str, i: usize) {
    let _ = write!(
        out,
        "Package: {name}\nVersion: {version}\nInstalled-Size: {size}\nMaintainer: Debian Bench Maintainers <bench@lists.debian.invalid>\n\
         Architecture: amd64\nDepends: libc6 (>= 2.34), zlib1g (>= 1:1.2.0)\n\
         Description: synthetic benchmark package number {i}\n Long description line one of the synthetic package.\n\
         Homepage: https://example.invalid/{name}\nDescription-md5: 0123456789abcdef0123456789abcdef\n\
         Tag: admin::benchmark, role::program, implemented-in::c\nSection: utils\nPriority: optional\n\
         Filename: pool/main/b/{name}/{name}_{version}_amd64.deb\nSize: {deb}\nMD5sum: 0123456789abcdef0123456789abcdef\n\
         SHA256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n\n",
        size = 100 + i % 5000,
        deb = 20_000 + i,
    );
}

fn name(i: usize) -> String {
    format!("bench-pkg-{i:05}")
}

/// Add the synthetic installed packages and lists to a root.
fn synthesise(root: &Path) {
    let status_path = root.join("var/lib/dpkg/status");
    let mut status = std::fs::read_to_string(&status_path).unwrap_or_default();
    if status.is_empty() {
        // No minbase: a dpkg package so the architecture is known.
        status.push_str("Package: dpkg\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.21.22\n\n");
        std::fs::create_dir_all(root.join("etc")).expect("mkdir etc");
        std::fs::write(
            root.join("etc/os-release"),
            "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
        )
        .expect("os-release");
    }
    if !status.ends_with("\n\n") {
        status.push('\n');
    }
    for i in 0..INSTALLED {
        let _ = write!(
            status,
            "Package: {}\nStatus: install ok installed\nPriority: optional\nSection: utils\nInstalled-Size: {}\n\
             Maintainer: Debian Bench Maintainers <bench@lists.debian.invalid>\nArchitecture: amd64\nVersion: 1.0-1\n\
             Depends: libc6 (>= 2.34), zlib1g (>= 1:1.2.0)\nDescription: synthetic benchmark package number {i}\n\n",
            name(i),
            // The same control data as the list's stanza: apt tells versions apart by it.
            100 + i % 5000
        );
    }
    std::fs::create_dir_all(status_path.parent().expect("dpkg dir")).expect("mkdir dpkg");
    std::fs::write(&status_path, status).expect("write status");

    let lists = root.join("var/lib/apt/lists");
    let _ = std::fs::remove_dir_all(&lists);
    std::fs::create_dir_all(lists.join("partial")).expect("mkdir lists");
    let suites: [(&str, &str, &str, String); 3] = [
        ("bookworm", "Debian", "oldstable", {
            let mut text = String::with_capacity(AVAILABLE * 900);
            for i in 0..AVAILABLE {
                stanza(&mut text, &name(i), "1.0-1", i);
            }
            text
        }),
        ("bookworm-updates", "Debian", "oldstable-updates", {
            let mut text = String::new();
            for i in 0..UPDATES {
                stanza(&mut text, &name(i * 3), "1.0-2", i);
            }
            text
        }),
        (
            "bookworm-security",
            "Debian-Security",
            "oldstable-security",
            {
                let mut text = String::new();
                for i in 0..SECURITY {
                    stanza(&mut text, &name(i * 5 + 1), "1.0-1+deb12u1", i);
                }
                text
            },
        ),
    ];
    let mut sources = String::new();
    for (dist, label, suite, packages) in suites {
        let prefix = format!("_srv_bench_dists_{dist}");
        std::fs::write(
            lists.join(format!("{prefix}_Release")),
            format!("Origin: Debian\nLabel: {label}\nSuite: {suite}\nVersion: 12\nCodename: {dist}\nArchitectures: amd64\nComponents: main\n"),
        )
        .expect("write Release");
        std::fs::write(
            lists.join(format!("{prefix}_main_binary-amd64_Packages")),
            packages,
        )
        .expect("write Packages");
        let _ = writeln!(sources, "deb [trusted=yes] file:/srv/bench {dist} main");
    }
    std::fs::create_dir_all(root.join("etc/apt")).expect("mkdir apt");
    std::fs::write(root.join("etc/apt/sources.list"), sources).expect("sources");
}

/// Replace a root's dpkg status and lists with this machine's own; `None` when it has none.
fn machine_data(root: &Path) -> Option<()> {
    let lists = Path::new("/var/lib/apt/lists");
    let names: Vec<String> = std::fs::read_dir(lists)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let releases: Vec<&String> = names
        .iter()
        .filter(|n| n.ends_with("_InRelease") && n.contains("_dists_bookworm"))
        .collect();
    if releases.is_empty() {
        eprintln!("apt_scan: this machine has no bookworm lists: skipping the `machine` root");
        return None;
    }
    let target = root.join("var/lib/apt/lists");
    let _ = std::fs::remove_dir_all(&target);
    std::fs::create_dir_all(target.join("partial")).ok()?;
    let mut sources = String::new();
    for release in &releases {
        let prefix = release.trim_end_matches("_InRelease");
        let (base, suite) = prefix.split_once("_dists_")?;
        let _ = writeln!(
            sources,
            "deb [trusted=yes] http://{} {suite} main",
            base.replace('_', "/")
        );
        for n in names.iter().filter(|n| {
            n.starts_with(prefix) && (n.ends_with("_InRelease") || n.contains("_Packages"))
        }) {
            std::fs::copy(lists.join(n), target.join(n)).ok()?;
        }
    }
    std::fs::write(root.join("etc/apt/sources.list"), sources).ok()?;
    let gzip_indexes = Path::new("/etc/apt/apt.conf.d/docker-gzip-indexes");
    if gzip_indexes.exists() {
        std::fs::copy(
            gzip_indexes,
            root.join("etc/apt/apt.conf.d/docker-gzip-indexes"),
        )
        .ok()?;
    }
    std::fs::copy("/var/lib/dpkg/status", root.join("var/lib/dpkg/status")).ok()?;
    Some(())
}

fn apt_get_simulate(root: &Path) -> String {
    let out = Command::new("chroot")
        .arg(root)
        .args(["apt-get", "-s", "-q", "dist-upgrade"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C")
        .output()
        .expect("run apt-get -s");
    assert!(
        out.status.success(),
        "apt-get -s failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Upgrades as (name, installed, candidate) from apt's Inst lines, and the count of new packages.
fn apt_upgrades(output: &str) -> (BTreeSet<(String, String, String)>, usize) {
    let mut upgrades = BTreeSet::new();
    let mut new = 0;
    for line in output.lines().filter_map(|l| l.strip_prefix("Inst ")) {
        let mut words = line.split_whitespace();
        let name = words
            .next()
            .unwrap_or_default()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string();
        match words.next() {
            Some(old) if old.starts_with('[') => {
                let candidate = words
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches('(')
                    .to_string();
                upgrades.insert((
                    name,
                    old.trim_matches(|c| c == '[' || c == ']').to_string(),
                    candidate,
                ));
            }
            _ => new += 1,
        }
    }
    (upgrades, new)
}

fn agent_upgrades(root: &Path) -> BTreeSet<(String, String, String)> {
    let snapshot = AptSnapshot::read(&HostRoot::new(root)).expect("agent scan");
    snapshot
        .installable_upgrades()
        .map(|u| {
            (
                u.name.clone(),
                u.installed_version.clone(),
                u.candidate.version.clone(),
            )
        })
        .collect()
}

/// One timed pass through the phases of the in-process scan, printed, to show where time goes.
fn phase_times(label: &str, host: &HostRoot) {
    use nodepatch::agent::backend::apt::{dpkg, lists};
    let t = std::time::Instant::now();
    let db = dpkg::load_database(host).expect("dpkg");
    let t_dpkg = t.elapsed();
    let found = lists::discover_lists(host, &db.architectures()).expect("lists");
    let t_discover = t.elapsed();
    let mut read = Duration::ZERO;
    for index in &found.indexes {
        let r = std::time::Instant::now();
        black_box(
            lists::read_list_file(host, &index.file_name)
                .expect("read")
                .text()
                .len(),
        );
        read += r.elapsed();
    }
    let t_read = t.elapsed();
    let available = lists::collect_available(host, &found, &db).expect("collect");
    let t_collect = t.elapsed();
    let policy =
        nodepatch::agent::backend::apt::preferences::AptPolicy::defaults(&found, &db.native_arch);
    black_box(
        nodepatch::agent::backend::apt::upgrades::compute_upgrades(
            &db, &found, &available, &policy,
        )
        .expect("upgrades")
        .upgrades
        .len(),
    );
    let t_policy = t.elapsed();
    eprintln!(
        "apt_scan/{label} phases: dpkg {:?}, discover {:?}, read+decompress lists {read:?}, read+decompress+scan lists {:?}, policy {:?}",
        t_dpkg,
        t_discover - t_dpkg,
        t_collect - t_read,
        t_policy - t_collect
    );
}

fn bench_root(c: &mut Criterion, label: &str, root: &Path, with_apt: bool) {
    let agent_set = agent_upgrades(root);
    if with_apt {
        let output = apt_get_simulate(root);
        let (apt_set, new_packages) = apt_upgrades(&output);
        if agent_set != apt_set {
            let only_agent: Vec<_> = agent_set.difference(&apt_set).take(10).collect();
            let only_apt: Vec<_> = apt_set.difference(&agent_set).take(10).collect();
            let head: String = output.lines().take(20).collect::<Vec<_>>().join("\n");
            panic!(
                "{label}: agent and apt-get -s dist-upgrade disagree; only agent: {only_agent:?}; only apt: {only_apt:?}; apt said:\n{head}"
            );
        }
        eprintln!(
            "apt_scan/{label}: {} upgrades, identical to apt-get -s dist-upgrade ({} new packages apt would also pull in)",
            agent_set.len(),
            new_packages
        );
    }
    let host = HostRoot::new(root);
    phase_times(label, &host);
    let mut group = c.benchmark_group(format!("apt_scan/{label}"));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("in_process_candidates", |b| {
        b.iter(|| black_box(AptSnapshot::read(&host).expect("scan").upgrades.len()))
    });
    let agent = NodeAgent {
        root: host.clone(),
        executor: Arc::new(ChrootExecutor::new(root)),
    };
    let mut request = OperationRequest::new(Operation::Scan, "");
    request.refresh = false;
    request.record_first_seen = false;
    group.bench_function("in_process_full_scan", |b| {
        b.iter(|| {
            black_box(
                run_operation(
                    &agent,
                    &request,
                    &BaselineChoice::PredefinedForNode,
                    &Timestamp::now,
                )
                .counts
                .missing,
            )
        })
    });
    if with_apt {
        group.bench_function("apt_get_simulate_dist_upgrade", |b| {
            b.iter(|| black_box(apt_get_simulate(root).len()))
        });
    }
    group.finish();
}

fn apt_scan(c: &mut Criterion) {
    let synthetic = tempfile::Builder::new()
        .prefix("nodepatch-bench-root-")
        .tempdir()
        .expect("tempdir");
    let with_apt = minbase_root(synthetic.path()).is_some();
    synthesise(synthetic.path());
    bench_root(c, "synthetic", synthetic.path(), with_apt);
    drop(synthetic);
    if with_apt {
        let machine = tempfile::Builder::new()
            .prefix("nodepatch-bench-root-")
            .tempdir()
            .expect("tempdir");
        if minbase_root(machine.path()).is_some() && machine_data(machine.path()).is_some() {
            bench_root(c, "machine", machine.path(), true);
        }
    }
}

criterion_group!(benches, apt_scan);
criterion_main!(benches);
