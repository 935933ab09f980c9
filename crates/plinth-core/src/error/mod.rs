//! The error hierarchy's stable codes and their catalog, and configuration errors.
//!
//! Every code a user can meet is a [`Code`]; each has a name, an HTTP status (when it can
//! answer a request), a meaning and what the user should do. `docs/errors.md` and
//! `GET /errors/{code}` are both made from [`Code::ALL`], so they cannot drift apart.

use serde::Serialize;

/// A stable Plinth error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// PLINTH_001
    InvalidConfig,
    /// PLINTH_002
    ConnectionFailed,
    /// PLINTH_003
    MalformedJson,
    /// PLINTH_004
    ValidationFailed,
    /// PLINTH_005
    FunctionNotFound,
    /// PLINTH_006
    RunNotFound,
    /// PLINTH_007
    PayloadTooLarge,
    /// PLINTH_008
    UnsupportedMediaType,
    /// PLINTH_009
    RunAlreadyTerminal,
    /// PLINTH_010
    NotReady,
    /// PLINTH_011
    FunctionRequired,
    /// PLINTH_012
    RouteNotFound,
    /// PLINTH_013
    MethodNotAllowed,
    /// PLINTH_014
    InvalidQuery,
    /// PLINTH_015
    IdempotencyKeyMismatch,
    /// PLINTH_016
    UnknownErrorCode,
    /// PLINTH_017
    EventNotFound,
    /// PLINTH_018
    RunNotFinished,
    /// PLINTH_019
    RerunRefused,
    /// PLINTH_020
    HandlerFailed,
    /// PLINTH_021
    HandlerTimeout,
    /// PLINTH_022
    HandlerCrashed,
    /// PLINTH_023
    HandlerNotStarted,
    /// PLINTH_024
    RunCancelled,
    /// PLINTH_025
    LeaseExpired,
    /// PLINTH_026
    OutputTooLarge,
    /// PLINTH_027
    HandlerRejected,
    /// PLINTH_028
    HandlerUnreachable,
    /// PLINTH_029
    HandlerBadResponse,
    /// PLINTH_050
    StepAnswerInvalid,
    /// PLINTH_051
    StepUnknownOp,
    /// PLINTH_052
    StepIdRepeated,
    /// PLINTH_053
    StepPlanTooSmall,
    /// PLINTH_054
    StepTargetMismatch,
    /// PLINTH_055
    StepTooLarge,
    /// PLINTH_056
    InvokeUnknownFunction,
    /// PLINTH_057
    InvokeTooDeep,
    /// PLINTH_058
    StepOrderChanged,
    /// PLINTH_059
    StepCallLimit,
    /// PLINTH_060
    StepInvalidOp,
    /// PLINTH_030
    Unauthenticated,
    /// PLINTH_031
    Forbidden,
    /// PLINTH_032
    CredentialsInQuery,
    /// PLINTH_033
    AnswerSignatureInvalid,
    /// PLINTH_040
    QueueFull,
    /// PLINTH_041
    RateLimited,
    /// PLINTH_042
    JsonTooDeep,
    /// PLINTH_043
    HeadersTooLarge,
    /// PLINTH_044
    FunctionRateLimited,
    /// PLINTH_045
    SingletonBusy,
    /// PLINTH_046
    RunStartTimeout,
    /// PLINTH_047
    RunFinishTimeout,
    /// PLINTH_048
    RunCancelledByEvent,
    /// PLINTH_099
    Internal,
}

/// One entry of the error catalog.
#[derive(Clone, Copy, Debug, Serialize, utoipa::ToSchema)]
pub struct CatalogEntry {
    /// The stable code, `PLINTH_0xx`.
    #[schema(pattern = "^PLINTH_[0-9]{3}$", example = "PLINTH_004")]
    pub code: &'static str,
    /// A short CamelCase name.
    pub name: &'static str,
    /// The title used in problem+json bodies.
    pub title: &'static str,
    /// The HTTP status it answers with, or none for errors that never answer a request.
    pub http_status: Option<u16>,
    /// Whether retrying the same thing later may succeed.
    pub retryable: bool,
    /// What happened.
    pub meaning: &'static str,
    /// What the user should do.
    pub action: &'static str,
}

macro_rules! catalog {
    ($( $variant:ident => $code:literal, $name:literal, $title:literal, $status:expr, $retry:literal,
        $meaning:literal, $action:literal; )*) => {
        impl Code {
            /// Every code, in catalog order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The catalog entry of this code.
            #[must_use]
            pub const fn entry(self) -> CatalogEntry {
                match self {
                    $(Code::$variant => CatalogEntry {
                        code: $code, name: $name, title: $title, http_status: $status,
                        retryable: $retry, meaning: $meaning, action: $action,
                    },)*
                }
            }
        }
    };
}

