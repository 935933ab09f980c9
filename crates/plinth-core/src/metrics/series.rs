//! The series of a labelled family that the hot path touches on every request and run, kept
//! by their label values so that finding one again allocates nothing.
//!
//! Why: `Family::get_or_create` takes the label set by value's type, so each call built one
//! `String` per label (ten a run: the request's counter and histogram, the run's counter,
//! histogram and in-flight gauge). The handles a family gives out share its sample, so a
//! handle kept here counts in the same series the registry renders.

use prometheus_client::encoding::EncodeMetric;
use prometheus_client::metrics::TypedMetric;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use std::collections::HashMap;
use std::sync::RwLock;

/// Between label values in a key: a control character, which no route, method, status,
/// function name or outcome holds, so two different label sets never share a key.
const SEPARATOR: u8 = 0x1f;
/// The longest key built on the stack; a longer one is built on the heap.
const ON_STACK: usize = 256;

/// A family with the handles of the series already made.
pub(super) struct Series<const N: usize, M, C = fn() -> M> {
    family: Family<[(&'static str, String); N], M, C>,
    names: [&'static str; N],
    made: RwLock<HashMap<Box<str>, M>>,
}

impl<const N: usize, M, C> Series<N, M, C>
where
    M: Clone + TypedMetric + EncodeMetric,
    C: MetricConstructor<M> + Clone,
{
    pub(super) fn new(family: Family<[(&'static str, String); N], M, C>, names: [&'static str; N]) -> Self {
        Self { family, names, made: RwLock::default() }
    }

    /// The family, for the registry.
    pub(super) fn family(&self) -> Family<[(&'static str, String); N], M, C> {
        self.family.clone()
    }

    /// The series of `values`, made on first use.
    pub(super) fn get(&self, values: [&str; N]) -> M {
        let mut stack = [0u8; ON_STACK];
        let heap;
        let len: usize = values.iter().map(|v| v.len() + 1).sum();
        let key: &str = if len <= ON_STACK {
            let mut at = 0;
            for v in values {
                stack[at..at + v.len()].copy_from_slice(v.as_bytes());
                stack[at + v.len()] = SEPARATOR;
                at += v.len() + 1;
            }
            std::str::from_utf8(&stack[..at]).unwrap_or_default()
        } else {
            heap = values.iter().flat_map(|v| [*v, "\u{1f}"]).collect::<String>();
            &heap
        };
        if let Some(m) = self.made.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(key) {
            return m.clone();
        }
        let labels: [(&'static str, String); N] = std::array::from_fn(|i| (self.names[i], values[i].to_string()));
        let m = self.family.get_or_create(&labels).clone();
        self.made.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key.into(), m.clone());
        m
    }
}

#[cfg(test)]
mod tests {
    use super::Series;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::registry::Registry;

    fn rendered(s: &Series<2, Counter>) -> String {
        let mut registry = Registry::default();
        registry.register("hits", "Hits", s.family());
        let mut out = String::new();
        encode(&mut out, &registry).unwrap_or_default();
        out
    }

    #[test]
    fn a_series_found_again_counts_in_the_one_the_family_renders() {
        let s: Series<2, Counter> = Series::new(Family::default(), ["a", "b"]);
        s.get(["x", "y"]).inc();
        s.get(["x", "y"]).inc();
        s.get(["x", "z"]).inc();
        let text = rendered(&s);
        assert!(text.contains("hits_total{a=\"x\",b=\"y\"} 2"), "{text}");
        assert!(text.contains("hits_total{a=\"x\",b=\"z\"} 1"), "{text}");
    }

    #[test]
    fn values_that_join_alike_stay_apart() {
        let s: Series<2, Counter> = Series::new(Family::default(), ["a", "b"]);
        s.get(["ab", "c"]).inc();
        s.get(["a", "bc"]).inc();
        s.get(["", ""]).inc();
        let text = rendered(&s);
        assert!(text.contains("hits_total{a=\"ab\",b=\"c\"} 1"), "{text}");
        assert!(text.contains("hits_total{a=\"a\",b=\"bc\"} 1"), "{text}");
        assert!(text.contains("hits_total{a=\"\",b=\"\"} 1"), "empty values are a series too: {text}");
    }

    #[test]
    fn values_too_long_for_the_stack_are_found_again_all_the_same() {
        let s: Series<2, Counter> = Series::new(Family::default(), ["a", "b"]);
        let long = "r".repeat(super::ON_STACK);
        s.get([&long, "y"]).inc();
        s.get([&long, "y"]).inc();
        let text = rendered(&s);
        assert!(text.contains(&format!("hits_total{{a=\"{long}\",b=\"y\"}} 2")), "{text}");
        assert_eq!(s.made.read().map(|m| m.len()).unwrap_or(0), 1, "one series kept");
    }
}
