//! The step protocol's answers: what a handler says it reached, parsed and checked before
//! Plinth acts on any of it. Every way an answer can break the protocol has its own code.

use super::{MAX_STEP_ID, StepError};
use crate::error::Code;
use crate::policy::DurationSpec;
use crate::timefmt;
use crate::trigger::Expr;
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;

/// A call's answer that breaks the protocol: the call fails with this code, not retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError {
    /// Which rule.
    pub code: Code,
    /// What the handler's author should fix.
    pub message: String,
}

impl ProtocolError {
    /// An error with its code.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// What a call answered.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// The function finished with this output.
    Done(Value),
    /// The handler reached these ops.
    Ops(Vec<Op>),
}

/// One op of an answer, parsed and checked.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A step the handler ran in this call.
    Step {
        /// Its id.
        id: String,
        /// Its output.
        output: Value,
    },
    /// A step that failed in this call.
    StepError {
        /// Its id.
        id: String,
        /// Why.
        error: StepError,
    },
    /// A step to run in parallel with the others planned in the same answer.
    Plan {
        /// Its id.
        id: String,
    },
    /// Wait until a time (micros; a time in the past wakes at once).
    Sleep {
        /// Its id.
        id: String,
        /// When it ends.
        until: i64,
    },
    /// Wait for a matching event.
    WaitForEvent {
        /// Its id.
        id: String,
        /// The event name.
        event: String,
        /// A CEL condition over `event` and `run`, already checked to compile.
        cond: Option<String>,
        /// How long to wait at most.
        timeout: Option<Duration>,
    },
    /// Start a child run and wait for its end.
    Invoke {
        /// Its id.
        id: String,
        /// The child's function.
        function: String,
        /// The child's input.
        input: Value,
        /// How long to wait at most.
        timeout: Option<Duration>,
    },
    /// Send events.
    SendEvent {
        /// Its id.
        id: String,
        /// One event or an array of them, as `POST /events` takes them.
        events: Value,
    },
}

/// The ops a handler may answer.
pub const OPS: [&str; 7] = ["step", "step_error", "plan", "sleep", "wait_for_event", "invoke", "send_event"];

impl Op {
    /// The step id.
    #[must_use]
    pub fn id(&self) -> &str {
        match self {
            Op::Step { id, .. }
            | Op::StepError { id, .. }
            | Op::Plan { id }
            | Op::Sleep { id, .. }
            | Op::WaitForEvent { id, .. }
            | Op::Invoke { id, .. }
            | Op::SendEvent { id, .. } => id,
        }
    }

    /// The op's name, as the protocol and the step records spell it.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Op::Step { .. } => "step",
            Op::StepError { .. } => "step_error",
            Op::Plan { .. } => "plan",
            Op::Sleep { .. } => "sleep",
            Op::WaitForEvent { .. } => "wait_for_event",
            Op::Invoke { .. } => "invoke",
            Op::SendEvent { .. } => "send_event",
        }
    }
}

fn not_json(what: &str, e: &serde_json::Error, text: &[u8]) -> ProtocolError {
    let excerpt: String = String::from_utf8_lossy(&text[..text.len().min(200)]).chars().collect();
    ProtocolError::new(Code::StepAnswerInvalid, format!("{what} is not JSON ({e}): {excerpt}"))
}

/// A protocol error the handler (its helper) detected itself and reports as
/// `{"error": {"code": "PLINTH_058", "message": "..."}}`, such as steps reached in another order
/// than stored. Only the step protocol's codes (050 to 060) are taken; `None` otherwise.
#[must_use]
pub fn reported(body: &[u8]) -> Option<ProtocolError> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let e = v.as_object().filter(|m| m.len() == 1)?.get("error")?;
    let code = Code::parse(e.get("code")?.as_str()?)?;
    let n: u32 = code.as_str().trim_start_matches("PLINTH_").parse().ok()?;
    let message = e.get("message").and_then(Value::as_str).unwrap_or("reported by the handler");
    (50..=60).contains(&n).then(|| ProtocolError::new(code, format!("the handler reports: {message}")))
}

