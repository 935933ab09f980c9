//! A node takes no more runs while as many ends as its room wait to be written (`Load::full`):
//! a handler's slot is free as soon as it returns, and before this bound a node whose ends were
//! written slower than its handlers returned claimed run after run, each waiting in memory for
//! its end. On PostgreSQL, where a row lock taken by the test holds the ends' writes for as
//! long as the test needs. Needs `PLINTH_TEST_DATABASE_URL`; without it the tests say they are
//! skipped (and fail under CI).

use crate::harness::{component, database_url, rust_fn};
use plinth_core::metrics::Metrics;
use plinth_core::timefmt::now_micros;
use plinth_core::{NewRun, RunStatus};
use plinth_engine::{Engine, EngineConfig, HandlerContext, Handlers};
use plinth_store::Store;
use plinth_store::postgres::{PostgresStore, drop_schema};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Default)]
struct Signals {
    /// The gate's handler started.
    in_gate: Notify,
    /// The gate's handler may return.
    gate_go: Notify,
    /// Calls of the quick handler.
    quick: AtomicU32,
}

fn handlers(s: Arc<Signals>) -> Handlers {
    let mut h = Handlers::builtin();
    let s1 = s.clone();
    h.register("gate", move |_ctx: HandlerContext, _input: Value| {
        let s = s1.clone();
        async move {
            s.in_gate.notify_one();
            s.gate_go.notified().await;
            Ok(json!("gate"))
        }
    });
    h.register("quick", move |_ctx: HandlerContext, _input: Value| {
        let s = s.clone();
        async move {
            s.quick.fetch_add(1, Ordering::SeqCst);
            Ok(json!("quick"))
        }
    });
    h
}

struct Node {
    url: String,
    schema: String,
    store: Arc<dyn Store>,
    engine: Option<Engine>,
    component: Arc<plinth_core::component::Component>,
    _dir: tempfile::TempDir,
}

impl Node {
    /// Two worker slots and a room of two: no run waits on the node for a slot
    /// (`wait_here_at_most` zero), so the room is the slots.
    async fn start(url: String, signals: Arc<Signals>) -> Self {
        let schema = format!("plinth_test_{}", plinth_core::ids::new_run_id().to_lowercase());
        let dir = tempfile::tempdir().expect("temp dir");
        let policy = "{retries: {max_attempts: 1}}";
        let functions = format!("{}{}", rust_fn("gate", "gate", policy), rust_fn("quick", "quick", policy));
        let component = Arc::new(component(&functions, dir.path().to_path_buf()));
        let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url, &schema).await.expect("connect"));
        let config = EngineConfig {
            workers: 2,
            claim_batch: 2,
            lease: Duration::from_secs(10),
            wait_here_at_most: Duration::ZERO,
            ..Default::default()
        };
        let engine = Engine::start(
            store.clone(),
            Arc::new(plinth_core::component::Live::new((*component).clone())),
            Arc::new(handlers(signals)),
            Arc::new(Metrics::new("p", "t")),
            config,
        );
        Self { url, schema, store, engine: Some(engine), component, _dir: dir }
    }

    async fn enqueue(&self, function: &str) -> String {
        let (_, spec) = self.component.function(function).expect("function in the component");
        let run = NewRun::of(spec, json!({}), plinth_core::Trigger::Api, "corr", now_micros());
        let id = run.run_id.clone();
        self.store.enqueue(run).await.expect("enqueue");
        if let Some(e) = &self.engine {
            e.waker().notify_one();
        }
        id
    }

    async fn status(&self, id: &str) -> RunStatus {
        self.store.get(id, false).await.expect("get").expect("the run exists").status
    }

    async fn wait_terminal(&self, id: &str) -> RunStatus {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let status = self.status(id).await;
            if status.is_terminal() || std::time::Instant::now() > deadline {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Locks the run's row from a connection of the test's own: the batch that writes its
    /// end, and the ends written after it, wait until the returned transaction ends.
    async fn hold_row(&self, id: &str) -> sqlx::Transaction<'static, sqlx::Postgres> {
        let pool = sqlx::PgPool::connect(&self.url).await.expect("the test's connection");
        let mut tx = pool.begin().await.expect("begin");
        let sql = format!("SELECT 1 FROM \"{}\".runs WHERE id = $1 FOR UPDATE", self.schema);
        sqlx::query(&sql).bind(id).execute(&mut *tx).await.expect("lock the run's row");
        tx
    }

    async fn stop(mut self) {
        if let Some(e) = self.engine.take() {
            e.shutdown(Duration::from_secs(5)).await;
        }
        drop(self.store);
        drop_schema(&self.url, &self.schema).await.expect("drop the scratch schema");
    }
}

async fn until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "not within {secs} s: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_its_room_of_ends_unwritten_claims_nothing_until_they_are_written() {
    let Some(url) = database_url("the end-write engine tests") else { return };
    let s = Arc::new(Signals::default());
    let node = Node::start(url, s.clone()).await;
    let gate = node.enqueue("gate").await;
    tokio::time::timeout(Duration::from_secs(10), s.in_gate.notified()).await.expect("the gate's handler starts");
    let held = node.hold_row(&gate).await;
    s.gate_go.notify_one();
    // The gate's end waits on the lock: one end unwritten, the room is two.
    let first = node.enqueue("quick").await;
    until("the first quick run's handler runs beside the unwritten end", 10, || s.quick.load(Ordering::SeqCst) == 1).await;
    // Two ends unwritten now (the gate's and the first quick run's): the room is full.
    let later = [node.enqueue("quick").await, node.enqueue("quick").await];
    // Why 1.5 s: the dispatcher is woken by each enqueue and polls every second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let calls_while_full = s.quick.load(Ordering::SeqCst);
    let statuses = [node.status(&later[0]).await, node.status(&later[1]).await];
    held.rollback().await.expect("release the row");
    let ends = [
        node.wait_terminal(&gate).await,
        node.wait_terminal(&first).await,
        node.wait_terminal(&later[0]).await,
        node.wait_terminal(&later[1]).await,
    ];
    let calls = s.quick.load(Ordering::SeqCst);
    node.stop().await;
    assert_eq!(calls_while_full, 1, "runs were claimed and run while the node's room of ends waited to be written");
    assert_eq!(statuses, [RunStatus::Queued, RunStatus::Queued], "the later runs stay in the queue, free for other nodes");
    assert_eq!(ends, [RunStatus::Succeeded; 4], "every run ends once the ends are written");
    assert_eq!(calls, 3, "each quick run ran once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_end_unwritten_leaves_room_for_another_run() {
    let Some(url) = database_url("the end-write engine tests") else { return };
    let s = Arc::new(Signals::default());
    let node = Node::start(url, s.clone()).await;
    let gate = node.enqueue("gate").await;
    tokio::time::timeout(Duration::from_secs(10), s.in_gate.notified()).await.expect("the gate's handler starts");
    let held = node.hold_row(&gate).await;
    s.gate_go.notify_one();
    let quick = node.enqueue("quick").await;
    let ran = tokio::time::timeout(Duration::from_secs(5), async {
        while s.quick.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .is_ok();
    held.rollback().await.expect("release the row");
    let ends = [node.wait_terminal(&gate).await, node.wait_terminal(&quick).await];
    node.stop().await;
    assert!(ran, "a run waited although only one end of a room of two was unwritten");
    assert_eq!(ends, [RunStatus::Succeeded; 2]);
}
