//! Installing the way platform teams do: the Helm chart lints and renders into objects the real
//! apiserver accepts (default values, every option on, and as a subchart with `global` values),
//! `helm upgrade` from the previous chart version upgrades the CRDs, the kustomize tree is
//! generated from the chart and follows an overlay's image and namespace, and the chart's CRDs,
//! README and Artifact Hub examples are the generated ones.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

/// The chart version before the CRDs became templates (they were in charts/nodepatch/crds/,
/// which helm installs once and never upgrades).
/// The previous chart release, packaged with `helm package` from commit 22f9796.
const PREVIOUS_CHART_PACKAGE: &str = "tests/fixtures/chart-previous/nodepatch-0.1.0.tgz";

/// The cluster tests of this file take turns: the upgrade test serves the previous CRDs for a
/// while, which the dry runs must not see.
static CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn helm() -> Command {
    let mut c = Command::new(support::tool("helm"));
    c.current_dir(support::repo_root());
    c
}

/// helm against the local control plane.
fn helm_cluster() -> Command {
    let mut c = helm();
    c.arg("--kubeconfig").arg(support::kubeconfig_path());
    c
}

fn kubectl() -> Command {
    let mut c = Command::new(support::tool("kubectl"));
    c.arg("--kubeconfig")
        .arg(support::kubeconfig_path())
        .current_dir(support::repo_root());
    c
}

/// `helm template` of `chart` (release "nodepatch" in nodepatch-system) with extra arguments.
fn template(chart: &Path, extra: &[&str]) -> String {
    run(helm()
        .args(["template", "nodepatch"])
        .arg(chart)
        .args(["-n", "nodepatch-system", "--kube-version", "1.37.2"])
        .args(extra))
}

fn chart() -> std::path::PathBuf {
    support::repo_root().join("charts/nodepatch")
}

fn objects(manifests: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(manifests).expect("rendered YAML");
    docs.into_iter().filter(|d| d.is_object()).collect()
}

fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn controller_container(objects: &[Value], name: &str) -> Value {
    object(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"][0].clone()
}

fn env_value(container: &Value, name: &str) -> String {
    container["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
        .unwrap_or_else(|| panic!("no env {name} in {container}"))
        .to_string()
}

fn dry_run_apply(manifests: &str) -> String {
    let mut child = kubectl()
        .args(["apply", "--dry-run=server", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(manifests.as_bytes())
        .expect("write manifests");
    let out = child.wait_with_output().expect("kubectl apply");
    assert!(
        out.status.success(),
        "server dry run rejected the manifests:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A parent chart (tests/fixtures/chart-parent) with this chart copied in as its subchart.
fn parent_chart() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let fixture = support::repo_root().join("tests/fixtures/chart-parent");
    for file in ["Chart.yaml", "values.yaml"] {
        std::fs::copy(fixture.join(file), dir.path().join(file)).expect("copy fixture");
    }
    std::fs::create_dir(dir.path().join("charts")).expect("charts/");
    run(Command::new("cp")
        .arg("-r")
        .arg(chart())
        .arg(dir.path().join("charts/nodepatch")));
    dir
}

#[test]
fn chart_lints_clean_with_default_values_every_option_and_as_a_subchart() {
    run(helm().args(["lint", "--strict", "charts/nodepatch"]));
    run(helm().args([
        "lint",
        "--strict",
        "charts/nodepatch",
        "-f",
        "charts/nodepatch/ci/all-options-values.yaml",
    ]));
    let parent = parent_chart();
    run(helm()
        .args(["lint", "--strict", "--with-subcharts"])
        .arg(parent.path()));
}

#[test]
fn chart_crds_are_the_generated_crds_and_helm_upgrades_them() {
    let root = support::repo_root();
    // A crds/ directory would be installed once by helm and never upgraded.
    assert!(
        !root.join("charts/nodepatch/crds").exists(),
        "charts/nodepatch/crds/ must not exist: the CRDs are templates (files/crds/)"
    );
    let rendered = objects(&template(&chart(), &[]));
    let crds = of_kind(&rendered, "CustomResourceDefinition");
    assert_eq!(crds.len(), 5, "five CRDs rendered by default");
    for entry in std::fs::read_dir(root.join("crds")).expect("crds/") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("file name");
        let chart_file = root.join("charts/nodepatch/files/crds").join(name);
        let generated = std::fs::read_to_string(&path).expect("crd");
        assert_eq!(
            generated,
            std::fs::read_to_string(&chart_file).unwrap_or_default(),
            "charts/nodepatch/files/crds/{} differs from crds/: run `make manifests`",
            name.to_string_lossy()
        );
        let generated: Value = serde_saphyr::from_str(&generated).expect("CRD YAML");
        let crd = object(
            &rendered,
            "CustomResourceDefinition",
            generated["metadata"]["name"].as_str().expect("name"),
        );
        assert_eq!(
            crd["spec"], generated["spec"],
            "the template changes no spec"
        );
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
            "crds.keep defaults to true"
        );
        assert_eq!(
            crd["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "Helm"
        );
    }
    assert_eq!(
        std::fs::read_dir(root.join("charts/nodepatch/files/crds"))
            .expect("chart crds")
            .count(),
        5
    );
    let unkept = objects(&template(&chart(), &["--set", "crds.keep=false"]));
    for crd in of_kind(&unkept, "CustomResourceDefinition") {
        assert!(crd["metadata"]["annotations"].is_null(), "{crd}");
    }
    let none = objects(&template(&chart(), &["--set", "crds.enabled=false"]));
    assert!(of_kind(&none, "CustomResourceDefinition").is_empty());
}

#[test]
fn kustomize_tree_is_generated_from_the_chart() {
    run(Command::new(support::repo_root().join("scripts/gen-config.sh")).arg("--check"));
}

#[test]
fn chart_readme_is_generated_from_the_values_comments() {
    run(Command::new(support::repo_root().join("scripts/chart-readme.py")).arg("--check"));
    // Every value is documented: a key without a `# --` line would be missing from the table.
    let readme = std::fs::read_to_string(chart().join("README.md")).expect("README");
    for key in [
        "global",
        "agent.imagePullSecrets",
        "agent.priorityClassQuota.create",
        "crds.keep",
        "rbac.aggregateEditor",
    ] {
        assert!(
            readme.contains(&format!("| `{key}` |")),
            "{key} undocumented"
        );
    }
}

#[test]
fn artifact_hub_examples_are_the_samples() {
    let chart_yaml: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(chart().join("Chart.yaml")).expect("read"))
            .expect("Chart.yaml");
    let annotations = &chart_yaml["annotations"];
    for key in [
        "artifacthub.io/crds",
        "artifacthub.io/images",
        "artifacthub.io/license",
    ] {
        assert!(annotations[key].is_string(), "{key} missing");
    }
    let examples: Vec<Value> = serde_saphyr::from_str(
        annotations["artifacthub.io/crdsExamples"]
            .as_str()
            .expect("crdsExamples"),
    )
    .expect("crdsExamples YAML");
    assert_eq!(examples.len(), 4);
    for example in examples {
        let kind = example["kind"].as_str().expect("kind").to_lowercase();
        let name = example["metadata"]["name"].as_str().expect("name");
        let sample = support::repo_root().join(format!("config/samples/{kind}-{name}.yaml"));
        let sample = std::fs::read_to_string(&sample)
            .ok()
            .or_else(|| {
                // Sample files are named after their topic, not always after the object.
                std::fs::read_dir(support::repo_root().join("config/samples"))
                    .ok()?
                    .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                    .find(|text| {
                        serde_saphyr::from_str::<Value>(text).is_ok_and(|v| {
                            v["kind"] == example["kind"] && v["metadata"]["name"] == name
                        })
                    })
            })
            .unwrap_or_else(|| panic!("no sample for {kind} {name}"));
        let sample: Value = serde_saphyr::from_str(&sample).expect("sample YAML");
        assert_eq!(
            example, sample,
            "Chart.yaml's crdsExamples {kind} {name} differs from config/samples"
        );
    }
    assert!(
        std::fs::read_to_string(support::repo_root().join("LICENSE"))
            .expect("LICENSE")
            .contains("Apache License")
    );
}

#[test]
fn editor_role_is_aggregated_into_edit_only_when_asked() {
    let default = objects(&template(&chart(), &[]));
    let editor = &object(&default, "ClusterRole", "nodepatch-editor")["metadata"]["labels"];
    for label in ["edit", "admin"] {
        assert!(
            editor[format!("rbac.authorization.k8s.io/aggregate-to-{label}")].is_null(),
            "creating PatchRuns reboots nodes: the editor role is not in `{label}` by default"
        );
    }
    let viewer = &object(&default, "ClusterRole", "nodepatch-viewer")["metadata"]["labels"];
    assert_eq!(
        viewer["rbac.authorization.k8s.io/aggregate-to-view"],
        "true"
    );
    let opted_in = objects(&template(&chart(), &["--set", "rbac.aggregateEditor=true"]));
    let editor = &object(&opted_in, "ClusterRole", "nodepatch-editor")["metadata"]["labels"];
    assert_eq!(
        editor["rbac.authorization.k8s.io/aggregate-to-edit"],
        "true"
    );
}

#[test]
fn priority_class_quota_follows_the_agent_priority_class() {
    let quotas = |extra: &[&str]| -> Vec<Value> {
        of_kind(&objects(&template(&chart(), extra)), "ResourceQuota")
            .into_iter()
            .cloned()
            .collect()
    };
    let default = quotas(&[]);
    assert_eq!(
        default.len(),
        1,
        "system-node-critical needs a quota on GKE"
    );
    assert_eq!(default[0]["metadata"]["namespace"], "nodepatch-agents");
    assert_eq!(
        default[0]["spec"]["scopeSelector"]["matchExpressions"][0],
        serde_json::json!({"operator": "In", "scopeName": "PriorityClass", "values": ["system-node-critical"]})
    );
    assert!(quotas(&["--set", "agent.priorityClassName="]).is_empty());
    assert!(quotas(&["--set", "agent.priorityClassName=batch-high"]).is_empty());
    assert_eq!(
        quotas(&[
            "--set",
            "agent.priorityClassName=batch-high",
            "--set",
            "agent.priorityClassQuota.create=true"
        ])
        .len(),
        1
    );
    assert!(quotas(&["--set", "agent.priorityClassQuota.create=false"]).is_empty());
}

#[test]
fn controller_pdb_and_spread_only_with_more_than_one_replica() {
    let one = objects(&template(&chart(), &[]));
    assert!(of_kind(&one, "PodDisruptionBudget").is_empty());
    let pod = &object(&one, "Deployment", "nodepatch-controller")["spec"]["template"]["spec"];
    assert!(pod["topologySpreadConstraints"].is_null());
    let two = objects(&template(&chart(), &["--set", "controller.replicas=2"]));
    let pdb = object(&two, "PodDisruptionBudget", "nodepatch-controller");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    let pod = &object(&two, "Deployment", "nodepatch-controller")["spec"]["template"]["spec"];
    assert_eq!(
        pod["topologySpreadConstraints"][0]["topologyKey"],
        "kubernetes.io/hostname"
    );
}

/// The flags the chart renders are the binary's: with every option on, `nodepatch controller`
/// gets past argument parsing (clap exits 2 on an unknown flag or an invalid value) and stops
/// only for want of a cluster.
#[test]
fn every_rendered_controller_flag_is_accepted_by_the_binary() {
    let all = objects(&template(
        &chart(),
        &["-f", "charts/nodepatch/ci/all-options-values.yaml"],
    ));
    let container = controller_container(&all, "nodepatch-test-controller");
    let args: Vec<String> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect();
    for flag in [
        "--agent-image-pull-secret=regcred",
        "--agent-image-pull-secret=agent-regcred",
        "--agent-node-selector=example.com/patchable=true",
        "--agent-env=NO_PROXY=10.0.0.0/8,.svc",
        "--agent-log-level=info,nodepatch=debug",
        "--agent-log-format=text",
    ] {
        assert!(args.iter().any(|a| a == flag), "{flag} not in {args:?}");
    }
    let missing = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(support::nodepatch_bin());
    cmd.args(&args)
        .env_clear()
        .env("KUBECONFIG", missing.path().join("no-kubeconfig"))
        .env(
            "NODEPATCH_AGENT_IMAGE",
            env_value(&container, "NODEPATCH_AGENT_IMAGE"),
        )
        .env(
            "NODEPATCH_AGENT_NAMESPACE",
            env_value(&container, "NODEPATCH_AGENT_NAMESPACE"),
        )
        // Port 0: the metrics listener, if it starts, binds nothing fixed.
        .env("NODEPATCH_METRICS_ADDR", "127.0.0.1:0");
    let cmd = support::die_with_parent(cmd);
    let out = { cmd }.output().expect("run nodepatch controller");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(2),
        "the binary refused the chart's flags:\n{stderr}"
    );
    assert!(
        !out.status.success(),
        "no cluster: the controller must stop"
    );
}

#[tokio::test]
async fn rendered_chart_and_kustomize_tree_are_accepted_by_the_apiserver() {
    let Some(client) = support::cluster().await else {
        return;
    };
    let _turn = CLUSTER.lock().await;
    support::ensure_crds(&client).await;
    // Namespaces the rendered objects live in (a dry run does not create them), and stand-ins for
    // the prometheus-operator CRDs of the optional monitoring objects.
    for ns in [
        "nodepatch-system",
        "nodepatch-agents",
        "nodepatch-agents-test",
        "platform-nodepatch-agents",
        "platform-patching",
    ] {
        let _ = kubectl().args(["create", "namespace", ns]).output();
    }
    run(kubectl().args(["apply", "-f", "e2e/testdata/monitoring-crds.yaml"]));
    run(kubectl().args([
        "wait",
        "--for=condition=Established",
        "crd/servicemonitors.monitoring.coreos.com",
        "crd/prometheusrules.monitoring.coreos.com",
    ]));

    let defaults = template(&chart(), &[]);
    let out = dry_run_apply(&defaults);
    for object in [
        "deployment.apps/nodepatch-controller",
        "validatingadmissionpolicy.admissionregistration.k8s.io/nodepatch-agent-own-report",
        "clusterrole.rbac.authorization.k8s.io/nodepatch-viewer",
        "customresourcedefinition.apiextensions.k8s.io/patchruns.nodepatch.dev",
        "resourcequota/nodepatch-agent-priority",
    ] {
        assert!(out.contains(object), "{object} not applied:\n{out}");
    }
    let all = template(
        &chart(),
        &["-f", "charts/nodepatch/ci/all-options-values.yaml"],
    );
    let out = dry_run_apply(&all);
    for object in [
        "servicemonitor.monitoring.coreos.com/nodepatch-test-controller",
        "prometheusrule.monitoring.coreos.com/nodepatch-test",
        "configmap/nodepatch-test-dashboard",
        "poddisruptionbudget.policy/nodepatch-test-controller",
        "deployment.apps/nodepatch-test-controller",
    ] {
        assert!(out.contains(object), "{object} not applied:\n{out}");
    }
    // OpenShift-style override: the null keys are gone, the rest of the default stays.
    let rendered = objects(&all);
    let pod =
        &object(&rendered, "Deployment", "nodepatch-test-controller")["spec"]["template"]["spec"];
    assert!(pod["securityContext"]["runAsUser"].is_null());
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);

    // As a subchart: helm passes `global` to it, which a strict schema without it refuses.
    let parent = parent_chart();
    let nested = template(parent.path(), &[]);
    let out = dry_run_apply(&nested);
    assert!(
        out.contains("deployment.apps/platform-nodepatch-controller"),
        "{out}"
    );

    let kustomized = run(kubectl().args(["kustomize", "config/default"]));
    dry_run_apply(&kustomized);
    let overlay = run(kubectl().args(["kustomize", "docs/examples/kustomize-overlay"]));
    dry_run_apply(&overlay);
    let overlaid = objects(&overlay);
    let container = controller_container(&overlaid, "nodepatch-controller");
    assert_eq!(
        container["image"],
        "registry.example.com/mirror/nodepatch:0.1.0"
    );
    assert_eq!(
        env_value(&container, "NODEPATCH_AGENT_IMAGE"),
        "registry.example.com/mirror/nodepatch:0.1.0",
        "the overlay's image reaches the agents"
    );
    assert_eq!(
        env_value(&container, "NODEPATCH_AGENT_NAMESPACE"),
        "platform-patching"
    );
    let own_report = object(
        &overlaid,
        "ValidatingAdmissionPolicy",
        "nodepatch-agent-own-report",
    );
    assert!(
        own_report["spec"]["matchConditions"][0]["expression"]
            .as_str()
            .expect("expression")
            .contains("'system:serviceaccount:platform-patching:nodepatch-agent'"),
        "{own_report}"
    );
    // The DaemonSet policy pins the overlay's image, namespace and controller, not the base's.
    let daemonset_policy = object(
        &overlaid,
        "ValidatingAdmissionPolicy",
        "nodepatch-agent-daemonset",
    );
    let variable = |name: &str| {
        daemonset_policy["spec"]["variables"]
            .as_array()
            .expect("variables")
            .iter()
            .find(|v| v["name"] == name)
            .and_then(|v| v["expression"].as_str())
            .unwrap_or_else(|| panic!("no variable {name} in {daemonset_policy}"))
            .to_string()
    };
    assert_eq!(
        variable("agentImage"),
        "'registry.example.com/mirror/nodepatch:0.1.0'"
    );
    assert_eq!(variable("agentNamespace"), "'platform-patching'");
    assert!(
        daemonset_policy["spec"]["matchConditions"][0]["expression"]
            .as_str()
            .expect("expression")
            .contains("'system:serviceaccount:platform-patching:nodepatch-controller'"),
        "{daemonset_policy}"
    );
    let requested_by = object(
        &overlaid,
        "MutatingAdmissionPolicy",
        "nodepatch-run-requested-by",
    );
    assert!(
        requested_by["spec"]["variables"][0]["expression"]
            .as_str()
            .expect("expression")
            .contains("'system:serviceaccount:platform-patching:nodepatch-controller'"),
        "{requested_by}"
    );
    for leftover in ["nodepatch-system", "nodepatch-agents", "ghcr.io/"] {
        assert!(
            !overlay.contains(leftover),
            "{leftover} left in the overlay's output"
        );
    }
    let samples = run(kubectl().args(["kustomize", "config/samples"]));
    dry_run_apply(&samples);
}

fn crd_schema_has_run_nodes() -> bool {
    let out = run(kubectl().args([
        "get",
        "crd",
        "patchruns.nodepatch.dev",
        "-o",
        "jsonpath={.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.nodes.type}",
    ]));
    out.trim() == "array"
}

/// `helm upgrade` from the previous chart release (PREVIOUS_CHART_PACKAGE) (CRDs in crds/, untouched by
/// upgrades) to this one upgrades the CRDs: spec.nodes of PatchRun, new since, is served.
#[tokio::test]
async fn helm_upgrade_from_the_previous_chart_upgrades_the_crds() {
    let Some(client) = support::cluster().await else {
        return;
    };
    let _turn = CLUSTER.lock().await;
    support::ensure_crds(&client).await;
    let previous = tempfile::tempdir().expect("temp dir");
    // The previous release's chart package (0.1.0, as of commit 22f9796), kept in the repo so
    // the test needs no git history (CI may clone shallow).
    run(Command::new("tar")
        .arg("-xzf")
        .arg(support::repo_root().join(PREVIOUS_CHART_PACKAGE))
        .arg("-C")
        .arg(previous.path()));
    let previous_chart = previous.path().join("nodepatch");

    // The previous CRDs are what a cluster installed from that chart serves.
    run(kubectl()
        .args([
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=nodepatch-tests",
            "-f",
        ])
        .arg(previous_chart.join("crds")));
    assert!(
        !crd_schema_has_run_nodes(),
        "precondition: the previous chart's PatchRun CRD has no spec.nodes"
    );

    let (release, namespace) = ("np-upgrade", "np-upgrade");
    // Namespaced objects only in names of this test; no cluster roles or policies, which other
    // tests of this cluster own under the previous chart's fixed names.
    let sets = [
        "agent.namespace.name=np-upgrade-agents",
        "serviceAccount.controller.name=np-upgrade-controller",
        "serviceAccount.agent.name=np-upgrade-agent",
        "controller.replicas=0",
        "rbac.create=false",
        "admissionPolicy.enabled=false",
    ];
    let with_sets = |cmd: &mut Command| {
        for s in sets {
            cmd.args(["--set", s]);
        }
    };
    let _ = helm_cluster()
        .args(["uninstall", release, "-n", namespace])
        .output();
    let mut install = helm_cluster();
    install
        .args(["install", release])
        .arg(&previous_chart)
        .args(["-n", namespace, "--create-namespace"]);
    with_sets(&mut install);
    run(&mut install);
    assert!(!crd_schema_has_run_nodes(), "installing changed no CRD");

    // CRDs installed from crds/ belong to no release: the first upgrade adopts them
    // (docs/upgrading.md).
    let mut upgrade = helm_cluster();
    upgrade
        .args(["upgrade", release, "charts/nodepatch", "-n", namespace])
        .arg("--take-ownership");
    with_sets(&mut upgrade);
    run(&mut upgrade);
    assert!(
        crd_schema_has_run_nodes(),
        "helm upgrade did not upgrade the PatchRun CRD"
    );
    // Served, not only declared: a run with spec.nodes keeps them (not pruned).
    let run_yaml = "apiVersion: nodepatch.dev/v1alpha1\nkind: PatchRun\nmetadata:\n  name: upgrade-probe\nspec:\n  policyRef: p\n  operation: Scan\n  nodes: [node-a]\n";
    let mut child = kubectl()
        .args(["create", "--dry-run=server", "-o", "json", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(run_yaml.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("kubectl create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(created["spec"]["nodes"], serde_json::json!(["node-a"]));

    // A second upgrade is an ordinary one, and uninstalling keeps the CRDs (crds.keep).
    let mut again = helm_cluster();
    again.args(["upgrade", release, "charts/nodepatch", "-n", namespace]);
    with_sets(&mut again);
    run(&mut again);
    run(helm_cluster().args(["uninstall", release, "-n", namespace]));
    assert!(
        crd_schema_has_run_nodes(),
        "helm uninstall removed a kept CRD"
    );

    // Leave the CRDs as other tests expect them: owned by no release.
    for crd in nodepatch::api::crds() {
        let name = crd.metadata.name.clone().expect("name");
        run(kubectl().args([
            "annotate",
            "crd",
            &name,
            "meta.helm.sh/release-name-",
            "meta.helm.sh/release-namespace-",
            "helm.sh/resource-policy-",
        ]));
        run(kubectl().args([
            "label",
            "crd",
            &name,
            "app.kubernetes.io/managed-by-",
            "app.kubernetes.io/instance-",
            "app.kubernetes.io/name-",
            "app.kubernetes.io/version-",
            "helm.sh/chart-",
        ]));
    }
    support::ensure_crds(&client).await;
    let _ = kubectl()
        .args([
            "delete",
            "namespace",
            namespace,
            "np-upgrade-agents",
            "--wait=false",
        ])
        .output();
}
