//! Each page: what it shows, its status codes, escaping, bad input.

use super::{csp, harness};
use crate::check_path;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use plinth_core::steps::Step;
use plinth_core::timefmt::now_micros;
use plinth_core::{NewRun, Trigger};
use plinth_store::ClaimRequest;
use serde_json::{Value, json};
use std::sync::Arc;

#[tokio::test]
async fn the_overview_lists_functions_schedules_and_runs() {
    let h = harness();
    let id = h.queued("echo", json!({"n": 1})).await;
    let page = h.get("/ui").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("href=\"/ui/functions/echo\""), "{}", page.body);
    assert!(page.body.contains("0 3 * * *") && page.body.contains("Europe/Paris"), "the schedule and its zone");
    assert!(page.body.contains(&id), "the latest run is listed");
    assert!(page.body.contains("sqlite store"));
    assert!(csp(&page).contains("script-src 'self'"), "{:?}", page.headers);
    assert_eq!(h.get("/ui/").await.status, StatusCode::OK, "with a trailing slash too");
    assert!(!page.body.contains("--secret-flag"), "a command's arguments are not shown");
}

#[tokio::test]
async fn the_runs_list_filters_and_pages() {
    let h = harness();
    let done = h.succeeded(json!({"n": 1}), json!({"ok": true})).await;
    let waiting = h.queued("echo", json!({"n": 2})).await;
    let page = h.get("/ui/runs?status=succeeded").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&done) && !page.body.contains(&waiting), "{}", page.body);
    let page = h.get("/ui/runs?function=echo&status=&trigger=api&from=2000-01-01T00:00").await;
    assert!(page.body.contains(&done) && page.body.contains(&waiting), "empty fields are ignored");
    let page = h.get("/ui/runs?to=2000-01-01T00:00").await;
    assert!(page.body.contains("No run matches"), "nothing before 2000");
    for _ in 0..55 {
        h.queued("echo", json!({})).await;
    }
    let page = h.get("/ui/runs?function=echo").await;
    let next = page.body.split("href=\"").find(|s| s.contains("cursor=")).and_then(|s| s.split('"').next()).expect("a next link");
    let next = next.replace("&#38;", "&").replace("&amp;", "&");
    assert!(next.starts_with("/ui/runs?function=echo&cursor="), "{next}");
    let older = h.get(&next).await;
    assert_eq!(older.status, StatusCode::OK);
    assert!(older.body.contains(&done), "the oldest run is on the second page");
}

#[tokio::test]
async fn the_runs_list_filters_on_an_input_field() {
    let h = harness();
    let mine = h.queued("echo", json!({"customer": "c-42"})).await;
    let other = h.queued("echo", json!({"customer": "c-7"})).await;
    for query in ["field=customer&equals=c-42", "field=input.customer&equals=%22c-42%22", "input.customer=c-42"] {
        let page = h.get(&format!("/ui/runs?{query}")).await;
        assert_eq!(page.status, StatusCode::OK, "{query}");
        assert!(page.body.contains(&mine) && !page.body.contains(&other), "{query}: {}", page.body);
    }
    let page = h.get("/ui/runs?field=nobody&equals=c-42").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("No run matches"), "a field no run has");
    let page = h.get("/ui/runs?field=a..b&equals=1").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("is not a field path"));
    let page = h.get("/ui/runs?equals=1").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("Name the input field"));
}

