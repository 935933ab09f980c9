//! Spawning the real `plinth` binary and talking to it over HTTP.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_plinth");

/// `plinth ARGS` run to completion with extra environment variables.
pub(crate) fn plinth(args: &[&str], envs: &[(&str, &str)], cwd: &Path) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(cwd).stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    // A developer's own PLINTH_* variables must not leak into the tests.
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("PLINTH_")) {
        if !envs.iter().any(|(e, _)| *e == k) {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run plinth");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let read_out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut buf).expect("read stdout");
        buf
    });
    let read_err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut buf).expect("read stderr");
        buf
    });
    // Why: a command expected to fail at once must not hang the suite if it starts serving instead.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("plinth {args:?} did not exit within 120s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output { status, stdout: read_out.join().expect("stdout reader"), stderr: read_err.join().expect("stderr reader") }
}

/// A running `plinth serve`, with its stdout lines collected.
pub(crate) struct Served {
    child: Child,
    pub(crate) addr: String,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    /// Starts `plinth serve --config CONFIG --port 0 ARGS` in `cwd` and waits for `listening`.
    pub(crate) fn start(config: &Path, args: &[&str], cwd: &Path) -> Self {
        let config = config.to_str().expect("utf-8 path");
        let all: Vec<&str> = ["serve", "--config", config, "--port", "0"].into_iter().chain(args.iter().copied()).collect();
        Self::spawn(&all, &[], cwd)
    }

    /// Starts `plinth ARGS` (a `serve`) in `cwd` with extra environment variables and no other
    /// `PLINTH_*` ones, and waits for `listening`.
    pub(crate) fn spawn(args: &[&str], envs: &[(&str, &str)], cwd: &Path) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.args(args).current_dir(cwd);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("PLINTH_")) {
            cmd.env_remove(k);
        }
        cmd.envs(envs.iter().copied());
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn plinth");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let addr = lines.lock().expect("lines").iter().find_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                (v["message"] == "listening").then(|| v["addr"].as_str().map(str::to_string)).flatten()
            });
            if let Some(addr) = addr {
                return Self { child, addr, lines, reader: Some(reader) };
            }
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!("plinth serve exited before listening ({status}); stdout: {:?}", lines.lock().expect("lines"));
            }
            assert!(Instant::now() < deadline, "plinth serve did not listen within 30s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The JSON log lines printed so far.
    pub(crate) fn logs(&self) -> Vec<Value> {
        self.lines.lock().expect("lines").iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// Every stdout line so far, JSON or not.
    pub(crate) fn raw_lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    pub(crate) fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid")
    }

    /// SIGKILL: no chance to clean up.
    pub(crate) fn kill9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("wait");
    }

    /// Sends `signal` and waits up to `timeout` for the exit.
    pub(crate) fn signal_and_wait(self, signal: nix::sys::signal::Signal, timeout: Duration) -> ExitStatus {
        self.stop(signal, timeout).0
    }

    /// Sends `signal` without waiting.
    pub(crate) fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).expect("signal");
    }

    /// Whether the process is still running.
    pub(crate) fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Sends `signal`, waits up to `timeout` for the exit, and returns the status with every
    /// stdout line the process printed (read to the end).
    pub(crate) fn stop(self, signal: nix::sys::signal::Signal, timeout: Duration) -> (ExitStatus, Vec<String>) {
        self.signal(signal);
        self.finish(timeout)
    }

    /// Waits up to `timeout` for the process to exit (a signal already sent) and returns the
    /// status with every stdout line the process printed (read to the end).
    pub(crate) fn finish(mut self, timeout: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("plinth serve did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the stdout reader");
        }
        (status, self.raw_lines())
    }

    /// Waits up to 30s for a JSON log line matching `pred` and returns it.
    pub(crate) async fn log_line(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(line) = self.logs().into_iter().find(|l| pred(l)) {
                return line;
            }
            assert!(Instant::now() < deadline, "no log line {what} within 30s: {:?}", self.raw_lines());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A folder holding `component.yaml` with `text`.
pub(crate) fn component_dir(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("component.yaml");
    std::fs::write(&path, text).expect("write component.yaml");
    (dir, path)
}

pub(crate) fn client() -> reqwest::Client {
    // Why: the workspace builds reqwest with `rustls-no-provider`; a client needs a provider installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client")
}

/// Sends a request and returns (status, JSON body or Null).
pub(crate) async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let body = resp.bytes().await.expect("body");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// `POST /run` of `function` with `input`; the run id (asserts 202).
pub(crate) async fn submit(c: &reqwest::Client, s: &Served, function: &str, input: Value) -> String {
    let (status, body) = send(c.post(s.url("/run")).json(&serde_json::json!({"function": function, "input": input}))).await;
    assert_eq!(status, 202, "{body}");
    body["run_id"].as_str().expect("run_id").to_string()
}

/// The JSON log lines among `lines`, each parsed (panics on a line that is not a JSON object).
pub(crate) fn parse_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert!(v.is_object(), "not a JSON object: {l}");
            v
        })
        .collect()
}

/// Waits up to 30s for run `id` to reach `status` (polling `GET /runs/{id}`) and returns it.
pub(crate) async fn wait_status(c: &reqwest::Client, s: &Served, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, run) = send(c.get(s.url(&format!("/runs/{id}")))).await;
        assert_eq!(code, 200, "{run}");
        if run["status"] == status {
            return run;
        }
        assert!(Instant::now() < deadline, "run {id} not {status} within 30s: {run}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A minimal component named `name` whose functions are given as YAML list items.
pub(crate) fn component_text(name: &str, functions: &str) -> String {
    format!("component: {{name: {name}, version: 0.1.0, owner: tests}}\nfunctions:\n{functions}")
}

/// Whether `python3` runs, for tests of what is written in Python (`what`). When it does not:
/// a failure under `CI=true`, else a loud skip (the caller returns).
pub(crate) fn python3_available(what: &str) -> bool {
    let found = Command::new("python3").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if found.is_ok_and(|s| s.success()) {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "python3 is required under CI=true to test {what}");
    eprintln!("SKIPPED: python3 is not installed, so {what} is not tested");
    false
}
