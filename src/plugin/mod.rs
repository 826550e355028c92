//! The kubectl plugin (`kubectl nodepatch …`, the `kubectl-nodepatch` binary): fleet reports,
//! status, manual runs, suspend/resume, cancel and the evaluation trace of one package, against
//! the cluster of the user's kubeconfig and context. I/O at the edges only: each command reads
//! the API, builds its rows with pure functions (`status`, `report`, `why`) and prints them with
//! the writers of `output`.

pub mod args;
pub mod connection;
pub mod control;
pub mod error;
pub mod history;
pub mod output;
pub mod patch_now;
pub mod preview;
pub mod report;
pub mod status;
pub mod why;

#[cfg(test)]
mod fixtures;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

use args::{Cli, Command};
use error::PluginError;

/// The binary's entry point: parse the command line (usage errors exit 2), run the command,
/// print its output; exit 1 with one `error: …` line on stderr when it fails.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(&cli)) {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Ok(()) => ExitCode::SUCCESS,
                // A closed pipe (`| head`) is not worth a message.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: writing output: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Run one parsed command line; the text to print on success.
pub async fn execute(cli: &Cli) -> Result<String, PluginError> {
    let client = connection::client(&cli.connection).await?;
    match &cli.command {
        Command::Status(a) => status::run(&client, a).await,
        Command::Report(a) => report::run(&client, a).await,
        Command::Suspend(a) => control::set_suspend(&client, a, true).await,
        Command::Resume(a) => control::set_suspend(&client, a, false).await,
        Command::Cancel(a) => control::cancel(&client, a).await,
        Command::Why(a) => why::run(&client, a).await,
        Command::PatchNow(a) => patch_now::run(&client, a).await,
        Command::Preview(a) => preview::run(&client, a).await,
        Command::History(a) => history::run(&client, a, &cli.connection.namespace).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// clap checks argument definitions only when a command is built: do it here.
    #[test]
    fn every_command_is_well_formed_and_has_examples() {
        let mut cli = super::Cli::command();
        cli.clone().debug_assert();
        let top = cli.render_long_help().to_string();
        assert!(top.contains("Examples:"), "{top}");
        for sub in cli.get_subcommands_mut().filter(|s| s.get_name() != "help") {
            let help = sub.render_long_help().to_string();
            assert!(
                help.contains("Examples:\n  kubectl nodepatch "),
                "{}: {help}",
                sub.get_name()
            );
        }
    }
}
