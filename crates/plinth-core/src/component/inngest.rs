//! The `inngest:` section: what lets code written with Inngest's SDKs talk to Plinth: the apps to
//! sync, the event key of the event API (`POST /e/{event_key}`) and the signing key.

use serde::{Deserialize, Serialize};

/// `inngest:` in component.yaml.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct InngestSection {
    /// The environment variable holding the event key the SDK sends in `/e/{event_key}`
    /// (its `INNGEST_EVENT_KEY`). Unset: any key is taken, as Inngest's dev server does,
    /// unless `auth:` is configured, then every key is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_key_env: Option<String>,
    /// The apps to sync at start-up and on `plinth inngest sync`: each app's serve URL (e.g.
    /// `http://127.0.0.1:8000/api/inngest`). Plinth sends it a `PUT`; the app answers by
    /// registering its functions with `POST /fn/register`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<String>,
    /// The environment variable holding the apps' signing key (their `INNGEST_SIGNING_KEY`).
    /// Set: Plinth signs its calls and sync requests, checks the signature of every answer, and
    /// takes `POST /fn/register` only with the key's Bearer hash (apps in production mode).
    /// Unset: nothing is signed, as with Inngest's dev server (apps with `INNGEST_DEV`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key_env: Option<String>,
}

impl InngestSection {
    /// Checks the names; `(field, reason)` on the first problem.
    ///
    /// # Errors
    /// The field and why.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (field, name) in [("event_key_env", &self.event_key_env), ("signing_key_env", &self.signing_key_env)] {
            if let Some(name) = name.as_ref().filter(|n| !super::auth::is_env_name(n)) {
                return Err((
                    field.into(),
                    format!("`{name}` is not an environment variable name (letters, digits and _, not starting with a digit)"),
                ));
            }
        }
        for (i, url) in self.apps.iter().enumerate() {
            let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
            if rest.is_none_or(|r| r.split(['/', '?', '#']).next().is_none_or(str::is_empty)) {
                return Err((format!("apps[{i}]"), format!("`{url}` must be an absolute http:// or https:// URL with a host")));
            }
            if self.apps[..i].contains(url) {
                return Err((format!("apps[{i}]"), format!("`{url}` is listed twice")));
            }
        }
        Ok(())
    }
}

/// `handler: {inngest: {url}}`: a function of an app built with an Inngest SDK. Plinth calls it
/// over the SDK's protocol; `plinth serve` writes these for the functions an app registers.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct InngestHandler {
    /// The function's address in the app, `fnId` in its query, as the app registers it
    /// (e.g. `http://127.0.0.1:8000/api/inngest?fnId=shop-order-flow&stepId=step`).
    pub url: String,
}

impl InngestHandler {
    /// Checks the URL and that the function is declared with steps; `(field suffix, reason)`.
    ///
    /// # Errors
    /// Where and why.
    pub fn validate(&self, steps: bool) -> Result<(), (String, String)> {
        let rest = self.url.strip_prefix("http://").or_else(|| self.url.strip_prefix("https://"));
        if rest.is_none_or(|r| r.split(['/', '?', '#']).next().is_none_or(str::is_empty)) {
            return Err((".url".into(), format!("`{}` must be an absolute http:// or https:// URL with a host", self.url)));
        }
        if !self.url.contains("fnId=") {
            return Err((".url".into(), format!("`{}` has no `fnId` in its query: which function of the app?", self.url)));
        }
        if !steps {
            return Err((String::new(), "an Inngest function is a step function: add `steps: true`".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        let key = |k: &str| InngestSection { event_key_env: Some(k.into()), ..InngestSection::default() };
        assert_eq!(key("INNGEST_EVENT_KEY").validate(), Ok(()));
        assert_eq!(InngestSection::default().validate(), Ok(()));
        assert_eq!(key("not a name").validate().map_err(|(f, _)| f), Err("event_key_env".to_string()));
        assert!(key("1KEY").validate().is_err());
        let signing = |k: &str| InngestSection { signing_key_env: Some(k.into()), ..InngestSection::default() };
        assert_eq!(signing("INNGEST_SIGNING_KEY").validate(), Ok(()));
        assert_eq!(signing("signing-key").validate().map_err(|(f, _)| f), Err("signing_key_env".to_string()));
        assert_eq!(signing("").validate().map_err(|(f, _)| f), Err("signing_key_env".to_string()));
        let apps =
            |a: &[&str]| InngestSection { apps: a.iter().map(|s| (*s).to_string()).collect(), ..InngestSection::default() };
        assert_eq!(apps(&["http://127.0.0.1:8000/api/inngest", "https://shop.internal/api/inngest"]).validate(), Ok(()));
        assert_eq!(apps(&["127.0.0.1:8000/api/inngest"]).validate().map_err(|(f, _)| f), Err("apps[0]".to_string()));
        assert_eq!(apps(&["http://a/x", "http://a/x"]).validate().map_err(|(f, _)| f), Err("apps[1]".to_string()), "twice");
    }

    #[test]
    fn an_inngest_handler_names_its_function_and_has_steps() {
        let h = |url: &str| InngestHandler { url: url.into() };
        assert_eq!(h("http://127.0.0.1:8000/api/inngest?fnId=shop-a&stepId=step").validate(true), Ok(()));
        assert_eq!(h("http://127.0.0.1:8000/api/inngest?fnId=shop-a").validate(false).map_err(|e| e.0), Err(String::new()));
        assert_eq!(h("127.0.0.1:8000/api/inngest?fnId=a").validate(true).map_err(|e| e.0), Err(".url".to_string()));
        assert_eq!(h("http:///x?fnId=a").validate(true).map_err(|e| e.0), Err(".url".to_string()));
        assert_eq!(h("http://h/api/inngest").validate(true).map_err(|e| e.0), Err(".url".to_string()), "no fnId");
    }
}
