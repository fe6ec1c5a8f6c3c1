//! The SQLite side of [`PostmarketStore`]: the tables of schema version 3 and their queries.
//!
//! Evidence the hub was given (trust roots, releases, VEX records, entitlements, recall lists)
//! and the install history are append-only, by trigger, like the audit entries. Derived tables
//! are replaced whole inside one `BEGIN IMMEDIATE` transaction.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::{SqliteStore, db, now};
use crate::postmarket::observe;
use crate::postmarket::store::{
    AddRelease, AdvisoryRow, Analysis, ComponentRow, DeviceSite, EntitlementRow, GrantRow,
    HistoryRow, InstallKey, InstallRow, Installed, InstalledGroup, InstalledQuery, MatchRow,
    MaterialStamp, PayloadRow, PostmarketStore, ReleaseRow, VexRow, VulnRow,
};
use crate::store::StoreError;

/// The tables schema version 3 adds.
pub(super) const SCHEMA_3: &str = "
CREATE TABLE trust_roots(
    version INTEGER PRIMARY KEY,
    body BLOB NOT NULL,
    pinned_at TEXT NOT NULL
) STRICT;
CREATE TABLE releases(
    id TEXT PRIMARY KEY,
    product TEXT NOT NULL,
    version TEXT NOT NULL,
    class TEXT NOT NULL,
    release_date TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    sbom_sha256 TEXT NOT NULL,
    manifest TEXT NOT NULL,
    vouched_by TEXT NOT NULL,
    source TEXT NOT NULL,
    imported_us INTEGER NOT NULL,
    sbom BLOB NOT NULL
) STRICT;
CREATE TABLE release_payloads(
    release_id TEXT NOT NULL,
    product TEXT NOT NULL,
    component TEXT NOT NULL,
    version TEXT NOT NULL,
    image_hash TEXT NOT NULL,
    PRIMARY KEY(release_id, component)
) STRICT;
CREATE TABLE release_components(
    release_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    purl TEXT NOT NULL,
    package_key TEXT NOT NULL,
    hashes TEXT NOT NULL,
    licences TEXT NOT NULL,
    PRIMARY KEY(release_id, idx)
) STRICT;
CREATE INDEX release_components_key ON release_components(package_key);
CREATE TABLE advisories(
    id TEXT PRIMARY KEY,
    modified_us INTEGER NOT NULL,
    withdrawn INTEGER NOT NULL,
    body TEXT NOT NULL,
    source TEXT NOT NULL,
    imported_at TEXT NOT NULL
) STRICT;
CREATE TABLE vex_records(
    id INTEGER PRIMARY KEY,
    origin TEXT NOT NULL,
    format TEXT NOT NULL,
    document_id TEXT NOT NULL,
    author TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_us INTEGER NOT NULL,
    body BLOB NOT NULL,
    signer TEXT NOT NULL,
    signature TEXT NOT NULL
) STRICT;
CREATE TABLE entitlements(
    id TEXT NOT NULL,
    generation INTEGER NOT NULL,
    customer TEXT NOT NULL,
    body BLOB NOT NULL,
    opened TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    PRIMARY KEY(id, generation)
) STRICT;
CREATE TABLE device_grants(
    serial TEXT PRIMARY KEY,
    customer TEXT NOT NULL,
    grants TEXT NOT NULL
) STRICT;
CREATE TABLE recall_lists(
    version INTEGER PRIMARY KEY,
    body BLOB NOT NULL,
    imported_at TEXT NOT NULL
) STRICT;
CREATE TABLE vulnerabilities(
    name TEXT PRIMARY KEY,
    ids TEXT NOT NULL,
    severity TEXT NOT NULL,
    score REAL,
    summary TEXT NOT NULL,
    published_us INTEGER NOT NULL,
    withdrawn INTEGER NOT NULL
) STRICT;
CREATE TABLE vuln_ids(
    id TEXT PRIMARY KEY,
    vulnerability TEXT NOT NULL
) STRICT;
CREATE TABLE matches(
    vulnerability TEXT NOT NULL,
    release_id TEXT NOT NULL,
    component_idx INTEGER NOT NULL,
    component TEXT NOT NULL,
    purl TEXT NOT NULL,
    advisory TEXT NOT NULL,
    verdict TEXT NOT NULL,
    via TEXT NOT NULL,
    because TEXT NOT NULL,
    fixed TEXT NOT NULL,
    vex_state TEXT NOT NULL,
    vex TEXT NOT NULL,
    exposed INTEGER NOT NULL,
    PRIMARY KEY(vulnerability, release_id, component_idx)
) STRICT;
CREATE INDEX matches_release ON matches(release_id);
CREATE TABLE installed(
    serial TEXT NOT NULL,
    component TEXT NOT NULL,
    product TEXT NOT NULL,
    model TEXT NOT NULL,
    hardware TEXT NOT NULL,
    version TEXT NOT NULL,
    image_hash TEXT NOT NULL,
    security_counter INTEGER,
    site TEXT NOT NULL,
    customer TEXT NOT NULL,
    technician TEXT NOT NULL,
    event TEXT NOT NULL,
    package TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    sbom_sha256 TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    recency BLOB NOT NULL,
    origin TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY(serial, component)
) STRICT;
CREATE INDEX installed_key ON installed(product, component, version, serial);
CREATE TABLE install_history(
    serial TEXT NOT NULL,
    component TEXT NOT NULL,
    product TEXT NOT NULL,
    model TEXT NOT NULL,
    hardware TEXT NOT NULL,
    version TEXT NOT NULL,
    image_hash TEXT NOT NULL,
    security_counter INTEGER,
    site TEXT NOT NULL,
    customer TEXT NOT NULL,
    technician TEXT NOT NULL,
    event TEXT NOT NULL,
    package TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    sbom_sha256 TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    recency BLOB NOT NULL,
    origin TEXT NOT NULL,
    seq INTEGER NOT NULL
) STRICT;
CREATE INDEX install_history_serial ON install_history(serial, time_us);
CREATE INDEX install_history_pair ON install_history(product, component, time_us);
CREATE INDEX install_history_sbom ON install_history(sbom_sha256) WHERE sbom_sha256 <> '';
CREATE TABLE postmarket_settings(
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    set_at TEXT NOT NULL
) STRICT;
";

