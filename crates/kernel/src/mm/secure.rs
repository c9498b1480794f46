//! `MmSecureVirtualMemory` / `MmUnsecureVirtualMemory`: a driver pins the
//! protection of a range of the current process's memory (learn.microsoft.com,
//! "MmSecureVirtualMemory function (ntddk.h)", "MmUnsecureVirtualMemory function
//! (ntddk.h)").
//!
//! While a range is secured, what the program could do to make the driver's access
//! fault is refused: NtFreeVirtualMemory of any of it, and NtProtectVirtualMemory
//! that would take away the access it was secured for (PAGE_READWRITE: any
//! reduction; PAGE_READONLY: PAGE_NOACCESS), both with
//! STATUS_INVALID_PAGE_PROTECTION, as Windows answers for a secured VAD. A driver
//! must still touch the memory inside `__try`: securing keeps the protection, it
//! does not make a bad address good. A secured range ends with
//! MmUnsecureVirtualMemory or with its process.
//!
//! IRQL: both routines are documented for PASSIVE_LEVEL ... APC_LEVEL ("<=
//! APC_LEVEL"); the boundary checks that.

use std::sync::atomic::{AtomicU64, Ordering};

use ntmem_machine::Va;

use crate::ke::processor::Cpu;

/// Handles are opaque to drivers; ntmem numbers them machine-wide from here, in
/// system space of no machine (never NULL, never a user address).
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(0xFFFF_F000_5EC0_0000);

/// `ProbeMode` of MmSecureVirtualMemory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ProbeMode {
    /// `PAGE_READONLY` (0x02): the range stays readable.
    ReadOnly = 0x02,
    /// `PAGE_READWRITE` (0x04): the range stays writable.
    ReadWrite = 0x04,
}

impl ProbeMode {
    /// The mode `raw` names; `None` for any other value.
    pub fn from_raw(raw: u32) -> Option<ProbeMode> {
        match raw {
            0x02 => Some(ProbeMode::ReadOnly),
            0x04 => Some(ProbeMode::ReadWrite),
            _ => None,
        }
    }
}

/// `MmSecureVirtualMemory(Address, Size, ProbeMode)`: a handle securing
/// `[address, address + size)` in the current process, or `None` (NULL) when there
/// is no current process, `size` is 0, the range leaves user space, or a page of it
/// is not committed private memory of one region with the access `mode` asks for.
pub fn mm_secure_virtual_memory(cpu: &Cpu<'_>, address: Va, size: u64, mode: ProbeMode) -> Option<u64> {
    let m = cpu.machine();
    let process = m.processes().current()?;
    let layout = m.space().layout();
    let last = address.get().checked_add(size.checked_sub(1)?)?;
    if !layout.is_user(address) || !layout.is_user(Va::new(last)) {
        return None;
    }
    let page = m.phys().shift().page_size();
    let (start, end) = (address.get() / page * page, (last / page + 1) * page);
    let handle = NEXT_HANDLE.fetch_add(0x10, Ordering::Relaxed);
    process.secure(handle, start, end, mode == ProbeMode::ReadWrite, page).then_some(handle)
}

/// `MmUnsecureVirtualMemory(SecureHandle)`: ends the securing `handle` names in the
/// current process.
///
/// **Where it differs.** A handle the current process does not hold is ignored;
/// Windows documents no check.
pub fn mm_unsecure_virtual_memory(cpu: &Cpu<'_>, handle: u64) {
    if let Some(process) = cpu.machine().processes().current() {
        process.unsecure(handle);
    }
}
