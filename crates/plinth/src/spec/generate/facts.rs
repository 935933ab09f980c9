//! What the blocks are made from: the component, the OpenAPI document `plinth_server` builds
//! for it, and Plinth's defaults as `config::resolve` applies them.

use crate::cli::ServeArgs;
use crate::config::Shown;
use plinth_core::component::auth::KeySource;
use plinth_core::component::{Component, HandlerKind, ServerSection};
use serde_json::Value;

/// Everything a block is rendered from.
pub(crate) struct Facts<'a> {
    pub(crate) component: &'a Component,
    /// `GET /openapi.json` as the component's server would answer it.
    pub(crate) openapi: Value,
    /// Each setting of `plinth serve` at Plinth's default.
    pub(crate) defaults: Vec<Shown>,
}

impl<'a> Facts<'a> {
    pub(crate) fn new(component: &'a Component) -> Self {
        Self { component, openapi: plinth_server::openapi_document(component), defaults: defaults(component) }
    }

    /// The metric name prefix the component file gives, else Plinth's default.
    pub(crate) fn metrics_prefix(&self) -> String {
        self.component.file.server.metrics_prefix.clone().unwrap_or_else(|| self.default_of("metrics_prefix"))
    }

    /// Plinth's default of the setting `name`.
    pub(crate) fn default_of(&self, name: &str) -> String {
        self.defaults.iter().find(|s| s.name == name).map(|s| s.value.clone()).unwrap_or_default()
    }

    /// The settings the component file's `server:` section gives, as written, in field order.
    pub(crate) fn file_settings(&self) -> Vec<(String, String)> {
        let Ok(Value::Object(section)) = serde_json::to_value(&self.component.file.server) else { return Vec::new() };
        section
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_string)))
            .collect()
    }

    /// The environment variables the component file refers to, each with what it is read for.
    pub(crate) fn file_variables(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for f in &self.component.file.functions {
            if let Some(HandlerKind::Http(h)) = f.handler.get() {
                for (header, value) in &h.headers {
                    for name in references(value) {
                        out.push((name, format!("the `{header}` header sent to the `{}` handler", f.name)));
                    }
                }
            }
        }
        if let Some(auth) = &self.component.file.auth {
            for key in &auth.api_keys {
                if let Some(KeySource::Env(name)) = key.source() {
                    out.push((name.to_string(), format!("the API key `{}`", key.name)));
                }
            }
            if let Some(name) = auth.jwt.as_ref().and_then(|j| j.hs256_secret_env.as_ref()) {
                out.push((name.clone(), "the HS256 secret that verifies JWTs".into()));
            }
        }
        out
    }

    /// One paragraph on the component's access control.
    pub(crate) fn access_summary(&self) -> String {
        let Some(auth) = &self.component.file.auth else {
            return "Access control: none. The component file has no `auth:` section, so every route is open.\n".into();
        };
        let mut out = String::from("Access control: the `auth:` section asks for a credential on every route outside ");
        let public: Vec<String> = auth.public.iter().map(|p| format!("`{p}`")).collect();
        out.push_str(&if public.is_empty() { "none (`public: []`)".to_string() } else { public.join(", ") });
        out.push_str(" (`/errors`, `/errors/{code}` and `/openapi.json` are always public).");
        for key in &auth.api_keys {
            let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
            let source = match key.source() {
                Some(KeySource::Sha256(_)) => "its SHA-256 digest in the file".to_string(),
                Some(KeySource::Env(e)) => format!("the variable `{e}`"),
                Some(KeySource::File(p)) => format!("the file `{}`", p.display()),
                None => "no source".into(),
            };
            out.push_str(&format!(" API key `{}` (from {source}) holds `{}`.", key.name, scopes.join("`, `")));
        }
        if let Some(jwt) = &auth.jwt {
            let alg = if jwt.rs256_public_key_file.is_some() { "RS256" } else { "HS256" };
            out.push_str(&format!(" JWTs ({alg}) must be issued by `{}` for the audience `{}`.", jwt.issuer, jwt.audience));
        }
        out.push('\n');
        out
    }
}

/// The names `${NAME}` refers to in `value`.
fn references(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        out.push(after[..end].to_string());
        rest = &after[end + 1..];
    }
    out
}

/// Each setting of `plinth serve` at Plinth's default: `config::resolve` with no flag, no
/// variable and an empty `server:` section, so the defaults shown are the ones applied.
fn defaults(component: &Component) -> Vec<Shown> {
    let mut bare = component.clone();
    bare.file.server = ServerSection::default();
    // Why: the defaults are constants that resolve; a unit test asserts it, so this never empties.
    crate::config::resolve(&ServeArgs::default(), None, &bare).map(|s| s.shown).unwrap_or_default()
}
