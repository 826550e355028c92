//! Predefined baselines, one per operating system, mirroring SSM's predefined baselines
//! (`AWS-<OS>DefaultPatchBaseline`); named `nodepatch-predefined-<os lowercase>`. A node whose
//! policy names no baseline for its OS, and whose OS has no `default: true` PatchBaseline, is
//! evaluated against these. Like SSM's, they assign compliance level Unspecified.
//!
//! | OS | rules | SSM counterpart |
//! |---|---|---|
//! | Debian, Ubuntu | security-suite updates of priority Required, Important, Standard, Optional or Extra, immediately | AWS-DebianDefaultPatchBaseline, AWS-UbuntuDefaultPatchBaseline |
//! | RHEL, Rocky, AlmaLinux, Amazon Linux 2, Amazon Linux 2023 | Security with severity Critical or Important, and Bugfix, 7 days after release | AWS-RedHat/RockyLinux/AlmaLinux/AmazonLinux2/AmazonLinux2023DefaultPatchBaseline |
//! | Oracle Linux | Security with severity Important or Moderate, and Bugfix, 7 days after release | AWS-OracleLinuxDefaultPatchBaseline |
//! | CentOS Stream | all updates, including non-security, 7 days after release | AWS-CentOSDefaultPatchBaseline |
//! | SUSE | Security with severity Critical or Important, 7 days after release | AWS-SuseDefaultPatchBaseline |
//! | openSUSE | as SUSE | none (nodepatch's choice) |
//! | Fedora | Security of any severity (Fedora rarely sets one) and Bugfix, 7 days after release | none (nodepatch's choice) |
//! | Alpine | secdb security fixes, immediately (secdb has no dates or severities) | none (nodepatch's choice) |

use crate::api::{
    ApprovalRule, ComplianceLevel, OperatingSystem, PatchBaselineSpec, PatchFilter, PatchFilterKey,
    RejectedPatchesAction,
};

/// Prefix of every predefined baseline's name.
pub const PREDEFINED_PREFIX: &str = "nodepatch-predefined-";

/// A built-in baseline.
#[derive(Clone, Debug, PartialEq)]
pub struct PredefinedBaseline {
    /// `nodepatch-predefined-<os lowercase>`.
    pub name: String,
    /// The SSM predefined baseline it mirrors, if SSM has one for this OS.
    pub ssm_counterpart: Option<&'static str>,
    /// The baseline itself.
    pub spec: PatchBaselineSpec,
}

/// Name of `os`'s predefined baseline.
pub fn predefined_name(os: OperatingSystem) -> String {
    format!("{PREDEFINED_PREFIX}{}", os.as_str().to_ascii_lowercase())
}

fn filter(key: PatchFilterKey, values: &[&str]) -> PatchFilter {
    PatchFilter {
        key,
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    }
}

fn rule(
    filters: Vec<PatchFilter>,
    approve_after_days: u32,
    enable_non_security: bool,
) -> ApprovalRule {
    ApprovalRule {
        filters,
        approve_after_days: Some(approve_after_days),
        approve_until_date: None,
        compliance_level: ComplianceLevel::Unspecified,
        enable_non_security,
    }
}

/// Security of the given severities plus Bugfix, 7 days after release (the RHEL-family shape).
fn security_and_bugfix(severities: &[&str]) -> Vec<ApprovalRule> {
    vec![
        rule(
            vec![
                filter(PatchFilterKey::Product, &["*"]),
                filter(PatchFilterKey::Classification, &["Security"]),
                filter(PatchFilterKey::Severity, severities),
            ],
            7,
            false,
        ),
        rule(
            vec![
                filter(PatchFilterKey::Product, &["*"]),
                filter(PatchFilterKey::Classification, &["Bugfix"]),
            ],
            7,
            false,
        ),
    ]
}

fn spec(
    os: OperatingSystem,
    description: &str,
    approval_rules: Vec<ApprovalRule>,
) -> PatchBaselineSpec {
    PatchBaselineSpec {
        operating_system: os,
        default: false,
        description: Some(description.to_owned()),
        global_filters: Vec::new(),
        approval_rules,
        approved_patches: Vec::new(),
        approved_patches_compliance_level: ComplianceLevel::Unspecified,
        approved_patches_enable_non_security: false,
        rejected_patches: Vec::new(),
        rejected_patches_action: RejectedPatchesAction::AllowAsDependency,
        sources: Vec::new(),
    }
}

