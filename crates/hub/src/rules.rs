//! The hub's own rules, decided once in Rust for every backend: what a filter means, which
//! badges an entry earns, and which entry holds a device's latest identity.
//!
//! A backend receives the outcome of these rules as plain values (an equality, a range of
//! microseconds, an opaque recency key to keep the largest of) and never re-derives them in its
//! SQL dialect, so a second backend cannot drift from the first.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, TimeZone, Utc};
use fieldkit_audit::record::DeviceRecord;
use fieldkit_audit::{Entry, Outcome, entry};
use serde::{Deserialize, Serialize};

use crate::store::{DeviceUpdate, EntryFacts, StoredDevice, StoredEntry};

/// The most entries one timeline page holds.
pub const MAX_PAGE: u32 = 1000;
/// The most rows one export holds.
pub const MAX_EXPORT_ROWS: u32 = 100_000;
/// The deepest offset accepted: far beyond any real timeline, far below any integer limit.
pub const MAX_OFFSET: u64 = 100_000_000;
/// The longest text a filter field may hold.
pub const MAX_FILTER_CHARS: usize = 256;
/// The default page size.
pub const DEFAULT_PAGE: u32 = 200;
/// A timeline counts the entries matching its filters up to this many; beyond, it says "more
/// than" this many. Counting every match of a broad filter over millions of entries would make
/// each page as slow as the whole log is long; narrower filters, or an export, give exact
/// figures.
pub const COUNT_LIMIT: u64 = 10_000;

/// How many entries match a timeline's filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Total {
    /// The count, or [`COUNT_LIMIT`] when more match.
    pub total: u64,
    /// More than `total` entries match.
    pub more: bool,
}

impl Total {
    /// The total from a count made with `at_most` = [`COUNT_LIMIT`] + 1.
    pub fn from_count(counted: u64) -> Self {
        Self {
            total: counted.min(COUNT_LIMIT),
            more: counted > COUNT_LIMIT,
        }
    }
}

/// A query parameter broke a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("query parameter {param}={found:?} is not accepted: required {required}")]
pub struct QueryRuleError {
    /// The parameter.
    pub param: &'static str,
    /// The value found (truncated).
    pub found: String,
    /// What is required.
    pub required: String,
}

/// The refusal of one query parameter: its name, the value found (cut short) and what is required.
pub(crate) fn refuse(
    param: &'static str,
    found: &str,
    required: impl Into<String>,
) -> QueryRuleError {
    QueryRuleError {
        param,
        found: found.chars().take(80).collect(),
        required: required.into(),
    }
}

/// Timeline and export filters as they arrive (query string or CLI): all text, all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EntryFilter {
    /// Technician (exact).
    pub technician: Option<String>,
    /// Site (exact).
    pub site: Option<String>,
    /// Device serial (exact).
    pub serial: Option<String>,
    /// Device model (exact).
    pub model: Option<String>,
    /// Event type (exact).
    pub event: Option<String>,
    /// Outcome class (one of `fieldkit_audit::Outcome`).
    pub outcome: Option<String>,
    /// Laptop origin.
    pub origin: Option<String>,
    /// From this date or time (inclusive; RFC 3339, or YYYY-MM-DD for the start of that day).
    pub from: Option<String>,
    /// Up to this date or time (inclusive; a bare date means through the end of that day).
    pub to: Option<String>,
    /// Page size.
    pub limit: Option<String>,
    /// Rows to skip.
    pub offset: Option<String>,
    /// Export format (`csv` or `json`; exports only).
    pub format: Option<String>,
}

/// A validated timeline query: what a backend executes, literally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryQuery {
    /// `technician = ?`.
    pub technician: Option<String>,
    /// `site = ?`.
    pub site: Option<String>,
    /// `device_serial = ?`.
    pub serial: Option<String>,
    /// `device_model = ?`.
    pub model: Option<String>,
    /// `event = ?`.
    pub event: Option<String>,
    /// `outcome = ?`.
    pub outcome: Option<String>,
    /// The laptop's `origin = ?`.
    pub origin: Option<String>,
    /// `time_us >= ?`.
    pub from_us: Option<i64>,
    /// `time_us <= ?`.
    pub to_us: Option<i64>,
    /// Rows to return.
    pub limit: u32,
    /// Rows to skip.
    pub offset: u64,
}

