//! The bad-input corpus: the real `nodepatch` binary against hostile or broken input (package
//! databases, lists, os-release, the offline commands' files, agent arguments). Every case
//! asserts the exit code and that the message names the file (and line where there is one);
//! none may hang, run out of memory, or report a node Compliant it cannot vouch for.
//!
//! The node roots are copied from `tests/fixtures/bad-input/debian-root` (a dpkg status with
//! openssl 3.0.11, and lists offering its security update 3.0.15 from deb.debian.org) and then
//! broken one way per case.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nodepatch::api::{Compliance, NodePatchReportStatus, OperationPhase};

/// Longest any case may take: every bad input must fail fast, not hang.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);

const STATUS: &str = "var/lib/dpkg/status";
const LISTS: &str = "var/lib/apt/lists";

fn fixture() -> PathBuf {
    support::repo_root().join("tests/fixtures/bad-input")
}

/// A copy of the fixture Debian root in a temporary directory.
fn debian_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&fixture().join("debian-root"), dir.path());
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy fixture");
        }
    }
}

/// Run the binary with `args`, killing it after [`CASE_TIMEOUT`].
fn nodepatch(args: &[&std::ffi::OsStr]) -> Output {
    let mut child = Command::new(support::nodepatch_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("RUST_LOG", "warn")
        .env_remove("NODE_NAME")
        .spawn()
        .expect("start nodepatch");
    let started = Instant::now();
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut buf).ok();
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut buf).ok();
        buf
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > CASE_TIMEOUT {
            child.kill().ok();
            child.wait().ok();
            panic!("nodepatch {args:?} did not finish within {CASE_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().expect("stdout thread"),
        stderr: err.join().expect("stderr thread"),
    }
}

fn args<'a>(items: &'a [&'a str]) -> Vec<&'a std::ffi::OsStr> {
    items.iter().map(std::ffi::OsStr::new).collect()
}

/// `nodepatch scan --output json --read-only --host-root <root>` and its status.
fn scan(root: &Path) -> (Output, NodePatchReportStatus) {
    let mut argv = args(&["scan", "--output", "json", "--read-only", "--host-root"]);
    argv.push(root.as_os_str());
    let out = nodepatch(&argv);
    let status: NodePatchReportStatus = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not a status ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, status)
}

fn message(status: &NodePatchReportStatus) -> String {
    status
        .operation
        .as_ref()
        .and_then(|o| o.message.clone())
        .unwrap_or_default()
}

/// The scan failed (exit 1, phase Failed, never Compliant) with a message holding every `needle`.
#[track_caller]
fn assert_scan_failed(root: &Path, needles: &[&str]) -> NodePatchReportStatus {
    let (out, status) = scan(root);
    let msg = message(&status);
    assert_eq!(out.status.code(), Some(1), "exit code; message: {msg}");
    assert_eq!(
        status.operation.as_ref().map(|o| o.phase),
        Some(OperationPhase::Failed),
        "{msg}"
    );
    assert_ne!(status.compliance, Compliance::Compliant, "{msg}");
    for needle in needles {
        assert!(msg.contains(needle), "message {msg:?} lacks {needle:?}");
    }
    status
}

fn edit(root: &Path, file: &str, edit: impl FnOnce(String) -> String) {
    let path = root.join(file);
    let text = std::fs::read_to_string(&path).expect("read fixture file");
    std::fs::write(&path, edit(text)).expect("write fixture file");
}

