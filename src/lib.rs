//! nodepatch: fleet patch management for Kubernetes nodes.
//!
//! Pure modules (`baseline`, `schedule`, `rollout`) never import the I/O ones
//! (`controller`, `agent`).
pub mod api;
