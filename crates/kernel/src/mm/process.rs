//! User processes and their virtual memory (issue 4 item 1; seed 000 §2, §9, §10).
//!
//! A [`Process`] has its own user address space, laid out as the profile says:
//! from `layout.user_start` (the first 64 KB catch NULL pointers) to
//! `MmHighestUserAddress` (`layout.user_end`), with `MmUserProbeAddress`
//! (`layout.user_probe_address`) the first address a probe refuses. Its user-half
//! page tables are its own (a top-level table per process, [`PageTables`]); system
//! space is the machine's and shared (see [`super::space`] for how the halves are
//! combined).
//!
//! What a user program gets, as `NtAllocateVirtualMemory` / `NtFreeVirtualMemory` /
//! `NtProtectVirtualMemory` give it: regions reserved on 64 KB boundaries, committed
//! page by page, zero-filled, protected `PAGE_NOACCESS`, `PAGE_READONLY` or
//! `PAGE_READWRITE`. ntmem commits eagerly (a committed page gets its frame at once,
//! where Windows waits for the first touch — a demand-zero fault); the contents and
//! protections a driver sees are the same.
//!
//! Driver code reaches a process's memory by attaching ([`ke_stack_attach_process`],
//! [`ke_unstack_detach_process`]); a request runs in its caller's process, which then
//! stays current until a thread of another runs ([`ke_switch_process`]). **One process is current at a time per
//! machine** (the host is one Linux process with one address space): attaching
//! switches the host mappings of the whole user range. Routines that act on another
//! process's memory (allocate, free, protect, terminate) attach for the duration,
//! as Windows' `NtAllocateVirtualMemory` on another process's handle does.
//!
//! [`ps_terminate_process`] tears everything down: every region, every user-mode
//! mapping of locked pages (seed §10: unmapped when the process exits), the page
//! tables and the process object. A process that still has locked pages stops the
//! machine with PROCESS_HAS_LOCKED_PAGES (0x76, parameters (0, process object,
//! locked pages, 0); learn.microsoft.com "Bug Check 0x76").
//!
//! Locking: a process's VM lock, then the space's user-tables lock, then the PFN
//! lock. The current-process lock is never held across another lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ntmem_machine::{Pfn, Va};

use super::frames::{FrameRequest, Frames};
use super::page_table::PageTables;
use super::pfn::{CacheType, PageUse};
use super::space::{Access, Mapping};
use super::MmError;
use crate::bugcheck::{BugCheck, BugCheckCode};
use crate::ex::pool::{self, NtStatus, PoolTag, PoolType};
use crate::ke::processor::Cpu;
use crate::Machine;

/// Regions are reserved on this granularity (`SYSTEM_INFO.dwAllocationGranularity`).
pub const ALLOCATION_GRANULARITY: u64 = 0x1_0000;
/// Size of the nonpaged block that stands for the `EPROCESS` (what `Mdl->Process`
/// and bugcheck parameters point to).
const PROCESS_OBJECT_SIZE: u64 = 0x80;
/// Pool tag of the process object ("Proc", as Windows tags process objects).
/// The tag of the process objects ntmem allocates (`Proc`, as Windows' object manager).
pub const PROCESS_TAG: PoolTag = PoolTag::new(*b"Proc");

impl NtStatus {
    /// `STATUS_SUCCESS`.
    pub const SUCCESS: NtStatus = NtStatus(0);
    /// `STATUS_ACCESS_VIOLATION`.
    pub const ACCESS_VIOLATION: NtStatus = NtStatus(0xC000_0005);
    /// `STATUS_DATATYPE_MISALIGNMENT` (a warning-severity status).
    pub const DATATYPE_MISALIGNMENT: NtStatus = NtStatus(0x8000_0002);
    /// `STATUS_INVALID_PARAMETER`.
    pub const INVALID_PARAMETER: NtStatus = NtStatus(0xC000_000D);
    /// `STATUS_INVALID_PARAMETER_2`.
    pub const INVALID_PARAMETER_2: NtStatus = NtStatus(0xC000_00F0);
    /// `STATUS_NO_MEMORY`.
    pub const NO_MEMORY: NtStatus = NtStatus(0xC000_0017);
    /// `STATUS_CONFLICTING_ADDRESSES`.
    pub const CONFLICTING_ADDRESSES: NtStatus = NtStatus(0xC000_0018);
    /// `STATUS_NOT_COMMITTED`.
    pub const NOT_COMMITTED: NtStatus = NtStatus(0xC000_002D);
    /// `STATUS_MEMORY_NOT_ALLOCATED`.
    pub const MEMORY_NOT_ALLOCATED: NtStatus = NtStatus(0xC000_00A0);
    /// `STATUS_PROCESS_IS_TERMINATING`.
    pub const PROCESS_IS_TERMINATING: NtStatus = NtStatus(0xC000_010A);
    /// `STATUS_WORKING_SET_QUOTA`.
    pub const WORKING_SET_QUOTA: NtStatus = NtStatus(0xC000_00A1);
}

