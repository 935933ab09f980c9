//! 200 three-step workflows through SIGKILLs of the server at random moments (during a step,
//! between steps, while a run sleeps): after the last restart every workflow ends succeeded,
//! no step runs again once its result is stored, and no stored step is lost or changed.

use crate::harness::{Served, client, python3_available, send};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const WORKFLOWS: usize = 200;

const FLOW: &str = r#"
import os, sys, time
sys.path.insert(0, os.environ["HELPER_DIR"])
import plinth_steps

def record(run_id, step):
    # Each execution of a step body is one line: run, step, when it began (micros).
    line = "%s %s %d\n" % (run_id, step, time.time_ns() // 1000)
    fd = os.open(os.environ["EXEC_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, line.encode())
    os.close(fd)

def work(ctx, name):
    def body():
        record(ctx.run_id, name)
        time.sleep(0.02)
        return {"step": name, "n": ctx.input["n"]}
    return body

def flow(ctx, inp):
    a = ctx.step("a", work(ctx, "a"))
    ctx.sleep("nap", "300ms")
    b = ctx.step("b", work(ctx, "b"))
    c = ctx.step("c", work(ctx, "c"))
    return [a["n"], b["n"], c["n"]]

plinth_steps.run_command(flow)
"#;

async fn steps_of(s: &Served, id: &str) -> Vec<Value> {
    let (_, body) = send(client().get(s.url(&format!("/runs/{id}/steps")))).await;
    body["steps"].as_array().cloned().unwrap_or_default()
}

fn micros(v: &Value) -> i64 {
    v.as_str().and_then(|t| plinth_core::timefmt::parse_rfc3339(t).ok()).unwrap_or(i64::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_survive_sigkills_without_running_a_stored_step_again() {
    if !python3_available("steps through SIGKILL") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("executions.log");
    std::fs::write(dir.path().join("flow.py"), FLOW).expect("flow.py");
    let helper = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/steps");
    let functions = format!(
        "  - name: flow\n    steps: true\n    handler: {{command: {{argv: [python3, flow.py], env: {{HELPER_DIR: \"{helper}\", EXEC_LOG: \"{}\"}}}}}}\n    policy: {{retries: {{max_attempts: 20, backoff: {{initial: 100ms, max: 500ms, multiplier: 2}}}}, timeout: 30s}}\n",
        log.display()
    );
    let config = dir.path().join("component.yaml");
    std::fs::write(&config, crate::harness::component_text("sigkill", &functions)).expect("component.yaml");
    let db = format!("sqlite://{}", dir.path().join("runs.db").display());
    let args = ["--database-url", db.as_str(), "--lease", "1s", "--workers", "16", "--kill-grace", "200ms"];
    let mut s = Served::start(&config, &args, dir.path());
    let mut ids = Vec::new();
    for n in 0..WORKFLOWS {
        let (status, body) = send(client().post(s.url("/run")).json(&json!({"function": "flow", "input": {"n": n}}))).await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["run_id"].as_str().expect("id").to_string());
    }
    // Kill at random moments; before each kill, note the steps stored so far.
    let mut seen: HashMap<(String, String), Value> = HashMap::new();
    let mut rng = fastrand_seed();
    for kill in 0..4 {
        tokio::time::sleep(Duration::from_millis(300 + next(&mut rng) % 900)).await;
        for id in ids.iter().step_by(7) {
            for st in steps_of(&s, id).await.into_iter().filter(|st| st["status"] == "succeeded") {
                seen.insert((id.clone(), st["id"].as_str().unwrap_or("").to_string()), st["output"].clone());
            }
        }
        s.kill9();
        eprintln!("sigkill {}: {} stored steps noted", kill + 1, seen.len());
        s = Served::start(&config, &args, dir.path());
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut runs = HashMap::new();
    for id in &ids {
        loop {
            let (_, run) = send(client().get(s.url(&format!("/runs/{id}")))).await;
            if run["status"] == "succeeded" {
                runs.insert(id.clone(), run);
                break;
            }
            assert!(!["failed", "cancelled"].contains(&run["status"].as_str().unwrap_or("")), "{run}");
            assert!(Instant::now() < deadline, "not every workflow ended in time: {run}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let text = std::fs::read_to_string(&log).expect("the execution log");
    let mut executions: HashMap<(String, String), Vec<i64>> = HashMap::new();
    for line in text.lines() {
        let mut parts = line.split(' ');
        let (Some(run), Some(step), Some(at)) = (parts.next(), parts.next(), parts.next()) else { continue };
        executions.entry((run.to_string(), step.to_string())).or_default().push(at.parse().expect("micros"));
    }
    let mut repeated_before_store = 0;
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(runs[id]["output"], json!([n, n, n]), "{}", runs[id]);
        let steps = steps_of(&s, id).await;
        let names: Vec<&str> = steps.iter().filter_map(|st| st["id"].as_str()).collect();
        assert_eq!(names, ["a", "nap", "b", "c"], "{id}: every step stored once, in order");
        for st in &steps {
            let step_id = st["id"].as_str().unwrap_or("").to_string();
            if let Some(before) = seen.get(&(id.clone(), step_id.clone())) {
                assert_eq!(&st["output"], before, "{id} {step_id}: a stored step is never lost or changed");
            }
            if step_id == "nap" {
                continue;
            }
            let runs_of_step = executions.get(&(id.clone(), step_id.clone())).cloned().unwrap_or_default();
            assert!(!runs_of_step.is_empty(), "{id} {step_id} never executed?");
            let stored_at = micros(&st["finished_at"]);
            assert!(
                runs_of_step.iter().all(|at| *at <= stored_at),
                "{id} {step_id}: executed after its result was stored at {stored_at}: {runs_of_step:?}"
            );
            repeated_before_store += runs_of_step.len() - 1;
        }
    }
    eprintln!(
        "{WORKFLOWS} workflows through 4 SIGKILLs: all succeeded; {} step executions, {repeated_before_store} repeated because a kill came before their result was stored",
        text.lines().count()
    );
}

fn fastrand_seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(7, |d| d.as_nanos() as u64) | 1
}

fn next(state: &mut u64) -> u64 {
    // xorshift64: enough to spread the kills; the seed is printed by the timing of the run.
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
