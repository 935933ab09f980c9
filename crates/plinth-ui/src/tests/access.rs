//! Access: sign-in, sessions, read-only callers, the action token and origin, and the actions.

use super::{COMPONENT, Harness, Page, READ_KEY, WRITE_KEY, harness, harness_of};
use crate::router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use plinth_core::Trigger;
use serde_json::json;
use tower::ServiceExt;

fn auth_harness() -> Harness {
    harness_of(&format!(
        "{COMPONENT}auth:\n  api_keys:\n    - {{name: reader, from_env: READ_KEY, scopes: [runs:read]}}\n    - {{name: writer, from_env: WRITE_KEY, scopes: [runs:read, runs:write]}}\n    - {{name: poster, from_env: POST_KEY, scopes: [events:write]}}\n"
    ))
}

/// The `name=value` of each `Set-Cookie`, as a browser would send them back.
fn cookies(page: &Page) -> String {
    page.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The hidden action token in a page.
fn csrf_of(page: &Page) -> String {
    let needle = "name=\"csrf\" value=\"";
    let at = page.body.find(needle).expect("a form with a token") + needle.len();
    page.body[at..at + 32].to_string()
}

impl Harness {
    async fn post_form(&self, uri: &str, cookie: &str, form: &str, origin: Option<&str>) -> Page {
        let mut req = Request::post(uri).header("content-type", "application/x-www-form-urlencoded").header("host", "localhost");
        if !cookie.is_empty() {
            req = req.header("cookie", cookie);
        }
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        self.send(req.body(Body::from(form.to_string())).expect("request")).await
    }

    async fn get_cookie(&self, uri: &str, cookie: &str) -> Page {
        self.send(Request::get(uri).header("cookie", cookie).body(Body::empty()).expect("request")).await
    }

    /// Signs in with `key` through the login form; the cookies a browser would then hold.
    async fn sign_in(&self, key: &str) -> (Page, String) {
        let form = self.get("/ui/login").await;
        assert_eq!(form.status, StatusCode::OK);
        let jar = cookies(&form);
        let token = csrf_of(&form);
        let done = self.post_form("/ui/login", &jar, &format!("credential={key}&csrf={token}"), Some("http://localhost")).await;
        let both = [jar, cookies(&done)].into_iter().filter(|c| !c.is_empty()).collect::<Vec<_>>().join("; ");
        (done, both)
    }
}

#[tokio::test]
async fn with_auth_the_dashboard_needs_runs_read() {
    let h = auth_harness();
    let page = h.get("/ui").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "a browser is sent to sign in");
    assert_eq!(page.headers.get("location").and_then(|v| v.to_str().ok()), Some("/ui/login"));
    assert_eq!(h.get_with("/ui", "wrong-key-0123456789abcdef0123").await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        h.get_with("/ui", "poster-key-0123456789abcdef01234").await.status,
        StatusCode::FORBIDDEN,
        "events:write alone does not read"
    );
    assert_eq!(h.get_with("/ui/runs", READ_KEY).await.status, StatusCode::OK, "a header credential works as for the API");
    assert_eq!(h.get("/ui/assets/plinth.css").await.status, StatusCode::OK, "the stylesheet is open");
    let login = h.get("/ui/login").await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains("type=\"password\""));
    let set = login.headers.get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/ui"), "{set}");
}

#[tokio::test]
async fn signing_in_with_a_key_gives_a_session_and_a_wrong_key_is_refused() {
    let h = auth_harness();
    let (done, jar) = h.sign_in(WRITE_KEY).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let session = done.headers.get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(
        session.starts_with("plinth_session=") && session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    assert!(!session.contains("Secure"), "plain HTTP gets no Secure flag");
    assert!(!session.contains(WRITE_KEY), "the key itself is never in the cookie");
    let page = h.get_cookie("/ui", &jar).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("writer"), "who is signed in");

    let (refused, _) = h.sign_in("wrong-key-0123456789abcdef0123").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(
        refused.body.contains("not valid")
            && refused
                .headers
                .get_all("set-cookie")
                .iter()
                .all(|c| !c.to_str().unwrap_or_default().starts_with("plinth_session"))
    );
    let (no_scope, _) = h.sign_in("poster-key-0123456789abcdef01234").await;
    assert_eq!(no_scope.status, StatusCode::FORBIDDEN);
    let (empty, _) = h.sign_in("").await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    let stale =
        h.post_form("/ui/login", "", &format!("credential={WRITE_KEY}&csrf=00000000000000000000000000000000"), None).await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN, "a login form without its token is refused");
}

