//! HTTP handlers: one `POST {"run_id","function","attempt","input"}` per attempt.
//!
//! 2xx with a JSON body (or none) succeeds; 408, 429, 5xx, connection failures and timeouts
//! fail retryably; any other status fails at once with the status and a body excerpt. A stop
//! (cancel, shutdown, lost lease) drops the request, which aborts it.

use super::{AttemptEnd, AttemptEnv};
use plinth_core::component::{HttpSpec, expand_env};
use plinth_core::{Code, RunError};
use plinth_store::LogLine;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// Bytes of a response body quoted in a run's error.
const EXCERPT: usize = 512;

/// One function's endpoint, with its headers resolved from the environment.
#[derive(Debug)]
pub(crate) struct Target {
    url: reqwest::Url,
    headers: HeaderMap,
    timeout: Option<Duration>,
}

/// Every HTTP function's target and the pooled client they share.
#[derive(Debug, Default)]
pub(crate) struct HttpHandlers {
    client: Option<reqwest::Client>,
    targets: HashMap<String, Target>,
}

/// Resolves a spec: parses the URL and expands `${NAME}` in header values through `lookup`.
pub(crate) fn target(spec: &HttpSpec, lookup: impl Fn(&str) -> Option<String>) -> Result<Target, (&'static str, String)> {
    let url = reqwest::Url::parse(&spec.url).map_err(|e| ("url", format!("`{}`: {e}", spec.url)))?;
    let mut headers = HeaderMap::new();
    for (name, value) in &spec.headers {
        let value = expand_env(value, &lookup).map_err(|e| ("headers", format!("`{name}`: {e}")))?;
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| ("headers", format!("`{name}`: {e}")))?;
        let mut value = HeaderValue::from_str(&value).map_err(|e| ("headers", format!("`{name}`: {e}")))?;
        // Why: header values may hold credentials; keep them out of any debug output.
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok(Target { url, headers, timeout: spec.timeout.map(|t| t.get()) })
}

impl HttpHandlers {
    /// Builds the targets of every HTTP function of the component.
    pub(crate) fn new(component: &plinth_core::component::Component) -> Result<Self, plinth_core::ConfigError> {
        let mut targets = HashMap::new();
        for (i, f) in component.file.functions.iter().enumerate() {
            if let Some(plinth_core::HandlerKind::Http(spec)) = f.handler.get() {
                let t = target(spec, |name| std::env::var(name).ok()).map_err(|(field, reason)| {
                    plinth_core::ConfigError::new(
                        component.path.display().to_string(),
                        format!("functions[{i}].handler.http.{field}"),
                        reason,
                    )
                })?;
                targets.insert(f.name.clone(), t);
            }
        }
        // Why: reqwest is built without a default crypto provider; ring is the one we ship.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .user_agent(concat!("plinth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| plinth_core::ConfigError::new(component.path.display().to_string(), "handler.http", e.to_string()))?;
        Ok(Self { client: Some(client), targets })
    }

    /// Executes one attempt against the function's endpoint.
    pub(crate) async fn run(&self, env: &AttemptEnv<'_>) -> AttemptEnd {
        let run = env.run;
        let body = json!({"run_id": run.run_id, "function": run.function, "attempt": run.attempt, "input": run.input});
        let limit = usize::try_from(env.config.max_output_bytes).unwrap_or(usize::MAX);
        match self.post(env, serde_json::to_vec(&body).unwrap_or_default()).await {
            Ok(reply) => classify(reply, limit),
            Err(end) => end,
        }
    }

    /// Sends one request with `body` to the function's endpoint; the reply, or how the
    /// attempt ends when there is none (unreachable, timeout, stopped).
    pub(crate) async fn post(&self, env: &AttemptEnv<'_>, body: Vec<u8>) -> Result<Reply, AttemptEnd> {
        self.post_step(env, body, None).await
    }

