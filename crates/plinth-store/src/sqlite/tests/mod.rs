//! The conformance suite against SQLite, and what only SQLite has: URLs, durability modes,
//! migrations, a read-only or full disk, and the writer under a burst.

use super::migrate::{MIGRATIONS, migrate};
use super::{SqliteStore, Synchronous, path_from_url};
use crate::{Enqueued, ListFilter, Store, StoreError};
use plinth_core::NewRun;
use plinth_core::ids::new_run_id;
use plinth_core::timefmt::now_micros;
use rusqlite::Connection;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tempfile::TempDir;

mod lanes;
mod pages;
mod readers;

pub(super) fn fresh() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = SqliteStore::open(&dir.path().join("plinth.db"), Synchronous::Full).expect("a fresh store opens");
    (dir, store)
}

/// A run of `function` with `input`, due now.
pub(super) fn new_run(function: &str, input: serde_json::Value) -> NewRun {
    NewRun { input, ..crate::conformance::new_run(function, now_micros()) }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod conformance_suite {
            $(
                #[tokio::test]
                async fn $name() {
                    let (_dir, store) = super::fresh();
                    crate::conformance::$name(&store).await;
                }
            )*
        }
    };
}

crate::conformance::with_every_case!(conformance);

#[tokio::test]
async fn run_all_gives_each_case_a_fresh_store() {
    let mut made = 0;
    crate::conformance::run_all(|| {
        made += 1;
        async {
            let (dir, store) = fresh();
            (dir, Arc::new(store) as Arc<dyn Store>)
        }
    })
    .await;
    assert_eq!(made, crate::conformance::CASES.len(), "one store per case");
}

#[test]
fn sqlite_urls_name_files() {
    let good = [
        ("sqlite://.plinth/plinth.db", ".plinth/plinth.db"),
        ("sqlite:data.db", "data.db"),
        ("sqlite:///var/lib/plinth/plinth.db", "/var/lib/plinth/plinth.db"),
        ("sqlite://plinth.db?mode=rwc", "plinth.db"),
        ("plain/path.db", "plain/path.db"),
        ("/abs/path.db", "/abs/path.db"),
    ];
    for (url, path) in good {
        assert_eq!(path_from_url(url), Ok(PathBuf::from(path)), "{url}");
    }
    for url in
        ["", "sqlite://", "sqlite:", "sqlite://?mode=rwc", "postgres://user@host/db", "postgresql://host/db", "mysql://host/db"]
    {
        let err = path_from_url(url).expect_err(url);
        assert!(err.contains("not a SQLite URL"), "{url}: {err}");
    }
}

#[test]
fn synchronous_modes_parse() {
    for (text, mode) in
        [("full", Synchronous::Full), ("FULL", Synchronous::Full), ("Normal", Synchronous::Normal), ("off", Synchronous::Off)]
    {
        assert_eq!(Synchronous::parse(text), Some(mode), "{text}");
    }
    for text in ["", "on", "fast", " full", "full ", "extra", "0"] {
        assert_eq!(Synchronous::parse(text), None, "{text:?}");
    }
    assert_eq!(Synchronous::default(), Synchronous::Full, "full durability unless asked otherwise");
}

#[tokio::test]
async fn every_mode_opens_and_writes() {
    for mode in [Synchronous::Full, Synchronous::Normal, Synchronous::Off] {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("nested/folder/p.db"), mode).expect("opens, making its folder");
        assert!(matches!(store.enqueue(new_run("echo", json!(1))).await, Ok(Enqueued::Created(_))), "{mode:?}");
        assert_eq!(store.backend(), "sqlite");
    }
}

#[test]
fn open_fails_where_no_folder_can_be() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a folder").expect("write a file");
    let err = SqliteStore::open(&file.join("plinth.db"), Synchronous::Full).expect_err("a file is not a folder");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = SqliteStore::open(&file, Synchronous::Full).expect_err("a text file is not a database");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

