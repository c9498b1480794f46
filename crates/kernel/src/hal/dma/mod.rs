//! `hal/dma`: DMA adapters as drivers see them through IoGetDmaAdapter and
//! DMA_OPERATIONS (research/dma-verifier-views.md §1; seed 000 "Physical address
//! space"; seed 002 on common buffers; seed 001 on why a 1 GB DMA buffer fails).
//!
//! Key types: [`LogicalAddress`] (what a device puts on the bus; on x86 and x64
//! without an IOMMU it is numerically the physical address, but it is its own type
//! so the two never mix), [`DeviceDescription`], [`AdapterConfig`] (IoGetDmaAdapter's
//! decision), [`Registers`] (map registers, a finite per-adapter resource).
//!
//! An adapter whose device cannot reach all of RAM, or has no hardware
//! scatter/gather, gets a **map buffer**: one physically contiguous run of low
//! memory, one page per map register, below the device's limit (16 MB for
//! ISA/24-bit and system DMA, 4 GB for 32-bit masters) and, for system DMA, inside
//! one 64 KB window. Pages of a transfer beyond the device's reach are copied
//! through it ("bounced", §1.3): into it at MapTransfer for a write to the device,
//! back out of it at FlushAdapterBuffers / PutScatterGatherList for a read from the
//! device — so read data reaches a bounced buffer only at the flush.
//!
//! Modules: [`description`] (DEVICE_DESCRIPTION), [`adapter`] (configuration and
//! register accounting, pure), [`transfer`] (channels, MapTransfer, flushes,
//! scatter/gather lists; the page routing is in the private `plan`), [`v3`] (what
//! DMA_OPERATIONS version 3 adds, Windows 8), [`controller`] (the system DMA
//! controller of subordinate devices), [`device_side`] (the device's transfers).
//! Adapter lifetime and common buffers are here.
//!
//! IRQL (§1.8): IoGetDmaAdapter and AllocateCommonBuffer run at PASSIVE_LEVEL
//! (above it the buffer routines return NULL with the reason recorded); everything
//! else is DISPATCH_LEVEL-safe. Locking: the DMA state has one lock
//! ([`crate::hal::Hal::dma`]), taken before physical memory's.
//!
//! Driver Verifier's DMA checking: [`verify`].
//!
//! Not modelled: the system DMA controller's I/O ports (drivers reach it only
//! through the adapter, as WDM drivers must).

pub mod adapter;
pub mod buffer_lock;
pub mod controller;
pub mod description;
pub mod device_side;
pub(crate) mod plan;
pub(crate) mod shadow;
pub mod transfer;
pub mod v3;
pub mod verify;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};

use ntmem_machine::{Pfn, PhysAddr, Va};

use crate::bugcheck::{BugCheck, BugCheckCode};
use crate::ex::pool::{self, PoolTag, PoolType};
use crate::ke::irql::Irql;
use crate::ke::processor::Cpu;
use crate::mm::contiguous::{self, MemoryCachingType};
use crate::mm::frames::FrameRequest;
use crate::mm::pfn::PageUse;
use crate::Machine;

pub use adapter::{configure, AdapterConfig, AllocationAction, Registers};
pub use description::{DeviceDescription, DmaRefusal, InterfaceType};
pub use transfer::{ChannelRequest, Grant, ListOutcome, ListRequest, WaitKind};

