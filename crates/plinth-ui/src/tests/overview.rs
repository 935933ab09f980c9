//! The overview's last hour and its nodes.

use super::harness;
use axum::http::StatusCode;
use plinth_core::timefmt::now_micros;
use plinth_core::{Code, Finish, RunError};
use plinth_store::NodeBeat;
use serde_json::json;

fn beat(id: &str, host: &str, seen_at: i64, leads: bool) -> NodeBeat {
    NodeBeat { id: id.into(), host: host.into(), version: "9.9.9".into(), started_at: seen_at - 1, seen_at, leads }
}

#[tokio::test]
async fn the_last_hour_and_the_nodes_are_shown() {
    let h = harness();
    h.succeeded(json!({"n": 1}), json!("ok")).await;
    h.succeeded(json!({"n": 2}), json!("ok")).await;
    h.ended(json!({"n": 3}), Finish::Failed(RunError::new(Code::HandlerFailed, "boom"))).await;
    let store = &h.state.store;
    store.roll_up(now_micros() + 1).await.expect("roll up");
    store.beat(beat("node-one", "box-1", now_micros(), true)).await.expect("beat");
    let page = h.get("/ui").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let hour = &page.body[page.body.find("id=\"last-hour\"").expect("the last hour")..];
    let echo = &hour[hour.find("/ui/functions/echo").expect("echo's row")..];
    let echo = &echo[..echo.find("</tr>").expect("row end")];
    assert!(echo.contains("status=succeeded\">2</a>") && echo.contains("status=failed\">1</a>"), "{echo}");
    let code = Code::HandlerFailed.as_str();
    assert!(echo.contains(&format!("<a href=\"/errors/{code}\" class=\"mono\">{code}</a> ×1")), "{echo}");
    assert!(echo.contains("<rect ") && echo.contains("max 3/min"), "a bar for this minute: {echo}");
    assert!(echo.matches(" ms</td>").count() + echo.matches(" µs</td>").count() + echo.matches(" s</td>").count() >= 2, "{echo}");
    let nodes = &page.body[page.body.find("id=\"nodes\"").expect("the nodes")..];
    assert!(nodes.contains("node-one") && nodes.contains("box-1") && nodes.contains("9.9.9"), "{nodes}");
    assert!(nodes.contains(">alive<") && nodes.contains("leads (rescue"), "{nodes}");
}

#[tokio::test]
async fn before_any_roll_up_or_beat_the_overview_says_so() {
    let h = harness();
    h.succeeded(json!({"n": 1}), json!("ok")).await;
    let page = h.get("/ui").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("counted up to not yet"), "{}", page.body);
    assert!(page.body.contains("No node has said it is alive yet"), "{}", page.body);
    assert!(!page.body.contains("<rect "), "no bar before the roll-up");
}

#[tokio::test]
async fn a_lost_node_does_not_lead_and_its_fields_are_escaped() {
    let h = harness();
    let long_ago = now_micros() - 120_000_000;
    h.state.store.beat(beat("node-<b>old</b>", "<script>alert(1)</script>", long_ago, true)).await.expect("beat");
    let page = h.get("/ui").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let nodes = &page.body[page.body.find("id=\"nodes\"").expect("the nodes")..];
    assert!(nodes.contains(">lost<") && !nodes.contains("leads (rescue"), "{nodes}");
    assert!(!page.body.contains("<script>alert(1)") && nodes.contains("&#60;script&#62;"), "{nodes}");
    assert!(nodes.contains("node-&#60;b&#62;old"), "{nodes}");
}
