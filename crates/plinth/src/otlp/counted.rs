//! What the export loses, counted (`spans_dropped_total{reason}`), because the SDK's batch
//! processor drops spans from a full queue without a trace outside its own logs.
//!
//! [`Bounded`] admits a span into the batch processor only while fewer than `cap` spans wait
//! for the exporter, and counts the rest as `queue_full`; its queue is given the same size, so
//! it never drops one itself. [`Counted`] sees every batch handed to the exporter and counts it
//! exported or `export_failed` (a collector that is down, answers 5xx, or times out).

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchSpanProcessor, Span, SpanData, SpanExporter, SpanProcessor};
use plinth_core::metrics::{DROP_EXPORT_FAILED, DROP_QUEUE_FULL, spans_dropped, spans_exported};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Spans ended and not yet handed to the exporter.
pub(crate) type Waiting = Arc<AtomicUsize>;

/// The exporter, counting what becomes of each batch.
#[derive(Debug)]
pub(crate) struct Counted<E> {
    pub(crate) inner: E,
    pub(crate) waiting: Waiting,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let n = batch.len();
        self.waiting.fetch_sub(n, Ordering::AcqRel);
        let export = self.inner.export(batch);
        async move {
            let result = export.await;
            match &result {
                Ok(()) => spans_exported(n as u64),
                Err(_) => spans_dropped(DROP_EXPORT_FAILED, n as u64),
            }
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The batch processor behind a bound of `cap` waiting spans.
#[derive(Debug)]
pub(crate) struct Bounded {
    pub(crate) inner: BatchSpanProcessor,
    pub(crate) waiting: Waiting,
    pub(crate) cap: usize,
}

impl SpanProcessor for Bounded {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.cap {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            spans_dropped(DROP_QUEUE_FULL, 1);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The queue's size: `OTEL_BSP_MAX_QUEUE_SIZE` when it is a positive number, else the SDK's
/// default of 2,048.
pub(crate) fn queue_size(var: Option<&str>) -> usize {
    var.and_then(|v| v.trim().parse::<usize>().ok()).filter(|n| *n > 0).unwrap_or(2_048)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Tracer, TracerProvider};
    use opentelemetry_sdk::error::OTelSdkError;
    use opentelemetry_sdk::trace::{BatchConfigBuilder, SdkTracerProvider};
    use std::sync::Mutex;

    /// An exporter that holds each batch until released, or refuses it.
    #[derive(Debug, Clone, Default)]
    struct Gate {
        refuse: bool,
        open: Arc<Mutex<bool>>,
        got: Arc<AtomicUsize>,
    }

    impl SpanExporter for Gate {
        fn export(&self, batch: Vec<SpanData>) -> impl std::future::Future<Output = OTelSdkResult> + Send {
            let gate = self.clone();
            async move {
                while !*gate.open.lock().expect("lock") {
                    std::thread::sleep(Duration::from_millis(5));
                }
                gate.got.fetch_add(batch.len(), Ordering::AcqRel);
                if gate.refuse { Err(OTelSdkError::InternalFailure("collector answered 500".into())) } else { Ok(()) }
            }
        }
    }

    fn dropped(reason: &str) -> u64 {
        let text = plinth_core::metrics::Metrics::new("t", "c").render();
        let line = format!("t_spans_dropped_total{{component=\"c\",reason=\"{reason}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&line)).and_then(|v| v.parse().ok()).expect("the series")
    }

    fn provider(gate: &Gate, cap: usize) -> SdkTracerProvider {
        let waiting = Waiting::default();
        let exporter = Counted { inner: gate.clone(), waiting: waiting.clone() };
        let config = BatchConfigBuilder::default().with_max_queue_size(cap).with_max_export_batch_size(cap).build();
        let inner = BatchSpanProcessor::builder(exporter).with_batch_config(config).build();
        SdkTracerProvider::builder().with_span_processor(Bounded { inner, waiting, cap }).build()
    }

    #[test]
    fn a_full_queue_and_a_refused_batch_are_counted() {
        let (queue_full, failed) = (dropped(DROP_QUEUE_FULL), dropped(DROP_EXPORT_FAILED));
        let gate = Gate { refuse: true, ..Gate::default() };
        let p = provider(&gate, 4);
        let tracer = p.tracer("test");
        for _ in 0..20 {
            tracer.in_span("s", |_| {});
        }
        // While the exporter is held, one batch (4) is in its hands and at most 4 wait: the
        // other 12 or more are dropped at once.
        assert!(dropped(DROP_QUEUE_FULL) >= queue_full + 12, "queue_full counted");
        *gate.open.lock().expect("lock") = true;
        let _ = p.force_flush();
        let got = gate.got.load(Ordering::Acquire) as u64;
        assert!((1..=8).contains(&got), "the exporter saw the admitted spans: {got}");
        assert!(dropped(DROP_EXPORT_FAILED) >= failed + got, "a refused batch counts as export_failed");
        let _ = p.shutdown();
    }

    #[test]
    fn the_queue_size_comes_from_the_standard_variable() {
        assert_eq!(queue_size(Some("100")), 100);
        assert_eq!(queue_size(Some(" 64 ")), 64);
        assert_eq!(queue_size(Some("0")), 2_048);
        assert_eq!(queue_size(Some("many")), 2_048);
        assert_eq!(queue_size(None), 2_048);
    }
}
