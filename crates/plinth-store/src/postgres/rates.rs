//! Rules applied when runs are created, on PostgreSQL. Rate limits: the windows of the keys a
//! transaction creates runs for, locked (in one order, so two transactions cannot deadlock) for
//! as long as it runs, counted in memory and written back before the commit. Debounce: the keys
//! locked the same way (advisory locks), then the key's queued run fed the new trigger.

use crate::StoreError;
use plinth_core::NewRun;
use plinth_core::flow::RateCheck;
use sqlx::PgConnection;
use std::collections::BTreeMap;

/// `(window_start, count)` per `(function, key)`, locked.
pub(crate) struct RateBook {
    rows: BTreeMap<(String, String), (i64, u32)>,
}

impl RateBook {
    /// Locks the windows of `checks` (each `(function, check)`), creating the missing ones.
    pub(crate) async fn lock(conn: &mut PgConnection, checks: &[(&str, &RateCheck)]) -> Result<Self, StoreError> {
        let mut rows = BTreeMap::new();
        let mut keys: Vec<(&str, &str)> = checks.iter().map(|(f, c)| (*f, c.key.as_str())).collect();
        keys.sort_unstable();
        keys.dedup();
        for (function, key) in keys {
            sqlx::query(
                "INSERT INTO flow_rates (function, key, window_start, ends_at, count) VALUES ($1, $2, 0, 0, 0) \
                 ON CONFLICT (function, key) DO NOTHING",
            )
            .bind(function)
            .bind(key)
            .execute(&mut *conn)
            .await?;
            let (start, count): (i64, i64) =
                sqlx::query_as("SELECT window_start, count FROM flow_rates WHERE function = $1 AND key = $2 FOR UPDATE")
                    .bind(function)
                    .bind(key)
                    .fetch_one(&mut *conn)
                    .await?;
            rows.insert((function.to_string(), key.to_string()), (start, u32::try_from(count).unwrap_or(u32::MAX)));
        }
        Ok(Self { rows })
    }

    /// Counts one run of `function` at `now`: `Ok` when its key's window has room, `Err(micros
    /// until the window ends)` when it has none.
    pub(crate) fn admit(&mut self, function: &str, check: &RateCheck, now: i64) -> Result<(), i64> {
        let window = check.window(now);
        let entry = self.rows.entry((function.to_string(), check.key.clone())).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        if entry.1 >= check.limit {
            return Err(window.saturating_add(check.period) - now);
        }
        entry.1 += 1;
        Ok(())
    }

    /// Writes the counts back; `periods` gives each function's window length.
    pub(crate) async fn save(self, conn: &mut PgConnection, periods: &BTreeMap<String, i64>) -> Result<(), StoreError> {
        for ((function, key), (start, count)) in self.rows {
            let period = periods.get(&function).copied().unwrap_or(0);
            sqlx::query("UPDATE flow_rates SET window_start = $3, ends_at = $4, count = $5 WHERE function = $1 AND key = $2")
                .bind(&function)
                .bind(&key)
                .bind(start)
                .bind(start.saturating_add(period))
                .bind(i64::from(count))
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}

/// Each function's window length, from the checks.
pub(crate) fn periods(checks: &[(&str, &RateCheck)]) -> BTreeMap<String, i64> {
    checks.iter().map(|(f, c)| ((*f).to_string(), c.period)).collect()
}

/// Locks the keys `(function, key)` of one rule (`what`: `plinth-debounce`, `plinth-singleton`)
/// for the transaction, in one order.
pub(crate) async fn lock_keys(
    conn: &mut PgConnection,
    what: &str,
    schema: &str,
    keys: &[(&str, &str)],
) -> Result<(), StoreError> {
    let mut locks: Vec<i64> = keys.iter().map(|(f, k)| super::lock_key(&[what, schema, f, k])).collect();
    locks.sort_unstable();
    locks.dedup();
    for lock in locks {
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(lock).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Feeds `run` to the queued run of its debounce key (locked by [`lock_debounce`]), if there is
/// one: that run takes its input, trigger and correlation id and starts `period` after now
/// (never past `max_wait` after it was created). Answers that run's id.
pub(crate) async fn debounce_into(conn: &mut PgConnection, run: &NewRun) -> Result<Option<String>, StoreError> {
    let Some(d) = &run.debounce else { return Ok(None) };
    let found: Option<(String, i64)> = sqlx::query_as(
        "SELECT id, created_at FROM runs WHERE function = $1 AND debounce_key = $2 AND status = 'queued' \
         AND started_at IS NULL ORDER BY created_at LIMIT 1 FOR UPDATE",
    )
    .bind(&run.function)
    .bind(&d.key)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((id, created_at)) = found else { return Ok(None) };
    sqlx::query(
        "UPDATE runs SET input = $2, next_attempt_at = $3, trigger = $4, trigger_type = $5, event_id = $6, \
         correlation_id = $7 WHERE id = $1",
    )
    .bind(&id)
    .bind(super::rows::to_json(&run.input))
    .bind(d.due(created_at, run.created_at))
    .bind(super::runs::trigger_json(&run.trigger))
    .bind(run.trigger.kind())
    .bind(run.trigger.event_id())
    .bind(&run.correlation_id)
    .execute(&mut *conn)
    .await?;
    Ok(Some(id))
}

/// Adds the event of `run` to the open batch of its key, if there is one (the queued run with
/// the key, never started; its row locked). A batch that becomes full is closed (its key
/// cleared) and due at once. Answers the batch's run id.
pub(crate) async fn batch_into(conn: &mut PgConnection, run: &NewRun) -> Result<Option<String>, StoreError> {
    let Some(b) = &run.batch else { return Ok(None) };
    Ok(sqlx::query_scalar(
        "UPDATE runs SET input = jsonb_set(input::jsonb, '{events}', \
             (input::jsonb -> 'events') || jsonb_build_array($3::jsonb))::text, \
           batch_key = CASE WHEN jsonb_array_length(input::jsonb -> 'events') + 1 >= $4 THEN NULL ELSE batch_key END, \
           next_attempt_at = CASE WHEN jsonb_array_length(input::jsonb -> 'events') + 1 >= $4 \
             THEN LEAST(next_attempt_at, $5) ELSE next_attempt_at END \
         WHERE id = (SELECT id FROM runs WHERE function = $1 AND batch_key = $2 AND status = 'queued' \
           AND started_at IS NULL ORDER BY created_at LIMIT 1 FOR UPDATE) \
         RETURNING id",
    )
    .bind(&run.function)
    .bind(&b.key)
    .bind(super::rows::to_json(&run.input["events"][0]))
    .bind(i64::from(b.max_size))
    .bind(run.created_at)
    .fetch_optional(&mut *conn)
    .await?)
}

/// The unfinished run of `run`'s singleton key that is not already being cancelled, if any.
pub(crate) async fn singleton_holder(conn: &mut PgConnection, run: &NewRun) -> Result<Option<String>, StoreError> {
    let Some(s) = &run.singleton else { return Ok(None) };
    Ok(sqlx::query_scalar(
        "SELECT id FROM runs WHERE function = $1 AND singleton_key = $2 AND singleton_key IS NOT NULL \
         AND status IN ('queued', 'running', 'waiting') AND NOT cancel_requested ORDER BY created_at LIMIT 1",
    )
    .bind(&run.function)
    .bind(&s.key)
    .fetch_optional(&mut *conn)
    .await?)
}
