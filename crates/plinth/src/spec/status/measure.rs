//! Each row of the "1.0 Standardization Status" table, measured: what the live component
//! exposes compared with what the document mentions.

use super::lcov::Coverage;
use super::live::{Answer, Live};
use crate::spec::generate::serve_flags;
use plinth_core::metrics::METRICS;
use serde::Serialize;
use std::collections::BTreeSet;

/// A row's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum State {
    #[serde(rename = "Complete")]
    Complete,
    #[serde(rename = "In Progress")]
    InProgress,
    #[serde(rename = "Not Started")]
    NotStarted,
    #[serde(rename = "Not Measured")]
    NotMeasured,
    #[serde(rename = "N/A")]
    NotApplicable,
}

impl State {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            State::Complete => "Complete",
            State::InProgress => "In Progress",
            State::NotStarted => "Not Started",
            State::NotMeasured => "Not Measured",
            State::NotApplicable => "N/A",
        }
    }

    /// Complete when nothing is missing, Not Started when nothing of `total` is there.
    fn of(missing: usize, total: usize) -> Self {
        match missing {
            0 => State::Complete,
            m if m >= total => State::NotStarted,
            _ => State::InProgress,
        }
    }
}

/// One row of the table, with what was compared and what is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Row {
    pub(crate) requirement: &'static str,
    pub(crate) status: State,
    /// The "Current Status" cell: the status, or the coverage percentage.
    pub(crate) current: String,
    pub(crate) target: &'static str,
    pub(crate) owner: String,
    /// What was compared with what.
    pub(crate) measured: String,
    pub(crate) missing: Vec<String>,
    /// What was seen that is not missing but worth saying.
    pub(crate) notes: Vec<String>,
}

