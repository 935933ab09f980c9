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
    /// Starts the attempt of a run stored started (its first, or the one a woken run resumes
    /// in), on the slot reserved for it.
    fn start(&self, run: Run);
    /// Gives back a reserved slot whose run was not stored started.
    fn release(&self);
}

/// The node that resumes the runs an ingest wakes, if any ([`crate::Store::ingest`]).
pub type Resume = Option<std::sync::Arc<dyn Starter>>;

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
/// The runs the events wake resume here too while `starter` has slots (decision 0036).
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
    let mut reserved = Vec::new();
    if let Some(starter) = starter.as_ref().filter(|_| events.iter().all(|e| e.cancels.is_empty())) {
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
    let Some(starter) = starter else {
        let ingested = store.ingest(events, dedup_after, None).await?;
        let queued = ingested.iter().any(|i| !i.duplicate && !i.run_ids.is_empty());
        return Ok(IngestStarted { ingested, queued });
    };
    // Why a task of its own: as for `POST /run`, the runs may be on disk, leased to this node,
    // when the caller's future is dropped (a client hangs up), and their attempts must start
    // all the same; so must those of the runs the events woke (decision 0036), which the
    // store starts once its write is on disk.
    let task = tokio::spawn(async move {
        let ingested = match store.ingest(events, dedup_after, Some(starter.clone())).await {
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

/// The runs an ingest woke and stored started on this node (decision 0036), each on a slot
/// its starter reserved in the write. Dropped before [`Resumed::start`] (the write failed, the
/// caller went away), it gives every slot back; the runs then are on disk leased to this node
/// and the lease's expiry hands them to a claim, as for any node that stops mid-attempt.
pub(crate) struct Resumed {
    starter: Option<std::sync::Arc<dyn Starter>>,
    /// Slots reserved and not yet started or given back.
    held: usize,
    runs: Vec<Run>,
}

impl Resumed {
    /// Nothing resumed yet; with no starter, every woken run is queued.
    pub(crate) fn new(starter: Option<std::sync::Arc<dyn Starter>>) -> Self {
        Self { starter, held: 0, runs: Vec::new() }
    }

    /// A slot for a woken run of `function`, with the lease to store it with; `None` when
    /// there is no starter or it has no slot (the run is queued then).
    pub(crate) fn reserve(&mut self, function: &str, now: i64) -> Option<plinth_core::run::StartNow> {
        let lease = self.starter.as_ref()?.reserve(function, now)?;
        self.held += 1;
        Some(lease)
    }

    /// The run a reserved slot was for, stored started.
    pub(crate) fn stored(&mut self, run: Run) {
        self.runs.push(run);
    }

    /// Gives back a reserved slot whose run was not stored started.
    pub(crate) fn unused(&mut self) {
        if let Some(s) = &self.starter {
            self.held = self.held.saturating_sub(1);
            s.release();
        }
    }

    /// Starts every run stored started, once the write is on disk; how many.
    pub(crate) fn start(mut self) -> usize {
        let runs = std::mem::take(&mut self.runs);
        let n = runs.len();
        if let Some(s) = &self.starter {
            for run in runs {
                self.held = self.held.saturating_sub(1);
                s.start(run);
            }
        }
        n
    }
}

impl Drop for Resumed {
    fn drop(&mut self) {
        if let Some(s) = &self.starter {
            (0..self.held).for_each(|_| s.release());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Resumed, Starter};
    use plinth_core::run::StartNow;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Grants `slots` reservations; counts what it starts and what comes back.
    #[derive(Default)]
    struct Count {
        slots: usize,
        asked: AtomicUsize,
        started: AtomicUsize,
        released: AtomicUsize,
    }

    impl Starter for Count {
        fn reserve(&self, _: &str, now: i64) -> Option<StartNow> {
            (self.asked.fetch_add(1, Ordering::SeqCst) < self.slots).then(|| StartNow {
                owner: "n".into(),
                started_at: now,
                lease_until: now + 1,
            })
        }
        fn start(&self, _: plinth_core::Run) {
            self.started.fetch_add(1, Ordering::SeqCst);
        }
        fn release(&self) {
            self.released.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn run() -> plinth_core::Run {
        crate::conformance::new_run("f", 0).into_stored()
    }

    fn counts(c: &Count) -> (usize, usize, usize) {
        (c.asked.load(Ordering::SeqCst), c.started.load(Ordering::SeqCst), c.released.load(Ordering::SeqCst))
    }

    #[test]
    fn started_runs_take_their_slots_and_unused_ones_come_back() {
        let c = Arc::new(Count { slots: 3, ..Count::default() });
        let mut r = Resumed::new(Some(c.clone()));
        assert!(r.reserve("f", 0).is_some() && r.reserve("f", 0).is_some() && r.reserve("f", 0).is_some());
        assert!(r.reserve("f", 0).is_none(), "the node is full");
        r.stored(run());
        r.unused();
        assert_eq!(r.start(), 1);
        assert_eq!(counts(&c), (4, 1, 2), "one started, one given back at once, the third when done");
    }

    #[test]
    fn dropped_before_its_start_every_slot_comes_back() {
        let c = Arc::new(Count { slots: 2, ..Count::default() });
        let mut r = Resumed::new(Some(c.clone()));
        assert!(r.reserve("f", 0).is_some() && r.reserve("f", 0).is_some());
        r.stored(run());
        drop(r);
        assert_eq!(counts(&c), (2, 0, 2), "the write failed: nothing starts, both slots back");
    }

    #[test]
    fn with_no_starter_nothing_is_reserved_or_started() {
        let mut r = Resumed::new(None);
        assert!(r.reserve("f", 0).is_none());
        r.unused();
        assert_eq!(r.start(), 0);
    }
}
