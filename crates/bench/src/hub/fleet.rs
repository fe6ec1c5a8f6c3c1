//! A fleet's audit logs, made up but shaped like the real thing, as the sync requests its
//! laptops would send: 200 laptops (one technician each, ten customer sites each) that over two
//! years visit 100 000 devices of five models, 5 000 log entries per laptop. A visit is what
//! `fieldkit` writes: the device identified, a check (one in ten refused), and for a passing
//! check the update intent and its outcome (succeeded, failed or reverted); a succeeded update
//! moves the device to the next app version.
//!
//! Entries are the laptop's own typed records (`fieldkit_audit::record`, made by its
//! `examples`), turned into `Entry` values, serialised and hashed as the log does, chained by
//! leaf hash; each batch carries the laptop's checkpoint (signed root) at its end. Only the
//! times are chosen here instead of read from the clock, so that date filters have two years to
//! choose from. Everything is deterministic (a fixed seed).

use chrono::{DateTime, Duration, TimeZone, Utc};
use fieldkit_audit::identity::LAPTOP_PREFIX;
use fieldkit_audit::record::{
    self, CheckVerdict, DeviceRecord, Event, Stage, StepVerdict, examples,
};
use fieldkit_audit::{Entry, Identity, SignedCheckpoint, merkle};
use fieldkit_sync::proto::AppendRequest;

/// Laptops (and technicians).
pub(crate) const LAPTOPS: u64 = 200;
/// Names a smaller fleet for a quick look while working on the hub: that many laptops, the
/// same logs ([`laptops`]). Figures of record use the whole fleet.
pub(crate) const LAPTOPS_VAR: &str = "FIELDKIT_BENCH_FLEET_LAPTOPS";

/// Laptops in the fleet: [`LAPTOPS`], or fewer when [`LAPTOPS_VAR`] names 1 to [`LAPTOPS`].
pub(crate) fn laptops() -> anyhow::Result<u64> {
    match std::env::var(LAPTOPS_VAR) {
        Err(_) => Ok(LAPTOPS),
        Ok(v) => match v.parse::<u64>() {
            Ok(n) if (1..=LAPTOPS).contains(&n) => Ok(n),
            _ => anyhow::bail!(
                "{LAPTOPS_VAR} is {v:?}; required a number of laptops from 1 to {LAPTOPS}"
            ),
        },
    }
}
/// Log entries per laptop.
pub(crate) const ENTRIES_PER_LAPTOP: u64 = 5_000;
/// Devices each laptop's technician looks after: 200 x 500 = 100 000 devices.
pub(crate) const DEVICES_PER_LAPTOP: u64 = 500;
/// Customer sites per laptop: 2 000 sites.
pub(crate) const SITES_PER_LAPTOP: u64 = 10;
/// Days the logs span.
pub(crate) const DAYS: i64 = 730;

/// Device models with their firmware components.
pub(crate) const MODELS: &[(&str, &[&str])] = &[
    ("infusion-pump", &["app", "bootloader", "netcore"]),
    ("patient-monitor", &["app", "bootloader"]),
    ("ventilator", &["app", "bootloader", "netcore"]),
    ("syringe-driver", &["app", "bootloader"]),
    ("legacy-analyzer", &["app"]),
];

/// The first day of the logs (UTC midnight).
pub(crate) fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 12, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Technician of laptop `l`.
pub(crate) fn technician(l: u64) -> String {
    format!("tech-{l:03}")
}

/// Site `s` (0..2000).
pub(crate) fn site(s: u64) -> String {
    format!("Site {s:04}")
}

/// Serial of device `d` (0..100 000).
pub(crate) fn serial(d: u64) -> String {
    format!("{}-{d:06}", prefix(model_of(d)))
}

/// The model of device `d`.
pub(crate) fn model_of(d: u64) -> &'static str {
    MODELS[(d % MODELS.len() as u64) as usize].0
}

fn prefix(model: &str) -> String {
    model
        .split('-')
        .map(|w| w[..1].to_uppercase())
        .collect::<String>()
}

/// SplitMix64: a small, good, deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One laptop: its enrolment key and its log as the sync requests, serialised.
pub(crate) struct LaptopLog {
    /// Name given at enrolment.
    pub name: String,
    /// The laptop's key.
    pub identity: Identity,
    /// `AppendRequest` bodies (JSON), in order.
    pub batches: Vec<Vec<u8>>,
}

