//! Queries that only read, on any pooled connection (or inside a write's transaction).

use super::rows::{ATTEMPT_COLS, RUN_COLS, attempt_from_row, run_from_row, u32_col};
use crate::{ListFilter, LogEntry, LogLine, Page, StoreError};
use plinth_core::{Run, RunStatus};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};

/// One run; `lock` takes its row lock (inside a transaction) so the caller can change it.
pub(crate) async fn get_run(
    conn: &mut PgConnection,
    id: &str,
    with_attempts: bool,
    lock: bool,
) -> Result<Option<Run>, StoreError> {
    let sql = format!("SELECT {RUN_COLS} FROM runs WHERE id = $1{}", if lock { " FOR UPDATE" } else { "" });
    let Some(row) = sqlx::query(&sql).bind(id).fetch_optional(&mut *conn).await? else {
        return Ok(None);
    };
    let mut run = run_from_row(&row)?;
    if with_attempts {
        let sql = format!("SELECT {ATTEMPT_COLS} FROM attempts WHERE run_id = $1 ORDER BY attempt");
        let rows = sqlx::query(&sql).bind(id).fetch_all(&mut *conn).await?;
        run.attempts = Some(rows.iter().map(attempt_from_row).collect::<Result<_, _>>()?);
    }
    Ok(Some(run))
}

pub(crate) enum Arg {
    Text(String),
    Int(i64),
    Path(Vec<String>),
}

/// The statement of a page of runs and its arguments, in order. A page of one function in any
/// status merges one range of `runs_by_function_status` per status; a page in one status of
/// any function, one range per function.
pub(crate) fn list_query(f: &ListFilter) -> (String, Vec<Arg>) {
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<Arg> = Vec::new();
    // Where no value can change the plan's shape (see `limit` below).
    let fixed = f.correlation_id.is_none()
        && f.created_after.is_none()
        && f.created_before.is_none()
        && f.event_id.is_none()
        && f.trigger.is_none()
        && f.input_eq.is_none();
    if let Some(func) = &f.function {
        // Why `= ANY(..)`: see `order` below. Why the array from a sub-select where the shape is
        // fixed: the planner then does not know the function, in the plans it makes for a call
        // as in its generic plan, so both cost the same and the generic one is kept. Given the
        // name, it costed the page of a function holding nearly all the table (a backlog) below
        // the generic plan, costed for an average function's share, and planned every read of
        // it anew (0.20 ms a call against 0.11 with 100,000 runs queued; decision 0044, "Later").
        args.push(Arg::Text(func.clone()));
        clauses.push(
            if fixed { "function = ANY((SELECT ARRAY[$1::text])::text[])" } else { "function = ANY(ARRAY[$1])" }.to_string(),
        );
    }
    // `clause` with `{}` where its argument goes.
    let mut add = |clause: &str, arg: Arg| {
        args.push(arg);
        clauses.push(clause.replace("{}", &format!("${}", args.len())));
    };
    if let Some(status) = f.status {
        // Why: a sub-select, not `status = $n`; see below, after `order`.
        add("status = (SELECT {}::text)", Arg::Text(status.as_str().to_string()));
    }
    if let Some(c) = &f.correlation_id {
        add("correlation_id = {}", Arg::Text(c.clone()));
    }
    if let Some(t) = f.created_after {
        add("created_at >= {}", Arg::Int(t));
    }
    if let Some(t) = f.created_before {
        add("created_at < {}", Arg::Int(t));
    }
    if let Some(e) = &f.event_id {
        add("event_id = {}", Arg::Text(e.clone()));
    }
    if let Some(t) = &f.trigger {
        add("trigger_type = {}", Arg::Text(t.clone()));
    }
    if let Some(id) = &f.before_id {
        add("id < {}", Arg::Text(id.clone()));
    }
    if let Some(eq) = &f.input_eq {
        args.push(Arg::Path(eq.path.clone()));
        args.push(Arg::Text(eq.value.to_string()));
        clauses.push(format!("(input::jsonb #> ${}) = ${}::jsonb", args.len() - 1, args.len()));
    }
    // Why the limit is written into the statement where the plan's shape is fixed (a page of a
    // function, a page in one status, or the newest runs with only a cursor): with `LIMIT $n`,
    // PostgreSQL costs the generic plan for a tenth of the table, finds it dearer than each
    // custom one once the table is large, and plans the page anew on every read (0.37 ms of
    // planning each time with 100,000 runs queued; none after the fifth read with 100). With a
    // number it keeps the one plan (decision 0044). Where a
    // value's selectivity picks the index (a correlation id, a time range, a trigger, an event,
    // input), the limit stays a parameter, so each read gets the plan its values call for.
    let rows = i64::from(f.limit.max(1)) + 1;
    let limit = if fixed {
        rows.to_string()
    } else {
        args.push(Arg::Int(rows));
        format!("${}", args.len())
    };
    // Why: with `function = $1` the order would be `id` alone, and with statistics the planner
    // may read a function's page by walking the primary key backwards, filtering: through every
    // run when the function has none in that status (a statement timeout at 11,000,000 runs).
    // `= ANY(ARRAY[..])` keeps the function out of that reasoning and (function, id) is an order
    // only `runs_by_function_status` gives; within one function it is the order of ids.
    let order = if f.function.is_some() { "function DESC, id DESC" } else { "id DESC" };
    // Why the status is a sub-select: the planner does not know its value when it plans, so it
    // cannot prove the predicate of a partial index of one status (`runs_queue`, `runs_due`,
    // `runs_leases`, `runs_waiting`) and read the page from it. It did when the statistics were
    // older than a burst: 500,000 runs queued for a function after the last ANALYZE were read
    // whole through `runs_queue` and sorted for each page (540 ms; the status page 338 ms),
    // where (function, status, id) reads a page (0.05 ms). Decision 0031, "Later".
    if f.function.is_some() && f.status.is_none() {
        // Why: the function's runs are indexed by (function, status, id); one ordered range per
        // status, merged, reads at most a page from each.
        let filter = clauses.join(" AND ");
        let branches: Vec<String> = RunStatus::ALL
            .iter()
            .map(|s| {
                format!(
                    "(SELECT {RUN_COLS} FROM runs WHERE {filter} AND status = (SELECT '{}'::text) ORDER BY {order} LIMIT {limit})",
                    s.as_str()
                )
            })
            .collect();
        return (format!("SELECT * FROM ({}) AS page ORDER BY id DESC LIMIT {limit}", branches.join(" UNION ALL ")), args);
    }
    if f.function.is_none() && f.status.is_some() && f.correlation_id.is_none() && f.event_id.is_none() {
        // Why: there is no index on (status, id) (migration 0019); the functions are walked
        // along (function, status, id), one probe each, and one ordered range of each is merged.
        // The walk goes down from the last function, so each probe lands on a function's newest
        // entries, not on its oldest, which the pruner deletes (1,894 buffers against 36 a page
        // before vacuum cleaned them, decision 0031). `= ANY(ARRAY[..])` and the order by
        // function, as for a page of one function (see `order`).
        let filter = clauses.join(" AND ");
        return (
            format!(
                "WITH RECURSIVE fns(f) AS ((SELECT function FROM runs ORDER BY function DESC LIMIT 1) UNION ALL \
                 SELECT (SELECT function FROM runs WHERE function < fns.f ORDER BY function DESC LIMIT 1) FROM fns WHERE fns.f IS NOT NULL) \
                 SELECT page.* FROM fns CROSS JOIN LATERAL \
                 (SELECT {RUN_COLS} FROM runs WHERE function = ANY(ARRAY[fns.f]) AND {filter} \
                 ORDER BY function DESC, id DESC LIMIT {limit}) AS page \
                 ORDER BY id DESC LIMIT {limit}"
            ),
            args,
        );
    }
    let filter = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
    (format!("SELECT {RUN_COLS} FROM runs {filter} ORDER BY {order} LIMIT {limit}"), args)
}

