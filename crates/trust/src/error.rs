//! The crate's error: a refusal carrying its [`Finding`], or a failure to read the input.

use crate::finding::Finding;

/// Why a trust operation refused its input.
///
/// A refusal carries the full [`Finding`] (rule, found, required, explanation), so the CLI
/// prints it in one line, the app shows it, and the audit log stores it, all without
/// re-deriving the reason. Match on [`Finding::rule`] against the constants in
/// [`crate::rules`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// A rule failed.
    #[error("{}: {} (found {}, required {})", .0.rule, .0.explanation, .0.found, .0.required)]
    Refused(Box<Finding>),
    /// The input could not be read.
    #[error("reading {what} failed: {source}")]
    Io {
        /// What was being read.
        what: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl TrustError {
    /// A refusal by `rule`.
    pub fn refused(
        rule: &str,
        found: impl Into<String>,
        required: impl Into<String>,
        explanation: impl Into<String>,
    ) -> Self {
        TrustError::Refused(Box::new(Finding::fail(rule, found, required, explanation)))
    }

    /// The finding behind the error (I/O failures become an `io` finding).
    pub fn finding(&self) -> Finding {
        match self {
            TrustError::Refused(f) => (**f).clone(),
            TrustError::Io { what, source } => Finding::fail(
                crate::rules::IO,
                source.to_string(),
                format!("a readable {what}"),
                format!("Reading the {what} failed, so nothing in it can be trusted."),
            ),
        }
    }

    /// The rule that failed.
    pub fn rule(&self) -> String {
        self.finding().rule
    }
}

impl From<Finding> for TrustError {
    fn from(f: Finding) -> Self {
        TrustError::Refused(Box::new(f))
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = TrustError> = std::result::Result<T, E>;
