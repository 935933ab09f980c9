//! The pages, one module each, and what they share: the frame around every page, the error
//! pages, and turning a template into a response.

pub(crate) mod actions;
pub(crate) mod bulk;
pub(crate) mod events;
pub(crate) mod filters;
pub(crate) mod functions;
pub(crate) mod live;
pub(crate) mod login;
pub(crate) mod overview;
pub(crate) mod run;
pub(crate) mod runs;
pub(crate) mod summary;

use crate::Ui;
use crate::access::Session;
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use plinth_store::StoreError;

/// What the frame around every page shows.
pub(crate) struct Chrome {
    /// The mount path (`/ui`).
    pub(crate) base: String,
    /// The component's name.
    pub(crate) component: String,
    /// The build's version, appended to the assets' URLs.
    pub(crate) version: &'static str,
    /// Who is signed in (with `auth:`).
    pub(crate) user: Option<String>,
    /// Whether the caller may act (the pages show action buttons only then).
    pub(crate) can_write: bool,
    /// The token each action's form carries.
    pub(crate) csrf: String,
}

impl Ui {
    /// The frame for `session`'s pages.
    pub(crate) fn chrome(&self, session: &Session) -> Chrome {
        Chrome { user: session.name.clone(), can_write: session.can_write, csrf: session.csrf.clone(), ..self.anonymous() }
    }

    /// The frame of a page shown before the caller is known.
    pub(crate) fn anonymous(&self) -> Chrome {
        Chrome {
            base: self.base.clone(),
            component: self.app.component.get().file.component.name.clone(),
            version: crate::assets::VERSION,
            user: None,
            can_write: false,
            csrf: String::new(),
        }
    }

    /// An error page: what went wrong and what to do, with its status.
    pub(crate) fn error(&self, status: StatusCode, title: &str, message: String) -> Response {
        let page = ErrorPage { chrome: self.anonymous(), status: status.as_u16(), title: title.to_string(), message };
        html(status, &page)
    }

    /// The page for a store that cannot answer (503) or a read that failed.
    pub(crate) fn store_error(&self, e: &StoreError) -> Response {
        tracing::warn!(error = %e, "a dashboard page could not read the store");
        self.error(
            StatusCode::SERVICE_UNAVAILABLE,
            "The run store cannot answer now",
            "Plinth could not read its store; /health says why. Try again in a moment.".to_string(),
        )
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    status: u16,
    title: String,
    message: String,
}

/// A rendered page with its status and the headers every page carries: no framing, no
/// script or style from anywhere but the dashboard, no inline script. Inline styles are
/// allowed for the step timeline's bars, whose numbers the server writes.
pub(crate) fn html<T: Template>(status: StatusCode, page: &T) -> Response {
    let mut response = match page.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a dashboard page could not be rendered");
            return (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response();
        }
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Any other path under the dashboard.
pub(crate) async fn not_found(State(ui): State<Ui>, uri: axum::http::Uri) -> Response {
    ui.error(StatusCode::NOT_FOUND, "No such page", format!("The dashboard has no page at {}.", uri.path()))
}
