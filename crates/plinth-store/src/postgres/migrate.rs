//! Embedded migrations, applied in order in one transaction under an advisory lock, so nodes
//! starting at once take turns; an applied migration that was edited stops startup.

use super::lock_key;
use crate::StoreError;
use crate::sqlite::migrate::checksum;
use sqlx::{Executor, PgPool};

/// (version, name, SQL) of every migration, in order. Never edit one that was released:
/// add a new one.
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("migrations/0001_init.sql")),
    (2, "events_and_schedules", include_str!("migrations/0002_events_and_schedules.sql")),
    (3, "steps", include_str!("migrations/0003_steps.sql")),
    (4, "flow_control", include_str!("migrations/0004_flow_control.sql")),
    (5, "throttle", include_str!("migrations/0005_throttle.sql")),
    (6, "rate_limit", include_str!("migrations/0006_rate_limit.sql")),
    (7, "debounce", include_str!("migrations/0007_debounce.sql")),
    (8, "singleton", include_str!("migrations/0008_singleton.sql")),
    (9, "expiry", include_str!("migrations/0009_expiry.sql")),
    (10, "batch", include_str!("migrations/0010_batch.sql")),
    (11, "overview", include_str!("migrations/0011_overview.sql")),
    (12, "wait_match", include_str!("migrations/0012_wait_match.sql")),
    (13, "traceparent", include_str!("migrations/0013_traceparent.sql")),
    (14, "tracestate", include_str!("migrations/0014_tracestate.sql")),
    (15, "run_counts", include_str!("migrations/0015_run_counts.sql")),
    (16, "lane_key_estimate", include_str!("migrations/0016_lane_key_estimate.sql")),
    (17, "runs_by_function_status", include_str!("migrations/0017_runs_by_function_status.sql")),
    (18, "run_keys", include_str!("migrations/0018_run_keys.sql")),
    (19, "runs_by_status_dropped", include_str!("migrations/0019_runs_by_status_dropped.sql")),
    (20, "events_one_id_index", include_str!("migrations/0020_events_one_id_index.sql")),
];

/// Creates `schema` if needed and applies the migrations it lacks; returns how many.
pub(crate) async fn migrate(pool: &PgPool, schema: &str, migrations: &[(i64, &str, &str)]) -> Result<usize, StoreError> {
    let mut tx = pool.begin().await?;
    // Why: a transaction-level lock is released by the commit or rollback, even when this
    // node dies half-way; the key is per schema, so components sharing a database do not wait.
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(lock_key(&["plinth-migrate", schema])).execute(&mut *tx).await?;
    let exists = sqlx::query("SELECT 1 FROM pg_namespace WHERE nspname = $1").bind(schema).fetch_optional(&mut *tx).await?;
    if exists.is_none() {
        let create = format!("CREATE SCHEMA \"{schema}\"");
        tx.execute(create.as_str()).await?;
    }
    let set_path = format!("SET LOCAL search_path TO \"{schema}\"");
    tx.execute(set_path.as_str()).await?;
    tx.execute(
        "CREATE TABLE IF NOT EXISTS plinth_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
         checksum TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .await?;
    let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM plinth_migrations").fetch_one(&mut *tx).await?;
    let known = migrations.last().map_or(0, |m| m.0);
    if let Some(newest) = newest.filter(|n| *n > known) {
        tx.rollback().await?;
        return Err(StoreError::Schema(format!(
            "schema `{schema}` is at version {newest}, newer than this plinth knows ({known}); use a newer plinth"
        )));
    }
    let mut applied = 0;
    for (version, name, sql) in migrations {
        let sum = checksum(sql);
        let existing: Option<String> = sqlx::query_scalar("SELECT checksum FROM plinth_migrations WHERE version = $1")
            .bind(version)
            .fetch_optional(&mut *tx)
            .await?;
        match existing {
            Some(found) if found == sum => {}
            Some(_) => {
                tx.rollback().await?;
                return Err(StoreError::Schema(format!(
                    "migration {version} ({name}) was changed after it was applied; restore it and add a new migration instead"
                )));
            }
            None => {
                tx.execute(*sql).await?;
                sqlx::query("INSERT INTO plinth_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)")
                    .bind(version)
                    .bind(name)
                    .bind(&sum)
                    .bind(plinth_core::timefmt::now_micros())
                    .execute(&mut *tx)
                    .await?;
                applied += 1;
            }
        }
    }
    tx.commit().await?;
    Ok(applied)
}

impl super::PostgresStore {
    /// Creates (if needed) and migrates `schema` without starting a store (`plinth migrate`).
    ///
    /// # Errors
    /// As [`super::PostgresStore::connect`].
    pub async fn migrate(url: &str, schema: &str) -> Result<crate::Migrated, crate::StoreError> {
        let (pool, applied) = super::connect::open_pool(url, schema).await?;
        pool.close().await;
        Ok(crate::Migrated { applied, version: MIGRATIONS.last().map_or(0, |m| m.0) })
    }
}