#[test]
fn the_intact_fixture_root_reports_the_openssl_security_update_missing() {
    let root = debian_root();
    let (out, status) = scan(root.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(status.compliance, Compliance::NonCompliant);
    let openssl = status
        .patches
        .iter()
        .find(|p| p.name == "openssl")
        .expect("openssl missing");
    assert_eq!(openssl.classification.as_deref(), Some("Security"));
    assert_eq!(
        openssl.available_version.as_deref(),
        Some("3.0.15-1~deb12u1")
    );
}

// ---- dpkg status ----

#[test]
fn an_installed_version_dpkg_rejects_fails_the_scan_naming_file_and_line() {
    // Before the fix this version ordered above every candidate: openssl's security update was
    // hidden and the node reported Compliant.
    let root = debian_root();
    edit(root.path(), STATUS, |s| {
        s.replace("Version: 3.0.11-1~deb12u2", "Version: A:3.0.11-1~deb12u2")
    });
    assert_scan_failed(
        root.path(),
        &["/var/lib/dpkg/status line 8", "openssl", "epoch"],
    );
}

#[test]
fn a_status_file_with_crlf_line_ends_fails_the_scan_naming_the_line() {
    let root = debian_root();
    edit(root.path(), STATUS, |s| s.replace('\n', "\r\n"));
    assert_scan_failed(root.path(), &["/var/lib/dpkg/status line 1", "CR"]);
}

#[test]
fn a_fifo_as_the_status_file_fails_the_scan_instead_of_hanging() {
    let root = debian_root();
    let status = root.path().join(STATUS);
    std::fs::remove_file(&status).expect("rm");
    let c = std::ffi::CString::new(status.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    assert_scan_failed(root.path(), &["/var/lib/dpkg/status", "not a regular file"]);
}

#[test]
fn an_unreadable_journal_record_fails_the_scan() {
    let root = debian_root();
    // A directory where dpkg's journal record should be a file.
    std::fs::create_dir_all(root.path().join("var/lib/dpkg/updates/0001")).expect("mkdir");
    assert_scan_failed(root.path(), &["/var/lib/dpkg/updates/0001"]);
}

#[test]
fn a_status_record_without_version_fails_the_scan_naming_the_line() {
    let root = debian_root();
    edit(root.path(), STATUS, |s| {
        s.replace("Version: 3.0.11-1~deb12u2\n", "")
    });
    assert_scan_failed(root.path(), &["/var/lib/dpkg/status line 8", "Version"]);
}

// ---- apt lists ----

const SECURITY_PACKAGES: &str =
    "deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages";

#[test]
fn a_gzip_bomb_in_the_lists_fails_the_scan_at_the_decompression_limit() {
    let root = debian_root();
    let lists = root.path().join(LISTS);
    let plain = std::fs::read(lists.join(SECURITY_PACKAGES)).expect("read");
    std::fs::remove_file(lists.join(SECURITY_PACKAGES)).expect("rm");
    // A valid Packages text followed by 300 MiB of newlines: 300 KiB compressed.
    let file = std::fs::File::create(lists.join(format!("{SECURITY_PACKAGES}.gz"))).expect("gz");
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &plain).expect("write");
    let block = vec![b'\n'; 1 << 20];
    for _ in 0..300 {
        std::io::Write::write_all(&mut gz, &block).expect("write");
    }
    gz.finish().expect("finish");
    assert_scan_failed(
        root.path(),
        &[
            &format!("/{LISTS}/{SECURITY_PACKAGES}.gz"),
            "decompresses to more than",
        ],
    );
}

#[test]
fn a_truncated_gzip_list_fails_the_scan_naming_the_file() {
    let root = debian_root();
    let lists = root.path().join(LISTS);
    std::fs::write(
        lists.join(format!("{SECURITY_PACKAGES}.gz")),
        b"\x1f\x8b\x08\x00garbage",
    )
    .expect("write");
    std::fs::remove_file(lists.join(SECURITY_PACKAGES)).expect("rm");
    assert_scan_failed(
        root.path(),
        &[&format!("/{LISTS}/{SECURITY_PACKAGES}.gz"), "decompress"],
    );
}

#[test]
fn a_malformed_packages_paragraph_fails_the_scan_naming_file_and_line() {
    let root = debian_root();
    edit(root.path(), &format!("{LISTS}/{SECURITY_PACKAGES}"), |s| {
        s.replace("Priority: optional", "this line has no colon")
    });
    assert_scan_failed(root.path(), &[SECURITY_PACKAGES, "line 4"]);
}

#[test]
fn a_non_utf8_file_name_in_the_lists_is_skipped_with_a_warning() {
    let root = debian_root();
    use std::os::unix::ffi::OsStrExt as _;
    let name = std::ffi::OsStr::from_bytes(b"bad\xffname_Packages");
    std::fs::write(root.path().join(LISTS).join(name), "Package: x\n").expect("write");
    let (out, status) = scan(root.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        status.compliance,
        Compliance::NonCompliant,
        "openssl still found"
    );
    assert!(
        message(&status).contains("not UTF-8"),
        "the skipped file is noted: {:?}",
        message(&status)
    );
}

#[test]
fn a_security_label_from_a_third_party_site_is_not_security() {
    // Before the fix any Release saying `Label: Debian-Security` made its packages security
    // updates, whoever served it.
    let root = debian_root();
    let lists = root.path().join(LISTS);
    for entry in std::fs::read_dir(&lists).expect("lists") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(rest) = name.strip_prefix("deb.debian.org_debian-security_") {
            std::fs::rename(
                entry.path(),
                lists.join(format!("repo.example.com_debian_{rest}")),
            )
            .expect("rename");
        }
    }
    let (out, status) = scan(root.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        status
            .patches
            .iter()
            .all(|p| p.classification.as_deref() != Some("Security")),
        "{:?}",
        status.patches
    );
    assert_eq!(status.security_non_compliant, 0);
}