/// A page protection (`PAGE_*` of `winnt.h`), the ones ntmem implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum PageProtection {
    /// `PAGE_NOACCESS` (0x01): committed, but every touch faults.
    NoAccess = 0x01,
    /// `PAGE_READONLY` (0x02).
    ReadOnly = 0x02,
    /// `PAGE_READWRITE` (0x04).
    ReadWrite = 0x04,
}

impl PageProtection {
    fn mapping(self) -> Option<Mapping> {
        match self {
            PageProtection::NoAccess => None,
            PageProtection::ReadOnly => Some(Access::ReadOnly.into()),
            PageProtection::ReadWrite => Some(Access::ReadWrite.into()),
        }
    }
}

bitflags::bitflags! {
    /// `AllocationType` of `NtAllocateVirtualMemory` (`MEM_*` of `winnt.h`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct AllocationType: u32 {
        /// `MEM_COMMIT`: back the pages with memory (zero-filled).
        const COMMIT = 0x1000;
        /// `MEM_RESERVE`: reserve a region of addresses.
        const RESERVE = 0x2000;
    }
}

/// `FreeType` of `NtFreeVirtualMemory`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum FreeType {
    /// `MEM_DECOMMIT` (0x4000): give back the pages, keep the reservation.
    Decommit = 0x4000,
    /// `MEM_RELEASE` (0x8000): give back the whole region (size must be 0).
    Release = 0x8000,
}

/// What a region of a process's address space is (a VAD, simplified).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VadKind {
    /// Private memory the program allocated.
    Private,
    /// Locked pages mapped by `MmMapLockedPagesSpecifyCache(UserMode)`: the frames
    /// belong to whoever locked them, not to the process.
    LockedPages,
    /// `KUSER_SHARED_DATA`'s user view, read-only: the frame is the kernel's
    /// (`crate::ke::shared_data`).
    SharedUserData,
}

#[derive(Clone, Copy, Debug)]
struct Committed {
    pfn: Pfn,
    protect: PageProtection,
}

#[derive(Debug)]
struct Vad {
    pages: u64,
    kind: VadKind,
    /// Committed pages by virtual address.
    committed: BTreeMap<u64, Committed>,
}

#[derive(Debug, Default)]
struct Vm {
    /// Regions by start address.
    vads: BTreeMap<u64, Vad>,
    /// Ranges drivers secured ([`super::secure`]): handle → (start, end, writable).
    secured: BTreeMap<u64, (u64, u64, bool)>,
}

impl Vm {
    /// STATUS_INVALID_PAGE_PROTECTION when `[start, end)` meets a secured range that
    /// `protect` (`None`: freeing) would take access from, as Windows' check of a
    /// secured VAD answers NtFreeVirtualMemory and NtProtectVirtualMemory.
    fn check_secured(&self, start: u64, end: u64, protect: Option<PageProtection>) -> Result<(), NtStatus> {
        let takes = |writable: bool| match protect {
            None | Some(PageProtection::NoAccess) => true,
            Some(PageProtection::ReadOnly) => writable,
            Some(PageProtection::ReadWrite) => false,
        };
        let hit = self.secured.values().any(|&(s, e, writable)| s < end && start < e && takes(writable));
        if hit {
            Err(NtStatus::INVALID_PAGE_PROTECTION)
        } else {
            Ok(())
        }
    }
}

/// A user process (`EPROCESS`, the parts the memory manager keeps).
#[derive(Debug)]
pub struct Process {
    id: u64,
    name: String,
    object: Va,
    tables: PageTables,
    vm: Mutex<Vm>,
    locked_pages: AtomicU64,
    exited: AtomicBool,
}

impl Process {
    /// The process id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The image name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address of the process object (`PEPROCESS`), a nonpaged-pool block.
    pub fn object(&self) -> Va {
        self.object
    }

    /// The frame of the user half's top-level table.
    pub fn root(&self) -> Pfn {
        self.tables.root()
    }

