//! The run DaemonSet and the controller flags it is built from: one agent pod per node that
//! carries the run label.

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::api::{PatchRun, RUN_LABEL};

/// Prefix of run DaemonSet names.
pub const DAEMONSET_PREFIX: &str = "nodepatch-run-";

/// How run DaemonSets are built (from the controller's flags).
#[derive(Clone, Debug, clap::Args)]
pub struct AgentSettings {
    /// Namespace of run DaemonSets (labelled for Pod Security `privileged`).
    #[arg(
        long = "agent-namespace",
        env = "NODEPATCH_AGENT_NAMESPACE",
        default_value = "nodepatch-system"
    )]
    pub namespace: String,
    /// Agent image (the nodepatch image: the same binary runs controller and agent).
    #[arg(
        long = "agent-image",
        env = "NODEPATCH_AGENT_IMAGE",
        default_value = "ghcr.io/nodepatch/nodepatch:0.1.0"
    )]
    pub image: String,
    /// Image pull policy of the agent container.
    #[arg(
        long = "agent-image-pull-policy",
        env = "NODEPATCH_AGENT_IMAGE_PULL_POLICY",
        default_value = "IfNotPresent"
    )]
    pub image_pull_policy: String,
    /// ServiceAccount of agent pods.
    #[arg(
        long = "agent-service-account",
        env = "NODEPATCH_AGENT_SERVICE_ACCOUNT",
        default_value = "nodepatch-agent"
    )]
    pub service_account: String,
    /// CPU request of the agent container.
    #[arg(
        long = "agent-cpu-request",
        env = "NODEPATCH_AGENT_CPU_REQUEST",
        default_value = "50m"
    )]
    pub cpu_request: String,
    /// Memory request of the agent container.
    #[arg(
        long = "agent-memory-request",
        env = "NODEPATCH_AGENT_MEMORY_REQUEST",
        default_value = "64Mi"
    )]
    pub memory_request: String,
    /// Memory limit of the agent container (package managers run as host units, outside it).
    #[arg(
        long = "agent-memory-limit",
        env = "NODEPATCH_AGENT_MEMORY_LIMIT",
        default_value = "512Mi"
    )]
    pub memory_limit: String,
    /// Priority class of agent pods (empty: none).
    #[arg(
        long = "agent-priority-class",
        env = "NODEPATCH_AGENT_PRIORITY_CLASS",
        default_value = ""
    )]
    pub priority_class: String,
    /// One argv element of the host command agents reboot with; repeat the flag for each, in
    /// order (`--agent-reboot-command=shutdown --agent-reboot-command=-r
    /// --agent-reboot-command=now`; none: the agent's default, `systemctl reboot`). Nothing
    /// goes through a shell; an element may hold commas and start with `-`.
    #[arg(
        long = "agent-reboot-command",
        value_name = "ARG",
        num_args = 1,
        action = clap::ArgAction::Append,
        allow_hyphen_values = true
    )]
    pub reboot_command: Vec<String>,
    /// Image pull secret of agent pods (a Secret in the agent namespace); repeat for several.
    #[arg(
        long = "agent-image-pull-secret",
        env = "NODEPATCH_AGENT_IMAGE_PULL_SECRETS",
        value_delimiter = ',',
        value_parser = parse_object_name
    )]
    pub image_pull_secrets: Vec<String>,
    /// Extra node selector `key=value` of agent pods, beside the run label (a node enters a
    /// run only if it also matches these); repeat for several.
    #[arg(
        long = "agent-node-selector",
        env = "NODEPATCH_AGENT_NODE_SELECTOR",
        value_delimiter = ',',
        value_parser = parse_node_selector
    )]
    pub node_selector: Vec<(String, String)>,
    /// Tolerations of agent pods as a JSON list (default: tolerate every taint, so a node a run
    /// labels always gets its agent; `[]` tolerates none).
    #[arg(
        long = "agent-tolerations-json",
        env = "NODEPATCH_AGENT_TOLERATIONS_JSON",
        value_parser = parse_json::<Vec<Toleration>>
    )]
    pub tolerations: Option<Json<Vec<Toleration>>>,
    /// Affinity of agent pods as a JSON object (default: none).
    #[arg(
        long = "agent-affinity-json",
        env = "NODEPATCH_AGENT_AFFINITY_JSON",
        value_parser = parse_json::<Affinity>
    )]
    pub affinity: Option<Json<Affinity>>,
    /// Resources of the agent container as a JSON object (`{"requests": {...}, "limits":
    /// {...}}`); when set it replaces `--agent-cpu-request`, `--agent-memory-request` and
    /// `--agent-memory-limit`.
    #[arg(
        long = "agent-resources-json",
        env = "NODEPATCH_AGENT_RESOURCES_JSON",
        value_parser = parse_json::<ResourceRequirements>
    )]
    pub resources: Option<Json<ResourceRequirements>>,
    /// Extra environment variable `NAME=VALUE` of the agent container; repeat for several.
    /// `NODE_NAME`, `RUST_LOG` and `NODEPATCH_LOG_FORMAT` are set by nodepatch and refused here.
    #[arg(long = "agent-env", value_parser = parse_agent_env)]
    pub env: Vec<(String, String)>,
    /// Log filter of agents (their `RUST_LOG`, e.g. `info` or `info,nodepatch=debug`; default:
    /// info).
    #[arg(
        long = "agent-log-level",
        env = "NODEPATCH_AGENT_LOG_LEVEL",
        value_parser = parse_log_level
    )]
    pub log_level: Option<String>,
    /// Log format of agents: `text` or `json` (default: text).
    #[arg(long = "agent-log-format", env = "NODEPATCH_AGENT_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// A flag's value parsed from JSON into a Kubernetes type (validated when the controller
