//! The reads an operator makes, timed in turn ([`time_each`]) on a server with 100 runs queued
//! and on one with a backlog queued (the flow part's), or on an empty store and a full one (the
//! scale part's): the first page of runs, pages of the backlog's function (queued, and
//! succeeded, which it has none of but the pickups), a page of succeeded runs of any
//! function, the newest run of that function (with the backlog, the back of its queue), the
//! dashboard's overview and `/metrics`. Each is a ratio of p50s, flat at 1.5 at most (issue 16).

use super::load::Client;
use super::stats;
use serde_json::{Map, Value, json};
use std::time::Instant;

/// A read's p50 with the backlog over the same with [`BASE_QUEUE`] runs queued.
const TARGET_RATIO: f64 = 1.5;
/// Runs queued when the reads are first timed: more than a page, so both sides read full pages.
pub(crate) const BASE_QUEUE: usize = 100;

/// The reads, by name, for the runs of `function`; `newest` is that function's newest run.
pub(crate) fn reads(function: &str, newest: &str) -> Vec<(&'static str, String)> {
    vec![
        ("runs_first_page", "/runs".to_string()),
        ("runs_of_the_function_queued", format!("/runs?function={function}&status=queued")),
        // Why: the function's runs are all queued, so this range is empty; a store that reads
        // it through every succeeded run grows with the history (issue 16).
        ("runs_of_the_function_succeeded", format!("/runs?function={function}&status=succeeded")),
        ("runs_succeeded_of_any_function", "/runs?status=succeeded".to_string()),
        ("newest_run_of_the_function", format!("/runs/{newest}")),
        ("overview", "/ui".to_string()),
        ("metrics", "/metrics".to_string()),
    ]
}

/// GETs of each path before it is timed. Why so many: the server's pool hands its idle
/// connections out in turn, and a connection prepares a statement the first time it runs it and
/// plans it anew for its first five runs. Right after a burst of 64 clients had opened the pool's
/// connections, a page that takes 0.2 ms took 0.5 to 0.7 ms for the next hundred reads (100
/// runs in the table, a server of its own); timed then, a read measured how many connections
/// the burst opened, not how large the table is.
const WARM_UP: usize = 150;

/// Every read of [`reads`] for the runs of `function`, timed on each of `clients` (servers that
/// all have runs of it): one report per client, in order. Each read is warmed up with
/// [`WARM_UP`] GETs per server, then its `samples` GETs go to the servers in turn. Why in turn:
/// read one after the other (the empty side, the fill, the full side), the same page's p50 on
/// the same empty side moved from 0.64 to 1.17 ms between two runs of the bench on a shared
/// machine, more than the backlog moved it (session 43); read in turn, both sides meet the
/// same moments.
pub(crate) async fn time_each(clients: &[&Client], function: &str, samples: usize) -> Result<Vec<Value>, String> {
    let mut newest = Vec::with_capacity(clients.len());
    for client in clients {
        let page = client.get_json(&format!("/runs?function={function}&limit=1")).await?;
        let id = page["runs"][0]["run_id"].as_str().ok_or_else(|| format!("`{function}` has no run to read: {page}"))?;
        newest.push(id.to_string());
    }
    let mut out = vec![Map::new(); clients.len()];
    for (i, (name, _)) in reads(function, "").into_iter().enumerate() {
        let paths: Vec<String> = newest.iter().map(|id| reads(function, id).swap_remove(i).1).collect();
        for _ in 0..WARM_UP {
            for (client, path) in clients.iter().zip(&paths) {
                let (status, body) = client.get_text(path).await?;
                if status != 200 {
                    return Err(format!("GET {path} answered {status}: {}", body.chars().take(300).collect::<String>()));
                }
            }
        }
        let mut micros = vec![Vec::with_capacity(samples); clients.len()];
        for _ in 0..samples.max(1) {
            for ((client, path), micros) in clients.iter().zip(&paths).zip(micros.iter_mut()) {
                let t = Instant::now();
                client.get_text(path).await?;
                micros.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
            }
        }
        for ((report, path), micros) in out.iter_mut().zip(paths).zip(micros) {
            report.insert(name.to_string(), json!({"path": path, "latency": stats::summarize(&micros)}));
        }
    }
    Ok(out.into_iter().map(Value::Object).collect())
}

/// Each read's p50 ratio (`loaded` over `empty`, both from [`time_each`]) and its target.
pub(crate) fn compare(empty: &Value, loaded: &Value, backlog: usize) -> (Value, Vec<Value>) {
    let mut ratios = Map::new();
    let mut targets = Vec::new();
    for (name, _) in reads("", "") {
        let p50 = |v: &Value| v.pointer(&format!("/{name}/latency/p50_ms")).and_then(Value::as_f64);
        let ratio = p50(empty).zip(p50(loaded)).map(|(e, l)| stats::round3(l / e.max(1e-6)));
        ratios.insert(name.to_string(), json!(ratio));
        let what = format!("{name} p50 with {backlog} runs queued over {BASE_QUEUE}");
        targets.push(super::target(&what, "<=", TARGET_RATIO, ratio));
    }
    (Value::Object(ratios), targets)
}

#[cfg(test)]
mod tests {
    use super::compare;
    use serde_json::json;

    fn timed(p50: f64) -> serde_json::Value {
        let one = json!({"latency": {"p50_ms": p50}});
        json!({"runs_first_page": one, "runs_of_the_function_queued": one, "runs_of_the_function_succeeded": one,
               "runs_succeeded_of_any_function": one,
               "newest_run_of_the_function": one, "overview": one, "metrics": {"latency": {"p50_ms": p50 * 100.0}}})
    }

    #[test]
    fn each_read_is_a_ratio_with_its_target() {
        let (ratios, targets) = compare(&timed(1.0), &timed(1.2), 10);
        assert_eq!(ratios["overview"], json!(1.2));
        assert_eq!(ratios["metrics"], json!(1.2), "each read against itself");
        assert_eq!(targets.len(), 7);
        assert!(targets.iter().all(|t| t.to_string().contains("with 10 runs queued")), "{targets:?}");
    }

    #[test]
    fn a_read_missing_on_either_side_has_no_ratio() {
        let (ratios, targets) = compare(&json!({}), &timed(1.0), 10);
        assert!(ratios.as_object().expect("an object").values().all(serde_json::Value::is_null), "{ratios}");
        assert_eq!(targets.len(), 7, "a target without a figure is still listed");
        let (zero, _) = compare(&timed(0.0), &timed(1.0), 10);
        assert!(zero["overview"].as_f64().is_some_and(f64::is_finite), "an empty side of 0 ms does not divide by zero: {zero}");
    }
}
