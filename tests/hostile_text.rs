//! A device that names itself with terminal escapes, newlines and a spreadsheet formula: the
//! CLI shows the names inert, both CSV exports (the laptop's and the hub's) hold them as text,
//! and the hub's dashboard in headless Chromium shows them as text. The JSON exports keep them
//! exactly, as evidence should.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use support::{Served, Sim, fieldkit, hub_bin};

/// A serial number that a spreadsheet would run as a formula.
const SERIAL: &str = "=HYPERLINK(\"http://evil.example/x\",\"P7-004217\")";
/// A hardware revision that rewrites the line above, opens a hyperlink, breaks the line and
/// reverses what follows.
const REVISION: &str =
    "\u{1b}[2K\r\u{1b}[1ASerial: P7-000001\u{1b}]8;;http://evil.example\u{7}\nC\u{202e}D";

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

/// Nothing in `text` can act on a terminal: no control character but newlines, no
/// bidirectional override.
#[track_caller]
fn assert_inert(what: &str, text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|c| {
            (c.is_control() && *c != '\n')
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .collect();
    assert!(bad.is_empty(), "{what} carries {bad:?}:\n{text}");
}

/// Every cell of a CSV export: none may start as a formula.
#[track_caller]
fn assert_no_formula(what: &str, csv_text: &str) -> Vec<csv::StringRecord> {
    let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(csv_text.as_bytes())
        .records()
        .map(Result::unwrap)
        .collect();
    for row in &rows {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{what}: a cell a spreadsheet would run: {cell:?}"
            );
        }
    }
    assert_inert(what, csv_text);
    rows
}

#[test]
fn hostile_device_strings_stay_inert_from_the_terminal_to_the_dashboard() {
    let home = support::demo_home();
    let h = home.path();
    // The pump's own state file, with the names a hostile device reports.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("device.json");
    drop(Sim::start_with_state(
        "acme-infusion-p7",
        &[],
        state.clone(),
        tempfile::tempdir().unwrap(),
    ));
    let mut s: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    s["fields"]["serial"] = SERIAL.into();
    s["fields"]["hardware_revision"] = REVISION.into();
    std::fs::write(&state, serde_json::to_vec(&s).unwrap()).unwrap();
    let sim = Sim::start_with_state("acme-infusion-p7", &[], state, dir);

    // The terminal: the names are shown, escaped, and act on nothing.
    let pump = ["--profile", "acme-infusion-p7"];
    let text = fieldkit(h, &["identify", "--port", sim.port(), pump[0], pump[1]]);
    let out = text.ok();
    assert_inert("identify", out);
    assert!(
        out.contains("\\x1b[2K\\r\\x1b[1ASerial: P7-000001"),
        "{out}"
    );
    assert!(out.contains("C\\u{202e}D"), "{out}");
    let check = fieldkit(h, &["check", "--port", sim.port(), pump[0], pump[1]]);
    assert_inert("check", &check.stdout);
    assert_inert("check's error", &check.stderr);
    // JSON keeps the exact names (escaped as JSON), and is inert too.
    let json = fieldkit(
        h,
        &["--json", "identify", "--port", sim.port(), pump[0], pump[1]],
    );
    assert_inert("identify --json", &json.stdout);
    assert_eq!(json.json()["serial"], SERIAL);
    assert_eq!(json.json()["hardware_revision"], REVISION);
    let list = fieldkit(h, &["audit", "list"]);
    assert_inert("audit list", list.ok());

    // The laptop's CSV export.
    let csv_out = fieldkit(h, &["audit", "export", "--format", "csv"]);
    let rows = assert_no_formula("fieldkit audit export", csv_out.ok());
    assert!(
        rows.iter()
            .any(|r| r.iter().any(|c| c == format!("'{SERIAL}"))),
        "the serial is kept, as text"
    );

    // The hub: enrol, serve, sync.
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
            "laptop",
            "--key",
            key.to_str().unwrap(),
        ],
        "",
    );
    // The hub key `enroll-laptop` printed is the one the technician confirms.
    let hub_key = enrolled
        .split_whitespace()
        .find(|w| w.starts_with("fieldkit-hub/"))
        .expect("enroll-laptop names the hub key")
        .to_owned();
    hub(
        &["add-manager", "--db", &db, "--name", "maria"],
        "correct horse battery\n",
    );
    let served = Served::start(&db);
    let url = served.url.clone();
    fieldkit(
        h,
        &["audit", "sync", "--hub", &url, "--accept-hub-key", &hub_key],
    )
    .ok();

    // The hub's CSV export.
    let hub_csv = hub(&["export", "--db", &db, "--format", "csv"], "");
    let rows = assert_no_formula("fieldkit-hub export", &hub_csv);
    assert!(
        rows.iter()
            .any(|r| r.iter().any(|c| c == format!("'{SERIAL}"))),
        "{hub_csv}"
    );
    // The hub's JSON export keeps the names exactly.
    let bundle: serde_json::Value =
        serde_json::from_str(&hub(&["export", "--db", &db, "--format", "json"], "")).unwrap();
    assert_eq!(bundle["entries"][0]["device"]["serial"], SERIAL);
    assert_eq!(
        bundle["entries"][0]["device"]["hardware_revision"],
        REVISION
    );

    // The dashboard, in Chromium: shown as text, nothing injected, no script error.
    let dashboard = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/hub/dashboard");
    let out = Command::new("node")
        .arg("tests/inert.mjs")
        .current_dir(&dashboard)
        .env("HUB_URL", &url)
        .env("HUB_USER", "maria")
        .env("HUB_PASSWORD", "correct horse battery")
        .env("EXPECT_SERIAL", SERIAL)
        .env("EXPECT_REVISION", REVISION)
        .output()
        .expect("node runs the dashboard test (cargo xtask setup installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "dashboard:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ok - the serial is shown as text"),
        "{stdout}"
    );
}
