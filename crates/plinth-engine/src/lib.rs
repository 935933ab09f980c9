//! Plinth's engine: it claims due runs from the store, executes their attempts (command or
//! in-process handlers) under a timeout, records each outcome, keeps leases alive, takes runs
//! back from dead workers, prunes old runs, and shuts down gracefully.
//!
//! The engine never speaks HTTP to clients; the API never executes. They meet in the store.

mod dispatcher;
pub mod executor;
mod inflight;
mod maintenance;
mod starter;

pub use executor::in_process::{Handler, HandlerContext, HandlerError, Handlers};

use inflight::InFlight;
use plinth_core::component::{Component, Live};
use plinth_core::metrics::Metrics;
use plinth_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How the engine runs.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// This node's lease owner id.
    pub owner: String,
    /// Attempts at once on this node.
    pub workers: u32,
    /// The most runs one claim takes (each claim also takes no more than the free slots).
    pub claim_batch: u32,
    /// How long a claim holds a run before the rescuer may take it back.
    pub lease: Duration,
    /// Between SIGTERM and SIGKILL when a command handler is stopped.
    pub kill_grace: Duration,
    /// How long a run stored started on this node may wait here for a free slot before it is
    /// given back to the queue, where any node may start it (decision 0028).
    pub wait_here_at_most: Duration,
    /// Finished runs older than this are deleted.
    pub retention: Duration,
    /// How long an idempotency key gives back its run; after it, the key makes a new run.
    pub idempotency_window: Duration,
    /// Events older than this are deleted.
    pub event_retention: Duration,
    /// How long an event id deduplicates.
    pub event_dedup_window: Duration,
    /// Stderr bytes kept per attempt.
    pub max_log_bytes: u64,
    /// Stdout bytes accepted per attempt.
    pub max_output_bytes: u64,
    /// Calls of a step function's handler allowed per run before it fails with PLINTH_059.
    pub max_step_calls: u32,
    /// The most bytes a step function's memo (its stored step results) may hold.
    pub max_memo_bytes: u64,
    /// This server's URL, handed to handlers as `PLINTH_URL`.
    pub url: String,
    /// When set (access control is on), each command attempt gets a token of its own to send
    /// events back (`PLINTH_RUN_TOKEN`, also `PLINTH_API_KEY`), revoked when the attempt ends.
    pub run_tokens: Option<Arc<plinth_core::tokens::RunTokens>>,
    /// The Inngest apps' signing key (`inngest.signing_key_env`): set, every call to an app is
    /// signed and every answer must carry a signature that verifies.
    pub inngest_signing: Option<Arc<plinth_inngest::sign::SigningKey>>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            owner: format!("node-{}", plinth_core::ids::new_correlation_id()),
            workers: 16,
            claim_batch: 32,
            lease: Duration::from_secs(30),
            kill_grace: Duration::from_secs(5),
            // Why a second: under load a run waits here a few milliseconds (a wave of short
            // handlers); one behind long handlers waits at most this long.
            wait_here_at_most: Duration::from_secs(1),
            retention: Duration::from_secs(7 * 24 * 3600),
            idempotency_window: Duration::from_secs(24 * 3600),
            event_retention: Duration::from_secs(7 * 24 * 3600),
            event_dedup_window: Duration::from_secs(24 * 3600),
            max_log_bytes: 1024 * 1024,
            max_output_bytes: 16 * 1024 * 1024,
            max_step_calls: 10_000,
            max_memo_bytes: 64 * 1024 * 1024,
            url: "http://127.0.0.1:8000".into(),
            run_tokens: None,
            inngest_signing: None,
        }
    }
}

/// What the engine's tasks share.
pub(crate) struct Shared {
    /// This engine, for what must hold it (the starter a step's `send_event` hands the store).
    pub(crate) me: std::sync::Weak<Shared>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) component: Arc<Live>,
    pub(crate) handlers: Arc<Handlers>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) config: EngineConfig,
    pub(crate) wake: Arc<Notify>,
    pub(crate) inflight: InFlight,
    /// HTTP handlers' targets and their pooled client.
    pub(crate) http: executor::http::HttpHandlers,
    /// Slots the API reserved for runs it is storing started (decision 0019).
    pub(crate) reserved: std::sync::atomic::AtomicUsize,
    /// Whether the dispatcher's last claim took all it asked for: runs wait in the queue, and
    /// no run may skip it.
    pub(crate) backlog: std::sync::atomic::AtomicBool,
    /// Whether an ending attempt must wake the dispatcher: false only while its last claim
    /// found nothing due that a free slot could take. Why: with runs started as they are
    /// stored, a wake per ended attempt cost an empty claim per run.
    pub(crate) slot_wanted: std::sync::atomic::AtomicBool,
    /// Whether the dispatcher's last claim found due runs of a function with flow limits
    /// (`Claimed::lanes_due`): only then does the end of a run with a lane wake it. Why: with
    /// the runs of a lane started as they are stored (decision 0034), a wake per ended run cost
    /// an empty claim per run.
    pub(crate) lanes_due: std::sync::atomic::AtomicBool,
    /// How many times this node sent a run to the queue for want of room (`queue_first`).
    pub(crate) queued_here: std::sync::atomic::AtomicU64,
    /// How many times this node sent a run to the queue because runs waited there (the
    /// backlog), with room to spare.
    pub(crate) skipped_here: std::sync::atomic::AtomicU64,
    /// What [`Shared::room`] answers, updated as the rate at which handlers return changes.
    pub(crate) room: std::sync::atomic::AtomicUsize,
    /// The runs this node's handlers start in half of `wait_here_at_most` at the rate they
    /// return now (`starter::wave_for`): how many a claim may take beyond the free slots to
    /// wait here, while the queue holds runs (decision 0029).
    pub(crate) wave: std::sync::atomic::AtomicUsize,
    /// Cancelled when no new run may be claimed.
    pub(crate) no_claims: CancellationToken,
    /// Cancelled when the background services stop.
    pub(crate) stop: CancellationToken,
}

