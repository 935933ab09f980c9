//! The scheduler: each function's cron triggers start one run per tick.
//!
//! Only the node the store elects fires ticks, and the store records each function's last
//! fired tick in the same transaction as the run it starts, so a tick fires once however many
//! nodes try and however often they restart. When a node takes the lead (at start-up, or
//! after the leader died) it catches up: when the last tick fired within the last 10 s (the
//! lead moved from a dead leader), every tick missed in between fires; after a longer gap (no
//! node was up), only the latest missed tick fires, once. A function never fired before starts
//! with the first tick after start-up.

use super::tick;
use crate::Shared;
use plinth_core::timefmt::{now_micros, rfc3339};
use plinth_core::trigger::CompiledTriggers;
use plinth_core::{FunctionSpec, NewRun, Trigger};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The longest the scheduler sleeps before it asks again whether it leads.
const RECHECK: Duration = Duration::from_secs(1);

/// A schedule whose last tick fired at most this long ago was running until a moment ago: its
/// lead moved to this node (the leader died), and every tick missed in between is fired.
/// Longer gaps are an outage, after which only the latest missed tick fires.
const HANDOVER: i64 = 10_000_000;

/// The ticks to fire when this node takes the lead, `last` being the last fired (micros): each
/// missed one after a handover (at most 10: a tick is at least a second apart), else only the
/// latest missed one.
fn missed(schedules: &CompiledTriggers, last: i64, now: i64) -> Vec<i64> {
    if last < now - HANDOVER {
        return schedules.latest_missed(last, now).into_iter().collect();
    }
    let mut ticks = Vec::new();
    let mut at = last;
    while let Some(t) = schedules.next_tick(at).filter(|t| *t <= now) {
        ticks.push(t);
        at = t;
    }
    ticks
}

/// The functions with schedules: the spec and its triggers.
type Scheduled<'a> = Vec<(&'a FunctionSpec, &'a CompiledTriggers)>;

pub(crate) async fn scheduler(shared: Arc<Shared>) {
    // When this node first saw each scheduled function: no tick before it is fired (an app may
    // register a function long after start-up).
    let mut seen: HashMap<String, i64> = HashMap::new();
    // The last tick fired (by any node) of each function, as far as this node knows.
    let mut last: HashMap<String, i64> = HashMap::new();
    let mut leading = false;
    loop {
        let component = shared.component.get();
        let scheduled: Scheduled<'_> =
            component.file.functions.iter().zip(&component.triggers).filter(|(_, t)| !t.schedules.is_empty()).collect();
        for (f, _) in &scheduled {
            seen.entry(f.name.clone()).or_insert_with(now_micros);
        }
        if scheduled.is_empty() || !shared.store.lead().await {
            leading = false;
            if !tick(&shared, RECHECK).await {
                return;
            }
            continue;
        }
        if !leading {
            match shared.store.schedules().await {
                Ok(states) => last.extend(states.into_iter().map(|s| (s.function, s.last_tick))),
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler cannot read the schedules' last ticks");
                    if !tick(&shared, RECHECK).await {
                        return;
                    }
                    continue;
                }
            }
            leading = true;
            let now = now_micros();
            for (function, schedules) in &scheduled {
                let Some(l) = last.get(&function.name).copied() else { continue };
                for t in missed(schedules, l, now) {
                    tracing::info!(function = %function.name, scheduled_at = %rfc3339(t), "firing a missed tick");
                    fire(&shared, function, t, &mut last).await;
                }
            }
        }
        let now = now_micros();
        let mut soonest = i64::MAX;
        for (function, schedules) in &scheduled {
            let started = seen.get(&function.name).copied().unwrap_or(now);
            let after = last.get(&function.name).copied().unwrap_or(started).max(started);
            let Some(due) = schedules.next_tick(after) else { continue };
            if due <= now {
                fire(&shared, function, due, &mut last).await;
                soonest = now;
            } else {
                soonest = soonest.min(due);
            }
        }
        let wait = Duration::from_micros(u64::try_from(soonest.saturating_sub(now_micros())).unwrap_or(0)).min(RECHECK);
        if !wait.is_zero() && !tick(&shared, wait).await {
            return;
        }
    }
}

/// Fires `function`'s tick at `at`; remembers it as fired unless the store could not be used
/// (then the next loop tries again).
async fn fire(shared: &Shared, function: &FunctionSpec, at: i64, last: &mut HashMap<String, i64>) {
    let scheduled_at = rfc3339(at);
    let input = json!({ "scheduled_at": scheduled_at });
    let correlation_id = plinth_core::ids::new_correlation_id();
    let run = NewRun::of(function, input, Trigger::Cron { scheduled_at: scheduled_at.clone() }, &correlation_id, now_micros());
    match shared.store.fire_tick(&function.name, at, run).await {
        Ok(Some(run)) => {
            let late_ms = (run.created_at - at) as f64 / 1000.0;
            tracing::info!(function = %function.name, run_id = %run.run_id, scheduled_at = %scheduled_at,
                correlation_id = %correlation_id, late_ms, "schedule tick fired");
            shared.wake.notify_one();
            last.insert(function.name.clone(), at);
        }
        Ok(None) => {
            tracing::debug!(function = %function.name, scheduled_at = %scheduled_at, "tick already fired");
            last.insert(function.name.clone(), at);
        }
        Err(e) => {
            tracing::warn!(function = %function.name, scheduled_at = %scheduled_at, error = %e, "cannot fire a schedule tick");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_second() -> CompiledTriggers {
        let spec: Vec<plinth_core::trigger::TriggerSpec> = serde_yaml_ng::from_str("- {cron: '* * * * * *'}").expect("yaml");
        plinth_core::trigger::compile(&spec).expect("valid")
    }

    const SEC: i64 = 1_000_000;

    #[test]
    fn a_handover_fires_every_tick_missed_in_between() {
        let s = every_second();
        let t0 = 1_000 * SEC;
        assert_eq!(missed(&s, t0, t0 + 3 * SEC + SEC / 2), [t0 + SEC, t0 + 2 * SEC, t0 + 3 * SEC]);
        assert!(missed(&s, t0, t0 + SEC / 2).is_empty(), "nothing missed yet");
    }

    #[test]
    fn an_outage_fires_only_the_latest_missed_tick() {
        let s = every_second();
        let t0 = 1_000 * SEC;
        assert_eq!(missed(&s, t0, t0 + 3600 * SEC + SEC / 2), [t0 + 3600 * SEC]);
    }

    #[test]
    fn the_handover_window_is_a_boundary() {
        let s = every_second();
        let t0 = 1_000 * SEC;
        assert_eq!(missed(&s, t0, t0 + HANDOVER).len(), 10, "just inside: every tick, at most ten");
        assert_eq!(missed(&s, t0, t0 + HANDOVER + 1), [t0 + HANDOVER], "just past: only the latest");
    }
}
