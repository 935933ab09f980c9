//! `resolve` and `mask`: precedence, sources, validation and secrets.
//!
//! Matches come from the real command line (`Cli::command()`). The process environment is never
//! changed: every `PLINTH_*` binding is removed so a developer's variables cannot leak in, and
//! the environment layer is exercised by binding a setting to `PATH`, which every test process has.

use super::*;
use crate::cli::Cli;
use clap::{CommandFactory, FromArgMatches};

const NAMES: [&str; 30] = [
    "config",
    "host",
    "port",
    "log_level",
    "log_dir",
    "database_url",
    "database_schema",
    "workers",
    "claim_batch",
    "shutdown_grace",
    "body_limit",
    "rate_limit",
    "rate_burst",
    "retention",
    "idempotency_window",
    "event_retention",
    "event_dedup_window",
    "lease",
    "kill_grace",
    "node_wait",
    "sqlite_synchronous",
    "metrics_prefix",
    "max_log_bytes",
    "max_output_bytes",
    "max_step_calls",
    "max_memo_bytes",
    "ui",
    "ui_path",
    "ui_secret",
    "otlp_endpoint",
];

/// A valid component whose `server:` section is `server` (YAML flow mapping).
fn component(server: &str) -> Result<Component, ConfigError> {
    let functions = "functions:\n  - name: f\n    handler: {command: {argv: [cat]}}\n";
    let text = format!("component: {{name: t, version: '1'}}\nserver: {server}\n{functions}");
    Component::parse(&text, "c.yaml", PathBuf::from("c.yaml"), PathBuf::from("."))
}

fn valid(server: &str) -> Component {
    component(server).expect("valid component")
}

/// `plinth config ARGS`, with `env_setting` (if any) read from `PATH` instead of its `PLINTH_*` variable.
fn parse(args: &[&str], env_setting: Option<&'static str>) -> (ServeArgs, ArgMatches) {
    let cmd = Cli::command().mut_subcommand("config", |c| {
        let c = c.mut_args(|a| a.env(None));
        match env_setting {
            Some(id) => c.mut_arg(id, |a| a.env("PATH")),
            None => c,
        }
    });
    let matches =
        cmd.try_get_matches_from(std::iter::once("plinth").chain(std::iter::once("config")).chain(args.iter().copied()));
    let matches = matches.expect("the command line parses");
    let sub = matches.subcommand_matches("config").expect("config subcommand").clone();
    (ServeArgs::from_arg_matches(&sub).expect("serve args"), sub)
}

fn settle(args: &[&str], env_setting: Option<&'static str>, server: &str) -> Result<Settings, ConfigError> {
    let (args, matches) = parse(args, env_setting);
    resolve(&args, Some(&matches), &valid(server))
}

fn ok(args: &[&str], server: &str) -> Settings {
    settle(args, None, server).expect("valid settings")
}

fn err(args: &[&str], env_setting: Option<&'static str>, server: &str) -> ConfigError {
    settle(args, env_setting, server).expect_err("invalid settings")
}

fn shown<'a>(s: &'a Settings, name: &str) -> &'a Shown {
    s.shown.iter().find(|x| x.name == name).unwrap_or_else(|| panic!("{name} is shown"))
}

fn path_var() -> String {
    std::env::var("PATH").expect("PATH is set for the test process")
}

#[test]
fn defaults_apply_when_no_layer_sets_a_value() {
    let s = ok(&[], "{}");
    assert_eq!(s.shown.iter().map(|x| x.name).collect::<Vec<_>>(), NAMES, "every setting once, in order");
    assert!(s.shown.iter().all(|x| x.source == Source::Default), "{:?}", s.shown);
    assert_eq!((s.host.as_str(), s.port, s.log_level.as_str(), s.log_dir.as_ref()), ("127.0.0.1", 8000, "info", None));
    assert_eq!((s.database_url.as_str(), s.workers), ("sqlite://.plinth/plinth.db", 16));
    assert_eq!(
        (s.shutdown_grace, s.lease, s.kill_grace, s.node_wait),
        (Duration::from_secs(30), Duration::from_secs(30), Duration::from_secs(5), Duration::from_secs(1))
    );
    assert_eq!(s.retention, Duration::from_secs(7 * 24 * 3600));
    assert_eq!((s.body_limit, s.max_log_bytes, s.max_output_bytes), (1024 * 1024, 1024 * 1024, 16 * 1024 * 1024));
    assert_eq!((s.sqlite_synchronous, s.metrics_prefix.as_str()), (Synchronous::Full, "plinth"));
    assert_eq!((shown(&s, "config").value.as_str(), shown(&s, "log_dir").value.as_str()), ("component.yaml", "(none)"));
    assert_eq!(shown(&s, "retention").value, "7days");
}

