//! `nodepatch windows`: print the upcoming maintenance windows of a schedule expression or of a
//! MaintenanceWindow manifest, so users can check a schedule before applying it.
//!
//! This is the only place in the schedule path that reads the clock (the default for `--from`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::input::{InputError, read_input};
use crate::schedule::{
    CutoffBehavior, DurationError, Exclusion, SEARCH_HORIZON_YEARS, Schedule, ScheduleError,
    Window, WindowDefinition, WindowDefinitionError, format_duration, parse_duration,
    parse_time_zone,
};

/// Arguments of `nodepatch windows`.
#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "Examples:\n  nodepatch windows --schedule 'cron(0 2 ? * TUE#2 *)' --time-zone Europe/Berlin --duration 4h --cutoff 1h\n  nodepatch windows -f maintenance-window.yaml --output json"
)]
pub struct WindowsArgs {
    /// Schedule expression: `cron(min hour dom month dow year)`, a 5-field cron expression,
    /// `rate(N minutes|hours|days)` or `at(YYYY-MM-DDThh:mm:ss)`.
    #[arg(
        long,
        value_name = "EXPR",
        required_unless_present = "file",
        conflicts_with = "file"
    )]
    pub schedule: Option<String>,
    /// Read the window from a MaintenanceWindow manifest (YAML; `-` reads stdin) instead of
    /// the schedule flags.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// IANA time zone the schedule's wall-clock times are in.
    #[arg(
        long,
        value_name = "TZ",
        default_value = "UTC",
        conflicts_with = "file"
    )]
    pub time_zone: String,
    /// How long each window stays open (1h–24h).
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "1h",
        conflicts_with = "file"
    )]
    pub duration: String,
    /// No new node starts after end minus cutoff (0–23h, less than the duration).
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "0s",
        conflicts_with = "file"
    )]
    pub cutoff: String,
    /// Days added to every cron match (0–6), e.g. Patch Tuesday + 2.
    #[arg(long, value_name = "N", default_value_t = 0, conflicts_with = "file")]
    pub offset_days: u8,
    /// First start of a `rate(...)` schedule (RFC 3339). Default: `--from`.
    #[arg(long, value_name = "RFC3339", conflicts_with = "file")]
    pub anchor: Option<String>,
    /// List the windows starting after this instant (RFC 3339). Default: now.
    #[arg(long, value_name = "RFC3339")]
    pub from: Option<String>,
    /// How many windows to print (1–1000).
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub count: u16,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// How `nodepatch windows` prints its answer.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// A human-readable table with UTC and zone-local times.
    Table,
    /// A JSON list of `{start, cutoffAt, end}` objects in RFC 3339 UTC.
    Json,
}

