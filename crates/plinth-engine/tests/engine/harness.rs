//! Shared set-up: a temp dir with a SQLite store, a component from inline YAML, an engine.

use plinth_core::component::Component;
use plinth_core::metrics::Metrics;
use plinth_core::timefmt::now_micros;
use plinth_core::{NewRun, Run};
use plinth_engine::{Engine, EngineConfig, Handlers};
use plinth_store::sqlite::{SqliteStore, Synchronous};
use plinth_store::{Enqueued, LogEntry, Store};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The longest any test waits for a run to reach a state.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// An engine config with short leases and grace periods.
pub(crate) fn config() -> EngineConfig {
    EngineConfig { lease: Duration::from_secs(2), kill_grace: Duration::from_millis(200), ..Default::default() }
}

/// The PostgreSQL database of the tests that need one (`PLINTH_TEST_DATABASE_URL`); without
/// it, `what` says loudly that it is skipped, except under CI, where it fails.
pub(crate) fn database_url(what: &str) -> Option<String> {
    if let Some(url) = std::env::var("PLINTH_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        return Some(url);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(!ci, "PLINTH_TEST_DATABASE_URL must be set under CI: {what} cannot be skipped there");
    eprintln!("\n!!!!! {what} SKIPPED: PLINTH_TEST_DATABASE_URL is not set !!!!!\n");
    None
}

/// A function whose handler is the command `argv`; `policy` is a YAML flow mapping or "".
pub(crate) fn command_fn(name: &str, argv: &[&str], policy: &str) -> String {
    let argv = serde_json::to_string(argv).expect("argv as JSON");
    let mut f = format!("  - name: {name}\n    handler:\n      command:\n        argv: {argv}\n");
    if !policy.is_empty() {
        f.push_str(&format!("    policy: {policy}\n"));
    }
    f
}

/// A function whose handler is `sh -c script`.
pub(crate) fn sh_fn(name: &str, script: &str, policy: &str) -> String {
    command_fn(name, &["sh", "-c", script], policy)
}

/// A function whose handler is the in-process handler registered as `handler`.
pub(crate) fn rust_fn(name: &str, handler: &str, policy: &str) -> String {
    let mut f = format!("  - name: {name}\n    handler:\n      rust: {handler}\n");
    if !policy.is_empty() {
        f.push_str(&format!("    policy: {policy}\n"));
    }
    f
}

/// Parses a component made of `functions` (concatenated `*_fn` results).
pub(crate) fn component(functions: &str, base_dir: PathBuf) -> Component {
    let yaml = format!("component:\n  name: engine-test\n  version: \"1\"\nfunctions:\n{functions}");
    Component::parse(&yaml, "inline.yaml", base_dir.join("component.yaml"), base_dir)
        .unwrap_or_else(|e| panic!("component does not parse: {e}\n{yaml}"))
}

/// A store, a component and (once started) an engine.
pub(crate) struct Harness {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) component: Arc<Component>,
    pub(crate) engine: Option<Engine>,
    /// The metrics the engine counts into, once started.
    pub(crate) metrics: Arc<Metrics>,
}

