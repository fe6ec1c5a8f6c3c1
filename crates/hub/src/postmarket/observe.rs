//! What an audit entry shows installed on a device: the one place that reads field records for
//! the post-market answers.
//!
//! Every entry that carries a device record (identify, check, an update's outcome) says which
//! version of each component runs, confirmed, on that serial at that site at that time. An
//! update's outcome also names the package it installed, by id and by the digests of its
//! manifest and SBOM, for the components that package's payloads cover. Intents are not
//! observations: they show the device as it was before an update that may not have happened;
//! neither is an interrupted update, whose record repeats the intent's device.
//!
//! The hub keeps, per serial and component, the newest observation by the inventory's recency
//! key ([`crate::rules::recency`]) in `installed`: a laptop that syncs late adds history without
//! rolling the current state back. The history (`install_history`) keeps every observation: a
//! laptop that syncs late may bring one that falls between two held ones, and only all of them
//! say when each state began and ended (the answers fold repeats when they show it).

use std::collections::BTreeMap;

use fieldkit_audit::record::{DeviceRecord, Event, Reading, StepVerdict};
use fieldkit_audit::{Entry, Outcome};

use super::store::InstallRow;
use crate::rules;

/// The observations of one entry, one per component it shows running and confirmed (none for
/// an intent, an interrupted update, or an entry without a serial and firmware). `reading` is
/// the entry as the audit log's one reader reads it (`e.read()`, for entries of every record
/// schema; `None` when it cannot be read), read once by the caller for every use.
pub fn installs(laptop_id: i64, e: &Entry, reading: Option<&Reading>) -> Vec<InstallRow> {
    if matches!(e.outcome(), Outcome::Started | Outcome::Interrupted) {
        return Vec::new();
    }
    let Some(device) = reading
        .and_then(Reading::device)
        .filter(|d| !d.serial.is_empty())
    else {
        return Vec::new();
    };
    let package = reading.and_then(installed_package);
    let time_us = e.time.timestamp_micros();
    let recency = rules::recency(time_us, laptop_id, e.seq);
    device
        .firmware
        .iter()
        .map(|(component, version)| {
            let pkg = package
                .as_ref()
                .filter(|p| p.components.contains(component));
            InstallRow {
                serial: device.serial.clone(),
                component: component.clone(),
                product: device.profile.clone(),
                model: device.model.clone(),
                hardware: device.hardware_revision.clone(),
                version: version_key(version),
                image_hash: image_hash(device, component),
                security_counter: device.security_counter,
                site: e.site.clone(),
                // Records do not name the visit's customer yet; the answers take it from the
                // entitlements that name the serial.
                customer: String::new(),
                technician: e.technician.clone(),
                event: e.event.clone(),
                package: pkg.map(|p| p.id.clone()).unwrap_or_default(),
                manifest_sha256: pkg.map(|p| p.manifest_sha256.clone()).unwrap_or_default(),
                sbom_sha256: pkg.map(|p| p.sbom_sha256.clone()).unwrap_or_default(),
                time_us,
                recency: recency.clone(),
                origin: e.origin.clone(),
                seq: e.seq,
            }
        })
        .collect()
}

/// The package a successful update outcome installed, with its digests, and the components it
/// covers (its payloads').
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Installed {
    id: String,
    manifest_sha256: String,
    sbom_sha256: String,
    components: Vec<String>,
}

fn installed_package(reading: &Reading) -> Option<Installed> {
    let Reading::Typed(Event::Update(u)) = reading else {
        return None;
    };
    if !matches!(
        u.result,
        StepVerdict::Applied | StepVerdict::AlreadyInstalled
    ) {
        return None;
    }
    Some(Installed {
        components: u
            .package
            .payloads
            .iter()
            .map(|p| p.component.clone())
            .collect(),
        id: u.package.id.clone(),
        manifest_sha256: u.package.manifest_sha256.clone(),
        sbom_sha256: u.package.sbom_sha256.clone(),
    })
}

/// The image hash a device reports for a component's running, confirmed image.
fn image_hash(device: &DeviceRecord, component: &str) -> String {
    device
        .images
        .iter()
        .find(|i| i.component.as_deref() == Some(component) && i.active && i.confirmed)
        .map(|i| i.hash.to_ascii_lowercase())
        .unwrap_or_default()
}

/// The newest observation per serial and component (by recency), for a backend whose single
/// statement may touch each row once.
pub fn newest_per_component(rows: &[InstallRow]) -> Vec<&InstallRow> {
    let mut by: BTreeMap<(&str, &str), &InstallRow> = BTreeMap::new();
    for r in rows {
        let key = (r.serial.as_str(), r.component.as_str());
        match by.get(&key) {
            Some(held) if held.recency >= r.recency => {}
            _ => {
                by.insert(key, r);
            }
        }
    }
    by.into_values().collect()
}

