//! PatchBaseline: what may be installed on one operating system.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::core::{Message, Rule};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ComplianceLevel, NodeComplianceCounts, OperatingSystem, PackageFamily};

/// Pattern of an approved/rejected patch entry: package names with `*` wildcards, rpm NEVRA
/// shapes, advisory and CVE ids. Never a leading `-` (it would read as an option), no whitespace
/// and no shell metacharacters. The OS family's full grammar is checked by the controller and
/// agent (Ready=False with the entry when it does not parse).
pub const PATCH_NAME_PATTERN: &str = r"^[A-Za-z0-9*_][A-Za-z0-9._+:~^*@-]{0,254}$";

/// Pattern of a filter value: like a patch name, plus `/` (repository paths).
pub const FILTER_VALUE_PATTERN: &str = r"^[A-Za-z0-9*_][A-Za-z0-9._+:~^*@/-]{0,63}$";

/// Approval rules, approved and rejected lists for one operating system, evaluated like AWS
/// Systems Manager patch baselines: global filters, then approval rules, then the approved list,
/// minus the rejected list.
#[derive(CustomResource, KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq)]
#[kube(
    group = "nodepatch.dev",
    version = "v1alpha1",
    kind = "PatchBaseline",
    plural = "patchbaselines",
    shortname = "npbl",
    doc = "What may be installed on nodes of one operating system: approval rules (classification, severity and age filters, as in AWS Systems Manager Patch Manager), approved and rejected patch lists, and alternative patch sources. PatchPolicies name the baselines they use; `default: true` makes one the default of its operating system. Written by users; the controller writes the status (validity, content hash, nodes evaluated with it).",
    category = "nodepatch",
    status = "PatchBaselineStatus",
    printcolumn = r#"{"name":"OS","type":"string","jsonPath":".spec.operatingSystem"}"#,
    printcolumn = r#"{"name":"Default","type":"boolean","jsonPath":".spec.default"}"#,
    printcolumn = r#"{"name":"Rules","type":"integer","jsonPath":".status.rules"}"#,
    printcolumn = r#"{"name":"Compliant","type":"integer","jsonPath":".status.nodes.compliant"}"#,
    printcolumn = r#"{"name":"NonCompliant","type":"integer","jsonPath":".status.nodes.nonCompliant"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = PatchFilterKey::Priority.admission_rule())]
