//! The store conformance suite: the behaviour every [`Store`] backend must show.
//!
//! Each case is a `pub async fn(&dyn Store)` that panics, saying what broke, when the store
//! misbehaves. Every case expects a fresh, empty store of its own. A backend's tests call the
//! cases one by one, or all of them through [`run_all`]. The cases use only the [`Store`]
//! trait and the domain types of `plinth_core`, so any backend can be held to them.
//!
//! Times given to the store are made up around the clock (`t0` plus some seconds): the store
//! must go by the `now` it is told, never by its own clock.

mod admission;
mod claims;
#[cfg(test)]
pub(crate) mod copies;
mod events;
mod expiry;
mod flow;
mod lane_start;
#[cfg(test)]
pub(crate) mod lanes;
mod leases;
mod overview;
mod queue;
mod resume;
mod runs;
mod start;
mod steps;
mod upkeep;

pub use admission::*;
pub use claims::*;
pub use events::*;
pub use expiry::*;
pub use flow::*;
pub use lane_start::*;
pub use leases::*;
pub use overview::*;
pub use queue::*;
pub use resume::*;
pub use runs::*;
pub use start::*;
pub use steps::*;
pub use upkeep::*;

use crate::{ClaimRequest, Claimed, Enqueued, FinishRequest, Store};
use plinth_core::ids::new_run_id;
use plinth_core::{Finish, NewRun, Run};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// What a case returns when called through [`Case`].
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A conformance case, callable through a pointer.
pub type Case = for<'a> fn(&'a dyn Store) -> CaseFuture<'a>;

/// Calls `$m![case, ...]` with the name of every case: the one list that [`CASES`] and each
/// backend's test module (one `#[tokio::test]` per case) are made from, so none can miss a case.
macro_rules! with_every_case {
    ($m:ident) => {
        $m![
            enqueue_and_get_round_trip,
            enqueue_keeps_boundary_values,
            enqueue_refuses_a_duplicate_run_id,
            get_of_unknown_run_is_none,
            list_is_newest_first_and_filters,
            list_pages_through_every_run,
            list_filters_on_an_input_field,
            idempotency_replays_and_refuses_mismatches,
            claim_takes_only_due_runs,
            claim_respects_counts_and_priority,
            claims_never_share_a_run,
            finish_is_fenced_by_owner_and_attempt,
            finish_retry_requeues_then_failed_is_terminal,
            finish_released_does_not_count_the_attempt,
            finish_cancelled_is_terminal,
            attempts_are_recorded,
            heartbeat_extends_leases_and_reports,
            a_heartbeat_of_many_runs_renews_each_and_reports_each,
            cancel_of_a_queued_run,
            cancel_of_a_running_run,
            cancel_of_finished_and_unknown_runs,
            notifier_wakes_terminal_waiters_and_workers,
            rescue_takes_back_expired_leases,
            adopt_takes_in_its_owners_stale_leases_only,
            prune_deletes_only_old_finished_runs,
            idempotency_keys_expire_after_their_window,
            enqueue_refuses_beyond_max_queued,
            logs_read_back_in_order,
            queue_depth_counts_queued_runs,
            queue_stats_split_due_and_scheduled_runs,
            open_runs_stay_counted_through_every_change,
            queue_stats_stop_counting_at_the_bound,
            check_answers,
            ingest_stores_events_with_their_runs,
            ingest_deduplicates_within_the_window,
            events_list_newest_first_and_page,
            ingest_skips_a_full_queue,
            prune_events_forgets_ids_then_deletes,
            ticks_fire_once,
            ingest_stores_an_id_repeated_in_one_call_once,
            steps_are_fenced_and_read_in_order,
            a_sleep_waits_then_its_timer_wakes_the_run,
            due_sleeps_keep_the_queues_order,
            an_event_wakes_the_waits_it_matches,
            an_event_already_stored_ends_a_new_wait,
            keyed_waits_wake_only_their_key,
            an_event_ending_a_wait_wakes_the_dispatcher,
            an_invoked_run_wakes_its_parent,
            cancel_of_a_waiting_run_cancels_its_child,
            a_step_retry_requeues_and_a_rerun_keeps_steps,
            lanes_hold_their_limit_across_claims,
            full_lanes_give_nothing_and_let_the_next_lanes_through,
            lanes_are_served_round_robin,
            a_lane_keeps_priority_and_due_times,
            lanes_report_their_load,
            lane_room_counts_each_lane_up_to_the_cap,
            runs_ahead_are_counted_up_to_a_bound,
            lanes_are_adopted_and_forgotten,
            a_throttle_spaces_the_starts_of_a_lane,
            a_rate_limit_refuses_past_its_window,
            debounce_feeds_the_queued_run_of_its_key,
            a_singleton_key_holds_one_unfinished_run,
            timeouts_cancel_runs_past_their_deadlines,
            cancel_on_events_cancel_the_runs_they_match,
            a_batch_gathers_the_events_of_its_key,
            roll_up_counts_ended_runs_once,
            roll_up_looks_back_an_hour_and_forgets_old_minutes,
            nodes_beat_and_are_forgotten,
            a_run_started_at_once_is_stored_leased,
            a_started_run_whose_node_died_is_rescued,
            a_start_is_ignored_where_the_queue_decides,
            a_keyed_run_starts_at_once_and_its_replay_starts_nothing,
            a_lane_starts_its_runs_as_they_are_stored_up_to_its_limit,
            a_lane_start_looks_only_at_its_own_lane,
            runs_sent_together_start_no_more_than_the_limit,
            a_claim_says_whether_lanes_held_due_runs,
            an_event_resumes_the_run_it_wakes_where_it_arrives,
            a_woken_run_with_a_lane_or_no_slot_is_queued,
            only_a_wait_ended_asks_for_a_slot,
        ];
    };
}
#[cfg(test)]
pub(crate) use with_every_case;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        /// Every case, with its name.
        pub const CASES: &[(&str, Case)] = &[$((stringify!($name), |store| Box::pin($name(store)))),*];
    };
}

