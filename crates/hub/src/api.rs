//! The HTTP API (axum) and the dashboard's static files.
//!
//! Laptops use one endpoint, authenticated by their signed checkpoint. Everything else is for
//! managers and requires a session cookie, except the hub's own identity (`GET /api/v1/hub`),
//! which a technician reads to confirm the key the laptop pins.
//!
//! Every response carries the security headers of [`security_headers`]. Sign-in takes JSON only
//! and refuses other origins, so no page elsewhere can sign a browser in (login CSRF); it is
//! guarded by [`crate::auth::SignInGuard`]. Query parameters are validated by
//! [`crate::rules`]: a broken rule is a 400 that names it, never a database error.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use fieldkit_audit::Identity;
use fieldkit_sync::proto::{
    APPEND_PATH, AppendRequest, HUB_INFO_PATH, HubInfo, MAX_REQUEST_BYTES, Transport, kind,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::auth::{self, Clock, MonotonicClock, SESSION_COOKIE, SESSION_SECS, SignInGuard};
use crate::error::ApiError;
use crate::export::{self, Format};
use crate::ingest::{self, Fault};
use crate::rules::{self, DeviceFilter, EntryFilter, EntryRow, InventoryRow};
use crate::store::{ForkRow, LaptopStatus, Store, VersionCount};

/// Shared state of the server.
#[derive(Clone)]
pub struct AppState {
    /// The storage backend.
    pub store: Arc<dyn Store>,
    /// The hub's signing identity (cosigns receipts).
    pub hub: Arc<Identity>,
    /// How the hub is served: decides `Secure` cookies, HSTS and the dashboard's warning.
    pub transport: Transport,
    /// The sign-in guard.
    pub guard: Arc<SignInGuard>,
    /// Fault injection for crash tests (from the environment).
    pub fault: Option<Arc<Fault>>,
    /// The post-market answers' trust material and releases, kept while unchanged.
    pub contexts: Arc<crate::postmarket::answers::ContextCache>,
}

impl AppState {
    /// State over a store and a hub key, served on loopback, with no fault injection.
    pub fn new(store: Arc<dyn Store>, hub: Identity) -> Self {
        Self::with_clock(store, hub, Arc::new(MonotonicClock::default()))
    }

    /// The same, with the sign-in guard reading `clock`.
    pub fn with_clock(store: Arc<dyn Store>, hub: Identity, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            hub: Arc::new(hub),
            transport: Transport::LoopbackHttp,
            guard: Arc::new(SignInGuard::new(clock)),
            fault: None,
            contexts: Arc::default(),
        }
    }
}

/// The router: API plus dashboard, every response with the security headers.
pub fn router(state: AppState) -> Router {
    let transport = state.transport;
    Router::new()
        .route(APPEND_PATH, post(append).layer(DefaultBodyLimit::disable()))
        .route(HUB_INFO_PATH, get(hub_info))
        .route("/api/v1/session", post(sign_in).delete(sign_out).get(me))
        .route("/api/v1/entries", get(entries))
        .route("/api/v1/inventory", get(inventory))
        .route("/api/v1/laptops", get(laptops))
        .route("/api/v1/forks", get(forks))
        .route("/api/v1/export", get(export_entries))
        .merge(crate::postmarket::api::routes())
        .route(
            "/",
            get(|| async { page("text/html; charset=utf-8", DASHBOARD_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { page("text/javascript; charset=utf-8", DASHBOARD_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { page("text/css; charset=utf-8", DASHBOARD_CSS) }),
        )
        .fallback(|| async {
            ApiError::new(404, kind::NOT_FOUND, "no such page or endpoint".into())
        })
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::map_response(
            move |resp: Response| async move { security_headers(resp, transport) },
        ))
        .with_state(state)
}

/// The Content-Security-Policy of every response: only the hub's own scripts, styles and
/// requests; no framing (clickjacking); no plugins; forms post only to the hub.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Adds the security headers to a response.
pub fn security_headers(mut resp: Response, transport: Transport) -> Response {
    let h = resp.headers_mut();
    let mut set = |name: header::HeaderName, value: &'static str| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(header::CONTENT_SECURITY_POLICY, CSP);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::CACHE_CONTROL, "no-store");
    set(header::REFERRER_POLICY, "no-referrer");
    set(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    set(
        header::HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), usb=(), serial=()",
    );
    if transport == Transport::Tls {
        set(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
    resp
}

const DASHBOARD_HTML: &str = include_str!("../dashboard/index.html");
const DASHBOARD_JS: &str = include_str!("../dashboard/app.js");
const DASHBOARD_CSS: &str = include_str!("../dashboard/style.css");

fn page(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn append(State(state): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_REQUEST_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                413,
                kind::TOO_LARGE,
                format!("request body exceeds {MAX_REQUEST_BYTES} bytes"),
            )
        })?;
    let req: AppendRequest = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            400,
            kind::BAD_REQUEST,
            format!("request is not an append request: {e}"),
        )
    })?;
    // The append runs as a task of its own: a client that hangs up does not cut a
    // transaction short, it only misses the answer (and its retry gets the receipt).
    let task = tokio::spawn(async move {
        ingest::append(state.store.clone(), &state.hub, req, state.fault.as_deref()).await
    });
    let resp = task
        .await
        .map_err(|e| ApiError::internal(format!("append task failed: {e}")))??;
    Ok(Json(resp).into_response())
}

