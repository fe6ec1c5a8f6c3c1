//! The HTTP API (axum) and the dashboard's static files.
//!
//! Laptops use one endpoint, authenticated by their signed checkpoint. Everything else is for
//! managers and requires a session cookie. Storage calls are blocking (SQLite) and run on
//! tokio's blocking pool so that one slow query never stalls the server.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use fieldkit_sync::proto::{APPEND_PATH, AppendRequest, MAX_REQUEST_BYTES, kind};
use serde::{Deserialize, Serialize};

use crate::auth::{self, SESSION_COOKIE, SESSION_SECS};
use crate::error::ApiError;
use crate::export::{self, Format};
use crate::ingest::{self, CrashPoint};
use crate::store::{EntryFilter, Store};

/// Shared state of the server.
#[derive(Clone)]
pub struct AppState {
    /// The storage backend.
    pub store: Arc<dyn Store>,
    /// Crash injection for tests (from `FIELDKIT_HUB_CRASH`).
    pub crash: Option<CrashPoint>,
}

impl AppState {
    /// State over a store, with no crash injection.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, crash: None }
    }
}

async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&dyn Store) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || f(&*store))
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?
}

/// The router: API plus dashboard.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(APPEND_PATH, post(append).layer(DefaultBodyLimit::disable()))
        .route("/api/v1/session", post(sign_in).delete(sign_out).get(me))
        .route("/api/v1/entries", get(entries))
        .route("/api/v1/inventory", get(inventory))
        .route("/api/v1/laptops", get(laptops))
        .route("/api/v1/forks", get(forks))
        .route("/api/v1/export", get(export_entries))
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
        .with_state(state)
}

const DASHBOARD_HTML: &str = include_str!("../dashboard/index.html");
const DASHBOARD_JS: &str = include_str!("../dashboard/app.js");
const DASHBOARD_CSS: &str = include_str!("../dashboard/style.css");

fn page(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
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
    let crash = state.crash;
    let resp = blocking(&state, move |store| ingest::append(store, req, crash)).await?;
    Ok(Json(resp).into_response())
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
        let name = blocking(state, move |s| Ok(s.session(&hash, now)?)).await?;
        name.map(Manager).ok_or_else(ApiError::unauthenticated)
    }
}

#[derive(Deserialize)]
struct SignIn {
    name: String,
    password: String,
}

#[derive(Serialize)]
struct Me {
    name: String,
    hub: String,
}

async fn sign_in(
    State(state): State<AppState>,
    jar: CookieJar,
    body: axum::body::Bytes,
) -> Result<(CookieJar, Json<Me>), ApiError> {
    let req: SignIn = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            400,
            kind::BAD_REQUEST,
            format!("expected {{name, password}}: {e}"),
        )
    })?;
    let (token, hash) = auth::new_token();
    let name = req.name.clone();
    let hub = blocking(&state, move |s| {
        let refused = || {
            ApiError::new(
                401,
                kind::UNAUTHENTICATED,
                "unknown manager or wrong password".into(),
            )
        };
        let (id, stored) = s.manager(&req.name)?.ok_or_else(refused)?;
        if !auth::verify_password(&req.password, &stored) {
            return Err(refused());
        }
        s.create_session(id, &hash, chrono::Utc::now().timestamp() + SESSION_SECS)?;
        Ok(s.hub_identity()?.name().to_owned())
    })
    .await?;
    let cookie = Cookie::build((SESSION_COOKIE, token))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .build();
    Ok((jar.add(cookie), Json(Me { name, hub })))
}

async fn sign_out(State(state): State<AppState>, jar: CookieJar) -> Result<CookieJar, ApiError> {
    if let Some(c) = jar.get(SESSION_COOKIE) {
        let hash = auth::token_hash(c.value());
        blocking(&state, move |s| Ok(s.delete_session(&hash)?)).await?;
    }
    Ok(jar.remove(Cookie::build(SESSION_COOKIE).path("/")))
}

async fn me(State(state): State<AppState>, Manager(name): Manager) -> Result<Json<Me>, ApiError> {
    let hub = blocking(&state, |s| Ok(s.hub_identity()?.name().to_owned())).await?;
    Ok(Json(Me { name, hub }))
}

#[derive(Serialize)]
struct EntriesPage {
    total: u64,
    entries: Vec<crate::store::EntryRow>,
}

async fn entries(
    State(state): State<AppState>,
    _m: Manager,
    Query(filter): Query<EntryFilter>,
) -> Result<Json<EntriesPage>, ApiError> {
    let mut filter = filter;
    filter.limit = Some(filter.limit.unwrap_or(200).min(1000));
    let page = blocking(&state, move |s| {
        Ok(EntriesPage {
            total: s.count(&filter)?,
            entries: s.query(&filter)?,
        })
    })
    .await?;
    Ok(Json(page))
}

/// Firmware versions across the fleet: how many devices run each version of each component.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct VersionCount {
    /// Device model.
    pub model: String,
    /// Component.
    pub component: String,
    /// Version.
    pub version: String,
    /// Devices.
    pub devices: u64,
}

#[derive(Serialize)]
struct Inventory {
    devices: Vec<crate::store::InventoryRow>,
    versions: Vec<VersionCount>,
}

async fn inventory(
    State(state): State<AppState>,
    _m: Manager,
) -> Result<Json<Inventory>, ApiError> {
    let devices = blocking(&state, |s| Ok(s.inventory()?)).await?;
    let mut counts: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for d in &devices {
        for (c, v) in &d.firmware {
            let model = d.model.clone().unwrap_or_else(|| "(unknown model)".into());
            *counts.entry((model, c.clone(), v.clone())).or_default() += 1;
        }
    }
    let versions = counts
        .into_iter()
        .map(|((model, component, version), devices)| VersionCount {
            model,
            component,
            version,
            devices,
        })
        .collect();
    Ok(Json(Inventory { devices, versions }))
}

async fn laptops(
    State(state): State<AppState>,
    _m: Manager,
) -> Result<Json<Vec<crate::store::LaptopStatus>>, ApiError> {
    Ok(Json(blocking(&state, |s| Ok(s.laptops()?)).await?))
}

async fn forks(
    State(state): State<AppState>,
    _m: Manager,
) -> Result<Json<Vec<crate::store::ForkRow>>, ApiError> {
    Ok(Json(blocking(&state, |s| Ok(s.forks()?)).await?))
}

#[derive(Deserialize)]
struct ExportQuery {
    format: Option<String>,
}

async fn export_entries(
    State(state): State<AppState>,
    _m: Manager,
    Query(q): Query<ExportQuery>,
    Query(filter): Query<EntryFilter>,
) -> Result<Response, ApiError> {
    let format: Format = q
        .format
        .as_deref()
        .unwrap_or("json")
        .parse()
        .map_err(|e| ApiError::new(400, kind::BAD_REQUEST, e))?;
    let bytes = blocking(&state, move |s| Ok(export::export(s, &filter, format)?)).await?;
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
