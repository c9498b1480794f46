//! WinDriver's DMA buffer locks, done the way Windows lets a driver do them (seed
//! 001, Jungo Technical Document #58; research/dma-verifier-views.md §4.1, §4.2).
//!
//! `WDC_DMAContigBufLock` ([`LockMode::Contiguous`]) has the kernel allocate the
//! buffer: physically contiguous memory inside the device's reach, which is mapped
//! in system space as it is allocated (MmAllocateContiguousMemorySpecifyCache), an
//! MDL over it (IoAllocateMdl, MmBuildMdlForNonPagedPool), and a mapping of it into
//! the calling process (MmMapLockedPagesSpecifyCache, UserMode). `WDC_DMASGBufLock`
//! ([`LockMode::ScatterGather`]) takes the application's own buffer (here: reserved,
//! then committed, as VirtualAlloc would), describes it with an MDL, locks it
//! (MmProbeAndLockPages), maps it into system space (MmMapLockedPagesSpecifyCache,
//! KernelMode, NormalPagePriority, no bugcheck on failure) and returns the physical
//! page list. Research §4.1 \[DERIVED\]: these are the only Windows pieces WinDriver
//! can use; TD58's "non-paged pool" is where the MDL lives, not the buffer.
//!
//! [`attempt`] runs those steps, in that order, on a booted [`Machine`] — the real
//! routines of the model, not a formula — stops at the first that fails, names why
//! in the seed's terms ([`LockFailure`]) and gives back everything it took, so the
//! machine is as it was. [`plan`] (in `advice`) boots the machine, fragments it and
//! re-plans with each change that might help.
//!
//! \[DESIGN\] The process that asks is a fresh one with an empty address space
//! (ntmem does not model the DLLs and heaps of a real application), so the user
//! address space fails only for buffers larger than it has room for.

mod advice;
#[cfg(test)]
mod tests;

use std::fmt;

use ntmem_machine::{format_size, PhysAddr, Va};

pub use advice::{plan, Plan, PlanError, PlanInput, Suggestion};

use crate::bugcheck::BugCheck;
use crate::ex::pool::{NtStatus, PoolKind};
use crate::ke::processor::Cpu;
use crate::mm::contiguous::{self, MemoryCachingType};
use crate::mm::mdl::{self, LockOperation, Mdl, OnFailure, PagePriority, ProcessorMode};
use crate::mm::process::{self, AllocationType, FreeType, PageProtection, Process};
use crate::Machine;

/// The largest buffer WinDriver's lock takes: `dwDMABufSize` is a DWORD.
pub const MAX_LOCK_BYTES: u64 = u32::MAX as u64;

/// Which of WinDriver's locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LockMode {
    /// `WDC_DMAContigBufLock` (`DMA_KERNEL_BUFFER_ALLOC`).
    Contiguous,
    /// `WDC_DMASGBufLock` (the caller's buffer; `DMA_LARGE_BUFFER` above 1 MB).
    ScatterGather,
}

/// How many address bits the device drives (WinDriver's
/// `DMA_KBUF_ALLOC_SPECIFY_ADDRESS_WIDTH` / `DMA_ALLOW_64BIT_ADDRESS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum AddressWidth {
    /// 32-bit: the buffer must lie below 4 GB.
    Bits32,
    /// 64-bit: anywhere.
    Bits64,
}

impl AddressWidth {
    /// From a bit count (32 or 64).
    pub fn from_bits(bits: u32) -> Option<AddressWidth> {
        match bits {
            32 => Some(AddressWidth::Bits32),
            64 => Some(AddressWidth::Bits64),
            _ => None,
        }
    }
    /// The bit count.
    pub fn bits(self) -> u32 {
        match self {
            AddressWidth::Bits32 => 32,
            AddressWidth::Bits64 => 64,
        }
    }
    /// The highest address the device reaches.
    pub fn limit(self) -> u64 {
        match self {
            AddressWidth::Bits32 => u64::from(u32::MAX),
            AddressWidth::Bits64 => u64::MAX,
        }
    }
}

/// One lock to try.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LockRequest {
    /// Contiguous or scatter/gather.
    pub mode: LockMode,
    /// `dwDMABufSize`, bytes (1 ..= [`MAX_LOCK_BYTES`]).
    pub bytes: u64,
    /// The device's address width.
    pub address_width: AddressWidth,
}

