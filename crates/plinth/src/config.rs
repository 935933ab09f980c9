//! Effective settings: flag > `PLINTH_*` environment > component file > default, each value
//! with its source, validated after merging.

use crate::cli::ServeArgs;
use clap::ArgMatches;
use clap::parser::ValueSource;
use plinth_core::component::Component;
use plinth_core::{ConfigError, DurationSpec};
use plinth_store::sqlite::Synchronous;
use std::fmt::Display;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Where a value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A command-line flag.
    Flag,
    /// A `PLINTH_*` environment variable.
    Env,
    /// The component file's `server:` section.
    File,
    /// Plinth's default.
    Default,
}

impl Source {
    const fn as_str(self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Env => "env",
            Source::File => "file",
            Source::Default => "default",
        }
    }
}

/// One setting, as `plinth config` shows it.
#[derive(Clone, Debug)]
pub(crate) struct Shown {
    /// The setting's name (the flag without dashes).
    pub(crate) name: &'static str,
    /// Its value (secrets masked).
    pub(crate) value: String,
    /// Where it came from.
    pub(crate) source: Source,
    /// The variable that set it when that is not its own `PLINTH_*` one (OpenTelemetry's).
    pub(crate) env: Option<&'static str>,
}

/// The merged settings of `serve`.
#[derive(Clone, Debug)]
#[allow(missing_docs)]
pub(crate) struct Settings {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) log_level: String,
    pub(crate) log_dir: Option<PathBuf>,
    pub(crate) database_url: String,
    /// The PostgreSQL schema the store lives in (unused with SQLite).
    pub(crate) database_schema: String,
    pub(crate) workers: u32,
    pub(crate) claim_batch: u32,
    pub(crate) shutdown_grace: Duration,
    pub(crate) body_limit: u64,
    /// Requests per second per client; 0 is no limit.
    pub(crate) rate_limit: u32,
    pub(crate) rate_burst: u32,
    pub(crate) retention: Duration,
    pub(crate) idempotency_window: Duration,
    /// How long events are kept.
    pub(crate) event_retention: Duration,
    /// How long an event id deduplicates.
    pub(crate) event_dedup_window: Duration,
    pub(crate) lease: Duration,
    pub(crate) kill_grace: Duration,
    /// How long a run may wait on this node for a worker (decision 0028).
    pub(crate) node_wait: Duration,
    pub(crate) sqlite_synchronous: Synchronous,
    pub(crate) metrics_prefix: String,
    pub(crate) max_log_bytes: u64,
    pub(crate) max_output_bytes: u64,
    pub(crate) max_step_calls: u32,
    pub(crate) max_memo_bytes: u64,
    /// Whether the web dashboard is served.
    pub(crate) ui: bool,
    /// Where the web dashboard is served.
    pub(crate) ui_path: String,
    /// What signs the dashboard's session cookies (none: a random key per start).
    pub(crate) ui_secret: Option<String>,
    /// Where spans are exported (an OTLP/HTTP traces URL); none: not exported.
    pub(crate) otlp_endpoint: Option<String>,
    /// Every value with its source.
    pub(crate) shown: Vec<Shown>,
}

/// Hides a password in a URL.
fn mask(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].find(':') {
            Some(colon) => format!("{}:****{}", &url[..s + 3 + colon], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

struct Merger<'a> {
    matches: Option<&'a ArgMatches>,
    file_name: String,
    shown: Vec<Shown>,
}

impl Merger<'_> {
    fn source_of(&self, id: &str) -> Source {
        match self.matches.and_then(|m| m.value_source(id)) {
            Some(ValueSource::CommandLine) => Source::Flag,
            Some(ValueSource::EnvVariable) => Source::Env,
            _ => Source::Flag,
        }
    }

    fn pick<T: Clone + Display>(&mut self, name: &'static str, cli: Option<T>, file: Option<T>, default: T) -> T {
        let (value, source) = match (cli, file) {
            (Some(v), _) => (v, self.source_of(name)),
            (None, Some(v)) => (v, Source::File),
            (None, None) => (default, Source::Default),
        };
        let shown = if name == "database_url" { mask(&value.to_string()) } else { value.to_string() };
        self.shown.push(Shown { name, value: shown, source, env: None });
        value
    }

    fn duration(
        &mut self,
        name: &'static str,
        cli: Option<&String>,
        file: Option<DurationSpec>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let cli = cli
            .map(|t| DurationSpec::parse(t).map_err(|e| ConfigError::new(self.source_of(name).as_str(), name, e)))
            .transpose()?;
        Ok(self.pick(name, cli, file, DurationSpec(default)).get())
    }

    fn err(&self, name: &str, source: Source, reason: String) -> ConfigError {
        // Why: in the component file the setting sits under `server:`; name the path a reader finds.
        match source {
            Source::File => ConfigError::new(self.file_name.clone(), format!("server.{name}"), reason),
            _ => ConfigError::new(source.as_str(), name, reason),
        }
    }

    fn last_source(&self) -> Source {
        self.shown.last().map_or(Source::Default, |s| s.source)
    }
}

