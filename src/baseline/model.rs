//! The package and patch model: what a node has installed, which candidate updates its
//! repositories offer (with their advisory metadata), and what the last install did. This is the
//! input document of `nodepatch evaluate` and what the agent builds from the package databases.
//!
//! One candidate is one available version of one package (a `name`/`arch`/`version`) with the
//! metadata of the update that carries it:
//!
//! | family | source of the metadata |
//! |---|---|
//! | Deb | apt lists: `repositories` are the suites that offer the version (`bookworm-security`), `priority` and `section` from Packages, `firstSeen` recorded by the agent (apt has no release dates) |
//! | Rpm | updateinfo: `advisory`, `classification` (update type), `severity`, `releaseDate` (updated, else issued), `cves`, `bugzillas`, `rebootSuggested` |
//! | Zypper | the patch: `advisory` is the patch name, `classification` its category, `severity`; one candidate per package of the patch |
//! | Apk | secdb: `classification: Security` and `cves` for fixed versions |

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::api::OperatingSystem;

/// Everything the evaluation needs to know about one node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EvaluationInput {
    /// The node's operating system; must be the baseline's.
    pub operating_system: Option<OperatingSystem>,
    /// The node's product, matched by `Product` filters when a candidate names none
    /// (e.g. `Ubuntu24.04`, `RedhatEnterpriseLinux9`, `AmazonLinux2023`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Installed packages. Several entries with one name and arch (rpm install-only packages
    /// such as kernels) are several installed versions; the newest counts.
    #[serde(default)]
    pub installed: Vec<InstalledPackage>,
    /// Available versions from the node's repositories, including versions already installed
    /// when their advisory is known (so an applied update counts as Installed).
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    /// Results of the last install on this node, fed back by the agent.
    #[serde(default, skip_serializing_if = "InstallResult::is_empty")]
    pub install_result: InstallResult,
}

/// One installed package.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstalledPackage {
    /// Package name.
    pub name: String,
    /// Architecture (`amd64`, `x86_64`, `all`, `noarch`); absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Installed version in the family's syntax (`1:2.3-4`, `2.3-4.el9`, `2.3-r4`).
    pub version: String,
    /// Source package (Debian `Source:`, rpm source rpm, apk origin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One available version of a package and the metadata of the update that carries it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Candidate {
    /// Package name.
    pub name: String,
    /// Architecture; absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Candidate version in the family's syntax.
    pub version: String,
    /// Origins offering this version: apt suite codenames (`bookworm-security`,
    /// `noble-updates`, `noble-infra-security`) or rpm repository ids (`baseos`, `amzn-updates`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<String>,
    /// Classification: updateinfo type / zypper category (`Security`, `Bugfix`, `Enhancement`,
    /// `Recommended`, `Newpackage`); on apt `Security` when a security suite offers it. Absent
    /// for packages no advisory mentions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
    /// Vendor severity (`Critical`, `Important`, `Moderate`, `Low`; Amazon Linux `Medium`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// Debian priority (`required`, `important`, `standard`, `optional`, `extra`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    /// Debian section (`admin`, `libs`, `net`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
    /// Product this candidate is for; the node's `product` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Vendor release date (rpm: updateinfo `updated`, else `issued`). RFC 3339 or `YYYY-MM-DD`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "release_time"
    )]
    pub release_date: Option<Timestamp>,
    /// When the agent first saw this version offered (apt has no release dates; used when
    /// `releaseDate` is absent). RFC 3339 or `YYYY-MM-DD`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "release_time"
    )]
    pub first_seen: Option<Timestamp>,
    /// Advisory id (`RHSA-2024:1234`, `ALAS2023-2024-500`) or zypper patch name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advisory: Option<String>,
    /// CVE ids fixed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cves: Vec<String>,
    /// Bugzilla ids referenced by the advisory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bugzillas: Vec<String>,
    /// The advisory says a reboot is needed after installing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reboot_suggested: bool,
    /// What installing this version requires; absent when unknown (then rejectedPatchesAction
    /// Block cannot look through dependencies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Vec<Dependency>>,
}

impl Candidate {
    /// The date approval delays count from: the vendor release date, else the first-seen date.
    pub fn effective_release_date(&self) -> Option<Timestamp> {
        self.release_date.or(self.first_seen)
    }
}

/// A requirement of a candidate: another package, optionally within a version range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dependency {
    /// Required package name.
    pub name: String,
    /// Version relation; absent means any version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation: Option<Relation>,
    /// The version the relation compares with (required when `relation` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Version relation of a dependency (dpkg spelling; `<` and `>` are accepted as `<=`/`>=`
/// would be ambiguous, so they mean strictly less/greater as in rpm).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Relation {
    /// Strictly lower.
    #[serde(rename = "<<", alias = "<")]
    Less,
    /// Lower or equal.
    #[serde(rename = "<=")]
    LessOrEqual,
    /// Equal.
    #[serde(rename = "=")]
    Equal,
    /// Greater or equal.
    #[serde(rename = ">=")]
    GreaterOrEqual,
    /// Strictly greater.
    #[serde(rename = ">>", alias = ">")]
    Greater,
}

