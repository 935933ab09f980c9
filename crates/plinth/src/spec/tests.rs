use super::families::{normalize, recognize};
use super::lint::{Severity, lint};
use super::*;

/// The errors of a document (notes left out), as `(line, code)`.
fn codes(text: &str) -> Vec<(usize, &'static str)> {
    lint(text).into_iter().filter(|f| f.severity == Severity::Error).map(|f| (f.line, f.code)).collect()
}

/// The notes of a document: the messages of its `optional-section` findings.
fn notes(text: &str) -> Vec<String> {
    lint(text).into_iter().filter(|f| f.severity == Severity::Note).map(|f| f.message).collect()
}

/// The required sections of the service technical specification (003).
const SERVICE_SECTIONS: &[&str] = super::families::FAMILIES[3].required;

/// A filled document of family `family` (its index in `FAMILIES`) titled `title`, with every
/// section of its template but those in `without`.
fn document(family: usize, title: &str, without: &[&str]) -> String {
    let f = &super::families::FAMILIES[family];
    let mut doc = format!("# {title}\n\n");
    for s in f.required.iter().chain(f.optional).filter(|s| !without.contains(s)) {
        doc.push_str(&format!("## {s}\n\nWritten.\n\n"));
    }
    doc
}

fn service_spec(title: &str, body: &str) -> String {
    let mut doc = document(3, title, &[]);
    doc.push_str(body);
    doc
}

#[test]
fn a_filled_document_has_no_findings() {
    let body = "See [the contract](CONTRACT.md) and `GET /runs/{id}`.\n\n- [x] done\n- [ ] later\n\n\
        | Endpoint | Meaning |\n|---|---|\n| /runs/{id} | one run |\n\n```yaml\nname: {{NAME}}\ndate: YYYY-MM-DD\n```\n";
    assert_eq!(codes(&service_spec("Orders - Technical Specification", body)), vec![]);
}

#[test]
fn placeholders_are_found_with_their_lines() {
    let body = "**Date**: YYYY-MM-DD\nOwner: {{OWNER}}\nName: {Component Name}\nClass: [ClassName]\n| a | ... |\n...\n";
    let found = codes(&service_spec("[Service Name] - Technical Specification", body));
    let all = SERVICE_SECTIONS.len() + super::families::FAMILIES[3].optional.len();
    let line = |l: usize| 1 + 1 + all * 4 + l;
    assert_eq!(
        found,
        vec![
            (1, "placeholder"),
            (line(1), "date-placeholder"),
            (line(2), "placeholder"),
            (line(3), "placeholder"),
            (line(4), "placeholder"),
            (line(5), "ellipsis-cell"),
            (line(6), "ellipsis"),
        ]
    );
}

#[test]
fn template_instructions_are_found() {
    let doc = service_spec(
        "Orders - Technical Specification",
        "> **Replace this file** with your component's identity.\n*Replace with actual architecture diagram*\n",
    );
    assert_eq!(codes(&doc).iter().filter(|(_, c)| *c == "instruction").count(), 2);
}

#[test]
fn missing_sections_of_the_family_are_named() {
    let doc = "# Orders - Technical Specification\n\n## Purpose\n\n## Architecture\n";
    let findings: Vec<_> = lint(doc).into_iter().filter(|f| f.severity == Severity::Error).collect();
    assert_eq!(findings.len(), SERVICE_SECTIONS.len() - 2);
    assert!(findings.iter().all(|f| f.code == "missing-section" && f.line == 1));
    assert!(findings.iter().any(|f| f.message.contains("`## Deployment`") && f.message.contains("(003)")), "{findings:?}");
    assert_eq!(notes(doc).len(), super::families::FAMILIES[3].optional.len(), "the optional ones are notes");
}

