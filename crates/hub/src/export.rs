//! Exports: CSV for spreadsheets, JSON as a verification bundle.
//!
//! The JSON export carries each entry's exact bytes (as hashed into its laptop's tree) and the
//! latest laptop-signed checkpoint per laptop, plus the hub's public key, so an auditor can
//! recompute leaf hashes and check the laptops' signatures without trusting the hub.

use serde::Serialize;

use fieldkit_audit::Identity;

use crate::error::ApiError;
use crate::rules::{EntryFilter, EntryQuery, EntryRow};
use crate::store::Store;

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values, one entry a row.
    Csv,
    /// A JSON verification bundle.
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "export format {other:?} is not known: required csv or json"
            )),
        }
    }
}

#[derive(Serialize)]
struct Bundle<'a> {
    format: &'static str,
    exported_at: String,
    hub: String,
    hub_key: String,
    filter: &'a EntryFilter,
    checkpoints: Vec<BundleCheckpoint>,
    entries: Vec<BundleEntry<'a>>,
}

#[derive(Serialize)]
struct BundleCheckpoint {
    origin: String,
    note: String,
}

#[derive(Serialize)]
struct BundleEntry<'a> {
    #[serde(flatten)]
    row: &'a EntryRow,
    /// The exact bytes hashed into the laptop's tree: SHA-256(0x00 || body) is the leaf.
    body: &'a str,
    leaf: String,
}

/// Exports the entries matching `q` (oldest first); `filter` is recorded in the bundle as given.
pub async fn export(
    store: &dyn Store,
    hub: &Identity,
    filter: &EntryFilter,
    q: &EntryQuery,
    format: Format,
) -> Result<Vec<u8>, ApiError> {
    let (_, mut rows) = crate::api::timeline(store, q).await?;
    rows.reverse();
    let fail = |e: String| ApiError::internal(format!("writing the export: {e}"));
    match format {
        Format::Json => {
            let bundle = Bundle {
                format: "fieldkit-hub-export/1",
                exported_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                hub: hub.name().into(),
                hub_key: hub.public_key_pem(),
                filter,
                checkpoints: store
                    .latest_checkpoints()
                    .await?
                    .into_iter()
                    .map(|(origin, note)| BundleCheckpoint { origin, note })
                    .collect(),
                entries: rows
                    .iter()
                    .map(|row| BundleEntry {
                        row,
                        body: &row.body,
                        leaf: hex::encode(fieldkit_audit::merkle::leaf_hash(row.body.as_bytes())),
                    })
                    .collect(),
            };
            serde_json::to_vec_pretty(&bundle).map_err(|e| fail(e.to_string()))
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            let err = |e: csv::Error| fail(e.to_string());
            w.write_record([
                "time",
                "laptop",
                "origin",
                "seq",
                "technician",
                "site",
                "device_serial",
                "device_model",
                "event",
                "outcome",
                "receipt",
                "pending",
                "fork",
                "clock_flag",
                "details",
            ])
            .map_err(err)?;
            for r in &rows {
                w.write_record([
                    r.time.as_str(),
                    &r.laptop,
                    &r.origin,
                    &r.seq.to_string(),
                    &r.technician,
                    &r.site,
                    r.device_serial.as_deref().unwrap_or(""),
                    r.device_model.as_deref().unwrap_or(""),
                    &r.event,
                    &r.outcome,
                    &r.badges.receipt.to_string(),
                    &r.badges.pending.to_string(),
                    &r.badges.fork.to_string(),
                    &r.badges.clock.to_string(),
                    &r.details.to_string(),
                ])
                .map_err(err)?;
            }
            w.into_inner().map_err(|e| fail(e.to_string()))
        }
    }
}
