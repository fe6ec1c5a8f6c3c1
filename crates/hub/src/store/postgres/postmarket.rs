//! The PostgreSQL side of [`PostmarketStore`]: migration 2 and its queries.
//!
//! The same tables as SQLite's schema 3, with `COLLATE "C"` on every text column that is sorted
//! or compared, and the same append-only triggers on evidence. Key lists travel as arrays
//! (`UNNEST`), batches as one statement each (the install history as one binary `COPY`).

use async_trait::async_trait;
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};

use super::{PostgresStore, copy_rows, get, int, now, pg, uint};
use crate::postmarket::observe;
use crate::postmarket::store::{
    AddRelease, AdvisoryRow, Analysis, ComponentRow, DeviceSite, EntitlementRow, GrantRow,
    HistoryRow, InstallKey, InstallRow, Installed, InstalledGroup, InstalledQuery, MatchRow,
    MaterialStamp, PayloadRow, PostmarketStore, ReleaseRow, VexRow, VulnRow,
};
use crate::store::StoreError;

/// Migration 2: the post-market tables.
pub(super) const SCHEMA_2: &str = r#"
CREATE TABLE trust_roots(
    version BIGINT PRIMARY KEY,
    body BYTEA NOT NULL,
    pinned_at TEXT NOT NULL
);
CREATE TABLE releases(
    id TEXT COLLATE "C" PRIMARY KEY,
    product TEXT COLLATE "C" NOT NULL,
    version TEXT COLLATE "C" NOT NULL,
    class TEXT NOT NULL,
    release_date TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    sbom_sha256 TEXT NOT NULL,
    manifest TEXT NOT NULL,
    vouched_by TEXT NOT NULL,
    source TEXT NOT NULL,
    imported_us BIGINT NOT NULL,
    sbom BYTEA NOT NULL
);
CREATE TABLE release_payloads(
    release_id TEXT COLLATE "C" NOT NULL,
    product TEXT COLLATE "C" NOT NULL,
    component TEXT COLLATE "C" NOT NULL,
    version TEXT COLLATE "C" NOT NULL,
    image_hash TEXT NOT NULL,
    PRIMARY KEY(release_id, component)
);
CREATE TABLE release_components(
    release_id TEXT COLLATE "C" NOT NULL,
    idx BIGINT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    purl TEXT NOT NULL,
    package_key TEXT COLLATE "C" NOT NULL,
    hashes TEXT NOT NULL,
    licences TEXT NOT NULL,
    PRIMARY KEY(release_id, idx)
);
CREATE INDEX release_components_key ON release_components(package_key);
CREATE TABLE advisories(
    id TEXT COLLATE "C" PRIMARY KEY,
    modified_us BIGINT NOT NULL,
    withdrawn BOOLEAN NOT NULL,
    body TEXT NOT NULL,
    source TEXT NOT NULL,
    imported_at TEXT NOT NULL
);
CREATE TABLE vex_records(
    id BIGSERIAL PRIMARY KEY,
    origin TEXT NOT NULL,
    format TEXT NOT NULL,
    document_id TEXT NOT NULL,
    author TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_us BIGINT NOT NULL,
    body BYTEA NOT NULL,
    signer TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE TABLE entitlements(
    id TEXT COLLATE "C" NOT NULL,
    generation BIGINT NOT NULL,
    customer TEXT NOT NULL,
    body BYTEA NOT NULL,
    opened TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    PRIMARY KEY(id, generation)
);
CREATE TABLE device_grants(
    serial TEXT COLLATE "C" PRIMARY KEY,
    customer TEXT COLLATE "C" NOT NULL,
    grants TEXT COLLATE "C" NOT NULL
);
CREATE TABLE recall_lists(
    version BIGINT PRIMARY KEY,
    body BYTEA NOT NULL,
    imported_at TEXT NOT NULL
);
CREATE TABLE vulnerabilities(
    name TEXT COLLATE "C" PRIMARY KEY,
    ids TEXT NOT NULL,
    severity TEXT NOT NULL,
    score DOUBLE PRECISION,
    summary TEXT NOT NULL,
    published_us BIGINT NOT NULL,
    withdrawn BOOLEAN NOT NULL
);
CREATE TABLE vuln_ids(
    id TEXT COLLATE "C" PRIMARY KEY,
    vulnerability TEXT COLLATE "C" NOT NULL
);
CREATE TABLE matches(
    vulnerability TEXT COLLATE "C" NOT NULL,
    release_id TEXT COLLATE "C" NOT NULL,
    component_idx BIGINT NOT NULL,
    component TEXT NOT NULL,
    purl TEXT NOT NULL,
    advisory TEXT NOT NULL,
    verdict TEXT NOT NULL,
    via TEXT NOT NULL,
    because TEXT NOT NULL,
    fixed TEXT NOT NULL,
    vex_state TEXT NOT NULL,
    vex TEXT NOT NULL,
    exposed BOOLEAN NOT NULL,
    PRIMARY KEY(vulnerability, release_id, component_idx)
);
CREATE INDEX matches_release ON matches(release_id);
CREATE TABLE installed(
    serial TEXT COLLATE "C" NOT NULL,
    component TEXT COLLATE "C" NOT NULL,
    product TEXT COLLATE "C" NOT NULL,
    model TEXT NOT NULL,
    hardware TEXT COLLATE "C" NOT NULL,
    version TEXT COLLATE "C" NOT NULL,
    image_hash TEXT NOT NULL,
    security_counter BIGINT,
    site TEXT COLLATE "C" NOT NULL,
    customer TEXT COLLATE "C" NOT NULL,
    technician TEXT NOT NULL,
    event TEXT NOT NULL,
    package TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    sbom_sha256 TEXT NOT NULL,
    time_us BIGINT NOT NULL,
    recency BYTEA NOT NULL,
    origin TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY(serial, component)
);
CREATE INDEX installed_key ON installed(product, component, version, serial);
CREATE TABLE install_history(
    serial TEXT COLLATE "C" NOT NULL,
    component TEXT COLLATE "C" NOT NULL,
    product TEXT COLLATE "C" NOT NULL,
    model TEXT NOT NULL,
    hardware TEXT NOT NULL,
    version TEXT COLLATE "C" NOT NULL,
    image_hash TEXT NOT NULL,
    security_counter BIGINT,
    site TEXT NOT NULL,
    customer TEXT NOT NULL,
    technician TEXT NOT NULL,
    event TEXT NOT NULL,
    package TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    sbom_sha256 TEXT NOT NULL,
    time_us BIGINT NOT NULL,
    recency BYTEA NOT NULL,
    origin TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL
);
CREATE INDEX install_history_serial ON install_history(serial, time_us);
CREATE INDEX install_history_pair ON install_history(product, component, time_us);
CREATE INDEX install_history_sbom ON install_history(sbom_sha256) WHERE sbom_sha256 <> '';
CREATE TABLE postmarket_settings(
    key TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL,
    set_at TEXT NOT NULL
);
CREATE TRIGGER trust_roots_append_only BEFORE UPDATE OR DELETE ON trust_roots
    FOR EACH ROW EXECUTE FUNCTION fieldkit_refuse_change();
CREATE TRIGGER trust_roots_no_truncate BEFORE TRUNCATE ON trust_roots
    FOR EACH STATEMENT EXECUTE FUNCTION fieldkit_refuse_change();
CREATE TRIGGER releases_append_only BEFORE UPDATE OR DELETE ON releases
    FOR EACH ROW EXECUTE FUNCTION fieldkit_refuse_change();
CREATE TRIGGER releases_no_truncate BEFORE TRUNCATE ON releases
    FOR EACH STATEMENT EXECUTE FUNCTION fieldkit_refuse_change();
CREATE TRIGGER vex_records_append_only BEFORE UPDATE OR DELETE ON vex_records
    FOR EACH ROW EXECUTE FUNCTION fieldkit_refuse_change();
CREATE TRIGGER vex_records_no_truncate BEFORE TRUNCATE ON vex_records
    FOR EACH STATEMENT EXECUTE FUNCTION fieldkit_refuse_change();
CREATE TRIGGER entitlements_append_only BEFORE UPDATE OR DELETE ON entitlements
    FOR EACH ROW EXECUTE FUNCTION fieldkit_refuse_change();
CREATE TRIGGER entitlements_no_truncate BEFORE TRUNCATE ON entitlements
    FOR EACH STATEMENT EXECUTE FUNCTION fieldkit_refuse_change();
CREATE TRIGGER recall_lists_append_only BEFORE UPDATE OR DELETE ON recall_lists
    FOR EACH ROW EXECUTE FUNCTION fieldkit_refuse_change();
CREATE TRIGGER recall_lists_no_truncate BEFORE TRUNCATE ON recall_lists
    FOR EACH STATEMENT EXECUTE FUNCTION fieldkit_refuse_change();
CREATE TRIGGER install_history_append_only BEFORE UPDATE OR DELETE ON install_history
    FOR EACH ROW EXECUTE FUNCTION fieldkit_refuse_change();
CREATE TRIGGER install_history_no_truncate BEFORE TRUNCATE ON install_history
    FOR EACH STATEMENT EXECUTE FUNCTION fieldkit_refuse_change();
"#;

/// Columns of `installed` and `install_history`, in [`InstallRow`] order.
const INSTALL_COLUMNS: &str = "serial, component, product, model, hardware, version, image_hash, \
     security_counter, site, customer, technician, event, package, manifest_sha256, sbom_sha256, \
     time_us, recency, origin, seq";

/// An install row read in [`INSTALL_COLUMNS`] order.
fn install_of(r: &Row) -> Result<InstallRow, StoreError> {
    Ok(InstallRow {
        serial: get(r, 0)?,
        component: get(r, 1)?,
        product: get(r, 2)?,
        model: get(r, 3)?,
        hardware: get(r, 4)?,
        version: get(r, 5)?,
        image_hash: get(r, 6)?,
        security_counter: get::<Option<i64>>(r, 7)?.map(uint).transpose()?,
        site: get(r, 8)?,
        customer: get(r, 9)?,
        technician: get(r, 10)?,
        event: get(r, 11)?,
        package: get(r, 12)?,
        manifest_sha256: get(r, 13)?,
        sbom_sha256: get(r, 14)?,
        time_us: get(r, 15)?,
        recency: get(r, 16)?,
        origin: get(r, 17)?,
        seq: uint(get(r, 18)?)?,
    })
}

const INSTALL_UNNEST: &str = "UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
     $6::text[], $7::text[], $8::bigint[], $9::text[], $10::text[], $11::text[], $12::text[], \
     $13::text[], $14::text[], $15::text[], $16::bigint[], $17::bytea[], $18::text[], $19::bigint[])";

