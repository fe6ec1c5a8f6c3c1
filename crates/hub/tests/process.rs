//! The `fieldkit-hub` binary as a real process: enrol, add a manager, serve, sync, export, and
//! the hub killed in the middle of a batch (before and after its commit, and by SIGKILL), the
//! transport rule (plain HTTP off loopback only when told), the security headers a `curl -sI`
//! sees, and the memory fifty parallel sign-ins take.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use fieldkit_audit::record::examples;
use fieldkit_audit::{AuditLog, NewEntry};
use fieldkit_sync::{SyncClient, SyncConfig, SyncError};
use serde_json::Value;

const HUB: &str = env!("CARGO_BIN_EXE_fieldkit-hub");

struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(db: &str, crash: Option<&str>) -> Served {
    serve_with(db, "127.0.0.1:0", &[], crash)
}

/// Serves on `listen` with `extra` arguments; the URL is the loopback one even when the hub
/// listens on every address.
fn serve_with(db: &str, listen: &str, extra: &[&str], crash: Option<&str>) -> Served {
    let mut cmd = Command::new(HUB);
    cmd.args(["serve", "--db", db, "--listen", listen])
        .args(extra)
        .stdout(Stdio::piped());
    match crash {
        Some(c) => cmd.env("FIELDKIT_HUB_CRASH", c),
        None => cmd.env_remove("FIELDKIT_HUB_CRASH"),
    };
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .replace("://0.0.0.0:", "://127.0.0.1:");
    Served { child, url }
}

