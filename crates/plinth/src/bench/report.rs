//! How the bench reports: a round as rates and latencies, a target as met or not.

use super::{load, stats};
use serde_json::{Value, json};
use std::time::Duration;

pub(crate) fn round_report(r: &load::Round) -> Value {
    #[allow(clippy::cast_precision_loss)]
    let per_second = |n: usize, d: Duration| stats::round3(n as f64 / d.as_secs_f64().max(1e-9));
    json!({
        "accepted": r.accepted,
        "rejected": r.rejected,
        "not_succeeded": r.not_succeeded,
        "seconds": stats::round3(r.elapsed.as_secs_f64()),
        "runs_per_second": per_second(r.accepted, r.elapsed),
        "submitted_per_second": per_second(r.accepted, r.submit_elapsed),
        "post_run": stats::summarize(&r.post_micros),
        "wal_bytes_per_run": r.wal_bytes_per_run,
    })
}

pub(crate) fn target(name: &str, op: &str, bound: f64, measured: Option<f64>) -> Value {
    let met = measured.map(|m| if op == ">=" { m >= bound } else { m <= bound });
    json!({"name": name, "target": format!("{op} {bound}"), "measured": measured.map(stats::round3), "met": met})
}
