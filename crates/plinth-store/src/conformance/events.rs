//! Cases for events (ingest, dedup, reads, pruning), the run filters they add, and schedule
//! ticks.

use super::{SEC, enqueue_at, get, ids, new_run};
use crate::{EventFilter, ListFilter, NewEvent, Skipped, Store};
use plinth_core::{Event, NewRun, RunStatus, Trigger};
use serde_json::json;

fn event(id: &str, name: &str, at: i64) -> Event {
    Event { id: id.to_string(), name: name.to_string(), data: json!({"id": id}), ts: at / 1000, received_at: at }
}

/// A run of `function` that `event` starts.
fn started(function: &str, event: &Event) -> NewRun {
    NewRun {
        input: event.as_input(),
        trigger: Trigger::Event { event_id: event.id.clone() },
        ..new_run(function, event.received_at)
    }
}

async fn ingest(store: &dyn Store, events: Vec<NewEvent>, dedup_after: i64) -> Vec<crate::Ingested> {
    match store.ingest(events, dedup_after).await {
        Ok(done) => done,
        Err(e) => panic!("ingest failed: {e}"),
    }
}

/// Events are stored with their runs; the runs carry the trigger and read back by event id.
pub async fn ingest_stores_events_with_their_runs(store: &dyn Store) {
    let t0 = plinth_core::timefmt::now_micros();
    let paid = event("e-paid", "shop/order.paid", t0);
    let quiet = event("e-quiet", "shop/nobody.listens", t0);
    let runs = vec![started("receipt", &paid), started("ledger", &paid)];
    let run_ids = ids(&runs.iter().cloned().map(NewRun::into_queued).collect::<Vec<_>>());
    let skipped = vec![Skipped { function: "audit".into(), reason: "`event.data.x > 1` was false".into() }];
    let done = ingest(
        store,
        vec![
            NewEvent { event: paid.clone(), runs, skipped: skipped.clone() },
            NewEvent { event: quiet.clone(), runs: vec![], skipped: vec![] },
        ],
        t0 - 3600 * SEC,
    )
    .await;
    assert_eq!(done.len(), 2);
    assert_eq!((done[0].event_id.as_str(), done[0].duplicate), ("e-paid", false));
    assert_eq!(done[0].run_ids, run_ids);
    assert!(done[1].run_ids.is_empty() && !done[1].duplicate);
    let stored = store.event("e-paid").await.expect("read").expect("stored");
    assert_eq!(stored.event, paid);
    assert_eq!(stored.run_ids, run_ids);
    assert_eq!(stored.skipped, skipped);
    let run = get(store, &run_ids[0]).await;
    assert_eq!(run.trigger, Trigger::Event { event_id: "e-paid".into() });
    assert_eq!(run.input, paid.as_input());
    assert_eq!(run.status, RunStatus::Queued);
    let by_event =
        store.list(ListFilter { event_id: Some("e-paid".into()), limit: 10, ..ListFilter::default() }).await.expect("list");
    assert_eq!(by_event.runs.len(), 2);
    enqueue_at(store, "receipt", t0).await;
    let by_trigger = |t: &str| ListFilter { trigger: Some(t.into()), limit: 10, ..ListFilter::default() };
    assert_eq!(store.list(by_trigger("event")).await.expect("list").runs.len(), 2);
    assert_eq!(store.list(by_trigger("api")).await.expect("list").runs.len(), 1);
    assert!(store.list(by_trigger("cron")).await.expect("list").runs.is_empty());
    assert!(store.event("e-unknown").await.expect("read").is_none());
}

/// An id received within the window answers the first event's ids and stores nothing; after
/// the window it is stored again.
pub async fn ingest_deduplicates_within_the_window(store: &dyn Store) {
    let t0 = plinth_core::timefmt::now_micros();
    let first = event("order-1", "shop/order.paid", t0);
    let run = started("receipt", &first);
    let first_run = run.run_id.clone();
    ingest(store, vec![NewEvent { event: first.clone(), runs: vec![run], skipped: vec![] }], t0 - 3600 * SEC).await;
    let again = event("order-1", "shop/order.paid", t0 + SEC);
    let repeat = ingest(
        store,
        vec![NewEvent { event: again.clone(), runs: vec![started("receipt", &again)], skipped: vec![] }],
        t0 - 3600 * SEC,
    )
    .await;
    assert!(repeat[0].duplicate, "a repeat within the window is a duplicate");
    assert_eq!(repeat[0].run_ids, vec![first_run.clone()], "it answers the first one's runs");
    let page = store.list(ListFilter { limit: 10, ..ListFilter::default() }).await.expect("list");
    assert_eq!(page.runs.len(), 1, "the repeat started nothing");
    let events = store.events(EventFilter { limit: 10, ..EventFilter::default() }).await.expect("events");
    assert_eq!(events.events.len(), 1, "the repeat was not stored");
    // The window now starts after the first one was received: the id is new again.
    let later = event("order-1", "shop/order.paid", t0 + 2 * SEC);
    let fresh = ingest(store, vec![NewEvent { event: later, runs: vec![], skipped: vec![] }], t0 + SEC).await;
    assert!(!fresh[0].duplicate, "past the window the id is stored again");
    assert!(fresh[0].run_ids.is_empty());
    let newest = store.event("order-1").await.expect("read").expect("stored");
    assert_eq!(newest.event.received_at, t0 + 2 * SEC, "the id names its newest event");
}

