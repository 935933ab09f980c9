//! The contract's endpoints.

pub(crate) mod bodies;
pub(crate) mod events;
pub(crate) mod meta;
pub(crate) mod request;
pub(crate) mod runs;

/// The request's correlation id, put in the request by the middleware.
#[derive(Clone, Debug)]
pub(crate) struct Correlation(pub(crate) String);