/// Pool tag of adapter objects ("Dma ", ntmem's choice).
pub const ADAPTER_TAG: PoolTag = PoolTag::new(*b"Dma ");
/// `sizeof(DMA_ADAPTER)` on x64: `Version` 0, `Size` 2, `DmaOperations` 8 (§1.1).
pub const DMA_ADAPTER_SIZE: u64 = 0x10;
/// `sizeof(DMA_OPERATIONS)` for version 1: `Size` and 12 routines (§1.4, x64).
pub const DMA_OPERATIONS_V1_SIZE: u32 = 0x68;
/// `sizeof(DMA_OPERATIONS)` for version 2: 15 routines (§1.4, x64).
pub const DMA_OPERATIONS_V2_SIZE: u32 = 0x80;
/// `sizeof(DMA_OPERATIONS)` for version 3 as Windows 8 has it: 28 routines, up to
/// `CancelMappedTransfer` (§1.4, x64; research §7 U-2: the size Windows stores is
/// not documented, this is the size of the documented prefix).
pub const DMA_OPERATIONS_V3_SIZE: u32 = 0xE8;
/// BAD_POOL_CALLER subcode ntmem uses for FreeCommonBuffer of something that is not a
/// common buffer of the adapter (the contiguous-free subcode: a common buffer is
/// contiguous memory).
pub const BAD_COMMON_BUFFER_FREE: u64 = contiguous::BAD_POOL_CALLER_BAD_CONTIGUOUS_FREE;
/// DRIVER_VERIFIER_DMA_VIOLATION (0xE6), which ntmem raises for an adapter pointer
/// that is not a live adapter (P1 0x18, use after PutDmaAdapter; 0x19, NULL) even
/// without the verifier: Windows' HAL would dereference whatever it was given.
pub const DRIVER_VERIFIER_DMA_VIOLATION: BugCheckCode = BugCheckCode::DRIVER_VERIFIER_DMA_VIOLATION;

/// What a device puts on the bus to reach memory (`PHYSICAL_ADDRESS` in the DMA
/// routines: "logical address", §1.5). On x86 and x64 without an IOMMU it equals the
/// physical address of the byte it reaches — ntmem keeps it a separate type all the
/// same, and drivers must never substitute MmGetPhysicalAddress for it (§1.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct LogicalAddress(u64);

impl LogicalAddress {
    /// A logical address.
    pub const fn new(raw: u64) -> LogicalAddress {
        LogicalAddress(raw)
    }
    /// Its value.
    pub const fn get(self) -> u64 {
        self.0
    }
    /// The physical address it reaches: the identity, as the x86/x64 platform
    /// translates (no IOMMU is modelled).
    pub const fn to_phys(self) -> PhysAddr {
        PhysAddr::new(self.0)
    }
    /// The logical address of a physical one on this platform.
    pub const fn of_phys(pa: PhysAddr) -> LogicalAddress {
        LogicalAddress(pa.get())
    }
}

/// One common buffer (AllocateCommonBuffer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CommonBuffer {
    /// System virtual address handed to the driver.
    pub va: Va,
    /// What the device uses.
    pub logical: LogicalAddress,
    /// The `Length` asked for.
    pub length: u32,
    /// Pages allocated (whole pages, at least one).
    pub pages: u64,
    /// The map register charged for it (seed 002).
    pub register: u32,
    /// Allocated under DMA checking: framed by a padding page on each side (the
    /// block starts a page before `va`), "DmaVrfy0" tags and 0x0F fill
    /// ([`shadow`]).
    pub padded: bool,
}

/// A live adapter.
#[derive(Debug)]
pub struct DmaAdapter {
    /// The DEVICE_DESCRIPTION the driver passed.
    pub description: DeviceDescription,
    /// IoGetDmaAdapter's decision.
    pub config: AdapterConfig,
    /// The DMA_ADAPTER object (nonpaged pool).
    pub object: Va,
    /// First frame of the map buffer (one page per map register), if the device
    /// bounces.
    pub map_buffer: Option<Pfn>,
    /// The map registers.
    pub registers: Registers,
    /// Common buffers allocated and not freed.
    pub common_buffers: Vec<CommonBuffer>,
    pub(crate) files: BTreeMap<u64, transfer::RegisterFile>,
    pub(crate) lists: BTreeMap<u64, transfer::ListRecord>,
    pub(crate) channel_busy: bool,
    pub(crate) waiting: VecDeque<transfer::Waiter>,
    /// What the adapter handed out and got back (`!dma`'s verifier counters; 0x06's
    /// parameters).
    pub counts: Counts,
}

/// Allocations and frees of one kind of DMA resource on an adapter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Handed out.
    pub allocated: u64,
    /// Given back.
    pub freed: u64,
}