    /// Pages locked by MDLs in this process (`EPROCESS.NumberOfLockedPages`).
    pub fn locked_pages(&self) -> u64 {
        self.locked_pages.load(Ordering::Acquire)
    }

    /// Whether the process has exited.
    pub fn exited(&self) -> bool {
        self.exited.load(Ordering::Acquire)
    }

    pub(crate) fn add_locked(&self, pages: u64) {
        self.locked_pages.fetch_add(pages, Ordering::AcqRel);
    }

    /// Takes `pages` off the locked count; `false` (and nothing changed) when fewer
    /// are locked.
    pub(crate) fn remove_locked(&self, pages: u64) -> bool {
        self.locked_pages.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(pages)).is_ok()
    }

    fn vm(&self) -> MutexGuard<'_, Vm> {
        self.vm.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `[start, end)` as secured under `handle` if every page of it is
    /// committed private memory of one region, readable — writable too when
    /// `writable` (MmSecureVirtualMemory's probe); `false` otherwise.
    pub(super) fn secure(&self, handle: u64, start: u64, end: u64, writable: bool, page: u64) -> bool {
        let mut vm = self.vm();
        let Some((_, vad)) = vad_holding(&mut vm, start, end, page) else { return false };
        let allowed = |p: &PageProtection| match p {
            PageProtection::ReadWrite => true,
            PageProtection::ReadOnly => !writable,
            PageProtection::NoAccess => false,
        };
        let ok = vad.kind == VadKind::Private
            && (start..end)
                .step_by(page as usize)
                .all(|va| vad.committed.get(&va).is_some_and(|c| allowed(&c.protect)));
        if ok {
            vm.secured.insert(handle, (start, end, writable));
        }
        ok
    }

    /// Forgets the secured range `handle` names; `false` when it names none here.
    pub(super) fn unsecure(&self, handle: u64) -> bool {
        self.vm().secured.remove(&handle).is_some()
    }

    /// The protection of the committed page holding `va`, if it is committed.
    pub fn protection(&self, va: Va, page: u64) -> Option<PageProtection> {
        let page_va = va.get() / page * page;
        let vm = self.vm();
        let (_, vad) = vm.vads.range(..=page_va).next_back()?;
        vad.committed.get(&page_va).map(|c| c.protect)
    }

    /// Reads the process's memory as the program would: `STATUS_ACCESS_VIOLATION`
    /// when a page is not committed or is `PAGE_NOACCESS`.
    ///
    /// # Errors
    /// The status the program's access would raise.
    pub fn read(self: &Arc<Self>, cpu: &Cpu<'_>, va: Va, buf: &mut [u8]) -> Result<(), NtStatus> {
        self.check_access(cpu, va, buf.len() as u64, false)?;
        with_attached(cpu, self, |m| m.space().read(va, buf).map_err(|_| NtStatus::ACCESS_VIOLATION))
    }

    /// Writes the process's memory as the program would: `STATUS_ACCESS_VIOLATION`
    /// when a page is not committed or not writable.
    ///
    /// # Errors
    /// The status the program's access would raise.
    pub fn write(self: &Arc<Self>, cpu: &Cpu<'_>, va: Va, data: &[u8]) -> Result<(), NtStatus> {
        self.check_access(cpu, va, data.len() as u64, true)?;
        with_attached(cpu, self, |m| m.space().write(va, data).map_err(|_| NtStatus::ACCESS_VIOLATION))
    }

    fn check_access(&self, cpu: &Cpu<'_>, va: Va, len: u64, write: bool) -> Result<(), NtStatus> {
        if len == 0 {
            return Ok(());
        }
        let page = cpu.machine().profile().arch.page_shift().page_size();
        let end = va.get().checked_add(len - 1).ok_or(NtStatus::ACCESS_VIOLATION)?;
        for p in (va.get() / page..=end / page).map(|p| p * page) {
            match self.protection(Va::new(p), page) {
                Some(PageProtection::ReadWrite) => {}
                Some(PageProtection::ReadOnly) if !write => {}
                _ => return Err(NtStatus::ACCESS_VIOLATION),
            }
        }
        Ok(())
    }

    /// Maps `frames` (locked by an MDL) into this process, which must be current, at
    /// a free address; the region's start (MmMapLockedPagesSpecifyCache, UserMode).
    pub(crate) fn map_locked_pages(&self, m: &Machine, frames: &Frames, cache: CacheType) -> Result<Va, NtStatus> {
        let page = m.profile().arch.page_shift().page_size();
        let pages = frames.count();
        let mut vm = self.vm();
        let start = find_free(m, &vm, pages * page).ok_or(NtStatus::NO_MEMORY)?;
        let how = Mapping { access: Access::ReadWrite, cache };
        m.space().map(m.phys(), Va::new(start), frames, how).map_err(|_| NtStatus::NO_MEMORY)?;
        let committed = frames
            .pfns()
            .enumerate()
            .map(|(i, pfn)| (start + i as u64 * page, Committed { pfn, protect: PageProtection::ReadWrite }))
            .collect();
        vm.vads.insert(start, Vad { pages, kind: VadKind::LockedPages, committed });
        Ok(Va::new(start))
    }

    /// Removes a mapping made by [`Process::map_locked_pages`] (the process must be
    /// current); `false` when there is none at `start`.
    pub(crate) fn unmap_locked_pages(&self, m: &Machine, start: Va) -> bool {
        let mut vm = self.vm();
        match vm.vads.get(&start.get()) {
            Some(v) if v.kind == VadKind::LockedPages => {}
            _ => return false,
        }
        let vad = vm.vads.remove(&start.get()).expect("checked above");
        let _ = m.space().unmap(m.phys(), start, vad.pages);
        true
    }
}

