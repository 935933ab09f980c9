//! Plinth's Prometheus metrics, in one registry with a constant `component` label.
//!
//! [`METRICS`] describes every family (name, type, labels, help); the registry is built from
//! those descriptors and samples are labelled through them, so the list that documentation is
//! generated from (`plinth spec generate`) is the list that is exposed.

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

mod catalog;
mod series;

pub use catalog::*;

/// The label set of one sample of `d`, the label names taken from the descriptor.
fn labels<const N: usize>(d: &MetricDescriptor, values: [&str; N]) -> [(&'static str, String); N] {
    let names = names::<N>(d);
    std::array::from_fn(|i| (names[i], values[i].to_string()))
}

/// The label names of `d`, as [`labels`] takes them.
fn names<const N: usize>(d: &MetricDescriptor) -> [&'static str; N] {
    std::array::from_fn(|i| d.labels.get(i).copied().unwrap_or("label"))
}

fn request_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

fn run_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.5, 16))
}

/// Why a span was not exported: the queue in front of the collector was full.
pub const DROP_QUEUE_FULL: &str = "queue_full";
/// Why a span was not exported: the collector refused its batch or could not be reached.
pub const DROP_EXPORT_FAILED: &str = "export_failed";

/// The OTLP export's counts for this process. The span processor adds to them from its own
/// thread, before any registry exists; every [`Metrics`] shows them.
struct SpanCounts {
    exported: Counter,
    dropped: Family<L1, Counter>,
}

static SPANS: std::sync::LazyLock<SpanCounts> =
    std::sync::LazyLock::new(|| SpanCounts { exported: Counter::default(), dropped: Family::default() });

/// Counts `n` spans the collector accepted.
pub fn spans_exported(n: u64) {
    SPANS.exported.inc_by(n);
}

/// Counts `n` spans lost for `reason` ([`DROP_QUEUE_FULL`] or [`DROP_EXPORT_FAILED`]).
pub fn spans_dropped(reason: &str, n: u64) {
    SPANS.dropped.get_or_create(&labels(&SPANS_DROPPED, [reason])).inc_by(n);
}

