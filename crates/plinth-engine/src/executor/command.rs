//! Command handlers: argv without a shell, input on stdin, output on stdout, stderr lines
//! as the run's log, context in the environment, SIGTERM then SIGKILL to the whole process
//! group on timeout or stop.

use super::logsink::{LogSink, pump};
use super::{AttemptEnd, AttemptEnv};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use plinth_core::component::CommandSpec;
use plinth_core::{Code, RunError};
use serde_json::Value;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

fn signal_group(pid: Option<u32>, signal: Signal) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // Why: ESRCH (the group is already gone) is the normal case after an exit.
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}

/// Stops the process group: SIGTERM, then SIGKILL if it has not exited within `grace`.
async fn terminate(child: &mut Child, pid: Option<u32>, grace: Duration) {
    signal_group(pid, Signal::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        signal_group(pid, Signal::SIGKILL);
        let _ = child.wait().await;
    }
}

/// Reads at most `limit` bytes, until the end or `quit`; returns them and whether there was
/// more (which is drained).
async fn read_bounded(mut reader: impl AsyncRead + Unpin, limit: u64, quit: impl Future<Output = ()>) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut over = false;
    tokio::pin!(quit);
    loop {
        let read = tokio::select! {
            r = reader.read(&mut chunk) => r,
            () = &mut quit => break,
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) if over || out.len() as u64 + n as u64 > limit => over = true,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
    (out, over)
}

/// Stdout as the run's output: JSON when it parses, a JSON string otherwise, null when empty.
#[must_use]
pub fn parse_output(bytes: &[u8]) -> Value {
    let text = String::from_utf8_lossy(bytes);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(trimmed).unwrap_or_else(|_| Value::String(trimmed.to_string()))
}

fn describe_exit(status: ExitStatus, last_line: Option<&str>) -> RunError {
    let tail = last_line.map(|l| format!(": {}", l.chars().take(300).collect::<String>())).unwrap_or_default();
    match (status.code(), status.signal()) {
        (Some(code), _) => RunError::new(Code::HandlerFailed, format!("the command exited with status {code}{tail}")),
        (None, Some(sig)) => {
            let name = Signal::try_from(sig).map_or_else(|_| sig.to_string(), |s| s.as_str().to_string());
            RunError::new(Code::HandlerCrashed, format!("the command was killed by signal {name}{tail}"))
        }
        (None, None) => RunError::new(Code::HandlerCrashed, format!("the command ended without a status{tail}")),
    }
}

/// Runs one attempt of a command handler: the input on stdin, stdout as the output.
pub(crate) async fn run(spec: &CommandSpec, env: &AttemptEnv<'_>, input: &Value) -> AttemptEnd {
    match exec(spec, env, serde_json::to_vec(input).unwrap_or_default()).await {
        Ok(out) => AttemptEnd::Succeeded(parse_output(&out)),
        Err(end) => end,
    }
}

