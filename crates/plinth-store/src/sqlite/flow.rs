//! Flow control on SQLite: the lanes of limited functions, their fair claim, and what holds a
//! queued run back. Every write runs on the writer thread, so a lane's count cannot change
//! between reading it and claiming against it.

use super::ops::{OpResult, none};
use super::rows::{RUN_COLS, run_from_row};
use crate::{ClaimRequest, FlowLimit, FlowUpkeep, Lane, QueueStats};
use plinth_core::flow::RateCheck;
use plinth_core::{NewRun, Run};
use rusqlite::{Connection, OptionalExtension, params};

/// Records that `key` of `function` has open work (a no-op when it is known).
pub(crate) fn open_lane(conn: &Connection, function: &str, key: &str, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO flow_keys (function, key, served, touched_at) VALUES (?1, ?2, 0, ?3)")?
        .execute(params![function, key, now])?;
    Ok(())
}

/// Counts a new run of `function` against its rate limit at `now`: `Ok` and counted when its
/// key's window has room, `Err(micros until the window ends)` when it has none.
pub(crate) fn admit_rate(conn: &Connection, function: &str, rate: &RateCheck, now: i64) -> rusqlite::Result<Result<(), i64>> {
    let window = rate.window(now);
    let ends = window.saturating_add(rate.period);
    let current: Option<(i64, u32)> = conn
        .prepare_cached("SELECT window_start, count FROM flow_rates WHERE function = ?1 AND key = ?2")?
        .query_row(params![function, rate.key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let count = match current {
        Some((start, count)) if start == window => count,
        _ => 0,
    };
    if count >= rate.limit {
        return Ok(Err(ends - now));
    }
    conn.prepare_cached(
        "INSERT INTO flow_rates (function, key, window_start, ends_at, count) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (function, key) DO UPDATE SET window_start = excluded.window_start, ends_at = excluded.ends_at, \
         count = excluded.count",
    )?
    .execute(params![function, rate.key, window, ends, count + 1])?;
    Ok(Ok(()))
}

/// Feeds `run` to the queued run of its debounce key, if there is one: that run takes its input,
/// trigger and correlation id, and starts `period` after now (never past `max_wait` after it was
/// created). Answers that run's id; none when `run` must be stored.
pub(crate) fn debounce_into(conn: &Connection, run: &NewRun) -> rusqlite::Result<Option<String>> {
    let Some(d) = &run.debounce else { return Ok(None) };
    let found: Option<(String, i64)> = conn
        .prepare_cached(
            "SELECT id, created_at FROM runs INDEXED BY runs_debounce WHERE function = ?1 AND debounce_key = ?2 \
             AND status = 'queued' AND debounce_key IS NOT NULL AND started_at IS NULL ORDER BY created_at LIMIT 1",
        )?
        .query_row(params![run.function, d.key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((id, created_at)) = found else { return Ok(None) };
    let trigger = (run.trigger != plinth_core::Trigger::Api).then(|| super::rows::to_json(&run.trigger));
    conn.prepare_cached(
        "UPDATE runs SET input = ?2, next_attempt_at = ?3, trigger = ?4, trigger_type = ?5, event_id = ?6, \
         correlation_id = ?7 WHERE id = ?1",
    )?
    .execute(params![
        id,
        super::rows::to_json(&run.input),
        d.due(created_at, run.created_at),
        trigger,
        run.trigger.kind(),
        run.trigger.event_id(),
        run.correlation_id,
    ])?;
    Ok(Some(id))
}

/// Adds the event of `run` (a run of a batched function an event starts) to the open batch of
/// its key, if there is one: the queued run with the key, never started. A batch that becomes
/// full is closed (its key cleared) and due at once. Answers the batch's run id.
pub(crate) fn batch_into(conn: &Connection, run: &NewRun) -> rusqlite::Result<Option<String>> {
    let Some(b) = &run.batch else { return Ok(None) };
    let event = super::rows::to_json(&run.input["events"][0]);
    conn.prepare_cached(
        "UPDATE runs SET input = json_insert(input, '$.events[#]', json(?3)), \
           batch_key = CASE WHEN json_array_length(input, '$.events') + 1 >= ?4 THEN NULL ELSE batch_key END, \
           next_attempt_at = CASE WHEN json_array_length(input, '$.events') + 1 >= ?4 \
             THEN MIN(next_attempt_at, ?5) ELSE next_attempt_at END \
         WHERE id = (SELECT id FROM runs INDEXED BY runs_batch WHERE function = ?1 AND batch_key = ?2 \
           AND status = 'queued' AND batch_key IS NOT NULL AND started_at IS NULL ORDER BY created_at LIMIT 1) \
         RETURNING id",
    )?
    .query_row(params![run.function, b.key, event, b.max_size, run.created_at], |r| r.get(0))
    .optional()
}

/// The unfinished run of `run`'s singleton key that is not already being cancelled, if any.
pub(crate) fn singleton_holder(conn: &Connection, run: &NewRun) -> rusqlite::Result<Option<String>> {
    let Some(s) = &run.singleton else { return Ok(None) };
    conn.prepare_cached(
        "SELECT id FROM runs INDEXED BY runs_singleton WHERE function = ?1 AND singleton_key = ?2 \
         AND singleton_key IS NOT NULL AND status IN ('queued', 'running', 'waiting') AND cancel_requested = 0 \
         ORDER BY created_at LIMIT 1",
    )?
    .query_row(params![run.function, s.key], |r| r.get(0))
    .optional()
}

/// How many lanes one claim looks at for `n` runs: enough to step over full lanes, bounded so
/// a claim stays cheap however many lanes there are.
pub(crate) fn lanes_to_probe(n: u32) -> u32 {
    n.saturating_mul(4).saturating_add(16).min(1024)
}

/// Picks round-robin from per-lane candidates (each in its lane's order): the first run of
/// every lane, then the second, up to `n`. Answers the ids and the last lane that gave one.
pub(crate) fn round_robin(candidates: &[Vec<String>], n: usize) -> (Vec<String>, Option<usize>) {
    let mut chosen = Vec::with_capacity(n);
    let mut last = None;
    let deepest = candidates.iter().map(Vec::len).max().unwrap_or(0);
    'rounds: for depth in 0..deepest {
        for (lane, ids) in candidates.iter().enumerate() {
            if chosen.len() >= n {
                break 'rounds;
            }
            if let Some(id) = ids.get(depth) {
                chosen.push(id.clone());
                last = Some(last.map_or(lane, |l: usize| l.max(lane)));
            }
        }
    }
    (chosen, last)
}

/// Leases up to `n` due runs of `function` as its lanes' rules allow: at most `concurrency`
/// running per lane, at most the starts its throttle admits now. Lanes are looked at least
/// recently served first until they offer `n` runs, then served round-robin (the first run of
/// each, then the second...); the lanes served move to the back of the line, so a lane with
/// 10,000 queued runs gets one turn like a lane with one. Answers the runs, and when a run the
/// throttle holds back may start.
pub(crate) fn claim_lanes(
    conn: &Connection,
    req: &ClaimRequest,
    function: &str,
    n: u32,
    rules: &FlowLimit,
) -> rusqlite::Result<(Vec<Run>, Option<i64>)> {
    let lanes: Vec<(String, i64)> = conn
        .prepare_cached(
            "SELECT key, tat FROM flow_keys INDEXED BY flow_keys_turn WHERE function = ?1 ORDER BY served, key LIMIT ?2",
        )?
        .query_map(params![function, lanes_to_probe(n)], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut running_of = conn.prepare_cached(
        "SELECT COUNT(*) FROM runs INDEXED BY runs_lane_open WHERE function = ?1 AND flow_key = ?2 AND status = 'running' \
         AND status IN ('queued', 'running', 'waiting')",
    )?;
    let mut due = conn.prepare_cached(
        "SELECT id FROM runs INDEXED BY runs_lane_queue WHERE function = ?1 AND flow_key = ?2 \
         AND status = 'queued' AND next_attempt_at <= ?3 ORDER BY priority DESC, next_attempt_at, id LIMIT ?4",
    )?;
    let mut candidates: Vec<Vec<String>> = Vec::new();
    let mut throttled_until: Option<i64> = None;
    let mut offered = 0_usize;
    for (key, tat) in &lanes {
        if offered >= n as usize {
            break;
        }
        let mut room = n;
        if let Some(limit) = rules.concurrency {
            let running: u32 = running_of.query_row(params![function, key], |r| r.get(0))?;
            room = room.min(limit.saturating_sub(running));
        }
        let wanted = room;
        if let Some(g) = rules.throttle {
            room = g.admit(*tat, req.now, room).0;
        }
        let ids: Vec<String> = if wanted == 0 {
            Vec::new()
        } else {
            // Why: one more than the throttle admits tells whether it holds a due run back.
            let ask = if room < wanted { room + 1 } else { room };
            due.query_map(params![function, key, req.now, ask], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        let mut ids = ids;
        if ids.len() > room as usize {
            ids.truncate(room as usize);
            let (_, after) = rules.throttle.map_or((0, *tat), |g| g.admit(*tat, req.now, room));
            let next = rules.throttle.map_or(req.now, |g| g.next_start(after));
            throttled_until = Some(throttled_until.map_or(next, |t| t.min(next)));
        }
        offered += ids.len();
        candidates.push(ids);
    }
    let (chosen, last) = round_robin(&candidates, n as usize);
    // Why: the lanes looked at up to the last one served go to the back of the line; when none
    // had a run to give, every lane looked at does, so the next claim looks at others. When
    // they were all the function's lanes, the next claim looks at them all again whatever
    // their order: nothing is written, so a claim that finds every lane full does not commit
    // a write (one `fsync` a claim, measured 0.16 against 0.40 ms with 1,000,000 runs queued
    // behind one full lane, session 23).
    let every_lane_seen = lanes.len() < lanes_to_probe(n) as usize;
    let bumped = match last {
        Some(l) => l + 1,
        None if every_lane_seen => 0,
        None => candidates.len(),
    };
    let mut served = conn.prepare_cached("UPDATE flow_keys SET served = ?3, touched_at = ?4 WHERE function = ?1 AND key = ?2")?;
    for (turn, (key, _)) in (0_i64..).zip(&lanes[..bumped]) {
        served.execute(params![function, key, req.now.saturating_add(turn), req.now])?;
    }
    if chosen.is_empty() {
        return Ok((Vec::new(), throttled_until));
    }
    let ids = serde_json::to_string(&chosen).unwrap_or_default();
    let runs: Vec<Run> = conn
        .prepare_cached(&format!(
            "UPDATE runs SET status = 'running', attempt = attempt + 1, lease_owner = ?1, lease_expires_at = ?2, started_at = ?3 \
             WHERE id IN (SELECT value FROM json_each(?4)) AND status = 'queued' RETURNING {RUN_COLS}"
        ))?
        .query_map(params![req.owner, req.lease_until, req.now, ids], run_from_row)?
        .collect::<Result<_, _>>()?;
    if let Some(g) = rules.throttle {
        let mut spent = conn.prepare_cached("UPDATE flow_keys SET tat = ?3 WHERE function = ?1 AND key = ?2")?;
        for (key, tat) in &lanes[..bumped] {
            let started = runs.iter().filter(|r| r.flow_key.as_deref() == Some(key.as_str())).count();
            if started > 0 {
                let (_, after) = g.admit(*tat, req.now, u32::try_from(started).unwrap_or(u32::MAX));
                spent.execute(params![function, key, after])?;
            }
        }
    }
    Ok((runs, throttled_until))
}

/// The state of a queued run's lane: how many of its runs execute and how many queued runs
/// come before it. Why two ranges rather than one condition with `OR`: with the `OR`, SQLite
/// walked the lane's whole queue for a run near its front (143 ms with 1,000,000 queued); each
/// range reads only the runs ahead, at most [`crate::flow::AHEAD_COUNTED`] of them.
pub(crate) fn lane(conn: &Connection, function: &str, key: &str, run_id: &str) -> rusqlite::Result<Lane> {
    let running: u32 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM runs INDEXED BY runs_lane_open WHERE function = ?1 AND flow_key = ?2 AND status = 'running' \
         AND status IN ('queued', 'running', 'waiting')",
        )?
        .query_row(params![function, key], |r| r.get(0))?;
    let me: Option<(i64, i64)> = conn
        .prepare_cached("SELECT priority, next_attempt_at FROM runs WHERE id = ?1")?
        .query_row(params![run_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let tat: i64 = conn
        .prepare_cached("SELECT tat FROM flow_keys WHERE function = ?1 AND key = ?2")?
        .query_row(params![function, key], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let Some((priority, due)) = me else { return Ok(Lane { running, ahead: 0, tat }) };
    let ahead: i64 = conn
        .prepare_cached(
            "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM runs INDEXED BY runs_lane_queue WHERE function = ?1 \
               AND flow_key = ?2 AND status = 'queued' AND priority > ?3 LIMIT ?6)) \
             + (SELECT COUNT(*) FROM (SELECT 1 FROM runs INDEXED BY runs_lane_queue WHERE function = ?1 \
               AND flow_key = ?2 AND status = 'queued' AND priority = ?3 AND (next_attempt_at, id) < (?4, ?5) LIMIT ?6))",
        )?
        .query_row(
            params![function, key, priority, due, run_id, i64::try_from(crate::flow::AHEAD_COUNTED).unwrap_or(i64::MAX)],
            |r| r.get(0),
        )?;
    Ok(Lane { running, ahead: count(ahead).min(crate::flow::AHEAD_COUNTED), tat })
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The priority levels of `function`'s queue with the due time of the first run of each, the
/// highest first: a skip along `runs_queue`, one index probe a level.
const LEVELS: &str = "WITH RECURSIVE levels(priority) AS ( \
    SELECT (SELECT priority FROM runs INDEXED BY runs_queue WHERE function = ?1 AND status = 'queued' \
            ORDER BY priority DESC LIMIT 1) \
    UNION ALL \
    SELECT (SELECT priority FROM runs INDEXED BY runs_queue WHERE function = ?1 AND status = 'queued' \
            AND priority < levels.priority ORDER BY priority DESC LIMIT 1) FROM levels WHERE levels.priority IS NOT NULL) \
    SELECT priority, (SELECT next_attempt_at FROM runs INDEXED BY runs_queue WHERE function = ?1 AND status = 'queued' \
            AND priority = levels.priority ORDER BY next_attempt_at LIMIT 1) FROM levels WHERE priority IS NOT NULL";

/// Every function's queue at `now`: the depth kept in `run_counts`, the not-due and then (if
/// needed) the due runs counted up to `bound` along `runs_queue`, level by level, all in one
/// read transaction.
pub(crate) fn queue_stats(conn: &Connection, now: i64, bound: u64) -> rusqlite::Result<Vec<QueueStats>> {
    let bound = i64::try_from(bound).unwrap_or(i64::MAX);
    let tx = conn.unchecked_transaction()?;
    let depths = tx
        .prepare_cached("SELECT function, runs FROM run_counts WHERE status = 'queued' AND runs > 0 ORDER BY function")?
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut stats = Vec::with_capacity(depths.len());
    for (function, queued) in depths {
        let levels = tx
            .prepare_cached(LEVELS)?
            .query_map(params![function], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let not_due = count_levels(&tx, &function, &levels, now, bound, false)?;
        let due = if not_due < bound { None } else { Some(count_levels(&tx, &function, &levels, now, bound, true)?) };
        let oldest = levels.iter().map(|l| l.1).filter(|t| *t <= now).min();
        stats.push(QueueStats::split_scheduled_first(function, queued, bound, not_due, due, oldest));
    }
    tx.commit()?;
    Ok(stats)
}

/// The queued runs of `function` that are due at `now` (`due`) or not, counted level by level
/// up to `bound` in all.
fn count_levels(
    conn: &Connection,
    function: &str,
    levels: &[(i64, i64)],
    now: i64,
    bound: i64,
    due: bool,
) -> rusqlite::Result<i64> {
    let sql = if due {
        "SELECT COUNT(*) FROM (SELECT 1 FROM runs INDEXED BY runs_queue WHERE function = ?1 AND status = 'queued' \
         AND priority = ?2 AND next_attempt_at <= ?3 LIMIT ?4)"
    } else {
        "SELECT COUNT(*) FROM (SELECT 1 FROM runs INDEXED BY runs_queue WHERE function = ?1 AND status = 'queued' \
         AND priority = ?2 AND next_attempt_at > ?3 LIMIT ?4)"
    };
    let mut count = crate::flow::LevelCount::new(levels, now, bound, due);
    while let Some((priority, most)) = count.next() {
        count.add(conn.prepare_cached(sql)?.query_row(params![function, priority, now, most], |r| r.get::<_, i64>(0))?);
    }
    Ok(count.n)
}

/// Upkeep of the lanes: see [`FlowUpkeep`].
pub(crate) fn upkeep(conn: &Connection, what: &FlowUpkeep) -> OpResult<u64> {
    let open = "status IN ('queued', 'running', 'waiting')";
    let n = match what {
        FlowUpkeep::Adopt { function, limited: true, now } => {
            let n = conn
                .prepare_cached(&format!("UPDATE runs SET flow_key = '' WHERE function = ?1 AND flow_key IS NULL AND {open}"))?
                .execute(params![function])?;
            if n > 0 {
                open_lane(conn, function, "", *now)?;
            }
            n
        }
        FlowUpkeep::Adopt { function, limited: false, .. } => conn
            .prepare_cached(&format!("UPDATE runs SET flow_key = NULL WHERE function = ?1 AND flow_key IS NOT NULL AND {open}"))?
            .execute(params![function])?,
        FlowUpkeep::Forget { idle_before } => {
            let rates = conn
                .prepare_cached(
                    "DELETE FROM flow_rates WHERE rowid IN (SELECT rowid FROM flow_rates INDEXED BY flow_rates_ends \
                     WHERE ends_at < ?1 LIMIT 1000)",
                )?
                .execute(params![idle_before])?;
            rates
                + conn
                    .prepare_cached(&format!(
                        "DELETE FROM flow_keys WHERE rowid IN (SELECT k.rowid FROM flow_keys k INDEXED BY flow_keys_idle \
                         WHERE k.touched_at < ?1 AND NOT EXISTS (SELECT 1 FROM runs INDEXED BY runs_lane_open \
                         WHERE function = k.function AND flow_key = k.key AND {open}) LIMIT 1000)"
                    ))?
                    .execute(params![idle_before])?
        }
    };
    none(n as u64)
}
