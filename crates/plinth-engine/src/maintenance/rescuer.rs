//! The rescuer: runs of dead workers go back to the queue.

use super::tick;
use crate::Shared;
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
