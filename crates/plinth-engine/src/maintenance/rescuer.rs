//! The rescuer: runs of dead workers go back to the queue.

use super::tick;
use crate::Shared;
use plinth_core::RunStatus;
use plinth_core::timefmt::now_micros;
use std::sync::Arc;
use std::time::Duration;

/// Takes back runs whose worker stopped renewing its lease.
pub(crate) async fn rescuer(shared: Arc<Shared>) {
    let every = (shared.config.lease / 2).clamp(Duration::from_millis(250), Duration::from_secs(15));
    loop {
        if !shared.store.lead().await {
            if !tick(&shared, every).await {
                return;
            }
            continue;
        }
        match shared.store.rescue(now_micros()).await {
            Ok(rescued) => {
                for r in &rescued {
                    tracing::warn!(run_id = %r.run_id, function = %r.function, attempt = r.attempt, owner = %r.owner,
                        status = r.status.as_str(), "lease expired; run taken back from its worker");
                    shared.metrics.error("LeaseExpired");
                    // Why: this is the attempt's end; no node's handler saw it, so no other
                    // count has it (a run failed this way was missing from the runs' ends).
                    shared.metrics.run_taken_back(&r.function, taken_back_outcome(r.status));
                }
                if !rescued.is_empty() {
                    shared.wake.notify_one();
                }
            }
            Err(e) => tracing::warn!(error = %e, "rescuer cannot read leases"),
        }
        if !tick(&shared, every).await {
            return;
        }
    }
}

/// The outcome `plinth_runs_total` counts for an attempt the rescuer took back, by the run's
/// new status, as the executor names an attempt that ended the same way.
fn taken_back_outcome(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Queued => "retrying",
        other => other.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::taken_back_outcome;
    use plinth_core::RunStatus;

    #[test]
    fn a_run_taken_back_to_the_queue_counts_as_a_retry() {
        assert_eq!(taken_back_outcome(RunStatus::Queued), "retrying");
    }

    #[test]
    fn a_run_with_no_attempt_left_or_cancelled_counts_as_its_end() {
        assert_eq!(taken_back_outcome(RunStatus::Failed), "failed", "no attempt left");
        assert_eq!(taken_back_outcome(RunStatus::Cancelled), "cancelled", "a cancel was asked meanwhile");
    }
}