#[tokio::test]
async fn a_tampered_or_foreign_session_cookie_is_not_a_session() {
    let h = auth_harness();
    let (_, jar) = h.sign_in(READ_KEY).await;
    assert_eq!(h.get_cookie("/ui", &jar).await.status, StatusCode::OK);
    let tampered = jar.replace("reader", "writer");
    assert_ne!(tampered, jar);
    let page = h.get_cookie("/ui", &tampered).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.headers.get("location").and_then(|v| v.to_str().ok()), Some("/ui/login?expired=1"));
    // A cookie signed with another secret (another deployment) is refused the same way.
    let other = plinth_server::router_with(
        h.state.clone(),
        "/ui",
        router(h.state.clone(), "/ui", Some(b"another secret, also 32 bytes long!!")),
    );
    let req = Request::get("/ui").header("cookie", &jar).body(Body::empty()).expect("request");
    assert_eq!(other.oneshot(req).await.expect("infallible").status(), StatusCode::SEE_OTHER);
    let form = h.get("/ui/login?expired=1").await;
    assert!(form.body.contains("sign in again"), "the login page says why");
}

#[tokio::test]
async fn a_read_only_caller_sees_no_buttons_and_cannot_act() {
    let h = auth_harness();
    let id = h.queued("echo", json!({})).await;
    let (_, jar) = h.sign_in(READ_KEY).await;
    let page = h.get_cookie(&format!("/ui/runs/{id}"), &jar).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("id=\"cancel\""), "no cancel button");
    assert!(page.body.contains("read only"));
    let token = csrf_of(&page);
    let tried = h.post_form(&format!("/ui/runs/{id}/cancel"), &jar, &format!("csrf={token}"), None).await;
    assert_eq!(tried.status, StatusCode::FORBIDDEN);
    let run = h.state.store.get(&id, false).await.expect("get").expect("run");
    assert_eq!(run.status.as_str(), "queued", "nothing was cancelled");
    let (_, writer) = h.sign_in(WRITE_KEY).await;
    let page = h.get_cookie(&format!("/ui/runs/{id}"), &writer).await;
    assert!(page.body.contains("id=\"cancel\""), "a writer sees the button");
}

#[tokio::test]
async fn actions_need_their_token_and_the_same_origin() {
    let h = harness();
    let id = h.queued("echo", json!({})).await;
    let page = h.get(&format!("/ui/runs/{id}")).await;
    let jar = cookies(&page);
    let token = csrf_of(&page);
    let cancel = format!("/ui/runs/{id}/cancel");
    assert_eq!(h.post_form(&cancel, &jar, "", None).await.status, StatusCode::FORBIDDEN, "no token");
    assert_eq!(
        h.post_form(&cancel, &jar, "csrf=0123456789abcdef0123456789abcdef", None).await.status,
        StatusCode::FORBIDDEN,
        "a wrong token"
    );
    assert_eq!(
        h.post_form(&cancel, "", &format!("csrf={token}"), None).await.status,
        StatusCode::FORBIDDEN,
        "a token without its cookie"
    );
    let evil = h.post_form(&cancel, &jar, &format!("csrf={token}"), Some("http://evil.example")).await;
    assert_eq!(evil.status, StatusCode::FORBIDDEN, "another origin");
    assert_eq!(h.state.store.get(&id, false).await.expect("get").expect("run").status.as_str(), "queued");
    let done = h.post_form(&cancel, &jar, &format!("csrf={token}"), Some("http://localhost")).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(h.state.store.get(&id, false).await.expect("get").expect("run").status.as_str(), "cancelled");
    let again = h.post_form(&cancel, &jar, &format!("csrf={token}"), None).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "a run that ended cannot be cancelled: {}", again.body);
    assert!(again.body.contains("already ended"));
}

