//! Flow control: the rules that decide when a queued run may start, and the keys that split a
//! function's runs into independent lanes.
//!
//! A key is a CEL expression over `input` (and `event`, for runs an event started), compiled
//! when the component file is read and evaluated once, when a run is created; the run stores
//! the value. A key that fails or gives a map or a list falls back to the shared key `""`.

use crate::trigger::expr::Expr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

mod batch;
mod cancel_on;
mod concurrency;
mod debounce;
mod priority;
mod rate_limit;
mod singleton;
mod throttle;
mod timeouts;

pub use batch::{Batch, BatchCheck, MAX_BATCH};
pub use cancel_on::{CancelCond, CancelMatch, CancelOn};
pub use concurrency::Concurrency;
pub use debounce::{Debounce, DebounceCheck};
pub use priority::{MAX_FACTOR, PriorityExpr};
pub use rate_limit::{RateCheck, RateLimit};
pub use singleton::{Singleton, SingletonCheck, SingletonMode};
pub use throttle::{Gcra, Throttle};
pub use timeouts::{Expiry, Timeouts};

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

/// The most runs ahead of a queued run that are counted (`held_by.ahead`). Why: counting every
/// run ahead of one deep in a queue cost as much as the queue is long (270 ms for
/// `GET /runs/{id}` of a run with 500,000 ahead on PostgreSQL); counted up to this, it costs a
/// fraction of a millisecond, and a run 1,000 deep reads the same whatever the queue holds
/// behind (issue 16: within 1.5x of an empty store). The queue's depth stays exact
/// (`plinth_queue_depth`). The description of `HeldBy::ahead` gives the figure.
pub const AHEAD_COUNTED: u64 = 1_000;

/// Why a queued run is not running: the rule, and what it counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HeldBy {
    /// `concurrency` (its key is at its limit), `throttle` (its key's next start is later),
    /// `debounce` (more triggers may come), `batch` (more events may join it), `delay` (it was
    /// asked to start later) or `retry` (it waits out the backoff before its next attempt).
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
    /// How many queued runs of the key come before it, counted up to 1,000: a run deeper in
    /// its queue reads 1,000, meaning at least that many.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ahead: Option<u64>,
    /// The earliest time it may start (RFC 3339), when the rule knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// The `concurrency` limit of a function whose lanes have no other rule (no throttle, which
/// claims decide by the lane's time): a run of such a lane may start as it is stored.
#[must_use]
pub fn lane_limit(policy: &crate::RunPolicy) -> Option<u32> {
    policy.concurrency.as_ref().filter(|_| policy.throttle.is_none()).map(Concurrency::limit)
}

/// The key a new run is stored with: the `concurrency` key, or the `throttle` key of a function
/// with a throttle only (validation makes sure the two agree when both are set); none when the
/// function has neither rule. A key that fails at run time gives the shared key `""` and a
/// warning for the caller to log.
#[must_use]
pub fn flow_key(policy: &crate::RunPolicy, input: &Value, event: Option<&Value>) -> (Option<String>, Option<String>) {
    let key = match (&policy.concurrency, &policy.throttle) {
        (Some(c), _) => c.key.as_ref(),
        (None, Some(t)) => t.key.as_ref(),
        (None, None) => return (None, None),
    };
    let Some(key) = key else { return (Some(String::new()), None) };
    match key.eval(input, event) {
        Ok(k) => (Some(k), None),
        Err(e) => (Some(String::new()), Some(format!("the flow key fell back to the shared key \"\": {e}"))),
    }
}

/// The value of a rule's optional key: none gives the shared key `""`, and so does a key that
/// fails, with a warning for the caller to log.
fn key_or_shared(rule: &str, key: Option<&KeyExpr>, input: &Value, event: Option<&Value>) -> (String, Option<String>) {
    match key.map(|k| k.eval(input, event)) {
        None => (String::new(), None),
        Some(Ok(k)) => (k, None),
        Some(Err(e)) => (String::new(), Some(format!("the {rule} key fell back to the shared key \"\": {e}"))),
    }
}

/// The rate limit a new run must pass, if its function has one.
#[must_use]
pub fn rate_check(policy: &crate::RunPolicy, input: &Value, event: Option<&Value>) -> (Option<RateCheck>, Option<String>) {
    let Some(r) = &policy.rate_limit else { return (None, None) };
    let (key, warning) = key_or_shared("rate_limit", r.key.as_ref(), input, event);
    let period = i64::try_from(r.period.get().as_micros()).unwrap_or(i64::MAX);
    (Some(RateCheck { key, limit: u32::try_from(r.limit.max(1)).unwrap_or(u32::MAX), period }), warning)
}

