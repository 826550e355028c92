//! The hook runner through a real [`ChrootExecutor`] on a temporary root that holds this
//! machine's `dash` (as `/bin/sh`) and `sleep` with the libraries they load, so exit codes,
//! timeouts, process groups and argv handling are the kernel's and the shell's, not a fake's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::*;
use crate::agent::host::exec::ChrootExecutor;
use crate::agent::host::scripted::ScriptedExecutor;

/// A root with `/bin/sh`, `/bin/sleep` (and their shared libraries, from `ldd`) and
/// `/dev/null`, or `None`
/// when this test cannot chroot (not root): skipped outside CI, a failure with `CI=true`.
fn shell_root(test: &str) -> Option<(tempfile::TempDir, ChrootExecutor)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !ci,
            "{test}: chroot needs root (CI=true makes this a failure)"
        );
        eprintln!("SKIPPED {test}: chroot needs root");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for (program, name) in [("dash", "sh"), ("sleep", "sleep")] {
        let path = which(program);
        copy_into(dir.path(), &path, Path::new("/bin").join(name).as_path());
        let ldd = Command::new("ldd").arg(&path).output().expect("ldd");
        for lib in String::from_utf8_lossy(&ldd.stdout)
            .split_whitespace()
            .filter(|w| w.starts_with('/'))
        {
            copy_into(dir.path(), Path::new(lib), Path::new(lib));
        }
    }
    std::fs::create_dir_all(dir.path().join("tmp")).expect("mkdir tmp");
    // dash points a background job's stdin at /dev/null.
    std::fs::create_dir_all(dir.path().join("dev")).expect("mkdir dev");
    let null = std::ffi::CString::new(dir.path().join("dev/null").as_os_str().as_encoded_bytes())
        .expect("path");
    // SAFETY: mknod with a valid NUL-terminated path; creates the 1:3 character device.
    let made = unsafe { libc::mknod(null.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
    assert_eq!(
        made,
        0,
        "mknod /dev/null: {}",
        std::io::Error::last_os_error()
    );
    let executor = ChrootExecutor::new(dir.path());
    Some((dir, executor))
}

fn which(program: &str) -> PathBuf {
    ["/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{program} not found"))
}

fn copy_into(root: &Path, from: &Path, to: &Path) {
    let target = root.join(to.strip_prefix("/").expect("absolute"));
    std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
    std::fs::copy(from, &target).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
}

fn hook(stage: HookStage, argv: &[&str], timeout: Duration) -> Hook {
    Hook {
        stage,
        argv: argv.iter().map(|s| s.to_string()).collect(),
        timeout,
    }
}

fn spec(command: &[&str], timeout: &str) -> HookSpec {
    HookSpec {
        command: command.iter().map(|s| s.to_string()).collect(),
        args: vec![],
        timeout: timeout.to_string(),
    }
}

#[test]
fn a_hook_that_exits_zero_succeeds_and_sees_its_run_and_stage() {
    let Some((dir, executor)) = shell_root("hook_exit_zero") else {
        return;
    };
    let h = hook(
        HookStage::PostInstall,
        &[
            "sh",
            "-c",
            "echo \"$NODEPATCH_HOOK $NODEPATCH_RUN\" > /tmp/seen; echo done",
        ],
        Duration::from_secs(10),
    );
    let run = run_hook(&executor, &h, "run-1").expect("hook succeeds");
    assert_eq!(run.output, "done");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("tmp/seen")).expect("marker"),
        "postInstall run-1\n"
    );
}

#[test]
fn a_non_zero_exit_is_hook_failed_with_the_exit_code_and_the_output_tail() {
    let Some((_dir, executor)) = shell_root("hook_exit_code") else {
        return;
    };
    let h = hook(
        HookStage::PreInstall,
        &[
            "sh",
            "-c",
            "echo to-stdout; echo 'database busy' >&2; exit 3",
        ],
        Duration::from_secs(10),
    );
    let err = run_hook(&executor, &h, "r").expect_err("exit 3 fails");
    assert_eq!(err.category(), "HookFailed");
    let message = err.to_string();
    assert!(
        message.starts_with("preInstall hook [\"sh\", \"-c\""),
        "{message}"
    );
    assert!(message.contains("(exit code 3)"), "{message}");
    assert!(
        message.ends_with("last output:\nto-stdout\ndatabase busy"),
        "{message}"
    );
}

#[test]
fn a_missing_program_is_hook_failed() {
    let Some((_dir, executor)) = shell_root("hook_missing_program") else {
        return;
    };
    let h = hook(
        HookStage::PreInstall,
        &["/no/such/hook"],
        Duration::from_secs(10),
    );
    let err = run_hook(&executor, &h, "r").expect_err("chroot cannot exec it");
    assert_eq!(err.category(), "HookFailed");
    assert!(err.to_string().contains("exit code 127"), "{err}");
}

