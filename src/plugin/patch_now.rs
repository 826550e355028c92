//! `kubectl nodepatch patch-now POLICY`: create a manual PatchRun of the policy (trigger Manual:
//! windows ignored, rollout limits kept) and, with `--wait`, follow its node counts until it
//! finishes, as a one-line progress bar on a terminal or a line per change otherwise.

use std::collections::BTreeSet;
use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::args::{OperationChoice, PatchNowArgs, RebootChoice};
use super::connection::{get_named, node_labels};
use super::error::PluginError;
use super::report::policy_nodes;
use super::status::done;
use crate::api::{PatchPolicy, PatchRun, RunPhase};

/// Longest policy-name part of a generated run name: with `-preview-` (the longest word) and
/// the API server's five random characters the name stays within the 63 characters a run name
/// may have.
const NAME_PREFIX_MAX: usize = 49;

/// How often `--wait` reads the run.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The `generateName` of a manual run of `policy`: `<policy>-<word>-` (`now`, `preview`; the
/// policy part cut to [`NAME_PREFIX_MAX`] and to a valid name ending).
pub fn generate_name(policy: &str, word: &str) -> String {
    let cut: String = policy.chars().take(NAME_PREFIX_MAX).collect();
    format!("{}-{word}-", cut.trim_end_matches(['-', '.']))
}

/// The nodes a manual run names: `--nodes` as given (each must be covered by the policy's
/// selector, `covered`), or the covered nodes `-l` selects (`selected`); empty for every member.
pub fn node_subset(
    policy: &str,
    nodes: &[String],
    selected: Option<&BTreeSet<String>>,
    covered: &BTreeSet<String>,
) -> Result<Vec<String>, PluginError> {
    if let Some(selected) = selected {
        let subset: Vec<String> = selected.intersection(covered).cloned().collect();
        if subset.is_empty() {
            return Err(PluginError::Refused(format!(
                "no node of policy {policy:?} matches the selector"
            )));
        }
        return Ok(subset);
    }
    let outside: Vec<&str> = nodes
        .iter()
        .filter(|n| !covered.contains(*n))
        .map(String::as_str)
        .collect();
    if !outside.is_empty() {
        return Err(PluginError::Refused(format!(
            "not nodes of policy {policy:?}: {}",
            outside.join(", ")
        )));
    }
    let mut subset = nodes.to_vec();
    subset.sort();
    subset.dedup();
    Ok(subset)
}

/// The PatchRun `patch-now` creates (`nodes`: a subset of the policy's members, or empty).
pub fn manual_run(
    policy: &str,
    operation: OperationChoice,
    reboot: Option<RebootChoice>,
    nodes: &[String],
) -> PatchRun {
    let mut spec = json!({
        "policyRef": policy,
        "operation": match operation {
            OperationChoice::Install => "Install",
            OperationChoice::Scan => "Scan",
        },
        "trigger": "Manual",
    });
    if !nodes.is_empty() {
        spec["nodes"] = json!(nodes);
    }
    if let Some(r) = reboot {
        spec["rebootOption"] = json!(match r {
            RebootChoice::RebootIfNeeded => "RebootIfNeeded",
            RebootChoice::NoReboot => "NoReboot",
        });
    }
    serde_json::from_value(json!({
        "apiVersion": "nodepatch.dev/v1alpha1",
        "kind": "PatchRun",
        "metadata": {"generateName": generate_name(policy, "now")},
        "spec": spec,
    }))
    .expect("a manual PatchRun literal deserialises")
}

/// One progress line: a bar of `width` cells, done/total nodes, wave, phase and failures.
pub fn progress_line(run: &PatchRun, width: usize) -> String {
    let status = run.status.clone().unwrap_or_default();
    let (finished, total) = (done(&status.nodes), status.nodes.total);
    let filled = if total == 0 {
        0
    } else {
        (finished as usize * width) / total as usize
    };
    let mut line = format!(
        "{} [{}{}] {finished}/{total} nodes, wave {}, {}",
        run.name_any(),
        "#".repeat(filled.min(width)),
        "-".repeat(width - filled.min(width)),
        status.current_wave,
        status.phase.as_str()
    );
    if status.nodes.failed > 0 {
        line.push_str(&format!(", {} failed", status.nodes.failed));
    }
    line
}

