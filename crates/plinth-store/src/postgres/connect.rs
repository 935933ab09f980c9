//! Connecting: the schema name's rules, the pool on one schema (migrated at connect), dropping
//! a scratch schema, the log's position (for benchmarks), and the keys of advisory locks.

use super::{CONNECT_TIMEOUT, IDLE_IN_TRANSACTION_MS, MAX_CONNECTIONS, STATEMENT_TIMEOUT_MS, migrate};
use crate::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Whether `name` may name the store's schema: lowercase letters, digits and `_`, not
/// starting with a digit, at most 63 bytes (PostgreSQL's limit), not `pg_`-prefixed.
#[must_use]
pub fn valid_schema_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    first_ok
        && name.len() <= 63
        && !name.starts_with("pg_")
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The write-ahead log's position in bytes since its start (`pg_current_wal_lsn()`), for the
/// whole server: a benchmark reads it before and after a round to tell the log each run wrote.
///
/// # Errors
/// `Unavailable` when the database refuses or cannot be reached within 15 s.
pub async fn wal_position(url: &str) -> Result<u64, StoreError> {
    use sqlx::Connection;
    let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?;
    let work = async {
        let mut conn = sqlx::PgConnection::connect_with(&options).await?;
        let bytes: i64 = sqlx::query_scalar("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::BIGINT").fetch_one(&mut conn).await?;
        conn.close().await?;
        Ok::<i64, sqlx::Error>(bytes)
    };
    match tokio::time::timeout(Duration::from_secs(15), work).await {
        Ok(r) => Ok(u64::try_from(r?).unwrap_or(0)),
        Err(_) => Err(StoreError::Unavailable("reading the log's position took more than 15 s".into())),
    }
}

/// Drops `schema` with everything in it (the runs of every component stored there), e.g. a
/// scratch schema of a test or a benchmark. Waits at most 10 s for locks.
///
/// # Errors
/// `Schema` for an invalid name; `Unavailable` when the database refuses or cannot be reached.
pub async fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
    use sqlx::Connection;
    if !valid_schema_name(schema) {
        return Err(StoreError::Schema(format!("`{schema}` is not a valid schema name")));
    }
    let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?;
    let work = async {
        let mut conn = sqlx::PgConnection::connect_with(&options).await?;
        let sql = format!("SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
        sqlx::Executor::execute(&mut conn, sql.as_str()).await?;
        conn.close().await?;
        Ok::<(), sqlx::Error>(())
    };
    match tokio::time::timeout(Duration::from_secs(15), work).await {
        Ok(r) => r.map_err(StoreError::from),
        Err(_) => Err(StoreError::Unavailable("dropping the schema took more than 15 s".into())),
    }
}

/// FNV-1a of `parts`, as the key of an advisory lock.
pub(crate) fn lock_key(parts: &[&str]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// The pool's session setting when `runs` is partitioned by run id (decision 0026's plan):
/// one generic plan per statement, made once per connection. Why: in PostgreSQL's automatic
/// mode a custom plan on partitions prunes them while planning, so it always looks cheaper than
/// the generic plan and the pool's statements were planned again at every execution: 0 generic
/// plans of 8 for a run read by id and its steps, against 3 of 8 on one table; 5,000 of each
/// pair took 2.21 s in `psql`, 1.47 s with generic plans forced (session 47). A generic plan
/// prunes the partitions at run time, from the parameters (`tests/pool_plans.rs` checks the hot
/// statements read their run's partition only). On one table nothing changes.
pub(crate) const PARTITIONED_SETUP: &str = "SET plan_cache_mode = force_generic_plan";

/// Whether `schema`'s `runs` is a partitioned table.
pub(crate) async fn runs_partitioned(pool: &PgPool, schema: &str) -> Result<bool, StoreError> {
    let sql = "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
        WHERE n.nspname = $1 AND c.relname = 'runs' AND c.relkind = 'p')";
    Ok(sqlx::query_scalar(sql).bind(schema).fetch_one(pool).await?)
}

/// A lazy pool whose connections run `setup` (session settings) when they are made.
fn pool_with(options: PgConnectOptions, setup: String) -> PgPool {
    let setup = Arc::new(setup);
    PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(CONNECT_TIMEOUT)
        .after_connect(move |conn, _meta| {
            let sql = setup.clone();
            Box::pin(async move {
                sqlx::Executor::execute(conn, sql.as_str()).await?;
                Ok(())
            })
        })
        .connect_lazy_with(options)
}

/// A pool on `schema` of the database at `url`, the schema created and migrated; the pool and
/// how many migrations were applied. On partitioned run tables, the pool's connections also
/// run [`PARTITIONED_SETUP`].
pub(crate) async fn open_pool(url: &str, schema: &str) -> Result<(PgPool, usize), StoreError> {
    if !valid_schema_name(schema) {
        return Err(StoreError::Schema(format!(
            "`{schema}` is not a valid schema name: use lowercase letters, digits and _, at most 63, \
             not starting with a digit nor pg_"
        )));
    }
    // Why: the URL may hold a password, so it is never repeated in an error.
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?
        .application_name("plinth")
        .options([("statement_timeout", STATEMENT_TIMEOUT_MS), ("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION_MS)]);
    let set_path = format!("SET search_path TO \"{schema}\"");
    let pool = pool_with(options.clone(), set_path.clone());
    let opened = async {
        let applied = migrate::migrate(&pool, schema, migrate::MIGRATIONS).await?;
        Ok::<_, StoreError>((applied, runs_partitioned(&pool, schema).await?))
    };
    let (applied, partitioned) = tokio::time::timeout(CONNECT_TIMEOUT * 2, opened)
        .await
        .map_err(|_| StoreError::Unavailable(format!("PostgreSQL did not answer within {CONNECT_TIMEOUT:?}")))??;
    if !partitioned {
        return Ok((pool, applied));
    }
    // Why a new pool: the connections the migration opened were set up without the setting.
    pool.close().await;
    tracing::info!(schema, "runs are partitioned: the pool's statements keep one generic plan");
    Ok((pool_with(options, format!("{set_path}; {PARTITIONED_SETUP}")), applied))
}
