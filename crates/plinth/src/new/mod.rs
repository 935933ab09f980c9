//! `plinth new NAME`: a component folder that `plinth serve` runs at once and `plinth check`
//! passes: `component.yaml`, a handler that works (a command, an HTTP endpoint or an in-process
//! Rust function), a README with its two commands, and a SPEC.md written by `plinth spec
//! generate` with the human parts left as questions.

mod templates;

use crate::cli::NewArgs;
use plinth_core::component::{Component, is_identifier};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What runs the work of the new component's function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kind {
    /// A shell script reading the input on stdin and writing the output on stdout.
    Command,
    /// A small HTTP server (Python's standard library) that Plinth POSTs each attempt to.
    Http,
    /// A Cargo project registering an in-process handler and handing the command line to Plinth.
    Rust,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Self::Command => "a command handler",
            Self::Http => "an HTTP handler",
            Self::Rust => "an in-process Rust handler",
        }
    }
}

const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;

/// A refusal or failure: the exit code and what to tell the user.
type Failure = (u8, String);

/// Names a Rust project cannot take: its own dependencies.
const TAKEN_BY_DEPENDENCIES: [&str; 3] = ["plinth", "serde_json", "serde-json"];

/// `plinth new`.
pub(crate) fn main(args: &NewArgs) -> ExitCode {
    match create(args) {
        Ok((dir, files)) => {
            print!("{}", report(args, &dir, &files));
            ExitCode::SUCCESS
        }
        Err((code, message)) => {
            eprintln!("plinth new: {message}");
            ExitCode::from(code)
        }
    }
}

/// Why `name` cannot name a component (and its folder), by the rule component.yaml applies.
pub(crate) fn check_name(name: &str, kind: Kind) -> Result<(), String> {
    const RULE: &str = "a component name starts with a lowercase letter and holds only a-z, 0-9, _ and - \
                        (64 characters at most), as component.yaml requires";
    if name.is_empty() {
        return Err(format!("NAME is empty; {RULE}"));
    }
    if !is_identifier(name) {
        return Err(format!("`{name}` is not a valid component name: {RULE}"));
    }
    if kind == Kind::Rust && TAKEN_BY_DEPENDENCIES.contains(&name) {
        return Err(format!("`{name}` would name the Rust project after one of its own dependencies; choose another name"));
    }
    Ok(())
}

/// The Plinth crate folder a Rust project depends on: `--plinth-path` (the checkout or its
/// `crates/plinth`), else the checkout this binary was built from.
pub(crate) fn plinth_crate(given: Option<&Path>) -> Result<PathBuf, String> {
    let (start, how) = match given {
        Some(p) => (p.to_path_buf(), "--plinth-path"),
        None => (PathBuf::from(env!("CARGO_MANIFEST_DIR")), "the checkout this plinth was built from"),
    };
    let candidates = [start.join("crates").join("plinth"), start.clone()];
    let found = candidates.iter().find(|dir| {
        std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|text| text.lines().any(|l| l.trim() == "name = \"plinth\""))
    });
    match found {
        Some(dir) => std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display())),
        None => Err(format!(
            "{} ({}) holds no Plinth crate (crates/plinth/Cargo.toml); pass --plinth-path with a Plinth checkout",
            start.display(),
            how
        )),
    }
}

/// The files of the new component, by path inside its folder (SPEC.md comes after, from the
/// component file as loaded).
fn files(name: &str, kind: Kind, plinth: Option<&Path>) -> Vec<(&'static str, String)> {
    let mut files = vec![("component.yaml", templates::component_yaml(name, kind))];
    match (kind, plinth) {
        (Kind::Command, _) => files.push(("handler.sh", templates::HANDLER_SH.to_string())),
        (Kind::Http, _) => files.push(("handler.py", templates::handler_py())),
        (Kind::Rust, Some(plinth)) => {
            files.push(("Cargo.toml", templates::cargo_toml(name, plinth)));
            files.push(("src/main.rs", templates::main_rs(name)));
        }
        (Kind::Rust, None) => {}
    }
    files.push(("README.md", templates::readme(name, kind)));
    files.push((".gitignore", templates::gitignore(kind)));
    files
}

fn write(dir: &Path, rel: &str, text: &str) -> Result<(), Failure> {
    let path = dir.join(rel);
    let failed = |e: std::io::Error| (EXIT_FAILED, format!("cannot write {}: {e}", path.display()));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    std::fs::write(&path, text).map_err(failed)?;
    if rel.ends_with(".sh") || rel.ends_with(".py") {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(failed)?;
    }
    Ok(())
}

/// Writes the component; its folder and the files written.
fn create(args: &NewArgs) -> Result<(PathBuf, Vec<String>), Failure> {
    check_name(&args.name, args.handler).map_err(|m| (EXIT_USAGE, m))?;
    let plinth = match args.handler {
        Kind::Rust => Some(plinth_crate(args.plinth_path.as_deref()).map_err(|m| (EXIT_USAGE, m))?),
        _ => None,
    };
    let dir = if args.dir == Path::new(".") { PathBuf::from(&args.name) } else { args.dir.join(&args.name) };
    match std::fs::symlink_metadata(&dir) {
        Ok(meta) if !meta.is_dir() => {
            return Err((EXIT_USAGE, format!("{} exists and is not a folder; choose another NAME or --dir", dir.display())));
        }
        Ok(_) if !args.force => {
            return Err((
                EXIT_USAGE,
                format!(
                    "{} already exists; choose another NAME or --dir, or pass --force to write the new files into it \
                     (files of the same names are overwritten, others kept)",
                    dir.display()
                ),
            ));
        }
        _ => {}
    }
    std::fs::create_dir_all(&dir).map_err(|e| (EXIT_FAILED, format!("cannot create {}: {e}", dir.display())))?;
    let mut written = Vec::new();
    for (rel, text) in files(&args.name, args.handler, plinth.as_deref()) {
        write(&dir, rel, &text)?;
        written.push(rel.to_string());
    }
    // Why: loaded as `component.yaml`, the name it has where its README says to run the
    // commands, so SPEC.md names it so.
    let text = templates::component_yaml(&args.name, args.handler);
    let component = Component::parse(&text, "component.yaml", PathBuf::from("component.yaml"), dir.clone())
        .map_err(|e| (EXIT_FAILED, format!("the component.yaml written does not load (a bug in plinth new): {e}")))?;
    write(&dir, "SPEC.md", &crate::spec::generate::new_document(&component))?;
    written.insert(written.len() - 1, "SPEC.md".to_string());
    Ok((dir, written))
}

/// What was made, and what to run next.
fn report(args: &NewArgs, dir: &Path, files: &[String]) -> String {
    let mut out = format!("Created {} with {} (function `{}`):\n", dir.display(), args.handler.describe(), templates::FUNCTION);
    for f in files {
        out.push_str(&format!("  {}\n", dir.join(f).display()));
    }
    let (serve, check) = templates::commands(args.handler);
    out.push_str(&format!("\nNext:\n  cd {}\n", dir.display()));
    for line in serve {
        out.push_str(&format!("  {line}\n"));
    }
    out.push_str(&format!("  {check}    # in another terminal\n"));
    if args.handler == Kind::Rust {
        out.push_str("The first `cargo run` builds Plinth and its dependencies, which takes a few minutes.\n");
    }
    out
}

#[cfg(test)]
mod tests;
