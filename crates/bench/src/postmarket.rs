//! Post-market figures (DESIGN.md §13, issue 14), on SQLite and on a real PostgreSQL server
//! started here, side by side in one run:
//!
//! - the advisory import rate: 10 000 OSV advisories in one `all.zip`, parsed, stored and
//!   analysed against every release (advisories per second), and the analysis alone;
//! - exposure queries over a fleet of 100 000 devices, each running two releases whose SBOMs
//!   hold 100 components (200 per device), against those 10 000 advisories: by vulnerability,
//!   by component and version range, by device — p50 and p95 over 60 questions each, each
//!   answer as the API builds it (trust material and releases as the hub holds them, checked
//!   current, counts, a page of 100 devices with the fix and whether each may install it).
//!   Target: p95 under 100 ms;
//! - the up-to-date report and the dashboard's overview over the same fleet.
//!
//! The fleet arrives as it does in the field: signed laptop logs (ten laptops, one entry per
//! device) through the hub's ingest with every check; releases as signed packages verified
//! against the hub's pinned root; entitlements naming the serials.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use ed25519_dalek::SigningKey;
use fieldkit_audit::record::{DeviceRecord, Event, Identified, SCHEMA};
use fieldkit_audit::{Entry, Identity, SignedCheckpoint, merkle};
use fieldkit_hub::Store;
use fieldkit_hub::postmarket::answers::{self, ContextCache, UpToDateFilter};
use fieldkit_hub::postmarket::import::{self, Context as Import};
use fieldkit_hub::postmarket::{analysis, trust};
use fieldkit_mcuboot::{ImageVersion, SignOptions};
use fieldkit_sync::proto::AppendRequest;
use fieldkit_trust::{
    DeviceGrant, Entitlement, MANIFEST_FORMAT, Manifest, MemberDigest, Payload, PayloadFormat,
    ReleaseClass, Requirements, RootMetadata, build_package,
};
use serde_json::json;

use crate::Rows;

use fieldkit_testpg as pg;

const DEVICES: usize = 100_000;
const PRODUCTS: usize = 10;
const LAPTOPS: usize = 10;
const LIBRARIES: usize = 2000;
/// Libraries per release SBOM (plus the firmware itself: 100 components).
const LIBS_PER_RELEASE: usize = 99;
const ADVISORIES: usize = 10_000;
const SITES: usize = 500;
const QUESTIONS: usize = 60;
/// Versions of each component: app 1.0.0 to 1.7.0, netcore 1.0.0 to 1.5.0.
const COMPONENTS: [(&str, u8); 2] = [("app", 8), ("netcore", 6)];

/// Measures the figures into `rows`.
pub(crate) fn run(rows: &mut Rows) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let dir = tempfile::tempdir_in(std::env::current_dir()?).context("temporary directory")?;
    eprintln!("postmarket: building the manufacturer's material and the field logs");
    let material = Material::build(dir.path())?;
    let server = pg::Pg::start();
    for backend in ["sqlite", "postgres"] {
        let url = match backend {
            "sqlite" => format!("sqlite:{}", dir.path().join("hub.db").display()),
            _ => rt.block_on(server.base().create()),
        };
        eprintln!("postmarket: {backend}: loading the fleet");
        rt.block_on(measure(backend, &url, &material, rows))?;
    }
    Ok(())
}

/// Keys, packages, entitlements, advisories and laptop logs, written once for both backends.
struct Material {
    root: Vec<u8>,
    packages: Vec<PathBuf>,
    entitlements: Vec<PathBuf>,
    advisories: PathBuf,
    hub: Identity,
    laptops: Vec<(Identity, Vec<AppendRequest>)>,
}

fn lib_purl(i: usize) -> String {
    format!("pkg:github/vendor{}/lib{i}", i % 200)
}

fn product(p: usize) -> String {
    format!("bench-p{p:02}")
}

/// The libraries of release `r` of `component` of product `p`, with their versions: a
/// deterministic spread over the pool, newer releases carrying newer library versions.
fn libraries(p: usize, component: &str, r: u8) -> Vec<(usize, String)> {
    let salt = p * 7 + if component == "app" { 0 } else { 3 };
    (0..LIBS_PER_RELEASE)
        .map(|k| {
            let lib = (salt * 131 + k * 17) % LIBRARIES;
            (lib, format!("1.{}.{}", r, k % 3))
        })
        .collect()
}

