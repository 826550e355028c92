//! Patch evaluation and version ordering throughput.
//!
//! - `evaluate/2000_candidates_10_rules_x_4_filters`: one node (1,000 installed packages, 2,000
//!   candidates) against a baseline of 10 rules with 4 filters each, global filters, and approved
//!   and rejected lists. Goal: ≤ 1 ms.
//! - `compare/{deb,rpm,apk}`: version comparisons over 1,000 realistic pairs. Goal: ≥ 5 M/s.
//!
//! Results and the command are in docs/benchmarks.md.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jiff::{SignedDuration, Timestamp};
use nodepatch::api::{
    ApprovalRule, ComplianceLevel, OperatingSystem, PatchBaselineSpec, PatchFilter, PatchFilterKey,
    RejectedPatchesAction,
};
use nodepatch::baseline::version::{apk, deb, rpm};
use nodepatch::baseline::{
    Candidate, Dependency, EvaluationInput, InstalledPackage, Relation, ResolvedBaseline, evaluate,
};

fn filter(key: PatchFilterKey, values: &[&str]) -> PatchFilter {
    PatchFilter {
        key,
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

/// 10 rules × 4 filters, RHEL-shaped.
fn baseline() -> PatchBaselineSpec {
    let severities = [
        &["Critical"][..],
        &["Important"],
        &["Moderate"],
        &["Low"],
        &["Critical", "Important"],
    ];
    let rules = (0..10)
        .map(|i| ApprovalRule {
            filters: vec![
                filter(
                    PatchFilterKey::Product,
                    &["RedhatEnterpriseLinux9", "RedhatEnterpriseLinux8"],
                ),
                filter(
                    PatchFilterKey::Classification,
                    if i % 2 == 0 {
                        &["Security"]
                    } else {
                        &["Bugfix", "Enhancement"]
                    },
                ),
                filter(PatchFilterKey::Severity, severities[i % severities.len()]),
                filter(
                    PatchFilterKey::Name,
                    &["lib*", "python3-*", "kernel*", "*-devel", "openssl*", "p*"],
                ),
            ],
            approve_after_days: Some(i as u32 * 3),
            approve_until_date: None,
            compliance_level: [
                ComplianceLevel::Critical,
                ComplianceLevel::High,
                ComplianceLevel::Medium,
            ][i % 3],
            enable_non_security: i % 4 == 3,
        })
        .collect();
    PatchBaselineSpec {
        operating_system: OperatingSystem::RedHatEnterpriseLinux,
        default: false,
        description: None,
        global_filters: vec![filter(PatchFilterKey::Arch, &["x86_64", "noarch"])],
        approval_rules: rules,
        approved_patches: vec![
            "RHSA-2024:1000".into(),
            "CVE-2024-1234".into(),
            "bash-5.1.8*".into(),
        ],
        approved_patches_compliance_level: ComplianceLevel::High,
        approved_patches_enable_non_security: false,
        rejected_patches: vec!["kernel-rt*".into(), "libfoo-0.9-*".into()],
        rejected_patches_action: RejectedPatchesAction::Block,
        sources: vec![],
    }
}

/// 1,000 installed packages, two candidate versions each.
fn node(now: Timestamp) -> EvaluationInput {
    let prefixes = [
        "lib", "python3-", "kernel", "perl-", "openssl", "gnome-", "x",
    ];
    let mut input = EvaluationInput {
        operating_system: Some(OperatingSystem::RedHatEnterpriseLinux),
        product: Some("RedhatEnterpriseLinux9".into()),
        ..EvaluationInput::default()
    };
    for i in 0..1000 {
        let name = format!(
            "{}pkg{i}{}",
            prefixes[i % prefixes.len()],
            if i % 5 == 0 { "-devel" } else { "" }
        );
        let arch = if i % 9 == 0 { "noarch" } else { "x86_64" };
        input.installed.push(InstalledPackage {
            name: name.clone(),
            arch: Some(arch.into()),
            version: format!("1.{}.{}-{}.el9", i % 7, i % 13, i % 5 + 1),
            source: None,
        });
        for (k, bump) in ["-1.el9_4", "-3.el9_4.1"].iter().enumerate() {
            let class = ["Security", "Bugfix", "Enhancement"][(i + k) % 3];
            input.candidates.push(Candidate {
                name: name.clone(),
                arch: Some(arch.into()),
                version: format!("1.{}.{}{bump}", i % 7, i % 13 + 1),
                repositories: vec!["baseos".into()],
                classification: (i % 11 != 0).then(|| class.into()),
                severity: Some(["Critical", "Important", "Moderate", "Low"][(i + k) % 4].into()),
                release_date: Some(now - SignedDuration::from_hours(24 * ((i % 40) as i64))),
                advisory: Some(format!("RHSA-2024:{}", i * 2 + k)),
                cves: vec![format!("CVE-2024-{}", 1000 + i)],
                dependencies: (i % 10 == 0).then(|| {
                    vec![Dependency {
                        name: format!("libpkg{}", (i + 7) % 1000),
                        relation: Some(Relation::GreaterOrEqual),
                        version: Some("1.0".into()),
                    }]
                }),
                ..Candidate::default()
            });
        }
    }
    input
}

fn bench_evaluate(c: &mut Criterion) {
    let now: Timestamp = "2024-06-15T00:00:00Z".parse().expect("timestamp");
    let spec = baseline();
    let resolved = ResolvedBaseline::resolve("bench", &spec).expect("valid baseline");
    let input = node(now);
    assert_eq!(input.candidates.len(), 2000);
    let mut group = c.benchmark_group("evaluate");
    group.throughput(Throughput::Elements(input.candidates.len() as u64));
    group.bench_function("2000_candidates_10_rules_x_4_filters", |b| {
        b.iter(|| evaluate(black_box(&resolved), black_box(&input), now).expect("evaluates"))
    });
    group.bench_function("resolve_baseline_10_rules", |b| {
        b.iter(|| ResolvedBaseline::resolve("bench", black_box(&spec)).expect("valid"))
    });
    group.finish();
}

fn pairs(versions: &[&str]) -> Vec<(String, String)> {
    let n = versions.len();
    (0..1000)
        .map(|i| {
            (
                versions[i % n].to_string(),
                versions[(i * 7 + 3) % n].to_string(),
            )
        })
        .collect()
}

fn bench_compare(c: &mut Criterion) {
    let deb_pairs = pairs(&[
        "2.36-9+deb12u4",
        "2.36-9+deb12u7",
        "1:9.1.0016-1ubuntu7.2",
        "1:9.1.0016-1ubuntu7",
        "3.0.13-0ubuntu3.4",
        "3.0.13-0ubuntu3.1",
        "6.1.76-1",
        "6.1.90-1~bpo11+1",
        "5.4.1-1+deb12u1",
        "1.0~rc1-1",
        "252.22-1~deb12u1",
        "252.26-1~deb12u2",
        "2:8.39-15",
        "12.4+deb12u5",
    ]);
    let rpm_pairs = pairs(&[
        "1:3.0.7-24.el9",
        "1:3.0.7-27.el9",
        "5.14.0-362.8.1.el9_3",
        "5.14.0-427.13.1.el9_4",
        "2.34-52.amzn2023.0.8",
        "2.34-52.amzn2023.0.10",
        "1.9.5p2-9.el9",
        "1.9.5p2-10.el9_3",
        "252-32.el9",
        "252-33.el9",
        "8.7p1-34.el9",
        "8.7p1-38.el9",
        "1.0~rc1-1.fc40",
        "2.0^git1-1.fc40",
    ]);
    let apk_pairs = pairs(&[
        "3.1.4-r5",
        "3.1.4-r6",
        "1.36.1-r29",
        "1.36.1-r30",
        "2.4.59-r0",
        "2.4.60-r0",
        "1.0_rc1-r0",
        "1.0-r0",
        "8.9.0_p1-r2",
        "0.1.0_alpha_pre2",
        "6.6.31-r0",
        "2.40.1-r0",
        "1.0_git20240101-r3",
        "20240101-r0",
    ]);
    let mut group = c.benchmark_group("compare");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("deb", |b| {
        b.iter(|| {
            deb_pairs
                .iter()
                .map(|(x, y)| deb::compare(black_box(x), black_box(y)) as i32)
                .sum::<i32>()
        })
    });
    group.bench_function("rpm", |b| {
        b.iter(|| {
            rpm_pairs
                .iter()
                .map(|(x, y)| rpm::compare_evr(black_box(x), black_box(y)) as i32)
                .sum::<i32>()
        })
    });
    group.bench_function("apk", |b| {
        b.iter(|| {
            apk_pairs
                .iter()
                .map(|(x, y)| apk::compare(black_box(x), black_box(y)) as i32)
                .sum::<i32>()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_evaluate, bench_compare);
criterion_main!(benches);