fn applied(path: &Path) -> Vec<(i64, String, i64)> {
    let conn = Connection::open(path).expect("open");
    let mut stmt = conn.prepare("SELECT version, checksum, applied_at FROM plinth_migrations ORDER BY version").expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).expect("query").collect::<Result<_, _>>().expect("rows")
}

#[tokio::test]
async fn reopening_applies_nothing_again_and_keeps_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("plinth.db");
    let store = SqliteStore::open(&path, Synchronous::Full).expect("open");
    let run = new_run("echo", json!({ "kept": true }));
    assert!(matches!(store.enqueue(run.clone()).await, Ok(Enqueued::Created(_))));
    drop(store);
    let first = applied(&path);
    assert_eq!(first.len(), MIGRATIONS.len(), "every migration applied once: {first:?}");

    let store = SqliteStore::open(&path, Synchronous::Normal).expect("reopen");
    assert_eq!(applied(&path), first, "reopening re-applies nothing");
    let back = store.get(&run.run_id, false).await.expect("get").expect("the run survived");
    assert_eq!(back.input, json!({ "kept": true }));
    let mut conn = Connection::open(&path).expect("open");
    assert_eq!(migrate(&mut conn, MIGRATIONS).expect("migrate"), 0, "an up-to-date database needs nothing");
}

#[test]
fn migrations_apply_in_order_and_refuse_edits() {
    let mut conn = Connection::open_in_memory().expect("memory db");
    let one = (1, "one", "CREATE TABLE a (x INTEGER);");
    let two = (2, "two", "CREATE TABLE b (y INTEGER);");
    assert_eq!(migrate(&mut conn, &[one]).expect("first"), 1);
    assert_eq!(migrate(&mut conn, &[one]).expect("again"), 0, "nothing to apply twice");
    assert_eq!(migrate(&mut conn, &[one, two]).expect("a new one"), 1, "only the new migration is applied");
    assert_eq!(migrate(&mut conn, &[]).ok(), None, "no migration known, yet the database has two");

    let edited = (1, "one", "CREATE TABLE a (x INTEGER, z TEXT);");
    let three = (3, "three", "CREATE TABLE c (z INTEGER);");
    match migrate(&mut conn, &[edited, two, three]) {
        Err(StoreError::Schema(msg)) => assert!(msg.contains("migration 1") && msg.contains("changed"), "{msg}"),
        other => panic!("an edited applied migration must be refused, got {other:?}"),
    }
    let tables: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_master WHERE name = 'c'", [], |r| r.get(0)).expect("count");
    assert_eq!(tables, 0, "nothing after a refused edit is applied");
    match migrate(&mut conn, &[one]) {
        Err(StoreError::Schema(msg)) => assert!(msg.contains("version 2") && msg.contains("newer"), "{msg}"),
        other => panic!("a database newer than the migrations must be refused, got {other:?}"),
    }
    assert_eq!(migrate(&mut conn, &[one, two, three]).expect("the next one"), 1);
}

#[test]
fn a_broken_migration_leaves_no_trace() {
    let mut conn = Connection::open_in_memory().expect("memory db");
    let broken = (1, "broken", "CREATE TABLE t (x INTEGER); THIS IS NOT SQL;");
    assert!(matches!(migrate(&mut conn, &[broken]), Err(StoreError::Unavailable(_))), "bad SQL fails the migration");
    let t: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_master WHERE name = 't'", [], |r| r.get(0)).expect("count");
    let rows: i64 = conn.query_row("SELECT COUNT(*) FROM plinth_migrations", [], |r| r.get(0)).expect("count");
    assert_eq!((t, rows), (0, 0), "the failed migration is rolled back whole");
}

