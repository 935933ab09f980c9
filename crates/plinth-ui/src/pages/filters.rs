//! The runs filter as query parameters (or form fields): read once for the runs list and for
//! bulk actions, so both select the same runs.

use crate::Ui;
use plinth_core::timefmt::parse_rfc3339;
use plinth_core::{RunStatus, Trigger};
use plinth_store::ListFilter;

/// The filters as the form shows them (what was asked, even when it was not valid).
#[derive(Default)]
pub(crate) struct Filters {
    pub(crate) function: String,
    pub(crate) status: String,
    pub(crate) trigger: String,
    pub(crate) correlation_id: String,
    pub(crate) event_id: String,
    pub(crate) from: String,
    pub(crate) to: String,
    /// An input field's path and the value it must equal.
    pub(crate) field: String,
    pub(crate) equals: String,
}

impl Filters {
    /// The filters that are set, as `(name, value)` (for hidden fields).
    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        [
            ("function", &self.function),
            ("status", &self.status),
            ("trigger", &self.trigger),
            ("correlation_id", &self.correlation_id),
            ("event_id", &self.event_id),
            ("from", &self.from),
            ("to", &self.to),
            ("field", &self.field),
            ("equals", &self.equals),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, v.clone()))
        .collect()
    }

    /// The query string of these filters, each pair followed by `&` (for links).
    pub(crate) fn query(&self) -> String {
        self.pairs().iter().map(|(k, v)| format!("{k}={}&", encode(v))).collect()
    }
}

/// The filters read from a request.
pub(crate) struct Parsed {
    /// As asked (to show again in the form).
    pub(crate) filters: Filters,
    /// As the store takes them (its `limit` is the caller's to set).
    pub(crate) filter: ListFilter,
    /// What could not be used, in sentences; the filter is not to be used when any.
    pub(crate) problems: Vec<String>,
    /// `?id=`: the run to open instead.
    pub(crate) jump: Option<String>,
}

/// Reads the filters from `params`; unknown names and bad values are problems, not errors.
pub(crate) fn parse(ui: &Ui, params: Vec<(String, String)>) -> Parsed {
    let mut f = Filters::default();
    let mut filter = ListFilter::default();
    let mut problems = Vec::new();
    let mut jump = None;
    for (k, v) in params {
        let v = v.trim().to_string();
        if v.is_empty() {
            continue;
        }
        match k.as_str() {
            "id" => jump = Some(v),
            "function" => {
                if ui.app.component.get().function(&v).is_none() {
                    problems.push(format!("No function is named \u{201c}{v}\u{201d}."));
                }
                filter.function = Some(v.clone());
                f.function = v;
            }
            "status" => {
                match RunStatus::parse(&v) {
                    Some(s) => filter.status = Some(s),
                    None => problems.push(format!("\u{201c}{v}\u{201d} is not a status; use one of {}.", STATUSES.join(", "))),
                }
                f.status = v;
            }
            "trigger" => {
                if Trigger::TYPES.contains(&v.as_str()) {
                    filter.trigger = Some(v.clone());
                } else {
                    problems
                        .push(format!("\u{201c}{v}\u{201d} is not a trigger type; use one of {}.", Trigger::TYPES.join(", ")));
                }
                f.trigger = v;
            }
            "correlation_id" => {
                filter.correlation_id = Some(v.clone());
                f.correlation_id = v;
            }
            "event_id" => {
                filter.event_id = Some(v.clone());
                f.event_id = v;
            }
            "from" | "to" => {
                match instant(&v) {
                    Ok(t) if k == "from" => filter.created_after = Some(t),
                    Ok(t) => filter.created_before = Some(t),
                    Err(()) => {
                        problems.push(format!("\u{201c}{v}\u{201d} is not a time; use 2026-12-03T10:00 (UTC) or RFC 3339."))
                    }
                }
                if k == "from" { f.from = v } else { f.to = v }
            }
            "cursor" => filter.before_id = Some(v),
            "field" => f.field = v,
            "equals" => f.equals = v,
            other if other.starts_with("input.") => {
                f.field = other.to_string();
                f.equals = v;
            }
            // Why: a bulk action's form carries its own fields beside the filter's.
            "csrf" | "action" | "confirm" | "count" => {}
            other => problems.push(format!("The filter \u{201c}{other}\u{201d} is not known.")),
        }
    }
    if !f.field.is_empty() {
        match plinth_store::InputEq::parse(&f.field, &f.equals) {
            Ok(eq) => filter.input_eq = Some(eq),
            Err(why) => problems.push(why),
        }
    } else if !f.equals.is_empty() {
        problems.push("Name the input field the value is for (e.g. customer).".to_string());
    }
    Parsed { filters: f, filter, problems, jump }
}

pub(crate) const STATUSES: [&str; 6] = {
    let mut all = [""; 6];
    let mut i = 0;
    while i < 6 {
        all[i] = RunStatus::ALL[i].as_str();
        i += 1;
    }
    all
};

/// A time from the form: `datetime-local` (`2026-12-03T10:00`, read as UTC) or RFC 3339.
fn instant(text: &str) -> Result<i64, ()> {
    let full = match text.len() {
        16 => format!("{text}:00Z"),
        19 => format!("{text}Z"),
        _ => text.to_string(),
    };
    parse_rfc3339(&full).map_err(|_| ())
}

/// Percent-encodes a query or path value.
pub(crate) fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{encode, instant};

    #[test]
    fn times_from_the_form_read_as_utc() {
        assert_eq!(instant("1970-01-01T00:01"), Ok(60_000_000));
        assert_eq!(instant("1970-01-01T00:00:02"), Ok(2_000_000));
        assert_eq!(instant("1970-01-01T00:00:00+01:00"), Ok(-3_600_000_000));
        assert_eq!(instant("yesterday"), Err(()));
        assert_eq!(instant(""), Err(()));
    }

    #[test]
    fn values_are_encoded_for_urls() {
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(encode("01KB-x_y.z~"), "01KB-x_y.z~");
    }
}
