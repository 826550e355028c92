//! apt's upgrade decisions over the lists: the candidate of each installed package under the
//! host's policy (pins, priorities, phasing) and the resulting upgrade plan. Kept apart from
//! `lists.rs` (what the lists hold) and `preferences.rs` (the policy, which reads the lists), so
//! neither of those needs the other's decisions.

use super::aptconf::AptPolicyError;
use super::dpkg::{DpkgDatabase, Selection};
use super::lists::*;
use super::preferences::{AptPolicy, CandidateChoice};

/// apt's candidate for one installed package among `versions` under `policy`, when it is an
/// upgrade (`None` when apt keeps the installed version, has no candidate, or would downgrade).
pub fn candidate_version<'a>(
    installed_version: &str,
    versions: &'a [AvailableVersion],
    lists: &AptLists,
    policy: &AptPolicy,
) -> Option<&'a AvailableVersion> {
    match policy.candidate(lists, Some(installed_version), versions) {
        CandidateChoice::Upgrade(v) => Some(v),
        _ => None,
    }
}

/// What `apt-get dist-upgrade` would do to the installed packages under the host's policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpgradePlan {
    /// Upgrades (held packages included, with `held` set), sorted by name and architecture.
    pub upgrades: Vec<AptUpgrade>,
    /// Downgrades a pin of priority ≥ 1000 asks for (nodepatch reports them, installs none).
    pub downgrades: Vec<AptUpgrade>,
    /// Upgrades apt's phasing keeps back on this machine (not offered, not Missing).
    pub phased: Vec<AptUpgrade>,
}

/// Every upgrade apt's policy would make on this system (see [`UpgradePlan`]). Fails when a
/// phased candidate meets an apt whose phasing the agent does not implement.
pub fn compute_upgrades(
    dpkg: &DpkgDatabase,
    lists: &AptLists,
    available: &AvailableByPackage,
    policy: &AptPolicy,
) -> Result<UpgradePlan, ListsError> {
    compute_upgrades_in(dpkg, lists, LISTS_DIR, available, policy)
}

