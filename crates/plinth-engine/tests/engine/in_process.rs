//! In-process handlers: success, retryable and fatal errors, timeout, and `check_handlers`.

use crate::harness::{Harness, code, component, config, outcomes, rust_fn, sh_fn};
use plinth_core::RunStatus;
use plinth_engine::{Engine, HandlerContext, HandlerError, Handlers};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const FAST_RETRIES: &str = "{retries: {max_attempts: 3, backoff: {initial: 10ms, max: 20ms}}}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_handler_succeeds_with_its_context() {
    let h = Harness::started(
        &rust_fn("greet", "greet", ""),
        |hs| {
            hs.register("greet", |ctx: HandlerContext, input: Value| async move {
                Ok(json!({
                    "hello": input["name"],
                    "run_id": ctx.run_id,
                    "function": ctx.function,
                    "attempt": ctx.attempt,
                    "correlation_id": ctx.correlation_id,
                }))
            });
        },
        config(),
    );
    let id = h.enqueue("greet", json!({"name": "ada"})).await;
    let run = h.wait_terminal(&id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    let expected = json!({"hello": "ada", "run_id": id, "function": "greet", "attempt": 1, "correlation_id": "corr-greet"});
    assert_eq!(run.output, Some(expected));
    assert_eq!(outcomes(&run), ["succeeded"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_error_then_success_on_attempt_two() {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let h = Harness::started(
        &rust_fn("flaky", "flaky", FAST_RETRIES),
        move |hs| {
            hs.register("flaky", move |ctx: HandlerContext, _input: Value| {
                let seen = seen.clone();
                async move {
                    seen.fetch_add(1, Ordering::SeqCst);
                    if ctx.attempt == 1 { Err(HandlerError::retryable("not yet")) } else { Ok(json!({"attempt": ctx.attempt})) }
                }
            });
        },
        config(),
    );
    let id = h.enqueue("flaky", json!({})).await;
    let run = h.wait_terminal(&id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(run.output, Some(json!({"attempt": 2})));
    assert_eq!(run.attempt, 2);
    assert_eq!(outcomes(&run), ["retrying", "succeeded"]);
    let first = &run.attempts.as_ref().expect("attempts")[0];
    let err = first.error.as_ref().expect("the first attempt's error");
    assert_eq!((err.code.as_str(), err.message.as_str(), err.retryable), ("PLINTH_020", "not yet", true));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fatal_error_is_not_retried() {
    let h = Harness::started(
        &rust_fn("doomed", "doomed", FAST_RETRIES),
        |hs| {
            hs.register("doomed", |_ctx: HandlerContext, _input: Value| async { Err(HandlerError::fatal("bad input")) });
        },
        config(),
    );
    let id = h.enqueue("doomed", json!({})).await;
    let run = h.wait_terminal(&id).await;
    assert_eq!(run.status, RunStatus::Failed, "{run:#?}");
    assert_eq!(code(&run), "PLINTH_020");
    let err = run.error.as_ref().expect("error");
    assert_eq!(err.message, "bad input");
    assert!(!err.retryable);
    assert_eq!(run.attempt, 1);
    assert_eq!(outcomes(&run), ["failed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_timeout_is_plinth_021() {
    let h = Harness::started(
        &rust_fn("stuck", "stuck", "{timeout: 200ms, retries: {max_attempts: 1}}"),
        |hs| {
            hs.register("stuck", |_ctx: HandlerContext, _input: Value| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(Value::Null)
            });
        },
        config(),
    );
    let started = Instant::now();
    let id = h.enqueue("stuck", json!({})).await;
    let run = h.wait_terminal(&id).await;
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(run.status, RunStatus::Failed, "{run:#?}");
    assert_eq!(code(&run), "PLINTH_021");
    assert_eq!(outcomes(&run), ["failed"]);
    assert!(h.idle().await, "an attempt stayed in flight");
}

#[test]
fn check_handlers_rejects_an_unregistered_rust_handler() {
    let dir = tempfile::tempdir().expect("temp dir");
    let functions =
        [sh_fn("cmd", "true", ""), rust_fn("known", "echo", ""), rust_fn("unknown", "nobody-registered-me", "")].concat();
    let c = component(&functions, dir.path().to_path_buf());
    let err = Engine::check_handlers(&c, &Handlers::builtin()).expect_err("the missing handler is reported");
    assert_eq!(err.field, "functions[2].handler.rust");
    assert!(err.reason.contains("nobody-registered-me"), "{}", err.reason);
    assert!(err.to_string().contains("PLINTH_001"), "{err}");

    let mut handlers = Handlers::builtin();
    handlers.register("nobody-registered-me", |_ctx: HandlerContext, input: Value| async move { Ok(input) });
    assert_eq!(Engine::check_handlers(&c, &handlers), Ok(()));
}
