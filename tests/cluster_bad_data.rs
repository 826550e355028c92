//! The controller under bad data, on the local control plane: an object stored without the
//! current validation (written through a served test version whose schema accepts anything,
//! then read back through v1alpha1) cannot stall the controller. It becomes ready, skips the
//! bad objects with a Warning Event and a gauge, keeps reconciling everything else, and becomes
//! ready again after a restart. `/healthz` fails while a watch cannot make progress.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use nodepatch::api::{NodePatchReport, PatchPolicy};
use serde_json::{Value, json};
use support::ControllerProcess;

/// A served, non-storage version whose schema accepts anything: what it writes is stored as
/// v1alpha1 without v1alpha1's validation (stored objects are never revalidated).
const LOOSE: &str = "v1test";

fn resource(kind: &str, plural: &str, version: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("nodepatch.dev", version, kind),
        plural,
    )
}

/// Add (`true`) or remove (`false`) the loose version of `crd`, retrying conflicts with other
/// tests applying the CRDs.
async fn loose_version(client: &Client, crd: &str, present: bool) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    support::eventually(Duration::from_secs(30), "loose CRD version", || {
        let api = api.clone();
        async move {
            let mut crd_obj = api.get(crd).await.ok()?;
            crd_obj.metadata.managed_fields = None;
            let versions = &mut crd_obj.spec.versions;
            versions.retain(|v| v.name != LOOSE);
            if present {
                let mut loose = versions.first()?.clone();
                loose.name = LOOSE.into();
                loose.storage = false;
                loose.served = true;
                loose.selectable_fields = None;
                loose.schema = Some(
                    serde_json::from_value(json!({"openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": true
                    }}))
                    .ok()?,
                );
                versions.push(loose);
            }
            api.replace(crd, &PostParams::default(), &crd_obj)
                .await
                .ok()?;
            Some(())
        }
    })
    .await;
}

/// Store `obj` (and then `status`, when given) through the loose version; retried because
/// another test re-applying the CRDs can remove the version in between.
async fn store_loosely(
    client: &Client,
    kind: &str,
    plural: &str,
    obj: Value,
    status: Option<Value>,
) {
    let crd = format!("{plural}.nodepatch.dev");
    let name = obj["metadata"]["name"].as_str().expect("name").to_string();
    support::eventually(Duration::from_secs(60), "object stored loosely", || {
        let obj = obj.clone();
        let status = status.clone();
        let crd = crd.clone();
        let name = name.clone();
        async move {
            loose_version(client, &crd, true).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let api: Api<DynamicObject> =
                Api::all_with(client.clone(), &resource(kind, plural, LOOSE));
            let obj: DynamicObject = serde_json::from_value(obj).ok()?;
            if api.get_opt(&name).await.ok()?.is_none() {
                api.create(&PostParams::default(), &obj).await.ok()?;
            }
            if let Some(status) = status {
                api.patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": status })),
                )
                .await
                .ok()?;
            }
            Some(())
        }
    })
    .await;
    loose_version(client, &crd, false).await;
}

fn metric(text: &str, line_prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

async fn wait_ready(controller: &ControllerProcess, what: &str) {
    support::eventually_true(Duration::from_secs(60), what, || async {
        controller.http_get("/readyz").is_some()
    })
    .await;
}

async fn has_ready_condition(client: &Client, kind: &str, plural: &str, name: &str) -> bool {
    let api: Api<DynamicObject> =
        Api::all_with(client.clone(), &resource(kind, plural, "v1alpha1"));
    let Ok(obj) = api.get(name).await else {
        return false;
    };
    obj.data["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready"))
}

