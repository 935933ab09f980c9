//! The bench's HTTP client: submissions spread over the nodes, reads of the first, and the
//! runs ended, summed from every node's `/metrics`.

use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A pooled keep-alive client for one server, or for several nodes of one component:
/// submissions go to each in turn, completions are summed over all.
#[derive(Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    /// The first node's URL; long-polls go there, whichever node runs the run.
    base: String,
    bases: Arc<Vec<String>>,
    turn: Arc<AtomicUsize>,
    prefix: String,
    /// Sent as a bearer token on `POST /run` when set.
    key: Option<String>,
}

/// Runs ended, summed from `/metrics`: (succeeded, failed or cancelled). The scheduled
/// function's runs, which start by themselves every second, are not counted.
///
/// `runs_total` counts attempts: an attempt that will be retried (`retrying`) or a run given
/// back to the queue (`released`) is not an end, and counting it ended a round before its runs
/// had (each release read as a failed run).
pub(crate) fn finished_from_metrics(text: &str, prefix: &str) -> (u64, u64) {
    let name = format!("{prefix}_runs_total{{");
    let scheduled = format!("function=\"{}\"", super::server::SCHEDULED);
    let mut ok = 0;
    let mut other = 0;
    for line in text.lines().filter(|l| l.starts_with(&name) && !l.contains(&scheduled)) {
        let Some(count) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else { continue };
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let count = count as u64;
        if line.contains("status=\"succeeded\"") {
            ok += count;
        } else if line.contains("status=\"failed\"") || line.contains("status=\"cancelled\"") {
            other += count;
        }
    }
    (ok, other)
}

