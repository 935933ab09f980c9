//! The HTTP side of the checks: one client that never follows redirects, answers read whole,
//! and one-line descriptions of what came back.

use super::{CheckOptions, Outcome};
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};

/// Everything the checks share.
pub(crate) struct Ctx {
    pub(crate) opts: CheckOptions,
    pub(crate) http: reqwest::Client,
    /// The base URL with a trailing slash, for resolving `Location` headers.
    base: Url,
    /// Unique per invocation: idempotency keys and correlation ids.
    pub(crate) nonce: String,
    /// The function and its schema, from `--function` and `GET /functions`, asked for once
    /// by the first check that needs them (within that check's timeout).
    resolved: tokio::sync::OnceCell<Resolved>,
}

fn client(opts: &CheckOptions) -> Result<reqwest::Client, String> {
    // Why: reqwest is built without a default TLS provider (decision 0002); https needs one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .default_headers(crate::client::bearer_headers(opts.api_key.as_deref())?)
        .connect_timeout(opts.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("plinth-check/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))
}

/// The error and its causes, joined.
pub(crate) fn chain(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

/// Fails when the server cannot be connected to at all (the exit 2 of `plinth check`); a server
/// that connects but answers slowly is left to the checks and their timeouts.
pub(crate) async fn reachable(opts: &CheckOptions) -> Result<(), String> {
    let http = client(opts)?;
    match tokio::time::timeout(opts.timeout, http.get(format!("{}/health", opts.url)).send()).await {
        Ok(Err(e)) if e.is_connect() || e.is_builder() => {
            let mut root: &dyn std::error::Error = &e;
            while let Some(s) = root.source() {
                root = s;
            }
            Err(format!("cannot reach {}: {root} (is the server running, and is the URL right?)", opts.url))
        }
        _ => Ok(()),
    }
}

impl Ctx {
    pub(crate) async fn new(opts: CheckOptions) -> Result<Self, String> {
        let http = client(&opts)?;
        let base = Url::parse(&format!("{}/", opts.url)).map_err(|e| format!("`{}` is not a URL: {e}", opts.url))?;
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let nonce = format!("{:x}-{:x}", nanos, std::process::id());
        Ok(Self { opts, http, base, nonce, resolved: tokio::sync::OnceCell::new() })
    }

    /// The function the run checks use, with its input schema.
    pub(crate) async fn resolved(&self) -> &Resolved {
        self.resolved.get_or_init(|| self.resolve()).await
    }

    /// Picks the function from `--function` or `GET /functions`, with its input schema.
    async fn resolve(&self) -> Resolved {
        let listed = match self.get("/functions").await {
            Ok(a) if a.status == 200 => a.json().and_then(|v| v["functions"].as_array().cloned()),
            _ => None,
        };
        let Some(functions) = listed else {
            return Resolved {
                function: Ok(self.opts.function.clone()),
                schema: Err("GET /functions did not list the functions, so the input schema is unknown".into()),
            };
        };
        let names: Vec<&str> = functions.iter().filter_map(|f| f["name"].as_str()).collect();
        let name = match (&self.opts.function, names.as_slice()) {
            (Some(f), _) => f.clone(),
            (None, [only]) => (*only).to_string(),
            (None, _) => {
                let why = format!("the component has {} functions ({}); pass --function", names.len(), names.join(", "));
                return Resolved { function: Err(why.clone()), schema: Err(why) };
            }
        };
        let schema = match functions.iter().find(|f| f["name"] == name.as_str()) {
            Some(f) => Ok(f.get("input_schema").filter(|s| !s.is_null()).cloned()),
            None => Err(format!("GET /functions does not list `{name}` (it lists {})", names.join(", "))),
        };
        Resolved { function: Ok(self.opts.function.clone()), schema }
    }

    /// A contract path (`/health`) under the base URL, which may have a path of its own; or an
    /// absolute URL as is.
    pub(crate) fn url(&self, path: &str) -> Result<Url, Outcome> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| Outcome::fail("a URL", format!("`{path}` does not resolve against {}: {e}", self.base)))
    }

    /// A `Location` or `status_url` value resolved as a browser would (RFC 3986), against the base URL.
    pub(crate) fn location(&self, value: &str) -> Result<Url, String> {
        self.base.join(value).map_err(|e| format!("`{value}` is not a URL reference: {e}"))
    }

    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<Answer, Outcome> {
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            Url::parse(path).map_err(|e| Outcome::fail("a URL", format!("`{path}`: {e}")))?
        } else {
            self.url(path)?
        };
        let resp = build(self.http.request(method.clone(), url))
            .send()
            .await
            .map_err(|e| Outcome::fail(format!("an answer to {method} {path}"), format!("no answer: {}", chain(&e))))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| {
                Outcome::fail(format!("a whole answer to {method} {path}"), format!("the body broke off: {}", chain(&e)))
            })?
            .to_vec();
        Ok(Answer { what: format!("{method} {path}"), status, headers, body })
    }

    pub(crate) async fn get(&self, path: &str) -> Result<Answer, Outcome> {
        self.send(Method::GET, path, |r| r).await
    }

    /// `POST path` with a JSON body and extra headers.
    pub(crate) async fn post_json(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Result<Answer, Outcome> {
        let text = body.to_string();
        self.send(Method::POST, path, |mut r| {
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            r.header("content-type", "application/json").body(text)
        })
        .await
    }

    /// The `POST /run` body for the configured function and input, with more fields.
    pub(crate) async fn run_request(&self, extra: &[(&str, Value)]) -> Result<Value, Outcome> {
        let function = self.resolved().await.function.clone().map_err(Outcome::skip)?;
        let mut body = serde_json::json!({"input": self.opts.input});
        if let Some(f) = function {
            body["function"] = Value::String(f);
        }
        for (k, v) in extra {
            body[*k] = v.clone();
        }
        Ok(body)
    }
}

