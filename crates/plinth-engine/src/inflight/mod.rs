//! The attempts executing on this node, with their cancel tokens and per-function counts.

mod away;

use away::Resuming;

use plinth_core::Run;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use tokio_util::sync::CancellationToken;

/// Why an attempt was told to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// Not stopped.
    None = 0,
    /// A user cancelled the run.
    Cancel = 1,
    /// Shutdown: give the run back.
    Release = 2,
    /// Our lease was lost: another worker may hold the run now.
    Lost = 3,
}

/// A stop signal with its reason.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stop {
    token: CancellationToken,
    reason: Arc<AtomicU8>,
}

impl Stop {
    pub(crate) fn stop(&self, reason: StopReason) {
        // Why: the first reason wins; a release after a cancel must not undo the cancel.
        let _ = self.reason.compare_exchange(0, reason as u8, Ordering::SeqCst, Ordering::SeqCst);
        self.token.cancel();
    }

    pub(crate) fn reason(&self) -> StopReason {
        match self.reason.load(Ordering::SeqCst) {
            1 => StopReason::Cancel,
            2 => StopReason::Release,
            3 => StopReason::Lost,
            _ => StopReason::None,
        }
    }

    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Whether both are the stop of one admission. Why: a run given back may be claimed again
    /// by this node before the task that gave it back is done; that task must leave the new
    /// admission alone.
    fn same(&self, other: &Stop) -> bool {
        Arc::ptr_eq(&self.reason, &other.reason)
    }
}

struct Entry {
    attempt: u32,
    function: String,
    stop: Stop,
    /// Whether its handler is still at work (false once it returned and only its end is
    /// being written).
    busy: bool,
    /// Whether its session gave up its slot while it writes a step (`away.rs`).
    away: bool,
    /// Whether its handler returned and only its end is being written.
    ending: bool,
}

#[derive(Default)]
struct Inner {
    runs: HashMap<String, Entry>,
    per_function: HashMap<String, u32>,
    /// The entries whose handler is still at work: what the node's worker slots bound.
    busy: usize,
    /// Runs stored started on this node (decision 0019) that found every slot taken when
    /// their write returned: they start as slots free, by priority and then in the order they
    /// came, unless they wait too long (`take_overdue`). Their leases are held.
    waiting: std::collections::BTreeMap<(std::cmp::Reverse<i32>, u64), Waiting>,
    /// The order the waiting runs came in.
    arrivals: u64,
    /// Handlers that returned since the node started: the rate at which slots free.
    ended: u64,
    /// Step functions' sessions that wrote a step without their slot and wait for one again,
    /// in the order they came back (`away.rs`).
    resuming: std::collections::VecDeque<Resuming>,
    /// Sessions writing a step without their slot.
    away: usize,
    /// Attempts whose handler returned and whose end is being written.
    ending: usize,
}

impl Inner {
    /// See [`InFlight::admit`].
    fn admit(&mut self, run: Run, workers: usize) -> Option<(Run, Stop)> {
        let stop = Stop::default();
        *self.per_function.entry(run.function.clone()).or_default() += 1;
        let free = self.busy < workers;
        let entry = Entry {
            attempt: run.attempt,
            function: run.function.clone(),
            stop: stop.clone(),
            busy: free,
            away: false,
            ending: false,
        };
        if let Some(old) = self.runs.insert(run.run_id.clone(), entry) {
            self.forget(&old);
        }
        if free {
            self.busy += 1;
            return Some((run, stop));
        }
        // Why by priority: a run of higher priority that waits on this node would have been
        // claimed first from the queue; it starts first here too.
        self.arrivals += 1;
        let key = (std::cmp::Reverse(run.priority), self.arrivals);
        self.waiting.insert(key, Waiting { run, stop, since: std::time::Instant::now() });
        None
    }

    /// Takes out what an entry replaced or removed counted.
    fn forget(&mut self, e: &Entry) {
        if e.busy {
            self.busy = self.busy.saturating_sub(1);
        }
        if e.away {
            self.away = self.away.saturating_sub(1);
        }
        if e.ending {
            self.ending = self.ending.saturating_sub(1);
        }
        if let Some(n) = self.per_function.get_mut(&e.function) {
            *n = n.saturating_sub(1);
        }
    }
}

/// What [`InFlight::adopt`] did with a run.
#[derive(Debug)]
pub(crate) enum Adopted {
    /// The node held it already: nothing changed.
    Held,
    /// Taken in, to start now. (Boxed: the other answers carry nothing.)
    Start(Box<Run>, Stop),
    /// Taken in, waiting for a slot.
    Waits,
}

/// A run stored started on this node, waiting here for a slot.
struct Waiting {
    run: Run,
    stop: Stop,
    since: std::time::Instant,
}

/// What [`InFlight::load`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Load {
    /// The attempts whose handler is at work: the worker slots taken.
    pub(crate) busy: usize,
    /// Runs stored started here and sessions back from a step's write, waiting for a slot.
    pub(crate) waiting: usize,
    /// Sessions writing a step without their slot.
    pub(crate) away: usize,
    /// Attempts whose handler returned and whose end is being written.
    pub(crate) ending: usize,
}

impl Load {
    /// Everything that holds or wants a slot here: what the node's `room` bounds.
    pub(crate) fn held(&self) -> usize {
        self.busy + self.waiting + self.away
    }

