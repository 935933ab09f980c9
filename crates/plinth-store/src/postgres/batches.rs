//! The loop the batched writes share (new runs in insert.rs, attempts' ends in finish.rs, their
//! checkpoints in checkpoints.rs, handlers' log lines in logs.rs): the requests that arrive while a batch commits go together
//! into the next statement, so a busy node pays one statement and one commit for many runs.

use super::dedicated::{self, Dedicated};
use super::{checkpoints, finish, insert, logs};
use crate::StoreError;
use sqlx::{PgConnection, PgPool};
use std::collections::HashSet;
use std::future::Future;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Where each kind of batched write is sent: one loop each, on a connection of its own.
pub(crate) struct Writers {
    pub(crate) finishes: mpsc::Sender<finish::Job>,
    pub(crate) inserts: mpsc::Sender<insert::Job>,
    pub(crate) checkpoints: mpsc::Sender<checkpoints::Job>,
    pub(crate) logs: mpsc::Sender<logs::Job>,
}

impl Writers {
    /// Starts the loops; their tasks end when the writers are dropped.
    pub(crate) fn start(pool: &PgPool) -> (Self, Vec<JoinHandle<()>>) {
        let (finishes, finish_jobs) = mpsc::channel(1024);
        let (inserts, insert_jobs) = mpsc::channel(1024);
        let (checkpoints, checkpoint_jobs) = mpsc::channel(1024);
        let (logs, log_jobs) = mpsc::channel(1024);
        let tasks = vec![
            tokio::spawn(batch_loop(Dedicated::with_setup(pool.clone(), dedicated::ENDS_SETUP), finish_jobs)),
            tokio::spawn(batch_loop(Dedicated::new(pool.clone()), insert_jobs)),
            tokio::spawn(batch_loop(Dedicated::new(pool.clone()), checkpoint_jobs)),
            tokio::spawn(batch_loop(Dedicated::with_setup(pool.clone(), logs::LOG_SETUP), log_jobs)),
        ];
        (Self { finishes, inserts, checkpoints, logs }, tasks)
    }
}

/// A request and where its answer goes.
pub(crate) type Job<R> = (R, oneshot::Sender<Result<<R as Batched>::Answer, StoreError>>);

/// A write of one run that can go in a batch with other runs' writes.
pub(crate) trait Batched: Sized + Send + Sync {
    /// What each caller learns.
    type Answer: Send;
    /// What the loop's error says two requests of one run are (`ends`, say).
    const WHAT: &'static str;
    /// The most requests one statement writes.
    const MAX_BATCH: usize;
    /// The run written.
    fn run_id(&self) -> &str;
    /// Writes `batch` (distinct runs) in one statement; the answers in the same order.
    fn write_many<'a>(
        conn: &'a mut PgConnection,
        batch: &'a [&'a Self],
    ) -> impl Future<Output = Result<Vec<Self::Answer>, StoreError>> + Send + 'a;
}

/// Takes the requests waiting, writes them together, and answers each; runs until every
/// sender is gone. When a batch fails, its requests are written one by one, so one bad request
/// cannot fail the others.
pub(crate) async fn batch_loop<R: Batched>(mut conn: Dedicated, mut rx: mpsc::Receiver<Job<R>>) {
    let mut batch: Vec<Job<R>> = Vec::with_capacity(R::MAX_BATCH);
    while rx.recv_many(&mut batch, R::MAX_BATCH).await > 0 {
        // Why: a caller that gave up was told its write failed: a new run must not be stored
        // behind its back, an attempt writes again or ends, and an end written twice would only
        // answer "not held" the second time.
        batch.retain(|(_, reply)| !reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let reqs: Vec<&R> = batch.iter().map(|j| &j.0).collect();
        let distinct = reqs.iter().map(|r| r.run_id()).collect::<HashSet<_>>().len() == reqs.len();
        // Why: one statement cannot update a run, or write a row, twice.
        let result = if distinct {
            conn.run(async |c| R::write_many(c, &reqs).await).await
        } else {
            Err(StoreError::Unavailable(format!("a batch holds two {} of one run", R::WHAT)))
        };
        match result {
            Ok(answers) => {
                for ((_, reply), answer) in batch.drain(..).zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(e) if batch.len() == 1 || conn.unreachable() => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            Err(_) => {
                for (req, reply) in batch.drain(..) {
                    if reply.is_closed() {
                        continue;
                    }
                    let one = conn.run(async |c| R::write_many(c, &[&req]).await).await;
                    let one = one.and_then(|mut a| {
                        a.pop().ok_or_else(|| StoreError::Corrupt(format!("no answer for run {}", req.run_id())))
                    });
                    let _ = reply.send(one);
                }
            }
        }
    }
}
