//! Checks of a component's parts that are long enough to stand apart.

use super::HttpSpec;

/// Checks an HTTP handler: an absolute http(s) URL with a host, header names that are tokens,
/// values without line breaks.
pub(super) fn validate_http(h: &HttpSpec) -> Result<(), (&'static str, String)> {
    let rest = h.url.strip_prefix("http://").or_else(|| h.url.strip_prefix("https://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    if host.is_none_or(|host| host.is_empty() || host.contains(char::is_whitespace)) {
        return Err(("url", format!("`{}` must be an absolute http:// or https:// URL with a host", h.url)));
    }
    if h.timeout.is_some_and(|t| t.get().is_zero()) {
        return Err(("timeout", "must be more than 0".into()));
    }
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if let Some(name) = h.headers.keys().find(|k| k.is_empty() || !k.chars().all(token)) {
        return Err(("headers", format!("`{name}` is not a valid header name")));
    }
    if let Some(name) = h.headers.iter().find(|(_, v)| v.contains(['\r', '\n'])).map(|(k, _)| k) {
        return Err(("headers", format!("the value of `{name}` holds a line break")));
    }
    Ok(())
}