impl Client {
    pub(crate) fn new(addrs: &[String], concurrency: usize) -> Result<Self, String> {
        // Why: reqwest is built without a default TLS provider (decision 0002).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency.max(1))
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(70))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let bases: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();
        let base = bases.first().cloned().ok_or("no server to drive")?;
        Ok(Self { http, base, bases: Arc::new(bases), turn: Arc::new(AtomicUsize::new(0)), prefix: "plinth".into(), key: None })
    }

    /// The same client, sending `key` as a bearer token on `POST /run`.
    pub(crate) fn with_key(mut self, key: &str) -> Self {
        self.key = Some(key.to_string());
        self
    }

    /// Waits until `/ready` answers 200 on every node.
    pub(crate) async fn ready(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        for base in self.bases.iter() {
            loop {
                match self.http.get(format!("{base}/ready")).send().await {
                    Ok(r) if r.status().as_u16() == 200 => break,
                    Ok(_) | Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
                    Ok(r) => return Err(format!("{base}/ready still answers {}", r.status())),
                    Err(e) => return Err(format!("{base}/ready: {e}")),
                }
            }
        }
        Ok(())
    }

    /// `POST /run` of the no-op function; the run id on 202.
    pub(crate) async fn submit(&self, function: &str) -> Result<String, String> {
        self.submit_keyed(function, None).await
    }

    /// `POST /run` of `function` with the empty input, and an `Idempotency-Key` when given; the
    /// run id on 202.
    pub(crate) async fn submit_keyed(&self, function: &str, idempotency_key: Option<&str>) -> Result<String, String> {
        self.post_run(format!(r#"{{"function":"{function}","input":{{}}}}"#), idempotency_key).await
    }

    /// `POST /run` of `function` with `input`; the run id on 202.
    pub(crate) async fn submit_input(&self, function: &str, input: &Value) -> Result<String, String> {
        self.post_run(serde_json::json!({"function": function, "input": input}).to_string(), None).await
    }

    /// `POST /run` of `body` on the next node, with the bearer key and the idempotency key when
    /// set; the run id on 202.
    async fn post_run(&self, body: String, idempotency_key: Option<&str>) -> Result<String, String> {
        let mut req = self
            .http
            .post(format!("{}/run", self.bases[self.turn.fetch_add(1, Ordering::Relaxed) % self.bases.len()]))
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = &self.key {
            req = req.bearer_auth(key);
        }
        if let Some(k) = idempotency_key {
            req = req.header("idempotency-key", k);
        }
        let resp = req.send().await.map_err(|e| format!("POST /run: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| format!("POST /run body: {e}"))?;
        if status != 202 {
            return Err(format!("POST /run answered {status}: {}", String::from_utf8_lossy(&body)));
        }
        let v: Value = serde_json::from_slice(&body).map_err(|e| format!("POST /run body: {e}"))?;
        v.get("run_id").and_then(Value::as_str).map(str::to_string).ok_or_else(|| format!("no run_id in {v}"))
    }

    /// `POST /events` with `body` (one event or an array) on the next node; the 202's body.
    pub(crate) async fn send_events(&self, body: String) -> Result<Value, String> {
        let base = &self.bases[self.turn.fetch_add(1, Ordering::Relaxed) % self.bases.len()];
        let resp = self
            .http
            .post(format!("{base}/events"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("POST /events: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| format!("POST /events body: {e}"))?;
        if status != 202 {
            return Err(format!("POST /events answered {status}: {}", String::from_utf8_lossy(&body)));
        }
        serde_json::from_slice(&body).map_err(|e| format!("POST /events body: {e}"))
    }

    /// `GET path` on the first node, as JSON.
    pub(crate) async fn get_json(&self, path: &str) -> Result<Value, String> {
        let resp = self.http.get(format!("{}{path}", self.base)).send().await.map_err(|e| format!("GET {path}: {e}"))?;
        let body = resp.bytes().await.map_err(|e| format!("GET {path}: {e}"))?;
        serde_json::from_slice(&body).map_err(|e| format!("GET {path}: {e}"))
    }

    /// `GET path` on the first node: its status and body.
    pub(crate) async fn get_text(&self, path: &str) -> Result<(u16, String), String> {
        let resp = self.http.get(format!("{}{path}", self.base)).send().await.map_err(|e| format!("GET {path}: {e}"))?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await.map_err(|e| format!("GET {path}: {e}"))?))
    }

    /// `GET /runs/{id}?wait=S`: the run, terminal unless the wait ran out.
    pub(crate) async fn wait_run(&self, id: &str, seconds: u32) -> Result<Value, String> {
        let resp = self
            .http
            .get(format!("{}/runs/{id}?wait={seconds}", self.base))
            .send()
            .await
            .map_err(|e| format!("GET /runs/{id}: {e}"))?;
        let body = resp.bytes().await.map_err(|e| format!("GET /runs/{id}: {e}"))?;
        serde_json::from_slice(&body).map_err(|e| format!("GET /runs/{id}: {e}"))
    }

    /// Run attempts ended so far on all nodes: (succeeded, other).
    pub(crate) async fn finished(&self) -> Result<(u64, u64), String> {
        let (mut ok, mut other) = (0, 0);
        for base in self.bases.iter() {
            let resp = self.http.get(format!("{base}/metrics")).send().await.map_err(|e| format!("GET /metrics: {e}"))?;
            let text = resp.text().await.map_err(|e| format!("GET /metrics: {e}"))?;
            let (o, x) = finished_from_metrics(&text, &self.prefix);
            ok += o;
            other += x;
        }
        Ok((ok, other))
    }
}

#[cfg(test)]
mod tests {
    use super::Client;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server that answers one request with `status` and `body`, and hands back the request.
    async fn one_answer(status: &str, body: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let status = status.to_string();
        let served = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = Vec::new();
            let mut buf = [0_u8; 4096];
            // Why: the body is small and sent with the headers; read until the JSON closes.
            while !request.ends_with(b"}}") {
                let n = socket.read(&mut buf).await.expect("read");
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(answer.as_bytes()).await.expect("write");
            String::from_utf8_lossy(&request).to_lowercase()
        });
        (addr, served)
    }

    #[tokio::test]
    async fn a_keyed_submission_sends_its_key_and_returns_the_run_id() {
        let (addr, served) = one_answer("202 Accepted", r#"{"run_id":"R1","status":"queued"}"#).await;
        let client = Client::new(&[addr], 1).expect("client");
        assert_eq!(client.submit_keyed("noop", Some("round-7")).await.as_deref(), Ok("R1"));
        let request = served.await.expect("served");
        assert!(request.starts_with("post /run "), "{request}");
        assert!(request.contains("idempotency-key: round-7\r\n"), "the key goes as a header: {request}");
    }

    #[tokio::test]
    async fn a_plain_submission_sends_no_key() {
        let (addr, served) = one_answer("202 Accepted", r#"{"run_id":"R2"}"#).await;
        let client = Client::new(&[addr], 1).expect("client");
        assert_eq!(client.submit("noop").await.as_deref(), Ok("R2"));
        assert!(!served.await.expect("served").contains("idempotency-key"), "no key unless asked");
    }

    #[tokio::test]
    async fn a_refused_keyed_submission_is_an_error_with_the_answer() {
        let (addr, served) = one_answer("409 Conflict", r#"{"code":"PLINTH_009","message":"key reused"}"#).await;
        let client = Client::new(&[addr], 1).expect("client");
        let err = client.submit_keyed("noop", Some("k")).await.expect_err("a 409 is not a submission");
        assert!(err.contains("409") && err.contains("key reused"), "{err}");
        served.await.expect("served");
    }

    #[tokio::test]
    async fn an_answer_without_a_run_id_is_an_error() {
        let (addr, served) = one_answer("202 Accepted", r#"{"status":"queued"}"#).await;
        let client = Client::new(&[addr], 1).expect("client");
        let err = client.submit_keyed("noop", Some("k")).await.expect_err("no run id");
        assert!(err.contains("no run_id"), "{err}");
        served.await.expect("served");
    }
}
