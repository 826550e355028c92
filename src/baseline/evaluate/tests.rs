use proptest::prelude::*;

use jiff::Timestamp;

use super::dependency::satisfies;
use super::*;
use crate::api::{
    ApprovalRule, Compliance, ComplianceLevel, MAX_REPORTED_PATCHES, OperatingSystem,
    PackageFamily, PatchBaselineSpec, PatchFilter, PatchFilterKey, PatchState, PatchStateCounts,
};
use crate::baseline::model::{
    Candidate, Dependency, InstallResult, InstalledPackage, PackageRef, Relation,
};

fn now() -> Timestamp {
    "2024-06-15T12:00:00Z".parse().expect("timestamp")
}

fn day(d: &str) -> Option<Timestamp> {
    crate::baseline::model::parse_release_time(d).ok()
}

fn installed(name: &str, version: &str) -> InstalledPackage {
    InstalledPackage {
        name: name.into(),
        arch: Some("x86_64".into()),
        version: version.into(),
        source: None,
    }
}

fn candidate(
    name: &str,
    version: &str,
    classification: Option<&str>,
    severity: Option<&str>,
) -> Candidate {
    Candidate {
        name: name.into(),
        arch: Some("x86_64".into()),
        version: version.into(),
        classification: classification.map(Into::into),
        severity: severity.map(Into::into),
        advisory: classification.map(|_| format!("RHSA-2024:{}", name.len())),
        release_date: day("2024-06-01"),
        ..Candidate::default()
    }
}

fn filter(key: PatchFilterKey, values: &[&str]) -> PatchFilter {
    PatchFilter {
        key,
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

fn rule(filters: Vec<PatchFilter>, days: u32, level: ComplianceLevel) -> ApprovalRule {
    ApprovalRule {
        filters,
        approve_after_days: Some(days),
        approve_until_date: None,
        compliance_level: level,
        enable_non_security: false,
    }
}

fn rhel(rules: Vec<ApprovalRule>) -> PatchBaselineSpec {
    PatchBaselineSpec {
        operating_system: OperatingSystem::RedHatEnterpriseLinux,
        default: false,
        description: None,
        global_filters: vec![],
        approval_rules: rules,
        approved_patches: vec![],
        approved_patches_compliance_level: ComplianceLevel::Unspecified,
        approved_patches_enable_non_security: false,
        rejected_patches: vec![],
        rejected_patches_action: RejectedPatchesAction::AllowAsDependency,
        sources: vec![],
    }
}

fn run(spec: &PatchBaselineSpec, input: &EvaluationInput) -> Evaluation {
    let b = ResolvedBaseline::resolve("test", spec).expect("valid baseline");
    evaluate(&b, input, now()).expect("evaluates")
}

fn verdict<'a>(e: &'a Evaluation, name: &str, version: &str) -> &'a CandidateVerdict {
    e.candidates
        .iter()
        .find(|v| v.name == name && v.version == version)
        .unwrap_or_else(|| panic!("no verdict for {name} {version}"))
}

#[test]
fn newest_approved_version_is_missing_and_the_rest_counts_by_state() {
    let spec = rhel(vec![rule(
        vec![filter(PatchFilterKey::Classification, &["Security"])],
        7,
        ComplianceLevel::High,
    )]);
    let input = EvaluationInput {
        operating_system: Some(OperatingSystem::RedHatEnterpriseLinux),
        installed: vec![
            installed("openssl", "1:3.0.7-24.el9"),
            installed("bash", "5.1.8-6.el9"),
            installed("zlib", "1.2.11-40.el9"),
        ],
        candidates: vec![
            candidate(
                "openssl",
                "1:3.0.7-25.el9",
                Some("Security"),
                Some("Important"),
            ),
            candidate(
                "openssl",
                "1:3.0.7-27.el9",
                Some("Security"),
                Some("Moderate"),
            ),
            candidate("bash", "5.1.8-9.el9", Some("Bugfix"), None),
            candidate("zlib", "1.2.11-40.el9", Some("Security"), Some("Low")),
            candidate("httpd", "2.4.57-5.el9", Some("Security"), Some("Important")),
        ],
        ..EvaluationInput::default()
    };
    let e = run(&spec, &input);
    let s = &e.status;
    assert_eq!(s.compliance, Compliance::NonCompliant);
    assert_eq!(
        s.counts,
        PatchStateCounts {
            installed: 1,
            installed_other: 1,
            missing: 1,
            not_applicable: 1,
            ..PatchStateCounts::default()
        }
    );
    assert_eq!(s.patches.len(), 1);
    assert_eq!(
        s.patches[0].available_version.as_deref(),
        Some("1:3.0.7-27.el9")
    );
    assert_eq!(s.patches[0].state, PatchState::Missing);
    assert_eq!(s.compliance_level, Some(ComplianceLevel::High));
    assert_eq!(s.non_compliant_by_severity.high, 1);
    assert_eq!((s.security_non_compliant, s.other_non_compliant), (1, 0));
    assert!(verdict(&e, "openssl", "1:3.0.7-27.el9").to_install);
    assert!(!verdict(&e, "openssl", "1:3.0.7-25.el9").to_install);
    assert_eq!(
        verdict(&e, "bash", "5.1.8-9.el9").reason,
        VerdictReason::NoRuleMatched
    );
    assert_eq!(e.install_set().count(), 1);
    assert_eq!(s.baseline.as_ref().map(|b| b.name.as_str()), Some("test"));
}

