//! `suspend`, `resume` and `cancel`: merge patches of `PatchPolicy.spec.suspend` and
//! `PatchRun.spec.cancel`. What to send (or why not) is decided by pure functions of the object
//! read; the requests are plain merge patches as the user, so admission stamps who canceled.

use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::args::{CancelArgs, PolicyArgs};
use super::connection::get_named;
use super::error::PluginError;
use crate::api::{PatchPolicy, PatchRun, RunCancel};

/// Field manager of the plugin's writes.
pub const PLUGIN_MANAGER: &str = "kubectl-nodepatch";

/// Merge-patch parameters naming the plugin as field manager.
fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(PLUGIN_MANAGER.into()),
        ..PatchParams::default()
    }
}

/// What to do with a policy's `spec.suspend`: `None` when it already has the wanted value.
pub fn suspend_patch(policy: &PatchPolicy, suspend: bool) -> Option<Value> {
    (policy.spec.suspend != suspend).then(|| json!({"spec": {"suspend": suspend}}))
}

/// What canceling `run` sends: `Ok(None)` when it is already being canceled for the same
/// reason, an error when it has finished or was canceled for another reason (`spec.cancel`
/// cannot change once set).
pub fn cancel_patch(run: &PatchRun, reason: Option<&str>) -> Result<Option<Value>, PluginError> {
    let name = run.name_any();
    if let Some(status) = &run.status
        && status.phase.is_finished()
    {
        return Err(PluginError::Refused(format!(
            "run {name:?} already finished ({}): nothing to cancel",
            status.phase.as_str()
        )));
    }
    let wanted = RunCancel {
        reason: reason.map(str::to_owned),
    };
    match &run.spec.cancel {
        Some(existing) if *existing == wanted => Ok(None),
        Some(existing) => Err(PluginError::Refused(format!(
            "run {name:?} is already being canceled (reason {:?}); spec.cancel cannot be changed",
            existing.reason.as_deref().unwrap_or("")
        ))),
        None => Ok(Some(json!({"spec": {"cancel": wanted}}))),
    }
}

/// Runs `suspend` (`suspend` true) or `resume`.
pub async fn set_suspend(
    client: &Client,
    args: &PolicyArgs,
    suspend: bool,
) -> Result<String, PluginError> {
    let policy: PatchPolicy = get_named(client, "policy", &args.policy).await?;
    let verb = if suspend { "suspended" } else { "resumed" };
    let Some(patch) = suspend_patch(&policy, suspend) else {
        return Ok(format!("policy {:?} already {verb}\n", args.policy));
    };
    Api::<PatchPolicy>::all(client.clone())
        .patch(&args.policy, &params(), &Patch::Merge(&patch))
        .await
        .map_err(PluginError::api(format!(
            "patching policy {:?}",
            args.policy
        )))?;
    Ok(format!("policy {:?} {verb}\n", args.policy))
}

/// Runs `cancel`.
pub async fn cancel(client: &Client, args: &CancelArgs) -> Result<String, PluginError> {
    let run: PatchRun = get_named(client, "run", &args.run).await?;
    let Some(patch) = cancel_patch(&run, args.reason.as_deref())? else {
        return Ok(format!("run {:?} already being canceled\n", args.run));
    };
    Api::<PatchRun>::all(client.clone())
        .patch(&args.run, &params(), &Patch::Merge(&patch))
        .await
        .map_err(PluginError::api(format!("canceling run {:?}", args.run)))?;
    Ok(format!(
        "run {:?} canceled: no new node starts; nodes in flight finish\n",
        args.run
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(phase: &str, cancel: Option<Value>) -> PatchRun {
        let mut spec = json!({"policyRef": "web", "operation": "Install"});
        if let Some(c) = cancel {
            spec["cancel"] = c;
        }
        serde_json::from_value(json!({
            "apiVersion": "nodepatch.dev/v1alpha1", "kind": "PatchRun",
            "metadata": {"name": "web-1"}, "spec": spec, "status": {"phase": phase},
        }))
        .expect("run")
    }

    #[test]
    fn canceling_a_running_run_sends_the_reason() {
        let patch = cancel_patch(&run("Running", None), Some("freeze")).expect("allowed");
        assert_eq!(
            patch,
            Some(json!({"spec": {"cancel": {"reason": "freeze"}}}))
        );
        let patch = cancel_patch(&run("Pending", None), None).expect("allowed");
        assert_eq!(patch, Some(json!({"spec": {"cancel": {}}})));
    }

    #[test]
    fn canceling_a_finished_run_is_refused_naming_it_and_its_phase() {
        for phase in ["Succeeded", "Failed", "Canceled", "Halted", "TimedOut"] {
            let err = cancel_patch(&run(phase, None), None).expect_err("finished");
            assert_eq!(
                err.to_string(),
                format!("run \"web-1\" already finished ({phase}): nothing to cancel")
            );
        }
    }

    #[test]
    fn a_second_cancel_is_a_no_op_with_the_same_reason_and_refused_with_another() {
        let canceled = run("Running", Some(json!({"reason": "freeze"})));
        assert_eq!(cancel_patch(&canceled, Some("freeze")).expect("same"), None);
        let err = cancel_patch(&canceled, Some("other")).expect_err("changed");
        assert!(err.to_string().contains("cannot be changed"), "{err}");
    }

    #[test]
    fn suspend_patch_is_sent_only_when_the_value_changes() {
        let policy: PatchPolicy = serde_json::from_value(json!({
            "apiVersion": "nodepatch.dev/v1alpha1", "kind": "PatchPolicy",
            "metadata": {"name": "web"}, "spec": {"nodeSelector": {}, "suspend": true},
        }))
        .expect("policy");
        assert_eq!(suspend_patch(&policy, true), None);
        assert_eq!(
            suspend_patch(&policy, false),
            Some(json!({"spec": {"suspend": false}}))
        );
    }
}
