//! Typed JSON parsing that names the place of an error.

use serde::de::DeserializeOwned;

use crate::error::{Result, VulnError};
use crate::limits::Limits;

/// Parses `bytes` as `T`, refusing documents over the size limit. An error carries the JSON path
/// of the value that failed (`vulnerabilities[0].analysis.state`), and serde's own message,
/// which for an enumeration lists the allowed values. Nesting is bounded by serde_json's
/// recursion limit (128), so a deeply nested document is an error, not a stack overflow.
pub(crate) fn parse<T: DeserializeOwned>(
    document: &str,
    bytes: &[u8],
    limits: &Limits,
) -> Result<T> {
    if bytes.len() as u64 > limits.document {
        return Err(VulnError::TooLarge {
            document: document.to_owned(),
            what: "the document".into(),
            found: bytes.len() as u64,
            limit: limits.document,
        });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| malformed(document, e))?;
    de.end().map_err(|e| VulnError::Malformed {
        document: document.to_owned(),
        at: ".".into(),
        message: e.to_string(),
    })?;
    Ok(value)
}

fn malformed(document: &str, e: serde_path_to_error::Error<serde_json::Error>) -> VulnError {
    let path = e.path().to_string();
    VulnError::Malformed {
        document: document.to_owned(),
        at: if path.is_empty() || path == "?" {
            ".".into()
        } else {
            path
        },
        message: e.into_inner().to_string(),
    }
}

/// Refuses identifiers that carry control characters (terminal escapes, line breaks) or are
/// empty or absurdly long: ids, versions and names end up in terminals, CSV and web pages.
pub(crate) fn identifier(document: &str, at: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > 1024 || value.chars().any(char::is_control) {
        return Err(VulnError::refused(
            document,
            at,
            format!("{:?}", value.chars().take(80).collect::<String>()),
            "1 to 1024 characters without control characters",
        ));
    }
    Ok(())
}
