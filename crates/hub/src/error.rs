//! One error type for every API response: `{kind, message}` with an HTTP status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fieldkit_sync::proto::{ErrorBody, kind};

use crate::store::StoreError;

/// An API error: status, machine-readable kind, human sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {}: {}", body.kind, body.message)]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// The body sent.
    pub body: ErrorBody,
}

impl ApiError {
    /// An error with a status, a kind from [`kind`] and a message.
    pub fn new(status: u16, kind: &str, message: String) -> Self {
        Self {
            status,
            body: ErrorBody {
                kind: kind.into(),
                message,
                size: None,
            },
        }
    }

    /// Attaches the hub's size (for `size_mismatch`).
    pub fn with_size(mut self, size: u64) -> Self {
        self.body.size = Some(size);
        self
    }

    /// A 500.
    pub fn internal(message: String) -> Self {
        Self::new(500, kind::INTERNAL, message)
    }

    /// A 401 for a missing or expired session.
    pub fn unauthenticated() -> Self {
        Self::new(
            401,
            kind::UNAUTHENTICATED,
            "sign in first: no valid session cookie".into(),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!("{e}");
        Self::internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.body)).into_response()
    }
}
