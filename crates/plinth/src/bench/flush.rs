//! A probe of the disk beside each paced round: an 8 kB write and its `fdatasync` every 20 ms,
//! in the benchmark's folder. Why: a durable `POST /run` waits for a flush of the log, and on
//! these shared machines the paced tail followed how long the disk took to flush (with
//! PostgreSQL's `synchronous_commit` off for a measure, it fell to SQLite's; docs/scaling.md,
//! session 31). So each round says what the disk did meanwhile, and a tail can be read against
//! it. The probe adds 50 small flushes a second to the thousand or so the server makes.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the probe flushes.
const EVERY: Duration = Duration::from_millis(20);
/// What it writes each time: one page of PostgreSQL's log.
const PAGE: usize = 8192;
/// Pages it cycles over, so each write lands on a block already allocated.
const PAGES: u64 = 16;

/// A running probe; [`Probe::finish`] stops it and gives its flushes' latencies.
pub(crate) struct Probe {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<Vec<u64>, String>>,
    path: PathBuf,
}

impl Probe {
    /// Starts flushing a file of its own in `dir` (created when missing).
    pub(crate) fn start(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join("flush-probe");
        let file = File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let page = vec![0x5a_u8; PAGE];
        for i in 0..PAGES {
            file.write_all_at(&page, i * PAGE as u64).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        file.sync_all().map_err(|e| format!("cannot flush {}: {e}", path.display()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::task::spawn_blocking(move || flushes(&file, &page, &flag));
        Ok(Self { stop, task, path })
    }

    /// Stops the probe, removes its file; the latency of each flush, in microseconds.
    pub(crate) async fn finish(self) -> Result<Vec<u64>, String> {
        self.stop.store(true, Ordering::Relaxed);
        let flushes = self.task.await.map_err(|e| format!("the flush probe failed: {e}"))?;
        let _ = std::fs::remove_file(&self.path);
        flushes
    }
}

/// Writes a page and flushes it every [`EVERY`] until `stop`; each write-and-flush's latency.
fn flushes(file: &File, page: &[u8], stop: &AtomicBool) -> Result<Vec<u64>, String> {
    let mut micros = Vec::new();
    let mut i = 0_u64;
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        file.write_all_at(page, (i % PAGES) * PAGE as u64).map_err(|e| format!("the flush probe cannot write: {e}"))?;
        file.sync_data().map_err(|e| format!("the flush probe cannot flush: {e}"))?;
        let took = t.elapsed();
        micros.push(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
        i += 1;
        std::thread::sleep(EVERY.saturating_sub(took));
    }
    Ok(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_probe_flushes_until_stopped_and_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let probe = Probe::start(&dir.path().join("new")).expect("started");
        tokio::time::sleep(Duration::from_millis(150)).await;
        let flushes = probe.finish().await.expect("finished");
        assert!(flushes.len() >= 2, "a flush every 20 ms: {flushes:?}");
        assert!(!dir.path().join("new").join("flush-probe").exists(), "its file is removed");
    }

    #[tokio::test]
    async fn a_probe_stopped_at_once_gives_what_it_flushed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let flushes = Probe::start(dir.path()).expect("started").finish().await.expect("finished");
        // Why not `<= 1`: on a loaded machine the stop can reach the probe a round or two late.
        assert!(flushes.len() < 10, "it stops at the next check, not at the end of a round: {flushes:?}");
        assert!(!dir.path().join("flush-probe").exists(), "its file is removed");
    }

    #[test]
    fn a_folder_it_cannot_create_is_an_error() {
        let file = tempfile::NamedTempFile::new().expect("file");
        let err = Probe::start(&file.path().join("below")).err().expect("refused");
        assert!(err.contains("cannot create"), "{err}");
    }
}
