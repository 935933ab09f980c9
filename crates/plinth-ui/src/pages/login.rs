//! `/login`: sign in with an API key or a token (with `auth:`); `/logout` ends the session.

use super::{Chrome, html};
use crate::Ui;
use crate::access::{self, Session};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    message: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct Expired {
    expired: Option<String>,
}

/// The fields of the sign-in form.
#[derive(Deserialize)]
pub(crate) struct Credential {
    #[serde(default)]
    credential: String,
    #[serde(default)]
    csrf: String,
}

/// The fields of a form that only acts.
#[derive(Deserialize)]
pub(crate) struct Token {
    #[serde(default)]
    pub(crate) csrf: String,
}

fn page(ui: &Ui, session: &Session, status: StatusCode, message: Option<String>) -> Response {
    let chrome = Chrome { user: None, ..ui.chrome(session) };
    html(status, &LoginPage { chrome, message })
}

/// `GET {base}/login`.
pub(crate) async fn form(State(ui): State<Ui>, Extension(session): Extension<Session>, Query(q): Query<Expired>) -> Response {
    let message = q.expired.map(|_| "Your session ended or is not valid; sign in again.".to_string());
    page(&ui, &session, StatusCode::OK, message)
}

/// `POST {base}/login`.
pub(crate) async fn submit(
    State(ui): State<Ui>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Form(form): Form<Credential>,
) -> Response {
    if !access::token_matches(&session, &form.csrf) {
        return page(&ui, &session, StatusCode::FORBIDDEN, Some("The form was stale; try again.".to_string()));
    }
    if form.credential.trim().is_empty() {
        return page(&ui, &session, StatusCode::BAD_REQUEST, Some("Paste an API key or a token.".to_string()));
    }
    match access::sign_in(&ui, &headers, &form.credential) {
        Ok(cookie) => {
            let mut response = Redirect::to(&ui.base).into_response();
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        Err((status, why)) => {
            tracing::info!(reason = "dashboard_sign_in_refused", "access denied");
            page(&ui, &session, status, Some(why))
        }
    }
}

/// `POST {base}/logout`.
pub(crate) async fn logout(State(ui): State<Ui>, Extension(session): Extension<Session>, Form(form): Form<Token>) -> Response {
    if !access::token_matches(&session, &form.csrf) {
        return ui.error(StatusCode::FORBIDDEN, "Refused", "The form was stale; reload the page and try again.".to_string());
    }
    let mut response = Redirect::to(&format!("{}/login", ui.base)).into_response();
    response.headers_mut().append(header::SET_COOKIE, access::sign_out(&ui));
    response
}