#[x_kube(validation = PatchFilterKey::Section.admission_rule())]
#[x_kube(validation = PatchFilterKey::Severity.admission_rule())]
#[x_kube(validation = PatchFilterKey::CveId.admission_rule())]
#[x_kube(validation = PatchFilterKey::AdvisoryId.admission_rule())]
#[x_kube(validation = PatchFilterKey::BugzillaId.admission_rule())]
#[x_kube(validation = PatchFilterKey::Epoch.admission_rule())]
#[x_kube(validation = PatchFilterKey::Version.admission_rule())]
#[x_kube(validation = PatchFilterKey::Release.admission_rule())]
#[x_kube(validation = Rule::new(sources_os_rule()).message(Message::Expression(SOURCES_OS_MESSAGE.into())).field_path(".sources"))]
pub struct PatchBaselineSpec {
    /// Operating system this baseline applies to. Nodes are matched to it by their os-release.
    pub operating_system: OperatingSystem,
    /// Marks this baseline as the default for its operatingSystem: used for nodes whose
    /// PatchPolicy names no baseline for their OS. Two defaults for one OS make both Ready=False.
    #[serde(default)]
    pub default: bool,
    /// Free text shown to users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Filters applied to every candidate before the approval rules; a patch that does not pass
    /// all of them is never approved by a rule (the approvedPatches list still applies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub global_filters: Vec<PatchFilter>,
    /// Approval rules: a patch is approved when it passes every filter of one rule and that
    /// rule's approveAfterDays / approveUntilDate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub approval_rules: Vec<ApprovalRule>,
    /// Patches approved regardless of the rules (package names with `*`; on rpm systems the
    /// NEVRA shapes, advisory ids and CVE ids). A patch also in rejectedPatches is rejected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 500),
        inner(length(min = 1, max = 255), pattern(PATCH_NAME_PATTERN))
    )]
    pub approved_patches: Vec<String>,
    /// Compliance level of patches approved by approvedPatches.
    #[serde(default)]
    pub approved_patches_compliance_level: ComplianceLevel,
    /// Also approve non-security updates of packages listed in approvedPatches. False: on
    /// rpm/zypper only packages an update notice lists, on apt only versions a security suite
    /// offers (an approved package whose only newer version is in `noble-updates` is not
    /// approved), on Alpine only secdb fixes.
    #[serde(default)]
    pub approved_patches_enable_non_security: bool,
    /// Patches never approved, whatever the rules and approvedPatches say.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 500),
        inner(length(min = 1, max = 255), pattern(PATCH_NAME_PATTERN))
    )]
    pub rejected_patches: Vec<String>,
    /// What rejection means: AllowAsDependency installs a rejected package only when another
    /// approved update needs it (reported InstalledOther); Block never installs it, an
    /// installed one is reported InstalledRejected, and a package whose update needs it is
    /// reported Missing (Failed after an install), as SSM does.
    #[serde(default)]
    pub rejected_patches_action: RejectedPatchesAction,
    /// Alternative patch sources (SSM's `Sources`, e.g. an internal mirror): on a node whose
    /// product matches a source's `products`, scans and installs use the matching sources
    /// *instead of* the node's configured repositories, for that operation only; the node's own
    /// configuration (apt: `/etc/apt/sources.list{,.d}`, `/var/lib/apt/lists`; dnf:
    /// `/etc/yum.repos.d`, `/var/cache/dnf`) is never changed. Debian and Ubuntu baselines take
    /// apt one-line sources, the dnf operating systems (RHEL and its rebuilds, CentOS Stream,
    /// Oracle Linux, Amazon Linux, Fedora) yum/dnf `.repo` text; SUSE, openSUSE and Alpine
    /// baselines are rejected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub sources: Vec<PatchSource>,
}

/// One filter: the patch property `key` must match one of `values` (`*` is a wildcard).
#[derive(KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct PatchFilter {
    /// The patch property to match.
    pub key: PatchFilterKey,
    /// Accepted values, OR-ed; each may contain `*` wildcards (e.g. `Security`, `*-security`,
    /// `linux-image-*`).
    #[schemars(
        length(min = 1, max = 20),
        inner(length(min = 1, max = 64), pattern(FILTER_VALUE_PATTERN))
    )]
    pub values: Vec<String>,
}

/// Patch properties a filter can match. Not every key applies to every operating system (as in
/// SSM, which rejects `PRIORITY` on RHEL): Priority and Section only on Debian/Ubuntu; Severity,
/// AdvisoryId, BugzillaId, Epoch, Version and Release only on the rpm families (RHEL and its
/// rebuilds, CentOS Stream, Oracle Linux, Amazon Linux, Fedora, SUSE, openSUSE); CveId on the
/// rpm families and Alpine. A baseline using a key its operatingSystem lacks is rejected at
/// admission.
#[derive(
    JsonSchema, Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum PatchFilterKey {
    /// Security, Bugfix, Enhancement, Recommended, Newpackage (rpm: updateinfo type; apt:
    /// Security when the candidate comes from a security suite, else by suite).
    Classification,
    /// Vendor severity: Critical, Important, Moderate, Low (rpm: updateinfo severity; zypper:
    /// patch severity). Does not apply to Debian/Ubuntu (apt lists carry no vulnerability
    /// severity) nor Alpine: rejected there at admission.
    Severity,
    /// Debian package priority: Required, Important, Standard, Optional, Extra (Debian/Ubuntu).
    Priority,
    /// Debian section (admin, libs, net, …) (Debian/Ubuntu).
    Section,
    /// Product, e.g. `Ubuntu24.04`, `RedhatEnterpriseLinux9`, `AmazonLinux2023`.
    Product,
    /// Repository / suite the candidate comes from (`bookworm-security`, `baseos`).
    Repository,
    /// Package name.
    Name,
    /// Architecture (amd64, arm64, x86_64, aarch64, noarch, all).
    Arch,
    /// A CVE id the update fixes (`CVE-2024-6387`): updateinfo / zypper patch references, Alpine
    /// secdb (rpm families and Alpine). SSM's `CVE_ID`.
    CveId,
    /// The advisory id (`RHSA-2024:2447`, `ALAS2023-2024-500`; zypper: the patch name) (rpm
    /// families). SSM's `ADVISORY_ID`.
    AdvisoryId,
    /// A Bugzilla id the advisory references (`2273404`) (rpm families). SSM's `BUGZILLA_ID`.
    BugzillaId,
    /// Epoch of the candidate version (`1` in `1:3.0.7-27.el9`; `0` when none is written)
    /// (rpm families). SSM's `EPOCH`.
    Epoch,
    /// Version part of the candidate (`3.0.7` in `1:3.0.7-27.el9`) (rpm families). SSM's
    /// `VERSION`.
    Version,
    /// Release part of the candidate (`27.el9` in `1:3.0.7-27.el9`) (rpm families). SSM's
    /// `RELEASE`.
    Release,
}

