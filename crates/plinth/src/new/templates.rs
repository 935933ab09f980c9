//! The files of a new component, for each handler kind. Each kind has one function, `hello`,
//! whose input schema lets `{}` through (so `plinth check` with its default input runs it) and
//! refuses what is not an object (so `run.schema_violation` has something to refuse).

use super::Kind;
use std::path::Path;

/// The one function of a new component.
pub(crate) const FUNCTION: &str = "hello";
/// Where the HTTP handler listens, and the variable that moves it.
pub(crate) const HTTP_PORT: u16 = 8001;

/// `component.yaml`.
pub(crate) fn component_yaml(name: &str, kind: Kind) -> String {
    let (handler, what) = match kind {
        Kind::Command => ("command:\n        argv: [sh, handler.sh]".to_string(), "a command handler (handler.sh)"),
        Kind::Http => (
            format!("http:\n        url: http://127.0.0.1:{HTTP_PORT}/work\n        timeout: 10s"),
            "an HTTP handler (handler.py, started on its own)",
        ),
        Kind::Rust => (format!("rust: {FUNCTION}"), "an in-process Rust handler (src/main.rs)"),
    };
    format!(
        r#"# The {name} component, served by Plinth: `plinth serve` here serves it on http://127.0.0.1:8000.
# Every key is described in Plinth's README (component.yaml); an unknown key stops start-up.
component:
  name: {name}
  version: 0.1.0
  description: Says hello back.
  # owner: your-team

functions:
  - name: {FUNCTION}
    description: Says hello to input.name; {what}.
    handler:
      {handler}
    input_schema:
      type: object
      properties:
        name: {{type: string, maxLength: 200}}
    policy:
      retries: {{max_attempts: 3, backoff: {{initial: 1s, max: 30s, multiplier: 2}}}}
      timeout: 30s
"#
    )
}

/// `handler.sh`: the command handler.
pub(crate) const HANDLER_SH: &str = r#"#!/bin/sh
# The work of the `hello` function: Plinth starts this once per attempt (a command handler).
#   stdin:  the run's input as JSON, already checked against input_schema in component.yaml
#   stdout: the run's output; JSON stays JSON, any other text becomes a JSON string
#   stderr: the run's log, line by line (JSON lines stay structured): plinth runs logs RUN_ID
#   env:    PLINTH_RUN_ID, PLINTH_FUNCTION, PLINTH_ATTEMPT, PLINTH_CORRELATION_ID, PLINTH_URL
#   exit:   0 succeeds; anything else fails the attempt, retried as policy.retries says
# Replace the body with the real work, in any language: only argv in component.yaml names it.
set -eu
input=$(cat)
echo "{\"message\": \"saying hello\", \"run_id\": \"$PLINTH_RUN_ID\", \"attempt\": $PLINTH_ATTEMPT}" >&2
printf '{"greeting": "hello from %s", "attempt": %s, "input": %s}\n' "$PLINTH_FUNCTION" "$PLINTH_ATTEMPT" "${input:-null}"
"#;

