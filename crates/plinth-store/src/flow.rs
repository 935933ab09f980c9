//! The flow-control types the store shares with the engine and the API: each function's rules
//! as the claim applies them, the state of a lane (a key), the queue figures the metrics read,
//! and the upkeep of the lanes.

/// The rules of one function that the claim enforces per lane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowLimit {
    /// At most this many runs of a lane running at once.
    pub concurrency: Option<u32>,
    /// At most so many starts of a lane per period.
    pub throttle: Option<plinth_core::flow::Gcra>,
}

impl FlowLimit {
    /// The limits of `policy`, or none when it has no flow control.
    #[must_use]
    pub fn of(policy: &plinth_core::RunPolicy) -> Option<Self> {
        let limit = Self {
            concurrency: policy.concurrency.as_ref().map(plinth_core::flow::Concurrency::limit),
            throttle: policy.throttle.as_ref().map(plinth_core::flow::Throttle::gcra),
        };
        (limit != Self::default()).then_some(limit)
    }

    /// How far a lane's running and due runs need counting to tell how many of its due runs
    /// these rules let start now: the concurrency limit, else the throttle's burst.
    #[must_use]
    pub fn cap(&self) -> u32 {
        self.concurrency.or(self.throttle.map(|g| g.burst)).unwrap_or(1).max(1)
    }
}

pub use plinth_core::flow::AHEAD_COUNTED;

/// The state of one lane, as a queued run in it sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lane {
    /// Runs of the lane executing now.
    pub running: u32,
    /// Queued runs of the lane that come before this one, counted up to [`AHEAD_COUNTED`]:
    /// that figure means at least as many.
    pub ahead: u64,
    /// The lane's throttle time (see [`plinth_core::flow::Gcra`]; 0 never throttled).
    pub tat: i64,
}

/// One lane with open work (`GET /functions/{name}/keys`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct LaneLoad {
    /// The key (`""`: the function's shared lane).
    pub key: String,
    /// Queued runs.
    pub queued: u64,
    /// Running runs.
    pub running: u64,
    /// Runs waiting in a step (sleep, event, child run).
    pub waiting: u64,
    /// When its oldest queued run was created (micros), if any is queued.
    #[serde(skip)]
    pub oldest_queued_at: Option<i64>,
}

/// One lane with open work as the held-runs gauges see it, its counts bounded
/// ([`crate::Store::lane_room`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneRoom {
    /// The key (`""`: the function's shared lane).
    pub key: String,
    /// Running runs, up to the cap asked for.
    pub running: u64,
    /// Queued runs due at the `now` asked about, up to the cap asked for.
    pub due: u64,
    /// The lane's throttle time (0 never throttled).
    pub tat: i64,
}

/// The queue of one function, for the metrics and the overview. `queued` is exact (kept as runs
/// change, never counted); `due` and `not_due` are counted from the queue index, each up to a
/// bound, so reading them costs the same with 100 runs queued or 10,000,000.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    /// The function.
    pub function: String,
    /// Queued runs.
    pub queued: i64,
    /// Queued runs whose time has come.
    pub due: i64,
    /// Queued runs whose time has not come (a delay, a retry's backoff).
    pub not_due: i64,
    /// The earliest time a queued run became due, when one is due.
    pub oldest_due_at: Option<i64>,
}

impl QueueStats {
    /// The stats of `function` from its exact `queued` count and its due runs counted up to
    /// `bound` (`due_counted`) and, when those reached it, the others counted up to `bound` too
    /// (`not_due_counted`, not needed otherwise). When both reach it, each is `bound` and means
    /// "`bound` or more".
    #[must_use]
    pub fn split(
        function: String,
        queued: i64,
        bound: i64,
        due_counted: i64,
        not_due_counted: Option<i64>,
        oldest_due_at: Option<i64>,
    ) -> Self {
        let (due, not_due) = if due_counted < bound {
            (due_counted, (queued - due_counted).max(0))
        } else {
            match not_due_counted.unwrap_or(bound) {
                n if n < bound => ((queued - n).max(bound), n),
                _ => (bound, bound),
            }
        };
        Self { function, queued, due, not_due, oldest_due_at }
    }

    /// The stats of `function` from its exact `queued` count and its not-due runs counted up to
    /// `bound` (`not_due_counted`) and, when those reached it, the due ones counted up to
    /// `bound` too: [`QueueStats::split`] with the sides the other way round. Why the stores
    /// count this side first: a backlog is due runs, and counting 1,000 of them on every scrape
    /// of `/metrics` made it 1.6 times as slow on SQLite with 1,000,000 queued as on an empty
    /// store; runs held by a delay or a backoff are usually few, and counting none is a seek.
    #[must_use]
    pub fn split_scheduled_first(
        function: String,
        queued: i64,
        bound: i64,
        not_due_counted: i64,
        due_counted: Option<i64>,
        oldest_due_at: Option<i64>,
    ) -> Self {
        let other_way = Self::split(function, queued, bound, not_due_counted, due_counted, oldest_due_at);
        Self { due: other_way.not_due, not_due: other_way.due, ..other_way }
    }

    /// Whether `due` and `not_due` are exact (they add up to `queued`); when not, each is a bound
    /// the count stopped at.
    #[must_use]
    pub fn split_is_exact(&self) -> bool {
        self.due + self.not_due == self.queued
    }
}

