//! OTLP/HTTP export of Plinth's spans (decision 0013): on when an endpoint is configured
//! (`--otlp-endpoint`, `PLINTH_OTLP_ENDPOINT`, or OpenTelemetry's own `OTEL_EXPORTER_OTLP_*`
//! variables), off otherwise, at no cost. Spans go through the SDK's batch processor: a bounded
//! queue drained by a thread of its own, which calls the collector with reqwest's blocking
//! client, so neither a request nor a run ever waits on the collector.
//!
//! What the export loses is counted in `spans_dropped_total{reason}` ([`counted`]).
//!
//! The SDK reads the standard variables for the rest: `OTEL_SERVICE_NAME` (else the component's
//! name), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`/`_ARG`, `OTEL_BSP_*`.

use opentelemetry::trace::TracerProvider;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets, filter_fn};
use tracing_subscriber::registry::LookupSpan;

mod counted;

/// Plinth's crates: only their spans are exported, not those of the libraries below them.
const CRATES: [&str; 8] =
    ["plinth", "plinth_core", "plinth_engine", "plinth_server", "plinth_store", "plinth_nats", "plinth_ui", "plinth_inngest"];

/// The traces URL for an OTLP/HTTP base endpoint: `/v1/traces` appended unless it is there.
#[must_use]
pub(crate) fn traces_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1/traces") { base.to_string() } else { format!("{base}/v1/traces") }
}

/// Checks an endpoint: an absolute http(s) URL with a host.
///
/// # Errors
/// Why it is not one.
pub(crate) fn check(endpoint: &str) -> Result<(), String> {
    match reqwest::Url::parse(endpoint) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        Ok(u) => Err(format!("`{endpoint}` must be an http:// or https:// URL with a host, not {}", u.scheme())),
        Err(e) => Err(format!("`{endpoint}` is not a URL: {e}")),
    }
}

/// The layer that records Plinth's spans, and the provider that exports them to `endpoint` (a
/// traces URL).
///
/// # Errors
/// The exporter cannot be built.
pub(crate) fn layer<S>(component: &str, endpoint: &str) -> Result<(Box<dyn Layer<S> + Send + Sync>, SdkTracerProvider), String>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    check(endpoint)?;
    // Why: reqwest is built without a default crypto provider; ring is the one we ship.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| format!("the OTLP exporter for `{endpoint}`: {e}"))?;
    let mut resource =
        Resource::builder().with_attribute(opentelemetry::KeyValue::new("plinth.component", component.to_string()));
    if std::env::var("OTEL_SERVICE_NAME").map_or(true, |v| v.is_empty()) {
        resource = resource.with_service_name(component.to_string());
    }
    let cap = counted::queue_size(std::env::var("OTEL_BSP_MAX_QUEUE_SIZE").ok().as_deref());
    let waiting = counted::Waiting::default();
    let exporter = counted::Counted { inner: exporter, waiting: waiting.clone() };
    let config = BatchConfigBuilder::default().with_max_queue_size(cap).build();
    let inner = BatchSpanProcessor::builder(exporter).with_batch_config(config).build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(counted::Bounded { inner, waiting, cap })
        .with_resource(resource.build())
        .build();
    // Why: spans made with explicit times (a step's, a wait's) go through the same provider.
    opentelemetry::global::set_tracer_provider(provider.clone());
    let tracer = provider.tracer("plinth");
    let targets = CRATES.iter().fold(Targets::new(), |t, c| t.with_target(*c, LevelFilter::INFO));
    // Why: what these switch off costs time on every span and tells an operator nothing a
    // Plinth span needs: the source line and thread of the code that opened it, busy and idle
    // nanoseconds, the tracing target; and making each span the current OpenTelemetry context
    // at every poll, which nothing here reads (contexts are taken from the span itself). Log
    // lines are not copied into their spans as span events: the JSON log carries them with the
    // span's ids, and a span's status is set by Plinth, not read from an error line.
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_target(false)
        .with_context_activation(false)
        .with_filter(targets.and(filter_fn(|m| m.is_span())));
    Ok((Box::new(layer), provider))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_endpoint_gets_the_traces_path_once() {
        assert_eq!(traces_url("http://collector:4318"), "http://collector:4318/v1/traces");
        assert_eq!(traces_url("http://collector:4318/"), "http://collector:4318/v1/traces");
        assert_eq!(traces_url("http://collector:4318/v1/traces"), "http://collector:4318/v1/traces");
    }

    #[test]
    fn endpoints_are_http_urls_with_a_host() {
        assert!(check("http://127.0.0.1:4318/v1/traces").is_ok());
        assert!(check("https://otel.internal/v1/traces").is_ok());
        assert!(check("collector:4318").is_err());
        assert!(check("ftp://collector/v1/traces").is_err());
        assert!(check("not a url").is_err());
    }
}