/// `handler.py`: the HTTP handler, Python's standard library only.
pub(crate) fn handler_py() -> String {
    format!(
        r#"#!/usr/bin/env python3
"""The work of the `hello` function as an HTTP handler (Python's standard library only).

Plinth POSTs {{"run_id", "function", "attempt", "input"}} to /work once per attempt, with the
X-Correlation-ID and traceparent headers. A 2xx JSON answer is the run's output; 408, 429 and
5xx are retried as policy.retries says; other 4xx fail the run at once.

Start it before `plinth serve`: python3 handler.py (HANDLER_PORT moves it from {HTTP_PORT}; then
change the url in component.yaml too).
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("HANDLER_PORT", "{HTTP_PORT}"))


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        if self.path != "/work":
            return self.answer(404, {{"error": "no such path; Plinth posts to /work"}})
        length = int(self.headers.get("Content-Length") or 0)
        try:
            request = json.loads(self.rfile.read(length) or b"{{}}")
        except ValueError:
            return self.answer(400, {{"error": "the body is not JSON"}})
        data = request.get("input") or {{}}
        name = data.get("name", "world") if isinstance(data, dict) else "world"
        self.log_message("run %s attempt %s", request.get("run_id"), request.get("attempt"))
        return self.answer(200, {{"greeting": "Hello, %s!" % name, "attempt": request.get("attempt")}})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    print("handler listening on http://127.0.0.1:%d/work" % server.server_address[1], file=sys.stderr, flush=True)
    server.serve_forever()
"#
    )
}

/// `Cargo.toml` of the Rust project, depending on the Plinth checkout at `plinth`.
pub(crate) fn cargo_toml(name: &str, plinth: &Path) -> String {
    let path = plinth.display().to_string().replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
         # A project of its own, even inside another workspace.\n[workspace]\n\n\
         [dependencies]\nplinth = {{ path = \"{path}\" }}\nserde_json = \"1\"\n"
    )
}

/// `src/main.rs`: registers the in-process handler the component file names, then hands the
/// command line to Plinth.
pub(crate) fn main_rs(name: &str) -> String {
    format!(
        r#"//! The {name} component: Plinth serves it, and the work of `{FUNCTION}` runs in this process.
//!
//! `cargo run -- serve` serves it on http://127.0.0.1:8000 (reading component.yaml);
//! `cargo run -- check http://127.0.0.1:8000` checks it against the component contract.

use plinth::{{HandlerContext, HandlerError, Handlers}};
use serde_json::{{Value, json}};

/// The work of `{FUNCTION}`. `Err(HandlerError::retryable(..))` is retried as policy.retries
/// says; `Err(HandlerError::fatal(..))` fails the run at once; `ctx.cancel` fires on cancel and timeout.
async fn {FUNCTION}(ctx: HandlerContext, input: Value) -> Result<Value, HandlerError> {{
    let name = input.get("name").and_then(Value::as_str).unwrap_or("world");
    Ok(json!({{"greeting": format!("Hello, {{name}}!"), "attempt": ctx.attempt}}))
}}

fn main() -> std::process::ExitCode {{
    let mut handlers = Handlers::builtin();
    // The name component.yaml gives as `handler: {{rust: {FUNCTION}}}`.
    handlers.register("{FUNCTION}", {FUNCTION});
    plinth::run_cli(handlers)
}}
"#
    )
}

/// `.gitignore`: the run store, and the Rust build.
pub(crate) fn gitignore(kind: Kind) -> String {
    let mut text = String::from("# The run store `plinth serve` keeps here.\n.plinth/\n");
    if kind == Kind::Rust {
        text.push_str("/target\n");
    }
    text
}

/// The commands that serve and check the component, for the README and the terminal.
pub(crate) fn commands(kind: Kind) -> (Vec<&'static str>, &'static str) {
    match kind {
        Kind::Command => (vec!["plinth serve"], "plinth check http://127.0.0.1:8000"),
        Kind::Http => (vec!["python3 handler.py &", "plinth serve"], "plinth check http://127.0.0.1:8000"),
        Kind::Rust => (vec!["cargo run -- serve"], "cargo run -- check http://127.0.0.1:8000"),
    }
}

/// `README.md`.
pub(crate) fn readme(name: &str, kind: Kind) -> String {
    let (serve, check) = commands(kind);
    let (work, files) = match kind {
        Kind::Command => ("a command handler, `handler.sh`: the input on stdin, the output on stdout", "`handler.sh`"),
        Kind::Http => ("an HTTP handler, `handler.py`, which Plinth calls at http://127.0.0.1:8001/work", "`handler.py`"),
        Kind::Rust => ("an in-process Rust handler in `src/main.rs`", "`Cargo.toml` and `src/main.rs`"),
    };
    let run = match kind {
        Kind::Rust => "cargo run -- run hello --input '{\"name\":\"ada\"}' --wait",
        _ => "plinth run hello --input '{\"name\":\"ada\"}' --wait",
    };
    let serve = serve.join("\n");
    format!(
        r#"# {name}

A platform component served by Plinth. Its one function, `{FUNCTION}`, is {work}.

## Serve

```sh
{serve}
```

It listens on http://127.0.0.1:8000 and keeps its runs in `.plinth/`.

## Test

In another terminal, while it serves:

```sh
{check}
```

Every check of the component contract passes, fails (what was expected, what came back) or is
skipped (why). One run, followed to its end: `{run}`.

## Files

- `component.yaml`: the component, its function, its input schema and run policy.
- {files}: the work.
- `SPEC.md`: the specification. Its generated blocks come from the code and `component.yaml`
  (`plinth spec generate --output SPEC.md` refreshes them, `plinth spec generate --check SPEC.md`
  fails when they drift); the rest is yours: answer its QUESTION lines.
"#
    )
}
