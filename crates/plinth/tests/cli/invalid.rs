//! An invalid component file, flag or `PLINTH_*` value stops `serve` and `config` with exit code 2
//! and `PLINTH_001`, naming the file (or layer), the field and the reason.

use crate::harness::{Served, component_dir, component_text, plinth};
use std::path::Path;
use std::time::Duration;

const FUNCTIONS: &str = "  - name: echo\n    handler: {command: {argv: [cat]}}\n";

/// `plinth serve` and `plinth config` with `--config CONFIG ARGS` both exit 2 with `PLINTH_001`
/// and every `expected` fragment on stderr, print nothing on stdout, and open no database.
fn refused(config: &str, args: &[&str], envs: &[(&str, &str)], cwd: &Path, expected: &[&str]) {
    for cmd in ["serve", "config"] {
        let mut all = vec![cmd, "--config", config];
        if !args.contains(&"--port") {
            all.extend(["--port", "0"]);
        }
        all.extend(args);
        let out = plinth(&all, envs, cwd);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{all:?} {envs:?}: {err}");
        for fragment in expected.iter().chain(&["PLINTH_001"]) {
            assert!(err.contains(fragment), "{all:?} {envs:?}: `{fragment}` missing from stderr: {err}");
        }
        assert!(out.stdout.is_empty(), "{all:?}: nothing on stdout: {}", String::from_utf8_lossy(&out.stdout));
        assert!(!cwd.join(".plinth").exists(), "{all:?}: no database is created");
    }
}

/// A component file holding `text` and its path as text.
fn file(text: &str) -> (tempfile::TempDir, String) {
    let (dir, path) = component_dir(text);
    (dir, path.to_str().expect("utf-8").to_string())
}

#[test]
fn a_valid_component_is_accepted_by_config_and_serve() {
    let (dir, config) = file(&component_text("valid", FUNCTIONS));
    let out = plinth(&["config", "--config", &config], &[], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "no warning for a valid file: {}", String::from_utf8_lossy(&out.stderr));
    let served = Served::start(Path::new(&config), &[], dir.path());
    let status = served.signal_and_wait(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(30));
    assert!(status.success(), "{status}");
}

#[test]
fn an_unknown_key_stops_serve_and_config() {
    let base = component_text("unknown", FUNCTIONS);
    let (dir, config) = file(&format!("{base}    polcy: {{timeout: 5s}}\n"));
    refused(&config, &[], &[], dir.path(), &[&config, "functions[0].polcy", "unknown field `polcy`"]);
    let (dir, config) = file(&format!("{base}bogus: 1\n"));
    refused(&config, &[], &[], dir.path(), &[&config, ": bogus: unknown field `bogus`"]);
    let (dir, config) = file(&format!("{base}server: {{colour: blue}}\n"));
    refused(&config, &[], &[], dir.path(), &[&config, "server.colour", "unknown field `colour`"]);
}

#[test]
fn an_invalid_value_stops_serve_and_config() {
    let base = component_text("badvalue", FUNCTIONS);
    let (dir, config) = file(&format!("{base}    policy: {{timeout: soon}}\n"));
    refused(&config, &[], &[], dir.path(), &[&config, "functions[0].policy.timeout", "`soon` is not a duration"]);
    let (dir, config) = file(&format!("{base}server: {{workers: 0}}\n"));
    refused(&config, &[], &[], dir.path(), &[&config, "server.workers", "must be from 1 to 4096, got 0"]);
    let (dir, config) = file(&format!("{base}server: {{lease: soon}}\n"));
    refused(&config, &[], &[], dir.path(), &[&config, "server.lease", "`soon` is not a duration"]);
    let (dir, config) = file(&component_text("Bad Name", FUNCTIONS));
    refused(&config, &[], &[], dir.path(), &[&config, "component.name", "must start with a lowercase letter"]);
}

