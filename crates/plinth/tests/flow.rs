//! Flow control, black-box with the real binary: a keyed concurrency limit held by three
//! PostgreSQL nodes through a SIGKILL, sampled from the database every 10 ms; round-robin
//! between keys against a backlog of 5,000 runs; a throttle's starts over ten seconds; 100
//! debounced events making one run; timeouts and cancel_on ending runs; events gathered in batches. Its own test binary, as it loads the machine.

#[path = "flow/batch.rs"]
mod batch;
#[path = "flow/debounce.rs"]
mod debounce;
#[path = "flow/expiry.rs"]
mod expiry;
#[path = "flow/fairness.rs"]
mod fairness;
#[allow(dead_code)]
#[path = "cli/harness.rs"]
mod harness;
#[path = "flow/lanes.rs"]
mod lanes;
#[path = "cli/pg.rs"]
mod pg;
#[path = "flow/throttle.rs"]
mod throttle;
