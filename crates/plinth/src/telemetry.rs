//! JSON logs: one object a line with `timestamp`, `level`, `message`, `component`, and the
//! fields of every enclosing span (`correlation_id`, `run_id`, `function`, `attempt`) at the
//! top level, to stdout and to daily files under `--log-dir`.

use serde_json::{Map, Value};
use std::io::Write;
use std::path::Path;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

struct Fields(Map<String, Value>);

/// A span field that only shapes the exported span (OpenTelemetry's names).
fn exported_only(field: &Field) -> bool {
    let n = field.name();
    n.starts_with("otel.") || n.starts_with("http.") || n.starts_with("server.")
}

struct Visitor<'a>(&'a mut Map<String, Value>);

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        // Why: `otel.*` and `http.*` fields name and shape the exported span; a log line has
        // them already as `method`, `route` and `status`.
        if !exported_only(field) {
            self.0.insert(field.name().to_string(), Value::String(value.to_string()));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if !exported_only(field) {
            self.0.insert(field.name().to_string(), Value::from(value));
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if !exported_only(field) {
            self.0.insert(field.name().to_string(), Value::from(value));
        }
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !exported_only(field) {
            self.0.insert(field.name().to_string(), Value::String(format!("{value:?}")));
        }
    }
}

/// The `trace_id` and `span_id` of span `id` when OpenTelemetry records it (no extension of
/// the span may be held meanwhile).
fn otel_ids(id: &Id, obj: &mut Map<String, Value>) {
    use opentelemetry::trace::TraceContextExt;
    let cx = tracing::dispatcher::get_default(|d| tracing_opentelemetry::get_otel_context(id, d));
    if let Some(cx) = cx {
        let sc = cx.span().span_context().clone();
        if sc.is_valid() {
            obj.insert("trace_id".into(), Value::String(sc.trace_id().to_string()));
            obj.insert("span_id".into(), Value::String(sc.span_id().to_string()));
        }
    }
}

struct JsonLayer {
    component: String,
    writers: Vec<NonBlocking>,
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for JsonLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut map = Map::new();
        attrs.record(&mut Visitor(&mut map));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Fields(map));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(&mut Visitor(&mut fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut obj = Map::new();
        obj.insert("timestamp".into(), Value::String(plinth_core::timefmt::rfc3339(plinth_core::timefmt::now_micros())));
        obj.insert("level".into(), Value::String(event.metadata().level().as_str().to_ascii_lowercase()));
        obj.insert("component".into(), Value::String(self.component.clone()));
        let mut leaf = None;
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<Fields>() {
                    obj.extend(fields.0.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                leaf = Some(span.id());
            }
        }
        if let Some(id) = leaf {
            otel_ids(&id, &mut obj);
        }
        event.record(&mut Visitor(&mut obj));
        obj.insert("target".into(), Value::String(event.metadata().target().to_string()));
        let mut line = serde_json::to_vec(&Value::Object(obj)).unwrap_or_default();
        line.push(b'\n');
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
    let (stdout, guard) = tracing_appender::non_blocking(std::io::stdout());
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
        let (w, guard) = tracing_appender::non_blocking(file);
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
        .with(JsonLayer { component: component.to_string(), writers }.with_filter(filter))
        .with(otel)
        .try_init()
        .map_err(|e| format!("cannot install the logger: {e}"))?;
    Ok(Guards { _logs: guards, traces })
}
