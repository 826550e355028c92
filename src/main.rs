//! The `nodepatch` binary: controller, node agent and offline tools in one.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "nodepatch", version, about = "Fleet patch management for Kubernetes nodes")]
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd { output_dir: None } => {
            print!("{}", nodepatch::api::crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Crd { output_dir: Some(dir) } => match nodepatch::api::write_crd_files(&dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("nodepatch crd: writing {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        },
    }
}