/// The outcome of a finished run: `Ok` with its summary when it Succeeded.
pub fn outcome(run: &PatchRun) -> Result<String, PluginError> {
    let status = run.status.clone().unwrap_or_default();
    let message = status.message.map(|m| format!(": {m}")).unwrap_or_default();
    let text = format!(
        "run {:?} finished {}{message}",
        run.name_any(),
        status.phase.as_str()
    );
    if status.phase == RunPhase::Succeeded {
        Ok(text + "\n")
    } else {
        Err(PluginError::Outcome(text))
    }
}

/// Follow `name` until it finishes (or `timeout` passes), drawing progress on stderr.
pub async fn wait_for(
    client: &Client,
    name: &str,
    timeout: Option<Duration>,
) -> Result<PatchRun, PluginError> {
    let api: Api<PatchRun> = Api::all(client.clone());
    let tty = std::io::stderr().is_terminal();
    let started = tokio::time::Instant::now();
    let mut last = String::new();
    loop {
        let run = api
            .get_opt(name)
            .await
            .map_err(PluginError::api(format!("reading run {name:?}")))?
            .ok_or_else(|| PluginError::NotFound {
                kind: "run",
                name: name.to_string(),
            })?;
        let line = progress_line(&run, 30);
        let mut err = std::io::stderr().lock();
        if tty {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else if line != last {
            let _ = writeln!(err, "{line}");
        }
        last = line;
        if run.status.as_ref().is_some_and(|s| s.phase.is_finished()) {
            if tty {
                let _ = writeln!(err);
            }
            return Ok(run);
        }
        if let Some(t) = timeout
            && started.elapsed() >= t
        {
            if tty {
                let _ = writeln!(err);
            }
            return Err(PluginError::Outcome(format!(
                "run {name:?} not finished after {}",
                crate::schedule::duration::format_duration(
                    jiff::SignedDuration::try_from(t).unwrap_or(jiff::SignedDuration::MAX)
                )
            )));
        }
        drop(err);
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// `--timeout` (`30s`, `10m`, `1h30m`) as a duration.
pub fn parse_timeout(text: Option<&str>) -> Result<Option<Duration>, PluginError> {
    text.map(|t| {
        crate::schedule::duration::parse_duration(t)
            .ok()
            .and_then(|d| Duration::try_from(d).ok())
            .ok_or_else(|| PluginError::Refused(format!("--timeout {t:?} is not a duration")))
    })
    .transpose()
}

/// Runs `patch-now`: the created run's name (and with `--wait` its outcome).
pub async fn run(client: &Client, args: &PatchNowArgs) -> Result<String, PluginError> {
    let timeout = parse_timeout(args.timeout.as_deref())?;
    let policy: PatchPolicy = get_named(client, "policy", &args.policy).await?;
    let nodes = if args.nodes.is_empty() && args.selector.is_none() {
        vec![]
    } else {
        let covered = policy_nodes(&policy, &node_labels(client, None).await?)
            .map_err(|e| PluginError::Refused(format!("policy {:?}: spec.{e}", args.policy)))?;
        let selected = match &args.selector {
            Some(s) => Some(node_labels(client, Some(s)).await?.into_keys().collect()),
            None => None,
        };
        node_subset(&args.policy, &args.nodes, selected.as_ref(), &covered)?
    };
    let run = manual_run(&args.policy, args.operation, args.reboot_option, &nodes);
    let created = Api::<PatchRun>::all(client.clone())
        .create(&PostParams::default(), &run)
        .await
        .map_err(PluginError::api(format!(
            "creating a run of policy {:?}",
            args.policy
        )))?;
    let name = created.name_any();
    let mut out = format!("run {name:?} created\n");
    if args.wait {
        // The creation line is shown before the progress, not only at the end.
        print!("{out}");
        let _ = std::io::stdout().flush();
        out.clear();
        let finished = wait_for(client, &name, timeout).await?;
        out.push_str(&outcome(&finished)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(phase: &str, nodes: serde_json::Value) -> PatchRun {
        serde_json::from_value(json!({
            "apiVersion": "nodepatch.dev/v1alpha1", "kind": "PatchRun",
            "metadata": {"name": "web-now-abcde"},
            "spec": {"policyRef": "web", "operation": "Install"},
            "status": {"phase": phase, "nodes": nodes, "currentWave": 2, "message": "m"},
        }))
        .expect("run")
    }

    #[test]
    fn generated_names_fit_the_run_name_limit_and_end_validly() {
        assert_eq!(generate_name("web", "now"), "web-now-");
        let long = format!("{}-{}", "a".repeat(48), "b".repeat(100));
        let g = generate_name(&long, "preview");
        assert_eq!(g, format!("{}-preview-", "a".repeat(48)));
        assert!(g.len() + 5 <= 63, "{g}");
    }

    #[test]
    fn manual_run_is_manual_with_the_chosen_operation_and_reboot_option() {
        let r = manual_run(
            "web",
            OperationChoice::Scan,
            Some(RebootChoice::NoReboot),
            &["n2".into(), "n1".into()],
        );
        let v = serde_json::to_value(&r).expect("json");
        assert_eq!(v["spec"]["trigger"], "Manual");
        assert_eq!(v["spec"]["operation"], "Scan");
        assert_eq!(v["spec"]["rebootOption"], "NoReboot");
        assert_eq!(v["metadata"]["generateName"], "web-now-");
        assert_eq!(v["spec"]["nodes"], json!(["n2", "n1"]));
        let r = manual_run("web", OperationChoice::Install, None, &[]);
        assert!(r.spec.reboot_option.is_none() && r.spec.nodes.is_empty());
        assert!(
            serde_json::to_value(&r).expect("json")["spec"]
                .get("nodes")
                .is_none()
        );
    }

    #[test]
    fn node_subsets_are_the_policys_nodes_only() {
        let covered: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            node_subset("web", &names(&["c", "a", "c"]), None, &covered).expect("members"),
            names(&["a", "c"])
        );
        let err = node_subset("web", &names(&["a", "x", "y"]), None, &covered).expect_err("x");
        assert_eq!(err.to_string(), "not nodes of policy \"web\": x, y");
        let selected: BTreeSet<String> = ["b", "z"].map(String::from).into();
        assert_eq!(
            node_subset("web", &[], Some(&selected), &covered).expect("selected"),
            names(&["b"])
        );
        let outside: BTreeSet<String> = ["z"].map(String::from).into();
        let err = node_subset("web", &[], Some(&outside), &covered).expect_err("none");
        assert_eq!(
            err.to_string(),
            "no node of policy \"web\" matches the selector"
        );
    }

    #[test]
    fn progress_bar_fills_with_done_nodes_and_names_failures() {
        let r = run(
            "Running",
            json!({"total": 4, "succeeded": 1, "failed": 1, "inProgress": 1, "pending": 1}),
        );
        assert_eq!(
            progress_line(&r, 8),
            "web-now-abcde [####----] 2/4 nodes, wave 2, Running, 1 failed"
        );
        let empty = run("Pending", json!({}));
        assert_eq!(
            progress_line(&empty, 4),
            "web-now-abcde [----] 0/0 nodes, wave 2, Pending"
        );
    }

    #[test]
    fn only_a_succeeded_run_is_a_success() {
        assert!(outcome(&run("Succeeded", json!({}))).is_ok());
        let err = outcome(&run("Halted", json!({}))).expect_err("halted");
        assert_eq!(err.to_string(), "run \"web-now-abcde\" finished Halted: m");
    }
}
