//! nodepatch: fleet patch management for Kubernetes nodes.
//!
//! Pure modules (`baseline`, `schedule`, `rollout`, `policy`) never import the I/O ones
//! (`controller`, `agent`, `cli`, `plugin`).
pub mod agent;
pub mod api;
pub mod baseline;
pub mod cli;
pub mod controller;
pub mod plugin;
pub mod policy;
pub mod rollout;
pub mod schedule;
