//! How the engine treats a failure. Each module has its own small error enum; each maps to one
//! [`ErrorClass`], which decides what happens next.

/// What a failure means for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient: throttling, a timeout, a reset connection. The pacer waits and tries again.
    Retry,
    /// This one item cannot be migrated: record it with its reason and go on.
    SkipItem,
    /// The run cannot go on (bad credentials, destination unusable). Stop before writing more.
    Fatal,
}

/// Implemented by every error the engine sees, so one place decides retry, skip or stop.
pub trait Classify {
    fn class(&self) -> ErrorClass;
}
