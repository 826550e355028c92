//! The blast radius of nodepatch's two identities, on the local control plane with the
//! generated RBAC and admission policies (config/, rendered from the chart):
//! - the agent's pod-bound token reads its run by name only (no list or watch of runs, no
//!   baselines) and cannot write its report's finalizers or owner references;
//! - the controller's token creates only the run DaemonSet the controller builds: the configured
//!   image, the agent's args, its ServiceAccount and host mounts, in the agent namespace;
//! - the reboot command of the chart's CI values reaches a real agent process through the
//!   controller's flags and the run DaemonSet, and the agent starts, reads its run and reports.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchParams};
use kube::{Client, ResourceExt};
use nodepatch::api::{NodePatchReport, PatchBaseline, PatchRun};
use nodepatch::controller::context::ControllerArgs;
use nodepatch::controller::patchrun::daemonset::run_daemonset;
use serde_json::{Value, json};

const AGENT_SA: &str = "nodepatch-agent";

/// The run DaemonSet mounts only the agent's state directory writable: every path the agent
/// writes itself must be under it (package managers write through nsenter, not the mount).
#[test]
fn every_path_the_agent_writes_is_under_its_writable_mount() {
    use nodepatch::agent::backend::sources;
    use nodepatch::agent::state;
    use nodepatch::controller::patchrun::daemonset::AGENT_STATE_DIR;
    for path in [
        state::FIRST_SEEN_PATH,
        state::LAST_OPERATION_PATH,
        state::INSTALL_STARTED_PATH,
        state::REBOOT_REQUESTED_PATH,
        sources::APT_SOURCES_DIR,
        sources::APT_SOURCE_LIST,
        sources::APT_LISTS_DIR,
        sources::DNF_SOURCES_DIR,
        sources::DNF_REPO_FILE,
        sources::DNF_CACHE_DIR,
    ] {
        assert!(path.starts_with(&format!("{AGENT_STATE_DIR}/")), "{path}");
    }
}
const CONTROLLER_SA: &str = "nodepatch-controller";

/// The objects of the generated tree a test needs, applied by the admin.
async fn apply_config(client: &Client, objects: &[(&str, &str)]) {
    for (kind, name) in objects {
        support::apply_json(client, support::config_rbac_object(kind, name)).await;
    }
}

async fn ensure_namespace_and_sa(client: &Client, namespace: &str, sa: &str) {
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": namespace}})).expect("ns");
    let _ = Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await;
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": sa}})).expect("sa");
    let _ = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &sa)
        .await;
}

async fn kwok_node(client: &Client, index: usize) -> Node {
    let mut nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default().labels("type=kwok"))
        .await
        .expect("nodes")
        .items;
    nodes.sort_by_key(|n| n.name_any());
    nodes.into_iter().nth(index).expect("enough kwok nodes")
}

/// An agent pod bound to `node` and a kubeconfig holding its pod-bound token (node claim).
async fn agent_on(
    client: &Client,
    namespace: &str,
    node: &str,
    dir: &Path,
) -> (Pod, std::path::PathBuf) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": support::unique_name("blast-agent"), "namespace": namespace},
        "spec": {
            "nodeName": node,
            "serviceAccountName": AGENT_SA,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "agent", "image": "nodepatch:test"}]
        }
    }))
    .expect("pod");
    let pod = Api::<Pod>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let token = support::podrunner::pod_bound_token(client, namespace, AGENT_SA, &pod)
        .await
        .expect("token");
    let kubeconfig = support::podrunner::token_kubeconfig(dir, &pod.name_any(), &token);
    (pod, kubeconfig)
}

fn run_object(name: &str, operation: &str) -> PatchRun {
    serde_json::from_value(json!({
        "apiVersion": "nodepatch.dev/v1alpha1", "kind": "PatchRun",
        "metadata": {"name": name},
        "spec": {"policyRef": "blast-radius", "operation": operation}
    }))
    .expect("run")
}

fn api_error(result: Result<impl std::fmt::Debug, kube::Error>, what: &str) -> (u16, String) {
    match result {
        Err(kube::Error::Api(s)) => (s.code, s.message),
        other => panic!("{what}: must be refused, got {other:?}"),
    }
}

