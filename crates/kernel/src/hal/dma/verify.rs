//! Driver Verifier's DMA checking (flag 0x80, `--verifier dma`), the checks ntmem
//! makes: bug check 0xE6 DRIVER_VERIFIER_DMA_VIOLATION with the subcodes and
//! parameters of research/dma-verifier-views.md §2.2 (Microsoft's 0xE6 page).
//!
//! Made: wrong IRQL (0x13, P2 1 "different from expected" for the routines that
//! require exactly DISPATCH_LEVEL or PASSIVE_LEVEL, §1.8); double frees of common
//! buffers (0x03), channels (0x04), map registers (0x05), lists (0x06); the adapter
//! released with common buffers (0x07), a channel (0x08), map registers (0x09) or
//! lists (0x0A) outstanding; a second channel at once (0x0B); too many map registers
//! at once (0x0C); map registers freed while still mapped, i.e. never flushed
//! (0x10); a zero-length map (0x21); a system DMA channel flushed by
//! FlushAdapterBuffersEx while its transfer is neither complete nor cancelled
//! (0x23: 0, controller, channel; [`super::v3`]).
//!
//! The shadow buffers (0x0F): under DMA checking every bus master's mapping is
//! double-buffered and framed by "DmaVrfy0" tags and 0x0F padding, checked at the
//! flush ([`super::shadow`]).
//!
//! Not made: the unlocked-buffer and MDL-range checks (0x0E, 0x1F), double mapping
//! (0x1D), the adapter reference counts (0x11), free map registers overwritten
//! (0x0F/3).

use crate::bugcheck::BugCheck;
use crate::ke::irql::Irql;
use crate::ke::processor::Cpu;
use crate::vf::VerifierFlags;
use crate::Machine;

use super::DRIVER_VERIFIER_DMA_VIOLATION;

/// Whether DMA checking is on.
pub(crate) fn on(m: &Machine) -> bool {
    m.verifier().contains(VerifierFlags::DMA_CHECKING)
}

/// The 0xE6 stop with `p` (P1 the subcode).
pub(crate) fn stop(m: &Machine, p: [u64; 4]) -> BugCheck {
    m.bugcheck(DRIVER_VERIFIER_DMA_VIOLATION, p)
}

/// Under DMA checking, a routine that must run at exactly `expected` stops with
/// 0x13 (1, expected, current) at any other IRQL.
pub(crate) fn irql_exactly(cpu: &Cpu<'_>, expected: Irql) -> Result<(), BugCheck> {
    let m = cpu.machine();
    if on(m) && cpu.irql() != expected {
        return Err(stop(m, [0x13, 1, u64::from(expected.0), u64::from(cpu.irql().0)]));
    }
    Ok(())
}

/// Under DMA checking, `violated` stops with `p`.
pub(crate) fn check(m: &Machine, violated: bool, p: [u64; 4]) -> Result<(), BugCheck> {
    if on(m) && violated {
        return Err(stop(m, p));
    }
    Ok(())
}
