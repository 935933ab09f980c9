//! Black-box tests of the engine: a real SQLite store in a temp dir, a component parsed from
//! inline YAML, command handlers as `sh -c` scripts, and in-process handlers as closures.

mod command;
mod edges;
mod end_writes;
mod harness;
mod http;
mod in_process;
mod inngest_signed;
mod lifecycle;
mod live;
mod logs;
mod lost_claim;
mod nodes;
mod overview;
mod pg_node;
mod races;
mod resume;
mod schedules;
mod scheduling;
mod start_now;
mod step_writes;
mod steps_rust;
mod trace;