/// Counts queued runs level by level up to a bound: [`LevelCount::next`] names the next
/// priority level to count and how many runs at most, [`LevelCount::add`] takes what was found.
/// Each store runs the counts; this keeps the walk the same for both.
#[derive(Debug)]
pub(crate) struct LevelCount<'a> {
    levels: std::slice::Iter<'a, (i64, i64)>,
    now: i64,
    bound: i64,
    due: bool,
    /// The runs counted so far.
    pub(crate) n: i64,
}

impl<'a> LevelCount<'a> {
    /// A count over `levels` (priority, due time of its first run), of the runs due at `now`
    /// (`due`) or of the others.
    pub(crate) fn new(levels: &'a [(i64, i64)], now: i64, bound: i64, due: bool) -> Self {
        Self { levels: levels.iter(), now, bound, due, n: 0 }
    }

    /// The next level to count and the most runs to count there; `None` once the bound is
    /// reached or every level counted. A level whose first run is not due has no due run.
    pub(crate) fn next(&mut self) -> Option<(i64, i64)> {
        if self.n >= self.bound {
            return None;
        }
        let (priority, _) = self.levels.by_ref().find(|(_, first_at)| !self.due || *first_at <= self.now)?;
        Some((*priority, self.bound - self.n))
    }

    /// Adds the runs found at the level [`LevelCount::next`] named.
    pub(crate) fn add(&mut self, found: i64) {
        self.n += found;
    }
}

/// Upkeep of the lanes table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowUpkeep {
    /// At start-up: put the open runs of `function` that have no lane in the shared lane
    /// (`limited`: it has a `concurrency` limit now), or take them out of their lanes (it has
    /// none now).
    Adopt {
        /// The function.
        function: String,
        /// Whether it has a `concurrency` limit.
        limited: bool,
        /// Now (micros).
        now: i64,
    },
    /// Forgets lanes untouched since `idle_before` (micros) that hold no open run.
    Forget {
        /// The cut-off.
        idle_before: i64,
    },
}

/// Why an event started no run of a function past its rate limit.
pub(crate) fn rate_reason(rate: &plinth_core::flow::RateCheck, wait: i64) -> String {
    let limit = rate.limit;
    #[allow(clippy::cast_precision_loss)]
    let secs = wait as f64 / 1e6;
    format!("its rate_limit ({limit} runs per period) is reached for key {:?}; the window ends in {secs:.3}s", rate.key)
}

/// Why an event started no run of a singleton function whose key has one.
pub(crate) fn singleton_reason(key: &str, holder: &str) -> String {
    format!("its singleton key {key:?} has an unfinished run, {holder}")
}

#[cfg(test)]
mod tests {
    use super::{LevelCount, QueueStats};

    #[test]
    fn a_level_count_skips_levels_with_nothing_due_and_stops_at_the_bound() {
        let levels = [(5, 10), (0, 30), (-1, 5)];
        let mut due = LevelCount::new(&levels, 20, 10, true);
        assert_eq!(due.next(), Some((5, 10)));
        due.add(4);
        assert_eq!(due.next(), Some((-1, 6)), "level 0 has nothing due at 20");
        due.add(6);
        assert_eq!((due.next(), due.n), (None, 10), "the bound is reached");
        let mut later = LevelCount::new(&levels, 20, 10, false);
        assert_eq!(
            [later.next(), later.next(), later.next(), later.next()],
            [Some((5, 10)), Some((0, 10)), Some((-1, 10)), None]
        );
        assert_eq!(LevelCount::new(&[], 20, 10, true).next(), None, "no level, nothing to count");
    }

    #[test]
    fn a_split_past_the_bound_on_both_sides_is_not_exact() {
        let exact = QueueStats::split("f".into(), 12, 10, 4, None, Some(1));
        assert_eq!((exact.due, exact.not_due, exact.split_is_exact()), (4, 8, true));
        let other_side = QueueStats::split("f".into(), 12, 10, 10, Some(2), None);
        assert_eq!((other_side.due, other_side.not_due, other_side.split_is_exact()), (10, 2, true));
        let both = QueueStats::split("f".into(), 30, 10, 10, Some(10), None);
        assert_eq!((both.due, both.not_due, both.split_is_exact()), (10, 10, false));
    }

    #[test]
    fn a_split_counted_from_the_scheduled_side_gives_the_same_figures() {
        let backlog = QueueStats::split_scheduled_first("f".into(), 1_000_000, 1_000, 0, None, Some(7));
        assert_eq!((backlog.due, backlog.not_due, backlog.split_is_exact()), (1_000_000, 0, true), "a backlog: one seek");
        assert_eq!(backlog.oldest_due_at, Some(7));
        let delayed = QueueStats::split_scheduled_first("f".into(), 12, 10, 10, Some(2), None);
        assert_eq!((delayed.due, delayed.not_due, delayed.split_is_exact()), (2, 10, true), "many delayed: the due side counted");
        let both = QueueStats::split_scheduled_first("f".into(), 30, 10, 10, Some(10), None);
        assert_eq!((both.due, both.not_due, both.split_is_exact()), (10, 10, false), "both past the bound");
        let none = QueueStats::split_scheduled_first("f".into(), 9, 0, 0, Some(0), None);
        assert_eq!((none.due, none.not_due, none.split_is_exact()), (0, 0, false), "a bound of 0 counts nothing");
    }
}
