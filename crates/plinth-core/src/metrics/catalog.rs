//! What Plinth exposes, described once: the name, type, labels and help of every family.

/// A metric's Prometheus type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets (`_bucket`, `_sum`, `_count` samples).
    Histogram,
}

impl MetricKind {
    /// The type as `# TYPE` lines write it: `counter`, `gauge`, `histogram`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// One metric family Plinth exposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricDescriptor {
    /// The name after the prefix and `_`, as queries write it: counters end in `_total`.
    pub name: &'static str,
    /// Its type.
    pub kind: MetricKind,
    /// Its labels, besides the constant `component` every metric carries.
    pub labels: &'static [&'static str],
    /// What it counts, as `# HELP` says.
    pub help: &'static str,
}

impl MetricDescriptor {
    /// The name the family is registered under: a counter's without `_total`, which the
    /// encoder appends.
    #[must_use]
    pub fn registered_name(&self) -> &'static str {
        match self.kind {
            MetricKind::Counter => self.name.strip_suffix("_total").unwrap_or(self.name),
            _ => self.name,
        }
    }

    /// The full name with `prefix`, such as `plinth_requests_total`.
    #[must_use]
    pub fn full_name(&self, prefix: &str) -> String {
        format!("{prefix}_{}", self.name)
    }
}

/// `requests_total{method,route,status}`.
pub const REQUESTS_TOTAL: MetricDescriptor = MetricDescriptor {
    name: "requests_total",
    kind: MetricKind::Counter,
    labels: &["method", "route", "status"],
    help: "HTTP requests answered",
};
/// `request_duration_seconds{method,route}`.
pub const REQUEST_DURATION: MetricDescriptor = MetricDescriptor {
    name: "request_duration_seconds",
    kind: MetricKind::Histogram,
    labels: &["method", "route"],
    help: "HTTP request latency",
};
/// `errors_total{error_type}`.
pub const ERRORS_TOTAL: MetricDescriptor = MetricDescriptor {
    name: "errors_total",
    kind: MetricKind::Counter,
    labels: &["error_type"],
    help: "Errors by type (error code name)",
};
/// `runs_total{function,status}`.
pub const RUNS_TOTAL: MetricDescriptor = MetricDescriptor {
    name: "runs_total",
    kind: MetricKind::Counter,
    labels: &["function", "status"],
    help: "Run attempts ended, by outcome",
};
/// `run_duration_seconds{function}`.
pub const RUN_DURATION: MetricDescriptor = MetricDescriptor {
    name: "run_duration_seconds",
    kind: MetricKind::Histogram,
    labels: &["function"],
    help: "Duration of run attempts",
};
/// `runs_in_flight{function}`.
pub const RUNS_IN_FLIGHT: MetricDescriptor = MetricDescriptor {
    name: "runs_in_flight",
    kind: MetricKind::Gauge,
    labels: &["function"],
    help: "Attempts executing on this node",
};
/// `queue_depth{function}`.
pub const QUEUE_DEPTH: MetricDescriptor =
    MetricDescriptor { name: "queue_depth", kind: MetricKind::Gauge, labels: &["function"], help: "Runs waiting in the queue" };
/// `queue_oldest_seconds{function}`.
pub const QUEUE_OLDEST: MetricDescriptor = MetricDescriptor {
    name: "queue_oldest_seconds",
    kind: MetricKind::Gauge,
    labels: &["function"],
    help: "How long the longest-waiting due run has waited since it became due",
};
/// `runs_held{function,rule}`.
pub const RUNS_HELD: MetricDescriptor = MetricDescriptor {
    name: "runs_held",
    kind: MetricKind::Gauge,
    labels: &["function", "rule"],
    help: "Queued runs held back: scheduled (a delay or a retry's backoff), concurrency or throttle; when 1000 or more runs are due and 1000 or more are not, each side is counted as 1000",
};
/// `uptime_seconds`.
pub const UPTIME: MetricDescriptor =
    MetricDescriptor { name: "uptime_seconds", kind: MetricKind::Gauge, labels: &[], help: "Seconds since this process started" };
/// `build_info{version}`.
pub const BUILD_INFO: MetricDescriptor =
    MetricDescriptor { name: "build_info", kind: MetricKind::Gauge, labels: &["version"], help: "Plinth's version (always 1)" };

/// `spans_exported_total`.
pub const SPANS_EXPORTED: MetricDescriptor = MetricDescriptor {
    name: "spans_exported_total",
    kind: MetricKind::Counter,
    labels: &[],
    help: "Trace spans the OTLP collector accepted",
};
/// `spans_dropped_total{reason}`.
pub const SPANS_DROPPED: MetricDescriptor = MetricDescriptor {
    name: "spans_dropped_total",
    kind: MetricKind::Counter,
    labels: &["reason"],
    help: "Trace spans not exported: queue_full (the collector was too slow to keep up) or export_failed (it refused or could not be reached)",
};

/// Every metric family Plinth exposes, in registration order.
pub const METRICS: [MetricDescriptor; 13] = [
    REQUESTS_TOTAL,
    REQUEST_DURATION,
    ERRORS_TOTAL,
    RUNS_TOTAL,
    RUN_DURATION,
    RUNS_IN_FLIGHT,
    QUEUE_DEPTH,
    QUEUE_OLDEST,
    RUNS_HELD,
    UPTIME,
    BUILD_INFO,
    SPANS_EXPORTED,
    SPANS_DROPPED,
];