/// The steps, in the order the locks take them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// MmAllocateContiguousMemorySpecifyCache (contiguous: the buffer and its
    /// system mapping).
    ContiguousAllocation,
    /// The application's buffer (scatter/gather): NtAllocateVirtualMemory, reserve
    /// then commit.
    UserBuffer,
    /// IoAllocateMdl.
    MdlAllocation,
    /// MmBuildMdlForNonPagedPool (contiguous).
    BuildMdl,
    /// MmProbeAndLockPages (scatter/gather).
    LockPages,
    /// MmMapLockedPagesSpecifyCache, KernelMode (scatter/gather).
    KernelMapping,
    /// MmMapLockedPagesSpecifyCache, UserMode (contiguous).
    UserMapping,
    /// The physical page list handed back.
    PageList,
}

impl Step {
    /// The Windows routine the step is.
    pub fn routine(self) -> &'static str {
        match self {
            Step::ContiguousAllocation => "MmAllocateContiguousMemorySpecifyCache",
            Step::UserBuffer => "NtAllocateVirtualMemory",
            Step::MdlAllocation => "IoAllocateMdl",
            Step::BuildMdl => "MmBuildMdlForNonPagedPool",
            Step::LockPages => "MmProbeAndLockPages",
            Step::KernelMapping => "MmMapLockedPagesSpecifyCache(KernelMode)",
            Step::UserMapping => "MmMapLockedPagesSpecifyCache(UserMode)",
            Step::PageList => "MmGetMdlPfnArray",
        }
    }
}

/// Why a step failed, in the seed's terms (research §4.2's table).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LockFailure {
    /// No run of free physically consecutive pages that long inside the device's
    /// reach (MmAllocateContiguousMemory returns NULL).
    NotEnoughContiguousMemory {
        /// Pages needed.
        pages: u64,
        /// The device's highest address.
        limit: u64,
        /// The longest free run there, pages.
        largest_run: u64,
    },
    /// Not enough free system PTEs to map the buffer (NULL; Technical Document #59).
    NoSystemPtes {
        /// PTEs needed.
        pages: u64,
        /// Free system PTEs.
        free: u64,
        /// All system PTEs.
        total: u64,
    },
    /// The buffer is longer than the edition's IoAllocateMdl limit.
    MdlTooLarge {
        /// The buffer.
        bytes: u64,
        /// The limit ([`mdl::max_mdl_buffer`]).
        limit: u64,
    },
    /// The MDL itself did not fit in nonpaged pool (TD58's NonPagedPoolSize).
    NonPagedPool {
        /// Bytes the MDL needs.
        bytes: u64,
        /// Nonpaged pool pages in use.
        pages_in_use: u64,
        /// The most it may have.
        max_pages: u64,
    },
    /// No free range that long in the process's user address space (TD58: "there
    /// must also be enough free virtual memory").
    NoUserAddressSpace {
        /// The buffer.
        bytes: u64,
        /// The user address space's size.
        user_space: u64,
    },
    /// Not enough free physical memory to commit or lock the buffer.
    NotEnoughMemory {
        /// Pages needed.
        pages: u64,
        /// Free pages.
        free: u64,
    },
    /// Refused for another reason (the status).
    Refused {
        /// The NTSTATUS, hex.
        status: String,
    },
}

impl fmt::Display for LockFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size = |pages: u64| format_size(pages.saturating_mul(4096));
        match *self {
            Self::NotEnoughContiguousMemory { pages, limit, largest_run } => write!(
                f,
                "not enough physically contiguous memory within the device's reach ({}): {pages} pages ({}) \
                 needed, the largest free run there is {largest_run} pages ({})",
                match limit.checked_add(1) {
                    Some(end) => format!("below {}", format_size(end)),
                    None => "all of RAM".to_string(),
                },
                size(pages),
                size(largest_run)
            ),
            Self::NoSystemPtes { pages, free, total } => write!(
                f,
                "not enough system PTEs to map the buffer: {pages} needed, {free} of {total} free \
                 (SystemPages; Technical Document #59)"
            ),
            Self::MdlTooLarge { bytes, limit } => write!(
                f,
                "the buffer ({}) is larger than one MDL can describe on this edition (IoAllocateMdl's limit is \
                 {limit} bytes)",
                format_size(bytes)
            ),
            Self::NonPagedPool { bytes, pages_in_use, max_pages } => write!(
                f,
                "nonpaged pool limit: the MDL needs {bytes} bytes, {pages_in_use} of {max_pages} pages are in use \
                 (NonPagedPoolSize)"
            ),
            Self::NoUserAddressSpace { bytes, user_space } => write!(
                f,
                "no room for {} in the process's user address space ({})",
                format_size(bytes),
                format_size(user_space)
            ),
            Self::NotEnoughMemory { pages, free } => {
                write!(f, "not enough free memory to lock the buffer: {pages} pages needed, {free} free")
            }
            Self::Refused { ref status } => write!(f, "refused with {status}"),
        }
    }
}

