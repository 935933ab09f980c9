//! `component.yaml`: a component's identity, its functions and (optionally) server settings.

pub mod auth;
mod checks;
pub mod inngest;
mod live;
pub mod nats;

pub use auth::{AuthSection, Scope};
use checks::validate_http;
pub use inngest::{InngestHandler, InngestSection};
pub use live::Live;
pub use nats::{EventsSection, NatsPublish, NatsSection};

use crate::error::ConfigError;
use crate::policy::{DurationSpec, RunPolicy};
use crate::schema::InputSchema;
use crate::trigger::{CompiledTriggers, TriggerSpec};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file as written.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentFile {
    /// Who the component is.
    pub component: Identity,
    /// Server settings; flags and `PLINTH_*` variables override them.
    #[serde(default)]
    pub server: ServerSection,
    /// The component's functions.
    #[serde(default)]
    pub functions: Vec<FunctionSpec>,
    /// Access control; without it every route is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSection>,
    /// Event sources besides `POST /events`, and where run ends are published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<EventsSection>,
    /// What code written with Inngest's SDKs needs (the event API's key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inngest: Option<InngestSection>,
}

/// A component's identity.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// Its name, also the `component` label of every metric and log line.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The owning team or person.
    #[serde(default)]
    pub owner: Option<String>,
    /// One sentence on what it does.
    #[serde(default)]
    pub description: Option<String>,
}

/// Settings a component file may give; each is also a flag and a `PLINTH_*` variable.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ServerSection {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub log_level: Option<String>,
    pub log_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub database_schema: Option<String>,
    pub workers: Option<u32>,
    pub claim_batch: Option<u32>,
    pub shutdown_grace: Option<DurationSpec>,
    pub body_limit: Option<u64>,
    pub rate_limit: Option<u32>,
    pub rate_burst: Option<u32>,
    pub retention: Option<DurationSpec>,
    pub idempotency_window: Option<DurationSpec>,
    pub event_retention: Option<DurationSpec>,
    pub event_dedup_window: Option<DurationSpec>,
    pub lease: Option<DurationSpec>,
    pub kill_grace: Option<DurationSpec>,
    pub node_wait: Option<DurationSpec>,
    pub sqlite_synchronous: Option<String>,
    pub metrics_prefix: Option<String>,
    pub max_log_bytes: Option<u64>,
    pub max_output_bytes: Option<u64>,
    pub max_step_calls: Option<u32>,
    pub max_memo_bytes: Option<u64>,
    pub ui: Option<bool>,
    pub ui_path: Option<String>,
}

/// One function of the component.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// Its name, as `POST /run` names it.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// What runs the work.
    pub handler: HandlerSpec,
    /// A JSON Schema that every run's `input` must match.
    #[serde(default)]
    pub input_schema: Option<serde_json::Value>,
    /// Attempts, backoff, timeout, concurrency.
    #[serde(default)]
    pub policy: RunPolicy,
    /// Events and schedules that start it (besides `POST /run`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<TriggerSpec>,
    /// Whether the handler is written as durable steps (the step protocol of the contract).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub steps: bool,
}

/// What runs a function's work: exactly one of its fields is set.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HandlerSpec {
    /// A program, started once per attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandSpec>,
    /// An HTTP endpoint, sent one POST per attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSpec>,
    /// An in-process Rust handler registered under this name through the library API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rust: Option<String>,
    /// A function of an app built with an Inngest SDK, called over the SDK's protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inngest: Option<InngestHandler>,
}

