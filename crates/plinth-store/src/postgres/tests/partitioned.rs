//! The store on run tables partitioned by run id, as decision 0026's plan would have them: the
//! whole conformance suite again, and what partitions change in the hot statements' plans.
//!
//! The schema is the migrated one, converted in place: the tables' rows stay in their first
//! partition; daily partitions cover a week behind and two days ahead; one more takes the ids
//! not made from a time (tests write such ids). No migration does this yet.

use super::{Scratch, database_url, new_run, side_pool};
use crate::postgres::PostgresStore;
use crate::postgres::dedicated::ENDS_SETUP;
use crate::postgres::finish::FINISH_SQL;
use crate::postgres::migrate::{MIGRATIONS, migrate};
use crate::{ClaimRequest, Enqueued, FinishRequest, Store};
use plinth_core::ids::id_floor;
use plinth_core::timefmt::now_micros;
use plinth_core::{Finish, RunStatus};
use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection, Row};
use std::time::Duration;

use super::plans::FINISH_PARAMS;

pub(super) const DAY_MICROS: i64 = 86_400_000_000;

/// The run tables and the column each is partitioned by.
const TABLES: [(&str, &str); 4] = [("runs", "id"), ("attempts", "run_id"), ("run_logs", "run_id"), ("steps", "run_id")];

/// A table's indexes (name, definition, whether it is the primary key) or triggers (name,
/// definition), read from the catalogue.
async fn catalogue(conn: &mut PgConnection, sql: &str, schema: &str, table: &str) -> Vec<(String, String, bool)> {
    let rows = sqlx::query(sql).bind(schema).bind(table).fetch_all(&mut *conn).await.expect("the catalogue");
    rows.into_iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
}

const INDEXES: &str = "SELECT i.relname::text, pg_get_indexdef(x.indexrelid), x.indisprimary FROM pg_index x \
    JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
    JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = $1 AND t.relname = $2";
const TRIGGERS: &str = "SELECT g.tgname::text, pg_get_triggerdef(g.oid), false FROM pg_trigger g \
    JOIN pg_class t ON t.oid = g.tgrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
    WHERE n.nspname = $1 AND t.relname = $2 AND NOT g.tgisinternal";

/// The statements that turn `table` (with `indexes` and `triggers`) into a table partitioned by
/// `key` at `bounds`, its existing rows kept as the first partition.
fn conversion(schema: &str, (table, key): (&str, &str), bounds: &[String], indexes: &[(String, String, bool)]) -> String {
    let q = |name: &str| format!("\"{schema}\".\"{name}\"");
    let first = format!("{table}_p0");
    let mut sql = format!("ALTER TABLE {} RENAME TO \"{first}\";\n", q(table));
    for (name, _, primary) in indexes {
        sql += &if *primary {
            format!("ALTER TABLE {} RENAME CONSTRAINT \"{name}\" TO \"{first}_pkey\";\n", q(&first))
        } else {
            format!("ALTER INDEX {} RENAME TO \"{name}_p0\";\n", q(name))
        };
    }
    sql +=
        &format!("CREATE TABLE {} (LIKE {} INCLUDING ALL EXCLUDING INDEXES) PARTITION BY RANGE ({key});\n", q(table), q(&first));
    sql += &format!("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM (MINVALUE) TO ('{}');\n", q(table), q(&first), bounds[0]);
    for (n, pair) in bounds.windows(2).enumerate() {
        let part = q(&format!("{table}_p{}", n + 1));
        sql += &format!("CREATE TABLE {part} PARTITION OF {} FOR VALUES FROM ('{}') TO ('{}');\n", q(table), pair[0], pair[1]);
    }
    let last = bounds.last().expect("bounds");
    // Why '8': a time-made id starts with 0 to 7 (48 bits of milliseconds in base 32).
    sql += &format!(
        "CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ('{last}') TO ('8');\n",
        q(&format!("{table}_ahead")),
        q(table)
    );
    sql += &format!(
        "CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ('8') TO (MAXVALUE);\n",
        q(&format!("{table}_other")),
        q(table)
    );
    sql
}

/// Turns the run tables of `schema` (migrated, not yet used by a store) into tables partitioned
/// by run id. Statistics are left untaken, as on a fresh schema.
pub(super) async fn partition(conn: &mut PgConnection, schema: &str) {
    let today = now_micros() / DAY_MICROS * DAY_MICROS;
    let bounds: Vec<String> = (-7..=2).map(|d| id_floor(today + d * DAY_MICROS)).collect();
    for (table, key) in TABLES {
        let indexes = catalogue(conn, INDEXES, schema, table).await;
        let triggers = catalogue(conn, TRIGGERS, schema, table).await;
        let mut sql = String::new();
        // Why: a statement trigger on a partition fires only for statements naming it.
        for (name, _, _) in &triggers {
            sql += &format!("DROP TRIGGER \"{name}\" ON \"{schema}\".\"{table}\";\n");
        }
        sql += &conversion(schema, (table, key), &bounds, &indexes);
        for (name, def, primary) in &indexes {
            sql += &if *primary {
                let pkey: String = sqlx::query_scalar(
                    "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
                     WHERE n.nspname = $1 AND c.conname = $2",
                )
                .bind(schema)
                .bind(name)
                .fetch_one(&mut *conn)
                .await
                .expect("the primary key");
                format!("ALTER TABLE \"{schema}\".\"{table}\" ADD CONSTRAINT \"{name}\" {pkey};\n")
            } else {
                // The definition names the table, which is now the partitioned one.
                format!("{def};\n")
            };
        }
        for (_, def, _) in &triggers {
            sql += &format!("{def};\n");
        }
        conn.execute(sql.as_str()).await.unwrap_or_else(|e| panic!("{table} partitioned: {e}\n{sql}"));
    }
}

