//! Mapping between SQLite rows and domain types.

use plinth_core::run::Attempt;
use plinth_core::{Run, RunError, RunStatus, Trigger};
use rusqlite::Row;
use rusqlite::types::Type;

/// The columns `run_from_row` reads, in order.
pub(crate) const RUN_COLS: &str = "id, function, status, attempt, max_attempts, input, output, error, priority, \
     created_at, started_at, finished_at, next_attempt_at, correlation_id, idempotency_key, cancel_requested, trigger, waiting_for, flow_key, traceparent, tracestate";

fn bad(col: usize, e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, Type::Text, Box::new(e))
}

fn json_col(row: &Row<'_>, col: usize) -> rusqlite::Result<Option<serde_json::Value>> {
    let text: Option<String> = row.get(col)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| bad(col, e))).transpose()
}

/// A run's trigger: NULL is `{"type":"api"}`.
fn trigger_col(row: &Row<'_>, col: usize) -> rusqlite::Result<Trigger> {
    let text: Option<String> = row.get(col)?;
    Ok(text.map(|t| serde_json::from_str(&t).map_err(|e| bad(col, e))).transpose()?.unwrap_or_default())
}

pub(crate) fn error_col(row: &Row<'_>, col: usize) -> rusqlite::Result<Option<RunError>> {
    let text: Option<String> = row.get(col)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| bad(col, e))).transpose()
}

#[derive(Debug)]
struct UnknownStatus(String);
impl std::fmt::Display for UnknownStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown run status `{}`", self.0)
    }
}
impl std::error::Error for UnknownStatus {}

pub(crate) fn run_from_row(row: &Row<'_>) -> rusqlite::Result<Run> {
    let status_text: String = row.get(2)?;
    let status = RunStatus::parse(&status_text).ok_or_else(|| bad(2, UnknownStatus(status_text)))?;
    let next: i64 = row.get(12)?;
    Ok(Run {
        run_id: row.get(0)?,
        function: row.get(1)?,
        status,
        attempt: row.get(3)?,
        max_attempts: row.get(4)?,
        input: json_col(row, 5)?.unwrap_or(serde_json::Value::Null),
        output: json_col(row, 6)?,
        error: error_col(row, 7)?,
        priority: row.get(8)?,
        created_at: row.get(9)?,
        started_at: row.get(10)?,
        finished_at: row.get(11)?,
        next_attempt_at: (status == RunStatus::Queued).then_some(next),
        correlation_id: row.get(13)?,
        idempotency_key: row.get(14)?,
        cancel_requested: row.get::<_, i64>(15)? != 0,
        trigger: trigger_col(row, 16)?,
        waiting_for: {
            let text: Option<String> = row.get(17)?;
            text.map(|t| serde_json::from_str(&t).map_err(|e| bad(17, e))).transpose()?
        },
        attempts: None,
        flow_key: row.get(18)?,
        held_by: None,
        traceparent: row.get(19)?,
        tracestate: row.get(20)?,
    })
}

pub(crate) const ATTEMPT_COLS: &str = "attempt, started_at, finished_at, outcome, error, duration_us";

pub(crate) fn attempt_from_row(row: &Row<'_>) -> rusqlite::Result<Attempt> {
    let duration_us: Option<i64> = row.get(5)?;
    Ok(Attempt {
        attempt: row.get(0)?,
        started_at: row.get(1)?,
        finished_at: row.get(2)?,
        outcome: row.get(3)?,
        error: error_col(row, 4)?,
        #[allow(clippy::cast_precision_loss)]
        duration_ms: duration_us.map(|us| us as f64 / 1000.0),
    })
}

pub(crate) fn to_json(v: &impl serde::Serialize) -> String {
    // Why: serializing serde_json values and plain structs to a String cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_string())
}
