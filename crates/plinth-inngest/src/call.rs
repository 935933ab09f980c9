//! One call of an app's function over the SDK protocol, in the step executor's own terms: the
//! request body made from the run and its stored steps, and the answer read back as the ops of
//! Plinth's step protocol, so an SDK function's steps are the same records, waits and
//! timelines as a native one's.
//!
//! The memo is keyed by the SHA-1 of each step's id (`name`, or `name:n` for its n-th repeat),
//! as the SDK hashes the ids it reaches; an answered op names its step by the same hash and by
//! `userland` (`id`, `index`), from which Plinth's id is made again and checked against the hash.

use plinth_core::steps::protocol::{self, Answer, ProtocolError};
use plinth_core::steps::{Step, StepStatus};
use plinth_core::{Code, Run};
use serde_json::{Map, Value, json};
use sha1::{Digest, Sha1};

/// The query value of `stepId` that asks for no particular step.
pub const UNTARGETED: &str = "step";

/// What a call needs besides the run.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// The run.
    pub run: &'a Run,
    /// Its stored steps, in the order they were first reached.
    pub steps: &'a [Step],
    /// Tries of the step (or call) made before this one: 0 the first time.
    pub attempt: u32,
    /// The most tries a step gets.
    pub max_attempts: u32,
    /// The planned step this call runs, if any.
    pub target: Option<&'a str>,
}