#[test]
fn the_file_beats_the_default() {
    let s = ok(&[], "{port: 9001, lease: 15s, log_dir: logs, sqlite_synchronous: normal, workers: 3}");
    assert_eq!((s.port, s.lease, s.workers, s.sqlite_synchronous), (9001, Duration::from_secs(15), 3, Synchronous::Normal));
    assert_eq!(s.log_dir, Some(PathBuf::from("logs")));
    for name in ["port", "lease", "log_dir", "sqlite_synchronous", "workers"] {
        assert_eq!(shown(&s, name).source, Source::File, "{name}");
    }
    assert_eq!(shown(&s, "lease").value, "15s");
    assert_eq!(shown(&s, "host").source, Source::Default, "settings the file leaves out keep their default");
}

#[test]
fn a_flag_beats_the_file() {
    let s = ok(
        &["--port", "9002", "--lease", "90s", "--log-dir", "flagged", "--workers", "7", "--config", "c.yaml"],
        "{port: 9001, lease: 15s, log_dir: logs, workers: 3}",
    );
    assert_eq!((s.port, s.lease, s.workers), (9002, Duration::from_secs(90), 7));
    assert_eq!(s.log_dir, Some(PathBuf::from("flagged")));
    for name in ["config", "port", "lease", "log_dir", "workers"] {
        assert_eq!(shown(&s, name).source, Source::Flag, "{name}");
    }
    assert_eq!(shown(&s, "lease").value, "1m 30s", "durations are shown in human form");
}

#[test]
fn the_environment_beats_the_file_and_a_flag_beats_the_environment() {
    let s = settle(&[], Some("host"), "{host: 0.0.0.0}").expect("valid");
    assert_eq!((s.host.clone(), shown(&s, "host").source), (path_var(), Source::Env));
    let s = settle(&["--host", "10.0.0.1"], Some("host"), "{host: 0.0.0.0}").expect("valid");
    assert_eq!((s.host.as_str(), shown(&s, "host").source), ("10.0.0.1", Source::Flag));
    let s = settle(&[], Some("log_dir"), "{log_dir: logs}").expect("valid");
    assert_eq!((s.log_dir.clone(), shown(&s, "log_dir").source), (Some(PathBuf::from(path_var())), Source::Env));
}

#[test]
fn without_matches_a_given_value_counts_as_a_flag() {
    let args = ServeArgs { port: Some(1234), ..ServeArgs::default() };
    let s = resolve(&args, None, &valid("{port: 9001}")).expect("valid");
    assert_eq!((s.port, shown(&s, "port").source), (1234, Source::Flag));
}

#[test]
fn an_invalid_duration_names_the_setting_and_its_source() {
    let e = err(&["--lease", "soon"], None, "{lease: 15s}");
    assert_eq!((e.source_name.as_str(), e.field.as_str()), ("flag", "lease"));
    assert!(e.reason.contains("`soon` is not a duration"), "{e}");
    let e = err(&[], Some("shutdown_grace"), "{}");
    assert_eq!((e.source_name.as_str(), e.field.as_str()), ("env", "shutdown_grace"));
    let e = component("{kill_grace: soon}").expect_err("a bad duration in the file");
    assert_eq!((e.source_name.as_str(), e.field.as_str()), ("c.yaml", "server.kill_grace"));
    assert!(e.to_string().ends_with("(PLINTH_001)"), "{e}");
}

