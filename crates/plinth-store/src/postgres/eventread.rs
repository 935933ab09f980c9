//! Events and schedules on PostgreSQL, read for the API: an event by id, pages of events, each
//! schedule's last tick.

use crate::StoreError;
use crate::events::{EventFilter, EventPage, ScheduleState, StoredEvent};
use plinth_core::Event;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

const EVENT_COLS: &str = "pk, id, name, data, ts, received_at, run_ids, skipped";

fn json<T: serde::de::DeserializeOwned>(row: &PgRow, col: &str) -> Result<T, StoreError> {
    let text: String = row.try_get(col)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))
}

fn event_from_row(row: &PgRow) -> Result<(String, StoredEvent), StoreError> {
    let event = Event {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        data: json(row, "data")?,
        ts: row.try_get("ts")?,
        received_at: row.try_get("received_at")?,
    };
    Ok((row.try_get("pk")?, StoredEvent { event, run_ids: json(row, "run_ids")?, skipped: json(row, "skipped")? }))
}

pub(crate) async fn get_event(pool: &PgPool, id: &str) -> Result<Option<StoredEvent>, StoreError> {
    let sql = format!("SELECT {EVENT_COLS} FROM events WHERE id = $1 ORDER BY pk DESC LIMIT 1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
    row.map(|r| event_from_row(&r).map(|(_, e)| e)).transpose()
}

pub(crate) async fn list_events(pool: &PgPool, f: &EventFilter) -> Result<EventPage, StoreError> {
    let limit = f.limit.max(1);
    let sql = format!(
        "SELECT {EVENT_COLS} FROM events WHERE ($1::text IS NULL OR name = $1) AND ($2::bigint IS NULL OR received_at >= $2) \
         AND ($3::text IS NULL OR pk < $3) ORDER BY pk DESC LIMIT $4"
    );
    let rows = sqlx::query(&sql).bind(&f.name).bind(f.since).bind(&f.cursor).bind(i64::from(limit) + 1).fetch_all(pool).await?;
    let mut events = rows.iter().map(event_from_row).collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if events.len() > limit as usize {
        events.truncate(limit as usize);
        events.last().map(|(pk, _)| pk.clone())
    } else {
        None
    };
    Ok(EventPage { events: events.into_iter().map(|(_, e)| e).collect(), next_cursor })
}

pub(crate) async fn schedules(pool: &PgPool) -> Result<Vec<ScheduleState>, StoreError> {
    let rows = sqlx::query("SELECT function, last_tick, last_run_id FROM schedules ORDER BY function").fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            Ok(ScheduleState {
                function: r.try_get("function")?,
                last_tick: r.try_get("last_tick")?,
                last_run_id: r.try_get("last_run_id")?,
            })
        })
        .collect()
}
