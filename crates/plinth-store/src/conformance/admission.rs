//! Cases for the rules applied when a run is stored: rate limits, debounce and singleton keys,
//! through `enqueue` and through events.

use super::events::{event, ingest, started};
use super::{SEC, get, ids, new_run};
use crate::{ListFilter, NewEvent, Store};
use plinth_core::{Event, NewRun, RunStatus, Trigger};
use serde_json::json;

/// A rate limit counts the runs created per key in a window: past it an enqueue is refused with
/// the time left in the window, another key or the next window takes runs again, and an event
/// past it starts no run and says why.
pub async fn a_rate_limit_refuses_past_its_window(store: &dyn Store) {
    let period = 60 * SEC;
    let t0 = (plinth_core::timefmt::now_micros() / period) * period + SEC;
    let check = |key: &str| Some(plinth_core::flow::RateCheck { key: key.into(), limit: 2, period });
    let rated = |key: &str, at: i64| NewRun { rate: check(key), ..new_run("rated", at) };
    super::enqueue(store, rated("a", t0)).await;
    super::enqueue(store, rated("a", t0 + 1)).await;
    match store.enqueue(rated("a", t0 + 2)).await {
        Err(crate::StoreError::RateLimited { function, key, retry_after }) => {
            assert_eq!((function.as_str(), key.as_str(), retry_after), ("rated", "a", period - SEC - 2));
        }
        other => panic!("a third run of key a in one window must be refused, got {other:?}"),
    }
    super::enqueue(store, rated("b", t0 + 3)).await;
    super::enqueue(store, rated("a", t0 + period)).await;

    let e1 = event("r1", "a/b", t0 + period + 1);
    let e2 = event("r2", "a/b", t0 + period + 2);
    let by_event = |e: &Event| NewRun { rate: check("a"), ..started("rated", e) };
    let done = ingest(
        store,
        vec![
            NewEvent { event: e1.clone(), runs: vec![by_event(&e1)], skipped: vec![], cancels: vec![] },
            NewEvent { event: e2.clone(), runs: vec![by_event(&e2)], skipped: vec![], cancels: vec![] },
        ],
        t0 - SEC,
    )
    .await;
    assert_eq!(done[0].run_ids.len(), 1, "the second run of the window");
    assert!(done[1].run_ids.is_empty(), "the third is refused");
    let second = store.event("r2").await.expect("read").expect("stored");
    assert_eq!(second.skipped.len(), 1);
    assert!(second.skipped[0].reason.contains("rate_limit"), "{:?}", second.skipped);
    let listed = store.list(ListFilter { function: Some("rated".into()), limit: 100, ..ListFilter::default() }).await;
    assert_eq!(listed.expect("list").runs.len(), 5, "no refused run was stored");
    let forget = crate::FlowUpkeep::Forget { idle_before: t0 + 10 * period };
    assert!(store.flow_upkeep(forget).await.expect("forget") >= 2, "closed windows are forgotten");
}