/// Tables whose rows are evidence: never updated or deleted.
pub(super) const EVIDENCE_3: [&str; 6] = [
    "trust_roots",
    "releases",
    "vex_records",
    "entitlements",
    "recall_lists",
    "install_history",
];

const INSTALL_COLUMNS: &str = "serial, component, product, model, hardware, version, image_hash, \
     security_counter, site, customer, technician, event, package, manifest_sha256, sbom_sha256, \
     time_us, recency, origin, seq";

/// Writes what an append's entries show installed: every observation to the history, and the
/// newest per serial and component to `installed` (a row is replaced only by a newer one). Runs
/// inside the append's transaction.
pub(super) fn append_installs(c: &Connection, rows: &[InstallRow]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let newest = observe::newest_per_component(rows);
    let mut hist = c
        .prepare_cached(&format!(
            "INSERT INTO install_history({INSTALL_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
        ))
        .map_err(db)?;
    for r in rows {
        execute_install(&mut hist, r)?;
    }
    let mut upsert = c
        .prepare_cached(&format!(
            "INSERT INTO installed({INSTALL_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
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
        .map_err(db)?;
    // A component seen again at the same product and version: an UPDATE that leaves
    // `installed_key` alone (the upsert sets its columns, and SQLite rewrites an index entry
    // whose column is set even to the same value: a random page per row per batch).
    let mut refresh = c
        .prepare_cached(
            "UPDATE installed SET model = ?4, hardware = ?5, image_hash = ?7, security_counter = ?8,
               site = ?9, customer = ?10, technician = ?11, event = ?12, package = ?13,
               manifest_sha256 = ?14, sbom_sha256 = ?15, time_us = ?16, recency = ?17,
               origin = ?18, seq = ?19
             WHERE serial = ?1 AND component = ?2 AND product = ?3 AND version = ?6
               AND recency < ?17",
        )
        .map_err(db)?;
    for r in newest {
        if execute_install(&mut refresh, r)? == 0 {
            execute_install(&mut upsert, r)?;
        }
    }
    Ok(())
}

/// Runs `stmt` with an install row's columns as parameters, in [`INSTALL_COLUMNS`] order, and
/// returns the rows it changed.
fn execute_install(
    stmt: &mut rusqlite::CachedStatement<'_>,
    r: &InstallRow,
) -> Result<usize, StoreError> {
    stmt.execute(params![
        r.serial,
        r.component,
        r.product,
        r.model,
        r.hardware,
        r.version,
        r.image_hash,
        r.security_counter.map(|n| n as i64),
        r.site,
        r.customer,
        r.technician,
        r.event,
        r.package,
        r.manifest_sha256,
        r.sbom_sha256,
        r.time_us,
        r.recency,
        r.origin,
        r.seq,
    ])
    .map_err(db)
}

/// An install row read in [`INSTALL_COLUMNS`] order.
fn install_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<InstallRow> {
    Ok(InstallRow {
        serial: r.get(0)?,
        component: r.get(1)?,
        product: r.get(2)?,
        model: r.get(3)?,
        hardware: r.get(4)?,
        version: r.get(5)?,
        image_hash: r.get(6)?,
        security_counter: r.get::<_, Option<i64>>(7)?.map(|n| n as u64),
        site: r.get(8)?,
        customer: r.get(9)?,
        technician: r.get(10)?,
        event: r.get(11)?,
        package: r.get(12)?,
        manifest_sha256: r.get(13)?,
        sbom_sha256: r.get(14)?,
        time_us: r.get(15)?,
        recency: r.get(16)?,
        origin: r.get(17)?,
        seq: r.get(18)?,
    })
}

fn payloads_of(c: &Connection, id: &str) -> Result<Vec<PayloadRow>, StoreError> {
    let mut stmt = c
        .prepare_cached(
            "SELECT component, version, image_hash FROM release_payloads WHERE release_id = ?1
             ORDER BY component",
        )
        .map_err(db)?;
    let rows = stmt
        .query_map([id], |r| {
            Ok(PayloadRow {
                component: r.get(0)?,
                version: r.get(1)?,
                image_hash: r.get(2)?,
            })
        })
        .map_err(db)?;
    rows.collect::<Result<_, _>>().map_err(db)
}

fn component_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<ComponentRow> {
    Ok(ComponentRow {
        release_id: r.get(0)?,
        idx: r.get(1)?,
        kind: r.get(2)?,
        name: r.get(3)?,
        version: r.get(4)?,
        purl: r.get(5)?,
        package_key: r.get(6)?,
        hashes: r.get(7)?,
        licences: r.get(8)?,
    })
}

fn vuln_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<VulnRow> {
    Ok(VulnRow {
        name: r.get(0)?,
        ids: r.get(1)?,
        severity: r.get(2)?,
        score: r.get(3)?,
        summary: r.get(4)?,
        published_us: r.get(5)?,
        withdrawn: r.get(6)?,
    })
}

const VULN_COLUMNS: &str = "name, ids, severity, score, summary, published_us, withdrawn";
const MATCH_COLUMNS: &str = "vulnerability, release_id, component_idx, component, purl, advisory, \
     verdict, via, because, fixed, vex_state, vex, exposed";

fn match_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<MatchRow> {
    Ok(MatchRow {
        vulnerability: r.get(0)?,
        release_id: r.get(1)?,
        component_idx: r.get(2)?,
        component: r.get(3)?,
        purl: r.get(4)?,
        advisory: r.get(5)?,
        verdict: r.get(6)?,
        via: r.get(7)?,
        because: r.get(8)?,
        fixed: r.get(9)?,
        vex_state: r.get(10)?,
        vex: r.get(11)?,
        exposed: r.get(12)?,
    })
}

/// `(i.product = ? AND i.component = ? AND i.version = ?) OR …`, numbering parameters after
/// those already in `args`.
fn keys_sql(keys: &[InstallKey], args: &mut Vec<String>) -> String {
    let mut parts = Vec::with_capacity(keys.len());
    for k in keys {
        let mut p = Vec::with_capacity(3);
        for (col, v) in [
            ("i.product", &k.product),
            ("i.component", &k.component),
            ("i.version", &k.version),
        ] {
            args.push(v.clone());
            p.push(format!("{col} = ?{}", args.len()));
        }
        parts.push(format!("({})", p.join(" AND ")));
    }
    format!("({})", parts.join(" OR "))
}

fn tx<T>(
    c: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    c.execute_batch("BEGIN IMMEDIATE").map_err(db)?;
    match f(c) {
        Ok(v) => {
            c.execute_batch("COMMIT").map_err(db)?;
            Ok(v)
        }
        Err(e) => {
            let _ = c.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

#[async_trait]
impl PostmarketStore for SqliteStore {
    async fn trust_roots(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached("SELECT version, body FROM trust_roots ORDER BY version")
                .map_err(db)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
        .await
    }

    async fn add_trust_root(&self, version: u64, body: &[u8]) -> Result<(), StoreError> {
        let body = body.to_vec();
        self.write(move |c| {
            let held: bool = c
                .query_row(
                    "SELECT EXISTS(SELECT 1 FROM trust_roots WHERE version = ?1)",
                    [version],
                    |r| r.get(0),
                )
                .map_err(db)?;
            if held {
                return Err(StoreError::Exists {
                    what: "trust root version",
                    name: version.to_string(),
                });
            }
            c.execute(
                "INSERT INTO trust_roots(version, body, pinned_at) VALUES (?1, ?2, ?3)",
                params![version, body, now()],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn add_release(
        &self,
        release: &ReleaseRow,
        sbom: &[u8],
        components: &[ComponentRow],
    ) -> Result<AddRelease, StoreError> {
        let (r, sbom, components) = (release.clone(), sbom.to_vec(), components.to_vec());
        self.write(move |c| {
            tx(c, |c| {
                let held: Option<(String, String, String)> = c
                    .query_row(
                        "SELECT manifest_sha256, sbom_sha256, source FROM releases WHERE id = ?1",
                        [&r.id],
                        |x| Ok((x.get(0)?, x.get(1)?, x.get(2)?)),
                    )
                    .optional()
                    .map_err(db)?;
                if let Some((manifest_sha256, sbom_sha256, source)) = held {
                    return Ok(AddRelease::Held {
                        manifest_sha256,
                        sbom_sha256,
                        source,
                    });
                }
                c.execute(
                    "INSERT INTO releases(id, product, version, class, release_date, manifest_sha256,
                       sbom_sha256, manifest, vouched_by, source, imported_us, sbom)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                    params![
                        r.id,
                        r.product,
                        r.version,
                        r.class,
                        r.release_date,
                        r.manifest_sha256,
                        r.sbom_sha256,
                        r.manifest,
                        r.vouched_by,
                        r.source,
                        r.imported_us,
                        sbom
                    ],
                )
                .map_err(db)?;
                let mut p = c
                    .prepare_cached(
                        "INSERT INTO release_payloads(release_id, product, component, version, image_hash)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .map_err(db)?;
                for x in &r.payloads {
                    p.execute(params![r.id, r.product, x.component, x.version, x.image_hash])
                        .map_err(db)?;
                }
                let mut ins = c
                    .prepare_cached(
                        "INSERT INTO release_components(release_id, idx, kind, name, version, purl,
                           package_key, hashes, licences) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )
                    .map_err(db)?;
                for x in &components {
                    ins.execute(params![
                        x.release_id,
                        x.idx,
                        x.kind,
                        x.name,
                        x.version,
                        x.purl,
                        x.package_key,
                        x.hashes,
                        x.licences
                    ])
                    .map_err(db)?;
                }
                Ok(AddRelease::Added)
            })
        })
        .await
    }

    async fn material_stamp(&self) -> Result<MaterialStamp, StoreError> {
        self.read(|c| {
            c.query_row(
                "SELECT (SELECT COUNT(*) FROM trust_roots), (SELECT COUNT(*) FROM releases),
                   (SELECT COUNT(*) FROM entitlements), (SELECT COUNT(*) FROM recall_lists)",
                [],
                |r| {
                    Ok(MaterialStamp {
                        trust_roots: r.get(0)?,
                        releases: r.get(1)?,
                        entitlements: r.get(2)?,
                        recall_lists: r.get(3)?,
                    })
                },
            )
            .map_err(db)
        })
        .await
    }

    async fn releases(&self) -> Result<Vec<ReleaseRow>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT id, product, version, class, release_date, manifest_sha256, sbom_sha256,
                       manifest, vouched_by, source, imported_us FROM releases ORDER BY id",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(ReleaseRow {
                        id: r.get(0)?,
                        product: r.get(1)?,
                        version: r.get(2)?,
                        class: r.get(3)?,
                        release_date: r.get(4)?,
                        manifest_sha256: r.get(5)?,
                        sbom_sha256: r.get(6)?,
                        manifest: r.get(7)?,
                        vouched_by: r.get(8)?,
                        source: r.get(9)?,
                        imported_us: r.get(10)?,
                        payloads: Vec::new(),
                    })
                })
                .map_err(db)?;
            let mut out: Vec<ReleaseRow> = rows.collect::<Result<_, _>>().map_err(db)?;
            for r in &mut out {
                r.payloads = payloads_of(c, &r.id)?;
            }
            Ok(out)
        })
        .await
    }

    async fn release_components(
        &self,
        release: Option<&str>,
        package_key: Option<&str>,
    ) -> Result<Vec<ComponentRow>, StoreError> {
        let (release, key) = (release.map(str::to_owned), package_key.map(str::to_owned));
        self.read(move |c| {
            let mut clauses = Vec::new();
            let mut args = Vec::new();
            if let Some(r) = release {
                args.push(r);
                clauses.push(format!("release_id = ?{}", args.len()));
            }
            if let Some(k) = key {
                args.push(k);
                clauses.push(format!("package_key = ?{}", args.len()));
            }
            let wh = if clauses.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", clauses.join(" AND "))
            };
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT release_id, idx, kind, name, version, purl, package_key, hashes, licences
                     FROM release_components {wh} ORDER BY release_id, idx"
                ))
                .map_err(db)?;
            let rows = stmt
                .query_map(params_from_iter(args.iter()), component_of)
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
        .await
    }

    async fn release_sbom(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| {
            c.query_row("SELECT sbom FROM releases WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db)
        })
        .await
    }

    async fn advisory_modified(&self, ids: &[String]) -> Result<Vec<(String, i64)>, StoreError> {
        let ids = ids.to_vec();
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached("SELECT modified_us FROM advisories WHERE id = ?1")
                .map_err(db)?;
            let mut out = Vec::new();
            for id in ids {
                if let Some(m) = stmt
                    .query_row([&id], |r| r.get::<_, i64>(0))
                    .optional()
                    .map_err(db)?
                {
                    out.push((id, m));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn put_advisories(&self, rows: &[AdvisoryRow]) -> Result<(), StoreError> {
        let rows = rows.to_vec();
        self.write(move |c| {
            tx(c, |c| {
                let at = now();
                let mut stmt = c
                    .prepare_cached(
                        "INSERT INTO advisories(id, modified_us, withdrawn, body, source, imported_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                         ON CONFLICT(id) DO UPDATE SET modified_us = excluded.modified_us,
                           withdrawn = excluded.withdrawn, body = excluded.body,
                           source = excluded.source, imported_at = excluded.imported_at",
                    )
                    .map_err(db)?;
                for r in &rows {
                    stmt.execute(params![r.id, r.modified_us, r.withdrawn, r.body, r.source, at])
                        .map_err(db)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn advisories(&self) -> Result<Vec<String>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached("SELECT body FROM advisories ORDER BY id")
                .map_err(db)?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
        .await
    }

    async fn add_vex(&self, row: &VexRow) -> Result<i64, StoreError> {
        let r = row.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO vex_records(origin, format, document_id, author, recorded_by, recorded_us,
                   body, signer, signature) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    r.origin,
                    r.format,
                    r.document_id,
                    r.author,
                    r.recorded_by,
                    r.recorded_us,
                    r.body,
                    r.signer,
                    r.signature
                ],
            )
            .map_err(db)?;
            Ok(c.last_insert_rowid())
        })
        .await
    }

    async fn vex_records(&self) -> Result<Vec<VexRow>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT id, origin, format, document_id, author, recorded_by, recorded_us, body,
                       signer, signature FROM vex_records ORDER BY id",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(VexRow {
                        id: r.get(0)?,
                        origin: r.get(1)?,
                        format: r.get(2)?,
                        document_id: r.get(3)?,
                        author: r.get(4)?,
                        recorded_by: r.get(5)?,
                        recorded_us: r.get(6)?,
                        body: r.get(7)?,
                        signer: r.get(8)?,
                        signature: r.get(9)?,
                    })
                })
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
        .await
    }

    async fn put_entitlement(&self, row: &EntitlementRow) -> Result<bool, StoreError> {
        let r = row.clone();
        self.write(move |c| {
            let n = c
                .execute(
                    "INSERT OR IGNORE INTO entitlements(id, generation, customer, body, opened, imported_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![r.id, r.generation, r.customer, r.body, r.opened, now()],
                )
                .map_err(db)?;
            Ok(n == 1)
        })
        .await
    }

    async fn entitlements(&self) -> Result<Vec<EntitlementRow>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT id, generation, customer, body, opened FROM entitlements
                     ORDER BY id, generation",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(EntitlementRow {
                        id: r.get(0)?,
                        generation: r.get(1)?,
                        customer: r.get(2)?,
                        body: r.get(3)?,
                        opened: r.get(4)?,
                    })
                })
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
        .await
    }

    async fn replace_grants(&self, rows: &[GrantRow]) -> Result<(), StoreError> {
        let rows = rows.to_vec();
        self.write(move |c| {
            tx(c, |c| {
                c.execute("DELETE FROM device_grants", []).map_err(db)?;
                let mut stmt = c
                    .prepare_cached(
                        "INSERT INTO device_grants(serial, customer, grants) VALUES (?1, ?2, ?3)",
                    )
                    .map_err(db)?;
                for r in &rows {
                    stmt.execute(params![r.serial, r.customer, r.grants])
                        .map_err(db)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn put_recall(&self, version: u64, body: &[u8]) -> Result<bool, StoreError> {
        let body = body.to_vec();
        self.write(move |c| {
            let n = c
                .execute(
                    "INSERT OR IGNORE INTO recall_lists(version, body, imported_at) VALUES (?1, ?2, ?3)",
                    params![version, body, now()],
                )
                .map_err(db)?;
            Ok(n == 1)
        })
        .await
    }

    async fn latest_recall(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.read(|c| {
            c.query_row(
                "SELECT version, body FROM recall_lists ORDER BY version DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db)
        })
        .await
    }

    async fn replace_analysis(&self, analysis: &Analysis) -> Result<(), StoreError> {
        let a = analysis.clone();
        self.write(move |c| {
            tx(c, |c| {
                c.execute_batch(
                    "DELETE FROM matches; DELETE FROM vuln_ids; DELETE FROM vulnerabilities;",
                )
                .map_err(db)?;
                let mut v = c
                    .prepare_cached(&format!(
                        "INSERT INTO vulnerabilities({VULN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                    ))
                    .map_err(db)?;
                for x in &a.vulnerabilities {
                    v.execute(params![
                        x.name,
                        x.ids,
                        x.severity,
                        x.score,
                        x.summary,
                        x.published_us,
                        x.withdrawn
                    ])
                    .map_err(db)?;
                }
                let mut i = c
                    .prepare_cached("INSERT INTO vuln_ids(id, vulnerability) VALUES (?1, ?2)")
                    .map_err(db)?;
                for (id, name) in &a.ids {
                    i.execute(params![id, name]).map_err(db)?;
                }
                let mut m = c
                    .prepare_cached(&format!(
                        "INSERT INTO matches({MATCH_COLUMNS})
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                    ))
                    .map_err(db)?;
                for x in &a.matches {
                    m.execute(params![
                        x.vulnerability,
                        x.release_id,
                        x.component_idx,
                        x.component,
                        x.purl,
                        x.advisory,
                        x.verdict,
                        x.via,
                        x.because,
                        x.fixed,
                        x.vex_state,
                        x.vex,
                        x.exposed
                    ])
                    .map_err(db)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn vulnerability(&self, id: &str) -> Result<Option<VulnRow>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| {
            c.query_row(
                &format!(
                    "SELECT {VULN_COLUMNS} FROM vulnerabilities
                     WHERE name = (SELECT vulnerability FROM vuln_ids WHERE id = ?1)"
                ),
                [id],
                vuln_of,
            )
            .optional()
            .map_err(db)
        })
        .await
    }

    async fn vulnerabilities(&self) -> Result<Vec<VulnRow>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {VULN_COLUMNS} FROM vulnerabilities ORDER BY name"
                ))
                .map_err(db)?;
            let rows = stmt.query_map([], vuln_of).map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
        .await
    }

    async fn vulnerabilities_named(&self, names: &[String]) -> Result<Vec<VulnRow>, StoreError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        // One parameter however many names: a JSON array, read by `json_each`.
        let names = serde_json::to_string(names)
            .map_err(|e| StoreError::Corrupt(format!("vulnerability names: {e}")))?;
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {VULN_COLUMNS} FROM vulnerabilities
                     WHERE name IN (SELECT value FROM json_each(?1)) ORDER BY name"
                ))
                .map_err(db)?;
            let rows = stmt.query_map([names], vuln_of).map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
        .await
    }

    async fn matches(
        &self,
        vulnerability: Option<&str>,
        releases: &[String],
    ) -> Result<Vec<MatchRow>, StoreError> {
        let (vulnerability, releases) = (vulnerability.map(str::to_owned), releases.to_vec());
        self.read(move |c| {
            let mut clauses = Vec::new();
            let mut args: Vec<String> = Vec::new();
            if let Some(v) = vulnerability {
                args.push(v);
                clauses.push(format!("vulnerability = ?{}", args.len()));
            }
            if !releases.is_empty() {
                let first = args.len() + 1;
                let marks: Vec<String> = (0..releases.len())
                    .map(|i| format!("?{}", first + i))
                    .collect();
                args.extend(releases);
                clauses.push(format!("release_id IN ({})", marks.join(", ")));
            }
            let wh = if clauses.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", clauses.join(" AND "))
            };
            let mut stmt = c
                .prepare(&format!(
                    "SELECT {MATCH_COLUMNS} FROM matches {wh}
                     ORDER BY vulnerability, release_id, component_idx"
                ))
                .map_err(db)?;
            let rows = stmt
                .query_map(params_from_iter(args.iter()), match_of)
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
        .await
    }

    async fn installed(&self, q: &InstalledQuery) -> Result<Vec<Installed>, StoreError> {
        let q = q.clone();
        self.read(move |c| {
            let mut clauses = Vec::new();
            let mut args: Vec<String> = Vec::new();
            if !q.keys.is_empty() {
                clauses.push(keys_sql(&q.keys, &mut args));
            }
            for (col, v) in [("i.serial", &q.serial), ("i.site", &q.site)] {
                if let Some(v) = v {
                    args.push(v.clone());
                    clauses.push(format!("{col} = ?{}", args.len()));
                }
            }
            let wh = if clauses.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", clauses.join(" AND "))
            };
            let page = if q.limit == 0 {
                String::new()
            } else {
                format!("LIMIT {} OFFSET {}", q.limit, q.offset)
            };
            let mut stmt = c
                .prepare(&format!(
                    "SELECT i.serial, i.component, i.product, i.model, i.hardware, i.version,
                       i.image_hash, i.security_counter, i.site, i.customer,
                       COALESCE(g.customer, ''), COALESCE(g.grants, ''), i.package, i.sbom_sha256,
                       i.time_us, i.event, i.technician
                     FROM installed i LEFT JOIN device_grants g ON g.serial = i.serial
                     {wh} ORDER BY i.serial, i.component {page}"
                ))
                .map_err(db)?;
            let rows = stmt
                .query_map(params_from_iter(args.iter()), |r| {
                    Ok(Installed {
                        serial: r.get(0)?,
                        component: r.get(1)?,
                        product: r.get(2)?,
                        model: r.get(3)?,
                        hardware: r.get(4)?,
                        version: r.get(5)?,
                        image_hash: r.get(6)?,
                        security_counter: r.get::<_, Option<i64>>(7)?.map(|n| n as u64),
                        site: r.get(8)?,
                        customer: r.get(9)?,
                        granted_customer: r.get(10)?,
                        grants: r.get(11)?,
                        package: r.get(12)?,
                        sbom_sha256: r.get(13)?,
                        time_us: r.get(14)?,
                        event: r.get(15)?,
                        technician: r.get(16)?,
                    })
                })
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
        .await
    }

    async fn installed_groups(
        &self,
        keys: &[InstallKey],
    ) -> Result<Vec<InstalledGroup>, StoreError> {
        let keys = keys.to_vec();
        self.read(move |c| {
            let mut args = Vec::new();
            let wh = if keys.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", keys_sql(&keys, &mut args))
            };
            let mut stmt = c
                .prepare(&format!(
                    "SELECT i.product, i.component, i.version, i.image_hash, i.hardware, i.site,
                       i.customer, COALESCE(g.customer, ''), COALESCE(g.grants, ''), COUNT(*),
                       MIN(i.serial), i.security_counter
                     FROM installed i LEFT JOIN device_grants g ON g.serial = i.serial
                     {wh}
                     GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 12
                     ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 12"
                ))
                .map_err(db)?;
            let rows = stmt
                .query_map(params_from_iter(args.iter()), |r| {
                    Ok(InstalledGroup {
                        product: r.get(0)?,
                        component: r.get(1)?,
                        version: r.get(2)?,
                        image_hash: r.get(3)?,
                        hardware: r.get(4)?,
                        site: r.get(5)?,
                        customer: r.get(6)?,
                        granted_customer: r.get(7)?,
                        grants: r.get(8)?,
                        count: r.get(9)?,
                        sample_serial: r.get(10)?,
                        security_counter: r.get::<_, Option<i64>>(11)?.map(|n| n as u64),
                    })
                })
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
        .await
    }

    async fn device_sites(
        &self,
        keys: &[InstallKey],
        exposed: &[InstallKey],
    ) -> Result<Vec<DeviceSite>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (keys, exposed) = (keys.to_vec(), exposed.to_vec());
        self.read(move |c| {
            let mut args = Vec::new();
            let wh = keys_sql(&keys, &mut args);
            let hit = if exposed.is_empty() {
                "0".to_owned()
            } else {
                keys_sql(&exposed, &mut args)
            };
            let mut stmt = c
                .prepare(&format!(
                    "SELECT i.serial, i.site, i.customer, {hit} FROM installed i WHERE {wh}"
                ))
                .map_err(db)?;
            let rows = stmt
                .query_map(params_from_iter(args.iter()), |r| {
                    Ok(DeviceSite {
                        serial: r.get(0)?,
                        site: r.get(1)?,
                        customer: r.get(2)?,
                        exposed: r.get(3)?,
                    })
                })
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
        .await
    }

    async fn history(
        &self,
        serial: Option<&str>,
        pairs: &[(String, String)],
    ) -> Result<Vec<HistoryRow>, StoreError> {
        let (serial, pairs) = (serial.map(str::to_owned), pairs.to_vec());
        self.read(move |c| {
            let mut clauses = Vec::new();
            let mut args: Vec<String> = Vec::new();
            // A device's history is found through its entries (schema 7): the serial's entries,
            // then each one's observations. CROSS JOIN keeps that order.
            let from = match serial {
                Some(s) => {
                    args.push(s);
                    clauses.push("e.device_serial = ?1 AND h.serial = ?1".to_owned());
                    "entries e CROSS JOIN laptops l ON l.id = e.laptop_id
                     CROSS JOIN install_history h ON h.origin = l.origin AND h.seq = e.seq"
                }
                None => "install_history h",
            };
            if !pairs.is_empty() {
                let mut parts = Vec::new();
                for (p, comp) in &pairs {
                    args.push(p.clone());
                    args.push(comp.clone());
                    parts.push(format!(
                        "(h.product = ?{} AND h.component = ?{})",
                        args.len() - 1,
                        args.len()
                    ));
                }
                clauses.push(format!("({})", parts.join(" OR ")));
            }
            let wh = if clauses.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", clauses.join(" AND "))
            };
            let mut stmt = c
                .prepare(&format!(
                    "SELECT h.serial, h.component, h.product, h.version, h.image_hash, h.site,
                       h.event, h.package, h.time_us, h.origin, h.seq FROM {from} {wh}
                     ORDER BY h.time_us, h.serial, h.component, h.origin, h.seq"
                ))
                .map_err(db)?;
            let rows = stmt
                .query_map(params_from_iter(args.iter()), |r| {
                    Ok(HistoryRow {
                        serial: r.get(0)?,
                        component: r.get(1)?,
                        product: r.get(2)?,
                        version: r.get(3)?,
                        image_hash: r.get(4)?,
                        site: r.get(5)?,
                        event: r.get(6)?,
                        package: r.get(7)?,
                        time_us: r.get(8)?,
                        origin: r.get(9)?,
                        seq: r.get(10)?,
                    })
                })
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
        .await
    }

    async fn history_with_sbom(&self, sbom_sha256: &str) -> Result<Vec<InstallRow>, StoreError> {
        let sbom = sbom_sha256.to_owned();
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {INSTALL_COLUMNS} FROM install_history WHERE sbom_sha256 = ?1
                     ORDER BY time_us, origin, seq"
                ))
                .map_err(db)?;
            let rows = stmt.query_map([sbom], install_of).map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
        .await
    }

    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.read(move |c| {
            c.query_row(
                "SELECT value FROM postmarket_settings WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)
        })
        .await
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.write(move |c| {
            c.execute(
                "INSERT INTO postmarket_settings(key, value, set_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value, set_at = excluded.set_at",
                params![key, value, now()],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }
}
