//! No perpetual diff for GitOps: every sample in config/samples, server-side applied twice by
//! the same field manager (as Argo CD's and Flux's server-side apply do), is unchanged by the
//! second apply — no new generation, no new managedFields entry or timestamp, the same spec.
//! Defaults are the schema's, so what the apiserver stores equals what a re-apply asks for.

mod support;

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::discovery::{ApiResource, Discovery, Scope};
use kube::{Client, ResourceExt};

/// The samples, as documents with a unique name (references inside are left as written: they
/// are checked by the controller, not at admission).
fn samples(suffix: &str) -> Vec<(String, DynamicObject)> {
    let dir = support::repo_root().join("config/samples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("config/samples")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml")
                && p.file_name().is_some_and(|n| n != "kustomization.yaml")
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("sample");
            let mut obj: DynamicObject =
                serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            obj.metadata.name = Some(format!("{}-{suffix}", obj.name_any()));
            (path.display().to_string(), obj)
        })
        .collect()
}

async fn api_for(client: &Client, obj: &DynamicObject) -> Api<DynamicObject> {
    let types = obj.types.clone().expect("apiVersion and kind");
    let (group, version) = types.api_version.split_once('/').expect("group/version");
    let discovery = Discovery::new(client.clone())
        .filter(&[group])
        .run()
        .await
        .expect("discovery");
    let (ar, caps): (ApiResource, _) = discovery
        .resolve_gvk(&kube::core::GroupVersionKind::gvk(
            group,
            version,
            &types.kind,
        ))
        .unwrap_or_else(|| panic!("{} not served", types.kind));
    match caps.scope {
        Scope::Namespaced => Api::default_namespaced_with(client.clone(), &ar),
        Scope::Cluster => Api::all_with(client.clone(), &ar),
    }
}

/// What a re-apply must leave alone: generation, spec, and the manager's managedFields entry
/// (operation and time; a no-op apply does not touch it).
fn fingerprint(obj: &DynamicObject, manager: &str) -> (Option<i64>, serde_json::Value, String) {
    let entry = obj
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.manager.as_deref() == Some(manager))
        .map(|m| format!("{:?} {:?} {:?}", m.operation, m.time, m.fields_v1))
        .collect::<Vec<_>>()
        .join("; ");
    (
        obj.metadata.generation,
        obj.data.get("spec").cloned().unwrap_or_default(),
        entry,
    )
}

/// `stored` holds everything `asked` says (objects, also inside lists, may gain defaulted
/// fields).
fn contains(stored: &serde_json::Value, asked: &serde_json::Value) -> bool {
    match (stored, asked) {
        (serde_json::Value::Object(s), serde_json::Value::Object(a)) => a
            .iter()
            .all(|(k, v)| s.get(k).is_some_and(|sv| contains(sv, v))),
        (serde_json::Value::Array(s), serde_json::Value::Array(a)) => {
            s.len() == a.len() && s.iter().zip(a).all(|(sv, av)| contains(sv, av))
        }
        (s, a) => s == a,
    }
}

#[tokio::test]
async fn every_sample_applied_twice_with_server_side_apply_shows_no_change() {
    let Some(client) = support::cluster().await else {
        return;
    };
    support::ensure_crds(&client).await;
    let manager = "gitops-sample-check";
    let suffix = support::unique_name("ssa");
    let params = PatchParams::apply(manager);
    let samples = samples(&suffix);
    assert!(
        samples.len() >= 10,
        "the samples are found: {}",
        samples.len()
    );
    for (path, obj) in &samples {
        let api = api_for(&client, obj).await;
        let name = obj.name_any();
        let first = api
            .patch(&name, &params, &Patch::Apply(obj))
            .await
            .unwrap_or_else(|e| panic!("{path}: first apply: {e}"));
        let second = api
            .patch(&name, &params, &Patch::Apply(obj))
            .await
            .unwrap_or_else(|e| panic!("{path}: second apply: {e}"));
        assert_eq!(
            fingerprint(&first, manager),
            fingerprint(&second, manager),
            "{path}: the second apply changed the object"
        );
        let asked = obj.data.get("spec").cloned().unwrap_or_default();
        let stored = second.data.get("spec").cloned().unwrap_or_default();
        assert!(
            contains(&stored, &asked),
            "{path}: the stored spec keeps what was written (defaults may be added)\nasked:  {asked}\nstored: {stored}"
        );
        let _ = api.delete(&name, &DeleteParams::default()).await;
    }
}
