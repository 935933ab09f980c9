//! A step function whose answers the test writes into the run's input: `script[i]` is the
//! answer when the memo holds `i` steps, `targeted` the answer to a call with `ctx.target`.
//! Words stand for answers that cannot be written literally: `raw:TEXT` prints TEXT,
//! `exit1` fails the call, `recurse` invokes the function again with the same input,
//! `forever` reaches a new step each time.

use crate::harness::{Served, client, component_text, send};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SCRIPT: &str = r#"
import json, sys
env = json.load(sys.stdin)
inp = env["input"]
target = env["ctx"]["target"]
if target is not None:
    ans = inp.get("targeted", {"ops": [{"op": "step", "id": target, "output": target}]})
else:
    script = inp["script"]
    ans = script[min(len(env["steps"]), len(script) - 1)]
if ans == "exit1":
    print("failing on purpose", file=sys.stderr)
    sys.exit(1)
if ans == "recurse":
    ans = {"ops": [{"op": "invoke", "id": "deeper", "function": env["function"], "input": inp}]}
if ans == "forever":
    ans = {"ops": [{"op": "step", "id": "s%d" % len(env["steps"]), "output": None}]}
if isinstance(ans, str) and ans.startswith("raw:"):
    sys.stdout.write(ans[4:])
else:
    json.dump(ans, sys.stdout)
"#;

/// The scripted functions: `scripted` (steps, two attempts, short backoff) and `plain` (no steps).
pub(crate) fn component(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("scripted.py"), SCRIPT).expect("write scripted.py");
    let functions = "  - name: scripted
    steps: true
    handler: {command: {argv: [python3, scripted.py]}}
    policy: {retries: {max_attempts: 2, backoff: {initial: 100ms, max: 200ms, multiplier: 2}}, timeout: 20s}
  - name: plain
    handler: {command: {argv: [cat]}}
    input_schema: {type: object}
    policy: {retries: {max_attempts: 1}}
";
    let path = dir.join("component.yaml");
    std::fs::write(&path, component_text("scripted", functions)).expect("write component.yaml");
    path
}

/// A server of the scripted component on its own SQLite file, with extra flags.
pub(crate) fn serve(dir: &Path, flags: &[&str]) -> Served {
    let config = component(dir);
    let db = format!("sqlite://{}", dir.join("runs.db").display());
    let mut args = vec!["--database-url", db.as_str(), "--workers", "8"];
    args.extend_from_slice(flags);
    Served::start(&config, &args, dir)
}

/// Starts a scripted run; its id.
pub(crate) async fn start(s: &Served, input: Value) -> String {
    let (status, body) = send(client().post(s.url("/run")).json(&json!({"function": "scripted", "input": input}))).await;
    assert_eq!(status, 202, "{body}");
    body["run_id"].as_str().expect("run_id").to_string()
}

/// Waits up to 30 s for the run to satisfy `pred`.
pub(crate) async fn until(s: &Served, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, run) = send(client().get(s.url(&format!("/runs/{id}")))).await;
        assert_eq!(code, 200, "{run}");
        if pred(&run) {
            return run;
        }
        assert!(Instant::now() < deadline, "run {id} not {what} within 30s: {run}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits for the run to end, and returns it.
pub(crate) async fn ended(s: &Served, id: &str) -> Value {
    until(s, id, "ended", |r| ["succeeded", "failed", "cancelled"].contains(&r["status"].as_str().unwrap_or(""))).await
}

/// The run's steps.
pub(crate) async fn steps(s: &Served, id: &str) -> Vec<Value> {
    let (code, body) = send(client().get(s.url(&format!("/runs/{id}/steps")))).await;
    assert_eq!(code, 200, "{body}");
    body["steps"].as_array().cloned().unwrap_or_default()
}
