//! Starting a run. Two decisions, each after the observation it needs: whether the run waits
//! for another run of its policy (observe the policy's runs → decide → act: write the waiting
//! status), then what it fixes (observe the member nodes and their OS → decide targets and
//! baseline snapshots with `rollout::start::plan_start` → act: status, DaemonSet, Event). The
//! member nodes are read only once the run does not wait (one GET per node).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::act::{
    KIND, fail_run, mark_not_applicable, publish, reboot_option_of, unmark_not_applicable,
};
use super::daemonset::{daemonset_name, run_daemonset};
use super::status::{started_note, started_status, waiting_status};
use crate::api::{CONTROLLER_MANAGER, Operation, PatchPolicy, PatchRun};
use crate::controller::context::Context;
use crate::controller::error::Result;
use crate::controller::harness;
use crate::rollout::start::{
    MemberNode, RunEntry, must_wait_for_active_run, node_subset, plan_start, run_hooks,
};
use crate::rollout::targeting::{NotPatchable, membership};

/// How often a waiting run looks again.
const WAIT_POLL: Duration = Duration::from_secs(10);

/// Fix targets and baseline snapshots, create the DaemonSet. Waits while another run of the
/// policy is active (one active run per policy).
pub(super) async fn start(run: &PatchRun, policy: &PatchPolicy, ctx: &Context) -> Result<Action> {
    let now = Timestamp::now();
    // Starts are serialised in this process and read the API, not the cache, so a run that
    // started a moment ago (its status just written) is always seen: a user's "patch now"
    // created in the same second as the policy's scan must not run beside it.
    let _start = ctx.run_starts.lock().await;

    // Observe: every run, from the API.
    let runs: Vec<RunEntry> = Api::<PatchRun>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(run_entry)
        .collect();
    // Decide: one active run per policy.
    if must_wait_for_active_run(&run_entry(run), &runs) {
        // Act: say so (once).
        let status = waiting_status(run.status.as_ref(), run.metadata.generation, now);
        harness::apply_status_if_changed(ctx, KIND, run, run.status.as_ref(), &status).await?;
        return Ok(Action::requeue(WAIT_POLL));
    }

    // Observe: the policy's member nodes (membership over every policy, so a node claimed by
    // two is skipped by both) and their OS.
    let members = match member_names(ctx, policy) {
        Ok(m) => m,
        Err(message) => return fail_run(ctx, run, "InvalidSelector", message).await,
    };
    // A manual run's node subset: only members, else the run fails touching nothing.
    let members = match node_subset(&members, &run.spec.nodes) {
        Ok(m) => m,
        Err(strangers) => {
            let message = format!(
                "spec.nodes: {} {} not a member of PatchPolicy {} (not selected by it, or also selected by another policy)",
                strangers.join(", "),
                if strangers.len() == 1 { "is" } else { "are" },
                policy.name_any()
            );
            return fail_run(ctx, run, "NodesNotMembers", message).await;
        }
    };
    let nodes = observe_members(ctx, policy, &members).await?;
    let baselines = ctx.stores.baselines.state();
    // Decide: targets and snapshots.
    let plan = match plan_start(
        &nodes,
        &policy.spec.baseline_refs,
        baselines.iter().map(|b| b.as_ref()),
        now,
    ) {
        Ok(plan) => plan,
        Err(e) => return fail_run(ctx, run, e.reason(), e.to_string()).await,
    };
    let reboot_option =
        (run.spec.operation == Operation::Install).then(|| reboot_option_of(run, policy));
    let mut status = started_status(
        plan,
        run.spec.operation,
        members.len(),
        reboot_option,
        run.metadata.generation,
        now,
    );
    // Hooks, rollout and drain settings are fixed with the snapshots: a policy edit mid-run
    // neither changes nor fails the run. Checked here, before anything is touched.
    status.hooks = run_hooks(run.spec.operation, &policy.spec);
    status.rollout = Some(policy.spec.rollout.clone());
    status.drain = (run.spec.operation == Operation::Install).then(|| policy.spec.drain.clone());
    if let Err((reason, message)) =
        super::step::step_settings(run, policy, &status, status.targets.len() as u32)
    {
        return fail_run(ctx, run, reason, message).await;
    }
    if run.spec.operation == Operation::Install
        && let Err(e) = crate::rollout::budget::check_node_timeout(
            &policy.spec.rollout.node_timeout,
            status.hooks.as_ref(),
        )
    {
        return fail_run(ctx, run, "InvalidRollout", e.to_string()).await;
    }

    // Act: status first, then the DaemonSet, then the Event.
    harness::apply_status(ctx, KIND, run, &status).await?;
    let ds: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ctx.agent.namespace);
    ds.patch(
        &daemonset_name(&run.name_any()),
        &PatchParams::apply(CONTROLLER_MANAGER).force(),
        &Patch::Apply(&run_daemonset(run, &ctx.agent)),
    )
    .await?;
    // Nodes nodepatch does not patch say so in their report (no agent ever runs there); a node
    // marked so before that is patchable now loses the mark.
    for node in &nodes {
        let target = status.targets.iter().find(|t| t.node == node.name);
        match target
            .and_then(|t| t.reason.as_deref())
            .and_then(NotPatchable::from_reason)
        {
            Some(why) => mark_not_applicable(ctx, &node.name, why.as_str(), &node.os_image).await?,
            None => unmark_not_applicable(ctx, &node.name).await?,
        }
    }
    let note = started_note(run.spec.operation, &run.spec.policy_ref, status.nodes.total);
    publish(ctx, run, EventType::Normal, "RunStarted", note).await;
    Ok(Action::requeue(Duration::from_millis(200)))
}

