//! Stable content hash of a baseline: sha256 (hex) of a canonical JSON serialisation of what
//! decides approval. Every node of a PatchRun evaluates the same hash, and a PatchBaseline's
//! status shows it, so an edit that changes approval changes the hash and one that does not
//! (reordering, duplicates, description, `default`) leaves it alone:
//!
//! - filter values are sorted and deduplicated (they are OR-ed), filters sorted (AND-ed),
//!   rules sorted and deduplicated (any rule approves; the approved set and each patch's
//!   highest level do not depend on rule order), approved/rejected entries sorted and
//!   deduplicated, sources sorted by name with sorted products;
//! - `approveAfterDays` absent and `0` are the same (approve immediately);
//! - the serialisation starts with a format tag, so a future change of the canonical form is a
//!   deliberate hash change.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::api::{ApprovalRule, PatchBaselineSpec, PatchFilter, RejectedPatchesAction};

/// Version tag of the canonical form.
const FORMAT: &str = "nodepatch.dev/baseline-hash/v1";

#[derive(Serialize, PartialEq, Eq, PartialOrd, Ord, Clone)]
struct CanonicalFilter {
    key: String,
    values: Vec<String>,
}

#[derive(Serialize, PartialEq, Eq, PartialOrd, Ord, Clone)]
struct CanonicalRule {
    filters: Vec<CanonicalFilter>,
    approve_after_days: Option<u32>,
    approve_until_date: Option<String>,
    compliance_level: &'static str,
    enable_non_security: bool,
}

#[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
struct CanonicalSource {
    name: String,
    products: Vec<String>,
    configuration: String,
}

#[derive(Serialize)]
struct Canonical {
    format: &'static str,
    operating_system: &'static str,
    global_filters: Vec<CanonicalFilter>,
    approval_rules: Vec<CanonicalRule>,
    approved_patches: Vec<String>,
    approved_patches_compliance_level: &'static str,
    approved_patches_enable_non_security: bool,
    rejected_patches: Vec<String>,
    rejected_patches_action: &'static str,
    sources: Vec<CanonicalSource>,
}

fn sorted_unique(values: &[String]) -> Vec<String> {
    let mut v = values.to_vec();
    v.sort();
    v.dedup();
    v
}

