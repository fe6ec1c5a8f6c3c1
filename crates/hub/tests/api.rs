//! The managers' API, in process (`oneshot`): sign-in, sessions, filters, inventory, exports.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use fieldkit_audit::identity::LAPTOP_PREFIX;
use fieldkit_audit::{AuditLog, Identity, NewEntry};
use fieldkit_hub::store::EntryFilter;
use fieldkit_hub::{AppState, SqliteStore, Store, auth, router};
use fieldkit_sync::proto::{APPEND_PATH, AppendRequest};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

struct Fixture {
    app: axum::Router,
    store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

fn entry(tech: &str, site: &str, serial: &str, event: &str, app: &str) -> NewEntry {
    NewEntry {
        technician: tech.into(),
        site: site.into(),
        device: json!({"serial": serial, "model": "infusion-pump", "firmware": {"app": app, "net": "0.9.1"}}),
        event: event.into(),
        details: json!({}),
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("hub.db")).unwrap());
    store
        .add_manager("maria", &auth::hash_password("s3cret-pass").unwrap())
        .unwrap();
    let id = Identity::from_key(
        LAPTOP_PREFIX,
        ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
    );
    store.enroll_laptop("laptop-1", &id.public_key()).unwrap();
    let log = AuditLog::open(&dir.path().join("audit.db"), id).unwrap();
    for e in [
        entry("ana", "St. Mary", "SN-1", "device_identified", "1.2.3"),
        entry("ana", "St. Mary", "SN-1", "update_started", "1.2.3"),
        entry("ana", "St. Mary", "SN-1", "update_succeeded", "1.3.0"),
        entry("bo", "Central", "SN-2", "device_identified", "1.2.3"),
        entry("bo", "Central", "SN-2", "check_refused", "1.2.3"),
        entry("bo", "Central", "SN-3", "update_started", "1.2.3"),
    ] {
        let mut e = e;
        if e.event == "update_succeeded" {
            // The outcome names its intent (entry 1), as AuditLog::append_outcome writes it.
            e.details = json!({"intent_seq": 1});
        }
        log.append(e).unwrap();
    }
    let app = router(AppState::new(store.clone()));
    let req = AppendRequest {
        origin: log.origin().into(),
        old_size: 0,
        entries: log
            .records(..)
            .unwrap()
            .into_iter()
            .map(|r| r.body)
            .collect(),
        checkpoint: log.checkpoint().unwrap().as_str().into(),
    };
    let resp = app
        .clone()
        .oneshot(post(APPEND_PATH, &serde_json::to_value(req).unwrap()))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    Fixture {
        app,
        store,
        _dir: dir,
    }
}

fn post(path: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut r = Request::get(path);
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, c);
    }
    r.body(Body::empty()).unwrap()
}

async fn body(resp: axum::response::Response) -> Vec<u8> {
    resp.into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec()
}

