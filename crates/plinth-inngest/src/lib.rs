//! Plinth's side of Inngest's SDK protocol (the public `docs/SDK_SPEC.md` of `inngest/inngest`),
//! written from its description: an app built with an Inngest SDK registers its functions with
//! Plinth and Plinth serves them as its own functions.
//!
//! - [`register`]: the register request, and each function's options mapped to Plinth's rules
//!   (or refused by name).
//! - [`call`]: one call of a function: the request made from the run and its steps, the
//!   answer read as Plinth's step ops.
//! - [`expr`]: Inngest's expressions in Plinth's variables.
//! - [`sign`]: request signing and answer verification with a signing key.

pub mod call;
pub mod expr;
pub mod register;
pub mod sign;
