use super::families::{normalize, recognize};
use super::lint::lint;
use super::*;

fn codes(text: &str) -> Vec<(usize, &'static str)> {
    lint(text).into_iter().map(|f| (f.line, f.code)).collect()
}

/// The sections of the service technical specification (003).
const SERVICE_SECTIONS: &[&str] = super::families::FAMILIES[3].required;

fn service_spec(title: &str, body: &str) -> String {
    let mut doc = format!("# {title}\n\n");
    for s in SERVICE_SECTIONS {
        doc.push_str(&format!("## {s}\n\nWritten.\n\n"));
    }
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
    let line = |l: usize| 1 + 1 + SERVICE_SECTIONS.len() * 4 + l;
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
    let findings = lint(doc);
    assert_eq!(findings.len(), SERVICE_SECTIONS.len() - 2);
    assert!(findings.iter().all(|f| f.code == "missing-section" && f.line == 1));
    assert!(findings.iter().any(|f| f.message.contains("`## Data Models`") && f.message.contains("(003)")), "{findings:?}");
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
        render(&results, SpecFormat::Text),
        "a.md:1: unknown-family: matches no template family by its title or sections (known: platform-component README (000), component specification 1.0 (001), staged component specification (002), service technical specification (003)); sections were not checked\n"
    );
    let json: serde_json::Value = serde_json::from_str(&render(&results, SpecFormat::Json)).expect("json");
    assert_eq!(json[0]["code"], "unknown-family");
    assert_eq!(render(&[("b.md".into(), vec![])], SpecFormat::Json), "[]\n");
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
