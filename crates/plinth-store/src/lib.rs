//! The durable run store: the [`Store`] trait every backend implements, the embedded SQLite
//! backend and the PostgreSQL backend.
//!
//! A backend owns its SQL and its migrations. The engine and the API talk to it only through
//! [`Store`], so one backend can stand in for another without either of them changing.

#[doc(hidden)]
pub mod conformance;
pub mod copies;
mod events;
mod expiry;
mod flow;
mod list;
mod notify;
mod pace;
pub mod postgres;
pub mod sqlite;
mod starter;
mod stats;
mod steps;
mod transition;
mod waitkey;

pub use events::{EventFilter, EventPage, Ingested, NewEvent, ScheduleState, Skipped, StoredEvent};
pub use expiry::Expired;
pub use flow::{AHEAD_COUNTED, FlowLimit, FlowUpkeep, Lane, LaneLoad, LaneRoom, QueueStats};
pub(crate) use flow::{rate_reason, singleton_reason};
pub use list::{InputEq, ListFilter, Page};
pub use notify::Notifier;
pub use pace::{ONE_WRITER, PrunePace};
pub use starter::{IngestStarted, Resume, Starter, ingest_starting};
pub use stats::{MinuteStat, NodeBeat, RunStats, bucket, bucket_middle, quantile};
pub use steps::FOREVER;

use async_trait::async_trait;
use plinth_core::run::Attempt;
use plinth_core::steps::Step;
use plinth_core::{Finish, NewRun, Run, RunError, RunStatus};
use std::time::Duration;

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The database cannot be reached, opened or written (down, read-only, disk full).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The idempotency key was used before with a different request.
    #[error("idempotency key already used for run {run_id} with a different request")]
    IdempotencyMismatch {
        /// The run the key belongs to.
        run_id: String,
    },
    /// The database holds a schema this version does not know, or an edited migration.
    #[error("database schema problem: {0}")]
    Schema(String),
    /// Data in the database could not be read back.
    #[error("corrupt data in the database: {0}")]
    Corrupt(String),
    /// The function's `rate_limit` allows no more runs of this key in the current window.
    #[error("`{function}` allows no more runs of key {key:?} until its rate limit window ends")]
    RateLimited {
        /// The function.
        function: String,
        /// The key.
        key: String,
        /// Micros until the window ends.
        retry_after: i64,
    },
    /// The function's `singleton` key (mode `skip`) already has an unfinished run.
    #[error("`{function}` allows one unfinished run per key and key {key:?} has one: run {run_id}")]
    SingletonBusy {
        /// The function.
        function: String,
        /// The key.
        key: String,
        /// The unfinished run.
        run_id: String,
    },
    /// The function's queue holds as many runs as its policy allows.
    #[error("the queue of `{function}` is full ({limit} runs waiting)")]
    QueueFull {
        /// The function.
        function: String,
        /// Its `policy.max_queued`.
        limit: u32,
    },
}

/// What a migration pass did (`plinth migrate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// Migrations applied now.
    pub applied: usize,
    /// The schema version the database is at now.
    pub version: i64,
}

/// The result of an enqueue.
#[derive(Debug, Clone, PartialEq)]
pub enum Enqueued {
    /// A new run, on disk.
    Created(Run),
    /// The run an earlier identical request with the same idempotency key created.
    Replayed(Run),
    /// The queued run of the same debounce key, its input replaced and its start moved on.
    Debounced(Run),
}

/// The result of a cancel.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// It was queued and is now cancelled.
    Cancelled(Run),
    /// It is running; its worker is asked to stop it.
    Requested(Run),
    /// It had already finished.
    AlreadyTerminal(Run),
    /// No such run.
    NotFound,
}

/// A claim: lease up to `n` due runs of each function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    /// Who takes the lease.
    pub owner: String,
    /// Now (micros).
    pub now: i64,
    /// When the lease runs out (micros).
    pub lease_until: i64,
    /// How many runs of each function, tried in this order.
    pub wants: Vec<(String, u32)>,
    /// The most runs in all (the node's free worker slots).
    pub limit: u32,
    /// The functions with flow control, and their rules per lane: their runs are taken lane by
    /// lane, round-robin, never more than the rules allow in one lane across nodes.
    pub limits: std::sync::Arc<std::collections::HashMap<String, FlowLimit>>,
}

/// What a claim took.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The runs now leased, status `running`, attempt incremented.
    pub runs: Vec<Run>,
    /// When the earliest still-queued run becomes due (micros), if any is queued.
    pub next_due: Option<i64>,
    /// When a run that a throttle holds back may start (micros), if one does.
    pub throttled_until: Option<i64>,
    /// Whether a function with flow limits asked for had due runs when the claim began: then
    /// an attempt of such a function that ends may free the lane they wait for, and wakes the
    /// dispatcher; otherwise no lane holds a due run back, and its end need not (decision 0034).
    pub lanes_due: bool,
}

