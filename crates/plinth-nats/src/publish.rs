//! Publishing each run's end (on the node that ended it) to
//! `<prefix>.<component>.run.succeeded|failed|cancelled`: a summary without input or output.

use crate::BridgeContext;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::broadcast;

pub(crate) async fn run(
    ctx: Arc<BridgeContext>,
    client: async_nats::Client,
    prefix: String,
    mut ends: broadcast::Receiver<String>,
) {
    let component = ctx.component.get().file.component.name.clone();
    loop {
        let id = tokio::select! {
            id = ends.recv() => id,
            () = ctx.stop.cancelled() => return,
        };
        let id = match id {
            Ok(id) => id,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                ctx.metrics.error("NatsPublishMissed");
                tracing::warn!(missed = n, "the NATS publisher fell behind; some run ends were not published");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let run = match ctx.store.get(&id, false).await {
            Ok(Some(run)) => run,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(run_id = %id, error = %e, "cannot read an ended run to publish it");
                continue;
            }
        };
        let subject = format!("{prefix}.{component}.run.{}", run.status.as_str());
        let summary = json!({
            "run_id": run.run_id, "function": run.function, "status": run.status, "attempt": run.attempt,
            "max_attempts": run.max_attempts, "trigger": run.trigger, "correlation_id": run.correlation_id,
            "created_at": plinth_core::timefmt::rfc3339(run.created_at),
            "started_at": run.started_at.map(plinth_core::timefmt::rfc3339),
            "finished_at": run.finished_at.map(plinth_core::timefmt::rfc3339),
            "error": run.error, "component": component,
        });
        if let Err(e) = client.publish(subject.clone(), summary.to_string().into()).await {
            ctx.metrics.error("NatsPublishFailed");
            tracing::warn!(run_id = %id, subject = %subject, error = %e, "cannot publish a run's end");
        }
    }
}
