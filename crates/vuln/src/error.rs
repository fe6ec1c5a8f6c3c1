//! The crate's error: which document, where in it, what was found and what is required.

/// Why an advisory feed or a VEX document was refused.
///
/// Every variant names the document (a file name or an archive member, as the caller gave it)
/// and the place in it, so a release engineer can fix the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VulnError {
    /// The bytes are not a document of the expected shape: a JSON syntax error, a missing field,
    /// a wrong type, or a value outside an enumeration (the message then lists the allowed
    /// values).
    #[error("{document}: {at}: {message}")]
    Malformed {
        /// The document.
        document: String,
        /// JSON path of the offending value (`.` for the whole document).
        at: String,
        /// What is wrong, with the value found and the values allowed.
        message: String,
    },
    /// A value breaks a rule of its format.
    #[error("{document}: {at}: found {found}, required {required}")]
    Refused {
        /// The document.
        document: String,
        /// JSON path of the offending value.
        at: String,
        /// The value found.
        found: String,
        /// What the format requires.
        required: String,
    },
    /// The input is larger than the limits allow; nothing of it was kept.
    #[error("{document}: {what} is {found} bytes, required at most {limit} bytes")]
    TooLarge {
        /// The document.
        document: String,
        /// What is too large (the document, an archive member, an archive in total).
        what: String,
        /// Its size as far as it was read (or as declared).
        found: u64,
        /// The limit.
        limit: u64,
    },
    /// A zip archive is damaged or not a zip archive.
    #[error("{document}: not a readable zip archive: {message}")]
    Archive {
        /// The archive.
        document: String,
        /// The reason the zip reader gave.
        message: String,
    },
}

impl VulnError {
    pub(crate) fn refused(
        document: &str,
        at: impl Into<String>,
        found: impl Into<String>,
        required: impl Into<String>,
    ) -> Self {
        VulnError::Refused {
            document: document.to_owned(),
            at: at.into(),
            found: found.into(),
            required: required.into(),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = VulnError> = std::result::Result<T, E>;
