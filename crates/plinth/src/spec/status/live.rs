//! What the live component answers: `/health`, `/ready`, `/metrics`, `/functions`, the error
//! catalog (`/errors`) or, without one, a few error answers provoked on purpose. Redirects are
//! not followed; every request has its own timeout.

use serde_json::Value;
use std::time::Duration;

/// One answer, read whole; `Err` says why there is none.
pub(crate) type Got = Result<Answer, String>;

#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// What came back, in a few words, for a missing item.
    pub(crate) fn describe(&self) -> String {
        match &self.location {
            Some(to) if (300..400).contains(&self.status) => format!("{} redirect to {to} (not followed)", self.status),
            _ if self.json().is_some() => format!("{} with a JSON body", self.status),
            _ if self.body.is_empty() => format!("{} with an empty body", self.status),
            _ => format!("{} with a body that is not JSON", self.status),
        }
    }
}

/// Requests sent to provoke error answers when there is no catalog: none of them starts a run.
pub(crate) const PROVOKED: [(&str, &str, &str); 4] = [
    ("GET", "/runs/plinth-spec-status-no-such-run", ""),
    ("POST", "/run", "{"),
    ("POST", "/run", r#"{"function": "plinth-spec-status-no-such-function", "input": {}}"#),
    ("GET", "/plinth-spec-status-no-such-route", ""),
];

/// Everything measured on the server.
#[derive(Debug, Clone)]
pub(crate) struct Live {
    pub(crate) url: String,
    pub(crate) health: Got,
    pub(crate) ready: Got,
    pub(crate) metrics: Got,
    pub(crate) functions: Got,
    pub(crate) errors: Got,
    /// The answers to `PROVOKED`, when `/errors` is not a catalog.
    pub(crate) provoked: Vec<Got>,
}

impl Live {
    /// `plinth_version` of `GET /health`: `Some` only for a Plinth server.
    pub(crate) fn plinth_version(&self) -> Option<String> {
        self.health.as_ref().ok()?.json()?["plinth_version"].as_str().map(str::to_string)
    }

    /// The codes of `GET /errors`, when it answers a catalog (`{"errors": [{"code": ...}]}`).
    pub(crate) fn catalog(&self) -> Option<Vec<String>> {
        let answer = self.errors.as_ref().ok().filter(|a| a.status == 200)?;
        let list = answer.json()?.get("errors")?.as_array()?.clone();
        let codes: Vec<String> = list.iter().filter_map(|e| e["code"].as_str().map(str::to_string)).collect();
        (!codes.is_empty()).then_some(codes)
    }
}

fn chain(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

struct Client {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
}

impl Client {
    async fn send(&self, method: &str, path: &str, body: &str) -> Result<Answer, reqwest::Error> {
        let url = format!("{}{path}", self.base);
        let req = if method == "POST" {
            self.http.post(url).header("content-type", "application/json").body(body.to_string())
        } else {
            self.http.get(url)
        };
        let resp = req.timeout(self.timeout).send().await?;
        let status = resp.status().as_u16();
        let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = resp.bytes().await?.to_vec();
        Ok(Answer { status, location, body })
    }

    async fn get(&self, path: &str) -> Got {
        self.send("GET", path, "").await.map_err(|e| format!("GET {path}: no answer: {}", chain(&e)))
    }
}

/// Asks the server at `url`.
///
/// # Errors
/// When `url` is not an http(s) URL or the server cannot be connected to at all.
pub(crate) async fn measure(url: &str, timeout: Duration, api_key: Option<&str>) -> Result<Live, String> {
    let base = url.trim_end_matches('/').to_string();
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(format!("`{url}` is not an http:// or https:// URL"));
    }
    // Why: reqwest is built without a default TLS provider (decision 0002); https needs one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .default_headers(crate::client::bearer_headers(api_key)?)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("plinth-spec-status/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
    let client = Client { http, base, timeout };
    let health = match client.send("GET", "/health", "").await {
        Err(e) if e.is_connect() || e.is_builder() => {
            return Err(format!("cannot reach {url}: {} (is the component running, and is the URL right?)", chain(&e)));
        }
        other => other.map_err(|e| format!("GET /health: no answer: {}", chain(&e))),
    };
    let (ready, metrics, functions, errors) =
        tokio::join!(client.get("/ready"), client.get("/metrics"), client.get("/functions"), client.get("/errors"));
    let mut live = Live { url: url.to_string(), health, ready, metrics, functions, errors, provoked: Vec::new() };
    if live.catalog().is_none() {
        for (method, path, body) in PROVOKED {
            let got = client.send(method, path, body).await.map_err(|e| format!("{method} {path}: no answer: {}", chain(&e)));
            live.provoked.push(got);
        }
    }
    Ok(live)
}
