//! Controller errors. Each carries a bounded `category()` used as a metric label and Event reason.

/// Errors of a reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    /// Adding or removing a finalizer failed. kube-runtime writes finalizers with a JSON Patch
    /// whose `test` op checks the list it read from the cache; a cache a moment behind (a
    /// second reconcile right after the first added the finalizer) fails that test with 422.
    #[error("updating the finalizer: {0}")]
    Finalizer(#[source] kube::Error),
    /// Serialising a status or patch failed (a bug: our own types always serialise).
    #[error("serialising {what}: {source}")]
    Serialize {
        /// What was being serialised.
        what: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The object has no name (should not happen for objects from the API).
    #[error("object without metadata.name")]
    MissingName,
}

impl Error {
    /// A short, bounded label for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(status)) if status.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(status)) if status.code == 404 => "not_found",
            Error::Kube(kube::Error::Api(status)) if status.code == 403 => "forbidden",
            Error::Kube(kube::Error::Api(status)) if status.code == 429 => "throttled",
            Error::Kube(kube::Error::Api(_)) => "api",
            Error::Kube(_) => "transport",
            Error::Finalizer(kube::Error::Api(status)) if matches!(status.code, 409 | 422) => {
                "finalizer_conflict"
            }
            Error::Finalizer(_) => "finalizer",
            Error::Serialize { .. } => "serialize",
            Error::MissingName => "missing_name",
        }
    }
}

/// How a failed reconcile is retried (see `harness::backoff`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Someone else wrote first (409): retry almost at once with fresh data.
    Conflict,
    /// The API server is busy or unreachable (429, 5xx, transport): back off exponentially.
    Transient,
    /// Retrying soon cannot help (403, 400/422, our own bugs): wait long, tell the user.
    Permanent,
}

impl Error {
    /// The retry class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Kube(kube::Error::Api(status)) => match status.code {
                409 => ErrorClass::Conflict,
                400 | 403 | 422 => ErrorClass::Permanent,
                _ => ErrorClass::Transient,
            },
            Error::Kube(_) => ErrorClass::Transient,
            // The patch's test saw a stale list: retry at once with fresh data.
            Error::Finalizer(kube::Error::Api(status)) if matches!(status.code, 409 | 422) => {
                ErrorClass::Conflict
            }
            Error::Finalizer(e) => Error::Kube(clone_kube(e)).class(),
            Error::Serialize { .. } | Error::MissingName => ErrorClass::Permanent,
        }
    }
}

/// The class-relevant part of a kube error (kube::Error is not Clone).
fn clone_kube(e: &kube::Error) -> kube::Error {
    match e {
        kube::Error::Api(status) => kube::Error::Api(status.clone()),
        other => kube::Error::Service(other.to_string().into()),
    }
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error::Kube(e)
    }
}

/// Result of a reconcile step.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> Error {
        Error::Kube(kube::Error::Api(
            kube::core::Status::failure("x", "Reason")
                .with_code(code)
                .boxed(),
        ))
    }

    #[test]
    fn api_answers_are_classed_for_the_retry() {
        assert_eq!(api(409).class(), ErrorClass::Conflict);
        assert_eq!(api(429).class(), ErrorClass::Transient);
        assert_eq!(api(503).class(), ErrorClass::Transient);
        assert_eq!(api(403).class(), ErrorClass::Permanent);
        assert_eq!(api(422).class(), ErrorClass::Permanent);
        assert_eq!(Error::MissingName.class(), ErrorClass::Permanent);
        // A finalizer patch whose test op saw a stale cache: a conflict, not a 5-minute wait.
        let stale = |code| match api(code) {
            Error::Kube(e) => Error::Finalizer(e),
            _ => unreachable!(),
        };
        assert_eq!(stale(422).class(), ErrorClass::Conflict);
        assert_eq!(stale(422).category(), "finalizer_conflict");
        assert_eq!(stale(403).class(), ErrorClass::Permanent);
        assert_eq!(stale(503).class(), ErrorClass::Transient);
        assert_eq!(
            (api(409).category(), api(429).category()),
            ("conflict", "throttled")
        );
    }
}
