//! Probing, locking and unlocking an MDL's pages; MDLs over nonpaged pool.

use ntmem_machine::{Pfn, Va};

use super::{fault, frame_at, read_header, read_pfn, shift_of, span, write_header, write_pfn, Mdl, MdlFlags, PFN_END};
use super::{mm_unmap_locked_pages, LockOperation, ProcessorMode};
use crate::bugcheck::{BugCheck, BugCheckCode};
use crate::ex::pool::NtStatus;
use crate::ke::processor::Cpu;
use crate::Machine;

/// 0xC4 subcode: MmUnlockPages of an MDL whose pages were never locked.
const VERIFIER_UNLOCK_NEVER_LOCKED: u64 = 0x7C;
/// 0xC4 subcode: MmUnlockPages of an MDL built by MmBuildMdlForNonPagedPool.
const VERIFIER_UNLOCK_NONPAGED: u64 = 0x7D;
/// 0xC4 subcode: MmUnlockPages of a partial MDL (IoBuildPartialMdl's target owns no locks).
const VERIFIER_UNLOCK_PARTIAL: u64 = 0xB4;

/// `MmBuildMdlForNonPagedPool`: fills the PFN array from the page tables and sets
/// MDL_SOURCE_IS_NONPAGED_POOL (and MDL_IO_SPACE when the last page is not RAM);
/// `MappedSystemVa` is the buffer itself; no lock is taken.
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for a page that is not mapped.
pub fn mm_build_mdl_for_nonpaged_pool(cpu: &Cpu<'_>, mdl: Mdl) -> Result<(), BugCheck> {
    let m = cpu.machine();
    let shift = shift_of(m);
    let mut h = read_header(cpu, mdl)?;
    let mut io = false;
    for i in 0..span(shift, &h) {
        let va = Va::new(h.start_va.wrapping_add(i * shift.page_size()));
        let pfn = frame_at(m, va).ok_or_else(|| fault(m, va))?;
        io = m.phys().file_offset(pfn).is_none();
        write_pfn(cpu, mdl, i, pfn.get())?;
    }
    h.process = 0;
    h.mapped_system_va = h.virtual_address().get();
    h.flags |= MdlFlags::SOURCE_IS_NONPAGED_POOL;
    if io {
        h.flags |= MdlFlags::IO_SPACE;
    }
    write_header(cpu, mdl, &h)
}

/// Drops one lock of `pfn`: PFN_LIST_CORRUPT (0x4E: 7, PFN, share count, 0) when
/// it is not locked; frees the frame when that was its last reference.
pub(super) fn unlock_frame(m: &Machine, pfn: Pfn) -> Result<(), BugCheck> {
    if m.phys().file_offset(pfn).is_none() {
        return Ok(());
    }
    let outcome = m.phys().update(pfn, |e| {
        if e.lock_count == 0 {
            return Err(u64::from(e.share_count));
        }
        e.lock_count -= 1;
        e.reference_count = e.reference_count.saturating_sub(1);
        Ok(e.reference_count == 0 && e.share_count == 0)
    });
    match outcome {
        Err(share) => Err(m.bugcheck(BugCheckCode::PFN_LIST_CORRUPT, [7, pfn.get(), share, 0])),
        Ok(true) => {
            let _ = m.phys().free(pfn, 1);
            Ok(())
        }
        Ok(false) => Ok(()),
    }
}

