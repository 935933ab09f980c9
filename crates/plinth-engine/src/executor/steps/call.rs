//! One call of a step function's handler: the envelope out, the protocol's answer back.

use super::super::{AttemptEnd, AttemptEnv, command, http};
use crate::Shared;
use plinth_core::steps::Step;
use plinth_core::steps::envelope;
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

/// What one call hands the handler.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Req<'a> {
    /// The run's steps, in their stored order.
    pub(crate) memo: &'a [Step],
    /// The attempt, from 1: the run's for an untargeted call, the step's for a targeted one.
    pub(crate) attempt: u32,
    /// The step this call runs, if any.
    pub(crate) target: Option<&'a str>,
}

/// Calls the handler of `env.run`'s function. Durations in the answer (a sleep's `duration`)
/// count from the moment the answer came.
pub(crate) async fn call(shared: &Shared, handler: &HandlerKind<'_>, env: &AttemptEnv<'_>, req: Req<'_>) -> Called {
    let envelope = || envelope::build(env.run, req.attempt, req.memo, req.target);
    match handler {
        HandlerKind::Command(spec) => match command::exec(spec, env, envelope()).await {
            Ok(out) => match protocol::parse_command(trim(&out), now_micros()) {
                Ok(a) => Called::Answer(a),
                Err(e) => Called::Protocol(e),
            },
            Err(end) => Called::End(end),
        },
        HandlerKind::Http(_) => {
            let limit = usize::try_from(env.config.max_output_bytes).unwrap_or(usize::MAX);
            match shared.http.post(env, envelope()).await {
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
        HandlerKind::Inngest(i) => inngest(shared, &i.url, env, req).await,
        HandlerKind::Rust(name) => Called::End(AttemptEnd::Failed(RunError::new(
            Code::HandlerNotStarted,
            format!("`{name}` is an in-process handler; step functions run command or HTTP handlers"),
        ))),
    }
}

/// A call over Inngest's SDK protocol (see the `plinth-inngest` crate).
async fn inngest(shared: &Shared, url: &str, env: &AttemptEnv<'_>, req: Req<'_>) -> Called {
    use plinth_inngest::call::{self as sdk, Failure};
    let run = env.run;
    let call = sdk::Call {
        run,
        steps: req.memo,
        attempt: req.attempt.saturating_sub(1),
        max_attempts: run.max_attempts,
        target: req.target,
    };
    let step = sdk::step_param(req.target);
    let mut reply = match shared.http.post_step(env, sdk::body(&call), Some((url, &step))).await {
        Ok(reply) => reply,
        Err(end) => return Called::End(end),
    };
    if reply.over {
        let limit = env.config.max_output_bytes;
        return Called::End(AttemptEnd::Failed(RunError::new(
            Code::OutputTooLarge,
            format!("the app answered more than {limit} bytes"),
        )));
    }
    if let Some(key) = env.config.inngest_signing.as_deref() {
        reply = match verified(key, reply, env) {
            Ok(reply) => reply,
            Err(end) => return end,
        };
    }
    let now = now_micros();
    match sdk::answer(reply.status, reply.no_retry, &reply.body, now) {
        Ok(answer) => Called::Answer(answer),
        Err(Failure::Protocol(p)) => Called::Protocol(p),
        Err(Failure::Raised { message, retryable }) => {
            let mut e = RunError::new(Code::HandlerFailed, format!("the function raised {message}")).retryable(retryable);
            e.retry_at = reply.retry_after.as_deref().and_then(|h| sdk::retry_at(h, now));
            Called::End(AttemptEnd::Failed(e))
        }
        Err(Failure::Refused { message }) => Called::End(AttemptEnd::Failed(RunError::new(Code::HandlerRejected, message))),
    }
}

/// With a signing key, how a call ends when its answer's signature does not verify: an app that
/// refused Plinth's signature (401/403) rejects the run; a 2xx is not acted on (PLINTH_033);
/// another status fails as that status does, without the SDK's headers (an unsigned 502 from a
/// proxy is retried as any 502). The answer back when it verifies.
fn verified(key: &plinth_inngest::sign::SigningKey, reply: http::Reply, env: &AttemptEnv<'_>) -> Result<http::Reply, Called> {
    let Err(why) = key.verify_answer(&reply.body, reply.signature.as_deref()) else { return Ok(reply) };
    let status = reply.status;
    let end = match status {
        401 | 403 => AttemptEnd::Failed(RunError::new(
            Code::HandlerRejected,
            format!(
                "the app refused Plinth's signed call ({status}): does inngest.signing_key_env hold the app's \
                 INNGEST_SIGNING_KEY? it said: {}",
                http::excerpt(&reply.body)
            ),
        )),
        200..=299 => AttemptEnd::Failed(RunError::new(Code::AnswerSignatureInvalid, format!("{why} (status {status})"))),
        _ => {
            let limit = usize::try_from(env.config.max_output_bytes).unwrap_or(usize::MAX);
            http::classify(http::Reply { no_retry: false, retry_after: None, ..reply }, limit)
        }
    };
    Err(Called::End(end))
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &bytes[start..end.max(start)]
}