#[test]
fn families_are_recognised_by_title_or_sections() {
    assert_eq!(recognize(Some("Orders - 1.0 Component Specification"), &[]).map(|f| f.id), Some("component-spec-1.0"));
    assert_eq!(recognize(Some("Component Specification: Orders"), &[]).map(|f| f.id), Some("staged-spec"));
    let readme: Vec<String> =
        ["Identity", "Purpose", "Tech Stack", "Verification Protocol"].iter().map(|s| s.to_string()).collect();
    assert_eq!(recognize(Some("orders"), &readme).map(|f| f.id), Some("component-readme"));
    assert_eq!(recognize(Some("Holiday notes"), &["Packing".to_string()]), None);
}

#[test]
fn optional_sections_and_heading_variants_are_accepted() {
    assert_eq!(normalize("Migration Guide (if applicable)"), "migration guide");
    assert_eq!(normalize("Monitoring &  Observability"), normalize("monitoring and observability"));
    let mut doc = String::from("# Orders - 1.0 Component Specification\n");
    for s in [
        "Overview",
        "Quick Start",
        "Design",
        "Configuration",
        "Metrics and Observability",
        "Customization & Extension Points",
        "Testing",
        "Error Handling",
        "1.0 Standardization Status",
        "Related Documentation",
        "Changelog",
    ] {
        doc.push_str(&format!("## {s}\ntext\n"));
    }
    assert_eq!(codes(&doc), vec![], "Public API and Migration Guide may be left out");
}

#[test]
fn documents_that_are_not_specifications_say_so() {
    assert_eq!(codes(""), vec![(1, "empty")]);
    assert_eq!(codes("  \n\n"), vec![(1, "empty")]);
    assert_eq!(codes("just some words\nand more\n"), vec![(1, "not-markdown")]);
    assert_eq!(codes("# Holiday notes\n## Packing\n"), vec![(1, "unknown-family")]);
}

#[test]
fn files_that_cannot_be_linted_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let binary = dir.path().join("image.md");
    std::fs::write(&binary, [0x89, b'P', b'N', b'G', 0, 1, 2]).expect("write");
    let latin1 = dir.path().join("latin1.md");
    std::fs::write(&latin1, b"# caf\xe9\n").expect("write");
    let huge = dir.path().join("huge.md");
    std::fs::File::create(&huge).and_then(|f| f.set_len(MAX_BYTES as u64 + 1)).expect("sparse file");
    let results = lint_files(&[binary, latin1, huge]).expect("read");
    let got: Vec<&str> = results.iter().map(|(_, f)| f[0].code).collect();
    assert_eq!(got, ["not-text", "not-text", "too-large"]);
    assert!(lint_files(&[dir.path().join("missing.md")]).is_err_and(|e| e.contains("missing.md")));
    assert!(lint_files(&[dir.path().to_path_buf()]).is_err_and(|e| e.contains("not a file")));
}

#[test]
fn findings_render_as_lines_or_json() {
    let results = vec![("a.md".to_string(), lint("# x\n## y\n"))];
    assert_eq!(
        render(&results, SpecFormat::Text, false),
        "a.md:1: unknown-family: matches no template family by its title or sections (known: platform-component README (000), component specification 1.0 (001), staged component specification (002), service technical specification (003)); sections were not checked\n"
    );
    let json: serde_json::Value = serde_json::from_str(&render(&results, SpecFormat::Json, false)).expect("json");
    assert_eq!(json[0]["code"], "unknown-family");
    assert_eq!(json[0]["severity"], "error");
    assert_eq!(render(&[("b.md".into(), vec![])], SpecFormat::Json, true), "[]\n");
}

#[test]
fn marked_questions_are_findings() {
    let doc = service_spec(
        "Orders - Technical Specification",
        "> QUESTION: Who owns it?\nQUESTION: and when?\nA QUESTION: in prose is kept.\n",
    );
    let found: Vec<_> = lint(&doc).into_iter().filter(|f| f.code == "question").collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].message.contains("Who owns it?"), "{found:?}");
    assert_eq!(found[1].line, found[0].line + 1);
}

