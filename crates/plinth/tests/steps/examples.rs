//! The checkout example (`examples/steps`) end to end, as a new user runs it: the Python
//! helper as a command, the same workflow as a shell command with jq and behind HTTP; a rerun
//! from a step; and the helper's detection of steps reordered under a waiting run.

use crate::harness::{Served, client, python3_available, send};
use crate::scripted::{ended, steps, until};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

fn example_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/steps"))
}

/// The example's component with the HTTP handler's port changed to `port`, in `dir`.
fn component(dir: &std::path::Path, port: u16) -> PathBuf {
    let text = std::fs::read_to_string(example_dir().join("component.yaml")).expect("read the example");
    let text = text.replace("http://127.0.0.1:9000/", &format!("http://127.0.0.1:{port}/"));
    let text = text
        .replace("argv: [python3, checkout.py]", &format!("argv: [python3, {}]", example_dir().join("checkout.py").display()));
    let text = text.replace("argv: [sh, checkout.sh]", &format!("argv: [sh, {}]", example_dir().join("checkout.sh").display()));
    let path = dir.join("component.yaml");
    std::fs::write(&path, text).expect("write");
    path
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

async fn approve(s: &Served, order: &str, by: &str) {
    let body = json!({"name": "shop/order.approved", "data": {"order": order, "by": by}});
    let (status, resp) = send(client().post(s.url("/events")).json(&body)).await;
    assert_eq!(status, 202, "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkout_example_runs_three_ways() {
    if !python3_available("the steps example") {
        return;
    }
    let jq = Command::new("jq").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    assert!(jq || std::env::var("CI").as_deref() != Ok("true"), "jq is required under CI=true for the shell example");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let http = Killed(
        Command::new("python3")
            .arg(example_dir().join("checkout.py"))
            .args(["--serve", &port.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("start the HTTP handler"),
    );
    let config = component(dir.path(), port);
    let db = format!("sqlite://{}", dir.path().join("runs.db").display());
    let s = Served::start(&config, &["--database-url", &db], dir.path());
    let mut functions = vec!["checkout", "checkout_http"];
    if jq {
        functions.push("checkout_sh");
    } else {
        eprintln!("SKIPPED: jq is not installed, so the shell example is not run");
    }
    let mut runs = Vec::new();
    for (i, f) in functions.iter().enumerate() {
        let order = format!("o-{i}");
        let input = json!({"order": order, "items": ["book"], "amount": 12});
        let (status, body) = send(client().post(s.url("/run")).json(&json!({"function": f, "input": input}))).await;
        assert_eq!(status, 202, "{body}");
        runs.push((*f, order, body["run_id"].as_str().expect("id").to_string()));
    }
    for (f, order, id) in &runs {
        let run = until(&s, id, "waiting for approval", |r| r["status"] == "waiting").await;
        assert_eq!(run["waiting_for"]["event"], "shop/order.approved", "{f}: {run}");
        approve(&s, order, "ana").await;
    }
    for (f, order, id) in &runs {
        let run = ended(&s, id).await;
        assert_eq!(run["status"], "succeeded", "{f}: {run}");
        assert_eq!(run["output"]["status"], "paid", "{f}: {run}");
        assert_eq!(run["output"]["charge"], json!({"charged": 12, "by": "ana"}), "{f}: {run}");
        assert_eq!(run["output"]["order"].as_str(), Some(order.as_str()));
        let names: Vec<Value> = steps(&s, id).await.iter().map(|st| st["id"].clone()).collect();
        assert_eq!(names, vec![json!("reserve"), json!("approval"), json!("charge"), json!("receipt")], "{f}");
    }
    let (_, receipts) = send(client().get(s.url("/events?name=shop/receipt.sent"))).await;
    assert_eq!(receipts["events"].as_array().map(Vec::len), Some(runs.len()), "one receipt per run: {receipts}");

    // A rerun from `charge` keeps reserve and approval, so it does not wait again.
    let first = &runs[0].2;
    let (status, body) = send(client().post(s.url(&format!("/runs/{first}/rerun"))).json(&json!({"from_step": "charge"}))).await;
    assert_eq!(status, 202, "{body}");
    let again = body["run_id"].as_str().expect("id").to_string();
    let run = ended(&s, &again).await;
    assert_eq!((run["status"].as_str(), run["output"]["status"].as_str()), (Some("succeeded"), Some("paid")), "{run}");
    assert_eq!(run["trigger"], json!({"type": "rerun", "of": first}));
    let kept = steps(&s, &again).await;
    assert_eq!(kept[1]["output"]["data"]["by"], "ana", "the approval is kept: {kept:?}");
    // An approval that times out ends the workflow as expired.
    let input = json!({"order": "o-late", "items": [], "amount": 1, "approve_within": "1s"});
    let (_, body) = send(client().post(s.url("/run")).json(&json!({"function": "checkout", "input": input}))).await;
    let run = ended(&s, body["run_id"].as_str().expect("id")).await;
    assert_eq!(run["output"]["status"], "expired", "{run}");
    drop(http);
}

const REORDERED: &str = r#"
import os, sys
sys.path.insert(0, os.environ["HELPER_DIR"])
import plinth_steps

def flow(ctx, inp):
    if os.path.exists(inp["flag"]):
        b = ctx.step("b", lambda: 2)
        a = ctx.step("a", lambda: 1)
    else:
        a = ctx.step("a", lambda: 1)
        ctx.sleep("nap", "1s")
        b = ctx.step("b", lambda: 2)
    return [a, b]

plinth_steps.run_command(flow)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_helper_reports_steps_reordered_under_a_waiting_run() {
    if !python3_available("the helper's order check") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("flow.py"), REORDERED).expect("write");
    let helper = example_dir();
    let functions = format!(
        "  - name: flow\n    steps: true\n    handler: {{command: {{argv: [python3, flow.py], env: {{HELPER_DIR: \"{}\"}}}}}}\n",
        helper.display()
    );
    let path = dir.path().join("component.yaml");
    std::fs::write(&path, crate::harness::component_text("reorder", &functions)).expect("write");
    let db = format!("sqlite://{}", dir.path().join("runs.db").display());
    let s = Served::start(&path, &["--database-url", &db], dir.path());
    let flag = dir.path().join("flag");
    let body = json!({"function": "flow", "input": {"flag": flag.display().to_string()}});
    let (_, body) = send(client().post(s.url("/run")).json(&body)).await;
    let id = body["run_id"].as_str().expect("id").to_string();
    until(&s, &id, "asleep", |r| r["status"] == "waiting").await;
    std::fs::write(&flag, "new code").expect("flag");
    let run = ended(&s, &id).await;
    assert_eq!((run["status"].as_str(), run["error"]["code"].as_str()), (Some("failed"), Some("PLINTH_058")), "{run}");
    assert!(run["error"]["message"].as_str().unwrap_or("").contains("`b`"), "{run}");
    // Unchanged code runs through.
    std::fs::remove_file(&flag).expect("unflag");
    let body = json!({"function": "flow", "input": {"flag": flag.display().to_string()}});
    let (_, body) = send(client().post(s.url("/run")).json(&body)).await;
    let run = ended(&s, body["run_id"].as_str().expect("id")).await;
    assert_eq!(run["output"], json!([1, 2]), "{run}");
}
