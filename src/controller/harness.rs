//! What every reconciler shares, written once: a span and metrics around each reconcile
//! ([`instrumented`]), status written by server-side apply only when it changed
//! ([`apply_status_if_changed`]), one [`error_policy`] that backs off by error class
//! ([`backoff`], pure) with a per-object attempt counter ([`Backoffs`]), and the loop driving a
//! `Controller` ([`drive`]).

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::Instrument;

pub use super::backoffs::Backoffs;
use super::context::Context;
use super::error::ErrorClass;
use super::error::{Error, Result};
use super::metrics::KindLabels;
use crate::api::CONTROLLER_MANAGER;
use crate::api::conditions::{self, WithConditions};

/// Wait after a conflict: the next attempt reads fresh data.
pub const CONFLICT_DELAY: Duration = Duration::from_secs(1);
/// First wait after a transient failure; doubles per attempt.
pub const TRANSIENT_BASE: Duration = Duration::from_secs(1);
/// Longest wait: transient failures stop growing here, permanent ones wait this long.
pub const MAX_DELAY: Duration = Duration::from_secs(300);

/// How long to wait before retrying after the `attempt`-th consecutive failure (1-based) of
/// this class. Pure.
pub fn backoff(class: ErrorClass, attempt: u32) -> Duration {
    match class {
        ErrorClass::Conflict => CONFLICT_DELAY,
        ErrorClass::Transient => {
            let doublings = attempt.saturating_sub(1).min(16);
            TRANSIENT_BASE.saturating_mul(1 << doublings).min(MAX_DELAY)
        }
        ErrorClass::Permanent => MAX_DELAY,
    }
}

/// Run one reconcile of `obj` inside a `reconcile` span, recording its duration and outcome in
/// the metrics and resetting the object's backoff on success.
pub async fn instrumented<K, F>(
    kind: &'static str,
    obj: &K,
    ctx: &Context,
    reconcile: F,
) -> Result<Action>
where
    K: Resource,
    F: Future<Output = Result<Action>>,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let span = tracing::info_span!("reconcile", kind, name = %name);
    let started = Instant::now();
    // In flight until it returns: a reconcile hung past the bound fails /healthz.
    let in_flight = ctx.stores.health.reconcile_started(kind, started);
    let result = reconcile.instrument(span).await;
    drop(in_flight);
    ctx.metrics.observe(
        kind,
        started.elapsed(),
        result.as_ref().err().map(Error::category),
    );
    if result.is_ok() {
        ctx.backoffs.succeeded(kind, &name);
    }
    result
}

/// Write `status` to `obj`'s status subresource by server-side apply (field manager
/// `nodepatch-controller`, forced: the controller owns status) and count the write.
pub async fn apply_status<K, S>(
    ctx: &Context,
    kind: &'static str,
    obj: &K,
    status: &S,
) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    let name = obj.meta().name.clone().ok_or(Error::MissingName)?;
    let api: Api<K> = Api::all(ctx.client.clone());
    let patch = json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": status});
    api.patch_status(
        &name,
        &PatchParams::apply(CONTROLLER_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    ctx.metrics
        .status_writes
        .get_or_create(&KindLabels { kind })
        .inc();
    Ok(())
}

/// [`apply_status`] when `changed`; returns whether it wrote.
pub async fn apply_status_if<K, S>(
    ctx: &Context,
    kind: &'static str,
    obj: &K,
    status: &S,
    changed: bool,
) -> Result<bool>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    if changed {
        apply_status(ctx, kind, obj, status).await?;
    }
    Ok(changed)
}

/// [`apply_status`] unless `status` equals `old` (conditions compared without their
/// timestamps); returns whether it wrote.
pub async fn apply_status_if_changed<K, S>(
    ctx: &Context,
    kind: &'static str,
    obj: &K,
    old: Option<&S>,
    status: &S,
) -> Result<bool>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize + WithConditions,
{
    let changed = old.is_none_or(|old| !conditions::same_status(old, status));
    apply_status_if(ctx, kind, obj, status, changed).await
}

/// The one error policy: log, then retry by class — a conflict after ~1 s, a transient failure
/// exponentially (1 s doubling, at most 5 min; the per-object count resets on success), a
/// permanent one after 5 min with a Warning Event on the object saying why.
pub fn error_policy<K>(obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()> + Send + Sync + 'static,
{
    let kind = kind_label::<K>();
    let name = obj.name_any();
    let class = error.class();
    let attempt = ctx.backoffs.failed(kind, &name);
    let delay = backoff(class, attempt);
    tracing::warn!(kind, %name, category = error.category(), attempt, ?delay, %error, "reconcile failed");
    if class == ErrorClass::Permanent {
        let reference = obj.object_ref(&());
        let note = format!(
            "{}: {error}; retrying in {} minutes",
            error.category(),
            delay.as_secs() / 60
        );
        tokio::spawn(async move {
            let ev = Event {
                type_: EventType::Warning,
                reason: "ReconcileFailed".into(),
                note: Some(note),
                action: "Reconcile".into(),
                secondary: None,
            };
            if let Err(e) = ctx.recorder.publish(&ev, &reference).await {
                tracing::warn!(kind, %name, error = %e, "publishing event failed");
            }
        });
    }
    Action::requeue(delay)
}

/// The bounded kind label of `K` (one of the four kinds the controller reconciles).
fn kind_label<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "PatchRun" => "PatchRun",
        "PatchPolicy" => "PatchPolicy",
        "PatchBaseline" => "PatchBaseline",
        "MaintenanceWindow" => "MaintenanceWindow",
        _ => "other",
    }
}

/// Drive a controller's result stream to its end, logging what it reports at debug level.
pub async fn drive<T, E>(kind: &'static str, results: impl Stream<Item = Result<T, E>>)
where
    E: std::fmt::Display,
{
    results
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(kind, error = %e, "controller");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_retry_at_once_transient_failures_double_up_to_five_minutes() {
        assert_eq!(backoff(ErrorClass::Conflict, 7), Duration::from_secs(1));
        let waits: Vec<u64> = (1..=11)
            .map(|n| backoff(ErrorClass::Transient, n).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(ErrorClass::Transient, u32::MAX), MAX_DELAY);
    }

    #[test]
    fn permanent_failures_wait_five_minutes() {
        assert_eq!(backoff(ErrorClass::Permanent, 1), Duration::from_secs(300));
    }
}
