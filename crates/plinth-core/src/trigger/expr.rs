//! CEL expressions (trigger `if`s; later keys and wait conditions), compiled once at start-up
//! with the `cel` crate and evaluated over JSON values.

use serde_json::Value;
use std::sync::{Arc, OnceLock};

/// A compiled CEL expression and its source.
#[derive(Clone)]
pub struct Expr {
    source: String,
    program: Arc<cel::Program>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expr").field(&self.source).finish()
    }
}

fn env() -> Arc<cel::Env> {
    static ENV: OnceLock<Arc<cel::Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(cel::Env::stdlib())).clone()
}

impl Expr {
    /// Compiles `source`; `vars` are the variables it may read. An expression that reads none
    /// of them (a typo such as `evnt.data.x`) is refused, since it could never see its input.
    ///
    /// # Errors
    /// What does not parse, or the variables it reads that do not exist.
    pub fn compile(source: &str, vars: &[&str]) -> Result<Self, String> {
        if source.trim().is_empty() {
            return Err("the expression is empty".into());
        }
        let program = env().compile(source).map_err(|e| format!("`{source}` is not valid CEL: {}", one_line(&e.to_string())))?;
        let refs = program.references();
        let used = refs.variables();
        if !used.is_empty() && !vars.iter().any(|v| refs.has_variable(v)) {
            let mut used: Vec<&str> = used;
            used.sort_unstable();
            return Err(format!(
                "`{source}` reads {} but may only read {}",
                used.join(", "),
                vars.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(Self { source: source.to_string(), program: Arc::new(program) })
    }

    /// The expression as written.
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates to a value, with `vars` bound.
    ///
    /// # Errors
    /// A missing field, a wrong type, a division by zero: CEL's error as text.
    pub fn eval(&self, vars: &[(&str, &Value)]) -> Result<Value, String> {
        let mut ctx = cel::Context::with_env(env());
        for (name, value) in vars {
            ctx.add_variable_from_value(*name, to_cel(value));
        }
        let out = self.program.execute(&ctx).map_err(|e| e.to_string())?;
        out.json().map_err(|e| format!("the result is not JSON: {e}"))
    }

    /// Evaluates to a boolean.
    ///
    /// # Errors
    /// As [`Expr::eval`], and when the result is not a boolean.
    pub fn eval_bool(&self, vars: &[(&str, &Value)]) -> Result<bool, String> {
        match self.eval(vars)? {
            Value::Bool(b) => Ok(b),
            other => Err(format!("`{}` gave {other}, not true or false", self.source)),
        }
    }
}

/// JSON as CEL sees it: a whole number is an `int` (a `uint` only past `i64`), any other number a
/// `double`, so `event.data.n % 2 == 0` works with CEL's `int` literals. (Through serde, every
/// non-negative number would be a `uint`, which CEL does not mix with `int` in arithmetic.)
fn to_cel(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            _ => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(items) => cel::Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => {
            let map: std::collections::HashMap<String, cel::Value> = map.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            cel::Value::from(map)
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(data: Value) -> Value {
        json!({"id": "e1", "name": "shop/order.paid", "data": data, "ts": 1})
    }

    #[test]
    fn a_condition_matches_over_the_event() {
        let e = Expr::compile("event.data.amount > 100", &["event"]).expect("compiles");
        assert!(e.eval_bool(&[("event", &event(json!({"amount": 150})))]).expect("evaluates"));
        assert!(!e.eval_bool(&[("event", &event(json!({"amount": 50})))]).expect("evaluates"));
        assert_eq!(e.source(), "event.data.amount > 100");
        let names = Expr::compile("event.name.startsWith('shop/') && size(event.data.items) == 2", &["event"]).expect("ok");
        assert!(names.eval_bool(&[("event", &event(json!({"items": [1, 2]})))]).expect("evaluates"));
    }

    #[test]
    fn json_numbers_are_ints_and_doubles() {
        let even = Expr::compile("event.data.i % 2 == 0 && event.data.neg < 0 && event.data.f > 1.0", &["event"]).expect("ok");
        assert!(even.eval_bool(&[("event", &event(json!({"i": 4998, "neg": -3, "f": 1.5})))]).expect("evaluates"));
        assert!(!even.eval_bool(&[("event", &event(json!({"i": 4999, "neg": -3, "f": 1.5})))]).expect("evaluates"));
        let big = Expr::compile("event.data.u > 0u", &["event"]).expect("ok");
        assert!(big.eval_bool(&[("event", &event(json!({"u": u64::MAX})))]).expect("past i64 is a uint"));
        let mixed =
            Expr::compile("event.data.xs[1].y == 'z' && event.data.nothing == null && event.data.t", &["event"]).expect("ok");
        assert!(mixed.eval_bool(&[("event", &event(json!({"xs": [1, {"y": "z"}], "nothing": null, "t": true})))]).expect("ok"));
    }

    #[test]
    fn comprehensions_may_name_their_own_variables() {
        let e = Expr::compile("event.data.items.all(i, i > 1)", &["event"]).expect("compiles");
        assert!(e.eval_bool(&[("event", &event(json!({"items": [2, 3]})))]).expect("evaluates"));
    }

    #[test]
    fn bad_expressions_are_refused_at_compile_time() {
        assert!(Expr::compile("event.data.amount >", &["event"]).expect_err("syntax").contains("not valid CEL"));
        assert!(Expr::compile("  ", &["event"]).is_err());
        assert!(Expr::compile("evnt.data.x == 1", &["event"]).expect_err("typo").contains("evnt"));
    }

    #[test]
    fn run_time_failures_are_errors_not_matches() {
        let div = Expr::compile("event.data.a / event.data.b > 1", &["event"]).expect("compiles");
        assert!(div.eval_bool(&[("event", &event(json!({"a": 1, "b": 0})))]).is_err());
        let missing = Expr::compile("event.data.nope > 1", &["event"]).expect("compiles");
        assert!(missing.eval_bool(&[("event", &event(json!({})))]).is_err());
        let wrong = Expr::compile("event.data.s > 1", &["event"]).expect("compiles");
        assert!(wrong.eval_bool(&[("event", &event(json!({"s": "x"})))]).is_err());
        let not_bool = Expr::compile("event.data.s", &["event"]).expect("compiles");
        assert!(not_bool.eval_bool(&[("event", &event(json!({"s": "x"})))]).expect_err("string").contains("not true or false"));
    }
}
