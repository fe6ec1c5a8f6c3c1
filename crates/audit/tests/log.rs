//! The local log: appends, reads, checkpoints, receipts, intents, and every way of tampering
//! with the file that `verify` must name.

use std::path::{Path, PathBuf};

use fieldkit_audit::identity::HUB_PREFIX;
use fieldkit_audit::record::{CheckVerdict, StepVerdict, examples};
use fieldkit_audit::{
    AppendError, AuditLog, CheckpointError, EntryProblem, Identity, NewEntry, OpenError,
    ReceiptError, SignedCheckpoint, VerifyError, events,
};

struct Fixture {
    _dir: tempfile::TempDir,
    db: PathBuf,
    key: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("audit.db");
        let key = dir.path().join("keys/laptop.pem");
        Self { _dir: dir, db, key }
    }
    fn open(&self) -> AuditLog {
        AuditLog::open(&self.db, Identity::laptop(&self.key).unwrap()).unwrap()
    }
    /// A raw connection with the append-only triggers dropped, as a tamperer would have.
    fn raw(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(&self.db).unwrap();
        let names: Vec<String> = c
            .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for n in names {
            c.execute_batch(&format!("DROP TRIGGER {n}")).unwrap();
        }
        c
    }
}

fn entry(event: &str, serial: &str) -> NewEntry {
    let device = examples::device(serial, "pump", &[("app", "1.2.3")]);
    let event = match event {
        events::DEVICE_IDENTIFIED => examples::identified(device),
        events::UPDATE_STARTED => examples::intent(device, "pump@1.3.0"),
        events::CHECK_REFUSED => {
            examples::check(device, CheckVerdict::Refused, ("r", "found", "required"))
        }
        other => panic!("no example for {other}"),
    };
    NewEntry {
        technician: "ana".into(),
        site: "St. Mary, ward 4".into(),
        event,
    }
}

fn filled(n: u64) -> (Fixture, AuditLog) {
    let f = Fixture::new();
    let log = f.open();
    for i in 0..n {
        log.append(entry(events::DEVICE_IDENTIFIED, &format!("SN-{i}")))
            .unwrap();
    }
    (f, log)
}

#[test]
fn append_chains_entries_and_reads_them_back() {
    let (_f, log) = filled(5);
    let entries = log.entries(..).unwrap();
    assert_eq!(entries.len(), 5);
    let records = log.records(..).unwrap();
    assert_eq!(records[0].entry.prev, "0".repeat(64));
    for w in records.windows(2) {
        assert_eq!(w[1].entry.prev, hex::encode(w[0].leaf));
        assert_eq!(w[1].entry.seq, w[0].entry.seq + 1);
    }
    assert_eq!(log.get(3).unwrap().unwrap().device["serial"], "SN-3");
    assert_eq!(log.get(5).unwrap(), None);
    assert_eq!(log.entries(1..3).unwrap().len(), 2);
    assert_eq!(log.entries(4..).unwrap().len(), 1);
    assert!(entries.iter().all(|e| e.origin == log.origin()));
    let report = log.verify().unwrap();
    assert_eq!(report.size, 5);
}

#[test]
fn checkpoint_is_a_c2sp_signed_note_of_the_root() {
    let (_f, log) = filled(3);
    let cp = log.checkpoint().unwrap();
    let text = cp.as_str();
    let lines: Vec<&str> = text.split('\n').collect();
    // origin, size, base64 root, blank line, one signature line, and the final newline.
    assert_eq!(lines.len(), 6, "{text}");
    assert_eq!(lines[0], log.origin());
    assert_eq!(lines[1], "3");
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    assert_eq!(b64.decode(lines[2]).unwrap(), log.root_at(3).unwrap());
    assert_eq!(lines[3], "");
    let sig = lines[4].strip_prefix("— ").unwrap();
    let (name, sig) = sig.split_once(' ').unwrap();
    assert_eq!(name, log.origin());
    let sig = b64.decode(sig).unwrap();
    assert_eq!(sig.len(), 4 + 64, "key hash then Ed25519 signature");
    // The key hash is SHA-256(name || 0x0A || 0x01 || public key)[:4] (C2SP signed-note).
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', 0x01]);
    h.update(log.identity().public_key().as_bytes());
    assert_eq!(&sig[..4], &h.finalize()[..4]);
    // And the signature is over the note text, verifiable with the plain Ed25519 key.
    let body = format!("{}\n{}\n{}\n", lines[0], lines[1], lines[2]);
    let sig = ed25519_dalek::Signature::from_slice(&sig[4..]).unwrap();
    use ed25519_dalek::Verifier;
    log.identity()
        .public_key()
        .verify(body.as_bytes(), &sig)
        .unwrap();
    cp.verify_signer(log.origin(), &log.identity().public_key())
        .unwrap();
    assert_eq!(log.verify().unwrap().checkpoints, 1);
}