// ---- os-release ----

#[test]
fn a_huge_pretty_name_is_cut_in_the_report() {
    let root = debian_root();
    let huge = "x".repeat(3 << 20);
    edit(root.path(), "etc/os-release", |s| {
        s.replace(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"",
            &format!("PRETTY_NAME=\"{huge}\""),
        )
    });
    let (out, status) = scan(root.path());
    assert!(out.status.success());
    let pretty = &status.os.as_ref().expect("os").pretty_name;
    assert!(pretty.len() <= 256, "PRETTY_NAME of {} bytes", pretty.len());
    assert!(
        out.stdout.len() < 64 * 1024,
        "status of {} bytes",
        out.stdout.len()
    );
}

#[test]
fn an_os_release_that_is_a_fifo_fails_the_scan() {
    let root = debian_root();
    let path = root.path().join("etc/os-release");
    std::fs::remove_file(&path).expect("rm");
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    assert_scan_failed(root.path(), &["/etc/os-release", "not a regular file"]);
}

#[test]
fn an_os_release_without_id_fails_the_scan() {
    let root = debian_root();
    edit(root.path(), "etc/os-release", |s| {
        s.replace("ID=debian\n", "")
    });
    assert_scan_failed(root.path(), &["ID"]);
}

// ---- evaluate and windows inputs ----

fn assert_usage_error(argv: &[&str], needles: &[&str]) {
    let out = nodepatch(&args(argv));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{argv:?}: {stderr}");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{argv:?}: {stderr:?} lacks {needle:?}"
        );
    }
}

fn write_temp(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write");
    path.display().to_string()
}

#[test]
fn evaluate_refuses_endless_and_oversized_inputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let predefined = "nodepatch-predefined-debian";
    assert_usage_error(
        &["evaluate", "-i", "/dev/zero", "-b", predefined],
        &["/dev/zero", "not a regular file"],
    );
    let input = write_temp(dir.path(), "input.yaml", "installed: []\ncandidates: []\n");
    assert_usage_error(
        &["evaluate", "-i", &input, "-b", "/dev/zero"],
        &["/dev/zero", "not a regular file"],
    );
    let big = dir.path().join("big.yaml");
    let file = std::fs::File::create(&big).expect("create");
    file.set_len(80 << 20).expect("sparse 80 MiB");
    assert_usage_error(
        &[
            "evaluate",
            "-i",
            &big.display().to_string(),
            "-b",
            predefined,
        ],
        &["big.yaml", "larger than"],
    );
}