/// Events list newest first, filter by name and time, and page through all of them.
pub async fn events_list_newest_first_and_page(store: &dyn Store) {
    let t0 = plinth_core::timefmt::now_micros();
    let mut batch = Vec::new();
    for i in 0..7 {
        let name = if i % 2 == 0 { "a/even" } else { "a/odd" };
        batch.push(NewEvent { event: event(&format!("e{i}"), name, t0 + i * SEC), runs: vec![], skipped: vec![] });
    }
    ingest(store, batch, t0 - SEC).await;
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.events(EventFilter { cursor, limit: 3, ..EventFilter::default() }).await.expect("events");
        seen.extend(page.events.iter().map(|e| e.event.id.clone()));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["e6", "e5", "e4", "e3", "e2", "e1", "e0"]);
    let even =
        store.events(EventFilter { name: Some("a/even".into()), limit: 10, ..EventFilter::default() }).await.expect("events");
    assert_eq!(even.events.len(), 4);
    let recent =
        store.events(EventFilter { since: Some(t0 + 5 * SEC), limit: 10, ..EventFilter::default() }).await.expect("events");
    assert_eq!(recent.events.iter().map(|e| e.event.id.as_str()).collect::<Vec<_>>(), ["e6", "e5"]);
    let none =
        store.events(EventFilter { name: Some("a/none".into()), limit: 10, ..EventFilter::default() }).await.expect("events");
    assert!(none.events.is_empty() && none.next_cursor.is_none());
}

/// A function whose queue is full gets no run from an event; the event says why.
pub async fn ingest_skips_a_full_queue(store: &dyn Store) {
    let t0 = plinth_core::timefmt::now_micros();
    let e1 = event("q1", "a/b", t0);
    let e2 = event("q2", "a/b", t0);
    let capped = |e: &Event| NewRun { max_queued: Some(1), ..started("capped", e) };
    let done = ingest(
        store,
        vec![
            NewEvent { event: e1.clone(), runs: vec![capped(&e1)], skipped: vec![] },
            NewEvent { event: e2.clone(), runs: vec![capped(&e2)], skipped: vec![] },
        ],
        t0 - SEC,
    )
    .await;
    assert_eq!(done[0].run_ids.len(), 1);
    assert!(done[1].run_ids.is_empty(), "the queue held one already");
    let second = store.event("q2").await.expect("read").expect("stored");
    assert_eq!(second.skipped.len(), 1);
    assert!(second.skipped[0].reason.contains("queue is full"), "{:?}", second.skipped);
}

/// Pruning forgets old ids first, then deletes old events.
pub async fn prune_events_forgets_ids_then_deletes(store: &dyn Store) {
    let t0 = plinth_core::timefmt::now_micros();
    let old = event("old", "a/b", t0 - 100 * SEC);
    let new = event("new", "a/b", t0);
    ingest(
        store,
        vec![NewEvent { event: old, runs: vec![], skipped: vec![] }, NewEvent { event: new, runs: vec![], skipped: vec![] }],
        t0 - 1000 * SEC,
    )
    .await;
    let deleted = store.prune_events(t0 - 50 * SEC, t0 - 50 * SEC, 100).await.expect("prune");
    assert_eq!(deleted, 1);
    assert!(store.event("old").await.expect("read").is_none());
    assert!(store.event("new").await.expect("read").is_some());
    assert_eq!(store.prune_events(t0 - 50 * SEC, t0 - 50 * SEC, 100).await.expect("prune"), 0, "nothing left to prune");
}

