//! The sync client: uploads the entries the hub does not hold yet, in bounded batches, and
//! stores each receipt.
//!
//! The loop starts from the local acked size (the largest receipt held), so an interrupted sync
//! resumes where the last receipt left it. If the hub holds more (a receipt was lost in flight)
//! it answers 409 with its size and the client continues from there, asking for a receipt of
//! that size with an empty batch. Transport failures, 5xx and 429 are retried with exponential
//! backoff up to a cap; every other refusal is final and returned as a typed error.

use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use fieldkit_audit::identity::{HUB_PREFIX, key_name, parse_public_key_pem};
use fieldkit_audit::{AuditLog, QueryError, ReceiptError, SignedCheckpoint};
use reqwest::StatusCode;

use crate::proto::{
    APPEND_PATH, AppendRequest, AppendResponse, ErrorBody, MAX_BATCH_ENTRIES, MAX_REQUEST_BYTES,
    kind,
};

/// Bounds and retry policy.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Entries per request (at most [`MAX_BATCH_ENTRIES`]).
    pub max_batch_entries: usize,
    /// Approximate request size bound (entries' bytes), kept below [`MAX_REQUEST_BYTES`].
    pub max_batch_bytes: usize,
    /// Retries of one request after a transient failure.
    pub retries: u32,
    /// First backoff delay; doubled on each retry.
    pub initial_backoff: Duration,
    /// The cap on the backoff delay.
    pub max_backoff: Duration,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            max_batch_entries: 500,
            max_batch_bytes: MAX_REQUEST_BYTES / 2,
            retries: 6,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyncReport {
    /// Entries the hub acknowledged in total.
    pub acked_size: u64,
    /// Entries uploaded by this run.
    pub sent: u64,
    /// Requests that were answered 200.
    pub batches: u64,
    /// Retries after transient failures.
    pub retries: u64,
    /// The hub's note key name.
    pub hub: Option<String>,
}

/// Why a sync stopped. Everything acknowledged before the error is kept (with its receipt).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The hub URL is not usable.
    #[error("hub URL {url:?} is not valid: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// Why.
        reason: String,
    },
    /// Reading the local log failed.
    #[error("reading the local audit log: {0}")]
    Log(#[from] QueryError),
    /// The receipt did not check out against the local log.
    #[error("the hub's receipt was refused: {0}")]
    Receipt(#[from] ReceiptError),
    /// The hub could not be reached, after all retries.
    #[error("hub {url} unreachable after {attempts} attempts: {reason}")]
    Unreachable {
        /// The hub.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        reason: String,
    },
    /// The hub holds more entries from this laptop than the local log has.
    #[error(
        "the hub holds {hub} entries from this laptop but the local log has only {local}: the local log was restored from an older copy or truncated"
    )]
    LocalBehindHub {
        /// The hub's size.
        hub: u64,
        /// The local size.
        local: u64,
    },
    /// The hub refused the batch.
    #[error("hub refused the sync ({status}, {}): {}", body.kind, body.message)]
    Refused {
        /// HTTP status.
        status: u16,
        /// The hub's `{kind, message}`.
        body: ErrorBody,
    },
    /// The hub's answer is not the protocol's.
    #[error("hub answered {status} with an unreadable body: {reason}")]
    BadResponse {
        /// HTTP status.
        status: u16,
        /// Why it is unreadable.
        reason: String,
    },
    /// The hub's key is not the pinned one, or its name does not match its key.
    #[error("hub key {found} is not the expected {required}")]
    HubKey {
        /// The hub's key name as announced.
        found: String,
        /// The expected key name.
        required: String,
    },
}

impl SyncError {
    /// Whether the hub reported a fork (the same seq with different bytes).
    pub fn is_fork(&self) -> bool {
        matches!(self, Self::Refused { body, .. } if body.kind == kind::FORK)
    }
}

/// Talks to one hub.
#[derive(Debug, Clone)]
pub struct SyncClient {
    http: reqwest::Client,
    url: String,
    config: SyncConfig,
    pinned: Option<VerifyingKey>,
}

enum Reply {
    Ok(AppendResponse),
    Refused(u16, ErrorBody),
}

impl SyncClient {
    /// A client for the hub at `url` (e.g. `http://127.0.0.1:8080`), with default bounds.
    pub fn new(url: &str) -> Result<Self, SyncError> {
        Self::with_config(url, SyncConfig::default())
    }

