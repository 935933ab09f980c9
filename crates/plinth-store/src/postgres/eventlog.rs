//! Events and schedules on PostgreSQL: ingest (events with their runs, one transaction, set-based
//! statements), pruning, and schedule ticks fired once across nodes. Their reads: eventread.rs.

use super::insert::insert_many;
use super::lock_key;
use super::rows::to_json;
use crate::StoreError;
use crate::events::{Ingested, NewEvent, Skipped};
use plinth_core::{Event, NewRun, Run};
use sqlx::{PgConnection, PgPool, Row};
use std::collections::{HashMap, HashSet};

/// How many more runs each function with a queue limit may take now; locks each such queue
/// for the transaction, as a single enqueue does.
async fn free_places(conn: &mut PgConnection, schema: &str, events: &[NewEvent]) -> Result<HashMap<String, i64>, StoreError> {
    let mut limits: Vec<(String, u32)> =
        events.iter().flat_map(|e| &e.runs).filter_map(|r| r.max_queued.map(|l| (r.function.clone(), l))).collect();
    limits.sort();
    limits.dedup_by(|a, b| a.0 == b.0);
    let mut free = HashMap::new();
    for (function, limit) in limits {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(lock_key(&["plinth-queue", schema, &function]))
            .execute(&mut *conn)
            .await?;
        let queued: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM runs WHERE status = 'queued' AND function = $1 LIMIT $2) AS waiting",
        )
        .bind(&function)
        .bind(i64::from(limit))
        .fetch_one(&mut *conn)
        .await?;
        free.insert(function, i64::from(limit) - queued);
    }
    Ok(free)
}

/// An event to store, with the runs it starts, the listeners it skips (queue limits and rate
/// limits applied) and the queued runs it fed instead of starting one (debounce).
type Decided = (Event, Vec<NewRun>, Vec<Skipped>, Vec<String>);

/// Where a run this call stores sits: `(event index, run index)`.
type Pending = HashMap<(String, String), (usize, usize)>;

/// Feeds `run` to an earlier run of this call with its debounce key (`pending`): that run takes
/// its input, trigger and correlation id, and its start moves on. Answers that run's id.
fn feed_pending(run: &NewRun, pending: &Pending, decided: &mut [Decided], keep: &mut [NewRun]) -> Option<String> {
    let d = run.debounce.as_ref()?;
    let &(event, index) = pending.get(&(run.function.clone(), d.key.clone()))?;
    let target = if event == decided.len() { keep.get_mut(index)? } else { decided.get_mut(event)?.1.get_mut(index)? };
    target.not_before = d.due(target.created_at, run.created_at);
    target.input = run.input.clone();
    target.trigger = run.trigger.clone();
    target.correlation_id = run.correlation_id.clone();
    Some(target.run_id.clone())
}

/// Adds `run`'s event to an earlier run of this call with its batch key (`open`): a batch that
/// becomes full is closed (no key stored, due at once) and leaves `open`. Answers that run's id.
fn join_pending(run: &NewRun, open: &mut Pending, decided: &mut [Decided], keep: &mut [NewRun]) -> Option<String> {
    let b = run.batch.as_ref()?;
    let at = (run.function.clone(), b.key.clone());
    let &(event, index) = open.get(&at)?;
    let target = if event == decided.len() { keep.get_mut(index)? } else { decided.get_mut(event)?.1.get_mut(index)? };
    let events = target.input.get_mut("events").and_then(serde_json::Value::as_array_mut)?;
    events.push(run.input["events"][0].clone());
    if events.len() >= b.max_size as usize {
        target.batch = None;
        target.not_before = target.not_before.min(run.created_at);
        open.remove(&at);
    }
    Some(target.run_id.clone())
}

/// What one ingest attempt did: stored the events (with whether runs became due in the queue,
/// by a wait woken or a run stored queued or fed, and the runs of this call that a later one
/// of the same singleton key cancelled at once), or found unfinished runs of singleton keys
/// (mode `cancel`) to cancel first; the caller cancels them through the store's cancel, which
/// announces them, then tries again.
pub(crate) enum Ingest {
    Done {
        ingested: Vec<Ingested>,
        due: bool,
        cascade: super::steps::Cascade,
        resumed: crate::starter::Resumed,
    },
    CancelFirst(Vec<String>),
    /// Another transaction stored one of the ids after this one looked: nothing was stored;
    /// trying again finds it.
    Raced,
}

