//! The embedded SQLite store: WAL mode, one writer thread with group commit, a pool of
//! read-only connections.

mod events;
mod expiry;
mod flow;
mod lanes;
mod leases;
pub(crate) mod migrate;
mod ops;
mod read;
mod readers;
mod rows;
mod stats;
mod steps;
mod writer;

use crate::{
    CancelOutcome, ClaimRequest, Claimed, Enqueued, EventFilter, EventPage, FinishRequest, FlowUpkeep, Heartbeat, Ingested, Lane,
    LaneLoad, LaneRoom, ListFilter, LogEntry, LogLine, NewEvent, Notifier, Page, QueueStats, Rescued, ScheduleState, Store,
    StoreError, StoredEvent,
};
use async_trait::async_trait;
use plinth_core::steps::Step;
use plinth_core::{NewRun, Run};
use readers::Readers;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use writer::Op;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::FromSqlConversionFailure(..) | rusqlite::Error::InvalidColumnType(..) => {
                StoreError::Corrupt(e.to_string())
            }
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

/// How durable a commit is (SQLite's `synchronous` in WAL mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// fsync at every commit: an accepted run survives a power loss. The default.
    #[default]
    Full,
    /// fsync at checkpoints: survives a crash of Plinth, not of the machine.
    Normal,
    /// Never fsync: for throw-away data only.
    Off,
}

impl Synchronous {
    /// Parses `full`, `normal` or `off`.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "full" => Some(Self::Full),
            "normal" => Some(Self::Normal),
            "off" => Some(Self::Off),
            _ => None,
        }
    }

    const fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
            Self::Off => "OFF",
        }
    }
}

/// The file path a `sqlite:` URL (or a plain path) names.
///
/// # Errors
/// When the URL names another database, or no file.
pub fn path_from_url(url: &str) -> Result<PathBuf, String> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || rest.contains("://") {
        return Err(format!("`{url}` is not a SQLite URL; write it like sqlite://.plinth/plinth.db"));
    }
    Ok(PathBuf::from(path))
}

/// Keeps a cached statement's plan whatever values are bound to it.
///
/// Why: SQLite 3.54 plans `LIMIT ?` and `= ?` (0 or 1) with the bound value and prepares the
/// statement again whenever that value changes; a claim binds a different limit nearly every
/// time, so the writer spent 9 % of its time parsing SQL (perf, keyed flow bench). Every plan
/// here is fixed by `INDEXED BY` or the indexes alone, so nothing is lost.
fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

/// Opens (creating it and its folder if needed) the database at `path` in WAL mode and applies
/// the migrations it lacks; the connection and how many were applied.
fn prepare(path: &Path, synchronous: Synchronous) -> Result<(Connection, usize), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Unavailable(format!("cannot create folder {}: {e}", dir.display())))?;
    }
    let mut conn = Connection::open(path).map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    stable_plans(&conn)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!("cannot switch {} to WAL mode (got {mode})", path.display())));
    }
    conn.execute_batch(&format!("PRAGMA synchronous = {}; PRAGMA temp_store = MEMORY;", synchronous.pragma()))?;
    let applied = migrate::migrate(&mut conn, migrate::MIGRATIONS)?;
    Ok((conn, applied))
}

