//! The audit trail end to end, as it happens in the field and in the office: the CLI works on
//! a simulated pump (identify, check, update), the log syncs to a real `fieldkit-hub` process
//! on loopback, and the hub's export and its dashboard (headless Chromium) show exactly those
//! entries.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use support::{Served, Sim, fieldkit, hub_bin};

fn hub(args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(hub_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "fieldkit-hub {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn field_work_reaches_the_hub_and_the_dashboard_exactly() {
    let home = support::home();
    let h = home.path();
    fieldkit(h, &["demo", "init"]).ok();
    std::fs::write(
        h.join("settings.json"),
        r#"{"technician": "Dana Reyes", "site": "DEMO Ward 4", "customer": "DEMO St. Example Hospital", "hub": null}"#,
    )
    .unwrap();
    let sim = Sim::start("acme-infusion-p7", &[]);
    fieldkit(h, &["identify", "--port", sim.port()]).ok();
    fieldkit(h, &["check", "--port", sim.port()]).ok();
    let netcore = h.join("packages/acme-infusion-p7-1.5.0.fkpkg");
    fieldkit(
        h,
        &[
            "update",
            "--port",
            sim.port(),
            "--yes",
            "--package",
            netcore.to_str().unwrap(),
        ],
    )
    .ok();
    let local = fieldkit(h, &["--json", "audit", "list"]).json();
    let local = local.as_array().unwrap();
    let events: Vec<&str> = local.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        [
            "device_identified",
            "check_passed",
            "check_passed",
            "update_started",
            "update_succeeded"
        ]
    );

    // The office: a hub that knows this laptop and a manager.
    let office = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", office.path().join("hub.db").display());
    let id = fieldkit(h, &["--json", "audit", "id"]).json();
    let key = office.path().join("laptop.pub.pem");
    std::fs::write(&key, id["public_key"].as_str().unwrap()).unwrap();
    let enrolled = hub(
        &[
            "enroll-laptop",
            "--db",
            &db,
            "--name",
            "dana-laptop",
            "--key",
            key.to_str().unwrap(),
        ],
        "",
    );
    hub(
        &["add-manager", "--db", &db, "--name", "maria"],
        "correct horse battery\n",
    );
    let served = Served::start(&db);
    let url = served.url.clone();

    // Back online: sync, twice (the second has nothing to send and changes nothing).
    // The hub key `enroll-laptop` printed is the one the technician confirms.
    let hub_key = enrolled
        .split_whitespace()
        .find(|w| w.starts_with("fieldkit-hub/"))
        .expect("enroll-laptop names the hub key")
        .to_owned();
    let synced = fieldkit(
        h,
        &[
            "--json",
            "audit",
            "sync",
            "--hub",
            &url,
            "--accept-hub-key",
            &hub_key,
        ],
    )
    .json();
    assert_eq!(synced["acked_size"], 5);
    fieldkit(h, &["audit", "sync", "--hub", &url]).ok();
    fieldkit(h, &["audit", "verify"]).ok();

    // The hub's export holds exactly the laptop's entries, byte for byte.
    let export: Value =
        serde_json::from_str(&hub(&["export", "--db", &db, "--format", "json"], "")).unwrap();
    let exported = export["entries"]
        .as_array()
        .or_else(|| export.as_array())
        .expect("entries in the export");
    let records = fieldkit(h, &["--json", "audit", "export", "--format", "json"]).json();
    // Each entry's exact bytes, as hashed into the laptop's tree.
    let bodies = |list: &[Value]| -> Vec<String> {
        list.iter()
            .map(|e| {
                e["body"]
                    .as_str()
                    .expect("every exported entry has its bytes")
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(
        bodies(exported),
        bodies(records.as_array().unwrap()),
        "the hub holds what the laptop wrote"
    );
    assert!(
        exported.iter().all(|e| e["badges"]["receipt"] == true),
        "every entry is covered by a receipt"
    );

    // The dashboard shows them to the service manager.
    let dashboard = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/hub/dashboard");
    let shots = office.path().join("shots");
    let out = Command::new("node")
        .arg("tests/dashboard.mjs")
        .current_dir(&dashboard)
        .env("HUB_URL", &url)
        .env("HUB_USER", "maria")
        .env("HUB_PASSWORD", "correct horse battery")
        .env("SCREENSHOTS", &shots)
        .env("EXPECT_TOTAL", "5")
        .env("EXPECT_TECH", "Dana Reyes")
        .env("EXPECT_TECH_TOTAL", "5")
        .env("EXPECT_SERIAL", "P7-004217")
        .output()
        .expect("node runs the dashboard test (cargo xtask setup installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "dashboard:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok - the CSV export"), "{stdout}");
}
