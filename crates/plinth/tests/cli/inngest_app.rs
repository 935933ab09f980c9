//! The example app (`examples/inngest-fastapi`, FastAPI and the real Inngest Python SDK, pinned)
//! served by a real `plinth serve`: the app is down at first (health says so, the sync is
//! retried), then syncs; the SDK's own client sends events that fan out; steps, a sleep, a wait
//! (matched, timed out), an invoke, a retried step, a step error the function catches, a
//! non-retriable error and a cancel all end as the SDK computed. Then a SIGKILL while a run waits.

use crate::harness::{Served, client, send};
use crate::inngest::{sdk_python, sdk_send};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const APP_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/inngest-fastapi");

/// The app under uvicorn, its stdout (structlog's JSON lines) kept.
pub(crate) struct App {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl App {
    /// The example app in dev mode, its SDK pointed at `plinth`.
    pub(crate) fn start(python: &Path, port: u16, plinth: &str) -> Self {
        Self::start_in(python, Path::new(APP_DIR), port, &[("INNGEST_DEV", plinth)])
    }

    /// The example app in production mode: its SDK pointed at `plinth`, holding `signing_key`.
    pub(crate) fn start_production(python: &Path, port: u16, plinth: &str, signing_key: &str) -> Self {
        Self::start_in(python, Path::new(APP_DIR), port, &[("INNGEST_BASE_URL", plinth), ("INNGEST_SIGNING_KEY", signing_key)])
    }

    fn start_in(python: &Path, dir: &Path, port: u16, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(python)
            .args(["-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", &port.to_string()])
            .current_dir(dir)
            .env_remove("INNGEST_DEV")
            .env_remove("INNGEST_SIGNING_KEY")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the example app");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        Self { child, lines }
    }