/// Which releases device `d` runs: `(product, app version index, netcore version index)`,
/// weighted toward newer releases as real fleets are (40 % on the newest, 25 % one behind, 15 %
/// two behind, the rest spread over the older ones).
fn fleet_device(d: usize) -> (usize, u8, u8) {
    let pick = |n: u8, x: usize| -> u8 {
        let r = x % 100;
        let behind = match r {
            0..=39 => 0,
            40..=64 => 1,
            65..=79 => 2,
            _ => 3 + (r % (n as usize - 3)),
        };
        n - 1 - behind as u8
    };
    (
        d % PRODUCTS,
        pick(8, d.wrapping_mul(7919) / 13),
        pick(6, d.wrapping_mul(104_729) / 17),
    )
}

/// The site of device `d`: 200 devices per site.
fn site_of(d: usize) -> usize {
    d / (DEVICES / SITES)
}

fn serial(d: usize) -> String {
    format!("BN-{d:06}")
}

impl Material {
    fn build(dir: &Path) -> anyhow::Result<Material> {
        let now = Utc::now();
        let key = |b: u8| SigningKey::from_bytes(&[b; 32]);
        let (root_key, release_key, ent_key, recall_key) = (key(201), key(202), key(203), key(204));
        let mut meta = RootMetadata::new(1, now + chrono::Duration::days(1000));
        for (role, k) in [
            ("root", &root_key),
            ("release", &release_key),
            ("entitlement", &ent_key),
            ("recall", &recall_key),
        ] {
            meta.set_role(role, &[k.verifying_key()], 1);
        }
        let root = meta.sign(&[&root_key]);

        let pkgs = dir.join("packages");
        std::fs::create_dir_all(&pkgs)?;
        let mut packages = Vec::new();
        for p in 0..PRODUCTS {
            for (component, n) in COMPONENTS {
                for r in 0..n {
                    packages.push(package(&pkgs, &release_key, p, component, r)?);
                }
            }
        }

        // Entitlements: 100 customers, each naming the 1000 serials at its five sites.
        let ents = dir.join("entitlements");
        std::fs::create_dir_all(&ents)?;
        let mut entitlements = Vec::new();
        for c in 0..100 {
            let mut grants: Vec<DeviceGrant> = (0..PRODUCTS)
                .map(|p| DeviceGrant {
                    model: product(p),
                    serials: Vec::new(),
                })
                .collect();
            for d in (0..DEVICES).filter(|d| site_of(*d) / 5 == c) {
                grants[d % PRODUCTS].serials.push(serial(d));
            }
            let e = Entitlement {
                id: format!("ENT-{c:03}"),
                customer: format!("Customer {c:03}"),
                sites: Vec::new(),
                devices: grants,
                features: vec!["updates".into()],
                valid_from: (now - chrono::Duration::days(300)).date_naive(),
                valid_until: (now + chrono::Duration::days(300)).date_naive(),
                maintenance_through: None,
                issued: now,
                generation: 1,
            };
            let path = ents.join(format!("ent-{c:03}.json"));
            std::fs::write(&path, e.issue(&ent_key))?;
            entitlements.push(path);
        }

        // 10 000 advisories in one all.zip: against the library pool (SEMVER ranges fixed at
        // some release's library version, every tenth pair sharing a CVE alias, 1 % withdrawn)
        // and against each product's network core firmware.
        let advisories = dir.join("all.zip");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&advisories)?);
        let opts = zip::write::SimpleFileOptions::default();
        for k in 0..ADVISORIES {
            let id = format!("BENCH-{k:05}");
            let (purl, fixed) = if k % 100 == 99 {
                (
                    format!("pkg:generic/bench/{}-netcore", product(k / 100 % PRODUCTS)),
                    format!("1.{}.0", 2 + k / 1000 % 4),
                )
            } else {
                (lib_purl(k % LIBRARIES), format!("1.{}.0", 1 + k % 7))
            };
            let mut doc = json!({
                "id": id,
                "modified": "2026-11-01T00:00:00Z",
                "published": "2026-10-01T00:00:00Z",
                "summary": format!("bench advisory {k}"),
                "severity": [{"type": "CVSS_V3", "score": if k % 3 == 0 {
                    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
                } else {
                    "CVSS:3.1/AV:A/AC:H/PR:N/UI:N/S:U/C:L/I:L/A:L"
                }}],
                "affected": [{"package": {"purl": purl},
                    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]
            });
            if k % 10 == 0 {
                doc["aliases"] = json!([format!("CVE-2026-{:05}", k / 2)]);
            }
            if k % 10 == 1 {
                doc["aliases"] = json!([format!("CVE-2026-{:05}", (k - 1) / 2)]);
            }
            if k % 100 == 50 {
                doc["withdrawn"] = json!("2026-11-01T00:00:00Z");
            }
            zip.start_file(format!("{id}.json"), opts)?;
            zip.write_all(&serde_json::to_vec(&doc)?)?;
        }
        zip.finish()?;

        // Ten laptops, one identify entry per device, signed and batched as a sync sends them.
        let mut laptops = Vec::new();
        for l in 0..LAPTOPS {
            let id = Identity::from_key(
                fieldkit_audit::identity::LAPTOP_PREFIX,
                SigningKey::from_bytes(&[100 + l as u8; 32]),
            );
            let mut bodies = Vec::new();
            let mut leaves = Vec::new();
            for d in (l..DEVICES).step_by(LAPTOPS) {
                let (p, a, n) = fleet_device(d);
                let device = DeviceRecord {
                    profile: product(p),
                    model: product(p),
                    serial: serial(d),
                    hardware_revision: "C".into(),
                    firmware: [("app", a), ("netcore", n)]
                        .iter()
                        .map(|(c, v)| ((*c).to_owned(), format!("1.{v}.0")))
                        .collect(),
                    ..DeviceRecord::default()
                };
                let (device, event, details) = Event::DeviceIdentified(Identified {
                    device,
                    port: "/dev/ttyACM0".into(),
                })
                .to_parts();
                let entry = Entry {
                    schema: SCHEMA,
                    seq: bodies.len() as u64,
                    origin: id.name().to_owned(),
                    time: now - chrono::Duration::minutes((DEVICES - d) as i64),
                    mono_ns: None,
                    boot_id: "bench".into(),
                    pid: 1,
                    technician: "bench".into(),
                    site: format!("site-{:03}", site_of(d)),
                    device,
                    event: event.into(),
                    details,
                    prev: leaves
                        .last()
                        .map_or_else(|| "0".repeat(64), |l: &[u8; 32]| hex::encode(l)),
                };
                let body = serde_json::to_string(&entry)?;
                leaves.push(merkle::leaf_hash(body.as_bytes()));
                bodies.push(body);
            }
            let mut requests = Vec::new();
            for start in (0..bodies.len()).step_by(1000) {
                let end = (start + 1000).min(bodies.len());
                let root = merkle::root_from_leaves(&leaves[..end]);
                requests.push(AppendRequest {
                    origin: id.name().into(),
                    old_size: start as u64,
                    entries: bodies[start..end].to_vec(),
                    checkpoint: SignedCheckpoint::sign(&id, end as u64, root)?
                        .as_str()
                        .into(),
                });
            }
            laptops.push((id, requests));
        }
        Ok(Material {
            root,
            packages,
            entitlements,
            advisories,
            hub: Identity::from_key(
                fieldkit_audit::identity::HUB_PREFIX,
                SigningKey::from_bytes(&[250; 32]),
            ),
            laptops,
        })
    }
}