#[test]
fn failed_and_pending_reboot_outcomes_are_reported() {
    let spec = rhel(vec![rule(vec![], 0, ComplianceLevel::Critical)]);
    let mut input = EvaluationInput {
        installed: vec![
            installed("kernel", "5.14.0-362.el9"),
            installed("kernel", "5.14.0-427.el9"),
            installed("curl", "7.76.1-26.el9"),
        ],
        candidates: vec![
            candidate(
                "kernel",
                "5.14.0-427.el9",
                Some("Security"),
                Some("Important"),
            ),
            candidate("curl", "7.76.1-29.el9", Some("Security"), Some("Moderate")),
        ],
        install_result: InstallResult {
            failed: vec![PackageRef {
                name: "curl".into(),
                arch: None,
                version: None,
            }],
            pending_reboot: vec![PackageRef {
                name: "kernel".into(),
                arch: Some("x86_64".into()),
                version: Some("5.14.0-427.el9".into()),
            }],
            reboot_required: false,
        },
        ..EvaluationInput::default()
    };
    let e = run(&spec, &input);
    assert_eq!(e.status.counts.failed, 1);
    assert_eq!(e.status.counts.installed_pending_reboot, 1);
    assert!(e.status.reboot_required);
    assert_eq!(e.status.compliance_level, Some(ComplianceLevel::Critical));
    input.install_result = InstallResult::default();
    let e = run(&spec, &input);
    assert_eq!(
        e.status.counts.installed, 1,
        "the newest installed kernel is the approved one"
    );
    assert_eq!(e.status.counts.missing, 1);
    assert!(!e.status.reboot_required);
}

#[test]
fn block_removes_updates_that_need_a_rejected_package_and_reports_it_installed_rejected() {
    let mut spec = rhel(vec![rule(vec![], 0, ComplianceLevel::Medium)]);
    spec.rejected_patches = vec!["libfoo*".into()];
    spec.rejected_patches_action = RejectedPatchesAction::Block;
    let mut app = candidate("app", "2.0-1", Some("Security"), Some("Important"));
    app.dependencies = Some(vec![Dependency {
        name: "libfoo".into(),
        relation: Some(Relation::GreaterOrEqual),
        version: Some("2.0".into()),
    }]);
    let mut tool = candidate("tool", "1.1-1", Some("Security"), None);
    tool.dependencies = Some(vec![Dependency {
        name: "app".into(),
        relation: Some(Relation::Equal),
        version: Some("2.0-1".into()),
    }]);
    let input = EvaluationInput {
        installed: vec![
            installed("app", "1.0-1"),
            installed("libfoo", "1.0-1"),
            installed("tool", "1.0-1"),
        ],
        candidates: vec![
            app,
            tool,
            candidate("libfoo", "2.0-1", Some("Security"), Some("Critical")),
        ],
        ..EvaluationInput::default()
    };
    let e = run(&spec, &input);
    let app = verdict(&e, "app", "2.0-1");
    assert!(!app.approved);
    assert_eq!(app.reason, VerdictReason::BlockedByRejectedDependency);
    assert_eq!(app.blocked_by.as_deref(), Some("libfoo"));
    let tool = verdict(&e, "tool", "1.1-1");
    assert_eq!(
        (tool.approved, tool.blocked_by.as_deref()),
        (false, Some("app")),
        "blocking is transitive"
    );
    assert_eq!(e.status.counts.installed_rejected, 1);
    // SSM: the packages whose updates are blocked are MISSING on a scan (they were counted
    // InstalledOther before issue #20), and FAILED once an install reported them failed.
    assert_eq!(e.status.counts.installed_other, 0);
    assert_eq!(e.status.counts.missing, 2);
    assert_eq!(e.status.compliance, Compliance::NonCompliant);
    let mut after_install = input.clone();
    after_install.install_result.failed = vec![PackageRef {
        name: "app".into(),
        arch: None,
        version: Some("2.0-1".into()),
    }];
    let e = run(&spec, &after_install);
    assert_eq!((e.status.counts.failed, e.status.counts.missing), (1, 1));

    // AllowAsDependency: nothing blocked, rejected installed package is InstalledOther.
    spec.rejected_patches_action = RejectedPatchesAction::AllowAsDependency;
    let e = run(&spec, &input);
    assert!(verdict(&e, "app", "2.0-1").approved);
    assert_eq!(e.status.counts.installed_rejected, 0);
    assert_eq!(e.status.counts.missing, 2);
}

