//! The sync client: uploads the entries the hub does not hold yet, in bounded batches, and
//! stores each receipt.
//!
//! The loop starts from the local acked size (the largest receipt held), so an interrupted sync
//! resumes where the last receipt left it. If the hub holds more (a receipt was lost in flight)
//! it answers 409 with its size and the client continues from there, asking for a receipt of
//! that size with an empty batch. Transport failures, 5xx and 429 are retried with exponential
//! backoff up to a cap; every other refusal is final and returned as a typed error.
//!
//! The hub is authenticated by its key, pinned on the laptop (at enrolment, or at the first
//! sync after the technician confirmed the key the hub presents): the client refuses to upload
//! to a hub that presents another key, and refuses any receipt not cosigned by the pinned key,
//! naming both keys. Every body it reads is bounded ([`MAX_RESPONSE_BYTES`]), whatever a hub
//! (or anyone in the middle) sends.

use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use fieldkit_audit::identity::{HUB_PREFIX, key_name, parse_public_key_pem};
use fieldkit_audit::{AuditLog, QueryError, ReceiptError, SignedCheckpoint};
use reqwest::StatusCode;

use crate::proto::{
    APPEND_PATH, AppendRequest, AppendResponse, ErrorBody, HUB_INFO_PATH, HubInfo,
    MAX_BATCH_ENTRIES, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, kind,
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
    /// Extra trusted root certificates (PEM) for a hub whose TLS certificate an internal CA
    /// issued.
    pub extra_roots_pem: Vec<Vec<u8>>,
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
            extra_roots_pem: Vec::new(),
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
    /// The hub's key is not the one this laptop pinned: a rogue hub, or someone in the middle.
    #[error(
        "the hub at {url} presents key {found}, but this laptop pinned hub key {pinned}: its receipts are refused and nothing more is acknowledged (if the hub's key was really replaced, confirm the new key with its operator and pin it again)"
    )]
    HubKey {
        /// The hub's URL.
        url: String,
        /// The key the hub presented or signed with.
        found: String,
        /// The pinned key.
        pinned: String,
    },
}

impl SyncError {
    /// Whether the hub reported a fork (the same seq with different bytes).
    pub fn is_fork(&self) -> bool {
        matches!(self, Self::Refused { body, .. } if body.kind == kind::FORK)
    }
}

/// Talks to one hub, whose key the laptop pinned.
#[derive(Debug, Clone)]
pub struct SyncClient {
    http: reqwest::Client,
    url: String,
    config: SyncConfig,
    pinned: VerifyingKey,
}

enum Reply {
    Ok(AppendResponse),
    Refused(u16, ErrorBody),
}

fn http_client(url: &str, config: &SyncConfig) -> Result<(reqwest::Client, String), SyncError> {
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
    let mut builder = reqwest::Client::builder()
        .timeout(config.request_timeout)
        // A hub answers; it never sends the laptop elsewhere.
        .redirect(reqwest::redirect::Policy::none());
    for pem in &config.extra_roots_pem {
        let cert = reqwest::Certificate::from_pem(pem)
            .map_err(|e| bad(format!("extra root certificate: {e}")))?;
        builder = builder.add_root_certificate(cert);
    }
    let http = builder.build().map_err(|e| bad(e.to_string()))?;
    Ok((http, url.trim_end_matches('/').to_owned()))
}

