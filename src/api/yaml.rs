//! YAML output in one fixed block style: what `nodepatch crd` (and so the committed, drift-checked
//! `crds/`), `nodepatch scan -o yaml` and `nodepatch evaluate --output yaml` print.
//!
//! Why our own writer: the crate reads YAML with serde-saphyr, whose emitter formats differently
//! from the libyaml-based `serde_yaml` these outputs were first produced with (folded long
//! strings, indented sequences, other quoting). Generated CRDs are committed and diffed, and users
//! script against the CLI output, so the writer keeps that format byte for byte: maps in
//! serialisation order, sequences at their key's indentation, `|-` literals for multi-line text,
//! single quotes only where a plain scalar would read back as something else (a number, a bool,
//! null) or is not allowed, double quotes for control characters, and no line wrapping.

use std::fmt::Write as _;

use serde::Serialize;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A serialised value with maps in serialisation order (serde_json's `Value` sorts keys).
enum Node {
    Null,
    Bool(bool),
    /// A number, already formatted.
    Number(String),
    String(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        struct NodeVisitor;

        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Bool(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::Number(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Number(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                // JSON holds only finite numbers; `{:?}` keeps the `.0` of whole floats, as
                // libyaml's emitter (through ryu) did.
                Ok(Node::Number(format!("{v:?}")))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::String(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Node, E> {
                Ok(Node::String(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Node::Map(entries))
            }
        }

        deserializer.deserialize_any(NodeVisitor)
    }
}

/// Serialise `value` as one YAML document (no leading `---`), in the format described in the
/// module docs. Fails only where JSON serialisation fails (e.g. a map with non-string keys).
pub fn to_yaml_string<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    // Through JSON text, which keeps struct field order, into the ordered tree.
    let node: Node = serde_json::from_str(&serde_json::to_string(value)?)?;
    let mut out = String::new();
    match &node {
        Node::Map(entries) if !entries.is_empty() => write_map(&mut out, entries, 0),
        Node::Seq(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        scalar => {
            write_scalar(&mut out, scalar, 0, false);
            out.push('\n');
        }
    }
    Ok(out)
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Block mapping at `level`; the first key is written at the current position (the caller has
/// written the indentation or a `- `).
fn write_map(out: &mut String, entries: &[(String, Node)], level: usize) {
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 {
            indent(out, level);
        }
        write_string(out, key, level, true);
        out.push(':');
        match value {
            Node::Map(m) if !m.is_empty() => {
                out.push('\n');
                indent(out, level + 2);
                write_map(out, m, level + 2);
            }
            // libyaml writes a block sequence under a key at the key's own indentation.
            Node::Seq(s) if !s.is_empty() => {
                out.push('\n');
                indent(out, level);
                write_seq(out, s, level);
            }
            scalar => {
                out.push(' ');
                write_scalar(out, scalar, level, false);
                out.push('\n');
            }
        }
    }
}

/// Block sequence at `level`; the first `- ` is written at the current position.
fn write_seq(out: &mut String, items: &[Node], level: usize) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            indent(out, level);
        }
        out.push_str("- ");
        match item {
            Node::Map(m) if !m.is_empty() => write_map(out, m, level + 2),
            Node::Seq(s) if !s.is_empty() => write_seq(out, s, level + 2),
            scalar => {
                write_scalar(out, scalar, level, false);
                out.push('\n');
            }
        }
    }
}

/// A scalar or an empty collection (`{}` / `[]`), without the line end.
fn write_scalar(out: &mut String, node: &Node, level: usize, key: bool) {
    match node {
        Node::Null => out.push_str("null"),
        Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Node::Number(n) => out.push_str(n),
        Node::String(s) => write_string(out, s, level, key),
        Node::Seq(_) => out.push_str("[]"),
        Node::Map(_) => out.push_str("{}"),
    }
}

/// What libyaml's scalar analysis allows for a string.
struct Analysis {
    /// Plain in flow context and as a mapping key.
    flow_plain: bool,
    /// Plain as a block value.
    block_plain: bool,
    single_quoted: bool,
    /// `|` literal.
    block: bool,
}

/// libyaml's printable set (with unicode output on).
fn printable(c: char) -> bool {
    matches!(c, '\n' | '\u{20}'..='\u{7e}' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
        && c != '\u{feff}'
}

fn blank(c: Option<char>) -> bool {
    matches!(c, None | Some(' ' | '\n'))
}

/// Port of libyaml's `yaml_emitter_analyze_scalar`.
fn analyze(s: &str) -> Analysis {
    let chars: Vec<char> = s.chars().collect();
    let (mut flow_ind, mut block_ind) = (false, false);
    if s.starts_with("---") || s.starts_with("...") {
        let after = chars.get(3).copied();
        if blank(after) {
            flow_ind = true;
            block_ind = true;
        }
    }
    let (mut special, mut line_breaks) = (false, false);
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    let mut preceded_by_blank = true;
    for (i, &c) in chars.iter().enumerate() {
        let next = chars.get(i + 1).copied();
        let followed_by_blank = blank(next);
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => {
                    flow_ind = true;
                    block_ind = true;
                }
                '?' | ':' => {
                    flow_ind = true;
                    if followed_by_blank {
                        block_ind = true;
                    }
                }
                '-' if followed_by_blank => {
                    flow_ind = true;
                    block_ind = true;
                }
                _ => {}
            }
        } else {
            match c {
                ',' | '?' | '[' | ']' | '{' | '}' => flow_ind = true,
                ':' => {
                    flow_ind = true;
                    if followed_by_blank {
                        block_ind = true;
                    }
                }
                '#' if preceded_by_blank => {
                    flow_ind = true;
                    block_ind = true;
                }
                _ => {}
            }
        }
        // NEL, LS and PS are line breaks to a YAML reader: written raw in a plain, quoted or
        // literal scalar they fold into newlines, so such a string is double-quoted with escapes
        // (libyaml would instead treat them as breaks of a literal; none of our outputs holds them).
        if !printable(c) || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}') {
            special = true;
        }
        if c == '\n' {
            line_breaks = true;
        }
        let last = i + 1 == chars.len();
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if last {
                trailing_space = true;
            }
            if previous_break {
                break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if c == '\n' {
            if i == 0 {
                leading_break = true;
            }
            if last {
                trailing_break = true;
            }
            if previous_space {
                space_break = true;
            }
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_blank = c == ' ' || c == '\n';
    }
    let mut a = Analysis {
        flow_plain: true,
        block_plain: true,
        single_quoted: true,
        block: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.flow_plain = false;
        a.block_plain = false;
    }
    if trailing_space {
        a.block = false;
    }
    if break_space {
        a.flow_plain = false;
        a.block_plain = false;
        a.single_quoted = false;
    }
    if space_break || special {
        a = Analysis {
            flow_plain: false,
            block_plain: false,
            single_quoted: false,
            block: false,
        };
    }
    if line_breaks {
        a.flow_plain = false;
        a.block_plain = false;
    }
    if flow_ind {
        a.flow_plain = false;
    }
    if block_ind {
        a.block_plain = false;
    }
    a
}

/// A plain scalar that YAML would resolve to something other than a string (serde_yaml quotes
/// these): null, bools (YAML 1.1's too: `y`, `no`, `on`, … read back as bools by serde-saphyr
/// and by YAML 1.1 tools), numbers, and digit strings with a leading zero.
fn reads_as_non_string(s: &str) -> bool {
    if matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
            | ""
            | "~"
            | "null"
            | "Null"
            | "NULL"
            | "true"
            | "True"
            | "TRUE"
            | "false"
            | "False"
            | "FALSE"
    ) {
        return true;
    }
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let radix = |prefix: &str, radix: u32| {
        unsigned
            .strip_prefix(prefix)
            .is_some_and(|d| !d.is_empty() && u64::from_str_radix(d, radix).is_ok())
    };
    if radix("0x", 16) || radix("0o", 8) || radix("0b", 2) {
        return true;
    }
    if s.parse::<i64>().is_ok() || s.parse::<u64>().is_ok() {
        return true;
    }
    // serde_yaml's float grammar: `.inf`, `.nan` and what Rust parses as a finite f64.
    let unpositive = match s.strip_prefix('+') {
        Some(rest) if rest.starts_with(['+', '-']) => return false,
        Some(rest) => rest,
        None => s,
    };
    if matches!(unpositive, ".inf" | ".Inf" | ".INF")
        || matches!(s, "-.inf" | "-.Inf" | "-.INF" | ".nan" | ".NaN" | ".NAN")
        || unpositive.parse::<f64>().is_ok_and(f64::is_finite)
    {
        return true;
    }
    // Leading-zero digit strings (`0755`) would read as octal in YAML 1.1.
    s.len() > 1 && s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit())
}

