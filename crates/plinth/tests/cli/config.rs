//! `plinth config`: every setting with its value and source, the precedence of the layers, and
//! database passwords kept out of every output.

use crate::harness::{component_dir, component_text, plinth};
use std::collections::BTreeMap;
use std::process::Output;

const FUNCTIONS: &str = "  - name: echo\n    handler: {command: {argv: [cat]}}\n";

const SETTINGS: [&str; 30] = [
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

/// A component file with this `server:` section (a YAML flow mapping).
fn with_server(server: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    component_dir(&format!("{}server: {server}\n", component_text("cfg", FUNCTIONS)))
}

/// The rows of `plinth config`: setting → (source, value); checks the header and the env column.
fn table(out: &Output) -> BTreeMap<String, (String, String)> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "plinth config failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines.next().expect("a header").split_whitespace().collect();
    assert_eq!(header, ["SETTING", "SOURCE", "ENV", "VALUE"]);
    let mut rows = BTreeMap::new();
    for line in lines {
        let mut rest = line;
        let mut cols = Vec::new();
        for _ in 0..3 {
            rest = rest.trim_start();
            let end = rest.find(' ').unwrap_or(rest.len());
            cols.push(&rest[..end]);
            rest = &rest[end..];
        }
        assert_eq!(cols[2], format!("PLINTH_{}", cols[0].to_ascii_uppercase()), "the env column of {line}");
        let previous = rows.insert(cols[0].to_string(), (cols[1].to_string(), rest.trim().to_string()));
        assert!(previous.is_none(), "{} is shown twice", cols[0]);
    }
    rows
}

