//! The post-market routes, for signed-in managers: `/api/v1/postmarket/…`, and the
//! dashboard's script for its pages.
//!
//! Every answer is JSON (strings escaped by serde, served `nosniff`); the dashboard inserts
//! every value as text. Parameters are validated by [`super::query`] (400 naming the rule).
//! The one write, a VEX decision, takes JSON only from the dashboard's own origin, and is
//! recorded with the signed-in manager as its author and signed by the hub.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use fieldkit_sync::proto::kind;
use serde::Serialize;

use super::answers::{self, Context};
use super::import::{self, Context as ImportContext};
use super::query::{Exposure, ExposureParams, ListParams, UpToDateParams};
use super::trust::{self, PostmarketError, RootSummary};
use super::vexrecord::{self, Decision};
use crate::api::{AppState, Manager, Q, json_only, same_origin};
use crate::error::ApiError;

/// The routes, merged into the hub's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/postmarket/status", get(status))
        .route("/api/v1/postmarket/overview", get(overview))
        .route("/api/v1/postmarket/exposure", get(exposure))
        .route("/api/v1/postmarket/exposure.csv", get(exposure_csv))
        .route("/api/v1/postmarket/uptodate", get(up_to_date))
        .route("/api/v1/postmarket/licences", get(licences))
        .route("/api/v1/postmarket/series", get(series))
        .route("/api/v1/postmarket/vex", axum::routing::post(decide))
        .route(
            "/postmarket.css",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
                    POSTMARKET_CSS,
                )
                    .into_response()
            }),
        )
        .route(
            "/postmarket.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    POSTMARKET_JS,
                )
                    .into_response()
            }),
        )
}

const POSTMARKET_JS: &str = include_str!("../../dashboard/postmarket.js");
const POSTMARKET_CSS: &str = include_str!("../../dashboard/postmarket.css");

impl From<PostmarketError> for ApiError {
    fn from(e: PostmarketError) -> Self {
        match e {
            PostmarketError::Store(e) => e.into(),
            PostmarketError::NoRoot => ApiError::new(409, kind::BAD_REQUEST, e.to_string()),
            other => ApiError::new(400, kind::BAD_REQUEST, other.to_string()),
        }
    }
}

async fn context(state: &AppState) -> Result<Context, ApiError> {
    Ok(state
        .contexts
        .context(state.store.postmarket(), chrono::Utc::now())
        .await?)
}

/// What the hub holds for post-market answers.
#[derive(Serialize)]
struct Status {
    root: Option<RootSummary>,
    releases: usize,
    vulnerabilities: usize,
    entitlements: usize,
    recall_list: Option<u64>,
    licence_policy: String,
    vex_states: &'static [&'static str],
    justifications: &'static [&'static str],
}

async fn status(State(state): State<AppState>, _m: Manager) -> Result<Json<Status>, ApiError> {
    let pm = state.store.postmarket();
    let root = match trust::root(pm).await {
        Ok(r) => Some(RootSummary::of(&r)),
        Err(PostmarketError::NoRoot) => None,
        Err(e) => return Err(e.into()),
    };
    let (_, policy) = answers::licence_policy(pm).await?;
    Ok(Json(Status {
        root,
        releases: pm.releases().await?.len(),
        vulnerabilities: pm.vulnerabilities().await?.len(),
        entitlements: trust::newest_generations(&pm.entitlements().await?)?.len(),
        recall_list: pm.latest_recall().await?.map(|(v, _)| v),
        licence_policy: policy,
        vex_states: vexrecord::states(),
        justifications: vexrecord::justifications(),
    }))
}

async fn overview(
    State(state): State<AppState>,
    _m: Manager,
    Q(p): Q<ListParams>,
) -> Result<Json<answers::Page<answers::OverviewRow>>, ApiError> {
    let (_, _, limit, offset) = p.to_query()?;
    let cx = context(&state).await?;
    Ok(Json(
        answers::overview(state.store.postmarket(), &cx, limit, offset).await?,
    ))
}

/// One of the three exposure answers, tagged by what was asked.
#[derive(Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum ExposureAnswer {
    /// By vulnerability.
    Vulnerability(Box<answers::VulnExposure>),
    /// By component.
    Component(Box<answers::ComponentExposure>),
    /// By device.
    Device(Box<answers::DeviceExposure>),
}