impl PatchFilterKey {
    /// Every key, in declaration order.
    pub const ALL: [PatchFilterKey; 14] = [
        PatchFilterKey::Classification,
        PatchFilterKey::Severity,
        PatchFilterKey::Priority,
        PatchFilterKey::Section,
        PatchFilterKey::Product,
        PatchFilterKey::Repository,
        PatchFilterKey::Name,
        PatchFilterKey::Arch,
        PatchFilterKey::CveId,
        PatchFilterKey::AdvisoryId,
        PatchFilterKey::BugzillaId,
        PatchFilterKey::Epoch,
        PatchFilterKey::Version,
        PatchFilterKey::Release,
    ];

    /// The API spelling (`"CveId"`).
    pub fn as_str(self) -> &'static str {
        match self {
            PatchFilterKey::Classification => "Classification",
            PatchFilterKey::Severity => "Severity",
            PatchFilterKey::Priority => "Priority",
            PatchFilterKey::Section => "Section",
            PatchFilterKey::Product => "Product",
            PatchFilterKey::Repository => "Repository",
            PatchFilterKey::Name => "Name",
            PatchFilterKey::Arch => "Arch",
            PatchFilterKey::CveId => "CveId",
            PatchFilterKey::AdvisoryId => "AdvisoryId",
            PatchFilterKey::BugzillaId => "BugzillaId",
            PatchFilterKey::Epoch => "Epoch",
            PatchFilterKey::Version => "Version",
            PatchFilterKey::Release => "Release",
        }
    }

    /// Whether this key applies to baselines of `family`: SSM's per-OS keys (DescribePatchProperties:
    /// Debian/Ubuntu `PRODUCT | PRIORITY` (and `SECTION`), the rpm OSes and SUSE `PRODUCT |
    /// CLASSIFICATION | SEVERITY`, plus the Linux patch properties NAME, ARCH, REPOSITORY,
    /// CVE_ID, ADVISORY_ID, BUGZILLA_ID, EPOCH, VERSION, RELEASE where the package data has
    /// them), and ours (Classification on apt from the suite, Name/Arch/Repository everywhere).
    pub fn applies_to(self, family: PackageFamily) -> bool {
        use PatchFilterKey::*;
        match self {
            Classification | Product | Repository | Name | Arch => true,
            Priority | Section => family == PackageFamily::Deb,
            Severity | AdvisoryId | BugzillaId | Epoch | Version | Release => {
                matches!(family, PackageFamily::Rpm | PackageFamily::Zypper)
            }
            CveId => family != PackageFamily::Deb,
        }
    }

    /// The CEL rule on a PatchBaselineSpec that rejects this key on operating systems it does
    /// not apply to, with a message naming the key and the operatingSystem (for a key that
    /// applies everywhere, a rule that always holds).
    pub fn admission_rule(self) -> Rule {
        let valid: Vec<String> = OperatingSystem::ALL
            .into_iter()
            .filter(|os| self.applies_to(os.family()))
            .map(|os| format!("'{}'", os.as_str()))
            .collect();
        if valid.len() == OperatingSystem::ALL.len() {
            return Rule::new("true");
        }
        let key = self.as_str();
        let uses = format!(
            "(has(self.globalFilters) && self.globalFilters.exists(f, f.key == '{key}')) || \
             (has(self.approvalRules) && self.approvalRules.exists(r, has(r.filters) && \
             r.filters.exists(f, f.key == '{key}')))"
        );
        let list = valid.join(", ");
        Rule::new(format!("!({uses}) || self.operatingSystem in [{list}]")).message(
            Message::Expression(format!(
                "'filter key {key} is not valid for operatingSystem ' + self.operatingSystem + \
                 ' (it applies to: {})'",
                list.replace('\'', "")
            )),
        )
    }
}

