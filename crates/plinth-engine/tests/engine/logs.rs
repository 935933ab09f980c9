//! Stderr as the run's log: order, the per-attempt byte limit, and the line length limit.

use crate::harness::{Harness, config, sh_fn};
use plinth_core::RunStatus;
use plinth_engine::EngineConfig;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stderr_lines_become_the_log_in_order() {
    let script = "for i in $(seq 1 600); do echo \"line $i\" >&2; done; echo '{\"done\": true}'";
    let h = Harness::started(&sh_fn("chatty", script, ""), |_| {}, config());
    let id = h.enqueue("chatty", json!({})).await;
    let run = h.wait_terminal(&id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(run.output, Some(json!({"done": true})), "stderr does not leak into the output");
    let logs = h.logs(&id).await;
    let lines: Vec<&str> = logs.iter().map(|e| e.line.line.as_str()).collect();
    let expected: Vec<String> = (1..=600).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, expected);
    assert!(logs.iter().all(|e| e.attempt == 1));
    let seqs: Vec<u32> = logs.iter().map(|e| e.line.seq).collect();
    assert_eq!(seqs, (0..600).collect::<Vec<u32>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooding_stderr_keeps_the_log_within_its_limit() {
    let limit = 2000u64;
    let script = "yes line | head -c 5000000 >&2; echo ok";
    let h = Harness::started(&sh_fn("flood", script, ""), |_| {}, EngineConfig { max_log_bytes: limit, ..config() });
    let started = Instant::now();
    let id = h.enqueue("flood", json!({})).await;
    let run = h.wait_terminal(&id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(run.output, Some(json!("ok")));
    assert!(started.elapsed() < Duration::from_secs(15), "flood took {:?}", started.elapsed());
    let logs = h.logs(&id).await;
    let (last, kept) = logs.split_last().expect("some log lines");
    let kept_bytes: u64 = kept.iter().map(|e| e.line.line.len() as u64).sum();
    assert!(kept_bytes <= limit, "{kept_bytes} bytes kept over a {limit}-byte limit");
    assert_eq!(kept.len(), usize::try_from(limit / 4).expect("small"), "every `line` that fits is kept");
    assert!(kept.iter().all(|e| e.line.line == "line"));
    let note = &last.line.line;
    assert!(note.starts_with("[plinth] ") && note.contains("dropped"), "{note}");
    // 5_000_000 bytes are 1_000_000 lines of `line\n`; 500 are kept.
    assert!(note.contains("999500 more lines"), "{note}");
    // The note comes last in order.
    assert!(logs.windows(2).all(|w| w[0].line.seq < w[1].line.seq));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_line_without_newline_is_cut() {
    let script = "head -c 3000000 /dev/zero | tr '\\0' x >&2; echo done";
    let h = Harness::started(&sh_fn("huge", script, ""), |_| {}, config());
    let id = h.enqueue("huge", json!({})).await;
    let run = h.wait_terminal(&id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(run.output, Some(json!("done")));
    let logs = h.logs(&id).await;
    assert_eq!(logs.len(), 1, "one line, cut: {:?}", logs.iter().map(|e| e.line.line.len()).collect::<Vec<_>>());
    let line = &logs[0].line.line;
    assert!(line.len() < 9 * 1024, "the stored line is {} bytes", line.len());
    assert!(line.starts_with(&"x".repeat(8 * 1024)), "the line keeps its first 8 KiB");
    assert!(line.contains("cut"), "the line says it was cut: {}", &line[8 * 1024..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_is_stored_while_the_handler_still_runs() {
    let flags = tempfile::tempdir().expect("temp dir");
    let stop = flags.path().join("stop");
    let script = format!("echo first >&2; while [ ! -f '{}' ]; do sleep 0.05; done; echo '\"ok\"'", stop.display());
    let mut h = Harness::new(&sh_fn("quiet", &script, ""));
    h.start(|_| {}, config());
    let id = h.enqueue("quiet", json!({})).await;
    let deadline = Instant::now() + crate::harness::WAIT;
    let seen = loop {
        let logs = h.logs(&id).await;
        if !logs.is_empty() || Instant::now() > deadline {
            break logs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(seen.iter().map(|e| e.line.line.as_str()).collect::<Vec<_>>(), ["first"], "the line is stored before the end");
    assert_eq!(h.get(&id).await.status, RunStatus::Running, "the handler had not ended when its line was read");
    std::fs::write(&stop, "").expect("stop file");
    let run = h.wait_terminal(&id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(h.logs(&id).await.len(), 1, "the line is stored once");
}

/// A step function behind HTTP: answers one step per call until it has `n`, then finishes.
async fn steps_endpoint(n: usize) -> String {
    let app = axum::Router::new().route(
        "/steps",
        axum::routing::post(move |body: String| async move {
            let done =
                serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|v| v["steps"].as_object().map(|m| m.len()));
            match done {
                Some(k) if k < n => (
                    axum::http::StatusCode::PARTIAL_CONTENT,
                    axum::Json(json!({"ops": [{"op": "step", "id": format!("s{k}"), "output": k}]})),
                ),
                Some(k) => (axum::http::StatusCode::OK, axum::Json(json!({"steps": k}))),
                None => (axum::http::StatusCode::BAD_REQUEST, axum::Json(json!({"message": "not an envelope"}))),
            }
        }),
    );
    crate::harness::serve_app(app).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_call_of_a_step_session_leaves_its_line_in_order() {
    let base = steps_endpoint(3).await;
    let f = format!("  - name: three\n    steps: true\n    handler:\n      http: {{url: '{base}/steps'}}\n");
    let h = Harness::started(&f, |_| {}, config());
    let id = h.enqueue("three", json!({})).await;
    let run = h.wait_terminal(&id).await;
    assert_eq!((run.status, run.output.clone()), (RunStatus::Succeeded, Some(json!({"steps": 3}))), "{run:#?}");
    let logs = h.logs(&id).await;
    let got: Vec<(u32, u32, bool)> =
        logs.iter().map(|e| (e.attempt, e.line.seq, e.line.line.starts_with("http: POST"))).collect();
    assert_eq!(got, [(1, 0, true), (1, 1, true), (1, 2, true), (1, 3, true)], "one line per call, numbered in order: {logs:#?}");
    let answers: Vec<bool> = logs.iter().map(|e| e.line.line.contains("answered 206")).collect();
    assert_eq!(answers, [true, true, true, false], "three steps, then the function's end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_step_sessions_calls_add_their_lines_after_the_last_calls() {
    // The first call (no step stored) says so on stderr and reaches step `a`; the second,
    // seeing `a` in its envelope, says so and finishes.
    let script = "read -r envelope; case \"$envelope\" in *'\"a\":'*) echo second call >&2; echo '{\"output\": 2}';; \
                  *) echo first call >&2; echo more >&2; echo '{\"ops\": [{\"op\": \"step\", \"id\": \"a\", \"output\": 1}]}';; esac";
    let f = format!("{}    steps: true\n", sh_fn("two", script, ""));
    let h = Harness::started(&f, |_| {}, config());
    let id = h.enqueue("two", json!({})).await;
    let run = h.wait_terminal(&id).await;
    assert_eq!((run.status, run.output.clone()), (RunStatus::Succeeded, Some(json!(2))), "{run:#?}");
    let got: Vec<(u32, String)> = h.logs(&id).await.into_iter().map(|e| (e.line.seq, e.line.line)).collect();
    assert_eq!(got, [(0, "first call".to_string()), (1, "more".to_string()), (2, "second call".to_string())]);
    // A second run numbers its own lines from 0.
    let other = h.enqueue("two", json!({})).await;
    h.wait_terminal(&other).await;
    assert_eq!(h.logs(&other).await.first().map(|e| e.line.seq), Some(0));
}
