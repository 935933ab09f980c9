//! Wake-ups: waiters for a run's terminal state, cancel requests, and new work for the
//! dispatcher. A store fires them for its own commits; a store shared by several nodes also
//! fires them for what it hears of the others' (PostgreSQL's LISTEN/NOTIFY).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, broadcast, oneshot};

/// Wakes long-polls when runs finish, workers when a cancel is asked, and the dispatcher
/// when work may be waiting.
#[derive(Debug)]
pub struct Notifier {
    waiters: Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>,
    cancels: broadcast::Sender<String>,
    ended: broadcast::Sender<String>,
    work: Arc<Notify>,
    asked: Arc<Notify>,
}

impl Default for Notifier {
    fn default() -> Self {
        Self {
            waiters: Mutex::new(HashMap::new()),
            cancels: broadcast::channel(1024).0,
            ended: broadcast::channel(4096).0,
            work: Arc::new(Notify::new()),
            asked: Arc::new(Notify::new()),
        }
    }
}

impl Notifier {
    /// The dispatcher's wake-up: notified when runs may be due (an enqueue here or on
    /// another node, a retry, a rescue). A wake-up sent while nobody waits is kept.
    #[must_use]
    pub fn work(&self) -> Arc<Notify> {
        self.work.clone()
    }

    /// Says that wake-ups may have been missed: wakes the dispatcher and every waiter, which
    /// read the store again.
    pub fn resync(&self) {
        self.work.notify_one();
        self.recheck();
    }

    /// Wakes every waiter, which reads its run again.
    pub fn recheck(&self) {
        let mut map = self.waiters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (_, list) in map.drain() {
            for s in list {
                let _ = s.send(());
            }
        }
    }

