use std::time::Duration;

use super::command::{BoundedCapture, HostCommand, HostExecutor, run_argv};
use super::exec::{ChrootExecutor, InstallrootExecutor};
use super::*;
use std::os::unix::fs::symlink;

fn root_with(files: &[&str]) -> (tempfile::TempDir, HostRoot) {
    let dir = tempfile::tempdir().expect("tempdir");
    for f in files {
        let p = dir.path().join(f.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, f.as_bytes()).expect("write");
    }
    let root = HostRoot::new(dir.path());
    (dir, root)
}

#[test]
fn absolute_symlink_resolves_inside_the_root() {
    let (dir, root) = root_with(&["/run/reboot-required"]);
    std::fs::create_dir_all(dir.path().join("var")).expect("mkdir");
    symlink("/run", dir.path().join("var/run")).expect("symlink");
    let resolved = root.resolve("/var/run/reboot-required").expect("resolve");
    assert_eq!(resolved, dir.path().join("run/reboot-required"));
    assert_eq!(
        root.read_to_string("/var/run/reboot-required")
            .expect("read"),
        "/run/reboot-required"
    );
}

#[test]
fn dot_dot_is_clamped_at_the_root() {
    let (dir, root) = root_with(&["/etc/os-release"]);
    assert_eq!(
        root.resolve("/../../etc/os-release").expect("resolve"),
        dir.path().join("etc/os-release")
    );
    std::fs::create_dir_all(dir.path().join("a")).expect("mkdir");
    symlink("../../../../etc", dir.path().join("a/up")).expect("symlink");
    assert_eq!(
        root.resolve("/a/up/os-release").expect("resolve"),
        dir.path().join("etc/os-release")
    );
}

#[test]
fn relative_symlink_chain_is_followed() {
    let (dir, root) = root_with(&["/usr/lib/os-release"]);
    std::fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
    symlink("../usr/lib/os-release", dir.path().join("etc/os-release")).expect("symlink");
    symlink("os-release", dir.path().join("etc/os-release-link")).expect("symlink");
    assert_eq!(
        root.resolve("/etc/os-release-link").expect("resolve"),
        dir.path().join("usr/lib/os-release")
    );
}

#[test]
fn symlink_loop_is_an_error_not_a_hang() {
    let (dir, root) = root_with(&[]);
    symlink("/b", dir.path().join("a")).expect("symlink");
    symlink("/a", dir.path().join("b")).expect("symlink");
    assert!(matches!(
        root.resolve("/a/x"),
        Err(HostError::SymlinkLoop { .. })
    ));
}

#[test]
fn missing_components_are_appended_lexically() {
    let (dir, root) = root_with(&[]);
    assert_eq!(
        root.resolve("/var/lib/x/../y").expect("resolve"),
        dir.path().join("var/lib/y")
    );
    assert!(root.read_optional("/nope").expect("read").is_none());
}

#[test]
fn write_atomic_creates_directories_inside_the_root() {
    let (dir, root) = root_with(&[]);
    std::fs::create_dir_all(dir.path().join("var")).expect("mkdir");
    symlink("/srv/state", dir.path().join("var/lib")).expect("symlink");
    root.write_atomic("/var/lib/nodepatch/x.json", b"{}")
        .expect("write");
    assert_eq!(
        std::fs::read(dir.path().join("srv/state/nodepatch/x.json")).expect("read"),
        b"{}"
    );
}

#[test]
fn command_output_is_bounded_head_and_tail() {
    let mut capture = BoundedCapture::new(10);
    capture.push(b"0123456789abcdefghij");
    let (text, cut) = capture.finish();
    assert!(cut);
    assert!(text.starts_with("01234"));
    assert!(text.ends_with("fghij"));
}

#[test]
fn command_runs_with_our_environment_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let command = HostCommand::new(["env"]).env("DEBIAN_FRONTEND", "noninteractive");
    // Run directly (no chroot) to check the environment handling of run_argv.
    let out = run_argv(&command.argv, &command).expect("run env");
    assert!(out.success());
    assert!(out.stdout.contains("DEBIAN_FRONTEND=noninteractive"));
    assert!(out.stdout.contains("LC_ALL=C"));
    assert!(
        !out.stdout.contains("HOME="),
        "environment leaked: {}",
        out.stdout
    );
    drop(dir);
}

