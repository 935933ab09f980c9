//! A step function's session gives up its worker slot while it writes a step, and waits for
//! one again before its next call (decision 0040). Why: the write waits for a batch's commit
//! (a flush of the disk, milliseconds), and a slot held through it was a slot no handler
//! used; with the write away from the slot, the node's handlers stay busy while the steps
//! are stored, and the batches grow with the sessions writing.

use super::{InFlight, Inner, Stop, Waiting};
use plinth_core::Run;
use tokio::sync::oneshot;

/// A session back from a step's write, waiting for a slot.
pub(super) struct Resuming {
    run_id: String,
    stop: Stop,
    /// Told when the slot is its own.
    go: oneshot::Sender<()>,
}

impl Inner {
    /// Gives a slot that just freed to the first session back from a step's write whose task
    /// still waits, else to the first run waiting here: that run is returned to start now.
    /// Why sessions first: each holds a run half done, and its steps so far.
    pub(super) fn hand_over(&mut self) -> Option<(Run, Stop)> {
        if self.serve_resuming() {
            return None;
        }
        let (_, Waiting { run, stop, .. }) = self.waiting.pop_first()?;
        if let Some(e) = self.runs.get_mut(&run.run_id) {
            e.busy = true;
        }
        self.busy += 1;
        Some((run, stop))
    }

    /// Gives a slot to the first session back from a step's write that still waits for one;
    /// false when none does (those whose task stopped waiting are dropped on the way).
    fn serve_resuming(&mut self) -> bool {
        while let Some(r) = self.resuming.pop_front() {
            let Some(e) = self.runs.get_mut(&r.run_id).filter(|e| e.stop.same(&r.stop) && !e.busy) else { continue };
            if r.go.send(()).is_ok() {
                e.busy = true;
                self.busy += 1;
                return true;
            }
        }
        false
    }
}

impl InFlight {
    /// The session of `run_id` gives up its slot to write a step. The slot goes on as when a
    /// handler returns; a run it lets start is returned. Nothing changes for an admission that
    /// is not this one or holds no slot.
    pub(crate) fn step_away(&self, run_id: &str, stop: &Stop) -> Option<(Run, Stop)> {
        let mut inner = self.lock();
        let e = inner.runs.get_mut(run_id).filter(|e| e.stop.same(stop) && e.busy)?;
        e.busy = false;
        e.away = true;
        inner.busy = inner.busy.saturating_sub(1);
        inner.away += 1;
        inner.hand_over()
    }