#[test]
fn open_refuses_a_newer_or_edited_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("plinth.db");
    drop(SqliteStore::open(&path, Synchronous::Full).expect("open"));
    let conn = Connection::open(&path).expect("open");
    conn.execute("INSERT INTO plinth_migrations VALUES (99, 'future', 'x', 0)", []).expect("a future migration");
    let err = SqliteStore::open(&path, Synchronous::Full).expect_err("a newer database");
    assert!(matches!(&err, StoreError::Schema(m) if m.contains("99")), "{err:?}");

    conn.execute("DELETE FROM plinth_migrations WHERE version = 99", []).expect("forget it");
    conn.execute("UPDATE plinth_migrations SET checksum = 'edited' WHERE version = 1", []).expect("edit");
    let err = SqliteStore::open(&path, Synchronous::Full).expect_err("an edited migration");
    assert!(matches!(&err, StoreError::Schema(m) if m.contains("changed")), "{err:?}");
}

#[tokio::test]
async fn a_read_only_database_is_unavailable_not_a_panic() {
    let (_dir, store) = fresh();
    let before = new_run("echo", json!(1));
    assert!(matches!(store.enqueue(before.clone()).await, Ok(Enqueued::Created(_))));
    store.debug_pragma("PRAGMA query_only = 1").await.expect("set query_only");

    let refused = store.enqueue(new_run("echo", json!(2))).await;
    assert!(matches!(refused, Err(StoreError::Unavailable(_))), "enqueue on a read-only database: {refused:?}");
    let check = store.check().await;
    assert!(matches!(check, Err(StoreError::Unavailable(_))), "check on a read-only database: {check:?}");
    let cancel = store.cancel(&before.run_id, now_micros()).await;
    assert!(matches!(cancel, Err(StoreError::Unavailable(_))), "cancel on a read-only database: {cancel:?}");
    let run = store.get(&before.run_id, false).await.expect("reads still work").expect("the run is there");
    assert_eq!(run.status, plinth_core::RunStatus::Queued, "the refused cancel changed nothing");
    let page = store.list(ListFilter { limit: 10, ..ListFilter::default() }).await.expect("list still works");
    assert_eq!(page.runs.len(), 1, "the refused enqueue wrote nothing");

    // Why: the writer begins every batch with BEGIN IMMEDIATE, which query_only refuses, so
    // not even `PRAGMA query_only = 0` gets through: the writer keeps answering, refusing.
    match store.enqueue(new_run("echo", json!(3))).await {
        Err(StoreError::Unavailable(msg)) => assert!(!msg.contains("writer thread stopped"), "the writer must live on: {msg}"),
        other => panic!("still read-only: {other:?}"),
    }
}

#[tokio::test]
async fn bad_sql_on_the_writer_is_an_error_not_a_panic() {
    let (_dir, store) = fresh();
    let bad = store.debug_pragma("THIS IS NOT SQL").await;
    assert!(matches!(bad, Err(StoreError::Unavailable(_))), "bad SQL is an error: {bad:?}");
    store.check().await.expect("the writer survives bad SQL");
    assert!(matches!(store.enqueue(new_run("echo", json!(1))).await, Ok(Enqueued::Created(_))), "and still writes");
}

