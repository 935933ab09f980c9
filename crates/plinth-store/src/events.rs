//! The store's side of events and schedules: what is ingested, what is read back.

use plinth_core::component::Component;
use plinth_core::{Event, NewRun};
use serde::{Deserialize, Serialize};

/// A function an event did not start, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Skipped {
    /// The function that listens to the event's name.
    pub function: String,
    /// Why it started no run: its condition was false or failed, or its queue was full.
    pub reason: String,
}

/// An event to store, with the runs it starts and the listeners it does not start.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// The event.
    pub event: Event,
    /// The runs it starts (trigger `event`); each is stored with it or not at all.
    pub runs: Vec<NewRun>,
    /// The listeners it does not start.
    pub skipped: Vec<Skipped>,
    /// The `cancel_on` rules it meets: the unfinished runs they match are cancelled with it.
    pub cancels: Vec<plinth_core::flow::CancelMatch>,
}

impl NewEvent {
    /// `event` with the runs it starts in `component` and the listeners it skips (the fan-out
    /// of `POST /events` and of the NATS bridge alike). A condition that failed at run time is
    /// logged at warn with the event id.
    #[must_use]
    pub fn planned(component: &Component, event: Event, correlation_id: &str, now: i64) -> Self {
        let fan = component.fan_out(&event, correlation_id, now);
        for (function, reason) in fan.skipped.iter().filter(|(_, r)| r.contains("failed:")) {
            tracing::warn!(event_id = %event.id, function = %function, reason = %reason, "trigger condition failed");
        }
        let skipped = fan.skipped.into_iter().map(|(function, reason)| Skipped { function, reason }).collect();
        Self { event, runs: fan.runs, skipped, cancels: fan.cancels }
    }

    /// The same, its runs continuing the trace `trace` (an invalid `traceparent` is dropped,
    /// so the runs get traces of their own).
    #[must_use]
    pub fn traced(mut self, trace: &plinth_core::trace::Carried) -> Self {
        let trace = plinth_core::trace::Carried::from_headers(trace.parent.as_deref(), trace.state.as_deref());
        for run in &mut self.runs {
            run.traceparent.clone_from(&trace.parent);
            run.tracestate.clone_from(&trace.state);
        }
        self
    }
}

/// What became of one ingested event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ingested {
    /// The event's id (for a duplicate: the first one's).
    pub event_id: String,
    /// The runs it started (for a duplicate: the first one's).
    pub run_ids: Vec<String>,
    /// Whether an event with this id had been received within the dedup window, so nothing
    /// was stored now.
    pub duplicate: bool,
}

/// A stored event with what it started.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// The event.
    pub event: Event,
    /// The runs it started.
    pub run_ids: Vec<String>,
    /// The listening functions it did not start, and why.
    pub skipped: Vec<Skipped>,
}

/// Which events to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events with this name.
    pub name: Option<String>,
    /// Only events received at or after this time (micros).
    pub since: Option<i64>,
    /// Events received before this cursor (the previous page's `next_cursor`).
    pub cursor: Option<String>,
    /// At most this many.
    pub limit: u32,
}

/// One page of events, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct EventPage {
    /// The events.
    pub events: Vec<StoredEvent>,
    /// The cursor of the next page, if there is one.
    pub next_cursor: Option<String>,
}

/// A schedule's last fired tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleState {
    /// The function.
    pub function: String,
    /// Its last tick that fired (micros).
    pub last_tick: i64,
    /// The run that tick started.
    pub last_run_id: String,
}
