//! One node on a scratch PostgreSQL schema, for the tests that hold a write with a row lock of
//! their own (`step_writes.rs`, `end_writes.rs`) or slow a commit down (`lost_claim.rs`).

use crate::harness::component;
use plinth_core::metrics::Metrics;
use plinth_core::timefmt::now_micros;
use plinth_core::{NewRun, Run};
use plinth_engine::{Engine, EngineConfig, Handlers};
use plinth_store::Store;
use plinth_store::postgres::{PostgresStore, drop_schema};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct PgNode {
    url: String,
    schema: String,
    pub(crate) store: Arc<dyn Store>,
    engine: Option<Engine>,
    component: Arc<plinth_core::component::Component>,
    _dir: tempfile::TempDir,
}

impl PgNode {
    /// A node serving `functions` (YAML list items) with `handlers` and `config`.
    pub(crate) async fn start(url: String, functions: &str, handlers: Handlers, config: EngineConfig) -> Self {
        let schema = format!("plinth_test_{}", plinth_core::ids::new_run_id().to_lowercase());
        let dir = tempfile::tempdir().expect("temp dir");
        let component = Arc::new(component(functions, dir.path().to_path_buf()));
        let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url, &schema).await.expect("connect"));
        let engine = Engine::start(
            store.clone(),
            Arc::new(plinth_core::component::Live::new((*component).clone())),
            Arc::new(handlers),
            Arc::new(Metrics::new("p", "t")),
            config,
        );
        Self { url, schema, store, engine: Some(engine), component, _dir: dir }
    }

    pub(crate) async fn enqueue(&self, function: &str, input: Value) -> String {
        let (_, spec) = self.component.function(function).expect("function in the component");
        let run = NewRun::of(spec, input, plinth_core::Trigger::Api, "corr", now_micros());
        let id = run.run_id.clone();
        self.store.enqueue(run).await.expect("enqueue");
        if let Some(e) = &self.engine {
            e.waker().notify_one();
        }
        id
    }

    pub(crate) async fn run(&self, id: &str) -> Run {
        self.store.get(id, true).await.expect("get").expect("the run exists")
    }

    /// The run once it is terminal, or as it is after 20 s.
    pub(crate) async fn wait_terminal(&self, id: &str) -> Run {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let run = self.run(id).await;
            if run.status.is_terminal() || std::time::Instant::now() > deadline {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Locks the run's row from a connection of the test's own: a write that locks that row
    /// (a step's save, the batch writing its end) waits until the returned transaction ends.
    pub(crate) async fn hold_row(&self, id: &str) -> sqlx::Transaction<'static, sqlx::Postgres> {
        let pool = sqlx::PgPool::connect(&self.url).await.expect("the test's connection");
        let mut tx = pool.begin().await.expect("begin");
        let sql = format!("SELECT 1 FROM \"{}\".runs WHERE id = $1 FOR UPDATE", self.schema);
        sqlx::query(&sql).bind(id).execute(&mut *tx).await.expect("lock the run's row");
        tx
    }

    /// Runs `sql` (one statement or several) with the node's schema first on the search path.
    pub(crate) async fn execute(&self, sql: &str) {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&self.url).await.expect("the test's connection");
        let sql = format!("SET search_path TO \"{}\"; {sql}", self.schema);
        sqlx::Executor::execute(&mut conn, sql.as_str()).await.expect("the test's statements");
    }

    pub(crate) async fn stop(mut self) {
        if let Some(e) = self.engine.take() {
            e.shutdown(Duration::from_secs(5)).await;
        }
        drop(self.store);
        drop_schema(&self.url, &self.schema).await.expect("drop the scratch schema");
    }
}
