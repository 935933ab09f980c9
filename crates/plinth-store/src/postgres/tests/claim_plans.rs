//! The claims' connection (decision 0037): the claim's probe and its pick read each function's
//! queue in order, even when the statistics were taken before a burst queued the runs, and the
//! connection keeps its settings across a reconnect.

use super::super::dedicated::{CLAIM_SETUP, Dedicated};
use super::super::flow::custom_plans;
use super::super::leases::{DUE_SQL, WAKE_LEFT_SQL, claim_sql, claim_with_waits_sql};
use super::plans::{CLAIM_PARAMS, generic_scans, plan_cache_mode};
use super::{database_url, fresh, side_pool};
use crate::StoreError;
use sqlx::{Connection, Executor, PgConnection};

const DUE_PARAMS: [&str; 4] = ["bigint", "text[]", "bigint", "text[]"];

/// Statistics taken while nothing was queued, then a burst of 30,000 queued runs of one
/// function that no ANALYZE has seen yet: on the claims' connection, the claim's probe of each
/// wanted function and its pick of a function's runs read that function's queue in order
/// (`runs_queue`), never every due run through `runs_due`.
#[tokio::test]
async fn the_claim_reads_each_functions_queue_when_the_statistics_saw_none_queued() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let mut conn = PgConnection::connect(&database_url().expect("set")).await.expect("connect");
    let schema = scratch.schema.clone();
    conn.execute(format!("SET search_path TO \"{schema}\"").as_str()).await.expect("search path");
    let fill = "INSERT INTO runs (id, function, status, attempt, max_attempts, input, created_at, next_attempt_at, correlation_id, \
          finished_at) SELECT 'a' || lpad(g::text, 25, '0'), 'old', 'succeeded', 1, 3, 'null', g, g, 'c', g FROM generate_series(1, 20000) g; \
        ANALYZE runs; \
        INSERT INTO runs (id, function, status, attempt, max_attempts, input, created_at, next_attempt_at, correlation_id) \
        SELECT 'b' || lpad(g::text, 25, '0'), 'burst', 'queued', 0, 3, 'null', g, g, 'c' FROM generate_series(1, 30000) g";
    conn.execute(fill).await.expect("fill, analyze, then queue 30,000");
    let due_reads = |scans: &[(String, String, String)]| {
        scans.iter().filter(|(_, index, cond)| index == "runs_due" && cond.contains("<=")).count()
    };
    // The check is not vacuous: with sorting allowed, both read the due runs of every function.
    let scans = generic_scans(&mut conn, &schema, "due_sorting", DUE_SQL, &DUE_PARAMS).await;
    assert_eq!(due_reads(&scans), 1, "the probe sorted the due runs: {scans:?}");
    let scans = generic_scans(&mut conn, &schema, "claim_sorting", &claim_sql(), &CLAIM_PARAMS).await;
    assert_eq!(due_reads(&scans), 1, "the pick sorted the due runs: {scans:?}");

    conn.execute(CLAIM_SETUP).await.expect("the claims' setup");
    let scans = generic_scans(&mut conn, &schema, "due", DUE_SQL, &DUE_PARAMS).await;
    assert_eq!(due_reads(&scans), 0, "{scans:?}");
    assert!(scans.iter().any(|(_, index, _)| index == "runs_queue"), "the probe reads the function's queue: {scans:?}");
    let scans = generic_scans(&mut conn, &schema, "claim", &claim_sql(), &CLAIM_PARAMS).await;
    let indexes: Vec<&str> = scans.iter().map(|(_, index, _)| index.as_str()).collect();
    assert_eq!(indexes, ["runs_queue", "runs_pkey"], "{scans:?}");
    // A function with due waits: its queue in order, its due waits in due order (never every
    // run of the function waiting on an event), then the leased runs by key.
    conn.execute(
        "INSERT INTO runs (id, function, status, attempt, max_attempts, input, created_at, next_attempt_at, correlation_id) \
         SELECT 'w' || lpad(g::text, 25, '0'), 'burst', 'waiting', 0, 3, 'null', g, 9000000000000000000, 'c' \
         FROM generate_series(1, 20000) g",
    )
    .await
    .expect("20,000 runs waiting on events");
    let scans = generic_scans(&mut conn, &schema, "claim_waits", &claim_with_waits_sql(), &CLAIM_PARAMS).await;
    let indexes: Vec<&str> = scans.iter().map(|(_, index, _)| index.as_str()).collect();
    assert_eq!(indexes, ["runs_queue", "runs_waiting", "runs_pkey"], "{scans:?}");
    let scans = generic_scans(&mut conn, &schema, "due_waits", DUE_SQL, &DUE_PARAMS).await;
    assert!(scans.iter().filter(|(_, index, _)| index == "runs_waiting").count() >= 2, "the due waits in due order: {scans:?}");
    assert!(!scans.iter().any(|(_, index, _)| index == "runs_by_function_status"), "{scans:?}");
    let scans = generic_scans(&mut conn, &schema, "wake_left", WAKE_LEFT_SQL, &["bigint", "text[]"]).await;
    assert!(scans.iter().any(|(_, index, _)| index == "runs_waiting"), "{scans:?}");
    conn.close().await.expect("close");
    store.close().await;
    scratch.drop_now().await;
}