/// A command's stdout: `{"output": V}` or `{"ops": [...]}` (or a reported protocol error).
///
/// # Errors
/// Anything else (050), or an op that breaks the protocol.
pub fn parse_command(stdout: &[u8], now: i64) -> Result<Answer, ProtocolError> {
    let v: Value = serde_json::from_slice(stdout).map_err(|e| not_json("the command's stdout", &e, stdout))?;
    match v {
        Value::Object(mut map) if map.len() == 1 && map.contains_key("output") => {
            Ok(Answer::Done(map.remove("output").unwrap_or(Value::Null)))
        }
        Value::Object(mut map) if map.len() == 1 && map.contains_key("ops") => {
            parse_ops(map.remove("ops").unwrap_or(Value::Null), now).map(Answer::Ops)
        }
        _ => Err(reported(stdout).unwrap_or_else(|| {
            ProtocolError::new(
                Code::StepAnswerInvalid,
                "a step function's command must print one JSON object, `{\"output\": V}` when it finished or `{\"ops\": [...]}` when it reached a step",
            )
        })),
    }
}

/// An HTTP handler's 206 body: `{"ops": [...]}`.
///
/// # Errors
/// Anything else (050), or an op that breaks the protocol.
pub fn parse_partial(body: &[u8], now: i64) -> Result<Answer, ProtocolError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| not_json("the 206 answer's body", &e, body))?;
    match v {
        Value::Object(mut map) if map.contains_key("ops") => {
            parse_ops(map.remove("ops").unwrap_or(Value::Null), now).map(Answer::Ops)
        }
        _ => Err(ProtocolError::new(Code::StepAnswerInvalid, "a 206 answer's body must be `{\"ops\": [...]}`")),
    }
}

fn invalid(i: usize, msg: impl std::fmt::Display) -> ProtocolError {
    ProtocolError::new(Code::StepInvalidOp, format!("ops[{i}]: {msg}"))
}

fn duration(i: usize, field: &str, text: Option<&Value>) -> Result<Option<Duration>, ProtocolError> {
    let Some(v) = text else { return Ok(None) };
    let Some(t) = v.as_str() else { return Err(invalid(i, format!("`{field}` must be a duration such as \"90s\" or \"2h\""))) };
    if t.trim_start().starts_with('-') {
        return Err(invalid(i, format!("`{field}` is negative: `{t}`")));
    }
    let d = DurationSpec::parse(t).map_err(|e| invalid(i, format!("`{field}`: {e}")))?.get();
    if d.is_zero() {
        return Err(invalid(i, format!("`{field}` must be longer than 0s")));
    }
    Ok(Some(d))
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4)
}

/// Parses the `ops` array.
///
/// # Errors
/// Not an array or empty (060), an op that is not in the protocol (051), a field missing or
/// invalid (060).
pub fn parse_ops(ops: Value, now: i64) -> Result<Vec<Op>, ProtocolError> {
    let Value::Array(items) = ops else {
        return Err(ProtocolError::new(Code::StepInvalidOp, "`ops` must be an array of ops"));
    };
    if items.is_empty() {
        return Err(ProtocolError::new(Code::StepInvalidOp, "`ops` is empty: answer at least one op"));
    }
    items.into_iter().enumerate().map(|(i, item)| parse_op(i, item, now)).collect()
}

