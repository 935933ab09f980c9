//! An app's function configurations as Plinth functions: each option mapped to Plinth's rule
//! of the same meaning, and whatever has no such rule refused by name (see
//! `docs/decisions/0012-inngest-sync.md`).

pub mod config;
#[cfg(test)]
mod tests;

use crate::expr::arriving_vs_run;
pub use config::RegisterRequest;
use config::{FunctionConfig, TriggerConfig};
use plinth_core::policy::RunPolicy;
use plinth_core::trigger::TriggerSpec;
use serde_json::{Map, Value, json};

/// Inngest's default: four retries after the first try.
const DEFAULT_RETRIES: u32 = 4;

/// One function of an app, ready to serve.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapped {
    /// Plinth's name for it: the function's fully qualified id.
    pub name: String,
    /// The name the app shows.
    pub display_name: Option<String>,
    /// The URL Plinth calls it at (with `fnId` and `stepId`).
    pub url: String,
    /// Its triggers.
    pub triggers: Vec<TriggerSpec>,
    /// Its policy.
    pub policy: RunPolicy,
}

/// Why a function cannot be served: the option (a path such as `functions[0].concurrency[1].scope`)
/// and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// Where.
    pub field: String,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Parses a register body; an unknown field is refused with its path.
///
/// # Errors
/// The field and the reason.
pub fn parse(body: &[u8]) -> Result<RegisterRequest, Refused> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { "(body)".to_string() } else { field };
        let reason = e.into_inner().to_string();
        let reason = if reason.starts_with("unknown field") {
            format!("{reason}; Plinth has no rule of that meaning, so the function is not served")
        } else {
            reason
        };
        Refused { field, reason }
    })
}

/// Every function of the request, or the first that cannot be served.
///
/// # Errors
/// The first refusal, its field starting at `functions[i]`.
pub fn map_all(req: &RegisterRequest) -> Result<Vec<Mapped>, Refused> {
    if req.functions.is_empty() {
        return Err(Refused { field: "functions".into(), reason: "the app registers no function".into() });
    }
    let mut seen = std::collections::HashSet::new();
    req.functions
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let m = map(f).map_err(|r| Refused { field: format!("functions[{i}].{}", r.field), reason: r.reason })?;
            if !seen.insert(m.name.clone()) {
                return Err(Refused { field: format!("functions[{i}].id"), reason: format!("`{}` is registered twice", m.name) });
            }
            Ok(m)
        })
        .collect()
}

fn refuse(field: &str, reason: impl Into<String>) -> Refused {
    Refused { field: field.into(), reason: reason.into() }
}

/// One function; the field of a refusal is relative to the function.
///
/// # Errors
/// The option and why.
pub fn map(f: &FunctionConfig) -> Result<Mapped, Refused> {
    if !plinth_core::component::is_identifier(&f.id) {
        return Err(refuse(
            "id",
            format!(
                "`{}` is not a Plinth function name: start with a lowercase letter, use a-z, 0-9, _ and - (64 at most)",
                f.id
            ),
        ));
    }
    let (step, retries) = match (f.steps.len(), f.steps.get("step")) {
        (1, Some(s)) => (s, s.retries.as_ref().map_or(DEFAULT_RETRIES, |r| r.attempts)),
        _ => {
            let names: Vec<&str> = f.steps.keys().map(String::as_str).collect();
            return Err(refuse("steps", format!("expected the one step `step`, got {names:?}")));
        }
    };
    if step.runtime.kind != "http" {
        return Err(refuse("steps.step.runtime.type", format!("`{}`: Plinth calls functions over HTTP only", step.runtime.kind)));
    }
    if !(step.runtime.url.starts_with("http://") || step.runtime.url.starts_with("https://")) {
        return Err(refuse("steps.step.runtime.url", format!("`{}` is not an http(s) URL", step.runtime.url)));
    }
    let triggers = f
        .triggers
        .iter()
        .enumerate()
        .map(|(i, t)| trigger(t).map_err(|r| at(&format!("triggers[{i}]"), r)))
        .collect::<Result<_, _>>()?;
    let policy = policy(f, retries)?;
    Ok(Mapped { name: f.id.clone(), display_name: f.name.clone(), url: step.runtime.url.clone(), triggers, policy })
}

fn at(prefix: &str, r: Refused) -> Refused {
    Refused { field: if r.field.is_empty() { prefix.into() } else { format!("{prefix}.{}", r.field) }, reason: r.reason }
}

fn trigger(t: &TriggerConfig) -> Result<TriggerSpec, Refused> {
    if t.jitter.is_some() {
        return Err(refuse("jitter", "Plinth's schedules fire on the minute; a cron trigger with jitter is not served"));
    }
    match (&t.event, &t.cron) {
        (Some(event), None) => {
            Ok(TriggerSpec { event: Some(event.clone()), condition: t.expression.clone(), ..TriggerSpec::default() })
        }
        (None, Some(cron)) if t.expression.is_none() => {
            let cron = cron.trim();
            let (zone, pattern) = match cron.strip_prefix("TZ=").or_else(|| cron.strip_prefix("CRON_TZ=")) {
                Some(rest) => match rest.split_once(' ') {
                    Some((zone, pattern)) => (Some(zone.to_string()), pattern.trim().to_string()),
                    None => return Err(refuse("cron", format!("`{cron}` names a time zone but no pattern"))),
                },
                None => (None, cron.to_string()),
            };
            Ok(TriggerSpec { cron: Some(pattern), timezone: zone, ..TriggerSpec::default() })
        }
        _ => Err(refuse("", "a trigger is an `event` (with an optional `expression`) or a `cron`")),
    }
}

