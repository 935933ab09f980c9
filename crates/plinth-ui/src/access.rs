//! Who may see the dashboard: with `auth:` configured, a caller holding `runs:read`.

use crate::Ui;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use plinth_core::component::auth::Scope;
use plinth_server::Denied;

/// Lets a request through when the component has no `auth:` or its credential grants
/// `runs:read`; otherwise answers a page saying why (401 or 403).
pub(crate) async fn guard(State(ui): State<Ui>, req: Request, next: Next) -> Response {
    let Some(auth) = ui.app.auth.as_deref() else {
        return next.run(req).await;
    };
    // Why: the stylesheet and script say nothing about the runs; the 401 page needs them.
    if req.uri().path().starts_with("/assets/") {
        return next.run(req).await;
    }
    match auth.grants(req.headers(), Scope::RunsRead) {
        Ok(_) => next.run(req).await,
        Err(Denied::Unauthenticated(why)) => {
            tracing::info!(reason = "dashboard_unauthenticated", "access denied");
            ui.error(
                StatusCode::UNAUTHORIZED,
                "Sign-in needed",
                format!("This dashboard needs a credential with runs:read: {why}."),
            )
        }
        Err(Denied::Forbidden(why)) => {
            tracing::info!(reason = "dashboard_missing_scope", "access denied");
            ui.error(StatusCode::FORBIDDEN, "Not allowed", format!("The dashboard needs runs:read: {why}."))
        }
    }
}
