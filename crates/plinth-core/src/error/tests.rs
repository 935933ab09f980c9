//! The catalog's own checks, and that `docs/errors.md` lists every code.

use super::*;
use std::collections::HashSet;

#[test]
fn codes_are_unique_and_well_formed() {
    let mut seen = HashSet::new();
    for code in Code::ALL {
        let e = code.entry();
        assert!(seen.insert(e.code), "duplicate {}", e.code);
        assert!(e.code.starts_with("PLINTH_0") && e.code.len() == 10, "{}", e.code);
        assert!(!e.meaning.is_empty() && !e.action.is_empty());
        assert_eq!(Code::parse(e.code), Some(*code));
    }
}

#[test]
fn parse_rejects_unknown_codes() {
    assert_eq!(Code::parse("PLINTH_777"), None);
    assert_eq!(Code::parse(""), None);
    assert_eq!(Code::parse("plinth_004"), Some(Code::ValidationFailed));
}

#[test]
fn startup_only_codes_map_to_500() {
    assert_eq!(Code::InvalidConfig.status(), 500);
    assert_eq!(Code::MalformedJson.status(), 400);
}

#[test]
fn config_error_names_file_field_and_code() {
    let e = ConfigError::new("c.yaml", "functions[0].name", "must not be empty");
    assert_eq!(e.to_string(), "c.yaml: functions[0].name: must not be empty (PLINTH_001)");
}

#[test]
fn docs_errors_md_lists_every_code() {
    let doc = include_str!("../../../../docs/errors.md");
    for code in Code::ALL {
        let e = code.entry();
        let row = format!("| `{}` | {} |", e.code, e.name);
        assert!(doc.contains(&row), "docs/errors.md lacks the row of {}", e.code);
    }
}
