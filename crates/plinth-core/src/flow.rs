//! Flow control: the rules that decide when a queued run may start, and the keys that split a
//! function's runs into independent lanes.
//!
//! A key is a CEL expression over `input` (and `event`, for runs an event started), compiled
//! when the component file is read and evaluated once, when a run is created; the run stores
//! the value. A key that fails or gives a map or a list falls back to the shared key `""`.

use crate::trigger::expr::Expr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A compiled key expression, written in the component file as its CEL source.
#[derive(Clone, Debug)]
pub struct KeyExpr(Expr);

impl KeyExpr {
    /// Compiles a key over `input` and `event`.
    ///
    /// # Errors
    /// What does not parse, or an expression that reads neither variable.
    pub fn compile(source: &str) -> Result<Self, String> {
        Expr::compile(source, &["input", "event"]).map(Self)
    }

    /// The expression as written.
    #[must_use]
    pub fn source(&self) -> &str {
        self.0.source()
    }

    /// The key of a run: a string as itself, a number or a boolean as its JSON text, `null` as
    /// `""`.
    ///
    /// # Errors
    /// CEL's error, or a result that is a map or a list (a key must be one value).
    pub fn eval(&self, input: &Value, event: Option<&Value>) -> Result<String, String> {
        let null = Value::Null;
        let out = self.0.eval(&[("input", input), ("event", event.unwrap_or(&null))])?;
        match out {
            Value::String(s) => Ok(s),
            Value::Null => Ok(String::new()),
            Value::Bool(_) | Value::Number(_) => Ok(out.to_string()),
            Value::Array(_) | Value::Object(_) => Err(format!("`{}` gave {}, not a single value", self.source(), kind(&out))),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    if v.is_array() { "a list" } else { "a map" }
}

impl PartialEq for KeyExpr {
    fn eq(&self, other: &Self) -> bool {
        self.source() == other.source()
    }
}

impl Serialize for KeyExpr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.source())
    }
}

impl<'de> Deserialize<'de> for KeyExpr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let source = String::deserialize(d)?;
        Self::compile(&source).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for KeyExpr {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("A CEL expression over `input` (and `event`) whose value is the key."))
            .examples([serde_json::json!("input.tenant")])
            .into()
    }
}

impl utoipa::ToSchema for KeyExpr {}

/// `concurrency`: at most `limit` attempts of the function execute at once across all nodes,
/// per value of `key` when one is given. Written `concurrency: 4` or
/// `concurrency: {limit: 4, key: input.tenant}`.
#[derive(Clone, Debug, PartialEq, utoipa::ToSchema)]
pub struct Concurrency {
    /// The most attempts at once (per key). Kept as written so that validation can name a bad one.
    pub limit: i64,
    /// The key; none: one limit for the whole function.
    pub key: Option<KeyExpr>,
}

impl Concurrency {
    /// The limit, once validated.
    #[must_use]
    pub fn limit(&self) -> u32 {
        u32::try_from(self.limit.max(1)).unwrap_or(u32::MAX)
    }

    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if !(1..=1_000_000).contains(&self.limit) {
            return Err(("concurrency.limit".into(), format!("must be between 1 and 1000000, got {}", self.limit)));
        }
        Ok(())
    }
}

impl Serialize for Concurrency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Keyed<'a> {
            limit: i64,
            key: &'a KeyExpr,
        }
        match &self.key {
            None => s.serialize_i64(self.limit),
            Some(key) => Keyed { limit: self.limit, key }.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Concurrency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Keyed {
            limit: i64,
            key: Option<KeyExpr>,
        }
        // Why: through an untagged enum, serde's error for a bad key would be "did not match any
        // variant"; deserializing the map on its own keeps CEL's message.
        let value = serde_json::Value::deserialize(d)?;
        if value.is_object() {
            let k = Keyed::deserialize(value).map_err(serde::de::Error::custom)?;
            return Ok(Self { limit: k.limit, key: k.key });
        }
        value
            .as_i64()
            .map(|limit| Self { limit, key: None })
            .ok_or_else(|| serde::de::Error::custom("write a whole number or {limit: N, key: EXPR}"))
    }
}

