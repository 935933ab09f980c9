//! Flow control: concurrency lanes, their limits in the claim, round-robin between lanes, and
//! what a queued run's lane says about why it waits.

use super::{SEC, enqueue, finish, get, ids, new_run};
use crate::{ClaimRequest, Claimed, FlowLimit, FlowUpkeep, Lane, Store};
use plinth_core::flow::Gcra;
use plinth_core::timefmt::now_micros;
use plinth_core::{Finish, NewRun, Run, RunStatus};
use serde_json::json;
use std::collections::HashMap;

/// A run of `function` in lane `key`, created and due at `at`.
fn in_lane(function: &str, key: &str, at: i64) -> NewRun {
    NewRun { flow_key: Some(key.to_string()), input: json!({ "key": key }), ..new_run(function, at) }
}

/// Claims up to `n` runs of `function`, whose lanes hold at most `limit` running runs each.
async fn claim_limited(store: &dyn Store, owner: &str, now: i64, function: &str, n: u32, limit: u32) -> Claimed {
    claim_with(store, owner, now, function, n, FlowLimit { concurrency: Some(limit), throttle: None }).await
}

/// Claims up to `n` runs of `function` under `rules`.
async fn claim_with(store: &dyn Store, owner: &str, now: i64, function: &str, n: u32, rules: FlowLimit) -> Claimed {
    let req = ClaimRequest {
        owner: owner.to_string(),
        now,
        lease_until: now + 30 * SEC,
        wants: vec![(function.to_string(), n)],
        limit: u32::MAX,
        limits: std::sync::Arc::new(HashMap::from([(function.to_string(), rules)])),
    };
    match store.claim(req).await {
        Ok(claimed) => claimed,
        Err(e) => panic!("claim of {n} `{function}` runs by {owner} under {rules:?} failed: {e}"),
    }
}

/// How many of `runs` are in each lane.
fn per_lane(runs: &[Run]) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for run in runs {
        *out.entry(run.flow_key.clone().unwrap_or_default()).or_default() += 1;
    }
    out
}

/// No claim puts more than the limit of one lane to work, whoever claims; a finished run makes
/// room for exactly one more.
pub async fn lanes_hold_their_limit_across_claims(store: &dyn Store) {
    let t0 = now_micros();
    for (key, n) in [("a", 5), ("b", 5), ("c", 1)] {
        for i in 0..n {
            enqueue(store, in_lane("lim", key, t0 + i)).await;
        }
    }
    let now = t0 + SEC;
    let first = claim_limited(store, "w1", now, "lim", 100, 2).await;
    assert_eq!(
        per_lane(&first.runs),
        HashMap::from([("a".into(), 2), ("b".into(), 2), ("c".into(), 1)]),
        "a claim takes at most the limit of each lane"
    );
    let second = claim_limited(store, "w2", now, "lim", 100, 2).await;
    assert!(second.runs.is_empty(), "another owner finds every lane full: {:?}", ids(&second.runs));
    let a = first.runs.iter().find(|r| r.flow_key.as_deref() == Some("a")).expect("a run of lane a");
    assert!(finish(store, &a.run_id, "w1", 1, Finish::Succeeded(json!(null)), now).await);
    let third = claim_limited(store, "w2", now, "lim", 100, 2).await;
    assert_eq!(per_lane(&third.runs), HashMap::from([("a".into(), 1)]), "a finished run frees one place in its lane");
    assert_eq!(third.runs[0].status, RunStatus::Running);
    let capped = claim_limited(store, "w2", now, "none-such", 100, 2).await;
    assert!(capped.runs.is_empty(), "a function without lanes claims nothing through them");
}