/// The machine's processes and which one is current.
#[derive(Debug, Default)]
pub struct Processes {
    next_id: AtomicU64,
    all: Mutex<Vec<Arc<Process>>>,
    current: Mutex<Option<Arc<Process>>>,
}

impl Processes {
    /// Live processes.
    pub fn list(&self) -> Vec<Arc<Process>> {
        self.all.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The process whose object is at `object`.
    pub fn by_object(&self, object: Va) -> Option<Arc<Process>> {
        self.list().into_iter().find(|p| p.object == object)
    }

    /// The current process (`PsGetCurrentProcess`); `None` is the System process,
    /// which has no user pages.
    pub fn current(&self) -> Option<Arc<Process>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn make_current(m: &Machine, next: Option<Arc<Process>>) -> Result<Option<Arc<Process>>, MmError> {
    let mut current = m.processes().current.lock().unwrap_or_else(|e| e.into_inner());
    let same = match (&*current, &next) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    };
    if !same {
        m.space().switch_user(m.phys(), next.as_ref().map(|p| p.tables.clone()))?;
    }
    Ok(std::mem::replace(&mut *current, next))
}

/// `KRPC_APC_STATE` of `KeStackAttachProcess`: the process to go back to. An
/// obligation: pass it to [`ke_unstack_detach_process`].
#[must_use = "pass the state to ke_unstack_detach_process"]
#[derive(Debug)]
pub struct ApcState {
    previous: Option<Arc<Process>>,
}

/// `KeStackAttachProcess`: makes `process` current, so its user addresses are the
/// ones driver code on this machine sees.
///
/// # Errors
/// When the host refuses the switch of mappings.
pub fn ke_stack_attach_process(cpu: &Cpu<'_>, process: &Arc<Process>) -> Result<ApcState, MmError> {
    Ok(ApcState { previous: make_current(cpu.machine(), Some(Arc::clone(process)))? })
}

/// `KeUnstackDetachProcess`: goes back to the process that was current before the
/// matching attach.
///
/// # Errors
/// When the host refuses the switch of mappings.
pub fn ke_unstack_detach_process(cpu: &Cpu<'_>, state: ApcState) -> Result<(), MmError> {
    let previous = state.previous.filter(|p| !p.exited());
    make_current(cpu.machine(), previous).map(drop)
}

/// What the dispatcher does when a thread of `process` (`None`: the System process)
/// runs next: makes it current, with nothing to go back to. ntmem switches lazily,
/// as Windows does: a thread returning to user mode after its request leaves its
/// process current, and what runs next in arbitrary context (a DPC, a timer, the
/// idle processor, which keeps the last address space) sees it; the next request
/// from the same process switches nothing. Worker routines (DriverEntry,
/// DriverUnload, work items, system threads) run in the System process and switch
/// to it.
///
/// # Errors
/// When the host refuses the switch of mappings: the memory manager's own failure
/// ([`host_bugcheck`]).
pub fn ke_switch_process(cpu: &Cpu<'_>, process: Option<&Arc<Process>>) -> Result<(), BugCheck> {
    let m = cpu.machine();
    make_current(m, process.filter(|p| !p.exited()).cloned()).map(drop).map_err(|e| host_bugcheck(m, &e))
}

/// `PsGetCurrentProcess`: `None` is the System process.
pub fn ps_get_current_process(cpu: &Cpu<'_>) -> Option<Arc<Process>> {
    cpu.machine().processes().current()
}

fn with_attached<R>(
    cpu: &Cpu<'_>,
    process: &Arc<Process>,
    f: impl FnOnce(&Machine) -> Result<R, NtStatus>,
) -> Result<R, NtStatus> {
    let state = ke_stack_attach_process(cpu, process).map_err(|_| NtStatus::INSUFFICIENT_RESOURCES)?;
    let r = f(cpu.machine());
    ke_unstack_detach_process(cpu, state).map_err(|_| NtStatus::INSUFFICIENT_RESOURCES)?;
    r
}

/// The id of the first user process ([`ps_create_process`]).
pub const FIRST_USER_PROCESS_ID: u64 = 0x100;

/// Creates a process with an empty user address space (`PsCreateSystemProcess`
/// for a user image, as far as memory goes). Inner `Err`: no memory for the
/// process object or the page tables.
///
/// # Errors
/// A bugcheck from the pool.
pub fn ps_create_process(cpu: &Cpu<'_>, name: &str) -> Result<Result<Arc<Process>, NtStatus>, BugCheck> {
    let m = cpu.machine();
    let Some(object) = pool::allocate(cpu, PoolType::NonPagedPool, PROCESS_OBJECT_SIZE, PROCESS_TAG)? else {
        return Ok(Err(NtStatus::INSUFFICIENT_RESOURCES));
    };
    m.space()
        .write(object, &[0u8; PROCESS_OBJECT_SIZE as usize])
        .map_err(|_| m.bugcheck(BugCheckCode::PAGE_FAULT_IN_NONPAGED_AREA, [object.get(), 1, 0, 0]))?;
    let tables = match PageTables::new(m.phys(), m.profile().paging) {
        Ok(t) => t,
        Err(_) => {
            pool::free(cpu, object, Some(PROCESS_TAG))?;
            return Ok(Err(NtStatus::INSUFFICIENT_RESOURCES));
        }
    };
    let ps = m.processes();
    // Multiples of 4 from 0x100, as Windows numbers processes and threads from one
    // table: clear of the System process (4) and of the ids ntmem gives the
    // requesting and worker threads (8, 12, ...).
    let id = FIRST_USER_PROCESS_ID + ps.next_id.fetch_add(1, Ordering::Relaxed) * 4;
    let process = Arc::new(Process {
        id,
        name: name.to_string(),
        object,
        tables,
        vm: Mutex::new(Vm::default()),
        locked_pages: AtomicU64::new(0),
        exited: AtomicBool::new(false),
    });
    if map_shared_user_data(cpu, &process).is_err() {
        for frame in process.tables.table_frames(m.phys()) {
            let _ = m.phys().free(frame, 1);
        }
        pool::free(cpu, object, Some(PROCESS_TAG))?;
        return Ok(Err(NtStatus::INSUFFICIENT_RESOURCES));
    }
    ps.all.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::clone(&process));
    Ok(Ok(process))
}

