//! Plinth's domain: what a component is, what a run is, the policy that governs
//! its attempts, the error catalog and the metrics. Nothing here does I/O.

pub mod component;
pub mod error;
pub mod event;
pub mod flow;
pub mod health;
pub mod ids;
pub mod metrics;
pub mod policy;
pub mod run;
pub mod schema;
pub mod steps;
pub mod timefmt;
pub mod tokens;
pub mod trace;
pub mod trigger;

pub use component::{CommandSpec, Component, ComponentFile, FunctionSpec, HandlerKind, HandlerSpec, Identity, ServerSection};
pub use error::{Code, ConfigError};
pub use event::Event;
pub use policy::{Backoff, DurationSpec, Retries, RunPolicy};
pub use run::{Finish, NewRun, Run, RunError, RunStatus, Trigger};

/// The version of Plinth, as built.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
