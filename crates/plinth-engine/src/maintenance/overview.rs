//! The overview's upkeep: every node says it is alive (and whether it leads the upkeep); the
//! leader adds the runs that ended to the per-minute statistics, a little behind the clock so a
//! run whose end another node is still committing is not passed over.

use super::tick;
use crate::Shared;
use plinth_core::timefmt::now_micros;
use plinth_store::NodeBeat;
use std::sync::Arc;
use std::time::Duration;

/// How often a node beats and the leader rolls up.
pub(crate) const EVERY: Duration = Duration::from_secs(2);
/// How far behind the clock the roll-up stays (micros).
const LAG: i64 = 2_000_000;

/// This machine's host name, as the kernel knows it.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

pub(crate) async fn overview(shared: Arc<Shared>) {
    let started_at = now_micros();
    let host = host();
    let mut failing = false;
    loop {
        let leads = shared.store.lead().await;
        let now = now_micros();
        let beat = NodeBeat {
            id: shared.config.owner.clone(),
            host: host.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at,
            seen_at: now,
            leads,
        };
        let mut result = shared.store.beat(beat).await;
        if leads && result.is_ok() {
            result = shared.store.roll_up(now - LAG).await.map(|_| ());
        }
        match result {
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot record this node's beat or the run statistics; the dashboard's overview falls behind");
            }
            Ok(()) if failing => {
                failing = false;
                tracing::info!("the dashboard's overview statistics are recorded again");
            }
            _ => {}
        }
        if !tick(&shared, EVERY).await {
            return;
        }
    }
}
