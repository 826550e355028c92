//! The container image ships one static (musl) binary per architecture. Where no container
//! engine exists, this checks those binaries (built by scripts/build-static.sh; paths in
//! NODEPATCH_STATIC_BIN for x86_64 and NODEPATCH_STATIC_BIN_AARCH64 for aarch64): each is an ELF
//! executable for its machine, statically linked, runs (aarch64 under qemu-user when Debian's
//! `qemu-user-static` is installed, which scripts/install-deps.sh does) and serves both modes;
//! and the Containerfile copies exactly those paths onto a supported base.

use std::path::{Path, PathBuf};
use std::process::Command;

/// ELF `e_machine` values.
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn static_binary(var: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(p) => Some(PathBuf::from(p)),
        None if in_ci() => {
            panic!("{var} is not set: make test builds it with scripts/build-static.sh")
        }
        None => {
            eprintln!("SKIPPED (not CI): {var} not set; run scripts/build-static.sh");
            None
        }
    }
}

/// What the ELF header says: 64-bit little-endian executable, its machine, and whether it has a
/// program interpreter (a dynamic loader) or dynamic section at all.
struct Elf {
    machine: u16,
    interpreter: bool,
    dynamic_libs: bool,
}

fn read_elf(path: &Path) -> Elf {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..4], b"\x7fELF", "{}: not ELF", path.display());
    assert_eq!(bytes[4], 2, "64-bit");
    assert_eq!(bytes[5], 1, "little-endian");
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
    let e_type = u16_at(16);
    assert!(
        e_type == 2 || e_type == 3,
        "an executable (static-pie is ET_DYN)"
    );
    let machine = u16_at(18);
    let phoff = u64_at(32) as usize;
    let phentsize = u16_at(54) as usize;
    let phnum = u16_at(56) as usize;
    let mut interpreter = false;
    let mut dynamic_offset = None;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        match u32_at(ph) {
            3 => interpreter = true,                                       // PT_INTERP
            2 => dynamic_offset = Some((u64_at(ph + 8), u64_at(ph + 32))), // PT_DYNAMIC
            _ => {}
        }
    }
    // A static-pie has a PT_DYNAMIC for its relocations but no DT_NEEDED entries.
    let dynamic_libs = dynamic_offset.is_some_and(|(offset, size)| {
        let (offset, size) = (offset as usize, size as usize);
        (0..size / 16).any(|i| u64_at(offset + i * 16) == 1) // DT_NEEDED
    });
    Elf {
        machine,
        interpreter,
        dynamic_libs,
    }
}

/// Run the binary (through `runner` when given, e.g. qemu-aarch64-static) with `args`.
fn run(runner: Option<&Path>, bin: &Path, args: &[&str]) -> std::process::Output {
    let mut command = match runner {
        Some(r) => {
            let mut c = Command::new(r);
            c.arg(bin);
            c
        }
        None => Command::new(bin),
    };
    command
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {} {args:?}: {e}", bin.display()))
}

fn check_runs(runner: Option<&Path>, bin: &Path) {
    let version = run(runner, bin, &["--version"]);
    assert!(version.status.success(), "{version:?}");
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("nodepatch "));
    let crds = run(runner, bin, &["crd"]);
    assert_eq!(
        String::from_utf8_lossy(&crds.stdout),
        nodepatch::api::crds_yaml(),
        "same API as the test build"
    );
    for mode in ["controller", "agent", "scan"] {
        let help = run(runner, bin, &[mode, "--help"]);
        assert!(
            help.status.success(),
            "{mode} --help: {}",
            String::from_utf8_lossy(&help.stderr)
        );
    }
}

#[test]
fn x86_64_binary_is_static_and_runs_controller_and_agent_modes() {
    let Some(bin) = static_binary("NODEPATCH_STATIC_BIN") else {
        return;
    };
    let elf = read_elf(&bin);
    assert_eq!(elf.machine, EM_X86_64, "x86-64");
    assert!(!elf.interpreter && !elf.dynamic_libs, "statically linked");
    let ldd = Command::new("ldd").arg(&bin).output().expect("ldd");
    let ldd_text = format!(
        "{}{}",
        String::from_utf8_lossy(&ldd.stdout),
        String::from_utf8_lossy(&ldd.stderr)
    );
    assert!(
        !ldd_text.contains("libc.so") && !ldd_text.contains("libssl"),
        "dynamic dependencies: {ldd_text}"
    );
    check_runs(None, &bin);
}

#[test]
fn aarch64_binary_is_static_and_runs_under_qemu() {
    let Some(bin) = static_binary("NODEPATCH_STATIC_BIN_AARCH64") else {
        return;
    };
    let elf = read_elf(&bin);
    assert_eq!(elf.machine, EM_AARCH64, "aarch64");
    assert!(!elf.interpreter && !elf.dynamic_libs, "statically linked");
    let qemu = PathBuf::from("/usr/bin/qemu-aarch64-static");
    if !qemu.exists() {
        assert!(
            !in_ci(),
            "qemu-aarch64-static missing: scripts/install-deps.sh installs qemu-user-static"
        );
        eprintln!("SKIPPED running the aarch64 binary: qemu-user-static is not installed");
        return;
    }
    check_runs(Some(&qemu), &bin);
}

#[test]
fn the_elf_reader_tells_a_dynamic_binary_from_a_static_one() {
    // This test binary itself is dynamically linked against glibc: the reader must say so, or
    // the checks above could not fail.
    let me = std::env::current_exe().expect("test binary");
    let elf = read_elf(&me);
    assert_eq!(elf.machine, EM_X86_64);
    assert!(elf.interpreter && elf.dynamic_libs);
}

#[test]
fn the_containerfile_ships_those_binaries_on_a_supported_base() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("Containerfile")).expect("Containerfile");
    let from: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .collect();
    // Alpine 3.23's main repository is supported until 2027-11-01; bump with the base.
    assert_eq!(
        from,
        ["docker.io/library/alpine:3.23"],
        "one stage, the base"
    );
    assert!(
        text.contains("COPY dist/${TARGETARCH}/nodepatch /usr/local/bin/nodepatch"),
        "copies what scripts/build-static.sh --dist writes"
    );
    let script = std::fs::read_to_string(root.join("scripts/build-static.sh")).expect("script");
    assert!(script.contains("dist/$arch/nodepatch"));
    for label in [
        "org.opencontainers.image.title",
        "org.opencontainers.image.source",
        "org.opencontainers.image.licenses=\"Apache-2.0\"",
        "org.opencontainers.image.version",
        "org.opencontainers.image.revision",
    ] {
        assert!(text.contains(label), "OCI label {label}");
    }
}