/// The hex SHA-1 of a step id, as the SDK keys its memo.
#[must_use]
pub fn hash(id: &str) -> String {
    Sha1::digest(id.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The `stepId` query value of a call.
#[must_use]
pub fn step_param(target: Option<&str>) -> String {
    target.map_or_else(|| UNTARGETED.to_string(), hash)
}

/// The event the run's function sees, and the batch: the run's input when it is an event (or a
/// batch of them, `{"events": [...]}`), else the input wrapped as Inngest wraps an invoke's
/// payload.
#[must_use]
pub fn events_of(run: &Run) -> (Value, Vec<Value>) {
    let is_event = |v: &Value| v.get("name").is_some_and(Value::is_string) && v.get("data").is_some_and(Value::is_object);
    if is_event(&run.input) {
        return (run.input.clone(), vec![run.input.clone()]);
    }
    if let Some(batch) = run.input.get("events").and_then(Value::as_array).filter(|b| !b.is_empty() && b.iter().all(is_event)) {
        return (batch[0].clone(), batch.clone());
    }
    let data = if run.input.is_object() { run.input.clone() } else { json!({"input": run.input}) };
    let event = json!({"name": "inngest/function.invoked", "data": data, "id": run.run_id, "ts": run.created_at / 1000});
    (event.clone(), vec![event])
}

/// A finished step as the SDK reads it from the memo.
fn memo(step: &Step) -> Option<Value> {
    let error = |s: &Step| {
        let text = s.error.as_ref().map_or_else(String::new, |e| e.message.clone());
        let (name, message) = split_error(&text);
        json!({"error": {"name": name, "message": message}})
    };
    match (step.status, step.op.as_str()) {
        (StepStatus::Succeeded, "sleep") => Some(Value::Null),
        // Why: a wait's memo is the event itself (null when it timed out), not nested in `data`.
        (StepStatus::Succeeded, "wait_for_event") => Some(step.output.clone().unwrap_or(Value::Null)),
        (StepStatus::Succeeded, _) => Some(json!({"data": step.output.clone().unwrap_or(Value::Null)})),
        (StepStatus::Failed, _) => Some(error(step)),
        _ => None,
    }
}

/// `Name: message` (as [`answer`] writes an SDK's error) back into its name and message; a text
/// without an error class's name first is a `StepError`'s message.
fn split_error(text: &str) -> (&str, &str) {
    let class = |n: &str| {
        n.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    };
    match text.split_once(": ") {
        Some((name, message)) if class(name) => (name, message),
        _ => ("StepError", text),
    }
}

/// The request body.
#[must_use]
pub fn body(c: &Call<'_>) -> Vec<u8> {
    let (event, events) = events_of(c.run);
    let mut steps = Map::new();
    let mut stack = Vec::new();
    for s in c.steps {
        if let Some(m) = memo(s) {
            let h = hash(&s.id);
            stack.push(Value::String(h.clone()));
            steps.insert(h, m);
        }
    }
    let current = stack.len();
    let body = json!({
        "event": event,
        "events": events,
        "steps": steps,
        "use_api": false,
        "version": 1,
        "ctx": {
            "run_id": c.run.run_id,
            "attempt": c.attempt,
            "max_attempts": c.max_attempts,
            "disable_immediate_execution": false,
            "use_api": false,
            "stack": {"stack": stack, "current": current},
        },
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// How a call that did not answer ops or an output ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The answer broke the protocol: the run fails with this code.
    Protocol(ProtocolError),
    /// The function raised: `retryable` is false when the SDK said not to retry.
    Raised {
        /// `Name: message`.
        message: String,
        /// Whether another attempt may help.
        retryable: bool,
    },
    /// The app refused the call (a 4xx): not retried.
    Refused {
        /// The status and what the app said.
        message: String,
    },
}

fn protocol_err(code: Code, message: impl Into<String>) -> Failure {
    Failure::Protocol(ProtocolError::new(code, message))
}

/// Reads an answer: its status, whether `x-inngest-no-retry: true` came with it, and its body.
///
/// # Errors
/// The function raised (500), the app refused the call, or the answer broke the protocol.
pub fn answer(status: u16, no_retry: bool, body: &[u8], now: i64) -> Result<Answer, Failure> {
    let json = || serde_json::from_slice::<Value>(body);
    match status {
        200 if body.iter().all(u8::is_ascii_whitespace) => Ok(Answer::Done(Value::Null)),
        200 => json()
            .map(Answer::Done)
            .map_err(|e| protocol_err(Code::StepAnswerInvalid, format!("the 200 answer's body is not JSON ({e})"))),
        206 => {
            let v =
                json().map_err(|e| protocol_err(Code::StepAnswerInvalid, format!("the 206 answer's body is not JSON ({e})")))?;
            let Value::Array(items) = v else {
                return Err(protocol_err(Code::StepAnswerInvalid, "a 206 answer's body must be an array of ops"));
            };
            let ops = items.into_iter().enumerate().map(|(i, op)| native(i, op)).collect::<Result<Vec<_>, _>>()?;
            protocol::parse_ops(Value::Array(ops), now).map(Answer::Ops).map_err(Failure::Protocol)
        }
        400..=499 => Err(Failure::Refused { message: format!("the app answered {status}: {}", said(body)) }),
        _ => Err(Failure::Raised { message: said(body), retryable: !no_retry }),
    }
}

/// What an error body says: `Name: message` from the SDK's error object, else an excerpt.
fn said(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |k: &str| v.get(k).and_then(Value::as_str);
    match (text("name"), text("message")) {
        (Some(name), Some(message)) => format!("{name}: {message}"),
        (None, Some(message)) => message.to_string(),
        _ => {
            let s = String::from_utf8_lossy(&body[..body.len().min(300)]).split_whitespace().collect::<Vec<_>>().join(" ");
            if s.is_empty() { "(empty body)".to_string() } else { s }
        }
    }
}

/// One SDK op as the native op Plinth's protocol parser reads.
fn native(i: usize, op: Value) -> Result<Value, Failure> {
    let invalid = |msg: String| protocol_err(Code::StepInvalidOp, format!("ops[{i}]: {msg}"));
    let field = |k: &str| op.get(k).and_then(Value::as_str).map(str::to_string);
    let kind = field("op").ok_or_else(|| invalid("no `op`".into()))?;
    let hashed = field("id").ok_or_else(|| invalid("no `id`".into()))?;
    if kind == "StepNotFound" {
        // Why: the spec's answer to a call targeting a step the code no longer reaches.
        return Err(protocol_err(
            Code::StepOrderChanged,
            format!(
                "ops[{i}]: the app did not find the step it was called to run (`StepNotFound`, id {hashed}): its \
                 code changed under the run, or the function is not deterministic"
            ),
        ));
    }
    let id = plinth_id(&op)
        .ok_or_else(|| invalid(format!("`{kind}` names its step by `userland.id` or `displayName`; neither is here")))?;
    if hash(&id) != hashed {
        return Err(invalid(format!("the step `{id}` does not hash to its `id` {hashed}")));
    }
    let opts = op.get("opts").cloned().unwrap_or(Value::Null);
    let opt = |k: &str| opts.get(k).cloned().filter(|v| !v.is_null());
    let mut native = match kind.as_str() {
        "StepRun" => json!({"op": "step", "id": id, "output": op.get("data").cloned().unwrap_or(Value::Null)}),
        "StepError" | "StepFailed" => {
            let message = said(&serde_json::to_vec(&op.get("error").cloned().unwrap_or(Value::Null)).unwrap_or_default());
            json!({"op": "step_error", "id": id, "error": {"message": message, "retryable": kind == "StepError"}})
        }
        "StepPlanned" => json!({"op": "plan", "id": id}),
        "Sleep" => {
            let until = field("name").ok_or_else(|| invalid("a `Sleep` carries its end time in `name`".into()))?;
            json!({"op": "sleep", "id": id, "until": until})
        }
        "WaitForEvent" => {
            let event = field("name").ok_or_else(|| invalid("a `WaitForEvent` carries the event name in `name`".into()))?;
            let cond = opt("if").and_then(|c| c.as_str().map(crate::expr::arriving_vs_run));
            json!({"op": "wait_for_event", "id": id, "event": event, "if": cond, "timeout": opt("timeout")})
        }
        "InvokeFunction" => {
            let function = opt("function_id").ok_or_else(|| invalid("an `InvokeFunction` needs `opts.function_id`".into()))?;
            let input = opts.pointer("/payload/data").cloned().unwrap_or_else(|| json!({}));
            json!({"op": "invoke", "id": id, "function": function, "input": input, "timeout": opt("timeout")})
        }
        other => {
            return Err(protocol_err(
                Code::StepUnknownOp,
                format!("ops[{i}]: `{other}` is an Inngest op Plinth does not serve; see docs/inngest.md"),
            ));
        }
    };
    // Why: the native parser reads a present `timeout` or `if` as given; absent is "none".
    if let Some(m) = native.as_object_mut() {
        m.retain(|k, v| !(v.is_null() && (k == "timeout" || k == "if")));
    }
    Ok(native)
}

/// When a `Retry-After` header asks the next attempt to start (micros): an RFC 3339 time, as the
/// SDK sends it, or a number of seconds; `None` for anything else or a time more than a day
/// away (a broken clock should not park a run for years).
#[must_use]
pub fn retry_at(header: &str, now: i64) -> Option<i64> {
    let h = header.trim();
    let at = match h.parse::<u64>() {
        Ok(secs) => now.saturating_add(i64::try_from(secs).ok()?.saturating_mul(1_000_000)),
        Err(_) => plinth_core::timefmt::parse_rfc3339(h).ok()?,
    };
    (at <= now + 86_400_000_000).then_some(at)
}

/// Plinth's id of the step an op names: `userland.id`, with `:index` for a repeat.
fn plinth_id(op: &Value) -> Option<String> {
    let user = op.pointer("/userland/id").and_then(Value::as_str).or_else(|| op.get("displayName").and_then(Value::as_str))?;
    match op.pointer("/userland/index").and_then(Value::as_u64) {
        Some(n) if n > 0 => Some(format!("{user}:{n}")),
        _ => Some(user.to_string()),
    }
}

#[cfg(test)]
mod tests;
