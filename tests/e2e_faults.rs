//! Faults of the control plane under a running PatchRun, end to end (kwok nodes, the pod runner
//! starting real agents on debootstrapped roots, the real controller as the chart's
//! ServiceAccount), each scenario stopping or restarting parts of the local control plane with
//! `e2e/cluster.sh stop|start`:
//!
//! 1. the apiserver stopped for 30 s mid-run: the run resumes, every node is patched once, the
//!    controller never restarts;
//! 2. etcd restarted mid-run: the same;
//! 3. the controller's watches expire (410 Gone): the apiserver serves watches from etcd
//!    (`--watch-cache=false`), the controller is cut off through a proxy, a patch-now run is
//!    created and etcd compacted past every resourceVersion the controller saw; reconnected, it
//!    relists and carries the run out;
//! 4. the leader frozen (SIGSTOP) mid-run: the follower takes over after the Lease duration and
//!    finishes the run; resumed, the old leader exits without one more write (the apiserver's
//!    audit log, which tells the two processes' tokens apart by credential ID).
//!
//! The scenarios stop shared components, so they run one at a time (a lock), and a scenario that
//! fails restarts what it stopped.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use nodepatch::api::{PatchBaseline, PatchPolicy, PatchRun, RunPhase, TargetState};
use serde_json::json;
use support::ControllerProcess;
use support::fleet::{Env, debian_baseline, wait_run};

/// One scenario at a time: they stop the apiserver or etcd every other scenario uses.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `e2e/cluster.sh stop|start NAME` with `extra` apiserver flags.
fn cluster_sh(action: &str, component: &str, extra_apiserver_args: &str) {
    let status = std::process::Command::new(support::repo_root().join("e2e/cluster.sh"))
        .args([action, component])
        .env("APISERVER_EXTRA_ARGS", extra_apiserver_args)
        .status()
        .expect("run e2e/cluster.sh");
    assert!(
        status.success(),
        "e2e/cluster.sh {action} {component}: {status}"
    );
}

/// A component stopped (or restarted with other flags) by a scenario; dropping it starts it
/// again with the usual flags, so a failing scenario leaves the control plane as it found it.
struct Stopped {
    component: &'static str,
    restart_plain: bool,
}

impl Stopped {
    fn stop(component: &'static str) -> Stopped {
        cluster_sh("stop", component, "");
        Stopped {
            component,
            restart_plain: false,
        }
    }

    /// Start it again (with `extra` apiserver flags); dropping the result restarts it plain.
    fn start(mut self, extra: &str) -> Stopped {
        cluster_sh("start", self.component, extra);
        self.restart_plain = !extra.is_empty();
        self
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if self.restart_plain {
            cluster_sh("stop", self.component, "");
        }
        cluster_sh("start", self.component, "");
    }
}