fn canonical_filters(filters: &[PatchFilter]) -> Vec<CanonicalFilter> {
    let mut out: Vec<CanonicalFilter> = filters
        .iter()
        .map(|f| CanonicalFilter {
            key: format!("{:?}", f.key),
            values: sorted_unique(&f.values),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn canonical_rule(rule: &ApprovalRule) -> CanonicalRule {
    let approve_after_days = match (&rule.approve_until_date, rule.approve_after_days) {
        (None, days) => Some(days.unwrap_or(0)),
        (Some(_), days) => days,
    };
    CanonicalRule {
        filters: canonical_filters(&rule.filters),
        approve_after_days,
        approve_until_date: rule.approve_until_date.clone(),
        compliance_level: rule.compliance_level.as_str(),
        enable_non_security: rule.enable_non_security,
    }
}

/// The canonical serialisation the hash is computed from (exposed for debugging and docs).
pub fn canonical_baseline_json(spec: &PatchBaselineSpec) -> String {
    let mut rules: Vec<CanonicalRule> = spec.approval_rules.iter().map(canonical_rule).collect();
    rules.sort();
    rules.dedup();
    let mut sources: Vec<CanonicalSource> = spec
        .sources
        .iter()
        .map(|s| CanonicalSource {
            name: s.name.clone(),
            products: sorted_unique(&s.products),
            configuration: s.configuration.clone(),
        })
        .collect();
    sources.sort();
    let canonical = Canonical {
        format: FORMAT,
        operating_system: spec.operating_system.as_str(),
        global_filters: canonical_filters(&spec.global_filters),
        approval_rules: rules,
        approved_patches: sorted_unique(&spec.approved_patches),
        approved_patches_compliance_level: spec.approved_patches_compliance_level.as_str(),
        approved_patches_enable_non_security: spec.approved_patches_enable_non_security,
        rejected_patches: sorted_unique(&spec.rejected_patches),
        rejected_patches_action: match spec.rejected_patches_action {
            RejectedPatchesAction::AllowAsDependency => "AllowAsDependency",
            RejectedPatchesAction::Block => "Block",
        },
        sources,
    };
    // Serialising plain strings, numbers and booleans in fixed-order structs cannot fail.
    serde_json::to_string(&canonical).unwrap_or_default()
}

/// sha256 (lower-case hex) of [`canonical_baseline_json`].
pub fn baseline_hash(spec: &PatchBaselineSpec) -> String {
    let digest = Sha256::digest(canonical_baseline_json(spec).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ComplianceLevel, OperatingSystem, PatchFilterKey, PatchSource};

    fn filter(key: PatchFilterKey, values: &[&str]) -> PatchFilter {
        PatchFilter {
            key,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn rule(filters: Vec<PatchFilter>, days: Option<u32>, level: ComplianceLevel) -> ApprovalRule {
        ApprovalRule {
            filters,
            approve_after_days: days,
            approve_until_date: None,
            compliance_level: level,
            enable_non_security: false,
        }
    }

    fn spec() -> PatchBaselineSpec {
        PatchBaselineSpec {
            operating_system: OperatingSystem::RedHatEnterpriseLinux,
            default: false,
            description: Some("prod".into()),
            global_filters: vec![filter(
                PatchFilterKey::Product,
                &["RedhatEnterpriseLinux9", "RedhatEnterpriseLinux8"],
            )],
            approval_rules: vec![
                rule(
                    vec![
                        filter(PatchFilterKey::Classification, &["Security"]),
                        filter(PatchFilterKey::Severity, &["Critical", "Important"]),
                    ],
                    Some(7),
                    ComplianceLevel::Critical,
                ),
                rule(
                    vec![filter(PatchFilterKey::Classification, &["Bugfix"])],
                    Some(14),
                    ComplianceLevel::Medium,
                ),
            ],
            approved_patches: vec!["openssl*".into(), "CVE-2024-3094".into()],
            approved_patches_compliance_level: ComplianceLevel::High,
            approved_patches_enable_non_security: false,
            rejected_patches: vec!["kernel-rt*".into(), "java-1.8.0*".into()],
            rejected_patches_action: RejectedPatchesAction::Block,
            sources: vec![
                PatchSource {
                    name: "b".into(),
                    products: vec!["x".into(), "a".into()],
                    configuration: "[b]".into(),
                },
                PatchSource {
                    name: "a".into(),
                    products: vec!["y".into()],
                    configuration: "[a]".into(),
                },
            ],
        }
    }

    #[test]
    fn hash_is_sha256_hex_and_stable() {
        let h = baseline_hash(&spec());
        assert_eq!(h.len(), 64);
        assert!(
            h.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(h, baseline_hash(&spec()));
    }

    #[test]
    fn order_duplicates_and_presentation_do_not_change_the_hash() {
        let base = baseline_hash(&spec());
        let mut s = spec();
        s.approval_rules.reverse();
        s.approval_rules[1].filters.reverse();
        s.approval_rules[1].filters[0].values.reverse();
        s.global_filters[0].values.reverse();
        s.approved_patches.reverse();
        s.approved_patches.push("openssl*".into());
        s.rejected_patches.reverse();
        s.sources.reverse();
        s.sources[0].products.reverse();
        s.description = Some("another text".into());
        s.default = true;
        assert_eq!(baseline_hash(&s), base);
        let mut s = spec();
        s.approval_rules.push(s.approval_rules[0].clone());
        assert_eq!(
            baseline_hash(&s),
            base,
            "a duplicated rule approves nothing new"
        );
        let mut a = spec();
        a.approval_rules[1].approve_after_days = None;
        let mut b = spec();
        b.approval_rules[1].approve_after_days = Some(0);
        assert_eq!(
            baseline_hash(&a),
            baseline_hash(&b),
            "absent approveAfterDays is 0"
        );
    }

    #[test]
    fn every_semantic_change_changes_the_hash() {
        let base = baseline_hash(&spec());
        type Edit = Box<dyn Fn(&mut PatchBaselineSpec)>;
        let edits: Vec<(&str, Edit)> = vec![
            (
                "os",
                Box::new(|s| s.operating_system = OperatingSystem::Rocky),
            ),
            (
                "days",
                Box::new(|s| s.approval_rules[0].approve_after_days = Some(8)),
            ),
            (
                "until",
                Box::new(|s| {
                    s.approval_rules[0].approve_after_days = None;
                    s.approval_rules[0].approve_until_date = Some("2024-01-01".into());
                }),
            ),
            (
                "level",
                Box::new(|s| s.approval_rules[0].compliance_level = ComplianceLevel::High),
            ),
            (
                "nonsec",
                Box::new(|s| s.approval_rules[0].enable_non_security = true),
            ),
            (
                "value",
                Box::new(|s| {
                    s.approval_rules[0].filters[1]
                        .values
                        .push("Moderate".into())
                }),
            ),
            ("global", Box::new(|s| s.global_filters.clear())),
            (
                "approved",
                Box::new(|s| s.approved_patches.push("curl".into())),
            ),
            (
                "approved level",
                Box::new(|s| s.approved_patches_compliance_level = ComplianceLevel::Low),
            ),
            (
                "approved nonsec",
                Box::new(|s| s.approved_patches_enable_non_security = true),
            ),
            (
                "rejected",
                Box::new(|s| s.rejected_patches.pop().map(drop).unwrap_or_default()),
            ),
            (
                "action",
                Box::new(|s| s.rejected_patches_action = RejectedPatchesAction::AllowAsDependency),
            ),
            (
                "source",
                Box::new(|s| s.sources[0].configuration.push('\n')),
            ),
        ];
        for (what, edit) in edits {
            let mut s = spec();
            edit(&mut s);
            assert_ne!(baseline_hash(&s), base, "{what}");
        }
    }
}