pub(crate) async fn list(pool: &PgPool, f: &ListFilter) -> Result<Page, StoreError> {
    let limit = f.limit.max(1);
    let (sql, args) = list_query(f);
    let mut query = sqlx::query(&sql);
    for arg in args {
        query = match arg {
            Arg::Text(s) => query.bind(s),
            Arg::Int(n) => query.bind(n),
            Arg::Path(p) => query.bind(p),
        };
    }
    let rows = query.fetch_all(pool).await?;
    let mut runs = rows.iter().map(run_from_row).collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if runs.len() > limit as usize {
        runs.truncate(limit as usize);
        runs.last().map(|r| r.run_id.clone())
    } else {
        None
    };
    Ok(Page { runs, next_cursor })
}

fn entry(row: &PgRow) -> Result<LogEntry, StoreError> {
    Ok(LogEntry {
        attempt: u32_col(row, "attempt")?,
        line: LogLine { seq: u32_col(row, "seq")?, ts: row.try_get("ts")?, line: row.try_get("line")? },
    })
}

pub(crate) async fn logs(pool: &PgPool, id: &str) -> Result<Option<Vec<LogEntry>>, StoreError> {
    let mut conn = pool.acquire().await?;
    if sqlx::query("SELECT 1 FROM runs WHERE id = $1").bind(id).fetch_optional(&mut *conn).await?.is_none() {
        return Ok(None);
    }
    let rows = sqlx::query("SELECT attempt, seq, ts, line FROM run_logs WHERE run_id = $1 ORDER BY attempt, seq")
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
    Ok(Some(rows.iter().map(entry).collect::<Result<_, _>>()?))
}

pub(crate) async fn queue_depth(pool: &PgPool) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = sqlx::query(
        "SELECT function, SUM(runs)::BIGINT AS n FROM run_counts WHERE status = 'queued' GROUP BY function \
             HAVING SUM(runs) > 0 ORDER BY function",
    )
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| Ok((r.try_get("function")?, r.try_get("n")?))).collect()
}
