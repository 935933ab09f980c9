//! The NATS JetStream bridge, black-box: the real binary against a nats-server of the test's own
//! (`/usr/sbin/nats-server -js` on a free port). Its own test binary, since the 10,000-message
//! test loads the machine.

#[path = "nats/bridge.rs"]
mod bridge;
#[allow(dead_code)]
#[path = "cli/harness.rs"]
mod harness;
#[path = "nats/reliability.rs"]
mod reliability;
#[path = "nats/server.rs"]
mod server;