/// An attempt's end, fenced by the lease owner and the attempt number.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishRequest {
    /// The run.
    pub run_id: String,
    /// The lease owner that ran it.
    pub owner: String,
    /// The attempt that ends.
    pub attempt: u32,
    /// How it ended.
    pub finish: Finish,
    /// When (micros).
    pub now: i64,
    /// How long it ran.
    pub duration: Duration,
}

/// The most runs one [`Store::adopt`] takes in; the rest wait for the next call.
pub const ADOPT_MOST: u32 = 1000;

/// A lease renewal's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Heartbeat {
    /// Runs whose lease this owner no longer holds.
    pub lost: Vec<String>,
    /// Runs a cancel was asked for.
    pub cancel: Vec<String>,
}

/// A run the rescuer took back from a dead worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rescued {
    /// The run.
    pub run_id: String,
    /// Its function.
    pub function: String,
    /// The attempt that was lost.
    pub attempt: u32,
    /// The worker that held it.
    pub owner: String,
    /// Where it went: `queued`, `failed` or `cancelled`.
    pub status: RunStatus,
}

/// A line a handler wrote to stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Its place within the attempt, from 0.
    pub seq: u32,
    /// When it was read (micros).
    pub ts: i64,
    /// The line (without its newline).
    pub line: String,
}

/// A stored log line with its attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The attempt.
    pub attempt: u32,
    /// The line.
    pub line: LogLine,
}

