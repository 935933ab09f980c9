//! Runs started the moment they are stored (decision 0019): the API reserves one of this
//! node's free slots before it stores a run, the store writes the run leased to this node, and
//! its first attempt starts here without a claim. A run that finds the slots taken waits here
//! for one, for a while (decision 0028).

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
        if shared.no_claims.is_cancelled() {
            return None;
        }
        if shared.backlog.load(Ordering::SeqCst) {
            // Why counted: a claim made meanwhile may clear the backlog without reading this
            // run; the dispatcher then claims once more at once (see `dispatcher::run`).
            shared.skipped_here.fetch_add(1, Ordering::SeqCst);
            return None;
        }
        // Why the slot is not held while the run is written: the write waits for its batch
        // (milliseconds under load), and with each reservation holding a slot, 64 clients
        // reserving at once kept 64 slots from any handler; the queue took over and stayed.
        // Why runs may wait here for a slot (as many as `room` allows): a run sent to the
        // queue is written twice more (claimed, then ended), a run stored started here once
        // more (ended); with more clients than slots, the queue's extra write cost a third of
        // what the node completed (decision 0028). A run that waits here too long goes back
        // to the queue (`give_back_overdue`), so a busy node keeps no run from an idle one.
        let room = shared.room();
        if shared.inflight.load().full(room) {
            queue_first(shared);
            return None;
        }
        if shared.reserved.fetch_add(1, Ordering::SeqCst) >= room {
            shared.reserved.fetch_sub(1, Ordering::SeqCst);
            queue_first(shared);
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

/// A run is about to go to the queue: no later run may skip it by starting here, so the node
/// starts runs from the queue again until a claim finds it drained.
fn queue_first(shared: &Shared) {
    shared.queued_here.fetch_add(1, Ordering::SeqCst);
    shared.backlog.store(true, Ordering::SeqCst);
    shared.wake.notify_one();
}

/// The most runs that may wait on a node for a slot, whatever the rate of its handlers.
const MOST_WAITING: usize = 10_000;

/// The room for runs on this node (see [`Shared::room`]) when its handlers return `per_second`.
pub(crate) fn room_for(config: &crate::EngineConfig, per_second: f64) -> usize {
    let workers = usize::try_from(config.workers).unwrap_or(usize::MAX / 4);
    // Why: no wait allowed, no run is stored started to wait (as before decision 0028).
    if config.wait_here_at_most.is_zero() {
        return workers;
    }
    workers.saturating_add(wave_for(config, per_second).max(workers))
}

/// The runs this node's handlers start in half of `wait_here_at_most` when they return
/// `per_second`, at most 10,000: what may wait here and still start well before it would be
/// given back, unless the handlers slow down at once. Why at most 10,000: each run waiting
/// here holds its input in memory.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
pub(crate) fn wave_for(config: &crate::EngineConfig, per_second: f64) -> usize {
    let wave = per_second.max(0.0) * config.wait_here_at_most.as_secs_f64() / 2.0;
    // Why: an infinite rate times no wait is not a number; it allows no wait.
    if wave.is_nan() { 0 } else { wave.min(MOST_WAITING as f64) as usize }
}

/// Keeps the node's room in step with the rate at which its handlers return, and gives back to
/// the queue the runs that waited here for a slot longer than the engine's
/// `wait_here_at_most`, until the services stop.
pub(crate) async fn give_back_overdue(shared: Arc<Shared>) {
    let longest = shared.config.wait_here_at_most;
    let every = (longest / 4).clamp(std::time::Duration::from_millis(10), std::time::Duration::from_millis(100));
    let (mut then, mut ended, mut rate) = (std::time::Instant::now(), shared.inflight.ended(), 0.0_f64);
    while crate::maintenance::tick(&shared, every).await {
        let (now, count) = (std::time::Instant::now(), shared.inflight.ended());
        #[allow(clippy::cast_precision_loss)]
        let measured = count.saturating_sub(ended) as f64 / now.duration_since(then).as_secs_f64().max(1e-3);
        (then, ended) = (now, count);
        // Why up at once and down slowly: a stall of a few hundred milliseconds (a checkpoint,
        // say) must not shrink the room exactly when the runs it holds back arrive; handlers
        // that stay slow shrink it within a second or two. Why not measured more often: ends
        // come in clumps (handlers started together return together), and over 20 ms four
        // slow handlers returning at once read as ten times their rate.
        rate = measured.max(rate * 0.9);
        shared.room.store(room_for(&shared.config, rate), Ordering::Relaxed);
        shared.wave.store(wave_for(&shared.config, rate), Ordering::Relaxed);
        let overdue = shared.inflight.take_overdue(longest);
        if overdue.is_empty() {
            continue;
        }
        queue_first(&shared);
        tracing::info!(runs = overdue.len(), "runs waited too long for a slot on this node; giving them back to the queue");
        // Why a task each: a give-back is a write, retried while the database is away; the
        // room and the other runs waiting here must not wait for it.
        for (run, stop) in overdue {
            let shared = shared.clone();
            tokio::spawn(async move {
                executor::give_back(&shared, run, &stop).await;
                shared.wake.notify_one();
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{room_for, wave_for};
    use crate::EngineConfig;
    use std::time::Duration;

    fn config(workers: u32, wait_ms: u64) -> EngineConfig {
        EngineConfig { workers, wait_here_at_most: Duration::from_millis(wait_ms), ..EngineConfig::default() }
    }

    #[test]
    fn the_room_holds_what_the_handlers_start_in_half_the_longest_wait() {
        assert_eq!(room_for(&config(64, 1000), 10_000.0), 64 + 5_000);
        assert_eq!(room_for(&config(16, 200), 1_000.0), 16 + 100);
    }

    #[test]
    fn the_room_is_never_under_twice_the_slots_unless_no_wait_is_allowed() {
        assert_eq!(room_for(&config(64, 1000), 0.0), 128, "no handler returned yet");
        assert_eq!(room_for(&config(64, 1000), 10.0), 128, "slow handlers");
        assert_eq!(room_for(&config(1, 0), 1e6), 1, "no wait allowed: the slots alone");
        assert_eq!(room_for(&config(8, 1000), -5.0), 16, "a rate below zero counts as none");
        assert_eq!(room_for(&config(8, 1000), f64::NAN), 16, "nor does one that is not a number");
    }

    #[test]
    fn the_room_stays_bounded_for_absurd_rates() {
        assert_eq!(room_for(&config(64, 60_000), f64::INFINITY), 64 + 10_000, "capped: each waiting run holds its input");
        assert_eq!(room_for(&config(4096, 60_000), 1e12), 4096 + 10_000);
        assert_eq!(room_for(&config(4096, 1000), 0.0), 8192, "twice the slots even past the cap");
        assert_eq!(room_for(&config(8, 0), f64::INFINITY), 8, "no wait allowed, whatever the rate");
    }

    #[test]
    fn a_claim_may_take_ahead_only_what_the_handlers_start_in_half_the_longest_wait() {
        assert_eq!(wave_for(&config(64, 1000), 10_000.0), 5_000);
        assert_eq!(wave_for(&config(64, 1000), 0.0), 0, "no handler returned yet: nothing ahead, unlike the room");
        assert_eq!(wave_for(&config(64, 0), 10_000.0), 0, "no wait allowed");
        assert_eq!(wave_for(&config(64, 60_000), f64::INFINITY), 10_000, "capped");
        assert_eq!(wave_for(&config(64, 1000), f64::NAN), 0);
        assert_eq!(wave_for(&config(64, 1000), -1.0), 0);
    }
}
