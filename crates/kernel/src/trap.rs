//! What a fault in a machine's address space means (DESIGN.md, decision 3).
//!
//! The host layer calls [`Trap::on_fault`] from its SIGSEGV handler for faults in
//! the machine's reservation, and for wild addresses touched by a thread running
//! on the machine. The decision follows Windows' page-fault handler:
//!
//! * the first write to a clean resident page of a pageable region (paged back in,
//!   not written since) sets the PTE's dirty bit and the instruction runs again, at
//!   any IRQL: on a real processor that is no fault at all
//!   ([`AddressSpace::set_dirty`]);
//! * a touch of a paged-out page of a pageable region (paged pool, or a driver
//!   image the kernel's loader mapped: its `PAGE*` sections, [`crate::mm::image_paging`])
//!   below DISPATCH_LEVEL is resolved — a read, a write or an instruction fetch:
//!   the page comes back from the paging file with its protection and the
//!   instruction runs again. Only pageable regions and loaded images are looked at,
//!   so a fault anywhere else (a stack overflow while the page-table lock is held,
//!   say) never waits for a lock;
//! * a touch of a kernel stack's guard page is a stack overflow: the double fault
//!   that UNEXPECTED_KERNEL_MODE_TRAP (0x7F, parameter 1 = 8) reports;
//! * a touch of a special pool guard page is DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION
//!   (0xD6) when the faulting instruction is in a loaded driver's image, else
//!   PAGE_FAULT_BEYOND_END_OF_ALLOCATION (0xCD); a touch of freed special pool is
//!   DRIVER_PAGE_FAULT_IN_FREED_SPECIAL_POOL (0xD5) or PAGE_FAULT_IN_FREED_SPECIAL_POOL
//!   (0xCC); all four with (address, 0 read / 1 write, faulting IP, 0), at any IRQL
//!   (ntmem's choice: these name the bug, where 0xD1 would only name the IRQL; see
//!   [`crate::ex::pool::special`]);
//! * a touch of the range of a driver image unloaded since (a timer, DPC or
//!   dispatch routine the driver left behind; no image loaded there now) is
//!   DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS (0xCE: address,
//!   0 read / 1 write / 8 execute, faulting IP, 0) below DISPATCH_LEVEL and
//!   SYSTEM_SCAN_AT_RAISED_IRQL_CAUGHT_IMPROPER_DRIVER_UNLOAD (0xD4: address, IRQL,
//!   access, faulting IP) at or above it, blaming the unloaded driver: the stops
//!   a touch of unmapped system memory would otherwise be (0x50, 0x0A / 0xD1),
//!   with the same parameters, renamed because the address names a driver that
//!   left work behind (research note `dma-verifier-views.md` §5.10, §6.4; bug
//!   check 0xCE and 0xD4 pages);
//! * a write to system space whose PTE is valid but not writable (a driver
//!   image's read-only section, an MDL mapping `MmProtectMdlSystemAddress` made
//!   read-only) is ATTEMPTED_WRITE_TO_READONLY_MEMORY (0xBE: address, PTE
//!   contents, trap frame, 10) at any IRQL, as Windows' fault handler checks a
//!   valid PTE before anything else (Microsoft's bug check 0xBE page; the fourth
//!   parameter is the one the Windows Research Kernel's MmAccessFault passes).
//!   ntmem has no trap frame: the third parameter is 0;
//! * any fault at DISPATCH_LEVEL or above is DRIVER_IRQL_NOT_LESS_OR_EQUAL (0xD1)
//!   when the faulting instruction is in a loaded driver's image, else
//!   IRQL_NOT_LESS_OR_EQUAL (0x0A); both with (address, IRQL, 0 read / 1 write /
//!   8 execute, faulting IP) — the fault handler may not wait at that level, so
//!   even valid pageable memory is fatal;
//! * a touch of unmapped system space is PAGE_FAULT_IN_NONPAGED_AREA (0x50:
//!   address, 0 read / 1 write, faulting IP, 0);
//! * a touch of a user address (below `MmUserProbeAddress`, the NULL page
//!   included) below DISPATCH_LEVEL while the thread has a structured-exception
//!   frame (`__try`, kept by `ntmem-wdk`) newer than its innermost guarded call
//!   raises STATUS_ACCESS_VIOLATION to that frame, with Windows' two exception
//!   parameters (0 read / 1 write / 8 execute, the address): the host delivers
//!   the [`ESCAPE_EXCEPTION`] payload to the frame (seed §9: a driver touching a
//!   user buffer another thread freed, inside its exception handler). When the
//!   faulting instruction is in a PE driver image (`ntmem_host::exception`), the
//!   same exception is dispatched over the driver's own frames instead
//!   ([`FaultAction::Raise`]), falling back to the bugcheck below when the kernel
//!   stack has no room for the dispatch;
//! * any other touch of an address outside system space raises
//!   STATUS_ACCESS_VIOLATION that no handler takes: KERNEL_MODE_EXCEPTION_NOT_HANDLED
//!   (0x8E: 0xC0000005, faulting IP, 0, 0).
//!
//! Addresses in parameters are simulated virtual addresses (equal to the host's
//! unless the layout is relocated). Runs in a signal handler. Deciding takes no
//! lock; paging in takes the page-table and PFN locks and allocates, which is safe
//! because the faulting code never holds those locks while it touches pageable
//! memory (the memory manager touches RAM through the RAM file, never through
//! pageable virtual addresses) and never faults inside the host allocator.

