//! A zero-copy reader of deb822 control data: dpkg's status database, apt's `Packages` and
//! `Release` files. Paragraphs are separated by an empty line; a field is `Name: value`, and
//! lines starting with a space or tab continue the previous field.

/// Errors of deb822 parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Deb822Error {
    /// A line that is neither `Name: value` nor a continuation.
    #[error("line {line}: expected `Field: value`, found {found:?}")]
    MalformedLine {
        /// 1-based line number in the file.
        line: usize,
        /// The line (first 80 bytes).
        found: String,
    },
    /// A continuation line before any field.
    #[error("line {line}: continuation line without a field")]
    OrphanContinuation {
        /// 1-based line number.
        line: usize,
    },
}

impl Deb822Error {
    /// Bounded category for metrics and report reasons.
    pub fn category(&self) -> &'static str {
        "Deb822Malformed"
    }

    /// The same error for a paragraph that was parsed as if it started at line 1 but starts at
    /// `first_line`.
    pub fn at_paragraph_line(self, first_line: usize) -> Deb822Error {
        let shift = first_line.saturating_sub(1);
        match self {
            Deb822Error::MalformedLine { line, found } => Deb822Error::MalformedLine {
                line: line + shift,
                found,
            },
            Deb822Error::OrphanContinuation { line } => {
                Deb822Error::OrphanContinuation { line: line + shift }
            }
        }
    }
}

/// 1-based line of the first carriage return in `text`, if any. dpkg and apt write LF-only
/// files; a CRLF file would parse as one huge paragraph (`\r\n\r\n` is no blank line) and
/// hide every record after the first, so readers refuse it.
pub fn carriage_return_line(text: &str) -> Option<usize> {
    let at = memchr::memchr(b'\r', text.as_bytes())?;
    Some(1 + memchr::memchr_iter(b'\n', &text.as_bytes()[..at]).count())
}

/// One paragraph: its fields in file order. Values are the raw text after `Name:` (first line
/// trimmed, continuation lines kept with their newlines).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Paragraph<'a> {
    fields: Vec<(&'a str, &'a str)>,
    /// 1-based line number of the paragraph's first line, for messages.
    pub line: usize,
}

impl<'a> Paragraph<'a> {
    /// The value of field `name` (case-insensitive, as field names are), trimmed.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }

    /// Fields in file order.
    pub fn fields(&self) -> &[(&'a str, &'a str)] {
        &self.fields
    }

    /// True when the paragraph has no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

/// Iterator over the paragraphs of a deb822 text.
pub struct Paragraphs<'a> {
    text: &'a str,
    pos: usize,
    comments: bool,
    /// Start of the paragraph `next_raw` returned last.
    last_start: usize,
    /// Line numbers are counted lazily (only messages need them): `line` is the number of the
    /// line starting at byte `counted_to`.
    counted_to: usize,
    line: usize,
}

/// Paragraphs of `text`. Lines starting with `#` are errors, as in dpkg's files.
pub fn paragraphs(text: &str) -> Paragraphs<'_> {
    Paragraphs {
        text,
        pos: 0,
        comments: false,
        last_start: 0,
        counted_to: 0,
        line: 1,
    }
}

/// Paragraphs of `text`, skipping `#` comment lines (apt's deb822 `.sources` files).
pub fn paragraphs_with_comments(text: &str) -> Paragraphs<'_> {
    Paragraphs {
        comments: true,
        ..paragraphs(text)
    }
}

/// The paragraph separator, searched with one prepared finder.
fn blank_line_finder() -> &'static memchr::memmem::Finder<'static> {
    static FINDER: std::sync::OnceLock<memchr::memmem::Finder<'static>> =
        std::sync::OnceLock::new();
    FINDER.get_or_init(|| memchr::memmem::Finder::new(b"\n\n"))
}

impl<'a> Paragraphs<'a> {
    /// Byte offset of the next unread paragraph.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The raw text of the next paragraph (up to, not including, the blank line) without parsing
    /// it, advancing past it. Used to skip uninteresting paragraphs of huge `Packages` files
    /// quickly; `None` at the end.
    pub fn next_raw(&mut self) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        // Skip blank lines between paragraphs.
        while self.pos < bytes.len() && bytes[self.pos] == b'\n' {
            self.pos += 1;
        }
        if self.pos >= bytes.len() {
            return None;
        }
        let start = self.pos;
        let end = blank_line_finder()
            .find(&bytes[start..])
            .map(|i| start + i + 1)
            .unwrap_or(bytes.len());
        self.pos = end;
        self.last_start = start;
        Some(&self.text[start..end])
    }

    /// 1-based line number of the first line of the paragraph `next_raw` returned last.
    pub fn line(&mut self) -> usize {
        let target = self.last_start;
        if target < self.counted_to {
            self.counted_to = 0;
            self.line = 1;
        }
        self.line += self.text.as_bytes()[self.counted_to..target]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.counted_to = target;
        self.line
    }
}

