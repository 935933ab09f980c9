//! [`RunCopies`] on SQLite: one `INSERT ... SELECT` over a counting CTE for the runs and one for
//! their attempts, in one transaction, on a connection of its own (the server is not running).

use super::{RunCopies, column_value};
use crate::StoreError;
use rusqlite::{Connection, params};
use std::path::Path;
use std::time::Duration;

fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"))?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect()
}

/// Writes `copies` of a run of the database at `path`; how many runs were written (0 when the
/// template is not there). The copies are checkpointed into the database file before it returns.
///
/// # Errors
/// When the file cannot be opened or written, or is not a Plinth store.
pub fn copy_runs(path: &Path, copies: &RunCopies) -> Result<u64, StoreError> {
    copies.check()?;
    if copies.count == 0 {
        return Ok(0);
    }
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    // Why: copies for a benchmark need not survive a power cut; the store's own writes do.
    conn.pragma_update(None, "synchronous", "OFF")?;
    let run_cols = columns(&conn, "runs")?;
    let attempt_cols = columns(&conn, "attempts")?;
    if run_cols.is_empty() || attempt_cols.is_empty() {
        return Err(StoreError::Schema(format!("{} is not a Plinth store", path.display())));
    }
    let param = |i: usize| format!("?{i}");
    let counter = |first: &str, last: &str| {
        format!("WITH RECURSIVE g(n) AS (SELECT {first} UNION ALL SELECT n + 1 FROM g WHERE n < {last})")
    };
    let id = "?7 || printf('%020d', g.n)";
    let values: Vec<String> = run_cols.iter().map(|c| column_value(c, "g.n", &param, id)).collect();
    let runs = format!(
        "{} INSERT INTO runs ({}) SELECT {} FROM runs t, g WHERE t.id = ?4",
        counter("?5", "?6"),
        run_cols.join(", "),
        values.join(", ")
    );
    let values: Vec<String> = attempt_cols
        .iter()
        .map(|c| if c == "run_id" { "?4 || printf('%020d', g.n)".to_string() } else { format!("t.{c}") })
        .collect();
    let attempts = format!(
        "{} INSERT INTO attempts ({}) SELECT {} FROM attempts t, g WHERE t.run_id = ?1",
        counter("?2", "?3"),
        attempt_cols.join(", "),
        values.join(", ")
    );
    let first = i64::try_from(copies.first).unwrap_or(i64::MAX);
    let last = i64::try_from(copies.first + copies.count).unwrap_or(i64::MAX) - 1;
    let tx = conn.transaction()?;
    let step = copies.step.max(1);
    let written = tx.execute(
        &runs,
        params![copies.at, copies.finished_at, copies.input, copies.template, first, last, copies.prefix, step],
    )?;
    tx.execute(&attempts, params![copies.template, first, last, copies.prefix])?;
    tx.commit()?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    drop(conn);
    // Why: with `synchronous` off, the checkpoint left the copies' pages dirty in the page
    // cache, up to gigabytes of them; the first checkpoint of the server measured next paid for
    // writing them all in its fsync (a 270 to 360 ms stall of every write, session 26). A store
    // that grew over hours has no such debt, so the copies are put on disk here.
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::Unavailable(format!("cannot sync {}: {e}", path.display())))?;
    Ok(written as u64)
}

#[cfg(test)]
mod tests {
    use super::copy_runs;
    use crate::conformance::copies::{copies_are_runs_like_any_other, plan, templates};
    use crate::copies::RunCopies;
    use crate::sqlite::{SqliteStore, Synchronous};
    use crate::{Store, StoreError};
    use plinth_core::timefmt::now_micros;

    #[tokio::test]
    async fn copies_are_written_behind_a_closed_store_and_read_back_as_runs() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("copies.db");
        let store = SqliteStore::open(&path, Synchronous::Full).expect("open");
        let (finished, queued) = templates(&store).await;
        drop(store);
        let at = now_micros() - 10_000_000;
        for copies in plan(&finished, &queued, at) {
            assert_eq!(copy_runs(&path, &copies).expect("copy"), copies.count);
        }
        let store = SqliteStore::open(&path, Synchronous::Full).expect("open again");
        copies_are_runs_like_any_other(&store, &finished, at).await;
        drop(store);

        let [done, _] = plan(&finished, &queued, at);
        let again = copy_runs(&path, &done).expect_err("the same ids twice");
        assert!(again.to_string().contains("UNIQUE"), "a copy's id taken already is refused: {again}");
        let missing = RunCopies { template: "no-such-run".into(), prefix: "0000X0".into(), ..done.clone() };
        assert_eq!(copy_runs(&path, &missing).expect("copy"), 0, "no template, no copies");
        assert_eq!(copy_runs(&path, &RunCopies { count: 0, prefix: "0000Y0".into(), ..done.clone() }).expect("copy"), 0);
        let plain = dir.path().join("plain.db");
        rusqlite::Connection::open(&plain).expect("an empty database").execute_batch("CREATE TABLE t (x)").expect("a table");
        assert!(matches!(copy_runs(&plain, &done), Err(StoreError::Schema(_))), "a database that is not a store is refused");
        let store = SqliteStore::open(&path, Synchronous::Full).expect("open again");
        assert!(store.get(&missing.id(0), false).await.expect("get").is_none());
        let bad = RunCopies { prefix: "x-".into(), ..done.clone() };
        assert!(matches!(copy_runs(&path, &bad), Err(StoreError::Corrupt(_))), "ids that are not run ids are refused");
    }
}
