//! Watches that survive one undecodable object. A typed kube watcher fails its whole list (and
//! so never syncs) when one stored object does not decode, e.g. one written before a schema
//! tightening or through a path that bypasses validation. These watches list and watch
//! `DynamicObject`s (only metadata must parse) and decode each item on its own: an item that
//! does not decode is logged, counted in `nodepatch_undecodable_objects{kind}`, reported once
//! per resourceVersion as a Warning Event regarding the object, and skipped; everything else
//! flows on. Every item also reports the watch's progress to [`Health`].
//!
//! A skipped object is absent from the caches if it never decoded; if an update made it
//! undecodable, the last version that decoded stays cached until it is fixed or deleted.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, DynamicObject};
use kube::core::ApiResource;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::health::Health;
use super::metrics::{KindLabels, Metrics};

/// Longest decode error copied into an Event note.
const MAX_NOTE_ERROR: usize = 512;

/// The objects currently skipped because they do not decode, shared by every watch.
pub struct Undecodable {
    metrics: Arc<Metrics>,
    recorder: Recorder,
    /// uid → (kind, resourceVersion last reported).
    skipped: Mutex<HashMap<String, (&'static str, String)>>,
}

impl Undecodable {
    /// Count in `metrics`, publish Events through `recorder`.
    pub fn new(metrics: Arc<Metrics>, recorder: Recorder) -> Undecodable {
        Undecodable {
            metrics,
            recorder,
            skipped: Mutex::default(),
        }
    }

    /// Record that `obj` of `kind` does not decode; logs and publishes an Event only for a
    /// resourceVersion not reported yet (several watches see the same object).
    fn skipped(&self, kind: &'static str, obj: &DynamicObject, error: &serde_json::Error) {
        let key = key(obj);
        let version = obj.resource_version().unwrap_or_default();
        let new = {
            let mut skipped = lock(&self.skipped);
            let new = skipped.get(&key).is_none_or(|(_, v)| *v != version);
            skipped.insert(key, (kind, version));
            self.update_gauge(kind, &skipped);
            new
        };
        if !new {
            return;
        }
        let name = obj.name_any();
        tracing::warn!(kind, %name, %error, "skipping an object that does not decode");
        let mut error = error.to_string();
        if let Some((cut, _)) = error.char_indices().nth(MAX_NOTE_ERROR) {
            error.truncate(cut);
            error.push('…');
        }
        let event = Event {
            type_: EventType::Warning,
            reason: "Undecodable".into(),
            note: Some(format!(
                "the controller cannot read this {kind} and skips it until it is fixed or deleted: {error}"
            )),
            action: "Decode".into(),
            secondary: None,
        };
        let reference = reference(kind, obj);
        let recorder = self.recorder.clone();
        tokio::spawn(async move {
            if let Err(e) = recorder.publish(&event, &reference).await {
                tracing::warn!(kind, %name, error = %e, "publishing event failed");
            }
        });
    }

    /// `key` decodes (again) or is gone.
    fn cleared(&self, kind: &'static str, key: &str) {
        let mut skipped = lock(&self.skipped);
        if skipped.remove(key).is_some() {
            self.update_gauge(kind, &skipped);
        }
    }

    /// A full list of `kind` saw exactly `listed`: forget skipped objects deleted meanwhile.
    fn relisted(&self, kind: &'static str, listed: &HashSet<String>) {
        let mut skipped = lock(&self.skipped);
        skipped.retain(|key, (k, _)| *k != kind || listed.contains(key));
        self.update_gauge(kind, &skipped);
    }

