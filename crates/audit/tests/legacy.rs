//! A log written before records were typed keeps verifying and reading: the fixture in
//! `tests/data/schema1` was written by fieldkit before this schema (see its README).

use std::path::Path;

use fieldkit_audit::record::{LEGACY_SCHEMA, SCHEMA, StepVerdict, examples};
use fieldkit_audit::{AuditLog, Identity, NewEntry, Reading};

fn copy_fixture(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/schema1");
    std::fs::create_dir_all(to.join("keys")).unwrap();
    std::fs::copy(from.join("audit.db"), to.join("audit.db")).unwrap();
    // Git checks the key out readable by all; a home holds it 0600 (a readable key is refused).
    let key = std::fs::read(from.join("keys/laptop.pem")).unwrap();
    fieldkit_private::write(&to.join("keys/laptop.pem"), &key).unwrap();
}

#[test]
fn a_schema_1_log_verifies_reads_and_takes_typed_entries() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let log = AuditLog::open_in_home(dir.path()).unwrap();
    let report = log.verify().unwrap();
    assert_eq!(report.size, 27);
    assert_eq!(report.pending_intents, 0);

    let entries = log.entries(..).unwrap();
    let mut events = Vec::new();
    for e in &entries {
        assert_eq!(e.schema, LEGACY_SCHEMA, "entry {}", e.seq);
        let Ok(Reading::Legacy(l)) = e.read() else {
            panic!("entry {} is not read as legacy: {:?}", e.seq, e.read())
        };
        let device = l.device.expect("every schema-1 entry names its device");
        assert!(["P7-004217", "L2-77810"].contains(&device.serial.as_str()));
        assert_eq!(e.device_serial().as_deref(), Some(device.serial.as_str()));
        events.push(l.event);
    }
    for name in [
        "device_identified",
        "check_refused",
        "check_passed",
        "update_started",
        "update_succeeded",
        "update_reverted",
        "update_failed",
        "update_interrupted",
    ] {
        assert!(events.iter().any(|e| e == name), "{name} missing");
    }
    // The old device record's firmware map and live fields read into the typed record.
    let first = entries[0].device_record().unwrap();
    assert_eq!(first.model, "InfuSafe P7");
    assert_eq!(first.firmware["app"], "2.3.1");
    assert_eq!(first.fields["battery_percent"], "87");
    // Outcomes still close their intents.
    let interrupted = entries.last().unwrap();
    assert_eq!(interrupted.intent_seq(), Some(25));

    // New entries are typed and chain onto the old ones.
    let device = examples::device("P7-004217", "InfuSafe P7", &[("app", "2.4.0")]);
    let intent = log
        .append(NewEntry {
            technician: "ana".into(),
            site: "St. Mary".into(),
            event: examples::intent(device.clone(), "acme-infusion-p7@2.4.0"),
        })
        .unwrap();
    log.append(NewEntry {
        technician: "ana".into(),
        site: "St. Mary".into(),
        event: examples::outcome(
            intent.seq,
            device,
            "acme-infusion-p7@2.4.0",
            StepVerdict::Applied,
        ),
    })
    .unwrap();
    assert_eq!(log.verify().unwrap().size, 29);
    let last = log.get(28).unwrap().unwrap();
    assert_eq!(last.schema, SCHEMA);
    assert!(matches!(last.read(), Ok(Reading::Typed(_))));

    // Both kinds export side by side.
    let mut csv = Vec::new();
    let records = log.records(..).unwrap();
    fieldkit_audit::export::csv(&mut csv, &[], records.iter().map(|r| (r, vec![]))).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert_eq!(
        csv.lines().count(),
        1 + 29,
        "one header and one line per entry: {csv}"
    );
    assert!(csv.contains("update_interrupted (recorded before typed records)"));
    assert!(csv.contains("acme-infusion-p7@2.4.0: applied"));
}

#[test]
fn the_fixture_key_is_the_logs_origin() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let id = Identity::laptop(&dir.path().join("keys/laptop.pem")).unwrap();
    let log = AuditLog::open(&dir.path().join("audit.db"), id).unwrap();
    assert!(log.origin().starts_with("fieldkit-laptop/"));
}
