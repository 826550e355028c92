//! Why a `kubectl nodepatch` command failed. Every message is one line naming the thing that is
//! missing or wrong; the binary prints it after `error: ` and exits 1.

/// A failed plugin command.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The kubeconfig could not be read or has no usable context.
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    /// The client could not be built from the kubeconfig.
    #[error("kubeconfig: {0}")]
    Client(#[source] kube::Error),
    /// An object the command needs does not exist (`policy "web" not found`).
    #[error("{kind} {name:?} not found")]
    NotFound {
        /// What it is, as users say it: `policy`, `run`, `node`, `baseline`, `window`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The node's report does not list the package.
    #[error(
        "package {package:?} not in the report of node {node:?} (reports list only non-compliant patches)"
    )]
    PackageNotInReport {
        /// The node.
        node: String,
        /// The package.
        package: String,
    },
    /// A request to the API server failed.
    #[error("{action}: {source}")]
    Api {
        /// What was being done (`listing PatchPolicies`).
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The request makes no sense for the object's state (canceling a finished run).
    #[error("{0}")]
    Refused(String),
    /// The draft baseline (`preview -f`) cannot be used: the file, and where in it.
    #[error("{0}")]
    Draft(String),
    /// The evaluation could not run (the node runs another OS than the baseline targets).
    #[error("{0}")]
    Evaluation(#[from] crate::baseline::EvaluationError),
    /// A run ended in another phase than Succeeded (`--wait`), or a preview found nodes that
    /// would be non-compliant (`--fail-on-noncompliant`).
    #[error("{0}")]
    Outcome(String),
    /// Output could not be written or serialised.
    #[error("writing output: {0}")]
    Output(String),
}

impl PluginError {
    /// Bounded label (tests and logs).
    pub fn category(&self) -> &'static str {
        match self {
            PluginError::Kubeconfig(_) | PluginError::Client(_) => "Kubeconfig",
            PluginError::NotFound { .. } => "NotFound",
            PluginError::PackageNotInReport { .. } => "PackageNotInReport",
            PluginError::Api { .. } => "ApiError",
            PluginError::Refused(_) => "Refused",
            PluginError::Draft(_) => "InvalidDraft",
            PluginError::Evaluation(e) => e.category(),
            PluginError::Outcome(_) => "Outcome",
            PluginError::Output(_) => "OutputFailed",
        }
    }

    /// An API error while doing `action`.
    pub fn api(action: impl Into<String>) -> impl FnOnce(kube::Error) -> PluginError {
        let action = action.into();
        move |source| PluginError::Api { action, source }
    }
}