/// Why `nodepatch windows` could not answer.
#[derive(Debug, thiserror::Error)]
pub enum WindowsError {
    /// The schedule expression is invalid.
    #[error("{source_name}: {source}")]
    Schedule {
        /// Where the expression came from (`--schedule` or `spec.schedule`).
        source_name: &'static str,
        /// The parser's complaint.
        #[source]
        source: ScheduleError,
    },
    /// A duration flag or field is invalid.
    #[error("{field}: {source}")]
    Duration {
        /// The flag or field.
        field: &'static str,
        /// The parser's complaint.
        #[source]
        source: DurationError,
    },
    /// The window definition breaks a limit (duration, cutoff, dates, …) or names an unknown
    /// time zone.
    #[error(transparent)]
    Definition(#[from] WindowDefinitionError),
    /// A timestamp flag or field is not RFC 3339.
    #[error("{field}: '{value}' — expected an RFC 3339 timestamp such as 2026-01-01T00:00:00Z")]
    Timestamp {
        /// The flag or field.
        field: String,
        /// The value as written.
        value: String,
        /// The parse failure.
        #[source]
        source: jiff::Error,
    },
    /// `spec.cutoffBehavior` is not ContinueTask or CancelTask.
    #[error("spec.cutoffBehavior: '{0}' — expected ContinueTask or CancelTask")]
    CutoffBehavior(String),
    /// The manifest file could not be read, or was refused (not a regular file, too large).
    #[error("reading {path}: {source}")]
    ReadManifest {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: InputError,
    },
    /// The manifest is not a MaintenanceWindow YAML document.
    #[error("{path}: not a MaintenanceWindow manifest: {source}")]
    ParseManifest {
        /// The file.
        path: String,
        /// The YAML failure (boxed: the parser's error is large).
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    /// The manifest is of another kind.
    #[error("{path}: kind is {kind}, expected MaintenanceWindow")]
    WrongKind {
        /// The file.
        path: String,
        /// The kind found.
        kind: String,
    },
    /// JSON output could not be produced.
    #[error("encoding JSON: {0}")]
    Json(#[source] serde_json::Error),
}

impl WindowsError {
    /// A bounded label for logs and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            WindowsError::Schedule { source, .. } => source.category(),
            WindowsError::Duration { source, .. } => source.category(),
            WindowsError::Definition(source) => source.category(),
            WindowsError::Timestamp { .. } => "invalid-timestamp",
            WindowsError::CutoffBehavior(_) => "invalid-cutoff-behavior",
            WindowsError::ReadManifest { .. } => "read-manifest",
            WindowsError::ParseManifest { .. } | WindowsError::WrongKind { .. } => {
                "invalid-manifest"
            }
            WindowsError::Json(_) => "encode-json",
        }
    }

    /// Exit status: 2 for invalid input (like a usage error), 1 when reading or writing failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            WindowsError::ReadManifest { source, .. } if !source.is_refused() => 1,
            WindowsError::Json(_) => 1,
            _ => 2,
        }
    }
}

/// Runs `nodepatch windows`: prints the windows to stdout, or the error to stderr with exit
/// status 2 for invalid input.
pub fn run(args: &WindowsArgs) -> ExitCode {
    // The one clock read of the schedule path: the default for --from.
    let now = Timestamp::now();
    match render(args, now) {
        Ok(text) => {
            use std::io::Write as _;
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("nodepatch windows: writing output: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(error) => {
            // A field error of a manifest names the field; say which file too.
            let names_file = matches!(
                error,
                WindowsError::ReadManifest { .. }
                    | WindowsError::ParseManifest { .. }
                    | WindowsError::WrongKind { .. }
            );
            match args.file.as_deref().filter(|_| !names_file) {
                Some(path) => eprintln!("nodepatch windows: {}: {error}", path.display()),
                None => eprintln!("nodepatch windows: {error}"),
            }
            ExitCode::from(error.exit_code())
        }
    }
}

/// Computes the output of `nodepatch windows` for `args`, using `now` when `--from` is absent.
pub fn render(args: &WindowsArgs, now: Timestamp) -> Result<String, WindowsError> {
    let from = match &args.from {
        Some(text) => parse_timestamp("--from", text)?,
        None => now,
    };
    let definition = match &args.file {
        Some(path) => definition_from_manifest(path, from)?,
        None => definition_from_flags(args, from)?,
    };
    definition.validate()?;
    let windows = definition.next_windows(from, usize::from(args.count));
    match args.output {
        OutputFormat::Json => {
            let rows: Vec<JsonWindow> = windows.iter().map(JsonWindow::from).collect();
            let mut text = serde_json::to_string_pretty(&rows).map_err(WindowsError::Json)?;
            text.push('\n');
            Ok(text)
        }
        OutputFormat::Table => Ok(table(&definition, from, &windows)),
    }
}

/// One window in the JSON output.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonWindow {
    start: String,
    cutoff_at: String,
    end: String,
}

impl From<&Window> for JsonWindow {
    fn from(window: &Window) -> Self {
        JsonWindow {
            start: window.start.to_string(),
            cutoff_at: window.cutoff_at.to_string(),
            end: window.end.to_string(),
        }
    }
}