/// Reads at most `limit` bytes of a body; a longer one is an error, read no further.
async fn read_bounded(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let too_long = |n: u64| format!("the body is {n} bytes or more; at most {limit} are read");
    if let Some(n) = resp.content_length()
        && n > limit as u64
    {
        return Err(too_long(n));
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if out.len() + chunk.len() > limit {
            return Err(too_long((out.len() + chunk.len()) as u64));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A short, printable excerpt of a body that is not what the protocol says.
fn excerpt(b: &[u8]) -> String {
    let text = String::from_utf8_lossy(&b[..b.len().min(200)]);
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if b.len() > 200 {
        format!("{clean}…")
    } else {
        clean
    }
}

/// Checks that `url` can name a hub (http or https, well formed).
pub fn check_hub_url(url: &str) -> Result<(), SyncError> {
    http_client(url, &SyncConfig::default()).map(|_| ())
}

/// Asks the hub at `url` who it is, for the technician to confirm before pinning its key.
pub async fn fetch_hub_info(url: &str, config: &SyncConfig) -> Result<HubInfo, SyncError> {
    let (http, base) = http_client(url, config)?;
    let resp = http
        .get(format!("{base}{HUB_INFO_PATH}"))
        .send()
        .await
        .map_err(|e| SyncError::Unreachable {
            url: base.clone(),
            attempts: 1,
            reason: e.to_string(),
        })?;
    let status = resp.status().as_u16();
    let body = read_bounded(resp, MAX_RESPONSE_BYTES)
        .await
        .map_err(|e| bad_response(status, e))?;
    if status != 200 {
        return Err(bad_response(status, excerpt(&body)));
    }
    let info: HubInfo =
        serde_json::from_slice(&body).map_err(|e| bad_response(200, e.to_string()))?;
    let key = parse_public_key_pem(&info.public_key)
        .map_err(|e| bad_response(200, format!("public_key: {e}")))?;
    if key_name(HUB_PREFIX, &key) != info.name {
        return Err(bad_response(
            200,
            format!(
                "the hub calls itself {} but its key is {}",
                info.name,
                key_name(HUB_PREFIX, &key)
            ),
        ));
    }
    Ok(info)
}

impl SyncClient {
    /// A client for the hub at `url` (e.g. `https://hub.example:8443`) whose key the laptop
    /// pinned, with default bounds.
    pub fn new(url: &str, pinned: VerifyingKey) -> Result<Self, SyncError> {
        Self::with_config(url, pinned, SyncConfig::default())
    }

    /// A client with explicit bounds and retry policy.
    pub fn with_config(
        url: &str,
        pinned: VerifyingKey,
        config: SyncConfig,
    ) -> Result<Self, SyncError> {
        let (http, url) = http_client(url, &config)?;
        let config = SyncConfig {
            max_batch_entries: config.max_batch_entries.clamp(1, MAX_BATCH_ENTRIES),
            max_batch_bytes: config.max_batch_bytes.clamp(1, MAX_REQUEST_BYTES / 2),
            ..config
        };
        Ok(Self {
            http,
            url,
            config,
            pinned,
        })
    }

    /// The pinned hub key's name.
    pub fn pinned_name(&self) -> String {
        key_name(HUB_PREFIX, &self.pinned)
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
        // Before any entry leaves the laptop, the hub must present the pinned key.
        let info = self.hub_info(&mut report).await?;
        if info.name != self.pinned_name() {
            return Err(self.rogue(&info.name));
        }
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
                    if receipt.verify_signer(&resp.hub_name, &hub_key).is_err() {
                        return Err(
                            self.rogue(&format!("(a receipt not cosigned by {})", resp.hub_name))
                        );
                    }
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
        let pinned = self.pinned_name();
        let key = parse_public_key_pem(&resp.hub_key)
            .map_err(|e| bad_response(200, format!("hub_key: {e}")))?;
        let presented = key_name(HUB_PREFIX, &key);
        for found in [&resp.hub_name, &presented] {
            if *found != pinned {
                return Err(self.rogue(found));
            }
        }
        // The receipt is verified under the pinned key, not under what the hub announced.
        Ok(self.pinned)
    }

    /// The hub's identity, retried like an append.
    async fn hub_info(&self, report: &mut SyncReport) -> Result<HubInfo, SyncError> {
        let mut delay = self.config.initial_backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let transient = match fetch_hub_info(&self.url, &self.config).await {
                Err(SyncError::Unreachable { reason, .. }) => reason,
                Err(SyncError::BadResponse { status, reason })
                    if status >= 500 || status == 429 =>
                {
                    format!("hub answered {status}: {reason}")
                }
                other => return other,
            };
            if attempt > self.config.retries {
                return Err(SyncError::Unreachable {
                    url: self.url.clone(),
                    attempts: attempt,
                    reason: transient,
                });
            }
            report.retries += 1;
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.config.max_backoff);
        }
    }

    fn rogue(&self, found: &str) -> SyncError {
        SyncError::HubKey {
            url: self.url.clone(),
            found: found.to_owned(),
            pinned: self.pinned_name(),
        }
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
                    let code = status.as_u16();
                    if status == StatusCode::OK {
                        let b = read_bounded(resp, MAX_RESPONSE_BYTES)
                            .await
                            .map_err(|e| bad_response(code, e))?;
                        return serde_json::from_slice(&b)
                            .map(Reply::Ok)
                            .map_err(|e| bad_response(200, e.to_string()));
                    } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                        // The body is not needed to retry; it is not read.
                        format!("hub answered {status}")
                    } else {
                        let b = read_bounded(resp, MAX_RESPONSE_BYTES)
                            .await
                            .map_err(|e| bad_response(code, e))?;
                        let body: ErrorBody = serde_json::from_slice(&b)
                            .map_err(|e| bad_response(code, format!("{e}: {}", excerpt(&b))))?;
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