#[test]
fn checkpoint_parse_rejects_malformed_and_hostile_notes() {
    let (_f, log) = filled(2);
    let good = log.checkpoint().unwrap().as_str().to_owned();
    let other = Identity::from_key("x", ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
    let forged = good.replace(&good[good.find("— ").unwrap()..], "");
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("no signature block", "a\n1\nAAAA\n".into()),
        ("truncated", good[..good.len() / 2].into()),
        ("oversized", "x".repeat(100_000)),
        ("control character", good.replacen('\n', "\r", 1)),
        ("bad size", good.replacen("\n2\n", "\n-2\n", 1)),
        (
            "bad root",
            good.replacen(&good.lines().nth(2).unwrap().to_string(), "!!!", 1),
        ),
        ("forged empty sig block", forged),
    ];
    for (name, text) in cases {
        assert!(SignedCheckpoint::parse(&text).is_err(), "{name} parsed");
    }
    let cp = SignedCheckpoint::parse(&good).unwrap();
    assert_eq!(
        cp.verify_signer(other.name(), &other.public_key()),
        Err(CheckpointError::MissingSignature {
            name: other.name().into()
        })
    );
    // A note whose text was changed after signing fails its signature.
    let tampered = good.replacen("\n2\n", "\n3\n", 1);
    let cp = SignedCheckpoint::parse(&tampered).unwrap();
    assert_eq!(
        cp.verify_signer(log.origin(), &log.identity().public_key()),
        Err(CheckpointError::BadSignature {
            name: log.origin().into()
        })
    );
}

#[test]
fn triggers_refuse_update_and_delete() {
    let (f, log) = filled(2);
    // Every table needs a row: row triggers do not fire on empty tables.
    let hub = Identity::from_key(HUB_PREFIX, ed25519_dalek::SigningKey::from_bytes(&[3; 32]));
    let receipt = log.checkpoint().unwrap().cosign(&hub).unwrap();
    log.store_receipt(&receipt, hub.name(), &hub.public_key())
        .unwrap();
    let c = rusqlite::Connection::open(&f.db).unwrap();
    for sql in [
        "UPDATE entries SET body = 'x' WHERE seq = 0",
        "DELETE FROM entries WHERE seq = 1",
        "DELETE FROM tree_hashes",
        "UPDATE meta SET value = 'someone-else'",
        "DELETE FROM checkpoints",
        "UPDATE receipts SET size = 0",
    ] {
        let err = c.execute_batch(sql).unwrap_err().to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
}

#[test]
fn append_refuses_oversized_entries() {
    let (_f, log) = filled(0);
    let big = NewEntry {
        event: examples::check(
            examples::device("SN", "pump", &[]),
            CheckVerdict::Refused,
            ("r", &"x".repeat(70_000), "less"),
        ),
        ..entry(events::CHECK_REFUSED, "SN")
    };
    let e = log.append(big).unwrap_err();
    assert!(matches!(e, AppendError::TooLarge { max: 65536, .. }), "{e}");
    assert_eq!(log.size().unwrap(), 0, "a refused append writes nothing");
}

#[test]
fn a_log_opened_with_another_laptops_key_is_refused() {
    let (f, log) = filled(1);
    drop(log);
    let other = Identity::from_key(
        "fieldkit-laptop",
        ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
    );
    let e = AuditLog::open(&f.db, other).unwrap_err();
    assert!(matches!(e, OpenError::NotThisLaptop { .. }), "{e}");
}

#[test]
fn laptop_key_is_pkcs8_pem_generated_once_and_readable_by_openssl() {
    let f = Fixture::new();
    let a = Identity::laptop(&f.key).unwrap();
    let b = Identity::laptop(&f.key).unwrap();
    assert_eq!(a.public_key(), b.public_key());
    let pem = std::fs::read_to_string(&f.key).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    let out = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&f.key)
        .output();
    // OpenSSL interoperability (DESIGN.md §2.6), where openssl is installed.
    if let Ok(out) = out {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8(out.stdout).unwrap(), a.public_key_pem());
    }
    assert!(a.name().starts_with("fieldkit-laptop/"));
    assert_eq!(&a.name()["fieldkit-laptop/".len()..], &a.key_id()[..16]);
    let e = Identity::from_pem(Path::new("x.pem"), "garbage", "p").unwrap_err();
    assert!(e.to_string().contains("PKCS#8 PEM"), "{e}");
}

