//! The PostgreSQL store: a pool of connections to one schema, each write its own transaction.
//!
//! Several Plinth nodes may share one database: claims take runs with `FOR UPDATE SKIP LOCKED`,
//! every write that reads before it writes locks the rows it reads, and migrations run under
//! an advisory lock. The nodes tell each other of new work, ended runs and cancels over
//! LISTEN/NOTIFY (`events`); one of them, elected by an advisory lock, does the upkeep
//! (`leader`). Attempts' ends are recorded in batches (`finish`). Every call gives up after
//! [`OP_TIMEOUT`] with `Unavailable`, so a database that stops answering never hangs a caller.

mod batches;
mod checkpoints;
mod connect;
mod dedicated;
mod entry;
mod eventlog;
mod eventread;
mod events;
mod expiry;
mod finish;
mod flow;
mod insert;
mod interest;
mod lanes;
mod leader;
mod leases;
mod limits;
mod logs;
mod migrate;
mod rates;
mod read;
mod rows;
mod runs;
mod stats;
mod steps;
mod upkeep;
mod waits;

pub use connect::{drop_schema, valid_schema_name, wal_position};
pub use limits::{CONNECT_TIMEOUT, OP_TIMEOUT};
use limits::{IDLE_IN_TRANSACTION_MS, MAX_CONNECTIONS, STATEMENT_TIMEOUT_MS, timed};

