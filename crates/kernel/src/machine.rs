//! A booted simulated machine: physical memory, its address space, system PTEs,
//! processors — and the one place where a bugcheck stops it.
//!
//! [`Machine::boot`] turns a [`MachineProfile`] (the `machine` crate's data) into a
//! running machine; [`Machine::run`] runs code on one of its processors, on that
//! processor's kernel stack, and turns every way that code can fail — a bugcheck
//! returned by a kernel routine, a real fault, a stack overflow — into the
//! [`BugCheck`] that stopped the machine. Once stopped, every later `run` returns
//! the same bugcheck (DESIGN.md, "Leaving driver code on a bugcheck").

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ntmem_host::{call_guarded, register_fault_range, Escape, FaultRange, Stack};
use ntmem_machine::{format_size, Arch, MachineProfile, PhysAddr, RegionKind, Va};

use crate::bugcheck::{BugCheck, BugCheckCode};
use crate::ex::lookaside::Lookasides;
use crate::ex::pool::Pool;
use crate::ke::irql::IrqlLevels;
use crate::ke::processor::{Binding, Cpu, KernelStack, Processor};
use crate::ke::watchdog::{DriverWatch, WatchdogLimits};
use crate::mm::frames::{FrameRequest, PhysicalMemory};
use crate::mm::image_paging::ImagePaging;
use crate::mm::images::Images;
use crate::mm::pager::{PagingFile, PagingStats};
use crate::mm::pfn::PageUse;
use crate::mm::space::{to_usize, Access, AddressSpace};
use crate::mm::system_ptes::SystemPtes;
use crate::mm::MmError;
use crate::trap::{decode_escape, Trap};
use crate::vf::VerifierFlags;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A running simulated machine.
#[derive(Debug)]
pub struct Machine {
    id: u64,
    profile: MachineProfile,
    phys: Arc<PhysicalMemory>,
    space: Arc<AddressSpace>,
    ptes: SystemPtes,
    processors: Arc<[Processor]>,
    images: Arc<Images>,
    image_paging: Arc<ImagePaging>,
    trap: Arc<Trap>,
    stopped: Mutex<Option<BugCheck>>,
    pool: Pool,
    lookasides: Lookasides,
    timers: crate::ke::timers::Timers,
    workers: crate::ke::workers::Workers,
    scheduler: crate::ke::sched::Scheduler,
    objects: crate::ob::Objects,
    registry: crate::cm::Registry,
    resources: crate::ex::resource::Resources,
    clock_ms: AtomicU64,
    vf: crate::vf::Verifier,
    watchdog: Mutex<WatchdogLimits>,
    hal: crate::hal::Hal,
    _fault_range: FaultRange,
    processes: crate::mm::process::Processes,
    io: crate::io::IoManager,
    shared_data: crate::ke::shared_data::SharedData,
}

impl Drop for Machine {
    /// The last resort of the promise that no host thread outlives its machine
    /// ([`crate::ke::sched`]): runs end their threads themselves, before this.
    fn drop(&mut self) {
        self.scheduler.shutdown();
    }
}

/// What `ntmem boot` prints: the machine as it came up.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BootSummary {
    /// Edition key.
    pub machine: String,
    /// Installed RAM, bytes.
    pub ram: u64,
    /// RAM the memory manager may use, bytes.
    pub usable_ram: u64,
    /// Page size, bytes.
    pub page_size: u64,
    /// Free physical pages.
    pub free_pages: u64,
    /// The longest run of free pages wholly below 4 GB, in pages.
    pub largest_free_run_below_4g: u64,
    /// The longest run of free pages, in pages.
    pub largest_free_run: u64,
    /// Nonpaged pool maximum, bytes.
    pub nonpaged_pool_max: u64,
    /// Paged pool maximum, bytes.
    pub paged_pool_max: u64,
    /// System PTEs, pages.
    pub system_ptes: u64,
    /// Free system PTEs, pages.
    pub system_ptes_free: u64,
    /// Processors.
    pub processors: u32,
    /// Host address minus simulated address (0 = the real addresses).
    pub relocation: u64,
    /// The top-level page table's physical address (CR3).
    pub page_directory: u64,
    /// Warnings from the boot options.
    pub warnings: Vec<String>,
}