async fn sign_in(f: &Fixture) -> String {
    let resp = f
        .app
        .clone()
        .oneshot(post(
            "/api/v1/session",
            &json!({"name": "maria", "password": "s3cret-pass"}),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    cookie.split(';').next().unwrap().to_owned()
}

async fn get_json(f: &Fixture, path: &str, cookie: &str) -> Value {
    let resp = f
        .app
        .clone()
        .oneshot(get(path, Some(cookie)))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    serde_json::from_slice(&body(resp).await).unwrap()
}

#[tokio::test]
async fn manager_endpoints_require_a_session() {
    let f = fixture().await;
    for path in [
        "/api/v1/entries",
        "/api/v1/inventory",
        "/api/v1/laptops",
        "/api/v1/forks",
        "/api/v1/export?format=csv",
        "/api/v1/session",
    ] {
        for cookie in [None, Some("fieldkit_session=deadbeef"), Some("other=1")] {
            let resp = f.app.clone().oneshot(get(path, cookie)).await.unwrap();
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path} {cookie:?}");
            let v: Value = serde_json::from_slice(&body(resp).await).unwrap();
            assert_eq!(v["kind"], "unauthenticated");
        }
    }
    // Wrong password and unknown user get the same answer.
    for (name, pw) in [("maria", "wrong-password"), ("nobody", "s3cret-pass")] {
        let resp = f
            .app
            .clone()
            .oneshot(post(
                "/api/v1/session",
                &json!({"name": name, "password": pw}),
            ))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = f
        .app
        .clone()
        .oneshot(post("/api/v1/session", &json!({"name": 1})))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // Signing out ends the session.
    let cookie = sign_in(&f).await;
    get_json(&f, "/api/v1/session", &cookie).await;
    let out = Request::delete("/api/v1/session")
        .header(header::COOKIE, &cookie)
        .body(Body::empty())
        .unwrap();
    f.app.clone().oneshot(out).await.unwrap();
    let resp = f
        .app
        .clone()
        .oneshot(get("/api/v1/entries", Some(&cookie)))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn timeline_filters_select_exactly_the_matching_entries() {
    let f = fixture().await;
    let cookie = sign_in(&f).await;
    let cases: &[(&str, u64)] = &[
        ("", 6),
        ("technician=ana", 3),
        ("site=Central", 3),
        ("serial=SN-1", 3),
        ("model=infusion-pump", 6),
        ("model=other", 0),
        ("event=update_started", 2),
        ("outcome=succeeded", 1),
        ("outcome=refused", 1),
        ("outcome=started", 2),
        ("technician=bo&outcome=started", 1),
        ("from=2000-01-01&to=2999-12-31", 6),
        ("to=2000-01-01", 0),
        ("limit=2", 6),
    ];
    for (q, want) in cases {
        let v = get_json(&f, &format!("/api/v1/entries?{q}"), &cookie).await;
        assert_eq!(v["total"], *want, "{q}");
    }
    let v = get_json(&f, "/api/v1/entries?limit=2", &cookie).await;
    assert_eq!(v["entries"].as_array().unwrap().len(), 2);
    // The newest first, with badges: SN-3's update has no outcome yet; everything is receipt-covered.
    let v = get_json(&f, "/api/v1/entries?serial=SN-3", &cookie).await;
    let e = &v["entries"][0];
    assert_eq!(
        e["badges"],
        json!({"receipt": true, "pending": true, "fork": false, "clock": false})
    );
    let v = get_json(
        &f,
        "/api/v1/entries?serial=SN-1&event=update_started",
        &cookie,
    )
    .await;
    assert_eq!(
        v["entries"][0]["badges"]["pending"], false,
        "closed by update_succeeded"
    );
}

#[tokio::test]
async fn inventory_holds_the_latest_identity_per_serial_and_the_version_chart() {
    let f = fixture().await;
    let cookie = sign_in(&f).await;
    let v = get_json(&f, "/api/v1/inventory", &cookie).await;
    let devices = v["devices"].as_array().unwrap();
    let by_serial = |s: &str| devices.iter().find(|d| d["serial"] == s).unwrap().clone();
    assert_eq!(
        devices.len(),
        2,
        "SN-3 has only an intent, no identity read after it: {devices:?}"
    );
    assert_eq!(
        by_serial("SN-1")["firmware"],
        json!([["app", "1.3.0"], ["net", "0.9.1"]])
    );
    assert_eq!(by_serial("SN-2")["last_event"], "check_refused");
    assert_eq!(
        v["versions"],
        json!([
            {"model": "infusion-pump", "component": "app", "version": "1.2.3", "devices": 1},
            {"model": "infusion-pump", "component": "app", "version": "1.3.0", "devices": 1},
            {"model": "infusion-pump", "component": "net", "version": "0.9.1", "devices": 2},
        ])
    );
    let laptops = get_json(&f, "/api/v1/laptops", &cookie).await;
    assert_eq!(laptops[0]["size"], 6);
    assert_eq!(laptops[0]["receipt_size"], 6);
}

#[tokio::test]
async fn exports_are_csv_and_a_verifiable_json_bundle() {
    let f = fixture().await;
    let cookie = sign_in(&f).await;
    let resp = f
        .app
        .clone()
        .oneshot(get(
            "/api/v1/export?format=csv&technician=ana",
            Some(&cookie),
        ))
        .await
        .unwrap();
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "text/csv; charset=utf-8"
    );
    let csv = String::from_utf8(body(resp).await).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[0].starts_with("time,laptop,origin,seq,technician"));
    assert!(
        lines[1].contains(",0,ana,St. Mary,SN-1,infusion-pump,device_identified,info,"),
        "{}",
        lines[1]
    );

    let v = get_json(&f, "/api/v1/export?format=json", &cookie).await;
    assert_eq!(v["format"], "fieldkit-hub-export/1");
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 6);
    // Each body hashes to its leaf, and the laptop's checkpoint is there to check the root.
    let leaves: Vec<[u8; 32]> = entries
        .iter()
        .map(|e| {
            let leaf = fieldkit_audit::merkle::leaf_hash(e["body"].as_str().unwrap().as_bytes());
            assert_eq!(hex::encode(leaf), e["leaf"]);
            leaf
        })
        .collect();
    let cp = fieldkit_audit::SignedCheckpoint::parse(v["checkpoints"][0]["note"].as_str().unwrap())
        .unwrap();
    assert_eq!(cp.root(), fieldkit_audit::merkle::root_from_leaves(&leaves));

    let resp = f
        .app
        .clone()
        .oneshot(get("/api/v1/export?format=xml", Some(&cookie)))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // The library export (used by `fieldkit-hub export`) gives the same rows.
    let bytes = fieldkit_hub::export::export(
        &*f.store,
        &EntryFilter::default(),
        fieldkit_hub::export::Format::Csv,
    )
    .unwrap();
    assert_eq!(String::from_utf8(bytes).unwrap().lines().count(), 7);
}

#[tokio::test]
async fn the_dashboard_is_served_with_a_strict_content_security_policy() {
    let f = fixture().await;
    for (path, ct) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/style.css", "text/css"),
    ] {
        let resp = f.app.clone().oneshot(get(path, None)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            resp.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(ct)
        );
        assert!(
            resp.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("default-src 'self'")
        );
    }
    let resp = f.app.clone().oneshot(get("/nope", None)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}
