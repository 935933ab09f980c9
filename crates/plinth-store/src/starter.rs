//! The engine's side of runs started as they are stored (decision 0019), as the API sees it.

use plinth_core::Run;

/// A node that starts runs the moment they are stored (decision 0019). The API asks for a slot
/// before it stores a run; the engine, which owns the slots, answers. The two still meet only
/// in the store: the run is on disk, leased to the node, before its attempt starts.
pub trait Starter: Send + Sync {
    /// Reserves one of this node's free slots for a run of `function` due now, with the lease
    /// to store the run with; `None` when no slot is free, runs wait in the queue (they come
    /// first) or the node is stopping. The slot is held until [`Starter::start`] or
    /// [`Starter::release`].
    fn reserve(&self, function: &str, now: i64) -> Option<plinth_core::run::StartNow>;
    /// Starts the first attempt of a run stored started, on the slot reserved for it.
    fn start(&self, run: Run);
    /// Gives back a reserved slot whose run was not stored started.
    fn release(&self);
}

/// What [`ingest_starting`] stored: the store's answer, and whether any run it stored went to
/// the queue (the caller wakes its dispatcher then).
pub struct IngestStarted {
    /// The store's answer, one per event.
    pub ingested: Vec<crate::Ingested>,
    /// Whether a run was stored queued (or an older run fed), not started here.
    pub queued: bool,
}

/// Stores `events` with the runs they start (`POST /events`, the NATS bridge, a step's
/// `send_event`). A run that may skip the queue and has no lane is stored started on this node
/// while `starter` gives it a slot, as `POST /run`'s are (decision 0035), and starts with no
/// claim. The others are queued, and so are all the runs of a call that holds a `cancel_on`
/// rule, since a later event of the call may cancel an earlier one's run in the same write.
///
/// # Errors
/// The store's error; every slot reserved is given back then.
pub async fn ingest_starting(
    store: std::sync::Arc<dyn crate::Store>,
    starter: Option<std::sync::Arc<dyn Starter>>,
    mut events: Vec<crate::NewEvent>,
    dedup_after: i64,
    now: i64,
) -> Result<IngestStarted, crate::StoreError> {
    let starter = starter.filter(|_| events.iter().all(|e| e.cancels.is_empty()));
    let mut reserved = Vec::new();
    if let Some(starter) = &starter {
        'events: for event in &mut events {
            for run in event.runs.iter_mut().filter(|r| r.may_start_at_once(now) && r.flow_key.is_none()) {
                // Why stop at the first refusal: the node is full or runs wait in the queue,
                // and every later run of the call goes behind them.
                let Some(lease) = starter.reserve(&run.function, now) else { break 'events };
                run.start = Some(lease);
                reserved.push(run.clone().into_stored());
            }
        }
    }
    let Some(starter) = starter.filter(|_| !reserved.is_empty()) else {
        let ingested = store.ingest(events, dedup_after).await?;
        let queued = ingested.iter().any(|i| !i.duplicate && !i.run_ids.is_empty());
        return Ok(IngestStarted { ingested, queued });
    };
    // Why a task of its own: as for `POST /run`, the runs may be on disk, leased to this node,
    // when the caller's future is dropped (a client hangs up), and their attempts must start
    // all the same.
    let task = tokio::spawn(async move {
        let ingested = match store.ingest(events, dedup_after).await {
            Ok(i) => i,
            Err(e) => {
                reserved.iter().for_each(|_| starter.release());
                return Err(e);
            }
        };
        // A duplicate event stores nothing (its ids are the first one's); a run fed into a
        // batch or a debounce is an older run, never one of these.
        let stored: std::collections::HashSet<&str> =
            ingested.iter().filter(|i| !i.duplicate).flat_map(|i| i.run_ids.iter().map(String::as_str)).collect();
        let mut queued = stored.len();
        for run in reserved {
            if stored.contains(run.run_id.as_str()) {
                queued -= 1;
                starter.start(run);
            } else {
                starter.release();
            }
        }
        Ok(IngestStarted { queued: queued > 0, ingested })
    });
    task.await.unwrap_or_else(|e| Err(crate::StoreError::Unavailable(format!("the ingest stopped: {e}"))))
}
