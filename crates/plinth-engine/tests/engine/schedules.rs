//! The scheduler: cron triggers start one run per tick, once across restarts, catching up only
//! the latest missed tick.

use crate::harness::{Harness, config, rust_fn};
use plinth_core::timefmt::{now_micros, parse_rfc3339};
use plinth_core::{NewRun, Run, Trigger};
use plinth_store::ListFilter;
use std::time::Duration;

const EVERY_SECOND: &str = "    triggers: [{cron: '* * * * * *'}]\n";

async fn cron_runs(h: &Harness) -> Vec<Run> {
    let filter = ListFilter { trigger: Some("cron".into()), limit: 500, ..ListFilter::default() };
    let mut runs = h.store.list(filter).await.expect("list").runs;
    runs.reverse();
    runs
}

fn tick_of(run: &Run) -> i64 {
    match &run.trigger {
        Trigger::Cron { scheduled_at } => parse_rfc3339(scheduled_at).expect("RFC 3339"),
        other => panic!("not a cron run: {other:?}"),
    }
}

#[tokio::test]
async fn an_every_second_schedule_fires_each_tick_once() {
    let functions = format!("{}{EVERY_SECOND}", rust_fn("tick", "noop", ""));
    let h = Harness::started(&functions, |_| {}, config());
    tokio::time::sleep(Duration::from_millis(3300)).await;
    let runs = cron_runs(&h).await;
    assert!((2..=4).contains(&runs.len()), "about three ticks in 3.3 s, got {}", runs.len());
    let ticks: Vec<i64> = runs.iter().map(tick_of).collect();
    for pair in ticks.windows(2) {
        assert_eq!(pair[1] - pair[0], 1_000_000, "one run per second, none twice: {ticks:?}");
    }
    for run in &runs {
        assert_eq!(tick_of(run) % 1_000_000, 0, "ticks fall on whole seconds");
        assert_eq!(run.input["scheduled_at"], serde_json::json!(plinth_core::timefmt::rfc3339(tick_of(run))));
        assert!(run.created_at >= tick_of(run), "never fired early");
    }
    let state = h.store.schedules().await.expect("schedules");
    assert_eq!(state[0].function, "tick");
    assert_eq!(state[0].last_tick, *ticks.last().expect("a tick"));
}

#[tokio::test]
async fn a_restart_catches_up_only_the_latest_missed_tick() {
    let functions = format!("{}    triggers: [{{cron: '0 * * * *'}}]\n", rust_fn("hourly", "noop", ""));
    let mut h = Harness::new(&functions);
    // Three hours ago the last tick fired; the node was down since.
    let hour = 3_600_000_000;
    let last = (now_micros() / hour - 3) * hour;
    let run =
        NewRun::of(&h.component.file.functions[0], serde_json::json!({}), Trigger::Cron { scheduled_at: "x".into() }, "c", last);
    h.store.fire_tick("hourly", last, run).await.expect("fire").expect("first");
    h.start(|_| {}, config());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cron_runs(&h).await.len() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let runs = cron_runs(&h).await;
    assert_eq!(runs.len(), 2, "the old tick and one catch-up, not three");
    assert_eq!(tick_of(&runs[1]), (now_micros() / hour) * hour, "the latest missed tick");
    let engine = h.engine.take().expect("engine");
    engine.shutdown(Duration::from_secs(1)).await;
    h.start(|_| {}, config());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cron_runs(&h).await.len(), 2, "a second restart fires nothing: the tick is recorded");
}

#[tokio::test]
async fn a_first_start_fires_nothing_from_before_it() {
    let functions = format!("{}    triggers: [{{cron: '0 0 1 1 *'}}]\n", rust_fn("yearly", "noop", ""));
    let h = Harness::started(&functions, |_| {}, config());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(cron_runs(&h).await.is_empty(), "no tick is due, and none before the start is made up");
    assert!(h.store.schedules().await.expect("schedules").is_empty());
}
