//! Flow control on PostgreSQL: the lanes of limited functions, their fair claim across nodes,
//! and what holds a queued run back.
//!
//! The locks that keep a lane's limit across nodes (see migration 0004):
//! - a claim locks the lanes it looks at `FOR NO KEY UPDATE SKIP LOCKED`, then counts and takes
//!   in a later statement, so its count sees every claim committed before it got the lock, and
//!   two nodes never serve one lane at once;
//! - an enqueue holds its lane `FOR KEY SHARE` (which does not conflict with a claim), so the
//!   upkeep, which locks a lane `FOR UPDATE SKIP LOCKED` before forgetting it, cannot forget a
//!   lane whose new run is not committed yet.

use super::rows::{RUN_COLS, run_from_row};
use crate::{ClaimRequest, FlowLimit, FlowUpkeep, Lane, QueueStats, StoreError};
use plinth_core::{NewRun, Run};
use sqlx::{PgConnection, PgPool, Row};

/// The lanes `(function, key)` of the runs that have one.
pub(crate) fn lanes_of<'a>(runs: &[&'a NewRun]) -> Vec<(&'a str, &'a str)> {
    runs.iter().filter_map(|r| r.flow_key.as_deref().map(|k| (r.function.as_str(), k))).collect()
}

/// Makes sure the lanes exist and cannot be forgotten before this transaction ends.
pub(crate) async fn open_lanes(conn: &mut PgConnection, mut pairs: Vec<(&str, &str)>, now: i64) -> Result<(), StoreError> {
    if pairs.is_empty() {
        return Ok(());
    }
    // Why: lanes are locked and inserted in one order everywhere, so two enqueues cannot deadlock.
    pairs.sort_unstable();
    pairs.dedup();
    let (functions, keys): (Vec<&str>, Vec<&str>) = pairs.into_iter().unzip();
    sqlx::query(
        "SELECT 1 FROM flow_keys k JOIN unnest($1::text[], $2::text[]) AS u(function, key) \
         ON k.function = u.function AND k.key = u.key ORDER BY k.function, k.key FOR KEY SHARE OF k",
    )
    .bind(&functions)
    .bind(&keys)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO flow_keys (function, key, served, touched_at) \
         SELECT function, key, 0, $3 FROM unnest($1::text[], $2::text[]) AS u(function, key) ORDER BY function, key \
         ON CONFLICT (function, key) DO NOTHING",
    )
    .bind(&functions)
    .bind(&keys)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Takes up to `$6` due runs from the lanes `$5` (already locked, in turn order): per lane at
/// most its room `$7` (the limit minus its running runs, within its throttle's cap, counted as
/// the lanes were locked), round-robin across lanes (every lane's first run, then every lane's
/// second...). Records the attempts;
/// answers the runs. The chosen runs are updated by id (`= ANY(ARRAY(...))`, an index probe
/// each): joined to `runs` instead, the custom plan hashed them against a sequential scan of the
/// whole table whenever its estimate found that cheaper, as it does on a table of tens of
/// thousands of runs, and the scan grew with every dead version a keyed round left.
pub(super) fn take_sql() -> String {
    format!(
        "WITH lanes AS (SELECT k.key, k.ord, GREATEST(k.cap, 0) AS room \
           FROM unnest($5::text[], $7::bigint[]) WITH ORDINALITY AS k(key, cap, ord)), \
         picked AS ( \
           SELECT p.id, l.ord, row_number() OVER (PARTITION BY l.ord ORDER BY p.priority DESC, p.next_attempt_at, p.id) AS rn \
           FROM lanes l CROSS JOIN LATERAL (SELECT q.id, q.priority, q.next_attempt_at FROM runs q \
             WHERE q.function = $4 AND q.flow_key = l.key AND q.status = 'queued' AND q.next_attempt_at <= $3 \
             ORDER BY q.priority DESC, q.next_attempt_at, q.id LIMIT l.room FOR UPDATE SKIP LOCKED) p), \
         chosen AS (SELECT id FROM picked ORDER BY rn, ord LIMIT $6), \
         claimed AS ( \
           UPDATE runs SET status = 'running', attempt = attempt + 1, lease_owner = $1, lease_expires_at = $2, started_at = $3 \
           WHERE runs.id = ANY(ARRAY(SELECT id FROM chosen)) AND runs.status = 'queued' RETURNING {RUN_COLS}), \
         {} \
         SELECT {RUN_COLS} FROM claimed",
        super::leases::recorded_attempts("claimed", "$1", "$3")
    )
}