/// Release `r` of `component` of product `p`: a signed MCUboot image in a signed package with a
/// 100-component CycloneDX SBOM.
fn package(
    dir: &Path,
    key: &SigningKey,
    p: usize,
    component: &str,
    r: u8,
) -> anyhow::Result<PathBuf> {
    let version = format!("1.{r}.0");
    let v: ImageVersion = version.parse()?;
    let img = fieldkit_mcuboot::sign(
        format!("{} {component} {version}", product(p)).as_bytes(),
        &SignOptions {
            key: Some(key),
            security_counter: Some(1),
            ..SignOptions::new(v)
        },
    )?;
    let mut components = vec![json!({
        "type": "firmware",
        "name": format!("{}-{component}", product(p)),
        "version": version,
        "purl": format!("pkg:generic/bench/{}-{component}@{version}", product(p)),
        "licenses": [{"license": {"id": "LicenseRef-bench"}}]
    })];
    for (lib, lv) in libraries(p, component, r) {
        components.push(json!({
            "type": "library", "name": format!("lib{lib}"), "version": lv,
            "purl": format!("{}@{lv}", lib_purl(lib)),
            "licenses": [{"license": {"id": if lib % 50 == 0 { "GPL-3.0-only" } else { "MIT" }}}]
        }));
    }
    let sbom = serde_json::to_vec(&json!({
        "bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
        "metadata": {"component": components[0]},
        "components": &components[1..],
    }))?;
    // Product and component as the package id's version space: each component's releases
    // get versions of their own (app 1.r.0, netcore 1.r.1) so ids stay unique per product.
    let pkg_version = if component == "app" {
        format!("1.{r}.0")
    } else {
        format!("1.{r}.1")
    };
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        product: product(p),
        version: semver::Version::parse(&pkg_version)?,
        release_date: Utc::now().date_naive() - chrono::Duration::days(200 - 20 * i64::from(r)),
        class: if r % 3 == 2 {
            ReleaseClass::Security
        } else {
            ReleaseClass::Feature
        },
        security_counter: 1,
        expires: Utc::now() + chrono::Duration::days(365),
        entitlement_feature: Some("updates".into()),
        requires: Requirements::default(),
        sbom: MemberDigest::default(),
        payloads: vec![Payload {
            component: component.into(),
            image: u32::from(component == "netcore"),
            version: v,
            format: PayloadFormat::Mcuboot,
            file: format!("{component}.bin"),
            image_key: "release".into(),
            size: 0,
            sha256: String::new(),
            image_hash: None,
        }],
    };
    let mut out = Vec::new();
    build_package(&manifest, &sbom, &[&img], &[key], &mut out)?;
    let path = dir.join(format!("{}-{component}-{version}.fkpkg", product(p)));
    std::fs::write(&path, out)?;
    Ok(path)
}

