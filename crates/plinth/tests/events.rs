//! Events and schedules under failure, black-box: 5,000 events over HTTP through a SIGKILL,
//! and three PostgreSQL nodes keeping an every-second schedule while the leader is killed. Its
//! own test binary, since both load the machine.

#[allow(dead_code)]
#[path = "cli/harness.rs"]
mod harness;
#[path = "cli/pg.rs"]
mod pg;
#[path = "events/schedule_nodes.rs"]
mod schedule_nodes;
#[path = "events/sigkill.rs"]
mod sigkill;
