//! The real `kubectl-nodepatch` binary against the local control plane: the golden fleet of
//! `tests/fixtures/plugin/fleet.yaml` is written to the API server (spec as a user, status with
//! the field manager of its writer: reports as the agent, the rest as the controller), and every
//! read command's output must equal the golden files the unit tests check the row builders
//! against. Errors for a missing policy, node, report, package, run or context exit 1 with one
//! line naming it; usage errors exit 2; every command's help has examples; suspend, resume,
//! cancel and patch-now change exactly the fields they promise.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use nodepatch::api::{
    AGENT_MANAGER, AGENT_PREVIEW_MANAGER, CONTROLLER_MANAGER, MaintenanceWindow, NodePatchReport,
    Operation, PatchBaseline, PatchBaselineSpec, PatchPolicy, PatchRun, RunTrigger,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const FLEET_SELECTOR: &str = "plugin-test.nodepatch.dev/fleet=golden";

fn fixtures() -> PathBuf {
    support::repo_root().join("tests/fixtures/plugin")
}

fn golden(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(name))
        .unwrap_or_else(|e| panic!("golden file {name}: {e}"))
}

/// Run `kubectl-nodepatch --kubeconfig <admin> args…` (no `$KUBECONFIG`).
fn plugin(args: &[&str]) -> Output {
    plugin_with(&support::kubeconfig_path(), args)
}

fn plugin_with(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-nodepatch"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run kubectl-nodepatch")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The command succeeds and prints exactly the golden file.
fn assert_output_is_golden(args: &[&str], file: &str) {
    let out = plugin(args);
    assert!(
        out.status.success(),
        "{args:?}: {:?}\n{}",
        out.status,
        stderr(&out)
    );
    let expected = golden(file);
    let actual = stdout(&out);
    assert!(
        actual == expected,
        "{args:?} differs from {file}\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

/// The command exits 1 with one line on stderr, equal to `line`.
fn assert_fails_with(args: &[&str], line: &str) {
    let out = plugin(args);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
    assert_eq!(stderr(&out), format!("error: {line}\n"), "{args:?}");
    assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
}

/// Delete (if present), create with its spec, then server-side apply its status as `manager`.
async fn put<K>(client: &Client, mut value: Value, manager: Option<&str>)
where
    K: kube::Resource<Scope = kube::core::ClusterResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    let name = value["metadata"]["name"]
        .as_str()
        .expect("fixture name")
        .to_string();
    let status = value.as_object_mut().and_then(|o| o.remove("status"));
    delete_and_wait(&api, &name).await;
    let object: K = serde_json::from_value(value.clone()).expect("fixture object");
    api.create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    if let (Some(status), Some(manager)) = (status, manager) {
        let body = json!({
            "apiVersion": value["apiVersion"], "kind": value["kind"], "status": status,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&body),
        )
        .await
        .unwrap_or_else(|e| panic!("status of {name}: {e}"));
    }
}

async fn delete_and_wait<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    // The fixture is this test's own object: a finalizer a controller of another test added
    // (and can no longer remove, having exited) must not keep it alive.
    let _ = api
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await;
    let _ = api.delete(name, &DeleteParams::default()).await;
    support::eventually_true(Duration::from_secs(30), &format!("{name} gone"), || {
        let api = api.clone();
        let name = name.to_string();
        async move { matches!(api.get_opt(&name).await, Ok(None)) }
    })
    .await;
}

/// Write the golden fleet (replacing what an earlier run left).
async fn write_fleet(client: &Client) {
    support::ensure_crds(client).await;
    let text = std::fs::read_to_string(fixtures().join("fleet.yaml")).expect("fleet.yaml");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("fleet.yaml parses");
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let kind = doc["kind"].as_str().expect("kind").to_string();
        match kind.as_str() {
            "Node" => put::<Node>(client, doc, None).await,
            "PatchBaseline" => put::<PatchBaseline>(client, doc, None).await,
            "MaintenanceWindow" => {
                put::<MaintenanceWindow>(client, doc, Some(CONTROLLER_MANAGER)).await
            }
            "PatchPolicy" => put::<PatchPolicy>(client, doc, Some(CONTROLLER_MANAGER)).await,
            "PatchRun" => put::<PatchRun>(client, doc, Some(CONTROLLER_MANAGER)).await,
            "NodePatchReport" => put::<NodePatchReport>(client, doc, Some(AGENT_MANAGER)).await,
            "Event" => {
                let events: Api<Event> = Api::namespaced(client.clone(), "default");
                let name = doc["metadata"]["name"].as_str().expect("name").to_string();
                delete_and_wait(&events, &name).await;
                let event: Event = serde_json::from_value(doc).expect("fixture Event");
                events
                    .create(&PostParams::default(), &event)
                    .await
                    .unwrap_or_else(|e| panic!("create Event {name}: {e}"));
            }
            other => panic!("fleet.yaml: unexpected kind {other}"),
        }
    }
}