/// One step as it went.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StepRecord {
    /// The step.
    pub step: Step,
    /// Its Windows routine.
    pub routine: &'static str,
    /// Whether it succeeded.
    pub ok: bool,
}

/// The physical page list of a lock that got through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PageList {
    /// Pages locked.
    pub pages: u64,
    /// `Page[]` entries after WinDriver merges physically adjacent pages.
    pub entries: u64,
    /// `Page[]` entries WinDriver's library allocates (pages + 1) — more than the
    /// 256 of `WD_DMA_PAGES` needs `DMA_LARGE_BUFFER` (research §4.1).
    pub wd_dma_pages: u64,
    /// Pages the device cannot reach (above its address width).
    pub beyond_reach: u64,
}

/// What one lock got.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Attempt {
    /// What was asked.
    pub request: LockRequest,
    /// The steps taken, up to the first failure.
    pub steps: Vec<StepRecord>,
    /// The first failure and its step.
    pub failure: Option<(Step, LockFailure)>,
    /// The page list, when every step succeeded.
    pub page_list: Option<PageList>,
}

impl Attempt {
    /// The step that failed first.
    pub fn failed_step(&self) -> Option<Step> {
        self.failure.as_ref().map(|(s, _)| *s)
    }
}

/// What a step leaves to give back, in reverse order.
enum Held {
    Contiguous(Va),
    UserRegion(Va),
    Mdl(Mdl),
    Locked(Mdl),
    Mapped(Va, Mdl),
}

struct Run<'a, 'b> {
    cpu: &'a Cpu<'b>,
    process: std::sync::Arc<Process>,
    steps: Vec<StepRecord>,
    held: Vec<Held>,
}

impl Run<'_, '_> {
    fn record(&mut self, step: Step, ok: bool) {
        self.steps.push(StepRecord { step, routine: step.routine(), ok });
    }

    fn release(&mut self) -> Result<(), BugCheck> {
        let cpu = self.cpu;
        while let Some(h) = self.held.pop() {
            match h {
                Held::Contiguous(va) => contiguous::mm_free_contiguous_memory(cpu, va)?,
                Held::UserRegion(va) => {
                    let _ = process::nt_free_virtual_memory(cpu, &self.process, va, 0, FreeType::Release);
                }
                Held::Mdl(m) => mdl::io_free_mdl(cpu, m)?,
                Held::Locked(m) => mdl::mm_unlock_pages(cpu, m)?,
                Held::Mapped(va, m) => mdl::mm_unmap_locked_pages(cpu, va, m)?,
            }
        }
        Ok(())
    }
}

fn status(s: NtStatus) -> LockFailure {
    LockFailure::Refused { status: format!("{:#010x}", s.0) }
}

