//! Who may see the dashboard and act from it.
//!
//! Without `auth:` anyone may (as with the API). With it, a caller needs `runs:read` to look
//! and `runs:write` to act: a credential in the request's headers (as for the API), or a
//! session cookie from the login page, signed by the server (`HttpOnly`, `SameSite=Strict`,
//! `Secure` behind TLS), good for [`SESSION_HOURS`]. Every action also needs its form's token
//! (the same random value as the `plinth_csrf` cookie) and a same-origin request.

use crate::Ui;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, Key, SameSite, SignedCookieJar};
use plinth_core::component::auth::Scope;
use plinth_core::timefmt::now_micros;
use plinth_server::Denied;
use serde::{Deserialize, Serialize};

/// How long a session lasts.
pub(crate) const SESSION_HOURS: i64 = 12;
const SESSION_COOKIE: &str = "plinth_session";
const CSRF_COOKIE: &str = "plinth_csrf";

/// The caller of a dashboard request, as the pages need it.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    /// Who: the API key's name or the token's subject (`None` without `auth:`).
    pub(crate) name: Option<String>,
    /// Whether it may cancel, rerun and start runs.
    pub(crate) can_write: bool,
    /// The token every action's form must carry.
    pub(crate) csrf: String,
}

/// What the session cookie holds (signed, so it cannot be changed).
#[derive(Serialize, Deserialize)]
struct Claims {
    /// The caller's name.
    n: String,
    /// Whether it may act.
    w: bool,
    /// When the session ends (micros).
    e: i64,
}

/// The key that signs session cookies: from the configured secret (stretched with SHA-512),
/// or random.
pub(crate) fn key(secret: Option<&[u8]>) -> Key {
    use sha2::Digest;
    match secret {
        Some(s) => Key::from(&sha2::Sha512::digest(s)),
        None => Key::generate(),
    }
}

