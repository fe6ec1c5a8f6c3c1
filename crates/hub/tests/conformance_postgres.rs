//! The storage conformance suite on a real PostgreSQL server, started by the test itself (see
//! `support/pg.rs`), each test in a database of its own.

mod conformance;
mod support;

conformance!(support::Backend::Postgres);

/// A plain SQL connection to the hub's database, to look at or tamper with what it stores.
async fn sql_client(hub: &support::TestHub) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&hub.db_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// Entries carry no foreign key to their laptop (migration 5: the append already holds the
/// laptop's row locked); an entry still never outlives its laptop, because no laptop can be
/// deleted or truncated away, even by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_laptop_cannot_be_deleted_or_truncated_under_its_entries() {
    let hub = support::TestHub::start(support::Backend::Postgres).await;
    let client = sql_client(&hub).await;
    client
        .execute(
            "INSERT INTO laptops(name, origin, public_key, enrolled_at) VALUES ('l', 'o', 'k', 'now')",
            &[],
        )
        .await
        .unwrap();
    for sql in ["DELETE FROM laptops", "TRUNCATE laptops CASCADE"] {
        let err = client.execute(sql, &[]).await.unwrap_err();
        let says = err.as_db_error().map(|e| e.message().to_owned());
        assert_eq!(
            says.as_deref(),
            Some(if sql.starts_with("DELETE") {
                "hub evidence is append-only: DELETE on laptops refused"
            } else {
                "hub evidence is append-only: TRUNCATE on laptops refused"
            }),
            "{sql}: {err}"
        );
    }
    let held: i64 = client
        .query_one("SELECT COUNT(*) FROM laptops", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(held, 1);
}

/// The tables an append updates in place keep room on their pages (migration 6), so that an
/// update of columns no index holds stays on its page and adds no index entry (a HOT update):
/// a row on a page filled by inserts is updated without moving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_of_unindexed_columns_stay_on_their_page() {
    let hub = support::TestHub::start(support::Backend::Postgres).await;
    let client = sql_client(&hub).await;
    // Enough rows to fill several pages, as a fleet's sync fills them.
    client
        .batch_execute(
            "INSERT INTO devices(serial, model, recency, time_us, site, technician, last_event, device)
               SELECT 'SN-' || n, 'infusion-pump', '\\x01', n, 'St. Mary', 'ana', 'device_identified',
                 repeat('d', 300) FROM generate_series(1, 200) AS n;
             INSERT INTO installed(serial, component, product, model, hardware, version, image_hash,
               security_counter, site, customer, technician, event, package, manifest_sha256,
               sbom_sha256, time_us, recency, origin, seq)
               SELECT 'SN-' || n, 'app', 'infusion-pump', 'infusion-pump', 'rev-b', '1.2.3',
                 repeat('h', 64), NULL, 'St. Mary', 'acme', 'ana', 'device_identified', '',
                 repeat('m', 64), repeat('s', 64), n, '\\x01', 'laptop', n
               FROM generate_series(1, 200) AS n",
        )
        .await
        .unwrap();
    for (table, set) in [
        ("devices", "time_us = time_us + 1, site = 'Riverside'"),
        ("installed", "time_us = time_us + 1, site = 'Riverside'"),
    ] {
        // The first page's first row; the counters are this transaction's own.
        client.batch_execute("BEGIN").await.unwrap();
        let n = client
            .execute(
                &format!("UPDATE {table} SET {set} WHERE ctid = '(0,1)'"),
                &[],
            )
            .await
            .unwrap();
        let hot: i64 = client
            .query_one(
                &format!("SELECT pg_stat_get_xact_tuples_hot_updated('{table}'::regclass)"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        client.batch_execute("ROLLBACK").await.unwrap();
        assert_eq!(
            (n, hot),
            (1, 1),
            "{table}: updated, of which on its own page"
        );
    }
}

/// No index keeps entries by event (migration 7): an event filter also selects by the outcome
/// that event implies, which `entries_outcome` serves and whose entries carry the event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_are_indexed_by_outcome_and_not_by_event() {
    let hub = support::TestHub::start(support::Backend::Postgres).await;
    let client = sql_client(&hub).await;
    let mut indexes: Vec<String> = client
        .query(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'entries' ORDER BY indexname",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    indexes.retain(|i| i != "entries_pkey");
    assert_eq!(
        indexes,
        [
            "entries_closes",
            "entries_model",
            "entries_outcome",
            "entries_serial",
            "entries_site",
            "entries_technician",
            "entries_time"
        ]
    );
}
