//! The pruner: old runs, old events, expired idempotency keys and event ids.

use super::{micros, tick};
use crate::Shared;
use plinth_core::timefmt::now_micros;
use std::sync::Arc;
use std::time::Duration;

/// Forgets idempotency keys and event ids older than their windows; deletes finished runs and
/// events older than their retention.
pub(crate) async fn pruner(shared: Arc<Shared>) {
    let mut batch = MOST;
    let c = &shared.config;
    let shortest = c.retention.min(c.idempotency_window).min(c.event_retention).min(c.event_dedup_window);
    let every = (shortest / 10).clamp(Duration::from_secs(1), Duration::from_secs(300));
    while tick(&shared, every).await {
        if !shared.store.lead().await {
            continue;
        }
        let now = now_micros();
        let (before, keys_before) = (now - micros(shared.config.retention), now - micros(shared.config.idempotency_window));
        let mut total = 0;
        loop {
            let started = std::time::Instant::now();
            match shared.store.prune(before, keys_before, batch).await {
                Ok(n) => {
                    total += n;
                    let (full, took, pace) = (n >= u64::from(batch), started.elapsed(), shared.store.prune_pace());
                    batch = next_batch(batch, took, pace.batch);
                    if !full || !pause(&shared, pace.rest_after(took)).await {
                        break;
                    }
                }
                Err(e) => {
                    // Why: a locked row or a statement timeout ends this pass only; the next
                    // pass starts again where this one stopped.
                    tracing::warn!(error = %e, retry_in_ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX), "cannot prune old runs; trying again at the next pass");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::info!(pruned = total, "pruned finished runs past their retention");
        }
        prune_events(&shared, now).await;
        forget_lanes(&shared, now).await;
    }
}

/// The most and the fewest runs a pruning batch deletes.
const MOST: u32 = 1000;
const LEAST: u32 = 50;
/// The next batch's size: scaled so it takes about `pace` (the batch of the store's
/// [`plinth_store::Store::prune_pace`]), between [`LEAST`] and [`MOST`]. Why: SQLite has one
/// writer, and a `POST /run` arriving during a batch waits for it (1,000 runs took 10 to 20 ms,
/// which went straight into `POST /run`'s p99).
fn next_batch(batch: u32, took: Duration, pace: Duration) -> u32 {
    let took = took.as_micros().max(1);
    let scaled = u128::from(batch) * pace.as_micros() / took;
    u32::try_from(scaled).unwrap_or(MOST).clamp(LEAST, MOST)
}

/// Rests `rest` (the store's pace after the last batch) before the next one, so a large backlog
/// of old runs takes only a share of the store's time and the hot path keeps the rest; `false`
/// when the node is stopping.
async fn pause(shared: &Shared, rest: Duration) -> bool {
    tokio::select! {
        () = shared.stop.cancelled() => false,
        () = tokio::time::sleep(rest) => true,
    }
}

/// Forgets the concurrency lanes idle for a minute with no open run, so the lanes table holds
/// the keys with work, not every key ever seen.
async fn forget_lanes(shared: &Shared, now: i64) {
    let what = plinth_store::FlowUpkeep::Forget { idle_before: now - 60_000_000 };
    match shared.store.flow_upkeep(what).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(lanes = n, "forgot idle concurrency lanes"),
        Err(e) => tracing::warn!(error = %e, "cannot forget idle concurrency lanes"),
    }
}

/// Deletes events past their retention, a batch at a time.
async fn prune_events(shared: &Shared, now: i64) {
    const BATCH: u32 = 1000;
    let (before, dedup_before) = (now - micros(shared.config.event_retention), now - micros(shared.config.event_dedup_window));
    let mut total = 0;
    loop {
        match shared.store.prune_events(before, dedup_before, BATCH).await {
            Ok(n) => {
                total += n;
                if n < u64::from(BATCH) || shared.stop.is_cancelled() {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot prune old events");
                break;
            }
        }
    }
    if total > 0 {
        tracing::info!(pruned = total, "pruned events past their retention");
    }
}

#[cfg(test)]
mod tests {
    use super::{LEAST, MOST};
    use std::time::Duration;

    fn next_batch(batch: u32, took: Duration) -> u32 {
        super::next_batch(batch, took, Duration::from_millis(5))
    }

    #[test]
    fn batches_shrink_when_slow_and_grow_back_when_fast() {
        assert_eq!(next_batch(1000, Duration::from_millis(20)), 250, "four times too long: a quarter");
        assert_eq!(next_batch(250, Duration::from_millis(1)), MOST, "fast again: back to the most");
        assert_eq!(next_batch(100, Duration::from_secs(10)), LEAST, "never fewer than the least");
        assert_eq!(next_batch(1000, Duration::ZERO), MOST, "an instant batch does not divide by zero");
        assert_eq!(next_batch(400, Duration::from_millis(5)), 400, "on time: the same");
        assert_eq!(
            super::next_batch(1000, Duration::from_millis(60), Duration::from_millis(100)),
            MOST,
            "a slower pace keeps them large"
        );
    }
}