fn run(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(HUB)
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
        .write_all(stdin.unwrap_or("").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn setup(dir: &Path, entries: u64) -> (String, AuditLog) {
    let db = format!("sqlite:{}", dir.join("hub.db").display());
    let home: PathBuf = dir.join("home");
    let log = AuditLog::open_in_home(&home).unwrap();
    for i in 0..entries {
        log.append(NewEntry {
            technician: "ana".into(),
            site: "St. Mary".into(),
            event: examples::identified(examples::device(
                &format!("SN-{i}"),
                "pump",
                &[("app", "1.2.3")],
            )),
        })
        .unwrap();
    }
    let key = dir.join("laptop.pub.pem");
    std::fs::write(&key, log.identity().public_key_pem()).unwrap();
    let (ok, out, err) = run(
        &[
            "enroll-laptop",
            "--db",
            &db,
            "--name",
            "laptop-1",
            "--key",
            key.to_str().unwrap(),
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(out.contains(log.origin()), "{out}");
    (db, log)
}

/// The hub's public key, as `fieldkit-hub key` prints it for laptops to pin.
fn hub_key(db: &str) -> ed25519_dalek::VerifyingKey {
    let (ok, out, err) = run(&["key", "--db", db], None);
    assert!(ok, "{err}");
    let pem = out[out.find("-----BEGIN").unwrap()..].trim_end().to_owned() + "\n";
    fieldkit_audit::identity::parse_public_key_pem(&pem).unwrap()
}

fn client(url: &str, db: &str) -> SyncClient {
    let config = SyncConfig {
        max_batch_entries: 50,
        retries: 1,
        initial_backoff: std::time::Duration::from_millis(10),
        ..SyncConfig::default()
    };
    SyncClient::with_config(url, hub_key(db), config).unwrap()
}

fn exported(db: &str) -> Vec<Value> {
    let (ok, out, err) = run(&["export", "--db", db, "--format", "json"], None);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    v["entries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_binary_enrols_serves_syncs_and_exports_exactly_the_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (db, log) = setup(dir.path(), 120);
    let (ok, _, err) = run(
        &["add-manager", "--db", &db, "--name", "maria"],
        Some("short\n"),
    );
    assert!(!ok && err.contains("at least 8"), "{err}");
    let (ok, out, err) = run(
        &["add-manager", "--db", &db, "--name", "maria"],
        Some("s3cret-pass\n"),
    );
    assert!(ok && out.contains("added manager maria"), "{err}");
    let (ok, _, err) = run(
        &["add-manager", "--db", &db, "--name", "maria"],
        Some("s3cret-pass\n"),
    );
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = run(
        &[
            "enroll-laptop",
            "--db",
            &db,
            "--name",
            "x",
            "--key",
            "/nonexistent.pem",
        ],
        None,
    );
    assert!(!ok && err.contains("cannot read"), "{err}");
    let (ok, _, err) = run(
        &["export", "--db", "postgres://x", "--format", "json"],
        None,
    );
    assert!(!ok && err.contains("give --hub-key FILE"), "{err}");
    // The hub's key lives beside the database, 0600, not inside it.
    use std::os::unix::fs::PermissionsExt;
    for f in ["hub.db", "hub-key.pem"] {
        let mode = std::fs::metadata(dir.path().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let held: String = rusqlite::Connection::open(dir.path().join("hub.db"))
        .unwrap()
        .query_row("SELECT group_concat(key) FROM meta", [], |r| {
            r.get::<_, Option<String>>(0)
        })
        .unwrap()
        .unwrap_or_default();
    assert!(!held.contains("key"), "no key inside the database: {held}");

    let hub = serve(&db, None);
    let report = client(&hub.url, &db).sync(&log).await.unwrap();
    assert_eq!(report.acked_size, 120);
    let rows = exported(&db);
    let local = log.records(..).unwrap();
    assert_eq!(rows.len(), local.len());
    for (row, rec) in rows.iter().zip(&local) {
        assert_eq!(
            row["body"],
            rec.body.as_str(),
            "exactly the bytes the laptop hashed"
        );
        assert_eq!(row["seq"], rec.entry.seq);
    }
    let (ok, csv, _) = run(&["export", "--db", &db, "--format", "csv"], None);
    assert!(ok);
    assert_eq!(csv.lines().count(), 121);
}

/// The hub dies mid-batch (before or after its commit); a new hub process on the same
/// database and a retried sync finish the job with every entry stored exactly once.
#[tokio::test]
async fn a_hub_killed_mid_batch_loses_nothing_and_stores_nothing_twice() {
    for crash in ["before-commit", "after-commit"] {
        let dir = tempfile::tempdir().unwrap();
        let (db, log) = setup(dir.path(), 130);
        {
            let hub = serve(&db, Some(crash));
            let e = client(&hub.url, &db).sync(&log).await.unwrap_err();
            assert!(matches!(e, SyncError::Unreachable { .. }), "{crash}: {e}");
        }
        assert_eq!(
            log.acked_size().unwrap(),
            0,
            "{crash}: no receipt without a commit answer"
        );
        let hub = serve(&db, None);
        let report = client(&hub.url, &db).sync(&log).await.unwrap();
        assert_eq!(report.acked_size, 130, "{crash}");
        let rows = exported(&db);
        assert_eq!(rows.len(), 130, "{crash}");
        let mut seqs: Vec<u64> = rows.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
        seqs.dedup();
        assert_eq!(seqs, (0..130).collect::<Vec<_>>(), "{crash}");
        log.verify().unwrap();
    }
}

#[tokio::test]
async fn a_hub_killed_with_sigkill_during_a_long_sync_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (db, log) = setup(dir.path(), 600);
    let mut hub = serve(&db, None);
    let url = hub.url.clone();
    let sync = {
        let c = client(&url, &db);
        async move { c.sync(&log).await.map(|r| (r, log)) }
    };
    let task = tokio::spawn(sync);
    // Kill the hub as soon as it has acknowledged something: the sync is mid-way.
    let db_path = dir.path().join("hub.db");
    loop {
        let held: u64 = rusqlite::Connection::open(&db_path)
            .and_then(|c| c.query_row("SELECT COUNT(*) FROM checkpoints", [], |r| r.get(0)))
            .unwrap_or(0);
        if held > 0 || task.is_finished() {
            break;
        }
        tokio::task::yield_now().await;
    }
    hub.child.kill().unwrap();
    hub.child.wait().unwrap();
    let (log, first) = match task.await.unwrap() {
        Ok((r, log)) => (log, Some(r)),
        Err(e) => {
            assert!(matches!(e, SyncError::Unreachable { .. }), "{e}");
            (
                AuditLog::open_in_home(&dir.path().join("home")).unwrap(),
                None,
            )
        }
    };
    let hub = serve(&db, None);
    let report = client(&hub.url, &db).sync(&log).await.unwrap();
    assert_eq!(report.acked_size, 600, "{first:?}");
    assert_eq!(exported(&db).len(), 600);
}

/// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Fifty wrong passwords at once, each from its own loopback address and for its own name (one
/// of them a real manager), so no back-off stops any of them: every one reaches the argon2
/// queue. Before, 48 parallel attempts took a hub from 53 MB to 955 MB.
///
/// The bound is relative to the hub's own resident memory once it serves (measured here, as it
/// varies with the allocator and the build): the two argon2 working areas (19 MiB each, the
/// only memory a password check takes) plus 16 MiB for fifty connections, their request and
/// response buffers and tasks. One working area per attempt, as before, would pass it after
/// the first few attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_wrong_passwords_keep_the_hubs_memory_bounded() {
    const MIB: u64 = 1024;
    let dir = tempfile::tempdir().unwrap();
    let (db, _log) = setup(dir.path(), 1);
    let (ok, _, err) = run(
        &["add-manager", "--db", &db, "--name", "maria"],
        Some("s3cret-pass\n"),
    );
    assert!(ok, "{err}");
    let hub = serve(&db, None);
    let pid = hub.child.id();
    // The hub serving, before any password check: its baseline.
    let page = reqwest::get(format!("{}/", hub.url)).await.unwrap();
    assert_eq!(page.status(), 200);
    let baseline = status_kib(pid, "VmRSS");
    // Resets the peak (VmHWM) to the current size, so the peak read below is this attack's.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();

    let mut tasks = Vec::new();
    for i in 0..50u8 {
        let url = hub.url.clone();
        tasks.push(tokio::spawn(async move {
            let from = std::net::IpAddr::from([127, 0, 0, 2 + i]);
            let name = if i == 0 {
                "maria".to_owned()
            } else {
                format!("guess-{i}")
            };
            let resp = reqwest::Client::builder()
                .local_address(from)
                .build()
                .unwrap()
                .post(format!("{url}/api/v1/session"))
                .header("content-type", "application/json")
                .body(serde_json::json!({"name": name, "password": "wrong-password"}).to_string())
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let peak = status_kib(pid, "VmHWM");
    let checked = answers.iter().filter(|(s, _)| *s == 401).count();
    for (status, body) in &answers {
        match status {
            401 => assert!(body.contains("wrong password"), "{body}"),
            503 => assert!(body.contains("other sign-ins"), "{body}"),
            _ => panic!("{status} {body}"),
        }
    }
    assert!(
        checked >= fieldkit_hub::auth::ARGON2_QUEUE,
        "every attempt that found room in the queue was checked: {answers:?}"
    );
    let areas = fieldkit_hub::auth::ARGON2_PARALLEL as u64 * 19 * MIB;
    let bound = baseline + areas + 16 * MIB;
    eprintln!(
        "hub RSS: baseline {} MiB, peak {} MiB during 50 parallel sign-ins ({checked} checked), bound {} MiB",
        baseline / MIB,
        peak / MIB,
        bound / MIB
    );
    assert!(
        peak <= bound,
        "peak RSS {} MiB above {} MiB (baseline {} MiB + two argon2 areas + 16 MiB)",
        peak / MIB,
        bound / MIB,
        baseline / MIB
    );
    // And the hub still answers a right password.
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/session", hub.url))
        .header("content-type", "application/json")
        .body(serde_json::json!({"name": "maria", "password": "s3cret-pass"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// The headers `curl -sI URL` shows, from a HEAD request to the real binary.
async fn head(url: &str, client: &reqwest::Client) -> reqwest::header::HeaderMap {
    let resp = client.head(url).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    let headers = resp.headers().clone();
    assert_eq!(resp.bytes().await.unwrap().len(), 0, "HEAD has no body");
    headers
}

fn assert_security_headers(h: &reqwest::header::HeaderMap, what: &str) {
    assert_eq!(
        h["content-security-policy"],
        fieldkit_hub::api::CSP,
        "{what}"
    );
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
    ] {
        assert_eq!(h[name], value, "{what}: {name}");
    }
    assert!(
        h["permissions-policy"]
            .to_str()
            .unwrap()
            .contains("camera=()"),
        "{what}"
    );
}

/// `curl -sI` of the dashboard, on loopback HTTP and over TLS: every security header, and HSTS
/// only where the hub speaks TLS.
#[tokio::test]
async fn the_dashboard_answers_curl_i_with_the_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _log) = setup(dir.path(), 1);
    let hub = serve(&db, None);
    let plain = reqwest::Client::new();
    for page in ["/", "/app.js", "/style.css", "/api/v1/hub"] {
        let h = head(&format!("{}{page}", hub.url), &plain).await;
        assert_security_headers(&h, page);
        assert!(h.get("strict-transport-security").is_none(), "{page}");
    }
    assert!(
        head(&format!("{}/", hub.url), &plain).await["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );

    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (c, k) = (dir.path().join("hub.crt"), dir.path().join("hub.key"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    let tls = serve_with(
        &db,
        "127.0.0.1:0",
        &[
            "--tls-cert",
            c.to_str().unwrap(),
            "--tls-key",
            k.to_str().unwrap(),
        ],
        None,
    );
    assert!(tls.url.starts_with("https://"), "{}", tls.url);
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let h = head(&format!("{}/", tls.url), &client).await;
    assert_security_headers(&h, "/ over TLS");
    assert_eq!(h["strict-transport-security"], "max-age=31536000");
}

/// Plain HTTP on a network address: refused at start with the reason and the ways out; with
/// `--insecure-http` the hub serves, says so to every client, and the dashboard carries the
/// warning.
#[tokio::test]
async fn plain_http_off_loopback_needs_insecure_http_and_then_the_dashboard_warns() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _log) = setup(dir.path(), 1);
    let (ok, out, err) = run(&["serve", "--db", &db, "--listen", "0.0.0.0:0"], None);
    assert!(!ok, "{out}");
    assert!(
        err.starts_with("fieldkit-hub: refusing plain HTTP on 0.0.0.0:"),
        "{err}"
    );
    for way_out in [
        "--tls-cert and --tls-key",
        "a loopback address",
        "--insecure-http",
    ] {
        assert!(err.contains(way_out), "{err}");
    }
    assert!(!out.contains("listening"), "nothing was served: {out}");

    let hub = serve_with(&db, "0.0.0.0:0", &["--insecure-http"], None);
    let info: Value = reqwest::get(format!("{}/api/v1/hub", hub.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["transport"], "insecure-http", "{info}");
    let page = reqwest::get(format!("{}/", hub.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(r#"id="insecure""#) && page.contains("--insecure-http"),
        "the warning is on the page (shown when the hub says insecure-http)"
    );
    let h = head(&format!("{}/", hub.url), &reqwest::Client::new()).await;
    assert_security_headers(&h, "insecure /");
}