/// A tick fires once: a repeat of it, or an earlier tick, stores nothing.
pub async fn ticks_fire_once(store: &dyn Store) {
    let t0 = plinth_core::timefmt::now_micros();
    let tick_run = |tick: i64| NewRun {
        input: json!({"scheduled_at": plinth_core::timefmt::rfc3339(tick)}),
        trigger: Trigger::Cron { scheduled_at: plinth_core::timefmt::rfc3339(tick) },
        ..new_run("nightly", t0)
    };
    let first = store.fire_tick("nightly", t0, tick_run(t0)).await.expect("fire").expect("first fire");
    assert_eq!(first.trigger.kind(), "cron");
    assert!(store.fire_tick("nightly", t0, tick_run(t0)).await.expect("fire").is_none(), "the same tick again");
    assert!(store.fire_tick("nightly", t0 - SEC, tick_run(t0 - SEC)).await.expect("fire").is_none(), "an earlier tick");
    let next = store.fire_tick("nightly", t0 + SEC, tick_run(t0 + SEC)).await.expect("fire").expect("next tick");
    store.fire_tick("hourly", t0, tick_run(t0)).await.expect("fire").expect("another function");
    let states = store.schedules().await.expect("schedules");
    assert_eq!(states.len(), 2);
    let nightly = states.iter().find(|s| s.function == "nightly").expect("nightly");
    assert_eq!((nightly.last_tick, nightly.last_run_id.as_str()), (t0 + SEC, next.run_id.as_str()));
    let runs = store.list(ListFilter { trigger: Some("cron".into()), limit: 10, ..ListFilter::default() }).await.expect("list");
    assert_eq!(runs.runs.len(), 3);
}

/// An id twice in one call is stored once; the repeat answers the first one's ids.
pub async fn ingest_stores_an_id_repeated_in_one_call_once(store: &dyn Store) {
    let t0 = plinth_core::timefmt::now_micros();
    let a = event("twice", "a/b", t0);
    let done = ingest(
        store,
        vec![
            NewEvent { event: a.clone(), runs: vec![started("f", &a)], skipped: vec![] },
            NewEvent { event: a.clone(), runs: vec![started("f", &a)], skipped: vec![] },
        ],
        t0 - SEC,
    )
    .await;
    assert!(!done[0].duplicate && done[1].duplicate, "{done:?}");
    assert_eq!(done[0].run_ids, done[1].run_ids);
    let runs = store.list(ListFilter { limit: 10, ..ListFilter::default() }).await.expect("list");
    assert_eq!(runs.runs.len(), 1, "one run, not two");
}

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
            NewEvent { event: e1.clone(), runs: vec![by_event(&e1)], skipped: vec![] },
            NewEvent { event: e2.clone(), runs: vec![by_event(&e2)], skipped: vec![] },
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
            NewEvent { event: e1.clone(), runs: vec![by_event(&e1)], skipped: vec![] },
            NewEvent { event: e2.clone(), runs: vec![by_event(&e2)], skipped: vec![] },
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
    let later = ingest(store, vec![NewEvent { event: e3.clone(), runs: vec![by_event(&e3)], skipped: vec![] }], t0 - SEC).await;
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
            NewEvent { event: e1.clone(), runs: vec![by_event(&e1, "c-2", SingletonMode::Cancel)], skipped: vec![] },
            NewEvent { event: e2.clone(), runs: vec![by_event(&e2, "c-2", SingletonMode::Cancel)], skipped: vec![] },
        ],
        t0 - SEC,
    )
    .await;
    assert_eq!(get(store, &done[0].run_ids[0]).await.status, RunStatus::Cancelled, "the earlier event's run is cancelled");
    assert_eq!(get(store, &done[1].run_ids[0]).await.status, RunStatus::Queued);
    let e3 = event("s3", "a/s", t0 + 7 * SEC);
    let later = ingest(
        store,
        vec![NewEvent { event: e3.clone(), runs: vec![by_event(&e3, "c-2", SingletonMode::Cancel)], skipped: vec![] }],
        t0 - SEC,
    )
    .await;
    assert_eq!(get(store, &done[1].run_ids[0]).await.status, RunStatus::Cancelled, "a later call cancels the stored one");
    assert_eq!(get(store, &later[0].run_ids[0]).await.status, RunStatus::Queued);

    let (e4, e5) = (event("s4", "a/s", t0 + 8 * SEC), event("s5", "a/s", t0 + 9 * SEC));
    let skipping = ingest(
        store,
        vec![
            NewEvent { event: e4.clone(), runs: vec![by_event(&e4, "k-1", SingletonMode::Skip)], skipped: vec![] },
            NewEvent { event: e5.clone(), runs: vec![by_event(&e5, "k-1", SingletonMode::Skip)], skipped: vec![] },
        ],
        t0 - SEC,
    )
    .await;
    assert_eq!(skipping[0].run_ids.len(), 1);
    assert!(skipping[1].run_ids.is_empty(), "the second event of one call is skipped");
    let shown = store.event("s5").await.expect("read").expect("stored");
    assert!(shown.skipped[0].reason.contains("singleton"), "{:?}", shown.skipped);
}
