//! Test support for integration tests against the real local control plane.
//!
//! `cluster().await` returns an admin client for the cluster described by `.local/kubeconfig`
//! (or `$NODEPATCH_KUBECONFIG`), starting one with `e2e/cluster.sh up` when none answers. When
//! the control plane cannot be had: with `CI=true` the test fails; otherwise it is skipped with a
//! message saying how to get one (`make cluster-up`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

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
    format!("{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
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
        TestNamespace { name, client: client.clone() }
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
        api.patch(&name, &pp, &Patch::Apply(&crd)).await.expect("apply CRD");
        eventually(Duration::from_secs(30), &format!("CRD {name} established"), || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let crd = api.get(&name).await.ok()?;
                let established = crd.status?.conditions?.iter().any(|c| c.type_ == "Established" && c.status == "True");
                established.then_some(())
            }
        })
        .await;
    }
}