#[tokio::test]
async fn a_full_disk_is_unavailable_not_a_panic() {
    let (dir, store) = fresh();
    // Why: the cap leaves room for a few runs past what the schema itself takes.
    let pages: u32 = rusqlite::Connection::open(dir.path().join("plinth.db"))
        .and_then(|c| c.query_row("PRAGMA page_count", [], |r| r.get(0)))
        .expect("the file's pages");
    store.debug_pragma(&format!("PRAGMA max_page_count = {}", pages + 24)).await.expect("cap the file");
    let big = "z".repeat(32 * 1024);
    let mut written = 0;
    let mut failure = None;
    for i in 0..200 {
        match store.enqueue(new_run("echo", json!({ "i": i, "pad": big }))).await {
            Ok(Enqueued::Created(_)) => written += 1,
            Ok(other) => panic!("a new run was not created: {other:?}"),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    assert!(
        matches!(&failure, Some(StoreError::Unavailable(msg)) if msg.contains("full")),
        "a full disk must refuse writes as unavailable: {failure:?} after {written}"
    );
    assert!(written > 0, "the capped file still took a few runs before it filled");
    let page = store.list(ListFilter { limit: 1000, ..ListFilter::default() }).await.expect("reads still work");
    assert_eq!(page.runs.len(), written, "every accepted run is there, the refused one is not");
    let health = store.check().await;
    assert!(matches!(&health, Err(StoreError::Unavailable(msg)) if msg.contains("full")), "the health probe sees it: {health:?}");

    store.debug_pragma("PRAGMA max_page_count = 1073741823").await.expect("uncap the file");
    assert!(matches!(store.enqueue(new_run("echo", json!({ "pad": big }))).await, Ok(Enqueued::Created(_))), "writes come back");
    store.check().await.expect("and so does health");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_enqueues_all_land() {
    let (_dir, store) = fresh();
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..500 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let run = new_run("burst", json!({ "i": i }));
            let id = run.run_id.clone();
            match store.enqueue(run).await {
                Ok(Enqueued::Created(created)) => assert_eq!(created.run_id, id),
                other => panic!("enqueue {i} of the burst: {other:?}"),
            }
            (i, id)
        }));
    }
    let mut made = Vec::new();
    for task in tasks {
        made.push(task.await.expect("the enqueue task ran"));
    }
    for (i, id) in &made {
        let run = store.get(id, false).await.expect("get").unwrap_or_else(|| panic!("run {i} of the burst is missing"));
        assert_eq!(run.input, json!({ "i": i }), "run {i} kept its input");
    }
    let page =
        store.list(ListFilter { function: Some("burst".into()), limit: 1000, ..ListFilter::default() }).await.expect("list");
    assert_eq!((page.runs.len(), page.next_cursor), (500, None), "all 500 runs are listed");
    assert_eq!(store.queue_depth().await.expect("depth"), vec![("burst".to_string(), 500)]);
}

#[tokio::test]
async fn lines_of_an_unknown_run_are_not_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("plinth.db");
    let store = SqliteStore::open(&path, Synchronous::Full).expect("open");
    let line = crate::LogLine { seq: 0, ts: now_micros(), line: "orphan".into() };
    store.append_logs(&new_run_id(), 1, vec![line.clone()]).await.expect("not an error");
    let Enqueued::Created(run) = store.enqueue(new_run("echo", json!(1))).await.expect("enqueue") else { panic!("created") };
    store.append_logs(&run.run_id, 1, vec![line]).await.expect("append");
    let conn = Connection::open(&path).expect("open");
    let rows: Vec<String> = conn
        .prepare("SELECT run_id FROM run_logs")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(rows, vec![run.run_id], "only the known run's line is stored, so pruning leaves nothing behind");
}

#[test]
fn plans_stay_put_while_limits_change() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (conn, _) = super::prepare(&dir.path().join("p.db"), Synchronous::Normal).expect("prepare");
    assert!(
        conn.db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG).expect("read the setting"),
        "the writer keeps its plans"
    );
    conn.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2), (3);").expect("fill");
    // Why: a kept plan must still read the limit bound at each run, including 0 and past the end.
    for (limit, rows) in [(2, 2), (0, 0), (1, 1), (9, 3), (-1, 3)] {
        let n: Vec<i64> = conn
            .prepare_cached("SELECT x FROM t ORDER BY x LIMIT ?1")
            .expect("prepare")
            .query_map([limit], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(n.len(), rows, "LIMIT {limit}");
    }
}

#[tokio::test]
async fn a_wait_stored_before_wait_match_existed_still_wakes() {
    let (_dir, store) = fresh();
    let (old, new) = crate::conformance::waits_before_their_match_value(&store).await;
    store.debug_pragma(&format!("UPDATE steps SET wait_match = NULL WHERE run_id = '{old}'")).await.expect("forget it");
    crate::conformance::a_wait_stored_before_its_match_value_wakes(&store, &old, &new).await;
}