/// Maps `KUSER_SHARED_DATA` read-only at its user address (`0x7FFE0000`,
/// `layout.shared_user_data`) in `process`, as every Windows process has it.
fn map_shared_user_data(cpu: &Cpu<'_>, process: &Arc<Process>) -> Result<(), NtStatus> {
    let at = cpu.machine().profile().layout.shared_user_data;
    let pfn = cpu.machine().shared_data_pfn();
    with_attached(cpu, process, |m| {
        let frames = Frames { runs: vec![(pfn, 1)] };
        m.space().map(m.phys(), at, &frames, Access::ReadOnly).map_err(|_| NtStatus::INSUFFICIENT_RESOURCES)
    })?;
    let committed = BTreeMap::from([(at.get(), Committed { pfn, protect: PageProtection::ReadOnly })]);
    process.vm().vads.insert(at.get(), Vad { pages: 1, kind: VadKind::SharedUserData, committed });
    Ok(())
}

fn page_size(m: &Machine) -> u64 {
    m.profile().arch.page_shift().page_size()
}

/// The lowest free range of `size` bytes on the allocation granularity.
fn find_free(m: &Machine, vm: &Vm, size: u64) -> Option<u64> {
    let layout = &m.profile().layout;
    let page = page_size(m);
    let mut candidate = layout.user_start.get().next_multiple_of(ALLOCATION_GRANULARITY);
    for (&start, vad) in &vm.vads {
        if candidate + size <= start {
            break;
        }
        candidate = candidate.max((start + vad.pages * page).next_multiple_of(ALLOCATION_GRANULARITY));
    }
    (candidate.checked_add(size)? - 1 <= layout.user_end.get()).then_some(candidate)
}

