//! The plugin's cluster access: a client from the user's kubeconfig and context, like kubectl
//! (`--kubeconfig`, else `$KUBECONFIG` with its list of files merged, else `~/.kube/config`), and
//! reads that turn a missing object into [`PluginError::NotFound`] naming it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config, ResourceExt};
use serde::de::DeserializeOwned;

use super::args::ConnectionArgs;
use super::error::PluginError;

/// A client for the cluster `args` name.
pub async fn client(args: &ConnectionArgs) -> Result<Client, PluginError> {
    let kubeconfig = match &args.kubeconfig {
        Some(path) => Kubeconfig::read_from(path),
        None => Kubeconfig::read(),
    }
    .map_err(PluginError::Kubeconfig)?;
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| match e {
            KubeconfigError::LoadContext(name) => PluginError::NotFound {
                kind: "context",
                name,
            },
            other => PluginError::Kubeconfig(other),
        })?;
    Client::try_from(config).map_err(PluginError::Client)
}

/// Get the cluster-scoped `name`, or `NotFound` naming it as `kind`.
pub async fn get_named<K>(client: &Client, kind: &'static str, name: &str) -> Result<K, PluginError>
where
    K: kube::Resource<Scope = kube::core::ClusterResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Api::<K>::all(client.clone())
        .get_opt(name)
        .await
        .map_err(PluginError::api(format!("reading {kind} {name:?}")))?
        .ok_or_else(|| PluginError::NotFound {
            kind,
            name: name.to_string(),
        })
}

/// Every object of a cluster-scoped kind (`what` names it in errors), optionally only those
/// with the labels of `selector`.
pub async fn list_all<K>(
    client: &Client,
    what: &str,
    selector: Option<&str>,
) -> Result<Vec<K>, PluginError>
where
    K: kube::Resource<Scope = kube::core::ClusterResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let mut params = ListParams::default();
    if let Some(s) = selector {
        params = params.labels(s);
    }
    Ok(Api::<K>::all(client.clone())
        .list(&params)
        .await
        .map_err(PluginError::api(format!("listing {what}")))?
        .items)
}

/// Node name → labels, optionally only nodes matching the label `selector`.
pub async fn node_labels(
    client: &Client,
    selector: Option<&str>,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, PluginError> {
    let mut params = ListParams::default();
    if let Some(s) = selector {
        params = params.labels(s);
    }
    let nodes = Api::<Node>::all(client.clone())
        .list_metadata(&params)
        .await
        .map_err(PluginError::api("listing Nodes"))?;
    Ok(nodes
        .items
        .into_iter()
        .map(|n| {
            let labels = n.labels().clone();
            (n.name_any(), labels)
        })
        .collect())
}
