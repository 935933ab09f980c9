//! The `events:` section: where events come from besides `POST /events` (a NATS JetStream
//! stream) and where run ends are published.

use serde::{Deserialize, Serialize};

/// `events:` in component.yaml.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EventsSection {
    /// The NATS JetStream bridge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats: Option<NatsSection>,
}

/// `events.nats`: consume a JetStream stream as events; publish run ends.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NatsSection {
    /// The server, `nats://host:port`; `${NAME}` reads an environment variable (such as the
    /// template's `${DYNAMO_NATS_URL}`), and `PLINTH_NATS_URL` overrides it.
    pub url: String,
    /// The JetStream stream to consume (created with `subjects` when it does not exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The subjects the stream holds, e.g. `shop.>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// The durable consumer's name, shared by every node (they split the messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durable: Option<String>,
    /// Publishing each run's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<NatsPublish>,
}

/// `events.nats.publish`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NatsPublish {
    /// Run ends go to `<subject_prefix>.<component>.run.succeeded|failed|cancelled`.
    pub subject_prefix: String,
}

/// Whether `name` may name a stream or a consumer: 1 to 64 of letters, digits, `_` and `-`.
fn is_nats_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Whether `subject` is a NATS subject (wildcards allowed when `wild`).
fn is_subject(subject: &str, wild: bool) -> bool {
    let tokens: Vec<&str> = subject.split('.').collect();
    let last = tokens.len() - 1;
    tokens.iter().enumerate().all(|(i, t)| {
        !t.is_empty()
            && !t.chars().any(|c| c.is_whitespace() || c.is_control())
            && (wild || (*t != "*" && *t != ">"))
            && (*t != ">" || i == last)
            && (t.len() == 1 || !t.contains(['*', '>']))
    })
}

impl NatsSection {
    /// Checks the section; `(field, reason)` relative to `events.nats`.
    ///
    /// # Errors
    /// The first field that is missing or invalid.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.url.trim().is_empty() {
            return Err(("url".into(), "must name the server, e.g. nats://127.0.0.1:4222".into()));
        }
        let consuming = self.stream.is_some() || self.durable.is_some() || !self.subjects.is_empty();
        if consuming {
            match &self.stream {
                Some(s) if is_nats_name(s) => {}
                Some(s) => return Err(("stream".into(), format!("`{s}` must be 1 to 64 letters, digits, _ or -"))),
                None => return Err(("stream".into(), "is needed to consume events".into())),
            }
            match &self.durable {
                Some(d) if is_nats_name(d) => {}
                Some(d) => return Err(("durable".into(), format!("`{d}` must be 1 to 64 letters, digits, _ or -"))),
                None => return Err(("durable".into(), "is needed to consume events (every node shares it)".into())),
            }
            if self.subjects.is_empty() {
                return Err(("subjects".into(), "give at least one subject, e.g. shop.>".into()));
            }
            if let Some((i, s)) = self.subjects.iter().enumerate().find(|(_, s)| !is_subject(s, true)) {
                return Err((format!("subjects[{i}]"), format!("`{s}` is not a NATS subject")));
            }
        } else if self.publish.is_none() {
            return Err(("stream".into(), "give a stream to consume, or `publish`, or both".into()));
        }
        if let Some(p) = &self.publish
            && !is_subject(&p.subject_prefix, false)
        {
            return Err(("publish.subject_prefix".into(), format!("`{}` is not a subject without wildcards", p.subject_prefix)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(yaml: &str) -> NatsSection {
        serde_yaml_ng::from_str(yaml).expect("yaml")
    }

    #[test]
    fn a_full_section_is_valid() {
        let s = section(
            "{url: 'nats://127.0.0.1:4222', stream: SHOP, subjects: ['shop.>', 'billing.*.paid'], durable: plinth-shop, publish: {subject_prefix: plinth.ends}}",
        );
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(section("{url: x, publish: {subject_prefix: p}}").validate(), Ok(()), "publish only");
    }

    #[test]
    fn missing_and_invalid_fields_are_named() {
        let field = |yaml: &str| section(yaml).validate().expect_err("invalid").0;
        assert_eq!(field("{url: ' ', stream: S, subjects: [a], durable: d}"), "url");
        assert_eq!(field("{url: x}"), "stream");
        assert_eq!(field("{url: x, subjects: [a], durable: d}"), "stream");
        assert_eq!(field("{url: x, stream: 'S.1', subjects: [a], durable: d}"), "stream");
        assert_eq!(field("{url: x, stream: S, subjects: [a]}"), "durable");
        assert_eq!(field("{url: x, stream: S, durable: d}"), "subjects");
        assert_eq!(field("{url: x, stream: S, durable: d, subjects: ['a.>.b']}"), "subjects[0]");
        assert_eq!(field("{url: x, stream: S, durable: d, subjects: ['a..b']}"), "subjects[0]");
        assert_eq!(field("{url: x, publish: {subject_prefix: 'p.*'}}"), "publish.subject_prefix");
    }
}
