//! PatchRun reconciler: fixes a run's targets and baseline snapshots at start ([`start`]),
//! drives it wave by wave through the run DaemonSet ([`step`]; nodes enter by getting the
//! `nodepatch.dev/run` label), and cleans up (DaemonSet, labels) when it ends or is deleted. All
//! decisions come from the pure planners in `crate::rollout`; status and Event text from
//! [`status`]; every bit of state lives in the run's status.

mod act;
pub mod daemonset;
mod start;
pub mod status;
pub mod step;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::DaemonSet;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use super::context::Context;
use super::error::{Error, Result};
use super::harness;
use crate::api::{NodePatchReport, PatchPolicy, PatchRun, RUN_LABEL};
use act::{KIND, cleanup, fail_run, release_cordons};

pub use daemonset::{AgentSettings, DAEMONSET_PREFIX, daemonset_name, run_daemonset};
pub use step::{finished_boot_id, node_health, progress_of};

/// Finalizer that removes run labels and the DaemonSet before a run goes away.
pub const RUN_FINALIZER: &str = "nodepatch.dev/run-cleanup";

/// Reconcile one run (wrapped in the cleanup finalizer).
pub async fn reconcile(run: Arc<PatchRun>, ctx: Arc<Context>) -> Result<Action> {
    let api: Api<PatchRun> = Api::all(ctx.client.clone());
    let reconcile = finalizer(&api, RUN_FINALIZER, run.clone(), |event| async {
        match event {
            FinalizerEvent::Apply(run) => apply(&run, &ctx).await,
            FinalizerEvent::Cleanup(run) => {
                // Deleted mid-run (by a user, or with its policy): nothing will finish the
                // nodes it holds cordoned, so they are released before the labels go.
                let finished = run.status.as_ref().is_some_and(|s| s.phase.is_finished());
                if !finished {
                    release_cordons(&ctx, &run).await?;
                }
                cleanup(&run, &ctx).await?;
                Ok(Action::await_change())
            }
        }
    });
    // A run deleted while an agent is mid-transaction keeps its finalizer (and so its
    // DaemonSet and that node's label) until the transaction ends: deleting them would kill
    // dpkg or rpm half-way. The report's change wakes the run.
    let deleting = run.metadata.deletion_timestamp.is_some()
        && run.finalizers().iter().any(|f| f == RUN_FINALIZER);
    if deleting {
        let held = act::installs_under_way(&ctx, &run, k8s_openapi::jiff::Timestamp::now());
        if !held.is_empty() {
            tracing::info!(run = %run.name_any(), nodes = ?held, "deleted run waits for package transactions under way");
            return Ok(Action::requeue(act::CLEANUP_HOLD_POLL));
        }
    }
    harness::instrumented(KIND, run.as_ref(), &ctx, async {
        reconcile.await.map_err(|e| match e {
            kube::runtime::finalizer::Error::ApplyFailed(e)
            | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
            kube::runtime::finalizer::Error::AddFinalizer(e)
            | kube::runtime::finalizer::Error::RemoveFinalizer(e) => Error::Finalizer(e),
            kube::runtime::finalizer::Error::UnnamedObject => Error::MissingName,
            kube::runtime::finalizer::Error::InvalidFinalizer => Error::MissingName,
        })
    })
    .await
}