/// The cluster this test may stop parts of: only the one `e2e/cluster.sh` of this checkout runs.
fn own_cluster() -> bool {
    let own = support::repo_root().join(".local/kubeconfig");
    if support::kubeconfig_path() == own {
        return true;
    }
    let msg = format!(
        "e2e_faults stops control-plane components through e2e/cluster.sh, so it needs this \
         checkout's cluster ({}), not {}",
        own.display(),
        support::kubeconfig_path().display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED (not CI): {msg}");
    false
}

/// The cluster's ports (`.local/cluster/env`).
fn cluster_env() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(support::repo_root().join(".local/cluster/env"))
        .expect(".local/cluster/env");
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A fleet, a baseline and a far-away window (patch-now runs do not wait for it), shared by the
/// scenarios.
struct Fleet {
    env: Env,
    kubeconfig: PathBuf,
    baseline: String,
    window: String,
}

impl Fleet {
    async fn start(prefix: &str) -> Option<Fleet> {
        if !own_cluster() {
            return None;
        }
        let (env, kubeconfig) = Env::start("e2e_faults", prefix).await?;
        let pp = PostParams::default();
        let window = format!("e2e-later-{}", env.run_id);
        let mw = serde_json::from_value(json!({"metadata": {"name": window}, "spec": {"schedule": "cron(0 3 1 1 ? 2099)", "duration": "2h"}})).expect("window");
        Api::<nodepatch::api::MaintenanceWindow>::all(env.client.clone())
            .create(&pp, &mw)
            .await
            .expect("create window");
        let baseline = format!("e2e-faults-{}", env.run_id);
        Api::<PatchBaseline>::all(env.client.clone())
            .create(&pp, &debian_baseline(&baseline, json!({})))
            .await
            .expect("create baseline");
        Some(Fleet {
            env,
            kubeconfig,
            baseline,
            window,
        })
    }

    /// `n` nodes in `group` and an install policy for them (one node at a time), its initial
    /// scan done (the controller must be running).
    async fn policy(&mut self, group: &str, n: usize) -> (String, Vec<String>) {
        let nodes = self.env.nodes(group, n, true).await;
        let policy = format!("e2e-{group}-{}", self.env.run_id);
        let spec = json!({"baselineRefs": [self.baseline], "install": {"maintenanceWindowRefs": [self.window], "rebootOption": "NoReboot"}, "rollout": {"maxConcurrency": 1, "maxErrors": 0}});
        Api::<PatchPolicy>::all(self.env.client.clone())
            .create(
                &PostParams::default(),
                &self.env.policy(&policy, group, spec),
            )
            .await
            .expect("create policy");
        wait_run(&self.env.client, &policy, "Scan", "initial scan done", None).await;
        (policy, nodes)
    }

    fn controller(&self, name: &str, kubeconfig: &Path, extra: &[&str]) -> ControllerProcess {
        let mut args = self.env.controller_args();
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ControllerProcess::spawn(
            &support::nodepatch_bin(),
            &format!("{name}-{}", self.env.run_id),
            kubeconfig,
            &args,
            "info,nodepatch=debug",
        )
    }

    /// Every node of `run` was patched exactly once: one agent pod for the run per node
    /// (a node labelled twice gets a second pod), at most one dpkg upgrade per package, and
    /// at least one upgrade on each.
    fn assert_patched_once(&self, run: &str, nodes: &[String]) {
        let spans = self.env.runner.spans();
        for node in nodes {
            // One pod per node (a node labelled twice would get a second one); its container
            // may have been restarted (an agent that started while the API server was down
            // exits and the kubelet starts it again), which the dpkg log below shows did not
            // patch twice.
            let pods: std::collections::BTreeSet<&str> = spans
                .iter()
                .filter(|s| &s.node == node && s.args.iter().any(|a| a == run))
                .map(|s| s.pod.as_str())
                .collect();
            assert_eq!(pods.len(), 1, "{node}: one agent pod for {run}: {spans:?}");
            let log =
                std::fs::read_to_string(self.env.root_of(node).path().join("var/log/dpkg.log"))
                    .unwrap_or_default();
            let mut upgrades: BTreeMap<String, usize> = BTreeMap::new();
            for line in log.lines().filter(|l| l.contains(" upgrade ")) {
                if let Some(pkg) = line.split_whitespace().nth(3) {
                    *upgrades.entry(pkg.to_string()).or_default() += 1;
                }
            }
            assert!(!upgrades.is_empty(), "{node} was patched: {log}");
            assert!(
                upgrades.values().all(|&n| n == 1),
                "{node}: each package upgraded once: {upgrades:?}"
            );
        }
    }
}

fn patch_now(name: &str, policy: &str) -> PatchRun {
    serde_json::from_value(
        json!({"metadata": {"name": name}, "spec": {"policyRef": policy, "operation": "Install"}}),
    )
    .expect("run")
}

/// Wait until run `name` has a target in `state`.
async fn wait_target_state(client: &Client, name: &str, state: TargetState) {
    let runs: Api<PatchRun> = Api::all(client.clone());
    support::eventually(
        Duration::from_secs(90),
        &format!("{name}: a target {state:?}"),
        || async {
            let run = runs.get(name).await.ok()?;
            run.status?
                .targets
                .iter()
                .any(|t| t.state == state)
                .then_some(())
        },
    )
    .await
}

/// Wait until run `name` finished, and return it.
async fn wait_finished(client: &Client, name: &str, timeout: Duration) -> PatchRun {
    let runs: Api<PatchRun> = Api::all(client.clone());
    support::eventually(timeout, &format!("{name} finished"), || async {
        let run = runs.get(name).await.ok()?;
        run.status.as_ref()?.phase.is_finished().then_some(run)
    })
    .await
}

fn assert_succeeded(run: &PatchRun) {
    let status = run.status.as_ref().expect("status");
    assert_eq!(status.phase, RunPhase::Succeeded, "{:?}", status.targets);
}

/// The controller is still the process the scenario started.
fn assert_alive(controller: &mut ControllerProcess) {
    assert_eq!(controller.try_wait(), None, "the controller kept running");
}

/// An outage of `component` while a run's first node is being patched: the run succeeds, every
/// node patched once, the same controller process throughout.
async fn outage_mid_run(prefix: &str, group: &str, component: &'static str, down: Duration) {
    let _serial = SERIAL.lock().await;
    let Some(mut fleet) = Fleet::start(prefix).await else {
        return;
    };
    let client = fleet.env.client.clone();
    let mut controller = fleet.controller(
        &format!("controller-{group}"),
        &fleet.kubeconfig.clone(),
        &[],
    );
    let (policy, nodes) = fleet.policy(group, 2).await;
    let run = format!("{policy}-now");
    Api::<PatchRun>::all(client.clone())
        .create(&PostParams::default(), &patch_now(&run, &policy))
        .await
        .expect("create run");
    wait_target_state(&client, &run, TargetState::InProgress).await;
    let stopped = Stopped::stop(component);
    tokio::time::sleep(down).await;
    drop(stopped.start(""));
    let finished = wait_finished(&client, &run, Duration::from_secs(180)).await;
    assert_succeeded(&finished);
    fleet.assert_patched_once(&run, &nodes);
    assert_alive(&mut controller);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_apiserver_stopped_for_30s_mid_run_resumes_without_patching_twice() {
    outage_mid_run("fa", "apiserver", "kube-apiserver", Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_etcd_restart_mid_run_resumes_without_patching_twice() {
    outage_mid_run("fe", "etcd", "etcd", Duration::from_secs(3)).await;
}

/// A TCP proxy to the apiserver that the test can cut (every connection dropped, new ones
/// refused) and reopen.
struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let open = Arc::new(AtomicBool::new(true));
        let conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (o, c) = (open.clone(), conns.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let conn = tokio::spawn(async move {
                    if let Ok(mut up) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                c.lock().expect("conns").push(conn);
            }
        });
        Proxy {
            port,
            open,
            conns,
            task,
        }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for conn in self.conns.lock().expect("conns").drain(..) {
            conn.abort();
        }
    }

    fn reopen(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// POST `body` to etcd's JSON gateway at `path`; returns the answer's body.
fn etcd_post(port: u16, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect etcd");
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write etcd request");
    let mut out = String::new();
    stream.read_to_string(&mut out).expect("read etcd answer");
    assert!(
        out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200"),
        "etcd {path}: {out}"
    );
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// Compact etcd at its current revision: every older resourceVersion is gone.
fn compact_etcd(port: u16) -> i64 {
    // {"key": "AA=="} is the key "\0": a range that exists on no cluster, answered with the header.
    let range = etcd_post(port, "/v3/kv/range", r#"{"key":"AA=="}"#);
    let range: serde_json::Value = serde_json::from_str(&range).expect("etcd range JSON");
    let revision: i64 = range["header"]["revision"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .expect("etcd revision");
    etcd_post(
        port,
        "/v3/kv/compaction",
        &format!(r#"{{"revision":"{revision}","physical":true}}"#),
    );
    revision
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_watch_relists_and_acts_on_a_change_made_during_the_gap() {
    let _serial = SERIAL.lock().await;
    let Some(mut fleet) = Fleet::start("fw").await else {
        return;
    };
    let ports = cluster_env();
    let apiserver_port: u16 = ports["APISERVER_PORT"].parse().expect("apiserver port");
    let etcd_port: u16 = ports["ETCD_PORT"].parse().expect("etcd port");
    // Watches served from etcd, so a compaction expires them (the watch cache would keep a
    // window of history and hide the compaction).
    let _apiserver = Stopped::stop("kube-apiserver").start("--watch-cache=false");
    let client = support::client_from_kubeconfig(&support::kubeconfig_path())
        .await
        .expect("admin client");
    let proxy = Proxy::start(apiserver_port).await;
    let kubeconfig = {
        let text = std::fs::read_to_string(&fleet.kubeconfig).expect("controller kubeconfig");
        let text = text.replace(
            &format!("https://127.0.0.1:{apiserver_port}"),
            &format!("https://127.0.0.1:{}", proxy.port),
        );
        let path = fleet
            .kubeconfig
            .with_file_name("controller-proxied.kubeconfig");
        std::fs::write(&path, text).expect("write proxied kubeconfig");
        path
    };
    let mut controller = fleet.controller("controller-watch", &kubeconfig, &[]);
    let (policy, nodes) = fleet.policy("watch", 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    proxy.cut();
    let run = format!("{policy}-now");
    Api::<PatchRun>::all(client.clone())
        .create(&PostParams::default(), &patch_now(&run, &policy))
        .await
        .expect("create run during the gap");
    // Writes after the run, so the compaction removes the run's own revision too.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &fleet.env.namespace);
    for i in 0..3 {
        let cm: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": format!("gap-{}-{i}", fleet.env.run_id)}}),
        )
        .expect("cm");
        cms.create(&PostParams::default(), &cm)
            .await
            .expect("create configmap");
        cms.delete(
            &format!("gap-{}-{i}", fleet.env.run_id),
            &DeleteParams::default(),
        )
        .await
        .expect("delete configmap");
    }
    let compacted = compact_etcd(etcd_port);
    proxy.reopen();

    let finished = wait_finished(&client, &run, Duration::from_secs(120)).await;
    assert_succeeded(&finished);
    fleet.assert_patched_once(&run, &nodes);
    let log = std::fs::read_to_string(support::repo_root().join(format!(
        ".local/log/controller-watch-{}.log",
        fleet.env.run_id
    )))
    .expect("controller log");
    assert!(
        log.lines().any(|l| l.contains("watch error")
            && (l.contains("410") || l.contains("Expired") || l.contains("too old"))),
        "the controller's watch expired (etcd compacted at {compacted}) and it relisted:\n{log}"
    );
    assert_alive(&mut controller);
}

/// The `jti` claim of a service-account token (the apiserver logs it as the credential ID).
fn token_jti(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("JWT payload");
    let mut bits: u32 = 0;
    let mut n = 0;
    let mut bytes = vec![];
    for c in payload.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => continue,
        };
        bits = (bits << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            bytes.push((bits >> n) as u8);
        }
    }
    let claims: serde_json::Value = serde_json::from_slice(&bytes).expect("JWT claims");
    claims["jti"].as_str().expect("jti claim").to_string()
}

/// A fresh token of the controller's ServiceAccount and a kubeconfig holding it.
async fn controller_token(client: &Client, dir: &Path, name: &str) -> (PathBuf, String) {
    let request: k8s_openapi::api::authentication::v1::TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}}))
            .expect("token request");
    let token = Api::<ServiceAccount>::namespaced(client.clone(), "nodepatch-system")
        .create_token_request("nodepatch-controller", &PostParams::default(), &request)
        .await
        .expect("controller token")
        .status
        .and_then(|s| s.token)
        .expect("token");
    let jti = token_jti(&token);
    (support::podrunner::token_kubeconfig(dir, name, &token), jti)
}

/// One write in the apiserver's audit log.
#[derive(Debug)]
struct AuditedWrite {
    received: jiff::Timestamp,
    resource: String,
    name: String,
    code: i64,
}

/// The writes the token `jti` made (audit log of the controller's ServiceAccount).
fn writes_of(jti: &str) -> Vec<AuditedWrite> {
    let log = std::fs::read_to_string(support::repo_root().join(".local/log/audit.log"))
        .expect(".local/log/audit.log (e2e/cluster.sh turns it on)");
    let credential = format!("JTI={jti}");
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| {
            e["user"]["extra"]["authentication.kubernetes.io/credential-id"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c == credential.as_str()))
        })
        .map(|e| AuditedWrite {
            received: e["requestReceivedTimestamp"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .expect("requestReceivedTimestamp"),
            resource: e["objectRef"]["resource"]
                .as_str()
                .unwrap_or_default()
                .into(),
            name: e["objectRef"]["name"].as_str().unwrap_or_default().into(),
            code: e["responseStatus"]["code"].as_i64().unwrap_or_default(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_leader_is_fenced_the_follower_finishes_and_the_old_leader_exits_unwritten() {
    let _serial = SERIAL.lock().await;
    let Some(mut fleet) = Fleet::start("fl").await else {
        return;
    };
    let client = fleet.env.client.clone();
    let dir = support::repo_root().join(format!(".local/log/e2e-{}", fleet.env.run_id));
    let (kube_a, jti_a) = controller_token(&client, &dir, "controller-a").await;
    let (kube_b, jti_b) = controller_token(&client, &dir, "controller-b").await;
    let lease_name = format!("nodepatch-e2e-{}", fleet.env.run_id);
    let election = |instance: &'static str| -> Vec<&str> {
        vec![
            "--leader-elect",
            "--leader-elect-namespace",
            "nodepatch-system",
            "--leader-elect-lease-name",
            lease_name.as_str(),
            "--leader-elect-lease-seconds",
            "4",
            "--leader-elect-renew-deadline-seconds",
            "2",
            "--instance",
            instance,
        ]
    };
    let mut a = fleet.controller("controller-a", &kube_a, &election("replica-a"));
    let leases: Api<Lease> = Api::namespaced(client.clone(), "nodepatch-system");
    let holder = || async {
        leases
            .get(&lease_name)
            .await
            .ok()
            .and_then(|l| l.spec?.holder_identity)
    };
    support::eventually(Duration::from_secs(30), "replica-a leads", || async {
        holder().await.filter(|h| h.starts_with("replica-a"))
    })
    .await;
    let mut b = fleet.controller("controller-b", &kube_b, &election("replica-b"));
    let (policy, nodes) = fleet.policy("leader", 3).await;
    let run = format!("{policy}-now");
    Api::<PatchRun>::all(client.clone())
        .create(&PostParams::default(), &patch_now(&run, &policy))
        .await
        .expect("create run");
    wait_target_state(&client, &run, TargetState::InProgress).await;

    // Freeze the leader mid-run: its reconciles keep pending work (the agent's report arrives
    // while it is stopped) that it would act on when it resumes.
    // SAFETY: kill(2) on the pid of a child this test started.
    assert_eq!(unsafe { libc::kill(a.pid() as i32, libc::SIGSTOP) }, 0);
    support::eventually(Duration::from_secs(30), "replica-b takes over", || async {
        holder().await.filter(|h| h.starts_with("replica-b"))
    })
    .await;
    // Let the new leader act (its first writes after the takeover), then resume the old one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(a.pid() as i32, libc::SIGCONT) }, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(status) = a.try_wait() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the old leader exits within 15 s of resuming"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        !exit.success(),
        "the old leader exits with an error: {exit}"
    );

    let finished = wait_finished(&client, &run, Duration::from_secs(120)).await;
    assert_succeeded(&finished);
    fleet.assert_patched_once(&run, &nodes);
    assert_alive(&mut b);

    let takeover = writes_of(&jti_b)
        .into_iter()
        .filter(|w| w.resource == "leases" && w.name == lease_name && w.code / 100 == 2)
        .map(|w| w.received)
        .min()
        .expect("replica-b's takeover of the Lease is in the audit log");
    let a_writes = writes_of(&jti_a);
    assert!(
        a_writes.iter().any(|w| w.resource != "leases"),
        "replica-a wrote while it led: {a_writes:?}"
    );
    let late: Vec<&AuditedWrite> = a_writes.iter().filter(|w| w.received >= takeover).collect();
    assert!(
        late.is_empty(),
        "replica-a wrote after replica-b took the Lease at {takeover}: {late:?}"
    );
    let log_a = std::fs::read_to_string(
        support::repo_root().join(format!(".local/log/controller-a-{}.log", fleet.env.run_id)),
    )
    .expect("controller-a log");
    assert!(
        log_a.contains("leader"),
        "replica-a says why it stopped:\n{log_a}"
    );
}