/// The next lanes of a function in turn order, locked (those another claim holds are skipped):
/// key, throttle's theoretical arrival time, 0 running runs (no concurrency limit here), and
/// `true` for "may hold due runs".
const LANES_SQL: &str = "SELECT key, tat, 0::bigint, true FROM flow_keys WHERE function = $1 \
    ORDER BY served, key LIMIT $2 FOR NO KEY UPDATE SKIP LOCKED";
/// [`LANES_SQL`] under a concurrency limit `$3` at `$4`: each lane's running runs counted
/// (`runs_lane_open`), and, for a lane with room, whether it holds a due run: the first in the
/// order of `runs_lane_queue`, as the take reads it (an `EXISTS` there was planned through
/// `runs_due`, every due run of every function).
pub(super) const LANES_COUNTED_SQL: &str = "SELECT k.key, k.tat, c.running, CASE WHEN c.running < $3 THEN (SELECT 1 FROM runs q \
      WHERE q.function = $1 AND q.flow_key = k.key AND q.status = 'queued' AND q.next_attempt_at <= $4 \
      ORDER BY q.priority DESC, q.next_attempt_at, q.id LIMIT 1) IS NOT NULL ELSE false END \
    FROM flow_keys k CROSS JOIN LATERAL (SELECT COUNT(*) AS running FROM runs c WHERE c.function = $1 \
      AND c.flow_key = k.key AND c.status = 'running') c \
    WHERE k.function = $1 ORDER BY k.served, k.key LIMIT $2 FOR NO KEY UPDATE OF k SKIP LOCKED";