/// Makes laptop `l`'s log, cut into batches of `batch` entries.
pub(crate) fn laptop(l: u64, batch: u64) -> anyhow::Result<LaptopLog> {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(l + 1).to_le_bytes());
    let identity = Identity::from_key(LAPTOP_PREFIX, ed25519_dalek::SigningKey::from_bytes(&seed));
    let mut rng = Rng(0x5eed ^ l);
    let first_device = l * DEVICES_PER_LAPTOP;
    // Each device's app version (an index); other components stay.
    let mut app: Vec<u64> = (0..DEVICES_PER_LAPTOP).map(|_| rng.below(3)).collect();
    let boot_id = format!("bench-boot-{l:03}");
    let tech = technician(l);
    // About 1 250 visits in two years: one every ~14 hours, this laptop a few minutes off the
    // others.
    let visit_gap = Duration::seconds(DAYS * 86_400 / 1_300);
    let mut visit_time = start() + Duration::seconds((l * 97) as i64);

    let mut bodies: Vec<String> = Vec::with_capacity(ENTRIES_PER_LAPTOP as usize);
    let mut leaves: Vec<[u8; 32]> = Vec::with_capacity(ENTRIES_PER_LAPTOP as usize);
    let mut prev = hex::encode([0u8; 32]);
    let mut visit = 0u64;
    'visits: loop {
        // Round after round over the laptop's devices: every device at least twice.
        let k = visit % DEVICES_PER_LAPTOP;
        let d = first_device + k;
        let model = model_of(d);
        let site_no = l * SITES_PER_LAPTOP + k % SITES_PER_LAPTOP;
        let device = |app_version: u64| -> DeviceRecord {
            let components = MODELS
                .iter()
                .find(|m| m.0 == model)
                .map(|m| m.1)
                .unwrap_or(&[]);
            let app = format!("3.{app_version}.0");
            let firmware: Vec<(&str, &str)> = components
                .iter()
                .map(|c| match *c {
                    "app" => (*c, app.as_str()),
                    "bootloader" => (*c, "2.0.1"),
                    _ => (*c, "1.4.2"),
                })
                .collect();
            examples::device(&serial(d), model, &firmware)
        };
        let now = app[k as usize];
        let next = now + 1;
        let package = format!("{model}-3.{next}.0");
        // The outcome is made once its intent's seq is known.
        let mut visit_events: Vec<Box<dyn FnOnce(u64) -> Event>> =
            vec![Box::new(move |_| examples::identified(device(now)))];
        if rng.below(10) == 0 {
            visit_events.push(Box::new(move |_| {
                examples::check(
                    device(now),
                    CheckVerdict::Refused,
                    (
                        "entitlement.valid",
                        "contract ended 2026-03-31",
                        "an entitlement valid on the day of the update",
                    ),
                )
            }));
        } else {
            visit_events.push(Box::new(move |_| {
                examples::check(
                    device(now),
                    CheckVerdict::Go,
                    ("package.signature", "ok", "ok"),
                )
            }));
            let p = package.clone();
            visit_events.push(Box::new(move |_| examples::intent(device(now), &p)));
            let (after, result) = match rng.below(20) {
                0 => (
                    now,
                    StepVerdict::Failed {
                        stage: Stage::Uploading,
                        kind: "no_answer".into(),
                        message: "device stopped answering at 61 %".into(),
                    },
                ),
                1 => (
                    now,
                    StepVerdict::Reverted {
                        stage: Stage::Confirming,
                        reason: "the new image did not confirm itself".into(),
                    },
                ),
                _ => (next, StepVerdict::Applied),
            };
            if result == StepVerdict::Applied {
                app[k as usize] = next;
            }
            visit_events.push(Box::new(move |intent| {
                examples::outcome(intent, device(after), &package, result)
            }));
        }
        let mut intent_seq = 0;
        for (i, make) in visit_events.into_iter().enumerate() {
            let seq = bodies.len() as u64;
            if seq == ENTRIES_PER_LAPTOP {
                break 'visits;
            }
            let event = make(intent_seq);
            if matches!(event, Event::UpdateStarted(_)) {
                intent_seq = seq;
            }
            let (device, name, details) = event.to_parts();
            let time = visit_time + Duration::seconds(90 * i as i64);
            let entry = Entry {
                schema: record::SCHEMA,
                seq,
                origin: identity.name().to_owned(),
                time,
                mono_ns: Some(
                    u64::try_from((time - start()).num_nanoseconds().unwrap_or(0)).unwrap_or(0),
                ),
                boot_id: boot_id.clone(),
                pid: 4242,
                technician: tech.clone(),
                site: site(site_no),
                device,
                event: name.to_owned(),
                details,
                prev: prev.clone(),
            };
            let body = serde_json::to_string(&entry)?;
            let leaf = merkle::leaf_hash(body.as_bytes());
            prev = hex::encode(leaf);
            bodies.push(body);
            leaves.push(leaf);
        }
        visit += 1;
        visit_time += visit_gap;
    }

    let mut batches = Vec::new();
    let mut start_seq = 0u64;
    while start_seq < ENTRIES_PER_LAPTOP {
        let end = (start_seq + batch).min(ENTRIES_PER_LAPTOP);
        let root = merkle::root_from_leaves(&leaves[..end as usize]);
        let checkpoint = SignedCheckpoint::sign(&identity, end, root)?;
        let req = AppendRequest {
            origin: identity.name().to_owned(),
            old_size: start_seq,
            entries: bodies[start_seq as usize..end as usize].to_vec(),
            checkpoint: checkpoint.as_str().to_owned(),
        };
        batches.push(serde_json::to_vec(&req)?);
        start_seq = end;
    }
    Ok(LaptopLog {
        name: format!("van-{l:03}"),
        identity,
        batches,
    })
}

/// The first `laptops` laptops' logs, made on all cores.
pub(crate) fn fleet(laptops: u64, batch: u64) -> anyhow::Result<Vec<LaptopLog>> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get() as u64);
    let parts: Vec<anyhow::Result<Vec<LaptopLog>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (0..laptops)
                        .filter(|l| l % threads == t)
                        .map(|l| laptop(l, batch))
                        .collect::<anyhow::Result<Vec<_>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a generator thread panicked")))
            })
            .collect()
    });
    let mut all = Vec::with_capacity(laptops as usize);
    for p in parts {
        all.extend(p?);
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}
