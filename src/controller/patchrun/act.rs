//! The writes both starting and stepping a run make: failing it, cleaning up, node labels and
//! cordons, and Events about the run.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::daemonset::daemonset_name;
use super::status;
use kube::runtime::reflector::ObjectRef;

use crate::api::{
    Compliance, NodePatchReport, OperationPhase, PatchPolicy, PatchRun, RUN_LABEL, RebootOption,
};
use crate::controller::context::Context;
use crate::controller::error::{Error, Result};
use crate::controller::harness;
use crate::rollout::cordons::cordoned_in_flight;
use crate::rollout::keeps_agent;
use crate::rollout::record::{record_json, run_record};

pub(super) const KIND: &str = "PatchRun";

/// Remove the run label from every node carrying it and delete the run DaemonSet. Nodes whose
/// agent reports a package transaction of this run under way ([`installs_under_way`]) keep their
/// label and the DaemonSet stays: removing either would kill dpkg or rpm mid-way. Returns
/// whether cleanup is complete (false: look again later; the report's change wakes the run).
pub(super) async fn cleanup(run: &PatchRun, ctx: &Context) -> Result<bool> {
    let name = run.name_any();
    let held = installs_under_way(ctx, run, Timestamp::now());
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let labelled = nodes
        .list_metadata(&ListParams::default().labels(&format!("{RUN_LABEL}={name}")))
        .await?;
    for node in labelled.items {
        let node = node.name_any();
        if !held.contains(&node) {
            set_run_label(ctx, &node, None).await?;
        }
    }
    if !held.is_empty() {
        tracing::info!(run = %name, nodes = ?held, "cleanup waits for package transactions under way");
        return Ok(false);
    }
    let ds: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ctx.agent.namespace);
    match ds
        .delete(&daemonset_name(&name), &DeleteParams::background())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(true)
}

/// How long to wait before looking again at a cleanup held by a transaction under way.
pub(super) const CLEANUP_HOLD_POLL: std::time::Duration = std::time::Duration::from_secs(30);

/// The run's nodes whose agent reports one of its package transactions under way (report phase
/// Installing for this run), within the hold's bound ([`keeps_agent`]), from the report cache.
pub(super) fn installs_under_way(ctx: &Context, run: &PatchRun, now: Timestamp) -> Vec<String> {
    let Some(status) = run.status.as_ref() else {
        return Vec::new();
    };
    let name = run.name_any();
    // The run's fixed nodeTimeout (the default for a run started before it was recorded).
    let rollout = status.rollout.clone().unwrap_or_default();
    let node_timeout = crate::schedule::duration::parse_duration(&rollout.node_timeout).unwrap_or(
        crate::rollout::budget::install_worst_case(status.hooks.as_ref()),
    );
    status
        .targets
        .iter()
        .filter(|t| t.state != crate::api::TargetState::Pending)
        .filter(|t| {
            let report = ctx.stores.reports.get(&ObjectRef::new(&t.node));
            keeps_agent(
                t,
                installing_for(report.as_deref(), &name),
                node_timeout,
                now,
            )
        })
        .map(|t| t.node.clone())
        .collect()
}

/// Whether `report` says a package transaction of `run` is under way (phase Installing).
pub fn installing_for(report: Option<&NodePatchReport>, run: &str) -> bool {
    report
        .and_then(|r| r.status.as_ref())
        .and_then(|s| s.operation.as_ref())
        .is_some_and(|op| op.run == run && op.phase == OperationPhase::Installing)
}

/// Uncordon the nodes an aborted run holds mid-sequence ([`cordoned_in_flight`]); returns the
/// run's status with those targets no longer marked cordoned.
pub(super) async fn release_cordons(
    ctx: &Context,
    run: &PatchRun,
) -> Result<Option<crate::api::PatchRunStatus>> {
    let Some(mut status) = run.status.clone() else {
        return Ok(None);
    };
    let held = cordoned_in_flight(&status.targets);
    for node in &held {
        set_unschedulable(ctx, node, false).await?;
    }
    for t in status.targets.iter_mut().filter(|t| held.contains(&t.node)) {
        t.cordoned = false;
    }
    Ok(Some(status))
}

