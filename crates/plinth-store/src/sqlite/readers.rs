//! The store's read-only connections, and how many reads run at once.
//!
//! Why a bound: each read runs on a thread of tokio's blocking pool with a connection of its
//! own. Unbounded, 64 clients reading at once made 64 threads and opened 56 connections beyond
//! the eight kept idle (each parsing the schema, then closed after one read); the threads stay
//! for ten seconds, each with the memory its allocator keeps. On two cores, more reads at once
//! than the connections kept idle only wait for the CPU; they now wait for a connection
//! instead, without a thread.

use super::stable_plans;
use crate::StoreError;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Semaphore;

pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// One permit per connection: a read holds one from before its thread starts to after its
    /// connection is back.
    permits: Arc<Semaphore>,
}

impl Readers {
    /// The most reads at once, and the connections kept open for them.
    pub(super) const MOST: usize = 8;
    /// Each reader's page cache, in KiB.
    const CACHE_KIB: u32 = 256;

    pub(super) fn new(path: &Path) -> Self {
        Self { path: path.to_path_buf(), idle: Mutex::new(Vec::new()), permits: Arc::new(Semaphore::new(Self::MOST)) }
    }

    /// Runs `f` on a read-only connection, on a blocking thread, once one of the
    /// [`Self::MOST`] permits is free.
    pub(super) async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        // Why owned: the permit goes with the blocking task, which runs to its end even when the
        // caller stops waiting for it.
        let permit =
            self.permits.clone().acquire_owned().await.map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        let readers = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = readers.take()?;
            let result = f(&conn);
            readers.put(conn);
            result.map_err(StoreError::from)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("reader task failed: {e}")))?
    }

    /// How many reads may start now (for tests).
    #[cfg(test)]
    pub(super) fn free(&self) -> usize {
        self.permits.available_permits()
    }

    /// How many connections are open and idle (for tests).
    #[cfg(test)]
    pub(super) fn idle(&self) -> usize {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    fn take(&self) -> Result<Connection, StoreError> {
        if let Some(c) = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop() {
            return Ok(c);
        }
        let conn = Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        stable_plans(&conn)?;
        // Why: a reader's page cache is dropped whenever the writer commits (WAL), so on a busy
        // store it rarely helps, while up to nine readers at SQLite's default 2 MiB each grew the
        // server by over 12 MiB as the file grew (bench: 100,000 waiting runs parked). The
        // kernel's page cache still holds the file.
        conn.execute_batch(&format!("PRAGMA cache_size = -{};", Self::CACHE_KIB))?;
        Ok(conn)
    }

    fn put(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < Self::MOST {
            idle.push(conn);
        }
    }
}