    /// A client with explicit bounds and retry policy.
    pub fn with_config(url: &str, config: SyncConfig) -> Result<Self, SyncError> {
        let bad = |reason: String| SyncError::BadUrl {
            url: url.into(),
            reason,
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad(format!(
                "scheme {:?}; required http or https",
                parsed.scheme()
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        let config = SyncConfig {
            max_batch_entries: config.max_batch_entries.clamp(1, MAX_BATCH_ENTRIES),
            max_batch_bytes: config.max_batch_bytes.clamp(1, MAX_REQUEST_BYTES / 2),
            ..config
        };
        Ok(Self {
            http,
            url: url.trim_end_matches('/').to_owned(),
            config,
            pinned: None,
        })
    }

    /// Requires receipts to be cosigned by this hub key (otherwise the key the hub announces is
    /// accepted if its name matches it).
    pub fn pin_hub_key(mut self, key: VerifyingKey) -> Self {
        self.pinned = Some(key);
        self
    }

    /// Uploads everything the hub does not hold, and stores the receipts.
    pub async fn sync(&self, log: &AuditLog) -> Result<SyncReport, SyncError> {
        let mut report = SyncReport {
            acked_size: 0,
            sent: 0,
            batches: 0,
            retries: 0,
            hub: None,
        };
        let mut hub_size = log.acked_size()?;
        let mut have_receipt_for = hub_size;
        let mut mismatches = 0;
        loop {
            let local = log.size()?;
            if hub_size > local {
                return Err(SyncError::LocalBehindHub {
                    hub: hub_size,
                    local,
                });
            }
            if hub_size == local && have_receipt_for == local {
                report.acked_size = local;
                return Ok(report);
            }
            let records = log.records(hub_size..hub_size + self.config.max_batch_entries as u64)?;
            let mut entries = Vec::new();
            let mut bytes = 0;
            for r in records {
                if !entries.is_empty() && bytes + r.body.len() > self.config.max_batch_bytes {
                    break;
                }
                bytes += r.body.len();
                entries.push(r.body);
            }
            let end = hub_size + entries.len() as u64;
            let checkpoint = log.checkpoint_at(end)?;
            let request = AppendRequest {
                origin: log.origin().to_owned(),
                old_size: hub_size,
                entries,
                checkpoint: checkpoint.as_str().to_owned(),
            };
            match self.post(&request, &mut report).await? {
                Reply::Ok(resp) => {
                    let receipt = SignedCheckpoint::parse(&resp.receipt)
                        .map_err(|e| bad_response(200, e.to_string()))?;
                    if !receipt.same_tree(&checkpoint) {
                        return Err(bad_response(
                            200,
                            format!(
                                "receipt is for size {} root {}; sent size {} root {}",
                                receipt.size(),
                                receipt.root_hex(),
                                checkpoint.size(),
                                checkpoint.root_hex()
                            ),
                        ));
                    }
                    let hub_key = self.hub_key(&resp)?;
                    log.store_receipt(&receipt, &resp.hub_name, &hub_key)?;
                    if !resp.duplicate {
                        report.sent += end - hub_size;
                    }
                    report.batches += 1;
                    report.hub = Some(resp.hub_name);
                    if resp.size > local {
                        return Err(SyncError::LocalBehindHub {
                            hub: resp.size,
                            local,
                        });
                    }
                    hub_size = end;
                    have_receipt_for = end;
                    mismatches = 0;
                }
                Reply::Refused(409, body) if body.kind == kind::SIZE_MISMATCH => {
                    let Some(size) = body.size else {
                        return Err(bad_response(409, "size_mismatch without size".into()));
                    };
                    mismatches += 1;
                    // The hub moved under us twice in a row: another writer for this origin.
                    if mismatches > 2 {
                        return Err(SyncError::Refused { status: 409, body });
                    }
                    hub_size = size;
                }
                Reply::Refused(status, body) => return Err(SyncError::Refused { status, body }),
            }
        }
    }

    fn hub_key(&self, resp: &AppendResponse) -> Result<VerifyingKey, SyncError> {
        let key = parse_public_key_pem(&resp.hub_key)
            .map_err(|e| bad_response(200, format!("hub_key: {e}")))?;
        let expected = match &self.pinned {
            Some(p) => key_name(HUB_PREFIX, p),
            None => key_name(HUB_PREFIX, &key),
        };
        if resp.hub_name != expected || key_name(HUB_PREFIX, &key) != expected {
            return Err(SyncError::HubKey {
                found: resp.hub_name.clone(),
                required: expected,
            });
        }
        Ok(key)
    }

    async fn post(
        &self,
        request: &AppendRequest,
        report: &mut SyncReport,
    ) -> Result<Reply, SyncError> {
        let url = format!("{}{APPEND_PATH}", self.url);
        let mut delay = self.config.initial_backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last_failure = match self.http.post(&url).json(request).send().await {
                Ok(resp) => {
                    let status = resp.status();
                    if status == StatusCode::OK {
                        let body = resp.bytes().await;
                        match body {
                            Ok(b) => {
                                return serde_json::from_slice(&b)
                                    .map(Reply::Ok)
                                    .map_err(|e| bad_response(200, e.to_string()));
                            }
                            Err(e) => e.to_string(),
                        }
                    } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                        format!("hub answered {status}")
                    } else {
                        let code = status.as_u16();
                        let b = resp
                            .bytes()
                            .await
                            .map_err(|e| bad_response(code, e.to_string()))?;
                        let body: ErrorBody = serde_json::from_slice(&b).map_err(|e| {
                            bad_response(code, format!("{e}: {}", String::from_utf8_lossy(&b)))
                        })?;
                        return Ok(Reply::Refused(code, body));
                    }
                }
                Err(e) => e.to_string(),
            };
            if attempt > self.config.retries {
                return Err(SyncError::Unreachable {
                    url: self.url.clone(),
                    attempts: attempt,
                    reason: last_failure,
                });
            }
            report.retries += 1;
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.config.max_backoff);
        }
    }
}

fn bad_response(status: u16, reason: String) -> SyncError {
    SyncError::BadResponse { status, reason }
}
