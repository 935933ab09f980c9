//! Every way an answer breaks the step protocol fails the run with its own code, not retried.

use crate::harness::{client, python3_available, send};
use crate::scripted::{ended, serve, start};
use serde_json::{Value, json};

fn cases() -> Vec<(&'static str, Value, &'static str)> {
    let step = |id: &str| json!({"ops": [{"op": "step", "id": id, "output": 1}]});
    let sleep = |d: &str| json!({"ops": [{"op": "sleep", "id": "nap", "duration": d}]});
    vec![
        ("not JSON", json!({"script": ["raw:hello"]}), "PLINTH_050"),
        ("neither output nor ops", json!({"script": [{"result": 1}]}), "PLINTH_050"),
        ("unknown op", json!({"script": [{"ops": [{"op": "fly", "id": "a"}]}]}), "PLINTH_051"),
        ("repeated stored id", json!({"script": [step("a"), step("a")]}), "PLINTH_052"),
        ("one id twice", json!({"script": [{"ops": [{"op": "step", "id": "a"}, {"op": "step", "id": "a"}]}]}), "PLINTH_052"),
        ("plan of one", json!({"script": [{"ops": [{"op": "plan", "id": "a"}]}]}), "PLINTH_053"),
        (
            "targeted call answers another step",
            json!({"script": [{"ops": [{"op": "plan", "id": "a"}, {"op": "plan", "id": "b"}]}], "targeted": step("zzz")}),
            "PLINTH_054",
        ),
        (
            "memo over the limit",
            json!({"script": [{"ops": [{"op": "step", "id": "big", "output": "x".repeat(3000)}]}]}),
            "PLINTH_055",
        ),
        (
            "invoke of an unknown function",
            json!({"script": [{"ops": [{"op": "invoke", "id": "c", "function": "nope"}]}]}),
            "PLINTH_056",
        ),
        (
            "invoke with an input its schema refuses",
            json!({"script": [{"ops": [{"op": "invoke", "id": "c", "function": "plain", "input": 5}]}]}),
            "PLINTH_056_SCHEMA",
        ),
        (
            "order changed, as a helper reports it",
            json!({"script": [{"error": {"code": "PLINTH_058", "message": "b before a"}}]}),
            "PLINTH_058",
        ),
        ("a handler that never finishes", json!({"script": ["forever"]}), "PLINTH_059"),
        ("sleep of 0s", json!({"script": [sleep("0s")]}), "PLINTH_060"),
        ("negative sleep", json!({"script": [sleep("-5s")]}), "PLINTH_060"),
        ("unparsable sleep", json!({"script": [sleep("soon")]}), "PLINTH_060"),
        (
            "wait_for_event whose if is not CEL",
            json!({"script": [{"ops": [{"op": "wait_for_event", "id": "w", "event": "shop/x", "if": "event.data.=="}]}]}),
            "PLINTH_060",
        ),
        (
            "plan mixed with a sleep",
            json!({"script": [{"ops": [{"op": "plan", "id": "a"}, {"op": "plan", "id": "b"}, {"op": "sleep", "id": "c", "duration": "1s"}]}]}),
            "PLINTH_060",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_break_the_protocol_fail_with_their_code() {
    if !python3_available("the step protocol's errors") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let s = serve(dir.path(), &["--max-memo-bytes", "2000", "--max-step-calls", "25"]);
    let mut started = Vec::new();
    for (what, input, code) in cases() {
        started.push((what, start(&s, input).await, code));
    }
    for (what, id, code) in started {
        let run = ended(&s, &id).await;
        assert_eq!(run["status"], "failed", "{what}: {run}");
        let got = run["error"]["code"].as_str().unwrap_or("");
        if code == "PLINTH_056_SCHEMA" {
            assert_eq!(got, "PLINTH_056", "{what}: {run}");
            assert!(run["error"]["message"].as_str().unwrap_or("").contains("schema"), "{what}: {run}");
            continue;
        }
        assert_eq!(got, code, "{what}: {run}");
        assert_eq!(run["error"]["retryable"], false, "{what}: a protocol error is not retried: {run}");
        assert_eq!(run["attempt"], 1, "{what}: failed on the first attempt: {run}");
        let (status, entry) = send(client().get(s.url(&format!("/errors/{code}")))).await;
        assert_eq!(status, 200, "{code} is in the catalog: {entry}");
    }
    let wrong_if =
        start(&s, json!({"script": [{"ops": [{"op": "wait_for_event", "id": "w", "event": "shop/x", "if": "event.data.=="}]}]}))
            .await;
    let run = ended(&s, &wrong_if).await;
    assert!(run["error"]["message"].as_str().unwrap_or("").contains("ops[0]: `if`"), "names the field: {run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoke_cycle_stops_at_the_depth_bound() {
    if !python3_available("the invoke depth bound") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let s = serve(dir.path(), &[]);
    let top = start(&s, json!({"script": ["recurse", {"output": "unwound"}]})).await;
    let run = ended(&s, &top).await;
    assert_eq!((run["status"].as_str(), run["output"].as_str()), (Some("succeeded"), Some("unwound")), "{run}");
    let (_, page) = send(client().get(s.url("/runs?trigger=invoke&status=failed&limit=100"))).await;
    let failed = page["runs"].as_array().cloned().unwrap_or_default();
    assert_eq!(failed.len(), 1, "exactly the deepest run fails: {page}");
    assert_eq!(failed[0]["error"]["code"], "PLINTH_057");
    let (_, all) = send(client().get(s.url("/runs?trigger=invoke&limit=100"))).await;
    assert_eq!(all["runs"].as_array().map(Vec::len), Some(16), "16 invoked runs below the top one: {all}");
}
