//! The blocks made from the component and Plinth's catalogs: identity, functions, endpoints
//! (the OpenAPI document), metrics, health checks and error codes.

use super::{Facts, cell};
use plinth_core::component::{FunctionSpec, HandlerKind};
use plinth_core::metrics::METRICS;
use plinth_core::{Code, RunPolicy};
use serde_json::Value;
use std::fmt::Write as _;

/// `identity`: who the component is, from the file's `component:` section.
pub(crate) fn identity(facts: &Facts<'_>) -> String {
    let id = &facts.component.file.component;
    let none = || "not given in the component file".to_string();
    format!(
        "| Field | Value |\n|-------|-------|\n| Name | `{}` |\n| Version | `{}` |\n| Owner | {} |\n| Description | {} |\n| Functions | {} |\n",
        id.name,
        id.version,
        id.owner.as_deref().map_or_else(none, cell),
        id.description.as_deref().map_or_else(none, cell),
        facts.component.file.functions.iter().map(|f| format!("`{}`", f.name)).collect::<Vec<_>>().join(", "),
    )
}

fn handler(f: &FunctionSpec) -> String {
    match f.handler.get() {
        Some(HandlerKind::Command(c)) => {
            let mut text = format!("command `{}`", c.argv.join(" "));
            if let Some(cwd) = &c.cwd {
                text.push_str(&format!(" in `{}`", cwd.display()));
            }
            if !c.env.is_empty() {
                let names: Vec<String> = c.env.keys().map(|k| format!("`{k}`")).collect();
                text.push_str(&format!(", sets {}", names.join(", ")));
            }
            text
        }
        Some(HandlerKind::Http(h)) => {
            let mut text = format!("http `POST {}`", h.url);
            if let Some(t) = h.timeout {
                text.push_str(&format!(", timeout {t}"));
            }
            if !h.headers.is_empty() {
                let names: Vec<String> = h.headers.keys().map(|k| format!("`{k}`")).collect();
                text.push_str(&format!(", headers {}", names.join(", ")));
            }
            text
        }
        Some(HandlerKind::Rust(name)) => format!("rust, registered as `{name}`"),
        Some(HandlerKind::Inngest(i)) => format!("Inngest SDK function at `{}`", i.url),
        None => "none (invalid)".into(),
    }
}

fn policy(p: &RunPolicy) -> String {
    let r = &p.retries;
    let attempts = if r.max_attempts == 1 {
        "1 attempt (no retry)".to_string()
    } else {
        let b = &r.backoff;
        format!("{} attempts, backoff {}..{} ×{} (full jitter)", r.max_attempts, b.initial, b.max, b.multiplier)
    };
    let concurrency = p.concurrency.as_ref().map_or_else(
        || "up to `--workers` at once per node".into(),
        |c| match &c.key {
            None => format!("{} at once across nodes", c.limit()),
            Some(key) => format!("{} at once per `{}` across nodes", c.limit(), key.source()),
        },
    );
    let throttle = p.throttle.as_ref().map(|t| {
        let per = t.key.as_ref().map(|k| format!(" per `{}`", k.source())).unwrap_or_default();
        format!("; at most {} starts per {} (burst {}){per}", t.limit, t.period, t.burst)
    });
    let rate = p.rate_limit.as_ref().map(|r| {
        let per = r.key.as_ref().map(|k| format!(" per `{}`", k.source())).unwrap_or_default();
        format!("; at most {} new runs per {}{per}", r.limit, r.period)
    });
    let debounce = p.debounce.as_ref().map(|d| {
        let per = d.key.as_ref().map(|k| format!(" per `{}`", k.source())).unwrap_or_default();
        let max = d.max_wait.map(|m| format!(" (at most {m})")).unwrap_or_default();
        format!("; starts {} after the last trigger{max}{per}", d.period)
    });
    let singleton = p.singleton.as_ref().map(|s| {
        let per = s.key.as_ref().map(|k| format!(" per `{}`", k.source())).unwrap_or_default();
        let mode = match s.mode {
            plinth_core::flow::SingletonMode::Skip => "a new one is refused",
            plinth_core::flow::SingletonMode::Cancel => "a new one cancels it",
        };
        format!("; one unfinished run{per} ({mode})")
    });
    let timeouts = p.timeouts.as_ref().map(|t| {
        let start = t.start.map(|d| format!("; cancelled if not started within {d}")).unwrap_or_default();
        let finish = t.finish.map(|d| format!("; cancelled if not finished within {d}")).unwrap_or_default();
        format!("{start}{finish}")
    });
    let batch = p.batch.as_ref().map(|b| {
        let per = b.key.as_ref().map(|k| format!(" per `{}`", k.source())).unwrap_or_default();
        format!("; events in batches of up to {} (started {} after the first){per}", b.max_size, b.timeout)
    });
    let priority = p.priority.as_ref().map(|e| {
        let source = serde_json::to_value(e).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        format!("; `{source}` seconds ahead in the queue")
    });
    let cancel_on = (!p.cancel_on.is_empty()).then(|| {
        let names = p.cancel_on.iter().map(|c| format!("`{}`", c.event)).collect::<Vec<_>>().join(", ");
        format!("; cancelled by {names}")
    });
    let queued = p.max_queued.map_or_else(|| "no queue limit".into(), |q| format!("at most {q} queued"));
    let rules =
        [throttle, rate, debounce, singleton, batch, priority, timeouts, cancel_on].into_iter().flatten().collect::<String>();
    format!("{attempts}; timeout {}; {concurrency}{rules}; {queued}", p.timeout)
}