/// Leases up to `n` due runs of `function` as its lanes' rules allow, across nodes; answers the
/// runs, and when a run its throttle holds back may start.
pub(crate) async fn claim_lanes(
    tx: &mut PgConnection,
    req: &ClaimRequest,
    function: &str,
    n: u32,
    rules: &FlowLimit,
) -> Result<(Vec<Run>, Option<i64>), StoreError> {
    // Why: a few more lanes than runs wanted, so that full or empty lanes do not leave the
    // claim short; other nodes skip the lanes locked here and serve the next ones.
    let batch = i64::from(n.saturating_add(16).min(512));
    // Why the running runs counted here, and the take given each lane's room: a lane stays
    // locked until the transaction ends, and a run of a lane starts only through its lock, so
    // its count can only fall meanwhile. When no lane has both room and a due run, the take is
    // not sent. Why: with a backlog behind a full key, every claim of the node planned and ran
    // the take for nothing (the claims' connection at 8 to 9 % of the machine while the scale
    // bench paced `POST /run` beside 10,000 runs queued behind one full key).
    let limit = rules.concurrency.map_or(i64::from(u32::MAX), i64::from);
    let lanes_sql = if rules.concurrency.is_some() { LANES_COUNTED_SQL } else { LANES_SQL };
    let lanes: Vec<(String, i64, i64, bool)> =
        sqlx::query_as(lanes_sql).bind(function).bind(batch).bind(limit).bind(req.now).fetch_all(&mut *tx).await?;
    if lanes.is_empty() {
        return Ok((Vec::new(), None));
    }
    let keys: Vec<&str> = lanes.iter().map(|(k, _, _, _)| k.as_str()).collect();
    let caps: Vec<i64> = lanes
        .iter()
        .map(|(_, tat, running, _)| {
            i64::from(rules.throttle.map_or(n, |g| g.admit(*tat, req.now, n).0)).min(limit - running).max(0)
        })
        .collect();
    let rows = if !lanes.iter().zip(&caps).any(|((_, _, _, due), cap)| *due && *cap > 0) {
        Vec::new()
    } else {
        // Why: after five runs of the take statement PostgreSQL may keep a generic plan, made
        // without the function and the time; with a large backlog it scanned the function's
        // whole queue (keyed runs/s 0.24 of unkeyed, 0.82 with custom plans; decision 0009).
        custom_plans(tx).await?;
        sqlx::query(&take_sql())
            .bind(&req.owner)
            .bind(req.lease_until)
            .bind(req.now)
            .bind(function)
            .bind(&keys)
            .bind(i64::from(n))
            .bind(&caps)
            .fetch_all(&mut *tx)
            .await?
    };
    let runs = rows.iter().map(run_from_row).collect::<Result<Vec<_>, _>>()?;
    // Why: the lanes looked at up to the last one served go to the back of the line; when none
    // gave a run, all of them do, so the next claim looks at others.
    let last = runs.iter().filter_map(|r| r.flow_key.as_deref()).filter_map(|k| keys.iter().position(|x| *x == k)).max();
    let seen = last.map_or(lanes.len(), |l| l + 1);
    // Why: fewer lanes than asked for were every lane no other claim held, and the next claim
    // gets them all again whatever their order: when none gave a run, nothing moves, so a claim
    // that finds every lane full updates no row (each update left a dead row in `flow_keys` for
    // the next claims to walk).
    let every_lane_seen = i64::try_from(lanes.len()).unwrap_or(i64::MAX) < batch;
    let bumped = if last.is_none() && every_lane_seen { 0 } else { seen };
    let mut tats = Vec::with_capacity(seen);
    let mut throttled_until: Option<i64> = None;
    for (key, tat, _, _) in &lanes[..seen] {
        let Some(g) = rules.throttle else {
            tats.push(*tat);
            continue;
        };
        let started = u32::try_from(runs.iter().filter(|r| r.flow_key.as_deref() == Some(key.as_str())).count()).unwrap_or(0);
        let (_, after) = g.admit(*tat, req.now, started);
        tats.push(if started > 0 { after } else { *tat });
        // Why: a lane that started all its throttle admitted, fewer than the claim could take,
        // may hold due runs back; the dispatcher looks again at its next start (at worst once
        // in vain).
        let cap = g.admit(*tat, req.now, n).0;
        if cap < n && started == cap {
            let next = g.next_start(if started > 0 { after } else { *tat });
            throttled_until = Some(throttled_until.map_or(next, |t| t.min(next)));
        }
    }
    if bumped == 0 {
        return Ok((runs, throttled_until));
    }
    sqlx::query(
        "UPDATE flow_keys SET served = $3 + k.ord, touched_at = $3, tat = k.tat \
         FROM unnest($2::text[], $4::bigint[]) WITH ORDINALITY AS k(key, tat, ord) \
         WHERE flow_keys.function = $1 AND flow_keys.key = k.key",
    )
    .bind(function)
    .bind(&keys[..bumped])
    .bind(req.now)
    .bind(&tats[..bumped])
    .execute(&mut *tx)
    .await?;
    Ok((runs, throttled_until))
}

/// Makes the statements of the caller's transaction planned for their parameters each time,
/// with sorting, hash joins, merge joins and sequential scans allowed. Why: the claims'
/// connection forbids them for the queue's probe and pick (decision 0037, and
/// [`super::dedicated::CLAIM_SETUP`]), and the lanes' statements were planned and measured with
/// them (their window functions sort either way). One round trip: a string with no parameters
/// goes as a simple query, which may hold several statements.
pub(super) async fn custom_plans(tx: &mut PgConnection) -> Result<(), StoreError> {
    let sql = "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL enable_sort = on; SET LOCAL enable_hashjoin = on; \
        SET LOCAL enable_mergejoin = on; SET LOCAL enable_seqscan = on";
    sqlx::Executor::execute(&mut *tx, sql).await?;
    Ok(())
}

/// The settings of a lane's read, for its transaction only, in one round trip: planned for its
/// values each time, sorting allowed (as [`custom_plans`]), and no bitmap scans. Why no bitmap
/// scans: the bounds of the runs ahead come from the run (sub-selects), so the planner guesses
/// a share of the lane for each range; below the bound (490 rows guessed for 20,067 ahead) it
/// read the whole range through a bitmap and sorted it to keep the first 1,000, 8.6 ms a read,
/// where the queue's index read in order stops at the bound: 0.95 ms (session 44).
pub(super) const LANE_SETUP: &str =
    "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL enable_sort = on; SET LOCAL enable_bitmapscan = off";