async fn hub_info(State(state): State<AppState>) -> Json<HubInfo> {
    Json(HubInfo {
        name: state.hub.name().to_owned(),
        key_id: state.hub.key_id(),
        public_key: state.hub.public_key_pem(),
        transport: state.transport,
    })
}

/// Query parameters, with a rejection that says what was wrong in the API's own words.
pub struct Q<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| Self(q.0))
            .map_err(|e| ApiError::new(400, kind::BAD_REQUEST, e.body_text()))
    }
}

/// The client's address (the TCP peer; proxies' headers are not trusted).
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip()),
        ))
    }
}

/// A signed-in manager, from the session cookie.
pub struct Manager(pub String);

impl FromRequestParts<AppState> for Manager {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let jar = CookieJar::from_headers(&parts.headers);
        let token = jar
            .get(SESSION_COOKIE)
            .ok_or_else(ApiError::unauthenticated)?
            .value()
            .to_owned();
        let hash = auth::token_hash(&token);
        let now = chrono::Utc::now().timestamp();
        let name = state.store.session(&hash, now).await?;
        name.map(Manager).ok_or_else(ApiError::unauthenticated)
    }
}

/// Refuses a state-changing request that a page of another origin made a browser send.
pub(crate) fn same_origin(headers: &HeaderMap, transport: Transport) -> Result<(), ApiError> {
    let refuse = |found: &str, required: &str| {
        ApiError::new(
            403,
            kind::CROSS_ORIGIN,
            format!(
                "request from origin {found:?} refused: required the dashboard's own origin {required:?}"
            ),
        )
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let scheme = if transport == Transport::Tls {
        "https"
    } else {
        "http"
    };
    let own = format!("{scheme}://{host}");
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("(not text)");
        if !origin.eq_ignore_ascii_case(&own) {
            return Err(refuse(origin, &own));
        }
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(refuse(&format!("(sec-fetch-site: {site})"), &own));
    }
    Ok(())
}

/// Refuses a body that is not declared as JSON.
pub(crate) fn json_only(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            415,
            kind::UNSUPPORTED_MEDIA_TYPE,
            format!("the request has content type {ct:?}: required application/json"),
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    name: String,
    password: String,
}

#[derive(Serialize)]
struct Me {
    name: String,
    hub: String,
    transport: Transport,
}

fn session_cookie(value: String, transport: Transport) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        // Browsers send a Secure cookie back over HTTPS and to loopback addresses; over plain
        // HTTP on a network (--insecure-http) it would never come back.
        .secure(transport != Transport::InsecureHttp)
        .path("/")
        .build()
}

async fn sign_in(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    jar: CookieJar,
    body: axum::body::Bytes,
) -> Result<(CookieJar, Json<Me>), ApiError> {
    same_origin(&headers, state.transport)?;
    json_only(&headers)?;
    let req: SignIn = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            400,
            kind::BAD_REQUEST,
            format!("expected {{\"name\", \"password\"}}: {e}"),
        )
    })?;
    if req.password.len() > auth::MAX_PASSWORD_LEN || req.name.len() > rules::MAX_FILTER_CHARS {
        return Err(ApiError::new(
            400,
            kind::BAD_REQUEST,
            format!(
                "name or password too long: at most {} and {} bytes",
                rules::MAX_FILTER_CHARS,
                auth::MAX_PASSWORD_LEN
            ),
        ));
    }
    let refused = |e: auth::Refusal| {
        let (status, kind, retry) = match &e {
            auth::Refusal::BackOff {
                retry_after_secs, ..
            } => (429, kind::TOO_MANY_ATTEMPTS, Some(*retry_after_secs)),
            _ => (503, kind::BUSY, Some(1)),
        };
        let mut err = ApiError::new(status, kind, e.to_string());
        err.retry_after = retry;
        err
    };
    let ticket = state.guard.admit(&req.name, addr).map_err(refused)?;
    let manager = match state.store.manager(&req.name).await {
        Ok(m) => m,
        Err(e) => {
            state.guard.release(ticket);
            return Err(e.into());
        }
    };
    let ok = match state
        .guard
        .check(
            &req.password,
            manager.as_ref().map(|m| m.password_hash.as_str()),
        )
        .await
    {
        Ok(ok) => ok,
        Err(e) => {
            // Not checked: neither a failure nor a success.
            state.guard.release(ticket);
            return Err(refused(e));
        }
    };
    state.guard.settle(ticket, ok);
    let (true, Some(manager)) = (ok, manager) else {
        tracing::info!(name = req.name, %addr, "sign-in refused");
        return Err(ApiError::new(
            401,
            kind::UNAUTHENTICATED,
            "unknown manager or wrong password".into(),
        ));
    };
    let (token, hash) = auth::new_token();
    let now = chrono::Utc::now().timestamp();
    state
        .store
        .create_session(manager.id, &hash, now + SESSION_SECS, now)
        .await?;
    Ok((
        jar.add(session_cookie(token, state.transport)),
        Json(Me {
            name: manager.name,
            hub: state.hub.name().to_owned(),
            transport: state.transport,
        }),
    ))
}

