//! Background services: lease heartbeat, cancel listener, rescuer, pruner. The rescuer and the
//! pruner work only on the node the store elects (every node, for SQLite).

use crate::Shared;
use crate::inflight::StopReason;
use plinth_core::timefmt::now_micros;
use std::sync::Arc;
use std::time::Duration;

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 2)
}

/// Waits `d`, or returns false when the services stop.
async fn tick(shared: &Shared, d: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        () = shared.stop.cancelled() => false,
    }
}

/// Extends the leases of the attempts in flight, a third of a lease apart; stops attempts
/// whose lease was lost or whose run was cancelled (from any node).
pub(crate) async fn heartbeat(shared: Arc<Shared>) {
    let every = (shared.config.lease / 3).max(Duration::from_millis(100));
    while tick(&shared, every).await {
        let leases = shared.inflight.leases();
        if leases.is_empty() {
            continue;
        }
        let until = now_micros() + micros(shared.config.lease);
        match shared.store.heartbeat(&shared.config.owner, leases, until).await {
            Ok(hb) => {
                for id in hb.lost {
                    tracing::warn!(run_id = %id, "lease lost; stopping the attempt");
                    shared.inflight.stop(&id, StopReason::Lost);
                }
                for id in hb.cancel {
                    shared.inflight.stop(&id, StopReason::Cancel);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot renew leases"),
        }
    }
}

/// Stops attempts at once when their run is cancelled through this node's store.
pub(crate) async fn cancel_listener(shared: Arc<Shared>) {
    let mut rx = shared.store.notifier().cancels();
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Ok(id) => {
                    if shared.inflight.stop(&id, StopReason::Cancel) {
                        tracing::info!(run_id = %id, "cancel requested; stopping the attempt");
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            () = shared.stop.cancelled() => return,
        }
    }
}

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

/// Forgets idempotency keys older than their window; deletes finished runs older than the retention.
pub(crate) async fn pruner(shared: Arc<Shared>) {
    const BATCH: u32 = 1000;
    let shortest = shared.config.retention.min(shared.config.idempotency_window);
    let every = (shortest / 10).clamp(Duration::from_secs(1), Duration::from_secs(300));
    while tick(&shared, every).await {
        if !shared.store.lead().await {
            continue;
        }
        let now = now_micros();
        let (before, keys_before) = (now - micros(shared.config.retention), now - micros(shared.config.idempotency_window));
        let mut total = 0;
        loop {
            match shared.store.prune(before, keys_before, BATCH).await {
                Ok(n) => {
                    total += n;
                    if n < u64::from(BATCH) || shared.stop.is_cancelled() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot prune old runs");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::info!(pruned = total, "pruned finished runs past their retention");
        }
    }
}