/// An adapter's counters as `!dma` shows them under "Dma verifier additional
/// information" (research/dma-verifier-views.md §5.9); ntmem keeps them with or
/// without the verifier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Map registers (each register of each grant).
    pub map_registers: Tally,
    /// Scatter/gather lists.
    pub scatter_gather_lists: Tally,
    /// Common buffers.
    pub common_buffers: Tally,
    /// The adapter channel.
    pub adapter_channels: Tally,
}

/// `DMA_OPERATIONS.Size` of a table of `version` (1, 2 or 3).
pub fn operations_size(version: u32) -> u32 {
    match version {
        0 | 1 => DMA_OPERATIONS_V1_SIZE,
        2 => DMA_OPERATIONS_V2_SIZE,
        _ => DMA_OPERATIONS_V3_SIZE,
    }
}

/// An adapter as `!dma` shows it (research/dma-verifier-views.md §2.3, §5.9: the
/// adapter, its device description's effect, map registers, common buffers,
/// scatter/gather lists).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AdapterView {
    /// The DMA_ADAPTER's address.
    pub adapter: u64,
    /// IoGetDmaAdapter's decision.
    pub config: AdapterConfig,
    /// The DEVICE_DESCRIPTION the driver passed (`!dma` flag 0x10).
    pub description: DeviceDescription,
    /// Map registers in use, of `config.map_registers`.
    pub map_registers_in_use: u32,
    /// The map buffer's first physical address, if the device bounces.
    pub map_buffer: Option<u64>,
    /// Each grant of map registers (`!dma` flag 0x2: "Map register file").
    pub map_register_files: Vec<transfer::FileView>,
    /// Common buffers not freed (`!dma` flag 0x4).
    pub common_buffers: Vec<CommonBuffer>,
    /// Scatter/gather lists not put back, by address (`!dma` flag 0x8).
    pub scatter_gather_lists: Vec<u64>,
    /// Requests waiting for the channel or registers.
    pub waiting: usize,
    /// Whether a driver holds the adapter channel.
    pub channel_held: bool,
    /// What the adapter handed out and got back.
    pub counts: Counts,
    /// Bytes mapped by MapTransfer and not yet flushed, over all files.
    pub bytes_mapped_since_flush: u64,
}

impl DmaAdapter {
    /// The `!dma` view of the adapter.
    pub fn view(&self, shift: ntmem_machine::PageShift) -> AdapterView {
        AdapterView {
            adapter: self.object.get(),
            description: self.description,
            config: self.config,
            map_registers_in_use: self.registers.in_use(),
            map_buffer: self.map_buffer.map(|p| p.addr(shift).get()),
            map_register_files: self.files.iter().map(|(&base, f)| f.view(base)).collect(),
            common_buffers: self.common_buffers.clone(),
            scatter_gather_lists: self.lists.keys().copied().collect(),
            waiting: self.waiting.len(),
            channel_held: self.channel_busy,
            counts: self.counts,
            bytes_mapped_since_flush: self.files.values().map(|f| f.view(0).mapped_bytes).sum(),
        }
    }
}

/// A DMA routine refused something; kept so the report can say why (seed 001).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DmaEvent {
    /// The routine (`IoGetDmaAdapter`, `AllocateCommonBuffer`, …).
    pub routine: &'static str,
    /// The adapter, if there was one.
    pub adapter: Option<u64>,
    /// Why.
    pub refusal: DmaRefusal,
}

/// Every adapter of the machine and the refusals so far.
#[derive(Debug, Default)]
pub struct DmaState {
    pub(crate) adapters: BTreeMap<u64, DmaAdapter>,
    released: Vec<u64>,
    events: Vec<DmaEvent>,
    address_bits: BTreeMap<usize, u32>,
    /// The system DMA controllers.
    pub controller: controller::SystemDma,
}