#[tokio::test]
async fn read_commands_print_the_golden_files_and_missing_things_are_named() {
    let Some(client) = support::cluster().await else {
        return;
    };
    write_fleet(&client).await;
    let l = FLEET_SELECTOR;
    for (args, file) in [
        (vec!["report", "-l", l], "report.txt"),
        (vec!["report", "-l", l, "-o", "wide"], "report-wide.txt"),
        (vec!["report", "-l", l, "-o", "csv"], "report.csv"),
        (vec!["report", "-l", l, "-o", "json"], "report.json"),
        (vec!["report", "-l", l, "-o", "yaml"], "report.yaml"),
        (
            vec!["report", "--policy", "plugin-db"],
            "report-policy-db.txt",
        ),
        (vec!["report", "--patches", "-l", l], "report-patches.txt"),
        (
            vec!["report", "--patches", "-l", l, "-o", "csv"],
            "report-patches.csv",
        ),
        (
            vec!["report", "--patches", "-l", l, "-o", "json"],
            "report-patches.json",
        ),
        (vec!["status", "-l", l], "status.txt"),
        (vec!["status", "-l", l, "-o", "wide"], "status-wide.txt"),
        (vec!["status", "-l", l, "-o", "json"], "status.json"),
        (
            vec![
                "why",
                "plugin-web-1",
                "np-sec",
                "--now",
                "2026-01-10T00:00:00Z",
            ],
            "why-web-1-np-sec.txt",
        ),
        (
            vec![
                "why",
                "plugin-web-1",
                "np-sec",
                "--now",
                "2026-01-10T00:00:00Z",
                "-o",
                "json",
            ],
            "why-web-1-np-sec.json",
        ),
        // The requester of the live run is the test's admin either way: written by the fixture
        // or, where the chart's admission policy is installed, stamped by the apiserver.
        (vec!["history", "plugin-db"], "history.txt"),
        (vec!["history", "plugin-db", "-o", "csv"], "history.csv"),
        (
            vec!["history", "plugin-db", "-o", "json", "-n", "default"],
            "history.json",
        ),
        (
            vec!["history", "plugin-db", "--node", "plugin-db-1"],
            "history-node-db-1.txt",
        ),
        (
            vec!["history", "plugin-db", "--node", "plugin-db-1", "-o", "csv"],
            "history-node-db-1.csv",
        ),
    ] {
        assert_output_is_golden(&args, file);
    }

    // --state narrows both row kinds.
    let out = plugin(&["report", "-l", l, "--state", "NonCompliant", "-o", "csv"]);
    let nodes: Vec<String> = stdout(&out)
        .lines()
        .skip(1)
        .filter_map(|r| r.split(',').next().map(str::to_owned))
        .collect();
    assert_eq!(nodes, ["plugin-db-1", "plugin-web-1"]);

    // $KUBECONFIG is honoured when --kubeconfig is absent, and --context picks a context.
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-nodepatch"))
        .args(["status", "-l", l])
        .env("KUBECONFIG", support::kubeconfig_path())
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), golden("status.txt"));
    let context = current_context(&support::kubeconfig_path());
    assert_output_is_golden(&["--context", &context, "status", "-l", l], "status.txt");
    assert_fails_with(
        &["--context", "no-such-context", "status"],
        "context \"no-such-context\" not found",
    );

    // Missing things are named, exit 1.
    assert_fails_with(
        &["report", "--policy", "plugin-no-such-policy"],
        "policy \"plugin-no-such-policy\" not found",
    );
    assert_fails_with(
        &["why", "plugin-no-such-node", "np-sec"],
        "node \"plugin-no-such-node\" not found",
    );
    assert_fails_with(
        &["why", "plugin-db-2", "np-sec"],
        "report for node \"plugin-db-2\" not found",
    );
    assert_fails_with(
        &["why", "plugin-web-2", "np-sec"],
        "package \"np-sec\" not in the report of node \"plugin-web-2\" (reports list only non-compliant patches)",
    );
    assert_fails_with(
        &["cancel", "plugin-no-such-run"],
        "run \"plugin-no-such-run\" not found",
    );
    assert_fails_with(
        &["cancel", "plugin-db-install-1"],
        "run \"plugin-db-install-1\" already finished (Succeeded): nothing to cancel",
    );
    assert_fails_with(
        &["suspend", "plugin-no-such-policy"],
        "policy \"plugin-no-such-policy\" not found",
    );
    assert_fails_with(
        &["patch-now", "plugin-no-such-policy"],
        "policy \"plugin-no-such-policy\" not found",
    );

    assert_fails_with(
        &["history", "plugin-no-such-policy"],
        "policy \"plugin-no-such-policy\" not found",
    );
    assert_fails_with(
        &["history", "--node", "plugin-no-such-node"],
        "node \"plugin-no-such-node\" not found",
    );
    // Pruned runs come from Events of the namespace -n names: none in another one.
    let out = plugin(&["history", "plugin-db", "-n", "kube-system", "-o", "csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out)
            .lines()
            .skip(1)
            .filter(|l| l.ends_with(",true"))
            .count(),
        0,
        "{}",
        stdout(&out)
    );

    preview_waits_for_its_run_and_prints_what_the_draft_changes(&client).await;
    patch_now_runs_on_the_chosen_nodes_of_the_policy(&client).await;
    // The previews left every verdict as it was.
    assert_output_is_golden(&["report", "-l", l], "report.txt");

    // Usage errors exit 2.
    let out = plugin(&["report", "-o", "xml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = plugin(&["why", "plugin-web-1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    remove_fleet(&client).await;
}

/// Delete the golden fleet (and the runs the commands created for its policies), so the
/// controllers of tests that run after this one on the same cluster never act on it.
async fn remove_fleet(client: &Client) {
    let runs: Api<PatchRun> = Api::all(client.clone());
    let text = std::fs::read_to_string(fixtures().join("fleet.yaml")).expect("fleet.yaml");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("fleet.yaml parses");
    let policies: BTreeSet<String> = docs
        .iter()
        .filter(|d| d["kind"] == "PatchPolicy")
        .filter_map(|d| d["metadata"]["name"].as_str().map(String::from))
        .collect();
    for r in runs.list(&ListParams::default()).await.expect("runs").items {
        if policies.contains(&r.spec.policy_ref) {
            delete_and_wait(&runs, &r.name_any()).await;
        }
    }
    for doc in docs.iter().filter(|d| !d.is_null()) {
        let name = doc["metadata"]["name"].as_str().expect("name");
        match doc["kind"].as_str().expect("kind") {
            "Node" => delete_and_wait(&Api::<Node>::all(client.clone()), name).await,
            "PatchBaseline" => {
                delete_and_wait(&Api::<PatchBaseline>::all(client.clone()), name).await
            }
            "MaintenanceWindow" => {
                delete_and_wait(&Api::<MaintenanceWindow>::all(client.clone()), name).await
            }
            "PatchPolicy" => delete_and_wait(&Api::<PatchPolicy>::all(client.clone()), name).await,
            "PatchRun" => delete_and_wait(&runs, name).await,
            "NodePatchReport" => {
                delete_and_wait(&Api::<NodePatchReport>::all(client.clone()), name).await
            }
            // Events expire on their own and no controller acts on them.
            _ => {}
        }
    }
}

const DRAFT: &str = "apiVersion: nodepatch.dev/v1alpha1
kind: PatchBaseline
metadata: {name: stricter}
spec:
  operatingSystem: Debian
  approvalRules:
    - filters: [{key: Priority, values: [\"*\"]}]
      approveAfterDays: 0
      complianceLevel: Critical
      enableNonSecurity: true
";

/// Answer a Preview run of plugin-web that `kubectl nodepatch preview` created (one not in
/// `before`) in the agents' and the controller's place, with `preview.yaml`: the nodes'
/// `status.preview` (as the agents' preview field manager), then the run's status. Returns the
/// run's name.
async fn answer_preview(client: &Client, before: &BTreeSet<String>) -> String {
    let runs: Api<PatchRun> = Api::all(client.clone());
    let run = support::eventually(Duration::from_secs(30), "the Preview run", || {
        let runs = runs.clone();
        async move {
            let list = runs.list(&ListParams::default()).await.ok()?;
            list.items.into_iter().find(|r| {
                r.spec.policy_ref == "plugin-web"
                    && r.spec.operation == Operation::Preview
                    && !before.contains(&r.name_any())
            })
        }
    })
    .await;
    let name = run.name_any();
    let draft: PatchBaselineSpec = serde_json::from_value(
        serde_saphyr::from_str::<Value>(DRAFT).expect("draft")["spec"].clone(),
    )
    .expect("draft spec");
    assert_eq!(
        run.spec.preview.as_ref().map(|p| &p.baseline),
        Some(&draft),
        "the run carries the draft"
    );
    assert!(run.spec.nodes.is_empty(), "--policy previews all its nodes");
    let text = std::fs::read_to_string(fixtures().join("preview.yaml")).expect("preview.yaml");
    let doc: Value = serde_saphyr::from_str(&text).expect("preview.yaml parses");
    let reports: Api<NodePatchReport> = Api::all(client.clone());
    for (node, result) in doc["previews"].as_object().expect("previews") {
        let mut result = result.clone();
        if result["run"] == "this" {
            result["run"] = json!(name);
        }
        reports
            .patch_status(
                node,
                &PatchParams::apply(AGENT_PREVIEW_MANAGER).force(),
                &Patch::Apply(json!({
                    "apiVersion": "nodepatch.dev/v1alpha1", "kind": "NodePatchReport",
                    "status": {"preview": result},
                })),
            )
            .await
            .unwrap_or_else(|e| panic!("preview of {node}: {e}"));
    }
    runs.patch_status(
        &name,
        &PatchParams::apply(CONTROLLER_MANAGER).force(),
        &Patch::Apply(json!({
            "apiVersion": "nodepatch.dev/v1alpha1", "kind": "PatchRun", "status": doc["status"],
        })),
    )
    .await
    .expect("run status");
    name
}

async fn preview_waits_for_its_run_and_prints_what_the_draft_changes(client: &Client) {
    let dir = tempfile::tempdir().expect("tempdir");
    let draft = dir.path().join("stricter.yaml");
    std::fs::write(&draft, DRAFT).expect("draft");
    let draft = draft.to_string_lossy().into_owned();
    let runs: Api<PatchRun> = Api::all(client.clone());
    for (fail_on_noncompliant, format, file) in [
        (false, "table", "preview.txt"),
        (true, "table", "preview.txt"),
        (false, "json", "preview.json"),
    ] {
        let before: BTreeSet<String> = runs
            .list(&ListParams::default())
            .await
            .expect("runs")
            .items
            .iter()
            .map(|r| r.name_any())
            .collect();
        let mut args = vec![
            "preview",
            "-f",
            draft.as_str(),
            "--policy",
            "plugin-web",
            "-o",
            format,
        ];
        if fail_on_noncompliant {
            args.push("--fail-on-noncompliant");
        }
        let child = support::die_with_parent(Command::new(env!("CARGO_BIN_EXE_kubectl-nodepatch")))
            .arg("--kubeconfig")
            .arg(support::kubeconfig_path())
            .args(&args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start preview");
        let name = answer_preview(client, &before).await;
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .expect("join")
            .expect("preview");
        // The generated name has the placeholder's length, so the columns stay aligned.
        let printed = stdout(&out).replace(&name, "plugin-web-preview-abcde");
        assert_eq!(printed, golden(file), "{args:?}");
        if fail_on_noncompliant {
            assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
            assert!(
                stderr(&out).ends_with(
                    "error: would be non-compliant under the draft: plugin-web-2 (1 of 3 nodes)\n"
                ),
                "{}",
                stderr(&out)
            );
        } else {
            assert!(out.status.success(), "{}", stderr(&out));
        }
        let _ = runs.delete(&name, &DeleteParams::default()).await;
    }
    assert_fails_with(
        &["preview", "-f", &draft, "--policy", "plugin-db"],
        "policy \"plugin-db\" is suspended: its runs wait until it is resumed",
    );
    assert_fails_with(
        &["preview", "-f", &draft, "--policy", "plugin-no-such-policy"],
        "policy \"plugin-no-such-policy\" not found",
    );
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        DRAFT.replace("approveAfterDays: 0", "approveAfterDays: soon"),
    )
    .expect("bad draft");
    let out = plugin(&["preview", "-f", &bad.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with(&format!(
            "error: -f {}: at spec.approvalRules[0].approveAfterDays: ",
            bad.display()
        )) && stderr(&out).contains("line 8"),
        "{}",
        stderr(&out)
    );
}

/// `--nodes` and `-l` become the run's `spec.nodes`, only nodes of the policy.
async fn patch_now_runs_on_the_chosen_nodes_of_the_policy(client: &Client) {
    let runs: Api<PatchRun> = Api::all(client.clone());
    for (args, nodes) in [
        (
            vec!["--nodes", "plugin-web-2,plugin-web-1,plugin-web-2"],
            vec!["plugin-web-1", "plugin-web-2"],
        ),
        (
            vec!["-l", "topology.kubernetes.io/zone=zone-a"],
            vec!["plugin-web-1"],
        ),
    ] {
        let mut all = vec!["patch-now", "plugin-web", "--operation", "Scan"];
        all.extend(&args);
        let out = plugin(&all);
        assert!(out.status.success(), "{all:?}: {}", stderr(&out));
        let created = stdout(&out);
        let name = created
            .strip_prefix("run \"")
            .and_then(|r| r.strip_suffix("\" created\n"))
            .unwrap_or_else(|| panic!("unexpected output {created:?}"))
            .to_string();
        let run = runs.get(&name).await.expect("created run");
        assert_eq!(run.spec.nodes, nodes, "{all:?}");
        assert_eq!(run.spec.operation, Operation::Scan);
        let _ = runs.delete(&name, &DeleteParams::default()).await;
    }
    assert_fails_with(
        &[
            "patch-now",
            "plugin-web",
            "--nodes",
            "plugin-web-1,plugin-db-1,plugin-gone",
        ],
        "not nodes of policy \"plugin-web\": plugin-db-1, plugin-gone",
    );
    assert_fails_with(
        &["patch-now", "plugin-web", "-l", "role=db"],
        "no node of policy \"plugin-web\" matches the selector",
    );
    let out = plugin(&["patch-now", "plugin-web", "--nodes", "a", "-l", "role=web"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--nodes and -l exclude each other"
    );
}

fn current_context(kubeconfig: &Path) -> String {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    kc.current_context.expect("current context")
}

#[test]
fn every_command_has_examples_in_its_help() {
    for command in [
        vec!["--help"],
        vec!["status", "--help"],
        vec!["report", "--help"],
        vec!["suspend", "--help"],
        vec!["resume", "--help"],
        vec!["cancel", "--help"],
        vec!["why", "--help"],
        vec!["patch-now", "--help"],
        vec!["preview", "--help"],
        vec!["history", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_kubectl-nodepatch"))
            .args(&command)
            .output()
            .expect("run");
        assert!(out.status.success(), "{command:?}");
        let help = stdout(&out);
        assert!(
            help.contains("Examples:\n  kubectl nodepatch "),
            "{command:?}: {help}"
        );
    }
}

#[tokio::test]
async fn suspend_resume_cancel_and_patch_now_write_what_they_promise() {
    let Some(client) = support::cluster().await else {
        return;
    };
    support::ensure_crds(&client).await;
    let policy = support::unique_name("plugin-ctl");
    let policies: Api<PatchPolicy> = Api::all(client.clone());
    let runs: Api<PatchRun> = Api::all(client.clone());
    let p: PatchPolicy = serde_json::from_value(json!({
        "apiVersion": "nodepatch.dev/v1alpha1", "kind": "PatchPolicy",
        "metadata": {"name": policy},
        "spec": {"nodeSelector": {"matchLabels": {"plugin-test.nodepatch.dev/none": "x"}}},
    }))
    .expect("policy");
    policies
        .create(&PostParams::default(), &p)
        .await
        .expect("create policy");

    let out = plugin(&["suspend", &policy]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("policy {policy:?} suspended\n"));
    assert!(policies.get(&policy).await.expect("policy").spec.suspend);
    let out = plugin(&["suspend", &policy]);
    assert_eq!(
        stdout(&out),
        format!("policy {policy:?} already suspended\n")
    );
    let out = plugin(&["resume", &policy]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!policies.get(&policy).await.expect("policy").spec.suspend);

    // patch-now: a Manual run of the policy, named after it.
    let out = plugin(&["patch-now", &policy, "--reboot-option", "NoReboot"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let created = stdout(&out);
    let name = created
        .strip_prefix("run \"")
        .and_then(|r| r.strip_suffix("\" created\n"))
        .unwrap_or_else(|| panic!("unexpected output {created:?}"))
        .to_string();
    assert!(name.starts_with(&format!("{policy}-now-")), "{name}");
    let run = runs.get(&name).await.expect("created run");
    assert_eq!(run.spec.policy_ref, policy);
    assert_eq!(run.spec.trigger, RunTrigger::Manual);
    assert_eq!(
        run.spec.reboot_option,
        Some(nodepatch::api::RebootOption::NoReboot)
    );

    // cancel: spec.cancel.reason is set; a second cancel with the same reason changes nothing.
    let out = plugin(&["cancel", &name, "--reason", "change freeze"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = runs.get(&name).await.expect("run");
    assert_eq!(
        run.spec.cancel.and_then(|c| c.reason).as_deref(),
        Some("change freeze")
    );
    let out = plugin(&["cancel", &name, "--reason", "change freeze"]);
    assert_eq!(
        stdout(&out),
        format!("run {name:?} already being canceled\n")
    );

    // --wait follows the run: it ends as the run's phase says (here written by the test in the
    // controller's place), exit 0 only for Succeeded.
    let child = support::die_with_parent(Command::new(env!("CARGO_BIN_EXE_kubectl-nodepatch")))
        .arg("--kubeconfig")
        .arg(support::kubeconfig_path())
        .args(["patch-now", &policy, "--operation", "Scan", "--wait"])
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start patch-now --wait");
    let waited = support::eventually(Duration::from_secs(30), "the --wait run", || {
        let runs = runs.clone();
        let (policy, name) = (policy.clone(), name.clone());
        async move {
            let list = runs.list(&ListParams::default()).await.ok()?;
            list.items
                .into_iter()
                .find(|r| r.spec.policy_ref == policy && r.name_any() != name)
        }
    })
    .await
    .name_any();
    for (phase, counts) in [
        (
            "Running",
            json!({"total": 2, "succeeded": 1, "inProgress": 1}),
        ),
        ("Succeeded", json!({"total": 2, "succeeded": 2})),
    ] {
        runs.patch_status(
            &waited,
            &PatchParams::apply(CONTROLLER_MANAGER).force(),
            &Patch::Apply(json!({
                "apiVersion": "nodepatch.dev/v1alpha1", "kind": "PatchRun",
                "status": {"phase": phase, "nodes": counts, "currentWave": 1},
            })),
        )
        .await
        .expect("run status");
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("patch-now --wait");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("run {waited:?} created\nrun {waited:?} finished Succeeded\n")
    );
    let progress = stderr(&out);
    assert!(
        progress.contains(&format!(
            "{waited} [###############---------------] 1/2 nodes, wave 1, Running"
        )),
        "{progress}"
    );
    assert!(
        progress.contains(&format!(
            "{waited} [##############################] 2/2 nodes, wave 1, Succeeded"
        )),
        "{progress}"
    );

    // A run that does not finish in time: exit 1 naming it.
    let out = plugin(&["patch-now", &policy, "--wait", "--timeout", "2s"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).ends_with("not finished after 2s\n"),
        "{}",
        stderr(&out)
    );

    for r in runs.list(&ListParams::default()).await.expect("runs").items {
        if r.spec.policy_ref == policy {
            let _ = runs.delete(&r.name_any(), &DeleteParams::default()).await;
        }
    }
    let _ = policies.delete(&policy, &DeleteParams::default()).await;
}
