//! One leader among the nodes of a schema, for the upkeep every node could do but one is
//! enough for (rescue, prune): the node whose own connection holds a session advisory lock.
//!
//! The lock lives as long as that connection: when the leader dies or loses the database,
//! PostgreSQL releases it, and the next node to ask takes it. Each call checks the connection
//! still answers, so a leader cut off from the database stops leading at its next call.

use super::OP_TIMEOUT;
use sqlx::{PgConnection, PgPool};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Mutex;

#[derive(Debug)]
pub(crate) struct Leader {
    key: i64,
    schema: String,
    conn: Mutex<Option<PgConnection>>,
    leading: AtomicBool,
}

impl Leader {
    pub(crate) fn new(key: i64, schema: &str) -> Self {
        Self { key, schema: schema.to_string(), conn: Mutex::new(None), leading: AtomicBool::new(false) }
    }

    /// Whether this node leads now: keeps the lock it holds, or tries to take it.
    pub(crate) async fn lead(&self, pool: &PgPool) -> bool {
        let mut guard = self.conn.lock().await;
        if guard.is_none() {
            match tokio::time::timeout(OP_TIMEOUT, pool.acquire()).await {
                // Why: detached, the connection leaves the pool's count and is never handed
                // to a query that could end its session by mistake.
                Ok(Ok(c)) => *guard = Some(c.detach()),
                _ => return self.set(false),
            }
        }
        let Some(conn) = guard.as_mut() else { return self.set(false) };
        let asked = if self.leading.load(Ordering::Relaxed) {
            tokio::time::timeout(OP_TIMEOUT, sqlx::query_scalar::<_, bool>("SELECT TRUE").fetch_one(&mut *conn)).await
        } else {
            let take = sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)").bind(self.key).fetch_one(&mut *conn);
            tokio::time::timeout(OP_TIMEOUT, take).await
        };
        match asked {
            Ok(Ok(leads)) => self.set(leads),
            Ok(Err(_)) | Err(_) => {
                // Why: a connection that failed may be dead or half-open; dropping it ends
                // its session (and any lock it held) from our side too.
                *guard = None;
                self.set(false)
            }
        }
    }

    fn set(&self, leads: bool) -> bool {
        let was = self.leading.swap(leads, Ordering::Relaxed);
        if leads && !was {
            tracing::info!(schema = %self.schema, "this node now leads the upkeep (rescue of lost leases, pruning)");
        } else if was && !leads {
            tracing::warn!(schema = %self.schema, "this node no longer leads the upkeep; another node takes over");
        }
        leads
    }

    /// Gives the lock up (at shutdown), so another node leads at once.
    pub(crate) async fn resign(&self) {
        let mut guard = self.conn.lock().await;
        if let Some(conn) = guard.take() {
            let _ = tokio::time::timeout(OP_TIMEOUT, sqlx::Connection::close(conn)).await;
        }
        self.set(false);
    }
}
