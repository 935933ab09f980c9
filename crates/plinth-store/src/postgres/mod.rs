//! The PostgreSQL store: a pool of connections to one schema, each write its own transaction.
//!
//! Several Plinth nodes may share one database: claims take runs with `FOR UPDATE SKIP LOCKED`,
//! every write that reads before it writes locks the rows it reads, and migrations run under
//! an advisory lock. The nodes tell each other of new work, ended runs and cancels over
//! LISTEN/NOTIFY (`events`); one of them, elected by an advisory lock, does the upkeep
//! (`leader`). Attempts' ends are recorded in batches (`finish`). Every call gives up after
//! [`OP_TIMEOUT`] with `Unavailable`, so a database that stops answering never hangs a caller.

mod dedicated;
mod eventlog;
mod events;
mod finish;
mod insert;
mod leader;
mod leases;
mod migrate;
mod read;
mod rows;
mod runs;
mod upkeep;

use crate::{
    CancelOutcome, ClaimRequest, Claimed, Enqueued, EventFilter, EventPage, FinishRequest, Heartbeat, Ingested, ListFilter,
    LogEntry, LogLine, NewEvent, Notifier, Page, Rescued, ScheduleState, Store, StoreError, StoredEvent,
};
use async_trait::async_trait;
use plinth_core::{NewRun, Run, RunStatus};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// How long connecting, or waiting for a pooled connection, may take before the database
/// counts as unavailable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The longest any call may take, connection included, before it fails with `Unavailable`.
pub const OP_TIMEOUT: Duration = Duration::from_secs(5);

/// The server-side limit of one statement, below [`OP_TIMEOUT`] so the server stops first.
const STATEMENT_TIMEOUT_MS: &str = "4000";

/// How long a session may sit idle inside a transaction before the server ends it, so a node
/// that hangs mid-transaction cannot keep rows locked.
const IDLE_IN_TRANSACTION_MS: &str = "30000";

/// Runs `fut` for at most [`OP_TIMEOUT`].
async fn timed<T>(fut: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    tokio::time::timeout(OP_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| Err(StoreError::Unavailable(format!("PostgreSQL did not answer within {OP_TIMEOUT:?}"))))
}

/// The most connections one store opens.
const MAX_CONNECTIONS: u32 = 16;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnIndexOutOfBounds { .. }
            | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(e.to_string()),
            // Why: as on SQLite, a refused write (a duplicate run id included) is unavailable.
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

/// Whether `name` may name the store's schema: lowercase letters, digits and `_`, not
/// starting with a digit, at most 63 bytes (PostgreSQL's limit), not `pg_`-prefixed.
#[must_use]
pub fn valid_schema_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    first_ok
        && name.len() <= 63
        && !name.starts_with("pg_")
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Drops `schema` with everything in it (the runs of every component stored there), e.g. a
/// scratch schema of a test or a benchmark. Waits at most 10 s for locks.
///
/// # Errors
/// `Schema` for an invalid name; `Unavailable` when the database refuses or cannot be reached.
pub async fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
    use sqlx::Connection;
    if !valid_schema_name(schema) {
        return Err(StoreError::Schema(format!("`{schema}` is not a valid schema name")));
    }
    let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?;
    let work = async {
        let mut conn = sqlx::PgConnection::connect_with(&options).await?;
        let sql = format!("SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
        sqlx::Executor::execute(&mut conn, sql.as_str()).await?;
        conn.close().await?;
        Ok::<(), sqlx::Error>(())
    };
    match tokio::time::timeout(Duration::from_secs(15), work).await {
        Ok(r) => r.map_err(StoreError::from),
        Err(_) => Err(StoreError::Unavailable("dropping the schema took more than 15 s".into())),
    }
}