/// A queued run's lane: its running runs, the runs ahead of it (two bounded ranges) and its
/// throttle's time. `$1` function, `$2` key, `$3` the run, `$4` the bound.
pub(super) const LANE_SQL: &str = "WITH me AS MATERIALIZED (SELECT priority, next_attempt_at, id FROM runs WHERE id = $3) \
     SELECT (SELECT COUNT(*) FROM runs WHERE function = $1 AND flow_key = $2 AND status = 'running') AS running, \
       (SELECT COUNT(*) FROM (SELECT 1 FROM runs q WHERE q.function = $1 AND q.flow_key = $2 AND q.status = 'queued' \
         AND q.priority > (SELECT priority FROM me) \
         ORDER BY q.priority DESC, q.next_attempt_at, q.id LIMIT $4) AS a) \
       + (SELECT COUNT(*) FROM (SELECT 1 FROM runs q WHERE q.function = $1 AND q.flow_key = $2 AND q.status = 'queued' \
         AND q.priority = (SELECT priority FROM me) \
         AND (q.next_attempt_at, q.id) < ((SELECT next_attempt_at FROM me), (SELECT id FROM me)) \
         ORDER BY q.priority DESC, q.next_attempt_at, q.id LIMIT $4) AS b) AS ahead, \
       COALESCE((SELECT tat FROM flow_keys WHERE function = $1 AND key = $2), 0) AS tat";

/// The state of a queued run's lane. The runs ahead are counted in two ranges of the lane's
/// queue (a higher priority; the same priority and earlier), each stopping at
/// [`crate::flow::AHEAD_COUNTED`], so a run near the front reads a few entries, not the queue.
/// Why the run's values come as separate scalar subqueries in the queue's order: so each bound
/// is an index condition of `runs_lane_queue`; a join on the run, or an `OR`, made PostgreSQL
/// scan the table (246 ms with 1,000,000 queued).
///
/// Why in a transaction with custom plans: after five calls PostgreSQL may keep the generic plan,
/// which read every entry of the lane through `runs_lane_open` and sorted them (71 ms a read
/// with 200,000 queued in one lane, against 0.9 ms for the custom plan).
pub(crate) async fn lane(pool: &PgPool, function: &str, key: &str, run_id: &str) -> Result<Lane, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::Executor::execute(&mut *tx, LANE_SETUP).await?;
    let row = sqlx::query(LANE_SQL)
        .bind(function)
        .bind(key)
        .bind(run_id)
        .bind(i64::try_from(crate::flow::AHEAD_COUNTED).unwrap_or(i64::MAX))
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    let running: i64 = row.try_get("running")?;
    let ahead: i64 = row.try_get("ahead")?;
    Ok(Lane {
        running: u32::try_from(running).unwrap_or(u32::MAX),
        ahead: u64::try_from(ahead).unwrap_or(0).min(crate::flow::AHEAD_COUNTED),
        tat: row.try_get("tat")?,
    })
}

