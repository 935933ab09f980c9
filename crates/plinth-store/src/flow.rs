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
    /// Queued runs whose time has come (`next_attempt_at` at or before the `now` asked about).
    #[serde(skip)]
    pub due: u64,
    /// The lane's throttle time (0 never throttled).
    #[serde(skip)]
    pub tat: i64,
}

/// The queue of one function, for the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    /// The function.
    pub function: String,
    /// Queued runs.
    pub queued: i64,
    /// Queued runs whose time has not come (a delay, a retry's backoff).
    pub not_due: i64,
    /// The earliest time a queued run became due, when one is due.
    pub oldest_due_at: Option<i64>,
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