/// Merges flags/env (`args` with their `matches`) over the component file over defaults.
///
/// # Errors
/// `PLINTH_001` naming the setting, its source and the reason.
/// Whether every bare word of a filter is a level: `verbose` would otherwise be read as a
/// target name and silently turn off every other log line.
fn plain_levels_are_known(filter: &str) -> bool {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    filter
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !d.contains('=') && !d.contains('['))
        .all(|d| LEVELS.iter().any(|l| l.eq_ignore_ascii_case(d)))
}

/// Whether a database URL names PostgreSQL (`postgres://` or `postgresql://`).
pub(crate) fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

pub(crate) fn resolve(args: &ServeArgs, matches: Option<&ArgMatches>, component: &Component) -> Result<Settings, ConfigError> {
    let f = &component.file.server;
    let mut m = Merger { matches, file_name: component.path.display().to_string(), shown: Vec::new() };
    m.shown.push(Shown { name: "config", value: args.config.display().to_string(), source: m.source_of("config"), env: None });
    if matches.and_then(|x| x.value_source("config")) == Some(ValueSource::DefaultValue)
        && let Some(s) = m.shown.last_mut()
    {
        s.source = Source::Default;
    }
    let host = m.pick("host", args.host.clone(), f.host.clone(), "127.0.0.1".to_string());
    let port = m.pick("port", args.port, f.port, 8000);
    let log_level = m.pick("log_level", args.log_level.clone(), f.log_level.clone(), "info".to_string());
    if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() || !plain_levels_are_known(&log_level) {
        return Err(m.err("log_level", m.last_source(), format!("`{log_level}` is not a log level or filter")));
    }
    let log_dir = args.log_dir.clone().or_else(|| f.log_dir.clone());
    let log_dir_source = if args.log_dir.is_some() {
        m.source_of("log_dir")
    } else if f.log_dir.is_some() {
        Source::File
    } else {
        Source::Default
    };
    m.shown.push(Shown {
        name: "log_dir",
        value: log_dir.as_ref().map_or_else(|| "(none)".to_string(), |d| d.display().to_string()),
        source: log_dir_source,
        env: None,
    });
    let database_url =
        m.pick("database_url", args.database_url.clone(), f.database_url.clone(), "sqlite://.plinth/plinth.db".to_string());
    // Why: a PostgreSQL URL is checked when connecting (host, user and database come from it).
    if !is_postgres_url(&database_url)
        && let Err(reason) = plinth_store::sqlite::path_from_url(&database_url)
    {
        // Why: the store quotes the URL back; its password must not reach the terminal or the logs.
        return Err(m.err("database_url", m.last_source(), reason.replace(&database_url, &mask(&database_url))));
    }
    let database_schema =
        m.pick("database_schema", args.database_schema.clone(), f.database_schema.clone(), "plinth".to_string());
    if !plinth_store::postgres::valid_schema_name(&database_schema) {
        let reason = format!("`{database_schema}` is not a schema name: lowercase letters, digits and _, at most 63, not pg_*");
        return Err(m.err("database_schema", m.last_source(), reason));
    }
    let workers = m.pick("workers", args.workers, f.workers, 16);
    if !(1..=4096).contains(&workers) {
        return Err(m.err("workers", m.last_source(), format!("must be from 1 to 4096, got {workers}")));
    }
    let claim_batch = m.pick("claim_batch", args.claim_batch, f.claim_batch, 32);
    if !(1..=1000).contains(&claim_batch) {
        return Err(m.err("claim_batch", m.last_source(), format!("must be from 1 to 1000, got {claim_batch}")));
    }
    let shutdown_grace = m.duration("shutdown_grace", args.shutdown_grace.as_ref(), f.shutdown_grace, Duration::from_secs(30))?;
    let body_limit = m.pick("body_limit", args.body_limit, f.body_limit, 1024 * 1024);
    if !(1024..=256 * 1024 * 1024).contains(&body_limit) {
        return Err(m.err("body_limit", m.last_source(), "must be from 1024 bytes to 256 MiB".into()));
    }
    let rate_limit = m.pick("rate_limit", args.rate_limit, f.rate_limit, 0);
    if rate_limit > 1_000_000 {
        return Err(m.err("rate_limit", m.last_source(), "must be at most 1000000 requests per second".into()));
    }
    let rate_burst = m.pick("rate_burst", args.rate_burst, f.rate_burst, rate_limit.saturating_mul(2).max(1));
    if rate_burst == 0 || rate_burst > 10_000_000 {
        return Err(m.err("rate_burst", m.last_source(), "must be from 1 to 10000000".into()));
    }
    let retention = m.duration("retention", args.retention.as_ref(), f.retention, Duration::from_secs(7 * 24 * 3600))?;
    if retention < Duration::from_secs(60) {
        return Err(m.err("retention", m.last_source(), "must be at least 1m".into()));
    }
    let idempotency_window =
        m.duration("idempotency_window", args.idempotency_window.as_ref(), f.idempotency_window, Duration::from_secs(24 * 3600))?;
    if idempotency_window < Duration::from_secs(60) {
        return Err(m.err("idempotency_window", m.last_source(), "must be at least 1m".into()));
    }
    let event_retention =
        m.duration("event_retention", args.event_retention.as_ref(), f.event_retention, Duration::from_secs(7 * 24 * 3600))?;
    if event_retention < Duration::from_secs(60) {
        return Err(m.err("event_retention", m.last_source(), "must be at least 1m".into()));
    }
    let event_dedup_window =
        m.duration("event_dedup_window", args.event_dedup_window.as_ref(), f.event_dedup_window, Duration::from_secs(24 * 3600))?;
    if event_dedup_window < Duration::from_secs(60) {
        return Err(m.err("event_dedup_window", m.last_source(), "must be at least 1m".into()));
    }
    let lease = m.duration("lease", args.lease.as_ref(), f.lease, Duration::from_secs(30))?;
    if lease < Duration::from_millis(500) {
        return Err(m.err("lease", m.last_source(), "must be at least 500ms".into()));
    }
    let kill_grace = m.duration("kill_grace", args.kill_grace.as_ref(), f.kill_grace, Duration::from_secs(5))?;
    let node_wait = m.duration("node_wait", args.node_wait.as_ref(), f.node_wait, Duration::from_secs(1))?;
    if node_wait > Duration::from_secs(60) {
        return Err(m.err("node_wait", m.last_source(), "must be at most 1m".into()));
    }
    let sync_text =
        m.pick("sqlite_synchronous", args.sqlite_synchronous.clone(), f.sqlite_synchronous.clone(), "full".to_string());
    let sqlite_synchronous = Synchronous::parse(&sync_text)
        .ok_or_else(|| m.err("sqlite_synchronous", m.last_source(), format!("`{sync_text}` is not one of full, normal, off")))?;
    let metrics_prefix = m.pick("metrics_prefix", args.metrics_prefix.clone(), f.metrics_prefix.clone(), "plinth".to_string());
    if metrics_prefix.is_empty() || !metrics_prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(m.err("metrics_prefix", m.last_source(), "must hold only letters, digits and _".into()));
    }
    let max_log_bytes = m.pick("max_log_bytes", args.max_log_bytes, f.max_log_bytes, 1024 * 1024);
    let max_output_bytes = m.pick("max_output_bytes", args.max_output_bytes, f.max_output_bytes, 16 * 1024 * 1024);
    let max_step_calls = m.pick("max_step_calls", args.max_step_calls, f.max_step_calls, 10_000);
    if max_step_calls == 0 {
        return Err(m.err("max_step_calls", m.last_source(), "must be at least 1".into()));
    }
    let max_memo_bytes = m.pick("max_memo_bytes", args.max_memo_bytes, f.max_memo_bytes, 64 * 1024 * 1024);
    let ui = m.pick("ui", args.ui, f.ui, true);
    let ui_path = m.pick("ui_path", args.ui_path.clone(), f.ui_path.clone(), plinth_ui::DEFAULT_PATH.to_string());
    if let Err(reason) = plinth_ui::check_path(&ui_path) {
        return Err(m.err("ui_path", m.last_source(), reason));
    }
    let ui_secret = args.ui_secret.clone();
    m.shown.push(Shown {
        name: "ui_secret",
        value: if ui_secret.is_some() { "****".to_string() } else { "(random per start)".to_string() },
        source: if ui_secret.is_some() { m.source_of("ui_secret") } else { Source::Default },
        env: None,
    });
    if ui_secret.as_ref().is_some_and(|s| s.len() < 32) {
        return Err(m.err("ui_secret", m.last_source(), "must be at least 32 bytes".into()));
    }
    let otel = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    // Why: flags and PLINTH_* win, then OpenTelemetry's own variables, as every OTel SDK reads them.
    let (traces, base) = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT");
    let (otlp_endpoint, source, env) = match (args.otlp_endpoint.as_deref(), otel(traces)) {
        (Some(url), _) => (Some(crate::otlp::traces_url(url)), m.source_of("otlp_endpoint"), None),
        (None, Some(url)) => (Some(url), Source::Env, Some(traces)),
        (None, None) => match otel(base) {
            Some(url) => (Some(crate::otlp::traces_url(&url)), Source::Env, Some(base)),
            None => (None, Source::Default, None),
        },
    };
    m.shown.push(Shown {
        name: "otlp_endpoint",
        value: otlp_endpoint.as_deref().map_or_else(|| "(no export)".to_string(), mask),
        source,
        env,
    });
    if let Some(reason) = otlp_endpoint.as_deref().and_then(|e| crate::otlp::check(e).err()) {
        return Err(m.err("otlp_endpoint", source, reason));
    }
    Ok(Settings {
        host,
        port,
        log_level,
        log_dir,
        database_url,
        database_schema,
        workers,
        claim_batch,
        shutdown_grace,
        body_limit,
        rate_limit,
        rate_burst,
        retention,
        idempotency_window,
        event_retention,
        event_dedup_window,
        lease,
        kill_grace,
        node_wait,
        sqlite_synchronous,
        metrics_prefix,
        max_log_bytes,
        max_output_bytes,
        max_step_calls,
        max_memo_bytes,
        ui,
        ui_path,
        ui_secret,
        otlp_endpoint,
        shown: m.shown,
    })
}

/// Loads the component file and merges the settings; prints the error and gives exit code 2.
pub(crate) fn load(args: &ServeArgs, matches: Option<&ArgMatches>) -> Result<(Component, Settings), ExitCode> {
    let component = Component::load(&args.config).map_err(|e| {
        eprintln!("plinth: {e}");
        ExitCode::from(2)
    })?;
    let settings = resolve(args, matches, &component).map_err(|e| {
        eprintln!("plinth: {e}");
        ExitCode::from(2)
    })?;
    Ok((component, settings))
}

/// `plinth config`: every effective value and its source.
pub(crate) fn print(args: &ServeArgs, matches: Option<&ArgMatches>) -> ExitCode {
    let (_, settings) = match load(args, matches) {
        Ok(x) => x,
        Err(code) => return code,
    };
    println!("{:<20} {:<8} {:<28} VALUE", "SETTING", "SOURCE", "ENV");
    for s in &settings.shown {
        let env = s.env.map_or_else(|| format!("PLINTH_{}", s.name.to_ascii_uppercase()), str::to_string);
        println!("{:<20} {:<8} {:<28} {}", s.name, s.source.as_str(), env, s.value);
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests;