#[derive(PartialEq)]
enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
}

/// A string scalar; `key` for a mapping key (libyaml's "simple key" context).
fn write_string(out: &mut String, s: &str, level: usize, key: bool) {
    let a = analyze(s);
    let mut style = if s.contains('\n') {
        Style::Literal
    } else if reads_as_non_string(s) {
        Style::SingleQuoted
    } else {
        Style::Plain
    };
    if style == Style::Plain && ((key && !a.flow_plain) || (!key && !a.block_plain)) {
        style = Style::SingleQuoted;
    }
    if style == Style::Literal && (!a.block || key) {
        style = Style::DoubleQuoted;
    }
    // A literal needs an indentation indicator when its text starts with a space or a break;
    // libyaml writes one, this writer falls back to double quotes (never seen in our output).
    if style == Style::Literal && s.starts_with([' ', '\n']) {
        style = Style::DoubleQuoted;
    }
    if style == Style::SingleQuoted && !a.single_quoted {
        style = Style::DoubleQuoted;
    }
    match style {
        Style::Plain => out.push_str(s),
        Style::SingleQuoted => {
            out.push('\'');
            out.push_str(&s.replace('\'', "''"));
            out.push('\'');
        }
        Style::DoubleQuoted => write_double_quoted(out, s),
        Style::Literal => {
            out.push('|');
            let trailing = s.len() - s.trim_end_matches('\n').len();
            match trailing {
                0 => out.push('-'),
                1 => {}
                _ => out.push('+'),
            }
            // The caller ends the scalar's last line, so the text's last break is left to it
            // (with `|+` too: writing it here as well kept one break too many).
            let body = if trailing >= 1 { &s[..s.len() - 1] } else { s };
            for line in body.split('\n') {
                out.push('\n');
                if !line.is_empty() {
                    indent(out, level + 2);
                    out.push_str(line);
                }
            }
        }
    }
}

