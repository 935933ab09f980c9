//! A cancel racing with completion: whichever wins, the run ends in exactly one terminal state,
//! and its record agrees with itself.

use crate::harness::{Harness, config, rust_fn};
use plinth_core::RunStatus;
use plinth_core::timefmt::now_micros;
use plinth_engine::HandlerContext;
use plinth_store::CancelOutcome;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_racing_with_completion_leaves_one_terminal_state() {
    let h = Harness::started(
        &rust_fn("quick", "quick", "{retries: {max_attempts: 1}}"),
        |handlers| {
            handlers.register("quick", |_ctx: HandlerContext, input: Value| async move {
                // Finishes after 0 to 4 ms, so cancels land before, during and after it.
                let ms = input["ms"].as_u64().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(json!("done"))
            });
        },
        config(),
    );
    let (mut succeeded, mut cancelled) = (0, 0);
    for i in 0..60u64 {
        let id = h.enqueue("quick", json!({"ms": i % 5})).await;
        tokio::time::sleep(Duration::from_micros((i % 7) * 700)).await;
        let outcome = h.store.cancel(&id, now_micros()).await.expect("cancel");
        let run = h.wait_terminal(&id).await;
        let attempts = run.attempts.as_deref().unwrap_or_default();
        let ended: Vec<&str> = attempts.iter().map(|a| a.outcome.as_str()).filter(|o| *o != "running").collect();
        match run.status {
            RunStatus::Succeeded => {
                succeeded += 1;
                assert_eq!(run.output, Some(json!("done")), "{run:#?}");
                assert!(run.error.is_none(), "{run:#?}");
                assert_eq!(ended, ["succeeded"], "{run:#?}");
                assert!(matches!(outcome, CancelOutcome::AlreadyTerminal(_) | CancelOutcome::Requested(_)), "{outcome:?}");
            }
            RunStatus::Cancelled => {
                cancelled += 1;
                assert_eq!(run.output, None, "a cancelled run has no output: {run:#?}");
                assert!(ended.iter().all(|o| *o == "cancelled"), "{run:#?}");
                assert!(!matches!(outcome, CancelOutcome::AlreadyTerminal(_)), "{outcome:?}");
            }
            other => panic!("run {id} ended {other:?}: {run:#?}"),
        }
        // The state stays put: a second look and a second cancel change nothing.
        let again = h.get(&id).await;
        assert_eq!((again.status, again.finished_at), (run.status, run.finished_at));
        assert!(matches!(h.store.cancel(&id, now_micros()).await.expect("cancel"), CancelOutcome::AlreadyTerminal(_)));
    }
    eprintln!("cancel races: {succeeded} finished first, {cancelled} were cancelled first");
    assert_eq!(succeeded + cancelled, 60);
}
