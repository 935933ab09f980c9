//! Plinth's web dashboard: pages rendered on the server from templates compiled into the binary,
//! one stylesheet and one small script, nothing fetched from elsewhere. Every page reads without
//! JavaScript and has a URL that can be shared; `plinth serve` mounts it at `--ui-path` (`/ui`).
//!
//! The pages read the same store and component as the API, so what they show is what
//! `GET /runs/{id}` and the other routes answer.

mod access;
mod assets;
mod pages;
mod view;

use axum::Router;
use axum::routing::{get, post};
use plinth_server::AppState;
use std::sync::Arc;

/// Where the dashboard is mounted when `--ui-path` is not given.
pub const DEFAULT_PATH: &str = "/ui";

/// What every page handler reads: the server's state and where the dashboard is mounted.
#[derive(Clone)]
pub(crate) struct Ui {
    app: Arc<AppState>,
    /// The mount path, without a trailing slash (`/ui`).
    base: String,
    /// What signs session cookies.
    key: axum_extra::extract::cookie::Key,
}

/// Checks a mount path: it starts with `/`, has at least one segment, no trailing `/`, and only
/// letters, digits, `-`, `_` and `/` between segments; and it is not one of the API's routes.
///
/// # Errors
/// The reason the path cannot be used.
pub fn check_path(path: &str) -> Result<(), String> {
    let segments: Vec<&str> = path.strip_prefix('/').map(|p| p.split('/').collect()).unwrap_or_default();
    if segments.is_empty() || segments.iter().any(|s| s.is_empty()) {
        return Err(format!("`{path}` must start with `/` and name at least one segment, with no empty one (e.g. `/ui`)"));
    }
    if let Some(bad) = path.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/'))) {
        return Err(format!("`{path}` holds `{bad}`; use letters, digits, `-`, `_` and `/`"));
    }
    const API: [&str; 10] =
        ["health", "ready", "functions", "metrics", "errors", "run", "runs", "events", "openapi.json", "steps"];
    if API.contains(&segments[0]) {
        return Err(format!("`{path}` would hide the API's `/{}` routes; choose another path", segments[0]));
    }
    Ok(())
}

/// The dashboard's routes, relative to its mount path (nest it at `path`, checked with
/// [`check_path`]). `secret` signs session cookies (every node needs the same); without one a
/// random key is made, and sessions end with the process.
pub fn router(app: Arc<AppState>, path: &str, secret: Option<&[u8]>) -> Router {
    let ui = Ui { app, base: path.trim_end_matches('/').to_string(), key: access::key(secret) };
    Router::new()
        .route("/", get(pages::overview::page))
        .route("/login", get(pages::login::form).post(pages::login::submit))
        .route("/logout", post(pages::login::logout))
        .route("/runs/bulk", post(pages::bulk::bulk))
        .route("/runs/{id}/cancel", post(pages::actions::cancel))
        .route("/runs/{id}/rerun", post(pages::actions::rerun))
        .route("/runs", get(pages::runs::page))
        .route("/runs/{id}", get(pages::run::page))
        .route("/runs/{id}/output", get(pages::run::output))
        .route("/runs/{id}/live", get(pages::live::live))
        .route("/functions/{name}/run", post(pages::actions::start))
        .route("/events", get(pages::events::list).post(pages::actions::send_event))
        .route("/events/{id}", get(pages::events::detail))
        .route("/functions/{name}", get(pages::functions::page))
        .route("/assets/{file}", get(assets::serve))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(ui.clone(), access::guard))
        .with_state(ui)
}

#[cfg(test)]
mod tests;
