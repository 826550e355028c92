//! The `nodepatch` binary: controller, node agent and offline tools in one.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "nodepatch",
    version,
    about = "Fleet patch management for Kubernetes nodes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions of every nodepatch kind as multi-document YAML.
    Crd {
        /// Write one file per CRD into this directory instead of printing (regenerates crds/).
        #[arg(long, value_name = "DIR")]
        output_dir: Option<std::path::PathBuf>,
    },
    /// Print the next maintenance windows of a schedule expression or MaintenanceWindow manifest.
    Windows(nodepatch::cli::windows::WindowsArgs),
    /// Evaluate a node's packages (input document) against a baseline and print the compliance
    /// verdict: the NodePatchReport status and, per candidate, whether and by what it is approved.
    Evaluate(nodepatch::cli::evaluate::EvaluateArgs),
    /// Scan a node root offline and print its NodePatchReport status (OS, compliance against a
    /// baseline, missing patches). Reads dpkg and apt lists in-process; runs nothing by default.
    Scan(nodepatch::cli::scan::ScanArgs),
    /// Run the node agent: one Scan or Install of this node for a PatchRun, reported in the
    /// node's NodePatchReport status; then idle until terminated.
    Agent(nodepatch::agent::cluster::AgentArgs),
    /// Run the controller (reconcilers for every kind, /metrics, /healthz, /readyz).
    Controller(Box<nodepatch::controller::ControllerArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Windows(args) => nodepatch::cli::windows::run(&args),
        Command::Evaluate(args) => nodepatch::cli::evaluate::run(&args),
        Command::Scan(args) => nodepatch::cli::scan::run(&args),
        Command::Agent(args) => run_async(nodepatch::agent::cluster::run(args)),
        Command::Controller(args) => run_async(nodepatch::controller::run(*args)),
        Command::Crd { output_dir: None } => {
            print!("{}", nodepatch::api::crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Crd {
            output_dir: Some(dir),
        } => match nodepatch::api::write_crd_files(&dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("nodepatch crd: writing {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        },
    }
}

/// Run an async command on a multi-threaded runtime with logging; errors print and exit 1.
fn run_async(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nodepatch: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("nodepatch: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Log to stderr; `RUST_LOG` filters (default info), `NODEPATCH_LOG_FORMAT=json` for JSON lines.
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("NODEPATCH_LOG_FORMAT").is_ok_and(|v| v == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks argument definitions (unique names, valid defaults) only when a command is
    /// built: do it for every subcommand here rather than at a user's first run.
    #[test]
    fn every_subcommand_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
