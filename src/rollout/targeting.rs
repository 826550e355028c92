//! Pure targeting: which nodes a policy selects, conflicts between policies, a node's operating
//! system from its `nodeInfo`, and which baseline a node uses.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use k8s_openapi::jiff::Timestamp;

use crate::api::{EXCLUDE_LABEL, OperatingSystem, PolicyConflict};

/// Why a label selector cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("nodeSelector.matchExpressions[{index}]: {message}")]
pub struct SelectorError {
    /// Index of the bad expression.
    pub index: usize,
    /// What is wrong.
    pub message: String,
}

/// Whether `labels` match `selector` (Kubernetes semantics: matchLabels AND every expression).
pub fn selector_matches(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, SelectorError> {
    if let Some(ml) = &selector.match_labels
        && ml.iter().any(|(k, v)| labels.get(k) != Some(v))
    {
        return Ok(false);
    }
    for (index, expr) in selector.match_expressions.iter().flatten().enumerate() {
        let value = labels.get(&expr.key);
        let values = expr.values.as_deref().unwrap_or_default();
        let matched = match expr.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(SelectorError {
                    index,
                    message: format!("operator {} needs values", expr.operator),
                });
            }
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            other => {
                return Err(SelectorError {
                    index,
                    message: format!("unknown operator '{other}'"),
                });
            }
        };
        if !matched {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether a node opted out with `nodepatch.dev/exclude=true`.
pub fn is_excluded(labels: &BTreeMap<String, String>) -> bool {
    labels.get(EXCLUDE_LABEL).is_some_and(|v| v == "true")
}

/// Nodes each policy selects (excluded nodes never), and the conflicts: nodes selected by more
/// than one policy, which every such policy skips.
pub struct Membership {
    /// Policy name → nodes it may act on (conflicting nodes removed).
    pub members: BTreeMap<String, BTreeSet<String>>,
    /// Policy name → its conflicts.
    pub conflicts: BTreeMap<String, Vec<PolicyConflict>>,
    /// Policy name → selector error, for policies whose selector is invalid.
    pub invalid: BTreeMap<String, SelectorError>,
}

/// Compute membership of `nodes` (name → labels) in `policies` (name → selector). Suspended
/// policies still claim their nodes, so suspending one does not hand its nodes to another.
pub fn membership<'a>(
    policies: impl IntoIterator<Item = (&'a str, &'a LabelSelector)>,
    nodes: &BTreeMap<String, BTreeMap<String, String>>,
) -> Membership {
    let mut matched: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut invalid = BTreeMap::new();
    for (policy, selector) in policies {
        let mut set = BTreeSet::new();
        for (node, labels) in nodes {
            if is_excluded(labels) {
                continue;
            }
            match selector_matches(selector, labels) {
                Ok(true) => {
                    set.insert(node.clone());
                }
                Ok(false) => {}
                Err(e) => {
                    invalid.insert(policy.to_string(), e);
                    set.clear();
                    break;
                }
            }
        }
        matched.insert(policy.to_string(), set);
    }
    let mut owners: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (policy, set) in &matched {
        for node in set {
            owners
                .entry(node.as_str())
                .or_default()
                .push(policy.as_str());
        }
    }
    let mut conflicts: BTreeMap<String, Vec<PolicyConflict>> = BTreeMap::new();
    let mut contested: BTreeSet<String> = BTreeSet::new();
    for (node, ps) in &owners {
        if ps.len() < 2 {
            continue;
        }
        contested.insert(node.to_string());
        for p in ps {
            for other in ps.iter().filter(|o| *o != p) {
                conflicts
                    .entry(p.to_string())
                    .or_default()
                    .push(PolicyConflict {
                        node: node.to_string(),
                        other_policy: other.to_string(),
                    });
            }
        }
    }
    let members = matched
        .into_iter()
        .map(|(p, set)| {
            (
                p,
                set.into_iter().filter(|n| !contested.contains(n)).collect(),
            )
        })
        .collect();
    Membership {
        members,
        conflicts,
        invalid,
    }
}

/// Why nodepatch does not patch a node: its NodePatchReport says `NotApplicable` with this
/// reason, the roll-ups count it as NotApplicable, and no run labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NotPatchable {
    /// An image-based OS that updates itself as a whole (Bottlerocket, Flatcar, Talos, Fedora
    /// CoreOS, RHEL CoreOS): its own update operator patches it.
    ImmutableOS,
    /// An OS nodepatch has no backend for (Windows, anything unrecognised).
    UnsupportedOS,
    /// An OS past its vendor's end of support (Amazon Linux 2 after 2026-06-30): no updates to
    /// install, and its yum is not supported.
    EndOfLife,
}

impl NotPatchable {
    /// The reason as reports and run targets spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            NotPatchable::ImmutableOS => "ImmutableOS",
            NotPatchable::UnsupportedOS => "UnsupportedOS",
            NotPatchable::EndOfLife => "EndOfLife",
        }
    }

    /// Whether a run target's skip reason is one of these.
    pub fn from_reason(reason: &str) -> Option<NotPatchable> {
        [
            NotPatchable::ImmutableOS,
            NotPatchable::UnsupportedOS,
            NotPatchable::EndOfLife,
        ]
        .into_iter()
        .find(|r| r.as_str() == reason)
    }
}