/// What an event already stored under one of `ids` answers, by id: its id and the runs it
/// started, for those received at or after `dedup_after`. The id of an older event stops
/// counting here: its `dedup_key` is cleared (decision 0038: only an ingest that meets it
/// clears it; the pruner deletes old events without that step).
async fn seen_ids(conn: &mut PgConnection, ids: &[String], dedup_after: i64) -> Result<Seen, StoreError> {
    let rows = sqlx::query("SELECT pk, id, run_ids, received_at FROM events WHERE id = ANY($1) AND dedup_key IS NOT NULL")
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
    let (mut seen, mut stale) = (Seen::new(), Vec::new());
    for row in rows {
        if row.try_get::<i64, _>("received_at")? < dedup_after {
            stale.push(row.try_get::<String, _>("pk")?);
            continue;
        }
        let run_ids: String = row.try_get("run_ids")?;
        let run_ids = serde_json::from_str(&run_ids).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let id: String = row.try_get("id")?;
        seen.insert(id.clone(), (id, run_ids));
    }
    if !stale.is_empty() {
        sqlx::query("UPDATE events SET dedup_key = NULL WHERE pk = ANY($1)").bind(&stale).execute(&mut *conn).await?;
    }
    Ok(seen)
}

/// An id stored within the dedup window: the event's id and the runs it started.
type Seen = HashMap<String, (String, Vec<String>)>;