impl EntryQuery {
    /// The outcome to select by: the one asked for, or else the one an event filter implies.
    /// An entry's stored outcome is its event's ([`Outcome::of_event`], written at ingest), so
    /// this selects the same entries, and lets one index (outcome, time, …, event) serve both
    /// filters: the hub keeps no index of its own for events.
    pub fn outcome_filter(&self) -> Option<String> {
        self.outcome.clone().or_else(|| {
            self.event
                .as_deref()
                .map(|e| Outcome::of_event(e).as_str().to_owned())
        })
    }
}

impl Default for EntryQuery {
    fn default() -> Self {
        Self {
            technician: None,
            site: None,
            serial: None,
            model: None,
            event: None,
            outcome: None,
            origin: None,
            from_us: None,
            to_us: None,
            limit: DEFAULT_PAGE,
            offset: 0,
        }
    }
}

/// Text: at most [`MAX_FILTER_CHARS`] characters, no control characters; empty is absent.
pub(crate) fn text(
    param: &'static str,
    v: &Option<String>,
) -> Result<Option<String>, QueryRuleError> {
    match v.as_deref() {
        None | Some("") => Ok(None),
        Some(s) if s.chars().count() > MAX_FILTER_CHARS => Err(refuse(
            param,
            s,
            format!("at most {MAX_FILTER_CHARS} characters"),
        )),
        Some(s) if s.chars().any(char::is_control) => {
            Err(refuse(param, s, "text without control characters"))
        }
        Some(s) => Ok(Some(s.to_owned())),
    }
}

/// A whole number from `min` to `max`; empty is absent.
pub(crate) fn number(
    param: &'static str,
    v: &Option<String>,
    min: u64,
    max: u64,
) -> Result<Option<u64>, QueryRuleError> {
    let Some(s) = v.as_deref().filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let required = || format!("a whole number from {min} to {max}");
    let n: u64 = s.parse().map_err(|_| refuse(param, s, required()))?;
    if n < min || n > max {
        return Err(refuse(param, s, required()));
    }
    Ok(Some(n))
}

/// Parses a filter time: RFC 3339, or `YYYY-MM-DD` meaning the start (`end_of_day` false) or
/// the last microsecond (`end_of_day` true) of that UTC day.
pub fn parse_time(param: &'static str, s: &str, end_of_day: bool) -> Result<i64, QueryRuleError> {
    let required = "a date YYYY-MM-DD or a time in RFC 3339 (2026-03-31T14:00:00Z)";
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc).timestamp_micros());
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| refuse(param, s, required))?;
    let t = if end_of_day {
        d.and_time(NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).unwrap_or_default())
    } else {
        d.and_time(NaiveTime::MIN)
    };
    Ok(Utc.from_utc_datetime(&t).timestamp_micros())
}

impl EntryFilter {
    /// Validates the filter into a query; `max_limit` bounds the page (timeline or export).
    pub fn to_query(
        &self,
        default_limit: u32,
        max_limit: u32,
    ) -> Result<EntryQuery, QueryRuleError> {
        let outcome = match text("outcome", &self.outcome)? {
            None => None,
            Some(o) => {
                let known = OUTCOMES;
                if !known.contains(&o.as_str()) {
                    return Err(refuse(
                        "outcome",
                        &o,
                        format!("one of {}", known.join(", ")),
                    ));
                }
                Some(o)
            }
        };
        let from_us = match text("from", &self.from)? {
            Some(s) => Some(parse_time("from", &s, false)?),
            None => None,
        };
        let to_us = match text("to", &self.to)? {
            Some(s) => Some(parse_time("to", &s, true)?),
            None => None,
        };
        let limit = number("limit", &self.limit, 1, u64::from(max_limit))?
            .map_or(default_limit.min(max_limit), |n| n as u32);
        Ok(EntryQuery {
            technician: text("technician", &self.technician)?,
            site: text("site", &self.site)?,
            serial: text("serial", &self.serial)?,
            model: text("model", &self.model)?,
            event: text("event", &self.event)?,
            outcome,
            origin: text("origin", &self.origin)?,
            from_us,
            to_us,
            limit,
            offset: number("offset", &self.offset, 0, MAX_OFFSET)?.unwrap_or(0),
        })
    }
}