/// An HTTP handler: Plinth POSTs `{"run_id","function","attempt","input"}` to `url`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// `http://` or `https://` address of the endpoint.
    pub url: String,
    /// How long one request may take; the function's `policy.timeout` when absent (the shorter wins).
    #[serde(default)]
    pub timeout: Option<DurationSpec>,
    /// Extra request headers; `${NAME}` in a value is replaced by the environment variable NAME
    /// at start-up, so secrets stay out of the file.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A handler, once checked to be exactly one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandlerKind<'a> {
    /// A command handler.
    Command(&'a CommandSpec),
    /// An HTTP handler.
    Http(&'a HttpSpec),
    /// An in-process handler's registered name.
    Rust(&'a str),
    /// A function of an Inngest SDK app.
    Inngest(&'a InngestHandler),
}

impl HandlerSpec {
    /// The one handler this spec names (validated at load, so `None` only for unchecked specs).
    #[must_use]
    pub fn get(&self) -> Option<HandlerKind<'_>> {
        match (&self.command, &self.http, &self.rust, &self.inngest) {
            (Some(c), None, None, None) => Some(HandlerKind::Command(c)),
            (None, Some(h), None, None) => Some(HandlerKind::Http(h)),
            (None, None, Some(r), None) => Some(HandlerKind::Rust(r)),
            (None, None, None, Some(i)) => Some(HandlerKind::Inngest(i)),
            _ => None,
        }
    }

    /// The handler kind, as `GET /functions` shows it.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self.get() {
            Some(HandlerKind::Command(_)) => "command",
            Some(HandlerKind::Http(_)) => "http",
            Some(HandlerKind::Rust(_)) => "rust",
            Some(HandlerKind::Inngest(_)) => "inngest",
            None => "invalid",
        }
    }
}

/// A command handler: argv (no shell), optional working directory and environment.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// The working directory, relative to the component file's folder.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// A loaded, validated component.
#[derive(Clone, Debug)]
pub struct Component {
    /// The file as written.
    pub file: ComponentFile,
    /// Where it was read from.
    pub path: PathBuf,
    /// The folder relative paths are resolved against.
    pub base_dir: PathBuf,
    /// Compiled input schemas, by function index.
    pub schemas: Vec<Option<Arc<InputSchema>>>,
    /// Compiled triggers, by function index.
    pub triggers: Vec<CompiledTriggers>,
}

impl Component {
    /// Reads and validates a component file.
    ///
    /// # Errors
    /// `PLINTH_001` with the file, the field and the reason.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let name = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::new(&name, "(file)", format!("cannot read it: {e}")))?;
        let base_dir = path
            .parent()
            .map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Self::parse(&text, &name, path.to_path_buf(), base_dir)
    }

    /// Parses and validates component YAML text.
    ///
    /// # Errors
    /// `PLINTH_001` with the source name, the field and the reason.
    pub fn parse(text: &str, source_name: &str, path: PathBuf, base_dir: PathBuf) -> Result<Self, ConfigError> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let file: ComponentFile = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let field = if field == "." { "(document)".to_string() } else { field };
            let reason = e.into_inner().to_string();
            // Why: the YAML parser already prefixes its message with the path we report apart.
            let reason = match reason.split_once(": ") {
                Some((path, rest)) if field.starts_with(path) => rest.to_string(),
                _ => reason,
            };
            ConfigError::new(source_name, field, reason)
        })?;
        Self::from_file(file, source_name, path, base_dir)
    }

    /// A component of a file already read (the one on disk with an app's functions added),
    /// validated as [`Self::parse`] validates.
    ///
    /// # Errors
    /// `PLINTH_001` with the source name, the field and the reason.
    pub fn from_file(file: ComponentFile, source_name: &str, path: PathBuf, base_dir: PathBuf) -> Result<Self, ConfigError> {
        let (schemas, triggers) = validate(&file, source_name)?;
        Ok(Self { file, path, base_dir, schemas, triggers })
    }

    /// The function with this name, and its index.
    #[must_use]
    pub fn function(&self, name: &str) -> Option<(usize, &FunctionSpec)> {
        self.file.functions.iter().enumerate().find(|(_, f)| f.name == name)
    }
}

/// Whether `name` may name a component or a function: a lowercase ASCII letter, then lowercase
/// letters, digits, `_` and `-`, 64 characters at most.
#[must_use]
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && name.len() <= 64
}

/// What validation compiles: the input schemas and the triggers, by function index.
type Compiled = (Vec<Option<Arc<InputSchema>>>, Vec<CompiledTriggers>);

