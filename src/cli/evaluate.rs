//! `nodepatch evaluate`: evaluate a node's packages (an input document) against a baseline
//! offline, and print the verdict: the NodePatchReport `status` the agent would write, plus for
//! every candidate whether it is approved and by which rule or list.
//!
//! This is the only place in the evaluation path that reads the clock (the default for `--now`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use jiff::Timestamp;
use serde::de::DeserializeOwned;

use super::baseline_arg::{BaselineArgError, load_baseline_arg};
use super::input::{InputError, read_input};
use crate::baseline::model::parse_release_time;
use crate::baseline::{Evaluation, EvaluationError, EvaluationInput, evaluate};

/// Arguments of `nodepatch evaluate`.
#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "Examples:\n  nodepatch evaluate --input docs/examples/evaluate-input.yaml --baseline nodepatch-predefined-ubuntu\n  nodepatch evaluate -i node.json -b my-baseline.yaml --now 2024-10-01T00:00:00Z --output yaml"
)]
pub struct EvaluateArgs {
    /// Input document (YAML or JSON): operatingSystem, product, installed packages, candidates
    /// and installResult. `-` reads stdin.
    #[arg(short = 'i', long, value_name = "FILE")]
    pub input: PathBuf,
    /// The baseline: a PatchBaseline manifest or a bare spec (YAML or JSON, `-` for stdin), or the
    /// name of a predefined baseline (`nodepatch-predefined-<os>`, e.g.
    /// nodepatch-predefined-ubuntu).
    #[arg(short = 'b', long, value_name = "FILE|PREDEFINED-NAME")]
    pub baseline: String,
    /// Evaluate as of this time (RFC 3339, or a YYYY-MM-DD date at midnight UTC); default now.
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// How `nodepatch evaluate` prints its verdict.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// A summary and one table row per candidate.
    Table,
    /// `{baseline, status, candidates}` as JSON.
    Json,
    /// `{baseline, status, candidates}` as YAML.
    Yaml,
}

/// Why `nodepatch evaluate` could not answer.
#[derive(Debug, thiserror::Error)]
pub enum EvaluateCliError {
    /// A file could not be read, or was refused (not a regular file, too large).
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: InputError,
    },
    /// A document does not parse; `field` is where (`.` for the whole document).
    #[error("{what} {path}: at {field}: {message}")]
    Malformed {
        /// `input` or `baseline`.
        what: &'static str,
        /// The file.
        path: String,
        /// Path of the offending field.
        field: String,
        /// The parser's complaint.
        message: String,
    },
    /// `--baseline` cannot be used (unreadable, malformed, invalid, unknown name).
    #[error(transparent)]
    Baseline(#[from] BaselineArgError),
    /// `--now` is not a time.
    #[error("--now: {0}")]
    Now(String),
    /// The node cannot be evaluated against this baseline.
    #[error("{0}")]
    Evaluation(#[from] EvaluationError),
    /// The output could not be serialised.
    #[error("writing output: {0}")]
    Output(String),
}

impl EvaluateCliError {
    /// Bounded label for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            EvaluateCliError::Read { .. } => "ReadFailed",
            EvaluateCliError::Malformed { .. } => "MalformedDocument",
            EvaluateCliError::Baseline(e) => e.category(),
            EvaluateCliError::Now(_) => "InvalidTime",
            EvaluateCliError::Evaluation(e) => e.category(),
            EvaluateCliError::Output(_) => "OutputFailed",
        }
    }

    /// Exit status: 2 for invalid input, 1 for I/O failures.
    pub fn exit_code(&self) -> u8 {
        match self {
            EvaluateCliError::Read { source, .. } if !source.is_refused() => 1,
            EvaluateCliError::Output(_) => 1,
            _ => 2,
        }
    }
}

