//! Plinth's own specification, `docs/SPEC.md`: nothing left unfilled, and its generated blocks
//! the same as the code generates today, so CI fails when the code changes and the document
//! does not.

use crate::harness::plinth;
use std::path::PathBuf;

const REGENERATE: &str = "cargo run -p plinth -- spec generate --config examples/hello/component.yaml --output docs/SPEC.md";

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[test]
fn docs_spec_md_lints_clean() {
    let out = plinth(&["spec", "lint", "docs/SPEC.md"], &[], &root());
    assert!(
        out.status.success(),
        "docs/SPEC.md has unfinished parts; fill them in:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn docs_spec_md_matches_the_code() {
    let out = plinth(&["spec", "generate", "--config", "examples/hello/component.yaml", "--check", "docs/SPEC.md"], &[], &root());
    assert!(
        out.status.success(),
        "docs/SPEC.md drifted from the code. Regenerate its blocks with `{REGENERATE}` (from the workspace root), \
         review the change and commit it.\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
