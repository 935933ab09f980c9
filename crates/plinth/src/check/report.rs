//! The results as a table, JSON or JUnit XML.

use super::{CheckResult, Outcome};
use serde_json::json;
use std::fmt::Write;
use std::time::Duration;

fn detail(o: &Outcome) -> String {
    match o {
        Outcome::Pass => String::new(),
        Outcome::Fail { expected, got } => format!("expected {expected}; got {got}"),
        Outcome::Skip { why } => why.clone(),
    }
}

fn counts(results: &[CheckResult]) -> (usize, usize, usize) {
    let n = |w: &str| results.iter().filter(|r| r.outcome.word() == w).count();
    (n("pass"), n("fail"), n("skip"))
}

/// Columns padded to their widest cell (the last one is not padded).
fn columns(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for cells in std::iter::once(headers.iter().map(|h| (*h).to_string()).collect::<Vec<_>>()).chain(rows.iter().cloned()) {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    }
    out
}

pub(crate) fn table(results: &[CheckResult], elapsed: Duration) -> String {
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| vec![r.id.to_string(), r.outcome.word().to_uppercase(), format!("{}ms", r.elapsed_ms), detail(&r.outcome)])
        .collect();
    let mut out =
        if rows.is_empty() { "no checks selected\n".to_string() } else { columns(&["CHECK", "RESULT", "TIME", "DETAIL"], &rows) };
    let (pass, fail, skip) = counts(results);
    let _ = writeln!(out, "{pass} passed, {fail} failed, {skip} skipped in {:.2}s", elapsed.as_secs_f64());
    out
}

pub(crate) fn json(url: &str, results: &[CheckResult], elapsed: Duration) -> String {
    let items: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let mut item = json!({"id": r.id, "outcome": r.outcome.word(), "elapsed_ms": r.elapsed_ms});
            match &r.outcome {
                Outcome::Pass => {}
                Outcome::Fail { expected, got } => {
                    item["expected"] = json!(expected);
                    item["got"] = json!(got);
                }
                Outcome::Skip { why } => item["why"] = json!(why),
            }
            item
        })
        .collect();
    let (pass, fail, skip) = counts(results);
    let report = json!({
        "url": url,
        "results": items,
        "summary": {"passed": pass, "failed": fail, "skipped": skip, "elapsed_ms": elapsed.as_millis()},
    });
    format!("{report}\n")
}

/// Text for XML content and attribute values: the five specials escaped, characters XML 1.0
/// cannot hold (most control characters) replaced.
pub(crate) fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn junit(url: &str, results: &[CheckResult], elapsed: Duration) -> String {
    let (_, fail, skip) = counts(results);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        r#"<testsuites name="plinth check" tests="{}" failures="{fail}" skipped="{skip}" time="{:.3}">"#,
        results.len(),
        elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        r#"  <testsuite name="{}" tests="{}" failures="{fail}" errors="0" skipped="{skip}" time="{:.3}">"#,
        xml_escape(&format!("plinth check {url}")),
        results.len(),
        elapsed.as_secs_f64()
    );
    for r in results {
        let group = r.id.split('.').next().unwrap_or(r.id);
        #[allow(clippy::cast_precision_loss)]
        let time = r.elapsed_ms as f64 / 1000.0;
        let open = format!(r#"    <testcase classname="plinth.check.{group}" name="{}" time="{time:.3}""#, r.id);
        match &r.outcome {
            Outcome::Pass => {
                let _ = writeln!(out, "{open}/>");
            }
            Outcome::Fail { expected, got } => {
                let _ = writeln!(
                    out,
                    "{open}>\n      <failure message=\"{}\" type=\"fail\">expected: {}\ngot: {}</failure>\n    </testcase>",
                    xml_escape(&detail(&r.outcome)),
                    xml_escape(expected),
                    xml_escape(got)
                );
            }
            Outcome::Skip { why } => {
                let _ = writeln!(out, "{open}>\n      <skipped message=\"{}\"/>\n    </testcase>", xml_escape(why));
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}