impl DmaState {
    /// The live adapters, by object address.
    pub fn adapters(&self) -> impl Iterator<Item = &DmaAdapter> {
        self.adapters.values()
    }
    /// The adapter whose DMA_ADAPTER is at `object`.
    pub fn adapter(&self, object: Va) -> Option<&DmaAdapter> {
        self.adapters.get(&object.get())
    }
    /// What was refused so far, oldest first.
    pub fn events(&self) -> &[DmaEvent] {
        &self.events
    }
    /// Declares how many address bits device `id` drives on the bus when it masters
    /// a transfer (a scenario's `[[device]]`; default 64): its transfers reach the
    /// logical address with the higher bits dropped, as hardware with fewer address
    /// lines does.
    pub fn set_address_bits(&mut self, id: crate::hal::device::DeviceId, bits: u32) {
        self.address_bits.insert(id.0, bits.clamp(1, 64));
    }
    /// The address bits of device `id` (64 unless declared).
    pub fn address_bits(&self, id: crate::hal::device::DeviceId) -> u32 {
        self.address_bits.get(&id.0).copied().unwrap_or(64)
    }
    fn refuse(&mut self, routine: &'static str, adapter: Option<Va>, refusal: DmaRefusal) -> DmaRefusal {
        self.events.push(DmaEvent { routine, adapter: adapter.map(Va::get), refusal: refusal.clone() });
        refusal
    }
}

/// The adapter at `object`, or the stop Windows' HAL would come to (see
/// [`DRIVER_VERIFIER_DMA_VIOLATION`]).
pub(crate) fn live<'a>(m: &Machine, state: &'a mut DmaState, object: Va) -> Result<&'a mut DmaAdapter, BugCheck> {
    if object.get() == 0 {
        return Err(m.bugcheck(DRIVER_VERIFIER_DMA_VIOLATION, [0x19, 0, 0, 0]));
    }
    match state.adapters.get_mut(&object.get()) {
        Some(a) => Ok(a),
        None => Err(m.bugcheck(DRIVER_VERIFIER_DMA_VIOLATION, [0x18, object.get(), 0, 0])),
    }
}

/// A new adapter: its DMA_ADAPTER object and NumberOfMapRegisters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewAdapter {
    /// The DMA_ADAPTER; its DMA_OPERATIONS follows at +0x10, `Size` filled in, the
    /// routine slots zero for the caller (the C boundary) to fill.
    pub object: Va,
    /// The DMA_OPERATIONS table.
    pub operations: Va,
    /// The table's version (1, 2 or 3).
    pub operations_version: u32,
    /// NumberOfMapRegisters.
    pub map_registers: u32,
}