async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<CookieJar, ApiError> {
    same_origin(&headers, state.transport)?;
    if let Some(c) = jar.get(SESSION_COOKIE) {
        let hash = auth::token_hash(c.value());
        state.store.delete_session(&hash).await?;
    }
    Ok(jar.remove(session_cookie(String::new(), state.transport)))
}

async fn me(State(state): State<AppState>, Manager(name): Manager) -> Json<Me> {
    Json(Me {
        name,
        hub: state.hub.name().to_owned(),
        transport: state.transport,
    })
}

#[derive(Serialize)]
struct EntriesPage {
    #[serde(flatten)]
    total: rules::Total,
    entries: Vec<EntryRow>,
}

/// One timeline page, with its badges decided.
pub async fn timeline(store: &dyn Store, q: &rules::EntryQuery) -> Result<Vec<EntryRow>, ApiError> {
    let stored = store.entries(q).await?;
    let keys: Vec<(i64, u64)> = stored.iter().map(|e| (e.laptop_id, e.seq)).collect();
    let facts = store.entry_facts(&keys).await?;
    Ok(rules::entry_rows(stored, &facts))
}

/// How many entries match a timeline's filters (see [`rules::COUNT_LIMIT`]).
pub async fn total(store: &dyn Store, q: &rules::EntryQuery) -> Result<rules::Total, ApiError> {
    let counted = store.count(q, rules::COUNT_LIMIT + 1).await?;
    Ok(rules::Total::from_count(counted))
}

async fn entries(
    State(state): State<AppState>,
    _m: Manager,
    Q(filter): Q<EntryFilter>,
) -> Result<Json<EntriesPage>, ApiError> {
    let q = filter.to_query(rules::DEFAULT_PAGE, rules::MAX_PAGE)?;
    let entries = timeline(&*state.store, &q).await?;
    let total = total(&*state.store, &q).await?;
    Ok(Json(EntriesPage { total, entries }))
}

#[derive(Serialize)]
struct Inventory {
    total: u64,
    devices: Vec<InventoryRow>,
    versions: Vec<VersionCount>,
}

async fn inventory(
    State(state): State<AppState>,
    _m: Manager,
    Q(filter): Q<DeviceFilter>,
) -> Result<Json<Inventory>, ApiError> {
    let q = filter.to_query()?;
    let devices = state.store.devices(&q).await?;
    Ok(Json(Inventory {
        total: state.store.device_count(&q).await?,
        devices: devices.into_iter().map(InventoryRow::from).collect(),
        versions: state.store.version_counts().await?,
    }))
}

async fn laptops(
    State(state): State<AppState>,
    _m: Manager,
) -> Result<Json<Vec<LaptopStatus>>, ApiError> {
    Ok(Json(state.store.laptops().await?))
}

async fn forks(State(state): State<AppState>, _m: Manager) -> Result<Json<Vec<ForkRow>>, ApiError> {
    Ok(Json(state.store.forks().await?))
}

async fn export_entries(
    State(state): State<AppState>,
    _m: Manager,
    Q(filter): Q<EntryFilter>,
) -> Result<Response, ApiError> {
    let format: Format = filter.format.as_deref().unwrap_or("json").parse().map_err(
        |e: fieldkit_audit::export::ExportError| {
            ApiError::new(400, kind::BAD_REQUEST, e.to_string())
        },
    )?;
    let q = filter.to_query(rules::MAX_EXPORT_ROWS, rules::MAX_EXPORT_ROWS)?;
    let bytes = export::export(&*state.store, &state.hub, &filter, &q, format).await?;
    let (ct, name) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "fieldkit-audit.csv"),
        Format::Json => ("application/json", "fieldkit-audit.json"),
    };
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(ct)),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}
