//! `priority: EXPR`: an integer from -600 to 600, seconds ahead of the run's place in its
//! function's queue. A run's place is its due time, so the factor moves that time: a positive
//! factor puts a run ahead of runs queued up to that many seconds before it; a negative one
//! puts it behind, and delays it by as much even when nothing else is queued (as Inngest's
//! `priority.run` does).

use crate::trigger::Expr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The largest factor, either way.
pub const MAX_FACTOR: i64 = 600;

/// A compiled priority expression over `input` (and `event`).
#[derive(Clone, Debug)]
pub struct PriorityExpr(Expr);

impl PriorityExpr {
    /// Compiles a priority expression.
    ///
    /// # Errors
    /// What does not parse, or an expression that reads neither variable.
    pub fn compile(source: &str) -> Result<Self, String> {
        Expr::compile(source, &["input", "event"]).map(Self)
    }

    /// The factor of a run, in seconds from -600 to 600 (a value past either end is held at
    /// it), and a warning for the caller to log when the expression failed or gave no whole
    /// number (the factor is then 0) or was held.
    #[must_use]
    pub fn factor(&self, input: &Value, event: Option<&Value>) -> (i64, Option<String>) {
        let null = Value::Null;
        let source = self.0.source();
        match self.0.eval(&[("input", input), ("event", event.unwrap_or(&null))]) {
            Ok(v) => match v.as_i64().or_else(|| v.as_f64().filter(|f| f.fract() == 0.0 && f.is_finite()).map(|f| f as i64)) {
                Some(n) if (-MAX_FACTOR..=MAX_FACTOR).contains(&n) => (n, None),
                Some(n) => {
                    let held = n.clamp(-MAX_FACTOR, MAX_FACTOR);
                    (held, Some(format!("the priority `{source}` gave {n}, held at {held} (from -600 to 600)")))
                }
                None => (0, Some(format!("the priority `{source}` gave {v}, not a whole number; 0 is used"))),
            },
            Err(e) => (0, Some(format!("the priority `{source}` failed ({e}); 0 is used"))),
        }
    }

    /// When a run created at `created_at` and due at `due` (micros) takes its place in the
    /// queue with `factor`: a negative factor always moves it later; a positive one moves it
    /// earlier only when it is due at its creation (a delay, a debounce or a batch is an
    /// explicit start time that priority never breaks).
    #[must_use]
    pub fn place(factor: i64, created_at: i64, due: i64) -> i64 {
        let shift = factor.saturating_mul(1_000_000);
        if factor < 0 || due <= created_at { due.saturating_sub(shift) } else { due }
    }
}

impl PartialEq for PriorityExpr {
    fn eq(&self, other: &Self) -> bool {
        self.0.source() == other.0.source()
    }
}

impl Serialize for PriorityExpr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.source())
    }
}

impl<'de> Deserialize<'de> for PriorityExpr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::compile(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for PriorityExpr {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("A CEL expression over `input` (and `event`): seconds ahead in the queue, -600 to 600."))
            .examples([serde_json::json!("input.plan == 'enterprise' ? 120 : 0")])
            .into()
    }
}

impl utoipa::ToSchema for PriorityExpr {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expr(source: &str) -> PriorityExpr {
        PriorityExpr::compile(source).expect("valid")
    }

    #[test]
    fn the_factor_is_a_whole_number_of_seconds_held_in_range() {
        let p = expr("input.plan == 'enterprise' ? 120 : 0");
        assert_eq!(p.factor(&json!({"plan": "enterprise"}), None), (120, None));
        assert_eq!(p.factor(&json!({"plan": "free"}), None), (0, None));
        let (n, warning) = expr("input.n").factor(&json!({"n": 5000}), None);
        assert!(n == 600 && warning.is_some_and(|w| w.contains("held at 600")));
        assert_eq!(expr("input.n").factor(&json!({"n": -601}), None).0, -600);
        let (n, warning) = expr("input.n").factor(&json!({"n": "high"}), None);
        assert!(n == 0 && warning.is_some_and(|w| w.contains("not a whole number")));
        let (n, warning) = expr("input.missing.deep").factor(&json!({}), None);
        assert!(n == 0 && warning.is_some_and(|w| w.contains("failed")));
        let event = json!({"data": {"tier": 3}});
        assert_eq!(expr("event.data.tier * 10").factor(&event, Some(&event)).0, 30);
    }

    #[test]
    fn bad_expressions_are_refused() {
        assert!(PriorityExpr::compile("input.").is_err_and(|e| e.contains("not valid CEL")));
        assert!(PriorityExpr::compile("run.x").is_err_and(|e| e.contains("may only read")));
    }

    #[test]
    fn the_place_moves_by_the_factor_but_keeps_explicit_start_times() {
        let sec = 1_000_000;
        assert_eq!(PriorityExpr::place(120, 1000 * sec, 1000 * sec), 880 * sec, "ahead of 2 minutes of queue");
        assert_eq!(PriorityExpr::place(-60, 1000 * sec, 1000 * sec), 1060 * sec, "behind, and a minute later");
        assert_eq!(PriorityExpr::place(120, 1000 * sec, 1030 * sec), 1030 * sec, "a delayed run is not started early");
        assert_eq!(PriorityExpr::place(-60, 1000 * sec, 1030 * sec), 1090 * sec);
        assert_eq!(PriorityExpr::place(0, 5, 5), 5);
    }
}
