//! `plinth spec generate` through the binary: a new document, a refresh that keeps the human
//! text, `--check` with its diff and exit codes, and the files it refuses.

use crate::harness::plinth;
use std::path::{Path, PathBuf};

fn hello() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/hello/component.yaml"))
}

fn generate(args: &[&str], cwd: &Path) -> std::process::Output {
    let config = hello();
    let mut all = vec!["spec", "generate", "--config", config.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    plinth(&all, &[], cwd)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_new_document_passes_check_and_lints_only_its_questions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = generate(&["--output", "SPEC.md"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("wrote SPEC.md; answer its 14 questions"), "{}", text(&out.stderr));
    let doc = std::fs::read_to_string(dir.path().join("SPEC.md")).expect("written");
    assert!(doc.starts_with("# hello - 1.0 Component Specification"));
    assert!(
        doc.contains("<!-- plinth:generated begin cli-flags -->")
            && doc.contains("| `--port` | integer | `8000` | `PLINTH_PORT` |")
    );

    let out = generate(&["--check", "SPEC.md"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.stdout.is_empty());

    let out = plinth(&["spec", "lint", "SPEC.md"], &[], dir.path());
    assert_eq!(out.status.code(), Some(1), "a scaffold is visibly unfinished");
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 14, "{stdout}");
    assert!(stdout.lines().all(|l| l.starts_with("SPEC.md:") && l.contains(": question: unanswered question: ")), "{stdout}");

    let out = generate(&[], dir.path());
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), doc, "without --output the same document is printed");
}

#[test]
fn a_drifted_block_fails_check_with_a_diff_and_a_refresh_keeps_the_human_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(generate(&["--output", "SPEC.md"], dir.path()).status.success());
    let path = dir.path().join("SPEC.md");
    let doc = std::fs::read_to_string(&path).expect("read");
    let edited = doc
        .replace("| `plinth_queue_depth` | Gauge |", "| `plinth_queue_length` | Gauge |")
        .replace("> QUESTION: What changed in each version of the component?", "0.1.0: the first version.");
    std::fs::write(&path, &edited).expect("write");

    let out = generate(&["--check", "SPEC.md"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let diff = text(&out.stdout);
    assert!(diff.starts_with("--- SPEC.md (block `metrics`, line "), "{diff}");
    assert!(
        diff.contains("\n-| `plinth_queue_length` | Gauge |") && diff.contains("\n+| `plinth_queue_depth` | Gauge |"),
        "{diff}"
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains("1 generated block(s) of SPEC.md differ") && stderr.contains("--output SPEC.md"), "{stderr}");

    let out = generate(&["--output", "SPEC.md"], dir.path());
    assert!(out.status.success());
    assert!(text(&out.stderr).contains("SPEC.md: refreshed metrics"), "{}", text(&out.stderr));
    let refreshed = std::fs::read_to_string(&path).expect("read");
    assert!(refreshed.contains("0.1.0: the first version.") && refreshed.contains("`plinth_queue_depth`"));
    assert_eq!(refreshed, doc.replace("> QUESTION: What changed in each version of the component?", "0.1.0: the first version."));
    assert_eq!(generate(&["--check", "SPEC.md"], dir.path()).status.code(), Some(0));
    let out = generate(&["--output", "SPEC.md"], dir.path());
    assert!(text(&out.stderr).contains("every generated block is up to date"));
}

#[test]
fn an_invalid_component_file_exits_2_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("component.yaml"),
        "component: {name: hello, version: '1'}\nfunctions:\n  - {name: f, handler: {}}\n",
    )
    .expect("write");
    let out = plinth(&["spec", "generate", "--output", "SPEC.md"], &[], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("functions[0].handler") && stderr.contains("PLINTH_001"), "{stderr}");
    assert!(!dir.path().join("SPEC.md").exists(), "nothing is written from an invalid component");
    let out = plinth(&["spec", "generate", "--config", "missing.yaml"], &[], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("missing.yaml"));
}

#[test]
fn check_refuses_documents_without_markers_unreadable_or_malformed() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("plain.md"), "# orders - 1.0 Component Specification\n\n## Overview\n").expect("write");
    let out = generate(&["--check", "plain.md"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("plain.md: no generated blocks"), "{}", text(&out.stderr));

    let out = generate(&["--check", "absent.md"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("absent.md: cannot read it"), "{}", text(&out.stderr));

    std::fs::write(dir.path().join("open.md"), "# x\n<!-- plinth:generated begin metrics -->\n| a |\n").expect("write");
    let out = generate(&["--check", "open.md"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("open.md: line 2: block `metrics` is never closed"), "{}", text(&out.stderr));

    std::fs::write(dir.path().join("odd.md"), "<!-- plinth:generated begin weather -->\n<!-- plinth:generated end weather -->\n")
        .expect("write");
    let out = generate(&["--output", "odd.md"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown generated block `weather`"), "{}", text(&out.stderr));

    let out = generate(&["--check", "odd.md", "--output", "x.md"], dir.path());
    assert_eq!(out.status.code(), Some(2), "--check and --output exclude each other");
}
