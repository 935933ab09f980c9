//! Event ids on PostgreSQL (migration 0020, decision 0038): one unique index on `(id,
//! dedup_key)` both finds an id's events and keeps an id unique within the dedup window; the
//! insert has no `ON CONFLICT`, so an id stored by another transaction meanwhile makes the
//! ingest start over, and it then answers the other one's event.

use super::super::PostgresStore;
use super::super::migrate::{MIGRATIONS, migrate};
use super::{Scratch, database_url, fresh, side_pool};
use crate::{NewEvent, Store};
use plinth_core::timefmt::now_micros;
use plinth_core::{Event, NewRun, Trigger};
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;

const SEC: i64 = 1_000_000;

fn event(id: &str, at: i64) -> Event {
    Event { id: id.into(), name: "shop/order.paid".into(), data: json!({"id": id}), ts: at / 1000, received_at: at }
}

fn with_run(event: &Event) -> NewEvent {
    let run = NewRun {
        input: event.as_input(),
        trigger: Trigger::Event { event_id: event.id.clone() },
        ..crate::conformance::new_run("receipt", event.received_at)
    };
    NewEvent { event: event.clone(), runs: vec![run], skipped: vec![], cancels: vec![] }
}

/// The events table's rows of `id`: (received_at, dedup_key), oldest first.
async fn rows_of(side: &PgPool, schema: &str, id: &str) -> Vec<(i64, Option<String>)> {
    sqlx::query_as(&format!("SELECT received_at, dedup_key FROM \"{schema}\".events WHERE id = $1 ORDER BY pk"))
        .bind(id)
        .fetch_all(side)
        .await
        .expect("read the events")
}

/// An uncommitted event of the same id on another connection holds the ingest at the unique
/// index; once it commits, the ingest starts over and answers that event and its run as a
/// duplicate, storing no run of its own.
#[tokio::test]
async fn an_id_stored_meanwhile_elsewhere_is_answered_as_a_duplicate() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let side = side_pool(&database_url().expect("set")).await;
    let t0 = now_micros();
    let mut other = side.begin().await.expect("a side transaction");
    let sql = format!(
        "INSERT INTO \"{}\".events (pk, id, name, data, ts, received_at, dedup_key, run_ids, skipped) \
         VALUES ('0000000000000000000000000A', 'order-1', 'shop/order.paid', '{{}}', 0, $1, 'order-1', '[\"r-other\"]', '[]')",
        scratch.schema
    );
    sqlx::query(&sql).bind(t0).execute(&mut *other).await.expect("the other node's event, not committed");
    let store = std::sync::Arc::new(store);
    let ingesting = {
        let store = store.clone();
        tokio::spawn(async move { store.ingest(vec![with_run(&event("order-1", t0))], t0 - 3600 * SEC, None).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!ingesting.is_finished(), "the ingest waits for the other transaction at the unique index");
    other.commit().await.expect("the other node commits");
    let answer = ingesting.await.expect("the ingest task ran").expect("the ingest starts over and succeeds");
    assert!(answer[0].duplicate, "{answer:?}");
    assert_eq!(answer[0].run_ids, vec!["r-other".to_string()], "it answers the other event's runs");
    assert_eq!(rows_of(&side, &scratch.schema, "order-1").await.len(), 1, "one event stored");
    let runs = store.list(crate::ListFilter { limit: 10, ..crate::ListFilter::default() }).await.expect("list");
    assert!(runs.runs.is_empty(), "the ingest that lost stored no run: {:?}", runs.runs);
    side.close().await;
    store.close().await;
    scratch.drop_now().await;
}

/// An id whose event is older than the window keeps its key until the id comes back: that
/// ingest clears the old key and stores the new event, which alone holds the key; the pruner
/// deletes old events without touching keys.
#[tokio::test]
async fn an_old_id_keeps_its_key_until_it_comes_back() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let side = side_pool(&database_url().expect("set")).await;
    let t0 = now_micros();
    store.ingest(vec![with_run(&event("order-2", t0 - 100 * SEC))], t0 - 3600 * SEC, None).await.expect("first");
    store.ingest(vec![with_run(&event("order-3", t0 - 200 * SEC))], t0 - 3600 * SEC, None).await.expect("first");
    assert_eq!(store.prune_events(t0 - 150 * SEC, t0 - 50 * SEC, 100).await.expect("prune"), 1, "order-3 only");
    assert_eq!(rows_of(&side, &scratch.schema, "order-2").await, vec![(t0 - 100 * SEC, Some("order-2".into()))]);
    let again = store.ingest(vec![with_run(&event("order-2", t0))], t0 - 50 * SEC, None).await.expect("again");
    assert!(!again[0].duplicate, "past the window the id is new");
    assert_eq!(again[0].run_ids.len(), 1);
    assert_eq!(
        rows_of(&side, &scratch.schema, "order-2").await,
        vec![(t0 - 100 * SEC, None), (t0, Some("order-2".into()))],
        "the old event let go of the key; the new one holds it"
    );
    let repeat = store.ingest(vec![with_run(&event("order-2", t0 + SEC))], t0 - 50 * SEC, None).await.expect("repeat");
    assert!(repeat[0].duplicate && repeat[0].run_ids == again[0].run_ids, "{repeat:?}");
    assert_eq!(store.event("order-2").await.expect("read").expect("stored").event.received_at, t0, "the newest");
    side.close().await;
    store.close().await;
    scratch.drop_now().await;
}