/// Answers an exposure question (the CLI and the API share it).
pub async fn answer(
    store: &dyn super::PostmarketStore,
    cx: &Context,
    q: Exposure,
) -> Result<Option<ExposureAnswer>, PostmarketError> {
    Ok(match q {
        Exposure::Id { id, limit, offset } => {
            answers::by_vulnerability(store, cx, &id, limit, offset)
                .await?
                .map(|a| ExposureAnswer::Vulnerability(Box::new(a)))
        }
        Exposure::Component {
            query,
            scope,
            limit,
            offset,
        } => Some(ExposureAnswer::Component(Box::new(
            answers::by_component(store, cx, &query, &scope, limit, offset).await?,
        ))),
        Exposure::Device { serial } => answers::by_device(store, cx, &serial)
            .await?
            .map(|a| ExposureAnswer::Device(Box::new(a))),
    })
}

async fn exposure(
    State(state): State<AppState>,
    _m: Manager,
    Q(p): Q<ExposureParams>,
) -> Result<Json<ExposureAnswer>, ApiError> {
    let q = p.to_query()?;
    let what = match &q {
        Exposure::Id { id, .. } => format!("no advisory with id or alias {id:?} is imported"),
        Exposure::Device { serial } => format!("no field record shows device {serial:?}"),
        Exposure::Component { .. } => String::new(),
    };
    let cx = context(&state).await?;
    match answer(state.store.postmarket(), &cx, q).await? {
        Some(a) => Ok(Json(a)),
        None => Err(ApiError::new(404, kind::NOT_FOUND, what)),
    }
}

/// Every device row of an exposure by vulnerability, as CSV (at most [`answers::MAX_PAGE`]
/// times ten rows).
async fn exposure_csv(
    State(state): State<AppState>,
    _m: Manager,
    Q(p): Q<ExposureParams>,
) -> Result<Response, ApiError> {
    let id = match p.to_query()? {
        Exposure::Id { id, .. } => id,
        _ => {
            return Err(ApiError::new(
                400,
                kind::BAD_REQUEST,
                "query parameter id is required: the CSV export lists the devices of one vulnerability".into(),
            ));
        }
    };
    let cx = context(&state).await?;
    let Some(v) = answers::by_vulnerability(
        state.store.postmarket(),
        &cx,
        &id,
        answers::MAX_PAGE * 10,
        0,
    )
    .await?
    else {
        return Err(ApiError::new(
            404,
            kind::NOT_FOUND,
            format!("no advisory with id or alias {id:?} is imported"),
        ));
    };
    let name = v
        .vulnerability
        .name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect::<String>();
    let disposition =
        axum::http::HeaderValue::from_str(&format!("attachment; filename=\"exposure-{name}.csv\""))
            .unwrap_or(axum::http::HeaderValue::from_static("attachment"));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        answers::exposure_csv(&v.vulnerability.name, &v.rows.rows),
    )
        .into_response())
}

async fn up_to_date(
    State(state): State<AppState>,
    _m: Manager,
    Q(p): Q<UpToDateParams>,
) -> Result<Json<answers::UpToDate>, ApiError> {
    let (filter, limit, offset) = p.to_query()?;
    let cx = context(&state).await?;
    Ok(Json(
        answers::up_to_date(state.store.postmarket(), &cx, &filter, limit, offset).await?,
    ))
}

async fn licences(
    State(state): State<AppState>,
    _m: Manager,
) -> Result<Json<answers::Licences>, ApiError> {
    let pm = state.store.postmarket();
    let cx = context(&state).await?;
    let (policy, source) = answers::licence_policy(pm).await?;
    Ok(Json(answers::licences(pm, &cx, &policy, &source).await?))
}

async fn series(
    State(state): State<AppState>,
    _m: Manager,
    Q(p): Q<ListParams>,
) -> Result<Json<answers::Series>, ApiError> {
    let (id, weeks, _, _) = p.to_query()?;
    let cx = context(&state).await?;
    Ok(Json(
        answers::series(state.store.postmarket(), &cx, id.as_deref(), weeks).await?,
    ))
}

#[derive(Serialize)]
struct Decided {
    record: i64,
    analysis: super::analysis::Summary,
}

async fn decide(
    State(state): State<AppState>,
    Manager(name): Manager,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    same_origin(&headers, state.transport)?;
    json_only(&headers)?;
    let decision: Decision = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            400,
            kind::BAD_REQUEST,
            format!(
                "a VEX decision is {{vulnerability, product, subcomponents, status, justification, impact, action}}: {e}"
            ),
        )
    })?;
    let cx = ImportContext {
        hub: &state.hub,
        by: &name,
        now: chrono::Utc::now(),
    };
    let (record, analysis) = import::decide(state.store.postmarket(), cx, &decision).await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(Decided { record, analysis }),
    )
        .into_response())
}