#[test]
fn receipts_are_checked_before_they_are_stored() {
    let (_f, log) = filled(4);
    let hub = Identity::from_key(HUB_PREFIX, ed25519_dalek::SigningKey::from_bytes(&[3; 32]));
    let cp = log.checkpoint_at(3).unwrap();
    let receipt = cp.cosign(&hub).unwrap();
    let stored = log
        .store_receipt(&receipt, hub.name(), &hub.public_key())
        .unwrap();
    assert_eq!(stored.size, 3);
    assert_eq!(log.acked_size().unwrap(), 3);
    assert_eq!(log.latest_receipt().unwrap().unwrap().checkpoint, receipt);

    // Not cosigned by the hub.
    let e = log
        .store_receipt(&cp, hub.name(), &hub.public_key())
        .unwrap_err();
    assert!(
        matches!(
            e,
            ReceiptError::Signature(CheckpointError::MissingSignature { .. })
        ),
        "{e}"
    );
    // A receipt for another log.
    let (_g, other) = filled(4);
    let foreign = other.checkpoint_at(3).unwrap().cosign(&hub).unwrap();
    let e = log
        .store_receipt(&foreign, hub.name(), &hub.public_key())
        .unwrap_err();
    assert!(matches!(e, ReceiptError::WrongOrigin { .. }), "{e}");
    let report = log.verify().unwrap();
    assert_eq!((report.receipts, report.acked_size), (1, 3));
}

#[test]
fn an_intent_of_a_live_process_stays_pending_and_a_dead_ones_is_interrupted() {
    let f = Fixture::new();
    let log = f.open();
    let intent = log.append(entry(events::UPDATE_STARTED, "SN-1")).unwrap();
    drop(log);
    // Reopened by the same (live) process: still in progress, not interrupted.
    let log = f.open();
    assert_eq!(log.pending_intents().unwrap(), vec![intent.clone()]);
    log.append(NewEntry {
        event: examples::outcome(
            intent.seq,
            examples::device("SN-1", "pump", &[("app", "1.3.0")]),
            "pump@1.3.0",
            StepVerdict::Applied,
        ),
        ..entry(events::DEVICE_IDENTIFIED, "SN-1")
    })
    .unwrap();
    assert!(log.pending_intents().unwrap().is_empty());
    drop(log);

    // Written by a process that then died without an outcome.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fieldkit-audit-torture"))
        .args([&f.db, &f.key])
        .arg("intent")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = f.open();
    assert!(log.pending_intents().unwrap().is_empty());
    let last = log.get(log.size().unwrap() - 1).unwrap().unwrap();
    assert_eq!(last.event, events::UPDATE_INTERRUPTED);
    assert_eq!(last.intent_seq(), Some(2));
    assert_eq!(last.device["serial"], "SN-1");
    assert!(
        last.details["reason"].as_str().unwrap().contains("stopped"),
        "{last:?}"
    );
    log.verify().unwrap();
}