/// `IoGetDmaAdapter(PhysicalDeviceObject, DeviceDescription, &NumberOfMapRegisters)`
/// (§1.1–§1.3): configures the adapter ([`configure`]), takes its map buffer from low
/// memory (halving the register count until a run fits, as "otherwise a smaller,
/// platform-maximal value" allows) and makes the DMA_ADAPTER object in nonpaged
/// pool: `Version` 1 whatever the description's version (§1.1, U-1), `Size` the whole
/// object, `DmaOperations` pointing just after it.
///
/// The inner `Err` is why the routine returns NULL (also recorded as a [`DmaEvent`]).
///
/// # Errors
/// A bugcheck from the pool.
pub fn io_get_dma_adapter(cpu: &Cpu<'_>, desc: &DeviceDescription) -> Result<Result<NewAdapter, DmaRefusal>, BugCheck> {
    let m = cpu.machine();
    let shift = m.phys().shift();
    let page = shift.page_size();
    let mut state = m.hal().dma();
    if cpu.irql() > Irql::PASSIVE {
        let r = DmaRefusal::WrongIrql { routine: "IoGetDmaAdapter", irql: cpu.irql().0 };
        return Ok(Err(state.refuse("IoGetDmaAdapter", None, r)));
    }
    let highest = m.profile().physmap.highest_ram_address().get();
    let mut config = match configure(m.profile().edition, desc, highest, page) {
        Ok(c) => c,
        Err(r) => return Ok(Err(state.refuse("IoGetDmaAdapter", None, r))),
    };
    if let Some(controller::Channel::RequestLine(line)) = config.channel {
        if !state.controller.has_line(line) {
            return Ok(Err(state.refuse("IoGetDmaAdapter", None, DmaRefusal::NoRequestLine(line))));
        }
    }
    let mut map_buffer = None;
    if config.bounces {
        let mut n = u64::from(config.map_registers);
        while n > 0 && map_buffer.is_none() {
            let req = FrameRequest::new(n, PageUse::Contiguous)
                .contiguous()
                .highest(PhysAddr::new(config.limit))
                .boundary(config.boundary);
            match m.phys().allocate(&req) {
                Ok(f) => map_buffer = Some(f.first()),
                Err(_) => n /= 2,
            }
        }
        if map_buffer.is_none() {
            let r = DmaRefusal::NoMapBuffer { pages: u64::from(config.map_registers), limit: config.limit };
            return Ok(Err(state.refuse("IoGetDmaAdapter", None, r)));
        }
        config.map_registers = n as u32;
    }
    let ops_size = operations_size(config.operations_version());
    let size = DMA_ADAPTER_SIZE + u64::from(ops_size);
    let Some(object) = pool::allocate(cpu, PoolType::NonPagedPool, size, ADAPTER_TAG)? else {
        if let Some(first) = map_buffer {
            let _ = m.phys().free(first, u64::from(config.map_registers));
        }
        return Ok(Err(state.refuse("IoGetDmaAdapter", None, DmaRefusal::NoSystemPtes { pages: 1 })));
    };
    let operations = Va::new(object.get() + DMA_ADAPTER_SIZE);
    let mut bytes = vec![0u8; size as usize];
    bytes[0..2].copy_from_slice(&1u16.to_le_bytes());
    bytes[2..4].copy_from_slice(&(size as u16).to_le_bytes());
    bytes[8..16].copy_from_slice(&operations.get().to_le_bytes());
    bytes[16..20].copy_from_slice(&ops_size.to_le_bytes());
    m.space()
        .write(object, &bytes)
        .map_err(|_| m.bugcheck(BugCheckCode::PAGE_FAULT_IN_NONPAGED_AREA, [object.get(), 1, 0, 0]))?;
    let adapter = DmaAdapter {
        description: *desc,
        config,
        object,
        map_buffer,
        registers: Registers::new(config.map_registers),
        common_buffers: Vec::new(),
        files: BTreeMap::new(),
        lists: BTreeMap::new(),
        channel_busy: false,
        waiting: VecDeque::new(),
        counts: Counts::default(),
    };
    state.adapters.insert(object.get(), adapter);
    state.released.retain(|&a| a != object.get());
    Ok(Ok(NewAdapter {
        object,
        operations,
        operations_version: config.operations_version(),
        map_registers: config.map_registers,
    }))
}

/// `PutDmaAdapter(DmaAdapter)` (§1.1): the adapter and its map buffer are freed.
/// Whatever the driver still holds — common buffers, map registers, lists — is
/// leaked as on Windows.
///
/// # Errors
/// 0xE6 for an adapter that is not live (see [`DRIVER_VERIFIER_DMA_VIOLATION`]);
/// under DMA checking 0xE6/0x07 (common buffers), 0x0A (lists), 0x08 (the channel)
/// or 0x09 (map registers) for what is still outstanding, with the adapter and the
/// count; a bugcheck from the pool.
pub fn put_dma_adapter(cpu: &Cpu<'_>, object: Va) -> Result<(), BugCheck> {
    let m = cpu.machine();
    let adapter = {
        let mut state = m.hal().dma();
        let a = live(m, &mut state, object)?;
        verify::irql_at_most(cpu, Irql::DISPATCH)?;
        let o = object.get();
        let registers: u64 = a.files.values().map(|f| u64::from(f.count())).sum();
        verify::check(m, !a.common_buffers.is_empty(), [0x07, o, a.common_buffers.len() as u64, 0])?;
        verify::check(m, !a.lists.is_empty(), [0x0A, o, a.lists.len() as u64, 0])?;
        verify::check(m, a.channel_busy, [0x08, o, 1, 0])?;
        verify::check(m, registers > 0, [0x09, o, registers, 0])?;
        let channel = a.config.channel;
        state.released.push(object.get());
        if let Some(channel) = channel {
            state.controller.release(channel, o);
        }
        state.adapters.remove(&object.get())
    };
    if let Some(mut a) = adapter {
        a.release_shadows(m);
        if let Some(first) = a.map_buffer {
            let _ = m.phys().free(first, u64::from(a.config.map_registers));
        }
        pool::free(cpu, object, Some(ADAPTER_TAG))?;
    }
    Ok(())
}