/// FNV-1a of `parts`, as the key of an advisory lock.
fn lock_key(parts: &[&str]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// A pool on `schema` of the database at `url`, the schema created and migrated; the pool and
/// how many migrations were applied.
async fn open_pool(url: &str, schema: &str) -> Result<(PgPool, usize), StoreError> {
    if !valid_schema_name(schema) {
        return Err(StoreError::Schema(format!(
            "`{schema}` is not a valid schema name: use lowercase letters, digits and _, at most 63, \
             not starting with a digit nor pg_"
        )));
    }
    // Why: the URL may hold a password, so it is never repeated in an error.
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?
        .application_name("plinth")
        .options([("statement_timeout", STATEMENT_TIMEOUT_MS), ("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION_MS)]);
    let set_path = Arc::new(format!("SET search_path TO \"{schema}\""));
    let pool = PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(CONNECT_TIMEOUT)
        .after_connect(move |conn, _meta| {
            let sql = set_path.clone();
            Box::pin(async move {
                sqlx::Executor::execute(conn, sql.as_str()).await?;
                Ok(())
            })
        })
        .connect_lazy_with(options);
    let applied = tokio::time::timeout(CONNECT_TIMEOUT * 2, migrate::migrate(&pool, schema, migrate::MIGRATIONS))
        .await
        .map_err(|_| StoreError::Unavailable(format!("PostgreSQL did not answer within {CONNECT_TIMEOUT:?}")))??;
    Ok((pool, applied))
}

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: PgPool,
    notifier: Arc<Notifier>,
    schema: String,
    events: Arc<events::Events>,
    leader: leader::Leader,
    finishes: mpsc::Sender<finish::Job>,
    inserts: mpsc::Sender<insert::Job>,
    /// The dispatcher's connection for claims.
    claims: tokio::sync::Mutex<dedicated::Dedicated>,
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
        let (finishes, finish_jobs) = mpsc::channel(1024);
        let (inserts, insert_jobs) = mpsc::channel(1024);
        let tasks = vec![
            tokio::spawn(events::listen_loop(pool.clone(), events.clone(), notifier.clone())),
            tokio::spawn(events::send_loop(pool.clone(), events.clone())),
            tokio::spawn(finish::batch_loop(dedicated::Dedicated::new(pool.clone()), finish_jobs)),
            tokio::spawn(insert::batch_loop(dedicated::Dedicated::new(pool.clone()), insert_jobs)),
        ];
        Ok(Self {
            claims: tokio::sync::Mutex::new(dedicated::Dedicated::new(pool.clone())),
            pool,
            notifier,
            schema: schema.to_string(),
            events,
            leader: leader::Leader::new(lock_key(&["plinth-leader", schema]), schema),
            finishes,
            inserts,
            tasks,
        })
    }

    /// Creates (if needed) and migrates `schema` without starting a store (`plinth migrate`).
    ///
    /// # Errors
    /// As [`PostgresStore::connect`].
    pub async fn migrate(url: &str, schema: &str) -> Result<crate::Migrated, StoreError> {
        let (pool, applied) = open_pool(url, schema).await?;
        pool.close().await;
        Ok(crate::Migrated { applied, version: migrate::MIGRATIONS.last().map_or(0, |m| m.0) })
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
}

#[async_trait]
impl Store for PostgresStore {
    async fn enqueue(&self, run: NewRun) -> Result<Enqueued, StoreError> {
        let enqueued = if run.idempotency_key.is_none() && run.max_queued.is_none() {
            let (tx, rx) = oneshot::channel();
            let gone = || StoreError::Unavailable("the store is shutting down".into());
            // Why: the wait is bounded like every other call, so a batch stuck on an
            // unreachable database answers 503 rather than a hang.
            timed(async {
                self.inserts.send((run.clone(), tx)).await.map_err(|_| gone())?;
                rx.await.map_err(|_| gone())?
            })
            .await?;
            Enqueued::Created(run.into_queued())
        } else {
            timed(runs::enqueue(&self.pool, &self.schema, run)).await?
        };
        if matches!(enqueued, Enqueued::Created(_)) {
            self.events.work();
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
        let outcome = timed(runs::cancel(&self.pool, run_id, now)).await?;
        match &outcome {
            CancelOutcome::Cancelled(_) => {
                self.notifier.ended_here([run_id]);
                self.events.terminal([run_id]);
            }
            CancelOutcome::Requested(_) => {
                self.notifier.cancel(run_id);
                self.events.cancel(run_id);
            }
            CancelOutcome::AlreadyTerminal(_) | CancelOutcome::NotFound => {}
        }
        Ok(outcome)
    }

    async fn claim(&self, req: ClaimRequest) -> Result<Claimed, StoreError> {
        self.claims.lock().await.run(async |c| leases::claim(c, &req).await).await
    }

    async fn heartbeat(&self, owner: &str, runs: Vec<(String, u32)>, lease_until: i64) -> Result<Heartbeat, StoreError> {
        timed(leases::heartbeat(&self.pool, owner, &runs, lease_until)).await
    }

    async fn finish(&self, req: FinishRequest) -> Result<bool, StoreError> {
        let run_id = req.run_id.clone();
        let (tx, rx) = oneshot::channel();
        let gone = || StoreError::Unavailable("the store is shutting down".into());
        let status = timed(async {
            self.finishes.send((req, tx)).await.map_err(|_| gone())?;
            rx.await.map_err(|_| gone())?
        })
        .await?;
        match status {
            Some(s) if s.is_terminal() => {
                self.notifier.ended_here([run_id.as_str()]);
                self.events.terminal([run_id.as_str()]);
            }
            Some(RunStatus::Queued) => self.events.work(),
            _ => {}
        }
        Ok(status.is_some())
    }

    async fn append_logs(&self, run_id: &str, attempt: u32, lines: Vec<LogLine>) -> Result<(), StoreError> {
        timed(upkeep::append_logs(&self.pool, run_id, attempt, &lines)).await
    }

    async fn logs(&self, run_id: &str) -> Result<Option<Vec<LogEntry>>, StoreError> {
        timed(read::logs(&self.pool, run_id)).await
    }

    async fn rescue(&self, now: i64) -> Result<Vec<Rescued>, StoreError> {
        let rescued = timed(leases::rescue(&self.pool, now)).await?;
        let ended = || rescued.iter().filter(|r| r.status.is_terminal()).map(|r| r.run_id.as_str());
        self.notifier.ended_here(ended());
        self.events.terminal(ended());
        if rescued.iter().any(|r| r.status == RunStatus::Queued) {
            self.events.work();
        }
        Ok(rescued)
    }

    async fn prune(&self, before: i64, keys_before: i64, batch: u32) -> Result<u64, StoreError> {
        timed(upkeep::prune(&self.pool, before, keys_before, batch)).await
    }

    async fn queue_depth(&self) -> Result<Vec<(String, i64)>, StoreError> {
        timed(read::queue_depth(&self.pool)).await
    }

    async fn ingest(&self, events: Vec<NewEvent>, dedup_after: i64) -> Result<Vec<Ingested>, StoreError> {
        let ingested = timed(eventlog::ingest(&self.pool, &self.schema, events, dedup_after)).await?;
        if ingested.iter().any(|i| !i.duplicate && !i.run_ids.is_empty()) {
            self.events.work();
        }
        Ok(ingested)
    }

    async fn event(&self, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        timed(eventlog::get_event(&self.pool, id)).await
    }

    async fn events(&self, filter: EventFilter) -> Result<EventPage, StoreError> {
        timed(eventlog::list_events(&self.pool, &filter)).await
    }

    async fn prune_events(&self, before: i64, dedup_before: i64, batch: u32) -> Result<u64, StoreError> {
        timed(eventlog::prune_events(&self.pool, before, dedup_before, batch)).await
    }

    async fn fire_tick(&self, function: &str, tick: i64, run: NewRun) -> Result<Option<Run>, StoreError> {
        let fired = timed(eventlog::fire_tick(&self.pool, function, tick, run)).await?;
        if fired.is_some() {
            self.events.work();
        }
        Ok(fired)
    }

    async fn schedules(&self) -> Result<Vec<ScheduleState>, StoreError> {
        timed(eventlog::schedules(&self.pool)).await
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
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_nodes;