/// Why a machine could not boot.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The memory manager could not set up (host refused, no memory for tables).
    #[error("cannot boot: {0}")]
    Mm(#[from] MmError),
    /// The profile has no region the kernel needs.
    #[error("cannot boot: the layout has no {0:?} region")]
    MissingRegion(RegionKind),
}

impl Machine {
    /// Boots `profile`: creates its RAM, burns /BURNMEMORY pages, reserves its
    /// address space, builds the system PTE pool and a kernel stack per processor.
    ///
    /// # Errors
    /// [`BootError`] when the host refuses or the profile cannot work.
    pub fn boot(profile: MachineProfile) -> Result<Machine, BootError> {
        let shift = profile.arch.page_shift();
        let page = shift.page_size();
        let phys = PhysicalMemory::new(&profile.physmap, shift)?;
        if profile.physmap.burned > 0 {
            let req = FrameRequest::new(shift.bytes_to_pages(profile.physmap.burned), PageUse::Burned).allow_partial();
            phys.allocate(&req)?;
        }
        // 1.5 times RAM, but no more slots than a paging-file PTE can name.
        let slots = crate::mm::pte::PteFormat::new(profile.paging).max_paging_file_slot();
        let paging_bytes = shift.round_up(profile.ram_installed / 2 * 3).min(slots * page);
        let paging = PagingFile::new(paging_bytes, shift)?;
        let space = AddressSpace::new(&profile.layout, profile.paging, shift, &phys, paging)?;
        let region =
            profile.layout.region(RegionKind::SystemPtes).ok_or(BootError::MissingRegion(RegionKind::SystemPtes))?;
        let count = profile.system_ptes.min(region.size / page);
        let ptes = SystemPtes::new(region.start, count, shift);
        let stack_pages = shift.bytes_to_pages(profile.arch.kernel_stack_size());
        let mut processors = Vec::new();
        for _ in 0..profile.processors {
            let guard = ptes.reserve(stack_pages + 1).ok_or(MmError::NoSystemPtes {
                requested: stack_pages + 1,
                free: ptes.free(),
                total: ptes.total(),
            })?;
            let base = Va::new(guard.get() + page);
            let frames = phys.allocate(&FrameRequest::new(stack_pages, PageUse::KernelStack))?;
            space.map(&phys, base, &frames, Access::ReadWrite)?;
            processors.push(Processor::new(KernelStack { base, size: stack_pages * page }));
        }
        let processors: Arc<[Processor]> = processors.into();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let shared_data = crate::ke::shared_data::SharedData::map(&profile, &phys, &space)?;
        let (phys, space) = (Arc::new(phys), Arc::new(space));
        let image_paging = Arc::new(ImagePaging::default());
        let paged = profile.layout.region(RegionKind::PagedPool).map(|r| (r.start, r.size));
        let (pageable, images_pageable) = (Arc::downgrade(&space), Arc::downgrade(&image_paging));
        phys.set_low_memory_hook(Box::new(move |phys| {
            let Some(space) = pageable.upgrade() else { return 0 };
            let pool = paged.and_then(|(start, size)| space.trim_if_idle(phys, start, size, Access::ReadWrite).ok());
            let images = images_pageable.upgrade().and_then(|i| i.trim(&space, phys, true).ok());
            pool.unwrap_or(0) + images.unwrap_or(0)
        }));
        let images = Arc::new(Images::default());
        let pool = Pool::new(&profile).map_err(MmError::Host)?;
        let trap = Arc::new(Trap::new(
            id,
            Arc::clone(&space),
            Arc::clone(&phys),
            page,
            Arc::clone(&processors),
            Arc::clone(&images),
            pool.special().pages(),
        ));
        let (start, len) = space.host_range();
        let fault_range = register_fault_range(start, len, trap.clone());
        let hal = crate::hal::Hal::new(&profile)?;
        let registry = crate::cm::Registry::boot(&profile.registry);
        Ok(Machine {
            id,
            profile,
            phys,
            space,
            ptes,
            processors,
            images,
            image_paging,
            trap,
            stopped: Mutex::new(None),
            pool,
            lookasides: Lookasides::default(),
            timers: crate::ke::timers::Timers::default(),
            workers: crate::ke::workers::Workers::default(),
            scheduler: crate::ke::sched::Scheduler::default(),
            objects: crate::ob::Objects::default(),
            registry,
            resources: crate::ex::resource::Resources::default(),
            clock_ms: AtomicU64::new(0),
            vf: crate::vf::Verifier::default(),
            watchdog: Mutex::new(WatchdogLimits::default()),
            hal,
            _fault_range: fault_range,
            processes: crate::mm::process::Processes::default(),
            io: crate::io::IoManager::default(),
            shared_data,
        })
    }

