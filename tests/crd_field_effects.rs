//! Every user-settable spec field of `crds/*.yaml` has a test that shows its effect (issue 20:
//! "a CRD field is a promise"). The promise is the table `tests/fixtures/field-effects.tsv`:
//! one row per field, naming a test and what it shows about the field. This file keeps the
//! table honest against the CRDs, offline:
//! - every leaf spec field of every CRD has at least one row, and every row names a field that
//!   exists (removing a field forces removing its rows);
//! - every named test exists (`fn <name>(` in the named file);
//! - no row says `MISSING` (no test yet) or `PENDING` (being implemented);
//! - a field listed in a "removed in v1alpha1" section of docs/api.md is gone from the CRDs.
//!
//! Leaf fields: `<Kind>.spec.<path>`, list items as `[]`. An object with properties is a
//! container (its children are the fields), except a LabelSelector (properties exactly
//! `matchLabels` and `matchExpressions`), which is one field; maps, scalars, int-or-string and
//! lists of scalars are fields; a list of objects contributes its items' fields under `[]`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The table, relative to the crate root.
const TABLE: &str = "tests/fixtures/field-effects.tsv";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Leaf spec fields of every CRD in `crds/`, as `<Kind>.spec.<path>`.
fn crd_fields() -> BTreeSet<String> {
    let dir = root().join("crds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no CRDs in {}", dir.display());
    let mut fields = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable CRD file");
        let crd: Value = serde_saphyr::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not YAML: {e}", file.display()));
        let kind = crd
            .pointer("/spec/names/kind")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{}: no spec.names.kind", file.display()));
        let versions = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{}: no spec.versions", file.display()));
        for version in versions {
            let spec = version
                .pointer("/schema/openAPIV3Schema/properties/spec")
                .unwrap_or_else(|| panic!("{}: a version without a spec schema", file.display()));
            // The spec itself is a container even when empty (NodePatchReport).
            for (name, child) in properties(spec) {
                leaves(child, &format!("{kind}.spec.{name}"), &mut fields);
            }
        }
    }
    fields
}

fn properties(schema: &Value) -> impl Iterator<Item = (&String, &Value)> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
}

fn is_label_selector(schema: &Value) -> bool {
    let names: BTreeSet<&str> = properties(schema).map(|(n, _)| n.as_str()).collect();
    names == BTreeSet::from(["matchExpressions", "matchLabels"])
}

fn leaves(schema: &Value, path: &str, out: &mut BTreeSet<String>) {
    let has_properties = properties(schema).next().is_some();
    if has_properties && !is_label_selector(schema) {
        for (name, child) in properties(schema) {
            leaves(child, &format!("{path}.{name}"), out);
        }
        return;
    }
    if let Some(items) = schema.get("items")
        && properties(items).next().is_some()
        && !is_label_selector(items)
    {
        leaves(items, &format!("{path}[]"), out);
        return;
    }
    out.insert(path.to_string());
}

/// Where a row's evidence is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Evidence {
    /// `<file>::<fn>`.
    Test { file: String, function: String },
    /// No test shows the field's effect yet.
    Missing,
    /// The field's behaviour is being implemented.
    Pending,
}

#[derive(Debug)]
struct Row {
    line: usize,
    field: String,
    evidence: Evidence,
}

/// The table's rows; a malformed line fails the test naming it.
fn rows() -> Vec<Row> {
    let path = root().join(TABLE);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let [field, test, shows] = cols[..] else {
            problems.push(format!(
                "{TABLE}:{line_no}: want 3 tab-separated columns (field, test, what it shows), got {}",
                cols.len()
            ));
            continue;
        };
        if shows.trim().is_empty() {
            problems.push(format!(
                "{TABLE}:{line_no}: say what the test shows about {field}"
            ));
        }
        if !seen.insert(line) {
            problems.push(format!("{TABLE}:{line_no}: the same row twice"));
        }
        let evidence = match test {
            "MISSING" => Evidence::Missing,
            "PENDING" => Evidence::Pending,
            _ => match test.split_once("::") {
                Some((file, function))
                    if !file.is_empty()
                        && !function.is_empty()
                        && function
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                {
                    Evidence::Test {
                        file: file.to_string(),
                        function: function.to_string(),
                    }
                }
                _ => {
                    problems.push(format!(
                        "{TABLE}:{line_no}: test column '{test}' is not <file>::<fn>, MISSING or PENDING"
                    ));
                    continue;
                }
            },
        };
        rows.push(Row {
            line: line_no,
            field: field.to_string(),
            evidence,
        });
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    rows
}

#[test]
fn the_field_list_follows_the_leaf_rules() {
    // The enumeration itself must be right, or the other checks prove nothing.
    let fields = crd_fields();
    for expected in [
        "PatchBaseline.spec.approvalRules[].approveAfterDays",
        "PatchBaseline.spec.approvalRules[].filters[].values",
        "PatchBaseline.spec.approvedPatches",
        "PatchPolicy.spec.nodeSelector",
        "PatchPolicy.spec.drain.podSelector",
        "PatchPolicy.spec.rollout.maxConcurrency",
        "MaintenanceWindow.spec.exclusions[].name",
        "PatchRun.spec.cancel.reason",
    ] {
        assert!(fields.contains(expected), "{expected} not enumerated");
    }
    for container in [
        "PatchPolicy.spec.drain",
        "PatchPolicy.spec.nodeSelector.matchLabels",
        "PatchBaseline.spec.approvalRules",
        "PatchRun.spec.cancel",
    ] {
        assert!(!fields.contains(container), "{container} is not a leaf");
    }
    assert!(
        !fields.iter().any(|f| f.starts_with("NodePatchReport.")),
        "NodePatchReport's spec is empty"
    );
}

