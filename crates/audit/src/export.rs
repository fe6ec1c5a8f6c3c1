//! Exports of audit entries, CSV for spreadsheets and JSON for verification: one module for
//! the laptop's `fieldkit audit export` and the hub's exports, so both write the same columns
//! the same way.
//!
//! Each row is an entry as read by the one reader ([`crate::Entry::read`]) plus the exact
//! bytes that were hashed and the leaf hash, so an auditor can recompute the tree. Callers may
//! add columns of their own (the hub adds the laptop's name and its integrity badges).
//!
//! Every CSV cell goes through [`fieldkit_inert::csv_cell`]: a device that calls itself
//! `=HYPERLINK(...)` shows up in a spreadsheet as that text, not as a live formula.

use std::io::Write;

use serde::Serialize;
use serde_json::Value;

use crate::entry::{Entry, Record};
use crate::record::Reading;

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values, one entry a row.
    Csv,
    /// JSON: every entry with its exact bytes and leaf hash.
    Json,
}

impl std::str::FromStr for Format {
    type Err = ExportError;
    fn from_str(s: &str) -> Result<Self, ExportError> {
        match s {
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            other => Err(ExportError::UnknownFormat {
                found: other.to_owned(),
            }),
        }
    }
}

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The format asked for does not exist.
    #[error("export format {found:?} is not known: required csv or json")]
    UnknownFormat {
        /// The name given.
        found: String,
    },
    /// Writing failed.
    #[error("writing the export failed: {0}")]
    Write(String),
}

/// The columns every CSV export starts with, in order.
pub const COLUMNS: [&str; 14] = [
    "origin",
    "seq",
    "time",
    "schema",
    "technician",
    "site",
    "device_serial",
    "device_model",
    "event",
    "outcome",
    "summary",
    "device",
    "details",
    "leaf",
];

/// One line for a person about what an entry records.
pub fn summary(entry: &Entry) -> String {
    match entry.read() {
        Ok(Reading::Typed(e)) => e.summary(),
        Ok(Reading::Legacy(l)) => format!("{} (recorded before typed records)", l.event),
        Err(e) => format!("unreadable record: {e}"),
    }
}

/// An entry as the JSON export writes it: the entry's fields, a one-line summary, the exact
/// bytes that were hashed and the leaf hash.
#[derive(Debug, Serialize)]
pub struct JsonEntry<'a> {
    /// The entry.
    #[serde(flatten)]
    pub entry: &'a Entry,
    /// [`summary`] of it.
    pub summary: String,
    /// The exact bytes hashed into the tree: SHA-256(0x00 || body) is the leaf.
    pub body: &'a str,
    /// The leaf hash, hex.
    pub leaf: String,
}

impl<'a> JsonEntry<'a> {
    /// The JSON form of `record`.
    pub fn of(record: &'a Record) -> Self {
        JsonEntry {
            entry: &record.entry,
            summary: summary(&record.entry),
            body: &record.body,
            leaf: hex::encode(record.leaf),
        }
    }
}

/// Writes `records` as a JSON array of [`JsonEntry`].
pub fn json<'a, W: Write>(
    out: W,
    records: impl IntoIterator<Item = &'a Record>,
) -> Result<(), ExportError> {
    let rows: Vec<JsonEntry<'_>> = records.into_iter().map(JsonEntry::of).collect();
    let mut out = out;
    serde_json::to_writer_pretty(&mut out, &rows).map_err(|e| ExportError::Write(e.to_string()))?;
    writeln!(out).map_err(|e| ExportError::Write(e.to_string()))
}

/// The cells of [`COLUMNS`] for one record, each made inert for a spreadsheet.
pub fn csv_cells(record: &Record) -> Vec<String> {
    let e = &record.entry;
    let device = e.device_record();
    let json = |v: &Value| v.to_string();
    [
        e.origin.clone(),
        e.seq.to_string(),
        e.time.to_rfc3339(),
        e.schema.to_string(),
        e.technician.clone(),
        e.site.clone(),
        device
            .as_ref()
            .map(|d| d.serial.clone())
            .unwrap_or_default(),
        device.as_ref().map(|d| d.model.clone()).unwrap_or_default(),
        e.event.clone(),
        e.outcome().as_str().to_owned(),
        summary(e),
        json(&e.device),
        json(&e.details),
        hex::encode(record.leaf),
    ]
    .into_iter()
    .map(|c| fieldkit_inert::csv_cell(&c).into_owned())
    .collect()
}

/// Writes a CSV table: [`COLUMNS`] then `extra_columns`, one row per record with its extra
/// cells (made inert here too).
pub fn csv<'a, W: Write>(
    out: W,
    extra_columns: &[&str],
    rows: impl IntoIterator<Item = (&'a Record, Vec<String>)>,
) -> Result<(), ExportError> {
    let err = |e: csv::Error| ExportError::Write(e.to_string());
    let mut w = csv::Writer::from_writer(out);
    w.write_record(COLUMNS.iter().chain(extra_columns))
        .map_err(err)?;
    for (record, extra) in rows {
        let mut cells = csv_cells(record);
        cells.extend(
            extra
                .iter()
                .map(|c| fieldkit_inert::csv_cell(c).into_owned()),
        );
        w.write_record(&cells).map_err(err)?;
    }
    w.flush().map_err(|e| ExportError::Write(e.to_string()))
}
