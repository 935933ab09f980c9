//! The attempts executing on this node, with their cancel tokens and per-function counts.

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
}

impl Inner {
    /// Takes out what an entry replaced or removed counted.
    fn forget(&mut self, e: &Entry) {
        if e.busy {
            self.busy = self.busy.saturating_sub(1);
        }
        if let Some(n) = self.per_function.get_mut(&e.function) {
            *n = n.saturating_sub(1);
        }
    }
}

/// A run stored started on this node, waiting here for a slot.
struct Waiting {
    run: Run,
    stop: Stop,
    since: std::time::Instant,
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
        let entry = Entry { attempt, function: function.to_string(), stop: stop.clone(), busy: true };
        if let Some(old) = inner.runs.insert(run_id.to_string(), entry) {
            inner.forget(&old);
        }
        inner.busy += 1;
        stop
    }

    /// Takes in a run stored started on this node: it is given back to start now when fewer
    /// than `workers` handlers are at work, and waits for a slot otherwise (its lease held).
    pub(crate) fn admit(&self, run: Run, workers: usize) -> Option<(Run, Stop)> {
        let stop = Stop::default();
        let mut inner = self.lock();
        *inner.per_function.entry(run.function.clone()).or_default() += 1;
        let free = inner.busy < workers;
        let entry = Entry { attempt: run.attempt, function: run.function.clone(), stop: stop.clone(), busy: free };
        if let Some(old) = inner.runs.insert(run.run_id.clone(), entry) {
            inner.forget(&old);
        }
        if free {
            inner.busy += 1;
            return Some((run, stop));
        }
        // Why by priority: a run of higher priority that waits on this node would have been
        // claimed first from the queue; it starts first here too.
        inner.arrivals += 1;
        let key = (std::cmp::Reverse(run.priority), inner.arrivals);
        inner.waiting.insert(key, Waiting { run, stop, since: std::time::Instant::now() });
        None
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
    /// to the first run waiting for one, if any: returned to start now.
    pub(crate) fn handler_done(&self, run_id: &str, stop: &Stop) -> Option<(Run, Stop)> {
        let mut inner = self.lock();
        let was_busy =
            inner.runs.get_mut(run_id).filter(|e| e.stop.same(stop)).is_some_and(|e| std::mem::replace(&mut e.busy, false));
        if was_busy {
            inner.busy = inner.busy.saturating_sub(1);
            inner.ended += 1;
        }
        let (_, Waiting { run, stop, .. }) = inner.waiting.pop_first()?;
        if let Some(e) = inner.runs.get_mut(&run.run_id) {
            e.busy = true;
        }
        inner.busy += 1;
        Some((run, stop))
    }

    /// Runs stored started here that wait for a slot.
    pub(crate) fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }

    /// Handlers that returned since the node started.
    pub(crate) fn ended(&self) -> u64 {
        self.lock().ended
    }

    /// Forgets the admission `stop` belongs to, once its end is written.
    pub(crate) fn remove(&self, run_id: &str, stop: &Stop) {
        let mut inner = self.lock();
        if !inner.runs.get(run_id).is_some_and(|e| e.stop.same(stop)) {
            return;
        }
        if let Some(e) = inner.runs.remove(run_id) {
            inner.forget(&e);
        }
    }

    /// The attempts whose handler is at work: the worker slots taken.
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
mod tests {
    use super::*;

    #[test]
    fn counts_per_function_and_stops_with_first_reason() {
        let f = InFlight::default();
        let s = f.insert("a", 1, "echo");
        let b = f.insert("b", 2, "echo");
        assert_eq!(f.running("echo"), 2);
        assert_eq!(f.running("other"), 0);
        assert!(f.stop("a", StopReason::Cancel));
        assert!(!f.stop("zzz", StopReason::Cancel));
        f.release_all();
        assert_eq!(s.reason(), StopReason::Cancel);
        assert!(s.token().is_cancelled());
        assert_eq!(f.busy(), 2);
        f.handler_done("a", &s);
        f.handler_done("a", &s);
        f.handler_done("ghost", &s);
        f.handler_done("b", &s);
        assert_eq!((f.busy(), f.len()), (1, 2), "a's slot is free, its lease still held; b is not a's");
        f.remove("a", &s);
        f.remove("a", &s);
        f.remove("b", &s);
        assert_eq!(f.running("echo"), 1);
        assert_eq!(f.busy(), 1, "removing a run whose handler returned frees nothing twice");
        assert_eq!(f.leases(), vec![("b".to_string(), 2)]);
        f.remove("b", &b);
        assert_eq!((f.busy(), f.len()), (0, 0));
    }

