//! Embedded migrations, applied in order; an applied migration that was edited stops startup.

use crate::StoreError;
use rusqlite::{Connection, OptionalExtension, params};

/// (version, name, SQL) of every migration, in order. Never edit one that was released:
/// add a new one.
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("migrations/0001_init.sql")),
    (2, "health_probe_room", include_str!("migrations/0002_health_probe_room.sql")),
    (3, "idempotency_window", include_str!("migrations/0003_idempotency_window.sql")),
    (4, "events_and_schedules", include_str!("migrations/0004_events_and_schedules.sql")),
    (5, "steps", include_str!("migrations/0005_steps.sql")),
    (6, "flow_control", include_str!("migrations/0006_flow_control.sql")),
    (7, "throttle", include_str!("migrations/0007_throttle.sql")),
    (8, "rate_limit", include_str!("migrations/0008_rate_limit.sql")),
    (9, "debounce", include_str!("migrations/0009_debounce.sql")),
    (10, "singleton", include_str!("migrations/0010_singleton.sql")),
    (11, "expiry", include_str!("migrations/0011_expiry.sql")),
    (12, "batch", include_str!("migrations/0012_batch.sql")),
    (13, "overview", include_str!("migrations/0013_overview.sql")),
    (14, "wait_match", include_str!("migrations/0014_wait_match.sql")),
    (15, "traceparent", include_str!("migrations/0015_traceparent.sql")),
    (16, "tracestate", include_str!("migrations/0016_tracestate.sql")),
    (17, "run_counts", include_str!("migrations/0017_run_counts.sql")),
    (18, "function_status", include_str!("migrations/0018_function_status.sql")),
];

/// FNV-1a, 64 bits: a checksum to notice edits, not a security measure.
pub(crate) fn checksum(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

pub(crate) fn migrate(conn: &mut Connection, migrations: &[(i64, &str, &str)]) -> Result<usize, StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS plinth_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, \
         checksum TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )?;
    let newest: Option<i64> = conn.query_row("SELECT MAX(version) FROM plinth_migrations", [], |r| r.get(0))?;
    let known = migrations.last().map_or(0, |m| m.0);
    if let Some(newest) = newest.filter(|n| *n > known) {
        return Err(StoreError::Schema(format!(
            "the database is at schema version {newest}, newer than this plinth knows ({known}); use a newer plinth"
        )));
    }
    let mut applied = 0;
    for (version, name, sql) in migrations {
        let sum = checksum(sql);
        let tx = conn.transaction()?;
        let existing: Option<String> = tx
            .query_row("SELECT checksum FROM plinth_migrations WHERE version = ?1", params![version], |r| r.get(0))
            .optional()?;
        match existing {
            Some(found) if found == sum => continue,
            Some(_) => {
                return Err(StoreError::Schema(format!(
                    "migration {version} ({name}) was changed after it was applied; restore it and add a new migration instead"
                )));
            }
            None => {
                tx.execute_batch(sql)?;
                tx.execute(
                    "INSERT INTO plinth_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
                    params![version, name, sum, plinth_core::timefmt::now_micros()],
                )?;
                tx.commit()?;
                applied += 1;
            }
        }
    }
    Ok(applied)
}
