//! A connection of its own for a hot path (batched inserts, batched ends, claims).
//!
//! sqlx's pool pings a connection when it is handed out and again when it is given back: two
//! round trips per use. A batch loop or the dispatcher uses one connection all the time, so it
//! keeps one, detached from the pool, and drops it on any error (its state is then unknown;
//! dropping it ends the session, which rolls back what it had begun). The next use connects
//! again, so a database that comes back is used again without a restart.

use super::timed;
use crate::StoreError;
use sqlx::{PgConnection, PgPool};

/// The session setting of the claims' and the ends' connections: one plan per statement,
/// made once. Why: by default PostgreSQL keeps planning a statement for its parameters when
/// the generic plan's estimate looks dearer, and which way it goes changed from one run to the
/// next. Measured with `pg_stat_statements` over 40,000 runs: the claim was planned at 1,468
/// of its 1,596 calls (0.52 ms each, a third of its cost), and in another run the batch of ends
/// at 2,389 of its 2,572 calls (0.44 ms each). Both statements are written so that their
/// generic plan reads each run by primary key (claim in leases.rs, ends in finish.rs). The
/// flow-control lanes ask for custom plans in their own transactions (flow.rs).
/// The store's own connections set it with more ([`ENDS_SETUP`], [`CLAIM_SETUP`], the log
/// lines'); the whole pool sets it on partitioned run tables
/// ([`super::connect::PARTITIONED_SETUP`]); alone, it is what the plan tests compare against.
#[cfg(test)]
pub(crate) const GENERIC_PLANS: &str = "SET plan_cache_mode = force_generic_plan";

/// The batched ends' connection: [`GENERIC_PLANS`], and each run and attempt read by its key in
/// a nested loop, whatever the statistics. Why: the plan is made on the connection's first
/// batch, often while the tables are empty. On one table the ends read by primary key all the
/// same (finish.rs). On tables partitioned by run id (decision 0026's plan), the plan made on
/// empty partitions hashed every partition for each batch; in a nested loop keyed by the run's
/// id, PostgreSQL prunes the partitions a run is not in as the statement runs, so a batch reads
/// one partition whatever their number (`postgres/tests/partitioned.rs`, session 46).
pub(crate) const ENDS_SETUP: &str = "SET plan_cache_mode = force_generic_plan; SET enable_hashjoin = off; \
    SET enable_mergejoin = off; SET enable_material = off; SET enable_seqscan = off";

/// The claims' connection: [`GENERIC_PLANS`], and no sort where an index can give the order.
/// Why: the claim's probe of each wanted function and its pick of a function's runs ask for
/// the queue's order (`ORDER BY priority DESC, next_attempt_at, id`), which `runs_queue` gives
/// as it is read. With statistics taken while little was queued (before a burst, say), the
/// planner priced every way alike and took `runs_due` instead: all due runs, filtered by
/// function, then sorted, once per wanted function. With 28,000 runs of one function queued
/// the probe took 97 ms; during a burst of 200,000 event runs, 350 to 773 ms per claim
/// (session 37). Sorting cannot be forbidden outright; this makes a plan that needs one the
/// last resort. Why no JIT: a plan that sorts all the same (the lease of a function's due
/// waits merges them with its queue, a few dozen rows) is priced past the JIT thresholds by
/// that penalty, and compiling it took 235 to 296 ms per claim (session 39). Why no hash or
/// merge join: the runs a claim picks are updated through a join on their id
/// ([`super::leases::claim_sql`]), which must stay a nested loop reading each one by primary key
/// (on tables partitioned by run id, the loop's id is what prunes the other partitions as the
/// statement runs; hashed, the picked runs were matched against every partition read whole).
/// Why no sequential scan: the plan is made on the connection's first claim, often while the
/// tables are empty. On one table the planner reads the queue's and the waits' indexes all the
/// same; on tables partitioned by run id, the plan made on empty partitions read every
/// partition whole to find the due waits, once per claim (session 47: 29.7 million rows read
/// in 653 claims of a closed loop, PostgreSQL two-thirds of the machine).
pub(crate) const CLAIM_SETUP: &str = "SET plan_cache_mode = force_generic_plan; SET enable_sort = off; SET jit = off; \
    SET enable_hashjoin = off; SET enable_mergejoin = off; SET enable_seqscan = off";

#[derive(Debug)]
pub(crate) struct Dedicated {
    pool: PgPool,
    conn: Option<PgConnection>,
    /// Run once on each new connection before its first use (session settings).
    setup: Option<&'static str>,
    /// Whether the last use failed before it had a connection (the database is unreachable).
    unreachable: bool,
}

impl Dedicated {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self { pool, conn: None, setup: None, unreachable: false }
    }

    /// As [`Dedicated::new`], running `setup` on each connection it makes before its first use.
    pub(crate) fn with_setup(pool: PgPool, setup: &'static str) -> Self {
        Self { setup: Some(setup), ..Self::new(pool) }
    }

    /// Runs `work` on the connection (made first if needed), for at most the store's timeout;
    /// on an error or a timeout the connection is dropped.
    pub(crate) async fn run<T, F>(&mut self, work: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut PgConnection) -> Result<T, StoreError>,
    {
        let pool = self.pool.clone();
        let slot = &mut self.conn;
        let setup = self.setup;
        let unreachable = &mut self.unreachable;
        *unreachable = false;
        let result = timed(async {
            if slot.is_none() {
                *unreachable = true;
                let mut conn = pool.acquire().await?.detach();
                *unreachable = false;
                if let Some(sql) = setup {
                    // A string with no parameters goes as a simple query: it may hold several.
                    sqlx::Executor::execute(&mut conn, sql).await?;
                }
                *slot = Some(conn);
            }
            match slot.as_mut() {
                Some(conn) => work(conn).await,
                None => Err(StoreError::Unavailable("no connection".into())),
            }
        })
        .await;
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    /// Whether the last use failed for want of a connection: then every job of a batch would
    /// fail the same way, and trying them one by one would only make callers wait.
    pub(crate) fn unreachable(&self) -> bool {
        self.unreachable
    }
}
