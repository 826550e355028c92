//! The agent's write scope, enforced by the chart's ValidatingAdmissionPolicy: a token bound to
//! an agent pod on node A carries A in its node claim and may write NodePatchReport A only.

mod support;

use std::time::Duration;

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use nodepatch::api::NodePatchReport;
use serde_json::json;

const AGENT_SA: &str = "nodepatch-agent";

#[tokio::test]
async fn agent_token_may_write_only_its_own_nodes_report() {
    let Some(client) = support::cluster().await else {
        return;
    };
    support::ensure_crds(&client).await;
    // The namespace the generated RBAC and admission policy expect the agent in.
    let agent_ns = support::config_agent_namespace();
    let agent_ns = agent_ns.as_str();
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": agent_ns}})).expect("ns");
    let _ = Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await;
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": AGENT_SA}})).expect("sa");
    let _ = Api::<ServiceAccount>::namespaced(client.clone(), agent_ns)
        .create(&PostParams::default(), &sa)
        .await;
    for (kind, name) in [
        ("ClusterRole", "nodepatch-agent"),
        ("ClusterRoleBinding", "nodepatch-agent"),
        ("ValidatingAdmissionPolicy", "nodepatch-agent-own-report"),
        (
            "ValidatingAdmissionPolicyBinding",
            "nodepatch-agent-own-report",
        ),
    ] {
        support::apply_json(&client, support::config_rbac_object(kind, name)).await;
    }

    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default().labels("type=kwok"))
        .await
        .expect("nodes");
    let names: Vec<String> = nodes.items.iter().map(|n| n.name_any()).take(2).collect();
    let (node_a, node_b) = (&names[0], &names[1]);

    // A pod of the agent ServiceAccount bound to node A (as the run DaemonSet would place it).
    let pod_name = support::unique_name("agent-scope");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": pod_name, "namespace": agent_ns},
        "spec": {
            "nodeName": node_a,
            "serviceAccountName": AGENT_SA,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "agent", "image": "nodepatch:test"}]
        }
    }))
    .expect("pod");
    let pods: Api<Pod> = Api::namespaced(client.clone(), agent_ns);
    let pod = pods
        .create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let token = support::podrunner::pod_bound_token(&client, agent_ns, AGENT_SA, &pod)
        .await
        .expect("token");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = support::podrunner::token_kubeconfig(dir.path(), "agent", &token);
    let agent = support::client_from_kubeconfig(&kubeconfig)
        .await
        .expect("agent client");

    // The pinned apiserver puts the pod's node into the token's extra info.
    let review: SelfSubjectReview = serde_json::from_value(json!({})).expect("review");
    let who = Api::<SelfSubjectReview>::all(agent.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SelfSubjectReview")
        .status
        .and_then(|s| s.user_info)
        .expect("user info");
    assert_eq!(
        who.username.as_deref(),
        Some(format!("system:serviceaccount:{agent_ns}:{AGENT_SA}").as_str())
    );
    let node_claim = who
        .extra
        .as_ref()
        .and_then(|e| e.get("authentication.kubernetes.io/node-name"))
        .cloned();
    assert_eq!(
        node_claim,
        Some(vec![node_a.clone()]),
        "node claim of a pod-bound token: {:?}",
        who.extra
    );

    let reports: Api<NodePatchReport> = Api::all(agent.clone());
    let report = |name: &str| -> NodePatchReport {
        serde_json::from_value(json!({"apiVersion": "nodepatch.dev/v1alpha1", "kind": "NodePatchReport", "metadata": {"name": name}, "spec": {}}))
            .expect("report")
    };
    // The policy binding may take a moment to reach the admission plugin's cache.
    let denied = support::eventually(
        Duration::from_secs(20),
        "the policy denies node B's report",
        || {
            let reports = reports.clone();
            let r = report(node_b);
            async move {
                match reports.create(&PostParams::default(), &r).await {
                    Err(kube::Error::Api(s)) if s.code == 403 || s.code == 422 => Some(s),
                    Ok(_) => {
                        let _ = reports
                            .delete(&r.name_any(), &DeleteParams::default())
                            .await;
                        None
                    }
                    Err(_) => None,
                }
            }
        },
    )
    .await;
    assert!(
        denied.message.contains(&format!(
            "may only write NodePatchReport {node_a}, not {node_b}"
        )),
        "{}",
        denied.message
    );
    // Its own report: allowed, and so is a status update.
    let _ = Api::<NodePatchReport>::all(client.clone())
        .delete(node_a, &DeleteParams::default())
        .await;
    reports
        .create(&PostParams::default(), &report(node_a))
        .await
        .expect("agent creates its own report");
    let status = json!({"apiVersion": "nodepatch.dev/v1alpha1", "kind": "NodePatchReport", "status": {"rebootRequired": false}});
    reports
        .patch_status(
            node_a,
            &PatchParams::apply("nodepatch-agent").force(),
            &Patch::Apply(&status),
        )
        .await
        .expect("agent updates its own report's status");
    // Updating node B's report (created by an admin) is denied too.
    let admin_reports: Api<NodePatchReport> = Api::all(client.clone());
    let _ = admin_reports
        .create(&PostParams::default(), &report(node_b))
        .await;
    match reports
        .patch_status(
            node_b,
            &PatchParams::apply("nodepatch-agent").force(),
            &Patch::Apply(&status),
        )
        .await
    {
        Err(kube::Error::Api(s)) => assert!(
            s.message.contains("may only write NodePatchReport"),
            "{}",
            s.message
        ),
        other => panic!("updating another node's report must be denied, got {other:?}"),
    }

    let _ = pods.delete(&pod_name, &DeleteParams::default()).await;
    for n in [node_a, node_b] {
        let _ = admin_reports.delete(n, &DeleteParams::default()).await;
    }
}