/// `functions`: each function's handler, policy and input schema.
pub(crate) fn functions(facts: &Facts<'_>) -> String {
    let mut out = String::from(
        "| Function | Description | Handler | Policy | Input schema |\n|----------|-------------|---------|--------|--------------|\n",
    );
    for f in &facts.component.file.functions {
        let schema = if f.input_schema.is_some() { "below" } else { "none: any JSON" };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {schema} |",
            f.name,
            f.description.as_deref().map_or_else(|| "not given".into(), cell),
            cell(&handler(f)),
            cell(&policy(&f.policy)),
        );
    }
    let triggers: Vec<String> =
        facts.component.file.functions.iter().flat_map(|f| f.triggers.iter().map(move |t| trigger_row(&f.name, t))).collect();
    if !triggers.is_empty() {
        out.push_str(
            "\nTriggers and schedules (besides `POST /run`; an event starts one run of each function whose trigger \
             matches, a schedule one run per tick across all nodes):\n\n| Function | Trigger | Condition or time zone |\n\
             |----------|---------|------------------------|\n",
        );
        for row in triggers {
            let _ = writeln!(out, "{row}");
        }
    }
    for f in facts.component.file.functions.iter().filter(|f| f.input_schema.is_some()) {
        let schema = serde_json::to_string_pretty(&f.input_schema).unwrap_or_default();
        let _ = write!(
            out,
            "\nInput schema of `{}` (`POST /run` answers 422 `PLINTH_004` when `input` does not match):\n\n```json\n{schema}\n```\n",
            f.name
        );
    }
    out
}

/// One row of the triggers table.
fn trigger_row(function: &str, t: &plinth_core::trigger::TriggerSpec) -> String {
    match (&t.event, &t.cron) {
        (Some(event), _) => {
            let condition = t.condition.as_deref().map_or_else(|| "every such event".into(), |c| cell(&format!("`{c}`")));
            format!("| `{function}` | event `{event}` | {condition} |")
        }
        (None, Some(cron)) => format!("| `{function}` | cron `{cron}` | {} |", t.timezone.as_deref().unwrap_or("UTC")),
        (None, None) => format!("| `{function}` | none | |"),
    }
}

const METHODS: [&str; 8] = ["get", "post", "put", "patch", "delete", "head", "options", "trace"];

/// Who may call an operation, from its `security` requirement.
fn access(op: &Value) -> String {
    match op.get("security").and_then(Value::as_array) {
        None => "open".into(),
        Some(reqs) if reqs.is_empty() => "public".into(),
        Some(reqs) => {
            let scopes: Vec<&str> = reqs
                .iter()
                .filter_map(|r| r.as_object())
                .flat_map(|r| r.values())
                .flat_map(|s| s.as_array().into_iter().flatten())
                .filter_map(Value::as_str)
                .collect();
            match scopes.first() {
                Some(scope) => format!("`{scope}`"),
                None => "any credential".into(),
            }
        }
    }
}