/// starts: a bad value stops it with an error naming the flag). Boxed: an Affinity is large and
/// the flags are moved around by value.
#[derive(Clone, Debug, PartialEq)]
pub struct Json<T>(pub Box<T>);

/// Log format of the agents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Environment variables nodepatch sets on the agent itself.
const RESERVED_AGENT_ENV: [&str; 3] = ["NODE_NAME", "RUST_LOG", "NODEPATCH_LOG_FORMAT"];

fn parse_json<T: serde::de::DeserializeOwned>(value: &str) -> Result<Json<T>, String> {
    serde_json::from_str(value)
        .map(|v| Json(Box::new(v)))
        .map_err(|e| format!("not valid JSON for this field: {e}"))
}

/// A Kubernetes object name (DNS subdomain).
fn parse_object_name(value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
    if ok {
        Ok(value.to_string())
    } else {
        Err(format!(
            "`{value}` is not a Secret name (lowercase letters, digits, '-' and '.')"
        ))
    }
}

fn parse_node_selector(value: &str) -> Result<(String, String), String> {
    let (key, val) = value
        .split_once('=')
        .ok_or_else(|| format!("`{value}` is not key=value"))?;
    if key.is_empty() {
        return Err(format!("`{value}` has an empty label key"));
    }
    if key == RUN_LABEL {
        return Err(format!(
            "{RUN_LABEL} is the run label the controller selects nodes with; it cannot be set here"
        ));
    }
    Ok((key.to_string(), val.to_string()))
}

fn parse_agent_env(value: &str) -> Result<(String, String), String> {
    let (name, val) = value
        .split_once('=')
        .ok_or_else(|| format!("`{value}` is not NAME=VALUE"))?;
    let valid_name = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if !valid_name {
        return Err(format!("`{name}` is not an environment variable name"));
    }
    if RESERVED_AGENT_ENV.contains(&name) {
        return Err(format!(
            "{name} is set by nodepatch (use --agent-log-level / --agent-log-format for logging)"
        ));
    }
    Ok((name.to_string(), val.to_string()))
}

fn parse_log_level(value: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::builder()
        .parse(value)
        .map(|_| value.to_string())
        .map_err(|e| format!("not a RUST_LOG filter: {e}"))
}

/// Name of a run's DaemonSet.
pub fn daemonset_name(run: &str) -> String {
    format!("{DAEMONSET_PREFIX}{run}")
}

/// Where the agent keeps its state on the host: the one writable host directory of its pod.
pub const AGENT_STATE_DIR: &str = "/var/lib/nodepatch";