/// One tampering, applied with triggers dropped, and what `verify` must say.
fn check(
    name: &str,
    n: u64,
    checkpoint_at: Option<u64>,
    sql: &str,
    want: fn(&VerifyError) -> bool,
) {
    let (f, log) = filled(n);
    if let Some(s) = checkpoint_at {
        log.checkpoint_at(s).unwrap();
    }
    log.verify()
        .unwrap_or_else(|e| panic!("{name}: clean log fails: {e}"));
    f.raw()
        .execute_batch(sql)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let err = log.verify().expect_err(name);
    assert!(want(&err), "{name}: unexpected {err:?}\n{err}");
}

#[test]
fn verify_names_the_first_bad_entry() {
    use EntryProblem as P;
    use VerifyError::Entry as E;
    check(
        "edited body",
        6,
        None,
        "UPDATE entries SET body = replace(body, '\"ana\"', '\"bob\"') WHERE seq = 3",
        |e| matches!(e, E(P::Edited { seq: 3, .. })),
    );
    check(
        "edited body with recomputed leaf",
        6,
        None,
        "UPDATE entries SET body = replace(body, '\"ana\"', '\"bob\"') WHERE seq = 2;
         UPDATE entries SET leaf = (SELECT leaf FROM entries WHERE seq = 5) WHERE seq = 2",
        |e| matches!(e, E(P::Edited { seq: 2, .. })),
    );
    check(
        "deleted row",
        6,
        None,
        "DELETE FROM entries WHERE seq = 2",
        |e| {
            matches!(
                e,
                E(P::Missing {
                    missing: 2,
                    next: 3
                })
            )
        },
    );
    check(
        "reordered rows",
        6,
        None,
        "UPDATE entries SET seq = 100 WHERE seq = 1;
         UPDATE entries SET seq = 1 WHERE seq = 2;
         UPDATE entries SET seq = 2 WHERE seq = 100;",
        |e| matches!(e, E(P::SeqMismatch { seq: 1, found: 2 })),
    );
    check(
        "event column edited",
        4,
        None,
        "UPDATE entries SET event = 'update_succeeded' WHERE seq = 1",
        |e| {
            matches!(
                e,
                E(P::ColumnMismatch {
                    seq: 1,
                    column: "event",
                    ..
                })
            )
        },
    );
    check(
        "tail deleted with its tree hashes",
        6,
        Some(6),
        "DELETE FROM entries WHERE seq = 5;
         DELETE FROM tree_hashes WHERE idx >= (SELECT COUNT(*) FROM tree_hashes) - 2",
        |e| {
            matches!(
                e,
                VerifyError::TreeMismatch { .. } | VerifyError::Truncated { .. }
            )
        },
    );
    check(
        "tail deleted after a checkpoint",
        6,
        Some(6),
        "DELETE FROM entries WHERE seq = 5;
         DELETE FROM tree_hashes WHERE idx >= 8",
        |e| {
            matches!(
                e,
                VerifyError::Truncated {
                    kind: "checkpoint",
                    signed: 6,
                    size: 5
                }
            )
        },
    );
    check(
        "tree hash edited",
        5,
        None,
        "UPDATE tree_hashes SET hash = zeroblob(32) WHERE idx = 2",
        |e| matches!(e, VerifyError::TreeMismatch { index: 2, .. }),
    );
    check(
        "body changed into a non-entry",
        3,
        None,
        "UPDATE entries SET body = 'not json', leaf = (SELECT leaf FROM entries WHERE seq = 0) WHERE seq = 0",
        |e| matches!(e, E(P::Edited { seq: 0, .. })),
    );
    check("triggers removed only", 3, None, "SELECT 1", |e| {
        matches!(e, VerifyError::TriggerMissing { .. })
    });
}

