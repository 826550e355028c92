//! The `--baseline` argument shared by `nodepatch scan` and `nodepatch evaluate`: a predefined
//! baseline's name, or a file (`-` for stdin) holding a PatchBaseline manifest (the first such
//! document of a multi-document stream) or a bare spec. Validation (name grammar, filters,
//! dates) happens here, before anything runs.

use std::path::Path;

use super::input::{InputError, read_input};
use crate::api::PatchBaselineSpec;
use crate::baseline::{
    BaselineError, PREDEFINED_PREFIX, ResolvedBaseline, predefined_baseline, predefined_baselines,
};

/// Why a `--baseline` argument cannot be used. Every message starts with `--baseline <arg>:`.
#[derive(Debug, thiserror::Error)]
pub enum BaselineArgError {
    /// The file could not be read, or was refused (not a regular file, too large).
    #[error("--baseline {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: InputError,
    },
    /// The file is not a PatchBaseline manifest or spec; `field` is where (`.` for the whole
    /// document).
    #[error("--baseline {path}: at {field}: {message}")]
    Malformed {
        /// The file.
        path: String,
        /// The offending field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The spec is invalid (a malformed patch name, filter or date).
    #[error("--baseline {path}: {prefix}{source}")]
    Invalid {
        /// The file or name.
        path: String,
        /// `spec.` for manifests (the error's field is inside the spec).
        prefix: &'static str,
        /// What is wrong (boxed: it is large and errors travel by value).
        #[source]
        source: Box<BaselineError>,
    },
    /// Neither a file nor a predefined name.
    #[error("--baseline {0:?}: no such file, and not a predefined baseline (one of: {list})", list = predefined_baselines().into_iter().map(|p| p.name).collect::<Vec<_>>().join(", "))]
    Unknown(String),
}

impl BaselineArgError {
    /// Bounded category.
    pub fn category(&self) -> &'static str {
        match self {
            BaselineArgError::Read { .. } => "ReadFailed",
            BaselineArgError::Malformed { .. } => "MalformedBaseline",
            BaselineArgError::Invalid { source, .. } => source.category(),
            BaselineArgError::Unknown(_) => "UnknownBaseline",
        }
    }
}

fn read_text(arg: &str, path: &Path) -> Result<String, BaselineArgError> {
    read_input(path).map_err(|source| BaselineArgError::Read {
        path: arg.to_owned(),
        source,
    })
}