/// The SQLite store.
pub struct SqliteStore {
    tx: mpsc::Sender<Op>,
    readers: Arc<Readers>,
    notifier: Arc<Notifier>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating it and its folder if needed) and migrates the database at `path`.
    ///
    /// # Errors
    /// When the file cannot be opened or written, or its schema is newer or edited.
    pub fn open(path: &Path, synchronous: Synchronous) -> Result<Self, StoreError> {
        let (conn, applied) = prepare(path, synchronous)?;
        if applied > 0 {
            tracing::info!(applied, path = %path.display(), "database migrated");
        }
        let notifier = Arc::new(Notifier::default());
        let (tx, rx) = mpsc::channel(16 * writer::MAX_BATCH);
        let writer_notifier = notifier.clone();
        std::thread::Builder::new()
            .name("plinth-sqlite-writer".into())
            .spawn(move || writer::run(conn, rx, &writer_notifier))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        let readers = Arc::new(Readers::new(path));
        Ok(Self { tx, readers, notifier, path: path.to_path_buf() })
    }

    /// Creates (if needed) and migrates the database at `path` without starting a store.
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub fn migrate(path: &Path) -> Result<crate::Migrated, StoreError> {
        let (_, applied) = prepare(path, Synchronous::Full)?;
        Ok(crate::Migrated { applied, version: migrate::MIGRATIONS.last().map_or(0, |m| m.0) })
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write<T>(&self, make: impl FnOnce(writer::Reply<T>) -> Op) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| StoreError::Unavailable("the writer thread stopped".into()))?;
        rx.await.map_err(|_| StoreError::Unavailable("the writer thread stopped".into()))?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.readers.read(f).await
    }

    /// Runs SQL on the writer connection. For tests that simulate a read-only or full disk
    /// (`PRAGMA query_only = 1`, `PRAGMA max_page_count = N`); not part of the store's API.
    ///
    /// # Errors
    /// As SQLite reports them.
    #[doc(hidden)]
    pub async fn debug_pragma(&self, sql: &str) -> Result<(), StoreError> {
        let sql = sql.to_string();
        self.write(|r| Op::Pragma(sql, r)).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn enqueue(&self, run: NewRun) -> Result<Enqueued, StoreError> {
        self.write(|r| Op::Enqueue(run, r)).await
    }

    async fn get(&self, run_id: &str, with_attempts: bool) -> Result<Option<Run>, StoreError> {
        let id = run_id.to_string();
        self.read(move |c| read::get_run(c, &id, with_attempts)).await
    }

    async fn list(&self, filter: ListFilter) -> Result<Page, StoreError> {
        self.read(move |c| read::list(c, &filter)).await
    }

    async fn cancel(&self, run_id: &str, now: i64) -> Result<CancelOutcome, StoreError> {
        let id = run_id.to_string();
        self.write(|r| Op::Cancel(id, now, r)).await
    }

    async fn claim(&self, req: ClaimRequest) -> Result<Claimed, StoreError> {
        self.write(|r| Op::Claim(req, r)).await
    }

    async fn heartbeat(&self, owner: &str, runs: Vec<(String, u32)>, lease_until: i64) -> Result<Heartbeat, StoreError> {
        let owner = owner.to_string();
        self.write(|r| Op::Heartbeat(owner, runs, lease_until, r)).await
    }

    async fn finish(&self, req: FinishRequest) -> Result<bool, StoreError> {
        self.write(|r| Op::Finish(req, r)).await
    }

    async fn append_logs(&self, run_id: &str, attempt: u32, lines: Vec<LogLine>) -> Result<(), StoreError> {
        let id = run_id.to_string();
        self.write(|r| Op::Logs(id, attempt, lines, r)).await
    }

    async fn logs(&self, run_id: &str) -> Result<Option<Vec<LogEntry>>, StoreError> {
        let id = run_id.to_string();
        self.read(move |c| read::logs(c, &id)).await
    }

    async fn rescue(&self, now: i64) -> Result<Vec<Rescued>, StoreError> {
        self.write(|r| Op::Rescue(now, r)).await
    }

    async fn adopt(&self, owner: &str, stale_before: i64, lease_until: i64) -> Result<Vec<Run>, StoreError> {
        let owner = owner.to_string();
        self.write(|r| Op::Adopt(owner, stale_before, lease_until, r)).await
    }

    async fn prune(&self, before: i64, keys_before: i64, batch: u32) -> Result<u64, StoreError> {
        self.write(|r| Op::Prune(before, keys_before, batch, r)).await
    }

    async fn queue_depth(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.read(read::queue_depth).await
    }

    async fn lane(&self, function: &str, key: &str, run_id: &str) -> Result<Lane, StoreError> {
        let (function, key, run_id) = (function.to_string(), key.to_string(), run_id.to_string());
        self.read(move |c| flow::lane(c, &function, &key, &run_id)).await
    }

    async fn lanes(&self, function: &str, limit: u32, offset: u64) -> Result<Vec<LaneLoad>, StoreError> {
        let function = function.to_string();
        self.read(move |c| lanes::lanes(c, &function, limit, offset)).await
    }

    async fn lane_room(&self, function: &str, cap: u32, keys: u32, now: i64) -> Result<Vec<LaneRoom>, StoreError> {
        let function = function.to_string();
        self.read(move |c| lanes::lane_room(c, &function, cap, keys, now)).await
    }

    async fn queue_stats(&self, now: i64, bound: u64) -> Result<Vec<QueueStats>, StoreError> {
        self.read(move |c| flow::queue_stats(c, now, bound)).await
    }

    async fn roll_up(&self, until: i64) -> Result<u64, StoreError> {
        self.write(|r| Op::RollUp(until, r)).await
    }

    async fn run_stats(&self, since: i64) -> Result<crate::RunStats, StoreError> {
        self.read(move |c| stats::run_stats(c, since)).await
    }

    async fn beat(&self, node: crate::NodeBeat) -> Result<(), StoreError> {
        self.write(|r| Op::Beat(node, r)).await
    }

    async fn nodes(&self) -> Result<Vec<crate::NodeBeat>, StoreError> {
        self.read(stats::nodes).await
    }

    async fn flow_upkeep(&self, what: FlowUpkeep) -> Result<u64, StoreError> {
        self.write(|r| Op::Flow(what, r)).await
    }

    async fn expire(&self, now: i64) -> Result<Vec<crate::Expired>, StoreError> {
        self.write(|r| Op::Expire(now, r)).await
    }

    async fn ingest(&self, events: Vec<NewEvent>, dedup_after: i64, resume: crate::Resume) -> Result<Vec<Ingested>, StoreError> {
        let (ingested, resumed) = self.write(|r| Op::Ingest(events, dedup_after, resume, r)).await?;
        resumed.start();
        Ok(ingested)
    }

    async fn event(&self, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        let id = id.to_string();
        self.read(move |c| events::get_event(c, &id)).await
    }

    async fn events(&self, filter: EventFilter) -> Result<EventPage, StoreError> {
        self.read(move |c| events::list_events(c, &filter)).await
    }

    async fn prune_events(&self, before: i64, dedup_before: i64, batch: u32) -> Result<u64, StoreError> {
        self.write(|r| Op::PruneEvents(before, dedup_before, batch, r)).await
    }

    async fn fire_tick(&self, function: &str, tick: i64, run: NewRun) -> Result<Option<Run>, StoreError> {
        let function = function.to_string();
        self.write(|r| Op::FireTick(function, tick, run, r)).await
    }

    async fn schedules(&self) -> Result<Vec<ScheduleState>, StoreError> {
        self.read(events::schedules).await
    }

    async fn steps(&self, run_id: &str) -> Result<Option<Vec<Step>>, StoreError> {
        let id = run_id.to_string();
        self.read(move |c| {
            if read::get_run(c, &id, false)?.is_none() {
                return Ok(None);
            }
            steps::load(c, &id).map(Some)
        })
        .await
    }

    async fn save_steps(&self, run_id: &str, owner: &str, attempt: u32, steps: Vec<Step>) -> Result<bool, StoreError> {
        let (id, owner) = (run_id.to_string(), owner.to_string());
        self.write(|r| Op::SaveSteps(id, owner, attempt, steps, r)).await
    }

    async fn enqueue_with_steps(&self, run: NewRun, steps: Vec<Step>) -> Result<Run, StoreError> {
        self.write(|r| Op::EnqueueWith(run, steps, r)).await
    }

    async fn check(&self) -> Result<Duration, StoreError> {
        let started = Instant::now();
        self.write(|r| Op::Probe(plinth_core::timefmt::now_micros(), r)).await?;
        Ok(started.elapsed())
    }

    fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

#[cfg(test)]
mod tests;
