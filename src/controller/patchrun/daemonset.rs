//! The run DaemonSet and the controller flags it is built from: one agent pod per node that
//! carries the run label.

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
    /// The host command agents reboot with, comma-separated argv (empty: the agent's default,
    /// `systemctl reboot`). Each element is one argv entry; nothing goes through a shell.
    #[arg(
        long = "agent-reboot-command",
        env = "NODEPATCH_AGENT_REBOOT_COMMAND",
        value_delimiter = ','
    )]
    pub reboot_command: Vec<String>,
}

/// Name of a run's DaemonSet.
pub fn daemonset_name(run: &str) -> String {
    format!("{DAEMONSET_PREFIX}{run}")
}

/// The run DaemonSet: privileged, hostPID, host `/` at `/host`, tolerates every taint, selects
/// nodes carrying the run label, owned by the run (garbage-collected with it).
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
        // Last: it takes the rest of the line.
        args.push("--reboot-command".into());
        args.extend(reboot.into_iter().cloned());
    }
    let mut pod_spec = json!({
        "nodeSelector": {RUN_LABEL: name},
        "tolerations": [{"operator": "Exists"}],
        "hostPID": true,
        "serviceAccountName": settings.service_account,
        "terminationGracePeriodSeconds": 60,
        "containers": [{
            "name": "agent",
            "image": settings.image,
            "imagePullPolicy": settings.image_pull_policy,
            "args": args,
            "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
            // The image's user is non-root (for the controller); the agent must be root to
            // enter the host's namespaces.
            "securityContext": {"privileged": true, "runAsUser": 0, "runAsNonRoot": false},
            "resources": {
                "requests": {"cpu": settings.cpu_request, "memory": settings.memory_request},
                "limits": {"memory": settings.memory_limit}
            },
            "volumeMounts": [{"name": "host", "mountPath": "/host"}]
        }],
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}]
    });
    if !settings.priority_class.is_empty() {
        pod_spec["priorityClassName"] = json!(settings.priority_class);
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
                json!("--reboot-command"),
                json!("/usr/local/sbin/safe-reboot"),
                json!("--now")
            ]
        );
    }
}
