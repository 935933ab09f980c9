//! Runs started the moment they are stored (decision 0019): the API reserves one of this
//! node's free slots before it stores a run, the store writes the run leased to this node, and
//! its first attempt starts here without a claim.

use crate::{Shared, executor};
use plinth_core::Run;
use plinth_core::run::StartNow;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The engine's side of [`plinth_store::Starter`].
pub(crate) struct EngineStarter(pub(crate) Arc<Shared>);

impl plinth_store::Starter for EngineStarter {
    fn reserve(&self, _function: &str, now: i64) -> Option<StartNow> {
        let shared = &self.0;
        // Why: runs already waiting in the queue come first; a run that skipped them would
        // take the slot their claim is about to use. (Which runs may skip the queue at all is
        // the store's rule, `NewRun::may_start_at_once`, checked by the caller.)
        if shared.no_claims.is_cancelled() || shared.backlog.load(Ordering::SeqCst) {
            return None;
        }
        // Why the slot is not held while the run is written: the write waits for its batch
        // (milliseconds under load), and with each reservation holding a slot, 64 clients
        // reserving at once kept 64 slots from any handler; the queue took over and stayed.
        // A run written after the slots filled waits on this node for the next one
        // (`InFlight::admit`); at most `workers` reservations are open at once.
        let workers = usize::try_from(shared.config.workers).unwrap_or(usize::MAX);
        if shared.inflight.busy() + shared.inflight.waiting() >= workers {
            return None;
        }
        if shared.reserved.fetch_add(1, Ordering::SeqCst) >= workers {
            shared.reserved.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let lease = i64::try_from(shared.config.lease.as_micros()).unwrap_or(i64::MAX / 2);
        Some(StartNow { owner: shared.config.owner.clone(), started_at: now, lease_until: now.saturating_add(lease) })
    }

    fn start(&self, run: Run) {
        let shared = &self.0;
        let workers = usize::try_from(shared.config.workers).unwrap_or(usize::MAX);
        let now = shared.inflight.admit(run, workers);
        // Why: the run is now counted in flight or waiting; the order (admit, then give back
        // the reservation) never lets the dispatcher see its slot free in between.
        shared.reserved.fetch_sub(1, Ordering::SeqCst);
        if let Some((run, stop)) = now {
            executor::spawn(shared.clone(), run, stop);
        }
    }

    fn release(&self) {
        self.0.reserved.fetch_sub(1, Ordering::SeqCst);
        // Why: the dispatcher may have passed over the slot while it was reserved.
        self.0.wake.notify_one();
    }
}
