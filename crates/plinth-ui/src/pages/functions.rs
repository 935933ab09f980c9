//! `/functions/{name}`: one function: its handler, triggers (with the next tick of each
//! schedule), policy, input schema, the keys with queued work, and its latest runs.

use super::runs::RunRow;
use super::{Chrome, html};
use crate::Ui;
use crate::access::Session;
use crate::view::{ago, when};
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use plinth_core::HandlerKind;
use plinth_core::timefmt::now_micros;
use plinth_store::ListFilter;

struct KeyRow {
    key: String,
    queued: u64,
    running: u64,
    waiting: u64,
    oldest: String,
}

#[derive(Template)]
#[template(path = "function.html")]
struct FunctionPage {
    chrome: Chrome,
    name: String,
    description: String,
    handler: String,
    triggers: Vec<String>,
    policy: String,
    schema: Option<String>,
    limited: bool,
    keys: Vec<KeyRow>,
    rows: Vec<RunRow>,
}

/// What runs the function, without what may be secret (a URL's query or credentials, a
/// command's arguments and environment).
pub(crate) fn handler(kind: Option<HandlerKind<'_>>) -> String {
    match kind {
        Some(HandlerKind::Command(c)) => format!("command {}", c.argv.first().map_or("", String::as_str)),
        Some(HandlerKind::Http(h)) => format!("HTTP POST {}", plain_url(&h.url)),
        Some(HandlerKind::Inngest(i)) => format!("Inngest SDK app {}", plain_url(&i.url)),
        Some(HandlerKind::Rust(name)) => format!("in-process handler {name}"),
        None => "none".to_string(),
    }
}

/// A URL without its query, fragment or credentials.
fn plain_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    match url.split_once("://").and_then(|(s, rest)| rest.split_once('@').map(|(_, host)| format!("{s}://{host}"))) {
        Some(without_user) => without_user,
        None => url.to_string(),
    }
}

/// `GET {base}/functions/{name}`.
pub(crate) async fn page(State(ui): State<Ui>, Extension(session): Extension<Session>, Path(name): Path<String>) -> Response {
    let component = ui.app.component.get();
    let Some((index, spec)) = component.function(&name) else {
        return ui.error(
            StatusCode::NOT_FOUND,
            "No such function",
            format!("The component has no function named \u{201c}{name}\u{201d}."),
        );
    };
    let now = now_micros();
    let mut triggers: Vec<String> = Vec::new();
    if let Some(compiled) = component.triggers.get(index) {
        for (event, cond) in &compiled.events {
            triggers.push(match cond {
                Some(c) => format!("event {event} when {}", c.source()),
                None => format!("event {event}"),
            });
        }
        for s in &compiled.schedules {
            let next = s.next_after(now).map(|t| format!(", next tick {} UTC", when(t))).unwrap_or_default();
            triggers.push(format!("schedule \u{201c}{}\u{201d} ({}){next}", s.pattern(), s.zone()));
        }
    }
    let limited = plinth_store::FlowLimit::of(&spec.policy).is_some();
    let keys = if limited {
        match ui.app.store.lanes(&name, 50, 0).await {
            Ok(lanes) => lanes
                .into_iter()
                .map(|l| KeyRow {
                    key: l.key,
                    queued: l.queued,
                    running: l.running,
                    waiting: l.waiting,
                    oldest: l.oldest_queued_at.map(|t| ago(t, now)).unwrap_or_default(),
                })
                .collect(),
            Err(e) => return ui.store_error(&e),
        }
    } else {
        Vec::new()
    };
    let recent = match ui.app.store.list(ListFilter { function: Some(name.clone()), limit: 20, ..ListFilter::default() }).await {
        Ok(p) => p.runs,
        Err(e) => return ui.store_error(&e),
    };
    let page = FunctionPage {
        chrome: ui.chrome(&session),
        description: spec.description.clone().unwrap_or_default(),
        handler: handler(spec.handler.get()),
        triggers,
        policy: serde_json::to_string_pretty(&spec.policy).unwrap_or_default(),
        schema: spec.input_schema.as_ref().map(|s| serde_json::to_string_pretty(s).unwrap_or_default()),
        limited,
        keys,
        rows: recent.iter().map(|r| RunRow::of(r, now)).collect(),
        name,
    };
    html(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::handler;
    use plinth_core::HandlerKind;
    use plinth_core::component::HttpSpec;

    #[test]
    fn a_handler_is_shown_without_its_secrets() {
        let h =
            HttpSpec { url: "https://user:pw@api.example/hook?token=s3cret".into(), timeout: None, headers: Default::default() };
        assert_eq!(handler(Some(HandlerKind::Http(&h))), "HTTP POST https://api.example/hook");
        let plain = HttpSpec { url: "http://127.0.0.1:9000/run".into(), timeout: None, headers: Default::default() };
        assert_eq!(handler(Some(HandlerKind::Http(&plain))), "HTTP POST http://127.0.0.1:9000/run");
        assert_eq!(handler(Some(HandlerKind::Rust("echo"))), "in-process handler echo");
        let sdk = plinth_core::component::InngestHandler {
            url: "http://u:p@127.0.0.1:8000/api/inngest?fnId=shop-a&stepId=step".into(),
        };
        assert_eq!(handler(Some(HandlerKind::Inngest(&sdk))), "Inngest SDK app http://127.0.0.1:8000/api/inngest");
        assert_eq!(handler(None), "none");
    }
}
