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

#[derive(Debug)]
pub(crate) struct Dedicated {
    pool: PgPool,
    conn: Option<PgConnection>,
    /// Whether the last use failed before it had a connection (the database is unreachable).
    unreachable: bool,
}

impl Dedicated {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self { pool, conn: None, unreachable: false }
    }

    /// Runs `work` on the connection (made first if needed), for at most the store's timeout;
    /// on an error or a timeout the connection is dropped.
    pub(crate) async fn run<T, F>(&mut self, work: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut PgConnection) -> Result<T, StoreError>,
    {
        let pool = self.pool.clone();
        let slot = &mut self.conn;
        let unreachable = &mut self.unreachable;
        *unreachable = false;
        let result = timed(async {
            if slot.is_none() {
                *unreachable = true;
                *slot = Some(pool.acquire().await?.detach());
                *unreachable = false;
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
