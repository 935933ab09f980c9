//! Black-box tests of the `plinth` binary: spawned as a real process, driven over HTTP.

mod bench;
mod harness;
mod recovery;
