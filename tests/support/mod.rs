//! Test support for integration tests against the real local control plane.
//!
//! `cluster().await` returns an admin client for the cluster described by `.local/kubeconfig`
//! (or `$NODEPATCH_KUBECONFIG`), starting one with `e2e/cluster.sh up` when none answers. When
//! the control plane cannot be had: with `CI=true` the test fails; otherwise it is skipped with a
//! message saying how to get one (`make cluster-up`).
#![allow(dead_code)]

pub mod fleet;
pub mod monitoring;
pub mod podrunner;

pub mod reports;

pub mod roots;

pub mod rpmroots;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Make a child process die with the test process (SIGKILL on parent death), so that an
/// interrupted test leaves no controller or agent running against the shared cluster.
pub fn die_with_parent(mut command: Command) -> Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only the calling (child) process.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

/// Root of the repository.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Path of the admin kubeconfig.
pub fn kubeconfig_path() -> PathBuf {
    std::env::var_os("NODEPATCH_KUBECONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".local/kubeconfig"))
}

/// The `nodepatch` binary under test: Cargo's for integration tests; for examples (the demo),
/// the debug build in the target directory.
pub fn nodepatch_bin() -> PathBuf {
    if let Some(bin) = option_env!("CARGO_BIN_EXE_nodepatch") {
        return PathBuf::from(bin);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    target.join("debug/nodepatch")
}

/// Path of a built control-plane tool (`kubectl`, `helm`, …).
pub fn tool(name: &str) -> PathBuf {
    repo_root().join(".local/bin").join(name)
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Read a kubeconfig file into a client config.
pub async fn config_from_kubeconfig(path: &Path) -> anyhow::Result<Config> {
    let kc = Kubeconfig::read_from(path)?;
    Ok(Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?)
}

/// Build a client from a kubeconfig file.
pub async fn client_from_kubeconfig(path: &Path) -> anyhow::Result<Client> {
    Ok(Client::try_from(config_from_kubeconfig(path).await?)?)
}

/// An admin client for the local control plane, or `None` (test skipped) outside CI when none
/// can be started. Panics in CI when the control plane is missing.
pub async fn cluster() -> Option<Client> {
    let path = kubeconfig_path();
    if let Some(client) = ready_client(&path).await {
        return Some(client);
    }
    // Serialise concurrent starts from parallel test binaries with flock(1) on a lock file.
    let up = Command::new("flock")
        .arg(repo_root().join(".local/cluster.lock"))
        .arg(repo_root().join("e2e/cluster.sh"))
        .arg("up")
        .status();
    let started = matches!(up, Ok(s) if s.success());
    if started && let Some(client) = ready_client(&path).await {
        return Some(client);
    }
    let msg = format!(
        "no local control plane at {} and e2e/cluster.sh up failed ({up:?}); run `make cluster-up`",
        path.display()
    );
    if in_ci() {
        panic!("{msg}");
    }
    eprintln!("SKIPPED (not CI): {msg}");
    None
}

async fn ready_client(path: &Path) -> Option<Client> {
    if !path.exists() {
        return None;
    }
    let client = client_from_kubeconfig(path).await.ok()?;
    for _ in 0..20 {
        if client.apiserver_version().await.is_ok() {
            return Some(client);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// A name unique to this test process and call, safe for any Kubernetes object:
/// `<prefix>-<pid>-<n>`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Poll `check` every 200 ms until it returns `Some`, or panic after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Poll `check` every 200 ms until it returns `true`, or panic after `timeout` with `what`.
///
/// Every assertion on an *effect* of the controller (a cordon, an uncordon, a label) waits with
/// this instead of reading once: the controller writes status before it acts, so the state a test
/// waited for can be visible a moment before its effect is.
pub async fn eventually_true<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually(timeout, what, || {
        let fut = check();
        async move { fut.await.then_some(()) }
    })
    .await
}

/// A namespace created for one test; call `delete` at the end.
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

impl TestNamespace {
    pub async fn create(client: &Client, prefix: &str) -> TestNamespace {
        use k8s_openapi::api::core::v1::Namespace;
        use kube::api::{Api, PostParams};
        let name = unique_name(prefix);
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"nodepatch.dev/test": "true"}}
        }))
        .expect("namespace literal");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create test namespace");
        TestNamespace {
            name,
            client: client.clone(),
        }
    }

    /// Delete the namespace (the namespace controller removes its content).
    pub async fn delete(self) {
        use k8s_openapi::api::core::v1::Namespace;
        use kube::api::{Api, DeleteParams};
        let _ = Api::<Namespace>::all(self.client.clone())
            .delete(&self.name, &DeleteParams::default())
            .await;
    }
}

/// Install (server-side apply) the nodepatch CRDs and wait until the apiserver serves them.
pub async fn ensure_crds(client: &Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, Patch, PatchParams};
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PatchParams::apply("nodepatch-tests").force();
    for crd in nodepatch::api::crds() {
        let name = crd.metadata.name.clone().expect("CRD has a name");
        api.patch(&name, &pp, &Patch::Apply(&crd))
            .await
            .expect("apply CRD");
        eventually(
            Duration::from_secs(30),
            &format!("CRD {name} established"),
            || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    let crd = api.get(&name).await.ok()?;
                    let established = crd
                        .status?
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True");
                    established.then_some(())
                }
            },
        )
        .await;
    }
}

