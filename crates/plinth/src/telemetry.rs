//! JSON logs: one object a line with `timestamp`, `level`, `message`, `component`, and the
//! fields of every enclosing span (`correlation_id`, `run_id`, `function`, `attempt`) at the
//! top level, keys in alphabetical order, to stdout and to daily files under `--log-dir`.
//!
//! Why each field is kept as JSON text beside its `&'static str` name, not in a
//! `serde_json::Map`: a run logs two lines and opens three spans, and the map cost an
//! allocation per key and a copy of every span field per line (decision 0021).

use std::io::{BufWriter, Write};
use std::path::Path;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Fields written as JSON: their values one after another in `text`, and for each its name
/// and where its value lies in `text`. Why one buffer: a `String` per field was the largest
/// source of the node's allocations (7 a run, `perf probe` on `malloc`; decision 0023).
#[derive(Default)]
struct Fields {
    text: Vec<u8>,
    at: Vec<(&'static str, std::ops::Range<usize>)>,
}

impl Fields {
    fn with_capacity(fields: usize) -> Self {
        Self { text: Vec::with_capacity(24 * fields), at: Vec::with_capacity(fields) }
    }

    /// Sets `name` to the JSON `write` appends; a field recorded again points at its new value.
    fn put(&mut self, name: &'static str, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.text.len();
        write(&mut self.text);
        let range = start..self.text.len();
        match self.at.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = range,
            None => self.at.push((name, range)),
        }
    }

    fn put_str(&mut self, name: &'static str, value: &str) {
        self.put(name, |out| quote_into(out, value));
    }

    fn entries(&self) -> impl Iterator<Item = (&'static str, &[u8])> {
        self.at.iter().map(|(name, range)| (*name, self.text.get(range.clone()).unwrap_or_default()))
    }
}

/// A span field that only shapes the exported span (OpenTelemetry's names).
fn exported_only(field: &Field) -> bool {
    let n = field.name();
    n.starts_with("otel.") || n.starts_with("http.") || n.starts_with("server.")
}

/// `s` as a JSON string.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

/// Appends `s` as a JSON string.
fn quote_into(out: &mut Vec<u8>, s: &str) {
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        // Why: `otel.*` and `http.*` fields name and shape the exported span; a log line has
        // them already as `method`, `route` and `status`.
        if !exported_only(field) {
            self.0.put_str(field.name(), value);
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if !exported_only(field) {
            self.0.put(field.name(), |out| {
                let _ = write!(out, "{value}");
            });
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if !exported_only(field) {
            self.0.put(field.name(), |out| {
                let _ = write!(out, "{value}");
            });
        }
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        // Why: JSON has no NaN or infinity; serde_json writes them as null.
        self.0.put(field.name(), |out| {
            if serde_json::to_writer(&mut *out, &value).is_err() {
                out.extend_from_slice(b"null");
            }
        });
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.put(field.name(), |out| out.extend_from_slice(if value { b"true" } else { b"false" }));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !exported_only(field) {
            self.0.put_str(field.name(), &format!("{value:?}"));
        }
    }
}

/// The `trace_id` and `span_id` of span `id` when OpenTelemetry records it (no extension of
/// the span may be held meanwhile).
fn otel_ids(id: &Id, out: &mut Fields) {
    use opentelemetry::trace::TraceContextExt;
    let cx = tracing::dispatcher::get_default(|d| tracing_opentelemetry::get_otel_context(id, d));
    if let Some(cx) = cx {
        let sc = cx.span().span_context().clone();
        if sc.is_valid() {
            out.put_str("trace_id", &sc.trace_id().to_string());
            out.put_str("span_id", &sc.span_id().to_string());
        }
    }
}

/// The level as the line writes it.
fn level_json(level: Level) -> &'static str {
    match level {
        Level::ERROR => "\"error\"",
        Level::WARN => "\"warn\"",
        Level::INFO => "\"info\"",
        Level::DEBUG => "\"debug\"",
        Level::TRACE => "\"trace\"",
    }
}

/// One log line from `entries` (name, JSON value), in alphabetical order of the names; of two
/// entries with one name, the later wins (an inner span's over an outer one's, the event's own
/// over its spans').
fn line(entries: &mut [(&str, &[u8])]) -> Vec<u8> {
    // Why stable: equal names keep the order they were given in, so the last is the winner.
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::with_capacity(64 + entries.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>());
    out.push(b'{');
    let mut first = true;
    for (i, (name, value)) in entries.iter().enumerate() {
        if entries.get(i + 1).is_some_and(|next| next.0 == *name) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        let _ = serde_json::to_writer(&mut out, name);
        out.push(b':');
        out.extend_from_slice(value);
    }
    out.extend_from_slice(b"}\n");
    out
}