impl Harness {
    /// A fresh store and component; no engine yet.
    pub(crate) fn new(functions: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("db"), Synchronous::Normal).expect("open store");
        let component = Arc::new(component(functions, dir.path().to_path_buf()));
        Self { dir, store: Arc::new(store), component, engine: None, metrics: Arc::new(Metrics::new("plinth", "t")) }
    }

    /// Starts the engine with the built-in handlers plus `extra`.
    pub(crate) fn start(&mut self, extra: impl FnOnce(&mut Handlers), config: EngineConfig) {
        let mut handlers = Handlers::builtin();
        extra(&mut handlers);
        Engine::check_handlers(&self.component, &handlers).expect("every handler is registered");
        let engine = Engine::start(
            self.store.clone(),
            Arc::new(plinth_core::component::Live::new((*self.component).clone())),
            Arc::new(handlers),
            self.metrics.clone(),
            config,
        );
        self.engine = Some(engine);
    }

    /// A new store and component with the engine started.
    pub(crate) fn started(functions: &str, extra: impl FnOnce(&mut Handlers), config: EngineConfig) -> Self {
        let mut h = Self::new(functions);
        h.start(extra, config);
        h
    }

    /// A file in the test's temp dir.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The run as `function` with `input` would be enqueued, due at `not_before`.
    pub(crate) fn new_run(&self, function: &str, input: Value, not_before: i64) -> NewRun {
        let (_, spec) = self.component.function(function).expect("function in the component");
        let run = NewRun::of(spec, input, plinth_core::Trigger::Api, &format!("corr-{function}"), now_micros());
        NewRun { not_before, max_queued: None, ..run }
    }

    /// Enqueues a run due at `not_before` and wakes the dispatcher.
    pub(crate) async fn enqueue_at(&self, function: &str, input: Value, not_before: i64) -> String {
        let run = self.new_run(function, input, not_before);
        let id = match self.store.enqueue(run).await.expect("enqueue") {
            Enqueued::Created(r) | Enqueued::Debounced(r) => r.run_id,
            Enqueued::Replayed(r) => panic!("unexpected replay of {}", r.run_id),
        };
        if let Some(engine) = &self.engine {
            engine.waker().notify_one();
        }
        id
    }

    /// Enqueues a run due now and wakes the dispatcher.
    pub(crate) async fn enqueue(&self, function: &str, input: Value) -> String {
        self.enqueue_at(function, input, now_micros()).await
    }

    /// The run with its attempts.
    pub(crate) async fn get(&self, id: &str) -> Run {
        self.store.get(id, true).await.expect("get").expect("the run exists")
    }

    /// The run's log lines.
    pub(crate) async fn logs(&self, id: &str) -> Vec<LogEntry> {
        self.store.logs(id).await.expect("logs").expect("the run exists")
    }

    /// Waits (at most [`WAIT`]) until the run satisfies `pred`.
    pub(crate) async fn wait_for(&self, id: &str, what: &str, pred: impl Fn(&Run) -> bool) -> Run {
        let poll = async {
            loop {
                // Why: register before reading, so a finish in between is not missed.
                let rx = self.store.notifier().wait_terminal(id);
                let run = self.get(id).await;
                if pred(&run) {
                    return run;
                }
                let _ = tokio::time::timeout(Duration::from_millis(50), rx).await;
            }
        };
        let found = tokio::time::timeout(WAIT, poll).await;
        self.store.notifier().forget_closed(id);
        match found {
            Ok(run) => run,
            Err(_) => panic!("run {id} did not become {what} within {WAIT:?}: {:#?}", self.get(id).await),
        }
    }

    /// Waits (at most [`WAIT`]) until the run is terminal.
    pub(crate) async fn wait_terminal(&self, id: &str) -> Run {
        self.wait_for(id, "terminal", |r| r.status.is_terminal()).await
    }

    /// Waits (at most five seconds) until `n` attempts are in flight; returns whether they
    /// are. Why: an attempt enters the in-flight table just after its claim is written, and
    /// leaves it just after its end is written, so the store is a little ahead of the table.
    pub(crate) async fn in_flight_becomes(&self, n: usize) -> bool {
        let engine = self.engine.as_ref().expect("engine");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while engine.in_flight() != n && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        engine.in_flight() == n
    }

    /// Waits (at most five seconds) until no attempt is in flight; returns whether none is.
    pub(crate) async fn idle(&self) -> bool {
        self.in_flight_becomes(0).await
    }

    /// Waits (at most [`WAIT`]) until the run is running.
    pub(crate) async fn wait_running(&self, id: &str) -> Run {
        self.wait_for(id, "running", |r| r.status == plinth_core::RunStatus::Running).await
    }
}

/// The code of the run's error.
pub(crate) fn code(run: &Run) -> &str {
    run.error.as_ref().map_or("(no error)", |e| e.code.as_str())
}

/// The outcomes of the run's recorded attempts, in order.
pub(crate) fn outcomes(run: &Run) -> Vec<String> {
    run.attempts.as_ref().expect("attempts were asked for").iter().map(|a| a.outcome.clone()).collect()
}

/// Whether the process `pid` exists and is not a zombie.
pub(crate) fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// Reads a pid a handler wrote, waiting for the file to appear.
pub(crate) async fn read_pid(path: &std::path::Path) -> u32 {
    let read = async {
        loop {
            if let Ok(text) = std::fs::read_to_string(path)
                && let Ok(pid) = text.trim().parse::<u32>()
            {
                return pid;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, read).await.unwrap_or_else(|_| panic!("no pid in {}", path.display()))
}

/// Serves `app` on a free loopback port; its base URL (`http://127.0.0.1:PORT`).
pub(crate) async fn serve_app(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    format!("http://{addr}")
}
