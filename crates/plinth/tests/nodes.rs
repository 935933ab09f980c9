//! Several nodes on one PostgreSQL schema, with a SIGKILL: its own test binary, because three
//! nodes working through 10,000 runs load the machine; cargo runs test binaries one after
//! another, so the other black-box tests do not run beside it.

#[allow(dead_code)]
#[path = "cli/harness.rs"]
mod harness;
#[path = "cli/nodes.rs"]
mod nodes;
#[path = "cli/pg.rs"]
mod pg;