use crate::{
    CancelOutcome, ClaimRequest, Claimed, Enqueued, EventFilter, EventPage, FinishRequest, FlowUpkeep, Heartbeat, Ingested, Lane,
    LaneLoad, LaneRoom, ListFilter, LogEntry, LogLine, NewEvent, Notifier, Page, QueueStats, Rescued, ScheduleState, Store,
    StoreError, StoredEvent,
};
use async_trait::async_trait;
use connect::{lock_key, open_pool};
use plinth_core::steps::Step;
use plinth_core::{NewRun, Run, RunStatus};
use sqlx::postgres::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: PgPool,
    notifier: Arc<Notifier>,
    schema: String,
    events: Arc<events::Events>,
    leader: leader::Leader,
    /// The batched writes' loops.
    writers: batches::Writers,
    /// The dispatcher's connection for claims.
    claims: tokio::sync::Mutex<dedicated::Dedicated>,
    /// Where the pruner's next batch starts.
    prune_from: upkeep::PruneFrom,
    /// The listener, the notice sender and the batcher; stopped when the store is dropped.
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("schema", &self.schema).finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`,
    /// without TLS), creates `schema` if it is missing and applies the migrations in it. Every
    /// pooled connection works in `schema` (its `search_path`).
    ///
    /// # Errors
    /// `Schema` for an invalid schema name, a newer or edited schema; `Unavailable` when the
    /// database cannot be reached within [`CONNECT_TIMEOUT`] or refuses the migrations.
    pub async fn connect(url: &str, schema: &str) -> Result<Self, StoreError> {
        let (pool, applied) = open_pool(url, schema).await?;
        if applied > 0 {
            tracing::info!(applied, schema, "database migrated");
        }
        let notifier = Arc::new(Notifier::default());
        let events = Arc::new(events::Events::new(schema));
        let (writers, batch_tasks) = batches::Writers::start(&pool);
        let mut tasks = vec![
            tokio::spawn(events::listen_loop(pool.clone(), events.clone(), notifier.clone())),
            tokio::spawn(events::send_loop(dedicated::Dedicated::new(pool.clone()), events.clone())),
            tokio::spawn(interest::ask_loop(events.clone(), notifier.clone())),
        ];
        tasks.extend(batch_tasks);
        Ok(Self {
            claims: tokio::sync::Mutex::new(dedicated::Dedicated::with_setup(pool.clone(), dedicated::CLAIM_SETUP)),
            prune_from: upkeep::PruneFrom::default(),
            pool,
            notifier,
            schema: schema.to_string(),
            events,
            leader: leader::Leader::new(lock_key(&["plinth-leader", schema]), schema),
            writers,
            tasks,
        })
    }

    /// The schema the store works in.
    #[must_use]
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Gives up the upkeep lead, so another node takes it at once, and closes every pooled
    /// connection.
    pub async fn close(&self) {
        self.leader.resign().await;
        self.pool.close().await;
    }

    /// Runs became due through this store: the other nodes hear it (NOTIFY, which skips the
    /// sender) and this node's dispatcher is woken too. Why: a wait ended by an event or a
    /// child's end is seen only here; the caller cannot tell, and without this the run waited
    /// for the next poll (a second).
    fn work_everywhere(&self) {
        self.events.work();
        self.notifier.work().notify_one();
    }

    /// Wakes the parents waiting on these ended runs. A failure is logged: the upkeep's sweep
    /// wakes them later.
    async fn children_ended(&self, ended: &[String]) {
        if ended.is_empty() {
            return;
        }
        match steps::after_terminal(&self.pool, ended, plinth_core::timefmt::now_micros()).await {
            Ok(true) => self.work_everywhere(),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot wake the parents of ended runs yet; the upkeep will"),
        }
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn enqueue(&self, mut run: NewRun) -> Result<Enqueued, StoreError> {
        if !run.may_start_at_once(run.created_at) {
            run.start = None;
        }
        // Why: the look-up path's future is large (10,880 bytes) and rare; boxed apart, it no
        // longer sizes the future every `POST /run` allocates and moves (decision 0023).
        let enqueued =
            if run.needs_lookups() { Box::pin(self.enqueue_single(run)).await? } else { self.enqueue_batched(run).await? };
        // Why: a run stored started is this node's already; no node need look for it.
        if matches!(&enqueued, Enqueued::Created(r) if r.status == RunStatus::Queued) {
            self.work_everywhere();
        }
        Ok(enqueued)
    }

    async fn get(&self, run_id: &str, with_attempts: bool) -> Result<Option<Run>, StoreError> {
        timed(async {
            let mut conn = self.pool.acquire().await?;
            read::get_run(&mut conn, run_id, with_attempts, false).await
        })
        .await
    }

    async fn list(&self, filter: ListFilter) -> Result<Page, StoreError> {
        timed(read::list(&self.pool, &filter)).await
    }

    async fn cancel(&self, run_id: &str, now: i64) -> Result<CancelOutcome, StoreError> {
        let (outcome, cascade) = timed(runs::cancel(&self.pool, run_id, now)).await?;
        self.announce(&cascade).await;
        Ok(outcome)
    }

    async fn claim(&self, req: ClaimRequest) -> Result<Claimed, StoreError> {
        self.claims.lock().await.run(async |c| leases::claim(c, &req).await).await
    }

    async fn heartbeat(&self, owner: &str, runs: Vec<(String, u32)>, lease_until: i64) -> Result<Heartbeat, StoreError> {
        timed(leases::heartbeat(&self.pool, owner, &runs, lease_until)).await
    }

    async fn adopt(&self, owner: &str, stale_before: i64, lease_until: i64) -> Result<Vec<Run>, StoreError> {
        timed(leases::adopt(&self.pool, owner, stale_before, lease_until)).await
    }

    async fn finish(&self, req: FinishRequest) -> Result<bool, StoreError> {
        let run_id = req.run_id.clone();
        let recorded = if let plinth_core::Finish::Suspended(s) = &req.finish {
            // Why: a suspension writes a step, maybe a child run and a wait; it has its own
            // transaction rather than a place in the batched statement.
            // Why: boxed, this rare path does not size the future of every run's end (0023).
            let status = Box::pin(timed(steps::suspend(&self.pool, &req, s))).await?;
            if s.child.is_some() {
                self.work_everywhere();
            }
            // Why: not known here whether another run invoked this one; looking costs one
            // statement, and a suspension seldom ends a run.
            status.map(|status| finish::Recorded { status, invoked: true })
        } else {
            let (tx, rx) = oneshot::channel();
            let gone = || StoreError::Unavailable("the store is shutting down".into());
            timed(async {
                self.writers.finishes.send((req, tx)).await.map_err(|_| gone())?;
                rx.await.map_err(|_| gone())?
            })
            .await?
        };
        match recorded {
            Some(r) if r.status.is_terminal() => {
                self.notifier.ended_here([run_id.as_str()]);
                self.events.terminal([run_id.as_str()]);
                // Why: only a run another one invoked can have a parent waiting on its end;
                // for the rest (nearly all) the look-up was one statement per run that found
                // nothing (measured: 20,014 statements for 20,000 runs).
                if r.invoked {
                    Box::pin(self.children_ended(&[run_id])).await;
                }
            }
            Some(r) if r.status == RunStatus::Queued => self.work_everywhere(),
            _ => {}
        }
        Ok(recorded.is_some())
    }

    async fn append_logs(&self, run_id: &str, attempt: u32, lines: Vec<LogLine>) -> Result<(), StoreError> {
        timed(logs::append(&self.writers.logs, logs::Lines { run_id: run_id.into(), attempt, lines })).await
    }

    async fn logs(&self, run_id: &str) -> Result<Option<Vec<LogEntry>>, StoreError> {
        timed(read::logs(&self.pool, run_id)).await
    }

    async fn rescue(&self, now: i64) -> Result<Vec<Rescued>, StoreError> {
        let rescued = timed(leases::rescue(&self.pool, now)).await?;
        let ended = || rescued.iter().filter(|r| r.status.is_terminal()).map(|r| r.run_id.as_str());
        self.notifier.ended_here(ended());
        self.events.terminal(ended());
        self.children_ended(&ended().map(str::to_string).collect::<Vec<_>>()).await;
        // Why: a node that died between a child's end and its parent's wake-up leaves the
        // parent waiting; the upkeep leader (the only caller of rescue) sweeps for those.
        match steps::sweep_children(&self.pool, plinth_core::timefmt::now_micros()).await {
            Ok(true) => self.work_everywhere(),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot sweep for parents of ended runs"),
        }
        if rescued.iter().any(|r| r.status == RunStatus::Queued) {
            self.work_everywhere();
        }
        Ok(rescued)
    }

    async fn prune(&self, before: i64, keys_before: i64, batch: u32) -> Result<u64, StoreError> {
        timed(upkeep::prune(&self.pool, before, keys_before, batch, &self.prune_from)).await
    }

    async fn queue_depth(&self) -> Result<Vec<(String, i64)>, StoreError> {
        timed(read::queue_depth(&self.pool)).await
    }

    async fn lane(&self, function: &str, key: &str, run_id: &str) -> Result<Lane, StoreError> {
        timed(flow::lane(&self.pool, function, key, run_id)).await
    }

    async fn lanes(&self, function: &str, limit: u32, offset: u64) -> Result<Vec<LaneLoad>, StoreError> {
        timed(lanes::lanes(&self.pool, function, limit, offset)).await
    }

    async fn lane_room(&self, function: &str, cap: u32, keys: u32, now: i64) -> Result<Vec<LaneRoom>, StoreError> {
        timed(lanes::lane_room(&self.pool, function, cap, keys, now)).await
    }

    async fn queue_stats(&self, now: i64, bound: u64) -> Result<Vec<QueueStats>, StoreError> {
        timed(flow::queue_stats(&self.pool, now, bound)).await
    }

    async fn roll_up(&self, until: i64) -> Result<u64, StoreError> {
        let rolled = timed(stats::fold_and_roll_up(&self.pool, until)).await;
        stats::refresh_quietly(timed(stats::refresh_statistics(&self.pool)).await);
        rolled
    }

    async fn run_stats(&self, since: i64) -> Result<crate::RunStats, StoreError> {
        timed(stats::run_stats(&self.pool, since)).await
    }

    async fn beat(&self, node: crate::NodeBeat) -> Result<(), StoreError> {
        timed(stats::beat(&self.pool, &node)).await
    }

    async fn nodes(&self) -> Result<Vec<crate::NodeBeat>, StoreError> {
        timed(stats::nodes(&self.pool)).await
    }

    async fn flow_upkeep(&self, what: FlowUpkeep) -> Result<u64, StoreError> {
        timed(flow::upkeep(&self.pool, &what)).await
    }

    async fn expire(&self, now: i64) -> Result<Vec<crate::Expired>, StoreError> {
        let (expired, cascade) = timed(expiry::expire(&self.pool, now)).await?;
        self.announce(&cascade).await;
        Ok(expired)
    }

    async fn ingest(&self, events: Vec<NewEvent>, dedup_after: i64, resume: crate::Resume) -> Result<Vec<Ingested>, StoreError> {
        self.ingest_all(events, dedup_after, resume).await
    }

    async fn event(&self, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        timed(eventread::get_event(&self.pool, id)).await
    }

    async fn events(&self, filter: EventFilter) -> Result<EventPage, StoreError> {
        timed(eventread::list_events(&self.pool, &filter)).await
    }

    async fn prune_events(&self, before: i64, _dedup_before: i64, batch: u32) -> Result<u64, StoreError> {
        timed(eventlog::prune_events(&self.pool, before, batch)).await
    }

    async fn fire_tick(&self, function: &str, tick: i64, run: NewRun) -> Result<Option<Run>, StoreError> {
        let fired = timed(eventlog::fire_tick(&self.pool, function, tick, run)).await?;
        if fired.is_some() {
            self.work_everywhere();
        }
        Ok(fired)
    }

    async fn schedules(&self) -> Result<Vec<ScheduleState>, StoreError> {
        timed(eventread::schedules(&self.pool)).await
    }

    async fn steps(&self, run_id: &str) -> Result<Option<Vec<Step>>, StoreError> {
        timed(steps::load(&self.pool, run_id)).await
    }

    async fn save_steps(&self, run_id: &str, owner: &str, attempt: u32, steps: Vec<Step>) -> Result<bool, StoreError> {
        let save = checkpoints::Save { run_id: run_id.into(), owner: owner.into(), attempt, steps };
        timed(checkpoints::save(&self.writers.checkpoints, &self.pool, save)).await
    }

    async fn enqueue_with_steps(&self, run: NewRun, steps: Vec<Step>) -> Result<Run, StoreError> {
        timed(steps::enqueue_with(&self.pool, &run, &steps)).await
    }

    async fn check(&self) -> Result<Duration, StoreError> {
        let started = Instant::now();
        timed(upkeep::probe(&self.pool, plinth_core::timefmt::now_micros())).await?;
        Ok(started.elapsed())
    }

    async fn lead(&self) -> bool {
        self.leader.lead(&self.pool).await
    }

    fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn prune_pace(&self) -> crate::PrunePace {
        // Why 100 ms batches: writers do not wait for each other here, and small batches would
        // only add round trips and commits. Why a rest four times the batch: what the hot path
        // pays during a pass is the pass's write-ahead log and dirty pages slowing every
        // commit's flush, so it follows how fast the pass writes (`POST /run` p99 while
        // 1,000,000 runs were pruned, median of three: 19.9 ms resting as long as the batch,
        // 14.2 ms resting four times as long; decision 0025).
        crate::PrunePace { batch: Duration::from_millis(100), rest: 4 }
    }
}

#[cfg(test)]
mod tests;