/// Runs `req` on `m` (module notes): the steps up to the first failure, then gives
/// everything back. The machine must not be running code on processor 0.
///
/// # Errors
/// A bugcheck of the model (none is expected: every step is called correctly).
pub fn attempt(m: &Machine, req: &LockRequest) -> Result<Attempt, BugCheck> {
    m.run(0, |cpu| {
        let process = match process::ps_create_process(cpu, "wdapp.exe")? {
            Ok(p) => p,
            Err(s) => {
                let step = if req.mode == LockMode::Contiguous { Step::ContiguousAllocation } else { Step::UserBuffer };
                return Ok(Attempt {
                    request: *req,
                    steps: Vec::new(),
                    failure: Some((step, status(s))),
                    page_list: None,
                });
            }
        };
        let Ok(apc) = process::ke_stack_attach_process(cpu, &process) else {
            process::ps_terminate_process(cpu, &process)?;
            let failure = LockFailure::Refused { status: "the host refused the process switch".to_string() };
            let step = if req.mode == LockMode::Contiguous { Step::ContiguousAllocation } else { Step::UserBuffer };
            return Ok(Attempt { request: *req, steps: Vec::new(), failure: Some((step, failure)), page_list: None });
        };
        let mut run = Run { cpu, process: process.clone(), steps: Vec::new(), held: Vec::new() };
        let result = match req.mode {
            LockMode::Contiguous => contiguous_lock(&mut run, req),
            LockMode::ScatterGather => sg_lock(&mut run, req),
        };
        let released = run.release();
        let _ = process::ke_unstack_detach_process(cpu, apc);
        process::ps_terminate_process(cpu, &process)?;
        released?;
        let (failure, page_list) = match result? {
            Ok(list) => (None, Some(list)),
            Err(f) => (Some(f), None),
        };
        Ok(Attempt { request: *req, steps: run.steps, failure, page_list })
    })
}

type StepResult = Result<Result<PageList, (Step, LockFailure)>, BugCheck>;

/// IoAllocateMdl, with its NULL explained.
fn allocate_mdl(run: &mut Run<'_, '_>, va: Va, bytes: u64) -> Result<Result<Mdl, (Step, LockFailure)>, BugCheck> {
    let cpu = run.cpu;
    let m = cpu.machine();
    let got = mdl::io_allocate_mdl(cpu, va, bytes)?;
    run.record(Step::MdlAllocation, got.is_some());
    let Some(new) = got else {
        let limit = mdl::max_mdl_buffer(m.profile().edition);
        let failure = if bytes > limit {
            LockFailure::MdlTooLarge { bytes, limit }
        } else {
            let usage = m.pool().usage(PoolKind::Nonpaged);
            LockFailure::NonPagedPool {
                bytes: mdl::mm_size_of_mdl(m.phys().shift(), va, bytes),
                pages_in_use: usage.pages_in_use,
                max_pages: usage.max_pages,
            }
        };
        return Ok(Err((Step::MdlAllocation, failure)));
    };
    run.held.push(Held::Mdl(new));
    Ok(Ok(new))
}

/// The page list of a locked MDL.
fn page_list(run: &mut Run<'_, '_>, mdl: Mdl, bytes: u64, limit: u64) -> StepResult {
    let cpu = run.cpu;
    let shift = cpu.machine().phys().shift();
    let h = mdl::read_header(cpu, mdl)?;
    let pages = mdl::address_and_size_to_span_pages(shift, h.virtual_address(), bytes);
    let mut list = PageList { pages, wd_dma_pages: shift.bytes_to_pages(bytes) + 1, ..PageList::default() };
    let mut previous: Option<u64> = None;
    for i in 0..pages {
        let pfn = mdl::read_pfn(cpu, mdl, i)?;
        if previous.is_none_or(|p| p.wrapping_add(1) != pfn) {
            list.entries += 1;
        }
        let last = (u128::from(pfn) + 1) << shift.0;
        if last - 1 > u128::from(limit) {
            list.beyond_reach += 1;
        }
        previous = Some(pfn);
    }
    run.record(Step::PageList, true);
    Ok(Ok(list))
}