/// `(method, path, operation)` of every operation, sorted by path then method.
pub(crate) fn operations(openapi: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    if let Some(paths) = openapi["paths"].as_object() {
        for (path, item) in paths {
            for m in METHODS {
                if let Some(op) = item.get(m) {
                    out.push((m.to_uppercase(), path.clone(), op.clone()));
                }
            }
        }
    }
    out.sort_by(|a, b| {
        (&a.1, METHODS.iter().position(|m| a.0.eq_ignore_ascii_case(m)))
            .cmp(&(&b.1, METHODS.iter().position(|m| b.0.eq_ignore_ascii_case(m))))
    });
    out
}

fn statuses(op: &Value) -> Vec<String> {
    let mut codes: Vec<String> = op["responses"].as_object().map(|r| r.keys().cloned().collect()).unwrap_or_default();
    codes.sort();
    codes
}

/// `endpoints`: every route of `GET /openapi.json`.
pub(crate) fn endpoints(facts: &Facts<'_>) -> String {
    let auth = facts.component.file.auth.is_some();
    let mut out = if auth {
        String::from("| Method and path | Purpose | Answers | Access |\n|-----------------|---------|---------|--------|\n")
    } else {
        String::from("| Method and path | Purpose | Answers |\n|-----------------|---------|---------|\n")
    };
    for (method, path, op) in operations(&facts.openapi) {
        let summary = op["summary"].as_str().or_else(|| op["description"].as_str()).unwrap_or("");
        let answers: Vec<String> = statuses(&op).iter().map(|s| format!("`{s}`")).collect();
        let who = if auth { format!(" {} |", access(&op)) } else { String::new() };
        let _ = writeln!(out, "| `{method} {path}` | {} | {} |{who}", cell(summary), answers.join(" "));
    }
    if !auth {
        out.push_str("\nEvery route is open: the component file has no `auth:` section.\n");
    }
    out.push_str("\nEvery error answer is `application/problem+json` with a stable `code` (see Error Codes). `GET /openapi.json` gives the request and answer schemas, each function's input schema on `POST /run`.\n");
    out
}

/// `metrics`: every metric family Plinth registers, from `plinth_core::metrics::METRICS`.
pub(crate) fn metrics(facts: &Facts<'_>) -> String {
    let prefix = facts.metrics_prefix();
    let mut out = format!(
        "All metrics use the prefix `{prefix}_` (`--metrics-prefix`) and carry the constant label `component=\"{}\"`. `GET /metrics` answers them in the OpenMetrics text format.\n\n| Metric Name | Type | Labels | Description |\n|-------------|------|--------|-------------|\n",
        facts.component.file.component.name
    );
    for d in &METRICS {
        let labels: Vec<String> = d.labels.iter().map(|l| format!("`{l}`")).collect();
        let labels = if labels.is_empty() { "none".to_string() } else { labels.join(", ") };
        let mut kind = d.kind.as_str().to_string();
        kind[..1].make_ascii_uppercase();
        let _ = writeln!(out, "| `{}` | {kind} | {labels} | {} |", d.full_name(&prefix), cell(d.help));
    }
    out
}

