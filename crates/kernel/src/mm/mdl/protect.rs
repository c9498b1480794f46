//! `MmProtectMdlSystemAddress`: a new protection for an MDL's system mapping
//! (learn.microsoft.com, "MmProtectMdlSystemAddress function (wdm.h)").

use ntmem_machine::Va;

use super::{read_header, shift_of, span, Mdl, MdlFlags};
use crate::bugcheck::BugCheck;
use crate::ex::pool::NtStatus;
use crate::ke::processor::Cpu;
use crate::mm::space::Access;

impl NtStatus {
    /// `STATUS_NOT_MAPPED_VIEW`.
    pub const NOT_MAPPED_VIEW: NtStatus = NtStatus(0xC000_0019);
    /// `STATUS_INVALID_PAGE_PROTECTION`.
    pub const INVALID_PAGE_PROTECTION: NtStatus = NtStatus(0xC000_0045);
}

/// The protections the routine's page lists (`PAGE_*`, `winnt.h` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MdlProtection {
    /// `PAGE_NOACCESS` (0x01).
    NoAccess,
    /// `PAGE_READONLY` (0x02), `PAGE_READWRITE` (0x04), `PAGE_EXECUTE` (0x10),
    /// `PAGE_EXECUTE_READ` (0x20), `PAGE_EXECUTE_READWRITE` (0x40). x64 page tables
    /// cannot express execute-only, so PAGE_EXECUTE reads as PAGE_EXECUTE_READ.
    Pages(Access),
}

impl MdlProtection {
    /// The protection `raw` names; `None` for anything else (copy-on-write,
    /// PAGE_GUARD, PAGE_NOCACHE, combinations): STATUS_INVALID_PAGE_PROTECTION.
    pub fn from_raw(raw: u32) -> Option<MdlProtection> {
        Some(match raw {
            0x01 => MdlProtection::NoAccess,
            0x02 => MdlProtection::Pages(Access::ReadOnly),
            0x04 => MdlProtection::Pages(Access::ReadWrite),
            0x10 | 0x20 => MdlProtection::Pages(Access::ReadExecute),
            0x40 => MdlProtection::Pages(Access::ReadWriteExecute),
            _ => return None,
        })
    }
}

/// `MmProtectMdlSystemAddress(MemoryDescriptorList, NewProtect)`: rewrites the PTEs
/// of the MDL's system mapping (`MappedSystemVa`, every page the MDL spans) with
/// `protect` and changes the host mapping with them, so a write through a read-only
/// mapping faults as on Windows — ATTEMPTED_WRITE_TO_READONLY_MEMORY (0xBE), which
/// `crate::trap` gives for a write to a valid PTE without the write bit — and a
/// touch of a PAGE_NOACCESS one is PAGE_FAULT_IN_NONPAGED_AREA (0x50).
///
/// `Ok(Err(STATUS_NOT_MAPPED_VIEW))` unless the MDL has MDL_MAPPED_TO_SYSTEM_VA
/// (an MDL for nonpaged pool has no mapping of its own to change);
/// `Ok(Err(STATUS_INVALID_PAGE_PROTECTION))` for a value [`MdlProtection::from_raw`]
/// refuses — checked in that order.
///
/// **Where it differs.** PAGE_NOACCESS is made in the host alone: the PTEs stay
/// valid, so `MmIsAddressValid` answers TRUE where Windows makes them invalid and
/// answers FALSE. Mappings are never executable in the host whatever the protection.
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for an MDL outside the address space.
pub fn mm_protect_mdl_system_address(cpu: &Cpu<'_>, mdl: Mdl, protect: u32) -> Result<Result<(), NtStatus>, BugCheck> {
    let m = cpu.machine();
    let h = read_header(cpu, mdl)?;
    if !h.flags.contains(MdlFlags::MAPPED_TO_SYSTEM_VA) {
        return Ok(Err(NtStatus::NOT_MAPPED_VIEW));
    }
    let Some(protection) = MdlProtection::from_raw(protect) else { return Ok(Err(NtStatus::INVALID_PAGE_PROTECTION)) };
    let shift = shift_of(m);
    let base = Va::new(h.mapped_system_va).page_base(shift);
    let pages = span(shift, &h);
    let done = match protection {
        MdlProtection::NoAccess => m.space().deny(base, pages),
        MdlProtection::Pages(access) => m.space().protect(m.phys(), base, pages, access),
    };
    Ok(done.map_err(|_| NtStatus::NOT_MAPPED_VIEW))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_protections_and_nothing_else() {
        assert_eq!(MdlProtection::from_raw(0x01), Some(MdlProtection::NoAccess));
        assert_eq!(MdlProtection::from_raw(0x02), Some(MdlProtection::Pages(Access::ReadOnly)));
        assert_eq!(MdlProtection::from_raw(0x10), Some(MdlProtection::Pages(Access::ReadExecute)));
        assert_eq!(MdlProtection::from_raw(0x40), Some(MdlProtection::Pages(Access::ReadWriteExecute)));
        for bad in [0, 0x08, 0x80, 0x104, 0x204, 0x404, 0x06] {
            assert_eq!(MdlProtection::from_raw(bad), None, "{bad:#x}");
        }
    }
}
