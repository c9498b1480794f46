//! `ProbeForRead` / `ProbeForWrite` and the user-space bounds they check
//! (issue 4 item 3; learn.microsoft.com "ProbeForRead function (wdm.h)",
//! "ProbeForWrite function (wdm.h)").
//!
//! Both do nothing for a length of 0. Otherwise the start must be aligned on
//! `alignment` (1, 2, 4, 8 or 16) — else `STATUS_DATATYPE_MISALIGNMENT` — and the
//! range must lie below `MmUserProbeAddress` without wrapping — else
//! `STATUS_ACCESS_VIOLATION`. ProbeForRead touches nothing (a later access may
//! still fault: the documented reason accesses must stay inside `try`).
//! ProbeForWrite also touches every page for write; a page that is not committed
//! or not writable is `STATUS_ACCESS_VIOLATION`. ntmem checks the page's PTE in the
//! current process before touching it (Windows takes the fault and turns it into
//! the exception; the outcome is the same), then reads and rewrites one byte of the
//! page through the real mapping.
//!
//! The routines return the status as an `Err`; the C boundary raises it as an SEH
//! exception. As in Windows, the bottom of user space is not checked: a probe of
//! `NULL` with a non-zero length passes ProbeForRead.

use ntmem_machine::Va;

use super::pte::{PteFlags, PteFormat};
use crate::ex::pool::NtStatus;
use crate::ke::processor::Cpu;

/// `MmHighestUserAddress`: the last byte of user space.
pub fn mm_highest_user_address(cpu: &Cpu<'_>) -> Va {
    cpu.machine().profile().layout.user_end
}

/// `MmUserProbeAddress`: the first address a probe of user memory refuses.
pub fn mm_user_probe_address(cpu: &Cpu<'_>) -> Va {
    cpu.machine().profile().layout.user_probe_address
}

/// `MmSystemRangeStart`.
pub fn mm_system_range_start(cpu: &Cpu<'_>) -> Va {
    cpu.machine().profile().layout.system_start
}

/// The alignment and range checks both probes share; `Ok(None)` for length 0,
/// otherwise the last byte.
fn check(cpu: &Cpu<'_>, address: Va, length: u64, alignment: u32) -> Result<Option<u64>, NtStatus> {
    if length == 0 {
        return Ok(None);
    }
    // The documented alignments are 1, 2, 4, 8 and 16; the free kernel does not
    // check (only checked builds assert) and masks with `Alignment - 1` in a ULONG,
    // so an alignment of 0 makes every address but 0 misaligned.
    if address.get() & u64::from(alignment.wrapping_sub(1)) != 0 {
        return Err(NtStatus::DATATYPE_MISALIGNMENT);
    }
    let end = address.get().checked_add(length).ok_or(NtStatus::ACCESS_VIOLATION)?;
    if end > mm_user_probe_address(cpu).get() {
        return Err(NtStatus::ACCESS_VIOLATION);
    }
    Ok(Some(end - 1))
}

/// `ProbeForRead(Address, Length, Alignment)`.
///
/// # Errors
/// `STATUS_DATATYPE_MISALIGNMENT`, `STATUS_ACCESS_VIOLATION` (the exception the
/// routine raises).
pub fn probe_for_read(cpu: &Cpu<'_>, address: Va, length: u64, alignment: u32) -> Result<(), NtStatus> {
    check(cpu, address, length, alignment).map(drop)
}

/// `ProbeForWrite(Address, Length, Alignment)`.
///
/// # Errors
/// `STATUS_DATATYPE_MISALIGNMENT`, `STATUS_ACCESS_VIOLATION` (outside user space,
/// or a page not writable in the current process).
pub fn probe_for_write(cpu: &Cpu<'_>, address: Va, length: u64, alignment: u32) -> Result<(), NtStatus> {
    let Some(last) = check(cpu, address, length, alignment)? else { return Ok(()) };
    let m = cpu.machine();
    let page = m.profile().arch.page_shift().page_size();
    let format = PteFormat::new(m.profile().paging);
    let mut va = address.get();
    loop {
        if !user_page_writable(cpu, format, Va::new(va)) {
            return Err(NtStatus::ACCESS_VIOLATION);
        }
        let mut byte = [0u8; 1];
        m.space().read(Va::new(va), &mut byte).map_err(|_| NtStatus::ACCESS_VIOLATION)?;
        m.space().write(Va::new(va), &byte).map_err(|_| NtStatus::ACCESS_VIOLATION)?;
        let next = (va / page + 1) * page;
        if next > last {
            return Ok(());
        }
        va = next;
    }
}

/// Whether the current process's PTE for `va` is valid and writable.
pub(crate) fn user_page_writable(cpu: &Cpu<'_>, format: PteFormat, va: Va) -> bool {
    pte_of(cpu, format, va).is_some_and(|f| f.contains(PteFlags::VALID | PteFlags::WRITE))
}

/// The leaf PTE flags of `va`, when every level is valid.
pub(crate) fn pte_of(cpu: &Cpu<'_>, format: PteFormat, va: Va) -> Option<PteFlags> {
    let m = cpu.machine();
    let walk = m.space().walk(m.phys(), va);
    walk.phys?;
    walk.steps.last().map(|s| format.decode(s.raw).1)
}
