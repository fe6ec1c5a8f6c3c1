//! The dashboard in headless Chromium (Playwright), over a hub holding a realistic fleet:
//! two laptops, several technicians and sites, updates that succeeded, failed, reverted, and
//! one still pending; and the warning of a hub served with `--insecure-http`. Screenshots go to
//! the target directory (see [`screenshots`]).
//!
//! Needs `chromium` (Debian package) and `npm ci` in `crates/hub/dashboard`; `cargo xtask
//! setup` installs both. Where either is missing the test fails and says what to install: a
//! browser test that quietly passes without a browser proves nothing.

use std::path::{Path, PathBuf};

use fieldkit_audit::identity::LAPTOP_PREFIX;
use fieldkit_audit::record::{CheckVerdict, DeviceRecord, Stage, StepVerdict, examples};
use fieldkit_audit::{AuditLog, Identity, NewEntry};
use fieldkit_hub::auth;
use fieldkit_sync::SyncClient;

mod support;

fn dashboard_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboard")
}

fn device(serial: &str, model: &str, app: &str) -> DeviceRecord {
    DeviceRecord {
        hardware_revision: "C".into(),
        ..examples::device(serial, model, &[("app", app), ("bootloader", "2.0.1")])
    }
}

/// Writes one technician's day: identify, check, update, with the given outcome.
/// technician, site, serial, model, firmware before, firmware offered, outcome
type Visit<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
);

fn visit(log: &AuditLog, (tech, site, serial, model, from, to, outcome): Visit<'_>) {
    let new = |event| NewEntry {
        technician: tech.into(),
        site: site.into(),
        event,
    };
    log.append(new(examples::identified(device(serial, model, from))))
        .unwrap();
    if outcome == "refused" {
        log.append(new(examples::check(
            device(serial, model, from),
            CheckVerdict::Refused,
            (
                "entitlement.window",
                "contract ended 2026-03-31",
                "an entitlement valid today",
            ),
        )))
        .unwrap();
        return;
    }
    log.append(new(examples::check(
        device(serial, model, from),
        CheckVerdict::Go,
        ("target.product", model, model),
    )))
    .unwrap();
    let package = format!("{model}@{to}");
    let intent = log
        .append(new(examples::intent(device(serial, model, from), &package)))
        .unwrap();
    let (result, after) = match outcome {
        "succeeded" => (StepVerdict::Applied, to),
        "failed" => (
            StepVerdict::Failed {
                stage: Stage::Uploading,
                kind: "disconnected".into(),
                message: "device stopped answering at 61 %".into(),
            },
            from,
        ),
        "reverted" => (
            StepVerdict::Reverted {
                stage: Stage::Confirming,
                reason: "the device refused to confirm".into(),
            },
            from,
        ),
        _ => return, // pending: the outcome has not been synced yet
    };
    log.append(new(examples::outcome(
        intent.seq,
        device(serial, model, after),
        &package,
        result,
    )))
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_synced_entries_in_chromium() {
    run_dashboard(support::Backend::Sqlite).await;
}

/// The same browser test with the hub on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_synced_entries_in_chromium_over_postgres() {
    run_dashboard(support::Backend::Postgres).await;
}

/// The browser, after checking that it and Playwright are installed.
fn chromium() -> String {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let pw = dashboard_dir().join("node_modules/playwright-core");
    assert!(
        Path::new(&chromium).exists() && pw.exists(),
        "the dashboard browser test needs {chromium} (apt-get install chromium) and {} \
         (npm ci --prefix crates/hub/dashboard); `cargo xtask setup` installs both",
        pw.display()
    );
    chromium
}

/// Where screenshots go: beside the build by default, so a test run leaves the tree clean;
/// `DASHBOARD_SCREENSHOTS=docs/screenshots` refreshes the ones the README shows.
fn screenshots(name: &str) -> PathBuf {
    match std::env::var_os("DASHBOARD_SCREENSHOTS") {
        Some(dir) => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(dir),
        None => {
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("dashboard-screenshots-{name}"))
        }
    }
}

