//! Enqueue, get, list and idempotency.

use super::{SEC, claim, enqueue, enqueue_at, get, ids, new_run};
use crate::{Enqueued, InputEq, ListFilter, Store, StoreError};
use plinth_core::ids::new_run_id;
use plinth_core::timefmt::now_micros;
use plinth_core::{NewRun, RunStatus};
use serde_json::json;

/// What enqueue creates is what get returns: input kept, queued, attempt 0.
pub async fn enqueue_and_get_round_trip(store: &dyn Store) {
    let t0 = now_micros();
    let new = NewRun {
        input: json!({ "text": "héllo ✓", "nested": { "list": [1, 2, 3], "flag": true, "none": null }, "n": -42 }),
        priority: 7,
        max_attempts: 5,
        correlation_id: "corr-round-trip".to_string(),
        not_before: t0 + 5 * SEC,
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string()),
        tracestate: Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE".to_string()),
        ..new_run("echo", t0)
    };
    let created = enqueue(store, new.clone()).await;
    assert_eq!(created.run_id, new.run_id, "enqueue must keep the run id");
    assert_eq!(created.function, "echo");
    assert_eq!(created.status, RunStatus::Queued, "a new run is queued");
    assert_eq!(created.attempt, 0, "a new run has made no attempt");
    assert_eq!(created.max_attempts, 5);
    assert_eq!(created.priority, 7);
    assert_eq!(created.input, new.input, "enqueue must keep the input");
    assert_eq!(created.created_at, t0);
    assert_eq!(created.next_attempt_at, Some(t0 + 5 * SEC), "a queued run shows when it is due");
    assert_eq!(created.correlation_id, "corr-round-trip");
    assert_eq!(created.traceparent, new.traceparent, "enqueue must keep the trace");
    assert_eq!(created.tracestate, new.tracestate, "and its vendors' state");
    assert!(created.output.is_none() && created.error.is_none(), "a new run has no output nor error: {created:?}");
    assert!(created.started_at.is_none() && created.finished_at.is_none(), "a new run has not started: {created:?}");
    assert!(!created.cancel_requested && created.attempts.is_none());

    let fetched = get(store, &new.run_id).await;
    assert_eq!(fetched, created, "get must return what enqueue created");
    let with = store.get(&new.run_id, true).await.expect("get with attempts").expect("the run exists");
    assert_eq!(with.attempts, Some(Vec::new()), "a run never claimed has an empty attempt list");
    let untraced = enqueue(store, new_run("echo", t0)).await;
    let untraced = get(store, &untraced.run_id).await;
    assert_eq!((untraced.traceparent, untraced.tracestate), (None, None), "a run accepted without a trace has none");
}

/// Extreme but valid values survive the round trip.
pub async fn enqueue_keeps_boundary_values(store: &dyn Store) {
    let t0 = now_micros();
    let big = "x".repeat(256 * 1024);
    let cases = [
        NewRun { input: serde_json::Value::Null, priority: i32::MAX, max_attempts: 1, ..new_run("edge", t0) },
        NewRun { input: json!({}), priority: i32::MIN, max_attempts: 1000, ..new_run("edge", t0) },
        NewRun { input: json!([]), not_before: 0, created_at: 0, ..new_run("edge", t0) },
        NewRun { input: json!({ "big": big }), correlation_id: String::new(), ..new_run("edge", t0) },
        NewRun { input: json!("a \"quoted\" line\nwith a newline, a tab\t and a \\ backslash"), ..new_run("edge", t0) },
    ];
    for new in cases {
        let created = enqueue(store, new.clone()).await;
        let fetched = get(store, &new.run_id).await;
        assert_eq!(fetched, created, "round trip of a boundary run must keep it");
        assert_eq!(fetched.input, new.input, "input must be kept exactly");
        assert_eq!(fetched.priority, new.priority);
        assert_eq!(fetched.max_attempts, new.max_attempts);
        assert_eq!(fetched.created_at, new.created_at);
        assert_eq!(fetched.correlation_id, new.correlation_id);
    }
}

/// A second run with an id already taken is refused and changes nothing.
pub async fn enqueue_refuses_a_duplicate_run_id(store: &dyn Store) {
    let t0 = now_micros();
    let first = enqueue_at(store, "echo", t0).await;
    let dup = NewRun { run_id: first.run_id.clone(), input: json!({ "other": true }), ..new_run("resize", t0 + SEC) };
    let result = store.enqueue(dup).await;
    assert!(result.is_err(), "a duplicate run id must be refused, got {result:?}");
    assert_eq!(get(store, &first.run_id).await, first, "a refused duplicate must not change the first run");
    let all = store.list(ListFilter { limit: 10, ..ListFilter::default() }).await.expect("list");
    assert_eq!(ids(&all.runs), vec![first.run_id], "a refused duplicate must not add a run");
}