fn row(requirement: &'static str, status: State, measured: String, missing: Vec<String>) -> Row {
    Row {
        requirement,
        status,
        current: status.as_str().into(),
        target: "Complete",
        owner: String::new(),
        measured,
        missing,
        notes: Vec::new(),
    }
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Whether `doc` holds `word` as a whole word (not inside a longer name).
pub(crate) fn mentions(doc: &str, word: &str) -> bool {
    doc.match_indices(word).any(|(i, _)| {
        let before = doc[..i].chars().next_back();
        let after = doc[i + word.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

fn quoted(items: &[String]) -> Vec<String> {
    items.iter().map(|i| format!("`{i}`")).collect()
}

/// The undocumented items of `all`, each as a missing line.
fn undocumented(doc: &str, all: &[String], what: &str) -> Vec<String> {
    all.iter().filter(|x| !mentions(doc, x)).map(|x| format!("{what} `{x}` is not in the document")).collect()
}

fn not_plinth(requirement: &'static str, what: &str) -> Row {
    row(
        requirement,
        State::NotMeasured,
        format!("not measured: {what} cannot be read over HTTP"),
        vec![format!(
            "`GET /health` has no `plinth_version`, so this is not a Plinth server and its {what} are unknown here; compare its `--help` with the document by hand"
        )],
    )
}

/// "CLI flags documented": for a Plinth server, every flag of `plinth serve`.
pub(crate) fn cli_flags(doc: &str, live: &Live) -> Row {
    const NAME: &str = "CLI flags documented";
    let Some(version) = live.plinth_version() else { return not_plinth(NAME, "command-line flags") };
    let flags: Vec<String> = serve_flags(&[]).into_iter().map(|f| f.long).collect();
    let missing = undocumented(doc, &flags, "flag");
    let measured =
        format!("the {} flags of `plinth serve` {} against the document{}", flags.len(), plinth_core::VERSION, skew(&version));
    row(NAME, State::of(missing.len(), flags.len()), measured, missing)
}

/// "Env vars documented": for a Plinth server, every variable `plinth serve` reads.
pub(crate) fn env_vars(doc: &str, live: &Live) -> Row {
    const NAME: &str = "Env vars documented";
    let Some(version) = live.plinth_version() else { return not_plinth(NAME, "environment variables") };
    let vars: Vec<String> = serve_flags(&[]).into_iter().filter_map(|f| f.env).collect();
    let missing = undocumented(doc, &vars, "variable");
    let measured = format!(
        "the {} variables `plinth serve` {} reads against the document{}",
        vars.len(),
        plinth_core::VERSION,
        skew(&version)
    );
    row(NAME, State::of(missing.len(), vars.len()), measured, missing)
}

/// A note when the server runs another Plinth than this one, whose flags were compared.
fn skew(server: &str) -> String {
    if server == plinth_core::VERSION {
        String::new()
    } else {
        format!(" (the server runs Plinth {server}; the flags compared are this plinth's, {})", plinth_core::VERSION)
    }
}

/// The metric names an exposition declares or samples, as queries write them: a counter with
/// `_total`, a histogram or summary by its family name.
pub(crate) fn metric_names(text: &str) -> BTreeSet<String> {
    let mut families: Vec<(String, String)> = Vec::new();
    let mut names = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                let exposed = match kind {
                    "counter" if !name.ends_with("_total") => format!("{name}_total"),
                    "info" => format!("{name}_info"),
                    _ => name.to_string(),
                };
                families.push((name.to_string(), kind.to_string()));
                names.insert(exposed);
            }
        } else if !line.is_empty() && !line.starts_with('#') {
            let sample = line.split(['{', ' ']).next().unwrap_or("");
            let covered = families.iter().any(|(f, _)| sample == f || sample.starts_with(&format!("{f}_")));
            if !covered && !sample.is_empty() {
                names.insert(sample.to_string());
            }
        }
    }
    names
}

fn unanswered(path: &str, got: &Result<Answer, String>) -> String {
    match got {
        Ok(a) => format!("`GET {path}` answered {}", a.describe()),
        Err(e) => e.clone(),
    }
}

/// "Metrics standardized": every metric exposed is documented, and the contract's are exposed.
pub(crate) fn metrics(doc: &str, live: &Live, prefix: &str) -> Row {
    const NAME: &str = "Metrics standardized";
    let text = match &live.metrics {
        Ok(a) if a.status == 200 => a.text(),
        other => return row(NAME, State::NotStarted, "`GET /metrics`".into(), vec![unanswered("/metrics", other)]),
    };
    let exposed: Vec<String> = metric_names(&text).into_iter().collect();
    if exposed.is_empty() {
        return row(NAME, State::NotStarted, "`GET /metrics`".into(), vec!["`GET /metrics` exposes no metric".into()]);
    }
    let documented =
        |name: &String| mentions(doc, name) || ["_bucket", "_count", "_sum"].iter().any(|s| mentions(doc, &format!("{name}{s}")));
    let mut missing: Vec<String> =
        exposed.iter().filter(|n| !documented(n)).map(|n| format!("metric `{n}` is exposed but not in the document")).collect();
    let required: Vec<String> = METRICS.iter().map(|d| d.full_name(prefix)).collect();
    let absent = |labelled: bool| -> Vec<String> {
        METRICS
            .iter()
            .filter(|d| d.labels.is_empty() != labelled)
            .map(|d| d.full_name(prefix))
            .filter(|r| !exposed.contains(r))
            .collect()
    };
    let (unlabelled, labelled) = (absent(false), absent(true));
    if !unlabelled.is_empty() {
        missing.push(format!("not exposed though the contract requires it: {}", quoted(&unlabelled).join(", ")));
    }
    // Why: a labelled metric has no series before its first event (no run has finished, no
    // error happened), so its absence from one scrape says nothing; its absence from the
    // document does.
    let undocumented: Vec<String> = labelled.iter().filter(|n| !mentions(doc, n)).cloned().collect();
    if !undocumented.is_empty() {
        missing.push(format!("the contract's {} not in the document (nor exposed yet)", quoted(&undocumented).join(", ")));
    }
    let mut notes = Vec::new();
    if !labelled.is_empty() {
        notes.push(format!(
            "not in this scrape, as a labelled metric has no series before its first event: {} (`plinth check` verifies them after making runs)",
            quoted(&labelled).join(", ")
        ));
    }
    let status = if missing.is_empty() {
        State::Complete
    } else if exposed.iter().all(|n| !documented(n)) {
        State::NotStarted
    } else {
        State::InProgress
    };
    let measured = format!(
        "the {} metrics `GET /metrics` exposes against the document, and the contract's {} with the `{prefix}_` prefix",
        exposed.len(),
        required.len()
    );
    Row { notes, ..row(NAME, status, measured, missing) }
}

/// "Error codes defined": the codes the server answers with, each in the document.
pub(crate) fn error_codes(doc: &str, live: &Live) -> Row {
    const NAME: &str = "Error codes defined";
    let (codes, measured) = match live.catalog() {
        Some(codes) => {
            let n = codes.len();
            (codes, format!("the {n} codes of the `GET /errors` catalog against the document"))
        }
        None => {
            let mut seen = BTreeSet::new();
            for got in live.provoked.iter().flatten() {
                if let Some(code) = got.json().and_then(|b| b["code"].as_str().map(str::to_string)) {
                    seen.insert(code);
                }
            }
            let n = live.provoked.len();
            (
                seen.into_iter().collect(),
                format!("the codes of {n} error answers provoked on purpose (no `GET /errors` catalog) against the document"),
            )
        }
    };
    if codes.is_empty() {
        let why = "the error answers carry no `code` field and there is no `GET /errors` catalog".to_string();
        return row(NAME, State::NotStarted, measured, vec![why]);
    }
    let missing = undocumented(doc, &codes, "error code");
    row(NAME, State::of(missing.len(), codes.len()), measured, missing)
}

/// "Health checks implemented": `/health` with its checks and `/ready` answer, and the document
/// names both and every check.
pub(crate) fn health(doc: &str, live: &Live) -> Row {
    const NAME: &str = "Health checks implemented";
    let measured = "`GET /health` and `GET /ready` against the contract and the document".to_string();
    let body = |got: &Result<Answer, String>| {
        got.as_ref()
            .ok()
            .filter(|a| a.status == 200 || a.status == 503)
            .and_then(Answer::json)
            .filter(|b| b["status"].is_string())
    };
    let Some(health) = body(&live.health) else {
        let why = format!("{}; the contract wants 200 or 503 with a JSON `status`", unanswered("/health", &live.health));
        return row(NAME, State::NotStarted, measured, vec![why]);
    };
    let mut missing = Vec::new();
    let checks: Vec<String> = health["checks"].as_object().map(|c| c.keys().cloned().collect()).unwrap_or_default();
    if checks.is_empty() {
        missing.push("`GET /health` lists no dependency checks under `checks`".to_string());
    }
    if body(&live.ready).is_none() {
        missing.push(format!("{}; the contract wants 200 or 503 with a JSON `status`", unanswered("/ready", &live.ready)));
    }
    for endpoint in ["/health", "/ready"] {
        if !mentions(doc, endpoint) {
            missing.push(format!("`{endpoint}` is not in the document"));
        }
    }
    missing.extend(undocumented(doc, &checks, "the health check"));
    let status = if missing.is_empty() { State::Complete } else { State::InProgress };
    row(NAME, status, measured, missing)
}

/// "Test coverage", from an lcov file's totals.
pub(crate) fn coverage(lcov: Option<&Coverage>) -> Row {
    const NAME: &str = "Test coverage";
    let Some(c) = lcov else {
        let mut r = row(
            NAME,
            State::NotMeasured,
            "not measured: no lcov file".into(),
            vec![
                "pass `--lcov FILE` (for Rust, `cargo llvm-cov --lcov --output-path lcov.info`; for Python, `coverage lcov`)"
                    .into(),
            ],
        );
        r.current = "not measured".into();
        r.target = "80%+";
        return r;
    };
    let percent = c.percent();
    let status = if percent >= 80.0 {
        State::Complete
    } else if c.hit > 0 {
        State::InProgress
    } else {
        State::NotStarted
    };
    let missing = if status == State::Complete {
        Vec::new()
    } else {
        vec![format!("{} of {} lines are not covered; 80% needs {} more", c.found - c.hit, c.found, c.needed_for(80))]
    };
    let mut r = row(NAME, status, format!("{} of {} lines hit (lcov LF/LH totals)", c.hit, c.found), missing);
    r.current = format!("{percent:.1}%");
    r.target = "80%+";
    r
}

/// "Python API typed": not something a running server shows.
pub(crate) fn python_api() -> Row {
    let why =
        "whether a Python API is typed is a property of its source, not of the running server; check it with `mypy --strict`";
    Row {
        notes: vec![why.into()],
        ..row("Python API typed", State::NotApplicable, "not measurable over HTTP".into(), Vec::new())
    }
}
