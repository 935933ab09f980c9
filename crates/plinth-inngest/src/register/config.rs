//! What an app sends when it registers (`POST /fn/register`, the body the SDK builds after a
//! `PUT` to its serve path): the app and each function's configuration, as the SDK protocol
//! names them. Every struct refuses a field it does not know, so an option Plinth does not
//! map is refused by name rather than ignored.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The register request.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The app's id (`Inngest(app_id=...)`).
    pub appname: String,
    /// The app's version, when it says.
    #[serde(default, rename = "appVersion")]
    pub app_version: Option<String>,
    /// The URL the app is served at (its serve path).
    pub url: String,
    /// The protocol version the SDK speaks.
    #[serde(default)]
    pub v: Option<String>,
    /// `ping` (asked by a `PUT`) or `cron`; the Python SDK spells it `deploy_type`.
    #[serde(default, alias = "deployType")]
    pub deploy_type: Option<String>,
    /// The SDK, e.g. `py:v0.5.19`.
    #[serde(default)]
    pub sdk: Option<String>,
    /// The web framework serving the app.
    #[serde(default)]
    pub framework: Option<String>,
    /// What the SDK can do (trust probe, connect); read, not needed.
    #[serde(default)]
    pub capabilities: Option<serde_json::Value>,
    /// The functions.
    pub functions: Vec<FunctionConfig>,
}

/// One function's configuration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FunctionConfig {
    /// The fully qualified id, `<app>-<fn_id>`.
    pub id: String,
    /// The name to show.
    #[serde(default)]
    pub name: Option<String>,
    /// What starts it.
    pub triggers: Vec<TriggerConfig>,
    /// Where it is called: one step, `step`, holding the runtime URL and the retries.
    pub steps: BTreeMap<String, StepConfig>,
    /// At most this many runs at once, per key.
    #[serde(default)]
    pub concurrency: Option<Vec<ConcurrencyConfig>>,
    /// At most `limit` starts per `period`.
    #[serde(default)]
    pub throttle: Option<ThrottleConfig>,
    /// At most `limit` runs created per `period`; more are dropped.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// Start `period` after the last event of a key.
    #[serde(default)]
    pub debounce: Option<DebounceConfig>,
    /// Gather events into one run.
    #[serde(default)]
    pub batch_events: Option<BatchConfig>,
    /// Seconds ahead in the queue.
    #[serde(default)]
    pub priority: Option<PriorityConfig>,
    /// Events that cancel a run.
    #[serde(default)]
    pub cancel: Option<Vec<CancelConfig>>,
    /// One run per key per 24 hours.
    #[serde(default)]
    pub idempotency: Option<String>,
    /// Deadlines to start and to finish.
    #[serde(default)]
    pub timeouts: Option<TimeoutsConfig>,
    /// One unfinished run per key.
    #[serde(default)]
    pub singleton: Option<SingletonConfig>,
}

/// An event or a cron trigger.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TriggerConfig {
    /// The event name.
    #[serde(default)]
    pub event: Option<String>,
    /// A CEL condition over `event`.
    #[serde(default)]
    pub expression: Option<String>,
    /// A cron pattern, optionally `TZ=<zone> ` first.
    #[serde(default)]
    pub cron: Option<String>,
    /// A random delay for cron runs.
    #[serde(default)]
    pub jitter: Option<String>,
}

/// The function's one step: where to call it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// `step`.
    pub id: String,
    /// `step`.
    #[serde(default)]
    pub name: Option<String>,
    /// Retries of each step (not counting the first try).
    #[serde(default)]
    pub retries: Option<RetriesConfig>,
    /// How to call it.
    pub runtime: RuntimeConfig,
}

/// Retries.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RetriesConfig {
    /// Retries after the first try.
    pub attempts: u32,
}

/// How a function is called.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// `http` (or `ws`, which Plinth does not speak).
    #[serde(rename = "type")]
    pub kind: String,
    /// The URL, with `fnId` and `stepId` in its query.
    pub url: String,
}

/// A concurrency limit.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyConfig {
    /// Runs at once.
    pub limit: i64,
    /// Per value of this expression.
    #[serde(default)]
    pub key: Option<String>,
    /// `fn` (the default), `env` or `account`.
    #[serde(default)]
    pub scope: Option<String>,
}

/// A throttle.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Starts per period.
    pub limit: i64,
    /// The period, e.g. `10s`.
    pub period: String,
    /// Starts allowed at once.
    #[serde(default)]
    pub burst: Option<i64>,
    /// Per value of this expression.
    #[serde(default)]
    pub key: Option<String>,
}

/// A rate limit.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Runs per period.
    pub limit: i64,
    /// The period.
    pub period: String,
    /// Per value of this expression.
    #[serde(default)]
    pub key: Option<String>,
}

/// A debounce.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DebounceConfig {
    /// Quiet time before the run starts.
    pub period: String,
    /// Per value of this expression.
    #[serde(default)]
    pub key: Option<String>,
    /// The longest the run may be put off.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// Event batching.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BatchConfig {
    /// Events per run at most.
    pub max_size: i64,
    /// How long the first event waits for others.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Per value of this expression.
    #[serde(default)]
    pub key: Option<String>,
    /// Only events for which this is true are batched.
    #[serde(default, rename = "if")]
    pub condition: Option<String>,
}

/// A priority.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PriorityConfig {
    /// Seconds ahead, an expression.
    pub run: String,
}

/// A cancel rule.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CancelConfig {
    /// The event that cancels.
    pub event: String,
    /// Over `event` (the run's) and `async` (the arriving one).
    #[serde(default, rename = "if")]
    pub condition: Option<String>,
    /// Only runs at most this old.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// Deadlines.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// To start.
    #[serde(default)]
    pub start: Option<String>,
    /// To finish, once started.
    #[serde(default)]
    pub finish: Option<String>,
}

/// A singleton.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SingletonConfig {
    /// Per value of this expression.
    #[serde(default)]
    pub key: Option<String>,
    /// `skip` or `cancel`.
    pub mode: String,
}
