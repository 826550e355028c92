//! os-release(5) parsing: the `KEY=value` assignments of `/etc/os-release`. A leaf module (it
//! imports nothing of the agent) so that OS detection ([`super::os`]), the host executors and
//! the backends can all read os-release without importing each other.

use std::collections::BTreeMap;

/// Longest os-release value kept, in characters (os-release values are short names and
/// versions; a longer one is cut so it cannot bloat the node's report).
pub const MAX_VALUE_CHARS: usize = 256;

/// Most os-release lines read (the file has a dozen or two).
pub const MAX_LINES: usize = 1024;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OsRelease {
    fields: BTreeMap<String, String>,
}

impl OsRelease {
    /// Parse os-release text: `KEY=value` lines, values optionally in single or double quotes
    /// with backslash escapes in double quotes; comments and malformed lines are ignored, as
    /// systemd does. Values are cut to [`MAX_VALUE_CHARS`] and lines after [`MAX_LINES`]
    /// ignored.
    pub fn parse(text: &str) -> OsRelease {
        let mut fields = BTreeMap::new();
        for line in text.lines().take(MAX_LINES) {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, raw)) = line.split_once('=') else {
                continue;
            };
            let key = key.trim();
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                continue;
            }
            let mut value = unquote(raw.trim());
            if let Some((cut, _)) = value.char_indices().nth(MAX_VALUE_CHARS) {
                value.truncate(cut);
            }
            fields.insert(key.to_string(), value);
        }
        OsRelease { fields }
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// `ID`, lowercased (`debian`, `ubuntu`, `rhel`, …).
    pub fn id(&self) -> String {
        self.get("ID").unwrap_or_default().to_ascii_lowercase()
    }

    /// `ID_LIKE`, split on whitespace and lowercased.
    pub fn id_like(&self) -> Vec<String> {
        self.get("ID_LIKE")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_ascii_lowercase)
            .collect()
    }
}

/// Strip one level of shell-style quoting from an os-release value.
fn unquote(raw: &str) -> String {
    let bytes = raw.as_bytes();
    if bytes.len() >= 2 && bytes[0] == b'\'' && bytes[bytes.len() - 1] == b'\'' {
        return raw[1..raw.len() - 1].to_string();
    }
    if bytes.len() >= 2 && bytes[0] == b'"' && bytes[bytes.len() - 1] == b'"' {
        let inner = &raw[1..raw.len() - 1];
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            } else {
                out.push(c);
            }
        }
        return out;
    }
    raw.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_values_are_cut_and_quotes_stripped() {
        let huge = "é".repeat(3 << 20);
        let release = OsRelease::parse(&format!("ID=debian\nPRETTY_NAME=\"{huge}\"\n"));
        assert_eq!(release.id(), "debian");
        let pretty = release.get("PRETTY_NAME").expect("PRETTY_NAME");
        assert_eq!(pretty.chars().count(), MAX_VALUE_CHARS);
        assert!(pretty.chars().all(|c| c == 'é'));
    }
}