use std::sync::Arc;

use ntmem_host::exception::Raise;
use ntmem_host::{Access as HostAccess, Escape, Fault, FaultAction, FaultHandler, ESCAPE_EXCEPTION};
use ntmem_machine::{Layout, RegionKind, Va};

use crate::bugcheck::{BugCheck, BugCheckCode};
use crate::ex::pool::special::{SpecialFault, SpecialPages};
use crate::ex::pool::NtStatus;
use crate::halt::Halt;
use crate::ke::irql::Irql;
use crate::ke::processor::{current_on, current_stack_on, Cpu, Processor};
use crate::mm::frames::PhysicalMemory;
use crate::mm::images::Images;
use crate::mm::pte::PteFlags;
use crate::mm::space::AddressSpace;

/// `Escape::kind` of a bugcheck.
const ESCAPE_BUGCHECK: u32 = 0xB0;
/// `Escape::kind` of a watchdog timeout below DISPATCH_LEVEL ([`crate::halt::Halt::Timeout`]).
const ESCAPE_TIMEOUT: u32 = 0xB1;
/// STATUS_ACCESS_VIOLATION.
const STATUS_ACCESS_VIOLATION: u64 = 0xC000_0005;
/// Host addresses Linux never maps (`vm.mmap_min_addr`, 64 KB by default), so no
/// machine's reservation holds them.
const HOST_NULL_REGION: u64 = 0x1_0000;

/// The machine's fault policy, shared with the host's signal handler.
#[derive(Debug)]
pub struct Trap {
    id: u64,
    space: Arc<AddressSpace>,
    phys: Arc<PhysicalMemory>,
    layout: Layout,
    relocation: u64,
    page: u64,
    processors: Arc<[Processor]>,
    images: Arc<Images>,
    special: Arc<SpecialPages>,
}

impl Trap {
    /// The policy of machine `id`.
    pub fn new(
        id: u64,
        space: Arc<AddressSpace>,
        phys: Arc<PhysicalMemory>,
        page: u64,
        processors: Arc<[Processor]>,
        images: Arc<Images>,
        special: Arc<SpecialPages>,
    ) -> Trap {
        let (layout, relocation) = (space.layout().clone(), space.relocation());
        Trap { id, space, phys, layout, relocation, page, processors, images, special }
    }

    fn irql(&self) -> Irql {
        current_on(self.id).map_or(Irql::PASSIVE, |n| self.processors[n as usize].irql())
    }

    /// The simulated address of a fault. A host address in the first
    /// [`HOST_NULL_REGION`] bytes is a NULL (plus small offset) dereference by
    /// driver code: it is the simulated NULL page whatever the relocation.
    fn va(&self, fault: &Fault) -> Va {
        if (fault.addr as u64) < HOST_NULL_REGION {
            return Va::new(fault.addr as u64);
        }
        Va::new((fault.addr as u64).wrapping_sub(self.relocation))
    }

    /// The STATUS_ACCESS_VIOLATION exception a fault raises instead of a bugcheck,
    /// if it is one (see the module docs): words are code, faulting IP, then the
    /// exception's parameters (access, address).
    fn exception(&self, fault: &Fault) -> Option<Escape> {
        let va = self.va(fault);
        let catchable = va < self.layout.user_probe_address
            && self.irql() < Irql::DISPATCH
            && (ntmem_host::exception_frame_active() || ntmem_host::exception::raisable(fault.ip));
        let access = match fault.access {
            HostAccess::Write => 1,
            HostAccess::Execute => 8,
            HostAccess::Read | HostAccess::Unknown => 0,
        };
        catchable.then(|| Escape {
            kind: ESCAPE_EXCEPTION,
            words: [STATUS_ACCESS_VIOLATION, fault.ip as u64, access, va.get(), 2, 0, 0],
        })
    }

