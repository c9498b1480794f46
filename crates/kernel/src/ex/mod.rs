//! The executive (`Ex…` routines): the pool ([`pool`]) and lookaside lists ([`lookaside`]).

pub mod lookaside;
pub mod pool;
pub mod resource;
