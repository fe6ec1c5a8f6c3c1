//! The storage conformance suite on a real PostgreSQL server, started by the test itself (see
//! `support/pg.rs`), each test in a database of its own.

mod conformance;
mod support;

conformance!(support::Backend::Postgres);

/// Entries carry no foreign key to their laptop (migration 5: the append already holds the
/// laptop's row locked); an entry still never outlives its laptop, because no laptop can be
/// deleted or truncated away, even by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_laptop_cannot_be_deleted_or_truncated_under_its_entries() {
    let hub = support::TestHub::start(support::Backend::Postgres).await;
    let (client, conn) = tokio_postgres::connect(&hub.db_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
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
