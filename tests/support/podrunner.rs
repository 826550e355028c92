//! The e2e pod runner: kwok marks pods Running but runs nothing, so for every pod of a run
//! DaemonSet bound to a simulated node, this starts the real `nodepatch agent` with the pod's
//! args and env, `--host-root` pointing at that node's root (commands through `chroot`), and a
//! kubeconfig holding a real token from the TokenRequest API for the pod's ServiceAccount,
//! bound to the pod, so RBAC (and the node claim) is exercised for real. When the pod goes away
//! the agent process is killed, as the kubelet would.
//!
//! Reboots are simulated: agents get `--reboot-command=touch --reboot-command=/run/nodepatch-e2e-reboot`
//! (run through chroot in the node's root). The runner sees that file, and does what a reboot
//! does: kills the agent, empties the root's /run (a tmpfs), gives the Node a new
//! `status.nodeInfo.bootID` with Ready False then True, and starts the agent again for the
//! same pod (the kubelet restarting its containers after boot).

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

/// Host path (in a node root) the simulated reboot command creates.
pub const REBOOT_MARKER: &str = "run/nodepatch-e2e-reboot";

/// One simulated reboot.
#[derive(Clone, Debug)]
pub struct RebootRecord {
    /// Node rebooted.
    pub node: String,
    /// Boot ID it came back with.
    pub boot_id: String,
    /// When.
    pub at: Instant,
}

/// Handle of a running pod runner; stops its agents when dropped.
pub struct PodRunner {
    task: tokio::task::JoinHandle<()>,
    rebooter: tokio::task::JoinHandle<()>,
    children: Arc<Mutex<BTreeMap<String, Child>>>,
    /// Every agent started, in order.
    pub spans: Arc<Mutex<Vec<AgentSpan>>>,
    /// Every simulated reboot, in order.
    pub reboots: Arc<Mutex<Vec<RebootRecord>>>,
    /// How long a simulated reboot takes: (agent killed → new boot ID and Ready, Ready →
    /// agent started again).
    pub reboot_delays: Arc<Mutex<(std::time::Duration, std::time::Duration)>>,
}

/// What the runner keeps of a running agent to restart it after a simulated reboot.
#[derive(Clone)]
struct Running {
    pod: Pod,
    node: String,
    root: PathBuf,
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
        let running: Arc<Mutex<BTreeMap<String, Running>>> = Arc::default();
        let reboots: Arc<Mutex<Vec<RebootRecord>>> = Arc::default();
        let reboot_delays: Arc<Mutex<(std::time::Duration, std::time::Duration)>> =
            Arc::new(Mutex::new((
                std::time::Duration::from_millis(500),
                std::time::Duration::ZERO,
            )));
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let ns = namespace.to_string();
        let log_dir = log_dir.to_path_buf();
        std::fs::create_dir_all(&log_dir).expect("pod runner log dir");
        let (c2, s2, r2) = (children.clone(), spans.clone(), running.clone());
        let rebooter = tokio::spawn(simulate_reboots(RebootSimulation {
            client: client.clone(),
            namespace: ns.clone(),
            log_dir: log_dir.clone(),
            children: children.clone(),
            spans: spans.clone(),
            running,
            reboots: reboots.clone(),
            delays: reboot_delays.clone(),
        }));
        let task = tokio::spawn(async move {
            let cfg = watcher::Config::default().labels("app.kubernetes.io/name=nodepatch-agent");
            let mut stream = watcher::watcher(pods, cfg).boxed();
            while let Some(event) = stream.next().await {
                let pods: Vec<Pod> = match event {
                    Ok(Event::Apply(p)) | Ok(Event::InitApply(p)) => vec![p],
                    Ok(Event::Delete(p)) => {
                        r2.lock().expect("running").remove(&p.name_any());
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
                        r2.lock().expect("running").remove(&name);
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
                            started(&c2, &s2, &name, &node, child, args);
                            r2.lock().expect("running").insert(
                                name.clone(),
                                Running {
                                    pod: pod.clone(),
                                    node: node.clone(),
                                    root: root.clone(),
                                },
                            );
                        }
                        Err(e) => eprintln!("pod runner: starting agent for {name}: {e:#}"),
                    }
                }
            }
        });
        PodRunner {
            task,
            rebooter,
            children,
            spans,
            reboots,
            reboot_delays,
        }
    }

    /// Make simulated reboots take this long: `down` from the agent's death to the new boot ID
    /// and Ready, then `agent` until the agent runs again.
    pub fn set_reboot_delays(&self, down: std::time::Duration, agent: std::time::Duration) {
        *self.reboot_delays.lock().expect("delays") = (down, agent);
    }

    /// Simulated reboots so far.
    pub fn reboots(&self) -> Vec<RebootRecord> {
        self.reboots.lock().expect("reboots").clone()
    }

    /// Agent spans so far.
    pub fn spans(&self) -> Vec<AgentSpan> {
        self.spans.lock().expect("spans").clone()
    }
}

