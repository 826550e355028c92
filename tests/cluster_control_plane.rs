//! Proof that the local control plane is real: version, DaemonSet scheduling onto kwok nodes,
//! TokenRequest-issued ServiceAccount tokens and RBAC.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn apiserver_reports_the_pinned_version() {
    let Some(client) = support::cluster().await else {
        return;
    };
    let info = client.apiserver_version().await.expect("GET /version");
    assert_eq!(info.git_version, "v1.37.2");
    assert_eq!((info.major.as_str(), info.minor.as_str()), ("1", "37"));
}

#[tokio::test]
async fn daemonset_gets_one_running_pod_per_matching_node_and_loses_it_when_unlabelled() {
    let Some(client) = support::cluster().await else {
        return;
    };
    let ns = support::TestNamespace::create(&client, "cp-ds").await;
    let nodes_api: Api<Node> = Api::all(client.clone());
    let nodes = nodes_api
        .list(&ListParams::default())
        .await
        .expect("list nodes");
    assert!(
        nodes.items.len() >= 3,
        "the local cluster has at least 3 kwok nodes"
    );
    let label = format!("nodepatch.dev/proof-{}", ns.name);
    let chosen: Vec<String> = nodes
        .items
        .iter()
        .take(2)
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    for n in &chosen {
        set_node_label(&nodes_api, n, &label, Some("yes")).await;
    }

    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "proof"},
        "spec": {
            "selector": {"matchLabels": {"app": "proof"}},
            "template": {
                "metadata": {"labels": {"app": "proof"}},
                "spec": {
                    "nodeSelector": {label.clone(): "yes"},
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [{"name": "c", "image": "example.invalid/none:1"}]
                }
            }
        }
    }))
    .expect("daemonset literal");
    Api::<DaemonSet>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &ds)
        .await
        .expect("create daemonset");

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let running = support::eventually(Duration::from_secs(60), "2 running DaemonSet pods", || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels("app=proof"))
                .await
                .ok()?;
            let running: Vec<String> = list
                .items
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
                .collect();
            (running.len() == 2 && list.items.len() == 2).then_some(running)
        }
    })
    .await;
    let mut running = running;
    running.sort();
    let mut expected = chosen.clone();
    expected.sort();
    assert_eq!(running, expected, "one pod bound to each labelled node");

    // Removing the label from one node removes its pod.
    set_node_label(&nodes_api, &chosen[0], &label, None).await;
    let gone = chosen[0].clone();
    support::eventually(
        Duration::from_secs(60),
        "pod of the unlabelled node deleted",
        || {
            let pods = pods.clone();
            let gone = gone.clone();
            async move {
                let list = pods
                    .list(&ListParams::default().labels("app=proof"))
                    .await
                    .ok()?;
                let on_nodes: Vec<_> = list
                    .items
                    .iter()
                    .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
                    .collect();
                (list.items.len() == 1 && !on_nodes.contains(&gone)).then_some(())
            }
        },
    )
    .await;

    set_node_label(&nodes_api, &chosen[1], &label, None).await;
    ns.delete().await;
}

#[tokio::test]
async fn token_request_token_authenticates_and_rbac_denies_what_was_not_granted() {
    let Some(client) = support::cluster().await else {
        return;
    };
    let ns = support::TestNamespace::create(&client, "cp-rbac").await;
    let pp = PostParams::default();
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "reader"}})).expect("sa literal");
    let sa_api: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns.name);
    sa_api.create(&pp, &sa).await.expect("create sa");
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "cm-reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]
    }))
    .expect("role literal");
    Api::<Role>::namespaced(client.clone(), &ns.name)
        .create(&pp, &role)
        .await
        .expect("create role");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "cm-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns.name}]
    }))
    .expect("binding literal");
    Api::<RoleBinding>::namespaced(client.clone(), &ns.name)
        .create(&pp, &binding)
        .await
        .expect("create binding");

    let request: TokenRequest = serde_json::from_value(json!({
        "spec": {"audiences": [], "expirationSeconds": 600}
    }))
    .expect("token request literal");
    let token = sa_api
        .create_token_request("reader", &pp, &request)
        .await
        .expect("TokenRequest")
        .status
        .expect("token status")
        .token
        .expect("token issued");
    assert!(!token.is_empty());

    let mut config = support::config_from_kubeconfig(&support::kubeconfig_path())
        .await
        .expect("kubeconfig");
    config.auth_info.token = Some(token.into());
    let sa_client = Client::try_from(config).expect("client with sa token");

    // RBAC grants may take a moment to reach the authorizer's cache.
    let cms: Api<ConfigMap> = Api::namespaced(sa_client.clone(), &ns.name);
    support::eventually(Duration::from_secs(20), "configmap list allowed", || {
        let cms = cms.clone();
        async move { cms.list(&ListParams::default()).await.ok() }
    })
    .await;
    let secrets: Api<Secret> = Api::namespaced(sa_client, &ns.name);
    match secrets.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "forbidden, got {status:?}");
            assert!(
                status
                    .message
                    .contains(&format!("system:serviceaccount:{}:reader", ns.name)),
                "the denial names the service account: {}",
                status.message
            );
        }
        other => panic!("listing secrets must be forbidden, got {other:?}"),
    }
    ns.delete().await;
}

async fn set_node_label(api: &Api<Node>, node: &str, key: &str, value: Option<&str>) {
    let patch = json!({"metadata": {"labels": {key: value}}});
    api.patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("label node");
}