#[test]
fn command_timeout_kills_the_process_group() {
    let command =
        HostCommand::new(["sh", "-c", "sleep 30 & sleep 30"]).timeout(Duration::from_millis(200));
    let out = run_argv(&command.argv, &command).expect("run");
    assert!(out.timed_out);
    assert!(!out.success());
    assert!(out.duration < Duration::from_secs(10));
}

#[test]
fn installroot_injects_the_root_option_per_package_manager() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
    std::fs::write(
        dir.path().join("etc/os-release"),
        "ID=rocky\nVERSION_ID=\"9.4\"\n",
    )
    .expect("write");
    let exec = InstallrootExecutor::new(dir.path());
    let root = dir.path().to_string_lossy().into_owned();
    let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        exec.rooted_argv(&argv(&["rpm", "-qa"])).expect("rpm"),
        argv(&["rpm", "--root", &root, "--dbpath", "/var/lib/rpm", "-qa"])
    );
    assert_eq!(
        exec.rooted_argv(&argv(&["dnf", "-y", "makecache"]))
            .expect("dnf"),
        argv(&[
            "dnf",
            &format!("--installroot={root}"),
            "--noplugins",
            "--releasever=9",
            "-y",
            "makecache"
        ])
    );
    assert_eq!(
        exec.rooted_argv(&argv(&["zypper", "-n", "ref"]))
            .expect("zypper"),
        argv(&["zypper", "--root", &root, "-n", "ref"])
    );
    assert!(matches!(
        exec.rooted_argv(&argv(&["needs-restarting", "-r"])),
        Err(HostError::InvalidCommand { .. })
    ));
    // dnf 4 takes a --setopt reposdir/cachedir as a path on this machine, not in the
    // installroot: the executor moves the alternative sources' directories into the root.
    assert_eq!(
        exec.rooted_argv(&argv(&[
            "dnf",
            "--setopt=reposdir=/var/lib/nodepatch/dnf-sources/repos.d",
            "--setopt=cachedir=/var/lib/nodepatch/dnf-sources/cache",
            "--setopt=install_weak_deps=False",
            "makecache"
        ]))
        .expect("dnf"),
        argv(&[
            "dnf",
            &format!("--installroot={root}"),
            "--noplugins",
            "--releasever=9",
            &format!("--setopt=reposdir={root}/var/lib/nodepatch/dnf-sources/repos.d"),
            &format!("--setopt=cachedir={root}/var/lib/nodepatch/dnf-sources/cache"),
            "--setopt=install_weak_deps=False",
            "makecache"
        ])
    );
}

#[test]
fn empty_argv_is_refused() {
    let command = HostCommand::new(Vec::<String>::new());
    assert!(matches!(
        ChrootExecutor::new("/nonexistent").run(&command),
        Err(HostError::InvalidCommand { .. })
    ));
}

#[test]
fn installroot_home_is_a_private_directory_per_executor_removed_on_drop() {
    use std::os::unix::fs::PermissionsExt as _;
    let a = InstallrootExecutor::new("/nonexistent-root");
    let b = InstallrootExecutor::new("/nonexistent-root");
    let home_a = a.macro_home().expect("home a");
    assert_eq!(
        home_a,
        a.clone().macro_home().expect("again"),
        "one home per executor"
    );
    let home_b = b.macro_home().expect("home b");
    assert_ne!(home_a, home_b, "not a predictable per-process path");
    let mode = std::fs::metadata(&home_a)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "only its owner can enter it");
    assert_eq!(
        std::fs::read_to_string(home_a.join(".rpmmacros")).expect("macros"),
        "%_dbpath /var/lib/rpm\n"
    );
    let clone = a.clone();
    drop(a);
    assert!(home_a.exists(), "a clone still uses it");
    drop(clone);
    assert!(!home_a.exists(), "removed with the last clone");
    drop(b);
    assert!(!home_b.exists(), "removed with its executor");
}
