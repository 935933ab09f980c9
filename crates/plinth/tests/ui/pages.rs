//! Reading in the browser: the overview without console errors, a `<script>` input that stays
//! text, the runs list filtered from its form, a run with steps waiting for an event, cancelled
//! from its page (with the pictures of the README).

use crate::browser::{Browser, available, post, wait_status};
use crate::harness::Served;
use fantoccini::Locator;
use serde_json::json;
use std::path::PathBuf;

fn example(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples")).join(name).join("component.yaml")
}

fn serve(component: &str, dir: &std::path::Path) -> Served {
    Served::start(&example(component), &["--database-url", "sqlite://runs.db", "--log-level", "warn,plinth::serve=info"], dir)
}

#[tokio::test]
async fn the_overview_loads_cleanly_and_a_script_in_an_input_stays_text() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let s = serve("hello", dir.path());
    let base = s.url("");
    let evil =
        post(&s.url("/run"), &json!({"function": "echo", "input": {"name": "<script>window.pwned = 1</script>"}}), None).await;
    let id = evil["run_id"].as_str().expect("a run id").to_string();
    wait_status(&base, &id, "succeeded", None).await;
    let failed = post(&s.url("/run"), &json!({"function": "fail", "input": {"why": "to show a failure"}}), None).await;
    let b = Browser::start().await;
    b.goto(&s.url("/ui")).await;
    b.wait_text("Functions", 10).await;
    assert!(b.text("#functions").await.contains("echo"));
    assert_eq!(b.console_errors().await, Vec::<String>::new(), "the overview logs no error");
    b.goto(&s.url(&format!("/ui/runs/{id}"))).await;
    b.wait_text("succeeded", 10).await;
    let pwned = b.client.execute("return window.pwned === undefined", vec![]).await.expect("script");
    assert_eq!(pwned, json!(true), "the input's script did not run");
    assert!(b.text("#run-input").await.contains("<script>window.pwned = 1</script>"), "it shows as text");
    assert_eq!(b.console_errors().await, Vec::<String>::new(), "a run's page logs no error");
    wait_status(&base, failed["run_id"].as_str().expect("id"), "failed", None).await;
    // Why: the upkeep adds ended runs to the last hour every 2 s; the page shows them after.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let hour = loop {
        b.goto(&s.url("/ui")).await;
        let hour = b.text("#last-hour").await;
        if hour.contains("PLINTH_") || std::time::Instant::now() > deadline {
            break hour;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    assert!(hour.contains("PLINTH_"), "the failure shows with its code in the last hour: {hour}");
    assert!(b.text("#nodes").await.contains("alive"), "this node is listed alive");
    assert_eq!(b.console_errors().await, Vec::<String>::new(), "the overview with its charts logs no error");
    b.picture("dashboard-overview.png").await;
}

#[tokio::test]
async fn the_runs_list_filters_by_status_and_by_an_input_field() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let s = serve("hello", dir.path());
    let base = s.url("");
    let mut ids = Vec::new();
    for customer in ["c-42", "c-7"] {
        let run = post(&s.url("/run"), &json!({"function": "echo", "input": {"customer": customer}}), None).await;
        ids.push(run["run_id"].as_str().expect("id").to_string());
    }
    for id in &ids {
        wait_status(&base, id, "succeeded", None).await;
    }
    let failing = post(&s.url("/run"), &json!({"function": "fail"}), None).await;
    let failing = failing["run_id"].as_str().expect("id").to_string();
    let b = Browser::start().await;
    b.goto(&s.url("/ui/runs")).await;
    let status = b.client.find(Locator::Css("select[name=status]")).await.expect("the status filter");
    status.select_by_value("succeeded").await.expect("choose succeeded");
    b.client.find(Locator::Css("form.filters button.primary")).await.expect("the button").click().await.expect("filter");
    b.wait_text(&ids[0], 10).await;
    let table = b.text("table.runs").await;
    assert!(table.contains(&ids[1]) && !table.contains(&failing), "only succeeded runs: {table}");
    b.goto(&s.url("/ui/runs")).await;
    b.client.find(Locator::Css("input[name=field]")).await.expect("field").send_keys("customer").await.expect("type");
    b.client.find(Locator::Css("input[name=equals]")).await.expect("equals").send_keys("c-42").await.expect("type");
    b.client.find(Locator::Css("form.filters button.primary")).await.expect("the button").click().await.expect("filter");
    b.wait_text(&ids[0], 10).await;
    assert!(!b.text("table.runs").await.contains(&ids[1]), "only c-42's run");
    assert!(b.client.current_url().await.expect("url").as_str().contains("field=customer"), "the filter is in the URL to share");
    b.goto(&s.url("/ui/runs?status=sleeping")).await;
    b.wait_text("is not a status", 10).await;
}