fn validate(file: &ComponentFile, src: &str) -> Result<Compiled, ConfigError> {
    let err = |field: String, reason: String| ConfigError::new(src, field, reason);
    if !is_identifier(&file.component.name) {
        return Err(err(
            "component.name".into(),
            format!("`{}` must start with a lowercase letter and hold only a-z, 0-9, _ and - (64 at most)", file.component.name),
        ));
    }
    if file.component.version.trim().is_empty() {
        return Err(err("component.version".into(), "must not be empty".into()));
    }
    if let Some(auth) = &file.auth {
        auth.validate()
            .map_err(|(field, reason)| err(if field.is_empty() { "auth".into() } else { format!("auth.{field}") }, reason))?;
    }
    if let Some(nats) = file.events.as_ref().and_then(|e| e.nats.as_ref()) {
        nats.validate().map_err(|(field, reason)| err(format!("events.nats.{field}"), reason))?;
    }
    if let Some(inngest) = &file.inngest {
        inngest.validate().map_err(|(field, reason)| err(format!("inngest.{field}"), reason))?;
    }
    if file.functions.is_empty() && file.inngest.as_ref().is_none_or(|i| i.apps.is_empty()) {
        return Err(err(
            "functions".into(),
            "a component needs at least one function (or an Inngest app in `inngest.apps`)".into(),
        ));
    }
    let mut names = HashSet::new();
    let mut schemas = Vec::with_capacity(file.functions.len());
    let mut triggers = Vec::with_capacity(file.functions.len());
    for (i, f) in file.functions.iter().enumerate() {
        let at = |field: &str| format!("functions[{i}].{field}");
        if !is_identifier(&f.name) {
            return Err(err(
                at("name"),
                format!("`{}` must start with a lowercase letter and hold only a-z, 0-9, _ and - (64 at most)", f.name),
            ));
        }
        if !names.insert(f.name.as_str()) {
            return Err(err(at("name"), format!("`{}` is declared twice", f.name)));
        }
        match f.handler.get() {
            Some(HandlerKind::Command(c)) => {
                if c.argv.is_empty() || c.argv[0].trim().is_empty() {
                    return Err(err(at("handler.command.argv"), "must name a program".into()));
                }
                if let Some(key) = c.env.keys().find(|k| k.is_empty() || k.contains('=')) {
                    return Err(err(at("handler.command.env"), format!("`{key}` is not a valid variable name")));
                }
            }
            Some(HandlerKind::Http(h)) => {
                validate_http(h).map_err(|(field, reason)| err(at(&format!("handler.http.{field}")), reason))?
            }
            Some(HandlerKind::Rust(name)) if name.trim().is_empty() => {
                return Err(err(at("handler.rust"), "must name a registered handler".into()));
            }
            Some(HandlerKind::Rust(_)) => {}
            Some(HandlerKind::Inngest(i)) => {
                i.validate(f.steps).map_err(|(field, reason)| err(at(&format!("handler.inngest{field}")), reason))?;
            }
            None => return Err(err(at("handler"), "give exactly one of `command`, `http`, `rust` or `inngest`".into())),
        }
        f.policy.validate().map_err(|(field, reason)| err(at(&format!("policy.{field}")), reason))?;
        if f.policy.batch.is_some() && !f.triggers.iter().any(|t| t.event.is_some()) {
            return Err(err(at("policy.batch"), "batches gather events: give the function an `event` trigger".into()));
        }
        let schema = match &f.input_schema {
            Some(s) => Some(Arc::new(InputSchema::compile(s).map_err(|reason| err(at("input_schema"), reason))?)),
            None => None,
        };
        schemas.push(schema);
        let compiled = crate::trigger::compile(&f.triggers)
            .map_err(|(field, reason)| err(at(&field), format!("function `{}`: {reason}", f.name)))?;
        triggers.push(compiled);
    }
    Ok((schemas, triggers))
}

/// Replaces `${NAME}` in a header value by the environment variable NAME, as `lookup` gives it.
///
/// # Errors
/// When a named variable is not set, or a `${` is not closed.
pub fn expand_env(value: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| format!("`${{` without a closing `}}` in `{value}`"))?;
        let name = &after[..end];
        out.push_str(&lookup(name).ok_or_else(|| format!("the environment variable `{name}` is not set"))?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests;
