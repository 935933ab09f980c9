//! Human output of the CLI client: a table of runs, one run's details, log lines.

use serde_json::Value;
use std::fmt::Write;

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Columns padded to their widest cell.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec(), &mut out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// `GET /runs` as a table, with the cursor of the next page when there is one.
pub(crate) fn run_table(page: &Value) -> String {
    let rows: Vec<Vec<String>> = page["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                text(&r["run_id"]),
                text(&r["function"]),
                text(&r["status"]),
                format!("{}/{}", text(&r["attempt"]), text(&r["max_attempts"])),
                text(&r["created_at"]),
                r["error"]["code"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no runs\n".into();
    }
    let mut out = table(&["RUN_ID", "FUNCTION", "STATUS", "ATTEMPT", "CREATED", "ERROR"], &rows);
    if let Some(cursor) = page["next_cursor"].as_str() {
        let _ = writeln!(out, "more: --cursor {cursor}");
    }
    out
}

/// One run as `key: value` lines, its output or error last.
pub(crate) fn run_detail(run: &Value) -> String {
    let mut out = String::new();
    for key in ["run_id", "function", "status", "correlation_id", "created_at", "started_at", "finished_at"] {
        let _ = writeln!(out, "{key:<15}{}", text(&run[key]));
    }
    let _ = writeln!(out, "{:<15}{}/{}", "attempt", text(&run["attempt"]), text(&run["max_attempts"]));
    if let Some(next) = run["next_attempt_at"].as_str() {
        let _ = writeln!(out, "{:<15}{next}", "next_attempt");
    }
    if let Some(kind) = run["trigger"]["type"].as_str() {
        let detail = ["event_id", "scheduled_at", "parent_run_id", "of"].iter().find_map(|k| run["trigger"][k].as_str());
        let _ = writeln!(out, "{:<15}{kind}{}", "trigger", detail.map(|d| format!(" {d}")).unwrap_or_default());
    }
    if let Some(w) = run["waiting_for"].as_object() {
        let on = ["until", "event", "run_id"].iter().find_map(|k| w.get(*k).and_then(Value::as_str)).unwrap_or("");
        let timeout = w.get("timeout_at").and_then(Value::as_str).map(|t| format!(" (gives up at {t})")).unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<15}step {} {} {on}{timeout}",
            "waiting_for",
            text(&run["waiting_for"]["step"]),
            text(&run["waiting_for"]["kind"])
        );
    }
    if let Some(key) = run["flow_key"].as_str() {
        let _ = writeln!(out, "{:<15}{key:?}", "flow_key");
    }
    if run["held_by"].is_object() {
        let _ = writeln!(out, "{:<15}{}", "held_by", held_by(&run["held_by"]));
    }
    if run["error"].is_object() {
        let _ = writeln!(out, "{:<15}{} {}", "error", text(&run["error"]["code"]), text(&run["error"]["message"]));
    }
    if !run["output"].is_null() {
        let _ = writeln!(out, "{:<15}{}", "output", run["output"]);
    }
    out
}

/// Why a queued run waits, in words: `concurrency: key "t-1" at its limit 1 (1 running, 2 ahead)`.
fn held_by(h: &Value) -> String {
    let rule = text(&h["rule"]);
    match rule.as_str() {
        "concurrency" => format!(
            "concurrency: key {:?} at its limit {} ({} running, {} ahead)",
            h["key"].as_str().unwrap_or_default(),
            text(&h["limit"]),
            text(&h["running"]),
            text(&h["ahead"])
        ),
        _ => match h["until"].as_str() {
            Some(until) => format!("{rule}: may start at {until}"),
            None => rule,
        },
    }
}

/// `GET /runs/{id}/steps` as a table: one row a step, its output or error cut to one line.
pub(crate) fn step_table(steps: &Value) -> String {
    let rows: Vec<Vec<String>> = steps["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let result =
                if s["error"].is_object() { format!("error: {}", text(&s["error"]["message"])) } else { s["output"].to_string() };
            let result: String = result.chars().take(60).collect();
            let ms = s["duration_ms"].as_f64().map(|d| format!("{d:.1} ms")).unwrap_or_default();
            vec![text(&s["id"]), text(&s["op"]), text(&s["status"]), text(&s["attempts"]), ms, result]
        })
        .collect();
    if rows.is_empty() {
        return "no steps\n".to_string();
    }
    table(&["STEP", "OP", "STATUS", "ATTEMPTS", "DURATION", "OUTPUT"], &rows)
}

/// `GET /events` as a table, with the cursor of the next page when there is one.
pub(crate) fn event_table(page: &Value) -> String {
    let rows: Vec<Vec<String>> = page["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let runs = e["run_ids"].as_array().map_or(0, Vec::len);
            let skipped = e["skipped"].as_array().map_or(0, Vec::len);
            vec![text(&e["id"]), text(&e["name"]), text(&e["received_at"]), runs.to_string(), skipped.to_string()]
        })
        .collect();
    if rows.is_empty() {
        return "no events\n".into();
    }
    let mut out = table(&["ID", "NAME", "RECEIVED", "RUNS", "SKIPPED"], &rows);
    if let Some(cursor) = page["next_cursor"].as_str() {
        let _ = writeln!(out, "more: --cursor {cursor}");
    }
    out
}

/// One event: its fields, the runs it started, the functions it skipped and why.
pub(crate) fn event_detail(event: &Value) -> String {
    let mut out = String::new();
    for key in ["id", "name", "ts", "received_at"] {
        let _ = writeln!(out, "{key:<13}{}", text(&event[key]));
    }
    let _ = writeln!(out, "{:<13}{}", "data", event["data"]);
    for run in event["run_ids"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "{:<13}{}", "started", text(run));
    }
    for s in event["skipped"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "{:<13}{}: {}", "skipped", text(&s["function"]), text(&s["reason"]));
    }
    out
}

/// Each function's schedule from `GET /functions`.
pub(crate) fn schedule_table(functions: &Value) -> String {
    let mut rows = Vec::new();
    for f in functions["functions"].as_array().into_iter().flatten() {
        for t in f["triggers"].as_array().into_iter().flatten().filter(|t| t["cron"].is_string()) {
            rows.push(vec![
                text(&f["name"]),
                text(&t["cron"]),
                t["timezone"].as_str().unwrap_or("UTC").to_string(),
                text(&f["schedule"]["last_at"]),
                text(&f["schedule"]["next_at"]),
            ]);
        }
    }
    if rows.is_empty() {
        return "no schedules\n".into();
    }
    table(&["FUNCTION", "CRON", "TIMEZONE", "LAST", "NEXT"], &rows)
}

/// `GET /runs/{id}/logs` as `attempt timestamp text` lines.
pub(crate) fn log_lines(logs: &Value) -> String {
    let mut out = String::new();
    for l in logs["logs"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "#{} {} {}", text(&l["attempt"]), text(&l["timestamp"]), text(&l["text"]));
    }
    if out.is_empty() {
        out.push_str("no log lines\n");
    }
    out
}
