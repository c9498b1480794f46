//! The simulated Windows kernel, as drivers see it.
//!
//! Layers (DESIGN.md), each a module named after its NT component prefix:
//! [`ke`] (processors, IRQL, spin locks, kernel stacks) and [`mm`] (PFN database,
//! frame allocator, page tables, address spaces, system PTEs), tied together by
//! [`Machine`], with [`bugcheck`] the one way a machine stops. Later layers (`ex`
//! pool, `io`, `hal`, `vf`) build on these.
//!
//! No `unsafe` here: everything that touches the host goes through `ntmem-host`.

#![forbid(unsafe_code)]

pub mod bugcheck;
pub mod cm;
pub mod ex;
pub mod hal;
pub mod halt;
pub mod io;
pub mod ke;
mod machine;
pub mod mm;
pub mod ob;
pub mod rtl;
pub mod trap;
pub mod vf;

pub use bugcheck::{BugCheck, BugCheckCode, StackFrame};
pub use halt::Halt;
pub use ke::irql::Irql;
pub use ke::processor::Cpu;
pub use machine::{BootError, BootSummary, Machine};