/// A store on a fresh scratch schema whose run tables are partitioned, or `None` when the
/// tests are skipped.
pub(super) async fn fresh_partitioned() -> Option<(Scratch, PostgresStore)> {
    let url = database_url()?;
    let scratch = Scratch::new(&url);
    let side = side_pool(&url).await;
    migrate(&side, &scratch.schema, MIGRATIONS).await.expect("migrated");
    partition(&mut side.acquire().await.expect("a side connection"), &scratch.schema).await;
    side.close().await;
    let store = PostgresStore::connect(&url, &scratch.schema).await.expect("a partitioned store connects");
    Some((scratch, store))
}

macro_rules! conformance_on_partitions {
    ($($name:ident),* $(,)?) => {
        mod conformance_on_partitions {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some((mut scratch, store)) = super::fresh_partitioned().await else { return };
                    crate::conformance::$name(&store).await;
                    store.close().await;
                    scratch.drop_now().await;
                }
            )*
        }
    };
}

crate::conformance::with_every_case!(conformance_on_partitions);

/// The partition that holds the row of `table` whose `column` is `id`, unquoted.
async fn partition_of(conn: &mut PgConnection, schema: &str, table: &str, column: &str, id: &str) -> Option<String> {
    let sql = format!("SELECT tableoid::regclass::text FROM \"{schema}\".\"{table}\" WHERE {column} = $1");
    let found: Option<String> = sqlx::query_scalar(&sql).bind(id).fetch_optional(&mut *conn).await.expect("the partition");
    found.map(|name| name.replace('"', "").rsplit('.').next().unwrap_or_default().to_string())
}

async fn claim_one(store: &PostgresStore, owner: &str, function: &str) -> Vec<plinth_core::Run> {
    let now = now_micros();
    let wants = vec![(function.to_string(), 1)];
    let req =
        ClaimRequest { owner: owner.into(), now, lease_until: now + 30_000_000, wants, limit: 1, limits: Default::default() };
    store.claim(req).await.expect("claim").runs
}

#[tokio::test]
async fn a_run_and_its_attempt_are_kept_in_the_partition_of_their_day() {
    let Some((mut scratch, store)) = fresh_partitioned().await else { return };
    let Enqueued::Created(run) = store.enqueue(new_run("f", json!(1))).await.expect("enqueue") else { panic!("created") };
    assert_eq!(claim_one(&store, "node-a", "f").await.len(), 1, "the run is claimed");
    let today = now_micros() / DAY_MICROS * DAY_MICROS;
    assert!(id_floor(today) <= run.run_id && run.run_id < id_floor(today + DAY_MICROS), "{} is of today", run.run_id);
    let mut conn = PgConnection::connect(&database_url().expect("set")).await.expect("connect");
    let s = scratch.schema.clone();
    assert_eq!(partition_of(&mut conn, &s, "runs", "id", &run.run_id).await.as_deref(), Some("runs_p8"), "today's partition");
    assert_eq!(partition_of(&mut conn, &s, "attempts", "run_id", &run.run_id).await.as_deref(), Some("attempts_p8"));
    let finish = Finish::Succeeded(json!({"ok": true}));
    let req = FinishRequest {
        run_id: run.run_id.clone(),
        owner: "node-a".into(),
        attempt: 1,
        finish,
        now: now_micros(),
        duration: Duration::ZERO,
    };
    assert!(store.finish(req).await.expect("finish"), "the end is recorded");
    let ended = store.get(&run.run_id, false).await.expect("get").expect("the run");
    assert_eq!(ended.status, RunStatus::Succeeded);
    conn.close().await.expect("close");
    store.close().await;
    scratch.drop_now().await;
}

