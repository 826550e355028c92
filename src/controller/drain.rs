//! Draining a node before its reboot, the way `kubectl drain` does, one step per reconcile:
//! the PatchRun step lists the node's pods ([`pods_on`]) and sorts them ([`survey`], pure, by
//! [`disposition`]) while observing; the planner reads [`drain_progress`] and asks for the
//! evictions ([`crate::rollout::RolloutAction::Evict`]); the act phase evicts them through the
//! Eviction API ([`evict`]: PodDisruptionBudgets are respected, a 429 means "not now", retried on
//! the next step). Pods of DaemonSets and static (mirror) pods stay, as they
//! would be recreated on the node anyway.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, DeleteParams, EvictParams, ListParams};
use kube::{Client, ResourceExt};

use super::metrics::Metrics;
use crate::api::DrainSpec;
use crate::rollout::targeting::selector_matches;
use crate::rollout::{DrainProgress, PodRef};

/// Annotation the kubelet puts on mirror pods of static pods.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// Most pods named in a drain message.
const MAX_NAMED: usize = 5;

/// Drain settings resolved from a policy's `drain`.
#[derive(Clone, Debug, Default)]
pub struct DrainOptions {
    /// Grace period given to evicted pods (`drain.gracePeriod`), seconds.
    pub grace_period_seconds: Option<i64>,
    /// Evict pods with emptyDir volumes.
    pub delete_empty_dir_data: bool,
    /// Only pods matching this are evicted.
    pub pod_selector: Option<LabelSelector>,
    /// Evict pods no controller manages.
    pub force: bool,
}

impl DrainOptions {
    /// Resolve a policy's drain settings; errors name the field.
    pub fn from_spec(spec: &DrainSpec) -> Result<DrainOptions, String> {
        let grace_period_seconds = match &spec.grace_period {
            None => None,
            Some(text) => {
                let d = crate::schedule::duration::parse_duration(text)
                    .map_err(|e| format!("spec.drain.gracePeriod: {e}"))?;
                // The Eviction request carries a u32 of seconds: refuse what it cannot hold
                // rather than wrap or clamp (admission refuses it too).
                if d.as_secs() > i64::from(u32::MAX) {
                    return Err(format!(
                        "spec.drain.gracePeriod: '{text}' is more than 4294967295s"
                    ));
                }
                Some(d.as_secs())
            }
        };
        if let Some(selector) = &spec.pod_selector {
            selector_matches(selector, &BTreeMap::new())
                .map_err(|e| format!("spec.drain.podSelector: {e}"))?;
        }
        Ok(DrainOptions {
            grace_period_seconds,
            delete_empty_dir_data: spec.delete_empty_dir_data,
            pod_selector: spec.pod_selector.clone(),
            force: spec.force,
        })
    }
}

/// What the drain does with one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Left running (DaemonSet pod, mirror pod, finished pod, not selected); why.
    Ignore(&'static str),
    /// Already terminating: wait for it to go.
    Wait,
    /// Evict it.
    Evict,
    /// The drain cannot proceed with these settings; why.
    Block(String),
}

/// `namespace/name` of a pod, as drain messages name it.
fn pod_key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

/// Decide what the drain does with `pod` (pure: no API calls).
pub fn disposition(pod: &Pod, options: &DrainOptions) -> Disposition {
    let name = pod_key(pod);
    let owner = pod
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true));
    if owner.is_some_and(|o| o.kind == "DaemonSet") {
        return Disposition::Ignore("DaemonSet pod");
    }
    if pod.annotations().contains_key(MIRROR_ANNOTATION) {
        return Disposition::Ignore("static pod");
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded") | Some("Failed")) {
        return Disposition::Ignore("finished pod");
    }
    if let Some(selector) = &options.pod_selector
        && !selector_matches(selector, pod.labels()).unwrap_or(false)
    {
        return Disposition::Ignore("not selected by drain.podSelector");
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return Disposition::Wait;
    }
    if owner.is_none() && !options.force {
        return Disposition::Block(format!(
            "pod {name} is not managed by a controller and would not come back (set drain.force to evict it)"
        ));
    }
    let empty_dir = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|v| v.iter().any(|v| v.empty_dir.is_some()));
    if empty_dir && !options.delete_empty_dir_data {
        return Disposition::Block(format!(
            "pod {name} uses an emptyDir volume whose data would be lost (set drain.deleteEmptyDirData to evict it)"
        ));
    }
    Disposition::Evict
}