    fn run(id: &str, priority: i32) -> Run {
        Run {
            run_id: id.into(),
            function: "f".into(),
            status: plinth_core::RunStatus::Running,
            attempt: 1,
            max_attempts: 1,
            input: serde_json::Value::Null,
            output: None,
            error: None,
            created_at: 0,
            started_at: Some(0),
            finished_at: None,
            next_attempt_at: None,
            correlation_id: "c".into(),
            idempotency_key: None,
            trigger: plinth_core::Trigger::Api,
            waiting_for: None,
            priority,
            cancel_requested: false,
            attempts: None,
            flow_key: None,
            held_by: None,
            traceparent: None,
            tracestate: None,
        }
    }

    #[test]
    fn runs_waiting_here_start_by_priority_then_in_order() {
        let f = InFlight::default();
        let (_, first) = f.admit(run("busy", 0), 1).expect("the free slot");
        for (id, p) in [("a", 0), ("b", 5), ("c", 0), ("d", 5), ("e", -1)] {
            assert!(f.admit(run(id, p), 1).is_none(), "{id} waits: the slot is taken");
        }
        assert_eq!((f.busy(), f.waiting(), f.len()), (1, 5, 6));
        let mut order = Vec::new();
        let (mut done, mut stop) = ("busy".to_string(), first);
        while let Some((next, next_stop)) = f.handler_done(&done, &stop) {
            f.remove(&done, &stop);
            order.push(next.run_id.clone());
            (done, stop) = (next.run_id, next_stop);
        }
        assert_eq!(order, ["b", "d", "a", "c", "e"]);
        f.remove(&done, &stop);
        assert_eq!((f.busy(), f.waiting(), f.len()), (0, 0, 0));
    }

    #[test]
    fn only_runs_waiting_long_enough_are_taken_out() {
        let f = InFlight::default();
        let (_, busy) = f.admit(run("busy", 0), 1).expect("the free slot");
        assert!(f.take_overdue(std::time::Duration::ZERO).is_empty(), "nothing waits");
        assert!(f.admit(run("old", 0), 1).is_none());
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert!(f.admit(run("new", 0), 1).is_none());
        assert!(f.take_overdue(std::time::Duration::from_secs(60)).is_empty(), "none waited a minute");
        let taken: Vec<String> =
            f.take_overdue(std::time::Duration::from_millis(20)).into_iter().map(|(r, _)| r.run_id).collect();
        assert_eq!(taken, ["old"]);
        assert_eq!(f.waiting(), 1, "the newer run still waits");
        assert_eq!(f.len(), 3, "the run taken out keeps its lease until its end is written");
        let (next, _) = f.handler_done("busy", &busy).expect("the newer run gets the slot");
        assert_eq!(next.run_id, "new");
    }

    #[test]
    fn an_old_admission_leaves_a_new_one_of_the_same_run_alone() {
        let f = InFlight::default();
        let (_, busy) = f.admit(run("busy", 0), 1).expect("the free slot");
        assert!(f.admit(run("r", 0), 1).is_none(), "r waits");
        let (_, old) = f.take_overdue(std::time::Duration::ZERO).pop().expect("r given back");
        // r is claimed again by this node before the give-back's task forgets it.
        f.handler_done("busy", &busy);
        f.remove("busy", &busy);
        let (_, new) = f.admit(run("r", 0), 1).expect("r starts on the free slot");
        f.remove("r", &old);
        assert_eq!((f.len(), f.busy(), f.leases()), (1, 1, vec![("r".to_string(), 1)]), "the new admission stays");
        assert_eq!(f.running("f"), 1, "r counted once, busy's count gone");
        assert!(f.handler_done("r", &old).is_none());
        assert_eq!(f.busy(), 1, "the old admission frees no slot of the new one");
        f.handler_done("r", &new);
        f.remove("r", &new);
        assert_eq!((f.len(), f.busy()), (0, 0));
    }
}
