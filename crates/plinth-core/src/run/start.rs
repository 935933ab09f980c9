//! Starting a run the moment it is stored (decision 0019): the accepting node writes the run
//! already leased to itself with its first attempt begun, so the run costs one write fewer
//! (no claim) and its first attempt starts without a round trip through the queue.

use super::{NewRun, Run, RunStatus};

/// The lease a run is stored with when the node that accepts it starts it at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartNow {
    /// The node's lease owner id.
    pub owner: String,
    /// When its first attempt starts (micros).
    pub started_at: i64,
    /// When the lease runs out unless renewed (micros).
    pub lease_until: i64,
}

impl NewRun {
    /// Whether this run may skip the queue: due now, and nothing the store must decide before
    /// it may exist (a queue limit, a rate limit, a debounce, a singleton key, a batch), nor a
    /// lane other than a `concurrency` limit alone (a throttle's lane is decided by claims).
    /// Those runs are queued as before. An idempotency key does not stop it (decision 0027): a
    /// run whose key is held is not stored at all, and the store answers the replay instead,
    /// which gives the node's reservation back. Nor does a lane with its
    /// [limit](NewRun::lane_limit) (decision 0034): the store starts such a run only while its
    /// lane has room and no due run waits in it, and stores it queued otherwise, which gives
    /// the reservation back too.
    #[must_use]
    pub fn may_start_at_once(&self, now: i64) -> bool {
        self.not_before <= now
            && !self.needs_lookups()
            && (self.flow_key.is_none() || self.lane_limit.is_some())
            && self.batch.is_none()
    }

    /// Whether the store must look at the run's lane before it stores it started: a run of a
    /// `concurrency` lane that the accepting node wants to start at once.
    #[must_use]
    pub fn starts_in_lane(&self) -> Option<(&str, u32)> {
        match (&self.start, &self.flow_key, self.lane_limit) {
            (Some(_), Some(key), Some(limit)) => Some((key.as_str(), limit)),
            _ => None,
        }
    }

    /// Whether the store must read other runs before this one may exist: a queue limit, a rate
    /// limit, a debounce or a singleton key. Such a run is stored on its own; the others may
    /// share a write with runs submitted at the same moment. An idempotency key is no look-up:
    /// the key's unique index decides, in the same write, whether the run is new or a replay.
    #[must_use]
    pub fn needs_lookups(&self) -> bool {
        self.max_queued.is_some() || self.rate.is_some() || self.debounce.is_some() || self.singleton.is_some()
    }

    /// The run as it stands once stored with [`NewRun::start`] set: running, its first attempt
    /// begun; queued as [`NewRun::into_queued`] without it.
    #[must_use]
    pub fn into_stored(self) -> Run {
        let start = self.start.clone();
        let run = self.into_queued();
        match start {
            Some(s) => {
                Run { status: RunStatus::Running, attempt: 1, started_at: Some(s.started_at), next_attempt_at: None, ..run }
            }
            None => run,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Trigger;
    use crate::component::{Component, FunctionSpec};

    const FILE: &str = "component: {name: c, version: 1.0.0, owner: t, description: d}\nfunctions:\n  \
        - {name: echo, handler: {rust: echo}}\n  - {name: lim, handler: {rust: echo}, policy: {concurrency: 2}}\n  \
        - {name: thr, handler: {rust: echo}, policy: {concurrency: 2, throttle: {limit: 1, period: 1s}}}\n";

    fn function(name: &str) -> FunctionSpec {
        let c = Component::parse(FILE, "c.yaml", "c.yaml".into(), ".".into()).expect("component");
        c.function(name).expect("function").1.clone()
    }

    fn plain() -> NewRun {
        NewRun::of(&function("echo"), serde_json::json!({"a": 1}), Trigger::Api, "c1", 1_000)
    }

    #[test]
    fn a_plain_due_run_may_start_and_is_stored_running() {
        let mut run = plain();
        assert!(run.may_start_at_once(1_000));
        run.start = Some(StartNow { owner: "node-a".into(), started_at: 1_005, lease_until: 31_000 });
        let stored = run.clone().into_stored();
        assert_eq!(stored.status, RunStatus::Running);
        assert_eq!(stored.attempt, 1);
        assert_eq!(stored.started_at, Some(1_005));
        assert_eq!(stored.next_attempt_at, None);
        assert_eq!(stored.run_id, run.run_id);
        // Without a lease the same run is stored queued.
        run.start = None;
        let queued = run.into_stored();
        assert_eq!((queued.status, queued.attempt, queued.next_attempt_at), (RunStatus::Queued, 0, Some(1_000)));
    }

    #[test]
    fn a_delayed_run_waits_for_the_queue() {
        let mut run = plain();
        run.not_before = 2_000;
        assert!(!run.may_start_at_once(1_999));
        assert!(run.may_start_at_once(2_000), "due exactly now is due");
    }

    #[test]
    fn runs_the_store_must_decide_on_are_queued() {
        let keyed = NewRun { idempotency_key: Some("k".into()), ..plain() };
        assert!(keyed.may_start_at_once(1_000), "a keyed run may start: a held key stores nothing");
        let keyed_capped = NewRun { max_queued: Some(10), ..keyed };
        assert!(!keyed_capped.may_start_at_once(1_000), "the queue limit still decides");
        let capped = NewRun { max_queued: Some(10), ..plain() };
        assert!(!capped.may_start_at_once(1_000));
        let laned = NewRun::of(&function("lim"), serde_json::json!({}), Trigger::Api, "c1", 1_000);
        assert!(laned.flow_key.is_some());
        assert_eq!(laned.lane_limit, Some(2));
        assert!(laned.may_start_at_once(1_000), "a concurrency lane alone: the store decides when it stores the run");
        assert!(!laned.needs_lookups());
        assert_eq!(laned.starts_in_lane(), None, "not started, nothing to decide");
        let starting = NewRun { start: Some(StartNow { owner: "a".into(), started_at: 1, lease_until: 2 }), ..laned.clone() };
        assert_eq!(starting.starts_in_lane(), Some(("", 2)));
        // A lane without its limit (a throttle's) is the claim's to decide.
        let throttled = NewRun { lane_limit: None, ..laned };
        assert!(!throttled.may_start_at_once(1_000));
        let throttled = NewRun::of(&function("thr"), serde_json::json!({}), Trigger::Api, "c1", 1_000);
        assert_eq!((throttled.flow_key.as_deref(), throttled.lane_limit), (Some(""), None));
        assert!(!throttled.may_start_at_once(1_000));
    }

    #[test]
    fn only_runs_that_read_other_runs_need_lookups() {
        assert!(!plain().needs_lookups());
        let delayed = NewRun { not_before: 9_000, ..plain() };
        assert!(!delayed.needs_lookups(), "a delay is no look-up");
        assert!(!NewRun { idempotency_key: Some("k".into()), ..plain() }.needs_lookups(), "the key's index decides");
        assert!(NewRun { max_queued: Some(1), ..plain() }.needs_lookups());
    }
}
