//! x64 unwind data and virtual unwinding, as `RtlVirtualUnwind` does it.
//!
//! Microsoft, "x64 exception handling" (learn.microsoft.com/cpp/build/exception-handling-x64):
//! every function that allocates stack or calls others has a RUNTIME_FUNCTION pointing at an
//! UNWIND_INFO whose unwind codes undo its prolog; "x64 prolog and epilog"
//! (…/cpp/build/prolog-and-epilog) restricts epilogues to a form the unwinder recognises by
//! reading the code. Research note §6.5 summarises both, §7 U-13 covers version 2.
//!
//! - [`UnwindInfo::read`] decodes one UNWIND_INFO (version 1 or 2, flags, frame register,
//!   every [`UnwindOp`], the language-specific handler or the chained RUNTIME_FUNCTION).
//! - [`virtual_unwind`] turns a [`Context`] inside a function into its caller's context and
//!   reports the establisher frame and, when asked for and the PC is in the body, the
//!   language handler; [`unwind_leaf`] does the same for a function with no entry.
//!
//! Everything is read through [`ReadMemory`](crate::ReadMemory) at virtual addresses, so the
//! same code works on a simulated machine, a laid-out image in a test and a fuzzer's bytes.

mod context;
mod epilog;
mod info;
mod virtual_unwind;

pub use context::{Context, Gpr};
pub use info::{FrameRegister, UnwindCode, UnwindFlags, UnwindInfo, UnwindOp, UnwindTail};
pub use virtual_unwind::{unwind_leaf, virtual_unwind, LanguageHandler, PcLocation, UnwindOutcome, MAX_CHAIN_DEPTH};

use crate::memory::ReadError;

/// Why unwind data could not be decoded or a frame could not be unwound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnwindError {
    /// Memory the unwinder needed (unwind data, code, stack) could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// UNWIND_INFO.Version is neither 1 nor 2.
    #[error("unwind info version {0} is not 1 or 2")]
    Version(u8),
    /// UNWIND_INFO.Flags has undefined bits, or CHAININFO together with a handler flag.
    #[error("unwind info flags {0:#x} are not a valid combination")]
    Flags(u8),
    /// An unwind operation this version does not define (research note U-13: rejected rather
    /// than guessed).
    #[error("unwind operation {op} (info {info}) is not defined for version {version}")]
    UnknownOp {
        /// The UWOP_* number.
        op: u8,
        /// Its OpInfo nibble.
        info: u8,
        /// The UNWIND_INFO version.
        version: u8,
    },
    /// An operation needs more slots than CountOfCodes leaves.
    #[error("unwind operation at slot {slot} runs past CountOfCodes")]
    Truncated {
        /// Index of the operation's first slot.
        slot: usize,
    },
    /// UWOP_SET_FPREG in an UNWIND_INFO with no frame register.
    #[error("UWOP_SET_FPREG without a frame register")]
    NoFrameRegister,
    /// Chained unwind info nests deeper than [`MAX_CHAIN_DEPTH`] (or loops).
    #[error("chained unwind info nests deeper than {MAX_CHAIN_DEPTH}")]
    ChainTooDeep,
    /// The context's RIP is not inside the function entry given.
    #[error("RIP {pc:#x} is outside the function {begin:#x}..{end:#x}")]
    PcOutsideFunction {
        /// The context's RIP.
        pc: u64,
        /// The function's first byte.
        begin: u64,
        /// One past its last byte.
        end: u64,
    },
}
