//! Access control: API keys and JWT bearer tokens with the scopes `runs:write`, `runs:read` and
//! `admin`, checked by a middleware before any handler runs.
//!
//! A credential comes in `Authorization: Bearer TOKEN` (a token with two dots is a JWT when JWTs
//! are configured, anything else an API key) or in `X-API-Key: KEY`. Credentials in the query
//! string are refused on every route. Keys and tokens are never logged: failures log only a
//! reason category, inside the request's span (which carries the correlation id).

mod jwt;
mod keys;

use crate::AppState;
use crate::problem::ApiError;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use plinth_core::component::Component;
use plinth_core::component::auth::Scope;
use plinth_core::{Code, ConfigError};
use std::borrow::Cow;

static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Query parameters that carry credentials; refused whatever the route.
pub(crate) const QUERY_CREDENTIALS: [&str; 5] = ["api_key", "apikey", "key", "token", "access_token"];

/// Routes open to anyone whatever `public` says: the error catalog and the API description.
const ALWAYS_PUBLIC: [&str; 3] = ["/errors", "/errors/{code}", "/openapi.json"];

/// How the caller proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CredentialKind {
    /// An API key.
    ApiKey,
    /// A JWT bearer token.
    Jwt,
    /// The token of a command attempt running on this node (`events:write` only).
    RunToken,
}

impl CredentialKind {
    const fn as_str(self) -> &'static str {
        match self {
            CredentialKind::ApiKey => "api_key",
            CredentialKind::Jwt => "jwt",
            CredentialKind::RunToken => "run_token",
        }
    }
}

/// The authenticated caller, put in the request's extensions for the handlers and limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Principal {
    /// The API key's name, or the JWT's `sub`.
    pub(crate) name: String,
    /// What it may do.
    pub(crate) scopes: Vec<Scope>,
    /// How it authenticated.
    pub(crate) kind: CredentialKind,
}

impl Principal {
    /// Whether it holds `scope` (or `admin`).
    pub(crate) fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }
}

/// Why a credential was refused: a category for the logs, a sentence for the client.
#[derive(Debug)]
pub(crate) struct Refusal {
    reason: &'static str,
    detail: Cow<'static, str>,
    /// Whether a credential was sent at all (RFC 6750: no `error` attribute when none was).
    presented: bool,
}

impl Refusal {
    fn invalid(reason: &'static str, detail: impl Into<Cow<'static, str>>) -> Self {
        Self { reason, detail: detail.into(), presented: true }
    }
}

/// Why [`Auth::grants`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No credential, or one that is not valid.
    Unauthenticated(String),
    /// A valid credential without the scope.
    Forbidden(String),
}

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// Nothing.
    Public,
    /// Any valid credential.
    Authenticated,
    /// A credential with this scope (or `admin`).
    Scope(Scope),
}

/// The configured credentials and public routes.
pub struct Auth {
    keys: Vec<keys::ApiKey>,
    jwt: Option<jwt::JwtVerifier>,
    public: Vec<String>,
}

impl std::fmt::Debug for Auth {
    // Why: digests and secrets stay out of any debug output; names and counts are enough.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("api_keys", &self.keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>())
            .field("jwt", &self.jwt_algorithm())
            .field("public", &self.public)
            .finish()
    }
}

impl Auth {
    /// The access control the component's `auth:` section asks for, reading keys and secrets
    /// from the environment (`env`) and from files relative to the component's folder; `None`
    /// when the section is absent (every route open).
    ///
    /// # Errors
    /// `PLINTH_001` naming the field when a variable is unset, a file unreadable, or a key or
    /// secret unfit (too short, not a public RSA key of 2048 bits at least).
    pub fn from_component(component: &Component, env: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        let Some(section) = &component.file.auth else { return Ok(None) };
        let src = component.path.display().to_string();
        let keys = keys::resolve(&section.api_keys, &component.base_dir, &src, &env)?;
        let jwt = match &section.jwt {
            Some(spec) => Some(jwt::JwtVerifier::new(spec, &component.base_dir, &src, &env)?),
            None => None,
        };
        Ok(Some(Self { keys, jwt, public: section.public.clone() }))
    }

