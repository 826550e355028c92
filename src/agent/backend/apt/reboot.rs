//! Whether a Debian/Ubuntu node needs a reboot: `/run/reboot-required` (written by the
//! postinst of kernel, libc and similar packages through `/var/run`, hence resolved inside the
//! host root), the packages named in `/run/reboot-required.pkgs`, and the running kernel
//! compared with the newest installed `linux-image-*` (Debian only writes the flag file when
//! unattended-upgrades is installed).

use super::dpkg::DpkgDatabase;
use crate::agent::backend::contract::RebootState;
use crate::agent::host::HostRoot;
use crate::baseline::version::deb::compare as compare_deb;

/// The flag file.
pub const REBOOT_REQUIRED_PATH: &str = "/run/reboot-required";
/// Packages that asked for the reboot, one per line.
pub const REBOOT_REQUIRED_PKGS_PATH: &str = "/run/reboot-required.pkgs";

/// The kernel release a `linux-image-*` package installs (`linux-image-6.1.0-18-amd64` →
/// `6.1.0-18-amd64`, `linux-image-unsigned-6.8.0-45-generic` → `6.8.0-45-generic`); `None` for
/// meta packages (`linux-image-amd64`, `linux-image-generic`) and debug symbols.
pub fn kernel_release_of(package: &str) -> Option<&str> {
    let release = package.strip_prefix("linux-image-")?;
    let release = release.strip_prefix("unsigned-").unwrap_or(release);
    let starts_with_digit = release.as_bytes().first().is_some_and(u8::is_ascii_digit);
    (starts_with_digit && !release.ends_with("-dbg") && !release.ends_with("-dbgsym"))
        .then_some(release)
}

/// The kernel part: a reboot is needed when the running kernel is one of the installed
/// `linux-image-<release>` packages and a newer such package (by package version) is installed.
/// A running kernel that no installed package provides (custom kernels) says nothing.
pub fn newer_kernel_installed<'a>(dpkg: &'a DpkgDatabase, running_kernel: &str) -> Option<&'a str> {
    if running_kernel.is_empty() {
        return None;
    }
    let kernels: Vec<_> = dpkg
        .installed()
        .filter(|p| kernel_release_of(&p.name).is_some())
        .collect();
    let running = kernels
        .iter()
        .find(|p| kernel_release_of(&p.name) == Some(running_kernel))?;
    let newest = kernels
        .iter()
        .max_by(|a, b| compare_deb(&a.version, &b.version))?;
    (kernel_release_of(&newest.name) != Some(running_kernel)
        && compare_deb(&newest.version, &running.version).is_gt())
    .then_some(newest.name.as_str())
}

/// Read the reboot need of a Debian/Ubuntu node.
pub fn reboot_state(root: &HostRoot, dpkg: &DpkgDatabase, running_kernel: &str) -> RebootState {
    let mut state = RebootState::default();
    if root.exists(REBOOT_REQUIRED_PATH) {
        state.required = true;
        state.reasons.push(format!("{REBOOT_REQUIRED_PATH} exists"));
        if let Ok(Some(bytes)) = root.read_optional(REBOOT_REQUIRED_PKGS_PATH) {
            for line in String::from_utf8_lossy(&bytes).lines() {
                let name = line.trim();
                if !name.is_empty() && !state.pending_packages.iter().any(|p| p == name) {
                    state.pending_packages.push(name.to_string());
                }
            }
        }
    }
    if let Some(kernel) = newer_kernel_installed(dpkg, running_kernel) {
        state.required = true;
        state.reasons.push(format!(
            "running kernel {running_kernel}, newer {kernel} installed"
        ));
        if !state.pending_packages.iter().any(|p| p == kernel) {
            state.pending_packages.push(kernel.to_string());
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::backend::apt::dpkg::{merge_database, parse_status};

    fn db(kernels: &[(&str, &str)]) -> DpkgDatabase {
        let mut text = String::from(
            "Package: dpkg\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n\n",
        );
        for (name, version) in kernels {
            text.push_str(&format!("Package: {name}\nStatus: install ok installed\nArchitecture: amd64\nVersion: {version}\n\n"));
        }
        merge_database(
            parse_status(&text, "status").expect("parse"),
            Vec::new(),
            Vec::new(),
        )
        .expect("db")
    }

    #[test]
    fn kernel_release_names() {
        assert_eq!(
            kernel_release_of("linux-image-6.1.0-18-amd64"),
            Some("6.1.0-18-amd64")
        );
        assert_eq!(
            kernel_release_of("linux-image-unsigned-6.8.0-45-generic"),
            Some("6.8.0-45-generic")
        );
        assert_eq!(kernel_release_of("linux-image-amd64"), None);
        assert_eq!(kernel_release_of("linux-image-6.1.0-18-amd64-dbg"), None);
        assert_eq!(kernel_release_of("linux-headers-6.1.0-18-amd64"), None);
    }

    #[test]
    fn newer_installed_kernel_needs_a_reboot() {
        let two = db(&[
            ("linux-image-6.1.0-18-amd64", "6.1.76-1"),
            ("linux-image-6.1.0-21-amd64", "6.1.90-1"),
            ("linux-image-amd64", "6.1.90-1"),
        ]);
        assert_eq!(
            newer_kernel_installed(&two, "6.1.0-18-amd64"),
            Some("linux-image-6.1.0-21-amd64")
        );
        assert_eq!(newer_kernel_installed(&two, "6.1.0-21-amd64"), None);
        assert_eq!(
            newer_kernel_installed(&two, "6.9.0-custom"),
            None,
            "unknown running kernel says nothing"
        );
        assert_eq!(newer_kernel_installed(&two, ""), None);
    }

    #[test]
    fn flag_file_through_var_run_symlink() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("run")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("var")).expect("mkdir");
        std::os::unix::fs::symlink("/run", dir.path().join("var/run")).expect("symlink");
        let root = HostRoot::new(dir.path());
        let none = reboot_state(&root, &db(&[]), "6.1.0-18-amd64");
        assert!(!none.required);
        std::fs::write(
            dir.path().join("run/reboot-required"),
            "*** System restart required ***\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("run/reboot-required.pkgs"),
            "libc6\nlibc6\nnp-reboot\n",
        )
        .expect("write");
        let state = reboot_state(&root, &db(&[]), "6.1.0-18-amd64");
        assert!(state.required);
        assert_eq!(
            state.pending_packages,
            vec!["libc6".to_string(), "np-reboot".to_string()]
        );
    }
}
