//! `plinth bench --backlog --history --prune-runs` end to end on a small store, both stores: every
//! flat-at-scale figure is reported, with the pruning side and the empty store timed as long.

use crate::harness::plinth;
use crate::pg::database_url;
use serde_json::Value;
use std::process::Command;

const SMALL: [&str; 28] = [
    "bench",
    "--runs",
    "20",
    "--rounds",
    "1",
    "--pickup-samples",
    "2",
    "--paced-rate",
    "200",
    "--http-runs",
    "0",
    "--auth-runs",
    "0",
    "--events",
    "0",
    "--step-runs",
    "0",
    "--flow-runs",
    "0",
    "--ui-history",
    "0",
    "--keyed-runs",
    "0",
    "--backlog",
    "20",
    "--history",
    "40",
    "--prune-runs",
];

/// Runs the small scale bench (20 of the 40 finished runs pruned) with `more` arguments; its
/// report, after checking what every store shows in its `scale` part.
fn small_scale(more: &[&str], dir: &std::path::Path) -> Value {
    let out = plinth(&[&SMALL[..], &["20"], more].concat(), &[], dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let scale = report["scale"].clone();
    assert_eq!((scale["backlog"].as_u64(), scale["history"].as_u64()), (Some(20), Some(40)), "{scale}");
    let ratios = scale["ratios"].as_object().expect("ratios");
    assert_eq!(ratios.len(), 11, "{scale}");
    assert!(ratios.values().all(|r| r.as_f64().is_some_and(|r| r > 0.0)), "every ratio measured: {scale}");
    let pruning = &scale["pruning"];
    assert_eq!(pruning["runs"], 20, "{pruning}");
    assert!(pruning["paced_post_run"]["samples"].as_u64().is_some_and(|n| n >= 400), "a round at least: {pruning}");
    assert!(pruning["empty_store_paced_post_run"]["samples"].as_u64().is_some_and(|n| n >= 400), "{pruning}");
    let (during, empty) = (pruning["seconds"].as_f64().unwrap_or(0.0), pruning["empty_store_seconds"].as_f64().unwrap_or(0.0));
    assert!(empty >= during, "the empty store is timed at least as long as the pruning: {pruning}");
    assert_eq!(pruning["p99_ratio"], ratios["POST /run p99 while pruning"], "{scale}");
    let targets = report["targets"].as_array().expect("targets");
    assert!(
        targets.iter().any(|t| t["name"] == "POST /run p99 while the pruner deletes 20 runs over as long on an empty store"),
        "{targets:?}"
    );
    assert!(scale["disk"]["bytes_per_finished_run"].as_f64().is_some_and(|b| b >= 0.0), "reported: {scale}");
    report
}

#[test]
fn a_small_scale_bench_times_pruning_against_an_empty_store_as_long() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("work");
    let report = small_scale(&["--dir", &work.display().to_string()], dir.path());
    let load = &report["load"];
    assert!(load["rounds"][0]["wal_bytes_per_run"].is_null(), "SQLite writes no PostgreSQL log: {load}");
    assert!(load["median_wal_bytes_per_run"].is_null(), "{load}");
    let scale = work.join("scale");
    assert!(scale.join("bench.db").exists(), "the filled store is where the report says");
    assert!(!scale.join("base").exists(), "the empty store's folder is removed after use");
}

#[test]
fn a_small_scale_bench_on_postgres_drops_every_schema_it_made() {
    let Some(url) = database_url() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let report = small_scale(&["--database-url", &url], dir.path());
    // The closed round's log per run: its own runs wrote some, and the whole server's log over
    // 20 runs is far from a gigabyte a run.
    let load = &report["load"];
    let wal = load["rounds"][0]["wal_bytes_per_run"].as_f64().expect("the log per run is read on PostgreSQL");
    assert!(wal > 100.0 && wal < 1e9, "{load}");
    assert_eq!(load["median_wal_bytes_per_run"].as_f64(), Some(wal), "one round: its own figure is the median");
    let left = Command::new("psql")
        .args([&url, "-Atc", "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'plinth\\_bench\\_%\\_scale%'"])
        .output()
        .expect("psql");
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "0", "no scale schema is left behind");
}

#[test]
fn a_prune_count_past_the_history_prunes_the_history_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = SMALL.to_vec();
    args.push("5000");
    let out = plinth(&args, &[], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["scale"]["pruning"]["runs"], 40, "at most the 40 finished runs: {}", report["scale"]);
}