/// The run DaemonSet: privileged, hostPID, host `/` read-only at `/host` with the agent's state
/// directory writable, tolerates every taint, selects nodes carrying the run label, owned by the
/// run (garbage-collected with it). No seccomp profile: privileged containers run Unconfined
/// whatever the profile says (docs/security.md). The admission policy
/// `<fullname>-agent-daemonset` (charts/nodepatch/templates/admissionpolicy.yaml) accepts
/// exactly this shape from the controller: keep them in step.
pub fn run_daemonset(run: &PatchRun, settings: &AgentSettings) -> serde_json::Value {
    let name = run.name_any();
    let owner = run.controller_owner_ref(&());
    let mut args = vec![
        "agent".to_string(),
        "--operation".into(),
        run.spec.operation.as_str().into(),
        "--run".into(),
        name.clone(),
        "--host-root".into(),
        "/host".into(),
    ];
    let reboot: Vec<&String> = settings
        .reboot_command
        .iter()
        .filter(|a| !a.is_empty())
        .collect();
    if !reboot.is_empty() {
        // One flag per argv element, value attached: `-r` or `--check-inhibitors=yes` stay
        // values of the agent's flag, never flags of their own.
        args.extend(reboot.into_iter().map(|a| format!("--reboot-command={a}")));
    }
    let mut node_selector = serde_json::Map::new();
    for (key, value) in &settings.node_selector {
        node_selector.insert(key.clone(), json!(value));
    }
    node_selector.insert(RUN_LABEL.into(), json!(name));
    let tolerations = match &settings.tolerations {
        Some(Json(t)) => json!(t),
        None => json!([{"operator": "Exists"}]),
    };
    let resources = match &settings.resources {
        Some(Json(r)) => json!(r),
        None => json!({
            "requests": {"cpu": settings.cpu_request, "memory": settings.memory_request},
            "limits": {"memory": settings.memory_limit}
        }),
    };
    let mut env = vec![
        json!({"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}),
    ];
    if let Some(level) = &settings.log_level {
        env.push(json!({"name": "RUST_LOG", "value": level}));
    }
    if let Some(format) = settings.log_format {
        env.push(json!({"name": "NODEPATCH_LOG_FORMAT", "value": format.as_str()}));
    }
    for (key, value) in &settings.env {
        env.push(json!({"name": key, "value": value}));
    }
    let mut pod_spec = json!({
        "nodeSelector": node_selector,
        "tolerations": tolerations,
        "hostPID": true,
        "serviceAccountName": settings.service_account,
        // A deleted agent lets its package transaction finish (docs/agent.md).
        "terminationGracePeriodSeconds": crate::rollout::budget::TERMINATION_GRACE.as_secs(),
        "containers": [{
            "name": "agent",
            "image": settings.image,
            "imagePullPolicy": settings.image_pull_policy,
            "args": args,
            "env": env,
            // The image's user is non-root (for the controller); the agent must be root to
            // enter the host's namespaces.
            "securityContext": {"privileged": true, "runAsUser": 0, "runAsNonRoot": false},
            "resources": resources,
            // The agent's own code writes only its state; package managers write the host
            // through nsenter, in the host's mount namespace, not through this mount.
            "volumeMounts": [
                {"name": "host", "mountPath": "/host", "readOnly": true, "recursiveReadOnly": "IfPossible"},
                {"name": "state", "mountPath": format!("/host{AGENT_STATE_DIR}")}
            ]
        }],
        "volumes": [
            {"name": "host", "hostPath": {"path": "/", "type": "Directory"}},
            {"name": "state", "hostPath": {"path": AGENT_STATE_DIR, "type": "DirectoryOrCreate"}}
        ]
    });
    if !settings.priority_class.is_empty() {
        pod_spec["priorityClassName"] = json!(settings.priority_class);
    }
    if !settings.image_pull_secrets.is_empty() {
        pod_spec["imagePullSecrets"] = settings
            .image_pull_secrets
            .iter()
            .map(|name| json!({"name": name}))
            .collect();
    }
    if let Some(Json(affinity)) = &settings.affinity {
        pod_spec["affinity"] = json!(affinity);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "name": daemonset_name(&name),
            "namespace": settings.namespace,
            "labels": {"app.kubernetes.io/name": "nodepatch-agent", "app.kubernetes.io/managed-by": "nodepatch", RUN_LABEL: name},
            "ownerReferences": owner.into_iter().collect::<Vec<_>>(),
        },
        "spec": {
            "selector": {"matchLabels": {RUN_LABEL: name}},
            "updateStrategy": {"type": "OnDelete"},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "nodepatch-agent", RUN_LABEL: name}},
                "spec": pod_spec
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemonset_selects_the_run_label_and_runs_the_agent_privileged() {
        let run = PatchRun::new(
            "r1",
            serde_json::from_value(json!({"policyRef": "p", "operation": "Install"}))
                .expect("spec"),
        );
        let settings = AgentSettings {
            namespace: "nodepatch-system".into(),
            image: "img:1".into(),
            image_pull_policy: "IfNotPresent".into(),
            service_account: "nodepatch-agent".into(),
            cpu_request: "50m".into(),
            memory_request: "64Mi".into(),
            memory_limit: "512Mi".into(),
            priority_class: String::new(),
            reboot_command: vec![],
            image_pull_secrets: vec![],
            node_selector: vec![],
            tolerations: None,
            affinity: None,
            resources: None,
            env: vec![],
            log_level: None,
            log_format: None,
        };
        let ds = run_daemonset(&run, &settings);
        assert_eq!(ds["metadata"]["name"], "nodepatch-run-r1");
        assert_eq!(
            ds["spec"]["template"]["spec"]["nodeSelector"][RUN_LABEL],
            "r1"
        );
        assert_eq!(ds["spec"]["template"]["spec"]["hostPID"], true);
        let c = &ds["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["securityContext"]["privileged"], true);
        assert_eq!(
            c["args"],
            json!([
                "agent",
                "--operation",
                "Install",
                "--run",
                "r1",
                "--host-root",
                "/host"
            ])
        );
        assert_eq!(
            ds["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"],
            "/"
        );
        let custom = AgentSettings {
            reboot_command: vec!["/usr/local/sbin/safe-reboot".into(), "--now".into()],
            ..settings
        };
        let ds = run_daemonset(&run, &custom);
        let args = &ds["spec"]["template"]["spec"]["containers"][0]["args"];
        assert_eq!(
            args.as_array().expect("args")[7..],
            [
                json!("--reboot-command=/usr/local/sbin/safe-reboot"),
                json!("--reboot-command=--now")
            ]
        );
    }

    #[test]
    fn reboot_commands_with_options_reach_the_agent_one_flag_per_element() {
        for (flags, argv) in [
            (
                &[
                    "--agent-reboot-command=systemctl",
                    "--agent-reboot-command=reboot",
                    "--agent-reboot-command=--check-inhibitors=yes",
                ][..],
                &["systemctl", "reboot", "--check-inhibitors=yes"][..],
            ),
            (
                &[
                    "--agent-reboot-command=shutdown",
                    "--agent-reboot-command",
                    "-r",
                    "--agent-reboot-command=now",
                ],
                &["shutdown", "-r", "now"],
            ),
            (
                &[
                    "--agent-reboot-command=/sbin/safe-reboot",
                    "--agent-reboot-command=--reason=a,b",
                ],
                &["/sbin/safe-reboot", "--reason=a,b"],
            ),
        ] {
            let settings = parse(flags).unwrap_or_else(|e| panic!("{flags:?}: {e}"));
            assert_eq!(settings.reboot_command, argv);
            let ds = run_daemonset(&run(), &settings);
            let args = ds["spec"]["template"]["spec"]["containers"][0]["args"]
                .as_array()
                .expect("args")
                .clone();
            let reboot: Vec<String> = argv
                .iter()
                .map(|a| format!("--reboot-command={a}"))
                .collect();
            assert_eq!(
                args[7..],
                reboot.iter().map(|a| json!(a)).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn agent_pods_mount_the_host_read_only_but_their_state_directory() {
        let ds = run_daemonset(&run(), &parse(&[]).expect("no flags"));
        let pod = &ds["spec"]["template"]["spec"];
        assert_eq!(
            pod["volumes"],
            json!([
                {"name": "host", "hostPath": {"path": "/", "type": "Directory"}},
                {"name": "state", "hostPath": {"path": "/var/lib/nodepatch", "type": "DirectoryOrCreate"}}
            ])
        );
        assert_eq!(
            pod["containers"][0]["volumeMounts"],
            json!([
                {"name": "host", "mountPath": "/host", "readOnly": true, "recursiveReadOnly": "IfPossible"},
                {"name": "state", "mountPath": "/host/var/lib/nodepatch"}
            ])
        );
    }

    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        agent: AgentSettings,
    }

    fn parse(flags: &[&str]) -> Result<AgentSettings, clap::Error> {
        use clap::Parser;
        Flags::try_parse_from(std::iter::once("controller").chain(flags.iter().copied()))
            .map(|f| f.agent)
    }

    fn run() -> PatchRun {
        PatchRun::new(
            "r1",
            serde_json::from_value(json!({"policyRef": "p", "operation": "Scan"})).expect("spec"),
        )
    }

    #[test]
    fn default_agent_pods_tolerate_every_taint_and_get_only_node_name() {
        let ds = run_daemonset(&run(), &parse(&[]).expect("no flags"));
        let pod = &ds["spec"]["template"]["spec"];
        assert_eq!(pod["tolerations"], json!([{"operator": "Exists"}]));
        assert_eq!(pod["nodeSelector"], json!({RUN_LABEL: "r1"}));
        assert!(pod.get("imagePullSecrets").is_none());
        assert!(pod.get("affinity").is_none());
        let c = &pod["containers"][0];
        assert_eq!(
            c["env"],
            json!([{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}])
        );
        assert_eq!(
            c["resources"],
            json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}})
        );
    }

    #[test]
    fn agent_flags_reach_the_run_daemonset() {
        let settings = parse(&[
            "--agent-image-pull-secret=regcred",
            "--agent-image-pull-secret=mirror.creds",
            "--agent-node-selector=kubernetes.io/os=linux",
            "--agent-node-selector=pool=general",
            r#"--agent-tolerations-json=[{"key":"dedicated","operator":"Equal","value":"db","effect":"NoSchedule"}]"#,
            r#"--agent-affinity-json={"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"kubernetes.io/arch","operator":"In","values":["amd64"]}]}]}}}"#,
            r#"--agent-resources-json={"requests":{"cpu":"10m","memory":"32Mi"},"limits":{"cpu":"1","memory":"1Gi"}}"#,
            "--agent-env=HTTPS_PROXY=http://proxy.example:3128",
            "--agent-env=NO_PROXY=10.0.0.0/8,.svc",
            "--agent-log-level=info,nodepatch=debug",
            "--agent-log-format=json",
        ])
        .expect("valid flags");
        let ds = run_daemonset(&run(), &settings);
        let pod = &ds["spec"]["template"]["spec"];
        assert_eq!(
            pod["imagePullSecrets"],
            json!([{"name": "regcred"}, {"name": "mirror.creds"}])
        );
        assert_eq!(
            pod["nodeSelector"],
            json!({"kubernetes.io/os": "linux", "pool": "general", RUN_LABEL: "r1"})
        );
        assert_eq!(
            pod["tolerations"],
            json!([{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}])
        );
        assert_eq!(
            pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
                [0]["matchExpressions"][0]["values"],
            json!(["amd64"])
        );
        let c = &pod["containers"][0];
        assert_eq!(
            c["resources"],
            json!({"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
        );
        assert_eq!(
            c["env"],
            json!([
                {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "RUST_LOG", "value": "info,nodepatch=debug"},
                {"name": "NODEPATCH_LOG_FORMAT", "value": "json"},
                {"name": "HTTPS_PROXY", "value": "http://proxy.example:3128"},
                {"name": "NO_PROXY", "value": "10.0.0.0/8,.svc"}
            ])
        );
        // `[]` is a choice (tolerate nothing), not "unset".
        let none = parse(&["--agent-tolerations-json=[]"]).expect("empty list");
        assert_eq!(
            run_daemonset(&run(), &none)["spec"]["template"]["spec"]["tolerations"],
            json!([])
        );
    }

    #[test]
    fn bad_agent_flags_stop_the_controller_naming_the_flag() {
        for (flag, value) in [
            ("--agent-tolerations-json", "{\"operator\":\"Exists\"}"),
            ("--agent-tolerations-json", "[{\"operator\": 1}]"),
            ("--agent-affinity-json", "not json"),
            ("--agent-resources-json", "{\"requests\": []}"),
            ("--agent-node-selector", "no-equals-sign"),
            ("--agent-node-selector", "nodepatch.dev/run=x"),
            ("--agent-image-pull-secret", "Bad_Name"),
            ("--agent-env", "RUST_LOG=debug"),
            ("--agent-env", "NODE_NAME=x"),
            ("--agent-env", "1BAD=x"),
            ("--agent-env", "NOVALUE"),
            ("--agent-log-level", "nodepatch=loud"),
            ("--agent-log-format", "xml"),
        ] {
            let arg = format!("{flag}={value}");
            let err = parse(&[&arg]).expect_err(&arg).to_string();
            assert!(err.contains(flag), "{arg}: the error names the flag: {err}");
        }
    }
}