impl Drop for PodRunner {
    fn drop(&mut self) {
        self.task.abort();
        self.rebooter.abort();
        for (_, mut child) in std::mem::take(&mut *self.children.lock().expect("children")) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Record an agent process started for `pod` on `node`.
fn started(
    children: &Mutex<BTreeMap<String, Child>>,
    spans: &Mutex<Vec<AgentSpan>>,
    pod: &str,
    node: &str,
    child: Child,
    args: Vec<String>,
) {
    children
        .lock()
        .expect("children")
        .insert(pod.to_string(), child);
    spans.lock().expect("spans").push(AgentSpan {
        node: node.to_string(),
        pod: pod.to_string(),
        args,
        started: Instant::now(),
        stopped: None,
    });
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
    // The simulated reboot replaces the pod's reboot command (one flag per argv element).
    args.retain(|a| !a.starts_with("--reboot-command"));
    args.extend([
        "--poll-seconds".to_string(),
        "1".into(),
        "--reboot-command=touch".into(),
        format!("--reboot-command=/{REBOOT_MARKER}"),
    ]);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_dir.join(format!("{}.log", pod.name_any())))?;
    let child = super::die_with_parent(Command::new(super::nodepatch_bin()))
        .args(&args)
        .env("NODE_NAME", node)
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info")
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    Ok((child, args))
}

/// Write the boot ID a node root's agent reads (`/proc/sys/kernel/random/boot_id`; test roots
/// have no /proc mounted).
pub fn write_boot_id(root: &Path, boot_id: &str) {
    let dir = root.join("proc/sys/kernel/random");
    std::fs::create_dir_all(&dir).expect("proc dir in root");
    std::fs::write(dir.join("boot_id"), format!("{boot_id}\n")).expect("write boot_id");
}

/// Watch the roots of running agents for the reboot marker and simulate the reboot.
/// What the reboot simulation shares with the runner.
struct RebootSimulation {
    client: Client,
    namespace: String,
    log_dir: PathBuf,
    children: Arc<Mutex<BTreeMap<String, Child>>>,
    spans: Arc<Mutex<Vec<AgentSpan>>>,
    running: Arc<Mutex<BTreeMap<String, Running>>>,
    reboots: Arc<Mutex<Vec<RebootRecord>>>,
    delays: Arc<Mutex<(std::time::Duration, std::time::Duration)>>,
}

async fn simulate_reboots(sim: RebootSimulation) {
    let RebootSimulation {
        client,
        namespace,
        log_dir,
        children,
        spans,
        running,
        reboots,
        delays,
    } = sim;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let mut crashes: BTreeMap<String, u32> = BTreeMap::new();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        // The kubelet restarts a DaemonSet pod's container that exits (restartPolicy Always),
        // with a growing back-off: an agent that gives up (e.g. the API server was down when
        // it started) runs again. The back-off here is 1 s doubling up to 8 s (the kubelet's
        // starts at 10 s).
        let exited: Vec<(String, Running)> = {
            let mut children = children.lock().expect("children");
            let running = running.lock().expect("running");
            let gone: Vec<String> = children
                .iter_mut()
                .filter_map(|(k, c)| c.try_wait().ok().flatten().map(|_| k.clone()))
                .collect();
            gone.into_iter()
                .filter_map(|k| {
                    children.remove(&k);
                    running.get(&k).map(|r| (k, r.clone()))
                })
                .collect()
        };
        for (pod_name, r) in exited {
            if let Some(span) = spans
                .lock()
                .expect("spans")
                .iter_mut()
                .rev()
                .find(|s| s.pod == pod_name && s.stopped.is_none())
            {
                span.stopped = Some(Instant::now());
            }
            let n = crashes.entry(pod_name.clone()).or_default();
            let backoff = std::time::Duration::from_secs(1 << (*n).min(3));
            *n += 1;
            eprintln!("pod runner: agent of {pod_name} exited; restarting in {backoff:?}");
            tokio::time::sleep(backoff).await;
            if !running.lock().expect("running").contains_key(&pod_name) {
                continue;
            }
            match launch(&client, &namespace, &r.pod, &r.node, &r.root, &log_dir).await {
                Ok((child, args)) => started(&children, &spans, &pod_name, &r.node, child, args),
                Err(e) => eprintln!("pod runner: restarting agent of {pod_name}: {e:#}"),
            }
        }
        let asked: Vec<(String, Running)> = running
            .lock()
            .expect("running")
            .iter()
            .filter(|(_, r)| r.root.join(REBOOT_MARKER).exists())
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect();
        for (pod_name, r) in asked {
            // Shutdown: the agent dies with the host.
            stop(&children, &spans, &pod_name);
            // /run is a tmpfs: emptied by the reboot.
            for entry in std::fs::read_dir(r.root.join("run"))
                .into_iter()
                .flatten()
                .flatten()
            {
                if entry.file_type().is_ok_and(|t| t.is_file()) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
            let count = reboots
                .lock()
                .expect("reboots")
                .iter()
                .filter(|x| x.node == r.node)
                .count();
            let boot_id = format!("boot-{}-{}", r.node, count + 1);
            write_boot_id(&r.root, &boot_id);
            let set = |ready: &str| {
                json!({"status": {
                    "nodeInfo": {"bootID": boot_id},
                    "conditions": [{"type": "Ready", "status": ready, "reason": "E2eReboot",
                        "lastHeartbeatTime": k8s_openapi::jiff::Timestamp::now().to_string(),
                        "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string()}]
                }})
            };
            let params = kube::api::PatchParams::default();
            if let Err(e) = nodes
                .patch_status(&r.node, &params, &kube::api::Patch::Strategic(set("False")))
                .await
            {
                eprintln!("pod runner: reboot of {}: {e}", r.node);
            }
            let (down, agent) = *delays.lock().expect("delays");
            tokio::time::sleep(down).await;
            if let Err(e) = nodes
                .patch_status(&r.node, &params, &kube::api::Patch::Strategic(set("True")))
                .await
            {
                eprintln!("pod runner: reboot of {}: {e}", r.node);
            }
            reboots.lock().expect("reboots").push(RebootRecord {
                node: r.node.clone(),
                boot_id: boot_id.clone(),
                at: Instant::now(),
            });
            // Boot: the kubelet starts the pod's containers again.
            tokio::time::sleep(agent).await;
            if !running.lock().expect("running").contains_key(&pod_name) {
                continue;
            }
            match launch(&client, &namespace, &r.pod, &r.node, &r.root, &log_dir).await {
                Ok((child, args)) => {
                    started(&children, &spans, &pod_name, &r.node, child, args);
                }
                Err(e) => eprintln!(
                    "pod runner: restarting agent on {} after reboot: {e:#}",
                    r.node
                ),
            }
        }
    }
}