fn contiguous_lock(run: &mut Run<'_, '_>, req: &LockRequest) -> StepResult {
    let cpu = run.cpu;
    let m = cpu.machine();
    let shift = m.phys().shift();
    let pages = shift.bytes_to_pages(req.bytes);
    let limit = req.address_width.limit();
    let zero = PhysAddr::new(0);
    let got = contiguous::mm_allocate_contiguous_memory_specify_cache(
        cpu,
        req.bytes,
        zero,
        PhysAddr::new(limit),
        zero,
        MemoryCachingType::Cached,
    );
    run.record(Step::ContiguousAllocation, got.is_some());
    let Some(va) = got else {
        let largest_run = m.phys().largest_free_run(limit.checked_add(1).map(PhysAddr::new));
        let failure = if largest_run < pages {
            LockFailure::NotEnoughContiguousMemory { pages, limit, largest_run }
        } else {
            LockFailure::NoSystemPtes { pages, free: m.system_ptes().free(), total: m.system_ptes().total() }
        };
        return Ok(Err((Step::ContiguousAllocation, failure)));
    };
    run.held.push(Held::Contiguous(va));
    let mdl = match allocate_mdl(run, va, req.bytes)? {
        Ok(mdl) => mdl,
        Err(f) => return Ok(Err(f)),
    };
    mdl::mm_build_mdl_for_nonpaged_pool(cpu, mdl)?;
    run.record(Step::BuildMdl, true);
    let mapped = mdl::mm_map_locked_pages_specify_cache(
        cpu,
        mdl,
        ProcessorMode::UserMode,
        MemoryCachingType::Cached,
        None,
        OnFailure::ReturnNull,
        PagePriority::Normal,
    )?;
    run.record(Step::UserMapping, matches!(mapped, Ok(Some(_))));
    match mapped {
        Ok(Some(user)) => run.held.push(Held::Mapped(user, mdl)),
        Ok(None) | Err(NtStatus::NO_MEMORY) => return Ok(Err((Step::UserMapping, no_user_space(m, req.bytes)))),
        Err(s) => return Ok(Err((Step::UserMapping, status(s)))),
    }
    page_list(run, mdl, req.bytes, limit)
}

fn no_user_space(m: &Machine, bytes: u64) -> LockFailure {
    let l = &m.profile().layout;
    LockFailure::NoUserAddressSpace { bytes, user_space: l.user_end.get().saturating_sub(l.user_start.get()) + 1 }
}

fn sg_lock(run: &mut Run<'_, '_>, req: &LockRequest) -> StepResult {
    let cpu = run.cpu;
    let m = cpu.machine();
    let shift = m.phys().shift();
    let pages = shift.bytes_to_pages(req.bytes);
    let rw = PageProtection::ReadWrite;
    let reserved = process::nt_allocate_virtual_memory(cpu, &run.process, None, req.bytes, AllocationType::RESERVE, rw);
    let base = match reserved {
        Ok((base, _)) => base,
        Err(NtStatus::NO_MEMORY | NtStatus::INVALID_PARAMETER) => {
            run.record(Step::UserBuffer, false);
            return Ok(Err((Step::UserBuffer, no_user_space(m, req.bytes))));
        }
        Err(s) => {
            run.record(Step::UserBuffer, false);
            return Ok(Err((Step::UserBuffer, status(s))));
        }
    };
    run.held.push(Held::UserRegion(base));
    let committed =
        process::nt_allocate_virtual_memory(cpu, &run.process, Some(base), req.bytes, AllocationType::COMMIT, rw);
    run.record(Step::UserBuffer, committed.is_ok());
    match committed {
        Ok(_) => {}
        Err(NtStatus::NO_MEMORY) => {
            let failure = LockFailure::NotEnoughMemory { pages, free: m.phys().free_pages() };
            return Ok(Err((Step::UserBuffer, failure)));
        }
        Err(s) => return Ok(Err((Step::UserBuffer, status(s)))),
    }
    let mdl = match allocate_mdl(run, base, req.bytes)? {
        Ok(mdl) => mdl,
        Err(f) => return Ok(Err(f)),
    };
    let locked = mdl::mm_probe_and_lock_pages(cpu, mdl, ProcessorMode::UserMode, LockOperation::IoModifyAccess)?;
    run.record(Step::LockPages, locked.is_ok());
    match locked {
        Ok(()) => run.held.push(Held::Locked(mdl)),
        Err(s) => return Ok(Err((Step::LockPages, status(s)))),
    }
    let mapped = mdl::mm_map_locked_pages_specify_cache(
        cpu,
        mdl,
        ProcessorMode::KernelMode,
        MemoryCachingType::Cached,
        None,
        OnFailure::ReturnNull,
        PagePriority::Normal,
    )?;
    run.record(Step::KernelMapping, matches!(mapped, Ok(Some(_))));
    match mapped {
        Ok(Some(system)) => run.held.push(Held::Mapped(system, mdl)),
        Ok(None) => {
            let failure =
                LockFailure::NoSystemPtes { pages, free: m.system_ptes().free(), total: m.system_ptes().total() };
            return Ok(Err((Step::KernelMapping, failure)));
        }
        Err(s) => return Ok(Err((Step::KernelMapping, status(s)))),
    }
    page_list(run, mdl, req.bytes, req.address_width.limit())
}
