//! The Rust step API on the engine: each step runs once and is committed before the code after
//! it, a failed step is retried by the policy, and the ways a handler can break the rules of
//! steps fail with their codes.

use super::harness::{Harness, code, config};
use plinth_core::RunStatus;
use plinth_engine::{HandlerContext, HandlerError, Handlers};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

fn step_fn(name: &str, handler: &str) -> String {
    format!(
        "  - name: {name}\n    steps: true\n    handler:\n      rust: {handler}\n    policy: {{retries: {{max_attempts: 3, backoff: {{initial: 50ms, max: 100ms, multiplier: 2}}}}}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_run_once_and_a_failed_step_is_retried() {
    let runs = Arc::new(AtomicU32::new(0));
    let flaky = Arc::new(AtomicU32::new(0));
    let (r, f) = (runs.clone(), flaky.clone());
    let register = move |h: &mut Handlers| {
        h.register("three", move |ctx: HandlerContext, _input: Value| {
            let (r, f) = (r.clone(), f.clone());
            async move {
                let a: u32 = ctx.step("a", async { Ok(r.fetch_add(1, Ordering::SeqCst) + 1) }).await?;
                let b: u32 = ctx
                    .step("b", async {
                        if f.fetch_add(1, Ordering::SeqCst) == 0 { Err(HandlerError::retryable("not yet")) } else { Ok(a + 1) }
                    })
                    .await?;
                ctx.sleep("nap", Duration::from_millis(200)).await?;
                let again: u32 = ctx.step("a", async { Ok(100) }).await?;
                Ok(json!([a, b, again]))
            }
        });
    };
    let h = Harness::started(&step_fn("three", "three"), register, config());
    let id = h.enqueue("three", json!({})).await;
    let run = h.wait_terminal(&id).await;
    assert_eq!((run.status, run.output.clone()), (RunStatus::Succeeded, Some(json!([1, 2, 100]))), "{run:#?}");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "step a ran once though the handler was entered three times");
    let steps = h.store.steps(&id).await.expect("steps").expect("run");
    let got: Vec<(&str, u32, &str)> = steps.iter().map(|s| (s.id.as_str(), s.attempts, s.status.as_str())).collect();
    assert_eq!(got, [("a", 1, "succeeded"), ("b", 2, "succeeded"), ("nap", 1, "succeeded"), ("a:1", 1, "succeeded")]);
    assert_eq!(run.attempt, 1, "suspensions and step retries do not use the run's attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_whose_attempts_are_spent_is_the_handlers_to_handle() {
    let register = |h: &mut Handlers| {
        h.register("gives_up", |ctx: HandlerContext, _input: Value| async move {
            let r: Result<u32, HandlerError> = ctx.step("never", async { Err(HandlerError::fatal("card declined")) }).await;
            let e = r.expect_err("a failed step");
            Ok(json!({"handled": e.message}))
        });
    };
    let h = Harness::started(&step_fn("gives_up", "gives_up"), register, config());
    let id = h.enqueue("gives_up", json!({})).await;
    let run = h.wait_terminal(&id).await;
    assert_eq!(run.output, Some(json!({"handled": "step `never` failed: card declined"})), "{run:#?}");
    let steps = h.store.steps(&id).await.expect("steps").expect("run");
    assert_eq!((steps[0].status.as_str(), steps[0].attempts), ("failed", 1), "not retryable: one attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaking_the_rules_of_steps_fails_with_a_code() {
    let flips = Arc::new(AtomicU32::new(0));
    let fl = flips.clone();
    let register = move |h: &mut Handlers| {
        h.register("no_steps", |ctx: HandlerContext, _input: Value| async move {
            ctx.step("a", async { Ok(1) }).await?;
            Ok(Value::Null)
        });
        h.register("zero_sleep", |ctx: HandlerContext, _input: Value| async move {
            ctx.sleep("nap", Duration::ZERO).await?;
            Ok(Value::Null)
        });
        h.register("unknown_child", |ctx: HandlerContext, _input: Value| async move {
            let _: Value = ctx.invoke("c", "nope", json!({})).await?;
            Ok(Value::Null)
        });
        h.register("bad_wait", |ctx: HandlerContext, _input: Value| async move {
            ctx.wait_for_event("w", "shop/x", Some("event.data.=="), None).await?;
            Ok(Value::Null)
        });
        h.register("reorders", move |ctx: HandlerContext, _input: Value| {
            let first = fl.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    ctx.step("a", async { Ok(1) }).await?;
                    ctx.sleep("nap", Duration::from_millis(100)).await?;
                } else {
                    ctx.step("b", async { Ok(2) }).await?;
                }
                Ok(Value::Null)
            }
        });
    };
    let mut functions = String::from("  - name: no_steps\n    handler:\n      rust: no_steps\n");
    for f in ["zero_sleep", "unknown_child", "bad_wait", "reorders"] {
        functions.push_str(&step_fn(f, f));
    }
    let h = Harness::started(&functions, register, config());
    for (function, expected) in [
        ("no_steps", "PLINTH_060"),
        ("zero_sleep", "PLINTH_060"),
        ("unknown_child", "PLINTH_056"),
        ("bad_wait", "PLINTH_060"),
        ("reorders", "PLINTH_058"),
    ] {
        let id = h.enqueue(function, json!({})).await;
        let run = h.wait_terminal(&id).await;
        assert_eq!((run.status, code(&run)), (RunStatus::Failed, expected), "{function}: {run:#?}");
    }
    assert_eq!(flips.load(Ordering::SeqCst), 2);
}