/// `AllocateCommonBuffer(DmaAdapter, Length, &LogicalAddress, CacheEnabled)` (§1.5):
/// whole pages (at least one) of physically contiguous memory wholly within the
/// device's reach (and inside one 64 KB window for system DMA), mapped in system
/// space, charging one map register of the adapter (seed 002: "each call to
/// AllocateCommonBuffer uses at least one adapter object map register").
/// `CacheEnabled` is ignored: on x86 and x64 the memory is always cached (§1.5).
///
/// Under DMA checking the buffer is padded, as Verifier pads common buffers (§2.3:
/// `!dma` shows them at odd addresses and lengths): a padding page before and after
/// it, every byte outside the buffer 0x0F but for a "DmaVrfy0" tag on each side of
/// it; FreeCommonBuffer checks the frame, so a driver or device that wrote past
/// either end stops there with 0xE6/0x0F ([`shadow`]). ntmem keeps the buffer
/// page-aligned (Windows' verifier does not); the logical address and the 64 KB
/// window rule are the buffer's.
///
/// The inner `Err` is why the routine returns NULL, recorded as a [`DmaEvent`]:
/// seed 001's "not enough contiguous physical memory" carries the largest free run
/// below the limit.
///
/// # Errors
/// 0xE6 for an adapter that is not live.
pub fn allocate_common_buffer(
    cpu: &Cpu<'_>,
    object: Va,
    length: u32,
) -> Result<Result<(Va, LogicalAddress), DmaRefusal>, BugCheck> {
    allocate_common_buffer_below(cpu, object, length, u64::MAX)
}

/// AllocateCommonBuffer with the buffer's last byte at or below `maximum` as well
/// as inside the device's reach: AllocateCommonBufferEx's `MaximumAddress`
/// (version 3, [`v3`]).
///
/// # Errors
/// 0xE6 for an adapter that is not live.
pub fn allocate_common_buffer_below(
    cpu: &Cpu<'_>,
    object: Va,
    length: u32,
    maximum: u64,
) -> Result<Result<(Va, LogicalAddress), DmaRefusal>, BugCheck> {
    let m = cpu.machine();
    let shift = m.phys().shift();
    let padded = verify::on(m);
    let mut state = m.hal().dma();
    let a = live(m, &mut state, object)?;
    let config = a.config;
    verify::irql_exactly(cpu, Irql::PASSIVE)?;
    if cpu.irql() > Irql::PASSIVE {
        let r = DmaRefusal::WrongIrql { routine: "AllocateCommonBuffer", irql: cpu.irql().0 };
        return Ok(Err(state.refuse("AllocateCommonBuffer", Some(object), r)));
    }
    let Some(register) = a.registers.allocate(1) else {
        let r = DmaRefusal::NoMapRegisterLeft { total: a.registers.total() };
        return Ok(Err(state.refuse("AllocateCommonBuffer", Some(object), r)));
    };
    let pages = shift.bytes_to_pages(u64::from(length)).max(1);
    let block = pages + if padded { 2 } else { 0 };
    let config = AdapterConfig { limit: config.limit.min(maximum), ..config };
    let highest = PhysAddr::new(config.limit);
    let probe = FrameRequest::new(block, PageUse::Contiguous).contiguous().highest(highest).boundary(config.boundary);
    let va = if m.phys().probe(&probe).is_ok() {
        contiguous::mm_allocate_contiguous_memory_specify_cache(
            cpu,
            shift.pages_to_bytes(block),
            PhysAddr::new(0),
            highest,
            PhysAddr::new(config.boundary),
            MemoryCachingType::Cached,
        )
    } else {
        None
    };
    let Some(va) = va else {
        let probe_failed = m.phys().probe(&probe).is_err();
        a.registers.free(register, 1);
        let limit_end = config.limit.saturating_add(1);
        let r = if probe_failed {
            DmaRefusal::NotEnoughContiguousMemory {
                pages,
                limit: config.limit,
                largest_run: m.phys().largest_free_run(Some(PhysAddr::new(limit_end)).filter(|_| limit_end != 0)),
            }
        } else {
            DmaRefusal::NoSystemPtes { pages }
        };
        return Ok(Err(state.refuse("AllocateCommonBuffer", Some(object), r)));
    };
    let first = contiguous::mm_get_physical_address(cpu, va).pfn(shift);
    let va = if padded { Va::new(va.get() + shift.page_size()) } else { va };
    let logical = LogicalAddress::of_phys(contiguous::mm_get_physical_address(cpu, va));
    if padded {
        shadow::Shadow::common_buffer(m, first, pages, logical, u64::from(length), va, true);
    }
    a.common_buffers.push(CommonBuffer { va, logical, length, pages, register, padded });
    a.counts.common_buffers.allocated += 1;
    Ok(Ok((va, logical)))
}

