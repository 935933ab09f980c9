//! The dispatcher: claims at most as many due runs as there are free slots, and starts them.

use crate::Shared;
use crate::executor;
use plinth_core::timefmt::now_micros;
use plinth_store::ClaimRequest;
use std::sync::Arc;
use std::time::Duration;

/// The longest the dispatcher sleeps without being woken, in case a wake-up was missed
/// (another process wrote to the same database, say).
const POLL: Duration = Duration::from_millis(1000);

/// How often a node whose slots are all taken, with runs waiting here for one, claims a batch
/// to take in the runs queued meanwhile (decision 0028).
const PROBE: Duration = Duration::from_millis(250);

pub(crate) async fn run(shared: Arc<Shared>) {
    let (mut functions, mut limits) = (Vec::new(), Arc::default());
    let mut version = None;
    let mut rotate = 0usize;
    let batch = shared.config.claim_batch.clamp(1, shared.config.workers.max(1));
    // Why: while runs wait (the last claim took all it asked for), claiming for each slot
    // that frees would cost a claim per run; waiting for a quarter of a batch keeps claims
    // full. With no backlog, a free slot claims at once, so pickup stays immediate.
    let gather = (batch / 4).max(1);
    let mut probed = std::time::Instant::now();
    // Why: a claim that cleared the backlog may not have read the runs sent to the queue
    // while it ran; the next claim is made at once to take them (see below).
    let mut catch_up = false;
    loop {
        if shared.no_claims.is_cancelled() {
            return;
        }
        // Why: an app may register functions while the node runs; each change is read once.
        if version != Some(shared.component.version()) {
            version = Some(shared.component.version());
            let component = shared.component.get();
            (functions, limits) = claimable(&component);
            adopt_lanes(&shared, &component).await;
        }
        // Why: set before the free slots are counted, so an attempt that ends after the count
        // wakes this loop (see `slot_wanted`).
        shared.slot_wanted.store(true, std::sync::atomic::Ordering::SeqCst);
        // Why reservations are not counted: a claim sized by the slots left after them asked
        // for one or two runs, took the one a schedule had just queued, and read as a backlog
        // (all it asked for), which then sent every new run to the queue. A run stored started
        // that finds the slots taken waits on this node for one (`InFlight::admit`).
        let load = shared.inflight.load();
        let waiting = load.waiting;
        let busy = load.busy + waiting;
        // Why the room too: the sessions of step functions writing a step hold no slot
        // (decision 0040); without it, every write would let one more run be claimed, until the
        // node held all the queue. Without such sessions this bounds nothing more: the room
        // is at least the slots.
        let free = shared
            .config
            .workers
            .saturating_sub(u32::try_from(busy).unwrap_or(u32::MAX))
            .min(u32::try_from(shared.room().saturating_sub(load.held())).unwrap_or(u32::MAX));
        // Why: with as many ends being written as the room, nothing is claimed until some are
        // written (`Load::full`); the attempt that writes one wakes this loop.
        if load.ending >= shared.room() {
            if !sleep(&shared, POLL).await {
                return;
            }
            continue;
        }
        let mut probe = false;
        let backlog = shared.backlog.load(std::sync::atomic::Ordering::SeqCst);
        // Why a probe: while runs wait here, every slot stays taken and no claim is made, so a
        // run queued meanwhile (a retry, a schedule's tick, an event's run, a lane's) would
        // wait for as long as new runs keep arriving. A claim of a batch takes such runs to
        // wait here with the others, by priority. Only a claim that takes all it asked for
        // turns the backlog on (new runs then go behind the queue); one run found is no
        // backlog. Why a batch, not one run: a claim of one that found one reads as a backlog,
        // and a schedule's tick every second would have sent all new runs to the queue.
        if free == 0 && waiting > 0 && !backlog && !catch_up {
            let due = probed + PROBE;
            if std::time::Instant::now() < due {
                if !sleep(&shared, due.saturating_duration_since(std::time::Instant::now())).await {
                    return;
                }
                continue;
            }
            probed = std::time::Instant::now();
            probe = true;
        }
        // Why more than the free slots while the queue holds runs: new runs go behind the
        // queue then, so it drained only as fast as the slots freed; under a load of more
        // clients than slots it never did, and every run paid the claim's extra write for as
        // long as the load lasted (decision 0029). A claim may take as many as the handlers
        // start in half the longest wait here (`Shared::wave`), within the room.
        let ahead = if backlog || catch_up {
            let taken = busy.saturating_add(shared.reserved.load(std::sync::atomic::Ordering::SeqCst));
            let wave = shared.wave.load(std::sync::atomic::Ordering::Relaxed);
            u32::try_from(wave.min(shared.room().saturating_sub(taken))).unwrap_or(u32::MAX)
        } else {
            0
        };
        if backlog && free.saturating_add(ahead) < gather && !shared.inflight.is_empty() {
            if !sleep(&shared, POLL).await {
                return;
            }
            continue;
        }
        // Why at least two for a probe: with one worker the batch is one, and a claim of one
        // that found one would read as a backlog. Why at most eight batches: one claim's
        // statement stays short, so ending attempts do not wait behind it.
        let most = batch.max(2).saturating_mul(8);
        let free = if probe || catch_up {
            free.saturating_add(ahead).max(batch.max(2)).min(most)
        } else if backlog {
            free.saturating_add(ahead).min(most)
        } else {
            free.min(batch)
        };
        let mut wants: Vec<(String, u32)> = functions.iter().map(|name| (name.clone(), free)).collect();
        if free == 0 || wants.is_empty() {
            if !sleep(&shared, POLL).await {
                return;
            }
            continue;
        }
        // Why: the claim fills functions in order; rotating it keeps one busy function from
        // starving the others of the node's slots.
        let k = rotate % wants.len();
        wants.rotate_left(k);
        rotate = rotate.wrapping_add(1);
        let asked: u32 = wants.iter().map(|w| w.1).sum::<u32>().min(free);
        let now = now_micros();
        let lease_until = now + i64::try_from(shared.config.lease.as_micros()).unwrap_or(i64::MAX / 2);
        let req =
            ClaimRequest { owner: shared.config.owner.clone(), now, lease_until, wants, limit: free, limits: limits.clone() };
        // Why: a run sent to the queue while this claim was made may not be in what it read.
        // One sent for want of room (`queue_first`) keeps the backlog on: the node is full.
        // One sent only because of the backlog does not: under a steady load such runs arrive
        // during every claim, and the backlog would last as long as the load; the next claim
        // is made at once instead, to take them.
        let queued_before = shared.queued_here.load(std::sync::atomic::Ordering::SeqCst);
        let skipped_before = shared.skipped_here.load(std::sync::atomic::Ordering::SeqCst);
        // Why before the claim: a run of a lane that ends while the claim is made wakes this
        // loop, whatever the claim finds, since the claim may have counted the run as running.
        shared.lanes_due.store(true, std::sync::atomic::Ordering::SeqCst);
        match shared.store.claim(req).await {
            Ok(claimed) => {
                shared.lanes_due.store(claimed.lanes_due, std::sync::atomic::Ordering::SeqCst);
                let got = u32::try_from(claimed.runs.len()).unwrap_or(u32::MAX);
                let backlog = got >= asked || shared.queued_here.load(std::sync::atomic::Ordering::SeqCst) != queued_before;
                shared.backlog.store(backlog, std::sync::atomic::Ordering::SeqCst);
                catch_up = !backlog && shared.skipped_here.load(std::sync::atomic::Ordering::SeqCst) != skipped_before;
                let workers = usize::try_from(shared.config.workers).unwrap_or(usize::MAX);
                for run in claimed.runs {
                    if let Some((run, stop)) = shared.inflight.admit(run, workers) {
                        executor::spawn(shared.clone(), run, stop);
                    }
                }
                if got < asked && !catch_up {
                    // Why: nothing is due for a free slot; an ending attempt need not wake this
                    // loop. (One that frees a `concurrency` lane wakes it all the same while
                    // the claim found due runs of a limited function: `lanes_due`.)
                    shared.slot_wanted.store(false, std::sync::atomic::Ordering::SeqCst);
                    // Nothing more is due now: sleep until woken or the next run falls due.
                    let mut pause = claimed.next_due.map_or(POLL, |due| pause_until(due, now, now_micros()));
                    // Why: a run a throttle holds back starts at the lane's next start, which no
                    // finishing attempt announces.
                    if let Some(at) = claimed.throttled_until {
                        let wait = Duration::from_micros(u64::try_from(at - now_micros()).unwrap_or(0));
                        pause = pause.min(wait.max(Duration::from_millis(1)));
                    }
                    if !sleep(&shared, pause).await {
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim runs; retrying shortly");
                if !sleep(&shared, Duration::from_millis(500)).await {
                    return;
                }
            }
        }
    }
}

/// How long to sleep after a claim made at `claimed_at` that took less than it asked, when the
/// next run falls due at `due`. Why a due time at or before the claim means the longest sleep:
/// such a run was there to take and was not, so its function has no free slot, and the
/// attempt that frees one wakes the dispatcher. Why a due time after the claim that is already
/// past means no sleep: the claim could not take that run, and the claim itself took longer
/// than the gap (sleeps started together fall due microseconds apart; sleeping the longest
/// woke all but the first a second late).
fn pause_until(due: i64, claimed_at: i64, now: i64) -> Duration {
    if due <= claimed_at {
        return POLL;
    }
    Duration::from_micros(u64::try_from(due - now).unwrap_or(0)).min(POLL)
}

/// Waits for a wake-up or `d`; false when claiming has stopped.
async fn sleep(shared: &Shared, d: Duration) -> bool {
    tokio::select! {
        () = shared.wake.notified() => true,
        () = tokio::time::sleep(d) => true,
        () = shared.no_claims.cancelled() => false,
    }
}

/// The functions a claim asks for, and their `concurrency` limits. Why the limits: a limit
/// holds across nodes, so the store enforces it in the claim; this node only caps what it takes
/// by its free worker slots.
type Claimable = (Vec<String>, Arc<std::collections::HashMap<String, plinth_store::FlowLimit>>);

fn claimable(component: &plinth_core::component::Component) -> Claimable {
    let functions = component.file.functions.iter().map(|f| f.name.clone()).collect();
    let limits = component
        .file
        .functions
        .iter()
        .filter_map(|f| plinth_store::FlowLimit::of(&f.policy).map(|l| (f.name.clone(), l)))
        .collect::<std::collections::HashMap<_, _>>();
    (functions, Arc::new(limits))
}

/// Puts the open runs of each function in the lanes its policy has now: runs stored before a
/// `concurrency` limit was set join the shared lane, runs of a function whose limit was removed
/// leave theirs. Without it, those runs would never be claimed, or be held by a limit gone.
async fn adopt_lanes(shared: &Shared, component: &plinth_core::component::Component) {
    for f in &component.file.functions {
        let what = plinth_store::FlowUpkeep::Adopt {
            function: f.name.clone(),
            limited: plinth_store::FlowLimit::of(&f.policy).is_some(),
            now: now_micros(),
        };
        match shared.store.flow_upkeep(what).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(function = %f.name, runs = n, "moved open runs to the lanes of the current concurrency policy")
            }
            Err(e) => tracing::warn!(function = %f.name, error = %e, "cannot move open runs to the current concurrency lanes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{POLL, pause_until};
    use std::time::Duration;

    #[test]
    fn the_dispatcher_sleeps_until_the_next_run_falls_due() {
        assert_eq!(pause_until(1_300_000, 1_000_000, 1_100_000), Duration::from_millis(200));
        assert_eq!(pause_until(9_000_000, 1_000_000, 1_000_000), POLL, "at most the poll");
    }

    #[test]
    fn a_due_time_passed_during_the_claim_claims_again_at_once() {
        assert_eq!(pause_until(1_000_500, 1_000_000, 1_003_000), Duration::ZERO);
        assert_eq!(pause_until(1_000_001, 1_000_000, 1_000_001), Duration::ZERO, "the boundary: due now");
    }

    #[test]
    fn a_run_due_before_the_claim_waits_for_a_free_slot() {
        assert_eq!(pause_until(1_000_000, 1_000_000, 1_003_000), POLL, "due at the claim and not taken");
        assert_eq!(pause_until(10, 1_000_000, 1_003_000), POLL);
    }
}
