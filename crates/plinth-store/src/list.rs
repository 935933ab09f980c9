//! What a page of runs asks for, and what it answers.

use plinth_core::{Run, RunStatus};

/// Which runs to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this function.
    pub function: Option<String>,
    /// Only this status.
    pub status: Option<RunStatus>,
    /// Only runs with this correlation id.
    pub correlation_id: Option<String>,
    /// Created at or after (micros).
    pub created_after: Option<i64>,
    /// Created before (micros).
    pub created_before: Option<i64>,
    /// Only runs started by this event.
    pub event_id: Option<String>,
    /// Only runs with this trigger type (`api`, `event`, `cron`, `invoke`, `rerun`).
    pub trigger: Option<String>,
    /// Runs older than this id (the cursor of the previous page).
    pub before_id: Option<String>,
    /// Only runs whose input has this value at this path.
    pub input_eq: Option<InputEq>,
    /// At most this many.
    pub limit: u32,
}

/// An exact match on one field of a run's input: `path` (object keys, or array indexes in
/// digits) leads to `value`, equal as JSON (`"42"` is not `42`). A path that leads nowhere
/// matches nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputEq {
    /// The keys from the input's root; none may be empty or hold `"`.
    pub path: Vec<String>,
    /// The value to find there.
    pub value: serde_json::Value,
}

impl InputEq {
    /// Reads `customer`, `input.customer` or `items.0.sku` and the value `equals` (JSON when
    /// it parses as JSON, else the text itself: `c-42` and `"c-42"` are the same string).
    ///
    /// # Errors
    /// Why the path cannot be used.
    pub fn parse(field: &str, equals: &str) -> Result<Self, String> {
        let field = field.trim();
        let field = field.strip_prefix("input.").unwrap_or(field);
        let path: Vec<String> = field.split('.').map(str::to_string).collect();
        if field.is_empty() || path.iter().any(|s| s.is_empty() || s.contains('"') || s.contains('\\')) {
            return Err(format!("`{field}` is not a field path; write it as customer or address.city"));
        }
        if path.len() > 16 {
            return Err("a field path has at most 16 parts".to_string());
        }
        let value = serde_json::from_str(equals).unwrap_or_else(|_| serde_json::Value::String(equals.to_string()));
        Ok(Self { path, value })
    }

    /// The path as SQLite's JSON path (`$."items"[0]."sku"`).
    pub(crate) fn sqlite_path(&self) -> String {
        let mut out = String::from("$");
        for part in &self.path {
            if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
                out.push_str(&format!("[{part}]"));
            } else {
                out.push_str(&format!(".\"{part}\""));
            }
        }
        out
    }
}

/// One page of runs, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The runs.
    pub runs: Vec<Run>,
    /// The cursor of the next page, if there is one.
    pub next_cursor: Option<String>,
}