fn parse_timestamp(field: &str, text: &str) -> Result<Timestamp, WindowsError> {
    text.trim()
        .parse()
        .map_err(|source| WindowsError::Timestamp {
            field: field.to_owned(),
            value: text.chars().take(64).collect(),
            source,
        })
}

fn parse_duration_field(field: &'static str, text: &str) -> Result<SignedDuration, WindowsError> {
    parse_duration(text).map_err(|source| WindowsError::Duration { field, source })
}

fn definition_from_flags(
    args: &WindowsArgs,
    from: Timestamp,
) -> Result<WindowDefinition, WindowsError> {
    // clap requires --schedule unless -f is given, and this is only called without -f.
    let expression = args.schedule.as_deref().unwrap_or_default();
    let schedule = Schedule::parse(expression).map_err(|source| WindowsError::Schedule {
        source_name: "--schedule",
        source,
    })?;
    let time_zone = parse_time_zone(&args.time_zone)?;
    let duration = parse_duration_field("--duration", &args.duration)?;
    let anchor = match &args.anchor {
        Some(text) => parse_timestamp("--anchor", text)?,
        None => from,
    };
    let mut definition = WindowDefinition::new(schedule, time_zone, duration, anchor);
    definition.cutoff = parse_duration_field("--cutoff", &args.cutoff)?;
    definition.offset_days = args.offset_days;
    Ok(definition)
}