    /// The PTE of `va` when `fault` is a write to system space through a valid
    /// PTE without the write bit.
    fn read_only_write(&self, fault: &Fault, va: Va) -> Option<u64> {
        if fault.access != HostAccess::Write || !self.layout.is_system(va) {
            return None;
        }
        let (raw, flags) = self.space.valid_leaf(&self.phys, va)?;
        (!flags.contains(PteFlags::WRITE)).then_some(raw)
    }

    fn decide(&self, fault: &Fault) -> (BugCheck, Option<usize>) {
        let va = self.va(fault);
        let ip = fault.ip as u64;
        let irql = self.irql();
        let mut image = self.images.slot_at(fault.ip);
        let overflow = current_stack_on(self.id).is_some_and(|s| s.guard_contains(va, self.page));
        let access = match fault.access {
            HostAccess::Write => 1,
            HostAccess::Execute => 8,
            HostAccess::Read | HostAccess::Unknown => 0,
        };
        let mut b = if overflow {
            BugCheck::new(BugCheckCode::UNEXPECTED_KERNEL_MODE_TRAP, [8, 0, 0, 0])
        } else if let Some(special) = self.special.fault_at(va) {
            let code = match (special, image) {
                (SpecialFault::BeyondEnd, Some(_)) => BugCheckCode::DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION,
                (SpecialFault::BeyondEnd, None) => BugCheckCode::PAGE_FAULT_BEYOND_END_OF_ALLOCATION,
                (SpecialFault::Freed, Some(_)) => BugCheckCode::DRIVER_PAGE_FAULT_IN_FREED_SPECIAL_POOL,
                (SpecialFault::Freed, None) => BugCheckCode::PAGE_FAULT_IN_FREED_SPECIAL_POOL,
            };
            BugCheck::new(code, [va.get(), access, ip, 0])
        } else if let Some(unloaded) = self.images.unloaded_at(fault.addr) {
            image = Some(unloaded);
            if irql >= Irql::DISPATCH {
                let code = BugCheckCode::SYSTEM_SCAN_AT_RAISED_IRQL_CAUGHT_IMPROPER_DRIVER_UNLOAD;
                BugCheck::new(code, [va.get(), u64::from(irql.0), access, ip])
            } else {
                let code = BugCheckCode::DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS;
                BugCheck::new(code, [va.get(), access, ip, 0])
            }
        } else if let Some(pte) = self.read_only_write(fault, va) {
            BugCheck::new(BugCheckCode::ATTEMPTED_WRITE_TO_READONLY_MEMORY, [va.get(), pte, 0, 10])
        } else if irql >= Irql::DISPATCH {
            let code = match image {
                Some(_) => BugCheckCode::DRIVER_IRQL_NOT_LESS_OR_EQUAL,
                None => BugCheckCode::IRQL_NOT_LESS_OR_EQUAL,
            };
            BugCheck::new(code, [va.get(), u64::from(irql.0), access, ip])
        } else if self.layout.is_system(va) {
            BugCheck::new(BugCheckCode::PAGE_FAULT_IN_NONPAGED_AREA, [va.get(), access, ip, 0])
        } else {
            BugCheck::new(BugCheckCode::KERNEL_MODE_EXCEPTION_NOT_HANDLED, [STATUS_ACCESS_VIOLATION, ip, 0, 0])
        };
        b.faulting_ip = Some(ip);
        (b, image)
    }
}

impl FaultHandler for Trap {
    fn on_fault(&self, fault: &Fault) -> FaultAction {
        let va = self.va(fault);
        let pageable = self.layout.region_at(va).is_some_and(|r| r.kind == RegionKind::PagedPool)
            || self.images.is_mapped_image(fault.addr);
        if pageable && fault.access != HostAccess::Read && matches!(self.space.set_dirty(&self.phys, va), Ok(true)) {
            return FaultAction::Retry;
        }
        if pageable && self.irql() < Irql::DISPATCH {
            if let Ok(true) = self.space.page_in(&self.phys, va) {
                return FaultAction::Retry;
            }
        }
        if let Some(e) = self.exception(fault) {
            if ntmem_host::exception::raisable(fault.ip) {
                // In a PE driver image, or in a routine one called: dispatched over the
                // driver's frames.
                let [code, address, access, target, ..] = e.words;
                let raise = Raise {
                    code: code as u32,
                    address: address as usize,
                    count: 2,
                    parameters: [access as usize, target as usize],
                };
                let (b, image) = self.decide(fault);
                return FaultAction::Raise { raise, otherwise: encode_escape(&b, image) };
            }
            return FaultAction::Escape(e);
        }
        let (b, image) = self.decide(fault);
        FaultAction::Escape(encode_escape(&b, image))
    }
}

