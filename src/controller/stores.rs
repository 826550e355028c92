//! Shared caches: Node **metadata** (never full Nodes: ~8 MiB per 1,000 nodes is the budget),
//! NodePatchReports, PatchPolicies and PatchRuns, each filled by one watch. The nodepatch kinds
//! are watched tolerantly ([`super::watch`]): one object that does not decode is skipped, not a
//! cache that never syncs. Every watch reports its progress to [`Health`].

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Instant;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use super::health::Health;
use super::watch::{self, Undecodable};
use crate::api::{NodePatchReport, PatchBaseline, PatchPolicy, PatchRun};

/// Read-only views of the caches.
#[derive(Clone)]
pub struct Stores {
    /// Node metadata (labels, annotations, uid).
    pub nodes: Store<PartialObjectMeta<Node>>,
    /// Every NodePatchReport.
    pub reports: Store<NodePatchReport>,
    /// Every PatchPolicy.
    pub policies: Store<PatchPolicy>,
    /// Every PatchRun.
    pub runs: Store<PatchRun>,
    /// Every PatchBaseline.
    pub baselines: Store<PatchBaseline>,
    /// Progress of every watch and reconcile (`/healthz`).
    pub health: Arc<Health>,
    /// Objects skipped because they do not decode.
    pub undecodable: Arc<Undecodable>,
}

impl Stores {
    /// Start the watches; returns the stores and a future driving them (run it alongside the
    /// controllers). Lists are paged (500 per page) and never repeated after the initial sync.
    pub fn start(
        client: &Client,
        health: Arc<Health>,
        undecodable: Arc<Undecodable>,
    ) -> (
        Stores,
        impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let cfg = || watcher::Config::default().page_size(500).any_semantic();
        let (nodes, nodes_w) = reflector::store();
        let (reports, reports_w) = reflector::store();
        let (policies, policies_w) = reflector::store();
        let (runs, runs_w) = reflector::store();
        let (baselines, baselines_w) = reflector::store();
        let node_health = health.clone();
        node_health.watch_started("Node/stores", Instant::now());
        let node_stream = reflector::reflector(
            nodes_w,
            watcher(Api::<PartialObjectMeta<Node>>::all(client.clone()), cfg()).inspect(
                move |item| match item {
                    // `Init` comes before each list attempt, also one that then fails.
                    Ok(watcher::Event::Init) => {}
                    Ok(_) => node_health.watch_progressed("Node/stores"),
                    Err(_) => node_health.watch_failed("Node/stores", Instant::now()),
                },
            ),
        )
        .default_backoff()
        .touched_objects();
        macro_rules! tolerant {
            ($kind:ty, $name:literal) => {
                watch::tolerant::<$kind>(client, cfg(), undecodable.clone(), health.clone(), $name)
            };
        }
        let report_stream = reflector::reflector(
            reports_w,
            tolerant!(NodePatchReport, "NodePatchReport/stores"),
        )
        .default_backoff()
        .touched_objects();
        let policy_stream =
            reflector::reflector(policies_w, tolerant!(PatchPolicy, "PatchPolicy/stores"))
                .default_backoff()
                .touched_objects();
        let run_stream = reflector::reflector(runs_w, tolerant!(PatchRun, "PatchRun/stores"))
            .default_backoff()
            .touched_objects();
        let baseline_stream = reflector::reflector(
            baselines_w,
            tolerant!(PatchBaseline, "PatchBaseline/stores"),
        )
        .default_backoff()
        .touched_objects();
        let drive = async move {
            // A watch error is logged and retried with backoff (the stream's error items are
            // not fatal); an undecodable object never reaches here. It ends only with the
            // process.
            tokio::join!(
                node_stream.for_each(|r| log_watch_error("Node", r.err())),
                report_stream.for_each(|r| log_watch_error("NodePatchReport", r.err())),
                policy_stream.for_each(|r| log_watch_error("PatchPolicy", r.err())),
                run_stream.for_each(|r| log_watch_error("PatchRun", r.err())),
                baseline_stream.for_each(|r| log_watch_error("PatchBaseline", r.err())),
            );
        };
        (
            Stores {
                nodes,
                reports,
                policies,
                runs,
                baselines,
                health,
                undecodable,
            },
            drive,
        )
    }

    /// Wait until every cache has finished its initial list.
    pub async fn ready(&self) {
        let _ = tokio::join!(
            self.nodes.wait_until_ready(),
            self.reports.wait_until_ready(),
            self.policies.wait_until_ready(),
            self.runs.wait_until_ready(),
            self.baselines.wait_until_ready(),
        );
    }

    /// A cache of every `K` for a controller's own trigger, watched tolerantly as `name`: the
    /// stream to hand to `Controller::for_stream` (or, for a watched kind, its objects to
    /// `watches_stream`) and the store it fills.
    pub fn controller_watch<K>(
        &self,
        client: &Client,
        name: &'static str,
    ) -> (
        Store<K>,
        impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    )
    where
        K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug + Send + Sync + 'static,
    {
        let (store, writer) = reflector::store();
        let stream = reflector::reflector(writer, self.watch(client, name)).applied_objects();
        (store, stream)
    }

    /// The objects of a tolerant watch of every `K` as `name`, for `Controller::watches_stream`.
    pub fn watch_objects<K>(
        &self,
        client: &Client,
        name: &'static str,
    ) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
    where
        K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug + Send + 'static,
    {
        self.watch(client, name).touched_objects()
    }

    fn watch<K>(
        &self,
        client: &Client,
        name: &'static str,
    ) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
    where
        K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug + Send + 'static,
    {
        watch::tolerant(
            client,
            watcher::Config::default().any_semantic(),
            self.undecodable.clone(),
            self.health.clone(),
            name,
        )
    }
}

async fn log_watch_error(kind: &'static str, error: Option<watcher::Error>) {
    if let Some(e) = error {
        tracing::warn!(kind, error = %e, "watch error");
    }
}