/// A component version in one spelling, so that what a device reports and what a manifest
/// declares compare equal: MCUboot's form (`1.4.0`, `1.4.0.7` with a build number) when it
/// parses as an image version (`v1.4`, `1.4` and `1.4.0+0` all become `1.4.0`), else as given.
pub fn version_key(v: &str) -> String {
    let t = v.trim();
    t.strip_prefix(['v', 'V'])
        .unwrap_or(t)
        .parse::<fieldkit_mcuboot::ImageVersion>()
        .map_or_else(|_| t.to_owned(), |iv| iv.to_string())
}

#[cfg(test)]
mod tests {
    use fieldkit_audit::record::examples::{device, identified, intent, outcome};
    use fieldkit_audit::record::{ImageRecord, PayloadDigest, SCHEMA, StepVerdict};

    use super::*;

    fn entry(seq: u64, event: Event) -> Entry {
        let (device, name, details) = event.to_parts();
        Entry {
            schema: SCHEMA,
            seq,
            origin: "fieldkit-laptop+test".into(),
            time: chrono::Utc::now(),
            mono_ns: None,
            boot_id: "boot".into(),
            pid: 1,
            technician: "dana".into(),
            site: "ICU".into(),
            device,
            event: name.into(),
            details,
            prev: "0".repeat(64),
        }
    }

    fn pump(netcore: &str) -> DeviceRecord {
        let mut d = device(
            "P7-1",
            "acme-infusion-p7",
            &[("app", "v2.0"), ("netcore", netcore)],
        );
        d.images = vec![
            ImageRecord {
                component: Some("netcore".into()),
                image: 1,
                slot: 0,
                version: netcore.into(),
                hash: "ABCD".repeat(16),
                active: true,
                confirmed: true,
                pending: false,
            },
            ImageRecord {
                component: Some("netcore".into()),
                image: 1,
                slot: 1,
                version: "9.9.9".into(),
                hash: "ffff".repeat(16),
                active: false,
                confirmed: false,
                pending: true,
            },
        ];
        d.security_counter = Some(2);
        d
    }

    fn observed(e: &Entry) -> Vec<InstallRow> {
        installs(7, e, e.read().ok().as_ref())
    }

    fn rows(e: &Entry) -> Vec<(String, String, String, String)> {
        observed(e)
            .into_iter()
            .map(|r| (r.component, r.version, r.package, r.image_hash))
            .collect()
    }

    #[test]
    fn what_each_record_shows_installed() {
        let hash = "abcd".repeat(16);
        // Identify: every confirmed component, versions in one spelling, the running hash.
        assert_eq!(
            rows(&entry(0, identified(pump("1.4.0+0")))),
            [
                ("app".into(), "2.0.0".into(), String::new(), String::new()),
                (
                    "netcore".into(),
                    "1.4.0".into(),
                    String::new(),
                    hash.clone()
                )
            ]
        );
        // An intent shows the device before an update that may not happen: nothing.
        assert!(rows(&entry(1, intent(pump("1.4.0"), "acme-infusion-p7@1.5.0"))).is_empty());
        // A successful outcome names the package for the components its payloads cover.
        let mut applied = outcome(
            1,
            pump("1.5.0"),
            "acme-infusion-p7@1.5.0",
            StepVerdict::Applied,
        );
        if let Event::Update(u) = &mut applied {
            u.package.payloads.push(PayloadDigest {
                component: "netcore".into(),
                sha256: "5".repeat(64),
                size: 10,
                image_hash: None,
            });
        }
        let e = entry(2, applied);
        let got = observed(&e);
        assert_eq!(got[0].package, "");
        assert_eq!(got[1].package, "acme-infusion-p7@1.5.0");
        assert_eq!(got[1].sbom_sha256, "2".repeat(64));
        assert_eq!(got[1].security_counter, Some(2));
        assert_eq!(
            got[1].recency,
            rules::recency(e.time.timestamp_micros(), 7, 2)
        );
        // A failed update: what runs is recorded, no package is credited.
        let failed = outcome(
            1,
            pump("1.4.0"),
            "acme-infusion-p7@1.5.0",
            StepVerdict::Cancelled {
                stage: fieldkit_audit::record::Stage::Uploading,
            },
        );
        assert!(rows(&entry(3, failed)).iter().all(|r| r.2.is_empty()));
        // No serial: nothing.
        let mut anon = pump("1.4.0");
        anon.serial.clear();
        assert!(rows(&entry(4, identified(anon))).is_empty());
    }

    #[test]
    fn version_keys() {
        for (given, key) in [
            ("1.4.0", "1.4.0"),
            ("v1.4", "1.4.0"),
            ("1.4.0+0", "1.4.0"),
            ("1.4.0.7", "1.4.0.7"),
            ("1.4.0+7", "1.4.0.7"),
            ("R2024a", "R2024a"),
        ] {
            assert_eq!(version_key(given), key, "{given}");
        }
    }
}
