//! What the flat-at-scale measure does behind the server's back, while no server runs: it checks
//! the free disk first, fills the store with copies of real runs (`plinth_store::copies`), weighs
//! the store, and times the claim the dispatcher makes, through the store itself.

use super::super::load::Progress;
use super::super::stats;
use plinth_store::copies::RunCopies;
use plinth_store::{ClaimRequest, FlowLimit, Store};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Bytes a run is taken to need while the store is filled, for the disk check: above what was
/// measured (`disk.bytes_per_finished_run` in the report), with room for the WAL.
pub(crate) const BYTES_PER_RUN_SQLITE: u64 = 1_500;
pub(crate) const BYTES_PER_RUN_POSTGRES: u64 = 2_000;
/// Free space kept aside on top of the estimate.
const SPARE_BYTES: u64 = 2 << 30;
/// Runs copied per statement (one transaction each).
const CHUNK: u64 = 200_000;

/// Where the store under measure lives.
#[derive(Debug, Clone)]
pub(crate) enum Place {
    Sqlite(PathBuf),
    Postgres { url: String, schema: String },
}

/// The free bytes where the store's files go, when they can be seen from here: the SQLite file's
/// folder; PostgreSQL's data directory when the server is on this machine and tells where it is.
pub(crate) async fn free_bytes(place: &Place) -> Result<Option<(String, u64)>, String> {
    let dir = match place {
        Place::Sqlite(path) => path.parent().map(Path::to_path_buf),
        Place::Postgres { url, .. } => plinth_store::copies::postgres::data_directory(url)
            .await
            .map_err(|e| format!("cannot ask PostgreSQL for its data directory: {e}"))?
            .map(PathBuf::from),
    };
    let Some(dir) = dir.filter(|d| d.exists()) else { return Ok(None) };
    let st = nix::sys::statvfs::statvfs(&dir).map_err(|e| format!("cannot read the free space of {}: {e}", dir.display()))?;
    #[allow(clippy::unnecessary_cast)]
    let free = (st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64);
    Ok(Some((dir.display().to_string(), free)))
}

/// Refuses, before anything is written, a fill the free disk cannot hold.
pub(crate) fn check_room(runs: u64, per_run: u64, free: Option<&(String, u64)>) -> Result<u64, String> {
    let needed = runs.saturating_mul(per_run).saturating_add(SPARE_BYTES);
    if let Some((dir, free)) = free
        && needed > *free
    {
        return Err(format!(
            "--backlog and --history ask for {runs} runs, about {} GiB with {} GiB to spare, but {dir} has {} GiB free; \
             ask for fewer runs or free some space",
            gib(runs.saturating_mul(per_run)),
            gib(SPARE_BYTES),
            gib(*free)
        ));
    }
    Ok(needed)
}

#[allow(clippy::cast_precision_loss)]
fn gib(bytes: u64) -> f64 {
    stats::round3(bytes as f64 / f64::from(1u32 << 30))
}

/// Bytes the store takes: the SQLite file with its WAL, or the schema's tables with their indexes.
pub(crate) async fn store_bytes(place: &Place) -> Result<u64, String> {
    match place {
        Place::Sqlite(path) => {
            let size = |p: PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
            let wal = PathBuf::from(format!("{}-wal", path.display()));
            Ok(size(path.clone()) + size(wal))
        }
        Place::Postgres { url, schema } => {
            plinth_store::copies::postgres::schema_bytes(url, schema).await.map_err(|e| format!("cannot weigh the schema: {e}"))
        }
    }
}

/// Writes `count` copies of `template`, a chunk per transaction, with progress.
pub(crate) async fn copy(place: &Place, mut copies: RunCopies, progress: &mut Progress) -> Result<f64, String> {
    let (total, started) = (copies.count, Instant::now());
    let end = copies.first + total;
    let mut next = copies.first;
    while next < end {
        copies.first = next;
        copies.count = CHUNK.min(end - next);
        let written = match place {
            Place::Sqlite(path) => {
                let (path, chunk) = (path.clone(), copies.clone());
                tokio::task::spawn_blocking(move || plinth_store::copies::sqlite::copy_runs(&path, &chunk))
                    .await
                    .map_err(|e| format!("the copy task failed: {e}"))?
            }
            Place::Postgres { url, schema } => plinth_store::copies::postgres::copy_runs(url, schema, &copies).await,
        }
        .map_err(|e| format!("cannot copy run {}: {e}", copies.template))?;
        if written != copies.count {
            return Err(format!("copying run {} wrote {written} runs of {}: is it still stored?", copies.template, copies.count));
        }
        next += copies.count;
        progress.update(&format!("bench: scale: {} copies of {} written", next - (end - total), copies.template));
    }
    Ok(started.elapsed().as_secs_f64())
}