#[tokio::test]
async fn a_waiting_step_run_shows_its_wait_and_is_cancelled_from_its_page() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let s = serve("steps", dir.path());
    let base = s.url("");
    let run =
        post(&s.url("/run"), &json!({"function": "checkout", "input": {"order": "o-1", "items": ["book"], "amount": 12}}), None)
            .await;
    let id = run["run_id"].as_str().expect("id").to_string();
    wait_status(&base, &id, "waiting", None).await;
    let b = Browser::start().await;
    b.goto(&s.url(&format!("/ui/runs/{id}"))).await;
    b.wait_text("waits for an event named", 10).await;
    assert!(b.text("table.steps").await.contains("reserve"), "the steps so far");
    b.picture("dashboard-run-steps.png").await;
    b.click("#cancel").await;
    let asked = b.client.get_alert_text().await.expect("it asks first");
    assert!(asked.contains(&id), "{asked}");
    b.client.accept_alert().await.expect("confirm");
    b.wait_text("cancelled", 10).await;
    wait_status(&base, &id, "cancelled", None).await;
    assert!(b.has("#rerun").await, "a cancelled run offers a rerun");
}

#[tokio::test]
async fn a_run_started_from_the_form_turns_succeeded_without_a_reload() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let s = serve("hello", dir.path());
    let b = Browser::start().await;
    b.goto(&s.url("/ui/functions/sleep")).await;
    let input = b.client.find(Locator::Css("#start textarea[name=input]")).await.expect("the input field");
    input.clear().await.expect("clear");
    input.send_keys(r#"{"seconds": "two"}"#).await.expect("type");
    b.client.find(Locator::Css("#start button")).await.expect("start").click().await.expect("click");
    b.wait_text("/seconds", 10).await;
    b.goto(&s.url("/ui/functions/sleep")).await;
    let input = b.client.find(Locator::Css("#start textarea[name=input]")).await.expect("the input field");
    input.clear().await.expect("clear");
    input.send_keys(r#"{"seconds": 1.5}"#).await.expect("type");
    b.client.find(Locator::Css("#start button")).await.expect("start").click().await.expect("click");
    b.wait_text("Run 01", 10).await;
    let first = b.text("#run-status").await;
    assert!(["queued", "running"].contains(&first.as_str()), "it has not ended yet: {first}");
    b.client.execute("window.sameDocument = true", vec![]).await.expect("mark the document");
    b.wait_text("succeeded", 15).await;
    assert_eq!(b.text("#run-status").await, "succeeded");
    let same = b.client.execute("return window.sameDocument === true", vec![]).await.expect("script");
    assert_eq!(same, json!(true), "the page changed in place, without a reload");
    assert_eq!(b.console_errors().await.iter().filter(|e| !e.contains("422")).count(), 0, "no error but the refused input");
}

#[tokio::test]
async fn a_bulk_rerun_asks_first_and_shows_the_count() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let s = serve("hello", dir.path());
    let base = s.url("");
    for n in 0..2 {
        let run = post(&s.url("/run"), &json!({"function": "echo", "input": {"n": n}}), None).await;
        wait_status(&base, run["run_id"].as_str().expect("id"), "succeeded", None).await;
    }
    let b = Browser::start().await;
    b.goto(&s.url("/ui/runs?function=echo")).await;
    let action = b.client.find(Locator::Css("#bulk select[name=action]")).await.expect("the bulk form");
    action.select_by_value("rerun").await.expect("choose rerun");
    b.client.find(Locator::Css("#bulk button")).await.expect("review").click().await.expect("click");
    b.wait_text("This will rerun 2 runs", 10).await;
    b.client.find(Locator::Css("#bulk-confirm")).await.expect("confirm").click().await.expect("click");
    b.wait_text("Reran 2 runs", 10).await;
    b.goto(&s.url("/ui/runs?trigger=rerun")).await;
    b.wait_text("echo", 10).await;
    let rows = b.client.find_all(Locator::Css("table.runs tbody tr")).await.expect("rows");
    assert_eq!(rows.len(), 2, "two reruns");
}
