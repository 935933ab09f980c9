//! Enqueues: in the batch of the insert loop, or one by one when look-ups come first. Those, and
//! event ingests, may have to cancel a singleton key's old run first: the cancel goes through
//! the store's own cancel (which announces it), then the write is tried again.

use super::insert::Stored;
use super::{PostgresStore, eventlog, runs, timed};
use crate::{Enqueued, Ingested, NewEvent, Store, StoreError};
use plinth_core::NewRun;
use tokio::sync::oneshot;

impl PostgresStore {
    /// Enqueues a run that needs no look-up, in the insert loop's next batch. A run whose
    /// idempotency key another run holds goes on to the single path, not started, which
    /// answers the replay (or refuses a different request).
    pub(super) async fn enqueue_batched(&self, run: NewRun) -> Result<Enqueued, StoreError> {
        let (tx, rx) = oneshot::channel();
        let gone = || StoreError::Unavailable("the store is shutting down".into());
        // Why: the wait is bounded like every other call, so a batch stuck on an unreachable
        // database answers 503 rather than a hang.
        let stored = timed(async {
            self.writers.inserts.send((run.clone(), tx)).await.map_err(|_| gone())?;
            rx.await.map_err(|_| gone())?
        })
        .await?;
        match stored {
            Stored::Inserted => Ok(Enqueued::Created(run.into_stored())),
            Stored::KeyHeld => Box::pin(self.enqueue_single(NewRun { start: None, ..run })).await,
            Stored::Queued => Ok(Enqueued::Created(NewRun { start: None, ..run }.into_stored())),
        }
    }

    /// Enqueues a run that needs look-ups first; a singleton key's old run (mode `cancel`) is
    /// cancelled through [`Store::cancel`], announced, before the new run is stored.
    pub(super) async fn enqueue_single(&self, run: NewRun) -> Result<Enqueued, StoreError> {
        for _ in 0..3 {
            match timed(runs::enqueue(&self.pool, &self.schema, run.clone())).await? {
                runs::Entry::Done(enqueued) => return Ok(*enqueued),
                runs::Entry::CancelFirst(old) => {
                    self.cancel(&old, run.created_at).await?;
                }
            }
        }
        Err(StoreError::Unavailable(format!("the singleton key of `{}` kept getting new runs; try again", run.function)))
    }

    /// Stores events and their runs; unfinished runs of singleton keys (mode `cancel`) are
    /// cancelled through [`Store::cancel`], announced, before the events are stored.
    pub(super) async fn ingest_all(
        &self,
        events: Vec<NewEvent>,
        dedup_after: i64,
        resume: crate::Resume,
    ) -> Result<Vec<Ingested>, StoreError> {
        for _ in 0..3 {
            let resumed = crate::starter::Resumed::new(resume.clone());
            match timed(eventlog::ingest(&self.pool, &self.schema, &events, dedup_after, resumed)).await? {
                eventlog::Ingest::Done { ingested, due, cascade, resumed } => {
                    resumed.start();
                    self.announce(&cascade).await;
                    if due {
                        self.work_everywhere();
                    }
                    return Ok(ingested);
                }
                eventlog::Ingest::CancelFirst(old) => {
                    let now = plinth_core::timefmt::now_micros();
                    for id in old {
                        self.cancel(&id, now).await?;
                    }
                }
                eventlog::Ingest::Raced => {}
            }
        }
        Err(StoreError::Unavailable(
            "singleton keys kept getting new runs, or the same event ids kept arriving at once, while the events were stored; \
             try again"
                .into(),
        ))
    }
}