/// Finish a run that cannot proceed: nodes it holds cordoned mid-sequence are uncordoned first,
/// then status Failed, a Warning Event, cleanup.
pub(super) async fn fail_run(
    ctx: &Context,
    run: &PatchRun,
    reason: &str,
    message: String,
) -> Result<Action> {
    let released = release_cordons(ctx, run).await?;
    let status = status::failed_status(
        released.as_ref(),
        run.metadata.generation,
        reason,
        &message,
        Timestamp::now(),
    );
    harness::apply_status(ctx, KIND, run, &status).await?;
    publish(ctx, run, EventType::Warning, reason, message).await;
    audit(ctx, run, &status).await;
    if !cleanup(run, ctx).await? {
        return Ok(Action::requeue(CLEANUP_HOLD_POLL));
    }
    Ok(Action::await_change())
}

/// Record a finished run for audit: one JSON line on the `nodepatch::audit` log target and a
/// `RunRecord` Event whose note is the same record (bounded to the Event note limit), so who
/// ran what, when, with which package changes, outlives the run's pruning by `historyLimit`.
pub(super) async fn audit(ctx: &Context, run: &PatchRun, status: &crate::api::PatchRunStatus) {
    let record = run_record(run, status);
    let line = serde_json::to_string(&record).unwrap_or_default();
    tracing::info!(target: "nodepatch::audit", "{line}");
    let note = record_json(&record, status::MAX_EVENT_NOTE);
    publish(ctx, run, EventType::Normal, "RunRecord", note).await;
}

/// The reboot option in force for a run: its own, else its policy's install setting.
pub(super) fn reboot_option_of(run: &PatchRun, policy: &PatchPolicy) -> RebootOption {
    run.spec
        .reboot_option
        .or(policy.spec.install.as_ref().map(|i| i.reboot_option))
        .unwrap_or_default()
}

pub(super) async fn set_run_label(ctx: &Context, node: &str, run: Option<&str>) -> Result<()> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let patch = json!({"metadata": {"labels": {RUN_LABEL: run}}});
    match nodes
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        // A deleted node has no label to remove.
        Err(kube::Error::Api(s)) if s.code == 404 && run.is_none() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Cordon or uncordon a node (a deleted node needs neither).
pub(super) async fn set_unschedulable(
    ctx: &Context,
    node: &str,
    unschedulable: bool,
) -> Result<()> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let patch = json!({"spec": {"unschedulable": unschedulable}});
    match nodes
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            tracing::info!(node, unschedulable, "node cordon changed");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn publish(
    ctx: &Context,
    run: &PatchRun,
    type_: EventType,
    reason: &str,
    note: String,
) {
    publish_about(ctx, run, None, type_, reason, note).await;
}

/// Publish an Event about `run`, related to `node` when it concerns one: Events are merged into a
/// series by (reason, regarding, related), so per-node Events need the node to stay distinct.
/// An Event concerning a node is also published regarding the Node (related to the run), so
/// `kubectl describe node` and `kubectl events --for node/<name>` show its patching.
pub(super) async fn publish_about(
    ctx: &Context,
    run: &PatchRun,
    node: Option<&str>,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let note = status::event_note(note);
    let run_ref = run.object_ref(&());
    let node_ref = node.map(|n| node_reference(ctx, n));
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note.clone()),
        action: "Rollout".into(),
        secondary: node_ref.clone(),
    };
    if let Err(e) = ctx.recorder.publish(&ev, &run_ref).await {
        tracing::warn!(run = %run.name_any(), error = %e, "publishing event failed");
    }
    let Some(node_ref) = node_ref else { return };
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Rollout".into(),
        secondary: Some(run_ref),
    };
    if let Err(e) = ctx.recorder.publish(&ev, &node_ref).await {
        tracing::warn!(run = %run.name_any(), node = ?node_ref.name, error = %e, "publishing node event failed");
    }
}