fn report_object(name: &str, metadata: Value) -> NodePatchReport {
    let mut meta = json!({"name": name});
    support::fleet::merge(&mut meta, metadata);
    serde_json::from_value(json!({
        "apiVersion": "nodepatch.dev/v1alpha1", "kind": "NodePatchReport",
        "metadata": meta, "spec": {}
    }))
    .expect("report")
}

#[tokio::test]
async fn agent_token_reads_only_by_name_and_cannot_write_its_reports_metadata() {
    let Some(client) = support::cluster().await else {
        return;
    };
    support::ensure_crds(&client).await;
    let agent_ns = support::config_agent_namespace();
    ensure_namespace_and_sa(&client, &agent_ns, AGENT_SA).await;
    apply_config(
        &client,
        &[
            ("ClusterRole", "nodepatch-agent"),
            ("ClusterRoleBinding", "nodepatch-agent"),
            ("ValidatingAdmissionPolicy", "nodepatch-agent-own-report"),
            (
                "ValidatingAdmissionPolicyBinding",
                "nodepatch-agent-own-report",
            ),
        ],
    )
    .await;
    let node = kwok_node(&client, 0).await;
    let other = kwok_node(&client, 1).await;
    let node_name = node.name_any();
    let dir = tempfile::tempdir().expect("tempdir");
    let (pod, kubeconfig) = agent_on(&client, &agent_ns, &node_name, dir.path()).await;
    let agent = support::client_from_kubeconfig(&kubeconfig)
        .await
        .expect("agent client");

    // Its run: readable by name, not listable or watchable; baselines not at all (the run's
    // snapshots are all the agent reads).
    let run_name = support::unique_name("blast-run");
    Api::<PatchRun>::all(client.clone())
        .create(&PostParams::default(), &run_object(&run_name, "Scan"))
        .await
        .expect("admin creates the run");
    let runs: Api<PatchRun> = Api::all(agent.clone());
    runs.get(&run_name).await.expect("the agent reads its run");
    let (code, _) = api_error(runs.list(&ListParams::default()).await, "list runs");
    assert_eq!(code, 403, "listing runs");
    let watch = runs.watch(&WatchParams::default(), "0").await;
    let (code, _) = api_error(watch.map(|_| ()), "watch runs");
    assert_eq!(code, 403, "watching runs");
    let (code, _) = api_error(
        Api::<PatchBaseline>::all(agent.clone())
            .list(&ListParams::default())
            .await,
        "list baselines",
    );
    assert_eq!(code, 403, "listing baselines");
    let reports: Api<NodePatchReport> = Api::all(agent.clone());
    let (code, _) = api_error(reports.list(&ListParams::default()).await, "list reports");
    assert_eq!(code, 403, "listing reports");

    // Its report: created without finalizers and owned by its Node only.
    let admin_reports: Api<NodePatchReport> = Api::all(client.clone());
    let _ = admin_reports
        .delete(&node_name, &DeleteParams::default())
        .await;
    support::eventually_true(Duration::from_secs(20), "the old report is gone", || {
        let admin_reports = admin_reports.clone();
        let node_name = node_name.clone();
        async move { matches!(admin_reports.get_opt(&node_name).await, Ok(None)) }
    })
    .await;
    let node_owner =
        json!({"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node.metadata.uid});
    let other_owner = json!({"apiVersion": "v1", "kind": "Node", "name": other.name_any(), "uid": other.metadata.uid});
    // The policy binding may take a moment to reach the admission plugin's cache.
    let refused = support::eventually(
        Duration::from_secs(20),
        "a report with a finalizer is refused",
        || {
            let reports = reports.clone();
            let admin_reports = admin_reports.clone();
            let r = report_object(&node_name, json!({"finalizers": ["example.com/keep"]}));
            async move {
                match reports.create(&PostParams::default(), &r).await {
                    Err(kube::Error::Api(s)) if s.code == 403 || s.code == 422 => Some(s.message),
                    Ok(_) => {
                        let name = r.name_any();
                        let _ = admin_reports
                            .patch(
                                &name,
                                &PatchParams::default(),
                                &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                            )
                            .await;
                        let _ = admin_reports.delete(&name, &DeleteParams::default()).await;
                        None
                    }
                    Err(_) => None,
                }
            }
        },
    )
    .await;
    assert!(refused.contains("finalizers"), "{refused}");
    let (_, message) = api_error(
        reports
            .create(
                &PostParams::default(),
                &report_object(&node_name, json!({"ownerReferences": [other_owner]})),
            )
            .await,
        "a report owned by another node",
    );
    assert!(message.contains("ownerReferences"), "{message}");
    reports
        .create(
            &PostParams::default(),
            &report_object(&node_name, json!({"ownerReferences": [node_owner]})),
        )
        .await
        .expect("the agent creates its own report, owned by its Node");
    for (what, metadata) in [
        (
            "add a finalizer",
            json!({"finalizers": ["example.com/keep"]}),
        ),
        ("drop its owner", json!({"ownerReferences": []})),
        (
            "add an owner",
            json!({"ownerReferences": [node_owner, other_owner]}),
        ),
    ] {
        let (code, message) = api_error(
            reports
                .patch(
                    &node_name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": metadata})),
                )
                .await,
            what,
        );
        assert!(
            code == 403 || code == 422,
            "{what}: refused as forbidden ({code}): {message}"
        );
    }
    // RBAC refused those; the policy refuses them too, should a wider role ever grant the
    // agent a patch of the object (grant one for the test).
    let wider = support::unique_name("blast-agent-wider");
    support::apply_json(
        &client,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": wider},
               "rules": [{"apiGroups": ["nodepatch.dev"], "resources": ["nodepatchreports"], "verbs": ["patch"]}]}),
    )
    .await;
    support::apply_json(
        &client,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": wider},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": wider},
               "subjects": [{"kind": "ServiceAccount", "name": AGENT_SA, "namespace": agent_ns}]}),
    )
    .await;
    for (what, metadata, reason) in [
        (
            "add a finalizer",
            json!({"finalizers": ["example.com/keep"]}),
            "metadata.finalizers",
        ),
        (
            "drop its owner",
            json!({"ownerReferences": []}),
            "metadata.ownerReferences",
        ),
    ] {
        let message = support::eventually(
            Duration::from_secs(20),
            "the wider role reaches the authorizer",
            || {
                let reports = reports.clone();
                let node_name = node_name.clone();
                let metadata = metadata.clone();
                async move {
                    match reports
                        .patch(
                            &node_name,
                            &PatchParams::default(),
                            &Patch::Merge(json!({"metadata": metadata})),
                        )
                        .await
                    {
                        Err(kube::Error::Api(s))
                            if s.message.contains("ValidatingAdmissionPolicy") =>
                        {
                            Some(s.message)
                        }
                        Ok(r) => panic!("{r:?}: the policy must refuse it"),
                        Err(_) => None,
                    }
                }
            },
        )
        .await;
        assert!(message.contains(reason), "{what}: {message}");
    }
    let rbac = |kind: &str| {
        Api::<kube::api::DynamicObject>::all_with(
            client.clone(),
            &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
                "rbac.authorization.k8s.io",
                "v1",
                kind,
            )),
        )
    };
    for kind in ["ClusterRoleBinding", "ClusterRole"] {
        let _ = rbac(kind).delete(&wider, &DeleteParams::default()).await;
    }

    // ...while its status stays writable (what the agent does).
    let status = json!({"apiVersion": "nodepatch.dev/v1alpha1", "kind": "NodePatchReport", "status": {"rebootRequired": false}});
    reports
        .patch_status(
            &node_name,
            &PatchParams::apply("nodepatch-agent").force(),
            &Patch::Apply(&status),
        )
        .await
        .expect("the agent writes its report's status");
    let report = admin_reports.get(&node_name).await.expect("report");
    assert!(report.finalizers().is_empty());
    assert_eq!(report.owner_references().len(), 1);

    let _ = Api::<Pod>::namespaced(client.clone(), &agent_ns)
        .delete(&pod.name_any(), &DeleteParams::default())
        .await;
    let _ = admin_reports
        .delete(&node_name, &DeleteParams::default())
        .await;
    let _ = Api::<PatchRun>::all(client.clone())
        .delete(&run_name, &DeleteParams::default())
        .await;
}