/// Every metric Plinth exposes.
pub struct Metrics {
    registry: Registry,
    started: Instant,
    requests_total: series::Series<3, Counter, fn() -> Counter>,
    request_duration: series::Series<2, Histogram>,
    errors_total: Family<L1, Counter>,
    runs_total: series::Series<2, Counter, fn() -> Counter>,
    run_duration: series::Series<1, Histogram>,
    runs_in_flight: series::Series<1, Gauge, fn() -> Gauge>,
    queue_depth: Family<L1, Gauge>,
    queue_oldest: Family<L1, Gauge<f64, AtomicU64>>,
    runs_held: Family<L2, Gauge>,
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
        let constant = std::iter::once((Cow::Borrowed("component"), Cow::Owned(component.to_string())));
        let mut registry = Registry::with_prefix_and_labels(prefix, constant);
        let m = Self {
            registry: Registry::default(),
            started: Instant::now(),
            requests_total: series::Series::new(Family::new_with_constructor(Counter::default), names(&REQUESTS_TOTAL)),
            request_duration: series::Series::new(Family::new_with_constructor(request_histogram), names(&REQUEST_DURATION)),
            errors_total: Family::default(),
            runs_total: series::Series::new(Family::new_with_constructor(Counter::default), names(&RUNS_TOTAL)),
            run_duration: series::Series::new(Family::new_with_constructor(run_histogram), names(&RUN_DURATION)),
            runs_in_flight: series::Series::new(Family::new_with_constructor(Gauge::default), names(&RUNS_IN_FLIGHT)),
            queue_depth: Family::default(),
            queue_oldest: Family::default(),
            runs_held: Family::default(),
            uptime: Gauge::default(),
        };
        registry.register(REQUESTS_TOTAL.registered_name(), REQUESTS_TOTAL.help, m.requests_total.family());
        registry.register(REQUEST_DURATION.registered_name(), REQUEST_DURATION.help, m.request_duration.family());
        registry.register(ERRORS_TOTAL.registered_name(), ERRORS_TOTAL.help, m.errors_total.clone());
        registry.register(RUNS_TOTAL.registered_name(), RUNS_TOTAL.help, m.runs_total.family());
        registry.register(RUN_DURATION.registered_name(), RUN_DURATION.help, m.run_duration.family());
        registry.register(RUNS_IN_FLIGHT.registered_name(), RUNS_IN_FLIGHT.help, m.runs_in_flight.family());
        registry.register(QUEUE_DEPTH.registered_name(), QUEUE_DEPTH.help, m.queue_depth.clone());
        registry.register(QUEUE_OLDEST.registered_name(), QUEUE_OLDEST.help, m.queue_oldest.clone());
        registry.register(RUNS_HELD.registered_name(), RUNS_HELD.help, m.runs_held.clone());
        registry.register(UPTIME.registered_name(), UPTIME.help, m.uptime.clone());
        let build_info: Family<L1, Gauge> = Family::default();
        build_info.get_or_create(&labels(&BUILD_INFO, [crate::VERSION])).set(1);
        registry.register(BUILD_INFO.registered_name(), BUILD_INFO.help, build_info);
        // Why: both reasons show from the start, so a zero says "nothing dropped" rather than
        // "no such series".
        spans_dropped(DROP_QUEUE_FULL, 0);
        spans_dropped(DROP_EXPORT_FAILED, 0);
        registry.register(SPANS_EXPORTED.registered_name(), SPANS_EXPORTED.help, SPANS.exported.clone());
        registry.register(SPANS_DROPPED.registered_name(), SPANS_DROPPED.help, SPANS.dropped.clone());
        Self { registry, ..m }
    }

    /// Counts one answered request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        // Why a buffer on the stack: the label is copied into its own `String` anyway; a
        // `to_string` first would allocate a second time on every request.
        let mut digits = [0u8; 5];
        let len = {
            let mut w = &mut digits[..];
            let _ = std::io::Write::write_fmt(&mut w, format_args!("{status}"));
            5 - w.len()
        };
        let status = std::str::from_utf8(&digits[..len]).unwrap_or("0");
        self.requests_total.get([method, route, status]).inc();
        self.request_duration.get([method, route]).observe(seconds);
    }

    /// Counts one error by its type (the catalog name).
    pub fn error(&self, error_type: &str) {
        self.errors_total.get_or_create(&labels(&ERRORS_TOTAL, [error_type])).inc();
    }

    /// Counts an attempt's end and its duration.
    pub fn run_finished(&self, function: &str, outcome: &str, seconds: f64) {
        self.runs_total.get([function, outcome]).inc();
        self.run_duration.get([function]).observe(seconds);
    }

    /// Counts an attempt's end that no handler saw: one whose lease the rescuer took back
    /// (`outcome` as the run goes on). No duration is observed: nobody saw the attempt end.
    pub fn run_taken_back(&self, function: &str, outcome: &str) {
        self.runs_total.get([function, outcome]).inc();
    }

    /// Moves the in-flight gauge of a function.
    pub fn in_flight(&self, function: &str, delta: i64) {
        self.runs_in_flight.get([function]).inc_by(delta);
    }

    /// Sets the queue depth of a function.
    pub fn set_queue_depth(&self, function: &str, depth: i64) {
        self.queue_depth.get_or_create(&labels(&QUEUE_DEPTH, [function])).set(depth);
    }

    /// Sets how long a function's longest-waiting due run has waited, in seconds.
    pub fn set_queue_oldest(&self, function: &str, seconds: f64) {
        self.queue_oldest.get_or_create(&labels(&QUEUE_OLDEST, [function])).set(seconds);
    }

    /// Sets how many queued runs of a function `rule` holds back.
    pub fn set_held(&self, function: &str, rule: &str, n: i64) {
        self.runs_held.get_or_create(&labels(&RUNS_HELD, [function, rule])).set(n);
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
    fn the_held_gauge_names_the_bound_the_store_counts_to() {
        let bound = crate::flow::AHEAD_COUNTED.to_string();
        assert!(
            catalog::RUNS_HELD.help.contains(&format!(
                "when {bound} or more runs are due and {bound} or more are not, each side is counted as {bound}"
            )),
            "{}",
            catalog::RUNS_HELD.help
        );
    }

    #[test]
    fn a_requests_status_label_is_its_code_in_digits_at_either_end_of_the_range() {
        let m = Metrics::new("plinth", "hello");
        m.observe_request("GET", "/a", 100, 0.001);
        m.observe_request("GET", "/a", 999, 0.001);
        m.observe_request("GET", "/a", 999, 0.001);
        m.observe_request("GET", "/a", u16::MAX, 0.001);
        let text = m.render();
        let count = |status: &str| {
            text.lines()
                .find(|l| l.starts_with("plinth_requests_total{") && l.contains(&format!("status=\"{status}\"")))
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_string)
        };
        assert_eq!(count("100").as_deref(), Some("1"), "{text}");
        assert_eq!(count("999").as_deref(), Some("2"), "the same code counts in one series: {text}");
        assert_eq!(count("65535").as_deref(), Some("1"), "no code is cut short: {text}");
        assert_eq!(count("0"), None, "{text}");
    }

    #[test]
    fn renders_every_contract_metric_with_the_component_label() {
        let m = Metrics::new("plinth", "hello");
        m.observe_request("POST", "/run", 202, 0.001);
        m.error("ValidationFailed");
        m.run_finished("echo", "succeeded", 0.02);
        m.in_flight("echo", 1);
        m.set_queue_depth("echo", 4);
        m.set_queue_oldest("echo", 1.5);
        m.set_held("echo", "concurrency", 3);
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
        assert!(text.contains(r#"plinth_queue_oldest_seconds{component="hello",function="echo"} 1.5"#), "{text}");
        assert!(text.contains(r#"plinth_runs_held{component="hello",function="echo",rule="concurrency"} 3"#), "{text}");
    }

    /// A sample's name and label names.
    type Sample = (String, Vec<String>);

    /// The families `# TYPE` lines declare, as (name, type), and the label names of each
    /// family's samples (the histogram's `le` left out).
    fn exposed(text: &str) -> (Vec<(String, String)>, Vec<Sample>) {
        let types = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_once(' '))
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('{'))
            .map(|(name, rest)| {
                let keys = rest.split(',').filter_map(|kv| kv.split_once('=')).map(|(k, _)| k.trim().to_string());
                (name.to_string(), keys.filter(|k| k != "le").collect())
            })
            .collect();
        (types, samples)
    }

    #[test]
    fn the_descriptors_are_exactly_what_is_exposed() {
        let m = Metrics::new("plinth", "hello");
        m.observe_request("GET", "/health", 200, 0.001);
        m.error("NotReady");
        m.run_finished("echo", "failed", 0.5);
        m.in_flight("echo", 1);
        m.set_queue_depth("echo", 0);
        m.set_queue_oldest("echo", 0.0);
        m.set_held("echo", "throttle", 0);
        let (types, samples) = exposed(&m.render());
        let want: Vec<(String, String)> =
            METRICS.iter().map(|d| (format!("plinth_{}", d.registered_name()), d.kind.as_str().to_string())).collect();
        assert_eq!(types, want, "every family registered has a descriptor in METRICS, in order");
        for d in &METRICS {
            let full = d.full_name("plinth");
            let sample = if d.kind == MetricKind::Histogram { format!("{full}_count") } else { full.clone() };
            let (_, keys) = samples.iter().find(|(n, _)| *n == sample).unwrap_or_else(|| panic!("no sample of {sample}"));
            let mut expected: Vec<String> = d.labels.iter().map(|l| (*l).to_string()).collect();
            expected.push("component".into());
            let mut keys = keys.clone();
            keys.sort();
            expected.sort();
            assert_eq!(keys, expected, "labels of {full}");
        }
    }

    #[test]
    fn prefix_is_configurable() {
        let text = Metrics::new("dynamo_hello", "hello").render();
        assert!(text.contains("dynamo_hello_uptime_seconds"));
        assert!(!text.contains("plinth_uptime_seconds"));
    }
}
