//! Plinth's Prometheus metrics, in one registry with a constant `component` label.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::borrow::Cow;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

type L1 = [(&'static str, String); 1];
type L2 = [(&'static str, String); 2];
type L3 = [(&'static str, String); 3];
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn request_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

fn run_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.5, 16))
}

/// Every metric Plinth exposes.
pub struct Metrics {
    registry: Registry,
    started: Instant,
    requests_total: Family<L3, Counter>,
    request_duration: HistogramFamily<L2>,
    errors_total: Family<L1, Counter>,
    runs_total: Family<L2, Counter>,
    run_duration: HistogramFamily<L1>,
    runs_in_flight: Family<L1, Gauge>,
    queue_depth: Family<L1, Gauge>,
    uptime: Gauge<f64, AtomicU64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry whose metric names start with `prefix_` and carry `component="name"`.
    #[must_use]
    pub fn new(prefix: &str, component: &str) -> Self {
        let labels = std::iter::once((Cow::Borrowed("component"), Cow::Owned(component.to_string())));
        let mut registry = Registry::with_prefix_and_labels(prefix, labels);
        let m = Self {
            registry: Registry::default(),
            started: Instant::now(),
            requests_total: Family::default(),
            request_duration: Family::new_with_constructor(request_histogram),
            errors_total: Family::default(),
            runs_total: Family::default(),
            run_duration: Family::new_with_constructor(run_histogram),
            runs_in_flight: Family::default(),
            queue_depth: Family::default(),
            uptime: Gauge::default(),
        };
        registry.register("requests", "HTTP requests answered", m.requests_total.clone());
        registry.register("request_duration_seconds", "HTTP request latency", m.request_duration.clone());
        registry.register("errors", "Errors by type (error code name)", m.errors_total.clone());
        registry.register("runs", "Run attempts ended, by outcome", m.runs_total.clone());
        registry.register("run_duration_seconds", "Duration of run attempts", m.run_duration.clone());
        registry.register("runs_in_flight", "Attempts executing on this node", m.runs_in_flight.clone());
        registry.register("queue_depth", "Runs waiting in the queue", m.queue_depth.clone());
        registry.register("uptime_seconds", "Seconds since this process started", m.uptime.clone());
        let build_info: Family<L1, Gauge> = Family::default();
        build_info.get_or_create(&[("version", crate::VERSION.to_string())]).set(1);
        registry.register("build_info", "Plinth's version (always 1)", build_info);
        Self { registry, ..m }
    }

    /// Counts one answered request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests_total
            .get_or_create(&[("method", method.to_string()), ("route", route.to_string()), ("status", status.to_string())])
            .inc();
        self.request_duration.get_or_create(&[("method", method.to_string()), ("route", route.to_string())]).observe(seconds);
    }

    /// Counts one error by its type (the catalog name).
    pub fn error(&self, error_type: &str) {
        self.errors_total.get_or_create(&[("error_type", error_type.to_string())]).inc();
    }

    /// Counts an attempt's end and its duration.
    pub fn run_finished(&self, function: &str, outcome: &str, seconds: f64) {
        self.runs_total.get_or_create(&[("function", function.to_string()), ("status", outcome.to_string())]).inc();
        self.run_duration.get_or_create(&[("function", function.to_string())]).observe(seconds);
    }

    /// Moves the in-flight gauge of a function.
    pub fn in_flight(&self, function: &str, delta: i64) {
        self.runs_in_flight.get_or_create(&[("function", function.to_string())]).inc_by(delta);
    }

    /// Sets the queue depth of a function.
    pub fn set_queue_depth(&self, function: &str, depth: i64) {
        self.queue_depth.get_or_create(&[("function", function.to_string())]).set(depth);
    }

    /// The registry in Prometheus text format.
    #[must_use]
    pub fn render(&self) -> String {
        self.uptime.set(self.started.elapsed().as_secs_f64());
        let mut out = String::with_capacity(8 * 1024);
        // Why: encoding into a String cannot fail; an error here would be a bug in the encoder.
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_contract_metric_with_the_component_label() {
        let m = Metrics::new("plinth", "hello");
        m.observe_request("POST", "/run", 202, 0.001);
        m.error("ValidationFailed");
        m.run_finished("echo", "succeeded", 0.02);
        m.in_flight("echo", 1);
        m.set_queue_depth("echo", 4);
        let text = m.render();
        for name in [
            "plinth_requests_total{",
            "plinth_request_duration_seconds_bucket{",
            "plinth_errors_total{",
            "plinth_runs_total{",
            "plinth_run_duration_seconds_bucket{",
            "plinth_runs_in_flight{",
            "plinth_queue_depth{",
            "plinth_build_info{",
            "plinth_uptime_seconds{",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
        assert!(text.contains(r#"component="hello""#));
        assert!(text.contains(r#"plinth_queue_depth{component="hello",function="echo"} 4"#), "{text}");
    }

    #[test]
    fn prefix_is_configurable() {
        let text = Metrics::new("dynamo_hello", "hello").render();
        assert!(text.contains("dynamo_hello_uptime_seconds"));
        assert!(!text.contains("plinth_uptime_seconds"));
    }
}
