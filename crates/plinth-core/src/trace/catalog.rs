//! Every span Plinth makes, described once: `plinth spec generate` writes the Tracing section
//! from this list, and the export test checks each exported span against it.

/// One span Plinth makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanDescriptor {
    /// Its name, with the parts that vary in braces.
    pub name: &'static str,
    /// Its OpenTelemetry kind: `server`, `consumer`, `client` or `internal`.
    pub kind: &'static str,
    /// What it is the child of.
    pub parent: &'static str,
    /// Its attributes (never a run's input or output).
    pub attributes: &'static [&'static str],
    /// When it is made.
    pub what: &'static str,
}

/// The request a server answers.
pub const REQUEST: SpanDescriptor = SpanDescriptor {
    name: "{method} {route}",
    kind: "server",
    parent: "the client's `traceparent`, when valid",
    attributes: &["method", "route", "correlation_id", "http.request.method", "http.route", "http.response.status_code"],
    what: "every HTTP request; `ERROR` status for a 5xx answer",
};

/// A run put in the queue by `POST /run`.
pub const ENQUEUE: SpanDescriptor = SpanDescriptor {
    name: "enqueue {function}",
    kind: "producer",
    parent: "the request",
    attributes: &["function"],
    what: "each run `POST /run` accepts; its context is stored with the run",
};

/// One attempt of a run.
pub const ATTEMPT: SpanDescriptor = SpanDescriptor {
    name: "process {function}",
    kind: "consumer",
    parent: "the context stored with the run (its enqueue, the request that sent the event that made it, or the parent run's step for an invoked one); else the trace the run id names",
    attributes: &["run_id", "function", "attempt", "correlation_id", "outcome", "error_code"],
    what: "every attempt, on whichever node runs it; `ERROR` status when it fails, is retried or cancelled",
};

/// A call of an HTTP handler.
pub const CALL: SpanDescriptor = SpanDescriptor {
    name: "POST",
    kind: "client",
    parent: "the attempt",
    attributes: &["http.request.method", "server.address", "http.response.status_code"],
    what: "each call of an HTTP handler, which receives this span's `traceparent`",
};

/// A step or a wait of a step function.
pub const STEP: SpanDescriptor = SpanDescriptor {
    name: "{op} {step}",
    kind: "internal",
    parent: "`step`, `send_event`: the attempt that finished it; `sleep`, `wait_for_event`, `invoke`: the run's stored context, beside the attempts",
    attributes: &["run_id", "function", "attempt", "correlation_id", "step_id", "step_op", "outcome"],
    what: "each step once finished (its start and end from the step's record; `{step}` is its name without the `:N` of a repeated one), and each wait once it ended",
};

/// Every span Plinth makes.
pub const SPANS: [SpanDescriptor; 5] = [REQUEST, ENQUEUE, ATTEMPT, CALL, STEP];
