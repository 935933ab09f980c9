//! Step functions, black-box with the real binary: the examples (Python helper, shell, HTTP),
//! every protocol error with its code, and the waits (sleep, events, invoke) with cancel and
//! rerun. Its own test binary, as the runs take seconds of waiting.

#[path = "steps/examples.rs"]
mod examples;
#[path = "steps/flows.rs"]
mod flows;
#[allow(dead_code)]
#[path = "cli/harness.rs"]
mod harness;
#[path = "steps/protocol.rs"]
mod protocol;
#[path = "steps/rust.rs"]
mod rust;
#[path = "steps/scripted.rs"]
mod scripted;
