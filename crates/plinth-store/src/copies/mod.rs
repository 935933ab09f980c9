//! Copies of a stored run, written straight into a store's tables: how a benchmark puts
//! millions of runs in a store in minutes (`plinth bench --backlog/--history`). The copies go
//! through the same tables, indexes and triggers as runs written by the store, so what is
//! measured on them holds for real runs. Never used by `plinth serve`.

pub mod postgres;
pub mod sqlite;

/// Which copies to write of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCopies {
    /// The run copied (its attempts are copied with it).
    pub template: String,
    /// The copies are numbered `first..first + count`.
    pub first: u64,
    /// How many copies.
    pub count: u64,
    /// Copy `i`'s id is this prefix and `i` in 20 digits, a valid run id (a ULID) when the prefix
    /// is 6 characters of Crockford's base 32 (see [`RunCopies::id`]);
    /// its correlation id is its id.
    pub prefix: String,
    /// Copy `i` is created (and due, and started if the template started) at `at + i * step`.
    pub at: i64,
    /// Copy `i` finished at `finished_at + i * step`, when the template finished.
    pub finished_at: i64,
    /// Micros between one copy and the next (at least 1): a history spread over hours, not
    /// bunched in one second.
    pub step: i64,
    /// Replaces the template's input (JSON text), when set.
    pub input: Option<String>,
}

impl RunCopies {
    /// Copy `n`'s id.
    #[must_use]
    pub fn id(&self, n: u64) -> String {
        format!("{}{n:020}", self.prefix)
    }

    /// Refuses a prefix whose ids would not be run ids (the API answers 404 for those).
    pub(crate) fn check(&self) -> Result<(), crate::StoreError> {
        let last = self.id(self.first.saturating_add(self.count));
        if self.prefix.len() == 6 && plinth_core::ids::is_run_id(&self.id(self.first)) && plinth_core::ids::is_run_id(&last) {
            Ok(())
        } else {
            Err(crate::StoreError::Corrupt(format!(
                "copy ids `{}...` would not be run ids: give a prefix of 6 characters of base 32 (Crockford)",
                self.prefix
            )))
        }
    }
}

/// What each column of a copy is, given the template row `t` and the copy's number `n` (an SQL
/// expression); `param` names the statement's parameters in the backend's syntax.
pub(crate) fn column_value(column: &str, n: &str, param: &dyn Fn(usize) -> String, id: &str) -> String {
    match column {
        "id" => id.to_string(),
        "correlation_id" => id.to_string(),
        "created_at" | "next_attempt_at" => format!("{} + {n} * {}", param(1), param(8)),
        "started_at" => format!("CASE WHEN t.started_at IS NULL THEN NULL ELSE {} + {n} * {} END", param(1), param(8)),
        "finished_at" => format!("CASE WHEN t.finished_at IS NULL THEN NULL ELSE {} + {n} * {} END", param(2), param(8)),
        "input" => format!("COALESCE({}, t.input)", param(3)),
        "idempotency_key" | "request_hash" => "NULL".to_string(),
        other => format!("t.{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::column_value;

    #[test]
    fn each_column_of_a_copy_comes_from_the_template_or_the_copy() {
        let p = |i: usize| format!("?{i}");
        assert_eq!(column_value("id", "g.i", &p, "new_id"), "new_id");
        assert_eq!(column_value("correlation_id", "g.i", &p, "new_id"), "new_id", "each copy is its own correlation");
        assert_eq!(column_value("created_at", "g.i", &p, "x"), "?1 + g.i * ?8");
        assert!(
            column_value("started_at", "g.i", &p, "x").contains("t.started_at IS NULL THEN NULL"),
            "a queued copy never started"
        );
        assert_eq!(column_value("idempotency_key", "g.i", &p, "x"), "NULL", "a key belongs to one run only");
        assert_eq!(column_value("output", "g.i", &p, "x"), "t.output");
    }

    #[test]
    fn copy_ids_are_run_ids_or_refused() {
        let copies = super::RunCopies {
            template: "t".into(),
            first: 7,
            count: 3,
            prefix: "0000C1".into(),
            at: 0,
            finished_at: 0,
            step: 1,
            input: None,
        };
        assert_eq!(copies.id(7), "0000C100000000000000000007");
        assert!(plinth_core::ids::is_run_id(&copies.id(9)));
        assert!(copies.check().is_ok());
        for bad in ["old", "00-001", "0000U1", "0000C1X"] {
            let err = super::RunCopies { prefix: bad.into(), ..copies.clone() }.check().expect_err(bad);
            assert!(err.to_string().contains("would not be run ids"), "{err}");
        }
    }
}