/// End of support of Amazon Linux 2 (AWS: 2026-06-30): from the next day on it is EndOfLife.
const AMAZON_LINUX_2_END: &str = "2026-07-01T00:00:00Z";

/// Whether nodepatch patches a node, from its `kubernetes.io/os` label and
/// `status.nodeInfo.osImage`, at `now` (end-of-life dates pass).
pub fn patchability(
    os_image: &str,
    kubernetes_os: Option<&str>,
    now: Timestamp,
) -> Result<OperatingSystem, NotPatchable> {
    let image = os_image.to_ascii_lowercase();
    if kubernetes_os.is_some_and(|os| os != "linux") || image.contains("windows") {
        return Err(NotPatchable::UnsupportedOS);
    }
    // Immutable OSes first: "Fedora CoreOS" and "Red Hat Enterprise Linux CoreOS" name a
    // package-based OS too, and Bottlerocket's image can read "Amazon Linux 2023 (Bottlerocket…".
    let immutable = ["bottlerocket", "flatcar", "talos", "coreos"];
    if immutable.iter().any(|m| image.contains(m)) {
        return Err(NotPatchable::ImmutableOS);
    }
    match operating_system_of(os_image) {
        Some(OperatingSystem::AmazonLinux2)
            if now >= AMAZON_LINUX_2_END.parse::<Timestamp>().expect("constant") =>
        {
            Err(NotPatchable::EndOfLife)
        }
        Some(os) => Ok(os),
        None => Err(NotPatchable::UnsupportedOS),
    }
}

