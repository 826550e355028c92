//! The `nodepatch.dev/v1alpha1` API: CRD types (no I/O), condition helpers and constants.
//!
//! Doc comments on every field become `kubectl explain` text, so they are written for users.
//! Limits that a schema or CEL rule can express are enforced at admission; the rest surface as
//! `Ready=False` conditions set by the controller.

pub mod common;
pub mod conditions;
pub mod maintenancewindow;
pub mod nodepatchreport;
pub mod patchbaseline;
pub mod patchpolicy;
pub mod patchrun;
pub mod yaml;

pub use common::*;
pub use maintenancewindow::*;
pub use nodepatchreport::*;
pub use patchbaseline::*;
pub use patchpolicy::*;
pub use patchrun::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of every nodepatch kind.
pub const GROUP: &str = "nodepatch.dev";
/// API version served and stored.
pub const VERSION: &str = "v1alpha1";
/// Node label that opts a node out of every policy.
pub const EXCLUDE_LABEL: &str = "nodepatch.dev/exclude";
/// Node label the controller sets while a node is in a run's active wave; the run DaemonSet
/// selects on it.
pub const RUN_LABEL: &str = "nodepatch.dev/run";
/// PatchRun annotation holding the user who set `spec.cancel`, stamped by the chart's
/// MutatingAdmissionPolicy from the request (a value a user writes is overwritten).
pub const CANCELED_BY_ANNOTATION: &str = "nodepatch.dev/canceled-by";
/// PatchRun annotation holding who created the run, stamped by the chart's
/// MutatingAdmissionPolicy from the admission request on create (a value a user writes is
/// overwritten; the chart's ValidatingAdmissionPolicy refuses changing it later). Runs the
/// controller creates on schedule say [`SCHEDULE_REQUESTER`].
pub const REQUESTED_BY_ANNOTATION: &str = "nodepatch.dev/requested-by";
/// Requester recorded for runs the controller starts from a policy's schedule or window.
pub const SCHEDULE_REQUESTER: &str = "system:nodepatch";
/// Field manager of the agent's server-side applies of a Preview result (`status.preview` of
/// its report), separate from [`AGENT_MANAGER`] so the preview never touches the verdict.
pub const AGENT_PREVIEW_MANAGER: &str = "nodepatch-agent-preview";
/// Field manager of the controller's server-side applies.
pub const CONTROLLER_MANAGER: &str = "nodepatch-controller";
/// Field manager of the agent's server-side applies.
pub const AGENT_MANAGER: &str = "nodepatch-agent";

/// Every CRD of the API, ordered by CRD name so that `cat crds/*.yaml` equals `nodepatch crd`.
pub fn crds() -> Vec<CustomResourceDefinition> {
    [
        MaintenanceWindow::crd(),
        NodePatchReport::crd(),
        PatchBaseline::crd(),
        PatchPolicy::crd(),
        PatchRun::crd(),
    ]
    .into_iter()
    .map(with_integer_bounds)
    .map(without_snapshot_source_rules)
    .collect()
}

/// A PatchRun's status copies whole baselines (up to 13 snapshots of up to 20 sources), so the
/// source-text rules ([`patchbaseline::sources_configuration_rule`], and the per-OS format check
/// of [`patchbaseline::sources_os_rule`] that reads every source's text) repeated there exceed the
/// apiserver's CEL cost budget. The copy is written by the controller from an admitted
/// PatchBaseline (and the agent checks the text again), so the rules are dropped from PatchRun's
/// schema only.
fn without_snapshot_source_rules(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn strip(value: &mut serde_json::Value, rule: &str) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::Array(rules)) =
                    map.get_mut("x-kubernetes-validations")
                {
                    rules.retain(|r| r.get("rule").and_then(|r| r.as_str()) != Some(rule));
                    if rules.is_empty() {
                        map.remove("x-kubernetes-validations");
                    }
                }
                map.values_mut().for_each(|v| strip(v, rule));
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| strip(v, rule)),
            _ => {}
        }
    }
    if crd.spec.names.kind != "PatchRun" {
        return crd;
    }
    let mut value = serde_json::to_value(&crd).expect("CRD serialises");
    strip(&mut value, &patchbaseline::sources_configuration_rule());
    strip(&mut value, &patchbaseline::sources_os_rule());
    serde_json::from_value(value).expect("CRD deserialises after removing the source rules")
}

/// Bound every integer by the Rust type that decodes it, so a value no reader can decode is
/// refused at admission (an agent writing `counts.failed: 4294967296` into its report would
/// otherwise store an object the controller's watches cannot read). schemars marks unsigned
/// integers `format: uint32` / `uint8` (with `minimum: 0`), which the apiserver does not know and
/// warns about on every apply: the format is replaced by the type's `maximum` (a stricter bound
/// written on the field stays). `observedGeneration` (an `i64` generation) gets `minimum: 0`.
fn with_integer_bounds(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn bound(map: &mut serde_json::Map<String, serde_json::Value>, key: &str, limit: f64) {
        let stricter = |old: f64| {
            if key == "maximum" {
                old.min(limit)
            } else {
                old.max(limit)
            }
        };
        let value = map
            .get(key)
            .and_then(|v| v.as_f64())
            .map_or(limit, stricter);
        map.insert(key.to_string(), serde_json::json!(value));
    }
    fn walk(value: &mut serde_json::Value, field: &str) {
        match value {
            serde_json::Value::Object(map) => {
                let format = map
                    .get("format")
                    .and_then(|f| f.as_str())
                    .map(str::to_owned);
                match format.as_deref() {
                    Some("uint32") => bound(map, "maximum", f64::from(u32::MAX)),
                    Some("uint16") => bound(map, "maximum", f64::from(u16::MAX)),
                    Some("uint8") => bound(map, "maximum", f64::from(u8::MAX)),
                    Some("int64") if field == "observedGeneration" => bound(map, "minimum", 0.0),
                    _ => {}
                }
                if format.as_deref().is_some_and(|f| f.starts_with("uint")) {
                    bound(map, "minimum", 0.0);
                    map.remove("format");
                }
                for (key, child) in map.iter_mut() {
                    walk(child, key);
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| walk(v, field)),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(&crd).expect("CRD serialises");
    walk(&mut value, "");
    serde_json::from_value(value).expect("CRD deserialises after bounding integers")
}

/// One CRD as a YAML document starting with `---`.
fn crd_document(crd: &CustomResourceDefinition) -> String {
    // Serialising a CRD we built ourselves cannot fail: it is plain data with string keys.
    format!(
        "---\n{}",
        yaml::to_yaml_string(crd).expect("CRD serialises to YAML")
    )
}

/// The CRDs as one multi-document YAML stream: the output of `nodepatch crd` and, file by file,
/// the content of the committed `crds/` directory.
pub fn crds_yaml() -> String {
    crds().iter().map(crd_document).collect()
}

/// Write one `<crd name>.yaml` per CRD into `dir` (how `crds/` is regenerated).
pub fn write_crd_files(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for crd in crds() {
        std::fs::write(dir.join(crd_file_name(&crd)), crd_document(&crd))?;
    }
    Ok(())
}

/// The file name (under `crds/`) of one CRD.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}