#[tokio::test]
async fn a_run_whose_id_is_not_made_from_a_time_is_kept_apart() {
    let Some((mut scratch, store)) = fresh_partitioned().await else { return };
    let mut conn = PgConnection::connect(&database_url().expect("set")).await.expect("connect");
    let s = scratch.schema.clone();
    conn.execute(format!("SET search_path TO \"{s}\"").as_str()).await.expect("search path");
    let insert = format!(
        "INSERT INTO \"{s}\".runs (id, function, status, attempt, max_attempts, input, created_at, next_attempt_at, correlation_id) \
         VALUES ('not-a-time', 'f', 'queued', 0, 3, 'null', 1, 1, 'c'), ('00', 'f', 'queued', 0, 3, 'null', 1, 1, 'c')"
    );
    conn.execute(insert.as_str()).await.expect("stored");
    assert_eq!(partition_of(&mut conn, &s, "runs", "id", "not-a-time").await.as_deref(), Some("runs_other"));
    assert_eq!(partition_of(&mut conn, &s, "runs", "id", "00").await.as_deref(), Some("runs_p0"), "before every day");
    assert!(store.get("not-a-time", false).await.expect("get").is_some(), "the store reads it");
    assert!(store.get("missing", false).await.expect("get").is_none(), "an unknown id is none");
    conn.close().await.expect("close");
    store.close().await;
    scratch.drop_now().await;
}

/// The partitions of `runs` and `attempts` whose scans `plan` (EXPLAIN ANALYZE, JSON) ran.
fn executed_scans(plan: &Value, out: &mut Vec<String>) {
    let text = |k: &str| plan.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let loops = plan.get("Actual Loops").and_then(Value::as_u64).unwrap_or(0);
    let relation = text("Relation Name");
    if (relation.starts_with("runs_") || relation.starts_with("attempts_")) && loops > 0 {
        out.push(relation);
    }
    for child in plan.get("Plans").and_then(Value::as_array).into_iter().flatten() {
        executed_scans(child, out);
    }
}

/// With rows in today's partition, the batched ends' one generic plan reads each run and its
/// attempt by id in that partition alone: the others are pruned as it runs.
#[tokio::test]
async fn the_batched_ends_read_only_the_partition_of_their_runs() {
    let Some((mut scratch, store)) = fresh_partitioned().await else { return };
    store.close().await;
    let s = scratch.schema.clone();
    let mut conn = PgConnection::connect(&database_url().expect("set")).await.expect("connect");
    conn.execute(format!("SET search_path TO \"{s}\"").as_str()).await.expect("search path");
    let today = id_floor(now_micros() / DAY_MICROS * DAY_MICROS);
    let prefix = &today[..10];
    conn.execute(ENDS_SETUP).await.expect("the ends' settings");
    conn.execute(format!("PREPARE ends({}) AS {FINISH_SQL}", FINISH_PARAMS.join(", ")).as_str()).await.expect("prepare");
    let id = format!("{prefix}{:016}", 42);
    let call = format!(
        "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE ends(ARRAY['{id}'], ARRAY['node-a'], ARRAY[1], ARRAY['succeeded'], \
         ARRAY['cancelled'], ARRAY['1'], ARRAY['null'], ARRAY[NULL], ARRAY[NULL], ARRAY[NULL]::bigint[], ARRAY[NULL]::bigint[], \
         ARRAY[1], ARRAY[1], ARRAY[1], ARRAY['succeeded'], ARRAY[NULL], ARRAY[1])"
    );
    // Why: a node prepares its statements on its first batch, often while the tables are empty;
    // the plan made then is the one it keeps.
    let plain = call.replace("EXPLAIN (ANALYZE, FORMAT JSON) ", "");
    let ended: Vec<(String, String, bool)> = sqlx::query_as(&plain).fetch_all(&mut conn).await.expect("on empty tables");
    assert!(ended.is_empty(), "nothing to end yet");
    let fill = format!(
        "\
         INSERT INTO runs (id, function, status, attempt, max_attempts, input, created_at, next_attempt_at, correlation_id, \
           lease_owner, lease_expires_at) \
         SELECT '{prefix}' || lpad(g::text, 16, '0'), 'f', 'running', 1, 3, 'null', 1, 1, 'c', 'node-a', 9 \
         FROM generate_series(1, 5000) g; \
         INSERT INTO attempts (run_id, attempt, owner, started_at, outcome) SELECT id, 1, 'node-a', 1, 'running' FROM runs"
    );
    conn.execute(fill.as_str()).await.expect("filled");
    let explained: Value = sqlx::query_scalar(&call).fetch_one(&mut conn).await.expect("explain");
    let mut scans = Vec::new();
    executed_scans(&explained[0]["Plan"], &mut scans);
    scans.sort();
    assert_eq!(
        scans,
        ["attempts_p8", "runs_p8", "runs_p8"],
        "the lock, the update and the attempt's close, in today's partition"
    );
    let status: String =
        sqlx::query_scalar("SELECT status FROM runs WHERE id = $1").bind(&id).fetch_one(&mut conn).await.expect("read");
    assert_eq!(status, "succeeded", "the run ended");
    let other = format!("{prefix}{:016}", 99_999);
    let call = plain.replace(&id, &other);
    let ended: Vec<(String, String, bool)> = sqlx::query_as(&call).fetch_all(&mut conn).await.expect("an unknown run");
    assert!(ended.is_empty(), "a run that is not there ends nothing: {ended:?}");
    conn.close().await.expect("close");
    scratch.drop_now().await;
}