/// Column arrays of install rows, for one `UNNEST` insert.
struct InstallArrays<'a> {
    text: [Vec<&'a str>; 15],
    counters: Vec<Option<i64>>,
    times: Vec<i64>,
    recency: Vec<&'a [u8]>,
    seqs: Vec<i64>,
}

impl<'a> InstallArrays<'a> {
    fn of(rows: &[&'a InstallRow]) -> Result<Self, StoreError> {
        let mut text: [Vec<&str>; 15] = Default::default();
        let mut counters = Vec::with_capacity(rows.len());
        let mut times = Vec::with_capacity(rows.len());
        let mut recency = Vec::with_capacity(rows.len());
        let mut seqs = Vec::with_capacity(rows.len());
        for r in rows {
            let cols = [
                &r.serial,
                &r.component,
                &r.product,
                &r.model,
                &r.hardware,
                &r.version,
                &r.image_hash,
                &r.site,
                &r.customer,
                &r.technician,
                &r.event,
                &r.package,
                &r.manifest_sha256,
                &r.sbom_sha256,
                &r.origin,
            ];
            for (col, v) in text.iter_mut().zip(cols) {
                col.push(v.as_str());
            }
            counters.push(r.security_counter.map(int).transpose()?);
            times.push(r.time_us);
            recency.push(r.recency.as_slice());
            seqs.push(int(r.seq)?);
        }
        Ok(Self {
            text,
            counters,
            times,
            recency,
            seqs,
        })
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 19] {
        let t = &self.text;
        [
            &t[0],
            &t[1],
            &t[2],
            &t[3],
            &t[4],
            &t[5],
            &t[6],
            &self.counters,
            &t[7],
            &t[8],
            &t[9],
            &t[10],
            &t[11],
            &t[12],
            &t[13],
            &self.times,
            &self.recency,
            &t[14],
            &self.seqs,
        ]
    }
}

/// Writes what an append's entries show installed (see the SQLite backend), inside the append's
/// transaction: every observation to the history, and the newest per serial and component to
/// `installed` unless a newer one is held.
pub(super) async fn append_installs(
    c: &deadpool_postgres::Object,
    rows: &[InstallRow],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    // One statement may touch a row once: the newest per key, decided in Rust.
    let newest = observe::newest_per_component(rows);
    let mut numbers = Vec::with_capacity(rows.len());
    for r in rows {
        numbers.push((
            r.security_counter.map(int).transpose()?,
            int(r.seq)?,
            r.recency.as_slice(),
        ));
    }
    let t = Type::TEXT;
    copy_rows(
        c,
        &format!("install_history({INSTALL_COLUMNS})"),
        &[
            t.clone(),
            t.clone(),
            t.clone(),
            t.clone(),
            t.clone(),
            t.clone(),
            t.clone(),
            Type::INT8,
            t.clone(),
            t.clone(),
            t.clone(),
            t.clone(),
            t.clone(),
            t.clone(),
            t.clone(),
            Type::INT8,
            Type::BYTEA,
            t,
            Type::INT8,
        ],
        rows.iter()
            .zip(&numbers)
            .map(|(r, (counter, seq, recency))| -> Vec<&(dyn ToSql + Sync)> {
                vec![
                    &r.serial,
                    &r.component,
                    &r.product,
                    &r.model,
                    &r.hardware,
                    &r.version,
                    &r.image_hash,
                    counter,
                    &r.site,
                    &r.customer,
                    &r.technician,
                    &r.event,
                    &r.package,
                    &r.manifest_sha256,
                    &r.sbom_sha256,
                    &r.time_us,
                    recency,
                    &r.origin,
                    seq,
                ]
            }),
    )
    .await?;
    let a = InstallArrays::of(&newest)?;
    let stmt = c
        .prepare_cached(&format!(
            "INSERT INTO installed({INSTALL_COLUMNS}) SELECT * FROM {INSTALL_UNNEST}
             ON CONFLICT(serial, component) DO UPDATE SET product = excluded.product,
               model = excluded.model, hardware = excluded.hardware, version = excluded.version,
               image_hash = excluded.image_hash, security_counter = excluded.security_counter,
               site = excluded.site, customer = excluded.customer, technician = excluded.technician,
               event = excluded.event, package = excluded.package,
               manifest_sha256 = excluded.manifest_sha256, sbom_sha256 = excluded.sbom_sha256,
               time_us = excluded.time_us, recency = excluded.recency, origin = excluded.origin,
               seq = excluded.seq
             WHERE excluded.recency > installed.recency"
        ))
        .await
        .map_err(pg)?;
    c.execute(&stmt, &a.params()).await.map_err(pg)?;
    Ok(())
}

fn component_of(r: &Row) -> Result<ComponentRow, StoreError> {
    Ok(ComponentRow {
        release_id: get(r, 0)?,
        idx: u32::try_from(get::<i64>(r, 1)?)
            .map_err(|_| StoreError::Corrupt("component index out of range".into()))?,
        kind: get(r, 2)?,
        name: get(r, 3)?,
        version: get(r, 4)?,
        purl: get(r, 5)?,
        package_key: get(r, 6)?,
        hashes: get(r, 7)?,
        licences: get(r, 8)?,
    })
}

const VULN_COLUMNS: &str = "name, ids, severity, score, summary, published_us, withdrawn";
const MATCH_COLUMNS: &str = "vulnerability, release_id, component_idx, component, purl, advisory, \
     verdict, via, because, fixed, vex_state, vex, exposed";

fn vuln_of(r: &Row) -> Result<VulnRow, StoreError> {
    Ok(VulnRow {
        name: get(r, 0)?,
        ids: get(r, 1)?,
        severity: get(r, 2)?,
        score: get(r, 3)?,
        summary: get(r, 4)?,
        published_us: get(r, 5)?,
        withdrawn: get(r, 6)?,
    })
}

fn match_of(r: &Row) -> Result<MatchRow, StoreError> {
    Ok(MatchRow {
        vulnerability: get(r, 0)?,
        release_id: get(r, 1)?,
        component_idx: u32::try_from(get::<i64>(r, 2)?)
            .map_err(|_| StoreError::Corrupt("component index out of range".into()))?,
        component: get(r, 3)?,
        purl: get(r, 4)?,
        advisory: get(r, 5)?,
        verdict: get(r, 6)?,
        via: get(r, 7)?,
        because: get(r, 8)?,
        fixed: get(r, 9)?,
        vex_state: get(r, 10)?,
        vex: get(r, 11)?,
        exposed: get(r, 12)?,
    })
}

/// Install keys as three parallel arrays.
#[derive(Default)]
struct KeyArrays<'a> {
    product: Vec<&'a str>,
    component: Vec<&'a str>,
    version: Vec<&'a str>,
}