/// Load and validate a `--baseline` argument (see the module docs).
pub fn load_baseline_arg(arg: &str) -> Result<ResolvedBaseline, BaselineArgError> {
    let path = Path::new(arg);
    if arg != "-" && !path.exists() {
        if arg.starts_with(PREDEFINED_PREFIX)
            && let Some(p) = predefined_baseline(arg)
        {
            return ResolvedBaseline::resolve(p.name, &p.spec).map_err(|source| {
                BaselineArgError::Invalid {
                    path: arg.to_owned(),
                    prefix: "",
                    source: Box::new(source),
                }
            });
        }
        return Err(BaselineArgError::Unknown(arg.to_owned()));
    }
    let text = read_text(arg, path)?;
    let malformed = |field: String, message: String| BaselineArgError::Malformed {
        path: arg.to_owned(),
        field,
        message,
    };
    // Empty documents are skipped.
    let mut documents: Vec<serde_json::Value> =
        crate::cli::yaml::documents(&text).map_err(|e| malformed(".".into(), e.to_string()))?;
    documents.retain(|v| !v.is_null());
    // The first document that is a PatchBaseline manifest, or the only document.
    let kind_of = |v: &serde_json::Value| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned);
    let is_manifest = |v: &serde_json::Value| v.get("spec").is_some() && v.get("kind").is_some();
    let chosen = match documents
        .iter()
        .position(|v| is_manifest(v) && kind_of(v).as_deref() == Some("PatchBaseline"))
    {
        Some(i) => documents.swap_remove(i),
        None if documents.len() == 1 => documents.swap_remove(0),
        None if documents.is_empty() => {
            return Err(malformed(".".into(), "the file is empty".into()));
        }
        None => {
            return Err(malformed(
                ".".into(),
                "none of the documents is a PatchBaseline".into(),
            ));
        }
    };
    let file_stem = path
        .file_stem()
        .filter(|_| arg != "-")
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "baseline".into());
    let (name, spec_value, prefix) = if is_manifest(&chosen) {
        let kind = kind_of(&chosen).unwrap_or_default();
        if kind != "PatchBaseline" {
            return Err(malformed(
                "kind".into(),
                format!("expected PatchBaseline, found {kind:?}"),
            ));
        }
        let name = chosen
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .map(str::to_owned)
            .unwrap_or(file_stem);
        let spec = chosen.get("spec").cloned().unwrap_or_default();
        (name, spec, "spec.")
    } else {
        (file_stem, chosen, "")
    };
    let spec: PatchBaselineSpec = serde_path_to_error::deserialize(spec_value).map_err(|e| {
        let inner = e.path().to_string();
        let field = if prefix.is_empty() {
            inner
        } else if inner == "." {
            "spec".into()
        } else {
            format!("spec.{inner}")
        };
        malformed(field, e.inner().to_string())
    })?;
    ResolvedBaseline::resolve(name, &spec).map_err(|source| BaselineArgError::Invalid {
        path: arg.to_owned(),
        prefix,
        source: Box::new(source),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mine.yaml");
        std::fs::write(&path, text).expect("write");
        let arg = path.to_string_lossy().into_owned();
        (dir, arg)
    }

    #[test]
    fn malformed_patch_name_is_refused_with_its_field() {
        let (_d, arg) = file(
            "apiVersion: nodepatch.dev/v1alpha1\nkind: PatchBaseline\nmetadata: {name: bad}\nspec:\n  operatingSystem: Debian\n  approvedPatches: [\"-oAPT::Get=1\"]\n",
        );
        let err = load_baseline_arg(&arg).expect_err("refused");
        let text = err.to_string();
        assert!(text.starts_with("--baseline "), "{text}");
        assert!(text.contains("spec.approvedPatches[0]"), "{text}");
        assert_eq!(err.category(), "InvalidPatchName");
    }

    #[test]
    fn predefined_manifest_in_a_stream_and_bare_spec_baselines_load() {
        assert_eq!(
            load_baseline_arg("nodepatch-predefined-debian")
                .expect("predefined")
                .name(),
            "nodepatch-predefined-debian"
        );
        assert!(matches!(
            load_baseline_arg("nodepatch-predefined-plan9"),
            Err(BaselineArgError::Unknown(_))
        ));
        let (_d, arg) = file("operatingSystem: Debian\napprovedPatches: [np-sec]\n");
        assert_eq!(load_baseline_arg(&arg).expect("spec").name(), "mine");
        let (_d, arg) = file(
            "kind: ConfigMap\nmetadata: {name: x}\nspec: {}\n---\nkind: PatchBaseline\nmetadata: {name: prod}\nspec: {operatingSystem: Ubuntu}\n",
        );
        assert_eq!(load_baseline_arg(&arg).expect("stream").name(), "prod");
    }

    #[test]
    fn wrong_kind_empty_file_and_bad_rules_name_what_is_wrong() {
        let (_d, arg) = file("kind: ConfigMap\nmetadata: {name: x}\nspec: {}\n");
        let err = load_baseline_arg(&arg).expect_err("wrong kind");
        assert!(
            err.to_string().contains("at kind: expected PatchBaseline"),
            "{err}"
        );
        let (_d, arg) = file("");
        let err = load_baseline_arg(&arg).expect_err("empty");
        assert!(err.to_string().contains("the file is empty"), "{err}");
        let (_d, arg) = file("operatingSystem: Debian\napprovalRules: [{approveAfterDays: 999}]\n");
        assert!(load_baseline_arg(&arg).is_err());
    }
}
