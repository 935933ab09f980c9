//! Rate limits on PostgreSQL: the windows of the keys a transaction creates runs for, locked
//! (in one order, so two transactions cannot deadlock) for as long as it runs, counted in
//! memory and written back before the commit.

use crate::StoreError;
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