fn named(pods: &[String]) -> String {
    let mut text = pods
        .iter()
        .take(MAX_NAMED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if pods.len() > MAX_NAMED {
        text.push_str(&format!(" and {} more", pods.len() - MAX_NAMED));
    }
    text
}

/// What the drain sees on a node: pods to evict, pods it waits for, and why it cannot go on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodSurvey {
    /// Pods to evict now.
    pub evict: Vec<PodRef>,
    /// Pods already terminating (`namespace/name`).
    pub waiting: Vec<String>,
    /// Why the drain cannot proceed with these settings, one reason per pod.
    pub blocked: Vec<String>,
}

/// Sort the pods on a node by [`disposition`] (pure).
pub fn survey(pods: &[Pod], options: &DrainOptions) -> PodSurvey {
    let mut survey = PodSurvey::default();
    for pod in pods {
        match disposition(pod, options) {
            Disposition::Ignore(_) => {}
            Disposition::Wait => survey.waiting.push(pod_key(pod)),
            Disposition::Block(why) => survey.blocked.push(why),
            Disposition::Evict => survey.evict.push(PodRef {
                namespace: pod.namespace().unwrap_or_default(),
                name: pod.name_any(),
            }),
        }
    }
    survey
}

/// The drain's progress from a survey and the refusals of the previous step's evictions
/// (`namespace/name: message`, see [`evict`]); pure. Pods about to be evicted count as
/// terminating unless their last eviction was refused.
pub fn drain_progress(survey: &PodSurvey, refused_before: &[String]) -> DrainProgress {
    if !survey.blocked.is_empty() {
        return DrainProgress::Blocked(named(&survey.blocked));
    }
    if survey.evict.is_empty() && survey.waiting.is_empty() {
        return DrainProgress::Done;
    }
    let refusal = |pod: &PodRef| {
        let key = format!("{pod}: ");
        refused_before.iter().find(|r| r.starts_with(&key)).cloned()
    };
    let mut refused = vec![];
    let mut waiting = vec![];
    for pod in &survey.evict {
        match refusal(pod) {
            Some(r) => refused.push(r),
            None => waiting.push(pod.to_string()),
        }
    }
    waiting.extend(survey.waiting.iter().cloned());
    let mut why = vec![];
    if !refused.is_empty() {
        why.push(format!("eviction refused for {}", named(&refused)));
    }
    if !waiting.is_empty() {
        why.push(format!("waiting for {} to terminate", named(&waiting)));
    }
    DrainProgress::Pending(why.join("; "))
}

/// The pods on `node`.
pub async fn pods_on(client: &Client, node: &str) -> Result<Vec<Pod>, kube::Error> {
    let pods: Api<Pod> = Api::all(client.clone());
    let on_node = pods
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await?;
    Ok(on_node.items)
}

/// The Eviction API request for each pod: `drain.gracePeriod`, when set, overrides the pods'
/// terminationGracePeriodSeconds; unset, each pod keeps its own.
pub fn eviction_params(options: &DrainOptions) -> EvictParams {
    EvictParams {
        delete_options: Some(DeleteParams {
            grace_period_seconds: options
                .grace_period_seconds
                .map(|s| u32::try_from(s.max(0)).unwrap_or(u32::MAX)),
            ..DeleteParams::default()
        }),
        ..EvictParams::default()
    }
}

