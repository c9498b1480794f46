//! Partial MDLs and MmAdvanceMdl.

use ntmem_machine::{Pfn, Va};

use super::lock::unlock_frame;
use super::{address_and_size_to_span_pages, read_header, read_pfn, shift_of, span, write_header, write_pfn};
use super::{Mdl, MdlFlags, MdlHeader, PFN_END};
use crate::bugcheck::BugCheck;
use crate::ex::pool::NtStatus;
use crate::ke::processor::Cpu;

/// `IoBuildPartialMdl(SourceMdl, TargetMdl, VirtualAddress, Length)`: `target`
/// describes `[va, va + length)` of the source's buffer (length 0: to its end),
/// with the source's frames. A mapped source makes the target
/// MDL_PARENT_MAPPED_SYSTEM_VA with `MappedSystemVa` inside the parent's mapping
/// (research/nt-algorithms.md §6.6 \[DESIGN\]).
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for an MDL outside the address space.
pub fn io_build_partial_mdl(cpu: &Cpu<'_>, source: Mdl, target: Mdl, va: Va, length: u64) -> Result<(), BugCheck> {
    let shift = shift_of(cpu.machine());
    let s = read_header(cpu, source)?;
    let t = read_header(cpu, target)?;
    let offset = va.get().wrapping_sub(s.virtual_address().get());
    let length = if length == 0 { u64::from(s.byte_count).saturating_sub(offset) } else { length };
    let inherited = s.flags & (MdlFlags::IO_PAGE_READ | MdlFlags::SOURCE_IS_NONPAGED_POOL | MdlFlags::IO_SPACE);
    let mut flags =
        (t.flags & (MdlFlags::ALLOCATED_FIXED_SIZE | MdlFlags::ALLOCATED_MUST_SUCCEED)) | inherited | MdlFlags::PARTIAL;
    if s.flags.contains(MdlFlags::MAPPED_TO_SYSTEM_VA) {
        flags |= MdlFlags::PARENT_MAPPED_SYSTEM_VA;
    }
    let h = MdlHeader {
        next: t.next,
        size: t.size,
        flags,
        process: s.process,
        mapped_system_va: s.mapped_system_va.wrapping_add(offset),
        start_va: va.page_base(shift).get(),
        byte_count: length as u32,
        byte_offset: (va.get() & (shift.page_size() - 1)) as u32,
    };
    let first = (h.start_va - s.start_va) >> shift.0;
    for i in 0..address_and_size_to_span_pages(shift, va, length) {
        write_pfn(cpu, target, i, read_pfn(cpu, source, first + i)?)?;
    }
    write_header(cpu, target, &h)
}

/// `MmAdvanceMdl(Mdl, NumberOfBytes)`: moves the buffer's start forward; the end
/// stays. Whole pages passed are unlocked at once (when the MDL is locked) and
/// dropped from the PFN array; a system mapping keeps its PTEs until unmapped
/// (recorded with MDL_FREE_EXTRA_PTES, the count stored after the PFN array).
/// The inner `Err` is `STATUS_INVALID_PARAMETER_2` when `bytes` is beyond the
/// buffer's end.
///
/// # Errors
/// PFN_LIST_CORRUPT (0x4E) as [`mm_unlock_pages`](super::mm_unlock_pages).
pub fn mm_advance_mdl(cpu: &Cpu<'_>, mdl: Mdl, bytes: u64) -> Result<Result<(), NtStatus>, BugCheck> {
    let m = cpu.machine();
    let shift = shift_of(m);
    let page = shift.page_size();
    let mut h = read_header(cpu, mdl)?;
    if bytes > u64::from(h.byte_count) {
        return Ok(Err(NtStatus::INVALID_PARAMETER_2));
    }
    let pages = span(shift, &h);
    let skip = (u64::from(h.byte_offset) + bytes) / page;
    let old_extra = if h.flags.contains(MdlFlags::FREE_EXTRA_PTES) { read_pfn(cpu, mdl, pages)? } else { 0 };
    if skip > 0 {
        let entries: Vec<u64> = (0..pages).map(|i| read_pfn(cpu, mdl, i)).collect::<Result<_, _>>()?;
        if h.flags.contains(MdlFlags::PAGES_LOCKED) && !h.flags.contains(MdlFlags::PARTIAL) {
            for &pfn in entries.iter().take(skip as usize).filter(|&&p| p != PFN_END) {
                unlock_frame(m, Pfn::new(pfn))?;
            }
            if let Some(p) = (h.process != 0).then(|| m.processes().by_object(Va::new(h.process))).flatten() {
                p.remove_locked(skip.min(pages));
            }
        }
        for (i, &pfn) in entries.iter().skip(skip as usize).enumerate() {
            write_pfn(cpu, mdl, i as u64, pfn)?;
        }
    }
    h.start_va = h.start_va.wrapping_add(skip * page);
    h.byte_offset = ((u64::from(h.byte_offset) + bytes) % page) as u32;
    h.byte_count -= bytes as u32;
    if h.flags.contains(MdlFlags::MAPPED_TO_SYSTEM_VA) {
        h.mapped_system_va = h.mapped_system_va.wrapping_add(bytes);
        if skip > 0 {
            h.flags |= MdlFlags::FREE_EXTRA_PTES;
            write_pfn(cpu, mdl, span(shift, &h), old_extra.wrapping_add(skip))?;
        }
    }
    write_header(cpu, mdl, &h)?;
    Ok(Ok(()))
}