/// The operating system of a node from `status.nodeInfo.osImage` (the os-release PRETTY_NAME
/// the kubelet reports). None for OSes no baseline covers (immutable OSes, Windows, unknown).
pub fn operating_system_of(os_image: &str) -> Option<OperatingSystem> {
    let s = os_image.to_ascii_lowercase();
    let table: [(&str, OperatingSystem); 14] = [
        ("ubuntu", OperatingSystem::Ubuntu),
        ("debian", OperatingSystem::Debian),
        (
            "red hat enterprise linux coreos",
            OperatingSystem::RedHatEnterpriseLinux,
        ),
        (
            "red hat enterprise linux",
            OperatingSystem::RedHatEnterpriseLinux,
        ),
        ("rocky", OperatingSystem::Rocky),
        ("almalinux", OperatingSystem::AlmaLinux),
        ("centos stream", OperatingSystem::CentOSStream),
        ("oracle linux", OperatingSystem::OracleLinux),
        ("amazon linux 2023", OperatingSystem::AmazonLinux2023),
        ("amazon linux 2", OperatingSystem::AmazonLinux2),
        ("fedora coreos", OperatingSystem::Fedora),
        ("fedora", OperatingSystem::Fedora),
        ("opensuse", OperatingSystem::OpenSUSE),
        ("suse linux enterprise", OperatingSystem::Suse),
    ];
    // Immutable OSes are patched by their own update operators, never by nodepatch.
    let immutable = [
        "bottlerocket",
        "flatcar",
        "talos",
        "coreos",
        "amazon linux 2023 (bottlerocket",
    ];
    if immutable.iter().any(|m| s.contains(m)) {
        return None;
    }
    if s.contains("alpine") {
        return Some(OperatingSystem::Alpine);
    }
    table
        .iter()
        .find(|(needle, _)| s.contains(needle))
        .map(|(_, os)| *os)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn selector(ml: &[(&str, &str)], exprs: &[(&str, &str, &[&str])]) -> LabelSelector {
        LabelSelector {
            match_labels: Some(labels(ml)),
            match_expressions: Some(
                exprs
                    .iter()
                    .map(|(k, op, vs)| LabelSelectorRequirement {
                        key: k.to_string(),
                        operator: op.to_string(),
                        values: Some(vs.iter().map(|v| v.to_string()).collect()),
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn selector_semantics() {
        let l = labels(&[("pool", "prod"), ("zone", "a")]);
        assert_eq!(
            selector_matches(&selector(&[("pool", "prod")], &[]), &l),
            Ok(true)
        );
        assert_eq!(
            selector_matches(&selector(&[("pool", "dev")], &[]), &l),
            Ok(false)
        );
        assert_eq!(
            selector_matches(&selector(&[], &[("zone", "In", &["a", "b"])]), &l),
            Ok(true)
        );
        assert_eq!(
            selector_matches(&selector(&[], &[("zone", "NotIn", &["a"])]), &l),
            Ok(false)
        );
        assert_eq!(
            selector_matches(&selector(&[], &[("gpu", "DoesNotExist", &[])]), &l),
            Ok(true)
        );
        assert_eq!(
            selector_matches(&selector(&[], &[("gpu", "Exists", &[])]), &l),
            Ok(false)
        );
        assert!(selector_matches(&selector(&[], &[("zone", "Near", &["a"])]), &l).is_err());
        assert_eq!(
            selector_matches(&LabelSelector::default(), &l),
            Ok(true),
            "empty selector selects all"
        );
    }

    #[test]
    fn node_matched_by_two_policies_is_a_conflict_for_both_and_skipped() {
        let nodes = BTreeMap::from([
            (
                "n1".to_string(),
                labels(&[("pool", "prod"), ("gpu", "yes")]),
            ),
            ("n2".to_string(), labels(&[("pool", "prod")])),
            (
                "n3".to_string(),
                labels(&[("pool", "prod"), (EXCLUDE_LABEL, "true")]),
            ),
        ]);
        let prod = selector(&[("pool", "prod")], &[]);
        let gpu = selector(&[("gpu", "yes")], &[]);
        let m = membership([("prod", &prod), ("gpu", &gpu)], &nodes);
        assert_eq!(
            m.members["prod"],
            BTreeSet::from(["n2".to_string()]),
            "n1 contested, n3 excluded"
        );
        assert!(m.members["gpu"].is_empty());
        assert_eq!(
            m.conflicts["prod"],
            vec![PolicyConflict {
                node: "n1".into(),
                other_policy: "gpu".into()
            }]
        );
        assert_eq!(
            m.conflicts["gpu"],
            vec![PolicyConflict {
                node: "n1".into(),
                other_policy: "prod".into()
            }]
        );
    }

    #[test]
    fn os_images_map_to_operating_systems() {
        assert_eq!(
            operating_system_of("Ubuntu 24.04.1 LTS"),
            Some(OperatingSystem::Ubuntu)
        );
        assert_eq!(
            operating_system_of("Debian GNU/Linux 12 (bookworm)"),
            Some(OperatingSystem::Debian)
        );
        assert_eq!(
            operating_system_of("Rocky Linux 9.4 (Blue Onyx)"),
            Some(OperatingSystem::Rocky)
        );
        assert_eq!(
            operating_system_of("Amazon Linux 2023.6.20241121"),
            Some(OperatingSystem::AmazonLinux2023)
        );
        assert_eq!(
            operating_system_of("Amazon Linux 2"),
            Some(OperatingSystem::AmazonLinux2)
        );
        assert_eq!(
            operating_system_of("Red Hat Enterprise Linux 9.4 (Plow)"),
            Some(OperatingSystem::RedHatEnterpriseLinux)
        );
        assert_eq!(
            operating_system_of("SUSE Linux Enterprise Server 15 SP6"),
            Some(OperatingSystem::Suse)
        );
        assert_eq!(
            operating_system_of("Bottlerocket OS 1.26.2 (aws-k8s-1.31)"),
            None
        );
        assert_eq!(
            operating_system_of("Flatcar Container Linux by Kinvolk 3975.2.2 (Oklo)"),
            None
        );
        assert_eq!(operating_system_of("Talos (v1.8.3)"), None);
        let now: Timestamp = "2026-12-01T00:00:00Z".parse().expect("now");
        let before_eol: Timestamp = "2026-06-30T23:59:59Z".parse().expect("before");
        for (image, os, expected) in [
            (
                "Bottlerocket OS 1.26.2 (aws-k8s-1.31)",
                None,
                Err(NotPatchable::ImmutableOS),
            ),
            (
                "Talos (v1.8.3)",
                Some("linux"),
                Err(NotPatchable::ImmutableOS),
            ),
            (
                "Flatcar Container Linux by Kinvolk 3975.2.2 (Oklo)",
                None,
                Err(NotPatchable::ImmutableOS),
            ),
            (
                "Fedora CoreOS 40.20240825.3.0",
                None,
                Err(NotPatchable::ImmutableOS),
            ),
            (
                "Red Hat Enterprise Linux CoreOS 417.94",
                None,
                Err(NotPatchable::ImmutableOS),
            ),
            (
                "Windows Server 2022 Datacenter",
                Some("windows"),
                Err(NotPatchable::UnsupportedOS),
            ),
            ("", Some("windows"), Err(NotPatchable::UnsupportedOS)),
            ("Gentoo Linux", None, Err(NotPatchable::UnsupportedOS)),
            (
                "Amazon Linux 2",
                Some("linux"),
                Err(NotPatchable::EndOfLife),
            ),
            (
                "Amazon Linux 2023.6.20241121",
                None,
                Ok(OperatingSystem::AmazonLinux2023),
            ),
            (
                "Debian GNU/Linux 12 (bookworm)",
                Some("linux"),
                Ok(OperatingSystem::Debian),
            ),
        ] {
            assert_eq!(patchability(image, os, now), expected, "{image}");
        }
        assert_eq!(
            patchability("Amazon Linux 2", None, before_eol),
            Ok(OperatingSystem::AmazonLinux2),
            "supported until its end of support"
        );
        assert_eq!(operating_system_of("Windows Server 2022 Datacenter"), None);
    }
}