/// One approval rule.
#[derive(KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.approveAfterDays) && has(self.approveUntilDate))").message("approveAfterDays and approveUntilDate are mutually exclusive: set one").field_path(".approveUntilDate"))]
pub struct ApprovalRule {
    /// Filters, AND-ed. Without a Classification filter only security updates are approved
    /// unless enableNonSecurity is true.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub filters: Vec<PatchFilter>,
    /// Approve a patch this many 24-hour days after its release instant, as SSM counts
    /// (released 2025-11-09T18:00:00Z with 7 → approved from 2025-11-16T18:00:00Z). rpm:
    /// updateinfo updated/issued date. Debian/Ubuntu (our extension; SSM does not support it
    /// there): from the instant the node first saw the version. 0 approves immediately.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 360))]
    pub approve_after_days: Option<u32>,
    /// Approve patches released on or before this date (YYYY-MM-DD, the whole UTC day).
    /// Debian/Ubuntu: our extension, counted from the first sighting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"))]
    pub approve_until_date: Option<String>,
    /// Compliance level reported for patches this rule approves while they are missing.
    #[serde(default)]
    pub compliance_level: ComplianceLevel,
    /// Also approve non-security updates that match the filters (apt: versions of any suite,
    /// up to apt's candidate; without it the newest security-suite version is the candidate).
    #[serde(default)]
    pub enable_non_security: bool,
}

/// What rejectedPatches means for dependencies.
#[derive(JsonSchema, Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
pub enum RejectedPatchesAction {
    /// A rejected package may still be installed or updated as a dependency of an approved one.
    #[default]
    AllowAsDependency,
    /// A rejected package is never installed, nor anything that needs it.
    Block,
}