#[tokio::test]
async fn undecodable_objects_are_skipped_and_everything_else_reconciles_across_a_restart() {
    let Some(client) = support::cluster().await else {
        return;
    };
    support::ensure_crds(&client).await;
    let bad_policy = support::unique_name("bad-data-policy");
    let bad_report = support::unique_name("bad-data-report");
    // An int-or-string integer beyond i32 and a count beyond u32: admission refuses both now.
    store_loosely(
        &client,
        "PatchPolicy",
        "patchpolicies",
        json!({
            "apiVersion": format!("nodepatch.dev/{LOOSE}"), "kind": "PatchPolicy",
            "metadata": {"name": bad_policy},
            "spec": {"nodeSelector": {"matchLabels": {"bad-data": "none"}},
                     "rollout": {"maxConcurrency": 5_000_000_000_i64}},
        }),
        None,
    )
    .await;
    store_loosely(
        &client,
        "NodePatchReport",
        "nodepatchreports",
        json!({
            "apiVersion": format!("nodepatch.dev/{LOOSE}"), "kind": "NodePatchReport",
            "metadata": {"name": bad_report}, "spec": {},
        }),
        Some(json!({"counts": {"failed": 4_294_967_296_i64}})),
    )
    .await;
    // Both are stored and served as v1alpha1, and a typed client cannot decode them.
    let policies: Api<PatchPolicy> = Api::all(client.clone());
    let reports: Api<NodePatchReport> = Api::all(client.clone());
    assert!(
        matches!(
            policies.get(&bad_policy).await,
            Err(kube::Error::SerdeError(_))
        ),
        "the stored policy does not decode"
    );
    assert!(
        matches!(
            reports.get(&bad_report).await,
            Err(kube::Error::SerdeError(_))
        ),
        "the stored report does not decode"
    );

    let mut controller = ControllerProcess::start("bad-data", &[]);
    wait_ready(
        &controller,
        "controller ready with undecodable objects stored",
    )
    .await;
    let metrics = support::eventually(Duration::from_secs(30), "undecodable gauges", || async {
        let text = controller.http_get("/metrics")?;
        let policy = metric(&text, "nodepatch_undecodable_objects{kind=\"PatchPolicy\"}")?;
        let report = metric(
            &text,
            "nodepatch_undecodable_objects{kind=\"NodePatchReport\"}",
        )?;
        (policy >= 1.0 && report >= 1.0).then_some(text)
    })
    .await;
    assert!(
        metrics.contains("nodepatch_undecodable_objects"),
        "{metrics}"
    );
    let events: Api<Event> = Api::all(client.clone());
    for name in [&bad_policy, &bad_report] {
        support::eventually(Duration::from_secs(30), "Undecodable Event", || async {
            let list = events
                .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
                .await
                .ok()?;
            list.items
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some("Undecodable")
                        && e.type_.as_deref() == Some("Warning")
                })
                .then_some(())
        })
        .await;
    }

    // Everything else still reconciles: a fresh window and a fresh policy get their status.
    let window = support::unique_name("bad-data-window");
    let policy = support::unique_name("bad-data-good");
    support::apply_json(
        &client,
        json!({"apiVersion": "nodepatch.dev/v1alpha1", "kind": "MaintenanceWindow",
               "metadata": {"name": window},
               "spec": {"schedule": "cron(0 2 ? * TUE *)", "duration": "2h", "cutoff": "30m"}}),
    )
    .await;
    support::apply_json(
        &client,
        json!({"apiVersion": "nodepatch.dev/v1alpha1", "kind": "PatchPolicy",
               "metadata": {"name": policy},
               "spec": {"nodeSelector": {"matchLabels": {"bad-data": "none"}}}}),
    )
    .await;
    support::eventually_true(Duration::from_secs(60), "fresh window reconciled", || {
        has_ready_condition(&client, "MaintenanceWindow", "maintenancewindows", &window)
    })
    .await;
    support::eventually_true(Duration::from_secs(60), "fresh policy reconciled", || {
        has_ready_condition(&client, "PatchPolicy", "patchpolicies", &policy)
    })
    .await;
    assert!(controller.http_get("/healthz").is_some(), "healthy");

    // A restarted controller syncs past the same objects and is ready again.
    controller.kill();
    let controller = ControllerProcess::start("bad-data-restarted", &[]);
    wait_ready(&controller, "restarted controller ready").await;
    assert!(
        controller.http_get("/healthz").is_some(),
        "healthy after restart"
    );
    drop(controller);

    let dp = DeleteParams::default();
    let _ = policies.delete(&bad_policy, &dp).await;
    let _ = policies.delete(&policy, &dp).await;
    let _ = reports.delete(&bad_report, &dp).await;
    let windows: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource("MaintenanceWindow", "maintenancewindows", "v1alpha1"),
    );
    let _ = windows.delete(&window, &dp).await;
}