/// The real `fieldkit-hub` binary told `--insecure-http` on every address: the dashboard warns
/// on the sign-in page and on every page after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_of_an_insecure_http_hub_warns_on_every_page() {
    use std::io::{BufRead, Write};
    let chromium = chromium();
    const HUB: &str = env!("CARGO_BIN_EXE_fieldkit-hub");
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("hub.db").display());
    let mut add = std::process::Command::new(HUB)
        .args(["add-manager", "--db", &db, "--name", "maria"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(b"s3cret-pass\n")
        .unwrap();
    assert!(add.wait().unwrap().success());
    let mut hub = std::process::Command::new(HUB)
        .args([
            "serve",
            "--db",
            &db,
            "--listen",
            "0.0.0.0:0",
            "--insecure-http",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(hub.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on http://0.0.0.0:")
        .map(|port| format!("http://127.0.0.1:{port}"))
        .unwrap_or_else(|| panic!("{line:?}"));
    let out = tokio::process::Command::new("node")
        .arg("tests/insecure.mjs")
        .current_dir(dashboard_dir())
        .env("HUB_URL", &url)
        .env("HUB_USER", "maria")
        .env("HUB_PASSWORD", "s3cret-pass")
        .env("SCREENSHOTS", screenshots("insecure"))
        .env("CHROMIUM", &chromium)
        .output()
        .await
        .unwrap();
    let _ = hub.kill();
    let _ = hub.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "dashboard test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ok - and on the fleet page"), "{stdout}");
}

async fn run_dashboard(backend: support::Backend) {
    let chromium = chromium();
    let t = support::TestHub::start(backend).await;
    let (store, url, dir) = (t.store.clone(), t.url.clone(), t.dir.path().to_owned());
    store
        .add_manager("maria", &auth::hash_password("s3cret-pass").unwrap())
        .await
        .unwrap();
    let mut total = 0;
    let mut ana = 0;
    for (seed, name, visits) in [
        (
            21u8,
            "north-van-laptop",
            vec![
                (
                    "ana",
                    "St. Mary Hospital, ward 4",
                    "IP-20417",
                    "infusion-pump",
                    "3.1.0",
                    "3.2.0",
                    "succeeded",
                ),
                (
                    "ana",
                    "St. Mary Hospital, ward 4",
                    "IP-20418",
                    "infusion-pump",
                    "3.1.0",
                    "3.2.0",
                    "succeeded",
                ),
                (
                    "ana",
                    "St. Mary Hospital, ICU",
                    "PM-88012",
                    "patient-monitor",
                    "5.0.2",
                    "5.1.0",
                    "reverted",
                ),
                (
                    "ana",
                    "St. Mary Hospital, ICU",
                    "PM-88013",
                    "patient-monitor",
                    "5.0.2",
                    "5.1.0",
                    "refused",
                ),
            ],
        ),
        (
            22u8,
            "south-van-laptop",
            vec![
                (
                    "bo",
                    "Central Clinic",
                    "IP-20511",
                    "infusion-pump",
                    "3.0.4",
                    "3.2.0",
                    "failed",
                ),
                (
                    "bo",
                    "Central Clinic",
                    "IP-20511",
                    "infusion-pump",
                    "3.0.4",
                    "3.2.0",
                    "succeeded",
                ),
                (
                    "bo",
                    "Central Clinic",
                    "LG-0042",
                    "legacy-analyzer",
                    "1.8",
                    "1.9",
                    "succeeded",
                ),
                (
                    "chen",
                    "Riverside Care Home",
                    "IP-20602",
                    "infusion-pump",
                    "3.1.0",
                    "3.2.0",
                    "pending",
                ),
            ],
        ),
    ] {
        let id = Identity::from_key(
            LAPTOP_PREFIX,
            ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
        );
        store.enroll_laptop(name, &id.public_key()).await.unwrap();
        let log = AuditLog::open(&dir.join(format!("{name}.db")), id).unwrap();
        for (tech, site, serial, model, from, to, outcome) in visits {
            visit(&log, (tech, site, serial, model, from, to, outcome));
        }
        SyncClient::new(&url, t.hub.public_key())
            .unwrap()
            .sync(&log)
            .await
            .unwrap();
        let entries = log.entries(..).unwrap();
        total += entries.len();
        ana += entries.iter().filter(|e| e.technician == "ana").count();
    }

    let shots = screenshots(&format!("{backend:?}").to_lowercase());
    let out = tokio::process::Command::new("node")
        .arg("tests/dashboard.mjs")
        .current_dir(dashboard_dir())
        .env("HUB_URL", &url)
        .env("HUB_USER", "maria")
        .env("HUB_PASSWORD", "s3cret-pass")
        .env("SCREENSHOTS", &shots)
        .env("EXPECT_TOTAL", total.to_string())
        .env("EXPECT_TECH", "ana")
        .env("EXPECT_TECH_TOTAL", ana.to_string())
        .env("EXPECT_SERIAL", "IP-20511")
        .env("CHROMIUM", &chromium)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "dashboard test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ok - the CSV export"), "{stdout}");
}
