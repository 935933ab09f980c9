//! The `auth:` section of component.yaml: API keys, JWT bearer tokens and the public routes.
//!
//! Only the shape is checked at load. Secrets are never in the file: a key is given as its
//! SHA-256 digest, or read from an environment variable or a file when the server starts
//! (plinth-server's `auth` module), so loading a component never reads a secret.

use crate::policy::DurationSpec;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A permission a credential carries. `admin` grants every other one.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Submit and cancel runs.
    #[serde(rename = "runs:write")]
    RunsWrite,
    /// Read runs, their logs and the function list.
    #[serde(rename = "runs:read")]
    RunsRead,
    /// Send events (`POST /events`); also given to each command run through its token.
    #[serde(rename = "events:write")]
    EventsWrite,
    /// Everything.
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [Scope::RunsWrite, Scope::RunsRead, Scope::EventsWrite, Scope::Admin];

    /// The scope as written, such as `runs:write`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::RunsWrite => "runs:write",
            Scope::RunsRead => "runs:read",
            Scope::EventsWrite => "events:write",
            Scope::Admin => "admin",
        }
    }

    /// The scope written as `text`, if it is one.
    #[must_use]
    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// The routes that need no credentials when `public` is not given.
pub const DEFAULT_PUBLIC: [&str; 3] = ["/health", "/ready", "/metrics"];

/// The default JWT clock-skew leeway.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// The largest JWT leeway accepted.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

fn default_public() -> Vec<String> {
    DEFAULT_PUBLIC.iter().map(|p| (*p).to_string()).collect()
}

fn default_leeway() -> DurationSpec {
    DurationSpec(DEFAULT_LEEWAY)
}

/// Access control: when present, every route outside `public` needs a credential.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// API keys, each with a name and scopes.
    #[serde(default)]
    pub api_keys: Vec<ApiKeySpec>,
    /// JWT bearer tokens.
    #[serde(default)]
    pub jwt: Option<JwtSpec>,
    /// Paths (or route templates such as `/runs/{id}`) open without credentials.
    #[serde(default = "default_public")]
    pub public: Vec<String>,
}

/// One API key: exactly one of `sha256`, `from_env` or `from_file` says where it comes from.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySpec {
    /// Who holds it, as logs and rate limits name the caller.
    pub name: String,
    /// The SHA-256 digest of the key, 64 hex characters (`printf %s KEY | sha256sum`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// An environment variable holding the raw key, read at start-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_env: Option<String>,
    /// A file holding the raw key (surrounding whitespace trimmed), relative to the component
    /// file's folder, read at start-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_file: Option<PathBuf>,
    /// What the key may do.
    pub scopes: Vec<Scope>,
}

/// Where an API key comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource<'a> {
    /// The key's SHA-256 digest in hex.
    Sha256(&'a str),
    /// An environment variable holding the key.
    Env(&'a str),
    /// A file holding the key.
    File(&'a Path),
}

impl ApiKeySpec {
    /// The one source this key names (validated at load, so `None` only for unchecked specs).
    #[must_use]
    pub fn source(&self) -> Option<KeySource<'_>> {
        match (&self.sha256, &self.from_env, &self.from_file) {
            (Some(h), None, None) => Some(KeySource::Sha256(h)),
            (None, Some(e), None) => Some(KeySource::Env(e)),
            (None, None, Some(f)) => Some(KeySource::File(f)),
            _ => None,
        }
    }
}

/// JWT bearer tokens: exactly one key source, and the issuer and audience every token must name.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct JwtSpec {
    /// An environment variable holding the HS256 shared secret (32 bytes at least).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hs256_secret_env: Option<String>,
    /// A file holding the HS256 shared secret (surrounding whitespace trimmed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hs256_secret_file: Option<PathBuf>,
    /// A PEM file holding the issuer's RSA public key (2048 bits at least); tokens are RS256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rs256_public_key_file: Option<PathBuf>,
    /// The `iss` every token must carry.
    pub issuer: String,
    /// A value the token's `aud` must hold.
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_leeway")]
    pub leeway: DurationSpec,
}

