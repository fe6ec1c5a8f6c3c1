//! The dashboard's post-market pages in headless Chromium (Playwright): exposure (the list with
//! its chart over time, a vulnerability, a device, a VEX decision recorded through the form),
//! up to date (with its share chart) and licences, over a fleet whose field records span half
//! a year: thirteen pumps at three customers' sites, updated week by week after an advisory.
//! Then hostile strings (an advisory's summary, a site typed on a laptop) are shown to be text.
//!
//! Screenshots go beside the build, or to `docs/screenshots` with
//! `DASHBOARD_SCREENSHOTS=docs/screenshots`. Needs `chromium` and the dashboard's npm packages
//! (`cargo xtask setup`); fails, saying so, where either is missing.

use std::path::{Path, PathBuf};

use chrono::{Duration, Utc};
use fieldkit_hub::auth;
use fieldkit_hub::postmarket::import::{self, Context};
use fieldkit_hub::postmarket::trust;
use fieldkit_trust::ReleaseClass;
use serde_json::json;

mod support;
use support::kit::{self, CRITICAL, HIGH, Historic, Kit, Rel, device};

const MEDIUM: &str = "CVSS:3.1/AV:A/AC:H/PR:N/UI:N/S:U/C:L/I:L/A:L";

fn dashboard_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboard")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_post_market_pages_in_chromium() {
    run(support::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_post_market_pages_in_chromium_over_postgres() {
    run(support::Backend::Postgres).await;
}

async fn run(backend: support::Backend) {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let pw = dashboard_dir().join("node_modules/playwright-core");
    assert!(
        Path::new(&chromium).exists() && pw.exists(),
        "the dashboard browser test needs {chromium} (apt-get install chromium) and {} \
         (npm ci --prefix crates/hub/dashboard); `cargo xtask setup` installs both",
        pw.display()
    );
    let t = support::TestHub::start(backend).await;
    let pm = t.store.postmarket();
    t.store
        .add_manager("maria", &auth::hash_password("s3cret-pass").unwrap())
        .await
        .unwrap();
    let kit = Kit::new();
    let now = Utc::now();
    let cx = Context {
        hub: &t.hub,
        by: "rel-eng",
        now,
    };
    trust::pin(pm, &kit.root(1, true)).await.unwrap();
    let strong = [
        ("lwip", "2.2.0", "pkg:generic/lwip@2.2.0", "BSD-3-Clause"),
        (
            "mbedtls",
            "3.6.2",
            "pkg:github/Mbed-TLS/mbedtls@v3.6.2",
            "Apache-2.0",
        ),
        (
            "readline",
            "8.2",
            "pkg:generic/readline@8.2",
            "GPL-3.0-only",
        ),
        ("newlib", "4.4.0", "pkg:generic/newlib@4.4.0", "NOASSERTION"),
    ];
    let rels = [
        Rel {
            age_days: 200,
            ..Rel::new("netcore", "1.4.0")
        },
        Rel {
            class: ReleaseClass::Security,
            hardware: &["C"],
            age_days: 60,
            counter: 2,
            libs: &strong[1..2],
            ..Rel::new("netcore", "1.5.0")
        },
        Rel {
            age_days: 20,
            ..Rel::new("netcore", "1.6.0")
        },
        Rel {
            age_days: 200,
            libs: &strong[..1],
            ..Rel::new("app", "2.0.0")
        },
        Rel {
            age_days: 30,
            libs: &strong,
            ..Rel::new("app", "2.1.0")
        },
    ];
    let files: Vec<_> = rels.iter().map(|r| kit.package(r, None).path).collect();
    let r = import::releases(pm, cx, &kit::paths(&files)).await.unwrap();
    assert!(!r.any_refused(), "{r:?}");
    let ents = [
        kit.entitlement(
            "ENT-STE",
            "St. Elsewhere Health",
            &[
                "P7-1001", "P7-1002", "P7-1003", "P7-1004", "P7-1005", "P7-1006",
            ],
        ),
        kit.entitlement(
            "ENT-RCH",
            "Riverside Care Homes",
            &["P7-2001", "P7-2002", "P7-2003", "P7-2004"],
        ),
        kit.entitlement(
            "ENT-NGC",
            "Northgate Clinic",
            &["P7-3001", "P7-3002", "P7-3003"],
        ),
    ];
    import::entitlements(pm, &kit::paths(&ents)).await.unwrap();

    // Half a year of field records: every pump seen 26 weeks ago on the old releases, then
    // updates after the advisory.
    let mut laptop = Historic::new(52);
    t.store
        .enroll_laptop("north-van-laptop", &laptop.identity.public_key())
        .await
        .unwrap();
    let pumps: Vec<(&str, &str, &str)> = [
        ("P7-1001", "St. Elsewhere ICU", "C"),
        ("P7-1002", "St. Elsewhere ICU", "C"),
        ("P7-1003", "St. Elsewhere ICU", "C"),
        ("P7-1004", "St. Elsewhere ICU", "C"),
        ("P7-1005", "St. Elsewhere ICU", "C"),
        ("P7-1006", "St. Elsewhere ICU", "C"),
        ("P7-2001", "Riverside Care, ward 2", "C"),
        ("P7-2002", "Riverside Care, ward 2", "C"),
        ("P7-2003", "Riverside Care, ward 2", "C"),
        ("P7-2004", "Riverside Care, ward 2", "C"),
        ("P7-3001", "Northgate Clinic", "C"),
        ("P7-3002", "Northgate Clinic", "C"),
        ("P7-3003", "Northgate Clinic", "B"),
    ]
    .to_vec();
    for (i, (serial, site, hw)) in pumps.iter().enumerate() {
        laptop.push(
            now - Duration::weeks(26) + Duration::hours(i as i64),
            site,
            kit::identified(device(serial, "2.0.0", "1.4.0", hw)),
        );
    }
    let updated = |serial: &str, weeks: i64, netcore: &str| {
        (
            serial.to_owned(),
            now - Duration::weeks(weeks),
            netcore.to_owned(),
        )
    };
    for (serial, when, netcore) in [
        updated("P7-1001", 6, "1.5.0"),
        updated("P7-1002", 5, "1.5.0"),
        updated("P7-1003", 4, "1.5.0"),
        updated("P7-1004", 3, "1.5.0"),
        updated("P7-2001", 2, "1.6.0"),
        updated("P7-2002", 2, "1.6.0"),
    ] {
        let (_, site, hw) = pumps.iter().find(|p| p.0 == serial).unwrap();
        let package = format!("{}@{netcore}", kit::PUMP);
        laptop.push(
            when,
            site,
            kit::updated(
                device(&serial, "2.0.0", &netcore, hw),
                &package,
                "netcore",
                &"2".repeat(64),
            ),
        );
    }
    laptop.sync(&t.url).await;

    let mut netcore = kit.advisory("ACME-2026-0001", "netcore", "1.5.0", HIGH);
    netcore["aliases"] = json!(["CVE-2026-1001"]);
    netcore["published"] = json!((now - Duration::weeks(8)).to_rfc3339());
    netcore["summary"] = json!("Network core accepts an oversized radio frame and restarts");
    let mut mbed = json!({
        "id": "GHSA-demo-mbed-0001",
        "aliases": ["CVE-2024-45159"],
        "modified": (now - Duration::days(2)).to_rfc3339(),
        "published": (now - Duration::weeks(3)).to_rfc3339(),
        "summary": "Mbed TLS: TLS 1.3 client authentication can be bypassed",
        "severity": [{"type": "CVSS_V3", "score": CRITICAL}],
        "affected": [{"package": {"purl": "pkg:github/Mbed-TLS/mbedtls"},
                      "ranges": [{"type": "SEMVER", "events": [{"introduced": "3.2.0"}, {"fixed": "3.6.1"}]}]}]
    });
    mbed["database_specific"] = json!({"severity": "CRITICAL"});
    let mut app = kit.advisory("ACME-2026-0002", "app", "2.1.0", MEDIUM);
    app["published"] = json!((now - Duration::weeks(12)).to_rfc3339());
    app["summary"] = json!("Service menu accepts a default PIN over the local port");
    let adv: Vec<_> = [("a1.json", &netcore), ("a2.json", &mbed), ("a3.json", &app)]
        .iter()
        .map(|(n, d)| kit.write(n, &serde_json::to_vec(d).unwrap()))
        .collect();
    import::advisories(pm, cx, &kit::paths(&adv)).await.unwrap();
    let vex = kit.write(
        "vex.json",
        &serde_json::to_vec(&json!({
            "@context": "https://openvex.dev/ns/v0.2.0",
            "@id": "https://acme.example/vex/2026-0002",
            "author": "Acme Medical Product Security",
            "timestamp": (now - Duration::weeks(10)).to_rfc3339(),
            "statements": [{
                "vulnerability": {"name": "ACME-2026-0002"},
                "products": [{"@id": "pkg:generic/acme-medical/acme-infusion-p7-app@vers:semver/>=2.0.0|<2.1.0"}],
                "status": "not_affected",
                "justification": "vulnerable_code_cannot_be_controlled_by_adversary",
                "impact_statement": "The service port is disabled in clinical mode and needs a physical key."
            }]
        }))
        .unwrap(),
    );
    import::vex(pm, cx, &[vex.as_path()]).await.unwrap();

    let shots = match std::env::var_os("DASHBOARD_SCREENSHOTS") {
        Some(dir) => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(dir),
        None => Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("postmarket-screenshots-{backend:?}").to_lowercase()),
    };
    node(&t.url, &chromium, &shots, "pages").await;

    // Hostile strings reach the same pages as text.
    let hostile = kit.write(
        "hostile.json",
        &serde_json::to_vec(&json!({
            "id": "HOSTILE-0001",
            "modified": now.to_rfc3339(),
            "summary": "<img src=x onerror=\"window.pwned=1\"><script>window.pwned=2</script>",
            "affected": [{"package": {"purl": "pkg:generic/lwip"}, "versions": ["2.2.0"]}]
        }))
        .unwrap(),
    );
    import::advisories(pm, cx, &[hostile.as_path()])
        .await
        .unwrap();
    laptop.push(
        now,
        "<img src=x onerror=\"window.pwned=3\">ward\u{202e}",
        kit::identified(device("P7-9<b>9</b>", "2.0.0", "1.4.0", "C")),
    );
    laptop.sync(&t.url).await;
    node(&t.url, &chromium, &shots, "hostile").await;
}

async fn node(url: &str, chromium: &str, shots: &Path, phase: &str) {
    let out = tokio::process::Command::new("node")
        .arg("tests/postmarket.mjs")
        .current_dir(dashboard_dir())
        .env("HUB_URL", url)
        .env("HUB_USER", "maria")
        .env("HUB_PASSWORD", "s3cret-pass")
        .env("SCREENSHOTS", shots)
        .env("PHASE", phase)
        .env("CHROMIUM", chromium)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "post-market dashboard test ({phase}) failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ok - no script errors"), "{stdout}");
}
