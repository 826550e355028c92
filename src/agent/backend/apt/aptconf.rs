//! The few apt configuration options that change which version apt upgrades to, read from the
//! host's `/etc/apt/apt.conf` and `/etc/apt/apt.conf.d/*` (apt's own file selection and
//! syntax: `Key "value";`, nested `Scope { Key "value"; };`, lists, `//`, `#` and `/* */`
//! comments). `#include` and `#clear`, and the options that move the files the agent reads
//! (`Dir*`, `Dir::Etc::Preferences*`, `Dir::State*`) or switch apt to its legacy phasing
//! (`APT::Get::Phase-Policy`) are refused: the scan fails naming the file and line rather than
//! computing something apt would not.

use std::collections::HashMap;

use crate::agent::host::{HostError, HostRoot};

/// The main configuration file.
pub const APT_CONF: &str = "/etc/apt/apt.conf";
/// The configuration fragments directory.
pub const APT_CONF_DIR: &str = "/etc/apt/apt.conf.d";

/// Errors reading apt's configuration or preferences: what apt would reject, or what the agent
/// does not implement, with the file and line.
#[derive(Debug, thiserror::Error)]
pub enum AptPolicyError {
    /// A construct the agent cannot evaluate exactly as apt does.
    #[error("{path}:{line}: {message}")]
    Unsupported {
        /// Host path.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is not supported.
        message: String,
    },
    /// Something apt itself rejects (apt-get would fail too).
    #[error("{path}:{line}: {message}")]
    Invalid {
        /// Host path.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Reading failed.
    #[error(transparent)]
    Host(#[from] HostError),
}

impl AptPolicyError {
    /// Bounded category for metrics and report reasons.
    pub fn category(&self) -> &'static str {
        match self {
            AptPolicyError::Unsupported { .. } => "AptPolicyUnsupported",
            AptPolicyError::Invalid { .. } => "AptPolicyInvalid",
            AptPolicyError::Host(e) => e.category(),
        }
    }
}

/// apt's `GetListOfFilesInDir(dir, ext, sort, AllowNoExt=true)`: names of `[A-Za-z0-9_.-]`
/// only, not starting with a dot, either without any dot or ending in `.<ext>`, sorted.
pub fn apt_dir_files(root: &HostRoot, dir: &str, ext: &str) -> Result<Vec<String>, HostError> {
    let suffix = format!(".{ext}");
    let mut out: Vec<String> = root
        .list_dir(dir)?
        .into_iter()
        .filter(|name| {
            !name.starts_with('.')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                && (!name.contains('.') || name.ends_with(&suffix))
        })
        .filter(|name| {
            root.resolve(format!("{dir}/{name}"))
                .is_ok_and(|p| p.is_file())
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The options read (keys lower-cased, as apt's are case-insensitive), each with where it was
/// set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AptConfig {
    values: HashMap<String, (String, String, usize)>,
}

/// Options that relocate what the agent reads (with `dir::etc::preferences*`): set anywhere,
/// they fail the scan.
const REFUSED_KEYS: [&str; 6] = [
    "dir",
    "dir::etc",
    "dir::etc::machine-id",
    "dir::state",
    "dir::state::lists",
    "dir::state::status",
];

impl AptConfig {
    /// Read `/etc/apt/apt.conf.d/*` then `/etc/apt/apt.conf`, as apt does.
    pub fn read(root: &HostRoot) -> Result<AptConfig, AptPolicyError> {
        let mut config = AptConfig::default();
        for name in apt_dir_files(root, APT_CONF_DIR, "conf")? {
            let path = format!("{APT_CONF_DIR}/{name}");
            let text = root.read_to_string(&path)?;
            config.parse(&path, &text)?;
        }
        if let Some(bytes) = root.read_optional(APT_CONF)? {
            config.parse(APT_CONF, &String::from_utf8_lossy(&bytes))?;
        }
        Ok(config)
    }

    /// A raw value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(&key.to_ascii_lowercase())
            .map(|(v, _, _)| v.as_str())
    }

    /// apt's `FindB(key, default)` (`StringToBool`: yes/true/with/on/enable and 1 are true,
    /// no/false/without/off/disable and 0 are false, anything else the default).
    pub fn bool_or(&self, key: &str, default: bool) -> bool {
        match self.get(key).map(str::to_ascii_lowercase).as_deref() {
            Some("yes" | "true" | "with" | "on" | "enable") => true,
            Some("no" | "false" | "without" | "off" | "disable") => false,
            Some(v) => v.parse::<i64>().map(|n| n != 0).unwrap_or(default),
            None => default,
        }
    }

    /// Where a key was set (`path:line`), for messages.
    pub fn origin(&self, key: &str) -> Option<String> {
        self.values
            .get(&key.to_ascii_lowercase())
            .map(|(_, p, l)| format!("{p}:{l}"))
    }

    /// Parse one file's text into the options (later files override earlier ones).
    pub fn parse(&mut self, path: &str, text: &str) -> Result<(), AptPolicyError> {
        let tokens = tokenize(path, text)?;
        let mut scope: Vec<String> = Vec::new();
        let mut statement: Vec<(String, usize, bool)> = Vec::new();
        for (token, line, quoted) in tokens {
            match (token.as_str(), quoted) {
                ("{", false) => {
                    let Some((name, _, _)) = statement.first() else {
                        // An anonymous block in a list: nothing the agent reads.
                        scope.push(String::new());
                        continue;
                    };
                    scope.push(name.clone());
                    statement.clear();
                }
                ("}", false) => {
                    if scope.pop().is_none() {
                        return Err(invalid(path, line, "unbalanced `}`"));
                    }
                    statement.clear();
                }
                (";", false) => {
                    if statement.len() >= 2 {
                        let (name, line, _) = &statement[0];
                        let value = statement[1].0.clone();
                        self.set(path, *line, &scope, name, value)?;
                    }
                    statement.clear();
                }
                _ => statement.push((token, line, quoted)),
            }
        }
        if !scope.is_empty() {
            return Err(invalid(path, text.lines().count(), "unclosed `{`"));
        }
        Ok(())
    }

    fn set(
        &mut self,
        path: &str,
        line: usize,
        scope: &[String],
        name: &str,
        value: String,
    ) -> Result<(), AptPolicyError> {
        let mut key: Vec<&str> = scope
            .iter()
            .filter(|s| !s.is_empty())
            .map(String::as_str)
            .collect();
        key.push(name);
        let key = key.join("::").to_ascii_lowercase();
        let refused =
            REFUSED_KEYS.contains(&key.as_str()) || key.starts_with("dir::etc::preferences");
        if refused {
            return Err(unsupported(
                path,
                line,
                format!(
                    "`{key}` moves files the agent reads in place of apt; the agent reads apt's default locations only"
                ),
            ));
        }
        if key == "apt::get::phase-policy"
            && matches!(
                value.to_ascii_lowercase().as_str(),
                "true" | "yes" | "1" | "on" | "enable" | "with"
            )
        {
            return Err(unsupported(
                path,
                line,
                "`APT::Get::Phase-Policy` (apt's legacy phasing) is not implemented".to_string(),
            ));
        }
        self.values.insert(key, (value, path.to_string(), line));
        Ok(())
    }
}

fn invalid(path: &str, line: usize, message: &str) -> AptPolicyError {
    AptPolicyError::Invalid {
        path: path.to_string(),
        line,
        message: message.to_string(),
    }
}

fn unsupported(path: &str, line: usize, message: String) -> AptPolicyError {
    AptPolicyError::Unsupported {
        path: path.to_string(),
        line,
        message,
    }
}

/// apt.conf tokens: words, quoted strings (unquoted), `{`, `}`, `;`, each with its line.
fn tokenize(path: &str, text: &str) -> Result<Vec<(String, usize, bool)>, AptPolicyError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let mut line_start = true;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
            line_start = true;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let at_line_start = line_start;
        line_start = false;
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                if chars[i] == '\n' {
                    line += 1;
                }
                i += 1;
            }
            if i >= chars.len() {
                return Err(invalid(path, line, "unterminated `/*` comment"));
            }
            i += 2;
            continue;
        }
        if c == '#' {
            let rest: String = chars[i..].iter().take_while(|c| **c != '\n').collect();
            if at_line_start && (rest.starts_with("#include") || rest.starts_with("#clear")) {
                return Err(unsupported(
                    path,
                    line,
                    format!(
                        "`{}` is not implemented by the agent's apt.conf reader",
                        rest.split_whitespace().next().unwrap_or("#")
                    ),
                ));
            }
            i += rest.chars().count();
            continue;
        }
        if matches!(c, '{' | '}' | ';') {
            tokens.push((c.to_string(), line, false));
            i += 1;
            continue;
        }
        if c == '"' {
            let start_line = line;
            let mut value = String::new();
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\n' {
                    line += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
            if i >= chars.len() {
                return Err(invalid(path, start_line, "unterminated string"));
            }
            i += 1;
            tokens.push((value, start_line, true));
            continue;
        }
        let mut word = String::new();
        while i < chars.len() {
            let c = chars[i];
            if c.is_whitespace() || matches!(c, '{' | '}' | ';' | '"') {
                break;
            }
            if c == '/' && matches!(chars.get(i + 1), Some('/' | '*')) {
                break;
            }
            word.push(c);
            i += 1;
        }
        tokens.push((word, line, false));
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_and_flat_options_with_comments() {
        let mut config = AptConfig::default();
        config
            .parse(
                "/etc/apt/apt.conf.d/50x",
                "// comment\nAPT::Default-Release \"bookworm\";\n# hash comment\nAPT {\n  Get { Always-Include-Phased-Updates \"true\"; };\n  NeverAutoRemove { \"^linux-.*\"; \"x\"; };\n};\n/* block\n comment */ Update-Manager::Never-Include-Phased-Updates yes;\n",
            )
            .expect("parse");
        assert_eq!(config.get("apt::default-release"), Some("bookworm"));
        assert!(config.bool_or("APT::Get::Always-Include-Phased-Updates", false));
        assert!(config.bool_or("Update-Manager::Never-Include-Phased-Updates", false));
        assert!(!config.bool_or("APT::Get::Never-Include-Phased-Updates", false));
        assert_eq!(
            config.origin("APT::Default-Release").as_deref(),
            Some("/etc/apt/apt.conf.d/50x:2")
        );
    }

    #[test]
    fn relocations_includes_and_legacy_phasing_fail_closed() {
        for (text, line) in [
            ("\nDir::Etc::Preferences \"/x\";", 2),
            ("Dir \"/other\";", 1),
            ("Dir { State { Lists \"/x\"; }; };", 1),
            ("#include \"/etc/other.conf\";", 1),
            ("APT::Get::Phase-Policy \"true\";", 1),
        ] {
            let err = AptConfig::default()
                .parse("/etc/apt/apt.conf", text)
                .expect_err(text);
            assert!(
                matches!(err, AptPolicyError::Unsupported { line: l, .. } if l == line),
                "{text}: {err}"
            );
        }
        // Unrelated Dir:: options are fine (dpkg's binary, cache cleanup).
        AptConfig::default()
            .parse(
                "/x",
                "Dir::Cache::pkgcache \"\";\nDir::Bin::dpkg \"/usr/bin/dpkg\";",
            )
            .expect("unrelated Dir options");
        assert!(matches!(
            AptConfig::default().parse("/x", "APT { Get \"x\";"),
            Err(AptPolicyError::Invalid { .. })
        ));
    }
}