/// Upkeep of the lanes: see [`FlowUpkeep`].
pub(crate) async fn upkeep(pool: &PgPool, what: &FlowUpkeep) -> Result<u64, StoreError> {
    let open = "status IN ('queued', 'running', 'waiting')";
    let mut tx = pool.begin().await?;
    let n = match what {
        FlowUpkeep::Adopt { function, limited: true, now } => {
            open_lanes(&mut tx, vec![(function.as_str(), "")], *now).await?;
            sqlx::query(&format!("UPDATE runs SET flow_key = '' WHERE function = $1 AND flow_key IS NULL AND {open}"))
                .bind(function)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        }
        FlowUpkeep::Adopt { function, limited: false, .. } => {
            sqlx::query(&format!("UPDATE runs SET flow_key = NULL WHERE function = $1 AND flow_key IS NOT NULL AND {open}"))
                .bind(function)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        }
        FlowUpkeep::Forget { idle_before } => {
            let rates = sqlx::query(
                "DELETE FROM flow_rates WHERE ctid IN (SELECT ctid FROM flow_rates WHERE ends_at < $1 LIMIT 1000 \
                 FOR UPDATE SKIP LOCKED)",
            )
            .bind(idle_before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            // Why: the lanes are locked first, in a statement of their own; the check that they
            // hold no open run runs after, so it sees every enqueue committed before the lock.
            let idle: Vec<(String, String)> = sqlx::query_as(
                "SELECT function, key FROM flow_keys WHERE touched_at < $1 ORDER BY touched_at LIMIT 1000 \
                 FOR UPDATE SKIP LOCKED",
            )
            .bind(idle_before)
            .fetch_all(&mut *tx)
            .await?;
            let (functions, keys): (Vec<String>, Vec<String>) = idle.into_iter().unzip();
            sqlx::query(&format!(
                "DELETE FROM flow_keys k USING unnest($1::text[], $2::text[]) AS u(function, key) \
                 WHERE k.function = u.function AND k.key = u.key AND NOT EXISTS (SELECT 1 FROM runs \
                 WHERE runs.function = k.function AND runs.flow_key = k.key AND runs.{open})"
            ))
            .bind(&functions)
            .bind(&keys)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                + rates
        }
    };
    tx.commit().await?;
    Ok(n)
}

/// The priority levels of `function`'s queue with the due time of the first run of each, the
/// highest first: a skip along `runs_queue`, one index probe a level.
const LEVELS: &str = "WITH RECURSIVE levels(priority, first_at) AS ( \
    (SELECT priority, next_attempt_at FROM runs WHERE function = $1 AND status = 'queued' \
     ORDER BY priority DESC, next_attempt_at, id LIMIT 1) \
    UNION ALL \
    SELECT next.priority, next.first_at FROM levels, LATERAL (SELECT priority, next_attempt_at AS first_at FROM runs \
     WHERE function = $1 AND status = 'queued' AND priority < levels.priority \
     ORDER BY priority DESC, next_attempt_at, id LIMIT 1) next) \
    SELECT priority, first_at FROM levels";

/// Every function's queue at `now`: the depth kept in `run_counts`, the not-due and then (if
/// needed) the due runs counted up to `bound` along `runs_queue`, level by level, all in one
/// snapshot.
pub(crate) async fn queue_stats(pool: &PgPool, now: i64, bound: u64) -> Result<Vec<QueueStats>, StoreError> {
    let bound = i64::try_from(bound).unwrap_or(i64::MAX);
    let mut tx = super::stats::index_only(pool).await?;
    let depths: Vec<(String, i64)> = sqlx::query_as(
        "SELECT function, SUM(runs)::BIGINT FROM run_counts WHERE status = 'queued' GROUP BY function \
         HAVING SUM(runs) > 0 ORDER BY function",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut stats = Vec::with_capacity(depths.len());
    for (function, queued) in depths {
        let levels: Vec<(i32, i64)> = sqlx::query_as(LEVELS).bind(&function).fetch_all(&mut *tx).await?;
        let levels: Vec<(i64, i64)> = levels.into_iter().map(|(p, t)| (i64::from(p), t)).collect();
        let not_due = count_levels(&mut tx, &function, &levels, now, bound, false).await?;
        let due = if not_due < bound { None } else { Some(count_levels(&mut tx, &function, &levels, now, bound, true).await?) };
        let oldest = levels.iter().map(|l| l.1).filter(|t| *t <= now).min();
        stats.push(QueueStats::split_scheduled_first(function, queued, bound, not_due, due, oldest));
    }
    tx.commit().await?;
    Ok(stats)
}

/// The queued runs of `function` that are due at `now` (`due`) or not, counted level by level
/// up to `bound` in all.
async fn count_levels(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    function: &str,
    levels: &[(i64, i64)],
    now: i64,
    bound: i64,
    due: bool,
) -> Result<i64, StoreError> {
    let sql = if due {
        "SELECT COUNT(*) FROM (SELECT 1 FROM runs WHERE function = $1 AND status = 'queued' AND priority = $2 \
         AND next_attempt_at <= $3 LIMIT $4) counted"
    } else {
        "SELECT COUNT(*) FROM (SELECT 1 FROM runs WHERE function = $1 AND status = 'queued' AND priority = $2 \
         AND next_attempt_at > $3 LIMIT $4) counted"
    };
    let mut count = crate::flow::LevelCount::new(levels, now, bound, due);
    while let Some((priority, most)) = count.next() {
        let found: i64 = sqlx::query_scalar(sql).bind(function).bind(priority).bind(now).bind(most).fetch_one(&mut **tx).await?;
        count.add(found);
    }
    Ok(count.n)
}