    /// How many times the `reserve` step ran for `order`.
    pub(crate) fn reserved(&self, order: &str) -> usize {
        let lines = self.lines.lock().expect("lines");
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["event"] == "stock reserved" && v["order"] == order)
            .count()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port()
}

/// A folder with the example's component.yaml, the app and Plinth on the given ports.
pub(crate) fn component(plinth_port: u16, app_port: u16) -> (tempfile::TempDir, PathBuf) {
    let text = std::fs::read_to_string(format!("{APP_DIR}/component.yaml")).expect("the example's component.yaml");
    let text =
        text.replace("port: 8000", &format!("port: {plinth_port}")).replace("127.0.0.1:8001", &format!("127.0.0.1:{app_port}"));
    crate::harness::component_dir(&text)
}

pub(crate) async fn until<F, Fut>(what: &str, secs: u64, mut f: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} within {secs}s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every run of `function`, newest first.
async fn runs(c: &reqwest::Client, s: &Served, function: &str) -> Vec<Value> {
    let (_, page) = send(c.get(s.url(&format!("/runs?function={function}&limit=100")))).await;
    page["runs"].as_array().cloned().unwrap_or_default()
}

fn order_of(run: &Value) -> &str {
    run["input"]["data"]["order"].as_str().unwrap_or("")
}

/// Waits until `order`'s order-flow run waits for its approval; its id.
pub(crate) async fn waiting_for_approval(c: &reqwest::Client, s: &Served, order: &str) -> String {
    let run = until(&format!("the run of {order} waits for its approval"), 30, || async {
        runs(c, s, "shop-order-flow").await.into_iter().find(|r| order_of(r) == order && r["waiting_for"]["step"] == "approval")
    })
    .await;
    run["run_id"].as_str().expect("id").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_app_runs_unchanged_on_plinth() {
    let Some(python) = sdk_python() else { return };
    let (plinth_port, app_port) = (free_port(), free_port());
    let (dir, config) = component(plinth_port, app_port);
    let s = Served::spawn(&["serve", "--config", config.to_str().expect("utf-8")], &[], dir.path());
    let c = client();
    let (_, health) = send(c.get(s.url("/health"))).await;
    assert_eq!(health["status"], "degraded", "the app is down: {health}");
    assert_eq!(health["checks"]["inngest"]["status"], "failing", "{health}");
    let app = App::start(&python, app_port, &s.url(""));
    until("the app is synced (health)", 40, || async {
        let (_, h) = send(c.get(s.url("/health"))).await;
        (h["checks"]["inngest"]["status"] == "ok").then_some(h)
    })
    .await;
    let (_, fns) = send(c.get(s.url("/functions"))).await;
    let names: Vec<&str> = fns["functions"].as_array().expect("functions").iter().filter_map(|f| f["name"].as_str()).collect();
    for f in
        ["shop-order-flow", "shop-receipt", "shop-ship", "shop-sync-stock", "shop-refund", "shop-restock", "shop-nightly-report"]
    {
        assert!(names.contains(&f), "{f} is served: {names:?}");
    }

    let events = json!([
        {"name": "shop/order.created", "data": {"order": "o-1"}},
        {"name": "shop/order.created", "data": {"order": "o-2", "approve_within_s": 2}},
        {"name": "shop/order.created", "data": {"order": "o-3"}},
        {"name": "shop/stock.sync", "data": {}},
        {"name": "shop/refund.asked", "data": {}},
        {"name": "shop/restock.asked", "data": {}},
    ]);
    let (ok, _, err) = sdk_send(&python, &s.url(""), "any-key", &events);
    assert!(ok, "the SDK sent the events: {err}");
    waiting_for_approval(&c, &s, "o-1").await;
    waiting_for_approval(&c, &s, "o-3").await;
    let more = json!([
        {"name": "shop/order.approved", "data": {"order": "o-9", "by": "nobody"}},
        {"name": "shop/order.approved", "data": {"order": "o-1", "by": "ann"}},
        {"name": "shop/order.cancelled", "data": {"order": "o-3"}},
    ]);
    let (ok, _, err) = sdk_send(&python, &s.url(""), "any-key", &more);
    assert!(ok, "{err}");
    let all = until("ten runs end", 60, || async {
        let (_, page) = send(c.get(s.url("/runs?limit=100"))).await;
        let runs = page["runs"].as_array().cloned().unwrap_or_default();
        let ended =
            runs.iter().filter(|r| ["succeeded", "failed", "cancelled"].contains(&r["status"].as_str().unwrap_or(""))).count();
        (runs.len() == 10 && ended == 10).then_some(Value::Array(runs))
    })
    .await;
    let all = all.as_array().expect("runs");
    let find = |function: &str, order: Option<&str>| {
        all.iter()
            .find(|r| r["function"] == function && order.is_none_or(|o| order_of(r) == o))
            .unwrap_or_else(|| panic!("a run of {function} {order:?}: {all:?}"))
    };
    let o1 = find("shop-order-flow", Some("o-1"));
    assert_eq!(o1["status"], "succeeded", "{o1}");
    assert_eq!(
        o1["output"],
        json!({"order": "o-1", "reserved": {"order": "o-1", "reserved": true}, "approved": true, "by": "ann", "parcel": {"parcel": "P-o-1"}})
    );
    let o2 = find("shop-order-flow", Some("o-2"));
    assert_eq!((o2["status"].as_str(), o2["output"]["approved"].as_bool()), (Some("succeeded"), Some(false)), "timed out: {o2}");
    let o3 = find("shop-order-flow", Some("o-3"));
    assert_eq!(o3["status"], "cancelled", "{o3}");
    assert_eq!(all.iter().filter(|r| r["function"] == "shop-receipt" && r["status"] == "succeeded").count(), 3, "fan-out");
    assert_eq!(find("shop-ship", None)["output"], json!({"parcel": "P-o-1"}), "the invoked run");
    let stock = find("shop-sync-stock", None);
    assert_eq!(stock["output"], json!({"first": "synced", "caught": "the warehouse is closed"}), "{stock}");
    let refund = find("shop-refund", None);
    assert_eq!((refund["status"].as_str(), refund["attempt"].as_u64()), (Some("failed"), Some(1)), "not retried: {refund}");
    assert_eq!(refund["error"]["retryable"], false);
    assert!(
        refund["error"]["message"].as_str().is_some_and(|m| m.contains("NonRetriableError: refunds need a human")),
        "{refund}"
    );

    let restock = find("shop-restock", None);
    assert_eq!((restock["status"].as_str(), restock["attempt"].as_u64()), (Some("succeeded"), Some(2)), "{restock}");
    let rid = restock["run_id"].as_str().expect("id");
    let (_, shown) = send(c.get(s.url(&format!("/runs/{rid}")))).await;
    let at = |i: usize, field: &str| {
        shown["attempts"][i][field]
            .as_str()
            .and_then(|t| plinth_core::timefmt::parse_rfc3339(t).ok())
            .unwrap_or_else(|| panic!("{shown}"))
    };
    assert!(at(1, "started_at") - at(0, "finished_at") >= 1_500_000, "the retry waited for Retry-After (2 s): {shown}");
    let id = o1["run_id"].as_str().expect("id");
    let (_, steps) = send(c.get(s.url(&format!("/runs/{id}/steps")))).await;
    let got: Vec<(&str, &str, &str)> = steps["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| (s["id"].as_str().unwrap_or(""), s["op"].as_str().unwrap_or(""), s["status"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        got,
        [
            ("reserve", "step", "succeeded"),
            ("cool-off", "sleep", "succeeded"),
            ("approval", "wait_for_event", "succeeded"),
            ("ship", "invoke", "succeeded")
        ]
    );
    let sid = stock["run_id"].as_str().expect("id");
    let (_, steps) = send(c.get(s.url(&format!("/runs/{sid}/steps")))).await;
    let flaky = &steps["steps"][0];
    assert_eq!(
        (flaky["id"].as_str(), flaky["attempts"].as_u64(), flaky["status"].as_str()),
        (Some("flaky"), Some(2), Some("succeeded"))
    );
    let broken = &steps["steps"][1];
    assert_eq!(
        (broken["status"].as_str(), broken["attempts"].as_u64()),
        (Some("failed"), Some(2)),
        "retried, then failed: {broken}"
    );
    assert_eq!(app.reserved("o-1"), 1, "each step ran once");

    // An app whose function asks for what Plinth cannot serve is refused by name, and changes nothing.
    let other = tempfile::tempdir().expect("tempdir");
    std::fs::write(other.path().join("app.py"), ACCOUNT_SCOPED).expect("app.py");
    let port = free_port();
    let _other = App::start_in(&python, other.path(), port, &[("INNGEST_DEV", &s.url(""))]);
    let url = format!("http://127.0.0.1:{port}/api/inngest");
    let out = until("the other app answers", 30, || async {
        let out = crate::harness::plinth(&["inngest", "sync", "--app", &url], &[], dir.path());
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        (!text.contains("cannot connect")).then(|| json!({"code": out.status.code(), "text": text}))
    })
    .await;
    assert_eq!(out["code"], 1, "{out}");
    assert!(out["text"].as_str().is_some_and(|t| t.contains("concurrency[0].scope") && t.contains("account")), "{out}");
    let (_, fns) = send(c.get(s.url("/functions"))).await;
    assert!(!fns.to_string().contains("other-scoped"), "nothing of the refused app is served");
}

/// An app with one function whose concurrency holds across an Inngest account.
const ACCOUNT_SCOPED: &str = "import fastapi, inngest, inngest.fast_api
client = inngest.Inngest(app_id='other', is_production=False)
@client.create_function(fn_id='scoped', trigger=inngest.TriggerEvent(event='other/thing.done'),
                        concurrency=[inngest.Concurrency(limit=1, scope='account')])
async def scoped(ctx: inngest.Context) -> None:
    return None
app = fastapi.FastAPI()
inngest.fast_api.serve(app, client, [scoped])
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_run_survives_a_sigkill_without_running_a_step_again() {
    let Some(python) = sdk_python() else { return };
    let (plinth_port, app_port) = (free_port(), free_port());
    let (dir, config) = component(plinth_port, app_port);
    let config = config.to_str().expect("utf-8").to_string();
    let db = format!("sqlite://{}", dir.path().join("plinth.db").display());
    let args = ["serve", "--config", config.as_str(), "--database-url", db.as_str()];
    let s = Served::spawn(&args, &[], dir.path());
    let app = App::start(&python, app_port, &s.url(""));
    let c = client();
    until("the app is synced", 40, || async {
        let (_, h) = send(c.get(s.url("/health"))).await;
        (h["checks"]["inngest"]["status"] == "ok").then_some(h)
    })
    .await;
    let (ok, _, err) = sdk_send(&python, &s.url(""), "k", &json!([{"name": "shop/order.created", "data": {"order": "o-k"}}]));
    assert!(ok, "{err}");
    let id = waiting_for_approval(&c, &s, "o-k").await;
    s.kill9();
    let s = Served::spawn(&args, &[], dir.path());
    until("the app is synced again", 40, || async {
        let (_, h) = send(c.get(s.url("/health"))).await;
        (h["checks"]["inngest"]["status"] == "ok").then_some(h)
    })
    .await;
    let (ok, _, err) =
        sdk_send(&python, &s.url(""), "k", &json!([{"name": "shop/order.approved", "data": {"order": "o-k", "by": "bo"}}]));
    assert!(ok, "{err}");
    let run = crate::harness::wait_status(&c, &s, &id, "succeeded").await;
    assert_eq!(run["output"]["by"], "bo", "{run}");
    assert_eq!(app.reserved("o-k"), 1, "the stored `reserve` step did not run again after the kill");
}