    /// [`Self::post`], or to an Inngest function's `url` (which an app may register at any
    /// time, so it is read from the component at each call) with its query's `stepId` set and,
    /// when a signing key is set, the body's `X-Inngest-Signature`.
    pub(crate) async fn post_step(
        &self,
        env: &AttemptEnv<'_>,
        body: Vec<u8>,
        sdk: Option<(&str, &str)>,
    ) -> Result<Reply, AttemptEnd> {
        let sdk_target = match sdk {
            Some((url, step)) => match reqwest::Url::parse(url) {
                Ok(mut url) => {
                    let pairs: Vec<(String, String)> =
                        url.query_pairs().filter(|(k, _)| k != "stepId").map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
                    url.query_pairs_mut().clear().extend_pairs(pairs).append_pair("stepId", step);
                    let mut headers = HeaderMap::new();
                    if let Some(key) = &env.config.inngest_signing {
                        let signed = key
                            .sign_request(&body, plinth_core::timefmt::now_micros() / 1_000_000)
                            .map_err(|e| AttemptEnd::Failed(RunError::new(Code::HandlerNotStarted, e)))?;
                        if let Ok(v) = HeaderValue::from_str(&signed) {
                            headers.insert("x-inngest-signature", v);
                        }
                    }
                    Some(Target { url, headers, timeout: None })
                }
                Err(e) => {
                    let msg = format!("the Inngest function's URL does not parse: {e}");
                    return Err(AttemptEnd::Failed(RunError::new(Code::HandlerNotStarted, msg)));
                }
            },
            None => None,
        };
        let (Some(client), Some(target)) = (&self.client, sdk_target.as_ref().or_else(|| self.targets.get(&env.run.function)))
        else {
            let msg = format!("no HTTP target is prepared for `{}`", env.run.function);
            return Err(AttemptEnd::Failed(RunError::new(Code::HandlerNotStarted, msg)));
        };
        if env.stop.is_cancelled() {
            return Err(AttemptEnd::Stopped);
        }
        let timeout = target.timeout.map_or(env.timeout, |t| t.min(env.timeout));
        let run = env.run;
        let call = tracing::info_span!(
            "http call",
            otel.name = "POST",
            otel.kind = "client",
            http.request.method = "POST",
            server.address = target.url.host_str().unwrap_or(""),
            http.response.status_code = tracing::field::Empty
        );
        let (traceparent, tracestate) = call.in_scope(|| {
            let parent = plinth_core::trace::for_handler(&run.run_id, run.traceparent.as_deref());
            (parent, plinth_core::trace::state_for_handler(run.tracestate.as_deref()))
        });
        let mut request = client
            .post(target.url.clone())
            .headers(target.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header("x-correlation-id", &run.correlation_id)
            .header("traceparent", traceparent)
            .body(body);
        if let Some(state) = tracestate {
            request = request.header("tracestate", state);
        }
        let limit = usize::try_from(env.config.max_output_bytes).unwrap_or(usize::MAX);
        let started = Instant::now();
        let result = tokio::select! {
            r = tokio::time::timeout(timeout, exchange(request, limit)).instrument(call.clone()) => r,
            () = env.stop.cancelled() => return Err(AttemptEnd::Stopped),
        };
        if let Ok(Ok(reply)) = &result {
            call.record("http.response.status_code", i64::from(reply.status));
        }
        let elapsed_ms = started.elapsed().as_millis();
        let (end, summary) = match result {
            Err(_) => (
                Err(AttemptEnd::Failed(RunError::new(
                    Code::HandlerTimeout,
                    format!("the HTTP handler did not answer within {}", plinth_core::DurationSpec(timeout)),
                ))),
                format!("no answer within {}", plinth_core::DurationSpec(timeout)),
            ),
            Ok(Err(e)) => {
                let msg = describe_error(&e);
                (Err(AttemptEnd::Failed(RunError::new(Code::HandlerUnreachable, msg.clone()))), msg)
            }
            Ok(Ok(reply)) => {
                let status = reply.status;
                (Ok(reply), format!("answered {status}"))
            }
        };
        let line = format!("http: POST {} {summary} in {elapsed_ms} ms", redacted(&target.url));
        let seq = env.log_seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = LogLine { seq, ts: plinth_core::timefmt::now_micros(), line };
        if let Err(e) = env.store.append_logs(&run.run_id, run.attempt, vec![log]).await {
            tracing::warn!(error = %e, "cannot store the HTTP handler's log line");
        }
        end
    }
}

/// What came back, read up to the output limit.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    pub(crate) over: bool,
    pub(crate) location: Option<String>,
    /// `x-inngest-no-retry: true` came with it (an Inngest SDK's non-retriable error).
    pub(crate) no_retry: bool,
    /// Its `Retry-After` header, as sent.
    pub(crate) retry_after: Option<String>,
    /// Its `X-Inngest-Signature` header, as sent.
    pub(crate) signature: Option<String>,
}

async fn exchange(request: reqwest::RequestBuilder, limit: usize) -> Result<Reply, reqwest::Error> {
    let mut resp = request.send().await?;
    let status = resp.status().as_u16();
    let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
    let no_retry = resp.headers().get("x-inngest-no-retry").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
    let signature = resp.headers().get("x-inngest-signature").and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut body = Vec::new();
    let mut over = false;
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > limit {
            over = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Reply { status, body, over, location, no_retry, retry_after, signature })
}

/// The attempt's end for a response.
pub(crate) fn classify(reply: Reply, limit: usize) -> AttemptEnd {
    let Reply { status, body, over, location, .. } = reply;
    match status {
        200..=299 if over => {
            AttemptEnd::Failed(RunError::new(Code::OutputTooLarge, format!("the HTTP handler answered more than {limit} bytes")))
        }
        200..=299 if body.iter().all(u8::is_ascii_whitespace) => AttemptEnd::Succeeded(Value::Null),
        200..=299 => match serde_json::from_slice(&body) {
            Ok(v) => AttemptEnd::Succeeded(v),
            Err(e) => AttemptEnd::Failed(RunError::new(
                Code::HandlerBadResponse,
                format!("the HTTP handler answered {status} with a body that is not JSON ({e}): {}", excerpt(&body)),
            )),
        },
        300..=399 => AttemptEnd::Failed(RunError::new(
            Code::HandlerBadResponse,
            format!(
                "the HTTP handler redirected ({status}) to {}; point handler.http.url at the final address",
                location.as_deref().unwrap_or("nowhere")
            ),
        )),
        408 | 429 | 500..=599 => AttemptEnd::Failed(RunError::new(
            Code::HandlerFailed,
            format!("the HTTP handler answered {status}: {}", excerpt(&body)),
        )),
        _ => AttemptEnd::Failed(RunError::new(
            Code::HandlerRejected,
            format!("the HTTP handler answered {status}: {}", excerpt(&body)),
        )),
    }
}

/// The first bytes of a body as one line of text.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let cut = &body[..body.len().min(EXCERPT)];
    let text: String = String::from_utf8_lossy(cut).split_whitespace().collect::<Vec<_>>().join(" ");
    let text = if text.is_empty() { "(empty body)".to_string() } else { text };
    if body.len() > EXCERPT { format!("{text}…") } else { text }
}

/// A request failure in words, without the URL (its query could hold a secret).
fn describe_error(e: &reqwest::Error) -> String {
    let mut msg =
        if e.is_connect() { "cannot connect to the HTTP handler".to_string() } else { "the HTTP request failed".to_string() };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// The URL without its query, user or password, for logs.
pub(crate) fn redacted(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

#[cfg(test)]
mod tests;