/// Lanes whose running runs fill their limit give no run, however many runs they hold queued,
/// and go to the back of the line, so that a lane with room behind more full lanes than a claim
/// looks at is reached by the next claim; a lane's room is its limit minus its running runs.
pub async fn full_lanes_give_nothing_and_let_the_next_lanes_through(store: &dyn Store) {
    let t0 = now_micros();
    // Why 20: a claim of one run looks at 17 lanes, so the lane with room is not among them.
    for i in 0..20 {
        for j in 0..3 {
            enqueue(store, in_lane("jam", &format!("full-{i:02}"), t0 + i * 10 + j)).await;
        }
    }
    let served = enqueue(store, in_lane("jam", "zz-free", t0 + 500)).await;
    let now = t0 + SEC;
    let holding = claim_limited(store, "w1", now, "jam", 100, 1).await;
    assert_eq!(holding.runs.len(), 21, "one run of each lane starts: {:?}", per_lane(&holding.runs));
    // Why: served last, the lane with room is now behind the twenty full ones.
    assert!(finish(store, &served.run_id, "w1", 1, Finish::Succeeded(json!(null)), now).await);
    let free = enqueue(store, in_lane("jam", "zz-free", now)).await;
    let full = claim_limited(store, "w2", now + SEC, "jam", 1, 1).await;
    assert!(full.runs.is_empty(), "every lane looked at is full: {:?}", ids(&full.runs));
    assert!(full.lanes_due, "the full lanes still hold due runs");
    let next = claim_limited(store, "w2", now + 2 * SEC, "jam", 1, 1).await;
    assert_eq!(ids(&next.runs), vec![free.run_id.clone()], "the lane with room, behind the full ones, gives its run");
    let wider = claim_limited(store, "w2", now + 3 * SEC, "jam", 100, 2).await;
    assert_eq!(wider.runs.len(), 20, "a limit of two makes room for one more in each full lane: {:?}", per_lane(&wider.runs));
    assert!(per_lane(&wider.runs).values().all(|n| *n == 1), "one each: {:?}", per_lane(&wider.runs));
    let none = claim_limited(store, "w3", now + 4 * SEC, "jam", 100, 2).await;
    assert!(none.runs.is_empty(), "nothing more while every lane holds two: {:?}", ids(&none.runs));
}

/// A lane with many queued runs does not starve a lane with one: lanes take turns, and inside
/// one claim every lane gives its first run before any gives its second.
pub async fn lanes_are_served_round_robin(store: &dyn Store) {
    let t0 = now_micros();
    for i in 0..40 {
        enqueue(store, in_lane("fair", "big", t0 + i)).await;
    }
    let small = enqueue(store, in_lane("fair", "small", t0 + 100)).await;
    let now = t0 + SEC;
    let mut turns = Vec::new();
    for _ in 0..3 {
        let claimed = claim_limited(store, "w1", now, "fair", 1, 1000).await;
        turns.extend(claimed.runs);
    }
    let at = turns.iter().position(|r| r.run_id == small.run_id);
    assert!(at.is_some_and(|i| i <= 1), "the lane with one run is served within two claims: {:?}", per_lane(&turns));

    let other = enqueue(store, in_lane("fair", "other", now)).await;
    let mixed = claim_limited(store, "w1", now + 1, "fair", 2, 1000).await;
    assert!(
        mixed.runs.iter().any(|r| r.run_id == other.run_id),
        "a claim of two serves both lanes with work, one run each: {:?}",
        per_lane(&mixed.runs)
    );
}

/// Inside a lane, runs go by priority, then by when they became due; runs not yet due wait.
pub async fn a_lane_keeps_priority_and_due_times(store: &dyn Store) {
    let t0 = now_micros();
    let low = enqueue(store, in_lane("prio", "k", t0)).await;
    let high = enqueue(store, NewRun { priority: 5, ..in_lane("prio", "k", t0 + 1) }).await;
    let later = enqueue(store, NewRun { priority: 9, not_before: t0 + 60 * SEC, ..in_lane("prio", "k", t0) }).await;
    let first = claim_limited(store, "w1", t0 + SEC, "prio", 1, 10).await;
    assert_eq!(ids(&first.runs), vec![high.run_id.clone()], "the higher priority runs first");
    let second = claim_limited(store, "w1", t0 + SEC, "prio", 5, 10).await;
    assert_eq!(ids(&second.runs), vec![low.run_id.clone()], "a run not yet due is not taken, whatever its priority");
    assert_eq!(get(store, &later.run_id).await.status, RunStatus::Queued);
    let due = claim_limited(store, "w1", t0 + 60 * SEC, "prio", 5, 10).await;
    assert_eq!(ids(&due.runs), vec![later.run_id]);
}

