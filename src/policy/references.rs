//! A policy's references and schedules: every baselineRef exists and no two are for one OS, the
//! node selector parses, the scan schedule parses, every maintenance window exists and is valid.
//! Any problem makes the policy not `Ready` (and it starts nothing).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::model::{PolicyView, WindowRef, condition};
use crate::api::conditions;
use crate::schedule::Schedule;
use crate::schedule::window::{WindowDefinition, parse_time_zone};

/// The outcome of [`check`].
pub struct References {
    /// Problems found: condition reason and message.
    pub problems: Vec<(&'static str, String)>,
    /// The scan schedule (windows of an hour), or what is wrong with it.
    pub scan: Result<WindowDefinition, String>,
    /// The valid maintenance windows.
    pub windows: Vec<WindowDefinition>,
}

impl References {
    /// No problem found.
    pub fn ready(&self) -> bool {
        self.problems.is_empty()
    }

    /// The `Ready` condition: the first problem's reason, every problem's message; a valid
    /// policy that is `suspended` is Ready with reason `Suspended`.
    pub fn ready_condition(
        &self,
        suspended: bool,
        generation: Option<i64>,
        now: Timestamp,
    ) -> Condition {
        let (reason, message) = match self.problems.first() {
            None if suspended => (
                "Suspended",
                "references and schedules are valid; spec.suspend is true: no run starts and an active run pauses between waves".to_string(),
            ),
            None => ("Valid", "references and schedules are valid".to_string()),
            Some((r, _)) => (
                *r,
                self.problems
                    .iter()
                    .map(|(_, m)| m.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        };
        condition(
            conditions::READY,
            self.ready(),
            reason,
            message,
            generation,
            now,
        )
    }
}

/// Check the policy's references and parse its schedules.
pub fn check(view: &PolicyView<'_>, now: Timestamp) -> References {
    let policy = view.policy;
    let mut problems: Vec<(&'static str, String)> = vec![];
    if let Some(e) = &view.selector_error {
        problems.push(("InvalidSelector", format!("spec.{e}")));
    }
    let mut seen_os = BTreeMap::new();
    for r in &policy.spec.baseline_refs {
        match view.baselines.iter().find(|(name, _)| name == r) {
            None => problems.push((
                "BaselineNotFound",
                format!("spec.baselineRefs: PatchBaseline {r} does not exist"),
            )),
            Some((_, os)) => {
                if let Some(other) = seen_os.insert(*os, r.clone()) {
                    problems.push((
                        "DuplicateBaselineOS",
                        format!("spec.baselineRefs: {other} and {r} are both for {os}"),
                    ));
                }
            }
        }
    }
    let anchor = policy
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let scan = policy.spec.scan.clone().unwrap_or_default();
    let scan = Schedule::parse(&scan.schedule)
        .map_err(|e| format!("spec.scan.schedule: {e}"))
        .and_then(|s| {
            let tz = parse_time_zone(scan.time_zone.as_deref().unwrap_or("UTC"))
                .map_err(|e| format!("spec.scan.{e}"))?;
            Ok(WindowDefinition::new(
                s,
                tz,
                SignedDuration::from_hours(1),
                anchor,
            ))
        });
    if let Err(e) = &scan {
        problems.push(("InvalidSchedule", e.clone()));
    }
    let mut windows = vec![];
    for (name, w) in &view.windows {
        match w {
            WindowRef::Missing => problems.push((
                "WindowNotFound",
                format!(
                    "spec.install.maintenanceWindowRefs: MaintenanceWindow {name} does not exist"
                ),
            )),
            WindowRef::Invalid { reason, message } => {
                problems.push((reason, format!("MaintenanceWindow {name}: {message}")))
            }
            WindowRef::Defined(d) => windows.push(d.as_ref().clone()),
        }
    }
    if let Some(install) = &policy.spec.install {
        let hooks = crate::api::InstallHooks {
            pre_install: install.pre_install.clone(),
            post_install: install.post_install.clone(),
        };
        if let Err(e) = crate::rollout::budget::check_node_timeout(
            &policy.spec.rollout.node_timeout,
            Some(&hooks),
        ) {
            problems.push(("InvalidRollout", e.to_string()));
        }
    }
    References {
        problems,
        scan,
        windows,
    }
}