    /// The profile the machine was booted from.
    pub fn profile(&self) -> &MachineProfile {
        &self.profile
    }

    /// Physical memory.
    pub fn phys(&self) -> &PhysicalMemory {
        &self.phys
    }

    /// The address space.
    #[inline(always)]
    pub fn space(&self) -> &AddressSpace {
        &self.space
    }

    /// The executive pool (`ex::pool`).
    #[inline(always)]
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The driver images loaded on the machine.
    pub fn images(&self) -> &Images {
        &self.images
    }

    /// Whether host address `address` is in a pageable part of a loaded driver image
    /// (a `PAGE*` section, or the whole image after MmPageEntireDriver).
    pub fn in_pageable_image(&self, address: u64) -> bool {
        self.image_paging.pageable_at(address, self.space().page_shift().page_size())
    }

    /// The pageable parts of the driver images loaded on the machine (`mm::image_paging`).
    pub(crate) fn image_paging(&self) -> &ImagePaging {
        &self.image_paging
    }

    /// The machine's timers and DPCs (`ke::timers`).
    pub fn timers(&self) -> &crate::ke::timers::Timers {
        &self.timers
    }

    /// The machine's queued work items and system threads (`ke::workers`).
    pub fn workers(&self) -> &crate::ke::workers::Workers {
        &self.workers
    }

    /// The machine's simulated threads (`ke::sched`).
    pub fn scheduler(&self) -> &crate::ke::sched::Scheduler {
        &self.scheduler
    }

    /// The machine's number, unique in the process.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// A kernel stack for a new thread, as `MmCreateKernelStack` makes one: the
    /// architecture's kernel stack size (24 KB on x64, 12 KB on x86) of nonpaged
    /// pages in system PTEs, with an unmapped guard page below it.
    ///
    /// # Errors
    /// When the system PTEs or physical pages run out.
    pub fn create_kernel_stack(&self) -> Result<KernelStack, MmError> {
        let shift = self.profile.arch.page_shift();
        let page = shift.page_size();
        let pages = shift.bytes_to_pages(self.profile.arch.kernel_stack_size());
        let free = self.ptes.free();
        let total = self.ptes.total();
        let guard = self.ptes.reserve(pages + 1).ok_or(MmError::NoSystemPtes { requested: pages + 1, free, total })?;
        let base = Va::new(guard.get() + page);
        let frames = match self.phys.allocate(&FrameRequest::new(pages, PageUse::KernelStack)) {
            Ok(f) => f,
            Err(e) => {
                self.ptes.release(guard, pages + 1);
                return Err(e);
            }
        };
        if let Err(e) = self.space.map(&self.phys, base, &frames, Access::ReadWrite) {
            for &(first, count) in &frames.runs {
                let _ = self.phys.free(first, count);
            }
            self.ptes.release(guard, pages + 1);
            return Err(e);
        }
        Ok(KernelStack { base, size: pages * page })
    }

    /// Frees a stack [`Machine::create_kernel_stack`] made (`MmDeleteKernelStack`).
    /// No thread may run on it any more.
    pub fn delete_kernel_stack(&self, stack: KernelStack) {
        let page = self.profile.arch.page_shift().page_size();
        let pages = stack.size / page;
        if let Ok(frames) = self.space.unmap(&self.phys, stack.base, pages) {
            for pfn in frames {
                let _ = self.phys.free(pfn, 1);
            }
        }
        self.ptes.release(Va::new(stack.base.get() - page), pages + 1);
    }

    /// The object manager's references and handles (`ob`).
    pub fn objects(&self) -> &crate::ob::Objects {
        &self.objects
    }

    /// The registry (`cm`).
    pub fn registry(&self) -> &crate::cm::Registry {
        &self.registry
    }