/// The spans Plinth makes ([`plinth_core::trace::SPANS`]) and how their context travels.
pub(crate) fn tracing(_: &Facts<'_>) -> String {
    let mut out = String::from(
        "Spans are exported over OTLP/HTTP (protobuf, batched) when an endpoint is set (`--otlp-endpoint`, `PLINTH_OTLP_ENDPOINT`, else `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`); `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`/`_ARG` and `OTEL_BSP_*` apply. Spans the export loses are counted in `spans_dropped_total{reason}`. Every log line of a traced request or attempt carries `trace_id` and `span_id`.\n\n| Span | Kind | Parent | Attributes | Made for |\n|------|------|--------|------------|----------|\n",
    );
    for d in &plinth_core::trace::SPANS {
        let attributes: Vec<String> = d.attributes.iter().map(|a| format!("`{a}`")).collect();
        let _ =
            writeln!(out, "| `{}` | {} | {} | {} | {} |", d.name, d.kind, cell(d.parent), attributes.join(", "), cell(d.what));
    }
    out.push_str(
        "\nPropagation: a valid W3C `traceparent` sent with `POST /run`, `POST /events`, `POST /e/{key}` or a NATS message is stored with the run it makes, with the `tracestate` sent beside it when valid (an invalid `traceparent` starts a new trace and an invalid `tracestate` is dropped, without error), so every attempt on any node continues it. HTTP handlers receive `traceparent` (their call's span), `tracestate` when there is one, and `X-Correlation-ID`; command handlers `TRACEPARENT`, `TRACESTATE` when there is one, `PLINTH_RUN_ID`, `PLINTH_FUNCTION`, `PLINTH_ATTEMPT`, `PLINTH_CORRELATION_ID` and `PLINTH_URL`. An invoked run and the runs a step's `send_event` starts continue the step's trace.\n",
    );
    out
}

/// The schema a `$ref` points at, or the schema itself.
fn resolve<'v>(openapi: &'v Value, schema: &'v Value) -> &'v Value {
    match schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/")) {
        Some(pointer) => openapi.pointer(&format!("/{pointer}")).unwrap_or(schema),
        None => schema,
    }
}

/// `health-checks`: `GET /health` and `GET /ready`, and the dependency checks `/health` runs.
pub(crate) fn health_checks(facts: &Facts<'_>) -> String {
    let mut out = String::from(
        "| Endpoint/Mechanism | Purpose | Expected Response |\n|--------------------|---------|-------------------|\n",
    );
    let ops = operations(&facts.openapi);
    for (method, path, op) in ops.iter().filter(|(_, p, _)| p == "/health" || p == "/ready") {
        let answers: Vec<String> = statuses(op)
            .into_iter()
            .filter(|s| s.starts_with('2') || s.starts_with('5'))
            .map(|s| format!("`{s}`: {}", op["responses"][&s]["description"].as_str().unwrap_or("")))
            .collect();
        let summary = op["summary"].as_str().unwrap_or("");
        let _ = writeln!(out, "| `{method} {path}` | {} | {} |", cell(summary), cell(&answers.join(" ")));
    }
    let api = &facts.openapi;
    let health = ops
        .iter()
        .find(|(_, p, _)| p == "/health")
        .map(|(_, _, op)| op["responses"]["200"]["content"]["application/json"]["schema"].clone());
    let checks = health.as_ref().map(|s| resolve(api, s)).map(|h| resolve(api, &h["properties"]["checks"]));
    out.push_str("\nThe checks `GET /health` runs, each under `checks` in its answer:\n\n");
    match checks.and_then(|c| c["properties"].as_object()) {
        Some(props) => {
            for (name, schema) in props {
                // Why: an optional check is `oneOf: [null, {$ref, description}]` in the document.
                let variants = schema["oneOf"].as_array().into_iter().flatten();
                let what = schema["description"]
                    .as_str()
                    .or_else(|| variants.filter_map(|v| v["description"].as_str()).next())
                    .or_else(|| resolve(api, schema)["description"].as_str())
                    .unwrap_or("");
                let _ = writeln!(out, "- `{name}`: {}", what.split_whitespace().collect::<Vec<_>>().join(" "));
            }
        }
        None => out.push_str("- none described by the OpenAPI document\n"),
    }
    out
}

/// `error-codes`: the whole catalog, `plinth_core::Code::ALL`.
pub(crate) fn error_codes(_: &Facts<'_>) -> String {
    let mut out = String::from(
        "| Code | Name | HTTP | Retryable | Description | User Action |\n|------|------|------|-----------|-------------|-------------|\n",
    );
    for code in Code::ALL {
        let e = code.entry();
        let status = e.http_status.map_or_else(|| "none".into(), |s| s.to_string());
        let retry = if e.retryable { "yes" } else { "no" };
        let _ = writeln!(out, "| `{}` | `{}` | {status} | {retry} | {} | {} |", e.code, e.name, cell(e.meaning), cell(e.action));
    }
    out.push_str("\n`GET /errors` lists the catalog and `GET /errors/{code}` explains one code.\n");
    out
}