    /// The session of `run_id`, its step written, takes a slot again: at once while fewer than
    /// `workers` handlers are at work (`None`), else it waits behind the sessions back before
    /// it until a slot frees (the receiver is told then). A session that is not away (its
    /// admission gone, or another one's) gets `None` and takes nothing.
    pub(crate) fn come_back(&self, run_id: &str, stop: &Stop, workers: usize) -> Option<oneshot::Receiver<()>> {
        let mut inner = self.lock();
        // Why: a slot free while sessions wait means those sessions stopped waiting (their
        // tasks ended); the ones still waiting are served first, in order.
        while inner.busy < workers && !inner.resuming.is_empty() {
            inner.serve_resuming();
        }
        let free = inner.busy < workers;
        let e = inner.runs.get_mut(run_id).filter(|e| e.stop.same(stop) && e.away)?;
        e.away = false;
        e.busy = free;
        inner.away = inner.away.saturating_sub(1);
        if free {
            inner.busy += 1;
            return None;
        }
        let (go, wait) = oneshot::channel();
        inner.resuming.push_back(Resuming { run_id: run_id.to_string(), stop: stop.clone(), go });
        Some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::run;
    use super::*;

    #[test]
    fn a_session_writing_a_step_frees_its_slot_and_comes_back_to_one() {
        let f = InFlight::default();
        let (_, a) = f.admit(run("a", 0), 1).expect("the free slot");
        let next = f.step_away("a", &a);
        assert!(next.is_none(), "no run waits here");
        let load = f.load();
        assert_eq!((load.busy, load.waiting, load.away, load.held()), (0, 0, 1, 1), "away, its lease held");
        assert_eq!(f.len(), 1);
        assert!(f.come_back("a", &a, 1).is_none(), "the slot is free: a takes it at once");
        assert_eq!(f.load(), super::super::Load { busy: 1, waiting: 0, away: 0, ending: 0 });
        f.handler_done("a", &a);
        f.remove("a", &a);
        assert_eq!(f.load().held(), 0);
        assert_eq!(f.ended(), 1);
    }

    #[test]
    fn the_freed_slot_starts_a_waiting_run_and_the_session_waits_behind_it() {
        let f = InFlight::default();
        let (_, a) = f.admit(run("a", 0), 1).expect("the free slot");
        assert!(f.admit(run("b", 0), 1).is_none(), "b waits: the slot is a's");
        let (b, b_stop) = f.step_away("a", &a).expect("a's write lets b start");
        assert_eq!(b.run_id, "b");
        let mut back = f.come_back("a", &a, 1).expect("b holds the slot: a waits");
        assert_eq!(f.load(), super::super::Load { busy: 1, waiting: 1, away: 0, ending: 0 });
        assert!(back.try_recv().is_err(), "not told yet");
        assert!(f.handler_done("b", &b_stop).is_none(), "the slot goes to a, not to a new run");
        assert!(back.try_recv().is_ok(), "a is told the slot is its own");
        assert_eq!(f.load(), super::super::Load { busy: 1, waiting: 0, away: 0, ending: 1 });
    }

    #[test]
    fn sessions_back_come_before_runs_waiting_and_one_that_stopped_waiting_is_skipped() {
        let f = InFlight::default();
        let (_, a) = f.admit(run("a", 0), 2).expect("a free slot");
        let (_, c) = f.admit(run("c", 0), 2).expect("the other free slot");
        assert!(f.step_away("a", &a).is_none());
        assert!(f.step_away("c", &c).is_none());
        let (_, b) = f.admit(run("b", 0), 2).expect("a slot a freed");
        let (_, d) = f.admit(run("d", 0), 2).expect("the slot c freed");
        assert!(f.admit(run("e", 0), 2).is_none(), "e waits");
        let gone = f.come_back("a", &a, 2).expect("a waits");
        let mut c_back = f.come_back("c", &c, 2).expect("c waits behind a");
        drop(gone); // a's task stopped (a cancel) while it waited
        assert!(f.handler_done("b", &b).is_none(), "the slot goes to c, a being gone; e still waits");
        assert!(c_back.try_recv().is_ok());
        let (e, _) = f.handler_done("d", &d).expect("no session waits now: e starts");
        assert_eq!(e.run_id, "e");
    }

    #[test]
    fn a_stale_admission_and_a_session_not_away_take_nothing() {
        let f = InFlight::default();
        let (_, a) = f.admit(run("a", 0), 1).expect("the free slot");
        let other = Stop::default();
        assert!(f.step_away("a", &other).is_none());
        assert!(f.step_away("ghost", &a).is_none());
        assert_eq!(f.load().busy, 1, "a keeps its slot");
        assert!(f.come_back("a", &a, 1).is_none(), "a is not away");
        assert_eq!(f.load(), super::super::Load { busy: 1, waiting: 0, away: 0, ending: 0 }, "nothing counted twice");
        f.step_away("a", &a);
        f.remove("a", &a);
        assert_eq!(f.load().held(), 0, "a removed while away leaves no count behind");
        assert!(f.come_back("a", &a, 1).is_none(), "a is gone");
        assert_eq!(f.load().busy, 0);
    }

    #[test]
    fn a_session_that_ends_away_frees_no_slot_twice() {
        let f = InFlight::default();
        let (_, a) = f.admit(run("a", 0), 1).expect("the free slot");
        f.step_away("a", &a);
        let (_, b) = f.admit(run("b", 0), 1).expect("the slot a gave up");
        assert!(f.handler_done("a", &a).is_none(), "a's last step written, it ends without a slot");
        assert_eq!(f.load(), super::super::Load { busy: 1, waiting: 0, away: 0, ending: 1 }, "b's slot is still b's");
        f.remove("a", &a);
        f.handler_done("b", &b);
        f.remove("b", &b);
        assert_eq!((f.load().held(), f.ended()), (0, 2));
    }
}