#[test]
fn errors_name_the_field() {
    let mut spec = rhel(vec![rule(
        vec![filter(PatchFilterKey::Severity, &["Critical", "-x"])],
        0,
        ComplianceLevel::High,
    )]);
    let err = ResolvedBaseline::resolve("b", &spec).expect_err("bad value");
    assert_eq!(err.field(), "approvalRules[0].filters[0].values[1]");
    spec.approval_rules[0].filters.clear();
    spec.approval_rules[0].approve_after_days = None;
    spec.approval_rules[0].approve_until_date = Some("2024-13-01".into());
    assert_eq!(
        ResolvedBaseline::resolve("b", &spec)
            .expect_err("bad date")
            .field(),
        "approvalRules[0].approveUntilDate"
    );
    spec.approval_rules.clear();
    spec.rejected_patches = vec!["ok".into(), "RHSA-2024:1".into()];
    let err = ResolvedBaseline::resolve("b", &spec).expect_err("id in rejected");
    assert_eq!(
        (err.field(), err.category()),
        ("rejectedPatches[1]", "InvalidPatchName")
    );
    let other = EvaluationInput {
        operating_system: Some(OperatingSystem::Ubuntu),
        ..EvaluationInput::default()
    };
    let b = ResolvedBaseline::resolve("b", &rhel(vec![])).expect("valid");
    assert_eq!(
        evaluate(&b, &other, now()).expect_err("os").category(),
        "OperatingSystemMismatch"
    );
}

#[test]
fn more_than_500_non_compliant_patches_are_truncated_most_severe_first() {
    let spec = rhel(vec![
        rule(
            vec![filter(PatchFilterKey::Severity, &["Critical"])],
            0,
            ComplianceLevel::Critical,
        ),
        rule(vec![], 0, ComplianceLevel::Low),
    ]);
    let mut input = EvaluationInput::default();
    for i in 0..600 {
        let name = format!("pkg{i:03}");
        input.installed.push(installed(&name, "1.0-1"));
        let sev = if i % 100 == 7 { "Critical" } else { "Low" };
        input
            .candidates
            .push(candidate(&name, "1.0-2", Some("Security"), Some(sev)));
    }
    let e = run(&spec, &input);
    assert_eq!(e.status.counts.missing, 600);
    assert_eq!(e.status.patches.len(), MAX_REPORTED_PATCHES);
    assert!(e.status.truncated);
    assert_eq!(e.status.non_compliant_by_severity.critical, 6);
    assert!(
        e.status.patches[..6]
            .iter()
            .all(|p| p.compliance_level == Some(ComplianceLevel::Critical))
    );
    assert_eq!(
        verdict(&e, "pkg007", "1.0-2").approved_by,
        Some(ApprovalSource::Rule(0))
    );
    assert_eq!(
        verdict(&e, "pkg007", "1.0-2")
            .also_approved_by
            .iter()
            .collect::<Vec<_>>(),
        vec![ApprovalSource::Rule(1)]
    );
}

// ---- property tests ----

const NAMES: [&str; 5] = ["a", "b", "c", "libx", "liby"];
const VERSIONS: [&str; 5] = ["1.0-1", "1.0-2", "1.1-1", "2.0-1", "0.9-1"];

