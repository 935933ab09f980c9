//! Command handlers: input, output, environment, and how a failed command is reported.

use crate::harness::{Harness, alive, code, command_fn, config, outcomes, read_pid, sh_fn};
use plinth_core::RunStatus;
use plinth_engine::EngineConfig;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const FAST_RETRIES: &str = "{retries: {max_attempts: 3, backoff: {initial: 10ms, max: 20ms}}}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cat_echoes_its_json_input_as_output() {
    let h = Harness::started(&command_fn("cat", &["cat"], ""), |_| {}, config());
    let input = json!({"name": "plinth", "n": 42, "list": [true, null, "x"], "nested": {"f": 1.5}});
    let id = h.enqueue("cat", input.clone()).await;
    let run = h.wait_terminal(&id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(run.output, Some(input));
    assert_eq!(run.attempt, 1);
    assert!(run.error.is_none(), "{run:#?}");
    assert_eq!(outcomes(&run), ["succeeded"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_output_becomes_a_json_string_and_empty_output_null() {
    let functions = [sh_fn("text", "echo 'hello world'", ""), sh_fn("empty", "true", "")].concat();
    let h = Harness::started(&functions, |_| {}, config());
    let text = h.enqueue("text", json!({})).await;
    let empty = h.enqueue("empty", json!({})).await;
    let text = h.wait_terminal(&text).await;
    let empty = h.wait_terminal(&empty).await;
    assert_eq!(text.status, RunStatus::Succeeded, "{text:#?}");
    assert_eq!(text.output, Some(Value::String("hello world".into())));
    assert_eq!(empty.status, RunStatus::Succeeded, "{empty:#?}");
    assert_eq!(empty.output, Some(Value::Null));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_sees_its_run_in_the_environment() {
    let script = r#"printf '%s|%s|%s|%s' "$PLINTH_RUN_ID" "$PLINTH_FUNCTION" "$PLINTH_ATTEMPT" "$PLINTH_CORRELATION_ID""#;
    let h = Harness::started(&sh_fn("env-probe", script, ""), |_| {}, config());
    let id = h.enqueue("env-probe", json!(null)).await;
    let run = h.wait_terminal(&id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    let expected = format!("{id}|env-probe|1|corr-env-probe");
    assert_eq!(run.output, Some(Value::String(expected)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_zero_exit_is_retried_then_fails_with_plinth_020() {
    let script = "echo \"boom on attempt $PLINTH_ATTEMPT\" >&2; exit 3";
    let h = Harness::started(&sh_fn("boom", script, FAST_RETRIES), |_| {}, config());
    let id = h.enqueue("boom", json!({})).await;
    let run = h.wait_terminal(&id).await;
    assert_eq!(run.status, RunStatus::Failed, "{run:#?}");
    assert_eq!(code(&run), "PLINTH_020");
    let error = run.error.as_ref().expect("error");
    assert!(error.message.contains("status 3"), "{}", error.message);
    assert!(error.message.contains("boom on attempt 3"), "the last stderr line is quoted: {}", error.message);
    assert_eq!(run.attempt, 3);
    assert_eq!(outcomes(&run), ["retrying", "retrying", "failed"]);
    for a in run.attempts.as_ref().expect("attempts") {
        assert_eq!(a.error.as_ref().map(|e| e.code.as_str()), Some("PLINTH_020"), "{a:#?}");
        assert!(a.finished_at.is_some(), "{a:#?}");
    }
    // Each attempt kept its own log.
    let logs: Vec<(u32, String)> = h.logs(&id).await.into_iter().map(|e| (e.attempt, e.line.line)).collect();
    let expected: Vec<(u32, String)> = (1..=3).map(|n| (n, format!("boom on attempt {n}"))).collect();
    assert_eq!(logs, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_by_a_signal_is_a_crash_plinth_022() {
    let policy = "{retries: {max_attempts: 2, backoff: {initial: 10ms, max: 20ms}}}";
    let h = Harness::started(&sh_fn("crash", "kill -9 $$", policy), |_| {}, config());
    let id = h.enqueue("crash", json!({})).await;
    let run = h.wait_terminal(&id).await;
    assert_eq!(run.status, RunStatus::Failed, "{run:#?}");
    assert_eq!(code(&run), "PLINTH_022");
    let message = &run.error.as_ref().expect("error").message;
    assert!(message.contains("SIGKILL"), "{message}");
    // A crash is retryable: both attempts ran.
    assert_eq!(run.attempt, 2);
    assert_eq!(outcomes(&run), ["retrying", "failed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_is_plinth_021_and_kills_the_process_group() {
    // The shell leaves a background child in its process group: both must go.
    let script = "sleep 30 & echo $! > child.pid; echo $$ > sh.pid; wait";
    let policy = "{timeout: 300ms, retries: {max_attempts: 1}}";
    let h = Harness::started(&sh_fn("slow", script, policy), |_| {}, config());
    let started = Instant::now();
    let id = h.enqueue("slow", json!({})).await;
    let run = h.wait_terminal(&id).await;
    let took = started.elapsed();
    assert_eq!(run.status, RunStatus::Failed, "{run:#?}");
    assert_eq!(code(&run), "PLINTH_021");
    assert!(took < Duration::from_secs(10), "the timeout took {took:?}");
    assert_eq!(outcomes(&run), ["failed"]);
    let sh = read_pid(&h.path("sh.pid")).await;
    let child = read_pid(&h.path("child.pid")).await;
    // Why: the orphaned child is reaped by init, which may take a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while (alive(sh) || alive(child)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(sh), "the shell {sh} outlived its timeout");
    assert!(!alive(child), "the shell's child {child} outlived its timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_program_is_plinth_023_and_not_retried() {
    let functions = command_fn("missing", &["/nonexistent/plinth-no-such-program"], FAST_RETRIES);
    let h = Harness::started(&functions, |_| {}, config());
    let id = h.enqueue("missing", json!({})).await;
    let run = h.wait_terminal(&id).await;
    assert_eq!(run.status, RunStatus::Failed, "{run:#?}");
    assert_eq!(code(&run), "PLINTH_023");
    assert!(!run.error.as_ref().expect("error").retryable);
    assert_eq!(run.attempt, 1);
    assert_eq!(outcomes(&run), ["failed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_over_the_limit_is_plinth_026() {
    let functions = [
        sh_fn("big", "head -c 5000 /dev/zero | tr '\\0' a", FAST_RETRIES),
        sh_fn("fits", "head -c 900 /dev/zero | tr '\\0' a", ""),
    ]
    .concat();
    let h = Harness::started(&functions, |_| {}, EngineConfig { max_output_bytes: 1000, ..config() });
    let big = h.enqueue("big", json!({})).await;
    let fits = h.enqueue("fits", json!({})).await;
    let big = h.wait_terminal(&big).await;
    assert_eq!(big.status, RunStatus::Failed, "{big:#?}");
    assert_eq!(code(&big), "PLINTH_026");
    assert!(big.output.is_none());
    assert_eq!(big.attempt, 1, "output too large is not retried");
    let fits = h.wait_terminal(&fits).await;
    assert_eq!(fits.status, RunStatus::Succeeded, "{fits:#?}");
    assert_eq!(fits.output, Some(Value::String("a".repeat(900))));
}
