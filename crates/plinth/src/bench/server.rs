//! The server under test: `plinth serve` as a child process on a temporary database.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The component the benchmark serves: a no-op in-process function, and a no-op HTTP
/// handler calling `http_url`.
pub(crate) fn component(http_url: &str, with_key: bool) -> String {
    let auth = if with_key {
        format!("auth:\n  api_keys:\n    - {{name: bench, from_env: {KEY_VAR}, scopes: [admin]}}\n")
    } else {
        String::new()
    };
    format!(
        "{auth}{COMPONENT}  - name: http_noop\n    description: Calls a no-op HTTP endpoint.\n    handler:\n      http: {{url: '{http_url}'}}\n    policy:\n      retries: {{max_attempts: 1}}\n      timeout: 10s\n\
         \x20 - name: http_steps5\n    description: Five no-op steps through an HTTP handler.\n    steps: true\n    handler:\n      http: {{url: '{steps_url}'}}\n    policy:\n      retries: {{max_attempts: 1}}\n      timeout: 10s\n\
         \x20 - name: http_steps100\n    description: A hundred no-op steps, for the dashboard's run page.\n    steps: true\n    handler:\n      http: {{url: '{steps100_url}'}}\n    policy:\n      retries: {{max_attempts: 1}}\n      timeout: 60s\n",
        steps_url = http_url.replace("/noop", "/steps5"),
        steps100_url = http_url.replace("/noop", "/steps100")
    )
}

/// The function a schedule starts every second (its runs are not the load's).
pub(crate) const SCHEDULED: &str = "tick";

/// The variable that hands the API key to a server started with one.
const KEY_VAR: &str = "PLINTH_BENCH_API_KEY";

const COMPONENT: &str = "\
component:
  name: bench
  version: 0.1.0
  owner: plinth
  description: A no-op function, to measure Plinth's own overhead.
functions:
  - name: noop
    description: Returns null at once.
    handler:
      rust: noop
    policy:
      retries: {max_attempts: 1}
      timeout: 10s
  - name: on_event
    description: Started by each `bench/run.started` event; returns null at once.
    handler:
      rust: noop
    policy:
      retries: {max_attempts: 1}
      timeout: 10s
    triggers: [{event: bench/run.started}]
  - name: tick
    description: Started by a schedule every second, to measure tick lateness.
    handler:
      rust: noop
    policy:
      retries: {max_attempts: 1}
      timeout: 10s
    triggers: [{cron: '* * * * * *'}]
  - name: keyed
    description: Returns null at once; at most 4 at once per `input.k`.
    handler:
      rust: noop
    policy:
      retries: {max_attempts: 1}
      timeout: 10s
      concurrency: {limit: 4, key: input.k}
  - name: hold
    description: Holds a worker for `input.ms` milliseconds; one at a time per `input.k`.
    handler:
      rust: sleep
    policy:
      retries: {max_attempts: 1}
      timeout: 15m
      concurrency: {limit: 1, key: input.k}
  - name: steps3
    description: Three no-op steps (the built-in `flow` step function).
    steps: true
    handler:
      rust: flow
    policy:
      retries: {max_attempts: 1}
      timeout: 10s
  - name: steps_wait
    description: The built-in `flow` step function, sleeping or waiting for an event as its input says.
    steps: true
    handler:
      rust: flow
    policy:
      retries: {max_attempts: 1}
      timeout: 10s
";

/// How the child is started.
#[derive(Debug, Clone)]
pub(crate) struct ServerOptions {
    pub(crate) binary: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) workers: u32,
    pub(crate) synchronous: String,
    pub(crate) log_level: String,
    pub(crate) http_url: String,
    /// When set, the server requires this API key (scope admin).
    pub(crate) api_key: Option<String>,
    /// `(postgres://..., schema)`: the PostgreSQL store instead of SQLite in `dir`.
    pub(crate) postgres: Option<(String, String)>,
    /// The server's `--claim-batch`, when set.
    pub(crate) claim_batch: Option<u32>,
    /// YAML appended to the component: more functions (indented as list items), then other
    /// sections.
    pub(crate) extra: Option<String>,
    /// Where the server exports its spans (`--otlp-endpoint`), when set.
    pub(crate) otlp: Option<String>,
    /// More arguments of `plinth serve` (after the others, so they win).
    pub(crate) serve_args: Vec<String>,
}

