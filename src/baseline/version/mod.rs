//! Version ordering of each package family, exactly as its package manager orders versions.
//!
//! | family | algorithm | module |
//! |---|---|---|
//! | Deb | dpkg `verrevcmp` on epoch, upstream, revision | [`deb`] |
//! | Rpm, Zypper | librpm `rpmvercmp` on epoch, version, release | [`rpm`] |
//! | Apk | apk-tools tokenizer | [`apk`] |
//!
//! Every comparison is total (any two strings get a consistent order, so sorting never fails
//! on odd input) and allocation-free; the `validate_*` functions say whether the package
//! manager itself would accept a version.

pub mod apk;
pub mod deb;
mod error;
pub mod rpm;

pub use error::VersionError;

use std::cmp::Ordering;

use crate::api::PackageFamily;

/// Order two versions the way `family`'s package manager does.
pub fn compare_versions(family: PackageFamily, a: &str, b: &str) -> Ordering {
    match family {
        PackageFamily::Deb => deb::compare(a, b),
        PackageFamily::Rpm | PackageFamily::Zypper => rpm::compare_evr(a, b),
        PackageFamily::Apk => apk::compare(a, b),
    }
}

/// Check that `version` is a version `family`'s package manager accepts.
pub fn validate_version(family: PackageFamily, version: &str) -> Result<(), VersionError> {
    match family {
        PackageFamily::Deb => deb::DebVersion::parse(version).map(|_| ()),
        PackageFamily::Rpm | PackageFamily::Zypper => rpm::Evr::parse(version).map(|_| ()),
        PackageFamily::Apk => apk::validate(version),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const FAMILIES: [PackageFamily; 3] =
        [PackageFamily::Deb, PackageFamily::Rpm, PackageFamily::Apk];

    fn version_strategy() -> impl Strategy<Value = String> {
        // Dense alphabets so that equal prefixes, separators and special characters collide often.
        "[0-9a-c~^+._:r-]{0,10}"
    }

    proptest! {
        #[test]
        fn comparison_is_antisymmetric_and_reflexive(a in version_strategy(), b in version_strategy()) {
            for family in FAMILIES {
                prop_assert_eq!(compare_versions(family, &a, &a), Ordering::Equal);
                prop_assert_eq!(compare_versions(family, &a, &b), compare_versions(family, &b, &a).reverse());
            }
        }

        #[test]
        fn comparison_is_transitive(a in version_strategy(), b in version_strategy(), c in version_strategy()) {
            for family in FAMILIES {
                let ab = compare_versions(family, &a, &b);
                let bc = compare_versions(family, &b, &c);
                if ab == bc || bc == Ordering::Equal {
                    prop_assert_eq!(compare_versions(family, &a, &c), ab, "{:?} {} {} {}", family, a, b, c);
                } else if ab == Ordering::Equal {
                    prop_assert_eq!(compare_versions(family, &a, &c), bc, "{:?} {} {} {}", family, a, b, c);
                }
            }
        }

        #[test]
        fn comparison_never_panics_on_arbitrary_text(a in any::<String>(), b in any::<String>()) {
            for family in FAMILIES {
                let _ = compare_versions(family, &a, &b);
                let _ = validate_version(family, &a);
            }
        }
    }
}