/// The runs ahead are counted up to [`crate::AHEAD_COUNTED`]: below it exactly, past it the
/// count stops there, so reading a run deep in a queue stays cheap.
pub async fn runs_ahead_are_counted_up_to_a_bound(store: &dyn Store) {
    let t0 = now_micros();
    let cap = usize::try_from(crate::AHEAD_COUNTED).expect("small");
    let mut ids = Vec::with_capacity(cap + 2);
    for i in 0..=cap + 1 {
        let at = t0 + i64::try_from(i).expect("small");
        ids.push(enqueue(store, in_lane("deep", "k", at)).await.run_id);
    }
    let ahead = |i: usize| {
        let id = ids[i].clone();
        async move { store.lane("deep", "k", &id).await.expect("lane").ahead }
    };
    assert_eq!(ahead(cap - 1).await, crate::AHEAD_COUNTED - 1, "below the bound, every run ahead is counted");
    assert_eq!(ahead(cap).await, crate::AHEAD_COUNTED, "at the bound, exactly");
    assert_eq!(ahead(cap + 1).await, crate::AHEAD_COUNTED, "past it, the count stops at the bound");
    assert_eq!(ahead(0).await, 0, "the first run has none ahead");
    let late = i64::try_from(cap).expect("small") + 2;
    let urgent = enqueue(store, NewRun { priority: 5, ..in_lane("deep", "k", t0 + late) }).await.run_id;
    assert_eq!(ahead(0).await, 1, "a run of higher priority is ahead, however late it came");
    assert_eq!(store.lane("deep", "k", &urgent).await.expect("lane").ahead, 0, "and has none ahead of it");
}

/// A queued run's lane says how many run and how many wait before it; the lanes of a function
/// list the busiest first.
pub async fn lanes_report_their_load(store: &dyn Store) {
    let t0 = now_micros();
    let mut queued = Vec::new();
    for i in 0..4 {
        queued.push(enqueue(store, in_lane("load", "busy", t0 + i)).await);
    }
    let quiet = enqueue(store, in_lane("load", "quiet", t0 + 10)).await;
    let running = claim_limited(store, "w1", t0 + SEC, "load", 1, 1).await;
    assert_eq!(ids(&running.runs), vec![queued[0].run_id.clone()], "the oldest run of the first lane");
    assert_eq!(
        store.lane("load", "busy", &queued[3].run_id).await.expect("lane"),
        Lane { running: 1, ahead: 2, tat: 0 },
        "one running, two queued before the last"
    );
    assert_eq!(store.lane("load", "busy", &queued[1].run_id).await.expect("lane"), Lane { running: 1, ahead: 0, tat: 0 });
    assert_eq!(store.lane("load", "quiet", &quiet.run_id).await.expect("lane"), Lane { running: 0, ahead: 0, tat: 0 });
    assert_eq!(store.lane("load", "busy", "no-such-run").await.expect("lane").ahead, 0, "an unknown run has none ahead");

    let lanes = store.lanes("load", 10, 0).await.expect("lanes");
    let summary: Vec<(String, u64, u64)> = lanes.iter().map(|l| (l.key.clone(), l.queued, l.running)).collect();
    assert_eq!(summary, vec![("busy".to_string(), 3, 1), ("quiet".to_string(), 1, 0)], "the busiest lane first");
    assert_eq!(lanes[0].oldest_queued_at, Some(t0 + 1), "the oldest queued run of the lane");
    let page = store.lanes("load", 1, 1).await.expect("second page");
    assert_eq!(page.iter().map(|l| l.key.as_str()).collect::<Vec<_>>(), vec!["quiet"], "pages go on where the last ended");
    assert!(store.lanes("none-such", 10, 0).await.expect("lanes").is_empty(), "an unknown function has no lanes");
}

