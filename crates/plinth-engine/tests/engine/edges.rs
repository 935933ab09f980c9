//! Edge cases: handlers that ignore SIGTERM, ignore their input, escape their process group,
//! and in-process handlers told to stop.

use crate::harness::{Harness, alive, code, config, outcomes, read_pid, rust_fn, sh_fn};
use plinth_core::RunStatus;
use plinth_core::timefmt::now_micros;
use plinth_engine::{EngineConfig, Handler, HandlerContext};
use plinth_store::CancelOutcome;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Whether `flag` is set within two seconds.
async fn eventually(flag: &AtomicBool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !flag.load(Ordering::SeqCst) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    flag.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_ignoring_sigterm_is_killed_after_the_grace() {
    let script = "trap '' TERM; echo $$ > sh.pid; exec sleep 30";
    let policy = "{timeout: 1s, retries: {max_attempts: 1}}";
    let cfg = EngineConfig { kill_grace: Duration::from_millis(300), ..config() };
    let h = Harness::started(&sh_fn("stubborn", script, policy), |_| {}, cfg);
    let started = Instant::now();
    let id = h.enqueue("stubborn", json!({})).await;
    let run = h.wait_terminal(&id).await;
    let took = started.elapsed();
    assert_eq!(run.status, RunStatus::Failed, "{run:#?}");
    assert_eq!(code(&run), "PLINTH_021");
    assert!(took >= Duration::from_millis(1300), "SIGTERM was ignored, so the grace must have passed: {took:?}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let pid = read_pid(&h.path("sh.pid")).await;
    assert!(!alive(pid), "the stubborn command {pid} survived SIGKILL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_ignores_a_large_input_still_succeeds() {
    let h = Harness::started(&sh_fn("deaf", "echo '{\"ok\": true}'", ""), |_| {}, config());
    // Far more than a pipe buffer: writing it fails once the command exits without reading.
    let id = h.enqueue("deaf", json!({"blob": "z".repeat(2_000_000)})).await;
    let run = h.wait_terminal(&id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(run.output, Some(json!({"ok": true})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_reading_a_large_input_gets_all_of_it() {
    let h = Harness::started(&sh_fn("count", "wc -c", ""), |_| {}, config());
    let input = json!("y".repeat(1_000_000));
    let expected = serde_json::to_vec(&input).expect("json").len();
    let id = h.enqueue("count", input).await;
    let run = h.wait_terminal(&id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(run.output, Some(json!(expected)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_and_logs_survive_a_child_that_escapes_the_process_group() {
    // The daemon leaves the process group (setsid) and keeps stdout and stderr open.
    // The shell waits until the daemon has left, so the group kill at its exit cannot reach it.
    let script = "echo 'before the daemon' >&2; \
        setsid sh -c 'echo $$ > daemon.pid.tmp; mv daemon.pid.tmp daemon.pid; exec sleep 30' & \
        while [ ! -s daemon.pid ]; do sleep 0.01; done; echo '{\"n\": 1}'";
    let h = Harness::started(&sh_fn("daemonize", script, ""), |_| {}, config());
    let started = Instant::now();
    let id = h.enqueue("daemonize", json!({})).await;
    let run = h.wait_terminal(&id).await;
    let daemon = read_pid(&h.path("daemon.pid")).await;
    let escaped = alive(daemon);
    let logs = h.logs(&id).await;
    // Why: the test must not leave the daemon behind, whatever the assertions say.
    if alive(daemon) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(daemon).expect("pid")),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(escaped, "the daemon {daemon} did not outlive the run, so nothing was tested");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(run.output, Some(json!({"n": 1})), "the output written before the shell exited is kept");
    let lines: Vec<&str> = logs.iter().map(|e| e.line.line.as_str()).collect();
    assert_eq!(lines, ["before the daemon"], "the log written before the shell exited is kept");
}

/// A handler that sleeps 30s; background work it started watches its cancel token and
/// raises `flag` when told to stop.
fn sets_flag_when_told_to_stop(flag: Arc<AtomicBool>) -> impl Handler {
    sets_flags(Arc::new(AtomicBool::new(false)), flag)
}

/// Sets `started` as it begins, then `told` once its cancel token is cancelled.
fn sets_flags(started: Arc<AtomicBool>, told: Arc<AtomicBool>) -> impl Handler {
    move |ctx: HandlerContext, _input: Value| {
        let (flag, started) = (told.clone(), started.clone());
        async move {
            started.store(true, Ordering::SeqCst);
            let cancel = ctx.cancel.clone();
            tokio::spawn(async move {
                cancel.cancelled().await;
                flag.store(true, Ordering::SeqCst);
            });
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(Value::Null)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_process_handler_is_told_to_stop_on_timeout() {
    let told = Arc::new(AtomicBool::new(false));
    let flag = told.clone();
    let h = Harness::started(
        &rust_fn("stuck", "stuck", "{timeout: 200ms, retries: {max_attempts: 1}}"),
        move |hs| {
            hs.register("stuck", sets_flag_when_told_to_stop(flag));
        },
        config(),
    );
    let id = h.enqueue("stuck", json!({})).await;
    let run = h.wait_terminal(&id).await;
    assert_eq!(code(&run), "PLINTH_021", "{run:#?}");
    assert!(eventually(&told).await, "the handler's cancel token was not cancelled on timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_in_process_handler() {
    let (started, told) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let flags = (started.clone(), told.clone());
    let h = Harness::started(
        &rust_fn("wait", "wait", ""),
        move |hs| {
            hs.register("wait", sets_flags(flags.0, flags.1));
        },
        EngineConfig { lease: Duration::from_secs(15), ..config() },
    );
    let id = h.enqueue("wait", json!({})).await;
    h.wait_running(&id).await;
    // Why: a run started as it is stored reads `running` before its handler is called; a cancel
    // seen before then ends the attempt without calling the handler, which has nothing to be told.
    assert!(eventually(&started).await, "the handler was called");
    let asked = Instant::now();
    let outcome = h.store.cancel(&id, now_micros()).await.expect("cancel");
    assert!(matches!(outcome, CancelOutcome::Requested(_)), "{outcome:?}");
    let run = h.wait_terminal(&id).await;
    assert!(asked.elapsed() < Duration::from_secs(3), "the cancel took {:?}", asked.elapsed());
    assert_eq!(run.status, RunStatus::Cancelled, "{run:#?}");
    assert_eq!(code(&run), "PLINTH_024");
    assert_eq!(outcomes(&run), ["cancelled"]);
    assert!(eventually(&told).await, "the handler's cancel token was not cancelled");
}