#[test]
fn an_invalid_value_names_the_setting_and_its_source() {
    let e = err(&["--sqlite-synchronous", "sometimes"], None, "{}");
    assert_eq!((e.source_name.as_str(), e.field.as_str()), ("flag", "sqlite_synchronous"));
    assert!(e.reason.contains("`sometimes` is not one of full, normal, off"), "{e}");
    let e = err(&[], Some("metrics_prefix"), "{metrics_prefix: ok}");
    assert_eq!((e.source_name.as_str(), e.field.as_str()), ("env", "metrics_prefix"));
    let e = err(&[], None, "{workers: 0}");
    assert_eq!((e.source_name.as_str(), e.field.as_str()), ("c.yaml", "server.workers"));
    assert_eq!(e.to_string(), "c.yaml: server.workers: must be from 1 to 4096, got 0 (PLINTH_001)");
    let e = component("{port: 70000}").expect_err("a port out of range in the file");
    assert_eq!((e.source_name.as_str(), e.field.as_str()), ("c.yaml", "server.port"));
    let e = component("{colour: blue}").expect_err("an unknown server setting");
    assert_eq!(e.field, "server.colour");
}

#[test]
fn a_value_is_checked_whichever_layer_gives_it() {
    let e = err(&["--workers", "0"], None, "{workers: 4}");
    assert_eq!((e.source_name.as_str(), e.field.as_str()), ("flag", "workers"));
    let e = err(&["--claim-batch", "0"], None, "{}");
    assert_eq!((e.source_name.as_str(), e.field.as_str()), ("flag", "claim_batch"));
    let e = err(&[], None, "{claim_batch: 1001}");
    assert_eq!(e.to_string(), "c.yaml: server.claim_batch: must be from 1 to 1000, got 1001 (PLINTH_001)");
    assert_eq!(ok(&["--claim-batch", "8"], "{claim_batch: 4}").claim_batch, 8);
    assert_eq!(ok(&[], "{}").claim_batch, 32);
    let e = err(&[], None, "{sqlite_synchronous: sometimes}");
    assert_eq!((e.source_name.as_str(), e.field.as_str()), ("c.yaml", "server.sqlite_synchronous"));
    let e = err(&[], None, "{lease: 100ms}");
    assert_eq!(
        (e.source_name.as_str(), e.field.as_str(), e.reason.as_str()),
        ("c.yaml", "server.lease", "must be at least 500ms")
    );
    // A valid flag hides an invalid file value: the file's value is never used.
    let s = ok(&["--workers", "2"], "{workers: 0}");
    assert_eq!((s.workers, shown(&s, "workers").source), (2, Source::Flag));
}

#[test]
fn each_bound_is_enforced() {
    let cases: [(&[&str], &str, &str); 13] = [
        (&["--lease", "499ms"], "lease", "at least 500ms"),
        (&["--retention", "59s"], "retention", "at least 1m"),
        (&["--body-limit", "1023"], "body_limit", "from 1024 bytes to 256 MiB"),
        (&["--body-limit", "268435457"], "body_limit", "from 1024 bytes to 256 MiB"),
        (&["--workers", "4097"], "workers", "from 1 to 4096"),
        (&["--metrics-prefix", "a-b"], "metrics_prefix", "letters, digits and _"),
        (&["--metrics-prefix", ""], "metrics_prefix", "letters, digits and _"),
        (&["--log-level", "info,["], "log_level", "not a log level or filter"),
        (&["--database-url", "mysql://h/db"], "database_url", "not a SQLite URL"),
        (&["--shutdown-grace", "later"], "shutdown_grace", "not a duration"),
        (&["--kill-grace", "ten seconds"], "kill_grace", "not a duration"),
        (&["--node-wait", "a while"], "node_wait", "not a duration"),
        (&["--node-wait", "61s"], "node_wait", "at most 1m"),
    ];
    for (args, field, reason) in cases {
        let e = err(args, None, "{}");
        assert_eq!((e.source_name.as_str(), e.field.as_str()), ("flag", field), "{args:?}");
        assert!(e.reason.contains(reason), "{args:?}: {e}");
    }
    let s = ok(
        &["--lease", "500ms", "--retention", "1m", "--body-limit", "1024", "--workers", "4096", "--metrics-prefix", "a_1"],
        "{}",
    );
    assert_eq!(
        (s.lease, s.retention, s.body_limit, s.workers),
        (Duration::from_millis(500), Duration::from_secs(60), 1024, 4096)
    );
    let s = ok(
        &["--body-limit", "268435456", "--workers", "1", "--sqlite-synchronous", "OFF", "--log-level", "warn,plinth=debug"],
        "{}",
    );
    assert_eq!((s.body_limit, s.workers, s.sqlite_synchronous), (256 * 1024 * 1024, 1, Synchronous::Off));
}

