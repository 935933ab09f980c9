//! The CLI client: `plinth run` and `plinth runs list|show|cancel|logs` against a server's API.
//!
//! Exit codes tell outcomes apart for scripts: 0 succeeded (or done), 1 the run failed,
//! 2 a usage error or a request the server refused (4xx), 3 the run was cancelled,
//! 4 the server is unreachable or unavailable, 5 `--wait` ran out while the run went on.

mod api;
mod events;
mod render;

use crate::cli::{ClientArgs, EventsCommand, RunArgs, RunsCommand};
use api::{Api, Failure};
use serde_json::{Value, json};
use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

pub(crate) const EXIT_FAILED: u8 = 1;
pub(crate) const EXIT_USAGE: u8 = 2;
pub(crate) const EXIT_CANCELLED: u8 = 3;
pub(crate) const EXIT_UNREACHABLE: u8 = 4;
pub(crate) const EXIT_STILL_RUNNING: u8 = 5;

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(EXIT_UNREACHABLE, format!("cannot start the runtime: {e}")))
}

fn finish(result: Result<u8, Failure>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("plinth: {}", f.message);
            ExitCode::from(f.exit)
        }
    }
}

/// `plinth run FUNCTION`.
pub(crate) fn run(args: &RunArgs) -> ExitCode {
    finish(runtime().and_then(|rt| rt.block_on(submit(args))))
}

/// `plinth runs ...`.
pub(crate) fn runs(command: &RunsCommand) -> ExitCode {
    finish(runtime().and_then(|rt| rt.block_on(manage(command))))
}

/// `plinth events ...`.
pub(crate) fn events(command: &EventsCommand) -> ExitCode {
    finish(runtime().and_then(|rt| rt.block_on(events::events(command))))
}

/// `plinth schedules`.
pub(crate) fn schedules(args: &ClientArgs) -> ExitCode {
    finish(runtime().and_then(|rt| rt.block_on(events::schedules(args))))
}

/// Reads `--input`: inline JSON, `@file`, or `-` for standard input.
pub(crate) fn read_input(text: Option<&str>) -> Result<Value, Failure> {
    let usage = |m: String| Failure::new(EXIT_USAGE, m);
    let (source, raw) = match text {
        None => return Ok(json!({})),
        Some("-") => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).map_err(|e| usage(format!("cannot read standard input: {e}")))?;
            ("standard input".to_string(), s)
        }
        Some(t) if t.starts_with('@') => {
            let path = &t[1..];
            (path.to_string(), std::fs::read_to_string(path).map_err(|e| usage(format!("cannot read {path}: {e}")))?)
        }
        Some(t) => ("--input".to_string(), t.to_string()),
    };
    serde_json::from_str(&raw).map_err(|e| usage(format!("{source} is not valid JSON: {e}")))
}

async fn submit(args: &RunArgs) -> Result<u8, Failure> {
    let input = read_input(args.input.as_deref())?;
    let api = Api::new(&args.client)?;
    let accepted = api.submit(&args.function, &input, args.idempotency_key.as_deref()).await?;
    let id = accepted["run_id"].as_str().unwrap_or_default().to_string();
    if !args.wait {
        if args.client.json {
            println!("{accepted}");
        } else {
            println!("{id}");
        }
        return Ok(0);
    }
    let run = wait(&api, &id, args.timeout).await?;
    if args.client.json {
        println!("{run}");
    } else {
        print!("{}", render::run_detail(&run));
    }
    Ok(exit_for(&run))
}

/// The exit code a run's state gives.
pub(crate) fn exit_for(run: &Value) -> u8 {
    match run["status"].as_str() {
        Some("succeeded") => 0,
        Some("failed") => EXIT_FAILED,
        Some("cancelled") => EXIT_CANCELLED,
        _ => EXIT_STILL_RUNNING,
    }
}

