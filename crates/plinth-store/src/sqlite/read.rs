//! Queries that only read; used by the reader pool, and by the writer inside its transaction.

use super::rows::{ATTEMPT_COLS, RUN_COLS, attempt_from_row, run_from_row};
use crate::{ListFilter, LogEntry, LogLine, Page};
use plinth_core::{Run, RunStatus};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

pub(crate) fn get_run(conn: &Connection, id: &str, with_attempts: bool) -> rusqlite::Result<Option<Run>> {
    let sql = format!("SELECT {RUN_COLS} FROM runs WHERE id = ?1");
    let run = conn.prepare_cached(&sql)?.query_row(params![id], run_from_row).optional()?;
    match run {
        Some(mut run) if with_attempts => {
            let sql = format!("SELECT {ATTEMPT_COLS} FROM attempts WHERE run_id = ?1 ORDER BY attempt");
            let mut stmt = conn.prepare_cached(&sql)?;
            let attempts = stmt.query_map(params![id], attempt_from_row)?.collect::<Result<Vec<_>, _>>()?;
            run.attempts = Some(attempts);
            Ok(Some(run))
        }
        other => Ok(other),
    }
}

/// The statement and arguments of a page of runs, newest first, one more than the page asks.
///
/// Why the index is named: SQLite keeps no statistics here, so of two indexes with one equality
/// each it takes either. A page of one function in one status read through `runs_by_status`
/// walks every run in that status when the function has none in it (261 ms at 400,000 runs).
/// A correlation id or an event id names few runs; a function and a status name one range of
/// (function, status, id); a function alone is one such range per status, merged.
/// (Decision 0032.)
pub(crate) fn list_query(f: &ListFilter) -> (String, Vec<Value>) {
    let mut clauses: Vec<&str> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    if let Some(func) = &f.function {
        clauses.push("function = ?");
        args.push(Value::Text(func.clone()));
    }
    if let Some(status) = f.status {
        clauses.push("status = ?");
        args.push(Value::Text(status.as_str().to_string()));
    }
    if let Some(c) = &f.correlation_id {
        clauses.push("correlation_id = ?");
        args.push(Value::Text(c.clone()));
    }
    if let Some(t) = f.created_after {
        clauses.push("created_at >= ?");
        args.push(Value::Integer(t));
    }
    if let Some(t) = f.created_before {
        clauses.push("created_at < ?");
        args.push(Value::Integer(t));
    }
    if let Some(e) = &f.event_id {
        clauses.push("event_id = ?");
        args.push(Value::Text(e.clone()));
    }
    if let Some(t) = &f.trigger {
        clauses.push("trigger_type = ?");
        args.push(Value::Text(t.clone()));
    }
    if let Some(id) = &f.before_id {
        clauses.push("id < ?");
        args.push(Value::Text(id.clone()));
    }
    if let Some(eq) = &f.input_eq {
        // Why: `->` gives the field as minified JSON text, so one comparison serves every type.
        clauses.push("input -> ? = ?");
        args.push(Value::Text(eq.sqlite_path()));
        args.push(Value::Text(eq.value.to_string()));
    }
    let limit = Value::Integer(i64::from(f.limit.max(1)) + 1);
    let index = if f.correlation_id.is_some() {
        "INDEXED BY runs_by_correlation"
    } else if f.event_id.is_some() {
        "INDEXED BY runs_by_event"
    } else if f.function.is_some() && f.status.is_some() {
        "INDEXED BY runs_by_function_status"
    } else if f.trigger.is_some() {
        // Why: the index SQLite took for a trigger with a function or a status before this
        // order was written; neither is always the fewer runs.
        "INDEXED BY runs_by_trigger"
    } else if f.function.is_some() {
        let filter = clauses.join(" AND ");
        let branch = |s: &RunStatus| {
            format!(
                "SELECT * FROM (SELECT {RUN_COLS} FROM runs INDEXED BY runs_by_function_status WHERE {filter} \
                 AND status = '{}' ORDER BY id DESC LIMIT ?)",
                s.as_str()
            )
        };
        let branches: Vec<String> = RunStatus::ALL.iter().map(branch).collect();
        let mut all = Vec::new();
        for _ in RunStatus::ALL {
            all.extend(args.iter().cloned());
            all.push(limit.clone());
        }
        all.push(limit);
        return (format!("SELECT * FROM ({}) ORDER BY id DESC LIMIT ?", branches.join(" UNION ALL ")), all);
    } else if f.status.is_some() {
        "INDEXED BY runs_by_status"
    } else {
        ""
    };
    let filter = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
    args.push(limit);
    (format!("SELECT {RUN_COLS} FROM runs {index} {filter} ORDER BY id DESC LIMIT ?"), args)
}

pub(crate) fn list(conn: &Connection, f: &ListFilter) -> rusqlite::Result<Page> {
    let limit = f.limit.max(1);
    let (sql, args) = list_query(f);
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut runs = stmt.query_map(params_from_iter(args), run_from_row)?.collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if runs.len() > limit as usize {
        runs.truncate(limit as usize);
        runs.last().map(|r| r.run_id.clone())
    } else {
        None
    };
    Ok(Page { runs, next_cursor })
}

pub(crate) fn logs(conn: &Connection, id: &str) -> rusqlite::Result<Option<Vec<LogEntry>>> {
    let exists = conn.prepare_cached("SELECT 1 FROM runs WHERE id = ?1")?.exists(params![id])?;
    if !exists {
        return Ok(None);
    }
    let mut stmt = conn.prepare_cached("SELECT attempt, seq, ts, line FROM run_logs WHERE run_id = ?1 ORDER BY attempt, seq")?;
    let entries = stmt
        .query_map(params![id], |row| {
            Ok(LogEntry { attempt: row.get(0)?, line: LogLine { seq: row.get(1)?, ts: row.get(2)?, line: row.get(3)? } })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(entries))
}

pub(crate) fn queue_depth(conn: &Connection) -> rusqlite::Result<Vec<(String, i64)>> {
    // Why: kept as runs change (`run_counts`), never counted.
    let mut stmt =
        conn.prepare_cached("SELECT function, runs FROM run_counts WHERE status = 'queued' AND runs > 0 ORDER BY function")?;
    stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect()
}
