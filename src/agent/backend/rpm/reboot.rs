//! Whether an rpm node needs a reboot, the way `dnf needs-restarting -r` decides it: a package
//! whose update only takes effect at boot (kernel, glibc, systemd, dbus, linux-firmware,
//! microcode_ctl, and their SUSE names) was installed after the running system booted, or an
//! installed advisory says `reboot_suggested`. The boot time is `btime` in the host's
//! `/proc/stat` (resolved inside the host root, so test roots inject it; the agent's own
//! `/proc/stat` is the fallback, the kernel being shared).

use super::RpmPackage;
use crate::agent::backend::contract::RebootState;
use crate::agent::host::HostRoot;
use crate::baseline::model::Candidate;

/// Packages whose update needs a reboot (dnf-plugins-core's `NEED_REBOOT`, plus the SUSE and
/// Oracle spellings of the same components).
pub const REBOOT_PACKAGES: &[&str] = &[
    "kernel",
    "kernel-core",
    "kernel-rt",
    "kernel-rt-core",
    "kernel-uek",
    "kernel-uek-core",
    "kernel-default",
    "kernel-azure",
    "kernel-64k",
    "glibc",
    "linux-firmware",
    "kernel-firmware",
    "systemd",
    "dbus",
    "dbus-1",
    "dbus-broker",
    "dbus-daemon",
    "microcode_ctl",
    "ucode-intel",
    "ucode-amd",
];

/// `btime` of a `/proc/stat` text.
pub fn parse_btime(stat: &str) -> Option<i64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The boot time of the running system (seconds since the epoch).
pub fn boot_time(root: &HostRoot) -> Option<i64> {
    root.read_optional("/proc/stat")
        .ok()
        .flatten()
        .and_then(|b| parse_btime(&String::from_utf8_lossy(&b)))
        .or_else(|| {
            std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|s| parse_btime(&s))
        })
}

/// The reboot need from install times and advisories. Without a boot time nothing is
/// concluded.
pub fn reboot_state(
    installed: &[RpmPackage],
    candidates: &[Candidate],
    boot_time: Option<i64>,
) -> RebootState {
    let mut state = RebootState::default();
    let Some(boot) = boot_time else {
        return state;
    };
    let add = |state: &mut RebootState, name: &str, reason: String| {
        state.required = true;
        if !state.reasons.contains(&reason) {
            state.reasons.push(reason);
        }
        if !state.pending_packages.iter().any(|p| p == name) {
            state.pending_packages.push(name.to_string());
        }
    };
    for p in installed.iter().filter(|p| p.install_time > boot) {
        if REBOOT_PACKAGES.contains(&p.name.as_str()) {
            add(
                &mut state,
                &p.name,
                format!("{}-{} installed after boot", p.name, p.evr()),
            );
        }
        let suggested = candidates.iter().find(|c| {
            c.reboot_suggested
                && c.name == p.name
                && c.version == p.evr()
                && c.arch.as_deref().is_none_or(|a| a == p.arch)
        });
        if let Some(c) = suggested {
            add(
                &mut state,
                &p.name,
                format!(
                    "{}-{} installed after boot, and {} suggests a reboot",
                    p.name,
                    p.evr(),
                    c.advisory.as_deref().unwrap_or("its advisory")
                ),
            );
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, time: i64) -> RpmPackage {
        RpmPackage {
            name: name.into(),
            epoch: "0".into(),
            version: "1".into(),
            release: "1".into(),
            arch: "x86_64".into(),
            install_time: time,
            source_rpm: None,
        }
    }

    #[test]
    fn reboot_packages_and_advisories_installed_after_boot() {
        assert_eq!(
            parse_btime("cpu 1 2\nbtime 1700000000\nprocesses 5\n"),
            Some(1_700_000_000)
        );
        let installed = vec![
            pkg("glibc", 200),
            pkg("kernel", 50),
            pkg("np-sec", 300),
            pkg("bash", 300),
        ];
        let candidates = vec![Candidate {
            name: "np-sec".into(),
            arch: Some("x86_64".into()),
            version: "1-1".into(),
            advisory: Some("NPSA-1".into()),
            reboot_suggested: true,
            ..Candidate::default()
        }];
        let state = reboot_state(&installed, &candidates, Some(100));
        assert!(state.required);
        assert_eq!(
            state.pending_packages,
            vec!["glibc".to_string(), "np-sec".to_string()]
        );
        assert!(
            state.reasons.iter().any(|r| r.contains("NPSA-1")),
            "{:?}",
            state.reasons
        );
        assert!(!reboot_state(&installed, &candidates, Some(1000)).required);
        assert!(!reboot_state(&installed, &candidates, None).required);
    }
}
