//! The host layer: the only part of ntmem that knows it runs on Linux (x86_64).
//!
//! Everything above this crate sees simulated hardware; this crate provides the host
//! mechanisms it is built from (`DESIGN.md`, "The model"):
//!
//! - [`ram`]: simulated physical memory as a sealed, sparse memfd, with a private direct
//!   map for the kernel's own accesses.
//! - [`reservation`]: address-space reservations; the only code that maps with
//!   `MAP_FIXED`, and only inside a reservation it owns.
//! - [`fault`]: the process-wide SIGSEGV/SIGBUS handler and its registry of address ranges
//!   owned by live machines.
//! - [`guard`]: guarded calls on small kernel stacks, with an escape hatch back to the
//!   call boundary (bugchecks, exceptions), built on `c/guard.c`.
//! - [`context`] and [`exception`]: Windows' CONTEXT and EXCEPTION_RECORD, capture and
//!   restore, and hardware exceptions in driver images turned into calls of the exception
//!   dispatcher on the faulting stack.
//! - [`sparse`]: large tables of atomic bytes that cost memory only where written.
//! - [`thunk`]: the import thunks a driver image's IAT points at, which record the
//!   caller's context at each call, and the per-thread GS block they record it in.
//! - [`watchdog`]: a periodic timer that ends code which never returns through the same
//!   escape hatch.
//! - [`window`]: small fixed-size views of a reservation, checked once, for the
//!   kernel's hot paths.
//!
//! This crate and the C boundary are the only places with `unsafe`. Every `unsafe` block
//! says why it is sound; no Rust reference to simulated memory is ever created.

pub mod context;
mod error;
pub mod exception;
pub mod fault;
pub mod guard;
pub mod ram;
pub mod reservation;
pub mod sparse;
mod sys;
#[cfg(test)]
mod testing;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod thunk;
pub mod watchdog;
pub mod window;

pub use error::HostError;
pub use fault::{
    register_fault_range, registered_range, try_register_fault_range, Access, Fault, FaultAction, FaultHandler,
    FaultRange, FAULT_RANGE_SLOTS,
};
pub use guard::{
    call_guarded, current_stack, escape, exception_frame_active, in_guarded_call, set_exception_catcher, stack_pointer,
    token, Escape, ExceptionCatcher, Stack, ESCAPE_EXCEPTION, ESCAPE_FAST_FAIL, SIGNAL_STACK_SIZE,
};
pub use ram::Ram;
pub use reservation::{Placement, Prot, Reservation};
pub use sparse::SparseBytes;
pub use sys::{default_sigpipe, page_size, peak_rss_bytes};
pub use watchdog::{Watch, Watchdog};
pub use window::Window;