    fn update_gauge(&self, kind: &'static str, skipped: &HashMap<String, (&'static str, String)>) {
        let count = skipped.values().filter(|(k, _)| *k == kind).count();
        self.metrics
            .undecodable_objects
            .get_or_create(&KindLabels { kind })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    #[cfg(test)]
    fn count(&self, kind: &'static str) -> usize {
        lock(&self.skipped)
            .values()
            .filter(|(k, _)| *k == kind)
            .count()
    }
}

/// A watch of every `K` (cluster-wide) that decodes each item on its own and skips the ones
/// that do not decode; reports progress to `health` as `name` (unique per watch).
pub fn tolerant<K>(
    client: &Client,
    config: watcher::Config,
    undecodable: Arc<Undecodable>,
    health: Arc<Health>,
    name: &'static str,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug + Send + 'static,
{
    let resource = ApiResource::erase::<K>(&());
    let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
    health.watch_started(name, Instant::now());
    let mut decoder = Decoder::<K>::new(undecodable);
    watcher(api, config).filter_map(move |item| {
        let out = match item {
            Ok(event) => {
                // `Init` comes before each list attempt, also one that then fails.
                if !matches!(event, watcher::Event::Init) {
                    health.watch_progressed(name);
                }
                decoder.event(event).map(Ok)
            }
            Err(e) => {
                health.watch_failed(name, Instant::now());
                Some(Err(e))
            }
        };
        std::future::ready(out)
    })
}

/// Turns `DynamicObject` events into `K` events, skipping what does not decode.
struct Decoder<K> {
    kind: &'static str,
    undecodable: Arc<Undecodable>,
    /// Keys seen since the current list began (`None` outside a list).
    listing: Option<HashSet<String>>,
    _kind: std::marker::PhantomData<fn() -> K>,
}

impl<K> Decoder<K>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    fn new(undecodable: Arc<Undecodable>) -> Decoder<K> {
        Decoder {
            kind: kind_of::<K>(),
            undecodable,
            listing: None,
            _kind: std::marker::PhantomData,
        }
    }

    fn event(&mut self, event: watcher::Event<DynamicObject>) -> Option<watcher::Event<K>> {
        match event {
            watcher::Event::Init => {
                self.listing = Some(HashSet::new());
                Some(watcher::Event::Init)
            }
            watcher::Event::InitApply(obj) => {
                if let Some(listing) = &mut self.listing {
                    listing.insert(key(&obj));
                }
                self.decode(obj).map(watcher::Event::InitApply)
            }
            watcher::Event::InitDone => {
                if let Some(listed) = self.listing.take() {
                    self.undecodable.relisted(self.kind, &listed);
                }
                Some(watcher::Event::InitDone)
            }
            watcher::Event::Apply(obj) => self.decode(obj).map(watcher::Event::Apply),
            watcher::Event::Delete(obj) => {
                let key = key(&obj);
                self.undecodable.cleared(self.kind, &key);
                // A deleted object that never decoded was never cached: nothing to remove.
                decode::<K>(&obj).ok().map(watcher::Event::Delete)
            }
        }
    }

    fn decode(&self, obj: DynamicObject) -> Option<K> {
        match decode::<K>(&obj) {
            Ok(k) => {
                self.undecodable.cleared(self.kind, &key(&obj));
                Some(k)
            }
            Err(e) => {
                self.undecodable.skipped(self.kind, &obj, &e);
                None
            }
        }
    }
}

fn decode<K: DeserializeOwned>(obj: &DynamicObject) -> Result<K, serde_json::Error> {
    serde_json::to_value(obj).and_then(serde_json::from_value)
}

fn kind_of<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "MaintenanceWindow" => "MaintenanceWindow",
        "NodePatchReport" => "NodePatchReport",
        "PatchBaseline" => "PatchBaseline",
        "PatchPolicy" => "PatchPolicy",
        "PatchRun" => "PatchRun",
        _ => "other",
    }
}

fn key(obj: &DynamicObject) -> String {
    obj.uid()
        .unwrap_or_else(|| format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()))
}