/// A new random token, 128 bits in hex.
fn token() -> String {
    let mut bytes = [0_u8; 16];
    // Why: without the OS generator no token can be trusted; an empty one refuses every action.
    if getrandom::fill(&mut bytes).is_err() {
        tracing::error!("the OS random generator failed; dashboard actions are refused");
        return String::new();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the request came over TLS (as a proxy in front says).
fn over_tls(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// A POST from another site: a `Sec-Fetch-Site` other than `same-origin`, or an `Origin`
/// whose host is not this request's `Host`.
fn cross_site(headers: &HeaderMap) -> bool {
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if site.is_some_and(|s| s != "same-origin") {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => false,
        Some(origin) => origin.split_once("://").map(|(_, h)| h) != host,
    }
}

/// Names the caller and lets it through, or answers: a sign-in redirect (pages) or 401/403.
pub(crate) async fn guard(State(ui): State<Ui>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let headers = req.headers().clone();
    if req.method() == Method::POST && cross_site(&headers) {
        tracing::info!(reason = "dashboard_cross_site", "action refused");
        return ui.error(StatusCode::FORBIDDEN, "Refused", "This action came from another site.".to_string());
    }
    let known_csrf = cookie_value(&headers, CSRF_COOKIE).filter(|t| t.len() == 32).map(str::to_string);
    let csrf = known_csrf.clone().unwrap_or_else(token);
    let open = path.starts_with("/assets/") || path == "/login";
    let session = match ui.app.auth.as_deref() {
        None => Some(Session { name: None, can_write: true, csrf: csrf.clone() }),
        Some(auth) => match auth.grants(&headers, Scope::RunsRead) {
            Ok((name, scopes)) => {
                let can_write = scopes.iter().any(|s| matches!(s, Scope::RunsWrite | Scope::Admin));
                Some(Session { name: Some(name), can_write, csrf: csrf.clone() })
            }
            Err(Denied::Forbidden(why)) => {
                tracing::info!(reason = "dashboard_missing_scope", "access denied");
                return ui.error(StatusCode::FORBIDDEN, "Not allowed", format!("The dashboard needs runs:read: {why}."));
            }
            Err(Denied::Unauthenticated(_)) => {
                from_cookie(&ui, &headers).map(|c| Session { name: Some(c.n), can_write: c.w, csrf: csrf.clone() })
            }
        },
    };
    let Some(session) = session.or_else(|| open.then(|| Session { name: None, can_write: false, csrf: csrf.clone() })) else {
        let had_cookie = cookie_value(&headers, SESSION_COOKIE).is_some();
        tracing::info!(
            reason = if had_cookie { "dashboard_session_invalid" } else { "dashboard_unauthenticated" },
            "access denied"
        );
        if req.method() == Method::GET {
            let why = if had_cookie { "?expired=1" } else { "" };
            return Redirect::to(&format!("{}/login{why}", ui.base)).into_response();
        }
        return ui.error(StatusCode::UNAUTHORIZED, "Sign-in needed", "Sign in to act from the dashboard.".to_string());
    };
    req.extensions_mut().insert(session);
    let mut response = next.run(req).await;
    if known_csrf.is_none() {
        let cookie = format!(
            "{CSRF_COOKIE}={csrf}; Path={}; HttpOnly; SameSite=Strict{}",
            ui.base,
            if over_tls(&headers) { "; Secure" } else { "" }
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// The claims of a valid, unexpired session cookie.
fn from_cookie(ui: &Ui, headers: &HeaderMap) -> Option<Claims> {
    let jar = SignedCookieJar::from_headers(headers, ui.key.clone());
    let claims: Claims = serde_json::from_str(jar.get(SESSION_COOKIE)?.value()).ok()?;
    (claims.e > now_micros()).then_some(claims)
}

/// Whether `form_token` is this caller's action token.
pub(crate) fn token_matches(session: &Session, form_token: &str) -> bool {
    use subtle::ConstantTimeEq;
    !session.csrf.is_empty()
        && session.csrf.len() == form_token.len()
        && bool::from(session.csrf.as_bytes().ct_eq(form_token.as_bytes()))
}

/// Signs in: checks `credential` (an API key or a token) for `runs:read` and answers the
/// session cookie, or why not.
pub(crate) fn sign_in(ui: &Ui, headers: &HeaderMap, credential: &str) -> Result<HeaderValue, (StatusCode, String)> {
    let Some(auth) = ui.app.auth.as_deref() else {
        return Err((StatusCode::NOT_FOUND, "This dashboard has no access control: there is nothing to sign in to.".to_string()));
    };
    let mut asked = HeaderMap::new();
    let bearer = HeaderValue::from_str(&format!("Bearer {}", credential.trim()))
        .map_err(|_| (StatusCode::UNAUTHORIZED, "That credential is not valid.".to_string()))?;
    asked.insert(header::AUTHORIZATION, bearer);
    let (name, scopes) = auth.grants(&asked, Scope::RunsRead).map_err(|d| match d {
        Denied::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "That credential is not valid.".to_string()),
        Denied::Forbidden(_) => {
            (StatusCode::FORBIDDEN, "That credential lacks runs:read, which the dashboard needs.".to_string())
        }
    })?;
    let claims = Claims {
        n: name.clone(),
        w: scopes.iter().any(|s| matches!(s, Scope::RunsWrite | Scope::Admin)),
        e: now_micros() + SESSION_HOURS * 3_600_000_000,
    };
    let mut cookie = Cookie::new(SESSION_COOKIE, serde_json::to_string(&claims).unwrap_or_default());
    cookie.set_path(ui.base.clone());
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Strict);
    cookie.set_secure(over_tls(headers));
    let jar = SignedCookieJar::new(ui.key.clone()).add(cookie);
    let set = jar.into_response();
    tracing::info!(principal = %name, "dashboard sign-in");
    set.headers().get(header::SET_COOKIE).cloned().ok_or((StatusCode::INTERNAL_SERVER_ERROR, "no cookie".to_string()))
}

/// The header that ends the session.
pub(crate) fn sign_out(ui: &Ui) -> HeaderValue {
    HeaderValue::from_str(&format!("{SESSION_COOKIE}=; Path={}; HttpOnly; SameSite=Strict; Max-Age=0", ui.base))
        .unwrap_or_else(|_| HeaderValue::from_static("plinth_session=; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn requests_from_other_sites_are_told_apart() {
        assert!(!cross_site(&headers(&[])), "a client without browser headers relies on the token");
        assert!(!cross_site(&headers(&[("sec-fetch-site", "same-origin"), ("origin", "http://h:8000"), ("host", "h:8000")])));
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(cross_site(&headers(&[("sec-fetch-site", "same-site")])), "a sibling subdomain is another site");
        assert!(cross_site(&headers(&[("origin", "http://evil.example"), ("host", "h:8000")])));
        assert!(cross_site(&headers(&[("origin", "null"), ("host", "h:8000")])), "an opaque origin");
    }

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let (a, b) = (token(), token());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        let s = Session { name: None, can_write: true, csrf: a.clone() };
        assert!(token_matches(&s, &a));
        assert!(!token_matches(&s, &b));
        assert!(!token_matches(&s, &a[..31]));
        assert!(!token_matches(&Session { csrf: String::new(), ..s }, ""), "an empty token never matches");
        assert_eq!(cookie_value(&headers(&[("cookie", "a=1; plinth_csrf=xyz; b=2")]), "plinth_csrf"), Some("xyz"));
        assert_eq!(cookie_value(&headers(&[("cookie", "a=1")]), "plinth_csrf"), None);
    }
}