/// Long-polls until the run is terminal or `timeout` passes, showing progress on a terminal.
async fn wait(api: &Api, id: &str, timeout: Duration) -> Result<Value, Failure> {
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let frames = ['|', '/', '-', '\\'];
    let mut tick = 0;
    loop {
        let left = timeout.saturating_sub(started.elapsed());
        // Why: short polls keep the indicator moving; the server answers at once on the end.
        let step = if tty { left.min(Duration::from_millis(500)) } else { left.min(Duration::from_secs(30)) };
        let run = api.get(id, Some(step)).await?;
        let status = run["status"].as_str().unwrap_or("?").to_string();
        let terminal = matches!(status.as_str(), "succeeded" | "failed" | "cancelled");
        if tty {
            if terminal {
                eprint!("\r\x1b[2K");
            } else {
                eprint!(
                    "\r\x1b[2K{} {id} {status} (attempt {}) {:.1}s",
                    frames[tick % 4],
                    run["attempt"],
                    started.elapsed().as_secs_f64()
                );
                tick += 1;
            }
            let _ = std::io::stderr().flush();
        }
        if terminal || started.elapsed() >= timeout {
            if !terminal {
                eprintln!("plinth: run {id} is still {status} after {}", plinth_core::DurationSpec(timeout));
            }
            return Ok(run);
        }
    }
}

async fn manage(command: &RunsCommand) -> Result<u8, Failure> {
    match command {
        RunsCommand::List(a) => {
            let api = Api::new(&a.client)?;
            let mut query = Vec::new();
            let filters = [
                ("function", &a.function),
                ("status", &a.status),
                ("trigger", &a.trigger),
                ("event_id", &a.event_id),
                ("correlation_id", &a.correlation_id),
                ("cursor", &a.cursor),
            ];
            for (k, v) in filters {
                if let Some(v) = v {
                    query.push((k, v.clone()));
                }
            }
            query.push(("limit", a.limit.to_string()));
            let page = api.list(&query).await?;
            if a.client.json {
                println!("{page}");
            } else {
                print!("{}", render::run_table(&page));
            }
            Ok(0)
        }
        RunsCommand::Show(a) => {
            let api = Api::new(&a.client)?;
            let run = api.get(&a.run_id, None).await?;
            if a.client.json {
                println!("{run}");
            } else {
                print!("{}", render::run_detail(&run));
            }
            Ok(0)
        }
        RunsCommand::Cancel(a) => {
            let api = Api::new(&a.client)?;
            let run = api.cancel(&a.run_id).await?;
            if a.client.json {
                println!("{run}");
            } else {
                let what =
                    if run["status"] == "cancelled" { "cancelled" } else { "cancel requested; the attempt is being stopped" };
                println!("{} {what}", a.run_id);
            }
            Ok(0)
        }
        RunsCommand::Steps(a) => {
            let steps = Api::new(&a.client)?.steps(&a.run_id).await?;
            if a.client.json {
                println!("{steps}");
            } else {
                print!("{}", render::step_table(&steps));
            }
            Ok(0)
        }
        RunsCommand::Rerun(a) => {
            let accepted = Api::new(&a.client)?.rerun(&a.run_id, a.from_step.as_deref()).await?;
            if a.client.json {
                println!("{accepted}");
            } else {
                println!("{}", accepted["run_id"].as_str().unwrap_or_default());
            }
            Ok(0)
        }
        RunsCommand::Logs(a) => {
            let api = Api::new(&a.client)?;
            let logs = api.logs(&a.run_id).await?;
            if a.client.json {
                println!("{logs}");
            } else {
                print!("{}", render::log_lines(&logs));
            }
            Ok(0)
        }
    }
}

/// `Authorization: Bearer KEY` (marked sensitive, so never printed) when a key is given.
pub(crate) fn bearer_headers(key: Option<&str>) -> Result<reqwest::header::HeaderMap, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = key {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| "--api-key holds characters a header cannot carry".to_string())?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Ok(headers)
}

/// The base URL from `--url`, checked.
pub(crate) fn base_url(args: &ClientArgs) -> Result<String, Failure> {
    let url = args.url.trim_end_matches('/');
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Failure::new(EXIT_USAGE, format!("--url `{}` must start with http:// or https://", args.url)));
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests;