#[test]
fn every_spec_field_has_a_row() {
    let listed: BTreeSet<String> = rows().into_iter().map(|r| r.field).collect();
    let unlisted: Vec<String> = crd_fields().difference(&listed).cloned().collect();
    assert!(
        unlisted.is_empty(),
        "CRD fields without a row in {TABLE} (add one naming the test that shows the field's \
         effect, or MISSING):\n  {}",
        unlisted.join("\n  ")
    );
}

#[test]
fn every_row_names_a_field_of_the_crds() {
    let fields = crd_fields();
    let unknown: Vec<String> = rows()
        .into_iter()
        .filter(|r| !fields.contains(&r.field))
        .map(|r| {
            format!(
                "{TABLE}:{}: {} is not a leaf spec field of crds/*.yaml",
                r.line, r.field
            )
        })
        .collect();
    assert!(unknown.is_empty(), "{}", unknown.join("\n"));
}

#[test]
fn every_named_test_exists() {
    let mut sources: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for row in rows() {
        let Evidence::Test { file, function } = &row.evidence else {
            continue;
        };
        let path = Path::new(file);
        if path.is_absolute()
            || path
                .components()
                .any(|c| c == std::path::Component::ParentDir)
            || !(file.starts_with("tests/") || file.starts_with("src/"))
        {
            problems.push(format!(
                "{TABLE}:{}: {file} is not under tests/ or src/",
                row.line
            ));
            continue;
        }
        let text = sources
            .entry(file.clone())
            .or_insert_with(|| std::fs::read_to_string(root().join(path)).ok());
        match text {
            None => problems.push(format!("{TABLE}:{}: {file} does not exist", row.line)),
            Some(text) if !text.contains(&format!("fn {function}(")) => problems.push(format!(
                "{TABLE}:{}: {file} has no `fn {function}(` (named for {})",
                row.line, row.field
            )),
            Some(_) => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Expected to fail while fields lack a test (MISSING) or are being implemented (PENDING):
/// its message is the to-do list.
#[test]
fn no_field_is_missing_a_test_or_pending() {
    let mut missing = BTreeSet::new();
    let mut pending = BTreeSet::new();
    for row in rows() {
        match row.evidence {
            Evidence::Missing => missing.insert(row.field),
            Evidence::Pending => pending.insert(row.field),
            Evidence::Test { .. } => false,
        };
    }
    let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join("\n  ");
    assert!(
        missing.is_empty() && pending.is_empty(),
        "{TABLE}: fields whose effect no test shows yet (write the test, or remove the field \
         and list it under 'Removed in v1alpha1' in docs/api.md):\n  MISSING:\n  {}\n  PENDING:\n  {}",
        list(&missing),
        list(&pending)
    );
}

/// Backticked `<Kind>.spec.<path>` entries in the "removed in v1alpha1" sections of a
/// Markdown text (a section runs from its heading to the next heading).
fn removed_fields(markdown: &str) -> Vec<String> {
    let mut removed = Vec::new();
    let mut inside = false;
    for line in markdown.lines() {
        if line.starts_with('#') {
            inside = line.to_ascii_lowercase().contains("removed in v1alpha1");
            continue;
        }
        if !inside {
            continue;
        }
        for (i, span) in line.split('`').enumerate() {
            let is_code = i % 2 == 1;
            let looks_like_field = span.split_once(".spec.").is_some_and(|(kind, rest)| {
                !rest.is_empty()
                    && kind.starts_with(|c: char| c.is_ascii_uppercase())
                    && kind.chars().all(|c| c.is_ascii_alphanumeric())
            });
            if is_code && looks_like_field {
                removed.push(span.to_string());
            }
        }
    }
    removed
}

#[test]
fn removed_entries_are_read_from_their_section_only() {
    let md = "# API\n`PatchPolicy.spec.suspend` is kept.\n## Removed in v1alpha1\n\
              | field | why |\n|---|---|\n| `PatchPolicy.spec.install.preInstall` | hooks |\n\
              ## Other\n`PatchRun.spec.trigger`\n";
    assert_eq!(removed_fields(md), ["PatchPolicy.spec.install.preInstall"]);
}

#[test]
fn fields_removed_in_v1alpha1_are_gone_from_the_crds() {
    let api = root().join("docs/api.md");
    let text = std::fs::read_to_string(&api).expect("docs/api.md");
    let fields = crd_fields();
    let still_there: Vec<String> = removed_fields(&text)
        .into_iter()
        .filter(|r| {
            fields.iter().any(|f| {
                f == r
                    || f.strip_prefix(r.as_str())
                        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with("[]"))
            })
        })
        .collect();
    assert!(
        still_there.is_empty(),
        "docs/api.md lists as removed in v1alpha1 fields the CRDs still have: {}",
        still_there.join(", ")
    );
}
