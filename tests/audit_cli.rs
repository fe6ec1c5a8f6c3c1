//! `fieldkit audit` end to end: the real binary over a home directory, and a real hub.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use fieldkit_audit::record::{CheckVerdict, examples};
use fieldkit_audit::{AuditLog, Identity, NewEntry};
use fieldkit_hub::Store;
use serde_json::Value;

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
    let device = |serial: &str| examples::device(serial, "pump", &[("app", "1.0.0")]);
    for event in [
        examples::identified(device("SN-1")),
        examples::check(device("SN-1"), CheckVerdict::Go, ("r", "f", "q")),
        examples::check(device("SN-2"), CheckVerdict::Refused, ("r", "f", "q")),
    ] {
        log.append(NewEntry {
            technician: "ana".into(),
            site: "St. Mary".into(),
            event,
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

/// A hub on loopback with its own key, over a SQLite file in `dir`.
fn serve_hub(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    seed: u8,
) -> (String, Arc<dyn Store>, Identity) {
    let hub = Identity::from_key(
        fieldkit_audit::identity::HUB_PREFIX,
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
    );
    let store: Arc<dyn Store> =
        Arc::new(fieldkit_hub::SqliteStore::open(&dir.join(format!("hub{seed}.db"))).unwrap());
    let state = fieldkit_hub::AppState::new(store.clone(), hub.clone());
    let url = rt.block_on(async {
        let listener =
            fieldkit_hub::serve::Listener::bind("127.0.0.1:0", &Default::default()).unwrap();
        let url = listener.url();
        tokio::spawn(listener.serve(state, std::future::pending()));
        url
    });
    (url, store, hub)
}

#[test]
fn sync_pins_the_hubs_key_uploads_and_refuses_a_rogue_hub() {
    let dir = tempfile::tempdir().unwrap();
    let log = seed(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (url, store, hub) = serve_hub(&rt, dir.path(), 1);

    // The first sync stops before anything is sent: the technician must confirm the key.
    let (ok, _, err) = fieldkit(dir.path(), &["audit", "sync", "--hub", &url]);
    assert!(!ok, "{err}");
    assert!(
        err.contains(&format!(
            "has not pinned a hub key yet: the hub at {url} presents key {}",
            hub.name()
        )) && err.contains(&format!("--accept-hub-key {}", hub.name())),
        "{err}"
    );
    let (ok, _, err) = fieldkit(
        dir.path(),
        &[
            "audit",
            "sync",
            "--hub",
            &url,
            "--accept-hub-key",
            "fieldkit-hub/0123456789abcdef",
        ],
    );
    assert!(!ok && err.contains("nothing was pinned"), "{err}");
    assert_eq!(
        rt.block_on(store.count(&Default::default(), u64::MAX))
            .unwrap(),
        0
    );

    let (ok, _, err) = fieldkit(
        dir.path(),
        &[
            "audit",
            "sync",
            "--hub",
            &url,
            "--accept-hub-key",
            hub.name(),
        ],
    );
    assert!(!ok && err.contains("is not enrolled"), "{err}");
    rt.block_on(store.enroll_laptop("laptop", &log.identity().public_key()))
        .unwrap();
    // From now on the pin is used without asking.
    let (ok, out, err) = fieldkit(dir.path(), &["--json", "audit", "sync", "--hub", &url]);
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["acked_size"],
        3
    );
    assert_eq!(
        rt.block_on(store.count(&Default::default(), u64::MAX))
            .unwrap(),
        3
    );
    let (ok, out, _) = fieldkit(dir.path(), &["audit", "verify"]);
    assert!(
        ok && out.contains("1 hub receipts checked, 3 acknowledged"),
        "{out}"
    );

    // A rogue hub (another key) that enrolled this laptop: refused, naming both keys, and
    // nothing more is acknowledged or sent.
    log.append(NewEntry {
        technician: "ana".into(),
        site: "St. Mary".into(),
        event: examples::identified(examples::device("SN-3", "pump", &[])),
    })
    .unwrap();
    let (rogue_url, rogue_store, rogue) = serve_hub(&rt, dir.path(), 2);
    rt.block_on(rogue_store.enroll_laptop("laptop", &log.identity().public_key()))
        .unwrap();
    let (ok, _, err) = fieldkit(dir.path(), &["audit", "sync", "--hub", &rogue_url]);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "presents key {}, but this laptop pinned hub key {}",
            rogue.name(),
            hub.name()
        )),
        "{err}"
    );
    assert_eq!(log.acked_size().unwrap(), 3);
    assert_eq!(
        rt.block_on(rogue_store.count(&Default::default(), u64::MAX))
            .unwrap(),
        0
    );

    // Pinning at enrolment: the key file the hub prints.
    let pem = dir.path().join("hub2.pub.pem");
    std::fs::write(&pem, rogue.public_key_pem()).unwrap();
    let (ok, out, err) = fieldkit(
        dir.path(),
        &["audit", "pin-hub", "--key", pem.to_str().unwrap()],
    );
    assert!(
        ok && out.contains(&format!("pinned hub key {}", rogue.name())),
        "{err}"
    );
}
