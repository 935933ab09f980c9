//! The lease heartbeat.

use super::{micros, tick};
use crate::Shared;
use crate::inflight::StopReason;
use plinth_core::timefmt::now_micros;
use std::sync::Arc;
use std::time::Duration;

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