/// A reference to the Node `name`, with its UID from the Node cache when known (else the name,
/// the kubelet's convention, which `kubectl describe node` also searches for).
fn node_reference(ctx: &Context, name: &str) -> k8s_openapi::api::core::v1::ObjectReference {
    let uid = ctx
        .stores
        .nodes
        .get(&kube::runtime::reflector::ObjectRef::new(name))
        .and_then(|n| n.metadata.uid.clone())
        .unwrap_or_else(|| name.to_string());
    k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(name.to_string()),
        uid: Some(uid),
        ..Default::default()
    }
}

/// Record that nodepatch does not patch `node`: its NodePatchReport (created, owned by the
/// Node, when missing) says NotApplicable with `reason` and the node's image. Written only when
/// the cached report says something else, so a run start rewrites nothing that is current.
pub(super) async fn mark_not_applicable(
    ctx: &Context,
    node: &str,
    reason: &str,
    os_image: &str,
) -> Result<()> {
    let cached = ctx
        .stores
        .reports
        .get(&kube::runtime::reflector::ObjectRef::new(node));
    let current = cached.as_ref().and_then(|r| r.status.as_ref());
    if current.is_some_and(|s| {
        s.compliance == Compliance::NotApplicable
            && s.compliance_reason.as_deref() == Some(reason)
            && s.os.as_ref().is_some_and(|o| o.pretty_name == os_image)
    }) {
        return Ok(());
    }
    let reports: Api<NodePatchReport> = Api::all(ctx.client.clone());
    if cached.is_none() && reports.get_opt(node).await?.is_none() {
        let Some(owner) = Api::<Node>::all(ctx.client.clone())
            .get_opt(node)
            .await?
            .and_then(|n| n.controller_owner_ref(&()))
        else {
            return Ok(());
        };
        let report = json!({
            "apiVersion": NodePatchReport::api_version(&()),
            "kind": "NodePatchReport",
            "metadata": {
                "name": node,
                "ownerReferences": [{
                    "apiVersion": "v1", "kind": "Node", "name": owner.name, "uid": owner.uid,
                }],
            },
            "spec": {},
        });
        let report: NodePatchReport =
            serde_json::from_value(report).map_err(|source| Error::Serialize {
                what: "NodePatchReport",
                source,
            })?;
        match reports.create(&PostParams::default(), &report).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let status = json!({
        "compliance": Compliance::NotApplicable.as_str(),
        "complianceReason": reason,
        "os": {"prettyName": os_image},
    });
    harness::apply_status(ctx, REPORT_KIND, &report_named(node), &status).await
}

/// Give up what [`mark_not_applicable`] wrote on a node that is patchable now (reinstalled,
/// or an end of support the clock had not reached): an empty apply by the controller's field
/// manager removes the fields only it set, and the agent's next report stands alone.
pub(super) async fn unmark_not_applicable(ctx: &Context, node: &str) -> Result<()> {
    let marked = ctx
        .stores
        .reports
        .get(&kube::runtime::reflector::ObjectRef::new(node))
        .and_then(|r| r.status.as_ref().map(|s| s.compliance_reason.is_some()))
        .unwrap_or(false);
    if !marked {
        return Ok(());
    }
    harness::apply_status(ctx, REPORT_KIND, &report_named(node), &json!({})).await
}

/// Kind label of the report status writes (`status_writes_total`).
const REPORT_KIND: &str = "NodePatchReport";

/// A NodePatchReport handle by name, for status applies.
fn report_named(node: &str) -> NodePatchReport {
    NodePatchReport::new(node, crate::api::NodePatchReportSpec {})
}
