//! [`RunCopies`] on PostgreSQL: one `INSERT ... SELECT` over `generate_series` for the runs and
//! one for their attempts, in one transaction.

use super::{RunCopies, column_value};
use crate::StoreError;
use crate::postgres::valid_schema_name;
use sqlx::{Connection, PgConnection};

async fn connect(url: &str, schema: &str) -> Result<PgConnection, StoreError> {
    if !valid_schema_name(schema) {
        return Err(StoreError::Schema(format!("`{schema}` is not a valid schema name")));
    }
    let mut conn = PgConnection::connect(url).await?;
    sqlx::query(&format!("SET search_path TO \"{schema}\"")).execute(&mut conn).await?;
    Ok(conn)
}

async fn columns(conn: &mut PgConnection, schema: &str, table: &str) -> Result<Vec<String>, StoreError> {
    let cols: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 \
         ORDER BY ordinal_position",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    if cols.is_empty() {
        return Err(StoreError::Schema(format!("schema `{schema}` has no table `{table}`: is it a Plinth store?")));
    }
    Ok(cols)
}

/// Writes `copies` of a run of the store in `schema`; how many runs were written (0 when the
/// template is not there).
///
/// # Errors
/// When the database cannot be reached or refuses the rows (a copy's id taken already).
pub async fn copy_runs(url: &str, schema: &str, copies: &RunCopies) -> Result<u64, StoreError> {
    copies.check()?;
    let mut conn = connect(url, schema).await?;
    let param = |i: usize| format!("${i}");
    let id = "$7 || lpad(g.n::text, 20, '0')";
    let run_cols = columns(&mut conn, schema, "runs").await?;
    let values: Vec<String> = run_cols.iter().map(|c| column_value(c, "g.n", &param, id)).collect();
    let runs = format!(
        "INSERT INTO runs ({}) SELECT {} FROM runs t CROSS JOIN generate_series($5::bigint, $6::bigint) AS g(n) \
         WHERE t.id = $4",
        run_cols.join(", "),
        values.join(", ")
    );
    let attempt_cols = columns(&mut conn, schema, "attempts").await?;
    let values: Vec<String> = attempt_cols
        .iter()
        .map(|c| if c == "run_id" { "$4 || lpad(g.n::text, 20, '0')".to_string() } else { format!("t.{c}") })
        .collect();
    let attempts = format!(
        "INSERT INTO attempts ({}) SELECT {} FROM attempts t CROSS JOIN generate_series($2::bigint, $3::bigint) AS g(n) \
         WHERE t.run_id = $1",
        attempt_cols.join(", "),
        values.join(", ")
    );
    let last = i64::try_from(copies.first + copies.count).unwrap_or(i64::MAX) - 1;
    let first = i64::try_from(copies.first).unwrap_or(i64::MAX);
    let mut tx = conn.begin().await?;
    let written = sqlx::query(&runs)
        .bind(copies.at)
        .bind(copies.finished_at)
        .bind(copies.input.as_deref())
        .bind(&copies.template)
        .bind(first)
        .bind(last)
        .bind(&copies.prefix)
        .bind(copies.step.max(1))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query(&attempts).bind(&copies.template).bind(first).bind(last).bind(&copies.prefix).execute(&mut *tx).await?;
    tx.commit().await?;
    conn.close().await?;
    Ok(written)
}

/// Bytes the tables of `schema` take on disk, with their indexes and TOAST.
///
/// # Errors
/// When the database cannot be reached.
pub async fn schema_bytes(url: &str, schema: &str) -> Result<u64, StoreError> {
    let mut conn = connect(url, schema).await?;
    let bytes: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'",
    )
    .bind(schema)
    .fetch_one(&mut conn)
    .await?;
    conn.close().await?;
    Ok(u64::try_from(bytes).unwrap_or(0))
}

/// The server's data directory, when this role may read it (a superuser, or `pg_read_all_settings`).
///
/// # Errors
/// When the database cannot be reached.
pub async fn data_directory(url: &str) -> Result<Option<String>, StoreError> {
    let mut conn = PgConnection::connect(url).await?;
    let dir: Option<String> =
        sqlx::query_scalar("SELECT setting FROM pg_settings WHERE name = 'data_directory'").fetch_optional(&mut conn).await?;
    conn.close().await?;
    Ok(dir.filter(|d| !d.is_empty()))
}

/// Takes the planner's statistics of `runs` and `attempts` in `schema`, as autovacuum and the
/// upkeep (decision 0016) would have by the time that many runs had arrived one by one.
///
/// # Errors
/// When the database cannot be reached.
pub async fn analyze(url: &str, schema: &str) -> Result<(), StoreError> {
    let mut conn = connect(url, schema).await?;
    sqlx::query("ANALYZE runs, attempts").execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// Writes the database's dirty pages now (`CHECKPOINT`) and waits for it, so that the checkpoint
/// a fill's write-ahead log forced is over before anything is timed; false when this role may
/// not (PostgreSQL 15 wants a superuser or `pg_checkpoint`).
///
/// # Errors
/// When the database cannot be reached.
pub async fn checkpoint(url: &str) -> Result<bool, StoreError> {
    let mut conn = PgConnection::connect(url).await?;
    let done = match sqlx::query("CHECKPOINT").execute(&mut conn).await {
        Ok(_) => true,
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => false,
        Err(e) => return Err(e.into()),
    };
    conn.close().await?;
    Ok(done)
}