/// The held-runs gauges' view of the lanes: every lane with queued runs by key, its running and
/// due runs counted up to the cap and no further, runs not yet due counted out; lanes with no
/// queued run (one with running runs only, one idle and not forgotten yet) left out.
pub async fn lane_room_counts_each_lane_up_to_the_cap(store: &dyn Store) {
    let t0 = now_micros();
    let done = enqueue(store, in_lane("room", "done", t0)).await;
    for i in 0..5 {
        enqueue(store, in_lane("room", "big", t0 + i)).await;
    }
    enqueue(store, in_lane("room", "small", t0)).await;
    enqueue(store, NewRun { not_before: t0 + 3600 * SEC, ..in_lane("room", "later", t0) }).await;
    let running = claim_limited(store, "w1", t0 + SEC, "room", 10, 2).await;
    assert_eq!(running.runs.len(), 4, "two of `big`, `done` and `small` start; `later` is not due");
    assert!(finish(store, &done.run_id, "w1", 1, Finish::Succeeded(json!(null)), t0 + SEC).await, "`done` finishes");
    let now = t0 + 2 * SEC;
    let room = store.lane_room("room", 2, 100, now).await.expect("lane room");
    let seen: Vec<(&str, u64, u64)> = room.iter().map(|l| (l.key.as_str(), l.running, l.due)).collect();
    assert_eq!(seen, vec![("big", 2, 2), ("later", 0, 0)], "by key; `big`'s three due runs counted up to 2");
    assert!(room.iter().all(|l| l.tat == 0), "no lane was throttled");
    let wide = store.lane_room("room", 10, 100, now).await.expect("lane room");
    assert_eq!((wide[0].running, wide[0].due), (2, 3), "a larger cap counts them all");
    let first = store.lane_room("room", 2, 1, now).await.expect("lane room");
    assert_eq!(first.iter().map(|l| l.key.as_str()).collect::<Vec<_>>(), vec!["big"], "at most `keys` lanes");
    assert!(store.lane_room("room", 2, 0, now).await.expect("no lane asked for").is_empty(), "`keys` 0 reads no lane");
    assert!(store.lane_room("none-such", 2, 100, now).await.expect("lane room").is_empty(), "an unknown function has none");
    let zero = store.lane_room("room", 0, 100, now).await.expect("a cap of 0 is no error");
    assert!(zero.iter().all(|l| l.running == 0 && l.due == 0), "and counts nothing");
}