fn arb_candidate() -> impl Strategy<Value = Candidate> {
    (
        0..NAMES.len(),
        0..VERSIONS.len(),
        prop_oneof![Just(None), Just(Some("Security")), Just(Some("Bugfix"))],
        prop_oneof![
            Just(None),
            Just(Some("Critical")),
            Just(Some("Important")),
            Just(Some("Low"))
        ],
        prop::option::of(0i64..40),
        prop::option::of(prop::collection::vec(
            (0..NAMES.len(), prop::option::of(0..VERSIONS.len())),
            0..3,
        )),
        prop::bool::ANY,
    )
        .prop_map(
            |(n, v, class, sev, days_ago, deps, security_repo)| Candidate {
                name: NAMES[n].into(),
                arch: Some("x86_64".into()),
                version: VERSIONS[v].into(),
                repositories: vec![if security_repo {
                    "baseos-security".into()
                } else {
                    "appstream".into()
                }],
                classification: class.map(Into::into),
                severity: sev.map(Into::into),
                advisory: class.map(|c| format!("RHSA-2024:{c}{n}")),
                release_date: days_ago.map(|d| now() - jiff::SignedDuration::from_hours(24 * d)),
                dependencies: deps.map(|ds| {
                    ds.into_iter()
                        .map(|(dn, dv)| Dependency {
                            name: NAMES[dn].into(),
                            relation: dv.map(|_| Relation::GreaterOrEqual),
                            version: dv.map(|i| VERSIONS[i].into()),
                        })
                        .collect()
                }),
                ..Candidate::default()
            },
        )
}

fn arb_rule() -> impl Strategy<Value = ApprovalRule> {
    (
        prop::sample::subsequence(vec!["Security", "Bugfix", "*"], 0..=2),
        prop::sample::subsequence(vec!["Critical", "Important", "Low"], 0..=2),
        prop_oneof![Just(0u32), Just(7), Just(30)],
        prop::bool::ANY,
        prop_oneof![
            Just(ComplianceLevel::Critical),
            Just(ComplianceLevel::Low),
            Just(ComplianceLevel::Unspecified)
        ],
    )
        .prop_map(|(classes, sevs, days, non_sec, level)| {
            let mut filters = vec![];
            if !classes.is_empty() {
                filters.push(filter(PatchFilterKey::Classification, &classes));
            }
            if !sevs.is_empty() {
                filters.push(filter(PatchFilterKey::Severity, &sevs));
            }
            ApprovalRule {
                filters,
                approve_after_days: Some(days),
                approve_until_date: None,
                compliance_level: level,
                enable_non_security: non_sec,
            }
        })
}

fn arb_spec() -> impl Strategy<Value = PatchBaselineSpec> {
    (
        prop::collection::vec(arb_rule(), 0..4),
        prop::sample::subsequence(vec!["a", "lib*", "1.1-1", "CVE-2024-0001"], 0..=2),
        prop::sample::subsequence(vec!["b", "liby", "c-2.0-1"], 0..=2),
        prop::bool::ANY,
    )
        .prop_map(|(rules, approved, rejected, block)| {
            let mut s = rhel(rules);
            s.approved_patches = approved.into_iter().map(Into::into).collect();
            s.rejected_patches = rejected.into_iter().map(Into::into).collect();
            if block {
                s.rejected_patches_action = RejectedPatchesAction::Block;
            }
            s
        })
}

fn arb_input() -> impl Strategy<Value = EvaluationInput> {
    (
        prop::collection::vec((0..NAMES.len(), 0..VERSIONS.len()), 0..6),
        prop::collection::vec(arb_candidate(), 0..12),
        prop::collection::vec(0..NAMES.len(), 0..2),
    )
        .prop_map(|(inst, mut cands, failed)| {
            // Unique (name, version) candidates, so verdicts can be compared as sets.
            cands.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
            cands.dedup_by(|a, b| a.name == b.name && a.version == b.version);
            EvaluationInput {
                operating_system: Some(OperatingSystem::RedHatEnterpriseLinux),
                installed: inst
                    .into_iter()
                    .map(|(n, v)| installed(NAMES[n], VERSIONS[v]))
                    .collect(),
                candidates: cands,
                install_result: InstallResult {
                    failed: failed
                        .into_iter()
                        .map(|n| PackageRef {
                            name: NAMES[n].into(),
                            arch: None,
                            version: None,
                        })
                        .collect(),
                    ..InstallResult::default()
                },
                ..EvaluationInput::default()
            }
        })
}

fn approved_set(e: &Evaluation) -> std::collections::BTreeSet<(String, String)> {
    e.candidates
        .iter()
        .filter(|v| v.approved)
        .map(|v| (v.name.clone(), v.version.clone()))
        .collect()
}