/// An interlocked operation on a misaligned word or `SLIST_HEADER` (`lock cmpxchg16b`
/// on a head not 16-byte aligned, or a pointer-sized interlocked on a word that is
/// not 8-byte aligned, as the WDK's structures must be): the general-protection
/// fault the processor raises, which no handler takes in kernel mode —
/// KMODE_EXCEPTION_NOT_HANDLED (0x1E: STATUS_ACCESS_VIOLATION, address unknown, so
/// parameter 4 is −1).
pub fn misaligned_interlocked(cpu: &Cpu<'_>) -> BugCheck {
    let p = [u64::from(NtStatus::ACCESS_VIOLATION.0), 0, 0, u64::MAX];
    cpu.machine().bugcheck(BugCheckCode::KMODE_EXCEPTION_NOT_HANDLED, p)
}

/// The stop a touch of `va` gives when ntmem's own code makes it for a driver (a
/// pointer argument it dereferences) and `va` is not in the machine's address
/// space, so the touch cannot be made for real: what [`Trap`] decides for such a
/// touch from driver code, without a faulting instruction — in the range of a driver
/// image unloaded since, DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS (0xCE:
/// address, 0 read / 1 write, 0, 0) or at DISPATCH_LEVEL and above
/// SYSTEM_SCAN_AT_RAISED_IRQL_CAUGHT_IMPROPER_DRIVER_UNLOAD (0xD4: address, IRQL,
/// access, 0); else IRQL_NOT_LESS_OR_EQUAL
/// (0x0A: address, IRQL, 0 read / 1 write, 0) at DISPATCH_LEVEL or above,
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50: address, 0 read / 1 write, 0, 0) for a
/// system address, else the access violation no handler takes,
/// KERNEL_MODE_EXCEPTION_NOT_HANDLED (0x8E: 0xC0000005, 0, 0, 0).
pub fn wild_touch(cpu: &Cpu<'_>, va: Va, write: bool) -> BugCheck {
    let m = cpu.machine();
    let (irql, access) = (cpu.irql(), u64::from(write));
    if let Some(slot) = m.images().unloaded_at(m.space().host_addr(va)) {
        // The range of a driver image unloaded since — a timer, DPC or IRP the driver
        // left behind: the unloaded-driver stops of a touch from driver code (the
        // instruction is ntmem's: 0).
        let mut b = if irql >= Irql::DISPATCH {
            let code = BugCheckCode::SYSTEM_SCAN_AT_RAISED_IRQL_CAUGHT_IMPROPER_DRIVER_UNLOAD;
            m.bugcheck(code, [va.get(), u64::from(irql.0), access, 0])
        } else {
            m.bugcheck(BugCheckCode::DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS, [va.get(), access, 0, 0])
        };
        b.driver = m.images().name(slot);
        return b;
    }
    if irql >= Irql::DISPATCH {
        m.bugcheck(BugCheckCode::IRQL_NOT_LESS_OR_EQUAL, [va.get(), u64::from(irql.0), access, 0])
    } else if m.profile().layout.is_system(va) {
        m.bugcheck(BugCheckCode::PAGE_FAULT_IN_NONPAGED_AREA, [va.get(), access, 0, 0])
    } else {
        m.bugcheck(BugCheckCode::KERNEL_MODE_EXCEPTION_NOT_HANDLED, [STATUS_ACCESS_VIOLATION, 0, 0, 0])
    }
}

