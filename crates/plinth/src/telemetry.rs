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

struct Visitor<'a>(&'a mut Map<String, Value>);

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_string(), Value::String(format!("{value:?}")));
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
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<Fields>() {
                    obj.extend(fields.0.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
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

/// Installs the JSON subscriber; keep the guards until exit so buffered lines are flushed.
///
/// # Errors
/// When the filter is invalid or the log folder or its file cannot be created.
pub(crate) fn init(component: &str, level: &str, log_dir: Option<&Path>) -> Result<Vec<WorkerGuard>, String> {
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
    tracing_subscriber::registry()
        .with(JsonLayer { component: component.to_string(), writers }.with_filter(filter))
        .try_init()
        .map_err(|e| format!("cannot install the logger: {e}"))?;
    Ok(guards)
}