/// The 001 sections the template lets an author delete.
const SPEC_OPTIONAL: [&str; 4] = ["Public API", "Customization & Extension Points", "Migration Guide", "Related Documentation"];

#[test]
fn a_filled_001_document_without_its_optional_sections_passes_with_notes() {
    let doc = document(1, "Orders - 1.0 Component Specification", &SPEC_OPTIONAL);
    assert_eq!(codes(&doc), vec![], "no error: the template lets these go");
    let notes = notes(&doc);
    assert_eq!(notes.len(), 4, "{notes:?}");
    for s in SPEC_OPTIONAL {
        assert!(notes.iter().any(|n| n.contains(&format!("`## {s}`"))), "{s} is a note: {notes:?}");
    }
    let results = vec![("spec.md".to_string(), lint(&doc))];
    assert_eq!(render(&results, SpecFormat::Text, false), "", "notes are not printed without --strict");
    assert_eq!(failing(&results, false), (0, 0), "exit 0 with only notes");
    let strict = render(&results, SpecFormat::Text, true);
    assert_eq!(strict.lines().filter(|l| l.starts_with("spec.md:1: note: optional-section: no `## ")).count(), 4, "{strict}");
    assert_eq!(failing(&results, true), (4, 1), "--strict fails on them");
    let json: serde_json::Value = serde_json::from_str(&render(&results, SpecFormat::Json, false)).expect("json");
    let entries = json.as_array().expect("array");
    assert_eq!(entries.len(), 4);
    assert!(entries.iter().all(|e| e["severity"] == "note" && e["code"] == "optional-section"), "{json}");
}

#[test]
fn a_001_document_without_error_handling_fails_naming_it() {
    let without = [SPEC_OPTIONAL.as_slice(), &["Error Handling"]].concat();
    let doc = document(1, "Orders - 1.0 Component Specification", &without);
    let errors: Vec<_> = lint(&doc).into_iter().filter(|f| f.severity == Severity::Error).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].code, "missing-section");
    assert!(errors[0].message.contains("`## Error Handling`"), "{errors:?}");
    assert_eq!(failing(&[("s.md".into(), lint(&doc))], false), (1, 1));
}

#[test]
fn every_status_row_section_of_001_is_required() {
    let required = super::families::FAMILIES[1].required;
    for s in ["Configuration", "Metrics & Observability", "Error Handling", "Testing", "1.0 Standardization Status"] {
        assert!(required.contains(&s), "{s} is measured by the status table, so it is required");
    }
}

#[test]
fn staged_and_service_documents_treat_optional_and_required_sections_apart() {
    for (family, title, optional, required) in [
        (2, "Component Specification: Orders", "References", "Testing Strategy"),
        (3, "Orders - Technical Specification", "Future Enhancements", "Security Considerations"),
    ] {
        let without_optional = document(family, title, &[optional]);
        assert_eq!(codes(&without_optional), vec![], "{title}: {optional} may go");
        let n = notes(&without_optional);
        assert!(n.len() == 1 && n[0].contains(&format!("`## {optional}`")), "{title}: {n:?}");
        let without_both = document(family, title, &[optional, required]);
        let errors: Vec<_> = lint(&without_both).into_iter().filter(|f| f.severity == Severity::Error).collect();
        assert_eq!(errors.len(), 1, "{title}: {errors:?}");
        assert!(errors[0].message.contains(&format!("`## {required}`")), "{title}: {errors:?}");
    }
}

#[test]
fn a_family_is_still_recognised_by_its_sections_when_optional_ones_are_gone() {
    let f = &super::families::FAMILIES[3];
    let sections: Vec<String> = f.required.iter().map(|s| (*s).to_string()).collect();
    assert_eq!(recognize(Some("Orders"), &sections).map(|f| f.id), Some("service-tech-spec"));
}