    /// Whether the node may take no more runs: what holds or wants a slot fills the room, or
    /// as many ends as the room wait to be written.
    ///
    /// Why the ends: a handler's slot is free as soon as it returns, so when ends are written
    /// slower than handlers return, each slot freed let one more run be claimed and its end
    /// wait with the others. On PostgreSQL, 200,000 runs started by events and drained from
    /// the queue held 250 MB of such attempts at once (their tasks and runs), freed only when
    /// the queue was empty. Why a bound of their own rather than a share of the room: counted
    /// in it, they shrank each claim to the few runs a batch of ends had just made room for.
    pub(crate) fn full(&self, room: usize) -> bool {
        self.held() >= room || self.ending >= room
    }
}

/// The in-flight table.
#[derive(Default)]
pub(crate) struct InFlight {
    inner: Mutex<Inner>,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(test)]
    pub(crate) fn insert(&self, run_id: &str, attempt: u32, function: &str) -> Stop {
        let stop = Stop::default();
        let mut inner = self.lock();
        *inner.per_function.entry(function.to_string()).or_default() += 1;
        let entry = Entry { attempt, function: function.to_string(), stop: stop.clone(), busy: true, away: false, ending: false };
        if let Some(old) = inner.runs.insert(run_id.to_string(), entry) {
            inner.forget(&old);
        }
        inner.busy += 1;
        stop
    }

    /// Takes in a run stored started on this node: it is given back to start now when fewer
    /// than `workers` handlers are at work, and waits for a slot otherwise (its lease held).
    pub(crate) fn admit(&self, run: Run, workers: usize) -> Option<(Run, Stop)> {
        self.lock().admit(run, workers)
    }

    /// Takes in, as [`InFlight::admit`] does, a run leased to this node that it may not know
    /// it holds ([`plinth_store::Store::adopt`]); leaves alone one it holds already.
    pub(crate) fn adopt(&self, run: Run, workers: usize) -> Adopted {
        let mut inner = self.lock();
        if inner.runs.contains_key(&run.run_id) {
            return Adopted::Held;
        }
        match inner.admit(run, workers) {
            Some((run, stop)) => Adopted::Start(Box::new(run), stop),
            None => Adopted::Waits,
        }
    }

    /// Takes out the runs that have waited here for a slot `longer` or more: the caller gives
    /// them back to the queue, where any node may start them. Their leases stay held (they are
    /// still in flight) until the caller removes them.
    pub(crate) fn take_overdue(&self, longer: std::time::Duration) -> Vec<(Run, Stop)> {
        let mut inner = self.lock();
        let keys: Vec<_> = inner.waiting.iter().filter(|(_, w)| w.since.elapsed() >= longer).map(|(k, _)| *k).collect();
        keys.into_iter().filter_map(|k| inner.waiting.remove(&k)).map(|w| (w.run, w.stop)).collect()
    }

    /// Marks the attempt's handler as returned: its slot is free for another attempt while
    /// its end is written. Why: the end is written in batches; holding the slot through the
    /// write halved the attempts a node could start per second with its slots. The slot goes
    /// to the first session coming back from a step's write, else to the first run waiting
    /// for one, if any: returned to start now.
    pub(crate) fn handler_done(&self, run_id: &str, stop: &Stop) -> Option<(Run, Stop)> {
        let mut inner = self.lock();
        let e = inner.runs.get_mut(run_id).filter(|e| e.stop.same(stop))?;
        let (was_busy, was_away) = (std::mem::replace(&mut e.busy, false), std::mem::replace(&mut e.away, false));
        if !std::mem::replace(&mut e.ending, true) {
            inner.ending += 1;
        }
        inner.ended += 1;
        if was_away {
            inner.away = inner.away.saturating_sub(1);
        }
        if !was_busy {
            return None;
        }
        inner.busy = inner.busy.saturating_sub(1);
        inner.hand_over()
    }

    /// Runs stored started here that wait for a slot.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }

    /// What the node holds, for the dispatcher and the starter: slots taken, runs and sessions
    /// waiting here for one, sessions away from theirs.
    pub(crate) fn load(&self) -> Load {
        let inner = self.lock();
        Load { busy: inner.busy, waiting: inner.waiting.len() + inner.resuming.len(), away: inner.away, ending: inner.ending }
    }

    /// Handlers that returned since the node started.
    pub(crate) fn ended(&self) -> u64 {
        self.lock().ended
    }

    /// Forgets the admission `stop` belongs to, once its end is written; whether it was an
    /// end being written (room the node has again).
    pub(crate) fn remove(&self, run_id: &str, stop: &Stop) -> bool {
        let mut inner = self.lock();
        if !inner.runs.get(run_id).is_some_and(|e| e.stop.same(stop)) {
            return false;
        }
        inner.runs.remove(run_id).is_some_and(|e| {
            inner.forget(&e);
            e.ending
        })
    }

    /// The attempts whose handler is at work: the worker slots taken.
    #[cfg(test)]
    pub(crate) fn busy(&self) -> usize {
        self.lock().busy
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().runs.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[cfg(test)]
    pub(crate) fn running(&self, function: &str) -> u32 {
        self.lock().per_function.get(function).copied().unwrap_or(0)
    }

    pub(crate) fn leases(&self) -> Vec<(String, u32)> {
        self.lock().runs.iter().map(|(id, e)| (id.clone(), e.attempt)).collect()
    }

    pub(crate) fn stop(&self, run_id: &str, reason: StopReason) -> bool {
        self.lock().runs.get(run_id).map(|e| e.stop.stop(reason)).is_some()
    }

    pub(crate) fn release_all(&self) -> usize {
        let inner = self.lock();
        inner.runs.values().for_each(|e| e.stop.stop(StopReason::Release));
        inner.runs.len()
    }
}

#[cfg(test)]
mod tests;
