//! Hub benchmarks (DESIGN.md §13): the release `fieldkit-hub` binary on SQLite and on
//! PostgreSQL, side by side in one run, each loaded with the same fleet ([`fleet`]: 1 000 000
//! entries from 200 laptops about 100 000 devices).
//!
//! - **Ingest**: every laptop's log posted over loopback HTTP as the sync client cuts it
//!   (batches of 500), eight laptops at a time; the hub makes every check (signature, seq,
//!   origin, chain, tree root) and commits each batch durably. Entries per second, from the
//!   first request to the last answer.
//! - **Queries**: dashboard requests as a signed-in manager sends them, each set timed request
//!   by request after one warm-up pass: the timeline with filters (one filter, several, dates,
//!   deeper pages) and the fleet inventory (pages, models, a serial). The figure is the p95.
//!
//! SQLite runs in a directory under the current one (on disk: its fsyncs are real); PostgreSQL
//! is a server of its own ([`fieldkit_testpg`]) with the settings in [`PG_SETTINGS`], `fsync`
//! and `synchronous_commit` on. Before the queries PostgreSQL is vacuumed and analysed, as its
//! autovacuum does on a live server within a minute of such a load; the SQLite hub refreshes
//! its own planner statistics as it grows.
//!
//! For a quick look while working on the hub, `FIELDKIT_BENCH_FLEET_LAPTOPS=N` loads the first
//! N laptops' logs only (5 000 entries each; the figures say how many) and
//! `FIELDKIT_BENCH_HUB_BACKEND=sqlite` (or `postgres`) measures one backend:
//! `FIELDKIT_BENCH_FLEET_LAPTOPS=40 FIELDKIT_BENCH_HUB_BACKEND=sqlite target/release/fieldkit-bench fleet`.
//! The figures of record are the whole fleet on both backends (`cargo xtask bench hub`).
//!
//! Adding a query figure (exposure queries, say): a [`QuerySet`] in [`QUERY_SETS`] whose
//! `paths` returns the requests of one pass. Data the queries need beyond the fleet's logs is
//! loaded in [`load`], after the ingest and before the queries.

mod fleet;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fieldkit_sync::SyncConfig;
use fieldkit_sync::proto::APPEND_PATH;

use crate::Rows;

/// Laptops syncing at once during the ingest.
const SYNCING_AT_ONCE: usize = 8;
/// Names the one backend to measure, for a quick look (the module's documentation).
const BACKEND_VAR: &str = "FIELDKIT_BENCH_HUB_BACKEND";
/// Measured passes over each query set (after one warm-up pass).
const PASSES: u64 = 5;

/// PostgreSQL's settings for the benchmark: a modest server's (the rest Debian's defaults).
pub(crate) const PG_SETTINGS: &[(&str, &str)] = &[
    ("shared_buffers", "256MB"),
    ("max_wal_size", "2GB"),
    ("max_connections", "100"),
];

/// A set of dashboard requests timed together.
struct QuerySet {
    /// Its name in the figures.
    name: &'static str,
    /// The target for its p95, in milliseconds.
    target_ms: f64,
    /// The requests (path and query) of pass `n` over a fleet of so many laptops; passes vary
    /// the values asked for.
    paths: fn(u64, u64) -> Vec<String>,
}