/// Where the JWT verification key comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwtKeySource<'a> {
    /// An HS256 secret in an environment variable.
    Hs256Env(&'a str),
    /// An HS256 secret in a file.
    Hs256File(&'a Path),
    /// An RSA public key (PEM) in a file.
    Rs256File(&'a Path),
}

impl JwtSpec {
    /// The one key source this spec names (validated at load).
    #[must_use]
    pub fn key_source(&self) -> Option<JwtKeySource<'_>> {
        match (&self.hs256_secret_env, &self.hs256_secret_file, &self.rs256_public_key_file) {
            (Some(e), None, None) => Some(JwtKeySource::Hs256Env(e)),
            (None, Some(f), None) => Some(JwtKeySource::Hs256File(f)),
            (None, None, Some(f)) => Some(JwtKeySource::Rs256File(f)),
            _ => None,
        }
    }
}

pub(crate) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_key_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.@:".contains(c))
}

fn check_file(path: &Path) -> Result<(), String> {
    if path.as_os_str().is_empty() { Err("must name a file".into()) } else { Ok(()) }
}

impl AuthSection {
    /// Checks the section.
    ///
    /// # Errors
    /// The field, relative to `auth` (such as `api_keys[0].sha256`; empty for the whole
    /// section), and the reason.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.api_keys.is_empty() && self.jwt.is_none() {
            return Err((String::new(), "give `api_keys`, `jwt` or both; remove `auth` to serve without access control".into()));
        }
        let mut names = std::collections::HashSet::new();
        for (i, k) in self.api_keys.iter().enumerate() {
            let at = |field: &str| format!("api_keys[{i}].{field}");
            if !is_key_name(&k.name) {
                return Err((at("name"), format!("`{}` must be 1 to 64 characters of a-z, A-Z, 0-9, _ - . @ :", k.name)));
            }
            if !names.insert(k.name.as_str()) {
                return Err((at("name"), format!("`{}` is declared twice", k.name)));
            }
            match k.source() {
                Some(KeySource::Sha256(h)) if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    return Err((at("sha256"), "must be 64 hex characters, the SHA-256 digest of the key".into()));
                }
                Some(KeySource::Env(e)) if !is_env_name(e) => {
                    return Err((at("from_env"), format!("`{e}` is not a valid environment variable name")));
                }
                Some(KeySource::File(f)) => check_file(f).map_err(|r| (at("from_file"), r))?,
                Some(_) => {}
                None => return Err((format!("api_keys[{i}]"), "give exactly one of `sha256`, `from_env` or `from_file`".into())),
            }
            if k.scopes.is_empty() {
                return Err((at("scopes"), "give at least one of runs:write, runs:read, events:write, admin".into()));
            }
        }
        if let Some(j) = &self.jwt {
            match j.key_source() {
                Some(JwtKeySource::Hs256Env(e)) if !is_env_name(e) => {
                    return Err(("jwt.hs256_secret_env".into(), format!("`{e}` is not a valid environment variable name")));
                }
                Some(JwtKeySource::Hs256File(f)) => check_file(f).map_err(|r| ("jwt.hs256_secret_file".into(), r))?,
                Some(JwtKeySource::Rs256File(f)) => check_file(f).map_err(|r| ("jwt.rs256_public_key_file".into(), r))?,
                Some(JwtKeySource::Hs256Env(_)) => {}
                None => {
                    return Err((
                        "jwt".into(),
                        "give exactly one of `hs256_secret_env`, `hs256_secret_file` or `rs256_public_key_file`".into(),
                    ));
                }
            }
            if j.issuer.trim().is_empty() {
                return Err(("jwt.issuer".into(), "must not be empty".into()));
            }
            if j.audience.trim().is_empty() {
                return Err(("jwt.audience".into(), "must not be empty".into()));
            }
            if j.leeway.get() > MAX_LEEWAY {
                return Err(("jwt.leeway".into(), format!("must be at most {}", DurationSpec(MAX_LEEWAY))));
            }
        }
        for (i, p) in self.public.iter().enumerate() {
            if !p.starts_with('/') || p.len() > 256 || p.contains(['?', '#']) || p.contains(char::is_whitespace) {
                return Err((format!("public[{i}]"), format!("`{p}` must be a path such as /health (no query, no spaces)")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