    /// The initialized executive resources (`ex::resource`).
    pub fn resources(&self) -> &crate::ex::resource::Resources {
        &self.resources
    }

    /// The machine's lookaside lists (`ex::lookaside`).
    pub fn lookasides(&self) -> &Lookasides {
        &self.lookasides
    }

    /// Turns Driver Verifier options on for the machine (`verifier /flags`).
    pub fn set_verifier(&self, flags: VerifierFlags) {
        self.vf.set_flags(flags);
    }

    /// The Driver Verifier options in force.
    pub fn verifier(&self) -> VerifierFlags {
        self.vf.flags()
    }

    /// Driver Verifier: its options, the drivers it verifies, and its hooks (`vf`).
    pub fn vf(&self) -> &crate::vf::Verifier {
        &self.vf
    }

    /// Simulated time since boot, milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.clock_ms.load(Ordering::Acquire)
    }

    /// Moves simulated time on by `ms` and returns the new time.
    pub(crate) fn advance_clock(&self, ms: u64) -> u64 {
        let now = self.clock_ms.fetch_add(ms, Ordering::AcqRel) + ms;
        self.shared_data.set_time(&self.phys, now);
        now
    }

    /// Where `KUSER_SHARED_DATA`'s kernel view is mapped (`crate::ke::shared_data`).
    pub fn shared_user_data(&self) -> Va {
        self.shared_data.va()
    }

    /// The frame of `KUSER_SHARED_DATA`.
    pub(crate) fn shared_data_pfn(&self) -> ntmem_machine::Pfn {
        self.shared_data.pfn()
    }

    /// The system PTE pool.
    pub fn system_ptes(&self) -> &SystemPtes {
        &self.ptes
    }

    /// Trims all pageable memory: resident paged-pool pages and the pageable pages
    /// of loaded driver images ([`crate::mm::image_paging`]) go to the paging file
    /// (the working-set trimmer "on request"). Returns the pages that left memory.
    ///
    /// # Errors
    /// When the paging file is full.
    pub fn trim(&self) -> Result<u64, MmError> {
        let pool = match self.profile.layout.region(RegionKind::PagedPool) {
            Some(region) => self.space.trim(&self.phys, region.start, region.size, Access::ReadWrite)?,
            None => 0,
        };
        Ok(pool + self.image_paging.trim(&self.space, &self.phys, false)?)
    }

    /// The paging file's counters.
    pub fn paging_stats(&self) -> PagingStats {
        self.space.paging_stats()
    }

    /// The IRQL levels of the machine's architecture.
    pub fn irql_levels(&self) -> IrqlLevels {
        IrqlLevels::of(self.profile.arch)
    }

    /// Processor `n`.
    ///
    /// # Panics
    /// If there is no such processor.
    #[inline(always)]
    pub fn processor(&self, n: u32) -> &Processor {
        &self.processors[n as usize]
    }

    /// The bugcheck that stopped the machine, if any.
    pub fn stopped(&self) -> Option<BugCheck> {
        self.stopped.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Names the driver routine of the timeout that stopped the machine, if the stop
    /// is one and names none yet (a simulated thread that timed out names itself,
    /// before the thread that reports the stop adds its own routine).
    pub fn name_timeout(&self, name: &str) {
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(crate::halt::Halt::Timeout { routine: routine @ None, .. }) =
            stopped.as_mut().and_then(|b| b.halt.as_deref_mut())
        {
            *routine = Some(name.to_string());
        }
    }

    /// Stops the machine with `code` and `parameters` (`KeBugCheckEx`), returning
    /// the bugcheck that stopped it — the first one, if it was already stopped.
    pub fn bugcheck(&self, code: BugCheckCode, parameters: [u64; 4]) -> BugCheck {
        self.stop(BugCheck::new(code, parameters))
    }

    /// Stops the machine without a bugcheck ([`crate::halt`]), returning the stop —
    /// the first one, if it was already stopped.
    pub fn halt(&self, halt: crate::halt::Halt) -> BugCheck {
        self.stop(BugCheck::halted(halt))
    }

    /// Records `bugcheck` unless the machine has stopped already, and attaches the
    /// stack this thread noted for it (`bugcheck::note_stop_stack`) to the recorded
    /// stop if it has none.
    fn stop(&self, bugcheck: BugCheck) -> BugCheck {
        self.stop_on(bugcheck, None)
    }

    /// [`Machine::stop`], knowing the processor that stopped: its IRQL is the stop's
    /// `CURRENT_IRQL` if the record has none yet.
    fn stop_on(&self, bugcheck: BugCheck, processor: Option<&Processor>) -> BugCheck {
        let noted = crate::bugcheck::take_stop_stack();
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        let stop = stopped.get_or_insert(bugcheck);
        stop.narrow = self.profile.arch == Arch::X86;
        if stop.stack.is_empty() {
            stop.stack = noted;
        }
        if stop.irql.is_none() {
            stop.irql = processor.map(|p| p.irql().0);
        }
        stop.clone()
    }

    /// Runs `f` on processor `cpu`, on its kernel stack, at its current IRQL.
    ///
    /// Returns what `f` returns, or the bugcheck that stopped the machine: one a
    /// kernel routine returned (`f` passes it up with `?`), or one the fault handler
    /// raised (a touch of unmapped memory, paged memory at raised IRQL, a stack
    /// overflow). A fault abandons `f`'s frames without running their destructors,
    /// as a bugcheck abandons a real machine's.
    ///
    /// # Errors
    /// The bugcheck.
    ///
    /// # Panics
    /// If `cpu` does not exist or another thread is running on it.
    pub fn run<R>(&self, cpu: u32, f: impl FnOnce(&Cpu<'_>) -> Result<R, BugCheck>) -> Result<R, BugCheck> {
        if let Some(b) = self.stopped() {
            return Err(b);
        }
        let processor = self.processor(cpu);
        assert!(processor.claim(), "processor {cpu} is already running code on another thread");
        let result = self.on_stack(cpu, processor.stack(), f);
        processor.release();
        result
    }

    /// Runs `f` on processor `cpu` as a simulated thread with its own kernel `stack`
    /// ([`Machine::create_kernel_stack`]), under the machine's watchdog, as
    /// [`Machine::run_driver`] does. The processor is not claimed: the caller holds the
    /// scheduler's baton ([`crate::ke::sched`]), so no other thread runs on it meanwhile.
    ///
    /// # Errors
    /// The bugcheck or halt.
    pub fn run_thread<R>(
        &self,
        cpu: u32,
        stack: KernelStack,
        f: impl FnOnce(&Cpu<'_>) -> Result<R, BugCheck>,
    ) -> Result<R, BugCheck> {
        if let Some(b) = self.stopped() {
            return Err(b);
        }
        let limits = self.watchdog_limits();
        let watch = Arc::new(DriverWatch::new(self.processors.clone(), self.images.clone(), cpu, limits));
        let _dog = ntmem_host::Watchdog::start(limits.tick_period(), watch).ok();
        self.on_stack(cpu, stack, f)
    }

    /// Runs `f` bound to processor `cpu`, switched to `s`, as a guarded call whose
    /// faults the machine's trap handler decides.
    fn on_stack<R>(
        &self,
        cpu: u32,
        s: KernelStack,
        f: impl FnOnce(&Cpu<'_>) -> Result<R, BugCheck>,
    ) -> Result<R, BugCheck> {
        let processor = self.processor(cpu);
        let binding = Binding::new(self.id, cpu, s);
        let stack = Stack { base: self.space.host_addr(s.base), size: to_usize(s.size) };
        let handler: Arc<dyn ntmem_host::FaultHandler> = self.trap.clone();
        let result = call_guarded(Some(stack), Some(handler), || f(&Cpu { machine: self, number: cpu }));
        drop(binding);
        match result {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(b)) => Err(self.stop_on(b, Some(processor))),
            Err(escape) => Err(self.stop_on(self.bugcheck_of(escape), Some(processor))),
        }
    }

    /// Runs driver code `f` as [`Machine::run`] does, under the machine's watchdog
    /// ([`crate::ke::watchdog`]): if it runs too long, the run ends with
    /// DPC_WATCHDOG_VIOLATION (0x133) at raised IRQL, or a timeout halt below
    /// DISPATCH_LEVEL. `f` marks the driver's own code `ntmem_host::watchdog::exposed`
    /// (the WDK boundary does); elsewhere the stop waits until the code owns nothing.
    /// If the host refuses a timer, the call runs unwatched.
    ///
    /// # Errors
    /// The bugcheck or halt.
    pub fn run_driver<R>(&self, cpu: u32, f: impl FnOnce(&Cpu<'_>) -> Result<R, BugCheck>) -> Result<R, BugCheck> {
        let limits = self.watchdog_limits();
        let watch = Arc::new(DriverWatch::new(self.processors.clone(), self.images.clone(), cpu, limits));
        let _dog = ntmem_host::Watchdog::start(limits.tick_period(), watch).ok();
        self.run(cpu, f)
    }

    /// Sets how long driver code may run ([`crate::ke::watchdog`]).
    pub fn set_watchdog(&self, limits: WatchdogLimits) {
        *self.watchdog.lock().unwrap_or_else(|e| e.into_inner()) = limits;
    }

    /// How long driver code may run.
    pub fn watchdog_limits(&self) -> WatchdogLimits {
        *self.watchdog.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stop an escape from driver code carries, blaming the driver image it names.
    pub(crate) fn bugcheck_of(&self, escape: Escape) -> BugCheck {
        match decode_escape(escape) {
            Some((mut b, image)) => {
                b.driver = image.and_then(|slot| self.images.name(slot));
                b
            }
            None => BugCheck::new(BugCheckCode::KMODE_EXCEPTION_NOT_HANDLED, [u64::from(escape.kind), 0, 0, 0]),
        }
    }

    /// The machine as it is now, for `ntmem boot`.
    pub fn summary(&self) -> BootSummary {
        let p = &self.profile;
        let page = p.arch.page_shift().page_size();
        BootSummary {
            machine: p.edition.key.to_string(),
            ram: p.ram_installed,
            usable_ram: p.physmap.usable_ram(),
            page_size: page,
            free_pages: self.phys.free_pages(),
            largest_free_run_below_4g: self.phys.largest_free_run(Some(PhysAddr::new(1 << 32))),
            largest_free_run: self.phys.largest_free_run(None),
            nonpaged_pool_max: p.limits.nonpaged_max,
            paged_pool_max: p.limits.paged_max,
            system_ptes: self.ptes.total(),
            system_ptes_free: self.ptes.free(),
            processors: p.processors,
            relocation: self.space.relocation(),
            page_directory: self.space.root().addr(p.arch.page_shift()).get(),
            warnings: p.warnings.clone(),
        }
    }

    /// The machine's devices and I/O-space state (`hal`).
    pub fn hal(&self) -> &crate::hal::Hal {
        &self.hal
    }

    /// The machine's user processes and the current one (`mm::process`).
    pub fn processes(&self) -> &crate::mm::process::Processes {
        &self.processes
    }

    /// The machine's I/O manager: devices and IRPs in flight (`io`).
    pub fn io(&self) -> &crate::io::IoManager {
        &self.io
    }
}

impl std::fmt::Display for BootSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pages = |n: u64| format!("{n} pages ({})", format_size(n * self.page_size));
        writeln!(f, "machine                     {}", self.machine)?;
        writeln!(f, "RAM installed / usable      {} / {}", format_size(self.ram), format_size(self.usable_ram))?;
        writeln!(f, "processors                  {}", self.processors)?;
        writeln!(f, "free memory                 {}", pages(self.free_pages))?;
        writeln!(f, "largest free run            {}", pages(self.largest_free_run))?;
        writeln!(f, "largest free run below 4 GB {}", pages(self.largest_free_run_below_4g))?;
        writeln!(f, "nonpaged pool maximum       {}", format_size(self.nonpaged_pool_max))?;
        writeln!(f, "paged pool maximum          {}", format_size(self.paged_pool_max))?;
        writeln!(f, "system PTEs (free / total)  {} / {}", self.system_ptes_free, self.system_ptes)?;
        writeln!(f, "page directory (CR3)        {:#x}", self.page_directory)?;
        if self.relocation == 0 {
            writeln!(f, "address space               at its real addresses")?;
        } else {
            writeln!(f, "address space               relocated: host address = simulated + {:#x}", self.relocation)?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}
