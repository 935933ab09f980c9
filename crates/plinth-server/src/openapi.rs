//! `GET /openapi.json`: the OpenAPI 3.1 description of the contract.
//!
//! The document is generated, not written: the paths come from the `#[utoipa::path]`
//! annotation on each handler, the schemas from `#[derive(ToSchema)]` on the very types the
//! handlers serialize (`Run`, the bodies in `routes::bodies`, `Problem`). At request time it is
//! completed from the served component: its name and version, each function's input schema on
//! `POST /run`, the answers every route may give (429, 431) and, when access control is
//! configured, the credentials each route needs (401, 403).

use crate::AppState;
use crate::auth::{Auth, Need};
use crate::routes::{events, flow, inngest, meta, runs, steps};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use plinth_core::component::{Component, FunctionSpec};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    paths(
        meta::health,
        meta::ready,
        meta::functions,
        flow::keys,
        meta::metrics,
        meta::error_list,
        meta::error_entry,
        runs::submit,
        runs::list,
        runs::show,
        runs::cancel,
        runs::logs,
        steps::steps,
        steps::rerun,
        events::send,
        events::list,
        events::show,
        inngest::events::events,
        inngest::register::register,
        openapi_json,
    ),
    tags(
        (name = "runs", description = "Submit, follow, list and cancel runs."),
        (name = "events", description = "Send events that start runs, and see what each started."),
        (name = "component", description = "What the component offers."),
        (name = "probes", description = "Liveness, readiness and metrics."),
        (name = "errors", description = "The error catalog: every code a problem+json answer can carry."),
    )
)]
struct ApiDoc;

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// The document for the served component, with the access control `state` enforces.
pub(crate) fn document(state: &AppState) -> Value {
    build(&state.component.get(), state.auth.as_deref())
}

/// What `GET /openapi.json` answers for `component`, without a server: the credentials each
/// route needs come from the `auth:` section's `public` list; no key or secret is read.
#[must_use]
pub fn openapi_document(component: &Component) -> Value {
    let auth = component.file.auth.as_ref().map(|section| Auth::describing(section.public.clone()));
    build(component, auth.as_ref())
}

fn build(component: &Component, auth: Option<&Auth>) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let id = &component.file.component;
    doc["info"] = json!({
        "title": id.name,
        "version": id.version,
        "description": format!(
            "{}The component contract served by Plinth {}: submit runs with `POST /run`, follow them at `/runs/{{id}}`. \
             Every error answer is `application/problem+json` with a stable `code`; `GET /errors/{{code}}` explains it.",
            id.description.as_ref().map(|d| format!("{d}\n\n")).unwrap_or_default(),
            plinth_core::VERSION,
        ),
    });
    if let Some(owner) = &id.owner {
        doc["info"]["contact"] = json!({"name": owner});
    }
    if let Some(body) = doc.pointer_mut("/paths/~1run/post/requestBody/content/application~1json/schema") {
        *body = run_request_schema(component);
    }
    add_common_answers(&mut doc, auth);
    doc
}

/// `POST /run`'s body: the general `RunRequest`, narrowed to one variant per function with the
/// function's own input schema, so clients and test generators know what each input must be.
fn run_request_schema(component: &Component) -> Value {
    let single = component.file.functions.len() == 1;
    let variants: Vec<Value> = component
        .file
        .functions
        .iter()
        .zip(&component.schemas)
        .map(|(f, compiled)| {
            // Why: a left-out `input` is `{}`, so it is required exactly when `{}` is refused.
            let needs_input = compiled.as_ref().is_some_and(|s| !s.violations(&json!({})).is_empty());
            function_variant(f, single, needs_input)
        })
        .collect();
    json!({"allOf": [{"$ref": "#/components/schemas/RunRequest"}], "oneOf": variants})
}