/// `FreeCommonBuffer(DmaAdapter, Length, LogicalAddress, VirtualAddress,
/// CacheEnabled)` (§1.5): frees the common buffer at `va` and its map register.
/// Windows requires every parameter to match the allocation and documents no check;
/// ntmem frees the buffer found at `va`.
///
/// # Errors
/// 0xE6 for an adapter that is not live; BAD_POOL_CALLER (0xC2: 0x60, VA, Length,
/// 0) when `va` is no common buffer of the adapter (ntmem's choice: the contiguous
/// free's stop); under DMA checking 0xE6/0x03 (1 extra buffer freed), 0x13 away
/// from PASSIVE_LEVEL, 0x0F for a padded buffer whose frame was written.
pub fn free_common_buffer(cpu: &Cpu<'_>, object: Va, length: u32, va: Va) -> Result<(), BugCheck> {
    let m = cpu.machine();
    let shift = m.phys().shift();
    let block = {
        let mut state = m.hal().dma();
        let a = live(m, &mut state, object)?;
        verify::irql_exactly(cpu, Irql::PASSIVE)?;
        let Some(i) = a.common_buffers.iter().position(|c| c.va == va) else {
            verify::check(m, true, [0x03, 1, 0, 0])?;
            return Err(
                m.bugcheck(BugCheckCode::BAD_POOL_CALLER, [BAD_COMMON_BUFFER_FREE, va.get(), u64::from(length), 0])
            );
        };
        let c = a.common_buffers[i];
        a.counts.common_buffers.freed += 1;
        if !c.padded {
            a.common_buffers.remove(i);
            a.registers.free(c.register, 1);
            va
        } else {
            let block = Va::new(va.get() - shift.page_size());
            let first = contiguous::mm_get_physical_address(cpu, block).pfn(shift);
            let frame = shadow::Shadow::common_buffer(m, first, c.pages, c.logical, u64::from(c.length), va, false);
            if let Some(p) = frame.check(m) {
                return Err(verify::stop(m, p));
            }
            a.common_buffers.remove(i);
            a.registers.free(c.register, 1);
            block
        }
    };
    contiguous::mm_free_contiguous_memory(cpu, block)
}

/// The device side of DMA: the device reads (`write` false: `buf` is filled) or
/// writes `buf` at `logical`, exactly as a bus master reaches memory — wherever the
/// driver's addresses point, with no check. Bytes of addresses that are not RAM are
/// not transferred (reads give 0xFF, the floating bus). Returns the bytes that
/// reached RAM.
pub fn device_access(m: &Machine, logical: LogicalAddress, buf: &mut [u8], write: bool) -> usize {
    let shift = m.phys().shift();
    let page = shift.page_size();
    let mut done = 0;
    let mut at = 0usize;
    while at < buf.len() {
        let pa = logical.get().wrapping_add(at as u64);
        let in_page = (page - shift.offset(pa)).min((buf.len() - at) as u64) as usize;
        let chunk = &mut buf[at..at + in_page];
        match m.phys().file_offset(PhysAddr::new(pa).pfn(shift)) {
            Some(off) => {
                let off = off + shift.offset(pa);
                if write {
                    m.phys().ram().write(off, chunk);
                } else {
                    m.phys().ram().read(off, chunk);
                }
                done += in_page;
            }
            None if !write => chunk.fill(0xFF),
            None => {}
        }
        at += in_page;
    }
    done
}