fn parse_op(i: usize, item: Value, now: i64) -> Result<Op, ProtocolError> {
    let Value::Object(mut m) = item else { return Err(invalid(i, "an op is a JSON object")) };
    let name = m.get("op").and_then(Value::as_str).unwrap_or_default().to_string();
    if !OPS.contains(&name.as_str()) {
        let shown = if name.is_empty() { "no `op` field".to_string() } else { format!("`{name}`") };
        return Err(ProtocolError::new(
            Code::StepUnknownOp,
            format!("ops[{i}]: {shown} is not an op; use one of {}", OPS.join(", ")),
        ));
    }
    let id = match m.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() && id.len() <= MAX_STEP_ID => id.to_string(),
        Some(id) if !id.is_empty() => return Err(invalid(i, format!("the id is longer than {MAX_STEP_ID} characters"))),
        _ => return Err(invalid(i, "`id` must be a non-empty string")),
    };
    let str_field = |m: &serde_json::Map<String, Value>, f: &str| m.get(f).and_then(Value::as_str).map(str::to_string);
    Ok(match name.as_str() {
        "step" => Op::Step { id, output: m.remove("output").unwrap_or(Value::Null) },
        "step_error" => {
            let error = serde_json::from_value::<StepError>(m.remove("error").unwrap_or(Value::Null))
                .map_err(|_| invalid(i, "`error` must be {\"message\": TEXT, \"retryable\": BOOL}"))?;
            Op::StepError { id, error }
        }
        "plan" => Op::Plan { id },
        "sleep" => {
            let until = match (m.get("duration"), m.get("until")) {
                (Some(_), Some(_)) | (None, None) => return Err(invalid(i, "a sleep has either `duration` or `until`")),
                (d @ Some(_), None) => now + micros(duration(i, "duration", d)?.unwrap_or_default()),
                (None, Some(u)) => {
                    let t = u.as_str().ok_or_else(|| invalid(i, "`until` must be an RFC 3339 time"))?;
                    timefmt::parse_rfc3339(t).map_err(|e| invalid(i, format!("`until`: {e}")))?.max(now)
                }
            };
            Op::Sleep { id, until }
        }
        "wait_for_event" => {
            let event = str_field(&m, "event").ok_or_else(|| invalid(i, "`event` (an event name) is required"))?;
            if !crate::event::is_event_name(&event) {
                return Err(invalid(i, format!("`event`: `{event}` is not an event name such as `shop/order.paid`")));
            }
            let cond = match m.get("if") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => {
                    Expr::compile(s, &["event", "run"]).map_err(|e| invalid(i, format!("`if`: {e}")))?;
                    Some(s.clone())
                }
                Some(_) => return Err(invalid(i, "`if` must be a CEL expression as a string")),
            };
            Op::WaitForEvent { id, event, cond, timeout: duration(i, "timeout", m.get("timeout"))? }
        }
        "invoke" => {
            let function =
                str_field(&m, "function").filter(|f| !f.is_empty()).ok_or_else(|| invalid(i, "`function` is required"))?;
            let timeout = duration(i, "timeout", m.get("timeout"))?;
            Op::Invoke { id, function, input: m.remove("input").unwrap_or_else(|| serde_json::json!({})), timeout }
        }
        _ => match m.remove("events") {
            Some(events @ (Value::Object(_) | Value::Array(_))) => Op::SendEvent { id, events },
            _ => return Err(invalid(i, "`events` must be one event or an array of events")),
        },
    })
}

/// Checks an answer's ops against the memo and the call's target.
///
/// Rules: no id twice, no id of a finished step (`done`); with a target, exactly one `step` or
/// `step_error` for that id; plans come two or more at once; besides finished `step`s, an
/// answer holds either plans or at most one other op.
///
/// # Errors
/// The rule broken, with its code.
pub fn check(ops: &[Op], done: &dyn Fn(&str) -> bool, target: Option<&str>) -> Result<(), ProtocolError> {
    let mut seen = HashSet::new();
    for op in ops {
        if done(op.id()) {
            return Err(ProtocolError::new(
                Code::StepIdRepeated,
                format!(
                    "`{}` answers step `{}`, whose result is already stored; name repeated steps `name:1`, `name:2`, ...",
                    op.name(),
                    op.id()
                ),
            ));
        }
        if !seen.insert(op.id()) {
            return Err(ProtocolError::new(Code::StepIdRepeated, format!("the answer names step `{}` twice", op.id())));
        }
    }
    if let Some(target) = target {
        return match ops {
            [Op::Step { id, .. } | Op::StepError { id, .. }] if id == target => Ok(()),
            _ => Err(ProtocolError::new(
                Code::StepTargetMismatch,
                format!(
                    "the call targeted step `{target}` but the answer is {}; with `ctx.target` set, run only that step and answer one `step` or `step_error` op",
                    ops.iter().map(|o| format!("`{}` {}", o.name(), o.id())).collect::<Vec<_>>().join(", ")
                ),
            )),
        };
    }
    let plans = ops.iter().filter(|o| matches!(o, Op::Plan { .. })).count();
    let others: Vec<&Op> = ops.iter().filter(|o| !matches!(o, Op::Plan { .. } | Op::Step { .. })).collect();
    if plans == 1 {
        return Err(ProtocolError::new(
            Code::StepPlanTooSmall,
            format!(
                "the answer plans only step `{}`; plan two or more steps to run them in parallel, or run a single step as `step`",
                ops.iter().find(|o| matches!(o, Op::Plan { .. })).map_or("", Op::id)
            ),
        ));
    }
    if (plans > 0 && !others.is_empty()) || others.len() > 1 {
        return Err(ProtocolError::new(
            Code::StepInvalidOp,
            "an answer holds finished `step`s and then either two or more `plan`s or one other op (`step_error`, `sleep`, `wait_for_event`, `invoke`, `send_event`), not several",
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