impl Shared {
    /// The runs this node may hold at once, started or waiting here for a slot (decision
    /// 0028): its slots, and as many more waiting as its handlers start in half of
    /// `wait_here_at_most`, at least as many as its slots.
    pub(crate) fn room(&self) -> usize {
        self.room.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A running engine.
pub struct Engine {
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
}

/// What a graceful shutdown did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Attempts that finished within the grace period.
    pub finished: usize,
    /// Attempts stopped and given back to the queue.
    pub released: usize,
}

impl Engine {
    /// Checks that every `rust` handler the component names is registered, and that every
    /// `http` handler's URL parses and its `${NAME}` header variables are set.
    ///
    /// # Errors
    /// `PLINTH_001` naming the function whose handler is missing or invalid.
    pub fn check_handlers(component: &Component, handlers: &Handlers) -> Result<(), plinth_core::ConfigError> {
        executor::http::HttpHandlers::new(component)?;
        for (i, f) in component.file.functions.iter().enumerate() {
            if let Some(plinth_core::HandlerKind::Rust(name)) = f.handler.get()
                && !handlers.contains(name)
            {
                return Err(plinth_core::ConfigError::new(
                    component.path.display().to_string(),
                    format!("functions[{i}].handler.rust"),
                    format!("no in-process handler is registered as `{name}`; registered: {}", handlers.names().join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// Starts the dispatcher and the background services.
    #[must_use]
    pub fn start(
        store: Arc<dyn Store>,
        component: Arc<Live>,
        handlers: Arc<Handlers>,
        metrics: Arc<Metrics>,
        config: EngineConfig,
    ) -> Self {
        let room = starter::room_for(&config, 0.0);
        let shared = Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            store: store.clone(),
            component: component.clone(),
            handlers,
            metrics,
            config,
            // Why: the store's wake-up also fires for runs enqueued on other nodes.
            wake: store.notifier().work(),
            inflight: InFlight::default(),
            // Why: `check_handlers` reported any error before start; a target that fails now
            // (an environment variable removed in between) fails its runs with PLINTH_023.
            http: executor::http::HttpHandlers::new(&component.get()).unwrap_or_default(),
            reserved: std::sync::atomic::AtomicUsize::new(0),
            backlog: std::sync::atomic::AtomicBool::new(false),
            slot_wanted: std::sync::atomic::AtomicBool::new(true),
            lanes_due: std::sync::atomic::AtomicBool::new(true),
            room: std::sync::atomic::AtomicUsize::new(room),
            wave: std::sync::atomic::AtomicUsize::new(0),
            queued_here: std::sync::atomic::AtomicU64::new(0),
            skipped_here: std::sync::atomic::AtomicU64::new(0),
            no_claims: CancellationToken::new(),
            stop: CancellationToken::new(),
        });
        let mut tasks = JoinSet::new();
        tasks.spawn(dispatcher::run(shared.clone()));
        tasks.spawn(maintenance::heartbeat(shared.clone()));
        tasks.spawn(maintenance::rescuer(shared.clone()));
        tasks.spawn(maintenance::expirer(shared.clone()));
        tasks.spawn(maintenance::pruner(shared.clone()));
        tasks.spawn(maintenance::cancel_listener(shared.clone()));
        tasks.spawn(maintenance::scheduler(shared.clone()));
        tasks.spawn(maintenance::overview(shared.clone()));
        tasks.spawn(starter::give_back_overdue(shared.clone()));
        Self { shared, tasks }
    }

    /// The signal the API sends after an enqueue, so the dispatcher looks at once.
    #[must_use]
    pub fn waker(&self) -> Arc<Notify> {
        self.shared.wake.clone()
    }

    /// What the API calls to start runs on this node the moment they are stored.
    #[must_use]
    pub fn starter(&self) -> Arc<dyn plinth_store::Starter> {
        Arc::new(starter::EngineStarter(self.shared.clone()))
    }

    /// Attempts executing now.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.shared.inflight.len()
    }

    /// Stops claiming, lets running attempts finish for `grace`, stops and releases what
    /// remains (back to the queue, the attempt not counted), then stops the services.
    pub async fn shutdown(mut self, grace: Duration) -> ShutdownReport {
        self.shared.no_claims.cancel();
        let before = self.shared.inflight.len();
        let deadline = tokio::time::Instant::now() + grace;
        while !self.shared.inflight.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let released = self.shared.inflight.release_all();
        // Why: released attempts still have to stop their handler (SIGTERM, grace, SIGKILL)
        // and write their release; give them that long and a little more.
        let wait = self.shared.config.kill_grace + Duration::from_secs(2);
        let deadline = tokio::time::Instant::now() + wait;
        while !self.shared.inflight.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.shared.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
        ShutdownReport { finished: before.saturating_sub(released), released }
    }
}