/// Runs the command once with `payload` on stdin; its stdout when it exits 0, else how the
/// attempt ends.
pub(crate) async fn exec(spec: &CommandSpec, env: &AttemptEnv<'_>, payload: Vec<u8>) -> Result<Vec<u8>, AttemptEnd> {
    let cwd = spec.cwd.as_ref().map_or_else(|| env.base_dir.to_path_buf(), |c| env.base_dir.join(c));
    let mut cmd = Command::new(&spec.argv[0]);
    // Why: the guard revokes the token when this attempt ends, however it ends.
    let token = env.config.run_tokens.as_ref().map(|t| t.issue(&env.run.run_id));
    if let Some(token) = &token {
        // Why: before the function's own env, so a component that sets PLINTH_API_KEY keeps it.
        cmd.env("PLINTH_API_KEY", token.secret()).env("PLINTH_RUN_TOKEN", token.secret());
    }
    cmd.args(&spec.argv[1..])
        .current_dir(&cwd)
        .envs(&spec.env)
        .env("PLINTH_RUN_ID", &env.run.run_id)
        .env("PLINTH_FUNCTION", &env.run.function)
        .env("PLINTH_ATTEMPT", env.run.attempt.to_string())
        .env("PLINTH_CORRELATION_ID", &env.run.correlation_id)
        .env("TRACEPARENT", plinth_core::trace::for_handler(&env.run.run_id, env.run.traceparent.as_deref()))
        .envs(plinth_core::trace::state_for_handler(env.run.tracestate.as_deref()).map(|s| ("TRACESTATE", s)))
        .env("PLINTH_URL", &env.config.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("cannot start `{}` in {}: {e}", spec.argv[0], cwd.display());
            return Err(AttemptEnd::Failed(RunError::new(Code::HandlerNotStarted, msg)));
        }
    };
    let pid = child.id();
    let stdin = child.stdin.take();
    let writer = tokio::spawn(async move {
        if let Some(mut stdin) = stdin {
            // Why: a handler that ignores its input may close stdin early; that is not an error.
            let _ = stdin.write_all(&payload).await;
            let _ = stdin.shutdown().await;
        }
    });
    // Why: a child that left the process group may hold stdout and stderr open after the
    // command ended; stop reading a while later, keeping what was read.
    let drain = Duration::from_secs(2);
    let ended_token = CancellationToken::new();
    let linger = |t: CancellationToken| async move {
        t.cancelled_owned().await;
        tokio::time::sleep(drain).await;
    };
    let stdout = child.stdout.take();
    let limit = env.config.max_output_bytes;
    let out_quit = linger(ended_token.clone());
    let out_task = tokio::spawn(async move {
        match stdout {
            Some(s) => read_bounded(s, limit, out_quit).await,
            None => (Vec::new(), false),
        }
    });
    let sink = LogSink::new(env.store.clone(), &env.run.run_id, env.run.attempt, env.config.max_log_bytes, env.log_seq.clone());
    let stderr = child.stderr.take();
    let err_quit = linger(ended_token.clone());
    let err_task = tokio::spawn(async move {
        match stderr {
            Some(s) => pump(s, sink, err_quit).await,
            None => sink.close().await,
        }
    });

    let grace = env.config.kill_grace;
    let ended = tokio::select! {
        status = child.wait() => Ok(status.ok()),
        () = tokio::time::sleep(env.timeout) => Err(None),
        () = env.stop.cancelled() => Err(Some(())),
    };
    if ended.is_err() {
        terminate(&mut child, pid, grace).await;
    }
    // Why: the whole group goes, so no stray child keeps stdout open or outlives its run.
    signal_group(pid, Signal::SIGKILL);
    writer.abort();
    ended_token.cancel();
    let (out, over) = tokio::time::timeout(drain * 2, out_task).await.ok().and_then(Result::ok).unwrap_or_default();
    let last_line = tokio::time::timeout(drain * 2, err_task).await.ok().and_then(Result::ok).flatten();

    match ended {
        Err(None) => Err(AttemptEnd::Failed(RunError::new(
            Code::HandlerTimeout,
            format!("the command did not finish within {}", humanize(env.timeout)),
        ))),
        Err(Some(())) => Err(AttemptEnd::Stopped),
        Ok(Some(status)) if status.success() => {
            if over {
                Err(AttemptEnd::Failed(RunError::new(
                    Code::OutputTooLarge,
                    format!("the command wrote more than {limit} bytes to stdout"),
                )))
            } else {
                Ok(out)
            }
        }
        Ok(Some(status)) => Err(AttemptEnd::Failed(describe_exit(status, last_line.as_deref()))),
        Ok(None) => Err(AttemptEnd::Failed(RunError::new(Code::HandlerCrashed, "lost track of the command's process"))),
    }
}

fn humanize(d: Duration) -> String {
    plinth_core::DurationSpec(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_parsing() {
        assert_eq!(parse_output(b"{\"a\":1}\n"), serde_json::json!({"a": 1}));
        assert_eq!(parse_output(b"hello world\n"), Value::String("hello world".into()));
        assert_eq!(parse_output(b"  \n"), Value::Null);
        assert_eq!(parse_output(&[0xff, 0xfe]), Value::String("\u{fffd}\u{fffd}".into()));
    }

    #[test]
    fn exit_descriptions() {
        let e = describe_exit(ExitStatus::from_raw(3 << 8), Some("boom"));
        assert_eq!(e.code, "PLINTH_020");
        assert_eq!(e.message, "the command exited with status 3: boom");
        let e = describe_exit(ExitStatus::from_raw(9), None);
        assert_eq!(e.code, "PLINTH_022");
        assert!(e.message.contains("SIGKILL"), "{}", e.message);
    }
}