/// A debounced run is fed by later triggers of its key while it is queued: its input and
/// trigger become the last ones, its start moves to `period` after the last (never past
/// `max_wait` after the first); once it runs, the next trigger stores a new run. Events in one
/// call feed the run the first of them stored.
pub async fn debounce_feeds_the_queued_run_of_its_key(store: &dyn Store) {
    let t0 = plinth_core::timefmt::now_micros();
    let check =
        |key: &str| Some(plinth_core::flow::DebounceCheck { key: key.into(), period: 10 * SEC, max_wait: Some(15 * SEC) });
    let debounced = |key: &str, n: i64, at: i64| NewRun {
        input: json!({"n": n}),
        not_before: at + 10 * SEC,
        debounce: check(key),
        ..new_run("typing", at)
    };
    let first = super::enqueue(store, debounced("u", 1, t0)).await;
    let fed = match store.enqueue(debounced("u", 2, t0 + 4 * SEC)).await {
        Ok(crate::Enqueued::Debounced(run)) => run,
        other => panic!("a second trigger of key u must feed the queued run, got {other:?}"),
    };
    assert_eq!((fed.run_id.as_str(), &fed.input), (first.run_id.as_str(), &json!({"n": 2})));
    assert_eq!(fed.next_attempt_at, Some(t0 + 14 * SEC), "ten seconds after the last trigger");
    let capped = match store.enqueue(debounced("u", 3, t0 + 9 * SEC)).await {
        Ok(crate::Enqueued::Debounced(run)) => run,
        other => panic!("a third trigger must feed it too, got {other:?}"),
    };
    assert_eq!(capped.next_attempt_at, Some(t0 + 15 * SEC), "never past max_wait after the first");
    let other = super::enqueue(store, debounced("v", 1, t0 + 9 * SEC)).await;
    assert_ne!(other.run_id, first.run_id, "another key has a run of its own");

    let claimed = super::claim(store, "w1", t0 + 15 * SEC, &[("typing", 10)]).await;
    assert_eq!(ids(&claimed.runs), vec![first.run_id.clone()], "it starts when due, with the last input");
    assert_eq!(claimed.runs[0].input, json!({"n": 3}));
    let after = super::enqueue(store, debounced("u", 4, t0 + 16 * SEC)).await;
    assert_ne!(after.run_id, first.run_id, "a running run is not fed: a new one is stored");

    let e1 = event("d1", "a/typed", t0 + 20 * SEC);
    let e2 = event("d2", "a/typed", t0 + 21 * SEC);
    let by_event = |e: &Event| NewRun { debounce: check("w"), not_before: e.received_at + 10 * SEC, ..started("typing", e) };
    let done = ingest(
        store,
        vec![
            NewEvent { event: e1.clone(), runs: vec![by_event(&e1)], skipped: vec![], cancels: vec![] },
            NewEvent { event: e2.clone(), runs: vec![by_event(&e2)], skipped: vec![], cancels: vec![] },
        ],
        t0 - SEC,
    )
    .await;
    assert_eq!(done[0].run_ids.len(), 1);
    assert_eq!(done[1].run_ids, done[0].run_ids, "the second event fed the run the first started");
    let run = get(store, &done[0].run_ids[0]).await;
    assert_eq!(run.input, e2.as_input(), "with the last event's input");
    assert_eq!(run.trigger, Trigger::Event { event_id: "d2".into() });
    let e3 = event("d3", "a/typed", t0 + 22 * SEC);
    let later = ingest(
        store,
        vec![NewEvent { event: e3.clone(), runs: vec![by_event(&e3)], skipped: vec![], cancels: vec![] }],
        t0 - SEC,
    )
    .await;
    assert_eq!(later[0].run_ids, done[0].run_ids, "a later call feeds it too");
    assert_eq!(get(store, &done[0].run_ids[0]).await.next_attempt_at, Some(t0 + 32 * SEC));
}

/// A singleton key holds one unfinished run: `skip` refuses another while it lasts, `cancel`
/// cancels the old one and stores the new one, and a finished run holds nothing. Events skip or
/// cancel the same way, among the events of one call too.
pub async fn a_singleton_key_holds_one_unfinished_run(store: &dyn Store) {
    use plinth_core::flow::{SingletonCheck, SingletonMode};
    let t0 = plinth_core::timefmt::now_micros();
    let single = |function: &str, key: &str, mode: SingletonMode, at: i64| NewRun {
        singleton: Some(SingletonCheck { key: key.into(), mode }),
        ..new_run(function, at)
    };
    let first = super::enqueue(store, single("solo", "o-1", SingletonMode::Skip, t0)).await;
    match store.enqueue(single("solo", "o-1", SingletonMode::Skip, t0 + 1)).await {
        Err(crate::StoreError::SingletonBusy { run_id, key, .. }) => {
            assert_eq!((run_id, key.as_str()), (first.run_id.clone(), "o-1"))
        }
        other => panic!("a second run of key o-1 must be refused, got {other:?}"),
    }
    let claimed = super::claim(store, "w1", t0 + SEC, &[("solo", 1)]).await;
    assert_eq!(ids(&claimed.runs), vec![first.run_id.clone()]);
    match store.enqueue(single("solo", "o-1", SingletonMode::Skip, t0 + 2)).await {
        Err(crate::StoreError::SingletonBusy { .. }) => {}
        other => panic!("a running run holds its key too, got {other:?}"),
    }
    assert!(super::finish(store, &first.run_id, "w1", 1, plinth_core::Finish::Succeeded(json!(1)), t0 + 2 * SEC).await);
    super::enqueue(store, single("solo", "o-1", SingletonMode::Skip, t0 + 3 * SEC)).await;
    super::enqueue(store, single("solo", "o-2", SingletonMode::Skip, t0 + 3 * SEC)).await;

    let old = super::enqueue(store, single("latest", "c-1", SingletonMode::Cancel, t0)).await;
    let new = super::enqueue(store, single("latest", "c-1", SingletonMode::Cancel, t0 + 1)).await;
    assert_eq!(get(store, &old.run_id).await.status, RunStatus::Cancelled, "the old run is cancelled");
    assert_eq!(get(store, &new.run_id).await.status, RunStatus::Queued, "the new one waits");

    let by_event = |e: &Event, key: &str, mode: SingletonMode| NewRun {
        singleton: Some(SingletonCheck { key: key.into(), mode }),
        ..started("latest", e)
    };
    let (e1, e2) = (event("s1", "a/s", t0 + 5 * SEC), event("s2", "a/s", t0 + 6 * SEC));
    let done = ingest(
        store,
        vec![
            NewEvent {
                event: e1.clone(),
                runs: vec![by_event(&e1, "c-2", SingletonMode::Cancel)],
                skipped: vec![],
                cancels: vec![],
            },
            NewEvent {
                event: e2.clone(),
                runs: vec![by_event(&e2, "c-2", SingletonMode::Cancel)],
                skipped: vec![],
                cancels: vec![],
            },
        ],
        t0 - SEC,
    )
    .await;
    assert_eq!(get(store, &done[0].run_ids[0]).await.status, RunStatus::Cancelled, "the earlier event's run is cancelled");
    assert_eq!(get(store, &done[1].run_ids[0]).await.status, RunStatus::Queued);
    let e3 = event("s3", "a/s", t0 + 7 * SEC);
    let later = ingest(
        store,
        vec![NewEvent {
            event: e3.clone(),
            runs: vec![by_event(&e3, "c-2", SingletonMode::Cancel)],
            skipped: vec![],
            cancels: vec![],
        }],
        t0 - SEC,
    )
    .await;
    assert_eq!(get(store, &done[1].run_ids[0]).await.status, RunStatus::Cancelled, "a later call cancels the stored one");
    assert_eq!(get(store, &later[0].run_ids[0]).await.status, RunStatus::Queued);

    let (e4, e5) = (event("s4", "a/s", t0 + 8 * SEC), event("s5", "a/s", t0 + 9 * SEC));
    let skipping = ingest(
        store,
        vec![
            NewEvent {
                event: e4.clone(),
                runs: vec![by_event(&e4, "k-1", SingletonMode::Skip)],
                skipped: vec![],
                cancels: vec![],
            },
            NewEvent {
                event: e5.clone(),
                runs: vec![by_event(&e5, "k-1", SingletonMode::Skip)],
                skipped: vec![],
                cancels: vec![],
            },
        ],
        t0 - SEC,
    )
    .await;
    assert_eq!(skipping[0].run_ids.len(), 1);
    assert!(skipping[1].run_ids.is_empty(), "the second event of one call is skipped");
    let shown = store.event("s5").await.expect("read").expect("stored");
    assert!(shown.skipped[0].reason.contains("singleton"), "{:?}", shown.skipped);
}

