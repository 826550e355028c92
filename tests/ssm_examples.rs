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

const RHEL_SEVEN_DAYS: &str = r#"
operatingSystem: RedHatEnterpriseLinux
approvalRules: [{filters: [{key: Classification, values: [Security]}], approveAfterDays: 7, complianceLevel: High}]
"#;

const RHEL_RELEASED_AT_18: &str = r#"
installed: [{name: openssl, arch: x86_64, version: "1:3.0.7-27.el9"}]
candidates:
  - {name: openssl, arch: x86_64, version: "1:3.0.7-30.el9", advisory: "RHSA-2025:2000", classification: Security, severity: Important, releaseDate: "2025-11-09T18:00:00Z"}
"#;

/// An RHEL node whose two updates carry CVE, advisory and Bugzilla ids, for the SSM filter keys
/// CVE_ID, ADVISORY_ID, BUGZILLA_ID, EPOCH, VERSION and RELEASE.
const RHEL_WITH_REFERENCES: &str = r#"
installed:
  - {name: openssl, arch: x86_64, version: "1:3.0.7-24.el9"}
  - {name: bash, arch: x86_64, version: 5.1.8-6.el9}
candidates:
  - {name: openssl, arch: x86_64, version: "1:3.0.7-27.el9", advisory: "RHSA-2024:2447", classification: Security, severity: Important, cves: [CVE-2024-0727, CVE-2023-6129], bugzillas: ["2257785"], releaseDate: 2024-05-01}
  - {name: bash, arch: x86_64, version: 5.1.8-9.el9, advisory: "RHBA-2024:2100", classification: Bugfix, bugzillas: ["2100001"], releaseDate: 2024-05-01}
"#;

const UBUNTU_VIM_UPDATES_ONLY: &str = r#"
installed: [{name: vim, arch: amd64, version: 2:9.1.0016-1ubuntu7}]
candidates: [{name: vim, arch: amd64, version: 2:9.1.0016-1ubuntu7.2, repositories: [noble-updates], priority: optional, section: editors}]
"#;

/// curl with a security version and a newer version only noble-updates offers (apt's candidate).
const UBUNTU_CURL_SECURITY_AND_UPDATES: &str = r#"
installed: [{name: curl, arch: amd64, version: 8.5.0-2ubuntu10.1}]
candidates:
  - {name: curl, arch: amd64, version: 8.5.0-2ubuntu10.4, repositories: [noble-security], priority: optional, section: web}
  - {name: curl, arch: amd64, version: 8.5.0-2ubuntu10.5, repositories: [noble-updates], priority: optional, section: web}
"#;

const BLOCK_URLLIB3_UPDATE: &str = r#"
operatingSystem: AmazonLinux2023
approvalRules: [{filters: [{key: Classification, values: [Security]}], complianceLevel: High}]
rejectedPatches: ["python3-urllib3-1.25.10-5.amzn2023.0.3*"]
rejectedPatchesAction: Block
"#;