fn write_double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{85}' => out.push_str("\\N"),
            '\u{a0}' => out.push_str("\\_"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if printable(c) => out.push(c),
            c if u32::from(c) <= 0xff => {
                let _ = write!(out, "\\x{:02X}", u32::from(c));
            }
            c if u32::from(c) <= 0xffff => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\U{:08X}", u32::from(c));
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_would_read_back_as_something_else() {
        #[derive(Serialize)]
        struct S<'a> {
            a: &'a str,
            b: &'a str,
            c: &'a str,
            d: &'a str,
            e: &'a str,
            f: &'a str,
        }
        let yaml = to_yaml_string(&S {
            a: "plain text: ok",
            b: "true",
            c: "",
            d: "it's: here",
            e: "1.5",
            f: "!has(x)",
        })
        .expect("yaml");
        assert_eq!(
            yaml,
            "a: 'plain text: ok'\nb: 'true'\nc: ''\nd: 'it''s: here'\ne: '1.5'\nf: '!has(x)'\n"
        );
    }

    #[test]
    fn trailing_breaks_and_unicode_breaks_read_back_unchanged() {
        // Both were found by the round-trip property below.
        let value = serde_json::json!({"keep": "true\n\n", "nel": "\u{85}\n\n"});
        let yaml = to_yaml_string(&value).expect("yaml");
        assert_eq!(yaml, "keep: |+\n  true\n\nnel: \"\\N\\n\\n\"\n");
        let back: serde_json::Value = serde_saphyr::from_str(&yaml).expect("parse");
        assert_eq!(back, value);
    }

    use proptest::prelude::*;

    /// Strings that stress the quoting rules: YAML indicators, words that read back as other
    /// types, line breaks, leading and trailing blanks, control and non-ASCII characters.
    fn tricky_string() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("true".to_owned()),
            Just("Y".to_owned()),
            Just("off".to_owned()),
            Just("null".to_owned()),
            Just("~".to_owned()),
            Just("1.5".to_owned()),
            Just("0x1F".to_owned()),
            Just("-".to_owned()),
            Just("- ".to_owned()),
            Just("---".to_owned()),
            Just("...".to_owned()),
            Just(": ".to_owned()),
            Just(" #".to_owned()),
            Just("'".to_owned()),
            Just("\"".to_owned()),
            Just("\n".to_owned()),
            Just("\r\n".to_owned()),
            Just("\t".to_owned()),
            Just(" ".to_owned()),
            Just("\u{7}".to_owned()),
            Just("\u{85}".to_owned()),
            Just("\u{2028}".to_owned()),
            Just("é€".to_owned()),
            Just("{[,]}".to_owned()),
            Just("!&*%@`|>?".to_owned()),
            "[a-zA-Z0-9]{0,6}",
        ];
        prop::collection::vec(piece, 0..5).prop_map(|v| v.concat())
    }

    fn value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            tricky_string().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map(tricky_string(), inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Whatever the writer prints, a YAML parser reads back as the same value: the quoting
        /// rules never turn a string into another type or change its text.
        #[test]
        fn what_it_writes_reads_back_as_the_same_value(v in value()) {
            let yaml = to_yaml_string(&v).expect("yaml");
            let back: serde_json::Value = serde_saphyr::from_str(&yaml)
                .map_err(|e| TestCaseError::fail(format!("{e}\n---\n{yaml}")))?;
            prop_assert_eq!(back, v, "yaml:\n{}", yaml);
        }
    }

    #[test]
    fn sequences_sit_at_their_keys_indentation_and_multiline_text_is_literal() {
        let value = serde_json::json!({
            "k": [{"x": 1, "y": [true, null]}, "s"],
            "t": "one\ntwo\n\nthree",
            "e": {},
            "f": 360.0,
        });
        assert_eq!(
            to_yaml_string(&value).expect("yaml"),
            "e: {}\nf: 360.0\nk:\n- x: 1\n  'y':\n  - true\n  - null\n- s\nt: |-\n  one\n  two\n\n  three\n"
        );
    }
}