/// Unknown ids, even malformed ones, are simply absent.
pub async fn get_of_unknown_run_is_none(store: &dyn Store) {
    let known = enqueue_at(store, "echo", now_micros()).await;
    assert!(store.get(&known.run_id, false).await.expect("get").is_some(), "the known run is found");
    for id in [
        new_run_id(),
        String::new(),
        "not-a-ulid".to_string(),
        known.run_id.to_ascii_lowercase(),
        format!("{}%", &known.run_id[..10]),
    ] {
        for with_attempts in [false, true] {
            let found = store.get(&id, with_attempts).await;
            assert!(matches!(found, Ok(None)), "get of unknown id {id:?} (attempts {with_attempts}) must be None, got {found:?}");
        }
    }
}

async fn listed(store: &dyn Store, filter: ListFilter) -> Vec<String> {
    let page = store.list(filter.clone()).await.unwrap_or_else(|e| panic!("list {filter:?} failed: {e}"));
    assert!(page.next_cursor.is_none(), "a list within its limit has no next page: {filter:?} gave {page:?}");
    ids(&page.runs)
}

/// Lists are newest first; each filter, and their combination, narrows them.
pub async fn list_is_newest_first_and_filters(store: &dyn Store) {
    let t0 = now_micros();
    let mut made = Vec::new();
    for (i, (function, corr)) in [("echo", "c-1"), ("echo", "c-2"), ("resize", "c-1"), ("echo", "c-2")].into_iter().enumerate() {
        let at = t0 + i64::try_from(i).expect("small") * SEC;
        let new = NewRun { correlation_id: corr.to_string(), ..new_run(function, at) };
        made.push(enqueue(store, new).await.run_id);
    }
    let [a1, a2, b1, a3] = <[String; 4]>::try_from(made).expect("four runs");
    let running = claim(store, "w1", t0 + 10 * SEC, &[("echo", 1)]).await;
    assert_eq!(ids(&running.runs), vec![a1.clone()], "the oldest due echo run is claimed first");

    let all = ListFilter { limit: 100, ..ListFilter::default() };
    let list = |f: ListFilter| listed(store, f);
    assert_eq!(list(all.clone()).await, vec![a3.clone(), b1.clone(), a2.clone(), a1.clone()], "newest first");
    let by_fn = |f: &str| ListFilter { function: Some(f.to_string()), ..all.clone() };
    assert_eq!(list(by_fn("echo")).await, vec![a3.clone(), a2.clone(), a1.clone()], "function filter");
    assert_eq!(list(by_fn("resize")).await, vec![b1.clone()], "function filter");
    assert!(list(by_fn("nope")).await.is_empty(), "unknown function lists nothing");
    let by_status = |s| ListFilter { status: Some(s), ..all.clone() };
    assert_eq!(list(by_status(RunStatus::Running)).await, vec![a1.clone()], "status filter");
    assert_eq!(list(by_status(RunStatus::Queued)).await, vec![a3.clone(), b1.clone(), a2.clone()], "status filter");
    assert!(list(by_status(RunStatus::Succeeded)).await.is_empty(), "no run succeeded");
    let by_corr = |c: &str| ListFilter { correlation_id: Some(c.to_string()), ..all.clone() };
    assert_eq!(list(by_corr("c-1")).await, vec![b1.clone(), a1.clone()], "correlation filter");
    assert!(list(by_corr("c-9")).await.is_empty(), "unknown correlation id lists nothing");
    let after = ListFilter { created_after: Some(t0 + SEC), ..all.clone() };
    assert_eq!(list(after.clone()).await, vec![a3.clone(), b1.clone(), a2.clone()], "created_after is inclusive");
    let before = ListFilter { created_before: Some(t0 + 2 * SEC), ..all.clone() };
    assert_eq!(list(before).await, vec![a2.clone(), a1.clone()], "created_before is exclusive");
    let window = ListFilter { created_before: Some(t0 + 3 * SEC), ..after };
    assert_eq!(list(window).await, vec![b1.clone(), a2.clone()], "a time window");
    let inverted = ListFilter { created_after: Some(t0 + 3 * SEC), created_before: Some(t0), ..all.clone() };
    assert!(list(inverted).await.is_empty(), "an inverted window lists nothing");
    let combined = ListFilter {
        function: Some("echo".into()),
        status: Some(RunStatus::Queued),
        correlation_id: Some("c-2".into()),
        ..all.clone()
    };
    assert_eq!(list(combined).await, vec![a3, a2], "filters combine with AND");
}