/// The query figures, in order.
const QUERY_SETS: &[QuerySet] = &[
    QuerySet {
        name: "timeline with filters",
        target_ms: 50.0,
        paths: timeline_paths,
    },
    QuerySet {
        name: "fleet inventory",
        target_ms: 100.0,
        paths: inventory_paths,
    },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// What one backend measured.
struct Measured {
    backend: Backend,
    ingest_per_s: f64,
    /// CPU seconds the hub process, and the database server (PostgreSQL), used to ingest.
    hub_cpu: f64,
    db_cpu: f64,
    ingest_secs: f64,
    /// p95, p50 and slowest request (ms, path) per query set.
    queries: Vec<(f64, f64, (f64, String))>,
    storage_bytes: u64,
}

/// Measures the figures into `rows`.
pub(crate) fn run(rows: &mut Rows) -> anyhow::Result<()> {
    let hub_bin = crate::sibling("fieldkit-hub")?;
    let batch = SyncConfig::default().max_batch_entries as u64;
    let t = Instant::now();
    let fleet_size = fleet::laptops()?;
    let backends = match std::env::var(BACKEND_VAR).as_deref() {
        Err(_) => vec![Backend::Sqlite, Backend::Postgres],
        Ok("sqlite") => vec![Backend::Sqlite],
        Ok("postgres") => vec![Backend::Postgres],
        Ok(v) => bail!("{BACKEND_VAR} is {v:?}; required sqlite or postgres"),
    };
    let laptops = Arc::new(fleet::fleet(fleet_size, batch)?);
    let entries = fleet_size * fleet::ENTRIES_PER_LAPTOP;
    eprintln!(
        "hub: made {entries} entries from {} laptops in {:.1} s",
        laptops.len(),
        t.elapsed().as_secs_f64()
    );
    let rt = tokio::runtime::Runtime::new()?;
    let mut all = Vec::new();
    for backend in backends {
        let m = rt
            .block_on(measure(&hub_bin, backend, laptops.clone()))
            .with_context(|| format!("on {}", backend.name()))?;
        all.push(m);
    }
    let n = fmt_count(entries);
    for m in &all {
        let b = m.backend.name();
        rows.push((
            format!("hub ingest, {n} entries from {fleet_size} laptops, all checks, {b}"),
            format!("{:.0} entries/s (target >= 20000)", m.ingest_per_s),
        ));
        let server = match m.backend {
            Backend::Sqlite => String::new(),
            Backend::Postgres => format!(", the PostgreSQL server {:.2}", m.db_cpu / m.ingest_secs),
        };
        rows.push((
            format!("hub ingest CPU per entry (hub + database), {b}"),
            format!(
                "{:.0} us (cores busy: the hub {:.2}{server})",
                (m.hub_cpu + m.db_cpu) * 1e6 / entries as f64,
                m.hub_cpu / m.ingest_secs
            ),
        ));
        for (set, (p95, p50, (slowest, path))) in QUERY_SETS.iter().zip(&m.queries) {
            rows.push((
                format!("hub {} p95 at {n} entries, {b}", set.name),
                format!(
                    "{p95:.1} ms (target < {:.0}; p50 {p50:.1} ms; slowest {slowest:.1} ms: {path})",
                    set.target_ms
                ),
            ));
        }
        rows.push((
            format!("hub storage at {n} entries, {b}"),
            format!(
                "{:.0} MiB ({:.0} bytes/entry)",
                m.storage_bytes as f64 / (1 << 20) as f64,
                m.storage_bytes as f64 / entries as f64
            ),
        ));
    }
    if let [s, p] = &all[..] {
        rows.push((
            "hub ingest postgres / sqlite".into(),
            format!("{:.2}", p.ingest_per_s / s.ingest_per_s),
        ));
        for (i, set) in QUERY_SETS.iter().enumerate() {
            rows.push((
                format!("hub {} p95 postgres / sqlite", set.name),
                format!("{:.2}", p.queries[i].0 / s.queries[i].0),
            ));
        }
    }
    Ok(())
}

/// The hub process under test.
struct HubProcess {
    child: Child,
    url: String,
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(bin: &std::path::Path, db: &str, key: &std::path::Path) -> anyhow::Result<HubProcess> {
    use std::io::BufRead;
    let mut child = Command::new(bin)
        .args(["serve", "--db", db, "--listen", "127.0.0.1:0", "--hub-key"])
        .arg(key)
        .env("RUST_LOG", "fieldkit_hub=warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().context("hub stdout")?).read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .with_context(|| format!("the hub said {line:?}"))?
        .to_owned();
    Ok(HubProcess { child, url })
}

async fn measure(
    hub_bin: &std::path::Path,
    backend: Backend,
    laptops: Arc<Vec<fleet::LaptopLog>>,
) -> anyhow::Result<Measured> {
    let cwd = std::env::current_dir()?;
    let work = tempfile::tempdir_in(&cwd).context("temporary directory")?;
    // PostgreSQL's directory must be reachable by the postgres user: beside `work`, not in it.
    let (pg, db) = match backend {
        Backend::Sqlite => (
            None,
            format!("sqlite:{}", work.path().join("hub.db").display()),
        ),
        Backend::Postgres => {
            let pg = tokio::task::spawn_blocking(move || {
                fieldkit_testpg::Pg::start_in(&cwd, PG_SETTINGS)
            })
            .await?;
            let db = pg.base().create().await;
            (Some(pg), db)
        }
    };
    let key = work.path().join("hub-key.pem");
    {
        let store = fieldkit_hub::open_store(&db).await?;
        for l in laptops.iter() {
            store
                .enroll_laptop(&l.name, &l.identity.public_key())
                .await?;
        }
        let hash = fieldkit_hub::auth::hash_password("bench-password")?;
        store.add_manager("bench", &hash).await?;
    }
    let hub = serve(hub_bin, &db, &key)?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(SYNCING_AT_ONCE)
        .timeout(Duration::from_secs(120))
        .build()?;

    eprintln!("hub: ingest on {}", backend.name());
    // Laptops syncing their backlogs side by side: round after round, each laptop sends its
    // next batch once the hub acknowledged the one before (so entries arrive roughly in time
    // order, as from a fleet, not one laptop's two years after another's).
    let batches = laptops.iter().map(|l| l.batches.len()).max().unwrap_or(0);
    let order: Arc<Vec<(usize, usize)>> = Arc::new(
        (0..batches)
            .flat_map(|b| (0..laptops.len()).map(move |l| (l, b)))
            .filter(|&(l, b)| b < laptops[l].batches.len())
            .collect(),
    );
    let acked: Arc<Vec<tokio::sync::Mutex<usize>>> = Arc::new(
        (0..laptops.len())
            .map(|_| tokio::sync::Mutex::new(0))
            .collect(),
    );
    let db_cpu = || pg.as_ref().map_or(0.0, fieldkit_testpg::Pg::cpu_secs);
    let cpu_before = (cpu_secs(hub.child.id()), db_cpu());
    let t = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..SYNCING_AT_ONCE {
        let (http, url, next, laptops, order, acked) = (
            http.clone(),
            hub.url.clone(),
            next.clone(),
            laptops.clone(),
            order.clone(),
            acked.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let Some(&(l, b)) = order.get(next.fetch_add(1, Ordering::SeqCst)) else {
                    return anyhow::Ok(());
                };
                let mut done = acked[l].lock().await;
                while *done != b {
                    // The laptop's previous batch is still on its way (rare): wait for it.
                    drop(done);
                    tokio::task::yield_now().await;
                    done = acked[l].lock().await;
                }
                let resp = http
                    .post(format!("{url}{APPEND_PATH}"))
                    .header("content-type", "application/json")
                    .body(laptops[l].batches[b].clone())
                    .send()
                    .await?;
                let status = resp.status();
                let text = resp.text().await?;
                if !status.is_success() {
                    bail!("{} batch {b}: {status} {text}", laptops[l].name);
                }
                *done += 1;
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    let secs = t.elapsed().as_secs_f64();
    let entries = laptops.len() as u64 * fleet::ENTRIES_PER_LAPTOP;
    let ingest_per_s = entries as f64 / secs;
    let hub_cpu = cpu_secs(hub.child.id()) - cpu_before.0;
    let db_cpu = db_cpu() - cpu_before.1;
    eprintln!(
        "hub: {entries} entries in {secs:.1} s on {}",
        backend.name()
    );

    if backend == Backend::Postgres {
        // What autovacuum does on a live server within a minute of such a load: planner
        // statistics, and the visibility map that lets counts read indexes alone.
        let (client, conn) = tokio_postgres::connect(&db, tokio_postgres::NoTls).await?;
        let task = tokio::spawn(conn);
        client.batch_execute("VACUUM (ANALYZE)").await?;
        drop(client);
        let _ = task.await;
    }
    load(&hub, &http).await?;
    let cookie = sign_in(&http, &hub.url).await?;
    let mut queries = Vec::new();
    for set in QUERY_SETS {
        let fleet_size = laptops.len() as u64;
        queries.push(time_queries(&http, &hub.url, &cookie, set, fleet_size).await?);
    }
    let storage_bytes = match backend {
        Backend::Sqlite => ["hub.db", "hub.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(work.path().join(f)).ok())
            .map(|m| m.len())
            .sum(),
        Backend::Postgres => {
            let (client, conn) = tokio_postgres::connect(&db, tokio_postgres::NoTls).await?;
            let task = tokio::spawn(conn);
            let row = client
                .query_one("SELECT pg_database_size(current_database())", &[])
                .await?;
            drop(client);
            let _ = task.await;
            u64::try_from(row.get::<_, i64>(0))?
        }
    };
    drop(hub);
    drop(pg);
    Ok(Measured {
        backend,
        ingest_per_s,
        hub_cpu,
        db_cpu,
        ingest_secs: secs,
        queries,
        storage_bytes,
    })
}

/// Loads what query sets need beyond the fleet's logs (nothing yet).
async fn load(_hub: &HubProcess, _http: &reqwest::Client) -> anyhow::Result<()> {
    Ok(())
}

async fn sign_in(http: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    let resp = http
        .post(format!("{url}/api/v1/session"))
        .header("content-type", "application/json")
        .body(r#"{"name":"bench","password":"bench-password"}"#)
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("sign-in: {} {}", resp.status(), resp.text().await?);
    }
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("sign-in set no cookie")?
        .to_owned();
    Ok(cookie)
}

/// Times every request of `set` (one warm-up pass, then [`PASSES`]): p95, p50 and the slowest.
async fn time_queries(
    http: &reqwest::Client,
    url: &str,
    cookie: &str,
    set: &QuerySet,
    laptops: u64,
) -> anyhow::Result<(f64, f64, (f64, String))> {
    let mut samples: Vec<(f64, String)> = Vec::new();
    for pass in 0..=PASSES {
        for path in (set.paths)(pass, laptops) {
            let t = Instant::now();
            let resp = http
                .get(format!("{url}{path}"))
                .header("cookie", cookie)
                .send()
                .await?;
            let status = resp.status();
            let body = resp.bytes().await?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            if !status.is_success() {
                bail!("{path}: {status} {}", String::from_utf8_lossy(&body));
            }
            if pass > 0 {
                samples.push((ms, path));
            }
        }
    }
    samples.sort_by(|a, b| a.0.total_cmp(&b.0));
    let at = |q: f64| {
        samples[((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1].0
    };
    let slowest = samples.last().cloned().context("no samples")?;
    Ok((at(0.95), at(0.50), slowest))
}

/// Timeline requests of pass `p`: the unfiltered page, each filter alone (a rare event too),
/// filters together, dates (a day, a month, before, since) and deeper pages.
fn timeline_paths(p: u64, laptops: u64) -> Vec<String> {
    let tech = fleet::technician((p * 37 + 11) % laptops);
    let tech2 = fleet::technician((p * 53 + 5) % laptops);
    let site = fleet::site((p * 131 + 7) % (laptops * fleet::SITES_PER_LAPTOP));
    let site2 = fleet::site((p * 71 + 3) % (laptops * fleet::SITES_PER_LAPTOP));
    let devices = laptops * fleet::DEVICES_PER_LAPTOP;
    let serial = fleet::serial((p * 7919 + 13) % devices);
    let serial2 = fleet::serial((p * 4099 + 29) % devices);
    let model = fleet::MODELS[(p % 5) as usize].0;
    let day = fleet::start() + chrono::Duration::days((p as i64 * 97 + 40) % fleet::DAYS);
    let day = day.format("%Y-%m-%d");
    let month = fleet::start() + chrono::Duration::days((p as i64 * 61 + 100) % (fleet::DAYS - 31));
    let (m1, m2) = (
        month.format("%Y-%m-%d"),
        (month + chrono::Duration::days(30)).format("%Y-%m-%d"),
    );
    let quarter = (
        m1.to_string(),
        (month + chrono::Duration::days(91)).format("%Y-%m-%d"),
    );
    let enc = |s: &str| s.replace(' ', "%20");
    vec![
        "/api/v1/entries".to_owned(),
        format!("/api/v1/entries?technician={tech}"),
        format!("/api/v1/entries?site={}", enc(&site)),
        format!("/api/v1/entries?serial={serial}"),
        format!("/api/v1/entries?model={model}"),
        "/api/v1/entries?event=update_failed".to_owned(),
        "/api/v1/entries?event=check_refused".to_owned(),
        // An informational event the fleet never logged: the worst case of an event filter,
        // which reads the whole `info` slice of the outcome index.
        "/api/v1/entries?event=trust_updated".to_owned(),
        "/api/v1/entries?outcome=reverted".to_owned(),
        "/api/v1/entries?outcome=succeeded".to_owned(),
        format!("/api/v1/entries?from={m1}&to={m2}"),
        format!("/api/v1/entries?from={day}&to={day}"),
        format!("/api/v1/entries?technician={tech2}&from={m1}&to={m2}"),
        format!("/api/v1/entries?site={}&outcome=refused", enc(&site2)),
        format!(
            "/api/v1/entries?model={model}&event=update_succeeded&from={}&to={}",
            quarter.0, quarter.1
        ),
        format!("/api/v1/entries?serial={serial2}&event=update_started"),
        format!("/api/v1/entries?to={m1}"),
        format!("/api/v1/entries?from={m2}"),
        "/api/v1/entries?offset=1000".to_owned(),
        format!("/api/v1/entries?technician={tech}&offset=200"),
        format!("/api/v1/entries?model={model}&outcome=failed&limit=50"),
    ]
}

/// Inventory requests of pass `p`: the first page with the version chart, a model, deeper
/// pages, one serial, a large page.
fn inventory_paths(p: u64, laptops: u64) -> Vec<String> {
    let model = fleet::MODELS[(p % 5) as usize].0;
    let devices = laptops * fleet::DEVICES_PER_LAPTOP;
    let serial = fleet::serial((p * 7919 + 13) % devices);
    vec![
        "/api/v1/inventory".to_owned(),
        format!("/api/v1/inventory?model={model}"),
        format!("/api/v1/inventory?model={model}&offset={}", 5000 + p * 1000),
        format!("/api/v1/inventory?serial={serial}"),
        format!("/api/v1/inventory?offset={}", 50_000 + p * 1000),
        "/api/v1/inventory?limit=1000".to_owned(),
    ]
}

/// CPU time (user + system) of process `pid` so far, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // pid (comm) state ... utime stime: fields 14 and 15, counted after the comm's ')'.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    // Clock ticks: 100 per second on Linux.
    f.iter().sum::<f64>() / 100.0
}

/// 1000000 as "1 000 000".
fn fmt_count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}
