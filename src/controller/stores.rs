//! Shared caches: Node **metadata** (never full Nodes: ~8 MiB per 1,000 nodes is the budget),
//! NodePatchReports, PatchPolicies and PatchRuns, each filled by one watch.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};

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
}

impl Stores {
    /// Start the watches; returns the stores and a future driving them (run it alongside the
    /// controllers). Lists are paged (500 per page) and never repeated after the initial sync.
    pub fn start(
        client: &Client,
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
        let node_stream = reflector::reflector(
            nodes_w,
            watcher(Api::<PartialObjectMeta<Node>>::all(client.clone()), cfg()),
        )
        .default_backoff()
        .touched_objects();
        let report_stream = reflector::reflector(
            reports_w,
            watcher(Api::<NodePatchReport>::all(client.clone()), cfg()),
        )
        .default_backoff()
        .touched_objects();
        let policy_stream = reflector::reflector(
            policies_w,
            watcher(Api::<PatchPolicy>::all(client.clone()), cfg()),
        )
        .default_backoff()
        .touched_objects();
        let run_stream =
            reflector::reflector(runs_w, watcher(Api::<PatchRun>::all(client.clone()), cfg()))
                .default_backoff()
                .touched_objects();
        let baseline_stream = reflector::reflector(
            baselines_w,
            watcher(Api::<PatchBaseline>::all(client.clone()), cfg()),
        )
        .default_backoff()
        .touched_objects();
        let drive = async move {
            // A watch that yields an undecodable object logs it and goes on (the stream's
            // error items are not fatal); it ends only when the process does.
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
}

async fn log_watch_error(kind: &'static str, error: Option<watcher::Error>) {
    if let Some(e) = error {
        tracing::warn!(kind, error = %e, "watch error");
    }
}
