//! Driver Verifier's DMA checking (flag 0x80, `--verifier dma`), the checks ntmem
//! makes: bug check 0xE6 DRIVER_VERIFIER_DMA_VIOLATION with the subcodes and
//! parameters of research/dma-verifier-views.md §2.2 (Microsoft's "Bug Check 0xE6"
//! page).
//!
//! Made: wrong IRQL (0x13: P2 1 "different from expected" for the routines that
//! require exactly DISPATCH_LEVEL or PASSIVE_LEVEL, P2 2 "above the maximum" for
//! those allowed up to DISPATCH_LEVEL, §1.8); double frees of common buffers
//! (0x03), channels (0x04), map registers (0x05), lists (0x06); the adapter
//! released with common buffers (0x07), a channel (0x08), map registers (0x09) or
//! lists (0x0A) outstanding; a second channel at once (0x0B); too many map
//! registers at once (0x0C); more bytes mapped since the last flush than the
//! register file holds (0x0D); a mapping of a buffer whose MDL is neither locked
//! nor built for nonpaged pool (0x0E, [`buffer`]); map registers freed while still
//! mapped, i.e. never flushed (0x10); one mapping needing more registers than the
//! file has (0x15); a mapping that starts before the MDL or runs past its end
//! (0x1F with P2 1 or 2, [`buffer`]); a flush whose CurrentVa is not in the MDL
//! (0x1B); a range mapped twice without a flush between (0x1D); a flush of a
//! register file with nothing mapped (0x20); a zero-length map (0x21); a system
//! DMA channel flushed by FlushAdapterBuffersEx while its transfer is neither
//! complete nor cancelled (0x23: 0, controller, channel; [`super::v3`]).
//!
//! The shadow buffers (0x0F): under DMA checking every mapping (a bus master's, and
//! a system DMA channel's where its padded run fits a window) is double-buffered,
//! and every common buffer padded, framed by "DmaVrfy0" tags and 0x0F padding and
//! checked at the flush or the free ([`super::shadow`]).
//!
//! ntmem's readings, where the 0xE6 page names a check but not the moment it is
//! made: 0x0D, 0x15 and 0x1D are checked at MapTransfer(Ex), before anything is
//! mapped; 0x0D's P2 counts the bytes mapped since the last flush *including* the
//! request, P3 is the file's registers times the page size; 0x1D's P3 is the end of
//! the buffer (exclusive) and P4 the first byte of it already mapped.
//!
//! Not made: 0x11 (too many outstanding adapter references: ntmem's adapters are
//! not shared objects and the page does not say what counts as a reference), free
//! map registers overwritten (0x0F/3: a file's pages go back to the system when it
//! is freed), 0x16 (the registers are not mapped in system space), 0x1F with P2 3–5
//! (GetDmaAlignment is 1 on x86 and x64, so nothing is misaligned), 0x00, 0x01,
//! 0x02, 0x1E, 0x22, 0x24–0x26.

use ntmem_machine::Va;

use crate::bugcheck::BugCheck;
use crate::ke::irql::Irql;
use crate::ke::processor::Cpu;
use crate::mm::mdl::{self, Mdl, MdlFlags};
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

/// Under DMA checking, a routine allowed up to `maximum` stops with 0x13 (2,
/// maximum, current) above it.
pub(crate) fn irql_at_most(cpu: &Cpu<'_>, maximum: Irql) -> Result<(), BugCheck> {
    let m = cpu.machine();
    if on(m) && cpu.irql() > maximum {
        return Err(stop(m, [0x13, 2, u64::from(maximum.0), u64::from(cpu.irql().0)]));
    }
    Ok(())
}

/// Under DMA checking, the buffer a mapping names (MapTransfer(Ex),
/// Get/BuildScatterGatherList): 0x0E (MDL) when the MDL's pages are neither locked
/// (MDL_PAGES_LOCKED, set by MmProbeAndLockPages and MmAllocatePagesForMdl) nor
/// nonpaged pool (MDL_SOURCE_IS_NONPAGED_POOL, MmBuildMdlForNonPagedPool) nor a
/// partial MDL of such an MDL (MDL_PARTIAL); 0x1F (1, CurrentVa, MDL) when
/// CurrentVa lies before the MDL's first byte, (2, CurrentVa, MDL) when the range
/// runs past its last. Without the verifier a range outside the MDL is 0x1B
/// ([`super::plan`]).
///
/// # Errors
/// Those stops; 0x50 for an MDL that cannot be read.
pub(crate) fn buffer(cpu: &Cpu<'_>, mdl: Mdl, current_va: Va, length: u32) -> Result<(), BugCheck> {
    let m = cpu.machine();
    if !on(m) {
        return Ok(());
    }
    let h = mdl::read_header(cpu, mdl)?;
    let resident = MdlFlags::PAGES_LOCKED | MdlFlags::SOURCE_IS_NONPAGED_POOL | MdlFlags::PARTIAL;
    check(m, !h.flags.intersects(resident), [0x0E, mdl.0.get(), 0, 0])?;
    let start = h.virtual_address().get();
    let end = start.saturating_add(u64::from(h.byte_count));
    let va = current_va.get();
    check(m, va < start, [0x1F, 1, va, mdl.0.get()])?;
    check(m, va.saturating_add(u64::from(length)) > end, [0x1F, 2, va, mdl.0.get()])
}

/// Under DMA checking, FlushAdapterBuffers' `CurrentVa` must lie in its MDL: 0x1B
/// (CurrentVa, MDL) otherwise.
///
/// # Errors
/// That stop; 0x50 for an MDL that cannot be read.
pub(crate) fn flushed_range(cpu: &Cpu<'_>, mdl: Mdl, current_va: Va) -> Result<(), BugCheck> {
    let m = cpu.machine();
    if !on(m) {
        return Ok(());
    }
    let h = mdl::read_header(cpu, mdl)?;
    let start = h.virtual_address().get();
    let end = start.saturating_add(u64::from(h.byte_count));
    let va = current_va.get();
    check(m, va < start || va >= end, [0x1B, va, mdl.0.get(), 0])
}
