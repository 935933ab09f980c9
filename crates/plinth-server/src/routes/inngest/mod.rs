//! The routes Inngest's SDKs call when pointed at Plinth: the event API (`POST /e/{event_key}`)
//! and the registration of an app's functions (`POST /fn/register`). Both sit outside `auth:`
//! (the SDKs send no credential of ours) and check their own keys.

pub(crate) mod events;
pub(crate) mod register;

pub(crate) use events::{PATH, events};
