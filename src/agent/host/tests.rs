use std::time::Duration;

use super::command::{HostCommand, HostExecutor, read_captured, run_argv};
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
    let mut file = tempfile::tempfile().expect("tempfile");
    std::io::Write::write_all(&mut file, b"0123456789abcdefghij").expect("write");
    let (text, cut) = read_captured(&mut file, 10);
    assert!(cut);
    assert!(text.starts_with("01234"));
    assert!(text.contains("10 bytes dropped"), "{text}");
    assert!(text.ends_with("fghij"));
    let (text, cut) = read_captured(&mut file, 20);
    assert!(!cut);
    assert_eq!(text, "0123456789abcdefghij");
}

#[test]
fn a_command_leads_its_own_session_and_writes_no_pipe() {
    // Field 6 of /proc/<pid>/stat is the session ID; stdout must be a file (a pipe would end
    // the command with SIGPIPE once a killed agent stops reading it).
    let command = HostCommand::new([
        "sh",
        "-c",
        "echo $$; cut -d' ' -f6 /proc/$$/stat; readlink /proc/$$/fd/1",
    ]);
    let out = run_argv(&command.argv, &command).expect("run");
    assert!(out.success(), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], lines[1], "not a session leader: {}", out.stdout);
    assert!(
        !lines[2].starts_with("pipe:") && lines[2].contains(".nodepatch-output-"),
        "stdout is {}",
        lines[2]
    );
}

#[test]
fn a_stopping_agent_starts_no_transaction_but_still_reads() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    /// This machine's programs, directly (no chroot, so no root needed).
    struct Direct;
    impl HostExecutor for Direct {
        fn run(&self, command: &HostCommand) -> Result<super::command::CommandOutput, HostError> {
            run_argv(&command.argv, command)
        }
        fn describe(&self) -> String {
            "direct".into()
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let exec = super::command::StoppingExecutor::new(Arc::new(Direct), stop.clone());
    let transaction = HostCommand::new(["true"]).as_transaction();
    assert!(
        exec.run(&transaction)
            .expect("runs before the stop")
            .success()
    );
    stop.store(true, Ordering::SeqCst);
    assert!(matches!(
        exec.run(&transaction),
        Err(HostError::Stopping { .. })
    ));
    assert!(
        exec.run(&HostCommand::new(["true"]))
            .expect("a read")
            .success()
    );
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
fn nsenter_runs_transactions_in_a_systemd_scope_or_the_root_cgroup() {
    use super::exec::{NsenterExecutor, ROOT_CGROUP_SCRIPT};
    let (dir, _) = root_with(&[]);
    let exec = NsenterExecutor::new(dir.path());
    let ns = ["nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p"];
    let read = HostCommand::new(["dpkg-query", "-W"]);
    let mut expected: Vec<String> = ns.iter().map(|s| s.to_string()).collect();
    expected.extend(["--", "dpkg-query", "-W"].map(String::from));
    assert_eq!(exec.host_argv(&read), expected, "reads run as they are");

    let install = HostCommand::new(["apt-get", "install", "-y", "--", "np-x=1"]).as_transaction();
    // No systemd on this host root: the root cgroup, entered by a fixed script.
    let argv = exec.host_argv(&install);
    let mut expected: Vec<String> = ns.iter().map(|s| s.to_string()).collect();
    expected.extend(
        [
            "-C",
            "--",
            "/bin/sh",
            "-c",
            ROOT_CGROUP_SCRIPT,
            "nodepatch-transaction",
        ]
        .map(String::from),
    );
    expected.extend(install.argv.iter().cloned());
    assert_eq!(argv, expected);

    // With systemd: a transient scope with a unique unit name.
    std::fs::create_dir_all(dir.path().join("run/systemd/system")).expect("mkdir");
    let argv = exec.host_argv(&install);
    assert_eq!(
        &argv[..13],
        &[
            "nsenter",
            "-t",
            "1",
            "-m",
            "-u",
            "-i",
            "-n",
            "-p",
            "--",
            "systemd-run",
            "--scope",
            "--collect",
            "--quiet"
        ]
    );
    assert!(argv[13].starts_with("--unit=nodepatch-tx-"), "{argv:?}");
    assert_ne!(
        argv[13],
        exec.host_argv(&install)[13],
        "unit names are unique"
    );
    assert_eq!(argv[14], "--");
    assert_eq!(&argv[15..], install.argv.as_slice());
}

#[test]
fn a_record_lock_held_by_another_process_is_seen_and_waited_for() {
    let (dir, root) = root_with(&["/var/lib/dpkg/lock-frontend"]);
    assert!(
        !root
            .is_locked("/var/lib/dpkg/lock-frontend")
            .expect("check")
    );
    assert!(
        !root
            .is_locked("/var/lib/dpkg/absent")
            .expect("absent is unlocked")
    );
    // dpkg and rpm take fcntl record locks, which a process does not conflict with itself
    // on: hold one in a forked child.
    let path = dir.path().join("var/lib/dpkg/lock-frontend");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    // SAFETY: fork in a test; the child only calls async-signal-safe functions (fcntl, sleep,
    // _exit).
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: see above.
        unsafe {
            let mut lock: libc::flock = std::mem::zeroed();
            lock.l_type = libc::F_WRLCK as libc::c_short;
            lock.l_whence = libc::SEEK_SET as libc::c_short;
            libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&file), libc::F_SETLK, &lock);
            libc::sleep(1);
            libc::_exit(0);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        root.is_locked("/var/lib/dpkg/lock-frontend")
            .expect("check")
    );
    assert!(
        !root
            .wait_until_unlocked(&["/var/lib/dpkg/lock-frontend"], Duration::from_millis(100))
            .expect("wait")
    );
    assert!(
        root.wait_until_unlocked(&["/var/lib/dpkg/lock-frontend"], Duration::from_secs(10))
            .expect("wait"),
        "the lock is free once its holder exits"
    );
    // SAFETY: reaping our own child.
    unsafe {
        libc::waitpid(child, std::ptr::null_mut(), 0);
    }
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
