//! `plinth spec generate`: the factual sections of a specification, written from the code and
//! a component file so they cannot drift from them. Each sits in a block delimited by
//! `<!-- plinth:generated begin NAME -->` and `<!-- plinth:generated end NAME -->` lines;
//! everything outside the blocks belongs to people and is kept as it is.

mod blocks;
mod document;
mod facts;
mod markers;
mod settings;

pub(crate) use facts::Facts;
pub(crate) use settings::serve_flags;

use super::args::GenerateArgs;
use crate::cli::ServeArgs;
use plinth_core::component::Component;
use std::path::Path;
use std::process::ExitCode;

/// A block's renderer.
type Render = fn(&Facts<'_>) -> String;

/// Every generated block, by name.
pub(crate) const BLOCKS: [(&str, Render); 11] = [
    ("identity", blocks::identity),
    ("functions", blocks::functions),
    ("endpoints", blocks::endpoints),
    ("cli-flags", settings::cli_flags),
    ("env-vars", settings::env_variables),
    ("config-precedence", settings::precedence),
    ("config-file", settings::config_file),
    ("metrics", blocks::metrics),
    ("health-checks", blocks::health_checks),
    ("tracing", blocks::tracing),
    ("error-codes", blocks::error_codes),
];

/// Text for a table cell: pipes escaped, on one line.
pub(crate) fn cell(text: &str) -> String {
    text.replace('|', "\\|").split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A complete new specification for `component`: the 001 layout, every generated block filled
/// in, the human parts left as `> QUESTION:` lines.
pub(crate) fn new_document(component: &Component) -> String {
    document::render(&Facts::new(component))
}

fn render_block(name: &str, facts: &Facts<'_>) -> Option<String> {
    BLOCKS.iter().find(|(n, _)| *n == name).map(|(_, render)| render(facts))
}

/// Loads and validates the component file as `plinth serve` does (the file, then its
/// `server:` settings merged over the defaults).
fn load(path: &Path) -> Result<Component, String> {
    let component = Component::load(path).map_err(|e| e.to_string())?;
    crate::config::resolve(&ServeArgs::default(), None, &component).map_err(|e| e.to_string())?;
    Ok(component)
}

fn read(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text, so not a Markdown document", path.display()))
}

/// A document's blocks, checked: at least one, every name known.
fn blocks_of(path: &Path, text: &str) -> Result<Vec<markers::Block>, String> {
    let found = markers::find(text).map_err(|e| format!("{}: {e}", path.display()))?;
    if found.is_empty() {
        return Err(format!(
            "{}: no generated blocks (lines such as `{}`); write a new document with `plinth spec generate --output NEW_FILE` and move the text over",
            path.display(),
            markers::begin("cli-flags")
        ));
    }
    if let Some(b) = found.iter().find(|b| !BLOCKS.iter().any(|(n, _)| *n == b.name)) {
        let known: Vec<&str> = BLOCKS.iter().map(|(n, _)| *n).collect();
        return Err(format!("{}:{}: unknown generated block `{}` (known: {})", path.display(), b.line, b.name, known.join(", ")));
    }
    Ok(found)
}

/// The known blocks a document lacks, named on standard error.
fn note_absent(path: &Path, found: &[markers::Block]) {
    let absent: Vec<&str> = BLOCKS.iter().map(|(n, _)| *n).filter(|n| !found.iter().any(|b| b.name == *n)).collect();
    if !absent.is_empty() {
        eprintln!("plinth spec generate: {} has no block {} (left out, not checked)", path.display(), absent.join(", "));
    }
}

/// `--check FILE`: the diff of every block that differs.
pub(crate) fn check(path: &Path, text: &str, facts: &Facts<'_>) -> Result<(usize, String), String> {
    let found = blocks_of(path, text)?;
    let mut out = String::new();
    let mut differ = 0;
    for b in &found {
        let want = markers::body_of(&render_block(&b.name, facts).unwrap_or_default());
        let have = &text[b.body.clone()];
        if have != want {
            differ += 1;
            out.push_str(&format!("--- {} (block `{}`, line {})\n+++ generated\n", path.display(), b.name, b.line));
            out.push_str(&markers::diff(have, &want, b.line + 1));
        }
    }
    note_absent(path, &found);
    Ok((differ, out))
}

/// `--output FILE` on an existing document: its blocks rendered again; the names of those that changed.
pub(crate) fn refresh(path: &Path, text: &str, facts: &Facts<'_>) -> Result<(String, Vec<String>), String> {
    let found = blocks_of(path, text)?;
    let changed = found
        .iter()
        .filter(|b| text[b.body.clone()] != markers::body_of(&render_block(&b.name, facts).unwrap_or_default()))
        .map(|b| b.name.clone())
        .collect();
    note_absent(path, &found);
    Ok((markers::replace(text, &found, |name| render_block(name, facts).unwrap_or_default()), changed))
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("plinth spec generate: {message}");
    ExitCode::from(code)
}

pub(crate) fn main(args: &GenerateArgs) -> ExitCode {
    let component = match load(&args.config) {
        Ok(c) => c,
        Err(e) => return fail(2, &e),
    };
    let facts = Facts::new(&component);
    let config = args.config.display();
    if let Some(path) = &args.check {
        let result = read(path).and_then(|text| check(path, &text, &facts));
        return match result {
            Ok((0, _)) => ExitCode::SUCCESS,
            Ok((n, diff)) => {
                print!("{diff}");
                let msg = format!(
                    "{n} generated block(s) of {} differ from the code; refresh them with `plinth spec generate --config {config} --output {}`",
                    path.display(),
                    path.display()
                );
                fail(1, &msg)
            }
            Err(e) => fail(2, &e),
        };
    }
    let Some(path) = &args.output else {
        print!("{}", new_document(&component));
        return ExitCode::SUCCESS;
    };
    if !path.exists() {
        let text = new_document(&component);
        if let Err(e) = std::fs::write(path, &text) {
            return fail(2, &format!("{}: cannot write it: {e}", path.display()));
        }
        let questions = text.lines().filter(|l| l.starts_with("> QUESTION:")).count();
        eprintln!(
            "plinth spec generate: wrote {}; answer its {questions} questions (`plinth spec lint {}` lists them)",
            path.display(),
            path.display()
        );
        return ExitCode::SUCCESS;
    }
    match read(path).and_then(|text| refresh(path, &text, &facts)) {
        Ok((_, changed)) if changed.is_empty() => {
            eprintln!("plinth spec generate: {}: every generated block is up to date", path.display());
            ExitCode::SUCCESS
        }
        Ok((text, changed)) => match std::fs::write(path, text) {
            Ok(()) => {
                eprintln!("plinth spec generate: {}: refreshed {}", path.display(), changed.join(", "));
                ExitCode::SUCCESS
            }
            Err(e) => fail(2, &format!("{}: cannot write it: {e}", path.display())),
        },
        Err(e) => fail(2, &e),
    }
}

#[cfg(test)]
mod tests;