/// The controller's flags as `nodepatch controller` parses them (args after the subcommand).
#[derive(clap::Parser)]
struct ControllerFlags {
    #[command(flatten)]
    controller: ControllerArgs,
}

fn parse_controller(args: &[String], container: &Value) -> ControllerArgs {
    use clap::Parser;
    assert_eq!(args.first().map(String::as_str), Some("controller"));
    // The agent image and namespace come from the container's environment in the manifest;
    // as flags here, so parallel tests do not share the process environment.
    let mut args = args.to_vec();
    for (flag, env) in [
        ("--agent-image", "NODEPATCH_AGENT_IMAGE"),
        ("--agent-namespace", "NODEPATCH_AGENT_NAMESPACE"),
    ] {
        args.push(format!("{flag}={}", container_env(container, env)));
    }
    ControllerFlags::try_parse_from(&args)
        .unwrap_or_else(|e| panic!("the manifest's controller flags: {e}"))
        .controller
}

fn string_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().expect("string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn container_env(container: &Value, name: &str) -> String {
    container["env"]
        .as_array()
        .and_then(|env| env.iter().find(|e| e["name"] == name))
        .and_then(|e| e["value"].as_str())
        .unwrap_or_else(|| panic!("no env {name}"))
        .to_string()
}

#[tokio::test]
async fn controller_token_creates_only_the_agent_daemonset() {
    let Some(client) = support::cluster().await else {
        return;
    };
    support::ensure_crds(&client).await;
    let agent_ns = support::config_agent_namespace();
    ensure_namespace_and_sa(&client, &agent_ns, CONTROLLER_SA).await;
    apply_config(
        &client,
        &[
            ("Role", "nodepatch-controller"),
            ("RoleBinding", "nodepatch-controller"),
            ("ValidatingAdmissionPolicy", "nodepatch-agent-daemonset"),
            (
                "ValidatingAdmissionPolicyBinding",
                "nodepatch-agent-daemonset",
            ),
        ],
    )
    .await;
    // The DaemonSet the generated controller Deployment builds.
    let manager = std::fs::read_to_string(support::repo_root().join("config/manager/manager.yaml"))
        .expect("config/manager/manager.yaml");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&manager).expect("YAML");
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("controller Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mut args = vec!["controller".to_string()];
    args.extend(string_list(&container["args"]).into_iter().skip(1));
    let settings = parse_controller(&args, container).agent;
    assert_eq!(settings.namespace, agent_ns);
    let run = Api::<PatchRun>::all(client.clone())
        .create(
            &PostParams::default(),
            &run_object(&support::unique_name("blast-ds"), "Install"),
        )
        .await
        .expect("run");
    let real = run_daemonset(&run, &settings);

    let mut config = support::config_from_kubeconfig(&support::kubeconfig_path())
        .await
        .expect("admin config");
    config.auth_info.impersonate =
        Some(format!("system:serviceaccount:{agent_ns}:{CONTROLLER_SA}"));
    config.auth_info.impersonate_groups = Some(vec![
        "system:serviceaccounts".into(),
        format!("system:serviceaccounts:{agent_ns}"),
        "system:authenticated".into(),
    ]);
    let controller = Client::try_from(config).expect("controller client");
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let create = |namespace: String, ds: Value| {
        let controller = controller.clone();
        let dry_run = dry_run.clone();
        async move {
            let ds: DaemonSet = serde_json::from_value(ds).expect("daemonset");
            Api::<DaemonSet>::namespaced(controller, &namespace)
                .create(&dry_run, &ds)
                .await
        }
    };
    let variant = |edit: &dyn Fn(&mut Value)| {
        let mut ds = real.clone();
        edit(&mut ds["spec"]["template"]["spec"]);
        ds
    };
    // Until the binding reaches the admission plugin, another image passes: wait for it.
    let other_image = variant(&|pod| pod["containers"][0]["image"] = json!("evil.example/sh:1"));
    let refused = support::eventually(Duration::from_secs(20), "another image is refused", || {
        let create = &create;
        let ds = other_image.clone();
        let ns = agent_ns.clone();
        async move {
            match create(ns, ds).await {
                Err(kube::Error::Api(s)) if s.code == 403 || s.code == 422 => Some(s.message),
                _ => None,
            }
        }
    })
    .await;
    assert!(refused.contains("image"), "{refused}");
    create(agent_ns.clone(), real.clone())
        .await
        .expect("the controller's own run DaemonSet is accepted");

    let host_etc = json!({"name": "etc", "hostPath": {"path": "/etc"}});
    // Each refused for its own reason (a CEL error would refuse them all alike).
    let cases: Vec<(&str, &str, Value)> = vec![
        (
            "a command",
            "`agent` subcommand",
            variant(&|pod| pod["containers"][0]["command"] = json!(["/bin/sh", "-c", "id"])),
        ),
        (
            "another subcommand",
            "`agent` subcommand",
            variant(&|pod| pod["containers"][0]["args"][0] = json!("scan")),
        ),
        (
            "another reboot command",
            "reboot command",
            variant(&|pod| {
                let args = pod["containers"][0]["args"].as_array_mut().expect("args");
                args.push(json!("--reboot-command=/bin/sh"));
            }),
        ),
        (
            "a second container",
            "exactly one container",
            variant(&|pod| {
                let first = pod["containers"][0].clone();
                let mut second = first.clone();
                second["name"] = json!("sidecar");
                pod["containers"] = json!([first, second]);
            }),
        ),
        (
            "an init container",
            "exactly one container",
            variant(&|pod| {
                let mut init = pod["containers"][0].clone();
                init["name"] = json!("init");
                pod["initContainers"] = json!([init]);
            }),
        ),
        (
            "a probe",
            "no probes or lifecycle hooks",
            variant(&|pod| {
                pod["containers"][0]["livenessProbe"] =
                    json!({"exec": {"command": ["nsenter", "-t", "1", "-m", "--", "sh"]}})
            }),
        ),
        (
            "another hostPath",
            "mount only",
            variant(&|pod| {
                pod["volumes"]
                    .as_array_mut()
                    .expect("volumes")
                    .push(host_etc.clone())
            }),
        ),
        (
            "the host's / writable",
            "mount only",
            variant(&|pod| {
                pod["containers"][0]["volumeMounts"][0] =
                    json!({"name": "host", "mountPath": "/host"})
            }),
        ),
        (
            "another ServiceAccount",
            "ServiceAccount",
            variant(&|pod| pod["serviceAccountName"] = json!("default")),
        ),
        (
            "a Secret in the environment",
            "no Secrets",
            variant(&|pod| {
                pod["containers"][0]["env"]
                    .as_array_mut()
                    .expect("env")
                    .push(json!({"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}))
            }),
        ),
        (
            "the host network",
            "host network",
            variant(&|pod| pod["hostNetwork"] = json!(true)),
        ),
    ];
    for (what, reason, ds) in cases {
        let (code, message) = api_error(create(agent_ns.clone(), ds).await, what);
        assert!(
            code == 403 || code == 422,
            "{what}: refused as forbidden ({code}): {message}"
        );
        assert!(
            message.contains("nodepatch-agent-daemonset") && message.contains(reason),
            "{what}: refused saying {reason:?}: {message}"
        );
    }
    // Outside the agent namespace RBAC already refuses it.
    let mut elsewhere = real.clone();
    elsewhere["metadata"]["namespace"] = json!("default");
    let (code, _) = api_error(
        create("default".into(), elsewhere).await,
        "another namespace",
    );
    assert_eq!(code, 403, "another namespace");

    let _ = Api::<PatchRun>::all(client.clone())
        .delete(&run.name_any(), &DeleteParams::default())
        .await;
}

/// Render the chart with its CI values, build the run DaemonSet from the controller flags it
/// renders, and start the real agent binary with that DaemonSet's args (host root swapped for
/// an empty directory run through chroot): it parses them, reads its run and writes its report.
#[tokio::test]
async fn chart_ci_reboot_command_reaches_an_agent_that_runs() {
    let Some(client) = support::cluster().await else {
        return;
    };
    support::ensure_crds(&client).await;
    let rendered = Command::new(support::tool("helm"))
        .current_dir(support::repo_root())
        .args([
            "template",
            "nodepatch",
            "charts/nodepatch",
            "-n",
            "nodepatch-system",
        ])
        .args(["--kube-version", "1.37.2"])
        .args(["-f", "charts/nodepatch/ci/all-options-values.yaml"])
        .output()
        .expect("helm template");
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&String::from_utf8_lossy(&rendered.stdout)).expect("YAML");
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "nodepatch-test-controller")
        .expect("controller Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let settings = parse_controller(&string_list(&container["args"]), container).agent;
    assert_eq!(
        settings.reboot_command,
        ["systemctl", "reboot", "--check-inhibitors=yes"],
        "the CI values' reboot command reaches the controller whole"
    );

    // The agent's identity as the generated RBAC has it.
    let agent_ns = support::config_agent_namespace();
    ensure_namespace_and_sa(&client, &agent_ns, AGENT_SA).await;
    apply_config(
        &client,
        &[
            ("ClusterRole", "nodepatch-agent"),
            ("ClusterRoleBinding", "nodepatch-agent"),
            ("ValidatingAdmissionPolicy", "nodepatch-agent-own-report"),
            (
                "ValidatingAdmissionPolicyBinding",
                "nodepatch-agent-own-report",
            ),
        ],
    )
    .await;
    let node = kwok_node(&client, 2).await.name_any();
    let run_name = support::unique_name("blast-reboot");
    let run = Api::<PatchRun>::all(client.clone())
        .create(&PostParams::default(), &run_object(&run_name, "Scan"))
        .await
        .expect("run");
    let ds = run_daemonset(&run, &settings);
    let mut args = string_list(&ds["spec"]["template"]["spec"]["containers"][0]["args"]);
    let reboot: Vec<&str> = args
        .iter()
        .filter_map(|a| a.strip_prefix("--reboot-command="))
        .collect();
    assert_eq!(reboot, ["systemctl", "reboot", "--check-inhibitors=yes"]);

    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).expect("root dir");
    let host_root = args
        .iter()
        .position(|a| a == "--host-root")
        .expect("--host-root in the DaemonSet's args");
    args[host_root + 1] = root.display().to_string();
    args.extend(
        [
            "--host-exec",
            "chroot",
            "--no-refresh",
            "--exit-after-report",
        ]
        .map(String::from),
    );
    let (pod, kubeconfig) = agent_on(&client, &agent_ns, &node, dir.path()).await;
    let mut agent = Command::new(support::nodepatch_bin());
    agent
        .args(&args)
        .env_clear()
        .env("NODE_NAME", &node)
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info");
    let out = support::die_with_parent(agent)
        .output()
        .expect("run nodepatch agent");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the agent with {args:?} failed ({:?}):\n{stdout}\n{stderr}",
        out.status.code()
    );
    assert!(
        stdout.contains("--check-inhibitors=yes") || stderr.contains("--check-inhibitors=yes"),
        "the agent logs the reboot command it holds:\n{stdout}\n{stderr}"
    );
    let report = Api::<NodePatchReport>::all(client.clone())
        .get(&node)
        .await
        .expect("the agent's report");
    let op = report
        .status
        .and_then(|s| s.operation)
        .expect("an operation in the report");
    assert_eq!(op.run, run_name, "the report is of this run");

    let _ = Api::<Pod>::namespaced(client.clone(), &agent_ns)
        .delete(&pod.name_any(), &DeleteParams::default())
        .await;
    let _ = Api::<PatchRun>::all(client.clone())
        .delete(&run_name, &DeleteParams::default())
        .await;
}