    /// A receiver that fires when `run_id` reaches a terminal state. Register before reading
    /// the run, so a finish between the read and the wait is not missed.
    pub fn wait_terminal(&self, run_id: &str) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut map = self.waiters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = map.entry(run_id.to_string()).or_default();
        // Why: waiters that timed out leave closed senders behind; drop them as we pass.
        list.retain(|s| !s.is_closed());
        list.push(tx);
        drop(map);
        self.asked.notify_one();
        rx
    }

    /// Notified when a waiter is registered: a store shared by several nodes asks the others to
    /// announce their ends while some waiter here waits ([`Notifier::prune_closed`]).
    #[must_use]
    pub fn asked(&self) -> Arc<Notify> {
        self.asked.clone()
    }

    /// Drops the closed waiters of `run_id` (after a long-poll timed out).
    pub fn forget_closed(&self, run_id: &str) {
        let mut map = self.waiters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(list) = map.get_mut(run_id) {
            list.retain(|s| !s.is_closed());
            if list.is_empty() {
                map.remove(run_id);
            }
        }
    }

    /// Tells the waiters of these runs that they reached a terminal state.
    pub fn terminal<'a>(&self, run_ids: impl IntoIterator<Item = &'a str>) {
        let mut map = self.waiters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.is_empty() {
            return;
        }
        for id in run_ids {
            if let Some(list) = map.remove(id) {
                for s in list {
                    let _ = s.send(());
                }
            }
        }
    }

    /// Drops every waiter that stopped waiting (a request that returned or timed out, whether or
    /// not it called [`Notifier::forget_closed`]); how many runs still have a waiter.
    pub fn prune_closed(&self) -> usize {
        let mut map = self.waiters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, list| {
            list.retain(|s| !s.is_closed());
            !list.is_empty()
        });
        map.len()
    }

    /// How many runs have waiters (for tests and leak checks).
    #[must_use]
    pub fn waiting(&self) -> usize {
        self.waiters.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    /// Tells the waiters of these runs that they ended, and announces each to [`Notifier::ended`]:
    /// for ends this node's store committed (not the ones heard of from other nodes).
    pub fn ended_here<'a>(&self, run_ids: impl IntoIterator<Item = &'a str> + Clone) {
        self.terminal(run_ids.clone());
        if self.ended.receiver_count() > 0 {
            for id in run_ids {
                let _ = self.ended.send(id.to_string());
            }
        }
    }

    /// Subscribes to the ends this node's store commits (each run once, on the node that ended
    /// it). A receiver that falls more than 4,096 ends behind misses some (`Lagged`).
    #[must_use]
    pub fn ended(&self) -> broadcast::Receiver<String> {
        self.ended.subscribe()
    }

    /// Subscribes to cancel requests for running runs.
    #[must_use]
    pub fn cancels(&self) -> broadcast::Receiver<String> {
        self.cancels.subscribe()
    }

    /// Announces a cancel request.
    pub fn cancel(&self, run_id: &str) {
        let _ = self.cancels.send(run_id.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_waiters_of_finished_runs_only() {
        let n = Notifier::default();
        let a = n.wait_terminal("a");
        let mut b = n.wait_terminal("b");
        n.terminal(["a"]);
        assert!(a.await.is_ok());
        assert!(b.try_recv().is_err());
        assert_eq!(n.waiting(), 1);
    }

    #[tokio::test]
    async fn forgets_timed_out_waiters() {
        let n = Notifier::default();
        drop(n.wait_terminal("x"));
        n.forget_closed("x");
        assert_eq!(n.waiting(), 0);
        n.forget_closed("never");
        n.terminal(["x"]);
    }

    #[tokio::test]
    async fn pruning_drops_the_waiters_that_stopped_waiting_only() {
        let n = Notifier::default();
        assert_eq!(n.prune_closed(), 0, "nobody waits");
        drop(n.wait_terminal("gone"));
        let _kept = n.wait_terminal("kept");
        let _also = n.wait_terminal("kept");
        drop(n.wait_terminal("kept"));
        assert_eq!(n.waiting(), 2, "a waiter that stopped stays until pruned");
        assert_eq!(n.prune_closed(), 1, "only the run with an open waiter is left");
        assert_eq!(n.waiting(), 1);
    }

    #[tokio::test]
    async fn resync_wakes_every_waiter_and_the_dispatcher() {
        let n = Notifier::default();
        let a = n.wait_terminal("a");
        let b = n.wait_terminal("b");
        n.resync();
        assert!(a.await.is_ok() && b.await.is_ok());
        assert_eq!(n.waiting(), 0);
        // The dispatcher's wake-up is kept until someone waits for it.
        tokio::time::timeout(std::time::Duration::from_secs(1), n.work().notified()).await.expect("work wake-up kept");
    }

    #[tokio::test]
    async fn a_new_waiter_is_told_and_a_recheck_wakes_the_waiters_only() {
        let n = Notifier::default();
        let asked = n.asked();
        let a = n.wait_terminal("a");
        tokio::time::timeout(std::time::Duration::from_secs(1), asked.notified()).await.expect("the waiter is told");
        n.recheck();
        assert!(a.await.is_ok(), "woken to read again");
        assert_eq!(n.waiting(), 0);
        let quiet = tokio::time::timeout(std::time::Duration::from_millis(50), n.work().notified()).await;
        assert!(quiet.is_err(), "a recheck does not wake the dispatcher");
        n.recheck();
        assert_eq!(n.waiting(), 0, "a recheck with nobody waiting is harmless");
    }

    #[tokio::test]
    async fn ends_committed_here_are_announced_once() {
        let n = Notifier::default();
        n.ended_here(["nobody-listens"]);
        let mut rx = n.ended();
        let waiter = n.wait_terminal("a");
        n.ended_here(["a", "b"]);
        assert!(waiter.await.is_ok(), "waiters are woken too");
        assert_eq!(rx.recv().await.expect("a"), "a");
        assert_eq!(rx.recv().await.expect("b"), "b");
        n.terminal(["c"]);
        assert!(rx.try_recv().is_err(), "ends heard of from other nodes are not announced");
    }

    #[tokio::test]
    async fn broadcasts_cancels() {
        let n = Notifier::default();
        let mut rx = n.cancels();
        n.cancel("r1");
        assert_eq!(rx.recv().await.ok().as_deref(), Some("r1"));
    }
}