/// The IRQL rule at the entry of a pageable routine (one Windows keeps in a PAGE
/// section of ntoskrnl, documented for IRQL < DISPATCH_LEVEL — IoCreateDevice,
/// MmAllocateMappingAddress): called at DISPATCH_LEVEL or above it stops as the
/// processor does when it runs that code with its page trimmed, which Driver
/// Verifier's force IRQL checking makes certain — IRQL_NOT_LESS_OR_EQUAL (0x0A:
/// `routine`, IRQL, 8 execute, `routine`), `routine` being the routine's entry
/// address. ntmem always stops; Windows without Verifier only when the page
/// happens not to be resident. Between APC_LEVEL and DISPATCH_LEVEL a page fault
/// is legal, and only Verifier's DDI compliance rules object (not modelled).
///
/// # Errors
/// The bugcheck.
pub fn pageable_code(cpu: &Cpu<'_>, routine: u64) -> Result<(), BugCheck> {
    let irql = cpu.irql();
    if irql < Irql::DISPATCH {
        return Ok(());
    }
    let mut b = cpu.machine().bugcheck(BugCheckCode::IRQL_NOT_LESS_OR_EQUAL, [routine, u64::from(irql.0), 8, routine]);
    b.faulting_ip = Some(routine);
    Err(b)
}

/// Leaves driver code with `b`: jumps to the innermost [`crate::Machine::run`], which
/// stops the machine with it. For the WDK boundary, whose `extern "C"` routines
/// cannot return a `Result` to the driver; everything else returns `Err(b)`.
///
/// The caller must hold nothing that needs dropping: the frames between here and
/// `run` are abandoned (see `ntmem_host::escape`).
pub fn raise_bugcheck(b: &BugCheck) -> ! {
    ntmem_host::escape(encode_escape(b, None))
}

/// A watchdog timeout as the host's escape payload: IRQL, interrupted IP, the limit in
/// milliseconds, and the slot of the driver image the IP is in (plus one; 0 for none).
pub(crate) fn timeout_escape(irql: Irql, ip: u64, limit: std::time::Duration, image: Option<usize>) -> Escape {
    let image = image.map_or(0, |slot| slot as u64 + 1);
    let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    Escape { kind: ESCAPE_TIMEOUT, words: [u64::from(irql.0), ip, limit_ms, image, 0, 0, 0] }
}

/// A bugcheck as the host's escape payload: code, four parameters, faulting IP,
/// and the slot of the driver image blamed (plus one; 0 for none).
pub(crate) fn encode_escape(b: &BugCheck, image: Option<usize>) -> Escape {
    let p = b.parameters;
    let image = image.map_or(0, |slot| slot as u64 + 1);
    Escape {
        kind: ESCAPE_BUGCHECK,
        words: [u64::from(b.code.0), p[0], p[1], p[2], p[3], b.faulting_ip.unwrap_or(0), image],
    }
}

/// The bugcheck an escape carries, if it carries one, with the slot of the driver
/// image it blames.
///
/// An exception escape reaches `Machine::run` only if no frame took it after
/// all; it stops the machine as an unhandled fault does (0x8E).
pub fn decode_escape(e: Escape) -> Option<(BugCheck, Option<usize>)> {
    if e.kind == ESCAPE_EXCEPTION {
        let mut b = BugCheck::new(BugCheckCode::KERNEL_MODE_EXCEPTION_NOT_HANDLED, [e.words[0], e.words[1], 0, 0]);
        b.faulting_ip = Some(e.words[1]);
        return Some((b, None));
    }
    if e.kind == ntmem_host::ESCAPE_FAST_FAIL {
        // KERNEL_SECURITY_CHECK_FAILURE: the fast-fail code (3: a corrupt LIST_ENTRY),
        // then the trap frame and exception record Windows builds (ntmem has none: 0).
        let mut b = BugCheck::new(BugCheckCode::KERNEL_SECURITY_CHECK_FAILURE, [e.words[0], 0, 0, 0]);
        b.faulting_ip = Some(e.words[1]);
        return Some((b, None));
    }
    if e.kind == ESCAPE_TIMEOUT {
        let w = e.words;
        let irql = Irql(u8::try_from(w[0]).unwrap_or(u8::MAX));
        let mut b = BugCheck::halted(Halt::Timeout { routine: None, irql, ip: w[1], limit_ms: w[2] });
        b.faulting_ip = (w[1] != 0).then_some(w[1]);
        return Some((b, w[3].checked_sub(1).map(|slot| slot as usize)));
    }
    (e.kind == ESCAPE_BUGCHECK).then(|| {
        let w = e.words;
        let mut b = BugCheck::new(BugCheckCode(w[0] as u32), [w[1], w[2], w[3], w[4]]);
        b.faulting_ip = (w[5] != 0).then_some(w[5]);
        (b, w[6].checked_sub(1).map(|slot| slot as usize))
    })
}