/// `/readyz` waits for the caches to sync and `/healthz` fails once a watch has made no progress
/// for `--health-stall-seconds` (here: the controller may not list PatchPolicies), so the
/// kubelet would restart it; when the watch can list again, the controller becomes ready and
/// healthy without a restart.
#[tokio::test]
async fn healthz_fails_while_a_watch_makes_no_progress_and_recovers_with_it() {
    let Some(client) = support::cluster().await else {
        return;
    };
    support::ensure_crds(&client).await;
    let name = support::unique_name("bad-data-stall");
    let namespace = "default";
    let pp = PostParams::default();
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("sa");
    Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create(&pp, &sa)
        .await
        .expect("create sa");
    let crd_resources = [
        "nodepatchreports",
        "nodepatchreports/status",
        "maintenancewindows",
        "maintenancewindows/status",
        "patchruns",
        "patchruns/status",
        "patchbaselines",
        "patchbaselines/status",
    ];
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let role = |role: &str, rules: Value| -> ClusterRole {
        serde_json::from_value(json!({"metadata": {"name": role}, "rules": rules})).expect("role")
    };
    let binding = |role: &str| -> ClusterRoleBinding {
        serde_json::from_value(json!({
            "metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        }))
        .expect("binding")
    };
    let policies_role = format!("{name}-policies");
    roles
        .create(
            &pp,
            &role(
                &name,
                json!([
                    {"apiGroups": ["", "apps", "events.k8s.io", "policy"], "resources": ["*"], "verbs": ["*"]},
                    {"apiGroups": ["nodepatch.dev"], "resources": crd_resources, "verbs": ["*"]},
                ]),
            ),
        )
        .await
        .expect("role");
    roles
        .create(
            &pp,
            &role(
                &policies_role,
                json!([{"apiGroups": ["nodepatch.dev"],
                        "resources": ["patchpolicies", "patchpolicies/status"],
                        "verbs": ["*"]}]),
            ),
        )
        .await
        .expect("policies role");
    bindings
        .create(&pp, &binding(&name))
        .await
        .expect("binding");
    let request =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}}))
            .expect("token request");
    let token = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_token_request(&name, &pp, &request)
        .await
        .expect("TokenRequest")
        .status
        .and_then(|s| s.token)
        .expect("token");
    let dir = support::repo_root().join(".local/log").join(&name);
    std::fs::create_dir_all(&dir).expect("dir");
    let kubeconfig = support::podrunner::token_kubeconfig(&dir, &name, &token);

    let controller = ControllerProcess::start_with_kubeconfig(
        "bad-data-stall",
        &kubeconfig,
        &["--health-stall-seconds", "3"],
    );
    // Serving, but neither ready (the policy cache never syncs) nor, after the bound, live.
    support::eventually_true(Duration::from_secs(30), "metrics served", || async {
        controller.http_get("/metrics").is_some()
    })
    .await;
    support::eventually_true(Duration::from_secs(30), "healthz failing", || async {
        controller.http_get("/healthz").is_none()
    })
    .await;
    assert!(controller.http_get("/readyz").is_none(), "not ready");

    // Granting the list lets the watch progress: ready and healthy again, no restart.
    bindings
        .create(&pp, &binding(&policies_role))
        .await
        .expect("policies binding");
    wait_ready(&controller, "ready once policies list").await;
    support::eventually_true(Duration::from_secs(30), "healthz ok again", || async {
        controller.http_get("/healthz").is_some()
    })
    .await;
    drop(controller);

    let dp = DeleteParams::default();
    for r in [&name, &policies_role] {
        let _ = bindings.delete(r, &dp).await;
        let _ = roles.delete(r, &dp).await;
    }
    let _ = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .delete(&name, &dp)
        .await;
}