#[tokio::test]
async fn bad_filters_are_said_on_the_page() {
    let h = harness();
    for (query, says) in [
        ("status=sleeping", "is not a status"),
        ("function=nope", "No function is named"),
        ("trigger=webhook", "is not a trigger type"),
        ("from=yesterday", "is not a time"),
        ("colour=red", "is not known"),
    ] {
        let page = h.get(&format!("/ui/runs?{query}")).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(page.body.contains(says), "{query}: {}", page.body);
        assert!(page.body.contains("<form"), "the form stays to fix it");
    }
    let page = h.get("/ui/events?colour=red").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_run_page_shows_its_state_and_escapes_everything() {
    let h = harness();
    let id = h.succeeded(json!({"note": "<script>alert(1)</script>"}), json!({"html": "<img src=x onerror=alert(2)>"})).await;
    let page = h.get(&format!("/ui/runs/{id}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(!page.body.contains("<script>alert"), "the input is text, not a script");
    assert!(
        page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;") || page.body.contains("&#60;script&#62;"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<img src=x"), "the output is text too");
    assert!(page.body.contains("succeeded") && page.body.contains("corr-1"));
    assert!(page.body.contains("POST /run"), "the trigger");
}

#[tokio::test]
async fn an_unknown_run_is_a_404_page() {
    let h = harness();
    let page = h.get("/ui/runs/01KBAAAAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("No such run") && page.body.contains("<html"), "a page, not a blank: {}", page.body);
    let page = h.get("/ui/runs/%3Cb%3Enot-an-id").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("&lt;b&gt;not-an-id") || page.body.contains("&#60;b&#62;"), "the id is escaped: {}", page.body);
    assert_eq!(h.get("/ui/runs/01KBAAAAAAAAAAAAAAAAAAAAAA/output").await.status, StatusCode::NOT_FOUND);
    let page = h.get("/ui/runs?id=01KBAAAAAAAAAAAAAAAAAAAAAA").await;
    assert!(page.status.is_redirection(), "?id= jumps to the run's page");
    assert_eq!(page.headers.get("location").and_then(|v| v.to_str().ok()), Some("/ui/runs/01KBAAAAAAAAAAAAAAAAAAAAAA"));
}

#[tokio::test]
async fn a_big_output_is_cut_with_a_download() {
    let h = harness();
    let big = "x".repeat(200 * 1024);
    let id = h.succeeded(json!({}), json!({ "blob": big })).await;
    let page = h.get(&format!("/ui/runs/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.len() < 100 * 1024, "the page holds a cut: {} bytes", page.body.len());
    assert!(page.body.contains(&format!("/ui/runs/{id}/output")), "a download link");
    let whole = h.get(&format!("/ui/runs/{id}/output")).await;
    assert_eq!(whole.status, StatusCode::OK);
    assert!(whole.headers.get("content-disposition").is_some_and(|v| v.to_str().unwrap_or_default().starts_with("attachment")));
    let value: Value = serde_json::from_str(&whole.body).expect("json");
    assert_eq!(value["blob"].as_str().map(str::len), Some(200 * 1024));
    let queued = h.queued("echo", json!({})).await;
    assert_eq!(h.get(&format!("/ui/runs/{queued}/output")).await.status, StatusCode::NOT_FOUND, "no output yet");
}

#[tokio::test]
async fn steps_and_holds_read_in_words() {
    let h = harness();
    let first = h.queued("lanes", json!({"tenant": "t-1"})).await;
    let second = h.queued("lanes", json!({"tenant": "t-1"})).await;
    let now = now_micros();
    let limits = Arc::new(
        [(
            "lanes".to_string(),
            plinth_store::FlowLimit::of(&h.state.component.get().function("lanes").expect("f").1.policy).expect("limited"),
        )]
        .into_iter()
        .collect(),
    );
    let claim = ClaimRequest {
        owner: "w".into(),
        now,
        lease_until: now + 60_000_000,
        wants: vec![("lanes".into(), 5)],
        limit: 5,
        limits,
    };
    let claimed = h.state.store.claim(claim).await.expect("claim");
    assert_eq!(claimed.runs.len(), 1, "one place for the key");
    assert_eq!(claimed.runs[0].run_id, first);
    let page = h.get(&format!("/ui/runs/{second}")).await;
    assert!(page.body.contains("Held by the concurrency limit for key"), "{}", page.body);
    let keys = h.get("/ui/functions/lanes").await;
    assert!(keys.body.contains("t-1"), "the key with work: {}", keys.body);
    assert!(keys.body.contains("HTTP POST https://api.example/hook") && !keys.body.contains("s3cret"), "{}", keys.body);

    let component = h.state.component.get();
    let spec = component.function("echo").expect("f").1;
    let run = NewRun::of(spec, json!({}), Trigger::Api, "c", now_micros());
    let mut step = Step::reached("charge", "run", 0, now_micros());
    step.status = plinth_core::steps::StepStatus::Succeeded;
    step.output = Some(json!({"charged": 12}));
    step.duration_ms = Some(3.5);
    step.finished_at = Some(now_micros());
    let run = h.state.store.enqueue_with_steps(run, vec![step]).await.expect("with steps");
    let page = h.get(&format!("/ui/runs/{}", run.run_id)).await;
    assert!(
        page.body.contains("charge") && page.body.contains("charged") && page.body.contains("class=\"timeline\""),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn events_list_and_detail_say_what_they_started() {
    let h = harness();
    let sent = h
        .send(
            Request::post("/events")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"name": "order/created", "data": {"sku": "<b>x</b>"}}"#))
                .expect("request"),
        )
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
    let sent: Value = serde_json::from_str(&sent.body).expect("json");
    let id = sent["event_ids"][0].as_str().expect("an id").to_string();
    assert_eq!(sent["run_ids"][0].as_array().map(Vec::len), Some(1), "echo listens: {sent}");
    let list = h.get("/ui/events?name=order/created").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains(&id), "{}", list.body);
    let page = h.get(&format!("/ui/events/{id}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("/ui/runs/01"), "a link to the run it started: {}", page.body);
    assert!(!page.body.contains("<b>x</b>"), "data is escaped");
    assert_eq!(h.get("/ui/events/no-such-event").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_pages_functions_and_assets_are_404() {
    let h = harness();
    let page = h.get("/ui/nowhere").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("No such page"));
    let page = h.get("/ui/functions/%3Cscript%3E").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(!page.body.contains("<script>"), "{}", page.body);
    let css = h.get("/ui/assets/plinth.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.headers.get("content-type").and_then(|v| v.to_str().ok()), Some("text/css; charset=utf-8"));
    assert_eq!(h.get("/ui/assets/plinth.js").await.status, StatusCode::OK);
    assert_eq!(h.get("/ui/assets/evil.js").await.status, StatusCode::NOT_FOUND);
    assert_eq!(h.get("/health").await.status, StatusCode::OK, "the API is untouched");
    assert_eq!(h.get("/nowhere").await.status, StatusCode::NOT_FOUND, "the API's own 404 stays");
}

#[test]
fn mount_paths_are_checked() {
    assert_eq!(check_path("/ui"), Ok(()));
    assert_eq!(check_path("/ops/dashboard"), Ok(()));
    for bad in ["", "/", "ui", "/ui/", "//ui", "/u i", "/runs", "/health/ui", "/ui?x"] {
        assert!(check_path(bad).is_err(), "{bad:?}");
    }
}

/// The body of a live stream until it ends (or `secs` pass).
async fn stream_of(resp: axum::response::Response, secs: u64) -> String {
    use http_body_util::BodyExt;
    let mut body = resp.into_body();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await {
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    text
}

#[tokio::test]
async fn a_live_stream_follows_a_run_until_it_ends() {
    use tower::ServiceExt;
    let h = harness();
    let app = || plinth_server::router_with(h.state.clone(), "/ui", crate::router(h.state.clone(), "/ui", None));
    let get = |uri: String| Request::get(uri).body(Body::empty()).expect("request");
    let done = h.succeeded(json!({}), json!({})).await;
    let resp = app().oneshot(get(format!("/ui/runs/{done}/live"))).await.expect("infallible");
    assert_eq!(resp.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("text/event-stream"));
    let text = stream_of(resp, 5).await;
    assert!(text.contains("event: run") && text.contains("data: succeeded/1/0/0"), "one event, then the end: {text}");

    let queued = h.queued("echo", json!({})).await;
    let resp = app().oneshot(get(format!("/ui/runs/{queued}/live"))).await.expect("infallible");
    let store = h.state.store.clone();
    let id = queued.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        store.cancel(&id, now_micros()).await.expect("cancel");
    });
    let text = stream_of(resp, 10).await;
    assert!(text.contains("data: queued/0/0/0") && text.contains("data: cancelled/0/0/0"), "{text}");
    assert!(text.find("queued").unwrap_or(usize::MAX) < text.find("cancelled").unwrap_or(0), "in order");

    assert_eq!(h.get("/ui/runs/01KBAAAAAAAAAAAAAAAAAAAAAA/live").await.status, StatusCode::NOT_FOUND);
    assert_eq!(h.get("/ui/runs/not-an-id/live").await.status, StatusCode::NOT_FOUND);
    let page = h.get(&format!("/ui/runs/{queued}")).await;
    assert!(!page.body.contains("data-live"), "an ended run's page does not follow it");
    let open = h.queued("echo", json!({})).await;
    let page = h.get(&format!("/ui/runs/{open}")).await;
    assert!(page.body.contains(&format!("data-live=\"/ui/runs/{open}/live\"")), "a queued run's page follows it");
}

#[tokio::test]
async fn a_live_stream_tails_the_running_attempts_log() {
    use tower::ServiceExt;
    let h = harness();
    let id = h.queued("echo", json!({})).await;
    let now = now_micros();
    let claim = ClaimRequest {
        owner: "w".into(),
        now,
        lease_until: now + 60_000_000,
        wants: vec![("echo".into(), 1)],
        limit: 1,
        limits: Arc::default(),
    };
    assert_eq!(h.state.store.claim(claim).await.expect("claim").runs.len(), 1);
    let app = plinth_server::router_with(h.state.clone(), "/ui", crate::router(h.state.clone(), "/ui", None));
    let resp = app.oneshot(Request::get(format!("/ui/runs/{id}/live")).body(Body::empty()).expect("request")).await;
    let store = h.state.store.clone();
    let run_id = id.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let line = plinth_store::LogLine { seq: 0, ts: now_micros(), line: "working".into() };
        store.append_logs(&run_id, 1, vec![line]).await.expect("log");
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let fin = plinth_store::FinishRequest {
            run_id,
            owner: "w".into(),
            attempt: 1,
            finish: plinth_core::Finish::Succeeded(json!("done")),
            now: now_micros(),
            duration: std::time::Duration::from_millis(5),
        };
        assert!(store.finish(fin).await.expect("finish"));
    });
    let text = stream_of(resp.expect("infallible"), 10).await;
    let at = |m: &str| text.find(m).unwrap_or_else(|| panic!("{m} missing from {text}"));
    assert!(at("data: running/1/0/0") < at("data: running/1/0/1"), "a new log line is an event of its own: {text}");
    assert!(at("data: running/1/0/1") < at("data: succeeded/1/0/1"), "then the end: {text}");
    assert_eq!(text.matches("data: running/1/0/1").count(), 1, "no event without a change: {text}");
    let page = h.get(&format!("/ui/runs/{id}")).await;
    assert!(page.body.contains("working"), "the page shows the line");
}