/// A durable run store.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes a new run; returns once it is on disk. A run with [`NewRun::start`] set that
    /// [may start at once](NewRun::may_start_at_once) is stored running, leased to that node
    /// with its first attempt begun; the answer's status tells which it was.
    async fn enqueue(&self, run: NewRun) -> Result<Enqueued, StoreError>;
    /// One run, with its attempts when asked.
    async fn get(&self, run_id: &str, with_attempts: bool) -> Result<Option<Run>, StoreError>;
    /// A page of runs, newest first.
    async fn list(&self, filter: ListFilter) -> Result<Page, StoreError>;
    /// Cancels a queued run, or asks the worker of a running one to stop it.
    async fn cancel(&self, run_id: &str, now: i64) -> Result<CancelOutcome, StoreError>;
    /// Leases due runs to `owner`.
    async fn claim(&self, req: ClaimRequest) -> Result<Claimed, StoreError>;
    /// Extends the leases of `runs` (id, attempt) held by `owner`.
    async fn heartbeat(&self, owner: &str, runs: Vec<(String, u32)>, lease_until: i64) -> Result<Heartbeat, StoreError>;
    /// Records an attempt's end; `false` when the lease was no longer this owner's.
    async fn finish(&self, req: FinishRequest) -> Result<bool, StoreError>;
    /// Appends stderr lines to an attempt's log.
    async fn append_logs(&self, run_id: &str, attempt: u32, lines: Vec<LogLine>) -> Result<(), StoreError>;
    /// A run's log lines, by attempt; `None` when the run does not exist.
    async fn logs(&self, run_id: &str) -> Result<Option<Vec<LogEntry>>, StoreError>;
    /// Takes back runs whose lease expired before `now`.
    async fn rescue(&self, now: i64) -> Result<Vec<Rescued>, StoreError>;
    /// Renews to `lease_until`, and returns, up to [`ADOPT_MOST`] runs leased to `owner`
    /// whose lease ends before `stale_before`: runs its node may not know it holds, because
    /// the answer of the write that leased them (a claim, a run stored started) was lost while
    /// the write committed. The node starts those it does not hold (decision 0026).
    async fn adopt(&self, owner: &str, stale_before: i64, lease_until: i64) -> Result<Vec<Run>, StoreError>;
    /// Forgets the idempotency keys of runs created before `keys_before`, then deletes up to
    /// `batch` runs that finished before `before` (micros), with their logs. A run whose key
    /// is still remembered is kept, so a retention shorter than the key window loses no key.
    async fn prune(&self, before: i64, keys_before: i64, batch: u32) -> Result<u64, StoreError>;
    /// Stores events and the runs they start, all in one transaction; an event whose id was
    /// received at or after `dedup_after` (micros) is not stored again and answers the first
    /// one's ids. A run whose function's queue is full (`max_queued`) is not stored: its event
    /// records it as skipped. Each new event ends the waits it matches; a woken run with no
    /// lane is stored running, leased to this node, on a slot `resume` reserves in the write,
    /// and `resume` starts it once the write is on disk (decision 0036); the others, and all
    /// of them with no `resume`, are queued.
    async fn ingest(&self, events: Vec<NewEvent>, dedup_after: i64, resume: Resume) -> Result<Vec<Ingested>, StoreError>;
    /// The newest event with this id.
    async fn event(&self, id: &str) -> Result<Option<StoredEvent>, StoreError>;
    /// A page of events, newest first.
    async fn events(&self, filter: EventFilter) -> Result<EventPage, StoreError>;
    /// Stops deduplicating ids received before `dedup_before`, then deletes up to `batch`
    /// events received before `before` (micros).
    async fn prune_events(&self, before: i64, dedup_before: i64, batch: u32) -> Result<u64, StoreError>;
    /// Fires a schedule's tick: stores `run` when `tick` is later than the function's last
    /// fired tick, in the same transaction that records it, so a tick fires once across all
    /// nodes and restarts. `None` when the tick had already fired.
    async fn fire_tick(&self, function: &str, tick: i64, run: NewRun) -> Result<Option<Run>, StoreError>;
    /// Every schedule's last fired tick.
    async fn schedules(&self) -> Result<Vec<ScheduleState>, StoreError>;
    /// A run's steps in the order they were first reached; `None` when the run does not exist.
    async fn steps(&self, run_id: &str) -> Result<Option<Vec<Step>>, StoreError>;
    /// Stores steps of a running attempt, fenced like [`Store::finish`]: `false` when the lease
    /// is no longer `owner`'s for `attempt`. Returns once they are on disk.
    async fn save_steps(&self, run_id: &str, owner: &str, attempt: u32, steps: Vec<Step>) -> Result<bool, StoreError>;
    /// Stores a new run together with steps it starts from (a rerun from a step).
    async fn enqueue_with_steps(&self, run: NewRun, steps: Vec<Step>) -> Result<Run, StoreError>;
    /// Queued runs per function.
    async fn queue_depth(&self) -> Result<Vec<(String, i64)>, StoreError>;
    /// The lane `key` of `function` as the queued run `run_id` sees it.
    async fn lane(&self, function: &str, key: &str, run_id: &str) -> Result<Lane, StoreError>;
    /// The lanes of `function` with open work, the most queued first.
    async fn lanes(&self, function: &str, limit: u32, offset: u64) -> Result<Vec<LaneLoad>, StoreError>;
    /// At most `keys` lanes of `function` with queued runs, by key, their running and due runs
    /// each counted up to `cap`: what the held-runs gauges need, at a cost that grows neither
    /// with the runs a lane holds (see [`FlowLimit::cap`]) nor with lanes holding none queued.
    async fn lane_room(&self, function: &str, cap: u32, keys: u32, now: i64) -> Result<Vec<LaneRoom>, StoreError>;
    /// Every function with runs queued, its queue at `now`: the due and not-due runs counted up
    /// to `bound` (see [`QueueStats`]).
    async fn queue_stats(&self, now: i64, bound: u64) -> Result<Vec<QueueStats>, StoreError>;
    /// Upkeep of the lanes; how many runs or lanes it changed.
    async fn flow_upkeep(&self, what: FlowUpkeep) -> Result<u64, StoreError>;
    /// Cancels the runs past their function's `timeouts` (PLINTH_046 for a queued run that never
    /// started, PLINTH_047 for any unfinished one; a running one is asked to stop), a bounded
    /// number a call.
    async fn expire(&self, now: i64) -> Result<Vec<Expired>, StoreError>;
    /// Adds the runs that ended up to `until` (micros) and since the last call to the
    /// per-minute statistics (an hour back at most), forgetting minutes older than a day; how
    /// many minute rows it wrote. Runs on the upkeep leader.
    async fn roll_up(&self, until: i64) -> Result<u64, StoreError>;
    /// The rolled-up minutes from `since` (micros), and the runs running or waiting now.
    async fn run_stats(&self, since: i64) -> Result<RunStats, StoreError>;
    /// Records that a node is alive, and forgets the nodes silent for an hour.
    async fn beat(&self, node: NodeBeat) -> Result<(), StoreError>;
    /// The nodes seen in the last hour, the oldest first.
    async fn nodes(&self) -> Result<Vec<NodeBeat>, StoreError>;
    /// Proves the store can be written now; returns how long that took.
    async fn check(&self) -> Result<Duration, StoreError>;
    /// Whether this node should do the store's upkeep (rescue, prune) now. A backend shared by
    /// several nodes elects one leader and answers true on that node only; when the leader
    /// dies, another node's next call takes over. Errors count as not leading.
    async fn lead(&self) -> bool {
        true
    }
    /// Wakes waiters on terminal states and workers on cancels.
    fn notifier(&self) -> &Notifier;
    /// The backend's name, for `/health`.
    fn backend(&self) -> &'static str;
    /// How the pruner paces itself here; [`ONE_WRITER`] unless the store says otherwise.
    fn prune_pace(&self) -> PrunePace {
        ONE_WRITER
    }
}

/// Every attempt of a run, used by backends to fill [`Run::attempts`].
pub type Attempts = Vec<Attempt>;

/// The run's error when its cancel took effect.
#[must_use]
pub fn cancelled_error() -> RunError {
    RunError::new(plinth_core::Code::RunCancelled, "cancelled by request")
}