/// `NtAllocateVirtualMemory` on `process`: reserves and/or commits; returns the
/// region's base and size (page-rounded), as the routine's in-out parameters do.
///
/// # Errors
/// `STATUS_INVALID_PARAMETER` (size 0 or larger than user space, a range that
/// wraps, no type, commit without base),
/// `STATUS_CONFLICTING_ADDRESSES` (the range is taken, or commit outside a
/// reservation), `STATUS_NO_MEMORY` (no frame or page table for a page to
/// commit: the call then takes nothing — neither the pages it committed nor the
/// region it reserved stay), `STATUS_PROCESS_IS_TERMINATING`.
pub fn nt_allocate_virtual_memory(
    cpu: &Cpu<'_>,
    process: &Arc<Process>,
    base: Option<Va>,
    size: u64,
    allocation: AllocationType,
    protect: PageProtection,
) -> Result<(Va, u64), NtStatus> {
    if process.exited() {
        return Err(NtStatus::PROCESS_IS_TERMINATING);
    }
    let m = cpu.machine();
    let layout = m.profile().layout.clone();
    // A size larger than user space can never be reserved; refusing it first keeps
    // the page arithmetic below from overflowing.
    if size == 0 || size > layout.user_end.get() || allocation.is_empty() {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let page = page_size(m);
    with_attached(cpu, process, |m| {
        let mut vm = process.vm();
        let (start, end) = if allocation.contains(AllocationType::RESERVE) {
            let start = match base {
                None => find_free(m, &vm, size.next_multiple_of(page)).ok_or(NtStatus::NO_MEMORY)?,
                Some(b) => b.get() / ALLOCATION_GRANULARITY * ALLOCATION_GRANULARITY,
            };
            let end = base
                .map_or(start, Va::get)
                .checked_add(size)
                .and_then(|e| e.checked_next_multiple_of(page))
                .ok_or(NtStatus::INVALID_PARAMETER)?;
            if start < layout.user_start.get() || end - 1 > layout.user_end.get() {
                return Err(NtStatus::INVALID_PARAMETER);
            }
            let overlaps = vm.vads.range(..end).next_back().is_some_and(|(&s, v)| s + v.pages * page > start);
            if overlaps {
                return Err(NtStatus::CONFLICTING_ADDRESSES);
            }
            let vad = Vad { pages: (end - start) / page, kind: VadKind::Private, committed: BTreeMap::new() };
            vm.vads.insert(start, vad);
            (start, end)
        } else {
            let b = base.ok_or(NtStatus::INVALID_PARAMETER)?;
            let start = b.get() / page * page;
            let end = b
                .get()
                .checked_add(size)
                .and_then(|e| e.checked_next_multiple_of(page))
                .ok_or(NtStatus::INVALID_PARAMETER)?;
            (start, end)
        };
        if allocation.contains(AllocationType::COMMIT) {
            if let Err(status) = commit(m, &mut vm, start, end, protect) {
                // All or nothing: a region this call reserved goes too.
                if allocation.contains(AllocationType::RESERVE) {
                    vm.vads.remove(&start);
                }
                return Err(status);
            }
        }
        Ok((Va::new(start), end - start))
    })
}

fn vad_holding(vm: &mut Vm, start: u64, end: u64, page: u64) -> Option<(u64, &mut Vad)> {
    let (&s, vad) = vm.vads.range_mut(..=start).next_back()?;
    (end <= s + vad.pages * page).then_some((s, vad))
}

/// Commits the pages of `[start, end)` not committed yet, all or nothing: when a
/// frame or a page table cannot be had, the pages this call committed are given
/// back and `STATUS_NO_MEMORY` returned, as Windows' commit takes nothing when it
/// fails.
fn commit(m: &Machine, vm: &mut Vm, start: u64, end: u64, protect: PageProtection) -> Result<(), NtStatus> {
    let page = page_size(m);
    let (_, vad) = vad_holding(vm, start, end, page).ok_or(NtStatus::CONFLICTING_ADDRESSES)?;
    if vad.kind != VadKind::Private {
        return Err(NtStatus::CONFLICTING_ADDRESSES);
    }
    let todo: Vec<u64> = (start..end).step_by(page as usize).filter(|va| !vad.committed.contains_key(va)).collect();
    if todo.is_empty() {
        return Ok(());
    }
    // One request for every frame, mapped run by run: frames that follow each other
    // go to pages that follow each other, so the host maps each such run once (page
    // by page, a large buffer would exceed the host's limit on mappings).
    let req = FrameRequest::new(todo.len() as u64, PageUse::UserPrivate).zeroed();
    let frames = m.phys().allocate(&req).map_err(|_| NtStatus::NO_MEMORY)?;
    let pfns: Vec<Pfn> = frames.pfns().collect();
    let mut taken = Vec::with_capacity(todo.len());
    let mut i = 0;
    while i < todo.len() {
        let mut n = 1;
        while i + n < todo.len() && todo[i + n] == todo[i] + n as u64 * page && pfns[i + n] == pfns[i].add(n as u64) {
            n += 1;
        }
        if let Some(how) = protect.mapping() {
            let run = Frames { runs: vec![(pfns[i], n as u64)] };
            if m.space().map(m.phys(), Va::new(todo[i]), &run, how).is_err() {
                let _ = m.space().unmap(m.phys(), Va::new(todo[i]), n as u64);
                for (va, c) in taken {
                    release_page(m, va, c, VadKind::Private);
                }
                for &pfn in &pfns[i..] {
                    let _ = m.phys().free(pfn, 1);
                }
                return Err(NtStatus::NO_MEMORY);
            }
        }
        taken.extend((i..i + n).map(|k| (todo[k], Committed { pfn: pfns[k], protect })));
        i += n;
    }
    vad.committed.extend(taken);
    Ok(())
}

/// Gives a private page back: unmapped, and its frame freed — unless an MDL still
/// has it locked, in which case the allocation's reference is dropped and the last
/// unlock frees it (Windows keeps a locked page until it is unlocked).
fn release_page(m: &Machine, va: u64, c: Committed, kind: VadKind) {
    if c.protect != PageProtection::NoAccess {
        let _ = m.space().unmap(m.phys(), Va::new(va), 1);
    }
    if matches!(kind, VadKind::LockedPages | VadKind::SharedUserData) {
        return;
    }
    let locked = m.phys().update(c.pfn, |e| {
        if e.lock_count > 0 {
            e.reference_count = e.reference_count.saturating_sub(1);
            true
        } else {
            false
        }
    });
    if !locked {
        let _ = m.phys().free(c.pfn, 1);
    }
}

/// `NtFreeVirtualMemory` on `process`.
///
/// # Errors
/// `STATUS_MEMORY_NOT_ALLOCATED` (no region there), `STATUS_INVALID_PARAMETER`
/// (release with a size, or not at the region's base),
/// `STATUS_PROCESS_IS_TERMINATING`.
pub fn nt_free_virtual_memory(
    cpu: &Cpu<'_>,
    process: &Arc<Process>,
    base: Va,
    size: u64,
    free: FreeType,
) -> Result<(), NtStatus> {
    if process.exited() {
        return Err(NtStatus::PROCESS_IS_TERMINATING);
    }
    let page = page_size(cpu.machine());
    with_attached(cpu, process, |m| {
        let mut vm = process.vm();
        match free {
            FreeType::Release => {
                if size != 0 {
                    return Err(NtStatus::INVALID_PARAMETER);
                }
                if let Some(vad) = vm.vads.get(&base.get()) {
                    vm.check_secured(base.get(), base.get() + vad.pages * page, None)?;
                }
                let vad = match vm.vads.get(&base.get()) {
                    Some(v) if v.kind == VadKind::Private => vm.vads.remove(&base.get()).expect("present"),
                    Some(_) => return Err(NtStatus::INVALID_PARAMETER),
                    None => return Err(NtStatus::MEMORY_NOT_ALLOCATED),
                };
                for (va, c) in vad.committed {
                    release_page(m, va, c, vad.kind);
                }
            }
            FreeType::Decommit => {
                let start = base.get() / page * page;
                let end =
                    base.get().checked_add(size.max(1)).ok_or(NtStatus::INVALID_PARAMETER)?.next_multiple_of(page);
                vm.check_secured(start, end, None)?;
                let (_, vad) = vad_holding(&mut vm, start, end, page).ok_or(NtStatus::MEMORY_NOT_ALLOCATED)?;
                if vad.kind != VadKind::Private {
                    return Err(NtStatus::INVALID_PARAMETER);
                }
                let gone: Vec<u64> = vad.committed.range(start..end).map(|(&va, _)| va).collect();
                for va in gone {
                    let c = vad.committed.remove(&va).expect("listed");
                    release_page(m, va, c, VadKind::Private);
                }
            }
        }
        Ok(())
    })
}

/// `NtProtectVirtualMemory` on `process`: returns the old protection of the first
/// page.
///
/// # Errors
/// `STATUS_NOT_COMMITTED` when a page of the range is not committed private memory.
pub fn nt_protect_virtual_memory(
    cpu: &Cpu<'_>,
    process: &Arc<Process>,
    base: Va,
    size: u64,
    protect: PageProtection,
) -> Result<PageProtection, NtStatus> {
    if process.exited() {
        return Err(NtStatus::PROCESS_IS_TERMINATING);
    }
    let page = page_size(cpu.machine());
    with_attached(cpu, process, |m| {
        let mut vm = process.vm();
        let start = base.get() / page * page;
        let end = base.get().checked_add(size.max(1)).ok_or(NtStatus::INVALID_PARAMETER)?.next_multiple_of(page);
        vm.check_secured(start, end, Some(protect))?;
        let (_, vad) = vad_holding(&mut vm, start, end, page).ok_or(NtStatus::NOT_COMMITTED)?;
        if vad.kind != VadKind::Private
            || (start..end).step_by(page as usize).any(|va| !vad.committed.contains_key(&va))
        {
            return Err(NtStatus::NOT_COMMITTED);
        }
        let old = vad.committed[&start].protect;
        for va in (start..end).step_by(page as usize) {
            let c = vad.committed.get_mut(&va).expect("checked");
            if c.protect != PageProtection::NoAccess {
                let _ = m.space().unmap(m.phys(), Va::new(va), 1);
            }
            if let Some(how) = protect.mapping() {
                let frames = Frames { runs: vec![(c.pfn, 1)] };
                m.space().map(m.phys(), Va::new(va), &frames, how).map_err(|_| NtStatus::NO_MEMORY)?;
            }
            c.protect = protect;
        }
        Ok(old)
    })
}

/// Ends `process`: stops the machine with PROCESS_HAS_LOCKED_PAGES (0x76:
/// 0, process object, locked pages, 0) if a driver still has pages of it locked
/// (DRIVER_LEFT_LOCKED_PAGES_IN_PROCESS, 0xCB, under Driver Verifier's pool
/// tracking: [`crate::vf::Verifier::locked_pages_left`]);
/// otherwise unmaps and frees every region (user-mode mappings of locked pages
/// included), frees the page tables and the process object.
///
/// # Errors
/// The bugcheck.
pub fn ps_terminate_process(cpu: &Cpu<'_>, process: &Arc<Process>) -> Result<(), BugCheck> {
    let m = cpu.machine();
    if process.exited() {
        return Ok(());
    }
    let locked = process.locked_pages();
    if locked != 0 {
        if let Some(b) = m.vf().locked_pages_left(m, process.object.get()) {
            return Err(b);
        }
        return Err(m.bugcheck(BugCheckCode::PROCESS_HAS_LOCKED_PAGES, [0, process.object.get(), locked, 0]));
    }
    let state = ke_stack_attach_process(cpu, process).map_err(|e| host_bugcheck(m, &e))?;
    {
        let mut vm = process.vm();
        for (_, vad) in std::mem::take(&mut vm.vads) {
            for (va, c) in vad.committed {
                release_page(m, va, c, vad.kind);
            }
        }
    }
    process.exited.store(true, Ordering::Release);
    ke_unstack_detach_process(cpu, state).map_err(|e| host_bugcheck(m, &e))?;
    for frame in process.tables.table_frames(m.phys()) {
        let _ = m.phys().free(frame, 1);
    }
    m.processes().all.lock().unwrap_or_else(|e| e.into_inner()).retain(|p| !Arc::ptr_eq(p, process));
    pool::free(cpu, process.object, Some(PROCESS_TAG))
}

/// The host refused a mapping change: nothing a driver did; reported as the
/// memory manager's own failure (MEMORY_MANAGEMENT is not in the table yet, so
/// KMODE_EXCEPTION_NOT_HANDLED with STATUS_NO_MEMORY).
fn host_bugcheck(m: &Machine, _e: &MmError) -> BugCheck {
    m.bugcheck(BugCheckCode::KMODE_EXCEPTION_NOT_HANDLED, [u64::from(NtStatus::NO_MEMORY.0), 0, 0, 0])
}