/// The predefined baseline of `os`.
pub fn predefined_for(os: OperatingSystem) -> PredefinedBaseline {
    use OperatingSystem::*;
    let apt_security = || {
        vec![rule(
            vec![
                filter(PatchFilterKey::Product, &["*"]),
                filter(PatchFilterKey::Section, &["*"]),
                filter(
                    PatchFilterKey::Priority,
                    &["Required", "Important", "Standard", "Optional", "Extra"],
                ),
            ],
            0,
            false,
        )]
    };
    let (ssm, spec) = match os {
        Debian | Ubuntu => (
            if os == Debian {
                "AWS-DebianDefaultPatchBaseline"
            } else {
                "AWS-UbuntuDefaultPatchBaseline"
            },
            spec(
                os,
                "Immediately approves all security updates (offered by a security suite) of priority Required, Important, Standard, Optional or Extra.",
                apt_security(),
            ),
        ),
        RedHatEnterpriseLinux | Rocky | AlmaLinux | AmazonLinux2 | AmazonLinux2023 => (
            match os {
                RedHatEnterpriseLinux => "AWS-RedHatDefaultPatchBaseline",
                Rocky => "AWS-RockyLinuxDefaultPatchBaseline",
                AlmaLinux => "AWS-AlmaLinuxDefaultPatchBaseline",
                AmazonLinux2 => "AWS-AmazonLinux2DefaultPatchBaseline",
                _ => "AWS-AmazonLinux2023DefaultPatchBaseline",
            },
            spec(
                os,
                "Approves Security updates of severity Critical or Important, and Bugfix updates, 7 days after release.",
                security_and_bugfix(&["Critical", "Important"]),
            ),
        ),
        OracleLinux => (
            "AWS-OracleLinuxDefaultPatchBaseline",
            spec(
                os,
                "Approves Security updates of severity Important or Moderate, and Bugfix updates, 7 days after release.",
                security_and_bugfix(&["Important", "Moderate"]),
            ),
        ),
        CentOSStream => (
            "AWS-CentOSDefaultPatchBaseline",
            spec(
                os,
                "Approves all updates, including non-security updates, 7 days after release.",
                vec![rule(vec![filter(PatchFilterKey::Product, &["*"])], 7, true)],
            ),
        ),
        Suse | OpenSUSE => (
            "AWS-SuseDefaultPatchBaseline",
            spec(
                os,
                "Approves Security patches of severity Critical or Important, 7 days after release.",
                vec![rule(
                    vec![
                        filter(PatchFilterKey::Product, &["*"]),
                        filter(PatchFilterKey::Classification, &["Security"]),
                        filter(PatchFilterKey::Severity, &["Critical", "Important"]),
                    ],
                    7,
                    false,
                )],
            ),
        ),
        Fedora => (
            "",
            spec(
                os,
                "Approves Security updates of any severity and Bugfix updates, 7 days after release.",
                security_and_bugfix(&["*"]),
            ),
        ),
        Alpine => (
            "",
            spec(
                os,
                "Immediately approves all security fixes listed in the Alpine secdb.",
                vec![rule(
                    vec![filter(PatchFilterKey::Product, &["*"])],
                    0,
                    false,
                )],
            ),
        ),
    };
    // SSM has no predefined baseline for openSUSE, Fedora or Alpine.
    let ssm_counterpart = match os {
        OpenSUSE | Fedora | Alpine => None,
        _ => Some(ssm),
    };
    PredefinedBaseline {
        name: predefined_name(os),
        ssm_counterpart,
        spec,
    }
}

/// Every predefined baseline, in [`OperatingSystem::ALL`] order (for `nodepatch baselines`).
pub fn predefined_baselines() -> Vec<PredefinedBaseline> {
    OperatingSystem::ALL
        .into_iter()
        .map(predefined_for)
        .collect()
}

/// The predefined baseline called `name`, if any.
pub fn predefined_baseline(name: &str) -> Option<PredefinedBaseline> {
    let os_part = name.strip_prefix(PREDEFINED_PREFIX)?;
    OperatingSystem::ALL
        .into_iter()
        .find(|os| os.as_str().eq_ignore_ascii_case(os_part) && predefined_name(*os) == name)
        .map(predefined_for)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::evaluate::ResolvedBaseline;

    #[test]
    fn there_is_one_valid_predefined_baseline_per_operating_system() {
        let all = predefined_baselines();
        assert_eq!(all.len(), OperatingSystem::ALL.len());
        for (p, os) in all.iter().zip(OperatingSystem::ALL) {
            assert_eq!(p.spec.operating_system, os);
            assert_eq!(p.name, predefined_name(os));
            assert!(
                p.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{}",
                p.name
            );
            ResolvedBaseline::resolve(&p.name, &p.spec)
                .unwrap_or_else(|e| panic!("{}: {e}", p.name));
            assert_eq!(predefined_baseline(&p.name).as_ref(), Some(p));
        }
        assert_eq!(
            predefined_name(OperatingSystem::Suse),
            "nodepatch-predefined-suse"
        );
        assert_eq!(
            predefined_name(OperatingSystem::AmazonLinux2023),
            "nodepatch-predefined-amazonlinux2023"
        );
        assert_eq!(
            predefined_for(OperatingSystem::Ubuntu).ssm_counterpart,
            Some("AWS-UbuntuDefaultPatchBaseline")
        );
        assert_eq!(
            predefined_for(OperatingSystem::Alpine).ssm_counterpart,
            None
        );
        assert!(predefined_baseline("nodepatch-predefined-Ubuntu").is_none());
        assert!(predefined_baseline("ubuntu").is_none());
    }

    #[test]
    fn predefined_hashes_are_distinct_per_rule_set() {
        let rhel = ResolvedBaseline::resolve(
            "a",
            &predefined_for(OperatingSystem::RedHatEnterpriseLinux).spec,
        )
        .expect("valid");
        let rocky = ResolvedBaseline::resolve("b", &predefined_for(OperatingSystem::Rocky).spec)
            .expect("valid");
        let oracle =
            ResolvedBaseline::resolve("c", &predefined_for(OperatingSystem::OracleLinux).spec)
                .expect("valid");
        // The OS is part of the content: the same rules for two OSes are two baselines.
        assert_ne!(rhel.hash(), rocky.hash());
        assert_ne!(rhel.hash(), oracle.hash());
    }
}
