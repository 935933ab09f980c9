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
}

impl Dedicated {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self { pool, conn: None }
    }

    /// Runs `work` on the connection (made first if needed), for at most the store's timeout;
    /// on an error or a timeout the connection is dropped.
    pub(crate) async fn run<T, F>(&mut self, work: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut PgConnection) -> Result<T, StoreError>,
    {
        let pool = self.pool.clone();
        let slot = &mut self.conn;
        let result = timed(async {
            if slot.is_none() {
                *slot = Some(pool.acquire().await?.detach());
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
}
