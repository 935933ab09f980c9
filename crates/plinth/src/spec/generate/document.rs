//! A new specification in the layout of the 001 template (component specification 1.0): the
//! generated blocks in place, every part only people can write left as a marked question.

use super::markers::wrap;
use super::{BLOCKS, Facts};
use std::fmt::Write as _;

/// What the new document holds, in order.
enum Part {
    /// `## Title`.
    Section(&'static str),
    /// `### Title`.
    Sub(&'static str),
    /// A generated block, by name.
    Block(&'static str),
    /// A question for the author: `> QUESTION: ...`.
    Question(&'static str),
}

use Part::{Block, Question, Section, Sub};

const LAYOUT: &[Part] = &[
    Section("Overview"),
    Block("identity"),
    Question("What does this component do for its users, and what problem does it solve? Two or three sentences."),
    Question("Support level: Service, Experimental or Internal? And who is the person in charge (name and email)?"),
    Section("Quick Start"),
    Question(
        "How does a user install Plinth and this component, start it, and submit a first run? Give the commands, ready to copy.",
    ),
    Section("Design"),
    Sub("Architecture"),
    Question("What do the handlers do, and what do they depend on (databases, services, files)? A diagram helps."),
    Sub("Functions"),
    Block("functions"),
    Sub("Endpoints"),
    Block("endpoints"),
    Sub("Data Flow"),
    Question("What does each function take as input and give back as output? Give one example of each."),
    Sub("Relationship to Other Components"),
    Question("Which components call this one, and which does it call, over what interface?"),
    Section("Configuration"),
    Sub("Command Line Flags"),
    Block("cli-flags"),
    Sub("Environment Variables"),
    Block("env-vars"),
    Sub("Configuration Precedence"),
    Block("config-precedence"),
    Sub("Configuration File"),
    Block("config-file"),
    Section("Metrics & Observability"),
    Sub("Metrics"),
    Block("metrics"),
    Sub("Logging"),
    Question(
        "What do the handlers log, and at which level? Plinth writes one JSON object a line (`timestamp`, `level`, `message`, `component`, `correlation_id`); a command handler's stderr lines become the run's logs.",
    ),
    Sub("Health Checks"),
    Block("health-checks"),
    Sub("Tracing"),
    Block("tracing"),
    Question("Which of the handlers' own spans matter to this component, and what do they add to the trace Plinth hands them?"),
    Section("Customization & Extension Points"),
    Question("What can a user change without changing the code (configuration, inputs), and what can they not?"),
    Section("Testing"),
    Question("Where are the tests, how are they run, and what do they cover? `plinth check URL` verifies the served contract."),
    Section("Error Handling"),
    Sub("Error Codes"),
    Block("error-codes"),
    Sub("Handler Errors"),
    Question(
        "Which failures can the handlers themselves report (exit statuses, HTTP statuses, messages), and what should a user do about each?",
    ),
    Section("1.0 Standardization Status"),
    Question(
        "Run `plinth spec status --spec THIS_FILE --url URL` against a running instance (with `--lcov FILE` for coverage) and paste its table here.",
    ),
    Section("Related Documentation"),
    Question("Which documents should a reader of this one know: design notes, runbooks, the component contract?"),
    Section("Changelog"),
    Question("What changed in each version of the component?"),
];

/// The whole document for `facts`.
pub(crate) fn render(facts: &Facts<'_>) -> String {
    let id = &facts.component.file.component;
    let config = facts.component.path.display();
    let mut out = format!("# {} - 1.0 Component Specification\n\n", id.name);
    let _ = writeln!(
        out,
        "> The blocks between `plinth:generated` markers are written from the code and `{config}` by `plinth spec generate`; do not edit them by hand. Refresh them with `plinth spec generate --config {config} --output THIS_FILE`; `--check THIS_FILE` fails when they drift. The rest is written by people: answer each `QUESTION:` line, then delete it (`plinth spec lint` lists those left).\n"
    );
    for part in LAYOUT {
        match part {
            Section(title) => {
                let _ = write!(out, "---\n\n## {title}\n\n");
            }
            Sub(title) => {
                let _ = write!(out, "### {title}\n\n");
            }
            Block(name) => {
                let render = BLOCKS.iter().find(|(n, _)| n == name).map(|(_, r)| r);
                if let Some(render) = render {
                    out.push_str(&wrap(name, &render(facts)));
                    out.push('\n');
                }
            }
            Question(text) => {
                let _ = write!(out, "> QUESTION: {text}\n\n");
            }
        }
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

/// The names of the blocks a new document holds, in order (every one of `BLOCKS`).
#[cfg(test)]
pub(crate) fn block_names() -> Vec<&'static str> {
    LAYOUT.iter().filter_map(|p| if let Block(name) = p { Some(*name) } else { None }).collect()
}