    /// Access control with no credential at all, only these public routes: enough to say what
    /// each route needs (the OpenAPI document written without a server).
    pub(crate) fn describing(public: Vec<String>) -> Self {
        Self { keys: Vec::new(), jwt: None, public }
    }

    /// How many API keys are configured.
    #[must_use]
    pub fn api_key_count(&self) -> usize {
        self.keys.len()
    }

    /// `HS256` or `RS256` when JWTs are accepted.
    #[must_use]
    pub fn jwt_algorithm(&self) -> Option<&'static str> {
        self.jwt.as_ref().map(jwt::JwtVerifier::algorithm)
    }

    /// What a `method` request for `path`, matched to the route `template`, needs.
    pub(crate) fn need(&self, method: &axum::http::Method, template: Option<&str>, path: &str) -> Need {
        let listed = |p: &str| self.public.iter().any(|q| q == p);
        if listed(path) || template.is_some_and(|t| listed(t) || ALWAYS_PUBLIC.contains(&t)) {
            return Need::Public;
        }
        match template {
            Some("/events") if method == axum::http::Method::POST => Need::Scope(Scope::EventsWrite),
            Some("/run" | "/runs/{id}/cancel" | "/runs/{id}/rerun") => Need::Scope(Scope::RunsWrite),
            Some(
                "/runs"
                | "/runs/{id}"
                | "/runs/{id}/logs"
                | "/runs/{id}/steps"
                | "/functions"
                | "/functions/{name}/keys"
                | "/events"
                | "/events/{id}",
            ) => Need::Scope(Scope::RunsRead),
            _ => Need::Authenticated,
        }
    }

    /// Whether the credential in `headers` is valid and grants `scope` (or `admin`): the
    /// caller's name and scopes, or a sentence saying why not. For routes outside the API's own
    /// (the dashboard), which answer in their own way.
    ///
    /// # Errors
    /// [`Denied::Unauthenticated`] without a valid credential, [`Denied::Forbidden`] without
    /// the scope.
    pub fn grants(&self, headers: &HeaderMap, scope: Scope) -> Result<(String, Vec<Scope>), Denied> {
        let principal = self.authenticate(headers).map_err(|r| Denied::Unauthenticated(r.detail.into_owned()))?;
        if !principal.allows(scope) {
            return Err(Denied::Forbidden(format!("the credential `{}` lacks the scope `{}`", principal.name, scope.as_str())));
        }
        Ok((principal.name, principal.scopes))
    }

    /// The caller the request's credential names.
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Refusal> {
        let one = |name: &HeaderName| {
            let mut values = headers.get_all(name).iter();
            match (values.next(), values.next()) {
                (None, _) => Ok(None),
                (Some(v), None) => v
                    .to_str()
                    .map(|v| Some(v.trim()))
                    .map_err(|_| Refusal::invalid("malformed", "the credential header is not visible ASCII")),
                (Some(_), Some(_)) => Err(Refusal::invalid("malformed", "send one credential header, not several")),
            }
        };
        match (one(&header::AUTHORIZATION)?, one(&X_API_KEY)?) {
            (None, None) => Err(Refusal {
                reason: "missing",
                detail: "this endpoint needs a credential: `Authorization: Bearer TOKEN` or `X-API-Key: KEY`".into(),
                presented: false,
            }),
            (Some(_), Some(_)) => Err(Refusal::invalid("malformed", "send either Authorization or X-API-Key, not both")),
            (None, Some(key)) => keys::find(&self.keys, key),
            (Some(value), None) => {
                let token = value
                    .split_once(' ')
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, token)| token.trim())
                    .filter(|token| !token.is_empty())
                    .ok_or_else(|| Refusal::invalid("malformed", "the Authorization header must be `Bearer TOKEN`"))?;
                match &self.jwt {
                    Some(jwt) if token.bytes().filter(|b| *b == b'.').count() == 2 => {
                        if token.len() > keys::MAX_KEY_LEN * 4 {
                            return Err(Refusal::invalid("malformed", "the bearer token is too long"));
                        }
                        jwt.verify(token)
                    }
                    _ => keys::find(&self.keys, token),
                }
            }
        }
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The credential-carrying parameter a query string has, if any (names compared decoded and
/// case-insensitively).
pub(crate) fn credential_in_query(query: Option<&str>) -> Option<&'static str> {
    query?.split('&').find_map(|pair| {
        let name = percent_decode(pair.split('=').next().unwrap_or(""));
        QUERY_CREDENTIALS.iter().copied().find(|c| name.trim().eq_ignore_ascii_case(c))
    })
}