fn reference(kind: &str, obj: &DynamicObject) -> ObjectReference {
    ObjectReference {
        api_version: obj.types.as_ref().map(|t| t.api_version.clone()),
        kind: Some(kind.to_string()),
        name: obj.metadata.name.clone(),
        namespace: obj.metadata.namespace.clone(),
        uid: obj.metadata.uid.clone(),
        resource_version: obj.metadata.resource_version.clone(),
        field_path: None,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PatchPolicy;
    use kube::runtime::events::Reporter;
    use serde_json::json;

    fn policy(uid: &str, version: &str, max_concurrency: serde_json::Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "nodepatch.dev/v1alpha1",
            "kind": "PatchPolicy",
            "metadata": {"name": format!("p-{uid}"), "uid": uid, "resourceVersion": version},
            "spec": {"nodeSelector": {}, "rollout": {"maxConcurrency": max_concurrency}},
        }))
        .expect("object")
    }

    fn decoder() -> (Decoder<PatchPolicy>, Arc<Metrics>, Arc<Undecodable>) {
        // A client for a server nobody listens on: Events fail to publish, which is logged.
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = Client::try_from(config).expect("client");
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: "test".into(),
                instance: None,
            },
        );
        let metrics = Arc::new(Metrics::default());
        let undecodable = Arc::new(Undecodable::new(metrics.clone(), recorder));
        (Decoder::new(undecodable.clone()), metrics, undecodable)
    }

    fn names(events: &[watcher::Event<PatchPolicy>]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                watcher::Event::Init => "init".into(),
                watcher::Event::InitDone => "done".into(),
                watcher::Event::InitApply(p) => format!("list {}", p.name_any()),
                watcher::Event::Apply(p) => format!("apply {}", p.name_any()),
                watcher::Event::Delete(p) => format!("delete {}", p.name_any()),
            })
            .collect()
    }

    #[tokio::test]
    async fn one_undecodable_object_is_skipped_counted_and_the_rest_flows() {
        let (mut decoder, metrics, undecodable) = decoder();
        let too_big = json!(5_000_000_000_i64);
        let events: Vec<_> = [
            watcher::Event::Init,
            watcher::Event::InitApply(policy("a", "1", json!(1))),
            watcher::Event::InitApply(policy("bad", "1", too_big.clone())),
            watcher::Event::InitApply(policy("c", "1", json!("10%"))),
            watcher::Event::InitDone,
        ]
        .into_iter()
        .filter_map(|e| decoder.event(e))
        .collect();
        assert_eq!(names(&events), ["init", "list p-a", "list p-c", "done"]);
        assert_eq!(undecodable.count("PatchPolicy"), 1);
        assert!(
            metrics
                .encode()
                .contains("nodepatch_undecodable_objects{kind=\"PatchPolicy\"} 1"),
            "{}",
            metrics.encode()
        );
        // Fixed: it decodes again and is no longer counted.
        let fixed = decoder.event(watcher::Event::Apply(policy("bad", "2", json!(2))));
        assert_eq!(
            names(&fixed.into_iter().collect::<Vec<_>>()),
            ["apply p-bad"]
        );
        assert_eq!(undecodable.count("PatchPolicy"), 0);
        // Broken again, then deleted: the delete of an undecodable object is dropped, and
        // the count goes back to zero.
        assert!(
            decoder
                .event(watcher::Event::Apply(policy("bad", "3", too_big.clone())))
                .is_none()
        );
        assert_eq!(undecodable.count("PatchPolicy"), 1);
        assert!(
            decoder
                .event(watcher::Event::Delete(policy("bad", "4", too_big.clone())))
                .is_none()
        );
        assert_eq!(undecodable.count("PatchPolicy"), 0);
    }

    #[tokio::test]
    async fn a_relist_forgets_undecodable_objects_deleted_while_not_watching() {
        let (mut decoder, _metrics, undecodable) = decoder();
        let too_big = json!(5_000_000_000_i64);
        for e in [
            watcher::Event::Init,
            watcher::Event::InitApply(policy("bad", "1", too_big)),
            watcher::Event::InitDone,
        ] {
            decoder.event(e);
        }
        assert_eq!(undecodable.count("PatchPolicy"), 1);
        for e in [
            watcher::Event::Init,
            watcher::Event::InitApply(policy("a", "1", json!(1))),
            watcher::Event::InitDone,
        ] {
            decoder.event(e);
        }
        assert_eq!(undecodable.count("PatchPolicy"), 0);
    }
}