/// An input field filter matches the JSON value at its path exactly, whatever its type, and
/// combines with the other filters; a path that leads nowhere matches nothing.
pub async fn list_filters_on_an_input_field(store: &dyn Store) {
    let t0 = now_micros();
    let inputs = [
        json!({"customer": "c-42", "total": 42, "address": {"city": "Lyon"}, "items": [{"sku": "a-1"}]}),
        json!({"customer": "c-7", "total": "42", "vip": true}),
        json!({"customer": "c-42", "odd key": 1}),
        json!(["not", "an", "object"]),
    ];
    let mut made = Vec::new();
    for (i, input) in inputs.into_iter().enumerate() {
        let at = t0 + i64::try_from(i).expect("small") * SEC;
        made.push(enqueue(store, NewRun { input, ..new_run("shop", at) }).await.run_id);
    }
    let by = |field: &str, value: &str| ListFilter {
        input_eq: Some(InputEq::parse(field, value).expect("a field path")),
        limit: 100,
        ..ListFilter::default()
    };
    let list = |f: ListFilter| listed(store, f);
    assert_eq!(
        list(by("input.customer", "c-42")).await,
        vec![made[2].clone(), made[0].clone()],
        "a string, with or without `input.`"
    );
    assert_eq!(list(by("customer", "\"c-42\"")).await, vec![made[2].clone(), made[0].clone()], "a quoted string is the same");
    assert_eq!(list(by("total", "42")).await, vec![made[0].clone()], "the number 42 is not the string \"42\"");
    assert_eq!(list(by("total", "\"42\"")).await, vec![made[1].clone()], "and the reverse");
    assert_eq!(list(by("vip", "true")).await, vec![made[1].clone()], "a boolean");
    assert_eq!(list(by("address.city", "Lyon")).await, vec![made[0].clone()], "a nested field");
    assert_eq!(list(by("items.0.sku", "a-1")).await, vec![made[0].clone()], "an array index");
    assert_eq!(list(by("odd key", "1")).await, vec![made[2].clone()], "a key with a space");
    assert_eq!(list(by("1", "\"an\"")).await, vec![made[3].clone()], "an index into an array input");
    assert!(list(by("nope", "c-42")).await.is_empty(), "a field no run has matches nothing");
    assert!(list(by("customer.deeper", "x")).await.is_empty(), "a path through a string matches nothing");
    let both = ListFilter { status: Some(RunStatus::Queued), function: Some("other".into()), ..by("customer", "c-42") };
    assert!(list(both).await.is_empty(), "it combines with the other filters");
    for bad in ["", "input.", "a..b", "a.\"b", "a\\b"] {
        assert!(InputEq::parse(bad, "x").is_err(), "{bad:?} is refused");
    }
}

/// Pages through `filter` with `limit`; returns the ids and the number of pages.
async fn paginate(store: &dyn Store, filter: &ListFilter, limit: u32) -> (Vec<String>, usize) {
    let mut seen = Vec::new();
    let mut cursor = None;
    for page_no in 1..=100 {
        let f = ListFilter { limit, before_id: cursor.clone(), ..filter.clone() };
        let page = store.list(f.clone()).await.unwrap_or_else(|e| panic!("list {f:?} failed: {e}"));
        assert!(page.runs.len() <= limit as usize, "page {page_no} of limit {limit} holds {} runs", page.runs.len());
        seen.extend(ids(&page.runs));
        match page.next_cursor {
            None => return (seen, page_no),
            Some(next) => {
                assert!(!page.runs.is_empty(), "an empty page must not have a next cursor");
                assert_eq!(Some(&next), seen.last(), "the cursor is the last run of the page");
                cursor = Some(next);
            }
        }
    }
    panic!("pagination with limit {limit} did not end after 100 pages");
}

