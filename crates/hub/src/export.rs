//! Exports: CSV for spreadsheets, JSON as a verification bundle.
//!
//! The rows are written by the one export module the laptop uses too
//! (`fieldkit_audit::export`): the same columns, the same reader of each entry's typed record,
//! and every CSV cell made inert for spreadsheets. The hub adds its own columns: the laptop's
//! name and the integrity badges.
//!
//! The JSON export carries each entry's exact bytes (as hashed into its laptop's tree) and the
//! latest laptop-signed checkpoint per laptop, plus the hub's public key, so an auditor can
//! recompute leaf hashes and check the laptops' signatures without trusting the hub.

use serde::Serialize;

use fieldkit_audit::export::JsonEntry;
use fieldkit_audit::{Identity, Record};

use crate::error::ApiError;
use crate::rules::{EntryFilter, EntryQuery, EntryRow};
use crate::store::Store;

pub use fieldkit_audit::export::Format;

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
    laptop: &'a str,
    badges: &'a crate::rules::Badges,
    #[serde(flatten)]
    entry: JsonEntry<'a>,
}

/// The entry of a row as the audit log holds it: parsed from the exact bytes the hub stored.
fn record(row: &EntryRow) -> Result<Record, String> {
    let entry: fieldkit_audit::Entry = serde_json::from_str(&row.body)
        .map_err(|e| format!("entry {} of {}: {e}", row.seq, row.origin))?;
    Ok(Record {
        leaf: fieldkit_audit::merkle::leaf_hash(row.body.as_bytes()),
        entry,
        body: row.body.clone(),
    })
}

/// Exports the entries matching `q` (oldest first); `filter` is recorded in the bundle as given.
pub async fn export(
    store: &dyn Store,
    hub: &Identity,
    filter: &EntryFilter,
    q: &EntryQuery,
    format: Format,
) -> Result<Vec<u8>, ApiError> {
    let mut rows = crate::api::timeline(store, q).await?;
    rows.reverse();
    let fail = |e: String| ApiError::internal(format!("writing the export: {e}"));
    let records = rows
        .iter()
        .map(record)
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    match format {
        Format::Json => {
            let bundle = Bundle {
                format: "fieldkit-hub-export/2",
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
                    .zip(&records)
                    .map(|(row, r)| BundleEntry {
                        laptop: &row.laptop,
                        badges: &row.badges,
                        entry: JsonEntry::of(r),
                    })
                    .collect(),
            };
            let text = serde_json::to_string_pretty(&bundle).map_err(|e| fail(e.to_string()))?;
            Ok(fieldkit_inert::json(&text).into_owned().into_bytes())
        }
        Format::Csv => {
            let mut out = Vec::new();
            fieldkit_audit::export::csv(
                &mut out,
                &["laptop", "receipt", "pending", "fork", "clock_flag"],
                rows.iter().zip(&records).map(|(row, r)| {
                    (
                        r,
                        vec![
                            row.laptop.clone(),
                            row.badges.receipt.to_string(),
                            row.badges.pending.to_string(),
                            row.badges.fork.to_string(),
                            row.badges.clock.to_string(),
                        ],
                    )
                }),
            )
            .map_err(|e| fail(e.to_string()))?;
            Ok(out)
        }
    }
}
