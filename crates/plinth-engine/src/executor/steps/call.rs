//! One call of a step function's handler: the envelope out, the protocol's answer back.

use super::super::{AttemptEnd, AttemptEnv, command, http};
use crate::Shared;
use plinth_core::steps::protocol::{self, Answer, ProtocolError};
use plinth_core::timefmt::now_micros;
use plinth_core::{Code, HandlerKind, RunError};
use serde_json::Value;

/// How a call ended.
#[derive(Debug)]
pub(crate) enum Called {
    /// The handler answered within the protocol.
    Answer(Answer),
    /// The answer broke the protocol: the run fails with this code.
    Protocol(ProtocolError),
    /// The call failed as any attempt fails (exit status, HTTP status, timeout, stop).
    End(AttemptEnd),
}

/// Calls the handler of `env.run`'s function with `envelope`. Durations in the answer (a
/// sleep's `duration`) count from the moment the answer came.
pub(crate) async fn call(shared: &Shared, handler: &HandlerKind<'_>, env: &AttemptEnv<'_>, envelope: Vec<u8>) -> Called {
    match handler {
        HandlerKind::Command(spec) => match command::exec(spec, env, envelope).await {
            Ok(out) => match protocol::parse_command(trim(&out), now_micros()) {
                Ok(a) => Called::Answer(a),
                Err(e) => Called::Protocol(e),
            },
            Err(end) => Called::End(end),
        },
        HandlerKind::Http(_) => {
            let limit = usize::try_from(env.config.max_output_bytes).unwrap_or(usize::MAX);
            match shared.http.post(env, envelope).await {
                Ok(reply) if reply.status == 206 && !reply.over => match protocol::parse_partial(&reply.body, now_micros()) {
                    Ok(a) => Called::Answer(a),
                    Err(e) => Called::Protocol(e),
                },
                Ok(reply) if reply.status == 200 && !reply.over => {
                    if reply.body.iter().all(u8::is_ascii_whitespace) {
                        return Called::Answer(Answer::Done(Value::Null));
                    }
                    match serde_json::from_slice(&reply.body) {
                        Ok(v) => Called::Answer(Answer::Done(v)),
                        Err(e) => Called::Protocol(ProtocolError::new(
                            Code::StepAnswerInvalid,
                            format!("the 200 answer's body is not JSON ({e}): {}", http::excerpt(&reply.body)),
                        )),
                    }
                }
                Ok(reply) if (200..300).contains(&reply.status) && !reply.over => Called::Protocol(ProtocolError::new(
                    Code::StepAnswerInvalid,
                    format!("a step function answers 200 when it finished or 206 when it reached a step, not {}", reply.status),
                )),
                Ok(reply) => match protocol::reported(&reply.body) {
                    Some(e) if reply.status >= 400 => Called::Protocol(e),
                    _ => Called::End(http::classify(reply, limit)),
                },
                Err(end) => Called::End(end),
            }
        }
        HandlerKind::Rust(name) => Called::End(AttemptEnd::Failed(RunError::new(
            Code::HandlerNotStarted,
            format!("`{name}` is an in-process handler; step functions run command or HTTP handlers"),
        ))),
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &bytes[start..end.max(start)]
}