fn function_variant(f: &FunctionSpec, single: bool, needs_input: bool) -> Value {
    let mut properties = Map::new();
    // Why: `null` counts as left out, which only the only function of a component allows.
    let name = if single { json!({"enum": [f.name, null]}) } else { json!({"const": f.name}) };
    properties.insert("function".into(), name);
    let mut variant = json!({"title": f.name, "type": "object"});
    if let Some(description) = &f.description {
        variant["description"] = json!(description);
    }
    let schema = f.input_schema.clone().map(|mut schema| {
        if let Some(obj) = schema.as_object_mut() {
            obj.remove("$schema");
            obj.remove("$id");
        }
        schema
    });
    match schema {
        Some(schema) if embeddable(&schema) => {
            properties.insert("input".into(), schema);
        }
        // Why: a schema with references or ids resolves against its own document; copied here
        // they would dangle, so clients are sent to `GET /functions` instead.
        Some(_) => {
            let note = format!("`input` must match the input schema of `{}` shown by `GET /functions`.", f.name);
            variant["description"] = json!(note);
        }
        None => {}
    }
    variant["properties"] = Value::Object(properties);
    let required: Vec<&str> = [(!single).then_some("function"), needs_input.then_some("input")].into_iter().flatten().collect();
    if !required.is_empty() {
        variant["required"] = json!(required);
    }
    variant
}

/// Whether a function's input schema can be copied into the document as it is: no reference or
/// id that would resolve against another document.
fn embeddable(schema: &Value) -> bool {
    match schema {
        Value::Object(obj) => {
            !obj.keys()
                .any(|k| matches!(k.as_str(), "$ref" | "$dynamicRef" | "$recursiveRef" | "$id" | "$anchor" | "$dynamicAnchor"))
                && obj.values().all(embeddable)
        }
        Value::Array(items) => items.iter().all(embeddable),
        _ => true,
    }
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    })
}

/// Documents a problem answer with `status`, or adds `description` to the one already there.
fn add_answer(responses: &mut Map<String, Value>, status: &str, description: &str) {
    match responses.get_mut(status) {
        Some(documented) => {
            let before = documented["description"].as_str().unwrap_or_default();
            documented["description"] = json!(format!("{before} Or: {description}"));
        }
        None => {
            responses.insert(status.into(), problem(description));
        }
    }
}

/// Adds the answers middleware can give to every operation: 431 always, 429 outside the probes,
/// and, where access control is configured, 400 for a credential in the query and 401/403 (with
/// the security requirement) where a credential is needed.
fn add_common_answers(doc: &mut Value, auth: Option<&Auth>) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, item) in paths.iter_mut() {
        for method in METHODS {
            let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) else { continue };
            let verb = axum::http::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap_or_default();
            // Why: Inngest's event API checks its own key, outside `auth:`.
            let need = auth
                .filter(|_| path != inngest::PATH && path != inngest::register::PATH)
                .map(|auth| auth.need(&verb, Some(path), path));
            let scopes = match need {
                None | Some(Need::Public) => None,
                Some(Need::Authenticated) => Some(vec![]),
                Some(Need::Scope(scope)) => Some(vec![scope.as_str()]),
            };
            if need.is_some() {
                let requirement = scopes.as_ref().map_or(json!([]), |s| json!([{"api_key": s}, {"bearer": s}]));
                op.insert("security".into(), requirement);
            }
            let Some(responses) = op.entry("responses").or_insert_with(|| json!({})).as_object_mut() else { continue };
            add_answer(responses, "431", "Too many or too large request headers (`PLINTH_043`).");
            if !crate::limits::UNLIMITED.contains(&path.as_str()) {
                add_answer(responses, "429", "Too many requests from this client (`PLINTH_041`): wait `Retry-After` seconds.");
                if let Some(limited) = responses.get_mut("429").filter(|r| r.get("headers").is_none()) {
                    limited["headers"] =
                        json!({"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}});
                }
            }
            if need.is_some() {
                add_answer(responses, "400", "A credential in the query string (`PLINTH_032`): send it in a header.");
            }
            if scopes.is_some() {
                add_answer(responses, "401", "No credential, or one that is not valid (`PLINTH_030`).");
                add_answer(responses, "403", "The credential lacks the scope this route needs (`PLINTH_031`).");
            }
        }
    }
    if auth.is_some() {
        doc["components"]["securitySchemes"] = json!({
            "api_key": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                "description": "An API key; `Authorization: Bearer KEY` works too."},
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "A JWT (HS256 or RS256) with the configured issuer and audience."},
        });
    }
}

/// This document: the OpenAPI 3.1 description of every route.
#[utoipa::path(get, path = "/openapi.json", operation_id = "get_openapi", tag = "component",
    responses((status = 200, description = "The OpenAPI 3.1 document.", body = Object)))]
pub(crate) async fn openapi_json(State(state): State<Arc<AppState>>) -> Response {
    Json(document(&state)).into_response()
}
