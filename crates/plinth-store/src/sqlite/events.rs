//! Events and schedules on SQLite: ingest (events with their runs, one savepoint of the
//! writer's transaction), reads for the API, pruning, and schedule ticks.

use super::ops::{OpResult, insert_run, queue_full};
use super::rows::to_json;
use crate::events::{EventFilter, EventPage, Ingested, NewEvent, ScheduleState, Skipped, StoredEvent};
use plinth_core::{Event, NewRun, Run};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

fn none<T>(v: T) -> OpResult<T> {
    Ok((v, super::ops::Events::default()))
}

/// Stores events with the runs they start; each new event also ends the waits it matches.
pub(crate) fn ingest(
    conn: &Connection,
    events: Vec<NewEvent>,
    dedup_after: i64,
    resume: crate::Resume,
) -> OpResult<(Vec<Ingested>, crate::starter::Resumed)> {
    let mut resumed = crate::starter::Resumed::new(resume);
    let mut expire = conn.prepare_cached("UPDATE events SET dedup_key = NULL WHERE dedup_key = ?1 AND received_at < ?2")?;
    let mut first = conn.prepare_cached("SELECT id, run_ids FROM events WHERE dedup_key = ?1")?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (pk, id, name, data, ts, received_at, dedup_key, run_ids, skipped) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?2, ?7, ?8)",
    )?;
    let mut out = Vec::with_capacity(events.len());
    let mut woken = super::ops::Events::default();
    for NewEvent { event, runs, mut skipped, cancels } in events {
        expire.execute(params![event.id, dedup_after])?;
        let seen: Option<(String, String)> = first.query_row(params![event.id], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
        if let Some((event_id, run_ids)) = seen {
            let run_ids = serde_json::from_str(&run_ids).map_err(|e| crate::StoreError::Corrupt(e.to_string()))?;
            out.push(Ingested { event_id, run_ids, duplicate: true });
            continue;
        }
        if !cancels.is_empty() {
            super::expiry::cancel_matching(conn, &event, &cancels, &mut woken)?;
        }
        let mut run_ids = Vec::with_capacity(runs.len());
        for run in runs {
            if let Some(id) = super::flow::batch_into(conn, &run)? {
                run_ids.push(id);
                continue;
            }
            if let Some(id) = super::flow::debounce_into(conn, &run)? {
                run_ids.push(id);
                continue;
            }
            if let Some(limit) = run.max_queued
                && queue_full(conn, &run.function, limit)?
            {
                skipped.push(Skipped { function: run.function, reason: format!("its queue is full ({limit} runs waiting)") });
                continue;
            }
            if let Some(s) = &run.singleton
                && let Some(holder) = super::flow::singleton_holder(conn, &run)?
            {
                if s.mode == plinth_core::flow::SingletonMode::Skip {
                    skipped.push(Skipped { function: run.function, reason: crate::singleton_reason(&s.key, &holder) });
                    continue;
                }
                woken.absorb(super::ops::cancel(conn, &holder, event.received_at)?.1);
            }
            if let Some(rate) = &run.rate
                && let Err(wait) = super::flow::admit_rate(conn, &run.function, rate, event.received_at)?
            {
                skipped.push(Skipped { function: run.function, reason: crate::rate_reason(rate, wait) });
                continue;
            }
            insert_run(conn, &run)?;
            run_ids.push(run.run_id);
        }
        insert.execute(params![
            plinth_core::ids::new_run_id(),
            event.id,
            event.name,
            to_json(&event.data),
            event.ts,
            event.received_at,
            to_json(&run_ids),
            to_json(&skipped),
        ])?;
        super::steps::match_event(conn, &event, &mut woken, &mut resumed)?;
        out.push(Ingested { event_id: event.id, run_ids, duplicate: false });
    }
    Ok(((out, resumed), woken))
}

pub(crate) fn prune_events(conn: &Connection, before: i64, dedup_before: i64, batch: u32) -> OpResult<u64> {
    conn.prepare_cached("UPDATE events SET dedup_key = NULL WHERE dedup_key IS NOT NULL AND received_at < ?1")?
        .execute(params![dedup_before])?;
    let n = conn
        .prepare_cached(
            "DELETE FROM events WHERE pk IN (SELECT pk FROM events INDEXED BY events_by_age WHERE received_at < ?1 \
             ORDER BY received_at LIMIT ?2)",
        )?
        .execute(params![before, batch])?;
    none(n as u64)
}

pub(crate) fn fire_tick(conn: &Connection, function: &str, tick: i64, run: &NewRun) -> OpResult<Option<Run>> {
    let changed = conn
        .prepare_cached(
            "INSERT INTO schedules (function, last_tick, last_run_id) VALUES (?1, ?2, ?3) \
             ON CONFLICT (function) DO UPDATE SET last_tick = excluded.last_tick, last_run_id = excluded.last_run_id \
             WHERE schedules.last_tick < excluded.last_tick",
        )?
        .execute(params![function, tick, run.run_id])?;
    if changed == 0 {
        return none(None);
    }
    insert_run(conn, run)?;
    none(Some(run.clone().into_queued()))
}

const EVENT_COLS: &str = "pk, id, name, data, ts, received_at, run_ids, skipped";

fn json<T: serde::de::DeserializeOwned>(row: &Row<'_>, col: usize) -> rusqlite::Result<T> {
    let text: String = row.get(col)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e)))
}

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<(String, StoredEvent)> {
    let event = Event { id: row.get(1)?, name: row.get(2)?, data: json(row, 3)?, ts: row.get(4)?, received_at: row.get(5)? };
    Ok((row.get(0)?, StoredEvent { event, run_ids: json(row, 6)?, skipped: json(row, 7)? }))
}

pub(crate) fn get_event(conn: &Connection, id: &str) -> rusqlite::Result<Option<StoredEvent>> {
    let sql = format!("SELECT {EVENT_COLS} FROM events WHERE id = ?1 ORDER BY pk DESC LIMIT 1");
    Ok(conn.prepare_cached(&sql)?.query_row(params![id], event_from_row).optional()?.map(|(_, e)| e))
}

pub(crate) fn list_events(conn: &Connection, f: &EventFilter) -> rusqlite::Result<EventPage> {
    let mut clauses: Vec<&str> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    if let Some(name) = &f.name {
        clauses.push("name = ?");
        args.push(Value::Text(name.clone()));
    }
    if let Some(t) = f.since {
        clauses.push("received_at >= ?");
        args.push(Value::Integer(t));
    }
    if let Some(c) = &f.cursor {
        clauses.push("pk < ?");
        args.push(Value::Text(c.clone()));
    }
    let filter = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
    let limit = f.limit.max(1);
    args.push(Value::Integer(i64::from(limit) + 1));
    let sql = format!("SELECT {EVENT_COLS} FROM events {filter} ORDER BY pk DESC LIMIT ?");
    let mut rows =
        conn.prepare_cached(&sql)?.query_map(params_from_iter(args), event_from_row)?.collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|(pk, _)| pk.clone())
    } else {
        None
    };
    Ok(EventPage { events: rows.into_iter().map(|(_, e)| e).collect(), next_cursor })
}

pub(crate) fn schedules(conn: &Connection) -> rusqlite::Result<Vec<ScheduleState>> {
    let mut stmt = conn.prepare_cached("SELECT function, last_tick, last_run_id FROM schedules ORDER BY function")?;
    stmt.query_map([], |r| Ok(ScheduleState { function: r.get(0)?, last_tick: r.get(1)?, last_run_id: r.get(2)? }))?.collect()
}
