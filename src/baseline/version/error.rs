//! The error every family's version parser returns.

/// A version string the package manager would reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The version does not follow the family's syntax.
    #[error("invalid {family} version {version:?}: {reason}")]
    Invalid {
        /// `deb`, `rpm` or `apk`.
        family: &'static str,
        /// The version as given.
        version: String,
        /// What is wrong.
        reason: String,
    },
}

impl VersionError {
    /// Bounded label for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            VersionError::Invalid { .. } => "InvalidVersion",
        }
    }
}
