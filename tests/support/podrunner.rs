//! The e2e pod runner: kwok marks pods Running but runs nothing, so for every pod of a run
//! DaemonSet bound to a simulated node, this starts the real `nodepatch agent` with the pod's
//! args and env, `--host-root` pointing at that node's root (commands through `chroot`), and a
//! kubeconfig holding a real token from the TokenRequest API for the pod's ServiceAccount,
//! bound to the pod, so RBAC (and the node claim) is exercised for real. When the pod goes away
//! the agent process is killed, as the kubelet would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use serde_json::json;

/// One agent process the runner started: which node, when, and until when.
#[derive(Clone, Debug)]
pub struct AgentSpan {
    /// Node the pod was bound to.
    pub node: String,
    /// Pod name.
    pub pod: String,
    /// Agent args as run.
    pub args: Vec<String>,
    /// When the process started.
    pub started: Instant,
    /// When it was killed (pod gone), if it was.
    pub stopped: Option<Instant>,
}

/// Handle of a running pod runner; stops its agents when dropped.
pub struct PodRunner {
    task: tokio::task::JoinHandle<()>,
    children: Arc<Mutex<BTreeMap<String, Child>>>,
    /// Every agent started, in order.
    pub spans: Arc<Mutex<Vec<AgentSpan>>>,
}

impl PodRunner {
    /// Watch agent pods in `namespace` and run each on the root of its node (`roots`, which the
    /// test may extend while the runner runs). A pod on a node without a root is left alone,
    /// like a node whose kubelet never starts it.
    pub fn start(
        client: Client,
        namespace: &str,
        roots: Arc<Mutex<BTreeMap<String, PathBuf>>>,
        log_dir: &Path,
    ) -> PodRunner {
        let children: Arc<Mutex<BTreeMap<String, Child>>> = Arc::default();
        let spans: Arc<Mutex<Vec<AgentSpan>>> = Arc::default();
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let ns = namespace.to_string();
        let log_dir = log_dir.to_path_buf();
        std::fs::create_dir_all(&log_dir).expect("pod runner log dir");
        let (c2, s2) = (children.clone(), spans.clone());
        let task = tokio::spawn(async move {
            let cfg = watcher::Config::default().labels("app.kubernetes.io/name=nodepatch-agent");
            let mut stream = watcher::watcher(pods, cfg).boxed();
            while let Some(event) = stream.next().await {
                let pods: Vec<Pod> = match event {
                    Ok(Event::Apply(p)) | Ok(Event::InitApply(p)) => vec![p],
                    Ok(Event::Delete(p)) => {
                        stop(&c2, &s2, &p.name_any());
                        continue;
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        eprintln!("pod runner: watch error {e}");
                        continue;
                    }
                };
                for pod in pods {
                    let name = pod.name_any();
                    if pod.metadata.deletion_timestamp.is_some() {
                        stop(&c2, &s2, &name);
                        continue;
                    }
                    let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
                        continue;
                    };
                    if c2.lock().expect("children").contains_key(&name) {
                        continue;
                    }
                    let Some(root) = roots.lock().expect("roots").get(&node).cloned() else {
                        continue;
                    };
                    match launch(&client, &ns, &pod, &node, &root, &log_dir).await {
                        Ok((child, args)) => {
                            c2.lock().expect("children").insert(name.clone(), child);
                            s2.lock().expect("spans").push(AgentSpan {
                                node,
                                pod: name,
                                args,
                                started: Instant::now(),
                                stopped: None,
                            });
                        }
                        Err(e) => eprintln!("pod runner: starting agent for {name}: {e:#}"),
                    }
                }
            }
        });
        PodRunner {
            task,
            children,
            spans,
        }
    }

    /// Agent spans so far.
    pub fn spans(&self) -> Vec<AgentSpan> {
        self.spans.lock().expect("spans").clone()
    }
}

impl Drop for PodRunner {
    fn drop(&mut self) {
        self.task.abort();
        for (_, mut child) in std::mem::take(&mut *self.children.lock().expect("children")) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn stop(children: &Mutex<BTreeMap<String, Child>>, spans: &Mutex<Vec<AgentSpan>>, pod: &str) {
    if let Some(mut child) = children.lock().expect("children").remove(pod) {
        let _ = child.kill();
        let _ = child.wait();
        if let Some(span) = spans
            .lock()
            .expect("spans")
            .iter_mut()
            .rev()
            .find(|s| s.pod == pod && s.stopped.is_none())
        {
            span.stopped = Some(Instant::now());
        }
    }
}

/// A kubeconfig file for `token` next to the admin one (same server and CA).
pub fn token_kubeconfig(dir: &Path, name: &str, token: &str) -> PathBuf {
    let admin = std::fs::read_to_string(super::kubeconfig_path()).expect("admin kubeconfig");
    let server = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .expect("server in kubeconfig");
    let ca = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority: "))
        .expect("certificate-authority in kubeconfig");
    let path = dir.join(format!("{name}.kubeconfig"));
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: {name}\n  user:\n    token: {token}\ncontexts:\n- name: local\n  context: {{cluster: local, user: {name}}}\ncurrent-context: local\n"
    );
    std::fs::write(&path, text).expect("write token kubeconfig");
    path
}

/// A token for `service_account`, bound to `pod` (so it carries the pod's node claim).
pub async fn pod_bound_token(
    client: &Client,
    namespace: &str,
    service_account: &str,
    pod: &Pod,
) -> anyhow::Result<String> {
    let sa: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request: TokenRequest = serde_json::from_value(json!({
        "spec": {
            "audiences": [],
            "expirationSeconds": 3600,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod.name_any(), "uid": pod.metadata.uid},
        }
    }))?;
    let status = sa
        .create_token_request(service_account, &PostParams::default(), &request)
        .await?
        .status;
    status
        .and_then(|s| s.token)
        .ok_or_else(|| anyhow::anyhow!("TokenRequest returned no token"))
}

async fn launch(
    client: &Client,
    namespace: &str,
    pod: &Pod,
    node: &str,
    root: &Path,
    log_dir: &Path,
) -> anyhow::Result<(Child, Vec<String>)> {
    let spec = pod
        .spec
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("pod without spec"))?;
    let container = spec
        .containers
        .first()
        .ok_or_else(|| anyhow::anyhow!("pod without containers"))?;
    let sa = spec
        .service_account_name
        .clone()
        .unwrap_or_else(|| "default".into());
    let token = pod_bound_token(client, namespace, &sa, pod).await?;
    let kubeconfig = token_kubeconfig(log_dir, &pod.name_any(), &token);
    // The pod's args with the host root replaced by this node's root, run through chroot.
    let mut args: Vec<String> = container.args.clone().unwrap_or_default();
    if let Some(i) = args.iter().position(|a| a == "--host-root") {
        args.remove(i);
        if i < args.len() {
            args.remove(i);
        }
    }
    args.extend([
        "--host-root".to_string(),
        root.display().to_string(),
        "--host-exec".into(),
        "chroot".into(),
    ]);
    let log = std::fs::File::create(log_dir.join(format!("{}.log", pod.name_any())))?;
    let child = Command::new(super::nodepatch_bin())
        .args(&args)
        .env("NODE_NAME", node)
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info")
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    Ok((child, args))
}
