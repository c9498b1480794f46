//! The executive (`Ex…` routines): the pool ([`pool`]), lookaside lists ([`lookaside`])
//! and the `SLIST_HEADER` they are built on ([`slist`]).

pub mod lookaside;
pub mod pool;
pub mod resource;
pub mod slist;