/// Events of one batch key gather in one queued run (`input.events`, in order) until it holds
/// `max_size` events, when it is due at once and the next event opens a new batch; events of
/// one call gather the same way; a batch that has started takes no more events.
pub async fn a_batch_gathers_the_events_of_its_key(store: &dyn Store) {
    use plinth_core::flow::BatchCheck;
    let t0 = plinth_core::timefmt::now_micros();
    let batched = |e: &Event, key: &str| NewRun {
        input: json!({"events": [e.as_input()]}),
        batch: Some(BatchCheck { key: key.into(), max_size: 3 }),
        not_before: e.received_at + 10 * SEC,
        ..started("digest", e)
    };
    let one = |e: Event, key: &str| NewEvent { runs: vec![batched(&e, key)], event: e, skipped: vec![], cancels: vec![] };
    let mut first = Vec::new();
    for i in 0..3 {
        let e = event(&format!("a{i}"), "shop/order.paid", t0 + i * SEC);
        first.push(ingest(store, vec![one(e, "a")], 0).await[0].run_ids[0].clone());
    }
    assert!(first.iter().all(|id| *id == first[0]), "three events of key a, one run: {first:?}");
    let full = get(store, &first[0]).await;
    let seen: Vec<&str> = full.input["events"].as_array().expect("events").iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(seen, ["a0", "a1", "a2"], "in the order they came: {}", full.input);
    assert_eq!(full.next_attempt_at, Some(t0 + 2 * SEC), "a full batch is due at once");
    let next = ingest(store, vec![one(event("a3", "shop/order.paid", t0 + 3 * SEC), "a")], 0).await;
    assert_ne!(next[0].run_ids[0], first[0], "a full batch is closed: the next event opens another");
    let opened = get(store, &next[0].run_ids[0]).await;
    assert_eq!(opened.next_attempt_at, Some(t0 + 13 * SEC), "a batch not full starts `timeout` after its first event");

    let (b0, b1) = (event("b0", "shop/order.paid", t0), event("b1", "shop/order.paid", t0));
    let together = ingest(store, vec![one(b0, "b"), one(b1, "b")], 0).await;
    assert_eq!(together[0].run_ids, together[1].run_ids, "events of one call share the batch: {together:?}");
    let b = get(store, &together[0].run_ids[0]).await;
    assert_eq!(b.input["events"].as_array().map(Vec::len), Some(2), "{}", b.input);

    let taken = super::claim(store, "w1", t0 + 20 * SEC, &[("digest", 10)]).await;
    assert_eq!(taken.runs.len(), 3, "three batches: {:?}", ids(&taken.runs));
    let late = ingest(store, vec![one(event("b2", "shop/order.paid", t0 + 21 * SEC), "b")], 0).await;
    assert!(!ids(&taken.runs).contains(&late[0].run_ids[0]), "a started batch takes no more events");
}