fn row<'a>(rows: &'a BTreeMap<String, (String, String)>, name: &str) -> (&'a str, &'a str) {
    let (source, value) = rows.get(name).unwrap_or_else(|| panic!("{name} is not shown: {rows:?}"));
    (source.as_str(), value.as_str())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn config_prints_every_setting_with_its_value_and_source() {
    let (dir, _) = component_dir(&component_text("cfg", FUNCTIONS));
    // No flag at all: `component.yaml` in the current folder is the default.
    let rows = table(&plinth(&["config"], &[], dir.path()));
    assert_eq!(rows.keys().map(String::as_str).collect::<Vec<_>>().len(), SETTINGS.len(), "{rows:?}");
    for name in SETTINGS {
        assert_eq!(row(&rows, name).0, "default", "{name}");
    }
    let expected = [
        ("config", "component.yaml"),
        ("host", "127.0.0.1"),
        ("port", "8000"),
        ("log_level", "info"),
        ("log_dir", "(none)"),
        ("database_url", "sqlite://.plinth/plinth.db"),
        ("database_schema", "plinth"),
        ("workers", "16"),
        ("shutdown_grace", "30s"),
        ("body_limit", "1048576"),
        ("rate_limit", "0"),
        ("rate_burst", "1"),
        ("retention", "7days"),
        ("idempotency_window", "1day"),
        ("event_retention", "7days"),
        ("event_dedup_window", "1day"),
        ("lease", "30s"),
        ("kill_grace", "5s"),
        ("node_wait", "1s"),
        ("sqlite_synchronous", "full"),
        ("metrics_prefix", "plinth"),
        ("max_log_bytes", "1048576"),
        ("max_output_bytes", "16777216"),
    ];
    for (name, value) in expected {
        assert_eq!(row(&rows, name).1, value, "{name}");
    }
}

#[test]
fn a_flag_beats_the_environment_which_beats_the_file_which_beats_the_default() {
    let (dir, config) = with_server("{lease: 10s, workers: 3, port: 9001, log_dir: file-logs}");
    let config = config.to_str().expect("utf-8");
    let out = plinth(
        &["config", "--config", config, "--lease", "40s"],
        &[("PLINTH_LEASE", "20s"), ("PLINTH_WORKERS", "5"), ("PLINTH_HOST", "0.0.0.0")],
        dir.path(),
    );
    let rows = table(&out);
    assert_eq!(row(&rows, "config"), ("flag", config));
    assert_eq!(row(&rows, "lease"), ("flag", "40s"), "flag over env over file");
    assert_eq!(row(&rows, "workers"), ("env", "5"), "env over file");
    assert_eq!(row(&rows, "host"), ("env", "0.0.0.0"), "env over default");
    assert_eq!(row(&rows, "port"), ("file", "9001"), "file over default");
    assert_eq!(row(&rows, "log_dir"), ("file", "file-logs"));
    assert_eq!(row(&rows, "retention"), ("default", "7days"));
}

#[test]
fn the_component_file_itself_can_come_from_the_environment() {
    let (dir, config) = with_server("{port: 9001}");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let config = config.to_str().expect("utf-8");
    let rows = table(&plinth(&["config"], &[("PLINTH_CONFIG", config)], elsewhere.path()));
    assert_eq!(row(&rows, "config"), ("env", config));
    assert_eq!(row(&rows, "port"), ("file", "9001"), "the file named by PLINTH_CONFIG is read");
    drop(dir);
}

#[test]
fn a_masked_database_url_is_shown_with_its_source() {
    let (dir, config) = with_server("{}");
    let url = "sqlite://admin:hunter2pw@/tmp/plinth-test.db";
    let out = plinth(&["config", "--config", config.to_str().expect("utf-8"), "--database-url", url], &[], dir.path());
    let rows = table(&out);
    assert_eq!(row(&rows, "database_url"), ("flag", "sqlite://admin:****@/tmp/plinth-test.db"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hunter2pw"));
    assert!(!stderr(&out).contains("hunter2pw"));
    let key = "a-session-signing-secret-of-40-bytes-long";
    let out = plinth(&["config", "--config", config.to_str().expect("utf-8"), "--ui-secret", key], &[], dir.path());
    assert_eq!(row(&table(&out), "ui_secret"), ("flag", "****"), "the dashboard's secret is masked");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(key));
    let out = plinth(&["config", "--config", config.to_str().expect("utf-8"), "--ui-secret", "short"], &[], dir.path());
    assert!(
        !out.status.success() && stderr(&out).contains("at least 32 bytes") && !stderr(&out).contains("short"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_database_password_in_a_flag_never_appears_in_any_output() {
    let (dir, config) = with_server("{}");
    let config = config.to_str().expect("utf-8");
    for cmd in ["config", "serve"] {
        let out =
            plinth(&[cmd, "--config", config, "--port", "0", "--database-url", "mysql://u:hunter2pw@h/db"], &[], dir.path());
        assert_eq!(out.status.code(), Some(2), "{cmd}: a non-SQLite URL is refused: {}", stderr(&out));
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert!(!all.contains("hunter2pw"), "{cmd}: the password leaks: {all}");
        assert!(stderr(&out).contains("flag: database_url: `mysql://u:****@h/db`"), "{cmd}: {}", stderr(&out));
        assert!(stderr(&out).contains("PLINTH_001"), "{cmd}: {}", stderr(&out));
    }
}

#[test]
fn a_database_password_in_the_environment_or_the_file_never_appears() {
    let (dir, config) = with_server("{database_url: 'mysql://u:hunter2pw@h/db'}");
    let config = config.to_str().expect("utf-8");
    let out = plinth(&["config", "--config", config], &[("PLINTH_DATABASE_URL", "mysql://v:hidden@h/db")], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(!err.contains("hidden") && !err.contains("hunter2pw"), "{err}");
    assert!(err.contains("env: database_url: `mysql://v:****@h/db`") && err.contains("PLINTH_001"), "{err}");

    let out = plinth(&["config", "--config", config], &[], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(!err.contains("hunter2pw"), "{err}");
    assert!(err.contains(&format!("{config}: server.database_url: `mysql://u:****@h/db`")), "{err}");
}
