//! Step functions, black-box with the real binary: the examples (Python helper, shell, HTTP),
//! every protocol error with its code, and the waits (sleep, events, invoke) with cancel and
//! rerun; 200 workflows through SIGKILLs; 1,000 waiting workflows on three PostgreSQL nodes.
//! Its own test binary, as the runs take seconds of waiting.

#[path = "steps/examples.rs"]
mod examples;
#[path = "steps/flows.rs"]
mod flows;
#[allow(dead_code)]
#[path = "cli/harness.rs"]
mod harness;
#[path = "steps/nodes.rs"]
mod nodes;
#[path = "cli/pg.rs"]
mod pg;
#[path = "steps/protocol.rs"]
mod protocol;
#[path = "steps/rust.rs"]
mod rust;
#[path = "steps/scripted.rs"]
mod scripted;
#[path = "steps/sigkill.rs"]
mod sigkill;