#[test]
fn the_wait_on_the_node_comes_from_a_flag_or_the_file_from_zero_to_a_minute() {
    assert_eq!(ok(&["--node-wait", "0s"], "{}").node_wait, Duration::ZERO, "0 sends runs to the queue at once");
    assert_eq!(ok(&["--node-wait", "1m"], "{}").node_wait, Duration::from_secs(60), "the longest allowed");
    let s = ok(&[], "{node_wait: 250ms}");
    assert_eq!((s.node_wait, shown(&s, "node_wait").source), (Duration::from_millis(250), Source::File));
    let e = err(&[], None, "{node_wait: 2m}");
    assert_eq!((e.source_name.as_str(), e.field.as_str()), ("c.yaml", "server.node_wait"), "{e}");
    assert!(e.reason.contains("at most 1m"), "{e}");
}

#[test]
fn mask_hides_only_the_password() {
    assert_eq!(mask("postgres://u:secret@h/db"), "postgres://u:****@h/db");
    assert_eq!(mask("postgres://u:p@ss@h:5432/db?sslmode=require"), "postgres://u:****@h:5432/db?sslmode=require");
    assert_eq!(mask("postgres://u@h/db"), "postgres://u@h/db", "a user without a password is kept");
    assert_eq!(mask("postgres://h:5432/db"), "postgres://h:5432/db", "a port is not a password");
    assert_eq!(mask("sqlite://.plinth/plinth.db"), "sqlite://.plinth/plinth.db");
    assert_eq!(mask("u:secret@h"), "u:secret@h", "without a scheme nothing is recognised");
    assert_eq!(mask(""), "");
}

#[test]
fn the_database_url_is_masked_when_shown_but_kept_for_use() {
    let url = "sqlite://admin:hunter2@/tmp/x.db";
    let s = ok(&["--database-url", url], "{}");
    assert_eq!(s.database_url, url, "the store gets the real URL");
    assert_eq!(shown(&s, "database_url").value, "sqlite://admin:****@/tmp/x.db");
    assert!(s.shown.iter().all(|x| !x.value.contains("hunter2")), "{:?}", s.shown);
    let s = ok(&[], "{database_url: 'sqlite://admin:hunter2@/tmp/x.db'}");
    assert_eq!(
        (shown(&s, "database_url").value.as_str(), shown(&s, "database_url").source),
        ("sqlite://admin:****@/tmp/x.db", Source::File)
    );
}

#[test]
fn an_invalid_database_url_does_not_echo_its_password() {
    for (args, server, source) in [
        (&["--database-url", "mysql://u:secret@h/db"][..], "{}", "flag"),
        (&[][..], "{database_url: 'mysql://u:secret@h/db'}", "c.yaml"),
    ] {
        let e = err(args, None, server);
        assert_eq!(e.source_name, source);
        assert!(!e.to_string().contains("secret"), "the password leaks: {e}");
        assert!(e.reason.contains("mysql://u:****@h/db") && e.reason.contains("not a SQLite URL"), "{e}");
    }
}

#[test]
fn log_levels_and_filters_are_accepted() {
    for level in ["info", "WARN", "warn,plinth=debug", "plinth_engine=trace", "off"] {
        assert_eq!(ok(&["--log-level", level], "{}").log_level, level, "{level}");
    }
}

#[test]
fn an_unknown_bare_log_level_is_refused() {
    for level in ["verbose", "info,loud", "warning"] {
        let e = err(&["--log-level", level], None, "{}");
        assert_eq!((e.source_name.as_str(), e.field.as_str()), ("flag", "log_level"), "{level}");
    }
    let e = err(&[], None, "{log_level: chatty}");
    assert_eq!(e.field, "server.log_level");
}

#[test]
fn the_idempotency_window_defaults_to_a_day_and_follows_the_layers() {
    assert_eq!(ok(&[], "{}").idempotency_window, Duration::from_secs(24 * 3600));
    assert_eq!(ok(&[], "{idempotency_window: 48h}").idempotency_window, Duration::from_secs(48 * 3600));
    assert_eq!(ok(&["--idempotency-window", "2h"], "{idempotency_window: 48h}").idempotency_window, Duration::from_secs(7200));
}