/// After a fill: PostgreSQL's statistics, which copies written in seconds have not had time to
/// get (runs that arrive one by one get them from autovacuum and the upkeep long before they
/// number a million), then a checkpoint. Why the checkpoint: the fill writes about 10 GB of
/// write-ahead log in three minutes, and the checkpoints it forces (every 8 s during the fill
/// with `max_wal_size` at 1 GB) were still writing when the full store was timed (the last one
/// ran 88 s), so its paced `POST /run` window met the fill's checkpoint, not the store's size
/// (p99 25.7 against 7.3 ms, p90 4.2 against 4.5; session 43). Runs arriving one by one over
/// days leave no such backlog. SQLite's plans do not rest on statistics, and it has no
/// background checkpoint to wait for.
pub(crate) async fn settle(place: &Place, progress: &mut Progress) -> Result<(), String> {
    match place {
        Place::Sqlite(_) => Ok(()),
        Place::Postgres { url, schema } => {
            use plinth_store::copies::postgres as pg;
            pg::analyze(url, schema).await.map_err(|e| format!("cannot analyze the copies: {e}"))?;
            let done = pg::checkpoint(url).await.map_err(|e| format!("cannot checkpoint after the fill: {e}"))?;
            if !done {
                progress.done(
                    "bench: scale: this role may not CHECKPOINT; the full store is timed with the fill's checkpoint pending",
                );
            }
            Ok(())
        }
    }
}

/// The store the servers use, opened by the benchmark while none runs.
enum Opened {
    Sqlite(plinth_store::sqlite::SqliteStore),
    // Why boxed: the PostgreSQL store is several times the SQLite one's size.
    Postgres(Box<plinth_store::postgres::PostgresStore>),
}

impl Opened {
    async fn open(place: &Place) -> Result<Self, String> {
        match place {
            Place::Sqlite(path) => plinth_store::sqlite::SqliteStore::open(path, plinth_store::sqlite::Synchronous::Full)
                .map(Self::Sqlite)
                .map_err(|e| format!("cannot open {}: {e}", path.display())),
            Place::Postgres { url, schema } => plinth_store::postgres::PostgresStore::connect(url, schema)
                .await
                .map(|s| Self::Postgres(Box::new(s)))
                .map_err(|e| format!("cannot connect to schema {schema}: {e}")),
        }
    }

    fn store(&self) -> &dyn Store {
        match self {
            Self::Sqlite(s) => s,
            Self::Postgres(s) => s.as_ref(),
        }
    }

    async fn close(self) {
        if let Self::Postgres(s) = self {
            s.close().await;
        }
    }
}

/// The claim a node makes when its workers are free: up to 10 runs of `free` (none queued) and
/// of `held` (its one key full, its queue behind it), `samples` times; the latencies (micros).
/// Nothing is claimed, so nothing changes.
pub(crate) async fn claim_cost(place: &Place, free: &str, held: &str, samples: usize) -> Result<Vec<u64>, String> {
    let opened = Opened::open(place).await?;
    let store = opened.store();
    let limits = Arc::new(HashMap::from([(held.to_string(), FlowLimit { concurrency: Some(1), throttle: None })]));
    let mut micros = Vec::with_capacity(samples);
    for _ in 0..samples.max(1) {
        let now = plinth_core::timefmt::now_micros();
        let req = ClaimRequest {
            owner: "bench-claim-cost".into(),
            now,
            lease_until: now + 30_000_000,
            wants: vec![(free.to_string(), 10), (held.to_string(), 10)],
            limit: 20,
            limits: limits.clone(),
        };
        let t = Instant::now();
        let claimed = store.claim(req).await;
        micros.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
        match claimed {
            Ok(c) if c.runs.is_empty() => {}
            Ok(c) => {
                opened.close().await;
                return Err(format!("the timed claim took {} runs; the store was not as the measure left it", c.runs.len()));
            }
            Err(e) => {
                opened.close().await;
                return Err(format!("claim: {e}"));
            }
        }
    }
    opened.close().await;
    Ok(micros)
}

#[cfg(test)]
mod tests {
    use super::check_room;

    #[test]
    fn a_fill_the_disk_cannot_hold_is_refused_before_it_starts() {
        let free = ("/data".to_string(), 10u64 << 30);
        assert!(check_room(1_000, 2_000, Some(&free)).is_ok(), "a thousand runs fit");
        let err = check_room(11_000_000, 2_000, Some(&free)).expect_err("eleven million runs do not fit in 10 GiB");
        assert!(err.contains("11000000 runs") && err.contains("/data has 10 GiB free"), "{err}");
        assert!(check_room(u64::MAX, u64::MAX, Some(&free)).is_err(), "an absurd size is refused, not overflowed");
        assert!(check_room(11_000_000, 2_000, None).is_ok(), "a disk that cannot be seen is not checked");
    }
}
