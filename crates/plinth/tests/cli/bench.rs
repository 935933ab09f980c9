//! `plinth bench` end to end on a small load (figures are printed, never asserted).

use crate::harness::plinth;
use serde_json::Value;

#[test]
fn a_small_bench_reports_every_figure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = plinth(
        &[
            "bench",
            "--runs",
            "300",
            "--rounds",
            "2",
            "--concurrency",
            "8",
            "--workers",
            "8",
            "--pickup-samples",
            "3",
            "--paced-rate",
            "1000",
            "--paced-rounds",
            "2",
            "--http-runs",
            "100",
            "--auth-runs",
            "100",
            "--auth-rate",
            "500",
            "--events",
            "3000",
            "--tick-seconds",
            "2",
            "--step-runs",
            "60",
            "--waiting",
            "200",
            "--flow-runs",
            "300",
            "--flow-backlog",
            "2000",
            "--ui-history",
            "3000",
            "--otlp",
            "--otlp-runs",
            "100",
        ],
        &[],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("round 2/2"), "progress is shown: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let rounds = report["load"]["rounds"].as_array().expect("rounds");
    assert_eq!(rounds.len(), 2);
    for r in rounds {
        assert_eq!((r["accepted"].as_u64(), r["rejected"].as_u64(), r["not_succeeded"].as_u64()), (Some(300), Some(0), Some(0)));
        assert_eq!(r["post_run"]["samples"], 300);
        assert!(r["runs_per_second"].as_f64().is_some_and(|x| x > 0.0));
    }
    let paced = &report["load"]["paced"];
    assert_eq!(paced["target_runs_per_second"], 1000);
    let paced_rounds = paced["rounds"].as_array().expect("paced rounds");
    assert_eq!(paced_rounds.len(), 2, "{paced}");
    for r in paced_rounds {
        assert_eq!((r["accepted"].as_u64(), r["rejected"].as_u64()), (Some(300), Some(0)));
        // 300 submissions due over 0.3 s: paced, never faster than asked (allowing for rounding).
        assert!(r["submitted_per_second"].as_f64().is_some_and(|x| x > 0.0 && x < 1100.0), "{paced}");
        // A flush every 20 ms over a round of at least 0.3 s.
        assert!(r["disk_flush"]["samples"].as_u64().is_some_and(|n| n >= 5), "the disk probed beside it: {paced}");
    }
    assert!(paced["median_post_run_p99_ms"].as_f64().is_some_and(|p| p > 0.0), "{paced}");
    assert!(paced["median_disk_flush_p99_ms"].as_f64().is_some_and(|p| p > 0.0), "{paced}");
    assert!(stderr.contains("paced round 2/2"), "each paced round shows progress: {stderr}");
    let http = &report["load"]["http_handler"];
    assert_eq!((http["accepted"].as_u64(), http["not_succeeded"].as_u64()), (Some(100), Some(0)), "{http}");
    assert_eq!(report["idle_pickup"]["created_to_started"]["samples"], 3);
    assert!(report["memory_mib"]["idle_rss"].as_f64().is_some_and(|m| m > 1.0));
    assert!(report["memory_mib"]["peak_rss"].as_f64() >= report["memory_mib"]["idle_rss"].as_f64());
    assert_eq!(report["targets"].as_array().map(Vec::len), Some(30), "seven of them the reads with the backlog");
    let export = &report["otlp_export"];
    assert!(export["throughput_ratio"].as_f64().is_some_and(|r| r > 0.0), "{export}");
    assert!(export["p99_ratio"].as_f64().is_some_and(|r| r > 0.0), "{export}");
    assert!(export["receiver_bytes"].as_u64().is_some_and(|b| b > 0), "spans reached the receiver: {export}");
    let steps = &report["steps"];
    for key in ["in_process_three_steps", "http_five_steps"] {
        assert_eq!((steps[key]["runs"].as_u64(), steps[key]["not_succeeded"].as_u64()), (Some(60), Some(0)), "{steps}");
        assert!(steps[key]["workflows_per_second"].as_f64().is_some_and(|r| r > 0.0), "{steps}");
    }
    for key in ["sleep_wake_lateness", "event_to_resume", "post_events_empty", "post_events_with_waiting"] {
        assert_eq!(steps[key]["samples"], 3, "{key}: {steps}");
    }
    assert_eq!(steps["waiting_runs"], 200, "{steps}");
    assert!(steps["rss_mib_with_waiting"].as_f64().is_some_and(|m| m > 1.0), "{steps}");
    assert!(steps["post_events_p50_ratio"].as_f64().is_some_and(|r| r > 0.0), "{steps}");
    let events = &report["events"];
    for key in ["stored_no_trigger", "each_starting_a_run"] {
        assert_eq!(events[key]["events"], 3000, "{events}");
        assert!(events[key]["end_to_end_per_second"].as_f64().is_some_and(|r| r > 0.0), "{events}");
    }
    assert_eq!(events["event_to_start"]["samples"], 3, "{events}");
    assert!(events["tick_lateness_idle"]["samples"].as_u64().is_some_and(|n| n >= 1), "a tick in 2 s: {events}");
    let auth = &report["auth_overhead"];
    for key in ["rounds_with_api_key", "rounds_without_auth"] {
        let rounds = auth[key].as_array().expect("rounds");
        assert!(rounds.len() == 2 && rounds.iter().all(|r| r["samples"] == 100), "{auth}");
    }
    assert!(auth["p50_ratio"].as_f64().is_some_and(|r| r > 0.0), "{auth}");
    assert_eq!(report["server_exit"], "exit status: 0");
    let flow = &report["flow_control"];
    assert!(flow["throughput"]["keyed_over_unkeyed"].as_f64().is_some_and(|r| r > 0.0), "{flow}");
    assert_eq!(flow["throughput"]["keyed_runs_per_second"].as_array().map(Vec::len), Some(2), "{flow}");
    assert_eq!(flow["backlog"]["backlog"], 2000, "{flow}");
    assert!(flow["backlog"]["p50_ratio"].as_f64().is_some_and(|r| r > 0.0), "{flow}");
    assert_eq!(flow["backlog"]["free_key_pickup_with_backlog"]["samples"], 3, "{flow}");
    let reads = [
        "runs_first_page",
        "runs_of_the_function_queued",
        "runs_of_the_function_succeeded",
        "runs_succeeded_of_any_function",
        "newest_run_of_the_function",
        "overview",
        "metrics",
    ];
    for read in reads {
        assert!(flow["backlog"]["reads_p50_ratio"][read].as_f64().is_some_and(|r| r > 0.0), "{read}: {flow}");
        assert_eq!(flow["backlog"]["reads_with_backlog"][read]["latency"]["samples"], 3, "{read}: {flow}");
    }
    let ui = &report["dashboard"];
    assert_eq!(ui["history"], 3000, "{ui}");
    for page in ["overview", "runs_first_page", "runs_by_status", "runs_by_input_field", "run_with_100_steps"] {
        assert_eq!(ui[page]["latency"]["samples"], 5, "{page}: {ui}");
        assert!(ui[page]["bytes"].as_u64().is_some_and(|b| b > 1000), "{page}: {ui}");
    }
    assert!(ui["overview_with_assets_kb"].as_f64().is_some_and(|kb| kb > 5.0), "{ui}");
}

#[test]
fn a_dashboard_bench_is_skipped_at_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = ["bench", "--runs", "20", "--rounds", "1", "--pickup-samples", "1", "--paced-rate", "0", "--http-runs", "0"];
    let rest = ["--auth-runs", "0", "--events", "0", "--step-runs", "0", "--flow-runs", "0", "--ui-history", "0"];
    let out = plinth(&[&args[..], &rest[..]].concat(), &[], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["dashboard"], Value::Null, "no dashboard figures without --ui-history");
    assert_eq!(report["otlp_export"], Value::Null, "no export figures without --otlp");
    assert!(
        report["targets"].as_array().is_some_and(|t| t.iter().all(|t| !t["name"].as_str().unwrap_or("").contains("dashboard")))
    );
}

#[test]
fn zero_runs_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = plinth(&["bench", "--runs", "0"], &[], dir.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 1"));
    assert!(out.stdout.is_empty(), "no report on error");
}

#[test]
fn a_missing_server_binary_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = plinth(&["bench", "--binary", "/nonexistent/plinth", "--runs", "1"], &[], dir.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot start /nonexistent/plinth"));
}