/// Every file and directory (path relative to `root` → bytes; directories as `dir/` with no
/// bytes) at or under each of `paths` in `root`; paths that do not exist are left out. Tests
/// compare two of these to show an operation left a node's configuration byte-identical.
pub fn files_under(root: &Path, paths: &[&str]) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack: Vec<PathBuf> = paths.iter().map(|p| root.join(p)).collect();
    while let Some(path) = stack.pop() {
        let key = path
            .strip_prefix(root)
            .expect("under root")
            .display()
            .to_string();
        if path.is_dir() {
            if !paths.contains(&key.as_str()) {
                out.insert(format!("{key}/"), Vec::new());
            }
            for entry in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                stack.push(entry.path());
            }
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.insert(key, bytes);
        }
    }
    out
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The real `nodepatch controller` process, killed when dropped. Logs go to
/// `.local/log/<name>.log`.
pub struct ControllerProcess {
    child: std::process::Child,
    /// Port of /metrics, /healthz, /readyz.
    pub metrics_port: u16,
}

impl ControllerProcess {
    /// Start `nodepatch controller` with the admin kubeconfig and `extra` arguments.
    pub fn start(name: &str, extra: &[&str]) -> ControllerProcess {
        Self::start_with_kubeconfig(name, &kubeconfig_path(), extra)
    }

    /// Start `nodepatch controller` authenticated by `kubeconfig`.
    pub fn start_with_kubeconfig(
        name: &str,
        kubeconfig: &Path,
        extra: &[&str],
    ) -> ControllerProcess {
        Self::spawn(
            &nodepatch_bin(),
            name,
            kubeconfig,
            extra,
            // NODEPATCH_TEST_RUST_LOG widens it, e.g. `info,nodepatch=debug,kube_client=debug`.
            &std::env::var("NODEPATCH_TEST_RUST_LOG")
                .unwrap_or_else(|_| "info,nodepatch=debug".into()),
        )
    }

    /// Start `bin controller` (e.g. a release build) authenticated by `kubeconfig`, logging at
    /// `rust_log` to `.local/log/<name>.log`.
    pub fn spawn(
        bin: &Path,
        name: &str,
        kubeconfig: &Path,
        extra: &[&str],
        rust_log: &str,
    ) -> ControllerProcess {
        let metrics_port = free_port();
        let log_dir = repo_root().join(".local/log");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let log = std::fs::File::create(log_dir.join(format!("{name}.log"))).expect("log file");
        let child = die_with_parent(Command::new(bin))
            .arg("controller")
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{metrics_port}"))
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", rust_log)
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start nodepatch controller");
        ControllerProcess {
            child,
            metrics_port,
        }
    }

    /// GET a path of the controller's HTTP server.
    pub fn http_get(&self, path: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut out = String::new();
        stream.read_to_string(&mut out).ok()?;
        let ok = out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200");
        ok.then_some(out)
    }

    /// Process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the process has exited.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Kill the process (also done on drop).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sum of the apiserver's `apiserver_request_total` for `resource` over write verbs (not dry-run).
pub async fn apiserver_write_count(client: &Client, resource: &str) -> f64 {
    let req = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    let text = client.request_text(req).await.expect("GET /metrics");
    text.lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| l.contains(&format!("resource=\"{resource}\"")))
        .filter(|l| {
            ["APPLY", "PATCH", "POST", "PUT", "DELETE"]
                .iter()
                .any(|v| l.contains(&format!("verb=\"{v}\"")))
        })
        .filter(|l| l.contains("dry_run=\"\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// One object of the generated kustomize RBAC (`config/rbac/rbac.yaml`, rendered from the chart).
pub fn config_rbac_object(kind: &str, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(repo_root().join("config/rbac/rbac.yaml"))
        .expect("config/rbac/rbac.yaml");
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).expect("YAML document");
    for value in docs {
        if value["kind"] == kind && value["metadata"]["name"] == name {
            return value;
        }
    }
    panic!("no {kind} {name} in config/rbac/rbac.yaml");
}

/// The agent namespace of the generated kustomize tree (the namespace of its agent
/// ServiceAccount): kustomize installs controller and agents in one namespace.
pub fn config_agent_namespace() -> String {
    config_rbac_object("ServiceAccount", "nodepatch-agent")["metadata"]["namespace"]
        .as_str()
        .expect("the agent ServiceAccount has a namespace")
        .to_string()
}

/// Server-side apply any object given as JSON (kind resolved by discovery).
pub async fn apply_json(client: &Client, value: serde_json::Value) {
    use kube::ResourceExt;
    use kube::api::{Api, DynamicObject, Patch, PatchParams};
    use kube::discovery::{Discovery, Scope};
    let obj: DynamicObject = serde_json::from_value(value).expect("object");
    let types = obj.types.clone().expect("apiVersion and kind");
    let (group, version) = types
        .api_version
        .rsplit_once('/')
        .unwrap_or(("", &types.api_version));
    let discovery = Discovery::new(client.clone())
        .filter(&[group])
        .run()
        .await
        .expect("discovery");
    let (ar, caps) = discovery
        .resolve_gvk(&kube::core::GroupVersionKind::gvk(
            group,
            version,
            &types.kind,
        ))
        .unwrap_or_else(|| panic!("{} not served", types.kind));
    let api: Api<DynamicObject> = match (caps.scope, obj.metadata.namespace.as_deref()) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        _ => Api::all_with(client.clone(), &ar),
    };
    api.patch(
        &obj.name_any(),
        &PatchParams::apply("nodepatch-tests").force(),
        &Patch::Apply(&obj),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {} {}: {e}", types.kind, obj.name_any()));
}
