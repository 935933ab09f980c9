//! `--log-dir`: the JSON lines of stdout are also written to a file under the folder.

use crate::harness::{Served, client, component_dir, component_text, parse_lines, plinth, submit};
use nix::sys::signal::Signal;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const FUNCTIONS: &str = "  - name: echo\n    handler: {command: {argv: [cat]}}\n";

/// Every line of every file under `dir`, files in name order.
fn file_lines(dir: &Path) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir).expect("the log folder exists").map(|e| e.expect("entry").path()).collect();
    files.sort();
    assert!(!files.is_empty(), "no log file under {}", dir.display());
    for f in &files {
        let name = f.file_name().and_then(|n| n.to_str()).expect("utf-8 name");
        assert!(name.starts_with("plinth.log"), "unexpected file {name}");
    }
    files
        .iter()
        .flat_map(|f| std::fs::read_to_string(f).expect("read log file").lines().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

/// Serves with `args`/`envs`, runs one run, stops, and returns (stdout lines, the log folder's lines).
async fn serve_one_run(
    dir: &Path,
    config: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
    logs: &Path,
) -> (Vec<String>, Vec<String>) {
    let config = config.to_str().expect("utf-8");
    let all: Vec<&str> = ["serve", "--config", config, "--port", "0"].into_iter().chain(args.iter().copied()).collect();
    let s = Served::spawn(&all, envs, dir);
    let c = client();
    let id = submit(&c, &s, "echo", json!({})).await;
    s.log_line("`attempt succeeded`", |l| l["message"] == "attempt succeeded" && l["run_id"] == id.as_str()).await;
    let (status, stdout) = s.stop(Signal::SIGTERM, Duration::from_secs(30));
    assert!(status.success(), "{status}");
    (stdout, file_lines(logs))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_dir_holds_the_same_json_lines_as_stdout() {
    let (dir, config) = component_dir(&component_text("filed", FUNCTIONS));
    let logs = dir.path().join("logs").join("nested");
    let logs_arg = logs.to_str().expect("utf-8");
    let (stdout, filed) = serve_one_run(dir.path(), &config, &["--log-dir", logs_arg], &[], &logs).await;
    assert_eq!(filed, stdout, "the file holds exactly what stdout printed");
    let parsed = parse_lines(&filed);
    for message in ["listening", "attempt started", "attempt succeeded", "stopped"] {
        assert!(parsed.iter().any(|l| l["message"] == message), "no `{message}` line in the file");
    }
    assert!(parsed.iter().all(|l| l["component"] == "filed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_dir_can_come_from_the_environment_or_the_file() {
    let (dir, config) = component_dir(&component_text("filed", FUNCTIONS));
    let from_env = dir.path().join("env-logs");
    let env = from_env.to_str().expect("utf-8");
    let (stdout, filed) = serve_one_run(dir.path(), &config, &[], &[("PLINTH_LOG_DIR", env)], &from_env).await;
    assert_eq!(filed, stdout);

    let from_file = dir.path().join("file-logs");
    let text = format!("{}server: {{log_dir: '{}'}}\n", component_text("filed", FUNCTIONS), from_file.display());
    std::fs::write(&config, text).expect("rewrite component.yaml");
    let (stdout, filed) = serve_one_run(dir.path(), &config, &[], &[], &from_file).await;
    assert_eq!(filed, stdout);
}

/// `plinth serve --log-dir LOG_DIR` exits 2 naming the folder with PLINTH_001, and never serves.
fn refused_log_dir(log_dir: &Path) {
    let (dir, config) = component_dir(&component_text("filed", FUNCTIONS));
    let (config, log_dir_arg) = (config.to_str().expect("utf-8"), log_dir.to_str().expect("utf-8"));
    let out = plinth(&["serve", "--config", config, "--port", "0", "--log-dir", log_dir_arg], &[], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("log_dir {log_dir_arg}")) && err.contains("PLINTH_001"), "{err}");
    assert!(out.stdout.is_empty(), "nothing is logged: {}", String::from_utf8_lossy(&out.stdout));
    assert!(!dir.path().join(".plinth").exists(), "no database is opened");
}

#[test]
fn a_log_dir_that_is_a_file_stops_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, "x").expect("a file");
    refused_log_dir(&file);
    assert_eq!(std::fs::read_to_string(&file).expect("still a file"), "x", "the file is left alone");
}

#[test]
fn a_log_dir_below_a_file_stops_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, "x").expect("a file");
    refused_log_dir(&file.join("logs"));
}

#[test]
fn a_log_file_that_cannot_be_opened_stops_serve_instead_of_panicking() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The day's file name is taken by a folder (today and tomorrow, in case the date turns).
    let today = time::OffsetDateTime::now_utc().date();
    for day in [Some(today), today.next_day()].into_iter().flatten() {
        let name = day.format(time::macros::format_description!("plinth.log.[year]-[month]-[day]")).expect("date");
        std::fs::create_dir_all(dir.path().join(name)).expect("a folder in the file's place");
    }
    refused_log_dir(dir.path());
}