const REQUESTS_NEEDS_NEW_URLLIB3: &str = r#"
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
            PendingUntil("openssl", "1:3.0.7-27.el9", "2024-05-08T00:00:00Z"),
            PendingUntil("bash", "5.1.8-9.el9", "2024-05-08T00:00:00Z"),
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
    // Changed for issue #20: this case used to approve `sudo` (released 2024-07-07T18:30Z) at
    // 2024-07-14T00:00Z by counting calendar days, up to a day early. The SSM API reference
    // (PatchRule, ApproveAfterDays) counts from the release instant: "if a patch is released at
    // 2025-11-09T18:00:00Z and ApproveAfterDays is set to 7, the patch is approved after
    // 2025-11-16T18:00:00Z".
    Case {
        name: "auto-approval delay counts from the release instant: released July 7 18:30Z, pending at July 14 00:00Z",
        baseline: r#"
operatingSystem: AmazonLinux2023
approvalRules: [{filters: [{key: Severity, values: [Critical]}], approveAfterDays: 7, complianceLevel: Critical}]
"#,
        input: r#"
installed: [{name: sudo, arch: x86_64, version: 1.9.15-1.p5.amzn2023.0.1}, {name: less, arch: x86_64, version: 608-2.amzn2023.0.1}]
candidates:
  - {name: sudo, arch: x86_64, version: 1.9.15-1.p5.amzn2023.0.2, advisory: ALAS2023-2024-600, classification: Security, severity: Critical, releaseDate: "2024-07-07T18:30:00Z"}
  - {name: less, arch: x86_64, version: 608-2.amzn2023.0.2, advisory: ALAS2023-2024-601, classification: Security, severity: Critical, releaseDate: "2024-07-06T23:00:00Z"}
"#,
        now: "2024-07-14T00:00:00Z",
        expect: &[
            PendingUntil("sudo", "1.9.15-1.p5.amzn2023.0.2", "2024-07-14T18:30:00Z"),
            Approved("less", "608-2.amzn2023.0.2", "approvalRules[0]", Critical),
            Node(Compliance::NonCompliant, Some(Critical)),
        ],
    },
    // SSM API reference, PatchRule ApproveAfterDays: "if a patch is released at
    // 2025-11-09T18:00:00Z and ApproveAfterDays is set to 7, the patch is approved after
    // 2025-11-16T18:00:00Z". One second before: pending.
    Case {
        name: "ApproveAfterDays 7, released 2025-11-09T18:00:00Z: still pending at 2025-11-16T17:59:59Z",
        baseline: RHEL_SEVEN_DAYS,
        input: RHEL_RELEASED_AT_18,
        now: "2025-11-16T17:59:59Z",
        expect: &[
            PendingUntil("openssl", "1:3.0.7-30.el9", "2025-11-16T18:00:00Z"),
            Node(Compliance::Compliant, None),
        ],
    },
    // Same page and sentence: from 2025-11-16T18:00:00Z on, approved.
    Case {
        name: "ApproveAfterDays 7, released 2025-11-09T18:00:00Z: approved at 2025-11-16T18:00:00Z",
        baseline: RHEL_SEVEN_DAYS,
        input: RHEL_RELEASED_AT_18,
        now: "2025-11-16T18:00:00Z",
        expect: &[
            Approved("openssl", "1:3.0.7-30.el9", "approvalRules[0]", High),
            Count(PatchState::Missing, 1),
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
    // Changed for issue #20: this case used to approve the noble-updates version without the
    // flag ("apt: always"). SSM API reference, CreatePatchBaseline
    // ApprovedPatchesEnableNonSecurity: "Indicates whether the list of approved patches includes
    // non-security updates that should be applied to the managed nodes. The default value is
    // false. Applies to Linux managed nodes only." With the flag, the non-security version is
    // approved.
    Case {
        name: "apt: approvedPatchesEnableNonSecurity true approves a package only a non-security suite updates (Ubuntu)",
        baseline: r#"
operatingSystem: Ubuntu
approvedPatches: ["vim*"]
approvedPatchesComplianceLevel: Low
approvedPatchesEnableNonSecurity: true
"#,
        input: UBUNTU_VIM_UPDATES_ONLY,
        now: "2024-09-03T00:00:00Z",
        expect: &[
            Approved("vim", "2:9.1.0016-1ubuntu7.2", "approvedPatches", Low),
            Node(Compliance::NonCompliant, Some(Low)),
        ],
    },
    // Same page and sentence: the default (false) keeps the approved list to security updates,
    // on apt too: a package whose only newer version is in noble-updates is not approved.
    Case {
        name: "apt: approvedPatches without approvedPatchesEnableNonSecurity do not approve a noble-updates-only version",
        baseline: r#"
operatingSystem: Ubuntu
approvedPatches: ["vim*"]
approvedPatchesComplianceLevel: Low
"#,
        input: UBUNTU_VIM_UPDATES_ONLY,
        now: "2024-09-03T00:00:00Z",
        expect: &[
            NotApproved("vim", "2:9.1.0016-1ubuntu7.2", VerdictReason::NotSecurity),
            Count(PatchState::InstalledOther, 1),
            Node(Compliance::Compliant, None),
        ],
    },
    // Same page and sentence: without the flag, an approved package's security version is
    // approved (and installed) while its newer noble-updates version is not.
    Case {
        name: "apt: approvedPatches without the flag install the security version, not the newer noble-updates one",
        baseline: r#"
operatingSystem: Ubuntu
approvedPatches: [curl]
"#,
        input: UBUNTU_CURL_SECURITY_AND_UPDATES,
        now: "2024-10-01T00:00:00Z",
        expect: &[
            Approved("curl", "8.5.0-2ubuntu10.4", "approvedPatches", Unspecified),
            NotApproved("curl", "8.5.0-2ubuntu10.5", VerdictReason::NotSecurity),
            Installs("curl", "8.5.0-2ubuntu10.4"),
        ],
    },
    // "How security patches are selected" (Ubuntu Server / Debian Server tab): "For each
    // package, the candidate version of the package (which is typically the latest version)
    // must be part of a security repo." Our reading (docs/evaluate.md): a rule without
    // enableNonSecurity picks its candidate among the versions security suites offer, so the
    // newest security version is approved and installed although a newer noble-updates version
    // exists; the noble-updates version is not.
    Case {
        name: "Ubuntu candidate rule: the newest security-suite version is the security candidate (predefined)",
        baseline: "predefined:nodepatch-predefined-ubuntu",
        input: UBUNTU_CURL_SECURITY_AND_UPDATES,
        now: "2024-10-01T00:00:00Z",
        expect: &[
            Approved("curl", "8.5.0-2ubuntu10.4", "approvalRules[0]", Unspecified),
            NotApproved("curl", "8.5.0-2ubuntu10.5", VerdictReason::NotSecurity),
            Installs("curl", "8.5.0-2ubuntu10.4"),
            Count(PatchState::Missing, 1),
        ],
    },
    // Same page: with "Include nonsecurity updates" (enableNonSecurity) the candidate is apt's
    // own, the newest version of any suite.
    Case {
        name: "Ubuntu candidate rule: with enableNonSecurity the newest version of any suite is installed",
        baseline: r#"
operatingSystem: Ubuntu
approvalRules: [{filters: [{key: Priority, values: ["*"]}], enableNonSecurity: true}]
"#,
        input: UBUNTU_CURL_SECURITY_AND_UPDATES,
        now: "2024-10-01T00:00:00Z",
        expect: &[
            Approved("curl", "8.5.0-2ubuntu10.5", "approvalRules[0]", Unspecified),
            Installs("curl", "8.5.0-2ubuntu10.5"),
        ],
    },
    // SSM API reference, PatchFilter: Key "Valid Values: ARCH | ADVISORY_ID | BUGZILLA_ID | ...
    // | CVE_ID | EPOCH | ... | RELEASE | ... | VERSION"; Patch: "CVEIds: The Common
    // Vulnerabilities and Exposures (CVE) ID of the patch. For example, CVE-2011-3192. Applies
    // to Linux-based managed nodes only."
    Case {
        name: "filter key CveId approves the update that fixes the CVE (RHEL)",
        baseline: r#"
operatingSystem: RedHatEnterpriseLinux
approvalRules: [{filters: [{key: CveId, values: [CVE-2024-0727]}], complianceLevel: Critical}]
"#,
        input: RHEL_WITH_REFERENCES,
        now: "2024-06-01T00:00:00Z",
        expect: &[
            Approved("openssl", "1:3.0.7-27.el9", "approvalRules[0]", Critical),
            NotApproved("bash", "5.1.8-9.el9", VerdictReason::NoRuleMatched),
        ],
    },
    // SSM API reference, Patch: "AdvisoryIds: The Advisory ID of the patch. For example,
    // RHSA-2020:3779. Applies to Linux-based managed nodes only."
    Case {
        name: "filter key AdvisoryId with a wildcard approves bug-fix advisories only (RHEL)",
        baseline: r#"
operatingSystem: RedHatEnterpriseLinux
approvalRules: [{filters: [{key: AdvisoryId, values: ["RHBA-*"]}]}]
"#,
        input: RHEL_WITH_REFERENCES,
        now: "2024-06-01T00:00:00Z",
        expect: &[
            Approved("bash", "5.1.8-9.el9", "approvalRules[0]", Unspecified),
            NotApproved("openssl", "1:3.0.7-27.el9", VerdictReason::NoRuleMatched),
        ],
    },
    // SSM API reference, Patch: "BugzillaIds: The Bugzilla ID of the patch. For example,
    // 1600646. Applies to Linux-based managed nodes only."
    Case {
        name: "filter key BugzillaId approves the advisory referencing the bug (RHEL)",
        baseline: r#"
operatingSystem: RedHatEnterpriseLinux
approvalRules: [{filters: [{key: BugzillaId, values: ["2100001"]}]}]
"#,
        input: RHEL_WITH_REFERENCES,
        now: "2024-06-01T00:00:00Z",
        expect: &[
            Approved("bash", "5.1.8-9.el9", "approvalRules[0]", Unspecified),
            NotApproved("openssl", "1:3.0.7-27.el9", VerdictReason::NoRuleMatched),
        ],
    },
    // SSM API reference, Patch: "Epoch: The epoch of the patch." (an unwritten epoch is 0, as
    // rpm compares it).
    Case {
        name: "filter key Epoch matches the candidate's epoch, 0 when none is written (RHEL)",
        baseline: r#"
operatingSystem: RedHatEnterpriseLinux
approvalRules:
  - {filters: [{key: Epoch, values: ["1"]}], complianceLevel: High}
  - {filters: [{key: Epoch, values: ["0"]}], complianceLevel: Low}
"#,
        input: RHEL_WITH_REFERENCES,
        now: "2024-06-01T00:00:00Z",
        expect: &[
            Approved("openssl", "1:3.0.7-27.el9", "approvalRules[0]", High),
            Approved("bash", "5.1.8-9.el9", "approvalRules[1]", Low),
        ],
    },
    // SSM API reference, Patch: "Version: The version number of the patch. For example, in
    // example-pkg-1.710.10-2.7.abcd.x86_64, the version number is indicated by -1"; "Release:
    // The particular release of a patch." Version and release are the parts of the EVR.
    Case {
        name: "filter keys Version and Release match the candidate's version and release (RHEL)",
        baseline: r#"
operatingSystem: RedHatEnterpriseLinux
approvalRules: [{filters: [{key: Version, values: ["5.1.*"]}, {key: Release, values: ["9.el9"]}]}]
"#,
        input: RHEL_WITH_REFERENCES,
        now: "2024-06-01T00:00:00Z",
        expect: &[
            Approved("bash", "5.1.8-9.el9", "approvalRules[0]", Unspecified),
            NotApproved("openssl", "1:3.0.7-27.el9", VerdictReason::NoRuleMatched),
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
    // Changed for issue #20: the blocked package used to count as InstalledOther (compliant).
    // "Package name formats for approved and rejected patch lists" / RejectedPatchesAction
    // Block: "If an update attempts to install a dependency package that is now rejected by the
    // baseline, when previous versions of the package were not rejected, the package being
    // updated is reported as MISSING for SCAN operations and as FAILED for INSTALL operations."
    // The installed urllib3 is not rejected (previous versions were not); its update is.
    Case {
        name: "rejected action Block: the package whose update needs a newly rejected dependency is MISSING on scan",
        baseline: BLOCK_URLLIB3_UPDATE,
        input: REQUESTS_NEEDS_NEW_URLLIB3,
        now: "2024-06-01T00:00:00Z",
        expect: &[
            BlockedBy(
                "python3-requests",
                "2.25.1-1.amzn2023.0.4",
                "python3-urllib3",
            ),
            Count(PatchState::Missing, 1),
            Count(PatchState::InstalledRejected, 0),
            Node(Compliance::NonCompliant, Some(High)),
        ],
    },
    // Same page and sentence: "... and as FAILED for INSTALL operations" (the agent reports the
    // blocked update as a failed install after an Install operation).
    Case {
        name: "rejected action Block: the same package is FAILED after an install",
        baseline: BLOCK_URLLIB3_UPDATE,
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
installResult:
  failed: [{name: python3-requests, version: 2.25.1-1.amzn2023.0.4}]
"#,
        now: "2024-06-01T00:00:00Z",
        expect: &[
            Count(PatchState::Failed, 1),
            Count(PatchState::Missing, 0),
            Node(Compliance::NonCompliant, Some(High)),
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
                    let got = v.approvable_at.map(|t| t.to_string());
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

/// A baseline SSM refuses, and the message nodepatch gives for it (the same rule is enforced at
/// admission by the CRD's CEL rules; tests/cluster_api_admission.rs).
struct Refusal {
    /// The SSM statement it reproduces.
    name: &'static str,
    /// A PatchBaselineSpec (YAML).
    baseline: &'static str,
    /// The field and words the error must contain.
    field: &'static str,
    message: &'static str,
}

const REFUSALS: &[Refusal] = &[
    // SSM API reference, DescribePatchProperties: "REDHAT_ENTERPRISE_LINUX Valid properties:
    // PRODUCT | CLASSIFICATION | SEVERITY" (PRIORITY is rejected on RHEL).
    Refusal {
        name: "Priority is not a filter key of RHEL",
        baseline: r#"
operatingSystem: RedHatEnterpriseLinux
approvalRules: [{filters: [{key: Priority, values: [Required]}]}]
"#,
        field: "approvalRules[0].filters[0].key",
        message: "filter key Priority is not valid for operatingSystem RedHatEnterpriseLinux",
    },
    // SSM API reference, PatchFilter (older revision): "the key SECTION is valid only for
    // Ubuntu operating systems".
    Refusal {
        name: "Section is not a filter key of Amazon Linux 2023",
        baseline: r#"
operatingSystem: AmazonLinux2023
globalFilters: [{key: Section, values: [libs]}]
"#,
        field: "globalFilters[0].key",
        message: "filter key Section is not valid for operatingSystem AmazonLinux2023",
    },
    // DescribePatchProperties: "UBUNTU Valid properties: PRODUCT | PRIORITY", "DEBIAN Valid
    // properties: PRODUCT | PRIORITY": no SEVERITY on apt (and apt lists carry none).
    Refusal {
        name: "Severity is not a filter key of Ubuntu",
        baseline: r#"
operatingSystem: Ubuntu
approvalRules: [{filters: [{key: Severity, values: [Critical]}]}]
"#,
        field: "approvalRules[0].filters[0].key",
        message: "filter key Severity is not valid for operatingSystem Ubuntu",
    },
    Refusal {
        name: "Severity is not a filter key of Debian",
        baseline: r#"
operatingSystem: Debian
globalFilters: [{key: Severity, values: ["*"]}]
"#,
        field: "globalFilters[0].key",
        message: "filter key Severity is not valid for operatingSystem Debian",
    },
    // DescribePatchProperties lists no CVE/advisory/EVR property for DEBIAN or UBUNTU; apt
    // lists carry none of them.
    Refusal {
        name: "CveId is not a filter key of Debian",
        baseline: r#"
operatingSystem: Debian
approvalRules: [{filters: [{key: CveId, values: [CVE-2024-6387]}]}]
"#,
        field: "approvalRules[0].filters[0].key",
        message: "filter key CveId is not valid for operatingSystem Debian",
    },
    Refusal {
        name: "Epoch is not a filter key of Ubuntu",
        baseline: r#"
operatingSystem: Ubuntu
approvalRules: [{filters: [{key: Epoch, values: ["1"]}]}]
"#,
        field: "approvalRules[0].filters[0].key",
        message: "filter key Epoch is not valid for operatingSystem Ubuntu",
    },
];

#[test]
fn ssm_filter_keys_per_operating_system() {
    let mut failures = Vec::new();
    for r in REFUSALS {
        let spec: PatchBaselineSpec =
            serde_saphyr::from_str(r.baseline).unwrap_or_else(|e| panic!("{}: {e}", r.name));
        match ResolvedBaseline::resolve("example", &spec) {
            Ok(_) => failures.push(format!("[{}] accepted", r.name)),
            Err(e) => {
                let text = e.to_string();
                if e.field() != r.field || !text.contains(r.message) {
                    failures.push(format!(
                        "[{}] want {}: {}…, got {}: {text}",
                        r.name,
                        r.field,
                        r.message,
                        e.field()
                    ));
                }
            }
        }
    }
    // And the keys each family does have are accepted (DescribePatchProperties and the Linux
    // patch properties).
    for (os, keys) in [
        (
            "Ubuntu",
            &["Product", "Priority", "Section", "Classification", "Name"][..],
        ),
        (
            "Debian",
            &["Product", "Priority", "Section", "Repository", "Arch"][..],
        ),
        (
            "RedHatEnterpriseLinux",
            &[
                "Product",
                "Classification",
                "Severity",
                "CveId",
                "AdvisoryId",
                "BugzillaId",
                "Epoch",
                "Version",
                "Release",
            ][..],
        ),
        (
            "SUSE",
            &[
                "Product",
                "Classification",
                "Severity",
                "AdvisoryId",
                "CveId",
            ][..],
        ),
        ("Alpine", &["Product", "Name", "CveId"][..]),
    ] {
        for key in keys {
            let yaml = format!(
                "operatingSystem: {os}\napprovalRules: [{{filters: [{{key: {key}, values: [\"*\"]}}]}}]\n"
            );
            let spec: PatchBaselineSpec = serde_saphyr::from_str(&yaml).expect("spec");
            if let Err(e) = ResolvedBaseline::resolve("example", &spec) {
                failures.push(format!("{os} {key}: rejected: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
