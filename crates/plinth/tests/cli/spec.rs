//! `plinth spec lint` through the binary: output lines, JSON, exit codes.

use crate::harness::plinth;
use serde_json::Value;

const SECTIONS: [&str; 7] =
    ["Identity", "Purpose", "Tech Stack", "Verification Protocol", "Component Contract", "Development", "Conventions"];

fn readme(extra: &str) -> String {
    let mut doc = String::from("# orders\n\n");
    for s in SECTIONS {
        doc.push_str(&format!("## {s}\n\nFilled in.\n\n"));
    }
    doc.push_str(extra);
    doc
}

#[test]
fn a_clean_document_exits_0_with_no_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("README.md"), readme("")).expect("write");
    let out = plinth(&["spec", "lint", "README.md"], &[], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.stdout.is_empty());
}

#[test]
fn findings_are_printed_as_file_line_code_message_and_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("README.md"), readme("Owner: {{OWNER}}\n")).expect("write");
    std::fs::write(dir.path().join("notes.md"), "# Holiday\n## Packing\n").expect("write");
    let out = plinth(&["spec", "lint", "README.md", "notes.md"], &[], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("README.md:31: placeholder: unfilled placeholder `{{OWNER}}`"), "{stdout}");
    assert!(lines[1].starts_with("notes.md:1: unknown-family: "), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 finding(s) in 2 file(s)"));

    let out = plinth(&["spec", "lint", "--format", "json", "notes.md"], &[], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!((json[0]["file"].as_str(), json[0]["line"].as_u64()), (Some("notes.md"), Some(1)));
}

#[test]
fn unreadable_input_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = plinth(&["spec", "lint", "missing.md"], &[], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.md"));
    let out = plinth(&["spec", "lint"], &[], dir.path());
    assert_eq!(out.status.code(), Some(2), "no file named is a usage error");
    let out = plinth(&["spec", "lint", "--format", "yaml", "x.md"], &[], dir.path());
    assert_eq!(out.status.code(), Some(2));
}

/// A filled 001 document without the sections its template lets an author delete.
fn spec_without(extra_missing: &[&str]) -> String {
    let mut doc = String::from("# orders - 1.0 Component Specification\n\n");
    for s in [
        "Overview",
        "Quick Start",
        "Design",
        "Configuration",
        "Metrics & Observability",
        "Testing",
        "Error Handling",
        "1.0 Standardization Status",
        "Changelog",
    ] {
        if !extra_missing.contains(&s) {
            doc.push_str(&format!("## {s}\n\nFilled in.\n\n"));
        }
    }
    doc
}

#[test]
fn optional_sections_left_out_are_notes_that_fail_only_under_strict() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("SPEC.md"), spec_without(&[])).expect("write");
    let out = plinth(&["spec", "lint", "SPEC.md"], &[], dir.path());
    assert_eq!(out.status.code(), Some(0), "only notes: {}", String::from_utf8_lossy(&out.stdout));
    assert!(out.stdout.is_empty(), "notes are printed with --strict only");
    let strict = plinth(&["spec", "lint", "--strict", "SPEC.md"], &[], dir.path());
    assert_eq!(strict.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&strict.stdout);
    for s in ["Public API", "Customization & Extension Points", "Migration Guide", "Related Documentation"] {
        assert!(stdout.contains(&format!("SPEC.md:1: note: optional-section: no `## {s}` section")), "{s}: {stdout}");
    }
    let json = plinth(&["spec", "lint", "--format", "json", "SPEC.md"], &[], dir.path());
    assert_eq!(json.status.code(), Some(0));
    let entries: Value = serde_json::from_slice(&json.stdout).expect("json");
    let entries = entries.as_array().expect("array");
    assert_eq!(entries.len(), 4);
    assert!(entries.iter().all(|e| e["severity"] == "note"), "{entries:?}");
}

#[test]
fn a_required_section_left_out_still_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("SPEC.md"), spec_without(&["Error Handling"])).expect("write");
    let out = plinth(&["spec", "lint", "--format", "json", "SPEC.md"], &[], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let entries: Value = serde_json::from_slice(&out.stdout).expect("json");
    let errors: Vec<&Value> = entries.as_array().expect("array").iter().filter(|e| e["severity"] == "error").collect();
    assert_eq!(errors.len(), 1, "{entries}");
    assert_eq!(errors[0]["code"], "missing-section");
    assert!(errors[0]["message"].as_str().expect("message").contains("`## Error Handling`"));
}
