//! The lease heartbeat, and the adoption of runs the node did not know it held.

use super::{micros, tick};
use crate::inflight::{Adopted, StopReason};
use crate::{Shared, executor};
use plinth_core::timefmt::now_micros;
use std::sync::Arc;
use std::time::Duration;

/// Extends the leases of the attempts in flight, a third of a lease apart; stops attempts
/// whose lease was lost or whose run was cancelled (from any node). Then takes in the runs
/// leased to this node that it does not hold (`adopt`).
pub(crate) async fn heartbeat(shared: Arc<Shared>) {
    let every = (shared.config.lease / 3).max(Duration::from_millis(100));
    while tick(&shared, every).await {
        let leases = shared.inflight.leases();
        if !leases.is_empty() {
            renew(&shared, leases).await;
        }
        // Why not once the node is shutting down: it starts no more work then; a run it
        // lost track of comes back through the rescuer, as every run of a node that stopped.
        if !shared.no_claims.is_cancelled() {
            adopt(&shared).await;
        }
    }
}

async fn renew(shared: &Shared, leases: Vec<(String, u32)>) {
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

/// Starts the runs leased to this node whose lease is older than half a lease and that it
/// does not hold. Why: a write that leases runs to this node (a claim, a run stored started
/// here) can commit while its answer is lost (the store's time limit ran out, the connection
/// broke); the node never started those runs, nothing renewed their leases, and the rescuer
/// took each back when its lease ran out as if this node had died: an attempt lost, and a run
/// with one attempt failed without ever starting (seen in `plinth bench`, decision 0026). The
/// runs this node holds were renewed just before, so their leases are fresh; half a lease
/// leaves a just-written lease alone, and takes a lost one in before it runs out.
async fn adopt(shared: &Arc<Shared>) {
    let now = now_micros();
    let lease = micros(shared.config.lease);
    let runs = match shared.store.adopt(&shared.config.owner, now + lease / 2, now + lease).await {
        Ok(runs) => runs,
        Err(e) => {
            tracing::warn!(error = %e, "cannot look for runs leased to this node that it does not hold");
            return;
        }
    };
    let workers = usize::try_from(shared.config.workers).unwrap_or(usize::MAX);
    for run in runs {
        let (run_id, function, attempt) = (run.run_id.clone(), run.function.clone(), run.attempt);
        let started = match shared.inflight.adopt(run, workers) {
            Adopted::Held => continue,
            Adopted::Start(run, stop) => {
                executor::spawn(shared.clone(), *run, stop);
                true
            }
            Adopted::Waits => false,
        };
        tracing::warn!(run_id = %run_id, function = %function, attempt, started,
            "took in a run leased to this node that it did not know it held: the answer of the write that leased it was lost");
    }
}