#[test]
fn evaluate_refuses_deeply_nested_yaml_quickly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep = write_temp(dir.path(), "deep.yaml", &nested);
    let started = Instant::now();
    assert_usage_error(
        &["evaluate", "-i", &deep, "-b", "nodepatch-predefined-debian"],
        &["deep.yaml"],
    );
    let dashes = format!("{}a\n", "- ".repeat(100_000));
    let deep_baseline = write_temp(dir.path(), "deep-baseline.yaml", &dashes);
    let input = write_temp(dir.path(), "input.yaml", "installed: []\ncandidates: []\n");
    assert_usage_error(
        &["evaluate", "-i", &input, "-b", &deep_baseline],
        &["deep-baseline.yaml"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn evaluate_names_the_bad_field_of_an_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write_temp(
        dir.path(),
        "input.yaml",
        "installed:\n  - name: openssl\n    version: 7\n    bogus: [\n",
    );
    assert_usage_error(
        &[
            "evaluate",
            "-i",
            &input,
            "-b",
            "nodepatch-predefined-debian",
        ],
        &["input.yaml", "line"],
    );
}

#[test]
fn windows_refuses_endless_nested_and_broken_manifests() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_usage_error(
        &["windows", "-f", "/dev/zero"],
        &["/dev/zero", "not a regular file"],
    );
    let nested = format!("spec: {}{}\n", "{a: ".repeat(100_000), "}".repeat(100_000));
    let deep = write_temp(dir.path(), "deep.yaml", &nested);
    assert_usage_error(&["windows", "-f", &deep], &["deep.yaml"]);
    let broken = write_temp(
        dir.path(),
        "window.yaml",
        "kind: MaintenanceWindow\nspec:\n  schedule: cron(0 99 * * ? *)\n  duration: 2h\n",
    );
    assert_usage_error(&["windows", "-f", &broken], &["window.yaml"]);
    assert_usage_error(&["windows", "--schedule", "cron(0 0"], &["cron(0 0"]);
}

// ---- agent and scan arguments ----

#[test]
fn scan_refuses_a_root_that_is_not_a_directory() {
    assert_usage_error(
        &["scan", "--host-root", "/dev/null"],
        &["/dev/null", "not a directory"],
    );
    assert_usage_error(
        &["scan", "--host-root", "/", "--baseline", "/dev/zero"],
        &["/dev/zero", "not a regular file"],
    );
}

#[test]
fn agent_refuses_missing_and_malformed_arguments() {
    assert_usage_error(&["agent", "--node-name", "n"], &["--operation"]);
    assert_usage_error(
        &["agent", "--node-name", "n", "--operation", "Explode"],
        &["--operation", "Explode"],
    );
    assert_usage_error(
        &[
            "agent",
            "--node-name",
            "n",
            "--operation",
            "Scan",
            "--host-exec",
            "ssh",
        ],
        &["--host-exec", "ssh"],
    );
}

#[test]
fn scan_of_a_directory_root_runs_the_roots_own_package_manager_not_this_machines() {
    // Before, `--refresh` without `--host-exec` ran `nsenter -t 1 … apt-get update` on the
    // machine running the scan. The fixture root has no apt-get: the chroot says so, and the
    // scan falls back to the lists it has.
    let root = debian_root();
    let mut argv = args(&[
        "scan",
        "--refresh",
        "--output",
        "json",
        "--read-only",
        "--host-root",
    ]);
    argv.push(root.path().as_os_str());
    let out = nodepatch(&argv);
    let status: NodePatchReportStatus = serde_json::from_slice(&out.stdout).expect("status");
    let msg = message(&status);
    assert!(
        msg.contains("chroot: failed to run command 'apt-get'"),
        "{msg}"
    );
    assert!(!msg.contains("nsenter"), "{msg}");
    assert_eq!(status.compliance, Compliance::NonCompliant, "{msg}");
}