#[test]
fn a_missing_file_stops_serve_and_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.yaml");
    let missing = missing.to_str().expect("utf-8");
    refused(missing, &[], &[], dir.path(), &[&format!("{missing}: (file): cannot read it")]);
    // A folder is not a file either.
    let folder = dir.path().to_str().expect("utf-8");
    refused(folder, &[], &[], dir.path(), &[&format!("{folder}: (file): cannot read it")]);
    // Without --config, `component.yaml` in the current folder is looked for and named.
    for cmd in ["serve", "config"] {
        let out = plinth(&[cmd, "--port", "0"], &[], dir.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert!(err.contains("component.yaml: (file): cannot read it") && err.contains("PLINTH_001"), "{cmd}: {err}");
    }
}

#[test]
fn a_yaml_syntax_error_stops_serve_and_config() {
    let base = component_text("syntax", FUNCTIONS);
    let (dir, config) = file(&format!("{base}    policy: {{timeout: \"5s}}\n"));
    refused(&config, &[], &[], dir.path(), &[&config, "functions[0].policy.timeout", "while scanning a quoted scalar at line 5"]);
    let (dir, config) = file("component: {name: syntax, version: 0.1.0\nfunctions: []\n");
    refused(&config, &[], &[], dir.path(), &[&config, "component", "did not find expected ',' or '}'"]);
    let (dir, config) = file("");
    refused(&config, &[], &[], dir.path(), &[&config, "(document): missing field `component`"]);
}

#[test]
fn a_bad_flag_value_stops_serve_and_config() {
    let (dir, config) = file(&component_text("flags", FUNCTIONS));
    let cases: [(&[&str], &[&str]); 5] = [
        (&["--lease", "soon"], &["flag: lease: `soon` is not a duration"]),
        (&["--sqlite-synchronous", "sometimes"], &["flag: sqlite_synchronous: `sometimes` is not one of full, normal, off"]),
        (&["--log-level", "info,["], &["flag: log_level:"]),
        (&["--workers", "0"], &["flag: workers: must be from 1 to 4096"]),
        (&["--port", "70000"], &["--port", "70000"]),
    ];
    for (args, expected) in cases {
        refused(&config, args, &[], dir.path(), expected);
    }
}

#[test]
fn a_bad_environment_value_stops_serve_and_config() {
    let (dir, config) = file(&component_text("envs", FUNCTIONS));
    refused(&config, &[], &[("PLINTH_LEASE", "soon")], dir.path(), &["env: lease: `soon` is not a duration"]);
    refused(&config, &[], &[("PLINTH_METRICS_PREFIX", "a-b")], dir.path(), &["env: metrics_prefix:"]);
    refused(&config, &[], &[("PLINTH_WORKERS", "many")], dir.path(), &["--workers", "many"]);
    // A valid flag wins over the invalid variable, so the variable is never used.
    let out = plinth(&["config", "--config", &config, "--lease", "2s"], &[("PLINTH_LEASE", "soon")], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_trigger_that_does_not_parse_stops_serve_and_config() {
    let base = component_text("triggers", FUNCTIONS);
    let (dir, config) = file(&format!("{base}    triggers: [{{cron: '61 * * * *'}}]\n"));
    refused(
        &config,
        &[],
        &[],
        dir.path(),
        &[&config, "functions[0].triggers[0].cron", "`61 * * * *` is not a valid cron pattern"],
    );
    let (dir, config) = file(&format!("{base}    triggers: [{{cron: '0 9 * * *', timezone: Mars/Olympus}}]\n"));
    refused(
        &config,
        &[],
        &[],
        dir.path(),
        &[&config, "functions[0].triggers[0].timezone", "`Mars/Olympus` is not an IANA time zone"],
    );
    let (dir, config) = file(&format!("{base}    triggers: [{{event: shop/order.paid, if: 'event.data.amount >'}}]\n"));
    refused(&config, &[], &[], dir.path(), &[&config, "functions[0].triggers[0].if", "is not valid CEL"]);
    let (dir, config) = file(&format!("{base}    triggers: [{{event: Shop/Order}}]\n"));
    refused(&config, &[], &[], dir.path(), &[&config, "functions[0].triggers[0].event", "is not `component/event.name`"]);
    let (dir, config) = file(&format!("{base}events: {{nats: {{url: 'nats://x:1', stream: S}}}}\n"));
    refused(&config, &[], &[], dir.path(), &[&config, "events.nats.durable"]);
}
