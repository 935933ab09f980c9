//! `POST /fn/register`: an app built with an Inngest SDK registers its functions, after Plinth
//! (or anyone) sent a `PUT` to its serve URL. Each function becomes a Plinth function at once;
//! an option Plinth cannot serve refuses the whole registration, naming the option.
//!
//! The answer is what the SDK expects: `{"ok": true, "modified": bool}`, or an error status with
//! `{"error": "..."}`, which the SDK passes back as the answer to the `PUT`.
//!
//! With `inngest.signing_key_env` set, a registration must carry the key's Bearer hash (as an
//! SDK in production mode sends it); without it, registration is open, as with Inngest's dev
//! server, unless `auth:` is configured, which then refuses every registration.

use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;
use utoipa::ToSchema;

/// The path; outside `auth:`.
pub(crate) const PATH: &str = "/fn/register";

/// A registration's answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct RegisterAnswer {
    /// Whether the functions are served.
    ok: Option<bool>,
    /// Whether anything changed since the app's last registration.
    modified: Option<bool>,
    /// Why the registration was refused: the option's path and the reason.
    error: Option<String>,
}

/// Serves the app's functions as Plinth functions.
#[utoipa::path(post, path = "/fn/register", operation_id = "register_inngest_app", tag = "component",
    request_body(content = Object, content_type = "application/json",
        description = "The SDK's register request: `appname`, `url`, `functions` with their triggers, steps and options."),
    responses(
        (status = 200, description = "The functions are served (`modified`: whether anything changed).", body = RegisterAnswer),
        (status = 400, description = "An option cannot be served, or the body is not a register request; nothing changed.",
            body = RegisterAnswer),
        (status = 401, description = "The `Authorization: Bearer` hash of the signing key is missing or wrong, or \
            access control is on without `inngest.signing_key_env`; nothing changed.", body = RegisterAnswer),
    ))]
pub(crate) async fn register(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let refuse = |status: StatusCode, error: String| (status, axum::Json(json!({"error": error}))).into_response();
    if let Some(key) = state.inngest.signing() {
        let sent = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        if !sent.is_some_and(|a| key.bearer_matches(a)) {
            let why = if sent.is_some() { "inngest_register_wrong_key" } else { "inngest_register_unsigned" };
            tracing::warn!(reason = why, "registration refused");
            return refuse(
                StatusCode::UNAUTHORIZED,
                format!(
                    "the registration {} the Bearer hash of this Plinth's signing key: give the app the key \
                     inngest.signing_key_env names, as its INNGEST_SIGNING_KEY",
                    if sent.is_some() { "does not carry" } else { "has no Authorization header with" }
                ),
            );
        }
    } else if state.auth.is_some() {
        tracing::info!(reason = "inngest_register_auth", "registration refused");
        return refuse(
            StatusCode::UNAUTHORIZED,
            "access control is on: an app registers only with a signing key; set inngest.signing_key_env to the \
             variable holding the app's INNGEST_SIGNING_KEY"
                .into(),
        );
    }
    let req = match plinth_inngest::register::parse(&body) {
        Ok(req) => req,
        Err(r) => return refuse(StatusCode::BAD_REQUEST, r.to_string()),
    };
    match state.inngest.register(&req) {
        Ok(modified) => {
            tracing::info!(app = %req.appname, functions = req.functions.len(), modified, url = %req.url, "Inngest app registered");
            (StatusCode::OK, axum::Json(json!({"ok": true, "modified": modified}))).into_response()
        }
        Err(r) => {
            tracing::warn!(app = %req.appname, field = %r.field, reason = %r.reason, "Inngest app refused");
            refuse(StatusCode::BAD_REQUEST, format!("app `{}`: {r}", req.appname))
        }
    }
}
