//! Installing the way platform teams do: the Helm chart lints and renders into objects the real
//! apiserver accepts (default values and every option on), the kustomize tree is generated from
//! the chart and accepted too, and the chart's CRDs are the generated ones.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

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

fn kubectl() -> Command {
    let mut c = Command::new(support::tool("kubectl"));
    c.arg("--kubeconfig")
        .arg(support::kubeconfig_path())
        .current_dir(support::repo_root());
    c
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

#[test]
fn chart_lints_clean_with_default_values_and_every_option() {
    run(helm().args(["lint", "--strict", "charts/nodepatch"]));
    run(helm().args([
        "lint",
        "--strict",
        "charts/nodepatch",
        "-f",
        "charts/nodepatch/ci/all-options-values.yaml",
    ]));
}

#[test]
fn chart_crds_are_the_generated_crds() {
    let root = support::repo_root();
    for entry in std::fs::read_dir(root.join("crds")).expect("crds/") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("file name");
        let chart = root.join("charts/nodepatch/crds").join(name);
        assert_eq!(
            std::fs::read_to_string(&path).expect("crd"),
            std::fs::read_to_string(&chart).unwrap_or_default(),
            "charts/nodepatch/crds/{} differs from crds/: run `make manifests`",
            name.to_string_lossy()
        );
    }
    assert_eq!(
        std::fs::read_dir(root.join("charts/nodepatch/crds"))
            .expect("chart crds")
            .count(),
        5
    );
}

#[test]
fn kustomize_tree_is_generated_from_the_chart() {
    run(Command::new(support::repo_root().join("scripts/gen-config.sh")).arg("--check"));
}

#[tokio::test]
async fn rendered_chart_and_kustomize_tree_are_accepted_by_the_apiserver() {
    let Some(client) = support::cluster().await else {
        return;
    };
    support::ensure_crds(&client).await;
    // Namespaces the rendered objects live in (a dry run does not create them), and stand-ins for
    // the prometheus-operator CRDs of the optional monitoring objects.
    for ns in [
        "nodepatch-system",
        "nodepatch-agents",
        "nodepatch-agents-test",
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

    let defaults = run(helm().args([
        "template",
        "nodepatch",
        "charts/nodepatch",
        "-n",
        "nodepatch-system",
        "--kube-version",
        "1.37.2",
    ]));
    let out = dry_run_apply(&defaults);
    for object in [
        "deployment.apps/nodepatch-controller",
        "validatingadmissionpolicy.admissionregistration.k8s.io/nodepatch-agent-own-report",
        "clusterrole.rbac.authorization.k8s.io/nodepatch-viewer",
    ] {
        assert!(out.contains(object), "{object} not applied:\n{out}");
    }
    let all = run(helm().args([
        "template",
        "nodepatch",
        "charts/nodepatch",
        "-n",
        "nodepatch-system",
        "--kube-version",
        "1.37.2",
        "-f",
        "charts/nodepatch/ci/all-options-values.yaml",
    ]));
    let out = dry_run_apply(&all);
    for object in [
        "servicemonitor.monitoring.coreos.com/nodepatch-controller",
        "prometheusrule.monitoring.coreos.com/nodepatch",
        "configmap/nodepatch-dashboard",
    ] {
        assert!(out.contains(object), "{object} not applied:\n{out}");
    }
    let kustomized = run(kubectl().args(["kustomize", "config/default"]));
    dry_run_apply(&kustomized);
    let samples = run(kubectl().args(["kustomize", "config/samples"]));
    dry_run_apply(&samples);
}