/// Every outcome class a filter may name.
pub const OUTCOMES: &[&str] = &[
    "info",
    "started",
    "succeeded",
    "refused",
    "failed",
    "reverted",
    "cancelled",
    "interrupted",
];

/// Inventory filters as they arrive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceFilter {
    /// Model (exact).
    pub model: Option<String>,
    /// Serial (exact).
    pub serial: Option<String>,
    /// Page size.
    pub limit: Option<String>,
    /// Rows to skip.
    pub offset: Option<String>,
}

/// A validated inventory query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceQuery {
    /// `model = ?` ("" for devices of unknown model).
    pub model: Option<String>,
    /// `serial = ?`.
    pub serial: Option<String>,
    /// Rows to return.
    pub limit: u32,
    /// Rows to skip.
    pub offset: u64,
}

impl Default for DeviceQuery {
    fn default() -> Self {
        Self {
            model: None,
            serial: None,
            limit: DEFAULT_PAGE,
            offset: 0,
        }
    }
}

impl DeviceFilter {
    /// Validates the filter into a query.
    pub fn to_query(&self) -> Result<DeviceQuery, QueryRuleError> {
        Ok(DeviceQuery {
            model: text("model", &self.model)?,
            serial: text("serial", &self.serial)?,
            limit: number("limit", &self.limit, 1, u64::from(MAX_PAGE))?
                .map_or(DEFAULT_PAGE, |n| n as u32),
            offset: number("offset", &self.offset, 0, MAX_OFFSET)?.unwrap_or(0),
        })
    }
}

/// Integrity badges of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Badges {
    /// Covered by a checkpoint the hub holds and cosigns.
    pub receipt: bool,
    /// An intent whose outcome has not reached the hub.
    pub pending: bool,
    /// A fork was recorded at this seq.
    pub fork: bool,
    /// The laptop's clocks disagreed at this entry.
    pub clock: bool,
}

/// The badges of an entry, from the facts its backend looked up.
pub fn badges(e: &StoredEntry, facts: &EntryFacts) -> Badges {
    let key = (e.laptop_id, e.seq);
    Badges {
        receipt: e.seq < e.receipt_size,
        pending: e.event.ends_with(entry::INTENT_SUFFIX) && !facts.closed.contains(&key),
        fork: facts.forked.contains(&key),
        clock: e.clock_flag,
    }
}

