//! The configuration blocks, read from the command line's own definition (clap) and from the
//! defaults `config::resolve` applies: flags, environment variables, precedence, and what the
//! component file's `server:` section sets.

use super::{Facts, cell};
use crate::cli::Cli;
use crate::config::{Shown, Source};
use clap::CommandFactory;
use std::any::TypeId;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// One flag of `plinth serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flag {
    /// The setting's id, such as `log_level`.
    pub(crate) id: String,
    /// The flag, such as `--log-level`.
    pub(crate) long: String,
    pub(crate) env: Option<String>,
    /// `string`, `integer`, `duration` or `path`.
    pub(crate) kind: &'static str,
    /// Plinth's default, as `config::resolve` applies it.
    pub(crate) default: String,
    /// The help text without its `[default: ...]`.
    pub(crate) help: String,
    /// The `[default: ...]` the help text gives, if any.
    pub(crate) help_default: Option<String>,
}

/// The help text and the `[default: X]` at its end, apart.
fn split_help(help: &str) -> (String, Option<String>) {
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.rfind(" [default: ") {
        Some(i) if flat.ends_with(']') => {
            let default = flat[i + " [default: ".len()..flat.len() - 1].to_string();
            (flat[..i].to_string(), Some(default))
        }
        _ => (flat, None),
    }
}

fn kind_of(arg: &clap::Arg, default: &str) -> &'static str {
    let id = arg.get_value_parser().type_id();
    if id == TypeId::of::<u16>() || id == TypeId::of::<u32>() || id == TypeId::of::<u64>() || id == TypeId::of::<usize>() {
        "integer"
    } else if id == TypeId::of::<PathBuf>() {
        "path"
    } else if id == TypeId::of::<bool>() {
        "boolean"
    } else if default.parse::<f64>().is_err() && plinth_core::DurationSpec::parse(default).is_ok() {
        // Why: durations are text to clap and parsed by `config::resolve`; their defaults say which.
        "duration"
    } else {
        "string"
    }
}

impl Flag {
    /// Whether the help text's `[default: X]` says the default applied in other words (such as
    /// "twice the rate") rather than as the value.
    pub(crate) fn default_in_words(&self) -> bool {
        let Some(said) = &self.help_default else { return false };
        let as_duration = |t: &str| plinth_core::DurationSpec::parse(t).ok();
        *said != self.default && !(as_duration(said).is_some() && as_duration(said) == as_duration(&self.default))
    }
}

/// The Default cell: the value applied, or the help text's words when it is computed.
fn default_cell(f: &Flag) -> String {
    match &f.help_default {
        Some(words) if f.default_in_words() => cell(words),
        _ => format!("`{}`", cell(&f.default)),
    }
}

fn env_of(arg: &clap::Arg) -> Option<String> {
    arg.get_env().map(|e| e.to_string_lossy().into_owned())
}

fn is_builtin(arg: &clap::Arg) -> bool {
    matches!(arg.get_id().as_str(), "help" | "version")
}

/// The flags of `plinth serve`, with the defaults `config::resolve` applies (`defaults`).
pub(crate) fn serve_flags(defaults: &[Shown]) -> Vec<Flag> {
    let cli = Cli::command();
    let Some(serve) = cli.find_subcommand("serve") else { return Vec::new() };
    serve
        .get_arguments()
        .filter(|a| !is_builtin(a))
        .filter_map(|arg| {
            let long = arg.get_long()?;
            let id = arg.get_id().as_str().to_string();
            let clap_default = arg.get_default_values().first().map(|v| v.to_string_lossy().into_owned());
            let default = match defaults.iter().find(|s| s.name == id && s.source == Source::Default) {
                Some(s) if s.value == "(none)" => "none".to_string(),
                Some(s) => s.value.clone(),
                None => clap_default.unwrap_or_else(|| "none".into()),
            };
            let (help, help_default) = split_help(&arg.get_help().map(ToString::to_string).unwrap_or_default());
            Some(Flag {
                kind: kind_of(arg, &default),
                id,
                long: format!("--{long}"),
                env: env_of(arg),
                default,
                help,
                help_default,
            })
        })
        .collect()
}

/// One environment variable Plinth reads, with the flag it stands for and the commands that read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvVar {
    pub(crate) name: String,
    pub(crate) flag: String,
    pub(crate) commands: Vec<String>,
    pub(crate) default: String,
    pub(crate) help: String,
}

fn walk(cmd: &clap::Command, path: &str, out: &mut BTreeMap<String, EnvVar>) {
    for arg in cmd.get_arguments().filter(|a| !is_builtin(a)) {
        let (Some(env), Some(long)) = (env_of(arg), arg.get_long()) else { continue };
        let entry = out.entry(env.clone()).or_insert_with(|| EnvVar {
            name: env,
            flag: format!("--{long}"),
            commands: Vec::new(),
            default: arg.get_default_values().first().map_or_else(|| "none".into(), |v| v.to_string_lossy().into_owned()),
            help: split_help(&arg.get_help().map(ToString::to_string).unwrap_or_default()).0,
        });
        if !entry.commands.iter().any(|c| c == path) {
            entry.commands.push(path.to_string());
        }
    }
    for sub in cmd.get_subcommands() {
        let name = if path.is_empty() { sub.get_name().to_string() } else { format!("{path} {}", sub.get_name()) };
        walk(sub, &name, out);
    }
}