pub(crate) async fn ingest(
    pool: &PgPool,
    schema: &str,
    events: &[NewEvent],
    dedup_after: i64,
    mut resumed: crate::starter::Resumed,
) -> Result<Ingest, StoreError> {
    let mut tx = pool.begin().await?;
    let ids: Vec<String> = events.iter().map(|e| e.event.id.clone()).collect();
    let seen = seen_ids(&mut tx, &ids, dedup_after).await?;
    // Why: an id twice in one call is stored once, as on SQLite; the repeat answers the first.
    let mut taken = HashSet::new();
    let fresh: Vec<NewEvent> =
        events.iter().filter(|e| !seen.contains_key(&e.event.id) && taken.insert(e.event.id.clone())).cloned().collect();
    let mut free = free_places(&mut tx, schema, &fresh).await?;
    let owned: Vec<(String, plinth_core::flow::RateCheck)> =
        fresh.iter().flat_map(|e| &e.runs).filter_map(|r| r.rate.clone().map(|c| (r.function.clone(), c))).collect();
    let checks: Vec<(&str, &plinth_core::flow::RateCheck)> = owned.iter().map(|(f, c)| (f.as_str(), c)).collect();
    let periods = super::rates::periods(&checks);
    let mut book = super::rates::RateBook::lock(&mut tx, &checks).await?;
    let debounced: Vec<(&str, &str)> = fresh
        .iter()
        .flat_map(|e| &e.runs)
        .filter_map(|r| r.debounce.as_ref().map(|d| (r.function.as_str(), d.key.as_str())))
        .collect();
    super::rates::lock_keys(&mut tx, "plinth-debounce", schema, &debounced).await?;
    let batched: Vec<(&str, &str)> = fresh
        .iter()
        .flat_map(|e| &e.runs)
        .filter_map(|r| r.batch.as_ref().map(|b| (r.function.as_str(), b.key.as_str())))
        .collect();
    super::rates::lock_keys(&mut tx, "plinth-batch", schema, &batched).await?;
    let mut batches = Pending::new();
    let singles: Vec<(&str, &str)> = fresh
        .iter()
        .flat_map(|e| &e.runs)
        .filter_map(|r| r.singleton.as_ref().map(|s| (r.function.as_str(), s.key.as_str())))
        .collect();
    super::rates::lock_keys(&mut tx, "plinth-singleton", schema, &singles).await?;
    let mut pending = Pending::new();
    let mut holders: HashMap<(String, String), String> = HashMap::new();
    let (mut cancel_first, mut born_cancelled) = (Vec::new(), Vec::new());
    let mut decided: Vec<Decided> = Vec::with_capacity(fresh.len());
    let cancels_of: HashMap<String, Vec<plinth_core::flow::CancelMatch>> =
        fresh.iter().filter(|e| !e.cancels.is_empty()).map(|e| (e.event.id.clone(), e.cancels.clone())).collect();
    for NewEvent { event, runs, mut skipped, cancels: _ } in fresh {
        let mut keep = Vec::with_capacity(runs.len());
        let mut fed = Vec::new();
        for run in runs {
            if let Some(id) = join_pending(&run, &mut batches, &mut decided, &mut keep) {
                fed.push(id);
                continue;
            }
            if let Some(id) = super::rates::batch_into(&mut tx, &run).await? {
                fed.push(id);
                continue;
            }
            if let Some(id) = feed_pending(&run, &pending, &mut decided, &mut keep) {
                fed.push(id);
                continue;
            }
            if let Some(id) = super::rates::debounce_into(&mut tx, &run).await? {
                fed.push(id);
                continue;
            }
            if let Some(s) = &run.singleton {
                let key = (run.function.clone(), s.key.clone());
                let holder = match holders.get(&key) {
                    Some(earlier) => Some((earlier.clone(), true)),
                    None => super::rates::singleton_holder(&mut tx, &run).await?.map(|h| (h, false)),
                };
                match holder {
                    Some((holder, _)) if s.mode == plinth_core::flow::SingletonMode::Skip => {
                        skipped.push(Skipped { function: run.function, reason: crate::singleton_reason(&s.key, &holder) });
                        continue;
                    }
                    // Why: an earlier run of this call is stored and cancelled at once, as if the
                    // events had come one by one.
                    Some((holder, true)) => born_cancelled.push(holder),
                    Some((holder, false)) => cancel_first.push(holder),
                    None => {}
                }
            }
            match (run.max_queued, free.get_mut(&run.function)) {
                (Some(limit), Some(left)) if *left <= 0 => {
                    skipped.push(Skipped { function: run.function, reason: format!("its queue is full ({limit} runs waiting)") });
                }
                (_, left) => {
                    if let Some(rate) = &run.rate
                        && let Err(wait) = book.admit(&run.function, rate, event.received_at)
                    {
                        skipped.push(Skipped { function: run.function.clone(), reason: crate::rate_reason(rate, wait) });
                        continue;
                    }
                    if let Some(left) = left {
                        *left -= 1;
                    }
                    if let Some(d) = &run.debounce {
                        pending.insert((run.function.clone(), d.key.clone()), (decided.len(), keep.len()));
                    }
                    if let Some(b) = &run.batch {
                        batches.insert((run.function.clone(), b.key.clone()), (decided.len(), keep.len()));
                    }
                    if let Some(s) = &run.singleton {
                        holders.insert((run.function.clone(), s.key.clone()), run.run_id.clone());
                    }
                    keep.push(run);
                }
            }
        }
        decided.push((event, keep, skipped, fed));
    }
    if !cancel_first.is_empty() {
        tx.rollback().await?;
        return Ok(Ingest::CancelFirst(cancel_first));
    }
    book.save(&mut tx, &periods).await?;
    let col = |f: &dyn Fn(&Decided) -> String| decided.iter().map(f).collect::<Vec<String>>();
    let num = |f: &dyn Fn(&Decided) -> i64| decided.iter().map(f).collect::<Vec<i64>>();
    // Why no `ON CONFLICT`: its speculative insertion took about a sixth of PostgreSQL's time
    // per event in `pgbench` (decision 0038); an id stored by another transaction since
    // `seen_ids` read fails the whole statement instead, and the caller tries again, then
    // finds it.
    let stored = sqlx::query(
        "INSERT INTO events (pk, id, name, data, ts, received_at, dedup_key, run_ids, skipped) \
         SELECT pk, id, name, data, ts, received_at, id, run_ids, skipped \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::text[]) \
           AS e(pk, id, name, data, ts, received_at, run_ids, skipped)",
    )
    .bind(col(&|_| plinth_core::ids::new_run_id()))
    .bind(col(&|d| d.0.id.clone()))
    .bind(col(&|d| d.0.name.clone()))
    .bind(col(&|d| to_json(&d.0.data)))
    .bind(num(&|d| d.0.ts))
    .bind(num(&|d| d.0.received_at))
    .bind(col(&|d| to_json(&d.1.iter().map(|r| r.run_id.as_str()).chain(d.3.iter().map(String::as_str)).collect::<Vec<_>>())))
    .bind(col(&|d| to_json(&d.2)))
    .execute(&mut *tx)
    .await;
    match stored {
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("events_by_id_dedup") => {
            tx.rollback().await?;
            return Ok(Ingest::Raced);
        }
        stored => stored?,
    };
    let runs: Vec<&NewRun> = decided.iter().flat_map(|d| &d.1).collect();
    // Why: a run stored started (decision 0035) is this node's already; only runs left in the
    // queue (or fed into a batch or debounce, which may fall due) call for a claim.
    let mut due = runs.iter().any(|r| r.start.is_none()) || decided.iter().any(|d| !d.3.is_empty());
    if !runs.is_empty() {
        insert_many(&mut tx, &runs).await?;
    }
    if !born_cancelled.is_empty() {
        let now = runs.iter().map(|r| r.created_at).max().unwrap_or_default();
        sqlx::query(
            "UPDATE runs SET status = 'cancelled', finished_at = $2, error = $3, cancel_requested = TRUE WHERE id = ANY($1)",
        )
        .bind(&born_cancelled)
        .bind(now)
        .bind(to_json(&crate::cancelled_error()))
        .execute(&mut *tx)
        .await?;
    }
    let mut cascade = super::steps::Cascade { terminal: born_cancelled, cancels: Vec::new() };
    let stored: Vec<&Decided> = decided.iter().collect();
    for (i, d) in stored.iter().enumerate() {
        if let Some(rules) = cancels_of.get(&d.0.id) {
            let exclude: Vec<String> = stored[i..].iter().flat_map(|d| d.1.iter().map(|r| r.run_id.clone())).collect();
            super::expiry::cancel_matching(&mut tx, &d.0, rules, &exclude, &mut cascade).await?;
        }
    }
    let mut conds = super::waits::Conds::new();
    for d in &decided {
        due |= super::waits::match_event(&mut tx, &d.0, &mut conds, &mut resumed).await?;
    }
    tx.commit().await?;
    let stored: HashMap<String, Vec<String>> =
        decided.into_iter().map(|d| (d.0.id, d.1.into_iter().map(|r| r.run_id).chain(d.3).collect())).collect();
    let mut answered = HashSet::new();
    let out: Result<Vec<Ingested>, StoreError> = ids
        .into_iter()
        .map(|id| match stored.get(&id) {
            Some(run_ids) if answered.insert(id.clone()) => {
                Ok(Ingested { event_id: id, run_ids: run_ids.clone(), duplicate: false })
            }
            Some(run_ids) => Ok(Ingested { event_id: id, run_ids: run_ids.clone(), duplicate: true }),
            None => {
                let (event_id, run_ids) =
                    seen.get(&id).cloned().ok_or_else(|| StoreError::Corrupt(format!("event {id} vanished while stored")))?;
                Ok(Ingested { event_id, run_ids, duplicate: true })
            }
        })
        .collect();
    Ok(Ingest::Done { ingested: out?, due, cascade, resumed })
}

