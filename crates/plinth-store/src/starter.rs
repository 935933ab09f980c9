//! The engine's side of runs started as they are stored (decision 0019), as the API sees it.

use plinth_core::Run;

/// A node that starts runs the moment they are stored (decision 0019). The API asks for a slot
/// before it stores a run; the engine, which owns the slots, answers. The two still meet only
/// in the store: the run is on disk, leased to the node, before its attempt starts.
pub trait Starter: Send + Sync {
    /// Reserves one of this node's free slots for a run of `function` due now, with the lease
    /// to store the run with; `None` when no slot is free, runs wait in the queue (they come
    /// first) or the node is stopping. The slot is held until [`Starter::start`] or
    /// [`Starter::release`].
    fn reserve(&self, function: &str, now: i64) -> Option<plinth_core::run::StartNow>;
    /// Starts the first attempt of a run stored started, on the slot reserved for it.
    fn start(&self, run: Run);
    /// Gives back a reserved slot whose run was not stored started.
    fn release(&self);
}