struct JsonLayer {
    /// The component's name, as JSON.
    component: String,
    writers: Vec<NonBlocking>,
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for JsonLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::with_capacity(attrs.fields().len());
        attrs.record(&mut Visitor(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(&mut Visitor(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let scope: Vec<_> = ctx.event_scope(event).map(|s| s.from_root().collect()).unwrap_or_default();
        let meta = event.metadata();
        let mut own = Fields::with_capacity(8);
        // Why apart from the event's fields: the timestamp comes first, so any field of that
        // name wins over it, and the target last, so it wins over any field of its name.
        quote_into(&mut own.text, &plinth_core::timefmt::rfc3339(plinth_core::timefmt::now_micros()));
        let timestamp = 0..own.text.len();
        quote_into(&mut own.text, meta.target());
        let target = timestamp.end..own.text.len();
        if let Some(leaf) = scope.last() {
            otel_ids(&leaf.id(), &mut own);
        }
        event.record(&mut Visitor(&mut own));
        let held: Vec<_> = scope.iter().map(tracing_subscriber::registry::SpanRef::extensions).collect();
        let mut entries: Vec<(&str, &[u8])> = Vec::with_capacity(24);
        let slice = |range: std::ops::Range<usize>| own.text.get(range).unwrap_or_default();
        entries.extend([
            ("timestamp", slice(timestamp)),
            ("level", level_json(*meta.level()).as_bytes()),
            ("component", self.component.as_bytes()),
        ]);
        for ext in &held {
            if let Some(fields) = ext.get::<Fields>() {
                entries.extend(fields.entries());
            }
        }
        entries.extend(own.entries());
        entries.push(("target", slice(target)));
        let line = line(&mut entries);
        drop(held);
        for w in &self.writers {
            let _ = w.make_writer().write_all(&line);
        }
    }
}

/// What must live until exit: the log writers' guards (buffered lines are flushed when they
/// drop) and the span exporter, flushed by [`Guards::shutdown`].
pub(crate) struct Guards {
    _logs: Vec<WorkerGuard>,
    traces: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Guards {
    /// Exports the spans still queued, waiting at most `within`; never blocks the runtime.
    pub(crate) async fn shutdown(&mut self, within: std::time::Duration) {
        let Some(provider) = self.traces.take() else { return };
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(within));
        match tokio::time::timeout(within + std::time::Duration::from_millis(100), flushed).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the spans in flight could not all be exported"),
            _ => tracing::warn!("the spans in flight were not exported within the grace period"),
        }
    }
}

/// Installs the JSON subscriber, and the OTLP span exporter when `otlp` names an endpoint;
/// keep the guards until exit.
///
/// # Errors
/// When the filter is invalid, the log folder or its file cannot be created, or the exporter
/// cannot be built.
pub(crate) fn init(component: &str, level: &str, log_dir: Option<&Path>, otlp: Option<&str>) -> Result<Guards, String> {
    let filter = EnvFilter::try_new(level).map_err(|e| format!("log_level `{level}`: {e}"))?;
    let mut guards = Vec::new();
    let mut writers = Vec::new();
    // Why buffered: the writer's thread drains every line waiting and then flushes, so a busy
    // node writes many lines per system call instead of one each.
    let (stdout, guard) = tracing_appender::non_blocking(BufWriter::new(std::io::stdout()));
    writers.push(stdout);
    guards.push(guard);
    if let Some(dir) = log_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("log_dir {}: {e}", dir.display()))?;
        // Why: `rolling::daily` panics when the file cannot be opened; the builder reports it.
        let file = tracing_appender::rolling::RollingFileAppender::builder()
            .rotation(tracing_appender::rolling::Rotation::DAILY)
            .filename_prefix("plinth.log")
            .build(dir)
            .map_err(|e| format!("log_dir {}: {e}", dir.display()))?;
        let (w, guard) = tracing_appender::non_blocking(BufWriter::new(file));
        writers.push(w);
        guards.push(guard);
    }
    let (otel, traces) = match otlp {
        Some(endpoint) => {
            let (layer, provider) = crate::otlp::layer(component, endpoint)?;
            (Some(layer), Some(provider))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(JsonLayer { component: quoted(component), writers }.with_filter(filter))
        .with(otel)
        .try_init()
        .map_err(|e| format!("cannot install the logger: {e}"))?;
    Ok(Guards { _logs: guards, traces })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(entries: &mut [(&str, &str)]) -> (String, serde_json::Value) {
        let mut entries: Vec<(&str, &[u8])> = entries.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        let bytes = line(&mut entries);
        let text = String::from_utf8(bytes).expect("utf-8");
        let value = serde_json::from_str(&text).expect("one JSON object");
        (text, value)
    }

    #[test]
    fn a_line_is_one_object_with_its_keys_in_order() {
        let (text, v) = parsed(&mut [("timestamp", "\"t\""), ("level", "\"info\""), ("attempt", "1"), ("message", "\"ok\"")]);
        assert_eq!(text, "{\"attempt\":1,\"level\":\"info\",\"message\":\"ok\",\"timestamp\":\"t\"}\n");
        assert_eq!(v["attempt"], 1);
    }

    #[test]
    fn of_two_fields_with_one_name_the_later_wins() {
        let (text, v) = parsed(&mut [("run_id", "\"outer\""), ("b", "true"), ("run_id", "\"inner\""), ("run_id", "\"event\"")]);
        assert_eq!(v["run_id"], "event");
        assert_eq!(text.matches("run_id").count(), 1, "{text}");
    }

    #[test]
    fn no_fields_is_an_empty_object() {
        assert_eq!(parsed(&mut []).0, "{}\n");
    }

    /// A writer the test reads back.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(body: impl FnOnce()) -> Vec<serde_json::Value> {
        let out = Shared::default();
        let (w, guard) = tracing_appender::non_blocking(BufWriter::new(out.clone()));
        let layer = JsonLayer { component: quoted("svc"), writers: vec![w] };
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), body);
        drop(guard);
        let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf-8");
        text.lines().map(|l| serde_json::from_str(l).expect("each line is one JSON object")).collect()
    }

    #[test]
    fn a_line_carries_its_spans_fields_and_its_own() {
        let lines = logged(|| {
            let outer = tracing::info_span!("request", correlation_id = "c-1", otel.name = "POST /run", run_id = "outer");
            let _o = outer.enter();
            let inner = tracing::info_span!("attempt", run_id = "r-1", attempt = 2_i64, outcome = tracing::field::Empty);
            let _i = inner.enter();
            inner.record("outcome", "succeeded");
            tracing::info!(ratio = f64::NAN, ok = true, "said \"hi\"\n");
        });
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        assert_eq!(l["message"], "said \"hi\"\n");
        assert_eq!(l["component"], "svc");
        assert_eq!(l["level"], "info");
        assert_eq!(l["correlation_id"], "c-1");
        assert_eq!(l["run_id"], "r-1", "the inner span's field wins");
        assert_eq!(l["attempt"], 2);
        assert_eq!(l["outcome"], "succeeded", "a field recorded later is on the line");
        assert_eq!(l["ratio"], serde_json::Value::Null, "NaN is not JSON");
        assert_eq!(l["ok"], true);
        assert!(l.get("otel.name").is_none(), "exported-only fields stay off the line");
        assert!(l["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{l}");
    }

    #[test]
    fn a_field_recorded_twice_keeps_its_last_value_and_the_target_stays_the_lines() {
        let lines = logged(|| {
            let span = tracing::info_span!("attempt", outcome = tracing::field::Empty, attempt = 1_u64);
            let _s = span.enter();
            span.record("outcome", "failed");
            span.record("outcome", "succeeded");
            span.record("attempt", 2_u64);
            tracing::info!(target: "plinth::run", target = "field", n = -3_i64, "done");
        });
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["outcome"], "succeeded");
        assert_eq!(lines[0]["attempt"], 2);
        assert_eq!(lines[0]["n"], -3);
        assert_eq!(lines[0]["target"], "plinth::run", "the line's target wins over a field of its name");
    }

    #[test]
    fn a_line_outside_any_span_has_only_its_own_fields() {
        let lines = logged(|| tracing::warn!(code = "PLINTH_001", "alone"));
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["level"], "warn");
        assert_eq!(lines[0]["code"], "PLINTH_001");
        assert!(lines[0].get("run_id").is_none());
    }
}
