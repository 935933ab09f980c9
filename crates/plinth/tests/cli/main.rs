//! Black-box tests of the `plinth` binary: spawned as a real process, driven over HTTP.

mod auth;
mod bench;
mod check;
mod check_partial;
mod check_python;
mod client;
mod config;
mod harness;
mod inngest;
mod inngest_app;
mod inngest_signed;
mod invalid;
mod limits;
mod log_dir;
mod new;
mod otel;
mod pg;
mod port;
mod postgres;
mod recovery;
mod serve;
mod shutdown;
mod spec;
mod spec_doc;
mod spec_generate;
mod spec_status;