with_every_case!(cases);

/// Runs every case, each against a fresh store from `make`. `make` returns the store with a
/// guard (a temporary folder, a scratch schema) that is dropped once the case is over.
pub async fn run_all<F, Fut, G>(mut make: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = (G, Arc<dyn Store>)>,
{
    for (name, case) in CASES {
        eprintln!("store conformance: {name}");
        let (guard, store) = make().await;
        case(store.as_ref()).await;
        drop(store);
        drop(guard);
    }
}

/// One second, in the store's microseconds.
const SEC: i64 = 1_000_000;
/// How long the leases the cases take last.
const LEASE: i64 = 30 * SEC;
/// How long a case waits for a wake-up that must come.
const WAIT: Duration = Duration::from_secs(5);
/// How long a case waits to be sure a wake-up does not come.
const QUIET: Duration = Duration::from_millis(200);

/// A run of `function`, created and due at `at`.
pub(crate) fn new_run(function: &str, at: i64) -> NewRun {
    NewRun {
        flow_key: None,
        lane_limit: None,
        rate: None,
        debounce: None,
        singleton: None,
        batch: None,
        expiry: plinth_core::flow::Expiry::default(),
        traceparent: None,
        tracestate: None,
        start: None,
        run_id: new_run_id(),
        function: function.to_string(),
        input: serde_json::json!({ "n": 1 }),
        max_attempts: 3,
        priority: 0,
        created_at: at,
        not_before: at,
        correlation_id: "corr".to_string(),
        idempotency_key: None,
        request_hash: None,
        max_queued: None,
        trigger: plinth_core::Trigger::Api,
    }
}

/// Enqueues a run that must be new.
async fn enqueue(store: &dyn Store, run: NewRun) -> Run {
    let id = run.run_id.clone();
    match store.enqueue(run).await {
        Ok(Enqueued::Created(run)) => run,
        other => panic!("enqueue of new run {id} should create it, got {other:?}"),
    }
}

/// Enqueues a run of `function` due at `at`.
async fn enqueue_at(store: &dyn Store, function: &str, at: i64) -> Run {
    enqueue(store, new_run(function, at)).await
}

/// A run that must exist.
async fn get(store: &dyn Store, id: &str) -> Run {
    match store.get(id, false).await {
        Ok(Some(run)) => run,
        other => panic!("get of run {id} should find it, got {other:?}"),
    }
}

/// Claims for `owner` at `now`, with a lease of [`LEASE`].
async fn claim(store: &dyn Store, owner: &str, now: i64, wants: &[(&str, u32)]) -> Claimed {
    let req = ClaimRequest {
        owner: owner.to_string(),
        now,
        lease_until: now + LEASE,
        wants: wants.iter().map(|(f, n)| ((*f).to_string(), *n)).collect(),
        limit: u32::MAX,
        limits: Default::default(),
    };
    match store.claim(req).await {
        Ok(claimed) => claimed,
        Err(e) => panic!("claim by {owner} at {now} for {wants:?} failed: {e}"),
    }
}

/// Claims exactly one run of `function`.
async fn claim_one(store: &dyn Store, owner: &str, function: &str, now: i64) -> Run {
    let claimed = claim(store, owner, now, &[(function, 1)]).await;
    let mut runs = claimed.runs;
    assert_eq!(runs.len(), 1, "claim of one `{function}` run by {owner} at {now} should take one: {runs:?}");
    runs.remove(0)
}

/// Ends `attempt` of `run_id` as `owner`; returns what the store answered.
async fn finish(store: &dyn Store, run_id: &str, owner: &str, attempt: u32, finish: Finish, now: i64) -> bool {
    finish_took(store, run_id, owner, attempt, finish, now, Duration::from_millis(10)).await
}

/// [`finish`] with a duration.
async fn finish_took(
    store: &dyn Store,
    run_id: &str,
    owner: &str,
    attempt: u32,
    finish: Finish,
    now: i64,
    duration: Duration,
) -> bool {
    let req = FinishRequest { run_id: run_id.to_string(), owner: owner.to_string(), attempt, finish, now, duration };
    match store.finish(req.clone()).await {
        Ok(done) => done,
        Err(e) => panic!("finish {req:?} failed: {e}"),
    }
}

/// The ids of `runs`, in order.
fn ids(runs: &[Run]) -> Vec<String> {
    runs.iter().map(|r| r.run_id.clone()).collect()
}

/// `ids` sorted, to compare sets.
fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// Waits for a terminal wake-up that must come.
async fn fires(rx: &mut oneshot::Receiver<()>, what: &str) {
    match tokio::time::timeout(WAIT, rx).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("{what}: the waiter was dropped without being woken"),
        Err(_) => panic!("{what}: no wake-up within {WAIT:?}"),
    }
}

/// Makes sure a terminal wake-up does not come.
async fn stays_quiet(rx: &mut oneshot::Receiver<()>, what: &str) {
    if let Ok(woken) = tokio::time::timeout(QUIET, rx).await {
        panic!("{what}: the waiter was woken ({woken:?}) but the run is not terminal");
    }
}