/// [`compute_upgrades`] over lists read from `dir` (named in its errors).
pub fn compute_upgrades_in(
    dpkg: &DpkgDatabase,
    lists: &AptLists,
    dir: &str,
    available: &AvailableByPackage,
    policy: &AptPolicy,
) -> Result<UpgradePlan, ListsError> {
    let mut plan = UpgradePlan::default();
    for package in dpkg.installed() {
        let key = package.key(&dpkg.native_arch);
        let Some(versions) = available.get(&key) else {
            continue;
        };
        let upgrade = |candidate: &AvailableVersion| AptUpgrade {
            name: package.name.clone(),
            installed_version: package.version.clone(),
            installed_arch: package.arch.clone(),
            candidate: candidate.clone(),
            held: package.selection == Selection::Hold,
        };
        match policy.candidate(lists, Some(&package.version), versions) {
            CandidateChoice::Upgrade(candidate) => {
                let phased = policy
                    .phased_back(lists, &package.version, candidate, versions)
                    .map_err(|message| AptPolicyError::Unsupported {
                        path: candidate
                            .indexes
                            .first()
                            .and_then(|i| lists.indexes.get(*i))
                            .map(|i| format!("{dir}/{}", i.file_name))
                            .unwrap_or_else(|| dir.to_string()),
                        line: 0,
                        message,
                    })?;
                if phased {
                    plan.phased.push(upgrade(candidate));
                } else {
                    plan.upgrades.push(upgrade(candidate));
                }
            }
            CandidateChoice::Downgrade(candidate) => plan.downgrades.push(upgrade(candidate)),
            CandidateChoice::Installed | CandidateChoice::None => {}
        }
    }
    for list in [&mut plan.upgrades, &mut plan.downgrades, &mut plan.phased] {
        list.sort_by(|a, b| (&a.name, &a.candidate.arch).cmp(&(&b.name, &b.candidate.arch)));
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::agent::host::HostRoot;

    fn release(not_automatic: bool, bau: bool) -> ReleaseInfo {
        ReleaseInfo {
            not_automatic,
            but_automatic_upgrades: bau,
            ..ReleaseInfo::default()
        }
    }

    /// Lists with one Packages index per release, index `i` belonging to release `i`.
    fn lists_of(releases: Vec<ReleaseInfo>) -> AptLists {
        let indexes = (0..releases.len())
            .map(|i| PackagesIndex {
                file_name: format!("r{i}_Packages"),
                component: "main".into(),
                release: Some(i),
                arch: "amd64".into(),
            })
            .collect();
        AptLists {
            releases,
            indexes,
            ..AptLists::default()
        }
    }

    fn candidate<'a>(
        installed: &str,
        versions: &'a [AvailableVersion],
        releases: &[ReleaseInfo],
    ) -> Option<&'a AvailableVersion> {
        let lists = lists_of(releases.to_vec());
        candidate_version(
            installed,
            versions,
            &lists,
            &AptPolicy::defaults(&lists, "amd64"),
        )
    }

    fn version(v: &str, releases: Vec<Option<usize>>) -> AvailableVersion {
        AvailableVersion {
            name: "p".into(),
            arch: "all".into(),
            version: v.into(),
            indexes: releases.iter().flatten().copied().collect(),
            phased_percentage: None,
            phased_conflict: None,
            releases,
            component: "main".into(),
            priority: None,
            section: None,
            source_name: "p".into(),
            source_version: v.into(),
            depends: String::new(),
        }
    }

    #[test]
    fn default_suite_upgrade_is_candidate() {
        let releases = vec![release(false, false)];
        let versions = vec![
            version("1.0-1", vec![Some(0)]),
            version("1.0-2", vec![Some(0)]),
        ];
        assert_eq!(
            candidate("1.0-1", &versions, &releases).map(|v| v.version.as_str()),
            Some("1.0-2")
        );
    }

    #[test]
    fn not_automatic_never_wins_over_installed() {
        let releases = vec![release(false, false), release(true, false)];
        let versions = vec![
            version("1.0-1", vec![Some(0)]),
            version("9.0-1", vec![Some(1)]),
        ];
        assert_eq!(candidate("1.0-1", &versions, &releases), None);
    }

    #[test]
    fn but_automatic_upgrades_upgrades_what_it_has() {
        let releases = vec![release(false, false), release(true, true)];
        // Installed from backports (only there): the newer backport is the candidate.
        let versions = vec![
            version("2.0-1~bpo12+1", vec![Some(1)]),
            version("2.0-2~bpo12+1", vec![Some(1)]),
        ];
        assert_eq!(
            candidate("2.0-1~bpo12+1", &versions, &releases).map(|v| v.version.as_str()),
            Some("2.0-2~bpo12+1")
        );
        // Installed from the main suite: a newer backport (prio 100) does not beat installed (100).
        let versions = vec![
            version("1.0-1", vec![Some(0)]),
            version("2.0-1~bpo12+1", vec![Some(1)]),
        ];
        assert_eq!(candidate("1.0-1", &versions, &releases), None);
    }

    #[test]
    fn highest_priority_then_highest_version_and_never_downgrade() {
        let releases = vec![release(false, false), release(true, false)];
        let versions = vec![
            version("3.0", vec![Some(1)]),
            version("2.0", vec![Some(0)]),
            version("1.5", vec![Some(0)]),
            version("0.5", vec![Some(0)]),
        ];
        assert_eq!(
            candidate("1.0", &versions, &releases).map(|v| v.version.as_str()),
            Some("2.0")
        );
        assert_eq!(
            candidate("2.5", &versions, &releases),
            None,
            "no downgrade to 2.0"
        );
    }

    #[test]
    fn release_fields_from_inrelease() {
        let text = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Debian\nLabel: Debian-Security\nSuite: oldstable-security\nVersion: 12\nCodename: bookworm-security\nMD5Sum:\n abc 1 main/x\n-----BEGIN PGP SIGNATURE-----\n\nxyz\n-----END PGP SIGNATURE-----\n";
        let info = parse_release(
            text,
            "deb.debian.org_debian-security_dists_bookworm-security",
        )
        .expect("parse");
        assert_eq!(info.label, "Debian-Security");
        assert_eq!(info.codename, "bookworm-security");
        assert!(info.is_security());
        assert_eq!(info.repository(), "bookworm-security");
        assert_eq!(info.site, "deb.debian.org");
        assert_eq!(info.apt_rel_str(), "Debian-Security:12/oldstable-security");
        let ubuntu = ReleaseInfo {
            origin: "Ubuntu".into(),
            label: "Ubuntu".into(),
            suite: "noble-security".into(),
            codename: "noble".into(),
            site: "security.ubuntu.com".into(),
            ..ReleaseInfo::default()
        };
        assert!(ubuntu.is_security());
        // The same Release from a PPA or any other site is a claim, not the distribution's.
        for site in [
            "ppa.launchpadcontent.net",
            "ubuntu.com.example.org",
            "evilubuntu.com",
        ] {
            let third_party = ReleaseInfo {
                site: site.into(),
                ..ubuntu.clone()
            };
            assert!(
                third_party.claims_security() && !third_party.is_security(),
                "{site}"
            );
        }
        let debian_elsewhere =
            parse_release(text, "repo.example.com_debian_dists_bookworm-security").expect("parse");
        assert!(debian_elsewhere.claims_security());
        assert!(
            !debian_elsewhere.is_security(),
            "Debian-Security from repo.example.com"
        );
        let local_mirror =
            parse_release(text, "_srv_mirror_debian-security_dists_bookworm-security")
                .expect("parse");
        assert!(
            local_mirror.is_security(),
            "a file: source is the administrator's"
        );
        let not_debian = ReleaseInfo {
            origin: "Acme".into(),
            ..info.clone()
        };
        assert!(!not_debian.is_security(), "Label without the Debian origin");
        assert_eq!(ubuntu.repository(), "noble-security");
        let updates = ReleaseInfo {
            suite: "bookworm-updates".into(),
            codename: "bookworm-updates".into(),
            ..ReleaseInfo::default()
        };
        assert!(!updates.is_security());
    }

    #[test]
    fn packages_scan_keeps_wanted_names_and_merges_suites() {
        let text = "Package: a\nVersion: 1\nArchitecture: all\n\nPackage: b\nVersion: 2\nArchitecture: amd64\nSource: bsrc (1)\nPriority: important\nSection: libs\nDepends: a (>= 1)\nPre-Depends: c\n\nPackage: b\nVersion: 2\nArchitecture: arm64\n";
        let wanted: HashMap<&str, ()> = [("b", ())].into_iter().collect();
        let archs = vec!["amd64".to_string(), "all".to_string()];
        let mut available = AvailableByPackage::new();
        for release in [Some(0), Some(1)] {
            let index = PackagesIndex {
                file_name: "x".into(),
                component: "main".into(),
                release,
                arch: "amd64".into(),
            };
            let position = release.unwrap_or(0);
            collect_from_packages_text(
                text,
                "x",
                (position, &index),
                &wanted,
                &archs,
                "amd64",
                &mut available,
            )
            .expect("scan");
        }
        let b = &available[&("b".to_string(), "amd64".to_string())];
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].releases, vec![Some(0), Some(1)]);
        assert_eq!(
            (b[0].source_name.as_str(), b[0].source_version.as_str()),
            ("bsrc", "1")
        );
        assert_eq!(b[0].depends, "c, a (>= 1)");
        assert_eq!(available.len(), 1);
    }

    #[test]
    fn discovery_pairs_packages_with_their_release() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lists = dir.path().join("var/lib/apt/lists");
        std::fs::create_dir_all(&lists).expect("mkdir");
        for (name, body) in [
            (
                "h_debian_dists_bookworm_InRelease",
                "Suite: stable\nCodename: bookworm\n",
            ),
            ("h_debian_dists_bookworm_Release", "Suite: WRONG\n"),
            (
                "h_debian_dists_bookworm-updates_Release",
                "Suite: stable-updates\nCodename: bookworm-updates\n",
            ),
            ("h_debian_dists_bookworm_main_binary-amd64_Packages", ""),
            ("h_debian_dists_bookworm_main_binary-arm64_Packages", ""),
            (
                "h_debian_dists_bookworm-updates_non-free-firmware_binary-amd64_Packages.lz4",
                "",
            ),
            ("h_debian_dists_bookworm_main_i18n_Translation-en", ""),
            ("_flat_._Packages", ""),
        ] {
            std::fs::write(lists.join(name), body).expect("write");
        }
        let found = discover_lists(&HostRoot::new(dir.path()), &["amd64".into(), "all".into()])
            .expect("discover");
        assert_eq!(found.releases.len(), 2);
        let bookworm = found
            .releases
            .iter()
            .position(|r| r.codename == "bookworm")
            .expect("bookworm");
        assert_eq!(
            found.releases[bookworm].suite, "stable",
            "InRelease preferred"
        );
        let by_name: HashMap<_, _> = found
            .indexes
            .iter()
            .map(|i| (i.file_name.as_str(), i))
            .collect();
        assert_eq!(by_name.len(), 3);
        assert_eq!(
            by_name["h_debian_dists_bookworm_main_binary-amd64_Packages"].release,
            Some(bookworm)
        );
        let updates =
            by_name["h_debian_dists_bookworm-updates_non-free-firmware_binary-amd64_Packages.lz4"];
        assert_eq!(updates.component, "non-free-firmware");
        assert_ne!(updates.release, Some(bookworm));
        assert_eq!(by_name["_flat_._Packages"].release, None);
    }

    #[test]
    fn compressed_lists_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lists = dir.path().join("var/lib/apt/lists");
        std::fs::create_dir_all(&lists).expect("mkdir");
        let text = "Package: a\nVersion: 1\n";
        let mut lz4 = lz4_flex::frame::FrameEncoder::new(Vec::new());
        std::io::Write::write_all(&mut lz4, text.as_bytes()).expect("lz4");
        std::fs::write(lists.join("x_Packages.lz4"), lz4.finish().expect("finish")).expect("write");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, text.as_bytes()).expect("gz");
        std::fs::write(lists.join("y_Packages.gz"), gz.finish().expect("finish")).expect("write");
        std::fs::write(lists.join("z_Packages.xz"), b"xz").expect("write");
        std::fs::write(lists.join("w_Packages.lz4"), b"not lz4").expect("write");
        let root = HostRoot::new(dir.path());
        assert_eq!(
            read_list_file(&root, "x_Packages.lz4").expect("lz4").text(),
            text
        );
        assert_eq!(
            read_list_file(&root, "y_Packages.gz").expect("gz").text(),
            text
        );
        std::fs::write(lists.join("v_Packages"), text).expect("write");
        std::fs::write(lists.join("e_Packages"), "").expect("write");
        assert_eq!(
            read_list_file(&root, "v_Packages").expect("plain").text(),
            text
        );
        assert_eq!(
            read_list_file(&root, "e_Packages").expect("empty").text(),
            ""
        );
        assert!(matches!(
            read_list_file(&root, "z_Packages.xz"),
            Err(ListsError::UnsupportedCompression { .. })
        ));
        assert!(matches!(
            read_list_file(&root, "w_Packages.lz4"),
            Err(ListsError::Decompress { .. })
        ));
    }
}