/// Why a queued run is not running: the rule, and what it counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HeldBy {
    /// `concurrency` (its key is at its limit), `delay` (it was asked to start later) or
    /// `retry` (it waits out the backoff before its next attempt).
    pub rule: String,
    /// The key whose limit holds it (`""`: the function's shared limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The rule's limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// How many runs of the key run now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<u32>,
    /// How many queued runs of the key come before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ahead: Option<u64>,
    /// The earliest time it may start (RFC 3339), when the rule knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// What flow control stores on a new run: its concurrency lane, if its function has a limit.
///
/// A key that fails at run time gives the shared key `""` and a warning for the caller to log.
#[must_use]
pub fn concurrency_key(c: Option<&Concurrency>, input: &Value, event: Option<&Value>) -> (Option<String>, Option<String>) {
    let Some(c) = c else { return (None, None) };
    let Some(key) = &c.key else { return (Some(String::new()), None) };
    match key.eval(input, event) {
        Ok(k) => (Some(k), None),
        Err(e) => (Some(String::new()), Some(format!("the concurrency key fell back to the shared key \"\": {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(yaml: &str) -> Result<Concurrency, String> {
        serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn a_number_or_a_map_parses() {
        let c = parse("4").expect("a number");
        assert_eq!((c.limit(), c.key.is_none()), (4, true));
        let c = parse("{limit: 2, key: input.tenant}").expect("a map");
        assert_eq!(c.limit(), 2);
        assert_eq!(c.key.as_ref().map(KeyExpr::source), Some("input.tenant"));
        assert_eq!(serde_json::to_value(&c).expect("serializes"), json!({"limit": 2, "key": "input.tenant"}));
        assert_eq!(serde_json::to_value(parse("3").expect("n")).expect("serializes"), json!(3));
    }

    #[test]
    fn bad_concurrency_is_refused() {
        assert!(parse("{limit: 2, key: 'input.'}").expect_err("bad CEL").contains("not valid CEL"));
        assert!(parse("{limit: 2, key: 'evnt.x'}").expect_err("unknown variable").contains("may only read"));
        assert!(parse("{limit: 2, keys: input.a}").expect_err("unknown field").contains("unknown field"));
        assert!(parse("lots").expect_err("text").contains("whole number"));
        assert_eq!(parse("0").expect("parses").validate().map_err(|e| e.0), Err("concurrency.limit".into()));
        assert_eq!(parse("-3").expect("parses").validate().map_err(|e| e.0), Err("concurrency.limit".into()));
        assert_eq!(parse("1").expect("parses").validate(), Ok(()));
    }

    #[test]
    fn keys_evaluate_over_input_and_event() {
        let c = parse("{limit: 1, key: input.tenant}").expect("parses");
        assert_eq!(concurrency_key(Some(&c), &json!({"tenant": "t-1"}), None), (Some("t-1".into()), None));
        assert_eq!(concurrency_key(Some(&c), &json!({"tenant": 42}), None).0, Some("42".into()));
        let c = parse("{limit: 1, key: event.data.user}").expect("parses");
        let event = json!({"name": "a/b", "data": {"user": "u-9"}});
        assert_eq!(concurrency_key(Some(&c), &event, Some(&event)).0, Some("u-9".into()));
        assert_eq!(concurrency_key(Some(&parse("5").expect("n")), &json!({}), None), (Some(String::new()), None));
        assert_eq!(concurrency_key(None, &json!({}), None), (None, None));
    }

    #[test]
    fn a_failing_key_falls_back_to_the_shared_key() {
        let c = parse("{limit: 1, key: input.tenant}").expect("parses");
        let (key, warning) = concurrency_key(Some(&c), &json!({"other": 1}), None);
        assert_eq!(key, Some(String::new()));
        assert!(warning.is_some_and(|w| w.contains("fell back")));
        let c = parse("{limit: 1, key: input}").expect("parses");
        let (key, warning) = concurrency_key(Some(&c), &json!({"a": 1}), None);
        assert_eq!(key, Some(String::new()));
        assert!(warning.is_some_and(|w| w.contains("a map")));
        let (_, warning) = concurrency_key(Some(&c), &json!([1]), None);
        assert!(warning.is_some_and(|w| w.contains("a list")));
    }
}
