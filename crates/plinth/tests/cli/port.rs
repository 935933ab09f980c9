//! `--port`: serving on the given port, and a clear failure when it is taken.

use crate::harness::{Served, client, component_dir, component_text, plinth, send};
use nix::sys::signal::Signal;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

const FUNCTIONS: &str = "  - name: echo\n    handler: {command: {argv: [cat]}}\n";

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no port in {addr}"))
}

/// `plinth serve` failed because `port` is taken: non-zero exit, the address and the cause on
/// stderr, a JSON error line on stdout.
fn assert_port_taken(out: &Output, port: u16) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "served on a taken port");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{err}");
    assert!(err.to_lowercase().contains("address already in use"), "the cause is given: {err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "cannot listen");
    let line = line.unwrap_or_else(|| panic!("no `cannot listen` log line: {stdout}"));
    assert_eq!((&line["level"], &line["code"]), (&"error".into(), &"PLINTH_001".into()), "{line}");
}

fn serve_on(config: &Path, port: &str, cwd: &Path) -> Output {
    plinth(&["serve", "--config", config.to_str().expect("utf-8"), "--port", port], &[], cwd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_freed_by_a_stopped_server_is_served_again() {
    let (dir, config) = component_dir(&component_text("ports", FUNCTIONS));
    let first = Served::start(&config, &[], dir.path());
    let port = port_of(&first.addr);
    assert!(first.signal_and_wait(Signal::SIGTERM, Duration::from_secs(30)).success());
    let port_arg = port.to_string();
    let args = ["serve", "--config", config.to_str().expect("utf-8"), "--port", port_arg.as_str()];
    let second = Served::spawn(&args, &[], dir.path());
    assert_eq!(second.addr, format!("127.0.0.1:{port}"), "the given port is used");
    let (code, body) = send(client().get(second.url("/health"))).await;
    assert_eq!((code, &body["status"]), (200, &"healthy".into()), "{body}");
    assert!(second.signal_and_wait(Signal::SIGTERM, Duration::from_secs(30)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_held_by_another_server_is_refused_and_the_first_keeps_serving() {
    let (dir, config) = component_dir(&component_text("ports", FUNCTIONS));
    let first = Served::start(&config, &[], dir.path());
    let port = port_of(&first.addr);
    let other = tempfile::tempdir().expect("tempdir");
    let out = serve_on(&config, &port.to_string(), other.path());
    assert_port_taken(&out, port);
    let (code, _) = send(client().get(first.url("/ready"))).await;
    assert_eq!(code, 200, "the first server is untouched");
    assert!(first.signal_and_wait(Signal::SIGTERM, Duration::from_secs(30)).success());
}

#[test]
fn a_taken_port_from_the_environment_or_the_file_is_refused() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = taken.local_addr().expect("addr").port();
    let (dir, config) = component_dir(&component_text("ports", FUNCTIONS));
    let config_arg = config.to_str().expect("utf-8");
    let port_text = port.to_string();
    let out = plinth(&["serve", "--config", config_arg], &[("PLINTH_PORT", port_text.as_str())], dir.path());
    assert_port_taken(&out, port);

    std::fs::write(&config, format!("{}server: {{port: {port}}}\n", component_text("ports", FUNCTIONS))).expect("rewrite");
    let out = plinth(&["serve", "--config", config_arg], &[], dir.path());
    assert_port_taken(&out, port);
    drop(taken);
}