/// The debounce a new run goes through, if its function has one.
#[must_use]
pub fn debounce_check(
    policy: &crate::RunPolicy,
    input: &Value,
    event: Option<&Value>,
) -> (Option<DebounceCheck>, Option<String>) {
    let Some(d) = &policy.debounce else { return (None, None) };
    let (key, warning) = key_or_shared("debounce", d.key.as_ref(), input, event);
    let micros = |d: crate::policy::DurationSpec| i64::try_from(d.get().as_micros()).unwrap_or(i64::MAX);
    (Some(DebounceCheck { key, period: micros(d.period), max_wait: d.max_wait.map(micros) }), warning)
}

/// The singleton rule a new run must pass, if its function has one.
#[must_use]
pub fn singleton_check(
    policy: &crate::RunPolicy,
    input: &Value,
    event: Option<&Value>,
) -> (Option<SingletonCheck>, Option<String>) {
    let Some(s) = &policy.singleton else { return (None, None) };
    let (key, warning) = key_or_shared("singleton", s.key.as_ref(), input, event);
    (Some(SingletonCheck { key, mode: s.mode }), warning)
}

/// The batch a run `event` starts joins, if its function has one (a run started otherwise is
/// a run of its own).
#[must_use]
pub fn batch_check(policy: &crate::RunPolicy, input: &Value, event: Option<&Value>) -> (Option<BatchCheck>, Option<String>) {
    let (Some(b), Some(_)) = (&policy.batch, event) else { return (None, None) };
    let (key, warning) = key_or_shared("batch", b.key.as_ref(), input, event);
    (Some(BatchCheck { key, max_size: u32::try_from(b.max_size.clamp(1, MAX_BATCH)).unwrap_or(1) }), warning)
}

/// Checks the flow rules together; `(field, reason)` for the first that is wrong.
pub(crate) fn validate(policy: &crate::RunPolicy) -> Result<(), (String, String)> {
    if let Some(c) = &policy.concurrency {
        c.validate()?;
    }
    if let Some(t) = &policy.throttle {
        t.validate()?;
    }
    if let Some(r) = &policy.rate_limit {
        r.validate()?;
    }
    if let Some(d) = &policy.debounce {
        d.validate()?;
    }
    if let Some(t) = &policy.timeouts {
        t.validate()?;
    }
    if let Some(b) = &policy.batch {
        b.validate()?;
        if policy.debounce.is_some() {
            return Err((
                "batch".into(),
                "a function cannot have both `batch` and `debounce`: both decide which queued run a trigger joins".into(),
            ));
        }
    }
    cancel_on::validate(&policy.cancel_on)?;
    if let (Some(c), Some(t)) = (&policy.concurrency, &policy.throttle) {
        let source = |k: Option<&KeyExpr>| k.map(|k| k.source().to_string());
        if source(c.key.as_ref()) != source(t.key.as_ref()) {
            return Err((
                "throttle.key".into(),
                "a function with both `concurrency` and `throttle` must give both the same key (or neither): one key \
                 decides which runs share a limit"
                    .into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_api_says_up_to_where_runs_ahead_are_counted() {
        let schema = serde_json::to_string(&<super::HeldBy as utoipa::PartialSchema>::schema()).expect("json");
        let bound = format!("{},{:03}", super::AHEAD_COUNTED / 1000, super::AHEAD_COUNTED % 1000);
        assert_eq!(bound, "1,000", "the description below is written for this bound");
        assert!(schema.contains(&format!("counted up to {bound}")), "{schema}");
    }

    use super::*;
    use serde_json::json;

    fn key_of(c: Option<&Concurrency>, input: &Value, event: Option<&Value>) -> (Option<String>, Option<String>) {
        let policy = crate::RunPolicy { concurrency: c.cloned(), ..crate::RunPolicy::default() };
        flow_key(&policy, input, event)
    }

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
        assert_eq!(key_of(Some(&c), &json!({"tenant": "t-1"}), None), (Some("t-1".into()), None));
        assert_eq!(key_of(Some(&c), &json!({"tenant": 42}), None).0, Some("42".into()));
        let c = parse("{limit: 1, key: event.data.user}").expect("parses");
        let event = json!({"name": "a/b", "data": {"user": "u-9"}});
        assert_eq!(key_of(Some(&c), &event, Some(&event)).0, Some("u-9".into()));
        assert_eq!(key_of(Some(&parse("5").expect("n")), &json!({}), None), (Some(String::new()), None));
        assert_eq!(key_of(None, &json!({}), None), (None, None));
    }

    #[test]
    fn a_failing_key_falls_back_to_the_shared_key() {
        let c = parse("{limit: 1, key: input.tenant}").expect("parses");
        let (key, warning) = key_of(Some(&c), &json!({"other": 1}), None);
        assert_eq!(key, Some(String::new()));
        assert!(warning.is_some_and(|w| w.contains("fell back")));
        let c = parse("{limit: 1, key: input}").expect("parses");
        let (key, warning) = key_of(Some(&c), &json!({"a": 1}), None);
        assert_eq!(key, Some(String::new()));
        assert!(warning.is_some_and(|w| w.contains("a map")));
        let (_, warning) = key_of(Some(&c), &json!([1]), None);
        assert!(warning.is_some_and(|w| w.contains("a list")));
    }
}
