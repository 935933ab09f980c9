//! `plinth spec status`: the "1.0 Standardization Status" table of the 001 template, computed
//! by comparing a document with the live component it describes, ready to paste.

mod lcov;
mod live;
mod measure;

use super::args::{StatusArgs, StatusFormat};
use super::families::normalize;
use live::Live;
use measure::{Row, State};
use serde_json::json;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

/// Every row, in the template's order.
pub(crate) fn rows(doc: &str, live: &Live, coverage: Option<&lcov::Coverage>, prefix: &str) -> Vec<Row> {
    let mut rows = vec![
        measure::cli_flags(doc, live),
        measure::env_vars(doc, live),
        measure::metrics(doc, live, prefix),
        measure::python_api(),
        measure::coverage(coverage),
        measure::error_codes(doc, live),
        measure::health(doc, live),
    ];
    let owners = owners(doc);
    let fallback = component_owner(live).unwrap_or_else(|| "unassigned".into());
    for r in &mut rows {
        r.owner =
            owners.iter().find(|(req, _)| *req == normalize(r.requirement)).map_or_else(|| fallback.clone(), |(_, o)| o.clone());
    }
    rows
}

/// The owners the document's own status table names, by normalized requirement.
fn owners(doc: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in doc.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            inside = normalize(h) == normalize("1.0 Standardization Status");
            continue;
        }
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        if !inside || !line.trim_start().starts_with('|') || cells.len() < 4 {
            continue;
        }
        let owner = cells[3];
        let placeholder =
            owner.is_empty() || owner.contains(['{', '}']) || owner.chars().all(|c| c == '.' || c == '…' || c == '-');
        if !placeholder && !owner.eq_ignore_ascii_case("owner") {
            out.push((normalize(cells[0]), owner.to_string()));
        }
    }
    out
}

/// `component.owner` of `GET /functions`, when the server says.
fn component_owner(live: &Live) -> Option<String> {
    let body = live.functions.as_ref().ok().filter(|a| a.status == 200)?.json()?;
    body["component"]["owner"].as_str().map(str::to_string)
}

/// Who the server says it is, in a few words.
fn server(live: &Live) -> String {
    let health = live.health.as_ref().ok().and_then(live::Answer::json).unwrap_or_default();
    let component = match (health["component"].as_str(), health["version"].as_str()) {
        (Some(c), Some(v)) => format!("`{c}` {v}"),
        (Some(c), None) => format!("`{c}`"),
        _ => "a component".into(),
    };
    match live.plinth_version() {
        Some(p) => format!("{component} served by Plinth {p}"),
        None => format!("{component}, not served by Plinth"),
    }
}

/// The table, a line on what was measured, then what each row misses.
pub(crate) fn markdown(rows: &[Row], live: &Live, spec: &Path) -> String {
    let mut out = String::from(
        "| Requirement | Current Status | 1.0 Target | Owner |\n|-------------|---------------|------------|-------|\n",
    );
    for r in rows {
        let _ = writeln!(out, "| {} | {} | {} | {} |", r.requirement, r.current, r.target, r.owner);
    }
    let _ =
        writeln!(out, "\nMeasured by `plinth spec status` against {} ({}) and `{}`.\n", live.url, server(live), spec.display());
    for r in rows {
        let _ = write!(out, "- **{}** ({}): ", r.requirement, r.measured);
        if r.missing.is_empty() {
            out.push_str(if r.status == State::Complete { "nothing missing." } else { "nothing to do." });
        } else {
            let _ = write!(out, "{}.", r.missing.join("; "));
        }
        for note in &r.notes {
            let _ = write!(out, " Note: {note}.");
        }
        out.push('\n');
    }
    out
}

fn json(rows: &[Row], live: &Live, spec: &Path) -> String {
    let body = json!({
        "url": live.url,
        "spec": spec.display().to_string(),
        "server": {"description": server(live), "plinth_version": live.plinth_version()},
        "rows": rows,
    });
    format!("{body:#}\n")
}

fn fail(message: &str) -> ExitCode {
    eprintln!("plinth spec status: {message}");
    ExitCode::from(2)
}

fn read(path: &Path, what: &str) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read the {what}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| format!("{}: the {what} is not UTF-8 text", path.display()))
}

pub(crate) fn main(args: &StatusArgs) -> ExitCode {
    let doc = match read(&args.spec, "specification") {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    let coverage = match &args.lcov {
        Some(path) => match read(path, "lcov file").and_then(|t| lcov::parse(&t).map_err(|e| format!("{}: {e}", path.display())))
        {
            Ok(c) => Some(c),
            Err(e) => return fail(&e),
        },
        None => None,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    let live = match runtime.block_on(live::measure(&args.url, args.timeout, args.api_key.as_deref())) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let rows = rows(&doc, &live, coverage.as_ref(), &args.metrics_prefix);
    match args.format {
        StatusFormat::Markdown => print!("{}", markdown(&rows, &live, &args.spec)),
        StatusFormat::Json => print!("{}", json(&rows, &live, &args.spec)),
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests;
