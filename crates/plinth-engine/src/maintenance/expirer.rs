//! The expirer: runs past their function's `timeouts` are cancelled (PLINTH_046, PLINTH_047).
//! It runs on the upkeep leader only, once a second, and not at all when no function has
//! `timeouts`.

use super::tick;
use crate::Shared;
use plinth_core::timefmt::now_micros;
use std::sync::Arc;
use std::time::Duration;

/// How often the deadlines are looked at: a timeout fires at most this late.
const EVERY: Duration = Duration::from_secs(1);

/// Cancels the runs past their deadlines.
pub(crate) async fn expirer(shared: Arc<Shared>) {
    loop {
        // Why: an app may register a function with timeouts at any time.
        let any = shared.component.get().file.functions.iter().any(|f| f.policy.timeouts.is_some());
        if any && shared.store.lead().await {
            match shared.store.expire(now_micros()).await {
                Ok(expired) => {
                    for e in &expired {
                        tracing::info!(run_id = %e.run_id, function = %e.function, code = %e.error.code,
                            stopping = e.stopping, "{}", e.error.message);
                        let name = plinth_core::Code::ALL
                            .iter()
                            .find(|c| c.as_str() == e.error.code)
                            .map_or("RunFinishTimeout", |c| c.entry().name);
                        shared.metrics.error(name);
                    }
                    // Why: a run past the sweep's bound is cancelled at the next turn, not a
                    // second later.
                    if expired.len() >= 500 {
                        continue;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "expirer cannot read deadlines"),
            }
        }
        if !tick(&shared, EVERY).await {
            return;
        }
    }
}