/// What start planning needs of a run.
fn run_entry(r: &PatchRun) -> RunEntry {
    let status = r.status.as_ref();
    RunEntry {
        name: r.name_any(),
        policy: r.spec.policy_ref.clone(),
        created: r.metadata.creation_timestamp.as_ref().map(|t| t.0),
        started: status.is_some_and(|s| s.start_time.is_some() || !s.targets.is_empty()),
        finished: status.is_some_and(|s| s.phase.is_finished()),
    }
}

/// The policy's member nodes from the caches (names, sorted); an invalid selector is the
/// run's failure message.
fn member_names(ctx: &Context, policy: &PatchPolicy) -> std::result::Result<Vec<String>, String> {
    let node_labels = node_labels(ctx);
    let policies = ctx.stores.policies.state();
    let m = membership(
        policies.iter().map(|p| {
            (
                p.metadata.name.as_deref().unwrap_or(""),
                &p.spec.node_selector,
            )
        }),
        &node_labels,
    );
    if let Some(err) = m.invalid.get(&policy.name_any()) {
        return Err(format!("spec.{err}"));
    }
    Ok(m.members
        .get(&policy.name_any())
        .map(|m| m.iter().cloned().collect())
        .unwrap_or_default())
}

fn node_labels(ctx: &Context) -> BTreeMap<String, BTreeMap<String, String>> {
    ctx.stores
        .nodes
        .state()
        .iter()
        .map(|n| (n.name_any(), n.metadata.labels.clone().unwrap_or_default()))
        .collect()
}

/// Each member's OS image and topology value. The OS is in status.nodeInfo, which the metadata
/// cache does not hold: one GET per member node, once per run. A node deleted meanwhile is left
/// out.
async fn observe_members(
    ctx: &Context,
    policy: &PatchPolicy,
    members: &[String],
) -> Result<Vec<MemberNode>> {
    let nodes_api: Api<Node> = Api::all(ctx.client.clone());
    let labels = node_labels(ctx);
    let mut nodes = vec![];
    for name in members {
        let Some(node) = nodes_api.get_opt(name).await? else {
            continue;
        };
        let kubernetes_os = node.labels().get("kubernetes.io/os").cloned();
        let os_image = node
            .status
            .and_then(|s| s.node_info)
            .map(|i| i.os_image)
            .unwrap_or_default();
        let topology = policy
            .spec
            .rollout
            .topology_key
            .as_ref()
            .and_then(|k| labels.get(name).and_then(|l| l.get(k)).cloned());
        nodes.push(MemberNode {
            name: name.clone(),
            os_image,
            kubernetes_os,
            topology,
        });
    }
    Ok(nodes)
}
