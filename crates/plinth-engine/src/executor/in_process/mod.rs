//! In-process Rust handlers, registered by name through the library API, and their durable
//! steps (`ctx.step`, `ctx.sleep`, ...; see [`steps`]).

mod steps;

pub(crate) use steps::{Signal, StepState};

use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What a handler knows about the attempt it serves.
#[derive(Clone, Debug)]
pub struct HandlerContext {
    /// The run.
    pub run_id: String,
    /// The function.
    pub function: String,
    /// The attempt, from 1.
    pub attempt: u32,
    /// The correlation id of the request that created the run.
    pub correlation_id: String,
    /// Cancelled when the attempt must stop (cancel, timeout, shutdown).
    pub cancel: CancellationToken,
    /// The run's steps, for a function with `steps: true`.
    pub(crate) steps: Option<Arc<StepState>>,
}

/// A handler's failure.
#[derive(Clone, Debug, PartialEq)]
pub struct HandlerError {
    /// What went wrong.
    pub message: String,
    /// Whether another attempt may succeed.
    pub retryable: bool,
    /// A step boundary or a protocol error, carried up by `?` from a step operation.
    pub(crate) signal: Option<steps::Signal>,
}

impl HandlerError {
    /// A failure worth retrying.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self { message: message.into(), retryable: true, signal: None }
    }

    /// A failure that no retry will fix.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self { message: message.into(), retryable: false, signal: None }
    }
}

/// The future a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Value, HandlerError>> + Send + 'static>>;

/// An in-process handler.
pub trait Handler: Send + Sync + 'static {
    /// Runs one attempt.
    fn call(&self, ctx: HandlerContext, input: Value) -> HandlerFuture;
}

impl<F, Fut> Handler for F
where
    F: Fn(HandlerContext, Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, HandlerError>> + Send + 'static,
{
    fn call(&self, ctx: HandlerContext, input: Value) -> HandlerFuture {
        Box::pin(self(ctx, input))
    }
}

/// The registered in-process handlers.
#[derive(Default, Clone)]
pub struct Handlers {
    by_name: BTreeMap<String, Arc<dyn Handler>>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handlers").field("names", &self.names()).finish()
    }
}

impl Handlers {
    /// Built-in handlers: `noop` (returns null), `echo` (returns its input), `sleep` (holds a
    /// worker for `input.ms` milliseconds, at most ten minutes, then returns null) and `flow`, a
    /// step function driven by its input for benchmarks and checks (see [`steps::flow`]).
    #[must_use]
    pub fn builtin() -> Self {
        let mut h = Self::default();
        h.register("noop", |_ctx: HandlerContext, _input: Value| async { Ok(Value::Null) });
        h.register("echo", |_ctx: HandlerContext, input: Value| async move { Ok(input) });
        h.register("sleep", |_ctx: HandlerContext, input: Value| async move {
            let ms = input.get("ms").and_then(Value::as_u64).unwrap_or(0).min(600_000);
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            Ok(Value::Null)
        });
        h.register("flow", steps::flow);
        h
    }

    /// Registers `handler` under `name`, replacing any earlier one.
    pub fn register(&mut self, name: &str, handler: impl Handler) -> &mut Self {
        self.by_name.insert(name.to_string(), Arc::new(handler));
        self
    }

    /// The handler registered as `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Arc<dyn Handler>> {
        self.by_name.get(name).cloned()
    }

    /// Whether `name` is registered.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The registered names.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }
}