#[test]
fn a_too_short_or_invalid_idempotency_window_is_refused() {
    let e = err(&["--idempotency-window", "30s"], None, "{}");
    assert_eq!((e.field.as_str(), e.reason.as_str()), ("idempotency_window", "must be at least 1m"));
    let e = component("{idempotency_window: soon}").expect_err("not a duration");
    assert_eq!(e.field, "server.idempotency_window");
    let e = err(&[], None, "{idempotency_window: 10s}");
    assert_eq!((e.field.as_str(), e.source_name.as_str()), ("server.idempotency_window", "c.yaml"));
}

#[test]
fn rate_limits_are_off_by_default_and_burst_follows_the_rate() {
    let s = ok(&[], "{}");
    assert_eq!((s.rate_limit, s.rate_burst), (0, 1));
    let s = ok(&["--rate-limit", "50"], "{}");
    assert_eq!((s.rate_limit, s.rate_burst), (50, 100));
    let s = ok(&["--rate-limit", "50"], "{rate_burst: 5}");
    assert_eq!((s.rate_limit, s.rate_burst, shown(&s, "rate_burst").source), (50, 5, Source::File));
}

#[test]
fn out_of_range_rate_limits_are_refused() {
    assert_eq!(err(&["--rate-limit", "2000000"], None, "{}").field, "rate_limit");
    assert_eq!(err(&["--rate-burst", "0"], None, "{}").field, "rate_burst");
    assert_eq!(err(&[], None, "{rate_burst: 0}").field, "server.rate_burst");
}

#[test]
fn a_postgres_url_selects_postgres_with_a_schema() {
    let s = ok(&["--database-url", "postgres://u:pw@db.internal:5432/plinth"], "{}");
    assert!(crate::config::is_postgres_url(&s.database_url));
    assert_eq!(
        (s.database_schema.as_str(), shown(&s, "database_url").value.as_str()),
        ("plinth", "postgres://u:****@db.internal:5432/plinth")
    );
    let s = ok(&["--database-url", "postgresql://h/db", "--database-schema", "orders_v2"], "{}");
    assert_eq!(s.database_schema, "orders_v2");
}

#[test]
fn an_invalid_schema_name_is_refused() {
    for bad in ["Orders", "pg_catalog", "1abc", "a-b", ""] {
        let e = err(&["--database-schema", bad], None, "{}");
        assert_eq!(e.field, "database_schema", "{bad}");
    }
    assert_eq!(err(&[], None, "{database_schema: 'x y'}").field, "server.database_schema");
}

#[test]
fn the_dashboard_is_on_at_ui_by_default_and_follows_the_layers() {
    let s = ok(&[], "{}");
    assert_eq!((s.ui, s.ui_path.as_str(), shown(&s, "ui").source), (true, "/ui", Source::Default));
    let s = ok(&[], "{ui: false, ui_path: /ops/board}");
    assert_eq!((s.ui, s.ui_path.as_str(), shown(&s, "ui_path").source), (false, "/ops/board", Source::File));
    let s = ok(&["--ui", "--ui-path", "/dash"], "{ui: false}");
    assert_eq!((s.ui, s.ui_path.as_str(), shown(&s, "ui").source), (true, "/dash", Source::Flag));
    let s = ok(&["--ui", "false"], "{}");
    assert!(!s.ui);
}

#[test]
fn a_dashboard_path_that_cannot_be_served_is_refused() {
    for (path, says) in
        [("ui", "must start with `/`"), ("/runs", "would hide the API"), ("/a b", "holds ` `"), ("/ui/", "no empty one")]
    {
        let e = err(&["--ui-path", path], None, "{}");
        assert_eq!((e.source_name.as_str(), e.field.as_str()), ("flag", "ui_path"), "{path}");
        assert!(e.reason.contains(says), "{path}: {e}");
    }
    let e = err(&[], None, "{ui_path: /health}");
    assert_eq!(e.field, "server.ui_path");
    let e = component("{ui: maybe}").expect_err("not a boolean");
    assert!(e.to_string().contains("ui"), "{e}");
}