#[test]
fn verify_finds_an_entry_copied_from_another_laptops_log() {
    let (f, log) = filled(3);
    let (_g, other) = filled(3);
    let foreign = other.records(2..3).unwrap().remove(0);
    let c = f.raw();
    c.execute(
        "INSERT INTO entries(seq, body, leaf, event) VALUES (3, ?1, ?2, 'device_identified')",
        rusqlite::params![foreign.body, foreign.leaf.as_slice()],
    )
    .unwrap();
    let e = log.verify().unwrap_err();
    // The copied entry says it is entry 2 of another log.
    assert!(
        matches!(
            e,
            VerifyError::Entry(EntryProblem::SeqMismatch { seq: 3, found: 2 })
        ),
        "{e}"
    );
}

#[test]
fn a_truncated_file_is_reported_as_damaged() {
    let (f, log) = filled(200);
    log.checkpoint().unwrap();
    drop(log);
    // Fold the WAL into the main file so truncating it loses committed pages.
    let c = rusqlite::Connection::open(&f.db).unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    drop(c);
    let len = std::fs::metadata(&f.db).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&f.db)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let result = AuditLog::open(&f.db, Identity::laptop(&f.key).unwrap());
    match result {
        Err(e) => assert!(matches!(e, OpenError::Corrupt { .. }), "{e}"),
        Ok(log) => {
            let e = log.verify().unwrap_err();
            assert!(matches!(e, VerifyError::Corrupt { .. }), "{e}");
        }
    }
}

#[test]
fn a_file_that_is_not_a_database_is_reported_as_damaged() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.db.parent().unwrap()).unwrap();
    std::fs::write(
        &f.db,
        b"this is not sqlite at all, just some text that goes on and on",
    )
    .unwrap();
    let e = AuditLog::open(&f.db, Identity::laptop(&f.key).unwrap()).unwrap_err();
    assert!(matches!(e, OpenError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("damaged"), "{e}");
}

/// kill -9 in the middle of appends, 20 times: the log always verifies, and every entry whose
/// append had returned (and was reported on stdout) is there with the same leaf hash.
#[test]
fn kill_9_mid_append_loses_nothing_acknowledged() {
    use std::io::BufRead;
    let f = Fixture::new();
    let mut acked: Vec<(u64, String)> = Vec::new();
    for round in 0..20u64 {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fieldkit-audit-torture"))
            .args([&f.db, &f.key])
            .arg("append")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        // Kill after a varying number of acknowledgements, so the kill lands at varying points
        // of the append cycle (between intent and outcome, mid-transaction, mid-fsync).
        let wait_for = 1 + (round * 7) % 11;
        for _ in 0..wait_for {
            let line = lines.next().unwrap().unwrap();
            let mut it = line.split(' ');
            assert_eq!(it.next(), Some("acked"));
            let seq: u64 = it.next().unwrap().parse().unwrap();
            acked.push((seq, it.next().unwrap().to_owned()));
        }
        child.kill().unwrap();
        // Lines already written but not yet read were acknowledged too.
        for line in lines.map_while(Result::ok) {
            let mut it = line.split(' ');
            if it.next() == Some("acked") {
                let seq: u64 = it.next().unwrap().parse().unwrap();
                acked.push((seq, it.next().unwrap().to_owned()));
            }
        }
        child.wait().unwrap();

        let log = f.open();
        let report = log
            .verify()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(log.pending_intents().unwrap().is_empty(), "round {round}");
        let records = log.records(..).unwrap();
        for (seq, leaf) in &acked {
            let r = &records[*seq as usize];
            assert_eq!(
                &hex::encode(r.leaf),
                leaf,
                "round {round}: entry {seq} changed"
            );
        }
        assert!(report.size >= acked.len() as u64);
    }
    // Some kills landed between an intent and its outcome, and were recorded as interruptions.
    let log = f.open();
    let interrupted = log
        .entries(..)
        .unwrap()
        .iter()
        .filter(|e| e.event == events::UPDATE_INTERRUPTED)
        .count();
    let started = log
        .entries(..)
        .unwrap()
        .iter()
        .filter(|e| e.is_intent())
        .count();
    let closed = log
        .entries(..)
        .unwrap()
        .iter()
        .filter(|e| e.intent_seq().is_some())
        .count();
    assert_eq!(started, closed, "every intent has exactly one outcome");
    assert!(interrupted <= 20);
}
