//! Reading agent reports in tests.

use std::collections::BTreeMap;

use nodepatch::api::{NodePatchReportStatus, PatchStatus};

/// The report's entry for patch `name` (panics with the list when absent).
pub fn patch<'a>(status: &'a NodePatchReportStatus, name: &str) -> &'a PatchStatus {
    status
        .patches
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("{name} not among the patches: {:#?}", status.patches))
}

/// The operation's message, empty when none.
pub fn message(status: &NodePatchReportStatus) -> String {
    status
        .operation
        .as_ref()
        .and_then(|o| o.message.clone())
        .unwrap_or_default()
}

/// The reason of the report's Ready condition, empty when none.
pub fn ready_reason(status: &NodePatchReportStatus) -> String {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == nodepatch::api::conditions::READY)
        .map(|c| c.reason.clone())
        .unwrap_or_default()
}

/// `name version` of every package whose version differs between two inventories.
pub fn changes(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    after
        .iter()
        .filter(|(n, v)| before.get(*n) != Some(*v))
        .map(|(n, v)| format!("{n} {v}"))
        .collect()
}
