//! The cancel listener.

use crate::Shared;
use crate::inflight::StopReason;
use std::sync::Arc;

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
