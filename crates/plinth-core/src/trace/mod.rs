//! Plinth's spans in OpenTelemetry's terms: a span continues a W3C `traceparent`, and gives its
//! own as one. With no OpenTelemetry layer installed (no exporter configured) nothing here costs
//! more than a lookup, and [`traceparent_of`] answers `None`.

mod catalog;

pub use catalog::*;

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Attributes of spans made by hand ([`Past`]).
pub use opentelemetry::KeyValue;

/// The W3C context a run is stored with: a valid `traceparent`, and the `tracestate` that came
/// with it (never one without the other's parent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Carried {
    /// The `traceparent`.
    pub parent: Option<String>,
    /// The `tracestate`.
    pub state: Option<String>,
}

impl Carried {
    /// The context `traceparent` and `tracestate` headers (or their like) give: each kept when
    /// valid, the state only with a valid parent.
    #[must_use]
    pub fn from_headers(traceparent: Option<&str>, tracestate: Option<&str>) -> Self {
        let parent = traceparent.and_then(crate::ids::parse_traceparent);
        let state = parent.as_ref().and(tracestate).and_then(crate::ids::parse_tracestate);
        Self { parent, state }
    }
}

/// The remote span context a valid `traceparent` names.
fn remote(traceparent: &str) -> Option<SpanContext> {
    remote_with(traceparent, None)
}

/// The same, carrying `tracestate` when it is valid.
fn remote_with(traceparent: &str, tracestate: Option<&str>) -> Option<SpanContext> {
    use std::str::FromStr as _;
    let t = crate::ids::parse_traceparent(traceparent)?;
    let trace = TraceId::from_hex(&t[3..35]).ok()?;
    let span = SpanId::from_hex(&t[36..52]).ok()?;
    let flags = u8::from_str_radix(&t[53..55], 16).ok()?;
    let state = tracestate.and_then(crate::ids::parse_tracestate).and_then(|s| TraceState::from_str(&s).ok()).unwrap_or_default();
    Some(SpanContext::new(trace, span, TraceFlags::new(flags), true, state))
}

/// Makes `span` (not entered yet) a child of the span `traceparent` names; an invalid one
/// leaves it the root of a new trace.
pub fn continue_from(span: &tracing::Span, traceparent: Option<&str>) {
    continue_with(span, traceparent, None);
}

/// [`continue_from`], the remote context carrying `tracestate` (kept when valid), which the
/// span and its children then hand on.
pub fn continue_with(span: &tracing::Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    if let Some(sc) = traceparent.and_then(|tp| remote_with(tp, tracestate)) {
        // Why: without an OpenTelemetry layer there is nothing to parent, which is not an error.
        let _ = span.set_parent(Context::new().with_remote_span_context(sc));
    }
}

/// The `tracestate` of `span`'s context, when OpenTelemetry records it and it is not empty.
#[must_use]
pub fn tracestate_of(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let text = cx.span().span_context().trace_state().header();
    (!text.is_empty()).then_some(text)
}

/// The `tracestate` a handler of an attempt is given: the current span's when OpenTelemetry
/// records it, else the run's stored one.
#[must_use]
pub fn state_for_handler(stored: Option<&str>) -> Option<String> {
    tracestate_of(&tracing::Span::current()).or_else(|| stored.map(str::to_string))
}

/// The `traceparent` naming `span`, when OpenTelemetry records it.
#[must_use]
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()))
}

/// Records the trace id of `fallback` (the trace the work belongs to) as `trace_id` on `span`
/// (declared empty) when OpenTelemetry does not record it, so its log lines still name their
/// trace. When it does, the log layer takes the span's own ids from OpenTelemetry, and nothing
/// is recorded here: a field would be exported as a needless attribute.
pub fn record_ids(span: &tracing::Span, fallback: Option<&str>) {
    if traceparent_of(span).is_some() {
        return;
    }
    if let Some(tp) = fallback.and_then(crate::ids::parse_traceparent) {
        span.record("trace_id", &tp[3..35]);
    }
}

/// The `traceparent` a handler of an attempt of `run_id` is given: the current span's when
/// OpenTelemetry records it (the attempt's or its call's), else one in the run's trace
/// ([`crate::ids::attempt_traceparent`]).
#[must_use]
pub fn for_handler(run_id: &str, stored: Option<&str>) -> String {
    traceparent_of(&tracing::Span::current()).unwrap_or_else(|| crate::ids::attempt_traceparent(run_id, stored))
}

/// Links `span` to the span `traceparent` names (a run an event started, linked to the event's
/// request), when it is valid.
pub fn link_to(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(sc) = traceparent.and_then(remote) {
        span.add_link(sc);
    }
}

/// Whether OpenTelemetry records the current span: spans made by hand are made only then.
#[must_use]
pub fn recording() -> bool {
    tracing::Span::current().context().span().span_context().is_valid()
}

/// A span that already happened (a step, a wait), told with its own start and end in
/// microseconds since the epoch.
#[derive(Debug, Clone)]
pub struct Past {
    /// Its name.
    pub name: String,
    /// When it started.
    pub start: i64,
    /// When it ended.
    pub end: i64,
    /// Its attributes.
    pub attributes: Vec<opentelemetry::KeyValue>,
    /// Whether it ended in an error.
    pub failed: bool,
}

fn at(micros: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

/// Exports `past` through the global provider (set when an exporter is configured), as a child
/// of the span `parent` names, or of the current span when `parent` is `None` or invalid.
pub fn emit(past: Past, parent: Option<&str>) {
    use opentelemetry::trace::{Span as _, SpanBuilder, SpanKind, Status};
    let cx = match parent.and_then(remote) {
        Some(sc) => Context::new().with_remote_span_context(sc),
        None => tracing::Span::current().context(),
    };
    let tracer = opentelemetry::global::tracer("plinth");
    let mut span = SpanBuilder::from_name(past.name)
        .with_kind(SpanKind::Internal)
        .with_start_time(at(past.start))
        .with_attributes(past.attributes)
        .start_with_context(&tracer, &cx);
    if past.failed {
        span.set_status(Status::error(""));
    }
    span.end_with_timestamp(at(past.end.max(past.start)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_layer_nothing_is_recorded_and_nothing_fails() {
        let span = tracing::info_span!("x");
        continue_from(&span, Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        continue_from(&span, Some("junk"));
        continue_from(&span, None);
        link_to(&span, Some("junk"));
        assert_eq!(traceparent_of(&span), None);
    }

    #[test]
    fn a_valid_tracestate_rides_with_the_remote_span() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let sc = remote_with(tp, Some("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE")).expect("valid");
        assert_eq!(sc.trace_state().header(), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
        for bad in ["=nokey", "UPPER=x", &"k=v,".repeat(40), ""] {
            let sc = remote_with(tp, Some(bad)).expect("the traceparent still counts");
            assert_eq!(sc.trace_state().header(), "", "{bad}");
        }
        assert!(remote_with("junk", Some("rojo=1")).is_none(), "no state without a parent");
        assert_eq!(state_for_handler(Some("rojo=1")).as_deref(), Some("rojo=1"), "without a layer: the stored one");
        assert_eq!(state_for_handler(None), None);
    }

    #[test]
    fn a_traceparent_names_its_remote_span() {
        let sc = remote("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").expect("valid");
        assert_eq!(sc.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_sampled() && sc.is_remote());
        assert!(remote("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").is_some_and(|s| !s.is_sampled()));
        assert!(remote("nope").is_none());
    }
}