/// Microseconds since the epoch as the dashboard shows times (RFC 3339, milliseconds, UTC).
pub fn format_time(us: i64) -> String {
    Utc.timestamp_micros(us)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The device identity an entry shows, if it is one the inventory keeps: the entry names a
/// serial and firmware versions, and it is not an intent (an intent shows the device as it was
/// before an update that may not have happened).
/// `device` is the entry's device record as [`Entry::device_record`] reads it.
pub fn device_update(
    laptop_id: i64,
    e: &Entry,
    device: Option<&DeviceRecord>,
) -> Option<DeviceUpdate> {
    if e.outcome() == Outcome::Started {
        return None;
    }
    // The confirmed versions the device runs.
    let device = device?;
    let firmware: Vec<(String, String)> = device
        .firmware
        .iter()
        .map(|(c, v)| (c.clone(), v.clone()))
        .collect();
    if firmware.is_empty() {
        return None;
    }
    let time_us = e.time.timestamp_micros();
    Some(DeviceUpdate {
        serial: device.serial.clone(),
        model: device.model.clone(),
        recency: recency(time_us, laptop_id, e.seq),
        time_us,
        site: e.site.clone(),
        technician: e.technician.clone(),
        last_event: e.event.clone(),
        device: e.device.to_string(),
        firmware,
    })
}

/// Which identity is newer: the later entry time; at equal times the lower laptop id, then the
/// higher seq. Encoded so that byte order is that order.
pub fn recency(time_us: i64, laptop_id: i64, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(24);
    k.extend_from_slice(&((time_us as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(&(!((laptop_id as u64) ^ (1 << 63))).to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Keeps the newest identity per serial, sorted by serial (so backends lock rows in one order).
pub fn newest_per_serial(updates: impl IntoIterator<Item = DeviceUpdate>) -> Vec<DeviceUpdate> {
    let mut by: BTreeMap<String, DeviceUpdate> = BTreeMap::new();
    for u in updates {
        match by.get(&u.serial) {
            Some(held) if held.recency >= u.recency => {}
            _ => {
                by.insert(u.serial.clone(), u);
            }
        }
    }
    by.into_values().collect()
}

/// An entry as the dashboard and exports show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntryRow {
    /// Laptop name.
    pub laptop: String,
    /// Laptop log origin.
    pub origin: String,
    /// Seq in that log.
    pub seq: u64,
    /// Entry time (RFC 3339).
    pub time: String,
    /// Technician.
    pub technician: String,
    /// Site.
    pub site: String,
    /// Device serial.
    pub device_serial: Option<String>,
    /// Device model.
    pub device_model: Option<String>,
    /// Event type.
    pub event: String,
    /// Outcome class.
    pub outcome: String,
    /// The full device identity.
    pub device: serde_json::Value,
    /// The details.
    pub details: serde_json::Value,
    /// The exact body (for verification bundles).
    #[serde(skip)]
    pub body: String,
    /// Integrity badges.
    pub badges: Badges,
}

/// Turns stored entries and their facts into rows.
pub fn entry_rows(stored: Vec<StoredEntry>, facts: &EntryFacts) -> Vec<EntryRow> {
    stored
        .into_iter()
        .map(|e| {
            let badges = badges(&e, facts);
            let mut v: serde_json::Value =
                serde_json::from_str(&e.body).unwrap_or(serde_json::Value::Null);
            let mut take = |k: &str| {
                v.get_mut(k)
                    .map(serde_json::Value::take)
                    .unwrap_or_default()
            };
            let (device, details) = (take("device"), take("details"));
            EntryRow {
                laptop: e.laptop,
                origin: e.origin,
                seq: e.seq,
                time: format_time(e.time_us),
                technician: e.technician,
                site: e.site,
                device_serial: e.device_serial,
                device_model: e.device_model,
                event: e.event,
                outcome: e.outcome,
                device,
                details,
                body: e.body,
                badges,
            }
        })
        .collect()
}

/// A device's latest identity as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InventoryRow {
    /// Serial.
    pub serial: String,
    /// Model.
    pub model: Option<String>,
    /// When it was last seen (RFC 3339).
    pub last_seen: String,
    /// Where.
    pub site: String,
    /// By whom.
    pub technician: String,
    /// The last event about it.
    pub last_event: String,
    /// `(component, version)` as last read.
    pub firmware: Vec<(String, String)>,
    /// The full identity.
    pub device: serde_json::Value,
}

impl From<StoredDevice> for InventoryRow {
    fn from(d: StoredDevice) -> Self {
        Self {
            serial: d.serial,
            model: Some(d.model).filter(|m| !m.is_empty()),
            last_seen: format_time(d.time_us),
            site: d.site,
            technician: d.technician,
            last_event: d.last_event,
            firmware: d.firmware,
            device: serde_json::from_str(&d.device).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn totals_beyond_the_count_limit_say_more() {
        assert_eq!(
            Total::from_count(0),
            Total {
                total: 0,
                more: false
            }
        );
        assert_eq!(
            Total::from_count(COUNT_LIMIT),
            Total {
                total: COUNT_LIMIT,
                more: false
            }
        );
        assert_eq!(
            Total::from_count(COUNT_LIMIT + 1),
            Total {
                total: COUNT_LIMIT,
                more: true
            }
        );
    }

    use super::*;

    fn f(pairs: &[(&str, &str)]) -> EntryFilter {
        let v: serde_json::Map<String, serde_json::Value> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String((*v).to_owned())))
            .collect();
        serde_json::from_value(serde_json::Value::Object(v)).unwrap()
    }

    #[test]
    fn filters_validate_with_the_rule_they_broke() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("offset", "18446744073709551615")],
                "offset=\"18446744073709551615\" is not accepted: required a whole number from 0 to 100000000",
            ),
            (&[("offset", "-1")], "a whole number from 0"),
            (
                &[("limit", "0")],
                "limit=\"0\" is not accepted: required a whole number from 1 to 1000",
            ),
            (&[("limit", "1001")], "from 1 to 1000"),
            (&[("limit", "ten")], "from 1 to 1000"),
            (
                &[("from", "yesterday")],
                "a date YYYY-MM-DD or a time in RFC 3339",
            ),
            (&[("to", "2026-02-30")], "a date YYYY-MM-DD"),
            (
                &[("outcome", "exploded")],
                "one of info, started, succeeded",
            ),
            (&[("site", "a\u{1b}[31m")], "without control characters"),
        ];
        for (pairs, says) in cases {
            let e = f(pairs).to_query(DEFAULT_PAGE, MAX_PAGE).unwrap_err();
            assert!(e.to_string().contains(says), "{pairs:?}: {e}");
        }
        let long = "x".repeat(300);
        let e = f(&[("technician", &long)]).to_query(200, 1000).unwrap_err();
        assert!(e.to_string().contains("at most 256 characters"), "{e}");
    }

    #[test]
    fn a_bare_date_means_the_whole_day() {
        let q = f(&[("from", "2026-03-31"), ("to", "2026-03-31")])
            .to_query(200, 1000)
            .unwrap();
        assert_eq!(format_time(q.from_us.unwrap()), "2026-03-31T00:00:00.000Z");
        assert_eq!(q.to_us.unwrap() - q.from_us.unwrap(), 86_400_000_000 - 1);
        let q = f(&[("to", "2026-03-31T12:00:00+02:00")])
            .to_query(200, 1000)
            .unwrap();
        assert_eq!(format_time(q.to_us.unwrap()), "2026-03-31T10:00:00.000Z");
        let q = f(&[
            ("limit", "5"),
            ("offset", "100000000"),
            ("outcome", "failed"),
        ])
        .to_query(200, 1000)
        .unwrap();
        assert_eq!(
            (q.limit, q.offset, q.outcome.as_deref()),
            (5, 100_000_000, Some("failed"))
        );
        assert_eq!(
            EntryFilter::default().to_query(200, 1000).unwrap(),
            EntryQuery::default()
        );
    }

    #[test]
    fn an_event_filter_selects_by_the_outcome_of_that_event_too() {
        let q = |params: &[(&str, &str)]| f(params).to_query(200, 1000).unwrap().outcome_filter();
        assert_eq!(q(&[("event", "update_failed")]).as_deref(), Some("failed"));
        assert_eq!(
            q(&[("event", "check_passed")]).as_deref(),
            Some("succeeded")
        );
        assert_eq!(q(&[("event", "a_new_kind")]).as_deref(), Some("info"));
        // An outcome asked for is kept: with a contradicting event nothing matches, as before.
        assert_eq!(
            q(&[("event", "update_failed"), ("outcome", "reverted")]).as_deref(),
            Some("reverted")
        );
        assert_eq!(q(&[("model", "infusion-pump")]), None);
    }

    #[test]
    fn recency_orders_by_time_then_lower_laptop_then_higher_seq() {
        let ordered = [
            recency(-5, 1, 0),
            recency(0, 9, 0),
            recency(0, 2, 0),
            recency(0, 2, 7),
            recency(0, -1, 0),
            recency(1, 100, 0),
            recency(i64::MAX, 1, 0),
        ];
        for w in ordered.windows(2) {
            assert!(w[0] < w[1], "{w:?}");
        }
    }
}