impl<'a> Iterator for Paragraphs<'a> {
    type Item = Result<Paragraph<'a>, Deb822Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let raw = self.next_raw()?;
            let first_line = self.line();
            match parse_paragraph(raw, first_line, self.comments) {
                Ok(p) if p.is_empty() => continue, // only comments
                other => return Some(other),
            }
        }
    }
}

/// Parse one paragraph's text (no blank lines inside).
pub fn parse_paragraph(
    raw: &str,
    first_line: usize,
    comments: bool,
) -> Result<Paragraph<'_>, Deb822Error> {
    let mut fields: Vec<(&str, &str)> = Vec::with_capacity(16);
    // Byte range of the current field's value within `raw`.
    let mut current: Option<(&str, usize, usize)> = None;
    let mut offset = 0usize;
    for (index, line) in raw.split_inclusive('\n').enumerate() {
        let line_start = offset;
        offset += line.len();
        let content = line.trim_end_matches(['\n', '\r']);
        if comments && content.starts_with('#') {
            continue;
        }
        if content.starts_with([' ', '\t']) {
            match current.as_mut() {
                Some((_, _, end)) => *end = line_start + content.len(),
                None => {
                    return Err(Deb822Error::OrphanContinuation {
                        line: first_line + index,
                    });
                }
            }
            continue;
        }
        if content.trim().is_empty() {
            continue;
        }
        let Some(colon) = content.find(':') else {
            return Err(Deb822Error::MalformedLine {
                line: first_line + index,
                found: content.chars().take(80).collect(),
            });
        };
        if let Some((name, start, end)) = current.take() {
            fields.push((name, &raw[start..end]));
        }
        let name = content[..colon].trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(Deb822Error::MalformedLine {
                line: first_line + index,
                found: content.chars().take(80).collect(),
            });
        }
        current = Some((name, line_start + colon + 1, line_start + content.len()));
    }
    if let Some((name, start, end)) = current {
        fields.push((name, &raw[start..end]));
    }
    Ok(Paragraph {
        fields,
        line: first_line,
    })
}

/// If `raw` starts with `Name: value` for `name` (case-sensitive, the way dpkg and apt write
/// it), return the value's first line. A fast check used before a full parse.
pub fn leading_field<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    let rest = raw.strip_prefix(name)?.strip_prefix(':')?;
    let end = memchr::memchr(b'\n', rest.as_bytes()).unwrap_or(rest.len());
    Some(rest[..end].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_continuations() {
        let text = "Package: a\nVersion: 1\nDescription: short\n long line\n .\n more\n\n\nPackage: b\nStatus: install ok installed\n";
        let ps: Vec<_> = paragraphs(text).collect::<Result<_, _>>().expect("parse");
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].get("package"), Some("a"));
        assert_eq!(
            ps[0].get("Description"),
            Some("short\n long line\n .\n more")
        );
        assert_eq!(ps[1].get("Status"), Some("install ok installed"));
        assert_eq!(ps[1].line, 9);
    }

    #[test]
    fn malformed_line_names_its_number() {
        let err = paragraphs("Package: a\n\nPackage: b\nthis is not a field\n")
            .collect::<Result<Vec<_>, _>>()
            .expect_err("malformed");
        assert_eq!(
            err,
            Deb822Error::MalformedLine {
                line: 4,
                found: "this is not a field".into()
            }
        );
        let err = paragraphs(" orphan\n")
            .collect::<Result<Vec<_>, _>>()
            .expect_err("orphan");
        assert_eq!(err, Deb822Error::OrphanContinuation { line: 1 });
    }

    #[test]
    fn comments_only_where_allowed() {
        let text = "# c\nTypes: deb\n# inner\nURIs: file:/x\n";
        let ps: Vec<_> = paragraphs_with_comments(text)
            .collect::<Result<_, _>>()
            .expect("parse");
        assert_eq!(ps[0].get("URIs"), Some("file:/x"));
        assert!(paragraphs(text).next().expect("one").is_err());
    }

    #[test]
    fn leading_field_fast_path() {
        assert_eq!(
            leading_field("Package: libc6\nVersion: 2\n", "Package"),
            Some("libc6")
        );
        assert_eq!(leading_field("Version: 2\n", "Package"), None);
    }
}
