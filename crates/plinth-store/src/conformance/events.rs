//! Cases for events (ingest, dedup, reads, pruning), the run filters they add, and schedule
//! ticks.

use super::{SEC, enqueue_at, get, ids, new_run};
use crate::{EventFilter, ListFilter, NewEvent, Skipped, Store};
use plinth_core::{Event, NewRun, RunStatus, Trigger};
use serde_json::json;

pub(super) fn event(id: &str, name: &str, at: i64) -> Event {
    Event { id: id.to_string(), name: name.to_string(), data: json!({"id": id}), ts: at / 1000, received_at: at }
}

/// A run of `function` that `event` starts.
pub(super) fn started(function: &str, event: &Event) -> NewRun {
    NewRun {
        input: event.as_input(),
        trigger: Trigger::Event { event_id: event.id.clone() },
        ..new_run(function, event.received_at)
    }
}

pub(super) async fn ingest(store: &dyn Store, events: Vec<NewEvent>, dedup_after: i64) -> Vec<crate::Ingested> {
    match store.ingest(events, dedup_after, None).await {
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
            NewEvent { event: paid.clone(), runs, skipped: skipped.clone(), cancels: vec![] },
            NewEvent { event: quiet.clone(), runs: vec![], skipped: vec![], cancels: vec![] },
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
    ingest(store, vec![NewEvent { event: first.clone(), runs: vec![run], skipped: vec![], cancels: vec![] }], t0 - 3600 * SEC)
        .await;
    let again = event("order-1", "shop/order.paid", t0 + SEC);
    let repeat = ingest(
        store,
        vec![NewEvent { event: again.clone(), runs: vec![started("receipt", &again)], skipped: vec![], cancels: vec![] }],
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
    let fresh = ingest(store, vec![NewEvent { event: later, runs: vec![], skipped: vec![], cancels: vec![] }], t0 + SEC).await;
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
        batch.push(NewEvent {
            event: event(&format!("e{i}"), name, t0 + i * SEC),
            runs: vec![],
            skipped: vec![],
            cancels: vec![],
        });
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
            NewEvent { event: e1.clone(), runs: vec![capped(&e1)], skipped: vec![], cancels: vec![] },
            NewEvent { event: e2.clone(), runs: vec![capped(&e2)], skipped: vec![], cancels: vec![] },
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
        vec![
            NewEvent { event: old, runs: vec![], skipped: vec![], cancels: vec![] },
            NewEvent { event: new, runs: vec![], skipped: vec![], cancels: vec![] },
        ],
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
            NewEvent { event: a.clone(), runs: vec![started("f", &a)], skipped: vec![], cancels: vec![] },
            NewEvent { event: a.clone(), runs: vec![started("f", &a)], skipped: vec![], cancels: vec![] },
        ],
        t0 - SEC,
    )
    .await;
    assert!(!done[0].duplicate && done[1].duplicate, "{done:?}");
    assert_eq!(done[0].run_ids, done[1].run_ids);
    let runs = store.list(ListFilter { limit: 10, ..ListFilter::default() }).await.expect("list");
    assert_eq!(runs.runs.len(), 1, "one run, not two");
}
