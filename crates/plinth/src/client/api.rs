//! The HTTP calls of the CLI client, and how their failures map to exit codes.

use super::{EXIT_UNREACHABLE, EXIT_USAGE, base_url};
use crate::cli::ClientArgs;
use serde_json::Value;
use std::time::Duration;

/// A failed command: its exit code and what to print.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) exit: u8,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(exit: u8, message: impl Into<String>) -> Self {
        Self { exit, message: message.into() }
    }
}

pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
}

/// A problem+json answer in one line: `title (code): detail; /pointer: message`.
pub(crate) fn describe_problem(status: u16, body: &Value) -> String {
    let title = body["title"].as_str().unwrap_or("request failed");
    let mut text = match (body["code"].as_str(), body["detail"].as_str()) {
        (Some(code), Some(detail)) => format!("{status} {title} ({code}): {detail}"),
        (Some(code), None) => format!("{status} {title} ({code})"),
        _ => format!("{status}: {}", if body.is_null() { "(no JSON body)".to_string() } else { body.to_string() }),
    };
    for e in body["errors"].as_array().into_iter().flatten() {
        // Why: the detail often lists the same fields already.
        if e["pointer"].as_str().is_some_and(|p| text.contains(p)) {
            continue;
        }
        text.push_str(&format!("; {}: {}", e["pointer"].as_str().unwrap_or("?"), e["message"].as_str().unwrap_or("?")));
    }
    text
}

impl Api {
    pub(crate) fn new(args: &ClientArgs) -> Result<Self, Failure> {
        let base = base_url(args)?;
        // Why: reqwest is built without a default TLS provider (decision 0002); https needs one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let headers = super::bearer_headers(args.api_key.as_deref()).map_err(|e| Failure::new(super::EXIT_USAGE, e))?;
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(90))
            .user_agent(concat!("plinth-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::new(EXIT_UNREACHABLE, format!("cannot make an HTTP client: {e}")))?;
        Ok(Self { http, base })
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<(u16, reqwest::header::HeaderMap, Value), Failure> {
        let resp = req.send().await.map_err(|e| {
            let mut msg = format!("cannot reach {}", self.base);
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            Failure::new(EXIT_UNREACHABLE, msg)
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(|e| Failure::new(EXIT_UNREACHABLE, format!("the answer broke off: {e}")))?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        match status {
            200..=299 => Ok((status, headers, body)),
            400..=499 => Err(Failure::new(EXIT_USAGE, describe_problem(status, &body))),
            _ => Err(Failure::new(EXIT_UNREACHABLE, describe_problem(status, &body))),
        }
    }

    pub(crate) async fn submit(&self, function: &str, input: &Value, key: Option<&str>) -> Result<Value, Failure> {
        let mut req =
            self.http.post(format!("{}/run", self.base)).json(&serde_json::json!({"function": function, "input": input}));
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        let (_, headers, mut body) = self.call(req).await?;
        if headers.get("idempotent-replayed").is_some_and(|v| v == "true") {
            body["replayed"] = Value::Bool(true);
        }
        Ok(body)
    }

    pub(crate) async fn get(&self, id: &str, wait: Option<Duration>) -> Result<Value, Failure> {
        let mut url = format!("{}/runs/{id}", self.base);
        if let Some(w) = wait {
            url.push_str(&format!("?wait={:.3}", w.as_secs_f64()));
        }
        Ok(self.call(self.http.get(url)).await?.2)
    }

    pub(crate) async fn list(&self, query: &[(&str, String)]) -> Result<Value, Failure> {
        Ok(self.call(self.http.get(format!("{}/runs", self.base)).query(query)).await?.2)
    }

    pub(crate) async fn cancel(&self, id: &str) -> Result<Value, Failure> {
        Ok(self.call(self.http.post(format!("{}/runs/{id}/cancel", self.base))).await?.2)
    }

    pub(crate) async fn logs(&self, id: &str) -> Result<Value, Failure> {
        Ok(self.call(self.http.get(format!("{}/runs/{id}/logs", self.base))).await?.2)
    }

    pub(crate) async fn steps(&self, id: &str) -> Result<Value, Failure> {
        Ok(self.call(self.http.get(format!("{}/runs/{id}/steps", self.base))).await?.2)
    }

    pub(crate) async fn rerun(&self, id: &str, from_step: Option<&str>) -> Result<Value, Failure> {
        let body = from_step.map_or_else(|| serde_json::json!({}), |s| serde_json::json!({"from_step": s}));
        Ok(self.call(self.http.post(format!("{}/runs/{id}/rerun", self.base)).json(&body)).await?.2)
    }

    pub(crate) async fn send_event(&self, event: &Value) -> Result<Value, Failure> {
        Ok(self.call(self.http.post(format!("{}/events", self.base)).json(event)).await?.2)
    }

    pub(crate) async fn events(&self, query: &[(&str, String)]) -> Result<Value, Failure> {
        Ok(self.call(self.http.get(format!("{}/events", self.base)).query(query)).await?.2)
    }

    pub(crate) async fn event(&self, id: &str) -> Result<Value, Failure> {
        let url = reqwest::Url::parse(&format!("{}/events/", self.base))
            .and_then(|u| u.join(&id.replace('%', "%25").replace('/', "%2F").replace('?', "%3F").replace('#', "%23")))
            .map_err(|e| Failure::new(super::EXIT_USAGE, format!("`{id}` cannot be put in a URL: {e}")))?;
        Ok(self.call(self.http.get(url)).await?.2)
    }

    pub(crate) async fn functions(&self) -> Result<Value, Failure> {
        Ok(self.call(self.http.get(format!("{}/functions", self.base))).await?.2)
    }
}