/// The policy, built in component.yaml's own shape and read by Plinth's own parser, so every
/// value is checked as if the user had written it.
fn policy(f: &FunctionConfig, retries: u32) -> Result<RunPolicy, Refused> {
    let mut p = Map::new();
    p.insert("retries".into(), json!({"max_attempts": retries.saturating_add(1)}));
    if let Some(list) = &f.concurrency {
        for (i, c) in list.iter().enumerate() {
            if let Some(scope) = c.scope.as_deref().filter(|s| *s != "fn") {
                return Err(refuse(
                    &format!("concurrency[{i}].scope"),
                    format!(
                        "`{scope}`: Plinth's limits hold across the nodes of one component, so only the scope `fn` is served"
                    ),
                ));
            }
        }
        match list.as_slice() {
            [] => {}
            [c] => {
                p.insert("concurrency".into(), json!({"limit": c.limit, "key": c.key}));
            }
            _ => {
                return Err(refuse(
                    "concurrency",
                    format!("{} limits: Plinth holds one concurrency limit per function", list.len()),
                ));
            }
        }
    }
    if let Some(t) = &f.throttle {
        p.insert("throttle".into(), json!({"limit": t.limit, "period": t.period, "burst": t.burst.unwrap_or(1), "key": t.key}));
    }
    match (&f.rate_limit, &f.idempotency) {
        (Some(_), Some(_)) => {
            return Err(refuse(
                "idempotency",
                "Plinth serves `idempotency` as a rate limit of one run per key per 24 hours, and this function already has `rateLimit`",
            ));
        }
        (Some(r), None) => {
            p.insert("rate_limit".into(), json!({"limit": r.limit, "period": r.period, "key": r.key}));
        }
        (None, Some(key)) => {
            p.insert("rate_limit".into(), json!({"limit": 1, "period": "24h", "key": key}));
        }
        (None, None) => {}
    }
    if let Some(d) = &f.debounce {
        p.insert("debounce".into(), json!({"period": d.period, "max_wait": d.timeout, "key": d.key}));
    }
    if let Some(b) = &f.batch_events {
        if b.condition.is_some() {
            return Err(refuse(
                "batchEvents.if",
                "Plinth batches every event of the function's triggers; a condition on batching is not served",
            ));
        }
        p.insert("batch".into(), json!({"max_size": b.max_size, "timeout": b.timeout.as_deref().unwrap_or("60s"), "key": b.key}));
    }
    if let Some(pr) = &f.priority {
        p.insert("priority".into(), json!(pr.run));
    }
    if let Some(rules) = &f.cancel {
        let rules: Vec<Value> = rules
            .iter()
            .map(|c| json!({"event": c.event, "if": c.condition.as_deref().map(arriving_vs_run), "timeout": c.timeout}))
            .collect();
        p.insert("cancel_on".into(), Value::Array(rules));
    }
    if let Some(t) = &f.timeouts {
        p.insert("timeouts".into(), json!({"start": t.start, "finish": finish(t.start.as_deref(), t.finish.as_deref())?}));
    }
    if let Some(s) = &f.singleton {
        p.insert("singleton".into(), json!({"key": s.key, "mode": s.mode}));
    }
    strip_nulls(&mut p);
    let policy: RunPolicy = serde_path_to_error::deserialize(Value::Object(p))
        .map_err(|e| Refused { field: inngest_field(&e.path().to_string()), reason: e.into_inner().to_string() })?;
    policy.validate().map_err(|(field, reason)| Refused { field: inngest_field(&field), reason })?;
    Ok(policy)
}

/// Plinth counts `finish` from the run's creation, Inngest from its start: with `start` given,
/// Plinth's deadline is `start + finish`, the latest Inngest's could be.
fn finish(start: Option<&str>, finish: Option<&str>) -> Result<Option<String>, Refused> {
    let parse = |field: &str, text: &str| {
        plinth_core::policy::DurationSpec::parse(text).map(|d| d.get()).map_err(|reason| refuse(field, reason))
    };
    match (start, finish) {
        (Some(s), Some(f)) => {
            let total = parse("timeouts.start", s)? + parse("timeouts.finish", f)?;
            Ok(Some(format!("{}ms", total.as_millis())))
        }
        (None, f) => Ok(f.map(str::to_string)),
        (Some(_), None) => Ok(None),
    }
}

fn strip_nulls(map: &mut Map<String, Value>) {
    map.retain(|_, v| !v.is_null());
    for v in map.values_mut() {
        match v {
            Value::Object(m) => strip_nulls(m),
            Value::Array(items) => items.iter_mut().filter_map(Value::as_object_mut).for_each(strip_nulls),
            _ => {}
        }
    }
}

/// A Plinth policy path in the SDK's names, so a refusal points at what the app wrote.
fn inngest_field(plinth: &str) -> String {
    const NAMES: [(&str, &str); 7] = [
        ("retries", "steps.step.retries.attempts"),
        ("rate_limit", "rateLimit"),
        ("batch.max_size", "batchEvents.maxSize"),
        ("batch", "batchEvents"),
        ("cancel_on", "cancel"),
        ("debounce.max_wait", "debounce.timeout"),
        ("priority", "priority.run"),
    ];
    let plinth = plinth.strip_prefix("policy.").unwrap_or(plinth);
    for (ours, theirs) in NAMES {
        if let Some(rest) = plinth.strip_prefix(ours) {
            if ours == "retries" {
                return theirs.to_string();
            }
            return format!("{theirs}{rest}");
        }
    }
    plinth.to_string()
}
