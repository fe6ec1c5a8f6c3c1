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
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
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
            retry_after: None,
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
        match e {
            // The laptop retries 5xx with back-off; the database may be back by then.
            StoreError::Unavailable(_) => Self::new(503, kind::UNAVAILABLE, e.to_string()),
            // The database's own words stay in the hub's log: a client learns only what failed.
            StoreError::Db(_) => {
                Self::internal("the hub's database failed; see the hub's log".into())
            }
            _ => Self::internal(e.to_string()),
        }
    }
}

impl From<crate::rules::QueryRuleError> for ApiError {
    fn from(e: crate::rules::QueryRuleError) -> Self {
        Self::new(400, kind::BAD_REQUEST, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry = self.retry_after;
        let mut resp = (status, Json(self.body)).into_response();
        if let Some(secs) = retry {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}