fn www_authenticate(value: String) -> HeaderValue {
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

fn unauthenticated(refusal: Refusal) -> ApiError {
    let challenge =
        if refusal.presented { r#"Bearer realm="plinth", error="invalid_token""# } else { r#"Bearer realm="plinth""# };
    ApiError::new(Code::Unauthenticated, refusal.detail).with_header(header::WWW_AUTHENTICATE, www_authenticate(challenge.into()))
}

fn forbidden(scope: Scope, principal: &Principal) -> ApiError {
    let held: Vec<&str> = principal.scopes.iter().map(|s| s.as_str()).collect();
    let held = if held.is_empty() { "none".to_string() } else { held.join(", ") };
    ApiError::new(
        Code::Forbidden,
        format!("this endpoint needs the `{}` scope (or `admin`); the credential holds: {held}", scope.as_str()),
    )
    .with_header(
        header::WWW_AUTHENTICATE,
        www_authenticate(format!(r#"Bearer realm="plinth", error="insufficient_scope", scope="{}""#, scope.as_str())),
    )
}

/// The caller, when the request's credential is the live token of a command attempt running on
/// this node: it may send events (`events:write`) and nothing else.
fn run_token(state: &AppState, headers: &axum::http::HeaderMap) -> Option<Principal> {
    let tokens = state.run_tokens.as_deref()?;
    let presented = headers.get(&X_API_KEY).or_else(|| headers.get(header::AUTHORIZATION))?.to_str().ok()?.trim();
    let token = presented.strip_prefix("Bearer ").or_else(|| presented.strip_prefix("bearer ")).unwrap_or(presented).trim();
    let run_id = tokens.run_of(token)?;
    Some(Principal { name: format!("run:{run_id}"), scopes: vec![Scope::EventsWrite], kind: CredentialKind::RunToken })
}

/// The check in front of the API (see [`crate::check::Check`]): refuses credentials in the
/// query, then checks the route's need; `None` lets the request through, with its principal.
pub(crate) fn enforce(state: &AppState, req: &mut Request) -> Option<Response> {
    let auth = state.auth.as_deref()?;
    if let Some(name) = credential_in_query(req.uri().query()) {
        tracing::info!(reason = "credentials_in_query", "request refused");
        return Some(
            ApiError::new(
                Code::CredentialsInQuery,
                format!("the query parameter `{name}` carries credentials; send them in the Authorization or X-API-Key header"),
            )
            .into_response(),
        );
    }
    let need = auth.need(req.method(), req.extensions().get::<MatchedPath>().map(MatchedPath::as_str), req.uri().path());
    if need == Need::Public {
        return None;
    }
    let principal = match run_token(state, req.headers()).map_or_else(|| auth.authenticate(req.headers()), Ok) {
        Ok(p) => p,
        Err(refusal) => {
            tracing::info!(reason = refusal.reason, "authentication failed");
            return Some(unauthenticated(refusal).into_response());
        }
    };
    if let Need::Scope(scope) = need
        && !principal.allows(scope)
    {
        tracing::info!(reason = "missing_scope", scope = scope.as_str(), "access denied");
        return Some(forbidden(scope, &principal).into_response());
    }
    tracing::debug!(principal = %principal.name, credential = principal.kind.as_str(), "authenticated");
    req.extensions_mut().insert(principal);
    None
}

#[cfg(test)]
mod tests;