fn percentiles(mut t: Vec<Duration>) -> (f64, f64) {
    t.sort();
    let at = |q: f64| t[((t.len() as f64 * q).ceil() as usize).clamp(1, t.len()) - 1];
    (
        at(0.5).as_secs_f64() * 1000.0,
        at(0.95).as_secs_f64() * 1000.0,
    )
}

async fn measure(backend: &str, url: &str, m: &Material, rows: &mut Rows) -> anyhow::Result<()> {
    let store: Arc<dyn Store> = fieldkit_hub::open_store(url).await?;
    let pm = store.postmarket();
    let cx = Import {
        hub: &m.hub,
        by: "bench",
        now: Utc::now(),
    };
    trust::pin(pm, &m.root).await?;
    let paths: Vec<&Path> = m.packages.iter().map(PathBuf::as_path).collect();
    let t = Instant::now();
    let r = import::releases(pm, cx, &paths).await?;
    anyhow::ensure!(!r.any_refused(), "releases refused: {:?}", r.files);
    let releases = t.elapsed();
    let ents: Vec<&Path> = m.entitlements.iter().map(PathBuf::as_path).collect();
    import::entitlements(pm, &ents).await?;
    let t = Instant::now();
    for (id, requests) in &m.laptops {
        store.enroll_laptop(id.name(), &id.public_key()).await?;
        for req in requests {
            fieldkit_hub::ingest::append(store.clone(), &m.hub, req.clone(), None)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
    }
    let ingest = t.elapsed();
    let t = Instant::now();
    let r = import::advisories(pm, cx, &[m.advisories.as_path()]).await?;
    let import_secs = t.elapsed().as_secs_f64();
    let summary = r.analysis.context("the import analysed nothing")?;
    let t = Instant::now();
    analysis::recompute(pm, &m.hub.public_key(), &m.hub.key_id()).await?;
    let analyse_secs = t.elapsed().as_secs_f64();
    rows.push((
        format!("{backend}: releases import, {} packages", m.packages.len()),
        format!("{:.1} s", releases.as_secs_f64()),
    ));
    rows.push((
        format!("{backend}: fleet ingest, {DEVICES} devices (all checks)"),
        format!(
            "{:.1} s ({:.0} entries/s)",
            ingest.as_secs_f64(),
            DEVICES as f64 / ingest.as_secs_f64()
        ),
    ));
    rows.push((
        format!("{backend}: advisory import, {ADVISORIES} in all.zip, analysed"),
        format!(
            "{:.1} s ({:.0} advisories/s; {} vulnerabilities, {} release components affected)",
            import_secs,
            ADVISORIES as f64 / import_secs,
            summary.vulnerabilities,
            summary.matches
        ),
    ));
    rows.push((
        format!("{backend}: analysis alone (releases x advisories x VEX)"),
        format!("{analyse_secs:.2} s"),
    ));

    // Each answer as the API builds it: the trust material and releases as the hub holds
    // them between answers (loaded again whenever an import changes them).
    let contexts = ContextCache::default();
    // The questions: vulnerabilities that affect releases, library ranges, device serials.
    let vulns: Vec<String> = {
        let mut names: Vec<String> = pm
            .matches(None, &[])
            .await?
            .into_iter()
            .map(|x| x.vulnerability)
            .collect();
        names.dedup();
        let step = (names.len() / QUESTIONS).max(1);
        names.into_iter().step_by(step).take(QUESTIONS).collect()
    };
    let mut by_vuln = Vec::new();
    let mut devices_seen = 0u64;
    for id in &vulns {
        let t = Instant::now();
        let c = contexts.context(pm, Utc::now()).await?;
        let v = answers::by_vulnerability(pm, &c, id, 100, 0)
            .await?
            .context("a vulnerability the analysis names")?;
        by_vuln.push(t.elapsed());
        devices_seen = devices_seen.max(v.devices);
    }
    let mut by_component = Vec::new();
    let mut component_devices = 0u64;
    for k in 0..QUESTIONS {
        let q = format!(
            "{}@vers:semver/<1.{}.0",
            lib_purl(k * 31 % LIBRARIES),
            1 + k % 6
        );
        let scope = fieldkit_vuln::vex::Scope::from_purl(&q).map_err(anyhow::Error::msg)?;
        let t = Instant::now();
        let c = contexts.context(pm, Utc::now()).await?;
        let a = answers::by_component(pm, &c, &q, &scope, 100, 0).await?;
        by_component.push(t.elapsed());
        component_devices = component_devices.max(a.devices);
    }
    let mut by_device = Vec::new();
    for k in 0..QUESTIONS {
        let s = serial(k * 1667 % DEVICES);
        let t = Instant::now();
        let c = contexts.context(pm, Utc::now()).await?;
        answers::by_device(pm, &c, &s)
            .await?
            .context("a device of the fleet")?;
        by_device.push(t.elapsed());
    }
    for (what, times, note) in [
        (
            "exposure by vulnerability",
            by_vuln,
            format!("up to {devices_seen} devices"),
        ),
        (
            "exposure by component + range",
            by_component,
            format!("up to {component_devices} devices"),
        ),
        ("exposure by device", by_device, "200 components".to_owned()),
    ] {
        let (p50, p95) = percentiles(times);
        rows.push((
            format!("{backend}: {what}, p50 / p95"),
            format!("{p50:.1} / {p95:.1} ms ({note}; target p95 < 100 ms)"),
        ));
    }
    let t = Instant::now();
    let c = contexts.context(pm, Utc::now()).await?;
    let u = answers::up_to_date(pm, &c, &UpToDateFilter::default(), 100, 0).await?;
    rows.push((
        format!("{backend}: up-to-date report, whole fleet"),
        format!(
            "{:.0} ms ({} device components behind)",
            t.elapsed().as_secs_f64() * 1000.0,
            u.rows.total
        ),
    ));
    let t = Instant::now();
    let o = answers::overview(pm, &c, 25, 0).await?;
    rows.push((
        format!(
            "{backend}: dashboard overview, first 25 of {} vulnerabilities",
            o.total
        ),
        format!("{:.0} ms", t.elapsed().as_secs_f64() * 1000.0),
    ));
    Ok(())
}