impl ServerOptions {
    /// The same server on a store of its own: the folder `dir/folder` and, on PostgreSQL, the
    /// schema `<schema>_<suffix>` (the benchmark drops it at its end: `own_schemas`).
    pub(crate) fn own_store(&self, folder: &str, suffix: &str) -> Self {
        Self {
            dir: self.dir.join(folder),
            postgres: self.postgres.as_ref().map(|(url, schema)| (url.clone(), format!("{schema}_{suffix}"))),
            ..self.clone()
        }
    }
}

pub(crate) struct Server {
    child: Child,
    pub(crate) addr: String,
}

/// Finds the address in the JSON `listening` log line; `None` for any other line.
pub(crate) fn listening_addr(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    if value.get("message")?.as_str()? != "listening" {
        return None;
    }
    Some(value.get("addr")?.as_str()?.to_string())
}

/// Reads `VmRSS` or `VmHWM` (peak) of a process from `/proc`, in MiB.
pub(crate) fn memory_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_memory(&status, field)
}

pub(crate) fn parse_memory(status: &str, field: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.strip_prefix(field).is_some_and(|rest| rest.starts_with(':')))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

impl Server {
    /// Writes the component, starts `plinth serve` and waits for its `listening` line.
    pub(crate) fn start(opts: &ServerOptions, timeout: Duration) -> Result<Self, String> {
        let config = opts.dir.join("component.yaml");
        std::fs::create_dir_all(&opts.dir).map_err(|e| format!("cannot create {}: {e}", opts.dir.display()))?;
        let text = component(&opts.http_url, opts.api_key.is_some()) + opts.extra.as_deref().unwrap_or("");
        std::fs::write(&config, text).map_err(|e| format!("cannot write {}: {e}", config.display()))?;
        let database = match &opts.postgres {
            Some((url, schema)) => vec!["--database-url".to_string(), url.clone(), "--database-schema".into(), schema.clone()],
            None => vec!["--database-url".to_string(), format!("sqlite://{}", opts.dir.join("bench.db").display())],
        };
        let claim_batch = opts.claim_batch.map(|n| vec!["--claim-batch".to_string(), n.to_string()]).unwrap_or_default();
        let otlp = opts.otlp.as_ref().map(|e| vec!["--otlp-endpoint".to_string(), e.clone()]).unwrap_or_default();
        let mut child = Command::new(&opts.binary)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .args(["--host", "127.0.0.1", "--port", "0"])
            // Why: the `listening` line is needed whatever the level asked for.
            .args(["--log-level", &format!("{},plinth::serve=info", opts.log_level)])
            .args(&database)
            .args(&claim_batch)
            .args(&otlp)
            // Why: the comparison with export off must not pick up an endpoint from the caller.
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("PLINTH_OTLP_ENDPOINT")
            .args(["--workers", &opts.workers.to_string(), "--sqlite-synchronous", &opts.synchronous])
            .args(&opts.serve_args)
            .envs(opts.api_key.iter().map(|k| (KEY_VAR, k)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", opts.binary.display()))?;
        let stdout = child.stdout.take().ok_or("the server's stdout is not piped")?;
        let (tx, rx) = mpsc::channel();
        // Keeps draining the server's logs so it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if let Some(addr) = listening_addr(&line) {
                    let _ = tx.send(addr);
                    break;
                }
                line.clear();
            }
            // Why: past the `listening` line the logs are only drained; reading them line by
            // line cost the load generator CPU the server under test competes for.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        match rx.recv_timeout(timeout) {
            Ok(addr) => Ok(Self { child, addr }),
            Err(_) => {
                // Stdout closes a moment before the exit can be collected.
                let mut status = None;
                for _ in 0..50 {
                    status = child.try_wait().ok().flatten();
                    if status.is_some() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = child.kill();
                let _ = child.wait();
                Err(match status {
                    Some(s) => format!("the server exited before listening ({s})"),
                    None => format!("the server did not log `listening` within {timeout:?}"),
                })
            }
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits up to `timeout` for the exit (SIGKILL after it).
    pub(crate) fn stop(mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).map_err(|e| e.to_string())?);
        kill(pid, Signal::SIGTERM).map_err(|e| format!("cannot signal the server: {e}"))?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!("the server did not stop within {timeout:?} of SIGTERM; killed"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The folder for the database: a new temporary one unless given.
pub(crate) fn work_dir(given: Option<&Path>) -> Result<(PathBuf, Option<tempfile::TempDir>), String> {
    match given {
        Some(p) => {
            std::fs::create_dir_all(p).map_err(|e| format!("cannot create {}: {e}", p.display()))?;
            Ok((p.to_path_buf(), None))
        }
        None => {
            let t = tempfile::Builder::new().prefix("plinth-bench-").tempdir().map_err(|e| format!("temporary folder: {e}"))?;
            Ok((t.path().to_path_buf(), Some(t)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_component_parses_with_both_functions() {
        let text = component("http://127.0.0.1:4321/noop", false);
        let c = plinth_core::component::Component::parse(&text, "bench.yaml", "bench.yaml".into(), ".".into()).expect("valid");
        let kinds: Vec<&str> = c.file.functions.iter().map(|f| f.handler.kind()).collect();
        assert_eq!(kinds, ["rust", "rust", "rust", "rust", "rust", "rust", "rust", "http", "http", "http"]);
        let stepped: Vec<&str> = c.file.functions.iter().filter(|f| f.steps).map(|f| f.name.as_str()).collect();
        assert_eq!(stepped, ["steps3", "steps_wait", "http_steps5", "http_steps100"]);
        assert_eq!(c.triggers[1].events.len(), 1, "on_event listens to bench/run.started");
        assert_eq!(c.file.functions[2].name, SCHEDULED);
        assert_eq!(c.triggers[2].schedules.len(), 1, "tick runs every second");
        assert!(c.file.auth.is_none());
        let text = component("http://127.0.0.1:4321/noop", true);
        let c = plinth_core::component::Component::parse(&text, "bench.yaml", "bench.yaml".into(), ".".into()).expect("valid");
        assert!(c.file.auth.is_some(), "{text}");
    }

    #[test]
    fn the_listening_line_gives_the_address() {
        let line = r#"{"addr":"127.0.0.1:4321","level":"info","message":"listening"}"#;
        assert_eq!(listening_addr(line).as_deref(), Some("127.0.0.1:4321"));
    }

    #[test]
    fn other_lines_give_no_address() {
        assert_eq!(listening_addr(r#"{"message":"database migrated","addr":"x"}"#), None);
        assert_eq!(listening_addr("not json"), None);
        assert_eq!(listening_addr(r#"{"message":"listening"}"#), None);
    }

    #[test]
    fn memory_is_read_from_proc_status() {
        let status = "Name:\tplinth\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(parse_memory(status, "VmRSS"), Some(10.0));
        assert_eq!(parse_memory(status, "VmHWM"), Some(20.0));
        assert_eq!(parse_memory(status, "VmSwap"), None);
        assert_eq!(parse_memory("VmRSS:\tlots kB\n", "VmRSS"), None);
        assert!(memory_mib(std::process::id(), "VmRSS").is_some_and(|m| m > 0.0));
    }

    fn options(binary: PathBuf, dir: &Path) -> ServerOptions {
        ServerOptions {
            binary,
            dir: dir.to_path_buf(),
            workers: 4,
            synchronous: "full".into(),
            log_level: "info".into(),
            http_url: "http://127.0.0.1:9/noop".into(),
            api_key: None,
            extra: None,
            postgres: None,
            claim_batch: None,
            otlp: None,
            serve_args: Vec::new(),
        }
    }

    #[test]
    fn a_missing_binary_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = options(dir.path().join("no-such-plinth"), dir.path());
        let err = Server::start(&opts, Duration::from_secs(1)).err().expect("fails");
        assert!(err.contains("cannot start"), "{err}");
    }

    #[test]
    fn a_server_that_exits_early_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = options("false".into(), dir.path());
        let err = Server::start(&opts, Duration::from_secs(5)).err().expect("fails");
        assert!(err.contains("exited before listening"), "{err}");
    }
}
