//! What an install changed: the package database before and after, compared (so dependencies
//! pulled in or packages removed by the package manager are listed as well as the targets),
//! plus each approved update that failed. Pure.

use std::collections::BTreeMap;

use crate::api::{ChangeResult, MAX_CHANGES, PackageChange};
use crate::baseline::InstalledPackage;

/// An approved update that did not go in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedUpdate {
    /// Package name.
    pub name: String,
    /// Architecture, when known.
    pub arch: Option<String>,
    /// The approved version that was not installed.
    pub version: String,
}

/// The changes between two reads of the package database, sorted by name and architecture,
/// cut at [`MAX_CHANGES`]; the second value counts what was cut. A failed update whose package
/// did change (to another version) is listed as that change, not as a failure.
pub fn package_changes(
    before: &[InstalledPackage],
    after: &[InstalledPackage],
    failed: &[FailedUpdate],
) -> (Vec<PackageChange>, u32) {
    let by_key = |packages: &[InstalledPackage]| -> BTreeMap<(String, Option<String>), String> {
        packages
            .iter()
            .map(|p| ((p.name.clone(), p.arch.clone()), p.version.clone()))
            .collect()
    };
    let (old, new) = (by_key(before), by_key(after));
    let mut changes: BTreeMap<(String, Option<String>), PackageChange> = BTreeMap::new();
    for (key, to) in &new {
        let from = old.get(key);
        if from != Some(to) {
            changes.insert(
                key.clone(),
                PackageChange {
                    name: key.0.clone(),
                    arch: key.1.clone(),
                    from_version: from.cloned(),
                    to_version: Some(to.clone()),
                    result: ChangeResult::Installed,
                },
            );
        }
    }
    for (key, from) in &old {
        if !new.contains_key(key) {
            changes.insert(
                key.clone(),
                PackageChange {
                    name: key.0.clone(),
                    arch: key.1.clone(),
                    from_version: Some(from.clone()),
                    to_version: None,
                    result: ChangeResult::Removed,
                },
            );
        }
    }
    for f in failed {
        // The failed target's own key; an rpm target without an arch matches any arch of it.
        let known = old
            .keys()
            .find(|(name, arch)| *name == f.name && (f.arch.is_none() || *arch == f.arch))
            .cloned();
        let key = known.unwrap_or_else(|| (f.name.clone(), f.arch.clone()));
        changes.entry(key.clone()).or_insert_with(|| PackageChange {
            name: key.0.clone(),
            arch: key.1.clone(),
            from_version: old.get(&key).cloned(),
            to_version: Some(f.version.clone()),
            result: ChangeResult::Failed,
        });
    }
    let mut changes: Vec<PackageChange> = changes.into_values().collect();
    let omitted = changes.len().saturating_sub(MAX_CHANGES);
    changes.truncate(MAX_CHANGES);
    (changes, u32::try_from(omitted).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, version: &str) -> InstalledPackage {
        InstalledPackage {
            name: name.into(),
            arch: Some("amd64".into()),
            version: version.into(),
            source: None,
        }
    }

    #[test]
    fn updates_new_dependencies_removals_and_failures() {
        let before = [
            pkg("a", "1.0"),
            pkg("b", "1.0"),
            pkg("gone", "2.0"),
            pkg("same", "1"),
        ];
        let after = [
            pkg("a", "1.1"),
            pkg("b", "1.0"),
            pkg("dep", "0.5"),
            pkg("same", "1"),
        ];
        let failed = [FailedUpdate {
            name: "b".into(),
            arch: Some("amd64".into()),
            version: "1.2".into(),
        }];
        let (changes, omitted) = package_changes(&before, &after, &failed);
        assert_eq!(omitted, 0);
        let seen: Vec<(&str, Option<&str>, Option<&str>, ChangeResult)> = changes
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.from_version.as_deref(),
                    c.to_version.as_deref(),
                    c.result,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("a", Some("1.0"), Some("1.1"), ChangeResult::Installed),
                ("b", Some("1.0"), Some("1.2"), ChangeResult::Failed),
                ("dep", None, Some("0.5"), ChangeResult::Installed),
                ("gone", Some("2.0"), None, ChangeResult::Removed),
            ]
        );
    }

    #[test]
    fn a_failed_target_without_arch_matches_the_installed_package() {
        let before = [pkg("k", "1")];
        let failed = [FailedUpdate {
            name: "k".into(),
            arch: None,
            version: "2".into(),
        }];
        let (changes, _) = package_changes(&before, &before, &failed);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].arch.as_deref(), Some("amd64"));
        assert_eq!(changes[0].from_version.as_deref(), Some("1"));
    }

    #[test]
    fn the_list_is_bounded_and_the_rest_counted() {
        let after: Vec<InstalledPackage> = (0..MAX_CHANGES + 7)
            .map(|i| pkg(&format!("p{i:04}"), "1"))
            .collect();
        let (changes, omitted) = package_changes(&[], &after, &[]);
        assert_eq!(changes.len(), MAX_CHANGES);
        assert_eq!(omitted, 7);
    }
}
