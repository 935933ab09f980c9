//! Whether the other nodes want to hear of this node's ends (decision 0045).
//!
//! An end is announced to the other nodes only so that a long-poll there returns at once; with
//! nobody waiting there, the notice was pure cost (every run's id through `pg_notify`, the
//! queue, every listener and back). A node where a waiter waits says so (`i`) when the first
//! one registers and again every [`REFRESH`] while any waits; a node that hears it announces its
//! ends for [`KEPT`]. A node that starts announcing answers `a`, and the asking node's waiters
//! read their runs again: an end committed before the announcing began is then seen, so no
//! wake-up is lost in between.

use super::events::Events;
use crate::Notifier;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a node with waiters says so again.
pub(crate) const REFRESH: Duration = Duration::from_secs(1);

/// How long a node announces its ends after it last heard that another node waits: three
/// refreshes, so one late or lost refresh does not stop the announcing.
pub(crate) const KEPT: Duration = Duration::from_secs(3);

/// Until when the other nodes want this node's ends.
#[derive(Debug)]
pub(crate) struct Wanted {
    born: Instant,
    /// Milliseconds after `born`, plus one; 0 until a node first asks.
    until: AtomicU64,
}

impl Wanted {
    pub(crate) fn new() -> Self {
        Self { born: Instant::now(), until: AtomicU64::new(0) }
    }

    fn tick(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.born).as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Whether an end at `now` is to be announced.
    pub(crate) fn at(&self, now: Instant) -> bool {
        // Why sequentially consistent: an end that read "not wanted" must come before the
        // moment it became wanted, which the `a` answer then follows (see the module's note).
        self.until.load(Ordering::SeqCst) > self.tick(now)
    }

    /// Another node asked at `now`; true when ends were not announced just before, so the
    /// asker is to be told to read its runs again.
    pub(crate) fn asked(&self, now: Instant) -> bool {
        let tick = self.tick(now);
        let until = tick.saturating_add(u64::try_from(KEPT.as_millis()).unwrap_or(u64::MAX));
        self.until.fetch_max(until, Ordering::SeqCst) <= tick
    }
}

/// Says that this node waits for ends, at once when a waiter registers and every [`REFRESH`]
/// while any waits, until the store is dropped.
pub(crate) async fn ask_loop(events: Arc<Events>, notifier: Arc<Notifier>) {
    let asked = notifier.asked();
    loop {
        asked.notified().await;
        // Why pruned: a waiter whose request ended without forgetting it (an error, a run not
        // found) would otherwise keep this node asking, and every other node announcing.
        while notifier.prune_closed() > 0 {
            events.ask();
            tokio::time::sleep(REFRESH).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_are_wanted_only_for_a_while_after_a_node_asks() {
        let w = Wanted::new();
        let t0 = Instant::now();
        assert!(!w.at(t0), "nobody asked yet");
        assert!(w.asked(t0), "the first ask starts the announcing");
        assert!(w.at(t0) && w.at(t0 + KEPT - Duration::from_millis(2)));
        assert!(!w.asked(t0 + REFRESH), "a refresh while announcing does not start it again");
        assert!(w.at(t0 + REFRESH + KEPT - Duration::from_millis(2)), "a refresh extends it");
        assert!(!w.at(t0 + REFRESH + KEPT), "then it lapses");
        assert!(w.asked(t0 + REFRESH + KEPT + Duration::from_secs(1)), "an ask after the lapse starts it again");
    }

    #[test]
    fn a_late_ask_never_shortens_the_announcing() {
        let w = Wanted::new();
        let t0 = Instant::now() + Duration::from_secs(10);
        assert!(w.asked(t0));
        assert!(!w.asked(t0 - Duration::from_secs(2)), "an ask stamped earlier");
        assert!(w.at(t0 + KEPT - Duration::from_millis(2)), "kept as long as the later ask said");
        assert!(!w.at(t0 + KEPT + Duration::from_secs(1)));
    }

    #[tokio::test]
    async fn a_waiter_makes_the_node_ask_until_none_waits() {
        let events = Arc::new(Events::new("s"));
        let notifier = Arc::new(Notifier::default());
        let task = tokio::spawn(ask_loop(events.clone(), notifier.clone()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(events.take().is_empty(), "no waiter, no ask");
        let waiter = notifier.wait_terminal("r1");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(events.take(), vec![format!("i {}", events.node)], "asked once the waiter registered");
        tokio::time::sleep(REFRESH + Duration::from_millis(400)).await;
        assert_eq!(events.take(), vec![format!("i {}", events.node)], "asked again while the waiter waits");
        drop(waiter);
        tokio::time::sleep(REFRESH + Duration::from_millis(400)).await;
        assert!(events.take().is_empty(), "no refresh once nobody waits, though the waiter was never forgotten");
        assert_eq!(notifier.waiting(), 0, "and the closed waiter is gone");
        task.abort();
    }
}
