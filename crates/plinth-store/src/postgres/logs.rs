//! Handlers' log lines, written in batches on a connection of their own whose commits do not
//! wait for the disk's flush (decision 0041).
//!
//! Why: an HTTP handler's call leaves one line (`http: POST ... answered 206 in 1 ms`), and each
//! line was a transaction of its own on a pooled connection, its commit waiting for a flush
//! while the attempt waited for it: one flush more per call, beside the step's own. Why the
//! flush may wait: the write-ahead log is flushed in order, so the next commit that waits (the
//! step's checkpoint, the attempt's end) makes the line durable with it; a crash loses a line
//! only with what the run did after it.

use super::batches::Batched;
use crate::{LogLine, StoreError};
use sqlx::PgConnection;
use tokio::sync::{mpsc, oneshot};

/// The session settings of the log lines' connection.
pub(crate) const LOG_SETUP: &str = "SET synchronous_commit = off; SET plan_cache_mode = force_generic_plan";

/// The lines one call of an attempt adds.
#[derive(Debug)]
pub(crate) struct Lines {
    pub(crate) run_id: String,
    pub(crate) attempt: u32,
    pub(crate) lines: Vec<LogLine>,
}

/// Lines to write, and where the answer goes.
pub(crate) type Job = super::batches::Job<Lines>;

/// Only lines of a run that exists are kept, so pruning the run prunes all its lines; a line
/// sent again (same attempt and number) is kept once, the first one.
const LOGS_SQL: &str = "\
INSERT INTO run_logs (run_id, attempt, seq, ts, line)
SELECT l.run_id, l.attempt, l.seq, l.ts, l.line
FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[]) AS l(run_id, attempt, seq, ts, line)
WHERE EXISTS (SELECT 1 FROM runs r WHERE r.id = l.run_id)
ON CONFLICT DO NOTHING";

/// Writes `lines` in the next batch; returns once they are committed (not yet flushed).
pub(crate) async fn append(batches: &mpsc::Sender<Job>, lines: Lines) -> Result<(), StoreError> {
    if lines.lines.is_empty() {
        return Ok(());
    }
    let gone = || StoreError::Unavailable("the store is shutting down".into());
    let (tx, rx) = oneshot::channel();
    batches.send((lines, tx)).await.map_err(|_| gone())?;
    rx.await.map_err(|_| gone())?
}

async fn write_many(conn: &mut PgConnection, batch: &[&Lines]) -> Result<Vec<()>, StoreError> {
    let (mut runs, mut attempts, mut seqs, mut stamps, mut texts) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for b in batch {
        for l in &b.lines {
            runs.push(b.run_id.as_str());
            attempts.push(i64::from(b.attempt));
            seqs.push(i64::from(l.seq));
            stamps.push(l.ts);
            // Why: PostgreSQL text cannot hold NUL, which a handler may write to stderr.
            texts.push(l.line.replace('\0', "\u{fffd}"));
        }
    }
    sqlx::query(LOGS_SQL).bind(&runs).bind(&attempts).bind(&seqs).bind(&stamps).bind(&texts).execute(&mut *conn).await?;
    Ok(vec![(); batch.len()])
}

impl Batched for Lines {
    type Answer = ();
    const WHAT: &'static str = "log writes";
    const MAX_BATCH: usize = 256;

    fn run_id(&self) -> &str {
        &self.run_id
    }

    fn write_many<'a>(
        conn: &'a mut PgConnection,
        batch: &'a [&'a Self],
    ) -> impl Future<Output = Result<Vec<Self::Answer>, StoreError>> + Send + 'a {
        write_many(conn, batch)
    }
}
