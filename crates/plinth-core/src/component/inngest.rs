//! The `inngest:` section: what lets code written with Inngest's SDKs talk to Plinth. Today, the
//! event API (`POST /e/{event_key}`) that `inngest.Inngest(...).send()` calls.

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
}

impl InngestSection {
    /// Checks the names; `(field, reason)` on the first problem.
    ///
    /// # Errors
    /// The field and why.
    pub fn validate(&self) -> Result<(), (String, String)> {
        match &self.event_key_env {
            Some(name) if !super::auth::is_env_name(name) => Err((
                "event_key_env".into(),
                format!("`{name}` is not an environment variable name (letters, digits and _, not starting with a digit)"),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(InngestSection { event_key_env: Some("INNGEST_EVENT_KEY".into()) }.validate(), Ok(()));
        assert_eq!(InngestSection::default().validate(), Ok(()));
        let bad = InngestSection { event_key_env: Some("not a name".into()) }.validate();
        assert_eq!(bad.map_err(|(f, _)| f), Err("event_key_env".to_string()));
        assert!(InngestSection { event_key_env: Some("1KEY".into()) }.validate().is_err());
    }
}