/// Every `PLINTH_*` variable any command reads, by name; `serve`'s defaults and help win.
pub(crate) fn env_vars(defaults: &[Shown]) -> Vec<EnvVar> {
    let mut all = BTreeMap::new();
    walk(&Cli::command(), "", &mut all);
    for f in serve_flags(defaults) {
        if let Some(v) = f.env.as_ref().and_then(|e| all.get_mut(e)) {
            v.default = f.default;
            v.help = f.help;
        }
    }
    all.into_values().collect()
}

/// `cli-flags`: the flags of `plinth serve`.
pub(crate) fn cli_flags(facts: &Facts<'_>) -> String {
    let mut out =
        String::from("| Flag | Type | Default | Env Var | Description |\n|------|------|---------|---------|-------------|\n");
    for f in serve_flags(&facts.defaults) {
        let env = f.env.as_ref().map_or_else(|| "none".into(), |e| format!("`{e}`"));
        let _ = writeln!(out, "| `{}` | {} | {} | {env} | {} |", f.long, f.kind, default_cell(&f), cell(&f.help));
    }
    out.push_str("\n`plinth serve --help` prints the same list; `plinth config` prints each effective value and its source.\n");
    out
}

/// `env-vars`: every variable Plinth reads, and those this component's file refers to.
pub(crate) fn env_variables(facts: &Facts<'_>) -> String {
    let mut out = String::from(
        "| Variable | Type | Default | Flag | Read by | Description |\n|----------|------|---------|------|---------|-------------|\n",
    );
    let flags = serve_flags(&facts.defaults);
    let kinds: BTreeMap<&str, &str> = flags.iter().filter_map(|f| f.env.as_deref().map(|e| (e, f.kind))).collect();
    for v in env_vars(&facts.defaults) {
        let commands: Vec<String> = v.commands.iter().map(|c| format!("`plinth {c}`")).collect();
        let kind = kinds.get(v.name.as_str()).copied().unwrap_or("string");
        let default = flags
            .iter()
            .find(|f| f.env.as_ref() == Some(&v.name))
            .map_or_else(|| format!("`{}`", cell(&v.default)), default_cell);
        let _ =
            writeln!(out, "| `{}` | {kind} | {default} | `{}` | {} | {} |", v.name, v.flag, commands.join(", "), cell(&v.help));
    }
    let read = facts.file_variables();
    if read.is_empty() {
        out.push_str("\nThe component file refers to no other environment variable.\n");
    } else {
        out.push_str("\nThe component file refers to these variables, read when `plinth serve` starts (an unset one stops it with `PLINTH_001`):\n\n| Variable | Read for |\n|----------|----------|\n");
        for (name, what) in read {
            let _ = writeln!(out, "| `{name}` | {} |", cell(&what));
        }
    }
    out
}

/// `config-precedence`: which source wins, as `config::resolve` merges them.
pub(crate) fn precedence(_: &Facts<'_>) -> String {
    let mut out = String::new();
    for (i, source) in PRECEDENCE.iter().enumerate() {
        let _ = writeln!(out, "{}. {}", i + 1, describe(*source));
    }
    out.push_str("\nA value is taken from the first source that gives it; each is validated after merging, and an invalid one stops `plinth serve` with `PLINTH_001` naming the setting and its source.\n");
    out
}

/// The sources of a setting, the strongest first.
pub(crate) const PRECEDENCE: [Source; 4] = [Source::Flag, Source::Env, Source::File, Source::Default];

fn describe(source: Source) -> &'static str {
    match source {
        Source::Flag => "Command-line flags, such as `--port 9000` (highest priority)",
        Source::Env => "Environment variables, such as `PLINTH_PORT=9000`",
        Source::File => "The component file's `server:` section, such as `server: {port: 9000}`",
        Source::Default => "Plinth's defaults, the Default column above (lowest priority)",
    }
}

/// `config-file`: what the component file's `server:` section sets, and its access control.
pub(crate) fn config_file(facts: &Facts<'_>) -> String {
    let mut out = String::new();
    let set = facts.file_settings();
    if set.is_empty() {
        out.push_str("The component file's `server:` section sets nothing: every setting is Plinth's default unless a flag or variable gives it.\n");
    } else {
        out.push_str("The component file's `server:` section sets:\n\n| Setting | Value | Plinth's default | Flag |\n|---------|-------|------------------|------|\n");
        let flags = serve_flags(&facts.defaults);
        for (name, value) in set {
            let flag = flags.iter().find(|f| f.id == name);
            let default = flag.map_or_else(|| "none".into(), |f| f.default.clone());
            let long = flag.map_or_else(|| "none".into(), |f| format!("`{}`", f.long));
            let _ = writeln!(out, "| `server.{name}` | `{}` | `{}` | {long} |", cell(&value), cell(&default));
        }
    }
    out.push('\n');
    out.push_str(&facts.access_summary());
    out
}