/// Runs stored before a limit was set join the shared lane at start-up, and leave their lanes
/// when the limit goes; lanes idle with no open run are forgotten, and come back with new work.
pub async fn lanes_are_adopted_and_forgotten(store: &dyn Store) {
    let t0 = now_micros();
    let old = enqueue(store, new_run("late", t0)).await;
    let before = claim_limited(store, "w1", t0 + SEC, "late", 10, 1).await;
    assert!(before.runs.is_empty(), "a run with no lane is not claimed under a limit");
    let adopt = FlowUpkeep::Adopt { function: "late".into(), limited: true, now: t0 };
    assert_eq!(store.flow_upkeep(adopt.clone()).await.expect("adopt"), 1, "the open run joins the shared lane");
    assert_eq!(store.flow_upkeep(adopt).await.expect("adopt again"), 0, "adopting twice changes nothing");
    let after = claim_limited(store, "w1", t0 + SEC, "late", 10, 1).await;
    assert_eq!(ids(&after.runs), vec![old.run_id.clone()], "then it is claimed in the shared lane");
    assert_eq!(after.runs[0].flow_key.as_deref(), Some(""));

    let keyed = enqueue(store, in_lane("freed", "k", t0)).await;
    let free = FlowUpkeep::Adopt { function: "freed".into(), limited: false, now: t0 };
    assert_eq!(store.flow_upkeep(free).await.expect("leave lanes"), 1);
    assert_eq!(get(store, &keyed.run_id).await.flow_key, None, "a run of a function without a limit has no lane");

    assert!(finish(store, &old.run_id, "w1", 1, Finish::Succeeded(json!(1)), t0 + SEC).await);
    let busy = enqueue(store, in_lane("late", "busy", t0)).await;
    let forget = FlowUpkeep::Forget { idle_before: t0 + 120 * SEC };
    assert_eq!(store.flow_upkeep(forget.clone()).await.expect("forget"), 2, "the empty lanes go, the busy one stays");
    assert_eq!(store.flow_upkeep(forget).await.expect("forget again"), 0);
    let claimed = claim_limited(store, "w1", t0 + SEC, "late", 10, 1).await;
    assert_eq!(ids(&claimed.runs), vec![busy.run_id], "the lane kept is still served");
    let back = enqueue(store, in_lane("late", "", t0 + 2 * SEC)).await;
    let again = claim_limited(store, "w1", t0 + 3 * SEC, "late", 10, 1).await;
    assert_eq!(ids(&again.runs), vec![back.run_id], "a forgotten lane comes back with new work");
}

/// A throttle admits a burst per lane, then one start per interval; the claim says when the
/// next held run may start; a throttle and a concurrency limit on one lane both hold.
pub async fn a_throttle_spaces_the_starts_of_a_lane(store: &dyn Store) {
    let t0 = now_micros();
    for i in 0..10 {
        enqueue(store, in_lane("thr", "k", t0 + i)).await;
    }
    let j = [enqueue(store, in_lane("thr", "j", t0)).await, enqueue(store, in_lane("thr", "j", t0 + 1)).await];
    let rules = FlowLimit { concurrency: None, throttle: Some(Gcra { interval: SEC, burst: 2, limit: 1 }) };
    let now = t0 + SEC;
    let first = claim_with(store, "w1", now, "thr", 100, rules).await;
    assert_eq!(per_lane(&first.runs), HashMap::from([("k".into(), 2), ("j".into(), 2)]), "a burst of two per lane");
    assert_eq!(first.throttled_until, Some(now + SEC), "the next start of lane k is one interval on");
    let queued_k = enqueue(store, in_lane("thr", "k", now)).await;
    assert_eq!(store.lane("thr", "k", &queued_k.run_id).await.expect("lane").tat, now + 2 * SEC, "two starts spent");
    let early = claim_with(store, "w2", now + SEC / 2, "thr", 100, rules).await;
    assert!(early.runs.is_empty(), "nothing starts before the next start: {:?}", ids(&early.runs));
    assert_eq!(early.throttled_until, Some(now + SEC));
    let on_time = claim_with(store, "w2", now + SEC, "thr", 100, rules).await;
    assert_eq!(per_lane(&on_time.runs), HashMap::from([("k".into(), 1)]), "then one per interval");
    for run in &j {
        assert_eq!(get(store, &run.run_id).await.status, RunStatus::Running);
    }

    for i in 0..4 {
        enqueue(store, in_lane("both", "k", t0 + i)).await;
    }
    let both = FlowLimit { concurrency: Some(1), throttle: Some(Gcra { interval: SEC, burst: 5, limit: 1 }) };
    let claimed = claim_with(store, "w1", now, "both", 100, both).await;
    assert_eq!(claimed.runs.len(), 1, "the concurrency limit holds under a generous throttle");
    assert_eq!(claimed.throttled_until, None, "the throttle held nothing back");
}
