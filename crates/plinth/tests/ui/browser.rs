//! A headless chromium for one test: its own chromedriver on a free port, a session, and
//! what the tests ask of a page (the console's errors, a screenshot, waiting for text).

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const DRIVER: &str = "/usr/bin/chromedriver";

/// A browser session and the chromedriver behind it (stopped when dropped, with every browser
/// process it started and their temporary files).
pub(crate) struct Browser {
    pub(crate) client: Client,
    driver: Child,
    _tmp: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Why the whole process group: chromium outlives a killed chromedriver, and each test
        // left a browser of about ten processes running (280 after a few runs of the suite).
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.driver.id())]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Whether the browser tests can run here; says why not (and fails under CI, which must run them).
pub(crate) fn available() -> bool {
    // Why: reqwest and the WebDriver client both use rustls, built here without a default provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let here = std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(DRIVER).exists();
    if !here {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run the browser tests: install Debian's chromium and chromium-driver (.ci/run does)"
        );
        eprintln!(
            "SKIPPED: the dashboard's browser tests need {CHROMIUM} and {DRIVER} (apt-get install chromium chromium-driver)"
        );
    }
    here
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl Browser {
    /// Starts chromedriver and a headless chromium session.
    pub(crate) async fn start() -> Self {
        let port = free_port();
        // Why a folder of its own: chromium's profile and shared-memory files go to TMPDIR, and
        // a killed browser leaves them behind.
        let tmp = tempfile::tempdir().expect("a temporary folder for the browser");
        let driver = Command::new(DRIVER)
            .arg(format!("--port={port}"))
            .env("TMPDIR", tmp.path())
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let caps = caps.as_object().cloned().expect("an object");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut builder = ClientBuilder::rustls().expect("a client");
            match builder.capabilities(caps.clone()).connect(&format!("http://127.0.0.1:{port}")).await {
                Ok(client) => return Self { client, driver, _tmp: tmp },
                Err(e) => {
                    assert!(Instant::now() < deadline, "chromium did not start: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// The text of the first element matching `css`.
    pub(crate) async fn text(&self, css: &str) -> String {
        // Why: a live update may swap the element between finding and reading it;
        // a stale element is found again, a few times at most.
        for _ in 0..20 {
            let el = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no `{css}`: {e}"));
            match el.text().await {
                Ok(text) => return text,
                Err(fantoccini::error::CmdError::Standard(e))
                    if e.error == fantoccini::error::ErrorStatus::StaleElementReference =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("text of `{css}`: {e}"),
            }
        }
        panic!("`{css}` went stale at every read")
    }

    /// Clicks the first element matching `css`, finding it again if a live update swapped it.
    pub(crate) async fn click(&self, css: &str) {
        for _ in 0..20 {
            let el = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no `{css}`: {e}"));
            match el.click().await {
                Ok(()) => return,
                Err(fantoccini::error::CmdError::Standard(e))
                    if e.error == fantoccini::error::ErrorStatus::StaleElementReference =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("click `{css}`: {e}"),
            }
        }
        panic!("`{css}` went stale at every click")
    }

    /// Whether an element matches `css`.
    pub(crate) async fn has(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.is_ok()
    }

    /// Waits (up to `secs`) until the page's text holds `wanted`.
    pub(crate) async fn wait_text(&self, wanted: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            // Why: while a page loads, the old body goes stale; reading again is enough.
            let body = match self.client.find(Locator::Css("body")).await {
                Ok(el) => el.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if body.contains(wanted) {
                return;
            }
            assert!(Instant::now() < deadline, "the page never showed {wanted:?}; it shows:\n{body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The console's messages at level SEVERE since the last call.
    pub(crate) async fn console_errors(&self) -> Vec<String> {
        let logs = self.client.issue_cmd(BrowserLog).await.expect("read the console");
        logs.as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Saves a screenshot as `name` in `$PLINTH_SCREENSHOTS`, when that is set.
    pub(crate) async fn picture(&self, name: &str) {
        let Ok(dir) = std::env::var("PLINTH_SCREENSHOTS") else { return };
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(dir);
        std::fs::create_dir_all(&dir).expect("the pictures' folder");
        std::fs::write(dir.join(name), png).expect("write the picture");
    }
}

/// chromedriver's console log (`goog:loggingPrefs`), which W3C WebDriver does not have.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (axum::http::Method::POST, Some(json!({"type": "browser"}).to_string()))
    }
}

/// Sends `body` to `url` as JSON with `key` (if any) and answers the JSON reply.
pub(crate) async fn post(url: &str, body: &Value, key: Option<&str>) -> Value {
    let mut req = reqwest::Client::new().post(url).json(body);
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    let reply = req.send().await.unwrap_or_else(|e| panic!("POST {url}: {e}"));
    reply.json().await.unwrap_or_else(|e| panic!("not JSON from {url}: {e}"))
}

/// Waits (up to 20 s) until run `id` at `base` has `status`.
pub(crate) async fn wait_status(base: &str, id: &str, status: &str, key: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut req = reqwest::Client::new().get(format!("{base}/runs/{id}"));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let run: Value = req.send().await.expect("get").json().await.expect("json");
        if run["status"] == status {
            return;
        }
        assert!(Instant::now() < deadline, "run {id} never became {status}: {run}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