/// The function the run checks submit to, with its input schema.
pub(crate) struct Resolved {
    /// `Ok(None)` leaves `function` out of the request (the component may have one function);
    /// `Err` is why the run checks cannot run.
    pub(crate) function: Result<Option<String>, String>,
    /// The function's input schema per `GET /functions`; `Err` says why it is unknown.
    pub(crate) schema: Result<Option<Value>, String>,
}

/// One answer, read whole.
pub(crate) struct Answer {
    /// `METHOD path`, for messages.
    pub(crate) what: String,
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The media type, lowercased, without parameters ("" when there is none).
    pub(crate) fn media_type(&self) -> String {
        self.header("content-type").unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase()
    }

    pub(crate) fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// What came back, in one line: `METHOD path: 200 text/html: <html>…`, or the redirect.
    pub(crate) fn got(&self) -> String {
        if (300..400).contains(&self.status) {
            return format!(
                "{}: {} redirect to {} (not followed: point plinth check at the component's own URL)",
                self.what,
                self.status,
                self.header("location").unwrap_or("(no Location header)")
            );
        }
        let media = self.media_type();
        let media = if media.is_empty() { "no content-type".to_string() } else { media };
        format!("{}: {} {media}: {}", self.what, self.status, excerpt(&self.text(), 160))
    }

    /// `Err(fail)` unless the status is `want`.
    pub(crate) fn expect_status(&self, want: &[u16], expected: &str) -> Result<(), Outcome> {
        if want.contains(&self.status) { Ok(()) } else { Err(Outcome::fail(expected, self.got())) }
    }

    /// The JSON body, or a failure saying what came back instead.
    pub(crate) fn expect_json(&self, expected: &str) -> Result<Value, Outcome> {
        self.json().ok_or_else(|| Outcome::fail(expected, format!("{} (not JSON)", self.got())))
    }
}

/// The start of `text` on one line, at most `max` characters.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return "(empty body)".into();
    }
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max).collect();
    cut.push('…');
    cut
}