#[test]
fn a_timeout_kills_the_hooks_whole_process_group() {
    let Some((dir, executor)) = shell_root("hook_timeout") else {
        return;
    };
    // The background sleep is not the process the executor started: only a signal to the
    // whole process group reaches it.
    let h = hook(
        HookStage::PreInstall,
        &[
            "sh",
            "-c",
            "sleep 300 & echo $! > /tmp/bg.pid; echo started; wait",
        ],
        Duration::from_secs(1),
    );
    let started = Instant::now();
    let err = run_hook(&executor, &h, "r").expect_err("times out");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.category(), "HookTimeout");
    let message = err.to_string();
    assert!(message.contains("timed out after 1s"), "{message}");
    assert!(message.ends_with("last output:\nstarted"), "{message}");
    let pid: i32 = std::fs::read_to_string(dir.path().join("tmp/bg.pid"))
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // Gone, or a zombie waiting for its new parent to reap it: either way not running.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
        let running = state.as_deref().is_some_and(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        });
        if !running {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "background sleep {pid} survived: {state:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn argv_with_spaces_and_metacharacters_reaches_the_program_verbatim() {
    let Some((dir, executor)) = shell_root("hook_argv_verbatim") else {
        return;
    };
    let tricky = [
        "two words",
        "$(touch /tmp/pwned)",
        "`touch /tmp/pwned`",
        "; touch /tmp/pwned",
        "| cat",
        "*",
        "it's \"quoted\"",
        "$HOME",
        "",
    ];
    let mut argv = vec![
        "sh",
        "-c",
        "for a in \"$@\"; do printf '[%s]\\n' \"$a\"; done",
        "sh",
    ];
    argv.extend(tricky);
    let h = hook(HookStage::PostInstall, &argv, Duration::from_secs(10));
    let run = run_hook(&executor, &h, "r").expect("runs");
    let expected: Vec<String> = tricky.iter().map(|a| format!("[{a}]")).collect();
    assert_eq!(run.output, expected.join("\n"));
    assert!(
        !dir.path().join("tmp/pwned").exists(),
        "an argument reached a shell"
    );
}

#[test]
fn the_output_tail_keeps_the_last_lines_within_the_byte_bound() {
    let many: String = (1..=50).map(|i| format!("line {i}\n")).collect();
    let out = CommandOutput {
        stdout: many,
        stderr: "\nerror: final\n".into(),
        ..CommandOutput::default()
    };
    let tail = output_tail(&out);
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(lines.len(), TAIL_LINES);
    assert_eq!(lines[0], "line 32");
    assert_eq!(lines[TAIL_LINES - 1], "error: final");
    let long = CommandOutput {
        stdout: format!("{}\nlast", "é".repeat(2000)),
        ..CommandOutput::default()
    };
    let tail = output_tail(&long);
    assert!(tail.len() <= TAIL_BYTES, "{}", tail.len());
    assert!(tail.starts_with('…') && tail.ends_with("\nlast"), "{tail}");
}

#[test]
fn specs_become_argv_command_then_args_with_bounded_timeouts() {
    let mut s = spec(&["/usr/local/bin/drain-app", "--mode"], "90s");
    s.args = vec!["graceful stop".into()];
    let h = Hook::from_spec(HookStage::PreInstall, &s).expect("valid");
    assert_eq!(
        h.argv,
        ["/usr/local/bin/drain-app", "--mode", "graceful stop"]
    );
    assert_eq!(h.timeout, Duration::from_secs(90));
    for (bad, why) in [
        (spec(&[], "10m"), "command needs a program"),
        (spec(&[""], "10m"), "command needs a program"),
        (spec(&["x"], "2h"), "not between 1s and 1h"),
        (spec(&["x"], "0s"), "not between 1s and 1h"),
        (spec(&["x"], "soon"), "timeout \"soon\""),
    ] {
        let err = Hook::from_spec(HookStage::PostInstall, &bad).expect_err(why);
        assert_eq!(err.category(), "HookFailed");
        assert!(err.to_string().contains(why), "{err}");
    }
    let hooks = Hooks::from_run(Some(&InstallHooks {
        pre_install: None,
        post_install: Some(spec(&["true"], "10m")),
    }))
    .expect("hooks");
    assert!(hooks.pre_install.is_none());
    assert_eq!(
        hooks.post_install.map(|h| h.stage),
        Some(HookStage::PostInstall)
    );
    assert_eq!(Hooks::from_run(None).expect("none"), Hooks::default());
}

#[test]
fn a_hook_the_executor_refuses_is_hook_failed_naming_why() {
    // The installroot executor of rpm fixture roots refuses anything but a package manager;
    // a scripted executor without a rule stands for it.
    let h = hook(HookStage::PreInstall, &["true"], Duration::from_secs(1));
    let err = run_hook(&ScriptedExecutor::new(), &h, "r").expect_err("refused");
    assert_eq!(err.category(), "HookFailed");
    assert!(err.to_string().contains("could not start"), "{err}");
}
