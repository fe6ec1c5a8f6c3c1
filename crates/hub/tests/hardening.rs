//! The hub and the sync client against a hostile network (DESIGN.md §14, "Hub"): password
//! guessing serially and in parallel, login CSRF, missing security headers, a rogue hub or a
//! hub impersonated in the middle, huge bodies from a hub, TLS. Each attack is refused, says
//! why, and loses nothing.

mod support;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use fieldkit_hub::auth::{self, ACCOUNT_FREE_FAILURES, ManualClock};
use fieldkit_hub::serve::{Listener, ServeOptions};
use fieldkit_sync::proto::{APPEND_PATH, HUB_INFO_PATH, HubInfo, Transport};
use fieldkit_sync::{SyncClient, SyncConfig, SyncError};
use serde_json::{Value, json};
use support::{Backend, TestHub, add, hub_identity, laptop};

async fn sign_in(url: &str, name: &str, password: &str) -> (u16, Option<String>, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{url}/api/v1/session"))
        .header("content-type", "application/json")
        .header("origin", url)
        .body(json!({"name": name, "password": password}).to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, resp.json().await.unwrap_or(Value::Null))
}

async fn guarded_hub() -> (TestHub, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::default());
    let c = clock.clone();
    let hub = TestHub::start_with(Backend::Sqlite, move |s| {
        fieldkit_hub::AppState::with_clock(s.store.clone(), (*s.hub).clone(), c)
    })
    .await;
    hub.store
        .add_manager("maria", &auth::hash_password("s3cret-pass").unwrap())
        .await
        .unwrap();
    (hub, clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_wrong_passwords_in_a_row_meet_a_growing_back_off_and_lose_nothing() {
    let (hub, clock) = guarded_hub().await;
    let mut answers = Vec::new();
    for i in 0..50 {
        answers.push(sign_in(&hub.url, "maria", &format!("guess-{i}")).await);
    }
    let wrong = answers.iter().filter(|a| a.0 == 401).count();
    assert_eq!(
        wrong, ACCOUNT_FREE_FAILURES as usize,
        "only the free attempts are checked"
    );
    let (status, retry, body) = &answers[ACCOUNT_FREE_FAILURES as usize];
    assert_eq!((*status, retry.as_deref()), (429, Some("1")));
    assert_eq!(body["kind"], "too_many_attempts");
    assert_eq!(
        body["message"],
        "too many failed sign-ins for manager \"maria\": try again in 1 s"
    );
    assert!(answers[5..].iter().all(|a| a.0 == 429));
    assert_eq!(hub.state.guard.checks(), ACCOUNT_FREE_FAILURES as u64);
    // Even the right password waits out the back-off; then it works, and clears it.
    assert_eq!(sign_in(&hub.url, "maria", "s3cret-pass").await.0, 429);
    clock.advance_ms(1000);
    assert_eq!(sign_in(&hub.url, "maria", "s3cret-pass").await.0, 200);
    assert_eq!(sign_in(&hub.url, "maria", "wrong").await.0, 401);
    // Each failure after the free ones doubles the wait.
    for _ in 0..4 {
        sign_in(&hub.url, "maria", "wrong").await;
    }
    let (_, retry, _) = sign_in(&hub.url, "maria", "wrong").await;
    assert_eq!(retry.as_deref(), Some("1"));
    clock.advance_ms(1000);
    assert_eq!(sign_in(&hub.url, "maria", "wrong").await.0, 401);
    let (_, retry, _) = sign_in(&hub.url, "maria", "wrong").await;
    assert_eq!(retry.as_deref(), Some("2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_guesses_buy_no_more_tries_than_serial_ones() {
    let (hub, _clock) = guarded_hub().await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let url = hub.url.clone();
        tasks.push(tokio::spawn(async move {
            sign_in(&url, "maria", &format!("guess-{i}")).await.0
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|&&s| s == 401).count(),
        ACCOUNT_FREE_FAILURES as usize,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|&s| s == 401 || s == 429),
        "{statuses:?}"
    );
    assert_eq!(hub.state.guard.checks(), ACCOUNT_FREE_FAILURES as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_cost_the_same_check_and_get_the_same_answer() {
    let (hub, _clock) = guarded_hub().await;
    let known = sign_in(&hub.url, "maria", "wrong-password").await;
    assert_eq!(hub.state.guard.checks(), 1);
    let unknown = sign_in(&hub.url, "nobody", "wrong-password").await;
    assert_eq!(
        hub.state.guard.checks(),
        2,
        "an unknown name runs argon2 too"
    );
    assert_eq!((known.0, &known.2), (unknown.0, &unknown.2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_takes_json_from_the_dashboards_own_origin_only() {
    let (hub, _clock) = guarded_hub().await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/session", hub.url);
    let body = json!({"name": "maria", "password": "s3cret-pass"}).to_string();
    // A form on another site (login CSRF): not JSON, other origin.
    /// What the attacker sends (headers), the status and the reason required.
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "a form post",
            vec![("content-type", "application/x-www-form-urlencoded".into())],
            415,
            "required application/json",
        ),
        (
            "text/plain (no preflight)",
            vec![("content-type", "text/plain".into())],
            415,
            "required application/json",
        ),
        (
            "JSON from another origin",
            vec![
                ("content-type", "application/json".into()),
                ("origin", "https://evil.example".into()),
            ],
            403,
            "request from origin \"https://evil.example\" refused",
        ),
        (
            "JSON from a cross-site fetch",
            vec![
                ("content-type", "application/json".into()),
                ("sec-fetch-site", "cross-site".into()),
            ],
            403,
            "sec-fetch-site: cross-site",
        ),
        (
            "an opaque origin",
            vec![
                ("content-type", "application/json".into()),
                ("origin", "null".into()),
            ],
            403,
            "refused",
        ),
    ];
    for (name, headers, status, says) in cases {
        let mut r = http.post(&url).body(body.clone());
        for (k, v) in headers {
            r = r.header(k, v);
        }
        let resp = r.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{name}");
        assert!(
            resp.headers().get("set-cookie").is_none(),
            "{name}: no session"
        );
        let v: Value = resp.json().await.unwrap();
        assert!(v["message"].as_str().unwrap().contains(says), "{name}: {v}");
    }
    assert_eq!(
        hub.state.guard.checks(),
        0,
        "none of them reached a password check"
    );
    // Sign-out from another origin is refused too.
    let resp = http
        .delete(&url)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // The dashboard itself (same origin, JSON) signs in, with a Secure, HttpOnly,
    // SameSite=Strict cookie.
    let resp = http
        .post(&url)
        .header("content-type", "application/json")
        .header("origin", &hub.url)
        .header("sec-fetch-site", "same-origin")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(cookie.contains(attr), "{attr}: {cookie}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers() {
    let hub = TestHub::start(Backend::Sqlite).await;
    let http = reqwest::Client::new();
    let requests = [
        http.get(format!("{}/", hub.url)),
        http.get(format!("{}/app.js", hub.url)),
        http.get(format!("{}/style.css", hub.url)),
        http.get(format!("{}{HUB_INFO_PATH}", hub.url)),
        http.get(format!("{}/api/v1/entries", hub.url)),
        http.get(format!("{}/nope", hub.url)),
        http.post(format!("{}{APPEND_PATH}", hub.url))
            .body("garbage"),
        http.post(format!("{}/api/v1/session", hub.url)).body("{}"),
    ];
    for r in requests {
        let resp = r.send().await.unwrap();
        let h = resp.headers();
        let path = resp.url().path().to_owned();
        let csp = h["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("cache-control", "no-store"),
            ("referrer-policy", "no-referrer"),
            ("cross-origin-opener-policy", "same-origin"),
        ] {
            assert_eq!(h[name], value, "{path}: {name}");
        }
        assert!(
            h.get("strict-transport-security").is_none(),
            "not over plain HTTP"
        );
    }
}

/// A certificate authority and a certificate for 127.0.0.1 it issued, as PEM files.
fn tls_files(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "fieldkit test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let (c, k) = (dir.join("hub.crt"), dir.join("hub.key"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k, ca_cert.pem().into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_speaks_tls_and_the_laptop_syncs_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = tls_files(dir.path());
    let store =
        fieldkit_hub::open_store(&format!("sqlite:{}", dir.path().join("hub.db").display()))
            .await
            .unwrap();
    let hub = hub_identity(201);
    let opts = ServeOptions {
        tls_cert: Some(cert),
        tls_key: Some(key.clone()),
        insecure_http: false,
    };
    let listener = Listener::bind("127.0.0.1:0", &opts).unwrap();
    let url = listener.url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let state = fieldkit_hub::AppState::new(store.clone(), hub.clone());
    tokio::spawn(listener.serve(state, std::future::pending()));
    let l = laptop(60);
    store
        .enroll_laptop("l", &l.log.identity().public_key())
        .await
        .unwrap();
    add(&l.log, 12);
    // Without the CA the laptop refuses the hub's certificate, and sends nothing.
    let e = SyncClient::new(&url, hub.public_key())
        .unwrap()
        .sync(&l.log)
        .await
        .unwrap_err();
    assert!(matches!(e, SyncError::Unreachable { .. }), "{e}");
    let config = SyncConfig {
        extra_roots_pem: vec![ca],
        ..SyncConfig::default()
    };
    let info = fieldkit_sync::fetch_hub_info(&url, &config).await.unwrap();
    assert_eq!(info.transport, Transport::Tls);
    let report = SyncClient::with_config(&url, hub.public_key(), config)
        .unwrap()
        .sync(&l.log)
        .await
        .unwrap();
    assert_eq!(report.acked_size, 12);
    let resp = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
        .get(format!("{url}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    // A key that does not match the certificate is refused at start, naming the file.
    std::fs::write(&key, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let e = Listener::bind("127.0.0.1:0", &opts).err().unwrap();
    assert!(
        e.to_string().contains("does not match the certificate"),
        "{e}"
    );
}

/// A fake hub whose append answers are whatever `append` returns.
async fn fake_hub(info: HubInfo, append: Router) -> String {
    let app = Router::new()
        .route(
            HUB_INFO_PATH,
            get(move || {
                let info = info.clone();
                async move { axum::Json(info) }
            }),
        )
        .merge(append);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn info_of(id: &fieldkit_audit::Identity) -> HubInfo {
    HubInfo {
        name: id.name().into(),
        key_id: id.key_id(),
        public_key: id.public_key_pem(),
        transport: Transport::LoopbackHttp,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_signed_by_another_key_is_refused_naming_both_keys() {
    // Someone in the middle answers the identity question with the pinned hub's key, and
    // relays the batch to a hub of its own, whose receipt it passes back.
    let pinned = hub_identity(210);
    let rogue = TestHub::start(Backend::Sqlite).await;
    let l = laptop(61);
    rogue.enroll(&l, "victim").await;
    add(&l.log, 4);
    let upstream = rogue.url.clone();
    let relay = Router::new().route(
        APPEND_PATH,
        post(move |body: axum::body::Bytes| {
            let upstream = upstream.clone();
            async move {
                let resp = reqwest::Client::new()
                    .post(format!("{upstream}{APPEND_PATH}"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                resp.bytes().await.unwrap().to_vec()
            }
        }),
    );
    let url = fake_hub(info_of(&pinned), relay).await;
    let e = SyncClient::new(&url, pinned.public_key())
        .unwrap()
        .sync(&l.log)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains(&format!(
            "presents key {}, but this laptop pinned hub key {}",
            rogue.hub.name(),
            pinned.name()
        )),
        "{e}"
    );
    assert_eq!(
        l.log.acked_size().unwrap(),
        0,
        "nothing counts as acknowledged"
    );
    assert!(l.log.latest_receipt().unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_body_from_a_hub_is_not_read_and_loses_nothing() {
    let pinned = hub_identity(211);
    const HUGE: usize = 200 * 1024 * 1024;
    let l = laptop(62);
    add(&l.log, 3);
    // Error bodies, announced (content-length) and streamed (chunked), and a huge 200.
    for (status, chunked) in [(400u16, false), (400, true), (200, true)] {
        let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = sent.clone();
        let app = Router::new().route(
            APPEND_PATH,
            post(move || {
                let counter = counter.clone();
                async move {
                    let status = axum::http::StatusCode::from_u16(status).unwrap();
                    if chunked {
                        let chunk = bytes_of(1024 * 1024);
                        let stream = futures_stream(chunk, HUGE / (1024 * 1024), counter);
                        (status, axum::body::Body::from_stream(stream))
                    } else {
                        counter.fetch_add(HUGE, std::sync::atomic::Ordering::SeqCst);
                        (status, axum::body::Body::from(vec![b'x'; HUGE]))
                    }
                }
            }),
        );
        let url = fake_hub(info_of(&pinned), app).await;
        let e = SyncClient::new(&url, pinned.public_key())
            .unwrap()
            .sync(&l.log)
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("at most 65536 are read"),
            "{status} chunked={chunked}: {text}"
        );
        assert!(text.len() < 400, "a short error line: {} bytes", text.len());
        if chunked {
            let read = sent.load(std::sync::atomic::Ordering::SeqCst);
            assert!(
                read < HUGE / 4,
                "the client stopped reading early: {read} bytes produced"
            );
        }
        assert_eq!(l.log.acked_size().unwrap(), 0);
    }
    l.log.verify().unwrap();
}

fn bytes_of(n: usize) -> axum::body::Bytes {
    axum::body::Bytes::from(vec![b'{'; n])
}

/// A stream of `count` copies of `chunk`, counting what it produced.
fn futures_stream(
    chunk: axum::body::Bytes,
    count: usize,
    produced: Arc<std::sync::atomic::AtomicUsize>,
) -> impl futures_util::Stream<Item = Result<axum::body::Bytes, std::io::Error>> + Send {
    futures_util::stream::unfold(0, move |i| {
        let (chunk, produced) = (chunk.clone(), produced.clone());
        async move {
            if i == count {
                return None;
            }
            produced.fetch_add(chunk.len(), std::sync::atomic::Ordering::SeqCst);
            Some((Ok(chunk), i + 1))
        }
    })
}
