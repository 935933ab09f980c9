//! The specification template families of `../shared/seeds/`, and how a document is recognised
//! as one of them: by its title first, else by the share of the family's sections it has.

/// One family: the sections (level-2 headings) its template has: the required ones, whose
/// absence is an error, and the optional ones, whose absence is a note (`docs/spec-lint.md`
/// gives the reason for each).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Family {
    pub(crate) id: &'static str,
    pub(crate) name: &'static str,
    pub(crate) required: &'static [&'static str],
    pub(crate) optional: &'static [&'static str],
}

pub(crate) const FAMILIES: [Family; 4] = [
    Family {
        id: "component-readme",
        name: "platform-component README (000)",
        required: &[
            "Identity",
            "Purpose",
            "Tech Stack",
            "Verification Protocol",
            "Component Contract",
            "Development",
            "Conventions",
        ],
        optional: &[],
    },
    Family {
        id: "component-spec-1.0",
        name: "component specification 1.0 (001)",
        required: &[
            "Overview",
            "Quick Start",
            "Design",
            "Configuration",
            "Metrics & Observability",
            "Testing",
            "Error Handling",
            "1.0 Standardization Status",
            "Changelog",
        ],
        optional: &["Public API", "Customization & Extension Points", "Migration Guide", "Related Documentation"],
    },
    Family {
        id: "staged-spec",
        name: "staged component specification (002)",
        required: &[
            "Overview",
            "Requirements",
            "Architecture",
            "Implementation Plan",
            "Testing Strategy",
            "Acceptance Criteria",
            "Maturity Targets",
            "Risks and Mitigations",
            "Monitoring and Observability",
            "Rollback Procedure",
        ],
        optional: &["API Design", "Documentation", "References"],
    },
    Family {
        id: "service-tech-spec",
        name: "service technical specification (003)",
        required: &[
            "Purpose",
            "Architecture",
            "API Endpoints",
            "Business Logic",
            "Dependencies",
            "Performance Requirements",
            "Security Considerations",
            "Monitoring & Observability",
            "Testing Strategy",
            "Deployment",
        ],
        optional: &["Data Models", "Future Enhancements", "Questions & Decisions", "References"],
    },
];

/// A heading reduced for comparison: lower case, `and` for `&`, without a trailing
/// parenthesis such as `(if applicable)`, single spaces.
pub(crate) fn normalize(heading: &str) -> String {
    let cut = match heading.find(" (") {
        Some(i) if heading.trim_end().ends_with(')') => &heading[..i],
        _ => heading,
    };
    cut.to_lowercase().replace('&', "and").split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The family a document belongs to, from its title and its level-2 headings; `None` when
/// neither the title nor at least half of a family's sections say which.
pub(crate) fn recognize(title: Option<&str>, sections: &[String]) -> Option<&'static Family> {
    let title = title.map(str::to_lowercase).unwrap_or_default();
    let by_title = if title.contains("1.0 component specification") {
        Some(1)
    } else if title.contains("technical specification") {
        Some(3)
    } else if title.starts_with("component specification") {
        Some(2)
    } else {
        None
    };
    if let Some(i) = by_title {
        return Some(&FAMILIES[i]);
    }
    let have: Vec<String> = sections.iter().map(|s| normalize(s)).collect();
    let share = |f: &Family| {
        let all = || f.required.iter().chain(f.optional);
        let found = all().filter(|r| have.contains(&normalize(r))).count();
        #[allow(clippy::cast_precision_loss)]
        let share = found as f64 / all().count() as f64;
        share
    };
    FAMILIES.iter().map(|f| (share(f), f)).filter(|(s, _)| *s >= 0.5).max_by(|a, b| a.0.total_cmp(&b.0)).map(|(_, f)| f)
}

/// The sections of `family` that `sections` lacks: the required ones, then the optional ones.
pub(crate) fn missing<'a>(family: &'a Family, sections: &[String]) -> (Vec<&'a str>, Vec<&'a str>) {
    let have: Vec<String> = sections.iter().map(|s| normalize(s)).collect();
    let lacks = |list: &'a [&'a str]| list.iter().copied().filter(|r| !have.contains(&normalize(r))).collect::<Vec<_>>();
    (lacks(family.required), lacks(family.optional))
}
