//! Offline command-line tools of the `nodepatch` binary.

pub mod baseline_arg;
pub mod evaluate;
pub mod input;
pub mod scan;
pub mod windows;
pub(crate) mod yaml;