/// Cursor pagination visits every run once, newest first, for any limit.
pub async fn list_pages_through_every_run(store: &dyn Store) {
    let t0 = now_micros();
    let mut made = Vec::new();
    for i in 0..7 {
        let function = if i % 2 == 0 { "even" } else { "odd" };
        made.push(enqueue_at(store, function, t0 + i * SEC).await.run_id);
    }
    let newest_first: Vec<String> = made.iter().rev().cloned().collect();
    let all = ListFilter::default();
    for (limit, pages) in [(1, 7), (2, 4), (3, 3), (6, 2), (7, 1), (8, 1), (1000, 1)] {
        let (seen, n) = paginate(store, &all, limit).await;
        assert_eq!(seen, newest_first, "limit {limit}: every run once, newest first, no gap nor duplicate");
        assert_eq!(n, pages, "limit {limit}: number of pages");
    }
    let even = ListFilter { function: Some("even".into()), ..ListFilter::default() };
    let (seen, n) = paginate(store, &even, 2).await;
    let evens: Vec<String> =
        newest_first.iter().filter(|id| made.iter().position(|m| m == *id).is_some_and(|i| i % 2 == 0)).cloned().collect();
    assert_eq!((seen, n), (evens, 2), "pagination keeps its filter");

    let oldest = ListFilter { limit: 10, before_id: made.first().cloned(), ..ListFilter::default() };
    let page = store.list(oldest).await.expect("list before the oldest");
    assert!(page.runs.is_empty() && page.next_cursor.is_none(), "nothing is older than the oldest run: {page:?}");
    let floor = ListFilter { limit: 10, before_id: Some("00000000000000000000000000".into()), ..ListFilter::default() };
    assert!(store.list(floor).await.expect("list").runs.is_empty(), "a cursor below every id gives nothing");
    let ceiling = ListFilter { limit: 10, before_id: Some("7ZZZZZZZZZZZZZZZZZZZZZZZZZ".into()), ..ListFilter::default() };
    assert_eq!(ids(&store.list(ceiling).await.expect("list").runs), newest_first, "a cursor above every id gives all");
}

/// The same key and request replays; the same key with another request is refused.
pub async fn idempotency_replays_and_refuses_mismatches(store: &dyn Store) {
    let t0 = now_micros();
    let keyed = |key: &str, hash: Option<&str>| NewRun {
        idempotency_key: Some(key.to_string()),
        request_hash: hash.map(str::to_string),
        ..new_run("echo", t0)
    };
    let first = enqueue(store, keyed("k-1", Some("h-1"))).await;
    assert_eq!(first.idempotency_key.as_deref(), Some("k-1"), "the run keeps its key");

    let again = keyed("k-1", Some("h-1"));
    let again_id = again.run_id.clone();
    match store.enqueue(again).await {
        Ok(Enqueued::Replayed(run)) => assert_eq!(run, first, "a replay returns the first run"),
        other => panic!("same key and request must replay run {}, got {other:?}", first.run_id),
    }
    assert!(store.get(&again_id, false).await.expect("get").is_none(), "a replay must not create its own run");

    for hash in [Some("h-2"), None] {
        match store.enqueue(keyed("k-1", hash)).await {
            Err(StoreError::IdempotencyMismatch { run_id }) => {
                assert_eq!(run_id, first.run_id, "the mismatch names the key's run")
            }
            other => panic!("same key with request hash {hash:?} must be refused, got {other:?}"),
        }
    }
    let other_key = enqueue(store, keyed("k-2", Some("h-1"))).await;
    assert_ne!(other_key.run_id, first.run_id, "another key makes another run");
    let unkeyed = NewRun { request_hash: Some("h-1".into()), ..new_run("echo", t0) };
    enqueue(store, unkeyed.clone()).await;
    enqueue(store, NewRun { run_id: new_run_id(), ..unkeyed }).await;
    let page = store.list(ListFilter { limit: 100, ..ListFilter::default() }).await.expect("list");
    assert_eq!(page.runs.len(), 4, "k-1 once, k-2 once, two unkeyed runs: {page:?}");

    let cancelled = store.cancel(&first.run_id, t0 + SEC).await.expect("cancel");
    assert!(matches!(cancelled, crate::CancelOutcome::Cancelled(_)), "cancel of a queued run: {cancelled:?}");
    match store.enqueue(keyed("k-1", Some("h-1"))).await {
        Ok(Enqueued::Replayed(run)) => {
            assert_eq!(
                (run.run_id.as_str(), run.status),
                (first.run_id.as_str(), RunStatus::Cancelled),
                "a replay shows the run as it is now"
            );
        }
        other => panic!("a replay after the run finished must still replay, got {other:?}"),
    }
}