/// The parts of a MaintenanceWindow manifest the CLI reads. A local mirror of the API type so
/// the CLI does not depend on the CRD's Kubernetes types.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    kind: Option<String>,
    #[serde(default)]
    metadata: ManifestMetadata,
    spec: ManifestSpec,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ManifestMetadata {
    creation_timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestSpec {
    schedule: String,
    time_zone: Option<String>,
    duration: String,
    cutoff: Option<String>,
    cutoff_behavior: Option<String>,
    schedule_offset_days: Option<u8>,
    start_date: Option<String>,
    end_date: Option<String>,
    #[serde(default)]
    exclusions: Vec<ManifestExclusion>,
    #[serde(default)]
    suspend: bool,
}

#[derive(Deserialize)]
struct ManifestExclusion {
    name: String,
    start: String,
    end: String,
}

fn read_manifest(path: &Path) -> Result<String, WindowsError> {
    read_input(path).map_err(|source| WindowsError::ReadManifest {
        path: path.display().to_string(),
        source,
    })
}

fn definition_from_manifest(
    path: &Path,
    from: Timestamp,
) -> Result<WindowDefinition, WindowsError> {
    let text = read_manifest(path)?;
    let manifest: Manifest =
        crate::cli::yaml::from_str(&text).map_err(|source| WindowsError::ParseManifest {
            path: path.display().to_string(),
            source: Box::new(source),
        })?;
    if let Some(kind) = manifest.kind.filter(|kind| kind != "MaintenanceWindow") {
        return Err(WindowsError::WrongKind {
            path: path.display().to_string(),
            kind: kind.chars().take(64).collect(),
        });
    }
    let spec = manifest.spec;
    let schedule = Schedule::parse(&spec.schedule).map_err(|source| WindowsError::Schedule {
        source_name: "spec.schedule",
        source,
    })?;
    let time_zone = match &spec.time_zone {
        Some(name) => parse_time_zone(name)?,
        None => TimeZone::UTC,
    };
    let duration = parse_duration_field("spec.duration", &spec.duration)?;
    let optional_timestamp = |field: &str, value: &Option<String>| {
        value
            .as_deref()
            .map(|text| parse_timestamp(field, text))
            .transpose()
    };
    let start_date = optional_timestamp("spec.startDate", &spec.start_date)?;
    let end_date = optional_timestamp("spec.endDate", &spec.end_date)?;
    let created = optional_timestamp(
        "metadata.creationTimestamp",
        &manifest.metadata.creation_timestamp,
    )?;
    // As in the controller: a rate schedule counts from startDate, else from creation; a
    // manifest not yet applied has neither, so count from --from.
    let anchor = start_date.or(created).unwrap_or(from);

    let mut definition = WindowDefinition::new(schedule, time_zone, duration, anchor);
    if let Some(cutoff) = &spec.cutoff {
        definition.cutoff = parse_duration_field("spec.cutoff", cutoff)?;
    }
    definition.cutoff_behavior = match spec.cutoff_behavior.as_deref() {
        None | Some("ContinueTask") => CutoffBehavior::ContinueTask,
        Some("CancelTask") => CutoffBehavior::CancelTask,
        Some(other) => {
            return Err(WindowsError::CutoffBehavior(
                other.chars().take(64).collect(),
            ));
        }
    };
    definition.offset_days = spec.schedule_offset_days.unwrap_or(0);
    definition.start_date = start_date;
    definition.end_date = end_date;
    definition.suspend = spec.suspend;
    definition.exclusions = spec
        .exclusions
        .iter()
        .enumerate()
        .map(|(index, exclusion)| {
            Ok(Exclusion {
                name: exclusion.name.clone(),
                start: parse_timestamp(
                    &format!("spec.exclusions[{index}].start"),
                    &exclusion.start,
                )?,
                end: parse_timestamp(&format!("spec.exclusions[{index}].end"), &exclusion.end)?,
            })
        })
        .collect::<Result<_, WindowsError>>()?;
    Ok(definition)
}

fn utc(at: Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

fn local(at: Timestamp, zone: &TimeZone) -> String {
    at.to_zoned(zone.clone())
        .strftime("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

fn table(definition: &WindowDefinition, from: Timestamp, windows: &[Window]) -> String {
    let zone = &definition.time_zone;
    let zone_name = zone.iana_name().unwrap_or("UTC");
    let show_local = zone_name != "UTC";
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "schedule:  {}", definition.schedule);
    let _ = writeln!(out, "time zone: {zone_name}");
    let offset = if definition.offset_days > 0 {
        format!(", offset {} day(s)", definition.offset_days)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "duration:  {}, cutoff {} ({:?}){offset}",
        format_duration(definition.duration),
        format_duration(definition.cutoff),
        definition.cutoff_behavior,
    );
    let open = match definition.window_at(from) {
        Some(window) => format!(
            "since {} UTC, cutoff at {} UTC, closes {} UTC",
            utc(window.start),
            utc(window.cutoff_at),
            utc(window.end)
        ),
        None => "no".to_owned(),
    };
    let _ = writeln!(out, "from:      {from}");
    let _ = writeln!(out, "open:      {open}");
    let _ = writeln!(out);
    if definition.suspend {
        let _ = writeln!(out, "suspended: no windows");
        return out;
    }
    if windows.is_empty() {
        let _ = writeln!(
            out,
            "no window starts within {SEARCH_HORIZON_YEARS} years after {from}"
        );
        return out;
    }
    let mut header = vec![
        "START (UTC)".to_owned(),
        "CUTOFF AT (UTC)".to_owned(),
        "END (UTC)".to_owned(),
    ];
    if show_local {
        header.push(format!("START ({zone_name})"));
        header.push(format!("CUTOFF AT ({zone_name})"));
        header.push(format!("END ({zone_name})"));
    }
    let rows: Vec<Vec<String>> = windows
        .iter()
        .map(|w| {
            let mut row = vec![utc(w.start), utc(w.cutoff_at), utc(w.end)];
            if show_local {
                row.extend([
                    local(w.start, zone),
                    local(w.cutoff_at, zone),
                    local(w.end, zone),
                ]);
            }
            row
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].len())
                .chain([header[column].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &width)| format!("{cell:width$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct TestCli {
        #[command(flatten)]
        args: WindowsArgs,
    }

    fn args(argv: &[&str]) -> WindowsArgs {
        let argv = std::iter::once("windows").chain(argv.iter().copied());
        match TestCli::try_parse_from(argv) {
            Ok(cli) => cli.args,
            Err(error) => panic!("{error}"),
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_767_225_600).expect("2026-01-01T00:00:00Z")
    }

    #[test]
    fn json_lists_start_cutoff_and_end_in_utc() {
        let output = render(
            &args(&[
                "--schedule",
                "cron(0 2 ? * TUE#2 *)",
                "--time-zone",
                "Europe/Berlin",
                "--duration",
                "4h",
                "--cutoff",
                "1h",
                "--count",
                "2",
                "--output",
                "json",
            ]),
            now(),
        )
        .expect("valid");
        let parsed: serde_json::Value = serde_json::from_str(&output).expect("json");
        assert_eq!(
            parsed,
            serde_json::json!([
                {"start": "2026-01-13T01:00:00Z", "cutoffAt": "2026-01-13T04:00:00Z", "end": "2026-01-13T05:00:00Z"},
                {"start": "2026-02-10T01:00:00Z", "cutoffAt": "2026-02-10T04:00:00Z", "end": "2026-02-10T05:00:00Z"},
            ])
        );
    }

    #[test]
    fn table_shows_utc_and_zone_local_times() {
        let output = render(
            &args(&[
                "--schedule",
                "0 2 * * *",
                "--time-zone",
                "Asia/Kolkata",
                "--from",
                "2026-06-01T00:00:00Z",
                "--count",
                "1",
            ]),
            now(),
        )
        .expect("valid");
        assert!(
            output.contains("2026-06-01 20:30:00  2026-06-01 21:30:00  2026-06-01 21:30:00  2026-06-02 02:00:00 +05:30"),
            "{output}"
        );
        assert!(output.contains("START (Asia/Kolkata)"), "{output}");
    }

    #[test]
    fn manifest_fields_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("window.yaml");
        std::fs::write(
            &path,
            r#"apiVersion: nodepatch.dev/v1alpha1
kind: MaintenanceWindow
metadata:
  name: patch-tuesday
spec:
  schedule: "cron(0 2 ? * TUE#2 *)"
  timeZone: Europe/Berlin
  duration: 4h
  cutoff: 1h
  scheduleOffsetDays: 2
  exclusions:
    - {name: freeze, start: "2026-02-01T00:00:00Z", end: "2026-03-01T00:00:00Z"}
"#,
        )
        .expect("write");
        let path_text = path.display().to_string();
        let output = render(
            &args(&["-f", &path_text, "--output", "json", "--count", "2"]),
            now(),
        )
        .expect("valid");
        let parsed: serde_json::Value = serde_json::from_str(&output).expect("json");
        // Thursday after Patch Tuesday; February's falls in the freeze.
        assert_eq!(parsed[0]["start"], "2026-01-15T01:00:00Z");
        assert_eq!(parsed[1]["start"], "2026-03-12T01:00:00Z");
    }

    #[test]
    fn invalid_input_is_reported_with_exit_status_two() {
        let error =
            render(&args(&["--schedule", "cron(0 2 ? * TUE#6 *)"]), now()).expect_err("invalid");
        assert_eq!(
            error.to_string(),
            "--schedule: dow: 'TUE#6' — nth weekday must be 1-5"
        );
        assert_eq!(error.exit_code(), 2);

        let error = render(
            &args(&["--schedule", "0 2 * * *", "--duration", "30m"]),
            now(),
        )
        .expect_err("too short");
        assert_eq!(
            error.to_string(),
            "duration: must be between 1h and 24h, got 30m"
        );

        let error = render(
            &args(&["--schedule", "0 2 * * *", "--from", "yesterday"]),
            now(),
        )
        .expect_err("bad from");
        assert_eq!(
            error.to_string(),
            "--from: 'yesterday' — expected an RFC 3339 timestamp such as 2026-01-01T00:00:00Z"
        );
    }

    #[test]
    fn schedule_flags_conflict_with_a_manifest() {
        let argv = ["windows", "-f", "w.yaml", "--time-zone", "UTC"];
        assert!(TestCli::try_parse_from(argv).is_err());
        assert!(TestCli::try_parse_from(["windows"]).is_err());
    }
}
