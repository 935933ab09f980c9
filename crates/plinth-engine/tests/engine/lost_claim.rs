//! A claim whose answer is lost while PostgreSQL commits it: the node's claim gives up after the
//! store's time limit (5 s) and reports an error, and the runs it leased stay leased to the node,
//! which never heard of them. The heartbeat takes them in (`Store::adopt`) before the rescuer
//! would take them back as lost. Needs `PLINTH_TEST_DATABASE_URL`; without it the test says it
//! is skipped (and fails under CI).

use crate::harness::{database_url, outcomes, rust_fn};
use crate::pg_node::PgNode;
use plinth_core::RunStatus;
use plinth_engine::{EngineConfig, Handlers};
use serde_json::json;
use std::time::Duration;

/// Three seconds in the claim's statement (a trigger on the attempt it records) and three more
/// in its commit (a deferred trigger): each statement stays under the server's limit (4 s),
/// the whole claim goes past the node's (5 s), and the commit ends after the node gave up.
const SLOW_CLAIM: &str = "
CREATE FUNCTION slow_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_sleep(3);
  RETURN NULL;
END $$;
CREATE TRIGGER slow_claim AFTER INSERT ON attempts FOR EACH ROW EXECUTE FUNCTION slow_claim();
CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON attempts DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW EXECUTE FUNCTION slow_claim();";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_of_a_claim_whose_answer_was_lost_start_on_their_node_in_their_attempt() {
    let Some(url) = database_url("the lost-claim engine test") else { return };
    // Why twelve seconds: the claim commits 6 s after it began, when its lease is half gone;
    // the heartbeat (every 4 s) takes the run in at 8 s, 4 s before the lease would run out.
    let config = EngineConfig { lease: Duration::from_secs(12), kill_grace: Duration::from_millis(200), ..Default::default() };
    let node = PgNode::start(url, &rust_fn("job", "echo", "{retries: {max_attempts: 1}}"), Handlers::builtin(), config).await;
    node.execute(SLOW_CLAIM).await;
    let id = node.enqueue("job", json!({"n": 9})).await;

    let run = node.wait_terminal(&id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(run.output, Some(json!({"n": 9})));
    assert_eq!(run.attempt, 1);
    assert_eq!(outcomes(&run), ["succeeded"], "the attempt the lost claim leased ran; it was not lost");
    node.stop().await;
}