catalog! {
    InvalidConfig => "PLINTH_001", "InvalidConfig", "Invalid configuration", None, false,
        "The component file, a flag or a PLINTH_* environment variable has an unknown key or an invalid value. Plinth refuses to start.",
        "Read the file, field and reason in the message, correct the value, and start again. `plinth config` shows every effective setting and its source.";
    ConnectionFailed => "PLINTH_002", "ConnectionFailed", "Dependency unavailable", Some(503), true,
        "The run store (the database) could not be reached, opened or written: it may be down, read-only or out of disk space.",
        "Check `/health` for the failing check, then the database: that it runs, that its file and folder are writable, that the disk has room. Retry the request after it recovers.";
    MalformedJson => "PLINTH_003", "MalformedJson", "Malformed JSON", Some(400), false,
        "The request body is not valid JSON, or not a JSON object where one is expected.",
        "Send a well-formed JSON object; the detail names the line and column where parsing failed.";
    ValidationFailed => "PLINTH_004", "ValidationFailed", "Validation failed", Some(422), false,
        "The request is well-formed JSON but a field has the wrong type or value, or the input does not match the function's input schema.",
        "Fix each field named in `errors` (JSON pointers into the request) and send it again. `GET /functions` shows each function's input schema.";
    FunctionNotFound => "PLINTH_005", "FunctionNotFound", "Function not found", Some(404), false,
        "The request names a function this component does not have.",
        "Use one of the names listed by `GET /functions`.";
    RunNotFound => "PLINTH_006", "RunNotFound", "Run not found", Some(404), false,
        "No run has this id: it never existed, the id is mistyped, or it finished longer ago than the retention period and was pruned.",
        "Check the id (as returned in `run_id` by `POST /run`); list recent runs with `GET /runs`.";
    PayloadTooLarge => "PLINTH_007", "PayloadTooLarge", "Payload too large", Some(413), false,
        "The request body is larger than the configured limit (`--body-limit`, 1 MiB by default).",
        "Send a smaller input (pass large data by reference, such as a URL), or raise `--body-limit`.";
    UnsupportedMediaType => "PLINTH_008", "UnsupportedMediaType", "Unsupported media type", Some(415), false,
        "The request has a body but its Content-Type is not application/json.",
        "Send the header `Content-Type: application/json`.";
    RunAlreadyTerminal => "PLINTH_009", "RunAlreadyTerminal", "Run already finished", Some(409), false,
        "The run has already succeeded, failed or been cancelled, so it cannot be cancelled.",
        "Nothing to do: read its final state with `GET /runs/{id}`.";
    NotReady => "PLINTH_010", "NotReady", "Not ready", Some(503), true,
        "The component is starting or shutting down and does not take this request now.",
        "Retry after the `Retry-After` delay, or send it to another instance.";
    FunctionRequired => "PLINTH_011", "FunctionRequired", "Function required", Some(422), false,
        "The component has several functions and the request did not say which one to run.",
        "Add `\"function\": NAME` to the request; `GET /functions` lists the names.";
    RouteNotFound => "PLINTH_012", "RouteNotFound", "Not found", Some(404), false,
        "No endpoint has this path.",
        "Check the path against the contract; `GET /functions` and the README list the endpoints.";
    MethodNotAllowed => "PLINTH_013", "MethodNotAllowed", "Method not allowed", Some(405), false,
        "The path exists but does not accept this HTTP method.",
        "Use the method the contract gives for this path (for example `POST /run`, `GET /runs`).";
    InvalidQuery => "PLINTH_014", "InvalidQuery", "Invalid query parameter", Some(400), false,
        "A query parameter has an invalid value: a limit out of range, an unknown status, a malformed cursor or wait.",
        "Correct the parameter named in the detail; limits and ranges are in the contract.";
    IdempotencyKeyMismatch => "PLINTH_015", "IdempotencyKeyMismatch", "Idempotency key reused", Some(422), false,
        "The idempotency key was already used with a different request.",
        "Use a new key for a new request; resend the original request unchanged to get its run back.";
    UnknownErrorCode => "PLINTH_016", "UnknownErrorCode", "Unknown error code", Some(404), false,
        "`GET /errors/{code}` was asked for a code that is not in the catalog.",
        "Check the code; `docs/errors.md` lists them all.";
    EventNotFound => "PLINTH_017", "EventNotFound", "Event not found", Some(404), false,
        "No stored event has this id: it was never received, or it is older than the event retention.",
        "Check the id (`GET /events` lists the events kept); events are kept for `--event-retention`.";
    RunNotFinished => "PLINTH_018", "RunNotFinished", "Run not finished", Some(409), false,
        "A rerun was asked for a run that is still queued, running or waiting: its steps may still change.",
        "Wait for the run to end (`GET /runs/{id}?wait=30`), or cancel it first, then ask for the rerun again.";
    RerunRefused => "PLINTH_019", "RerunRefused", "Rerun from a step refused", Some(422), false,
        "`from_step` names a step the run does not have, or the run's function is not a step function (`steps: true`).",
        "Take the step id from `GET /runs/{id}/steps`, or leave `from_step` out to rerun the whole run.";
    HandlerFailed => "PLINTH_020", "HandlerFailed", "Handler failed", None, true,
        "The handler reported a failure: a command exited with a non-zero status, or an in-process handler returned an error.",
        "Read the run's logs (`GET /runs/{id}/logs`) for what the handler wrote. It is retried while attempts remain.";
    HandlerTimeout => "PLINTH_021", "HandlerTimeout", "Handler timed out", None, true,
        "The attempt ran longer than the function's `timeout`; the handler was sent SIGTERM, then SIGKILL after the grace period.",
        "Make the handler faster or raise the function's `policy.timeout`.";
    HandlerCrashed => "PLINTH_022", "HandlerCrashed", "Handler crashed", None, true,
        "The handler's process was killed by a signal (for example out of memory, or a segmentation fault).",
        "Read the run's logs and the host's kernel log; check the handler's memory use.";
    HandlerNotStarted => "PLINTH_023", "HandlerNotStarted", "Handler could not start", None, false,
        "The handler's command could not be started: the program is missing, not executable, or its cwd does not exist.",
        "Check `handler.command.argv` and `cwd` in component.yaml; paths are relative to the file's folder.";
    RunCancelled => "PLINTH_024", "RunCancelled", "Run cancelled", None, false,
        "The run was cancelled through `POST /runs/{id}/cancel` before it finished.",
        "Nothing to do; submit a new run if the work is still wanted.";
    LeaseExpired => "PLINTH_025", "LeaseExpired", "Worker lost", None, true,
        "The worker running this attempt stopped renewing its lease (it crashed or was killed); the attempt counts and the run is taken up again while attempts remain.",
        "Look for the crashed node's logs; make handlers idempotent, since the attempt may have done part of its work.";
    OutputTooLarge => "PLINTH_026", "OutputTooLarge", "Handler output too large", None, false,
        "The handler wrote more to stdout than the output limit allows.",
        "Return a smaller output (store large results elsewhere and return a reference).";
    HandlerRejected => "PLINTH_027", "HandlerRejected", "HTTP handler rejected the run", None, false,
        "The HTTP handler answered with a 4xx status other than 408 or 429: it refuses this input, so retrying would not help. The status and the start of its body are in the message.",
        "Read the status and body excerpt in the run's error, fix the input or the handler, and submit a new run.";
    HandlerUnreachable => "PLINTH_028", "HandlerUnreachable", "HTTP handler unreachable", None, true,
        "Plinth could not connect to the HTTP handler's URL (refused, reset, name not resolved, TLS failure). It is retried while attempts remain.",
        "Check that the handler's service runs and that `handler.http.url` in component.yaml points at it.";
    HandlerBadResponse => "PLINTH_029", "HandlerBadResponse", "HTTP handler answered non-JSON", None, false,
        "The HTTP handler answered 2xx but its body is not JSON (or it redirected elsewhere), so there is no output to record.",
        "Make the handler answer `Content-Type: application/json` with a JSON body (or an empty body for no output).";
    StepAnswerInvalid => "PLINTH_050", "StepAnswerInvalid", "Step answer is not the protocol's", None, false,
        "A step function's handler answered something that is not the step protocol: a command's stdout that is not one JSON object `{\"output\": V}` or `{\"ops\": [...]}`, or a 206 body that is not `{\"ops\": [...]}`.",
        "Print exactly one JSON object on stdout (log to stderr), or answer 200 with the output and 206 with `{\"ops\": [...]}`; see the Steps section of the contract.";
    StepUnknownOp => "PLINTH_051", "StepUnknownOp", "Unknown step op", None, false,
        "An op in the answer is not one of `step`, `step_error`, `plan`, `sleep`, `wait_for_event`, `invoke`, `send_event` (or has no `op` field).",
        "Fix the op's name in the handler; the message names the op and its place in `ops`.";
    StepIdRepeated => "PLINTH_052", "StepIdRepeated", "Step id repeated", None, false,
        "The answer names a step whose result is already stored, or names one step twice. Plinth never runs a finished step again.",
        "Give every step of a run its own id; a name used again is told apart as `name:1`, `name:2`, ... (the helpers do this).";
    StepPlanTooSmall => "PLINTH_053", "StepPlanTooSmall", "Plan with one step", None, false,
        "The answer plans a single step. `plan` runs two or more steps in parallel.",
        "Answer a single step as `step` (run it in this call), or plan it together with the steps it runs beside.";
    StepTargetMismatch => "PLINTH_054", "StepTargetMismatch", "Targeted call answered another step", None, false,
        "A call with `ctx.target` set (a planned step or a step's retry) answered a different step, or more than one op.",
        "When `ctx.target` is set, replay the stored steps, run only the target step and answer one `step` or `step_error` op with its id.";
    StepTooLarge => "PLINTH_055", "StepTooLarge", "Step output or memo too large", None, false,
        "A step's output is larger than the output limit (`--max-output-bytes`), or the run's stored steps together would pass the memo limit (`--max-memo-bytes`).",
        "Return smaller step outputs (store large results elsewhere and return a reference), or split the work into several runs.";
    InvokeUnknownFunction => "PLINTH_056", "InvokeUnknownFunction", "Invoked function not found", None, false,
        "An `invoke` op names a function the component does not have, or its input does not match that function's input schema.",
        "Check the `function` name against `GET /functions` and the `input` against its schema.";
    InvokeTooDeep => "PLINTH_057", "InvokeTooDeep", "Invoke chain too deep", None, false,
        "Runs invoke runs more than 16 levels deep, which usually means a function invokes itself without end.",
        "Break the cycle: let a function invoke itself only under a condition that ends, or flatten the chain.";
    StepOrderChanged => "PLINTH_058", "StepOrderChanged", "Step order changed", None, false,
        "The handler reached the stored steps in another order than they were recorded: its code changed under a run that was waiting or retrying. Its stored results cannot be matched to the new code safely.",
        "Let runs started with the old code finish before deploying a change that reorders, renames or removes steps; rerun affected runs from the first changed step (`POST /runs/{id}/rerun` with `from_step`).";
    StepCallLimit => "PLINTH_059", "StepCallLimit", "Too many step calls", None, false,
        "The run's handler was called more times than `--max-step-calls` allows without finishing: it keeps answering ops (for example a loop without end).",
        "Check that the handler's loop ends; raise `--max-step-calls` if the function really takes that many steps.";
    StepInvalidOp => "PLINTH_060", "StepInvalidOp", "Invalid step op", None, false,
        "An op has a missing or invalid field (an empty id, a duration that is 0, negative or not a duration, a `wait_for_event` `if` that is not CEL, an invalid event), or the answer mixes ops that cannot go together.",
        "Read the field named in the message (`ops[i]: ...`) and fix the op in the handler.";
    QueueFull => "PLINTH_040", "QueueFull", "Queue full", Some(429), true,
        "The function already has as many runs waiting as its `policy.max_queued` allows; the run was not accepted.",
        "Retry after the `Retry-After` delay, slow down, or raise `policy.max_queued` (or add workers) if the backlog is expected.";
    RateLimited => "PLINTH_041", "RateLimited", "Too many requests", Some(429), true,
        "This client (API key, token subject or address) sent more requests than `--rate-limit` allows.",
        "Wait for the `Retry-After` delay before the next request, and spread requests out; ask for a higher `--rate-limit` if the load is expected.";
    JsonTooDeep => "PLINTH_042", "JsonTooDeep", "JSON nested too deep", Some(400), false,
        "The request body nests arrays or objects deeper than 64 levels.",
        "Flatten the input; pass deep structures by reference (a URL) instead.";
    HeadersTooLarge => "PLINTH_043", "HeadersTooLarge", "Request headers too large", Some(431), false,
        "The request has more than 64 headers or more than 16 KiB of them in all.",
        "Send fewer or shorter headers; large tokens or cookies do not belong on this API.";
    FunctionRateLimited => "PLINTH_044", "FunctionRateLimited", "Function rate limit reached", Some(429), true,
        "The function's `policy.rate_limit` allows no more runs of this key in the current period; the run was not created (an event records the same as the reason it started no run).",
        "Retry after the `Retry-After` delay, or raise the function's `rate_limit` if the rate is expected.";
    SingletonBusy => "PLINTH_045", "SingletonBusy", "Singleton key busy", Some(409), false,
        "The function's `policy.singleton` (mode `skip`) allows one unfinished run per key and this key has one (its id is in the detail); the new run was not created.",
        "Wait for that run to finish (`GET /runs/{id}?wait=`), cancel it, or use `mode: cancel` if a new run should replace the old one.";
    RunStartTimeout => "PLINTH_046", "RunStartTimeout", "Run not started in time", None, false,
        "The run waited in the queue longer than its function's `policy.timeouts.start` (counted from its creation) without its first attempt starting, and was cancelled.",
        "Look at `held_by` of the function's queued runs and its `/functions/{name}/keys`: add workers, raise the flow limits, or give `timeouts.start` more room. Rerun it if the work is still wanted.";
    RunFinishTimeout => "PLINTH_047", "RunFinishTimeout", "Run not finished in time", None, false,
        "The run did not end within its function's `policy.timeouts.finish` of its creation (queue time, attempts, retries and waits all count), and was cancelled; a running attempt was stopped.",
        "Read its attempts and steps to see where the time went; raise `timeouts.finish`, shorten waits and retries, or rerun it.";
    RunCancelledByEvent => "PLINTH_048", "RunCancelledByEvent", "Run cancelled by an event", None, false,
        "An event matched one of the function's `policy.cancel_on` rules and cancelled the run; the error's `event_id` names the event and its message the rule.",
        "Nothing, if the cancel was meant (`GET /events/{id}` shows the event). Otherwise narrow the rule's `if` or `timeout`, and rerun the run.";
    Unauthenticated => "PLINTH_030", "Unauthenticated", "Authentication required", Some(401), false,
        "The endpoint needs a credential and the request has none, or its API key or bearer token is unknown, malformed, expired, not yet valid, signed with another key or algorithm, or issued for another issuer or audience.",
        "Send `Authorization: Bearer TOKEN` (an API key or a JWT) or `X-API-Key: KEY`; the detail says what was wrong with the one sent. Ask the component's operator for a key, or get a fresh token for this audience.";
    Forbidden => "PLINTH_031", "Forbidden", "Insufficient scope", Some(403), false,
        "The credential is valid but lacks the scope this endpoint needs: `runs:write` to submit or cancel runs, `runs:read` to read runs, logs and functions (`admin` grants both).",
        "Use a credential holding the scope named in the detail, or ask the operator to grant it.";
    CredentialsInQuery => "PLINTH_032", "CredentialsInQuery", "Credentials in the query string", Some(400), false,
        "The URL has a query parameter that carries credentials (`api_key`, `apikey`, `key`, `token` or `access_token`). URLs end up in logs, proxies and browser histories, so Plinth refuses them on every route.",
        "Send the credential in the `Authorization: Bearer` or `X-API-Key` header instead, and rotate it: it may have been recorded on its way.";
    AnswerSignatureInvalid => "PLINTH_033", "AnswerSignatureInvalid", "Answer signature invalid", None, false,
        "With `inngest.signing_key_env` set, an Inngest app's answer to a call came without an `X-Inngest-Signature`, or with one that does not verify with the signing key: the app holds another key, or something between Plinth and the app changed the answer. Plinth does not act on it.",
        "Give the app and Plinth the same key (the app's `INNGEST_SIGNING_KEY`, the variable `inngest.signing_key_env` names), check what sits between them, and rerun the run.";
    Internal => "PLINTH_099", "Internal", "Internal error", Some(500), true,
        "An unexpected failure inside Plinth. It is a bug: nothing a client sends should cause it.",
        "Retry; if it persists, report it with the `correlation_id` from the response and the server's logs.";
}

impl Code {
    /// The stable code text, such as `PLINTH_004`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        self.entry().code
    }

    /// Looks a code up by its text (case-insensitive).
    #[must_use]
    pub fn parse(text: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str().eq_ignore_ascii_case(text))
    }

    /// The HTTP status it answers with (500 for codes that never answer a request).
    #[must_use]
    pub const fn status(self) -> u16 {
        match self.entry().http_status {
            Some(s) => s,
            None => 500,
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An invalid component file or setting: `PLINTH_001`, with where and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{source_name}: {field}: {reason} ({code})", code = Code::InvalidConfig)]
pub struct ConfigError {
    /// The file (or `flag`/`environment`) the value came from.
    pub source_name: String,
    /// The field, as a path such as `functions[0].policy.timeout`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    /// A new configuration error.
    pub fn new(source_name: impl Into<String>, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { source_name: source_name.into(), field: field.into(), reason: reason.into() }
    }
}

#[cfg(test)]
mod tests;
