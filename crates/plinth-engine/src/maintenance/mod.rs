//! Background services, one a file: lease heartbeat, cancel listener, rescuer, expirer, pruner,
//! scheduler and the overview's beat and roll-up. The rescuer, the expirer, the pruner, the
//! scheduler and the roll-up work only on the node the store elects (every node, for SQLite).

mod cancel;
mod expirer;
mod heartbeat;
mod overview;
mod pruner;
mod rescuer;
mod scheduler;

pub(crate) use cancel::cancel_listener;
pub(crate) use expirer::expirer;
pub(crate) use heartbeat::heartbeat;
pub(crate) use overview::overview;
pub(crate) use pruner::pruner;
pub(crate) use rescuer::rescuer;
pub(crate) use scheduler::scheduler;

use crate::Shared;
use std::time::Duration;

pub(crate) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 2)
}

/// Waits `d`, or returns false when the services stop.
pub(crate) async fn tick(shared: &Shared, d: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        () = shared.stop.cancelled() => false,
    }
}