#[tokio::test]
async fn the_claims_connection_keeps_its_settings_across_a_reconnect() {
    let Some(url) = database_url() else { return };
    let pool = side_pool(&url).await;
    let mut claims = Dedicated::with_setup(pool.clone(), CLAIM_SETUP);
    let sort = async |d: &mut Dedicated| -> Result<String, StoreError> {
        d.run(async |c| Ok(sqlx::query_scalar("SHOW enable_sort").fetch_one(&mut *c).await?)).await
    };
    assert_eq!(plan_cache_mode(&mut claims).await.expect("show"), "force_generic_plan");
    assert_eq!(sort(&mut claims).await.expect("show"), "off");
    let jit = async |d: &mut Dedicated| -> Result<String, StoreError> {
        d.run(async |c| Ok(sqlx::query_scalar("SHOW jit").fetch_one(&mut *c).await?)).await
    };
    assert_eq!(jit(&mut claims).await.expect("show"), "off", "no JIT for the claims' short statements");
    let failed: Result<(), StoreError> =
        claims.run(async |c| Ok(c.execute("SELECT no_such_column FROM pg_class").await.map(|_| ())?)).await;
    assert!(failed.is_err(), "a failed use drops the connection");
    assert_eq!(sort(&mut claims).await.expect("show"), "off", "the new connection is set up too");
    assert_eq!(jit(&mut claims).await.expect("show"), "off", "the new connection is set up too");
    let inside = claims
        .run(async |c| {
            let mut tx = sqlx::Connection::begin(&mut *c).await?;
            custom_plans(&mut tx).await?;
            let s: String = sqlx::query_scalar("SHOW enable_sort").fetch_one(&mut *tx).await?;
            let h: String = sqlx::query_scalar("SHOW enable_hashjoin").fetch_one(&mut *tx).await?;
            let q: String = sqlx::query_scalar("SHOW enable_seqscan").fetch_one(&mut *tx).await?;
            tx.commit().await?;
            Ok((s, h, q))
        })
        .await
        .expect("a lanes' transaction");
    assert_eq!(inside, ("on".into(), "on".into(), "on".into()), "the lanes' statements are planned as before");
    assert_eq!(sort(&mut claims).await.expect("show"), "off", "for their transaction only");
    let hash: String =
        claims.run(async |c| Ok(sqlx::query_scalar("SHOW enable_hashjoin").fetch_one(&mut *c).await?)).await.expect("show");
    assert_eq!(hash, "off", "the claim's join on the picked runs' ids stays a nested loop");
    let seq: String =
        claims.run(async |c| Ok(sqlx::query_scalar("SHOW enable_seqscan").fetch_one(&mut *c).await?)).await.expect("show");
    assert_eq!(seq, "off", "no table read whole in a plan made while it was empty");
    assert_eq!(sort(&mut Dedicated::new(pool.clone())).await.expect("show"), "on", "without a setup nothing is set");
    pool.close().await;
}