proptest! {
    #[test]
    fn verdict_does_not_depend_on_input_order(spec in arb_spec(), input in arb_input(), seed in any::<u64>()) {
        let forward = run(&spec, &input);
        let mut shuffled = input.clone();
        // A seeded rotation + reversal permutes both lists.
        let k = (seed as usize) % (shuffled.candidates.len() + 1);
        let k = k.min(shuffled.candidates.len());
        shuffled.candidates.rotate_left(k);
        shuffled.candidates.reverse();
        shuffled.installed.reverse();
        let m = (seed as usize >> 8) % (shuffled.installed.len() + 1);
        let m = m.min(shuffled.installed.len());
        shuffled.installed.rotate_left(m);
        let mut spec2 = spec.clone();
        spec2.approved_patches.reverse();
        spec2.rejected_patches.reverse();
        prop_assert_eq!(run(&spec2, &shuffled), forward);
    }

    #[test]
    fn a_rejected_patch_is_never_approved(spec in arb_spec(), input in arb_input()) {
        let e = run(&spec, &input);
        for v in &e.candidates {
            prop_assert!(!(v.rejected && (v.approved || v.to_install)), "{:?}", v);
        }
    }

    #[test]
    fn adding_an_approval_rule_never_reduces_the_approved_set(spec in arb_spec(), extra in arb_rule(), input in arb_input()) {
        let before = approved_set(&run(&spec, &input));
        let mut more = spec.clone();
        more.approval_rules.push(extra);
        let after = approved_set(&run(&more, &input));
        prop_assert!(before.is_subset(&after), "lost {:?}", before.difference(&after).collect::<Vec<_>>());
    }

    #[test]
    fn block_never_approves_what_needs_a_rejected_package(spec in arb_spec(), input in arb_input()) {
        let mut spec = spec;
        spec.rejected_patches_action = RejectedPatchesAction::Block;
        let e = run(&spec, &input);
        let rejected: std::collections::BTreeSet<(String, String)> =
            e.candidates.iter().filter(|v| v.rejected).map(|v| (v.name.clone(), v.version.clone())).collect();
        for c in &input.candidates {
            let v = e.candidates.iter().find(|v| v.name == c.name && v.version == c.version).expect("verdict");
            if !v.approved {
                continue;
            }
            for d in c.dependencies.iter().flatten() {
                let met_by_installed = input.installed.iter().any(|p| p.name == d.name && satisfies(PackageFamily::Rpm, &p.version, d));
                let providers: Vec<&Candidate> = input.candidates.iter().filter(|p| p.name == d.name && satisfies(PackageFamily::Rpm, &p.version, d)).collect();
                let only_rejected = !providers.is_empty() && providers.iter().all(|p| rejected.contains(&(p.name.clone(), p.version.clone())));
                prop_assert!(met_by_installed || !only_rejected, "{} {} approved but {} only from rejected versions", c.name, c.version, d.name);
            }
        }
    }
}

#[test]
fn filter_keys_apply_per_family_and_their_admission_rules_name_key_and_os() {
    use PatchFilterKey::*;
    let deb = [Priority, Section];
    let rpm_only = [Severity, AdvisoryId, BugzillaId, Epoch, Version, Release];
    for family in [
        PackageFamily::Deb,
        PackageFamily::Rpm,
        PackageFamily::Zypper,
        PackageFamily::Apk,
    ] {
        for key in PatchFilterKey::ALL {
            let want = match key {
                k if deb.contains(&k) => family == PackageFamily::Deb,
                k if rpm_only.contains(&k) => {
                    matches!(family, PackageFamily::Rpm | PackageFamily::Zypper)
                }
                CveId => family != PackageFamily::Deb,
                _ => true,
            };
            assert_eq!(key.applies_to(family), want, "{key:?} on {family:?}");
        }
    }
    let rule = serde_json::to_value(Severity.admission_rule()).expect("rule");
    let text = rule["rule"].as_str().expect("rule text");
    assert!(
        text.contains("f.key == 'Severity'") && text.contains("'SUSE'"),
        "{text}"
    );
    assert!(
        !text.contains("'Ubuntu'") && !text.contains("'Alpine'"),
        "{text}"
    );
    let message = rule["messageExpression"].as_str().expect("message");
    assert!(
        message.contains(
            "'filter key Severity is not valid for operatingSystem ' + self.operatingSystem"
        ),
        "{message}"
    );
    assert_eq!(
        serde_json::to_value(Name.admission_rule()).expect("rule")["rule"],
        "true"
    );
}
