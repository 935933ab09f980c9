//! Mapping between PostgreSQL rows and domain types.

use crate::StoreError;
use plinth_core::run::Attempt;
use plinth_core::{Run, RunError, RunStatus};
use sqlx::Row;
use sqlx::postgres::PgRow;

/// The columns `run_from_row` reads, in order.
pub(crate) const RUN_COLS: &str = "id, function, status, attempt, max_attempts, input, output, error, priority, \
     created_at, started_at, finished_at, next_attempt_at, correlation_id, idempotency_key, cancel_requested, trigger, waiting_for, flow_key, traceparent, tracestate";

fn corrupt(col: &str, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("column {col}: {what}"))
}

fn json_col<T: serde::de::DeserializeOwned>(row: &PgRow, col: &str) -> Result<Option<T>, StoreError> {
    let text: Option<String> = row.try_get(col)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(col, e))).transpose()
}

/// A stored BIGINT that must fit a `u32` (attempts, sequence numbers).
pub(crate) fn u32_col(row: &PgRow, col: &str) -> Result<u32, StoreError> {
    let n: i64 = row.try_get(col)?;
    u32::try_from(n).map_err(|_| corrupt(col, format!("{n} is out of range")))
}

pub(crate) fn run_from_row(row: &PgRow) -> Result<Run, StoreError> {
    let status_text: String = row.try_get("status")?;
    let status =
        RunStatus::parse(&status_text).ok_or_else(|| corrupt("status", format!("unknown run status `{status_text}`")))?;
    let next: i64 = row.try_get("next_attempt_at")?;
    Ok(Run {
        run_id: row.try_get("id")?,
        function: row.try_get("function")?,
        status,
        attempt: u32_col(row, "attempt")?,
        max_attempts: u32_col(row, "max_attempts")?,
        input: json_col(row, "input")?.unwrap_or(serde_json::Value::Null),
        output: json_col(row, "output")?,
        error: json_col::<RunError>(row, "error")?,
        priority: row.try_get("priority")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        next_attempt_at: (status == RunStatus::Queued).then_some(next),
        correlation_id: row.try_get("correlation_id")?,
        idempotency_key: row.try_get("idempotency_key")?,
        cancel_requested: row.try_get("cancel_requested")?,
        trigger: json_col(row, "trigger")?.unwrap_or_default(),
        waiting_for: json_col(row, "waiting_for")?,
        attempts: None,
        flow_key: row.try_get("flow_key")?,
        held_by: None,
        traceparent: row.try_get("traceparent")?,
        tracestate: row.try_get("tracestate")?,
    })
}

pub(crate) const ATTEMPT_COLS: &str = "attempt, started_at, finished_at, outcome, error, duration_us";

pub(crate) fn attempt_from_row(row: &PgRow) -> Result<Attempt, StoreError> {
    let duration_us: Option<i64> = row.try_get("duration_us")?;
    Ok(Attempt {
        attempt: u32_col(row, "attempt")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        outcome: row.try_get("outcome")?,
        error: json_col::<RunError>(row, "error")?,
        #[allow(clippy::cast_precision_loss)]
        duration_ms: duration_us.map(|us| us as f64 / 1000.0),
    })
}

/// JSON as stored: the exact text serde_json writes.
pub(crate) fn to_json(v: &impl serde::Serialize) -> String {
    // Why: serializing serde_json values and plain structs to a String cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_string())
}