/// Events stored under migration 0019's indexes keep deduplicating after 0020: an id still in
/// its window is a duplicate, one whose key the old pruner had cleared is stored again.
#[tokio::test]
async fn events_stored_before_migration_20_keep_deduplicating() {
    let Some(url) = database_url() else { return };
    let mut scratch = Scratch::new(&url);
    let side = side_pool(&url).await;
    migrate(&side, &scratch.schema, &MIGRATIONS[..19]).await.expect("migrations 1 to 19");
    let t0 = now_micros();
    let sql = format!(
        "INSERT INTO \"{}\".events (pk, id, name, data, ts, received_at, dedup_key, run_ids, skipped) VALUES \
         ('0000000000000000000000000A', 'kept', 'shop/order.paid', '{{}}', 0, $1, 'kept', '[\"r-kept\"]', '[]'), \
         ('0000000000000000000000000B', 'forgotten', 'shop/order.paid', '{{}}', 0, $2, NULL, '[]', '[]')",
        scratch.schema
    );
    sqlx::query(&sql).bind(t0 - SEC).bind(t0 - 100 * SEC).execute(&side).await.expect("events stored under 0019");
    let store = PostgresStore::connect(&url, &scratch.schema).await.expect("connect applies 0020");
    let indexes: Vec<String> =
        sqlx::query_scalar("SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 AND tablename = 'events' ORDER BY 1")
            .bind(&scratch.schema)
            .fetch_all(&side)
            .await
            .expect("the indexes");
    assert_eq!(indexes, ["events_by_age", "events_by_id_dedup", "events_by_name", "events_pkey"]);
    let answers = store
        .ingest(vec![with_run(&event("kept", t0)), with_run(&event("forgotten", t0))], t0 - 50 * SEC, None)
        .await
        .expect("ingest");
    assert!(answers[0].duplicate && answers[0].run_ids == ["r-kept"], "{:?}", answers[0]);
    assert!(!answers[1].duplicate && answers[1].run_ids.len() == 1, "{:?}", answers[1]);
    assert_eq!(rows_of(&side, &scratch.schema, "forgotten").await, vec![(t0 - 100 * SEC, None), (t0, Some("forgotten".into()))]);
    side.close().await;
    store.close().await;
    scratch.drop_now().await;
}
