//! How long an agent may take for one node's install, and the check that a policy's
//! `rollout.nodeTimeout` covers it. Pure: the agent's step timeouts are constants here, read by
//! the agent's backends (so the two cannot drift) and by the controller's check.
//!
//! The controller never takes a node from an agent whose report says it is installing (the
//! label and the DaemonSet stay until the transaction ends, see `docs/reliability.md`), so a
//! `nodeTimeout` shorter than the agent's worst case would only fail nodes whose install is
//! still going well. A policy whose `nodeTimeout` is shorter than its worst case is not Ready
//! and its install runs fail at start, touching nothing.

use k8s_openapi::jiff::SignedDuration;

use crate::api::InstallHooks;
use crate::schedule::duration::{format_duration, parse_duration};

/// Timeout of refreshing the package lists (`apt-get update`, `dnf makecache`, `zypper
/// refresh`, `apk update`).
pub const REFRESH_TIMEOUT: SignedDuration = SignedDuration::from_mins(10);
/// How long the agent waits for another package manager's lock (apt's `DPkg::Lock::Timeout`,
/// and before a repair).
pub const LOCK_WAIT: SignedDuration = SignedDuration::from_mins(5);
/// Timeout of checking the package database before an install (`dpkg --audit`).
pub const AUDIT_TIMEOUT: SignedDuration = SignedDuration::from_mins(2);
/// The time all package transactions of one install share (`apt-get install`, `dnf upgrade`,
/// `zypper install`, `apk add`, their one-at-a-time retries included).
pub const INSTALL_TIMEOUT: SignedDuration = SignedDuration::from_mins(60);
/// Timeout of one repair of what an interrupted or failed transaction left (`dpkg --configure
/// -a`); an install may need one before its transaction and one after a timeout.
pub const REPAIR_TIMEOUT: SignedDuration = SignedDuration::from_mins(15);
/// What the agent's two scans of an install (before, and the confirming one after) and its
/// report writes may take together.
pub const SCAN_ALLOWANCE: SignedDuration = SignedDuration::from_mins(5);

/// The run DaemonSet's `terminationGracePeriodSeconds`: a SIGTERM'd agent lets its
/// transactions and the repair after a timeout finish, then writes its report.
pub const TERMINATION_GRACE: SignedDuration =
    SignedDuration::from_secs(INSTALL_TIMEOUT.as_secs() + REPAIR_TIMEOUT.as_secs() + 60);

/// `d` as a std duration (the agent's command timeouts).
pub fn std_duration(d: SignedDuration) -> std::time::Duration {
    d.unsigned_abs()
}

/// The longest the agent may spend on one node's install with these hooks: the pre-install
/// hook, refresh, preparation (lock wait, audit, a repair), the transactions, a repair after
/// a timeout, the post-install hook and the scans. A hook without a parseable timeout counts
/// with the longest one admission allows (1h).
pub fn install_worst_case(hooks: Option<&InstallHooks>) -> SignedDuration {
    let hook = |h: Option<&crate::api::HookSpec>| match h {
        None => SignedDuration::ZERO,
        Some(h) => parse_duration(&h.timeout).unwrap_or(SignedDuration::from_hours(1)),
    };
    let (pre, post) = match hooks {
        None => (SignedDuration::ZERO, SignedDuration::ZERO),
        Some(h) => (hook(h.pre_install.as_ref()), hook(h.post_install.as_ref())),
    };
    pre + REFRESH_TIMEOUT
        + LOCK_WAIT
        + AUDIT_TIMEOUT
        + REPAIR_TIMEOUT
        + INSTALL_TIMEOUT
        + REPAIR_TIMEOUT
        + post
        + SCAN_ALLOWANCE
}

/// Why a policy's `nodeTimeout` cannot be used for installs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "spec.rollout.nodeTimeout: {node_timeout} is shorter than the agent's worst case for an install, {worst_case} ({parts}); raise it to at least {worst_case}"
)]
pub struct BudgetError {
    /// The policy's value.
    pub node_timeout: String,
    /// The agent's worst case.
    pub worst_case: String,
    /// What the worst case is made of.
    pub parts: String,
}

/// Check that `node_timeout` covers the agent's worst case for an install with `hooks`. An
/// unparseable `node_timeout` is left to the rollout settings' own check.
pub fn check_node_timeout(
    node_timeout: &str,
    hooks: Option<&InstallHooks>,
) -> Result<(), BudgetError> {
    let Ok(limit) = parse_duration(node_timeout) else {
        return Ok(());
    };
    let worst = install_worst_case(hooks);
    if limit >= worst {
        return Ok(());
    }
    let hook = |h: Option<&crate::api::HookSpec>| {
        h.map(|h| h.timeout.clone())
            .unwrap_or_else(|| "none".into())
    };
    Err(BudgetError {
        node_timeout: node_timeout.to_string(),
        worst_case: format_duration(worst),
        parts: format!(
            "pre-install hook {}, refresh {}, lock wait {}, audit {}, two repairs of {}, transactions {}, post-install hook {}, scans {}",
            hook(hooks.and_then(|h| h.pre_install.as_ref())),
            format_duration(REFRESH_TIMEOUT),
            format_duration(LOCK_WAIT),
            format_duration(AUDIT_TIMEOUT),
            format_duration(REPAIR_TIMEOUT),
            format_duration(INSTALL_TIMEOUT),
            hook(hooks.and_then(|h| h.post_install.as_ref())),
            format_duration(SCAN_ALLOWANCE),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::HookSpec;

    fn hooks(pre: Option<&str>, post: Option<&str>) -> InstallHooks {
        let spec = |t: &str| HookSpec {
            command: vec!["true".into()],
            args: vec![],
            timeout: t.into(),
        };
        InstallHooks {
            pre_install: pre.map(spec),
            post_install: post.map(spec),
        }
    }

    #[test]
    fn the_default_node_timeout_covers_an_install_with_default_hooks() {
        let default = crate::api::RolloutSpec::default().node_timeout;
        assert_eq!(default, "2h30m");
        check_node_timeout(&default, None).expect("no hooks");
        check_node_timeout(&default, Some(&hooks(Some("10m"), Some("10m"))))
            .expect("default hooks");
    }

    #[test]
    fn a_node_timeout_shorter_than_the_worst_case_names_the_field_and_the_parts() {
        let err = check_node_timeout("1h", Some(&hooks(Some("20m"), None))).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("spec.rollout.nodeTimeout: 1h is shorter"),
            "{text}"
        );
        assert!(text.contains("2h12m"), "{text}");
        assert!(text.contains("pre-install hook 20m"), "{text}");
        assert!(text.contains("post-install hook none"), "{text}");
        assert_eq!(
            install_worst_case(Some(&hooks(Some("20m"), None))),
            SignedDuration::from_mins(132)
        );
    }

    #[test]
    fn a_long_hook_needs_a_longer_node_timeout() {
        let h = hooks(Some("1h"), Some("1h"));
        assert!(check_node_timeout("2h30m", Some(&h)).is_err());
        check_node_timeout("3h52m", Some(&h)).expect("covers 3h52m");
    }

    #[test]
    fn an_unparseable_node_timeout_is_left_to_the_rollout_check() {
        check_node_timeout("soon", None).expect("not this check's error");
    }
}