async fn apply(cached: &PatchRun, ctx: &Context) -> Result<Action> {
    let name = cached.metadata.name.clone().ok_or(Error::MissingName)?;
    // Plan from the run as it is now, not as the cache last saw it: a step requeued right after
    // a status write could otherwise plan twice from the same old status (duplicate Events, and
    // a node we just cordoned would look cordoned by someone else).
    let Some(fresh) = Api::<PatchRun>::all(ctx.client.clone())
        .get_opt(&name)
        .await?
    else {
        return Ok(Action::await_change());
    };
    let run = &fresh;
    let status = run.status.clone().unwrap_or_default();
    if status.phase.is_finished() {
        // Idempotent: a controller that died between ending a run and cleaning up finishes here.
        if !cleanup(run, ctx).await? {
            return Ok(Action::requeue(act::CLEANUP_HOLD_POLL));
        }
        return Ok(Action::await_change());
    }
    // A run created right after its policy may reach us before the policy reaches the cache:
    // ask the API before declaring the policy missing.
    let policy = match ctx
        .stores
        .policies
        .get(&ObjectRef::new(&run.spec.policy_ref))
    {
        Some(p) => p,
        None => match Api::<PatchPolicy>::all(ctx.client.clone())
            .get_opt(&run.spec.policy_ref)
            .await?
        {
            Some(p) => Arc::new(p),
            None => {
                let message = format!("PatchPolicy {} does not exist", run.spec.policy_ref);
                return fail_run(ctx, run, "PolicyNotFound", message).await;
            }
        },
    };
    adopt(run, &policy, ctx).await?;
    if status.targets.is_empty() && status.start_time.is_none() {
        // Holds that apply before a run starts: a canceled run ends without touching a node; a
        // suspended policy's run waits (the policy's change wakes it).
        if run.spec.cancel.is_some() {
            let note = step::cancel_note_of(run);
            let ended = status::canceled_before_start_status(
                run.status.as_ref(),
                run.metadata.generation,
                &note,
                k8s_openapi::jiff::Timestamp::now(),
            );
            harness::apply_status(ctx, KIND, run, &ended).await?;
            act::publish(
                ctx,
                run,
                kube::runtime::events::EventType::Normal,
                "RunFinished",
                note,
            )
            .await;
            act::audit(ctx, run, &ended).await;
            return Ok(Action::await_change());
        }
        if policy.spec.suspend {
            let waiting = status::suspended_status(
                run.status.as_ref(),
                &run.spec.policy_ref,
                run.metadata.generation,
                k8s_openapi::jiff::Timestamp::now(),
            );
            harness::apply_status_if_changed(ctx, KIND, run, run.status.as_ref(), &waiting).await?;
            return Ok(Action::await_change());
        }
        return start::start(run, &policy, ctx).await;
    }
    step::step(run, &name, &policy, status, ctx).await
}

/// Make the policy the owner of a run a user created (scheduled runs are created owned), so
/// deleting the policy deletes its runs (and their cleanup finalizer uncordons and unlabels).
/// A run already controlled by something else keeps that controller and gets a plain owner
/// reference.
async fn adopt(run: &PatchRun, policy: &PatchPolicy, ctx: &Context) -> Result<()> {
    let Some(uid) = policy.metadata.uid.as_deref() else {
        return Ok(());
    };
    let refs = run.metadata.owner_references.clone().unwrap_or_default();
    if refs.iter().any(|r| r.uid == uid) {
        return Ok(());
    }
    let Some(mut owner) = policy.controller_owner_ref(&()) else {
        return Ok(());
    };
    if refs.iter().any(|r| r.controller == Some(true)) {
        owner.controller = None;
    }
    let mut all = refs;
    all.push(owner);
    let patch = serde_json::json!({
        "metadata": {
            // Optimistic concurrency: a merge patch replaces the whole list, so it must be
            // based on the list we read.
            "resourceVersion": run.metadata.resource_version,
            "ownerReferences": all,
        }
    });
    Api::<PatchRun>::all(ctx.client.clone())
        .patch(
            &run.name_any(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}

/// Run the PatchRun controller. Agent progress (NodePatchReport changes) and DaemonSet changes
/// wake the run they belong to.
pub async fn run(ctx: Arc<Context>) {
    let (runs, trigger) = ctx
        .stores
        .controller_watch::<PatchRun>(&ctx.client, "PatchRun/patchrun");
    let policies = ctx
        .stores
        .watch_objects::<PatchPolicy>(&ctx.client, "PatchPolicy/patchrun");
    let reports = ctx
        .stores
        .watch_objects::<NodePatchReport>(&ctx.client, "NodePatchReport/patchrun");
    let daemonsets: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ctx.agent.namespace);
    let controller = Controller::for_stream(trigger, runs)
        // Not `owns`: that keys the (cluster-scoped) run by the DaemonSet's namespace, a second
        // key for the same run, which kube-runtime reconciles concurrently with the first.
        .watches(
            daemonsets,
            watcher::Config::default().labels("app.kubernetes.io/managed-by=nodepatch"),
            |ds: DaemonSet| {
                ds.labels()
                    .get(RUN_LABEL)
                    .map(|run| ObjectRef::<PatchRun>::new(run))
            },
        )
        // A policy's suspend (and its resume) must reach its runs at once.
        .watches_stream(policies, |policy: PatchPolicy| {
            policy
                .status
                .and_then(|s| s.active_run)
                .map(|r| ObjectRef::<PatchRun>::new(&r))
        })
        .watches_stream(reports, |report: NodePatchReport| {
            let run = report
                .status
                .and_then(|s| s.operation)
                .map(|o| o.run)
                .filter(|r| !r.is_empty());
            run.map(|r| ObjectRef::<PatchRun>::new(&r))
        });
    harness::drive(KIND, controller.run(reconcile, harness::error_policy, ctx)).await;
}
