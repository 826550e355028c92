//! A scripted executor for unit and integration tests (compiled only under `cfg(test)` or the
//! `test-support` feature that tests/ enable; never part of the shipped binary).

use std::sync::{Arc, Mutex};

use super::HostError;
use super::command::{CommandOutput, HostCommand, HostExecutor};

/// An argv prefix and the output a [`ScriptedExecutor`] answers commands starting with it.
type ScriptedAnswer = (Vec<String>, CommandOutput);

/// A scripted executor for unit and integration tests of error paths: each command is matched
/// against the rules in order (first rule whose argv prefix matches wins); unmatched commands
/// fail to start. Every command run is recorded.
#[derive(Clone, Default)]
pub struct ScriptedExecutor {
    rules: Arc<Mutex<Vec<ScriptedAnswer>>>,
    calls: Arc<Mutex<Vec<HostCommand>>>,
}

impl ScriptedExecutor {
    /// An executor with no rules.
    pub fn new() -> ScriptedExecutor {
        ScriptedExecutor::default()
    }

    /// Answer commands whose argv starts with `prefix` with `output`.
    pub fn on(self, prefix: &[&str], output: CommandOutput) -> ScriptedExecutor {
        if let Ok(mut rules) = self.rules.lock() {
            rules.push((prefix.iter().map(|s| s.to_string()).collect(), output));
        }
        self
    }

    /// The commands run so far.
    pub fn calls(&self) -> Vec<HostCommand> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl HostExecutor for ScriptedExecutor {
    fn run(&self, command: &HostCommand) -> Result<CommandOutput, HostError> {
        command.check()?;
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(command.clone());
        }
        let rules = self.rules.lock().map(|r| r.clone()).unwrap_or_default();
        rules
            .into_iter()
            .find(|(prefix, _)| command.argv.starts_with(prefix))
            .map(|(_, output)| output)
            .ok_or_else(|| HostError::Spawn {
                program: command.argv[0].clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no scripted answer"),
            })
    }

    fn describe(&self) -> String {
        "scripted".to_string()
    }
}
