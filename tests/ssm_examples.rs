//! The worked examples and rules of the AWS Systems Manager Patch Manager documentation,
//! reproduced as table-driven cases against `nodepatch::baseline::evaluate`:
//! "Predefined and custom patch baselines", "How security patches are selected", "How patch
//! baseline rules work on Linux-based systems", "Package name formats for approved and rejected
//! patch lists" and "Understanding patch compliance state values". Each case names the
//! statement it reproduces.

use jiff::Timestamp;
use nodepatch::api::{Compliance, ComplianceLevel, PatchBaselineSpec, PatchState};
use nodepatch::baseline::{
    EvaluationInput, ResolvedBaseline, VerdictReason, evaluate, predefined_baseline,
};

/// What a case expects.
enum Expect {
    /// This candidate is approved by `by` (`approvalRules[N]` / `approvedPatches`) at `level`.
    Approved(&'static str, &'static str, &'static str, ComplianceLevel),
    /// This candidate is not approved, for `reason`.
    NotApproved(&'static str, &'static str, VerdictReason),
    /// This candidate is pending until the given day.
    PendingUntil(&'static str, &'static str, &'static str),
    /// This candidate depends on the named rejected package (Block).
    BlockedBy(&'static str, &'static str, &'static str),
    /// Node verdict and compliance level.
    Node(Compliance, Option<ComplianceLevel>),
    /// Number of patches in a state.
    Count(PatchState, u32),
    /// This candidate is the version to install.
    Installs(&'static str, &'static str),
    /// Security / other non-compliant counts.
    SecurityOther(u32, u32),
}

struct Case {
    /// Test name and the SSM statement it reproduces.
    name: &'static str,
    /// A PatchBaselineSpec (YAML) or `predefined:<name>`.
    baseline: &'static str,
    /// An EvaluationInput (YAML).
    input: &'static str,
    /// Evaluation time.
    now: &'static str,
    expect: &'static [Expect],
}

use ComplianceLevel::*;
use Expect::*;

const RHEL_TWO_PACKAGES: &str = r#"
installed:
  - {name: openssl, arch: x86_64, version: "1:3.0.7-24.el9"}
  - {name: bash, arch: x86_64, version: 5.1.8-6.el9}
candidates:
  - {name: openssl, arch: x86_64, version: "1:3.0.7-27.el9", advisory: "RHSA-2024:2447", classification: Security, severity: Important, releaseDate: 2024-05-01}
  - {name: bash, arch: x86_64, version: 5.1.8-9.el9, advisory: "RHBA-2024:2100", classification: Bugfix, releaseDate: 2024-05-01}
"#;

const CASES: &[Case] = &[
    Case {
        name: "predefined RHEL: Security Critical/Important approved 7 days after release",
        baseline: "predefined:nodepatch-predefined-redhatenterpriselinux",
        input: RHEL_TWO_PACKAGES,
        now: "2024-05-08T00:00:00Z",
        expect: &[
            Approved("openssl", "1:3.0.7-27.el9", "approvalRules[0]", Unspecified),
            Installs("openssl", "1:3.0.7-27.el9"),
            Node(Compliance::NonCompliant, Some(Unspecified)),
        ],
    },
    Case {
        name: "predefined RHEL: Bugfix approved 7 days after release without enableNonSecurity",
        baseline: "predefined:nodepatch-predefined-redhatenterpriselinux",
        input: RHEL_TWO_PACKAGES,
        now: "2024-05-09T00:00:00Z",
        expect: &[
            Approved("bash", "5.1.8-9.el9", "approvalRules[1]", Unspecified),
            Count(PatchState::Missing, 2),
            SecurityOther(1, 1),
        ],
    },
    Case {
        name: "predefined RHEL: six days after release the patch is not approved yet",
        baseline: "predefined:nodepatch-predefined-redhatenterpriselinux",
        input: RHEL_TWO_PACKAGES,
        now: "2024-05-07T23:59:59Z",
        expect: &[
            PendingUntil("openssl", "1:3.0.7-27.el9", "2024-05-08"),
            PendingUntil("bash", "5.1.8-9.el9", "2024-05-08"),
            Node(Compliance::Compliant, None),
            Count(PatchState::InstalledOther, 2),
        ],
    },
    Case {
        name: "predefined Amazon Linux 2: Security of severity Medium/Low is not approved",
        baseline: "predefined:nodepatch-predefined-amazonlinux2",
        input: r#"
installed: [{name: curl, arch: x86_64, version: 8.3.0-1.amzn2.0.4}]
candidates:
  - {name: curl, arch: x86_64, version: 8.3.0-1.amzn2.0.5, advisory: ALAS2-2024-2400, classification: security, severity: medium, releaseDate: 2024-01-01}
"#,
        now: "2024-02-01T00:00:00Z",
        expect: &[
            NotApproved("curl", "8.3.0-1.amzn2.0.5", VerdictReason::NoRuleMatched),
            Node(Compliance::Compliant, None),
        ],
    },
    Case {
        name: "predefined Amazon Linux 2023: severity and classification match case-insensitively (updateinfo says 'important')",
        baseline: "predefined:nodepatch-predefined-amazonlinux2023",
        input: r#"
installed: [{name: glibc, arch: x86_64, version: 2.34-52.amzn2023.0.8}]
candidates:
  - {name: glibc, arch: x86_64, version: 2.34-52.amzn2023.0.10, advisory: ALAS2023-2024-500, classification: security, severity: important, releaseDate: 2024-01-01}
"#,
        now: "2024-02-01T00:00:00Z",
        expect: &[Approved(
            "glibc",
            "2.34-52.amzn2023.0.10",
            "approvalRules[0]",
            Unspecified,
        )],
    },
    Case {
        name: "predefined Oracle Linux: Security Important or Moderate (not Critical-only lists)",
        baseline: "predefined:nodepatch-predefined-oraclelinux",
        input: r#"
installed: [{name: krb5-libs, arch: x86_64, version: 1.21.1-1.el9}, {name: expat, arch: x86_64, version: 2.5.0-1.el9}]
candidates:
  - {name: krb5-libs, arch: x86_64, version: 1.21.1-2.0.1.el9, advisory: ELSA-2024-3268, classification: Security, severity: Moderate, releaseDate: 2024-05-01}
  - {name: expat, arch: x86_64, version: 2.5.0-2.el9, advisory: ELSA-2024-1530, classification: Security, severity: Low, releaseDate: 2024-05-01}
"#,
        now: "2024-06-01T00:00:00Z",
        expect: &[
            Approved(
                "krb5-libs",
                "1.21.1-2.0.1.el9",
                "approvalRules[0]",
                Unspecified,
            ),
            NotApproved("expat", "2.5.0-2.el9", VerdictReason::NoRuleMatched),
        ],
    },
    Case {
        name: "RHEL: a package without an update notice is not applied by a security-only rule",
        baseline: r#"
operatingSystem: RedHatEnterpriseLinux
approvalRules: [{filters: [{key: Product, values: ["*"]}], approveAfterDays: 0}]
"#,
        input: r#"
installed: [{name: vim-minimal, arch: x86_64, version: 8.2.2637-20.el9_1}]
candidates: [{name: vim-minimal, arch: x86_64, version: 8.2.2637-21.el9, repositories: [baseos]}]
"#,
        now: "2024-06-01T00:00:00Z",
        expect: &[
            NotApproved("vim-minimal", "8.2.2637-21.el9", VerdictReason::NotSecurity),
            Count(PatchState::InstalledOther, 1),
        ],
    },
    Case {
        name: "CentOS Stream: default repos have no update notices, EnableNonSecurity approves them (predefined, 7 days)",
        baseline: "predefined:nodepatch-predefined-centosstream",
        input: r#"
installed: [{name: systemd, arch: x86_64, version: 252-32.el9}]
candidates: [{name: systemd, arch: x86_64, version: 252-33.el9, repositories: [baseos], releaseDate: 2024-05-20}]
"#,
        now: "2024-06-01T00:00:00Z",
        expect: &[
            Approved("systemd", "252-33.el9", "approvalRules[0]", Unspecified),
            Count(PatchState::Missing, 1),
            SecurityOther(0, 1),
        ],
    },
    Case {
        name: "auto-approval delay: a critical patch released on July 7 is approved on July 14 (not before)",
        baseline: r#"
operatingSystem: AmazonLinux2023
approvalRules: [{filters: [{key: Severity, values: [Critical]}], approveAfterDays: 7, complianceLevel: Critical}]
"#,
        input: r#"
installed: [{name: sudo, arch: x86_64, version: 1.9.15-1.p5.amzn2023.0.1}, {name: less, arch: x86_64, version: 608-2.amzn2023.0.1}]
candidates:
  - {name: sudo, arch: x86_64, version: 1.9.15-1.p5.amzn2023.0.2, advisory: ALAS2023-2024-600, classification: Security, severity: Critical, releaseDate: "2024-07-07T18:30:00Z"}
  - {name: less, arch: x86_64, version: 608-2.amzn2023.0.2, advisory: ALAS2023-2024-601, classification: Security, severity: Critical, releaseDate: "2024-07-08T01:00:00Z"}
"#,
        now: "2024-07-14T00:00:00Z",
        expect: &[
            Approved(
                "sudo",
                "1.9.15-1.p5.amzn2023.0.2",
                "approvalRules[0]",
                Critical,
            ),
            PendingUntil("less", "608-2.amzn2023.0.2", "2024-07-15"),
            Node(Compliance::NonCompliant, Some(Critical)),
        ],
    },
    Case {
        name: "approval cutoff date July 7, 2020: released on July 7 approved, July 8 not",
        baseline: r#"
operatingSystem: RedHatEnterpriseLinux
approvalRules: [{filters: [{key: Classification, values: [Security]}], approveUntilDate: "2020-07-07", complianceLevel: High}]
"#,
        input: r#"
installed: [{name: a, arch: x86_64, version: 1-1}, {name: b, arch: x86_64, version: 1-1}]
candidates:
  - {name: a, arch: x86_64, version: 1-2, advisory: "RHSA-2020:1", classification: Security, releaseDate: 2020-07-07}
  - {name: b, arch: x86_64, version: 1-2, advisory: "RHSA-2020:2", classification: Security, releaseDate: 2020-07-08}
"#,
        now: "2024-01-01T00:00:00Z",
        expect: &[
            Approved("a", "1-2", "approvalRules[0]", High),
            NotApproved("b", "1-2", VerdictReason::ReleasedAfterCutoff),
        ],
    },
    Case {
        name: "approveUntilDate is evaluated in UTC: 2025-11-16 includes 23:59:59Z, not the next second",
        baseline: r#"
operatingSystem: Rocky
approvalRules: [{approveUntilDate: "2025-11-16"}]
"#,
        input: r#"
installed: [{name: a, arch: x86_64, version: 1-1}, {name: b, arch: x86_64, version: 1-1}]
candidates:
  - {name: a, arch: x86_64, version: 1-2, advisory: RLSA-2025:1, classification: Security, releaseDate: "2025-11-16T23:59:59Z"}
  - {name: b, arch: x86_64, version: 1-2, advisory: RLSA-2025:2, classification: Security, releaseDate: "2025-11-17T00:00:00Z"}
"#,
        now: "2026-01-01T00:00:00Z",
        expect: &[
            Approved("a", "1-2", "approvalRules[0]", Unspecified),
            NotApproved("b", "1-2", VerdictReason::ReleasedAfterCutoff),
        ],
    },
    Case {
        name: "no release date: the auto-approval delay counts as zero",
        baseline: r#"
operatingSystem: AmazonLinux2
approvalRules: [{filters: [{key: Classification, values: [Security]}], approveAfterDays: 30}]
"#,
        input: r#"
installed: [{name: a, arch: x86_64, version: 1-1}]
candidates: [{name: a, arch: x86_64, version: 1-2, advisory: ALAS2-2024-1, classification: Security}]
"#,
        now: "2024-01-01T00:00:00Z",
        expect: &[Approved("a", "1-2", "approvalRules[0]", Unspecified)],
    },
    Case {
        name: "a patch listed as both approved and rejected is rejected",
        baseline: r#"
operatingSystem: RedHatEnterpriseLinux
approvedPatches: [openssl]
rejectedPatches: [openssl]
"#,
        input: RHEL_TWO_PACKAGES,
        now: "2024-06-01T00:00:00Z",
        expect: &[
            NotApproved("openssl", "1:3.0.7-27.el9", VerdictReason::Rejected),
            Node(Compliance::Compliant, None),
        ],
    },
    Case {
        name: "the rejected list overrides the rules",
        baseline: r#"
operatingSystem: RedHatEnterpriseLinux
approvalRules: [{filters: [{key: Classification, values: [Security, Bugfix]}]}]
rejectedPatches: ["bash-5.1.8-9*"]
"#,
        input: RHEL_TWO_PACKAGES,
        now: "2024-06-01T00:00:00Z",
        expect: &[
            Approved("openssl", "1:3.0.7-27.el9", "approvalRules[0]", Unspecified),
            NotApproved("bash", "5.1.8-9.el9", VerdictReason::Rejected),
        ],
    },
    Case {
        name: "approvedPatches approve what no rule matches, at approvedPatchesComplianceLevel",
        baseline: r#"
operatingSystem: RedHatEnterpriseLinux
approvalRules: [{filters: [{key: Severity, values: [Critical]}], complianceLevel: Critical}]
approvedPatches: ["openssl*"]
approvedPatchesComplianceLevel: Medium
"#,
        input: RHEL_TWO_PACKAGES,
        now: "2024-06-01T00:00:00Z",
        expect: &[
            Approved("openssl", "1:3.0.7-27.el9", "approvedPatches", Medium),
            Node(Compliance::NonCompliant, Some(Medium)),
        ],
    },
    Case {
        name: "approvedPatches on rpm stay within update notices unless approvedPatchesEnableNonSecurity",
        baseline: r#"
operatingSystem: RedHatEnterpriseLinux
approvedPatches: [vim-minimal, tmux]
approvedPatchesEnableNonSecurity: false
"#,
        input: r#"
installed: [{name: vim-minimal, arch: x86_64, version: 8.2-20.el9}, {name: tmux, arch: x86_64, version: 3.2a-4.el9}]
candidates:
  - {name: vim-minimal, arch: x86_64, version: 8.2-21.el9, repositories: [baseos]}
  - {name: tmux, arch: x86_64, version: 3.2a-5.el9, advisory: "RHBA-2024:1", classification: Bugfix}
"#,
        now: "2024-06-01T00:00:00Z",
        expect: &[
            NotApproved("vim-minimal", "8.2-21.el9", VerdictReason::NotSecurity),
            Approved("tmux", "3.2a-5.el9", "approvedPatches", Unspecified),
        ],
    },
    Case {
        name: "approvedPatchesEnableNonSecurity includes packages without an update notice",
        baseline: r#"
operatingSystem: RedHatEnterpriseLinux
approvedPatches: [vim-minimal]
approvedPatchesEnableNonSecurity: true
"#,
        input: r#"
installed: [{name: vim-minimal, arch: x86_64, version: 8.2-20.el9}]
candidates: [{name: vim-minimal, arch: x86_64, version: 8.2-21.el9, repositories: [baseos]}]
"#,
        now: "2024-06-01T00:00:00Z",
        expect: &[Approved(
            "vim-minimal",
            "8.2-21.el9",
            "approvedPatches",
            Unspecified,
        )],
    },
    Case {
        name: "global filters exclude patches from the rules, approvedPatches still apply",
        baseline: r#"
operatingSystem: RedHatEnterpriseLinux
globalFilters: [{key: Name, values: ["kernel*"]}]
approvalRules: [{filters: [{key: Classification, values: [Security, Bugfix]}]}]
approvedPatches: [bash]
"#,
        input: RHEL_TWO_PACKAGES,
        now: "2024-06-01T00:00:00Z",
        expect: &[
            NotApproved(
                "openssl",
                "1:3.0.7-27.el9",
                VerdictReason::ExcludedByGlobalFilters,
            ),
            Approved("bash", "5.1.8-9.el9", "approvedPatches", Unspecified),
        ],
    },
    Case {
        name: "predefined Ubuntu: security-pocket updates of every priority are approved immediately",
        baseline: "predefined:nodepatch-predefined-ubuntu",
        input: r#"
installed: [{name: libssl3t64, arch: amd64, version: 3.0.13-0ubuntu3.1}, {name: vim, arch: amd64, version: 2:9.1.0016-1ubuntu7}]
candidates:
  - {name: libssl3t64, arch: amd64, version: 3.0.13-0ubuntu3.4, repositories: [noble-security, noble-updates], priority: important, section: libs, firstSeen: "2024-09-03T10:00:00Z"}
  - {name: vim, arch: amd64, version: 2:9.1.0016-1ubuntu7.2, repositories: [noble-updates], priority: optional, section: editors}
"#,
        now: "2024-09-03T10:00:01Z",
        expect: &[
            Approved(
                "libssl3t64",
                "3.0.13-0ubuntu3.4",
                "approvalRules[0]",
                Unspecified,
            ),
            NotApproved("vim", "2:9.1.0016-1ubuntu7.2", VerdictReason::NotSecurity),
            SecurityOther(1, 0),
        ],
    },
    Case {
        name: "Ubuntu: Include nonsecurity updates considers other repositories too",
        baseline: r#"
operatingSystem: Ubuntu
approvalRules: [{filters: [{key: Priority, values: [Required, Important, Standard, Optional, Extra]}], enableNonSecurity: true}]
"#,
        input: r#"
installed: [{name: vim, arch: amd64, version: 2:9.1.0016-1ubuntu7}]
candidates: [{name: vim, arch: amd64, version: 2:9.1.0016-1ubuntu7.2, repositories: [noble-updates], priority: optional, section: editors}]
"#,
        now: "2024-09-03T00:00:00Z",
        expect: &[Approved(
            "vim",
            "2:9.1.0016-1ubuntu7.2",
            "approvalRules[0]",
            Unspecified,
        )],
    },
    Case {
        name: "predefined Debian: bookworm-security is a security repo, priority filter applies",
        baseline: "predefined:nodepatch-predefined-debian",
        input: r#"
installed: [{name: liblzma5, arch: amd64, version: 5.4.1-0.2}, {name: base-files, arch: amd64, version: 12.4+deb12u5}]
candidates:
  - {name: liblzma5, arch: amd64, version: 5.4.1-1+deb12u1, repositories: [bookworm-security], priority: required, section: libs}
  - {name: base-files, arch: amd64, version: 12.4+deb12u6, repositories: [bookworm-updates], priority: required, section: admin}
"#,
        now: "2024-06-01T00:00:00Z",
        expect: &[
            Approved(
                "liblzma5",
                "5.4.1-1+deb12u1",
                "approvalRules[0]",
                Unspecified,
            ),
            NotApproved("base-files", "12.4+deb12u6", VerdictReason::NotSecurity),
            Installs("liblzma5", "5.4.1-1+deb12u1"),
        ],
    },
    Case {
        name: "apt: approvedPatches approve non-security-pocket packages (Ubuntu)",
        baseline: r#"
operatingSystem: Ubuntu
approvedPatches: ["vim*"]
approvedPatchesComplianceLevel: Low
"#,
        input: r#"
installed: [{name: vim, arch: amd64, version: 2:9.1.0016-1ubuntu7}]
candidates: [{name: vim, arch: amd64, version: 2:9.1.0016-1ubuntu7.2, repositories: [noble-updates]}]
"#,
        now: "2024-09-03T00:00:00Z",
        expect: &[
            Approved("vim", "2:9.1.0016-1ubuntu7.2", "approvedPatches", Low),
            Node(Compliance::NonCompliant, Some(Low)),
        ],
    },
    Case {
        name: "compliance level: the highest of the rules and list approving a patch",
        baseline: r#"
operatingSystem: RedHatEnterpriseLinux
approvalRules:
  - {filters: [{key: Classification, values: [Security]}], complianceLevel: Medium}
  - {filters: [{key: Severity, values: [Important]}], complianceLevel: High}
approvedPatches: ["RHSA-2024:2447"]
approvedPatchesComplianceLevel: Low
"#,
        input: RHEL_TWO_PACKAGES,
        now: "2024-06-01T00:00:00Z",
        expect: &[
            Approved("openssl", "1:3.0.7-27.el9", "approvalRules[1]", High),
            Node(Compliance::NonCompliant, Some(High)),
        ],
    },
    Case {
        name: "predefined baselines assign compliance level Unspecified to missing patches",
        baseline: "predefined:nodepatch-predefined-rocky",
        input: r#"
installed: [{name: openssh, arch: x86_64, version: 8.7p1-34.el9}]
candidates: [{name: openssh, arch: x86_64, version: 8.7p1-38.el9, advisory: "RLSA-2024:4312", classification: Security, severity: Critical, releaseDate: 2024-07-01}]
"#,
        now: "2024-07-10T00:00:00Z",
        expect: &[
            Node(Compliance::NonCompliant, Some(Unspecified)),
            Count(PatchState::Missing, 1),
        ],
    },
    Case {
        name: "rejected action Block: an installed rejected patch is InstalledRejected (non-compliant)",
        baseline: r#"
operatingSystem: RedHatEnterpriseLinux
rejectedPatches: ["java-1.8.0-openjdk*"]
rejectedPatchesAction: Block
"#,
        input: r#"
installed: [{name: java-1.8.0-openjdk-headless, arch: x86_64, version: "1:1.8.0.402.b06-2.el9"}]
"#,
        now: "2024-06-01T00:00:00Z",
        expect: &[
            Count(PatchState::InstalledRejected, 1),
            Node(Compliance::NonCompliant, Some(Unspecified)),
        ],
    },
    Case {
        name: "rejected action AllowAsDependency: an installed rejected patch is InstalledOther (compliant)",
        baseline: r#"
operatingSystem: RedHatEnterpriseLinux
rejectedPatches: ["java-1.8.0-openjdk*"]
rejectedPatchesAction: AllowAsDependency
"#,
        input: r#"
installed: [{name: java-1.8.0-openjdk-headless, arch: x86_64, version: "1:1.8.0.402.b06-2.el9"}]
"#,
        now: "2024-06-01T00:00:00Z",
        expect: &[
            Count(PatchState::InstalledOther, 1),
            Count(PatchState::InstalledRejected, 0),
            Node(Compliance::Compliant, None),
        ],
    },
    Case {
        name: "rejected action Block: an update that needs a rejected package is not approved",
        baseline: r#"
operatingSystem: AmazonLinux2023
approvalRules: [{filters: [{key: Classification, values: [Security]}]}]
rejectedPatches: ["python3-urllib3*"]
rejectedPatchesAction: Block
"#,
        input: r#"
installed:
  - {name: python3-requests, arch: noarch, version: 2.25.1-1.amzn2023.0.3}
  - {name: python3-urllib3, arch: noarch, version: 1.25.10-5.amzn2023.0.2}
candidates:
  - name: python3-requests
    arch: noarch
    version: 2.25.1-1.amzn2023.0.4
    advisory: ALAS2023-2024-700
    classification: Security
    dependencies: [{name: python3-urllib3, relation: ">=", version: 1.25.10-5.amzn2023.0.3}]
  - {name: python3-urllib3, arch: noarch, version: 1.25.10-5.amzn2023.0.3, advisory: ALAS2023-2024-701, classification: Security}
"#,
        now: "2024-06-01T00:00:00Z",
        expect: &[
            BlockedBy(
                "python3-requests",
                "2.25.1-1.amzn2023.0.4",
                "python3-urllib3",
            ),
            NotApproved(
                "python3-urllib3",
                "1.25.10-5.amzn2023.0.3",
                VerdictReason::Rejected,
            ),
            Count(PatchState::InstalledRejected, 1),
        ],
    },
    Case {
        name: "rejected action AllowAsDependency: the same update is approved (the rejected package may come along)",
        baseline: r#"
operatingSystem: AmazonLinux2023
approvalRules: [{filters: [{key: Classification, values: [Security]}]}]
rejectedPatches: ["python3-urllib3*"]
"#,
        input: r#"
installed:
  - {name: python3-requests, arch: noarch, version: 2.25.1-1.amzn2023.0.3}
candidates:
  - name: python3-requests
    arch: noarch
    version: 2.25.1-1.amzn2023.0.4
    advisory: ALAS2023-2024-700
    classification: Security
    dependencies: [{name: python3-urllib3, relation: ">=", version: 1.25.10-5.amzn2023.0.3}]
  - {name: python3-urllib3, arch: noarch, version: 1.25.10-5.amzn2023.0.3, advisory: ALAS2023-2024-701, classification: Security}
"#,
        now: "2024-06-01T00:00:00Z",
        expect: &[
            Approved(
                "python3-requests",
                "2.25.1-1.amzn2023.0.4",
                "approvalRules[0]",
                Unspecified,
            ),
            Count(PatchState::Missing, 1),
        ],
    },
    Case {
        name: "package name formats: dbus-1.12.2* and epoch:name-version-release.arch approve dbus",
        baseline: r#"
operatingSystem: AmazonLinux2023
approvedPatches: ["dbus-1.12.2*", "1:dbus-libs-1.12.28-1.amzn2023.0.1.x86_64"]
"#,
        input: r#"
installed: [{name: dbus, arch: x86_64, version: "1:1.12.20-1.amzn2023.0.1"}, {name: dbus-libs, arch: x86_64, version: "1:1.12.20-1.amzn2023.0.1"}, {name: dbus-tools, arch: x86_64, version: "1:1.12.20-1.amzn2023.0.1"}]
candidates:
  - {name: dbus, arch: x86_64, version: "1:1.12.28-1.amzn2023.0.1", advisory: ALAS2023-2024-800, classification: Bugfix}
  - {name: dbus-libs, arch: x86_64, version: "1:1.12.28-1.amzn2023.0.1", advisory: ALAS2023-2024-800, classification: Bugfix}
  - {name: dbus-tools, arch: x86_64, version: "1:1.12.28-1.amzn2023.0.1", advisory: ALAS2023-2024-800, classification: Bugfix}
"#,
        now: "2024-06-01T00:00:00Z",
        expect: &[
            Approved(
                "dbus",
                "1:1.12.28-1.amzn2023.0.1",
                "approvedPatches",
                Unspecified,
            ),
            Approved(
                "dbus-libs",
                "1:1.12.28-1.amzn2023.0.1",
                "approvedPatches",
                Unspecified,
            ),
            NotApproved(
                "dbus-tools",
                "1:1.12.28-1.amzn2023.0.1",
                VerdictReason::NoRuleMatched,
            ),
        ],
    },
    Case {
        name: "package name formats: advisory ids and CVE ids in approvedPatches",
        baseline: r#"
operatingSystem: AmazonLinux2
approvedPatches: [ALAS2-2024-2500, CVE-2024-6387]
"#,
        input: r#"
installed: [{name: openssh, arch: x86_64, version: 7.4p1-22.amzn2.0.6}, {name: openssh-server, arch: x86_64, version: 7.4p1-22.amzn2.0.6}, {name: git, arch: x86_64, version: 2.40.1-1.amzn2.0.1}]
candidates:
  - {name: openssh, arch: x86_64, version: 7.4p1-22.amzn2.0.7, advisory: ALAS2-2024-2500, classification: Security, severity: Important}
  - {name: openssh-server, arch: x86_64, version: 7.4p1-22.amzn2.0.7, advisory: ALAS2-2024-2501, classification: Security, cves: [CVE-2024-6387]}
  - {name: git, arch: x86_64, version: 2.40.1-1.amzn2.0.3, advisory: ALAS2-2024-2502, classification: Security}
"#,
        now: "2024-07-02T00:00:00Z",
        expect: &[
            Approved(
                "openssh",
                "7.4p1-22.amzn2.0.7",
                "approvedPatches",
                Unspecified,
            ),
            Approved(
                "openssh-server",
                "7.4p1-22.amzn2.0.7",
                "approvedPatches",
                Unspecified,
            ),
            NotApproved("git", "2.40.1-1.amzn2.0.3", VerdictReason::NoRuleMatched),
        ],
    },
    Case {
        name: "SLES: patch names with a single wildcard approve the packages of the patch",
        baseline: r#"
operatingSystem: SUSE
approvedPatches: ["SUSE-SLE-Module-Basesystem-15-SP5-2024-*"]
"#,
        input: r#"
installed: [{name: libopenssl3, arch: x86_64, version: 3.0.8-150500.5.27.1}]
candidates:
  - {name: libopenssl3, arch: x86_64, version: 3.0.8-150500.5.30.1, advisory: SUSE-SLE-Module-Basesystem-15-SP5-2024-1234, classification: security, severity: moderate}
"#,
        now: "2024-06-01T00:00:00Z",
        expect: &[Approved(
            "libopenssl3",
            "3.0.8-150500.5.30.1",
            "approvedPatches",
            Unspecified,
        )],
    },
    Case {
        name: "predefined SUSE: Security Critical/Important patches 7 days after release",
        baseline: "predefined:nodepatch-predefined-suse",
        input: r#"
installed: [{name: libopenssl3, arch: x86_64, version: 3.0.8-150500.5.27.1}, {name: zypper, arch: x86_64, version: 1.14.68-150400.3.49.1}]
candidates:
  - {name: libopenssl3, arch: x86_64, version: 3.0.8-150500.5.30.1, advisory: SUSE-SLE-Module-Basesystem-15-SP5-2024-1234, classification: security, severity: important, releaseDate: 2024-05-01}
  - {name: zypper, arch: x86_64, version: 1.14.70-150400.3.52.1, advisory: SUSE-SLE-Module-Basesystem-15-SP5-2024-1300, classification: recommended, severity: moderate, releaseDate: 2024-05-01}
"#,
        now: "2024-06-01T00:00:00Z",
        expect: &[
            Approved(
                "libopenssl3",
                "3.0.8-150500.5.30.1",
                "approvalRules[0]",
                Unspecified,
            ),
            NotApproved(
                "zypper",
                "1.14.70-150400.3.52.1",
                VerdictReason::NoRuleMatched,
            ),
        ],
    },
    Case {
        name: "compliance states: Installed (approved patch present), InstalledOther, NotApplicable",
        baseline: r#"
operatingSystem: RedHatEnterpriseLinux
approvalRules: [{filters: [{key: Classification, values: [Security]}]}]
"#,
        input: r#"
installed: [{name: openssl, arch: x86_64, version: "1:3.0.7-27.el9"}, {name: bash, arch: x86_64, version: 5.1.8-6.el9}]
candidates:
  - {name: openssl, arch: x86_64, version: "1:3.0.7-27.el9", advisory: "RHSA-2024:2447", classification: Security}
  - {name: httpd, arch: x86_64, version: 2.4.57-8.el9, advisory: "RHSA-2024:3000", classification: Security}
"#,
        now: "2024-06-01T00:00:00Z",
        expect: &[
            Count(PatchState::Installed, 1),
            Count(PatchState::InstalledOther, 1),
            Count(PatchState::NotApplicable, 1),
            Node(Compliance::Compliant, None),
        ],
    },
    Case {
        name: "compliance states: Failed and InstalledPendingReboot (NoReboot) are non-compliant",
        baseline: r#"
operatingSystem: Ubuntu
approvalRules: [{enableNonSecurity: true, complianceLevel: High}]
"#,
        input: r#"
installed: [{name: curl, arch: amd64, version: 8.5.0-2ubuntu10.1}, {name: linux-image-6.8.0-45-generic, arch: amd64, version: 6.8.0-45.45}]
candidates:
  - {name: curl, arch: amd64, version: 8.5.0-2ubuntu10.4, repositories: [noble-security]}
  - {name: linux-image-6.8.0-45-generic, arch: amd64, version: 6.8.0-45.45, repositories: [noble-security]}
installResult:
  failed: [{name: curl}]
  pendingReboot: [{name: linux-image-6.8.0-45-generic}]
"#,
        now: "2024-10-01T00:00:00Z",
        expect: &[
            Count(PatchState::Failed, 1),
            Count(PatchState::InstalledPendingReboot, 1),
            Node(Compliance::NonCompliant, Some(High)),
            SecurityOther(2, 0),
        ],
    },
    Case {
        name: "several qualifying versions: the newest is the one to install",
        baseline: r#"
operatingSystem: Debian
approvalRules: [{enableNonSecurity: true}]
"#,
        input: r#"
installed: [{name: tzdata, arch: all, version: 2024a-0+deb12u1}]
candidates:
  - {name: tzdata, arch: all, version: 2024a-0+deb12u2, repositories: [bookworm-updates]}
  - {name: tzdata, arch: all, version: 2025b-0+deb12u1, repositories: [bookworm-updates]}
  - {name: tzdata, arch: all, version: 2024b-0+deb12u1, repositories: [bookworm-security]}
"#,
        now: "2025-06-01T00:00:00Z",
        expect: &[
            Installs("tzdata", "2025b-0+deb12u1"),
            Count(PatchState::Missing, 1),
        ],
    },
];

fn load_baseline(source: &str) -> ResolvedBaseline {
    if let Some(name) = source.strip_prefix("predefined:") {
        let p =
            predefined_baseline(name).unwrap_or_else(|| panic!("no predefined baseline {name}"));
        return ResolvedBaseline::resolve(p.name, &p.spec).expect("predefined baselines are valid");
    }
    let spec: PatchBaselineSpec =
        serde_saphyr::from_str(source).unwrap_or_else(|e| panic!("baseline YAML: {e}"));
    ResolvedBaseline::resolve("example", &spec).unwrap_or_else(|e| panic!("baseline: {e}"))
}

#[test]
fn ssm_documented_examples() {
    assert!(CASES.len() >= 25, "at least 25 worked examples");
    let mut failures = Vec::new();
    for case in CASES {
        let baseline = load_baseline(case.baseline);
        let input: EvaluationInput = serde_saphyr::from_str(case.input)
            .unwrap_or_else(|e| panic!("{}: input YAML: {e}", case.name));
        let now: Timestamp = case
            .now
            .parse()
            .unwrap_or_else(|e| panic!("{}: now: {e}", case.name));
        let eval =
            evaluate(&baseline, &input, now).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let verdict = |name: &str, version: &str| {
            eval.candidates
                .iter()
                .find(|v| v.name == name && v.version == version)
                .unwrap_or_else(|| panic!("{}: no verdict for {name} {version}", case.name))
        };
        for expect in case.expect {
            let problem = match *expect {
                Approved(name, version, by, level) => {
                    let v = verdict(name, version);
                    (!(v.approved && v.approved_by.map(|a| a.to_string()).as_deref() == Some(by) && v.compliance_level == Some(level))).then(|| {
                        format!("{name} {version}: want approved by {by} at {level:?}, got {:?} by {:?} at {:?} ({:?})", v.approved, v.approved_by, v.compliance_level, v.reason)
                    })
                }
                NotApproved(name, version, reason) => {
                    let v = verdict(name, version);
                    (v.approved || v.reason != reason).then(|| {
                        format!(
                            "{name} {version}: want not approved ({reason:?}), got {:?} ({:?})",
                            v.approved, v.reason
                        )
                    })
                }
                PendingUntil(name, version, date) => {
                    let v = verdict(name, version);
                    let got = v.approvable_on.map(|d| d.to_string());
                    (v.approved
                        || v.reason != VerdictReason::ApprovalPending
                        || got.as_deref() != Some(date))
                    .then(|| {
                        format!(
                            "{name} {version}: want pending until {date}, got {:?} {:?} {got:?}",
                            v.approved, v.reason
                        )
                    })
                }
                BlockedBy(name, version, dep) => {
                    let v = verdict(name, version);
                    (v.approved
                        || v.reason != VerdictReason::BlockedByRejectedDependency
                        || v.blocked_by.as_deref() != Some(dep))
                    .then(|| {
                        format!(
                            "{name} {version}: want blocked by {dep}, got {:?} {:?} {:?}",
                            v.approved, v.reason, v.blocked_by
                        )
                    })
                }
                Node(compliance, level) => (eval.status.compliance != compliance
                    || eval.status.compliance_level != level)
                    .then(|| {
                        format!(
                            "node: want {compliance:?}/{level:?}, got {:?}/{:?}",
                            eval.status.compliance, eval.status.compliance_level
                        )
                    }),
                Count(state, n) => {
                    let c = &eval.status.counts;
                    let got = match state {
                        PatchState::Installed => c.installed,
                        PatchState::InstalledOther => c.installed_other,
                        PatchState::InstalledPendingReboot => c.installed_pending_reboot,
                        PatchState::InstalledRejected => c.installed_rejected,
                        PatchState::Missing => c.missing,
                        PatchState::Failed => c.failed,
                        PatchState::NotApplicable => c.not_applicable,
                    };
                    (got != n).then(|| format!("count {state:?}: want {n}, got {got}"))
                }
                Installs(name, version) => {
                    let set: Vec<_> = eval
                        .install_set()
                        .filter(|v| v.name == name)
                        .map(|v| v.version.as_str())
                        .collect();
                    (set != [version])
                        .then(|| format!("{name}: want to install {version}, got {set:?}"))
                }
                SecurityOther(s, o) => (eval.status.security_non_compliant != s
                    || eval.status.other_non_compliant != o)
                    .then(|| {
                        format!(
                            "security/other: want {s}/{o}, got {}/{}",
                            eval.status.security_non_compliant, eval.status.other_non_compliant
                        )
                    }),
            };
            if let Some(p) = problem {
                failures.push(format!("[{}] {p}", case.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} expectation(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{} SSM examples hold", CASES.len());
}