/// Runs `nodepatch evaluate`: prints the verdict to stdout, or the error to stderr with exit
/// status 2 for invalid input.
pub fn run(args: &EvaluateArgs) -> ExitCode {
    // The one clock read of the evaluation path: the default for --now.
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
                    eprintln!("nodepatch evaluate: writing output: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(error) => {
            eprintln!("nodepatch evaluate: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// Computes the output of `nodepatch evaluate` for `args`, using `now` when `--now` is absent.
pub fn render(args: &EvaluateArgs, now: Timestamp) -> Result<String, EvaluateCliError> {
    let now = match &args.now {
        Some(text) => parse_release_time(text).map_err(EvaluateCliError::Now)?,
        None => now,
    };
    let baseline = load_baseline_arg(&args.baseline)?;
    let input_path = args.input.display().to_string();
    let input_text = read_text(&args.input)?;
    let input: EvaluationInput =
        parse_document(&input_text).map_err(|(field, message)| EvaluateCliError::Malformed {
            what: "input",
            path: input_path,
            field,
            message,
        })?;
    let evaluation = evaluate(&baseline, &input, now)?;
    match args.output {
        OutputFormat::Json => serde_json::to_string_pretty(&evaluation)
            .map(|s| s + "\n")
            .map_err(|e| EvaluateCliError::Output(e.to_string())),
        OutputFormat::Yaml => crate::api::yaml::to_yaml_string(&evaluation)
            .map_err(|e| EvaluateCliError::Output(e.to_string())),
        OutputFormat::Table => Ok(table(&evaluation, now)),
    }
}

fn read_text(path: &Path) -> Result<String, EvaluateCliError> {
    read_input(path).map_err(|source| EvaluateCliError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Deserialize a YAML (or JSON, a subset of YAML) document, reporting the path of a bad field
/// and the message with its line and column.
fn parse_document<T: DeserializeOwned>(text: &str) -> Result<T, (String, String)> {
    crate::cli::yaml::from_str_with_path(text)
}

/// The human-readable verdict: the summary lines, one row per candidate with what approved or
/// rejected it, and the non-compliant patches. `kubectl nodepatch why` prints the same trace.
pub fn table(e: &Evaluation, now: Timestamp) -> String {
    let s = &e.status;
    let c = &s.counts;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Baseline:   {} (hash {})",
        e.baseline.name, e.baseline.hash
    );
    let _ = writeln!(out, "Evaluated:  {now}");
    let level = s
        .compliance_level
        .map(|l| format!(", level {}", l.as_str()))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "Compliance: {}{level}; reboot required: {}",
        s.compliance.as_str(),
        if s.reboot_required { "yes" } else { "no" }
    );
    let _ = writeln!(
        out,
        "Patches:    installed {}, installedOther {}, installedPendingReboot {}, installedRejected {}, missing {}, failed {}, notApplicable {}",
        c.installed,
        c.installed_other,
        c.installed_pending_reboot,
        c.installed_rejected,
        c.missing,
        c.failed,
        c.not_applicable
    );
    let n = &s.non_compliant_by_severity;
    let _ = writeln!(
        out,
        "Non-compliant: {} security, {} other; by level critical {}, high {}, medium {}, low {}, informational {}, unspecified {}",
        s.security_non_compliant,
        s.other_non_compliant,
        n.critical,
        n.high,
        n.medium,
        n.low,
        n.informational,
        n.unspecified
    );
    let mut rows: Vec<[String; 8]> = vec![[
        "NAME".into(),
        "ARCH".into(),
        "VERSION".into(),
        "APPROVED".into(),
        "BY".into(),
        "LEVEL".into(),
        "INSTALL".into(),
        "REASON".into(),
    ]];
    for v in &e.candidates {
        let mut reason = format!("{:?}", v.reason);
        if let Some(t) = v.approvable_at {
            let _ = write!(reason, " (at {t})");
        }
        if let Some(dep) = &v.blocked_by {
            let _ = write!(reason, " ({dep})");
        }
        rows.push([
            v.name.clone(),
            v.arch.clone().unwrap_or_else(|| "-".into()),
            v.version.clone(),
            if v.approved { "yes" } else { "no" }.into(),
            v.approved_by.map_or_else(|| "-".into(), |a| a.to_string()),
            v.compliance_level.map_or("-", |l| l.as_str()).into(),
            if v.to_install { "yes" } else { "-" }.into(),
            reason,
        ]);
    }
    out.push('\n');
    let widths: Vec<usize> = (0..8)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    if !s.patches.is_empty() {
        let _ = writeln!(
            out,
            "\nNon-compliant patches{}:",
            if s.truncated { " (truncated)" } else { "" }
        );
        for p in &s.patches {
            let _ = writeln!(
                out,
                "  {:?} {}{} {} -> {}{}",
                p.state,
                p.name,
                p.arch
                    .as_deref()
                    .map(|a| format!(".{a}"))
                    .unwrap_or_default(),
                p.installed_version.as_deref().unwrap_or("-"),
                p.available_version.as_deref().unwrap_or("-"),
                p.compliance_level
                    .map(|l| format!(" [{}]", l.as_str()))
                    .unwrap_or_default()
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(input: &Path, baseline: &str, output: OutputFormat) -> EvaluateArgs {
        EvaluateArgs {
            input: input.to_path_buf(),
            baseline: baseline.to_owned(),
            now: Some("2024-09-10T00:00:00Z".into()),
            output,
        }
    }

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write fixture");
        p
    }

    const INPUT: &str = "operatingSystem: Ubuntu\ninstalled: [{name: curl, arch: amd64, version: 8.5.0-2ubuntu10.1}]\ncandidates: [{name: curl, arch: amd64, version: 8.5.0-2ubuntu10.4, repositories: [noble-security], priority: optional}]\n";

    #[test]
    fn predefined_baseline_and_json_output() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = write(&dir, "in.yaml", INPUT);
        let out = render(
            &args(&input, "nodepatch-predefined-ubuntu", OutputFormat::Json),
            Timestamp::UNIX_EPOCH,
        )
        .expect("renders");
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["status"]["compliance"], "NonCompliant");
        assert_eq!(v["status"]["counts"]["missing"], 1);
        assert_eq!(v["candidates"][0]["approvedBy"], "approvalRules[0]");
        assert_eq!(v["baseline"]["name"], "nodepatch-predefined-ubuntu");
    }

    #[test]
    fn manifest_with_bad_field_names_the_field_and_exits_2() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = write(&dir, "in.yaml", INPUT);
        let manifest = write(
            &dir,
            "pb.yaml",
            "apiVersion: nodepatch.dev/v1alpha1\nkind: PatchBaseline\nmetadata: {name: prod}\nspec:\n  operatingSystem: Ubuntu\n  approvalRules:\n    - approveAfterDays: many\n",
        );
        let err = render(
            &args(
                &input,
                manifest.to_str().expect("utf-8"),
                OutputFormat::Yaml,
            ),
            Timestamp::UNIX_EPOCH,
        )
        .expect_err("bad");
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string()
                .contains("spec.approvalRules[0].approveAfterDays"),
            "{err}"
        );

        let manifest = write(
            &dir,
            "pb2.yaml",
            "apiVersion: nodepatch.dev/v1alpha1\nkind: PatchBaseline\nmetadata: {name: prod}\nspec:\n  operatingSystem: Ubuntu\n  rejectedPatches: [\"-oAPT::x\"]\n",
        );
        let err = render(
            &args(
                &input,
                manifest.to_str().expect("utf-8"),
                OutputFormat::Yaml,
            ),
            Timestamp::UNIX_EPOCH,
        )
        .expect_err("bad");
        assert_eq!((err.exit_code(), err.category()), (2, "InvalidPatchName"));
        assert!(err.to_string().contains("spec.rejectedPatches[0]"), "{err}");
    }

    #[test]
    fn malformed_input_names_the_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = write(
            &dir,
            "in.yaml",
            "installed: [{name: a, version: '1'}]\ncandidates: [{name: a, version: '2', severty: High}]\n",
        );
        let err = render(
            &args(&input, "nodepatch-predefined-debian", OutputFormat::Table),
            Timestamp::UNIX_EPOCH,
        )
        .expect_err("bad");
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains("candidates[0]") && err.to_string().contains("severty"),
            "{err}"
        );
        let input = write(&dir, "in2.yaml", "{{{");
        assert_eq!(
            render(
                &args(&input, "nodepatch-predefined-debian", OutputFormat::Table),
                Timestamp::UNIX_EPOCH
            )
            .expect_err("bad")
            .exit_code(),
            2
        );
        let err = render(
            &args(&input, "nodepatch-predefined-plan9", OutputFormat::Table),
            Timestamp::UNIX_EPOCH,
        )
        .expect_err("unknown");
        assert!(
            err.to_string().contains("nodepatch-predefined-ubuntu"),
            "{err}"
        );
    }

    #[test]
    fn bare_spec_and_table_output() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = write(&dir, "in.yaml", INPUT);
        let spec = write(
            &dir,
            "spec.yaml",
            "operatingSystem: Ubuntu\napprovedPatches: [curl]\napprovedPatchesComplianceLevel: High\n",
        );
        let out = render(
            &args(&input, spec.to_str().expect("utf-8"), OutputFormat::Table),
            Timestamp::UNIX_EPOCH,
        )
        .expect("renders");
        assert!(
            out.contains("Compliance: NonCompliant, level High"),
            "{out}"
        );
        assert!(out.contains("approvedPatches"), "{out}");
        assert!(
            out.contains("Missing curl.amd64 8.5.0-2ubuntu10.1 -> 8.5.0-2ubuntu10.4 [High]"),
            "{out}"
        );
    }
}