impl Relation {
    /// True when `ordering` (candidate version compared with the required one) satisfies it.
    pub fn accepts(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Relation::Less => ordering == Less,
            Relation::LessOrEqual => ordering != Greater,
            Relation::Equal => ordering == Equal,
            Relation::GreaterOrEqual => ordering != Less,
            Relation::Greater => ordering == Greater,
        }
    }
}

/// Outcome of the last install, so the verdict reflects it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstallResult {
    /// Packages whose install failed; an approved update of one that is still missing is
    /// reported Failed instead of Missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<PackageRef>,
    /// Packages installed by the last install that take effect only after a reboot; while their
    /// approved version is installed they are reported InstalledPendingReboot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_reboot: Vec<PackageRef>,
    /// The node needs a reboot (e.g. `/run/reboot-required`, `dnf needs-restarting -r`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reboot_required: bool,
}

impl InstallResult {
    /// True when nothing was reported.
    pub fn is_empty(&self) -> bool {
        self.failed.is_empty() && self.pending_reboot.is_empty() && !self.reboot_required
    }
}

/// Names a package, optionally one arch and one version of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PackageRef {
    /// Package name.
    pub name: String,
    /// Architecture; absent matches every arch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Version; absent matches every version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl PackageRef {
    /// True when this reference names `name`/`arch`/`version`.
    pub fn names(&self, name: &str, arch: Option<&str>, version: &str) -> bool {
        self.name == name
            && self
                .arch
                .as_deref()
                .is_none_or(|a| arch.is_none_or(|b| a == b))
            && self.version.as_deref().is_none_or(|v| v == version)
    }
}

/// Dates as RFC 3339 timestamps, or plain `YYYY-MM-DD` dates (midnight UTC).
mod release_time {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        value: &Option<Timestamp>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(ts) => serializer.serialize_str(&ts.to_string()),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Timestamp>, D::Error> {
        let Some(text) = Option::<String>::deserialize(deserializer)? else {
            return Ok(None);
        };
        crate::baseline::model::parse_release_time(&text)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

/// Parse an RFC 3339 timestamp or a `YYYY-MM-DD` date (taken as midnight UTC).
pub fn parse_release_time(text: &str) -> Result<Timestamp, String> {
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(ts);
    }
    text.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| format!("{text:?} is neither an RFC 3339 timestamp (2024-05-01T10:00:00Z) nor a date (2024-05-01)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_document_round_trips_in_camel_case() {
        let yaml = r#"
operatingSystem: Ubuntu
product: Ubuntu24.04
installed:
  - {name: openssl, arch: amd64, version: 3.0.13-0ubuntu3.1, source: openssl}
candidates:
  - name: openssl
    arch: amd64
    version: 3.0.13-0ubuntu3.4
    repositories: [noble-security, noble-updates]
    classification: Security
    priority: important
    section: utils
    firstSeen: 2024-09-01
    cves: [CVE-2024-5535]
    dependencies: [{name: libssl3t64, relation: "=", version: 3.0.13-0ubuntu3.4}]
installResult:
  failed: [{name: curl}]
  rebootRequired: true
"#;
        let input: EvaluationInput = serde_saphyr::from_str(yaml).expect("parses");
        assert_eq!(input.operating_system, Some(OperatingSystem::Ubuntu));
        let c = &input.candidates[0];
        assert_eq!(
            c.first_seen,
            Some("2024-09-01T00:00:00Z".parse().expect("ts"))
        );
        assert_eq!(c.effective_release_date(), c.first_seen);
        assert_eq!(
            c.dependencies.as_ref().map(|d| d[0].relation),
            Some(Some(Relation::Equal))
        );
        let json = serde_json::to_value(&input).expect("serialises");
        assert_eq!(json["candidates"][0]["firstSeen"], "2024-09-01T00:00:00Z");
        assert_eq!(json["installResult"]["rebootRequired"], true);
        let back: EvaluationInput = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, input);
    }

    #[test]
    fn unknown_fields_and_bad_dates_are_rejected_with_their_name() {
        let err = serde_saphyr::from_str::<EvaluationInput>(
            "candidates: [{name: a, version: '1', severty: High}]",
        )
        .expect_err("typo");
        assert!(err.to_string().contains("severty"), "{err}");
        let err = serde_saphyr::from_str::<EvaluationInput>(
            "candidates: [{name: a, version: '1', releaseDate: yesterday}]",
        )
        .expect_err("date");
        assert!(err.to_string().contains("yesterday"), "{err}");
    }

    #[test]
    fn relations_accept_orderings() {
        use std::cmp::Ordering::*;
        assert!(
            Relation::GreaterOrEqual.accepts(Equal)
                && Relation::GreaterOrEqual.accepts(Greater)
                && !Relation::GreaterOrEqual.accepts(Less)
        );
        assert!(Relation::Less.accepts(Less) && !Relation::Less.accepts(Equal));
        let r: Relation = serde_saphyr::from_str("'>'").expect("alias");
        assert_eq!(r, Relation::Greater);
    }
}