impl<'a> KeyArrays<'a> {
    fn of(keys: &'a [InstallKey]) -> Self {
        let mut a = KeyArrays::default();
        for k in keys {
            a.product.push(&k.product);
            a.component.push(&k.component);
            a.version.push(&k.version);
        }
        a
    }
}

/// The WHERE fragment selecting installed rows `i` of the keys in parameters `$n..$n+2`.
fn keys_sql(n: usize) -> String {
    format!(
        "(i.product, i.component, i.version) IN
           (SELECT * FROM UNNEST(${}::text[], ${}::text[], ${}::text[]))",
        n,
        n + 1,
        n + 2
    )
}

impl PostgresStore {
    /// Runs `f` in a transaction on one pooled connection; a failure rolls back.
    async fn in_tx<T>(
        &self,
        f: impl for<'c> FnOnce(
            &'c tokio_postgres::Client,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, StoreError>> + Send + 'c>,
        >,
    ) -> Result<T, StoreError> {
        let client = self.client().await?;
        client.batch_execute("BEGIN").await.map_err(pg)?;
        match f(&client).await {
            Ok(v) => {
                client.batch_execute("COMMIT").await.map_err(pg)?;
                Ok(v)
            }
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(e)
            }
        }
    }
}

#[async_trait]
impl PostmarketStore for PostgresStore {
    async fn trust_roots(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT version, body FROM trust_roots ORDER BY version",
                &[],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| Ok((uint(get(r, 0)?)?, get(r, 1)?)))
            .collect()
    }

    async fn add_trust_root(&self, version: u64, body: &[u8]) -> Result<(), StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "INSERT INTO trust_roots(version, body, pinned_at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&int(version)?, &body, &now()],
            )
            .await
            .map_err(pg)?;
        if n == 0 {
            return Err(StoreError::Exists {
                what: "trust root version",
                name: version.to_string(),
            });
        }
        Ok(())
    }

    async fn add_release(
        &self,
        release: &ReleaseRow,
        sbom: &[u8],
        components: &[ComponentRow],
    ) -> Result<AddRelease, StoreError> {
        let (r, sbom, components) = (release.clone(), sbom.to_vec(), components.to_vec());
        self.in_tx(move |c| {
            Box::pin(async move {
                let n = c
                    .execute(
                        "INSERT INTO releases(id, product, version, class, release_date, manifest_sha256,
                           sbom_sha256, manifest, vouched_by, source, imported_us, sbom)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                         ON CONFLICT DO NOTHING",
                        &[
                            &r.id,
                            &r.product,
                            &r.version,
                            &r.class,
                            &r.release_date,
                            &r.manifest_sha256,
                            &r.sbom_sha256,
                            &r.manifest,
                            &r.vouched_by,
                            &r.source,
                            &r.imported_us,
                            &sbom,
                        ],
                    )
                    .await
                    .map_err(pg)?;
                if n == 0 {
                    let held = c
                        .query_one(
                            "SELECT manifest_sha256, sbom_sha256, source FROM releases WHERE id = $1",
                            &[&r.id],
                        )
                        .await
                        .map_err(pg)?;
                    return Ok(AddRelease::Held {
                        manifest_sha256: get(&held, 0)?,
                        sbom_sha256: get(&held, 1)?,
                        source: get(&held, 2)?,
                    });
                }
                let comps: Vec<&str> = r.payloads.iter().map(|p| p.component.as_str()).collect();
                let vers: Vec<&str> = r.payloads.iter().map(|p| p.version.as_str()).collect();
                let hashes: Vec<&str> = r.payloads.iter().map(|p| p.image_hash.as_str()).collect();
                c.execute(
                    "INSERT INTO release_payloads(release_id, product, component, version, image_hash)
                     SELECT $1::text, $2::text, u.* FROM UNNEST($3::text[], $4::text[], $5::text[]) AS u",
                    &[&r.id, &r.product, &comps, &vers, &hashes],
                )
                .await
                .map_err(pg)?;
                let idx: Vec<i64> = components.iter().map(|x| i64::from(x.idx)).collect();
                let col = |f: fn(&ComponentRow) -> &str| -> Vec<&str> {
                    components.iter().map(f).collect()
                };
                let (kind, name, version, purl, key, hashes, licences) = (
                    col(|x| &x.kind),
                    col(|x| &x.name),
                    col(|x| &x.version),
                    col(|x| &x.purl),
                    col(|x| &x.package_key),
                    col(|x| &x.hashes),
                    col(|x| &x.licences),
                );
                c.execute(
                    "INSERT INTO release_components(release_id, idx, kind, name, version, purl,
                       package_key, hashes, licences)
                     SELECT $1::text, u.* FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[],
                       $6::text[], $7::text[], $8::text[], $9::text[]) AS u",
                    &[
                        &r.id, &idx, &kind, &name, &version, &purl, &key, &hashes, &licences,
                    ],
                )
                .await
                .map_err(pg)?;
                Ok(AddRelease::Added)
            })
        })
        .await
    }

    async fn material_stamp(&self) -> Result<MaterialStamp, StoreError> {
        let c = self.client().await?;
        let r = c
            .query_one(
                "SELECT (SELECT COUNT(*) FROM trust_roots), (SELECT COUNT(*) FROM releases),
                   (SELECT COUNT(*) FROM entitlements), (SELECT COUNT(*) FROM recall_lists)",
                &[],
            )
            .await
            .map_err(pg)?;
        Ok(MaterialStamp {
            trust_roots: uint(get(&r, 0)?)?,
            releases: uint(get(&r, 1)?)?,
            entitlements: uint(get(&r, 2)?)?,
            recall_lists: uint(get(&r, 3)?)?,
        })
    }

    async fn releases(&self) -> Result<Vec<ReleaseRow>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT id, product, version, class, release_date, manifest_sha256, sbom_sha256,
                   manifest, vouched_by, source, imported_us FROM releases ORDER BY id",
                &[],
            )
            .await
            .map_err(pg)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(ReleaseRow {
                id: get(r, 0)?,
                product: get(r, 1)?,
                version: get(r, 2)?,
                class: get(r, 3)?,
                release_date: get(r, 4)?,
                manifest_sha256: get(r, 5)?,
                sbom_sha256: get(r, 6)?,
                manifest: get(r, 7)?,
                vouched_by: get(r, 8)?,
                source: get(r, 9)?,
                imported_us: get(r, 10)?,
                payloads: Vec::new(),
            });
        }
        let payloads = c
            .query(
                "SELECT release_id, component, version, image_hash FROM release_payloads
                 ORDER BY release_id, component",
                &[],
            )
            .await
            .map_err(pg)?;
        for p in &payloads {
            let id: String = get(p, 0)?;
            if let Some(r) = out.iter_mut().find(|r| r.id == id) {
                r.payloads.push(PayloadRow {
                    component: get(p, 1)?,
                    version: get(p, 2)?,
                    image_hash: get(p, 3)?,
                });
            }
        }
        Ok(out)
    }

    async fn release_components(
        &self,
        release: Option<&str>,
        package_key: Option<&str>,
    ) -> Result<Vec<ComponentRow>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT release_id, idx, kind, name, version, purl, package_key, hashes, licences
                 FROM release_components
                 WHERE ($1::text IS NULL OR release_id = $1) AND ($2::text IS NULL OR package_key = $2)
                 ORDER BY release_id, idx",
                &[&release, &package_key],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(component_of).collect()
    }

    async fn release_sbom(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt("SELECT sbom FROM releases WHERE id = $1", &[&id])
            .await
            .map_err(pg)?;
        row.map(|r| get(&r, 0)).transpose()
    }

    async fn advisory_modified(&self, ids: &[String]) -> Result<Vec<(String, i64)>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT id, modified_us FROM advisories WHERE id = ANY($1)",
                &[&ids],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(|r| Ok((get(r, 0)?, get(r, 1)?))).collect()
    }

    async fn put_advisories(&self, rows: &[AdvisoryRow]) -> Result<(), StoreError> {
        let c = self.client().await?;
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let modified: Vec<i64> = rows.iter().map(|r| r.modified_us).collect();
        let withdrawn: Vec<bool> = rows.iter().map(|r| r.withdrawn).collect();
        let bodies: Vec<&str> = rows.iter().map(|r| r.body.as_str()).collect();
        let sources: Vec<&str> = rows.iter().map(|r| r.source.as_str()).collect();
        c.execute(
            "INSERT INTO advisories(id, modified_us, withdrawn, body, source, imported_at)
             SELECT u.*, $6::text FROM UNNEST($1::text[], $2::bigint[], $3::bool[], $4::text[],
               $5::text[]) AS u
             ON CONFLICT(id) DO UPDATE SET modified_us = excluded.modified_us,
               withdrawn = excluded.withdrawn, body = excluded.body, source = excluded.source,
               imported_at = excluded.imported_at",
            &[&ids, &modified, &withdrawn, &bodies, &sources, &now()],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    async fn advisories(&self) -> Result<Vec<String>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query("SELECT body FROM advisories ORDER BY id", &[])
            .await
            .map_err(pg)?;
        rows.iter().map(|r| get(r, 0)).collect()
    }

    async fn add_vex(&self, row: &VexRow) -> Result<i64, StoreError> {
        let c = self.client().await?;
        let r = c
            .query_one(
                "INSERT INTO vex_records(origin, format, document_id, author, recorded_by, recorded_us,
                   body, signer, signature) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                &[
                    &row.origin,
                    &row.format,
                    &row.document_id,
                    &row.author,
                    &row.recorded_by,
                    &row.recorded_us,
                    &row.body,
                    &row.signer,
                    &row.signature,
                ],
            )
            .await
            .map_err(pg)?;
        get(&r, 0)
    }

    async fn vex_records(&self) -> Result<Vec<VexRow>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT id, origin, format, document_id, author, recorded_by, recorded_us, body,
                   signer, signature FROM vex_records ORDER BY id",
                &[],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                Ok(VexRow {
                    id: get(r, 0)?,
                    origin: get(r, 1)?,
                    format: get(r, 2)?,
                    document_id: get(r, 3)?,
                    author: get(r, 4)?,
                    recorded_by: get(r, 5)?,
                    recorded_us: get(r, 6)?,
                    body: get(r, 7)?,
                    signer: get(r, 8)?,
                    signature: get(r, 9)?,
                })
            })
            .collect()
    }

    async fn put_entitlement(&self, row: &EntitlementRow) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "INSERT INTO entitlements(id, generation, customer, body, opened, imported_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                &[
                    &row.id,
                    &i64::from(row.generation),
                    &row.customer,
                    &row.body,
                    &row.opened,
                    &now(),
                ],
            )
            .await
            .map_err(pg)?;
        Ok(n == 1)
    }

    async fn entitlements(&self) -> Result<Vec<EntitlementRow>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT id, generation, customer, body, opened FROM entitlements ORDER BY id, generation",
                &[],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                Ok(EntitlementRow {
                    id: get(r, 0)?,
                    generation: u32::try_from(get::<i64>(r, 1)?)
                        .map_err(|_| StoreError::Corrupt("generation out of range".into()))?,
                    customer: get(r, 2)?,
                    body: get(r, 3)?,
                    opened: get(r, 4)?,
                })
            })
            .collect()
    }

    async fn replace_grants(&self, rows: &[GrantRow]) -> Result<(), StoreError> {
        let rows = rows.to_vec();
        self.in_tx(move |c| {
            Box::pin(async move {
                c.execute("DELETE FROM device_grants", &[])
                    .await
                    .map_err(pg)?;
                let serials: Vec<&str> = rows.iter().map(|r| r.serial.as_str()).collect();
                let customers: Vec<&str> = rows.iter().map(|r| r.customer.as_str()).collect();
                let grants: Vec<&str> = rows.iter().map(|r| r.grants.as_str()).collect();
                c.execute(
                    "INSERT INTO device_grants(serial, customer, grants)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])",
                    &[&serials, &customers, &grants],
                )
                .await
                .map_err(pg)?;
                Ok(())
            })
        })
        .await
    }

    async fn put_recall(&self, version: u64, body: &[u8]) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "INSERT INTO recall_lists(version, body, imported_at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&int(version)?, &body, &now()],
            )
            .await
            .map_err(pg)?;
        Ok(n == 1)
    }

    async fn latest_recall(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT version, body FROM recall_lists ORDER BY version DESC LIMIT 1",
                &[],
            )
            .await
            .map_err(pg)?;
        row.map(|r| Ok((uint(get(&r, 0)?)?, get(&r, 1)?)))
            .transpose()
    }

    async fn replace_analysis(&self, analysis: &Analysis) -> Result<(), StoreError> {
        let a = analysis.clone();
        self.in_tx(move |c| {
            Box::pin(async move {
                c.batch_execute(
                    "DELETE FROM matches; DELETE FROM vuln_ids; DELETE FROM vulnerabilities;",
                )
                .await
                .map_err(pg)?;
                let v = &a.vulnerabilities;
                let names: Vec<&str> = v.iter().map(|x| x.name.as_str()).collect();
                let ids: Vec<&str> = v.iter().map(|x| x.ids.as_str()).collect();
                let sev: Vec<&str> = v.iter().map(|x| x.severity.as_str()).collect();
                let score: Vec<Option<f64>> = v.iter().map(|x| x.score).collect();
                let summary: Vec<&str> = v.iter().map(|x| x.summary.as_str()).collect();
                let published: Vec<i64> = v.iter().map(|x| x.published_us).collect();
                let withdrawn: Vec<bool> = v.iter().map(|x| x.withdrawn).collect();
                c.execute(
                    &format!(
                        "INSERT INTO vulnerabilities({VULN_COLUMNS})
                         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::float8[],
                           $5::text[], $6::bigint[], $7::bool[])"
                    ),
                    &[
                        &names, &ids, &sev, &score, &summary, &published, &withdrawn,
                    ],
                )
                .await
                .map_err(pg)?;
                let id: Vec<&str> = a.ids.iter().map(|x| x.0.as_str()).collect();
                let name: Vec<&str> = a.ids.iter().map(|x| x.1.as_str()).collect();
                c.execute(
                    "INSERT INTO vuln_ids(id, vulnerability) SELECT * FROM UNNEST($1::text[], $2::text[])",
                    &[&id, &name],
                )
                .await
                .map_err(pg)?;
                let m = &a.matches;
                let col = |f: fn(&MatchRow) -> &str| -> Vec<&str> { m.iter().map(f).collect() };
                let idx: Vec<i64> = m.iter().map(|x| i64::from(x.component_idx)).collect();
                let exposed: Vec<bool> = m.iter().map(|x| x.exposed).collect();
                let (vuln, rel, comp, purl, adv, verdict, via, because, fixed, state, vex) = (
                    col(|x| &x.vulnerability),
                    col(|x| &x.release_id),
                    col(|x| &x.component),
                    col(|x| &x.purl),
                    col(|x| &x.advisory),
                    col(|x| &x.verdict),
                    col(|x| &x.via),
                    col(|x| &x.because),
                    col(|x| &x.fixed),
                    col(|x| &x.vex_state),
                    col(|x| &x.vex),
                );
                c.execute(
                    &format!(
                        "INSERT INTO matches({MATCH_COLUMNS})
                         SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[],
                           $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                           $11::text[], $12::text[], $13::bool[])"
                    ),
                    &[
                        &vuln, &rel, &idx, &comp, &purl, &adv, &verdict, &via, &because, &fixed,
                        &state, &vex, &exposed,
                    ],
                )
                .await
                .map_err(pg)?;
                Ok(())
            })
        })
        .await
    }

    async fn vulnerability(&self, id: &str) -> Result<Option<VulnRow>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!(
                    "SELECT {VULN_COLUMNS} FROM vulnerabilities
                     WHERE name = (SELECT vulnerability FROM vuln_ids WHERE id = $1)"
                ),
                &[&id],
            )
            .await
            .map_err(pg)?;
        row.as_ref().map(vuln_of).transpose()
    }

    async fn vulnerabilities(&self) -> Result<Vec<VulnRow>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!("SELECT {VULN_COLUMNS} FROM vulnerabilities ORDER BY name"),
                &[],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(vuln_of).collect()
    }

    async fn vulnerabilities_named(&self, names: &[String]) -> Result<Vec<VulnRow>, StoreError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {VULN_COLUMNS} FROM vulnerabilities WHERE name = ANY($1::text[])
                     ORDER BY name"
                ),
                &[&names],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(vuln_of).collect()
    }

    async fn matches(
        &self,
        vulnerability: Option<&str>,
        releases: &[String],
    ) -> Result<Vec<MatchRow>, StoreError> {
        let c = self.client().await?;
        let any = releases.is_empty();
        let rows = c
            .query(
                &format!(
                    "SELECT {MATCH_COLUMNS} FROM matches
                     WHERE ($1::text IS NULL OR vulnerability = $1)
                       AND ($2::bool OR release_id = ANY($3::text[]))
                     ORDER BY vulnerability, release_id, component_idx"
                ),
                &[&vulnerability, &any, &releases],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(match_of).collect()
    }

    async fn installed(&self, q: &InstalledQuery) -> Result<Vec<Installed>, StoreError> {
        let c = self.client().await?;
        let k = KeyArrays::of(&q.keys);
        let any = q.keys.is_empty();
        let limit: Option<i64> = (q.limit > 0).then_some(i64::from(q.limit));
        let rows = c
            .query(
                &format!(
                    "SELECT i.serial, i.component, i.product, i.model, i.hardware, i.version,
                       i.image_hash, i.security_counter, i.site, i.customer,
                       COALESCE(g.customer, ''), COALESCE(g.grants, ''), i.package, i.sbom_sha256,
                       i.time_us, i.event, i.technician
                     FROM installed i LEFT JOIN device_grants g ON g.serial = i.serial
                     WHERE ($1::bool OR ({keys}))
                       AND ($5::text IS NULL OR i.serial = $5)
                       AND ($6::text IS NULL OR i.site = $6)
                     ORDER BY i.serial, i.component LIMIT $7 OFFSET $8",
                    keys = keys_sql(2)
                ),
                &[
                    &any,
                    &k.product,
                    &k.component,
                    &k.version,
                    &q.serial,
                    &q.site,
                    &limit,
                    &int(q.offset)?,
                ],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                Ok(Installed {
                    serial: get(r, 0)?,
                    component: get(r, 1)?,
                    product: get(r, 2)?,
                    model: get(r, 3)?,
                    hardware: get(r, 4)?,
                    version: get(r, 5)?,
                    image_hash: get(r, 6)?,
                    security_counter: get::<Option<i64>>(r, 7)?.map(uint).transpose()?,
                    site: get(r, 8)?,
                    customer: get(r, 9)?,
                    granted_customer: get(r, 10)?,
                    grants: get(r, 11)?,
                    package: get(r, 12)?,
                    sbom_sha256: get(r, 13)?,
                    time_us: get(r, 14)?,
                    event: get(r, 15)?,
                    technician: get(r, 16)?,
                })
            })
            .collect()
    }

    async fn installed_groups(
        &self,
        keys: &[InstallKey],
    ) -> Result<Vec<InstalledGroup>, StoreError> {
        let c = self.client().await?;
        let k = KeyArrays::of(keys);
        let any = keys.is_empty();
        let rows = c
            .query(
                &format!(
                    "SELECT i.product, i.component, i.version, i.image_hash, i.hardware, i.site,
                       i.customer, COALESCE(g.customer, '') AS gc, COALESCE(g.grants, '') AS gg,
                       COUNT(*), MIN(i.serial), i.security_counter
                     FROM installed i LEFT JOIN device_grants g ON g.serial = i.serial
                     WHERE ($1::bool OR ({keys}))
                     GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 12
                     ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 12",
                    keys = keys_sql(2)
                ),
                &[&any, &k.product, &k.component, &k.version],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                Ok(InstalledGroup {
                    product: get(r, 0)?,
                    component: get(r, 1)?,
                    version: get(r, 2)?,
                    image_hash: get(r, 3)?,
                    hardware: get(r, 4)?,
                    site: get(r, 5)?,
                    customer: get(r, 6)?,
                    granted_customer: get(r, 7)?,
                    grants: get(r, 8)?,
                    count: uint(get(r, 9)?)?,
                    sample_serial: get(r, 10)?,
                    security_counter: get::<Option<i64>>(r, 11)?.map(uint).transpose()?,
                })
            })
            .collect()
    }

    async fn device_sites(
        &self,
        keys: &[InstallKey],
        exposed: &[InstallKey],
    ) -> Result<Vec<DeviceSite>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.client().await?;
        let k = KeyArrays::of(keys);
        let e = KeyArrays::of(exposed);
        let rows = c
            .query(
                &format!(
                    "SELECT i.serial, i.site, i.customer, {} FROM installed i WHERE {}",
                    keys_sql(4),
                    keys_sql(1)
                ),
                &[
                    &k.product,
                    &k.component,
                    &k.version,
                    &e.product,
                    &e.component,
                    &e.version,
                ],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                Ok(DeviceSite {
                    serial: get(r, 0)?,
                    site: get(r, 1)?,
                    customer: get(r, 2)?,
                    exposed: get(r, 3)?,
                })
            })
            .collect()
    }

    async fn history(
        &self,
        serial: Option<&str>,
        pairs: &[(String, String)],
    ) -> Result<Vec<HistoryRow>, StoreError> {
        let c = self.client().await?;
        let products: Vec<&str> = pairs.iter().map(|p| p.0.as_str()).collect();
        let components: Vec<&str> = pairs.iter().map(|p| p.1.as_str()).collect();
        let any = pairs.is_empty();
        let rows = c
            .query(
                "SELECT serial, component, product, version, image_hash, site, event, package,
                   time_us, origin, seq
                 FROM install_history
                 WHERE ($1::text IS NULL OR serial = $1)
                   AND ($2::bool OR (product, component) IN
                         (SELECT * FROM UNNEST($3::text[], $4::text[])))
                 ORDER BY time_us, serial, component, origin, seq",
                &[&serial, &any, &products, &components],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                Ok(HistoryRow {
                    serial: get(r, 0)?,
                    component: get(r, 1)?,
                    product: get(r, 2)?,
                    version: get(r, 3)?,
                    image_hash: get(r, 4)?,
                    site: get(r, 5)?,
                    event: get(r, 6)?,
                    package: get(r, 7)?,
                    time_us: get(r, 8)?,
                    origin: get(r, 9)?,
                    seq: uint(get(r, 10)?)?,
                })
            })
            .collect()
    }

    async fn history_with_sbom(&self, sbom_sha256: &str) -> Result<Vec<InstallRow>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {INSTALL_COLUMNS} FROM install_history WHERE sbom_sha256 = $1
                     ORDER BY time_us, origin, seq"
                ),
                &[&sbom_sha256],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(install_of).collect()
    }

    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT value FROM postmarket_settings WHERE key = $1",
                &[&key],
            )
            .await
            .map_err(pg)?;
        row.map(|r| get(&r, 0)).transpose()
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO postmarket_settings(key, value, set_at) VALUES ($1, $2, $3)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value, set_at = excluded.set_at",
            &[&key, &value, &now()],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }
}