#[tokio::test]
async fn a_finished_run_is_rerun_from_its_page() {
    let h = harness();
    let id = h.succeeded(json!({"n": 7}), json!({"ok": 1})).await;
    let page = h.get(&format!("/ui/runs/{id}")).await;
    assert!(page.body.contains("id=\"rerun\"") && !page.body.contains("id=\"cancel\""), "a finished run offers rerun only");
    let (jar, token) = (cookies(&page), csrf_of(&page));
    let done = h.post_form(&format!("/ui/runs/{id}/rerun"), &jar, &format!("csrf={token}&from_step="), None).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let new_page = done.headers.get("location").and_then(|v| v.to_str().ok()).expect("the new run's page").to_string();
    let new_id = new_page.trim_start_matches("/ui/runs/");
    let rerun = h.state.store.get(new_id, false).await.expect("get").expect("the new run");
    assert_eq!(rerun.input, json!({"n": 7}));
    assert!(matches!(rerun.trigger, Trigger::Rerun { ref of } if *of == id));
    let from = h.post_form(&format!("/ui/runs/{id}/rerun"), &jar, &format!("csrf={token}&from_step=nope"), None).await;
    assert_eq!(from.status, StatusCode::UNPROCESSABLE_ENTITY, "echo is not a step function: {}", from.body);
    let unknown = h.post_form("/ui/runs/01KBAAAAAAAAAAAAAAAAAAAAAA/rerun", &jar, &format!("csrf={token}"), None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_run_is_started_from_a_function_page_with_its_input_checked() {
    let h = harness();
    let page = h.get("/ui/functions/lanes").await;
    assert!(page.body.contains("id=\"start\""), "a writer sees the form");
    let (jar, token) = (cookies(&page), csrf_of(&page));
    let body = |input: &str| format!("csrf={token}&input={}", crate::pages::filters::encode(input));
    let done = h.post_form("/ui/functions/lanes/run", &jar, &body(r#"{"tenant": "t-9"}"#), None).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let id =
        done.headers.get("location").and_then(|v| v.to_str().ok()).expect("its page").trim_start_matches("/ui/runs/").to_string();
    let run = h.state.store.get(&id, false).await.expect("get").expect("the run");
    assert_eq!((run.function.as_str(), run.input.clone()), ("lanes", json!({"tenant": "t-9"})));
    let echoed = done.headers.get("x-correlation-id").and_then(|v| v.to_str().ok()).expect("the request's correlation id");
    assert_eq!(run.correlation_id, echoed, "the run carries the correlation id of the request that started it");
    let bad = h.post_form("/ui/functions/lanes/run", &jar, &body("{not json"), None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("not JSON"));
    let invalid = h.post_form("/ui/functions/lanes/run", &jar, &body(r#"{"other": 1}"#), None).await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY, "the schema refuses it: {}", invalid.body);
    assert!(invalid.body.contains("tenant"), "{}", invalid.body);
    let unknown = h.post_form("/ui/functions/nope/run", &jar, &body("{}"), None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let stale = h.post_form("/ui/functions/lanes/run", &jar, "input=%7B%7D", None).await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN, "no token, no run");
    let page = h.state.store.list(plinth_store::ListFilter { limit: 10, ..Default::default() }).await.expect("list");
    assert_eq!(page.runs.len(), 1, "only the valid form started a run");
}

#[tokio::test]
async fn a_bulk_action_shows_its_count_before_it_acts() {
    let h = harness();
    let finished = h.succeeded(json!({"batch": 1}), json!({})).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(h.queued("echo", json!({"batch": 1})).await);
    }
    let other = h.queued("lanes", json!({"tenant": "t"})).await;
    let page = h.get("/ui/runs?function=echo").await;
    assert!(page.body.contains("id=\"bulk\""), "the runs list offers it");
    let (jar, token) = (cookies(&page), csrf_of(&page));
    let review = h.post_form("/ui/runs/bulk", &jar, &format!("csrf={token}&function=echo&action=cancel"), None).await;
    assert_eq!(review.status, StatusCode::OK, "{}", review.body);
    assert!(review.body.contains("This will cancel <strong>3</strong> runs"), "{}", review.body);
    for id in &open {
        assert_eq!(
            h.state.store.get(id, false).await.expect("get").expect("run").status.as_str(),
            "queued",
            "nothing changed yet"
        );
    }
    let done = h.post_form("/ui/runs/bulk", &jar, &format!("csrf={token}&function=echo&action=cancel&confirm=yes"), None).await;
    assert!(done.body.contains("Cancelled 3 runs"), "{}", done.body);
    for id in &open {
        assert_eq!(h.state.store.get(id, false).await.expect("get").expect("run").status.as_str(), "cancelled");
    }
    assert_eq!(
        h.state.store.get(&other, false).await.expect("get").expect("run").status.as_str(),
        "queued",
        "outside the filter"
    );
    let rerun =
        h.post_form("/ui/runs/bulk", &jar, &format!("csrf={token}&function=echo&status=succeeded&action=rerun"), None).await;
    assert!(rerun.body.contains("This will rerun <strong>1</strong> run"), "{}", rerun.body);
    assert!(
        rerun.body.contains(&finished) || rerun.body.contains("name=\"status\" value=\"succeeded\""),
        "the filter rides along"
    );

    assert_eq!(
        h.post_form("/ui/runs/bulk", &jar, "function=echo&action=cancel&confirm=yes", None).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        h.post_form("/ui/runs/bulk", &jar, &format!("csrf={token}&action=delete"), None).await.status,
        StatusCode::BAD_REQUEST
    );
    let bad = h.post_form("/ui/runs/bulk", &jar, &format!("csrf={token}&status=sleeping&action=cancel"), None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let none = h.post_form("/ui/runs/bulk", &jar, &format!("csrf={token}&function=echo&action=cancel"), None).await;
    assert!(none.body.contains("No run matching this filter can be cancelled"), "{}", none.body);
}

#[tokio::test]
async fn a_bulk_action_over_the_cap_is_refused() {
    let h = harness();
    for _ in 0..=crate::pages::bulk::CAP {
        h.queued("echo", json!({})).await;
    }
    let page = h.get("/ui/runs").await;
    let (jar, token) = (cookies(&page), csrf_of(&page));
    let review = h.post_form("/ui/runs/bulk", &jar, &format!("csrf={token}&action=cancel&confirm=yes"), None).await;
    assert_eq!(review.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(review.body.contains("More than 1000 runs match"), "{}", review.body);
    let still = h
        .state
        .store
        .list(plinth_store::ListFilter { status: Some(plinth_core::RunStatus::Queued), limit: 2000, ..Default::default() })
        .await;
    assert_eq!(still.expect("list").runs.len(), crate::pages::bulk::CAP + 1, "none was cancelled");
}

#[tokio::test]
async fn an_event_is_sent_from_the_events_page() {
    let h = harness();
    let page = h.get("/ui/events").await;
    assert!(page.body.contains("id=\"send\""));
    let (jar, token) = (cookies(&page), csrf_of(&page));
    let form = |name: &str, data: &str| {
        format!("csrf={token}&name={}&data={}", crate::pages::filters::encode(name), crate::pages::filters::encode(data))
    };
    let sent = h.post_form("/ui/events", &jar, &form("order/created", r#"{"sku": "x"}"#), None).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let at = sent.headers.get("location").and_then(|v| v.to_str().ok()).expect("its page").to_string();
    let shown = h.get(&at).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(
        shown.body.contains("order/created") && shown.body.contains("/ui/runs/01"),
        "the run echo's trigger started: {}",
        shown.body
    );
    assert_eq!(h.post_form("/ui/events", &jar, &form("order/created", "{oops"), None).await.status, StatusCode::BAD_REQUEST);
    let unnamed = h.post_form("/ui/events", &jar, &form("", "{}"), None).await;
    assert_eq!(unnamed.status, StatusCode::UNPROCESSABLE_ENTITY, "a name is required: {}", unnamed.body);
    assert_eq!(h.post_form("/ui/events", &jar, "name=x&data=%7B%7D", None).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_expired_session_is_sent_to_sign_in_again() {
    use axum::response::IntoResponse;
    use axum_extra::extract::cookie::{Cookie, SignedCookieJar};
    let h = auth_harness();
    let key = crate::access::key(Some(super::SECRET));
    let signed = |expires: i64| {
        let claims = json!({"n": "writer", "w": true, "e": expires}).to_string();
        let jar = SignedCookieJar::new(key.clone()).add(Cookie::new("plinth_session", claims));
        let set = jar.into_response().headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        set.split(';').next().unwrap_or_default().to_string()
    };
    let now = plinth_core::timefmt::now_micros();
    assert_eq!(h.get_cookie("/ui", &signed(now + 60_000_000)).await.status, StatusCode::OK, "a fresh session, signed alike");
    let expired = h.get_cookie("/ui", &signed(now - 1)).await;
    assert_eq!(expired.status, StatusCode::SEE_OTHER);
    assert_eq!(expired.headers.get("location").and_then(|v| v.to_str().ok()), Some("/ui/login?expired=1"));
    let page = h.get_cookie("/ui/runs", "plinth_session=garbage").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "an unsigned cookie is no session");
}