/// Deletes up to `batch` events received before `before`. Ids received before the dedup window
/// need no step of their own: an ingest meeting one clears its key (`seen_ids`).
pub(crate) async fn prune_events(pool: &PgPool, before: i64, batch: u32) -> Result<u64, StoreError> {
    let n = sqlx::query(
        "DELETE FROM events WHERE pk IN (SELECT pk FROM events WHERE received_at < $1 ORDER BY received_at LIMIT $2)",
    )
    .bind(before)
    .bind(i64::from(batch))
    .execute(pool)
    .await?
    .rows_affected();
    Ok(n)
}

pub(crate) async fn fire_tick(pool: &PgPool, function: &str, tick: i64, run: NewRun) -> Result<Option<Run>, StoreError> {
    let mut tx = pool.begin().await?;
    let changed = sqlx::query(
        "INSERT INTO schedules (function, last_tick, last_run_id) VALUES ($1, $2, $3) \
         ON CONFLICT (function) DO UPDATE SET last_tick = excluded.last_tick, last_run_id = excluded.last_run_id \
         WHERE schedules.last_tick < excluded.last_tick",
    )
    .bind(function)
    .bind(tick)
    .bind(&run.run_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        tx.rollback().await?;
        return Ok(None);
    }
    insert_many(&mut tx, &[&run]).await?;
    tx.commit().await?;
    Ok(Some(run.into_queued()))
}
