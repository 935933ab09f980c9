//! `plinth spec ...`: specification documents. `lint` finds unfilled template placeholders,
//! unanswered questions and missing sections; `generate` writes the factual sections from the
//! code; `status` measures the 1.0 status table against a live component.

mod args;
mod families;
pub(crate) mod generate;
pub(crate) mod lint;
mod status;

pub(crate) use args::{GenerateArgs, StatusArgs};

use crate::cli::{SpecCommand, SpecFormat};
use lint::{Finding, MAX_BYTES, Severity};
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;

/// Reads a document, or says why it cannot be linted.
fn read(path: &Path) -> Result<Result<String, Finding>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{}: not a file", path.display()));
    }
    if meta.len() > MAX_BYTES as u64 {
        let msg = format!("{} bytes, more than the {MAX_BYTES} a specification may have", meta.len());
        return Ok(Err(Finding { line: 1, code: "too-large", message: msg, severity: Severity::Error }));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.contains(&0) {
        return Ok(Err(Finding {
            line: 1,
            code: "not-text",
            message: "binary data (NUL bytes): not a Markdown document".into(),
            severity: Severity::Error,
        }));
    }
    Ok(String::from_utf8(bytes).map_err(|e| Finding {
        line: 1,
        code: "not-text",
        message: format!("not UTF-8 text (at byte {}): not a Markdown document", e.utf8_error().valid_up_to()),
        severity: Severity::Error,
    }))
}

/// Lints each file; the findings by file, or the first file that cannot be read.
pub(crate) fn lint_files(files: &[std::path::PathBuf]) -> Result<Vec<(String, Vec<Finding>)>, String> {
    files
        .iter()
        .map(|f| {
            let findings = match read(f)? {
                Ok(text) => lint::lint(&text),
                Err(finding) => vec![finding],
            };
            Ok((f.display().to_string(), findings))
        })
        .collect()
}

/// Renders the findings as `file:line: code: message` lines (notes only when `strict`, marked
/// `note:`) or a JSON array (every entry, each with its `severity`).
pub(crate) fn render(results: &[(String, Vec<Finding>)], format: SpecFormat, strict: bool) -> String {
    match format {
        SpecFormat::Text => results
            .iter()
            .flat_map(|(file, fs)| {
                fs.iter().filter(|f| strict || f.severity == Severity::Error).map(move |f| {
                    let note = if f.severity == Severity::Note { "note: " } else { "" };
                    format!("{file}:{}: {note}{}: {}\n", f.line, f.code, f.message)
                })
            })
            .collect(),
        SpecFormat::Json => {
            let all: Vec<_> = results
                .iter()
                .flat_map(|(file, fs)| {
                    fs.iter().map(move |f| {
                        json!({"file": file, "line": f.line, "code": f.code, "message": f.message, "severity": f.severity.as_str()})
                    })
                })
                .collect();
            format!("{}\n", serde_json::Value::Array(all))
        }
    }
}

/// The findings that fail the lint: errors, and notes too when `strict`.
fn failing(results: &[(String, Vec<Finding>)], strict: bool) -> (usize, usize) {
    let fails = |f: &&Finding| strict || f.severity == Severity::Error;
    let n = results.iter().map(|(_, fs)| fs.iter().filter(fails).count()).sum();
    let files = results.iter().filter(|(_, fs)| fs.iter().any(|f| fails(&f))).count();
    (n, files)
}

pub(crate) fn main(command: &SpecCommand) -> ExitCode {
    match command {
        SpecCommand::Generate(args) => generate::main(args),
        SpecCommand::Status(args) => status::main(args),
        SpecCommand::Lint(args) => match lint_files(&args.files) {
            Ok(results) => {
                print!("{}", render(&results, args.format, args.strict));
                match failing(&results, args.strict) {
                    (0, _) => ExitCode::SUCCESS,
                    (n, files) => {
                        eprintln!("plinth spec lint: {n} finding(s) in {files} file(s)");
                        ExitCode::FAILURE
                    }
                }
            }
            Err(e) => {
                eprintln!("plinth spec lint: {e}");
                ExitCode::from(2)
            }
        },
    }
}

#[cfg(test)]
mod tests;
