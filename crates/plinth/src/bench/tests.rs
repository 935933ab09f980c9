//! The benchmark's arguments and report shapes.

use super::*;

fn args() -> BenchArgs {
    BenchArgs {
        runs: 10,
        rounds: 1,
        concurrency: 2,
        pickup_samples: 1,
        workers: 4,
        sqlite_synchronous: "full".into(),
        server_log_level: "info".into(),
        paced_rate: 5000,
        paced_rounds: 1,
        http_runs: 0,
        keyed_runs: 0,
        auth_runs: 0,
        auth_rate: 1000,
        dir: None,
        binary: None,
        database_url: None,
        nodes: 1,
        claim_batch: None,
        events: 0,
        tick_seconds: 1,
        step_runs: 0,
        waiting: 0,
        flow_runs: 0,
        flow_backlog: 0,
        ui_history: 0,
        sdk_runs: 0,
        sdk_python: "python3".into(),
        otlp: false,
        otlp_runs: 0,
        backlog: 0,
        history: 0,
        prune_runs: 1_000_000,
    }
}

#[test]
fn sensible_arguments_pass() {
    assert_eq!(validate(&args()), Ok(()));
}

#[test]
fn zero_counts_are_refused() {
    assert!(validate(&BenchArgs { runs: 0, ..args() }).is_err());
    assert!(validate(&BenchArgs { concurrency: 0, ..args() }).is_err());
    let err = validate(&BenchArgs { paced_rounds: 0, ..args() }).expect_err("refused");
    assert!(err.contains("--paced-rounds") && err.contains("--paced-rate 0"), "it says how to skip them: {err}");
}

#[test]
fn an_unknown_durability_is_refused() {
    let err = validate(&BenchArgs { sqlite_synchronous: "sometimes".into(), ..args() }).expect_err("refused");
    assert!(err.contains("sometimes"), "{err}");
}

#[test]
fn several_nodes_need_postgres() {
    assert!(validate(&BenchArgs { nodes: 2, ..args() }).is_err_and(|e| e.contains("--nodes")));
    assert!(validate(&BenchArgs { nodes: 0, ..args() }).is_err());
    let pg = BenchArgs { nodes: 2, database_url: Some("postgres://postgres@127.0.0.1/postgres".into()), ..args() };
    assert_eq!(validate(&pg), Ok(()));
    let err = validate(&BenchArgs { database_url: Some("sqlite:///tmp/x.db".into()), ..args() }).expect_err("refused");
    assert!(err.contains("postgres://"), "{err}");
}

#[test]
fn targets_say_whether_they_were_met() {
    assert_eq!(target("x", ">=", 5.0, Some(6.0))["met"], json!(true));
    assert_eq!(target("x", "<=", 5.0, Some(6.0))["met"], json!(false));
    assert_eq!(target("x", "<=", 5.0, None)["met"], Value::Null);
}

#[test]
fn a_round_reports_rates_and_latencies() {
    let r = load::Round {
        accepted: 100,
        rejected: 0,
        not_succeeded: 0,
        elapsed: Duration::from_millis(500),
        submit_elapsed: Duration::from_millis(250),
        post_micros: vec![1000; 100],
        wal_bytes_per_run: Some(2048.5),
    };
    let v = round_report(&r);
    assert_eq!(v["wal_bytes_per_run"], json!(2048.5));
    assert_eq!(v["runs_per_second"], json!(200.0));
    assert_eq!(v["submitted_per_second"], json!(400.0));
    assert_eq!(v["post_run"]["p99_ms"], json!(1.0));
}

#[test]
fn medians_and_ratios_of_rounds_read_their_pointer() {
    let a = [serde_json::json!({"x": {"p99_ms": 4.0}}), serde_json::json!({"x": {"p99_ms": 2.0}}), serde_json::json!({})];
    let b = [serde_json::json!({"x": {"p99_ms": 1.0}}), serde_json::json!({"x": {"p99_ms": 3.0}})];
    assert_eq!(stats::median_at(&a, "/x/p99_ms"), Some(2.0), "the lower middle of the rounds that have it");
    assert_eq!(stats::ratio_at(&a, &b, "/x/p99_ms"), Some(2.0));
    assert_eq!(stats::ratio_at(&a, &[], "/x/p99_ms"), None, "no rounds, no ratio");
    assert_eq!(stats::ratio_at(&a, &[serde_json::json!({"x": {"p99_ms": 0.0}})], "/x/p99_ms"), None, "not over zero");
}

#[tokio::test]
async fn a_store_the_disk_cannot_hold_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let huge = BenchArgs { history: u64::MAX / 4, backlog: 1, dir: Some(dir.path().to_path_buf()), ..args() };
    let err = run(&huge).await.expect_err("refused");
    assert!(err.contains("ask for fewer runs or free some space"), "{err}");
    assert!(err.contains(&dir.path().join("scale").display().to_string()), "it names where it looked: {err}");
    assert!(!dir.path().join("scale").join("bench.db").exists(), "nothing was written");
}

#[test]
fn the_scale_settings_follow_the_arguments() {
    let s = scale_settings(&BenchArgs { backlog: 5, history: 7, prune_runs: 3, paced_rate: 0, pickup_samples: 1, ..args() });
    assert_eq!((s.backlog, s.history, s.prune), (5, 7, 3));
    assert!((s.rate - 100.0).abs() < f64::EPSILON, "a paced rate of 0 still paces the scale rounds: {}", s.rate);
    assert_eq!(s.samples, 5, "at least five samples a figure");
}

#[test]
fn every_store_of_its_own_has_its_schema_dropped() {
    let opts = ServerOptions {
        binary: "plinth".into(),
        dir: "/tmp/b".into(),
        workers: 1,
        synchronous: "full".into(),
        log_level: "info".into(),
        http_url: String::new(),
        api_key: None,
        postgres: Some(("postgres://h/db".into(), "plinth_bench_a".into())),
        claim_batch: None,
        extra: None,
        otlp: None,
        serve_args: Vec::new(),
    };
    let base = scale_options(&opts).own_store("base", "base");
    assert_eq!(base.dir, std::path::PathBuf::from("/tmp/b/scale/base"), "a folder inside the scale measure's");
    let schemas = own_schemas("plinth_bench_a");
    let flow = opts.own_store("flow-backlog", "flow");
    let flow_base = flow.own_store("base", "base");
    assert_eq!(flow_base.dir, std::path::PathBuf::from("/tmp/b/flow-backlog/base"), "a folder inside the flow part's");
    let twin = scale_options(&opts).own_store("twin", "twin");
    assert_eq!(twin.dir, std::path::PathBuf::from("/tmp/b/scale/twin"), "a folder inside the scale measure's");
    for own in [scale_options(&opts), base, twin, flow, flow_base, opts.own_store("dashboard", "ui")] {
        let (url, schema) = own.postgres.expect("on PostgreSQL still");
        assert_eq!(url, "postgres://h/db");
        assert!(schemas.contains(&schema), "{schema} is dropped at the end: {schemas:?}");
    }
    assert!(schemas.contains(&"plinth_bench_a".to_string()), "the main one too");
    let sqlite = ServerOptions { postgres: None, ..opts };
    assert_eq!(sqlite.own_store("scale", "scale").postgres, None, "SQLite stays SQLite, in a folder of its own");
}
