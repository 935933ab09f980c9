//! `plinth spec lint`: template placeholders left unfilled, and sections a document's family
//! requires but it lacks.

use super::families::{self, FAMILIES};
use serde::Serialize;

/// The largest document read.
pub(crate) const MAX_BYTES: usize = 64 * 1024 * 1024;

/// How much a finding weighs: an error fails the lint; a note (an optional section left out)
/// fails it only under `--strict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Severity {
    Error,
    Note,
}

impl Severity {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Note => "note",
        }
    }
}

/// One finding: where, a stable code, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Finding {
    pub(crate) line: usize,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) severity: Severity,
}

fn finding(line: usize, code: &'static str, message: impl Into<String>) -> Finding {
    Finding { line, code, message: message.into(), severity: Severity::Error }
}

/// Phrases the templates use to instruct their reader; they must not survive in a document.
const INSTRUCTIONS: [&str; 5] = [
    "replace this file",
    "replace with actual",
    "replace all `{placeholders}`",
    "delete sections that don't apply",
    "**instructions**:",
];

/// The text of a line without its inline code spans (`like this`).
fn without_code_spans(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            out.push(c);
        }
    }
    out
}

/// `{{NAME}}`, `{name}` (not a `/path/{param}`), and `[Name]` (not a link, checkbox or footnote).
fn placeholders(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let (open, close) = match b[i] {
            b'{' => (b'{', b'}'),
            b'[' => (b'[', b']'),
            _ => {
                i += 1;
                continue;
            }
        };
        let double = open == b'{' && b.get(i + 1) == Some(&b'{');
        let start = if double { i + 2 } else { i + 1 };
        let Some(len) = b[start..].iter().take(80).position(|&c| c == close || c == open) else {
            i += 1;
            continue;
        };
        let end = start + len;
        if b[end] != close {
            i = end;
            continue;
        }
        let inner = &text[start..end];
        let after = b.get(end + 1).copied();
        let before = i.checked_sub(1).map(|p| b[p]);
        let is_placeholder = match (open, double) {
            (b'{', true) => after == Some(b'}') && !inner.trim().is_empty(),
            (b'{', false) => before != Some(b'/') && before != Some(b'$') && inner.chars().any(char::is_alphabetic),
            _ => {
                let word = inner.trim();
                !matches!(after, Some(b'(' | b'[' | b':'))
                    && !word.is_empty()
                    && !matches!(word, "x" | "X" | "!")
                    && !word.starts_with('^')
                    && !word.starts_with('!')
                    && word.chars().all(|c| c.is_alphanumeric() || " _-./".contains(c))
                    && word.chars().any(char::is_alphabetic)
            }
        };
        let stop = if double { end + 2 } else { end + 1 };
        if is_placeholder {
            found.push(text[i..stop.min(text.len())].to_string());
        }
        i = stop;
    }
    found
}

fn is_ellipsis(cell: &str) -> bool {
    matches!(cell.trim(), "..." | "…")
}

/// Lints one document's text.
pub(crate) fn lint(text: &str) -> Vec<Finding> {
    if text.trim().is_empty() {
        return vec![finding(1, "empty", "the document is empty; start from one of the templates")];
    }
    let mut out = Vec::new();
    let mut title: Option<(usize, String)> = None;
    let mut sections = Vec::new();
    let mut in_fence = false;
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        if let Some(h) = trimmed.strip_prefix("# ") {
            title.get_or_insert((n, h.trim().to_string()));
        } else if let Some(h) = trimmed.strip_prefix("## ") {
            sections.push(h.trim().to_string());
        }
        if let Some(question) = trimmed.trim_start_matches('>').trim_start().strip_prefix("QUESTION:") {
            let question: String = question.trim().chars().take(160).collect();
            out.push(finding(
                n,
                "question",
                format!("unanswered question: {question} (answer it in the text, then delete the line)"),
            ));
            continue;
        }
        let lower = trimmed.to_lowercase();
        if let Some(phrase) = INSTRUCTIONS.iter().find(|p| lower.contains(*p)) {
            out.push(finding(
                n,
                "instruction",
                format!("template instruction left in (`{phrase}`): follow it, then delete the line"),
            ));
            continue;
        }
        let text = without_code_spans(line);
        for p in placeholders(&text) {
            out.push(finding(n, "placeholder", format!("unfilled placeholder `{p}`")));
        }
        if text.contains("YYYY-MM-DD") {
            out.push(finding(n, "date-placeholder", "`YYYY-MM-DD` left in: write the date"));
        }
        if trimmed.starts_with('|') && trimmed.trim_end().trim_end_matches('|').split('|').skip(1).any(is_ellipsis) {
            out.push(finding(n, "ellipsis-cell", "a table cell holds only `...`: fill it in or remove the row"));
        } else if is_ellipsis(trimmed.trim_start_matches(['-', '*']).trim()) {
            out.push(finding(n, "ellipsis", "a line holds only `...`: fill it in or remove it"));
        }
    }
    if title.is_none() && sections.is_empty() {
        out.push(finding(1, "not-markdown", "no Markdown headings: this is not a specification document"));
        return out;
    }
    let titled = title.as_ref().map(|(_, t)| t.as_str());
    match families::recognize(titled, &sections) {
        Some(family) => {
            let at = title.as_ref().map_or(1, |(n, _)| *n);
            let (required, optional) = families::missing(family, &sections);
            for s in required {
                out.push(finding(
                    at,
                    "missing-section",
                    format!("the {} template requires a `## {s}` section; this document lacks it", family.name),
                ));
            }
            for s in optional {
                out.push(Finding {
                    severity: Severity::Note,
                    ..finding(
                        at,
                        "optional-section",
                        format!("no `## {s}` section: the {} template lets it be left out where it does not apply", family.name),
                    )
                });
            }
        }
        None => {
            let names: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
            out.push(finding(
                1,
                "unknown-family",
                format!(
                    "matches no template family by its title or sections (known: {}); sections were not checked",
                    names.join(", ")
                ),
            ));
        }
    }
    out.sort_by_key(|f| f.line);
    out
}