/// Evict `pods` through the Eviction API; returns the refusals (`namespace/name: message`,
/// e.g. a PodDisruptionBudget that does not allow it now: retried on the next step). A pod
/// already gone is no refusal. `eviction_client` must not retry 429 answers itself (see
/// `Context::eviction_client`). Each answer is counted in `evictions_total` (evicted, refused,
/// gone); a transport error ends the call uncounted and fails the step.
pub async fn evict(
    eviction_client: &Client,
    pods: &[PodRef],
    options: &DrainOptions,
    metrics: &Metrics,
) -> Result<Vec<String>, kube::Error> {
    let mut refused = vec![];
    for pod in pods {
        let ns: Api<Pod> = Api::namespaced(eviction_client.clone(), &pod.namespace);
        let params = eviction_params(options);
        match ns.evict(&pod.name, &params).await {
            Ok(_) => metrics.count_eviction("evicted"),
            // Already gone.
            Err(kube::Error::Api(s)) if s.code == 404 => metrics.count_eviction("gone"),
            // 429: a PodDisruptionBudget does not allow it now; retried next step.
            Err(kube::Error::Api(s)) => {
                metrics.count_eviction("refused");
                refused.push(format!("{pod}: {}", s.message));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(extra: serde_json::Value) -> Pod {
        let mut base = json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": true}]},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running"}
        });
        merge(&mut base, extra);
        serde_json::from_value(base).expect("pod")
    }

    fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    fn defaults() -> DrainOptions {
        DrainOptions::from_spec(&DrainSpec::default()).expect("defaults")
    }

    #[test]
    fn replicaset_pods_are_evicted_daemonset_and_static_pods_stay() {
        assert_eq!(
            disposition(&pod(json!({})), &defaults()),
            Disposition::Evict
        );
        let ds = pod(
            json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "d", "uid": "u", "controller": true}]}}),
        );
        assert_eq!(
            disposition(&ds, &defaults()),
            Disposition::Ignore("DaemonSet pod")
        );
        let mirror = pod(json!({"metadata": {"annotations": {MIRROR_ANNOTATION: "x"}}}));
        assert_eq!(
            disposition(&mirror, &defaults()),
            Disposition::Ignore("static pod")
        );
        let done = pod(json!({"status": {"phase": "Succeeded"}}));
        assert_eq!(
            disposition(&done, &defaults()),
            Disposition::Ignore("finished pod")
        );
        let leaving = pod(json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}));
        assert_eq!(disposition(&leaving, &defaults()), Disposition::Wait);
    }

    #[test]
    fn unmanaged_pods_block_unless_forced() {
        let bare = pod(json!({"metadata": {"ownerReferences": []}}));
        match disposition(&bare, &defaults()) {
            Disposition::Block(why) => {
                assert!(why.contains("ns/p") && why.contains("drain.force"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        let forced = DrainOptions {
            force: true,
            ..defaults()
        };
        assert_eq!(disposition(&bare, &forced), Disposition::Evict);
    }

    #[test]
    fn empty_dir_blocks_only_when_its_data_must_be_kept() {
        let with_empty_dir =
            pod(json!({"spec": {"volumes": [{"name": "scratch", "emptyDir": {}}]}}));
        assert_eq!(
            disposition(&with_empty_dir, &defaults()),
            Disposition::Evict,
            "deleteEmptyDirData defaults to true"
        );
        let keep = DrainOptions {
            delete_empty_dir_data: false,
            ..defaults()
        };
        match disposition(&with_empty_dir, &keep) {
            Disposition::Block(why) => assert!(why.contains("deleteEmptyDirData"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pod_selector_limits_what_is_evicted() {
        let spec: DrainSpec =
            serde_json::from_value(json!({"podSelector": {"matchLabels": {"app": "db"}}}))
                .expect("spec");
        let options = DrainOptions::from_spec(&spec).expect("options");
        assert_eq!(
            disposition(&pod(json!({})), &options),
            Disposition::Ignore("not selected by drain.podSelector")
        );
        let db = pod(json!({"metadata": {"labels": {"app": "db"}}}));
        assert_eq!(disposition(&db, &options), Disposition::Evict);
    }

    #[test]
    fn bad_settings_name_the_field() {
        let spec: DrainSpec = serde_json::from_value(json!({"gracePeriod": "soon"})).expect("spec");
        let err = DrainOptions::from_spec(&spec).expect_err("bad duration");
        assert!(err.starts_with("spec.drain.gracePeriod"), "{err}");
        let spec: DrainSpec = serde_json::from_value(json!({"gracePeriod": "30s"})).expect("spec");
        assert_eq!(
            DrainOptions::from_spec(&spec)
                .expect("ok")
                .grace_period_seconds,
            Some(30)
        );
    }

    #[test]
    fn a_grace_period_beyond_u32_seconds_is_refused_not_wrapped() {
        let spec: DrainSpec =
            serde_json::from_value(json!({"gracePeriod": "4294967296s"})).expect("spec");
        let err = DrainOptions::from_spec(&spec).expect_err("too large");
        assert_eq!(
            err,
            "spec.drain.gracePeriod: '4294967296s' is more than 4294967295s"
        );
        let spec: DrainSpec =
            serde_json::from_value(json!({"gracePeriod": "4294967295s"})).expect("spec");
        let options = DrainOptions::from_spec(&spec).expect("largest value");
        assert_eq!(options.grace_period_seconds, Some(i64::from(u32::MAX)));
        let seconds = eviction_params(&options)
            .delete_options
            .and_then(|d| d.grace_period_seconds);
        assert_eq!(seconds, Some(u32::MAX));
    }

    #[test]
    fn evictions_carry_the_grace_period() {
        let grace = |spec: serde_json::Value| {
            let spec: DrainSpec = serde_json::from_value(spec).expect("spec");
            let options = DrainOptions::from_spec(&spec).expect("options");
            eviction_params(&options)
                .delete_options
                .and_then(|d| d.grace_period_seconds)
        };
        assert_eq!(grace(json!({"gracePeriod": "45s"})), Some(45));
        assert_eq!(grace(json!({"gracePeriod": "2m"})), Some(120));
        assert_eq!(grace(json!({})), None, "unset: each pod's own period");
    }

    #[test]
    fn progress_is_done_only_when_nothing_is_left_and_names_refusals() {
        let web = PodRef {
            namespace: "ns".into(),
            name: "web".into(),
        };
        let survey_of = |evict: Vec<PodRef>, waiting: Vec<&str>| PodSurvey {
            evict,
            waiting: waiting.into_iter().map(str::to_string).collect(),
            blocked: vec![],
        };
        assert_eq!(
            drain_progress(&survey_of(vec![], vec![]), &[]),
            DrainProgress::Done
        );
        assert_eq!(
            drain_progress(
                &survey_of(vec![web.clone()], vec!["ns/db"]),
                &["ns/web: budget".into(), "ns/gone: old".into()]
            ),
            DrainProgress::Pending(
                "eviction refused for ns/web: budget; waiting for ns/db to terminate".into()
            )
        );
        assert_eq!(
            drain_progress(&survey_of(vec![web], vec![]), &[]),
            DrainProgress::Pending("waiting for ns/web to terminate".into())
        );
        let blocked = PodSurvey {
            blocked: vec!["pod ns/bare is not managed".into()],
            ..PodSurvey::default()
        };
        assert_eq!(
            drain_progress(&blocked, &[]),
            DrainProgress::Blocked("pod ns/bare is not managed".into())
        );
    }

    #[test]
    fn survey_sorts_pods_by_disposition() {
        let bare = pod(json!({"metadata": {"name": "bare", "ownerReferences": []}}));
        let leaving =
            pod(json!({"metadata": {"name": "old", "deletionTimestamp": "2026-01-01T00:00:00Z"}}));
        let s = survey(&[pod(json!({})), leaving, bare], &defaults());
        assert_eq!(
            s.evict,
            [PodRef {
                namespace: "ns".into(),
                name: "p".into()
            }]
        );
        assert_eq!(s.waiting, ["ns/old"]);
        assert_eq!(s.blocked.len(), 1);
    }

    #[test]
    fn long_lists_are_cut() {
        let pods: Vec<String> = (0..8).map(|i| format!("ns/p{i}")).collect();
        assert_eq!(named(&pods), "ns/p0, ns/p1, ns/p2, ns/p3, ns/p4 and 3 more");
    }
}
