//! `fieldkit audit` end to end: the real binary over a home directory, and a real hub.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use fieldkit_audit::{AuditLog, NewEntry, events};
use serde_json::{Value, json};

fn fieldkit(home: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fieldkit"))
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn seed(home: &Path) -> AuditLog {
    let log = AuditLog::open_in_home(home).unwrap();
    for (serial, event) in [
        ("SN-1", events::DEVICE_IDENTIFIED),
        ("SN-1", events::CHECK_PASSED),
        ("SN-2", events::CHECK_REFUSED),
    ] {
        log.append(NewEntry {
            technician: "ana".into(),
            site: "St. Mary".into(),
            device: json!({"serial": serial, "model": "pump"}),
            event: event.into(),
            details: json!({}),
        })
        .unwrap();
    }
    log
}

#[test]
fn list_show_verify_export_and_id() {
    let dir = tempfile::tempdir().unwrap();
    let log = seed(dir.path());
    let (ok, out, err) = fieldkit(dir.path(), &["--json", "audit", "list"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    let (ok, out, _) = fieldkit(dir.path(), &["--json", "audit", "show", "2"]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["event"],
        "check_refused"
    );
    let (ok, _, err) = fieldkit(dir.path(), &["audit", "show", "9"]);
    assert!(
        !ok && err.contains("entry 9 does not exist: the log has 3 entries"),
        "{err}"
    );
    let (ok, out, err) = fieldkit(dir.path(), &["audit", "verify"]);
    assert!(
        ok && out.starts_with("audit log OK: 3 entries"),
        "{out}{err}"
    );
    let (ok, out, _) = fieldkit(dir.path(), &["audit", "export", "--format", "csv"]);
    assert!(ok);
    assert_eq!(out.lines().count(), 4, "{out}");
    let (ok, out, _) = fieldkit(
        dir.path(),
        &["--json", "audit", "export", "--format", "json"],
    );
    assert!(ok);
    let rows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[1]["body"], log.records(1..2).unwrap()[0].body.as_str());
    let (ok, _, err) = fieldkit(dir.path(), &["audit", "export", "--format", "xml"]);
    assert!(!ok && err.contains("required csv or json"), "{err}");
    let (ok, out, _) = fieldkit(dir.path(), &["--json", "audit", "id"]);
    assert!(ok);
    let id: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(id["origin"], log.origin());
    assert!(
        id["public_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
}

#[test]
fn verify_names_the_edited_entry_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    drop(seed(dir.path()));
    let c = rusqlite::Connection::open(dir.path().join("audit.db")).unwrap();
    c.execute_batch(
        "DROP TRIGGER entries_no_update;
         UPDATE entries SET body = replace(body, '\"ana\"', '\"eve\"') WHERE seq = 1;",
    )
    .unwrap();
    let (ok, _, err) = fieldkit(dir.path(), &["audit", "verify"]);
    assert!(!ok);
    assert!(err.starts_with("error: entry 1 was edited"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn sync_uploads_to_a_hub_and_reports_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let log = seed(dir.path());
    let store = Arc::new(fieldkit_hub::SqliteStore::open(&dir.path().join("hub.db")).unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = fieldkit_hub::router(fieldkit_hub::AppState::new(store.clone()));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    });
    let (ok, _, err) = fieldkit(dir.path(), &["audit", "sync", "--hub", &url]);
    assert!(!ok && err.contains("is not enrolled"), "{err}");
    use fieldkit_hub::Store;
    store
        .enroll_laptop("laptop", &log.identity().public_key())
        .unwrap();
    let (ok, out, err) = fieldkit(dir.path(), &["--json", "audit", "sync", "--hub", &url]);
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["acked_size"],
        3
    );
    assert_eq!(store.count(&Default::default()).unwrap(), 3);
    let (ok, out, _) = fieldkit(dir.path(), &["audit", "verify"]);
    assert!(
        ok && out.contains("1 hub receipts checked, 3 acknowledged"),
        "{out}"
    );
}
