//! Reading the CLI's YAML (or JSON) files with serde-saphyr, errors on one line: the message
//! ends with `at line L, column C`, and callers put their own prefix (the file, the field) in
//! front. Writing YAML is [`crate::api::yaml`].

use serde::de::DeserializeOwned;

/// Parser options: no source snippet in errors (the CLI prints one line per failure).
fn options() -> serde_saphyr::Options {
    serde_saphyr::options! { with_snippet: false }
}

/// Deserialize one document; the error names where the document is wrong.
pub(crate) fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
    serde_saphyr::from_str_with_options(text, options())
}

/// Deserialize one document, reporting the path of a bad field (`.` for the document itself)
/// and the message with its line and column.
pub(crate) fn from_str_with_path<T: DeserializeOwned>(text: &str) -> Result<T, (String, String)> {
    let mut path = None;
    serde_saphyr::with_deserializer_from_str_with_options(text, options(), |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            path = Some(e.path().to_string());
            e.into_inner()
        })
    })
    .map_err(|e| (path.unwrap_or_else(|| ".".into()), e.to_string()))
}

/// Every non-empty document of a multi-document stream, as JSON values.
pub(crate) fn documents(text: &str) -> Result<Vec<serde_json::Value>, serde_saphyr::Error> {
    serde_saphyr::from_multiple_with_options(text, options())
}
