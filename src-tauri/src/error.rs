//! The one error type that crosses to the web view: `{kind, message}`.
//!
//! `kind` is a stable machine word the UI maps to what the technician should do next;
//! `message` is the library's own sentence (what failed, the value found, the value
//! required). Nothing is rephrased here: the CLI shows the same words.

use serde::Serialize;

/// An error as the UI receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppError {
    /// Machine-readable kind, e.g. `timeout`, `link`, `refused`, `no_device`.
    pub kind: String,
    /// What happened, in words.
    pub message: String,
}

impl AppError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        AppError {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl From<fieldkit_core::session::VisitError> for AppError {
    fn from(e: fieldkit_core::session::VisitError) -> Self {
        AppError::new(e.kind(), e.to_string())
    }
}

impl From<fieldkit_core::StoreError> for AppError {
    fn from(e: fieldkit_core::StoreError) -> Self {
        let kind = match &e {
            fieldkit_core::StoreError::NoRoot { .. } => "no_trust_root",
            fieldkit_core::StoreError::Refused { .. } => "refused",
            fieldkit_core::StoreError::RootPresent { .. } => "root_present",
            fieldkit_core::StoreError::Conflict { .. } => "conflict",
            _ => "trust_store",
        };
        AppError::new(kind, e.to_string())
    }
}

impl From<fieldkit_core::home::HomeError> for AppError {
    fn from(e: fieldkit_core::home::HomeError) -> Self {
        AppError::new("home", e.to_string())
    }
}

impl From<fieldkit_audit::OpenError> for AppError {
    fn from(e: fieldkit_audit::OpenError) -> Self {
        AppError::new("audit", e.to_string())
    }
}

impl From<fieldkit_audit::QueryError> for AppError {
    fn from(e: fieldkit_audit::QueryError) -> Self {
        AppError::new("audit", e.to_string())
    }
}

impl From<fieldkit_audit::VerifyError> for AppError {
    fn from(e: fieldkit_audit::VerifyError) -> Self {
        AppError::new("audit_integrity", e.to_string())
    }
}

impl From<fieldkit_sync::SyncError> for AppError {
    fn from(e: fieldkit_sync::SyncError) -> Self {
        use fieldkit_sync::SyncError as S;
        let kind = match &e {
            S::BadUrl { .. } => "bad_hub_url",
            S::Unreachable { .. } => "hub_unreachable",
            S::Refused { body, .. } if body.kind == fieldkit_sync::proto::kind::UNKNOWN_LAPTOP => {
                "not_enrolled"
            }
            S::Refused { body, .. } if body.kind == fieldkit_sync::proto::kind::FORK => "fork",
            S::Refused { .. } => "hub_refused",
            S::LocalBehindHub { .. } => "local_behind_hub",
            S::HubKey { .. } => "hub_key_mismatch",
            _ => "sync",
        };
        AppError::new(kind, e.to_string())
    }
}

impl From<fieldkit_sync::pin::PinError> for AppError {
    fn from(e: fieldkit_sync::pin::PinError) -> Self {
        let kind = match &e {
            fieldkit_sync::pin::PinError::NotConfirmed { .. } => "hub_key_mismatch",
            _ => "hub_key",
        };
        AppError::new(kind, e.to_string())
    }
}
