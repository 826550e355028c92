//! The plugin's output writers, pure: rows in, text out. A row type lists its columns once (header,
//! CSV/JSON key, where it shows, how its cell reads); `table` and `wide` align the shown columns
//! like kubectl, `csv` is RFC 4180 (header row of the keys, CRLF line ends, fields quoted when
//! they hold a comma, quote, CR or LF, quotes doubled), `json` and `yaml` are an array of row
//! objects (the row's serde form, whose keys are the CSV header).

use serde::Serialize;

/// `-o`: how rows are printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// Aligned columns.
    #[default]
    Table,
    /// Aligned columns, with the extra ones.
    Wide,
    /// RFC 4180 CSV with a header row (every column).
    Csv,
    /// A JSON array of row objects.
    Json,
    /// A YAML sequence of row objects.
    Yaml,
}

/// Where a column shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// In every format.
    Always,
    /// In `wide`, CSV, JSON and YAML, not in `table`.
    Wide,
    /// Only in `table` and `wide` (a combined cell, e.g. `installed → available`, whose parts
    /// are data columns).
    TableOnly,
    /// Only in CSV, JSON and YAML (the parts of a table-only column).
    DataOnly,
}

/// One column of a row type `R`.
pub struct Column<R> {
    /// Table header (upper case).
    pub header: &'static str,
    /// CSV header and JSON/YAML key (camelCase); empty for table-only columns.
    pub key: &'static str,
    /// Where it shows.
    pub shown: Shown,
    /// The cell's text.
    pub cell: fn(&R) -> String,
}

/// A column, for the `const` column lists of row types.
pub const fn col<R>(
    header: &'static str,
    key: &'static str,
    shown: Shown,
    cell: fn(&R) -> String,
) -> Column<R> {
    Column {
        header,
        key,
        shown,
        cell,
    }
}

/// A row type: its serde form is the JSON/YAML object, its columns the table and CSV.
pub trait Row: Serialize + 'static {
    /// The columns, in order.
    fn columns() -> &'static [Column<Self>]
    where
        Self: Sized;
}

/// Render `rows` in `format`.
pub fn render<R: Row>(rows: &[R], format: OutputFormat) -> Result<String, serde_json::Error> {
    Ok(match format {
        OutputFormat::Table => table(rows, false),
        OutputFormat::Wide => table(rows, true),
        OutputFormat::Csv => csv(rows),
        OutputFormat::Json => serde_json::to_string_pretty(rows)? + "\n",
        OutputFormat::Yaml => yaml(rows)?,
    })
}

/// A YAML sequence (`[]` when empty) through the crate's one YAML writer.
pub fn yaml<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    crate::api::yaml::to_yaml_string(value)
}

/// Aligned columns with upper-case headers, two spaces apart, no trailing blanks; an empty cell
/// shows as `-`, line breaks in a cell as blanks.
pub fn table<R: Row>(rows: &[R], wide: bool) -> String {
    let columns: Vec<&Column<R>> = R::columns()
        .iter()
        .filter(|c| match c.shown {
            Shown::Always | Shown::TableOnly => true,
            Shown::Wide => wide,
            Shown::DataOnly => false,
        })
        .collect();
    let mut lines = vec![columns.iter().map(|c| c.header.to_string()).collect()];
    lines.extend(rows.iter().map(|r| {
        columns
            .iter()
            .map(|c| match (c.cell)(r) {
                cell if cell.is_empty() => "-".to_string(),
                cell => cell.replace(['\r', '\n'], " "),
            })
            .collect::<Vec<_>>()
    }));
    align(&lines)
}

/// Lay out `lines` (the first is the header) in columns.
pub fn align(lines: &[Vec<String>]) -> String {
    let n = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            lines
                .iter()
                .filter_map(|l| l.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// RFC 4180: a header row of the keys, then one record per row; CRLF after every record.
pub fn csv<R: Row>(rows: &[R]) -> String {
    let columns: Vec<&Column<R>> = R::columns()
        .iter()
        .filter(|c| c.shown != Shown::TableOnly)
        .collect();
    let mut out = String::new();
    let header: Vec<String> = columns.iter().map(|c| c.key.to_string()).collect();
    push_record(&mut out, &header);
    for r in rows {
        let record: Vec<String> = columns.iter().map(|c| (c.cell)(r)).collect();
        push_record(&mut out, &record);
    }
    out
}

fn push_record(out: &mut String, fields: &[String]) {
    let quoted: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    out.push_str(&quoted.join(","));
    out.push_str("\r\n");
}

/// One CSV field: quoted (quotes doubled) when it holds a comma, quote, CR or LF.
pub fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// A `from → to` version cell, `-` for a side that is absent (not installed, removed).
pub fn version_change(from: &str, to: &str) -> String {
    let shown = |v: &str| if v.is_empty() { "-" } else { v }.to_string();
    format!("{} → {}", shown(from), shown(to))
}

/// An optional text cell, empty when absent.
pub fn opt(value: Option<&str>) -> String {
    value.unwrap_or_default().to_string()
}

/// An optional API time as RFC 3339, empty when absent (CSV and JSON cells).
pub fn time_text(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> String {
    t.map(|t| t.0.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests;