/// `MmProbeAndLockPages(Mdl, AccessMode, Operation)`: checks every page allows
/// the access and locks it (PFN reference and lock counts +1): a locked page is
/// never trimmed, and counts as modified (its paging-file copy is given up), since
/// a device or the MDL's system mapping may write it behind its PTE. User buffers are
/// charged to the current process (`Mdl->Process`). The inner `Err` is the
/// exception the routine raises: `STATUS_ACCESS_VIOLATION` for a UserMode probe
/// beyond `MmUserProbeAddress`, a page that is not valid, or a page not writable
/// for IoWriteAccess / IoModifyAccess; `STATUS_WORKING_SET_QUOTA` for a page whose
/// 16-bit reference count is full (locked 65,535 times over: Windows refuses a lock
/// past its reference-count limit with this status); nothing stays locked then,
/// and `PFN[0]` is −1.
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for an MDL outside the address space.
pub fn mm_probe_and_lock_pages(
    cpu: &Cpu<'_>,
    mdl: Mdl,
    mode: ProcessorMode,
    operation: LockOperation,
) -> Result<Result<(), NtStatus>, BugCheck> {
    let m = cpu.machine();
    let shift = shift_of(m);
    let layout = &m.profile().layout;
    let mut h = read_header(cpu, mdl)?;
    let va = h.virtual_address();
    let pages = span(shift, &h);
    let end = va.get().checked_add(u64::from(h.byte_count));
    if mode == ProcessorMode::UserMode && end.is_none_or(|e| e > layout.user_probe_address.get()) {
        write_pfn(cpu, mdl, 0, PFN_END)?;
        return Ok(Err(NtStatus::ACCESS_VIOLATION));
    }
    for i in 0..pages {
        write_pfn(cpu, mdl, i, PFN_END)?;
    }
    let user = !layout.is_system(va);
    let process = if user { m.processes().current() } else { None };
    let write = operation != LockOperation::IoReadAccess && user;
    let format = crate::mm::pte::PteFormat::new(m.profile().paging);
    let mut locked = Vec::new();
    let mut failure = None;
    for i in 0..pages {
        let page_va = Va::new(h.start_va.wrapping_add(i * shift.page_size()));
        if user && process.is_none() {
            failure = Some(NtStatus::ACCESS_VIOLATION);
            break;
        }
        if !user && frame_at(m, page_va).is_none() {
            let _ = m.space().page_in(m.phys(), page_va);
        }
        let flags = crate::mm::probe::pte_of(cpu, format, page_va);
        let ok = flags.is_some_and(|f| !write || f.contains(crate::mm::pte::PteFlags::WRITE));
        let Some(pfn) = frame_at(m, page_va).filter(|_| ok) else {
            failure = Some(NtStatus::ACCESS_VIOLATION);
            break;
        };
        if m.phys().file_offset(pfn).is_some() {
            let taken = m.phys().update(pfn, |e| {
                let (Some(refs), Some(locks)) = (e.reference_count.checked_add(1), e.lock_count.checked_add(1)) else {
                    return false;
                };
                (e.reference_count, e.lock_count) = (refs, locks);
                true
            });
            if !taken {
                failure = Some(NtStatus::WORKING_SET_QUOTA);
                break;
            }
            m.space().discard_paging_copy(m.phys(), pfn);
            locked.push(pfn);
        } else {
            h.flags |= MdlFlags::IO_SPACE;
        }
        write_pfn(cpu, mdl, i, pfn.get())?;
    }
    if let Some(status) = failure {
        for pfn in locked {
            unlock_frame(m, pfn)?;
        }
        write_pfn(cpu, mdl, 0, PFN_END)?;
        h.process = 0;
        write_header(cpu, mdl, &h)?;
        return Ok(Err(status));
    }
    h.flags.set(MdlFlags::WRITE_OPERATION, operation != LockOperation::IoReadAccess);
    h.flags |= MdlFlags::PAGES_LOCKED;
    h.process = match &process {
        Some(p) => {
            p.add_locked(pages);
            p.object().get()
        }
        None => 0,
    };
    write_header(cpu, mdl, &h)?;
    Ok(Ok(()))
}

/// `MmUnlockPages(Mdl)`: unmaps the MDL's system mapping if it has one, drops one
/// lock from every page and the process's locked-page count, clears
/// MDL_PAGES_LOCKED.
///
/// # Errors
/// Under Driver Verifier, DRIVER_VERIFIER_DETECTED_VIOLATION (0xC4) for an MDL
/// this routine may not be given (nt-algorithms.md §6.4; subcodes from the 0xC4
/// page, parameters 2-4 (MDL, `MdlFlags`, 0) are ntmem's reading of them): 0x7D
/// for an MDL built by MmBuildMdlForNonPagedPool, 0xB4 for a partial MDL, 0x7C for
/// one whose pages were never locked. Without Verifier Windows makes none of these
/// checks and neither does ntmem: the PFN array is unlocked as it stands.
/// PROCESS_HAS_LOCKED_PAGES (0x76: 1, MDL, locked pages of the process, 0) when a
/// process MDL's pages are not locked; PFN_LIST_CORRUPT (0x4E: 7, PFN, share
/// count, 0) when a page is unlocked more often than it was locked.
pub fn mm_unlock_pages(cpu: &Cpu<'_>, mdl: Mdl) -> Result<(), BugCheck> {
    let m = cpu.machine();
    let shift = shift_of(m);
    let mut h = read_header(cpu, mdl)?;
    if !m.verifier().is_empty() {
        let subcode = if h.flags.contains(MdlFlags::SOURCE_IS_NONPAGED_POOL) {
            Some(VERIFIER_UNLOCK_NONPAGED)
        } else if h.flags.contains(MdlFlags::PARTIAL) {
            Some(VERIFIER_UNLOCK_PARTIAL)
        } else if !h.flags.contains(MdlFlags::PAGES_LOCKED) {
            Some(VERIFIER_UNLOCK_NEVER_LOCKED)
        } else {
            None
        };
        if let Some(code) = subcode {
            let p = [code, mdl.0.get(), u64::from(h.flags.bits()), 0];
            return Err(m.bugcheck(BugCheckCode::DRIVER_VERIFIER_DETECTED_VIOLATION, p));
        }
    }
    if h.flags.contains(MdlFlags::MAPPED_TO_SYSTEM_VA) {
        mm_unmap_locked_pages(cpu, Va::new(h.mapped_system_va), mdl)?;
        h = read_header(cpu, mdl)?;
    }
    let pages = span(shift, &h);
    if h.process != 0 {
        if let Some(p) = m.processes().by_object(Va::new(h.process)) {
            if !p.remove_locked(pages) {
                return Err(m.bugcheck(BugCheckCode::PROCESS_HAS_LOCKED_PAGES, [1, mdl.0.get(), p.locked_pages(), 0]));
            }
        }
    }
    for i in 0..pages {
        let pfn = read_pfn(cpu, mdl, i)?;
        if pfn == PFN_END {
            break;
        }
        unlock_frame(m, Pfn::new(pfn))?;
    }
    h.flags -= MdlFlags::PAGES_LOCKED | MdlFlags::IO_SPACE;
    write_header(cpu, mdl, &h)
}