/// An alternative patch source: apt sources or dnf repositories used instead of the node's
/// repositories.
#[derive(KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct PatchSource {
    /// Name of the source (lowercase letters, digits, `-`, `_`, `.`), shown in reports.
    #[schemars(length(min = 1, max = 50), pattern(r"^[a-z0-9][a-z0-9._-]*$"))]
    pub name: String,
    /// Products whose nodes use this source, as the node reports them (`Debian12`,
    /// `Ubuntu24.04`; `*` wildcards, e.g. `Ubuntu*` or `*`). Every source matching a node's
    /// product is used, in list order; when none matches, the node's own repositories are used.
    #[schemars(
        length(min = 1, max = 20),
        inner(length(min = 1, max = 64), pattern(FILTER_VALUE_PATTERN))
    )]
    pub products: Vec<String>,
    /// The repositories, in the format of the baseline's package manager. Debian and Ubuntu:
    /// apt sources in the one-line style, one entry per line:
    /// `deb [option=value ...] URI suite [component ...]`. Allowed: `deb` entries only (no
    /// `deb-src`, no deb822 stanzas); options `arch`, `signed-by`, `trusted`,
    /// `check-valid-until` with values of `A-Za-z0-9._/,:+-`; URIs `http:`, `https:` or `file:`
    /// of `A-Za-z0-9._~:/%+@=-`; suite and components of `A-Za-z0-9._~/+-`; blank lines and
    /// `#` comment lines. At least one `deb` entry. No quotes, spaces inside fields, `$`, `;`,
    /// `|`, `&`, backticks or other shell metacharacters. dnf operating systems: a yum/dnf
    /// `.repo` file, `[id]` sections (id of `A-Za-z0-9._:-`, the first line that is not blank or
    /// a `#` comment) with `key=value` lines of the keys `name` (`A-Za-z0-9 ._,:/+@-`),
    /// `baseurl` and `gpgkey` (space-separated `http:`, `https:` or `file:` URLs of
    /// `A-Za-z0-9._~:/%+@=-`; no `$releasever`-style variables), `gpgcheck`, `enabled`,
    /// `sslverify`, `module_hotfixes` (`0`, `1`, `true`, `false`, `yes`, `no`) and `priority`
    /// (1–99); every section needs a `baseurl`, ids are unique and not `main` (checked by the
    /// agent). Written to a file private to the agent, never passed through a shell; the agent
    /// checks it again and fails the operation (reason `PatchSourceInvalid`) on anything else.
    // 3072, not 4096: the two formats' CEL rule would exceed the apiserver's cost budget.
    #[schemars(length(min = 1, max = 3072))]
    #[x_kube(validation = Rule::new(sources_configuration_rule()).message(SOURCES_CONFIGURATION_MESSAGE))]
    pub configuration: String,
}

/// One line of an alternative source's `configuration` (regular expression, RE2 and Rust
/// `regex` syntax): blank, a `#` comment, or a one-line-style `deb` entry of the allowed
/// options and characters. The agent checks every line with it; admission checks the whole
/// text with [`apt_sources_rule`], built from the same text.
pub const APT_SOURCE_LINE: &str = r"[ \t]*(#[^\n]*|deb[ \t]+(\[[ \t]*(arch|signed-by|trusted|check-valid-until)=[A-Za-z0-9._/,:+-]+([ \t]+(arch|signed-by|trusted|check-valid-until)=[A-Za-z0-9._/,:+-]+)*[ \t]*\][ \t]+)?(https?|file):[A-Za-z0-9._~:/%+@=-]+[ \t]+[A-Za-z0-9._~/+-]+([ \t]+[A-Za-z0-9._~/+-]+)*[ \t]*)?";

/// A `deb` entry somewhere in a configuration (a source must name at least one).
pub const APT_SOURCE_ENTRY: &str = r"(^|\n)[ \t]*deb[ \t]";

/// CEL expression on a string `self`: every line matches [`APT_SOURCE_LINE`] and one matches
/// [`APT_SOURCE_ENTRY`] (CEL raw strings, so the expressions are the same text the agent uses).
pub fn apt_sources_rule() -> String {
    format!(
        "self.matches(r'^(({APT_SOURCE_LINE})\\n)*({APT_SOURCE_LINE})$') && self.matches(r'{APT_SOURCE_ENTRY}')"
    )
}

/// Message of [`apt_sources_rule`].
pub const APT_SOURCES_MESSAGE: &str = "configuration must be apt one-line sources: lines `deb [arch=|signed-by=|trusted=|check-valid-until=value ...] http(s)-or-file-URI suite [component ...]`, blank lines or `#` comments, at least one deb line, no quotes or shell metacharacters";

/// One line of a dnf source's `configuration` (RE2 and Rust `regex` syntax): blank, a `#`
/// comment, an `[id]` section header, or `key=value` of the allowed keys and characters.
pub const RPM_REPO_LINE: &str = r"[ \t]*(#[^\n]*|\[[A-Za-z0-9._:-]+\][ \t]*|name[ \t]*=[ \t]*[A-Za-z0-9 ._,:/+@-]*|(baseurl|gpgkey)[ \t]*=[ \t]*(https?|file):[A-Za-z0-9._~:/%+@=-]+([ \t]+(https?|file):[A-Za-z0-9._~:/%+@=-]+)*[ \t]*|(gpgcheck|enabled|sslverify|module_hotfixes)[ \t]*=[ \t]*(0|1|true|false|yes|no)[ \t]*|priority[ \t]*=[ \t]*([1-9]|[1-9][0-9])[ \t]*)?";

/// The start of a dnf source: blank and comment lines, then a section header (a source names
/// at least one repository and no key comes before its section).
pub const RPM_REPO_START: &str = r"^([ \t]*(#[^\n]*)?\n)*[ \t]*\[";

/// CEL expression on a string `self`: every line matches [`RPM_REPO_LINE`] and the text starts
/// with a section ([`RPM_REPO_START`]).
pub fn rpm_sources_rule() -> String {
    format!(
        "self.matches(r'^(({RPM_REPO_LINE})\\n)*({RPM_REPO_LINE})$') && self.matches(r'{RPM_REPO_START}')"
    )
}

/// CEL rule on `configuration`: apt one-line sources or a dnf `.repo` file (the two cannot both
/// hold: a `deb` line is no `.repo` line and a section header no apt line). Which one the
/// baseline's operatingSystem takes is [`sources_os_rule`]'s.
pub fn sources_configuration_rule() -> String {
    format!("({}) || ({})", apt_sources_rule(), rpm_sources_rule())
}

/// Message of [`sources_configuration_rule`].
pub const SOURCES_CONFIGURATION_MESSAGE: &str = "configuration must be apt one-line sources (lines `deb [arch=|signed-by=|trusted=|check-valid-until=value ...] http(s)-or-file-URI suite [component ...]`, at least one deb line) or a dnf .repo file (`[id]` sections first, keys name, baseurl, gpgkey, gpgcheck, enabled, sslverify, module_hotfixes, priority), with blank lines or `#` comments, no quotes or shell metacharacters";

/// The operating systems whose baselines take sources of each format: apt (Debian, Ubuntu) and
/// dnf (the [`PackageFamily::Rpm`] systems).
fn os_list(family: PackageFamily) -> String {
    OperatingSystem::ALL
        .into_iter()
        .filter(|os| os.family() == family)
        .map(|os| format!("'{}'", os.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// CEL rule on the spec: sources only on apt and dnf operating systems, each in that system's
/// format (apt: has a `deb` entry; dnf: starts with a section; the `configuration` rule checks
/// the rest).
pub fn sources_os_rule() -> String {
    format!(
        "!has(self.sources) || size(self.sources) == 0 || \
         (self.operatingSystem in [{apt}] && self.sources.all(s, s.configuration.matches(r'{APT_SOURCE_ENTRY}'))) || \
         (self.operatingSystem in [{rpm}] && self.sources.all(s, s.configuration.matches(r'{RPM_REPO_START}')))",
        apt = os_list(PackageFamily::Deb),
        rpm = os_list(PackageFamily::Rpm),
    )
}

/// Message of [`sources_os_rule`] (a CEL expression naming the operatingSystem).
pub const SOURCES_OS_MESSAGE: &str = "'sources of a ' + self.operatingSystem + ' baseline must be ' + (self.operatingSystem in ['Debian', 'Ubuntu'] ? 'apt one-line sources' : 'dnf .repo files') + '; sources are supported on Debian, Ubuntu and the dnf operating systems only (not SUSE, openSUSE, Alpine)'";

/// Observed state of a PatchBaseline.
#[derive(KubeSchema, Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PatchBaselineStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Nodes evaluated against this baseline, by compliance.
    #[serde(default)]
    pub nodes: NodeComplianceCounts,
    /// Number of approval rules (for `kubectl get`).
    #[serde(default)]
    pub rules: u32,
    /// Content hash of the resolved baseline (what a new run would snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Ready: the baseline is valid and usable. kstatus's Stalled is True while it is not (an
    /// invalid spec or a second default for the OS); Reconciling is always False.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}
