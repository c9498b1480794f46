//! Packet DMA and scatter/gather on an adapter (research/dma-verifier-views.md
//! §1.3, §1.6, §1.7): AllocateAdapterChannel with its queue of waiting requests,
//! the IO_ALLOCATION_ACTION of the AdapterControl routine, FreeAdapterChannel,
//! FreeMapRegisters, MapTransfer, FlushAdapterBuffers, and Get/Build/Put/Calculate
//! ScatterGatherList.
//!
//! A **register file** is one grant of consecutive map registers (the
//! `MapRegisterBase` the driver gets: an opaque token, never an address). The first
//! MapTransfer after the grant or a flush fixes the file's origin page; each later
//! page of the buffer uses the register at its page distance from the origin, so a
//! driver that maps a piece at a time (MapTransfer's `*Length` out) walks through the
//! file as on Windows.
//!
//! Routing of each page (§1.3 table):
//! - a hardware scatter/gather master maps each page where it is when the device
//!   reaches it, else bounces it through its register; MapTransfer returns one
//!   logically contiguous run;
//! - a master without scatter/gather, and the system DMA controller, see the whole
//!   transfer as one run: directly when the pages are physically consecutive and
//!   within reach (and, for system DMA, inside one 64 KB window — ntmem's reading of
//!   "when possible"), otherwise copied into consecutive registers ("software S/G").
//!
//! Bounce copies: for a write to the device at MapTransfer; for a read from the
//! device at FlushAdapterBuffers / PutScatterGatherList (§1.3), and not before.

use ntmem_machine::{PageShift, Pfn, PhysAddr, Va};

use super::controller::{Completion, Program};
use super::plan::{copy_frames, pieces, plan, Route, Run};
use super::shadow::Shadow;
use super::{live, verify, AdapterConfig, AllocationAction, DmaAdapter, LogicalAddress};
use crate::bugcheck::BugCheck;
use crate::ex::pool::{self, NtStatus, PoolTag, PoolType};
use crate::ke::irql::Irql;
use crate::ke::processor::Cpu;
use crate::mm::mdl::{self, Mdl};
use crate::Machine;

/// Pool tag of scatter/gather lists GetScatterGatherList allocates ("DmaS", ntmem's
/// choice).
pub const LIST_TAG: PoolTag = PoolTag::new(*b"DmaS");
/// `sizeof(SCATTER_GATHER_LIST)` before its elements on x64: `NumberOfElements` 0,
/// `Reserved` 8 (§1.7).
pub const LIST_HEADER_SIZE: u64 = 0x10;
/// `sizeof(SCATTER_GATHER_ELEMENT)` on x64: `Address` 0, `Length` 8, `Reserved`
/// 0x10 (§1.7).
pub const ELEMENT_SIZE: u64 = 0x18;
/// The high bits of every `MapRegisterBase` token: a non-canonical address, so a
/// driver that dereferences one faults at once.
const TOKEN_BASE: u64 = 0xDA7A_0000_0000_0000;
/// `STATUS_BUFFER_TOO_SMALL`.
pub const STATUS_BUFFER_TOO_SMALL: NtStatus = NtStatus(0xC000_0023);

/// One grant of map registers.
#[derive(Clone, Debug, Default)]
pub(crate) struct RegisterFile {
    first: u32,
    count: u32,
    origin: Option<u64>,
    pending: Vec<Bounce>,
    channel: bool,
    /// The DeviceObject the channel was allocated for (0 for lists).
    device: u64,
    /// What MapTransfer mapped since the last flush: (CurrentVa, bytes) of each run.
    mapped: Vec<(u64, u64)>,
    /// Under DMA checking, the file's double buffer ([`super::shadow`]).
    shadow: Option<Shadow>,
}

impl RegisterFile {
    /// Its number of registers.
    pub(crate) fn count(&self) -> u32 {
        self.count
    }

    /// Under DMA checking, a new mapping of `(va, length)` (see [`verify`]): 0x1D
    /// (start, end, first byte already mapped) when it overlaps a run mapped since
    /// the last flush; 0x15 (registers it spans, registers of the file) when it needs
    /// more registers than the file has; 0x0D (bytes mapped since the flush with it,
    /// bytes the file maps at once) when the file would hold more than it can.
    fn check_mapping(&self, m: &Machine, shift: PageShift, va: Va, length: u32) -> Result<(), BugCheck> {
        let (start, end) = (va.get(), va.get().saturating_add(u64::from(length)));
        let twice = self.mapped.iter().find(|&&(s, l)| s < end && start < s.saturating_add(l));
        verify::check(m, twice.is_some(), [0x1D, start, end, twice.map_or(0, |&(s, _)| s.max(start))])?;
        let span = mdl::address_and_size_to_span_pages(shift, va, u64::from(length));
        verify::check(m, span > u64::from(self.count), [0x15, span, u64::from(self.count), 0])?;
        let bytes = self.mapped.iter().map(|r| r.1).sum::<u64>() + u64::from(length);
        let capacity = shift.pages_to_bytes(u64::from(self.count));
        verify::check(m, bytes > capacity, [0x0D, bytes, capacity, 0])
    }

    /// Where the file's registers are and how its pages are routed: the adapter's
    /// map buffer from the file's first register, or the file's shadow, through
    /// which every page goes (a configuration no page reaches directly).
    fn routing(&self, config: &AdapterConfig, map_buffer: Option<Pfn>) -> (AdapterConfig, Option<Pfn>, u32) {
        match &self.shadow {
            Some(s) => (AdapterConfig { limit: 0, bounces: true, ..*config }, Some(s.registers()), 0),
            None => (*config, map_buffer, self.first),
        }
    }
}

/// A register file as `!dma` shows it (flag 0x2, "Map register file").
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FileView {
    /// The `MapRegisterBase` the driver got.
    pub base: u64,
    /// Its registers.
    pub registers: u32,
    /// Bytes mapped since the last flush.
    pub mapped_bytes: u64,
    /// Granted with the adapter channel (AllocateAdapterChannel), not a list.
    pub channel: bool,
    /// Double-buffered by DMA checking ([`super::shadow`]).
    pub shadowed: bool,
}

impl RegisterFile {
    /// Its `!dma` view, as MapRegisterBase `base`.
    pub(crate) fn view(&self, base: u64) -> FileView {
        FileView {
            base,
            registers: self.count,
            mapped_bytes: self.mapped.iter().map(|r| r.1).sum(),
            channel: self.channel,
            shadowed: self.shadow.is_some(),
        }
    }
}

/// A page of a read from the device waiting in a register to be copied back.
#[derive(Clone, Copy, Debug)]
struct Bounce {
    register: Pfn,
    src: Pfn,
    offset: u64,
    len: u64,
}

/// A scatter/gather list the adapter built.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ListRecord {
    token: u64,
    allocated: bool,
}

/// AllocateAdapterChannel's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelRequest {
    /// `DeviceObject`.
    pub device: u64,
    /// `ExecutionRoutine` (DRIVER_CONTROL).
    pub routine: u64,
    /// `Context`.
    pub context: u64,
    /// AllocateAdapterChannelEx's `DmaTransferContext` (0 for AllocateAdapterChannel).
    pub transfer_context: u64,
}

/// GetScatterGatherList's or BuildScatterGatherList's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListRequest {
    /// `DeviceObject`.
    pub device: u64,
    /// `ExecutionRoutine` (DRIVER_LIST_CONTROL).
    pub routine: u64,
    /// `Context`.
    pub context: u64,
    /// `Mdl`.
    pub mdl: Mdl,
    /// `CurrentVa`.
    pub current_va: Va,
    /// `Length`.
    pub length: u32,
    /// `WriteToDevice`.
    pub write: bool,
    /// BuildScatterGatherList's `ScatterGatherBuffer` and `ScatterGatherLength`.
    pub buffer: Option<(Va, u32)>,
}

/// A request waiting for the channel or map registers.
#[derive(Clone, Copy, Debug)]
pub struct Waiter {
    registers: u32,
    kind: WaitKind,
}

/// What waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitKind {
    /// AllocateAdapterChannel.
    Channel(ChannelRequest),
    /// GetScatterGatherList / BuildScatterGatherList.
    List(ListRequest),
}

/// A request that may run now: the C boundary calls its routine at DISPATCH_LEVEL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// Call the AdapterControl routine with this `MapRegisterBase`, then report its
    /// IO_ALLOCATION_ACTION ([`adapter_control_returned`]).
    Channel {
        /// The request.
        request: ChannelRequest,
        /// `MapRegisterBase`.
        base: u64,
    },
    /// Call the AdapterListControl routine with this list.
    List {
        /// The request.
        request: ListRequest,
        /// The SCATTER_GATHER_LIST.
        list: Va,
    },
}

/// What AllocateAdapterChannel did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelOutcome {
    /// The channel and registers are the request's now: run it ([`Grant::Channel`]).
    Run(Grant),
    /// Queued until the channel or registers are free (STATUS_SUCCESS all the same).
    Queued,
    /// More registers than IoGetDmaAdapter gave: STATUS_INSUFFICIENT_RESOURCES, not
    /// queued (§1.6).
    TooMany,
}

/// What Get/BuildScatterGatherList did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListOutcome {
    /// Run it now ([`Grant::List`]).
    Run(Grant),
    /// Queued until registers are free (STATUS_SUCCESS).
    Queued,
    /// Refused with this status (§1.7).
    Status(NtStatus),
}

impl DmaAdapter {
    fn new_file(&mut self, first: u32, count: u32, channel: Option<u64>) -> u64 {
        let token = TOKEN_BASE | (self.files.keys().next_back().map_or(0, |t| (t & 0xFFFF_FFFF_FFFF) + 1));
        let file = RegisterFile {
            first,
            count,
            channel: channel.is_some(),
            device: channel.unwrap_or(0),
            ..Default::default()
        };
        self.files.insert(token, file);
        token
    }

    /// A new file as [`Self::new_file`], double-buffered under DMA checking
    /// ([`super::shadow`]).
    fn grant(&mut self, m: &Machine, first: u32, count: u32, channel: Option<u64>) -> u64 {
        let token = self.new_file(first, count, channel);
        self.counts.map_registers.allocated += u64::from(count);
        self.counts.adapter_channels.allocated += u64::from(channel.is_some());
        if verify::on(m) {
            let shadow = Shadow::allocate(m, &self.config, count);
            if let Some(f) = self.files.get_mut(&token) {
                f.shadow = shadow;
            }
        }
        token
    }

    /// Gives back every file's shadow pages (the adapter is going away).
    pub(crate) fn release_shadows(&mut self, m: &Machine) {
        for f in self.files.values_mut() {
            if let Some(s) = f.shadow.take() {
                s.release(m);
            }
        }
    }

    /// Frees file `token`: its registers and its shadow.
    fn release_file(&mut self, m: &Machine, token: u64) {
        if let Some(f) = self.files.remove(&token) {
            self.registers.free(f.first, f.count);
            self.counts.map_registers.freed += u64::from(f.count);
            if let Some(s) = f.shadow {
                s.release(m);
            }
        }
    }

    /// The driver gave the adapter channel back.
    fn release_channel(&mut self) {
        if self.channel_busy {
            self.channel_busy = false;
            self.counts.adapter_channels.freed += 1;
        }
    }

    /// Whether the channel is free and nobody waits: a request would run now.
    pub(crate) fn channel_free_now(&self) -> bool {
        !self.channel_busy && self.waiting.is_empty()
    }

    /// The register file granted with the channel, if a driver holds it.
    pub(crate) fn channel_file(&self) -> Option<u64> {
        self.files.iter().find(|(_, f)| f.channel).map(|(&t, _)| t)
    }

    /// Removes the waiting channel request made with `transfer_context`
    /// (CancelAdapterChannel); whether there was one.
    pub(crate) fn cancel_waiting(&mut self, transfer_context: u64) -> bool {
        let before = self.waiting.len();
        self.waiting.retain(|w| !matches!(w.kind, WaitKind::Channel(r) if r.transfer_context == transfer_context));
        self.waiting.len() != before
    }
}

/// `AllocateAdapterChannel(DmaAdapter, DeviceObject, NumberOfMapRegisters,
/// ExecutionRoutine, Context)` (§1.6): the request gets the adapter's one channel
/// and `n` consecutive map registers now, or waits in order for them.
///
/// # Errors
/// 0xE6 for an adapter that is not live.
pub fn allocate_adapter_channel(
    cpu: &Cpu<'_>,
    object: Va,
    n: u32,
    request: ChannelRequest,
) -> Result<ChannelOutcome, BugCheck> {
    let m = cpu.machine();
    let mut state = m.hal().dma();
    let a = live(m, &mut state, object)?;
    verify::irql_exactly(cpu, Irql::DISPATCH)?;
    verify::check(m, n > a.config.map_registers, [0x0C, u64::from(n), u64::from(a.config.map_registers), 0])?;
    verify::check(m, a.channel_busy, [0x0B, 1, 0, 0])?;
    if n > a.config.map_registers {
        return Ok(ChannelOutcome::TooMany);
    }
    if a.channel_busy || !a.waiting.is_empty() {
        a.waiting.push_back(Waiter { registers: n, kind: WaitKind::Channel(request) });
        return Ok(ChannelOutcome::Queued);
    }
    let Some(first) = a.registers.allocate(n) else {
        a.waiting.push_back(Waiter { registers: n, kind: WaitKind::Channel(request) });
        return Ok(ChannelOutcome::Queued);
    };
    a.channel_busy = true;
    let base = a.grant(m, first, n, Some(request.device));
    Ok(ChannelOutcome::Run(Grant::Channel { request, base }))
}

/// The AdapterControl routine given `base` returned `action` (§1.4): KeepObject
/// keeps the channel (FreeAdapterChannel frees it and the registers);
/// DeallocateObject frees both; DeallocateObjectKeepRegisters frees the channel
/// only. Returns the requests that may run now.
///
/// # Errors
/// 0xE6 for an adapter that is not live; bugchecks of lists built for waiters.
pub fn adapter_control_returned(
    cpu: &Cpu<'_>,
    object: Va,
    base: u64,
    action: AllocationAction,
) -> Result<Vec<Grant>, BugCheck> {
    let m = cpu.machine();
    let mut state = m.hal().dma();
    let a = live(m, &mut state, object)?;
    match action {
        AllocationAction::KeepObject => return Ok(Vec::new()),
        AllocationAction::DeallocateObject => {
            a.release_channel();
            a.release_file(m, base);
        }
        AllocationAction::DeallocateObjectKeepRegisters => {
            a.release_channel();
            if let Some(f) = a.files.get_mut(&base) {
                f.channel = false;
            }
        }
    }
    service_queue(cpu, a)
}

/// `FreeAdapterChannel(DmaAdapter)` (§1.6): releases the channel and the registers
/// granted with it. Returns the requests that may run now.
///
/// # Errors
/// 0xE6 for an adapter that is not live.
pub fn free_adapter_channel(cpu: &Cpu<'_>, object: Va) -> Result<Vec<Grant>, BugCheck> {
    let m = cpu.machine();
    let mut state = m.hal().dma();
    let a = live(m, &mut state, object)?;
    verify::irql_exactly(cpu, Irql::DISPATCH)?;
    verify::check(m, !a.channel_busy, [0x04, 1, 0, 0])?;
    a.release_channel();
    if let Some(channel) = a.config.channel {
        state.controller.stop(channel);
    }
    let a = live(m, &mut state, object)?;
    let held: Vec<u64> = a.files.iter().filter(|(_, f)| f.channel).map(|(&t, _)| t).collect();
    for t in held {
        a.release_file(m, t);
    }
    service_queue(cpu, a)
}

/// `FreeMapRegisters(DmaAdapter, MapRegisterBase, NumberOfMapRegisters)` (§1.6):
/// frees the registers of the file `base` (all of them: Windows requires `n` to be
/// the count allocated and documents no check). A `base` the adapter does not know
/// is ignored. Returns the requests that may run now.
///
/// # Errors
/// 0xE6 for an adapter that is not live; under DMA checking 0xE6/0x05 for a `base`
/// the adapter does not know, 0xE6/0x10 for registers mapped and never flushed, 0x13
/// away from DISPATCH_LEVEL.
pub fn free_map_registers(cpu: &Cpu<'_>, object: Va, base: u64, n: u32) -> Result<Vec<Grant>, BugCheck> {
    let m = cpu.machine();
    let mut state = m.hal().dma();
    let a = live(m, &mut state, object)?;
    verify::irql_exactly(cpu, Irql::DISPATCH)?;
    let file = a.files.get(&base);
    verify::check(m, file.is_none(), [0x05, u64::from(n), 0, 0])?;
    let unflushed = file.is_some_and(|f| !f.mapped.is_empty());
    verify::check(m, unflushed, [0x10, file.map_or(0, |f| u64::from(f.count)), 0, 0])?;
    a.release_file(m, base);
    service_queue(cpu, a)
}

/// Grants waiting requests in order while the first can be served.
fn service_queue(cpu: &Cpu<'_>, a: &mut DmaAdapter) -> Result<Vec<Grant>, BugCheck> {
    let mut grants = Vec::new();
    while let Some(w) = a.waiting.front().copied() {
        if matches!(w.kind, WaitKind::Channel(_)) && a.channel_busy {
            break;
        }
        let Some(first) = a.registers.allocate(w.registers) else { break };
        a.waiting.pop_front();
        match w.kind {
            WaitKind::Channel(request) => {
                a.channel_busy = true;
                let base = a.grant(cpu.machine(), first, w.registers, Some(request.device));
                grants.push(Grant::Channel { request, base });
            }
            WaitKind::List(request) => {
                let token = a.grant(cpu.machine(), first, w.registers, None);
                match build_list(cpu, a, token, &request)? {
                    Ok(list) => grants.push(Grant::List { request, list }),
                    // The list memory ran out after the request was accepted:
                    // Windows does not document this case; the request is dropped
                    // and its registers returned.
                    Err(_) => a.release_file(cpu.machine(), token),
                }
            }
        }
    }
    Ok(grants)
}

/// Carries out `run` on file `token`: writes to the device are copied into their
/// registers now; reads from it are remembered for the flush. A shadowed run is
/// framed by its tags; `va` is where the driver's buffer for it starts.
fn apply(m: &Machine, a: &mut DmaAdapter, token: u64, run: &Run, write: bool, va: Va) {
    let map_buffer = a.map_buffer;
    let Some(f) = a.files.get_mut(&token) else { return };
    let (_, Some(mb), first) = f.routing(&a.config, map_buffer) else { return };
    for &(p, route) in &run.parts {
        let Route::Bounce(s) = route else { continue };
        let register = mb.add(u64::from(first + s));
        if write {
            copy_frames(m, p.pfn, register, p.offset, p.len);
        } else {
            f.pending.push(Bounce { register, src: p.pfn, offset: p.offset, len: p.len });
        }
    }
    if let Some(shadow) = f.shadow.as_mut() {
        shadow.record(m, run.logical, run.len, va);
    }
}

/// Copies a file's pending reads back to the buffer and forgets its origin. Under
/// DMA checking a shadowed file's frame is checked first.
///
/// # Errors
/// 0xE6/0x0F for a damaged frame ([`super::shadow`]).
fn flush(m: &Machine, a: &mut DmaAdapter, token: u64) -> Result<(), BugCheck> {
    let Some(f) = a.files.get_mut(&token) else { return Ok(()) };
    if let Some(p) = f.shadow.as_ref().and_then(|s| s.check(m)) {
        return Err(verify::stop(m, p));
    }
    for b in f.pending.drain(..) {
        copy_frames(m, b.register, b.src, b.offset, b.len);
    }
    if let Some(shadow) = f.shadow.as_mut() {
        shadow.reset(m);
    }
    f.origin = None;
    f.mapped.clear();
    Ok(())
}

/// What MapTransfer(Ex) mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapped {
    /// The logical address of the run (meaningless for system DMA, §1.6).
    pub logical: LogicalAddress,
    /// `*Length` out.
    pub length: u32,
    /// For system DMA whose device never waits: the transfer ran to terminal count
    /// at once, and this completion routine is due.
    pub completion: Option<Completion>,
}

/// MapTransferEx's system DMA extras: `DeviceOffset` and the completion routine
/// and context (0 when none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SystemDmaExtras {
    /// `DeviceOffset`.
    pub device_offset: u32,
    /// `DmaCompletionRoutine`.
    pub routine: u64,
    /// `CompletionContext`.
    pub context: u64,
}

/// `MapTransfer(DmaAdapter, Mdl, MapRegisterBase, CurrentVa, &Length,
/// WriteToDevice)` (§1.6): maps the next piece of the transfer; returns its logical
/// address and `*Length` out — for a scatter/gather device the bytes of one
/// logically contiguous run, otherwise all of `length` (less only when the file's
/// registers run out). A `MapRegisterBase` the adapter does not know maps nothing
/// (length 0).
///
/// For a subordinate device the run **programs its system DMA channel**
/// ([`super::controller`]): base, count and direction, the adapter's
/// auto-initialize mode, and (MapTransferEx) the device offset and completion
/// routine. On a line whose device never waits the transfer then runs to terminal
/// count before this returns.
///
/// # Errors
/// 0xE6 for an adapter that is not live or a range outside the MDL; under DMA
/// checking 0xE6 for a zero-length map (0x21), an unlocked buffer or a range outside
/// the MDL (0x0E, 0x1F: [`verify::buffer`]), a double mapping, too many registers or
/// bytes for the file (0x1D, 0x15, 0x0D), IRQL above DISPATCH_LEVEL (0x13); 0x50 for
/// an MDL that is not mapped.
#[allow(clippy::too_many_arguments)]
pub fn map_transfer(
    cpu: &Cpu<'_>,
    object: Va,
    mdl: Mdl,
    base: u64,
    current_va: Va,
    length: u32,
    write: bool,
    extras: SystemDmaExtras,
) -> Result<Mapped, BugCheck> {
    let m = cpu.machine();
    let shift = m.phys().shift();
    let mut state = m.hal().dma();
    let a = live(m, &mut state, object)?;
    verify::irql_at_most(cpu, Irql::DISPATCH)?;
    verify::check(m, length == 0, [0x21, 0, 0, 0])?;
    verify::buffer(cpu, mdl, current_va, length)?;
    let pieces = pieces(cpu, mdl, current_va, u64::from(length))?;
    let config = a.config;
    let map_buffer = a.map_buffer;
    let nothing = Mapped { logical: LogicalAddress::new(0), length: 0, completion: None };
    let Some(f) = a.files.get_mut(&base) else { return Ok(nothing) };
    f.check_mapping(m, shift, current_va, length)?;
    let device = f.device;
    let origin = *f.origin.get_or_insert(current_va.get() >> shift.0);
    let (route, mb, first) = f.routing(&config, map_buffer);
    let runs = plan(&route, shift, mb, (first, f.count), origin, &pieces);
    let Some(run) = runs.first() else { return Ok(nothing) };
    apply(m, a, base, run, write, current_va);
    if let Some(f) = a.files.get_mut(&base) {
        f.mapped.push((current_va.get(), run.len));
    }
    let mapped = Mapped { logical: LogicalAddress::new(run.logical), length: run.len as u32, completion: None };
    let Some(channel) = config.channel else { return Ok(mapped) };
    let program = Program {
        base: mapped.logical,
        count: mapped.length,
        to_device: write,
        auto_initialize: config.auto_initialize,
        device_offset: extras.device_offset,
    };
    let completion = (extras.routine != 0).then_some(Completion {
        adapter: object.get(),
        routine: extras.routine,
        context: extras.context,
        device,
    });
    state.controller.program(channel, object.get(), program, completion);
    if !state.controller.is_ready(channel) {
        return Ok(mapped);
    }
    let done = state.controller.device_moves(m, channel, None, &[]);
    Ok(Mapped { completion: done.ok().and_then(|d| d.completion), ..mapped })
}

/// `FlushAdapterBuffers(DmaAdapter, Mdl, MapRegisterBase, CurrentVa, Length,
/// WriteToDevice)` (§1.6): a read's bounced pages are copied back into the buffer
/// now; a subordinate device's channel is masked (its count stays readable); TRUE.
/// `at` is the `Mdl` and `CurrentVa` (None from FlushAdapterBuffersEx, which has an
/// offset instead).
///
/// # Errors
/// 0xE6 for an adapter that is not live; under DMA checking 0xE6/0x13 above
/// DISPATCH_LEVEL, 0x1B for a CurrentVa outside the MDL, 0x20 (MapRegisterBase,
/// CurrentVa, MDL) for a register file with nothing mapped since its grant or its
/// last flush, 0x0F for a damaged shadow ([`super::shadow`]).
pub fn flush_adapter_buffers(cpu: &Cpu<'_>, object: Va, base: u64, at: Option<(Mdl, Va)>) -> Result<bool, BugCheck> {
    let m = cpu.machine();
    let mut state = m.hal().dma();
    let a = live(m, &mut state, object)?;
    verify::irql_at_most(cpu, Irql::DISPATCH)?;
    if let Some((mdl, va)) = at {
        verify::flushed_range(cpu, mdl, va)?;
    }
    let (mdl, va) = at.map_or((0, 0), |(mdl, va)| (mdl.0.get(), va.get()));
    let nothing_mapped = a.files.get(&base).is_none_or(|f| f.mapped.is_empty());
    verify::check(m, nothing_mapped, [0x20, base, va, mdl])?;
    flush(m, a, base)?;
    if let Some(channel) = a.config.channel {
        state.controller.stop(channel);
    }
    Ok(true)
}

/// Registers a list of `(current_va, length)` needs: none when the device reaches
/// all RAM by itself (unless DMA checking double-buffers it), else one per page
/// spanned.
fn registers_needed(m: &Machine, config: &AdapterConfig, shift: PageShift, current_va: Va, length: u32) -> u64 {
    let shadowed = verify::on(m) && config.master;
    if !(config.bounces || shadowed) {
        return 0;
    }
    mdl::address_and_size_to_span_pages(shift, current_va, u64::from(length))
}

/// `GetScatterGatherList` (`buffer` None) or `BuildScatterGatherList` (§1.7): the
/// list of the transfer's logical runs, after taking the registers it needs (its
/// pages beyond the device's reach are bounced as MapTransfer bounces them). Waits
/// in order when the registers are taken; the channel is not held afterwards.
///
/// # Errors
/// 0xE6 for an adapter that is not live or a range outside the MDL; under DMA
/// checking 0x13 away from DISPATCH_LEVEL, 0x0E or 0x1F ([`verify::buffer`]).
pub fn get_scatter_gather_list(cpu: &Cpu<'_>, object: Va, request: ListRequest) -> Result<ListOutcome, BugCheck> {
    let m = cpu.machine();
    let shift = m.phys().shift();
    let mut state = m.hal().dma();
    let a = live(m, &mut state, object)?;
    verify::irql_exactly(cpu, Irql::DISPATCH)?;
    verify::buffer(cpu, request.mdl, request.current_va, request.length)?;
    let pieces = pieces(cpu, request.mdl, request.current_va, u64::from(request.length))?;
    let config = a.config;
    let needed = registers_needed(m, &config, shift, request.current_va, request.length);
    if needed > u64::from(config.map_registers) {
        return Ok(ListOutcome::Status(NtStatus::INSUFFICIENT_RESOURCES));
    }
    let needed = needed as u32;
    if let Some((_, len)) = request.buffer {
        let origin = request.current_va.get() >> shift.0;
        let runs = plan(&config, shift, a.map_buffer, (0, needed), origin, &pieces);
        if list_size(runs.len()) > u64::from(len) {
            return Ok(ListOutcome::Status(STATUS_BUFFER_TOO_SMALL));
        }
    }
    let free_now = a.waiting.is_empty();
    let Some(first) = a.registers.allocate(needed).filter(|_| free_now) else {
        a.waiting.push_back(Waiter { registers: needed, kind: WaitKind::List(request) });
        return Ok(ListOutcome::Queued);
    };
    let token = a.grant(m, first, needed, None);
    match build_list(cpu, a, token, &request)? {
        Ok(list) => Ok(ListOutcome::Run(Grant::List { request, list })),
        Err(status) => {
            a.release_file(m, token);
            Ok(ListOutcome::Status(status))
        }
    }
}

/// Bytes of a list of `elements`.
pub fn list_size(elements: usize) -> u64 {
    LIST_HEADER_SIZE + ELEMENT_SIZE * elements as u64
}

/// Maps `request` through file `token` and writes the list (into pool, or the
/// caller's buffer). The inner `Err` is the status for the caller.
fn build_list(
    cpu: &Cpu<'_>,
    a: &mut DmaAdapter,
    token: u64,
    request: &ListRequest,
) -> Result<Result<Va, NtStatus>, BugCheck> {
    let m = cpu.machine();
    let shift = m.phys().shift();
    let pieces = pieces(cpu, request.mdl, request.current_va, u64::from(request.length))?;
    let Some(f) = a.files.get_mut(&token) else { return Ok(Err(NtStatus::INSUFFICIENT_RESOURCES)) };
    let origin = request.current_va.get() >> shift.0;
    f.origin = Some(origin);
    let (route, mb, first) = f.routing(&a.config, a.map_buffer);
    let runs = plan(&route, shift, mb, (first, f.count), origin, &pieces);
    let size = list_size(runs.len());
    let (va, allocated) = match request.buffer {
        Some((va, len)) if size <= u64::from(len) => (va, false),
        Some(_) => return Ok(Err(STATUS_BUFFER_TOO_SMALL)),
        None => match pool::allocate(cpu, PoolType::NonPagedPool, size, LIST_TAG)? {
            Some(va) => (va, true),
            None => return Ok(Err(NtStatus::INSUFFICIENT_RESOURCES)),
        },
    };
    let mut bytes = vec![0u8; size as usize];
    bytes[0..4].copy_from_slice(&(runs.len() as u32).to_le_bytes());
    for (i, r) in runs.iter().enumerate() {
        let at = (LIST_HEADER_SIZE + ELEMENT_SIZE * i as u64) as usize;
        bytes[at..at + 8].copy_from_slice(&r.logical.to_le_bytes());
        bytes[at + 8..at + 12].copy_from_slice(&(r.len as u32).to_le_bytes());
    }
    let fault = |_| m.bugcheck(crate::bugcheck::BugCheckCode::PAGE_FAULT_IN_NONPAGED_AREA, [va.get(), 1, 0, 0]);
    m.space().write(va, &bytes).map_err(fault)?;
    for r in &runs {
        apply(m, a, token, r, request.write, request.current_va);
    }
    a.lists.insert(va.get(), ListRecord { token, allocated });
    a.counts.scatter_gather_lists.allocated += 1;
    Ok(Ok(va))
}

/// `PutScatterGatherList(DmaAdapter, ScatterGather, WriteToDevice)` (§1.7): copies a
/// read's bounced pages back ("the driver may touch the data only after this
/// call"), frees the registers and, if GetScatterGatherList allocated the list, the
/// list. A list the adapter does not know is ignored. Returns the requests that may
/// run now.
///
/// # Errors
/// 0xE6 for an adapter that is not live (and under DMA checking 0xE6/0x06 for a
/// list the adapter does not know: lists built, lists freed counting this one); a
/// bugcheck from the pool.
pub fn put_scatter_gather_list(cpu: &Cpu<'_>, object: Va, list: Va) -> Result<Vec<Grant>, BugCheck> {
    let m = cpu.machine();
    let mut state = m.hal().dma();
    let a = live(m, &mut state, object)?;
    verify::irql_exactly(cpu, Irql::DISPATCH)?;
    let known = a.lists.contains_key(&list.get());
    let lists = a.counts.scatter_gather_lists;
    verify::check(m, !known, [0x06, lists.allocated, lists.freed + 1, 0])?;
    let Some(record) = a.lists.remove(&list.get()) else { return Ok(Vec::new()) };
    a.counts.scatter_gather_lists.freed += 1;
    flush(m, a, record.token)?;
    a.release_file(m, record.token);
    if record.allocated {
        pool::free(cpu, list, Some(LIST_TAG))?;
    }
    service_queue(cpu, a)
}

/// `CalculateScatterGatherList(DmaAdapter, Mdl, CurrentVa, Length,
/// &ScatterGatherListSize, &NumberOfMapRegisters)` (§1.7): the list's size in bytes
/// — exact with an MDL, for one element per page spanned without — and the
/// registers it needs; STATUS_INSUFFICIENT_RESOURCES when they exceed the adapter's.
/// Windows' own size formula is undocumented (research §7 U-4).
///
/// # Errors
/// 0xE6 for an adapter that is not live or a range outside the MDL.
pub fn calculate_scatter_gather_list(
    cpu: &Cpu<'_>,
    object: Va,
    mdl: Option<Mdl>,
    current_va: Va,
    length: u32,
) -> Result<Result<(u32, u32), NtStatus>, BugCheck> {
    let m = cpu.machine();
    let shift = m.phys().shift();
    let pieces = match mdl {
        Some(mdl) => Some(pieces(cpu, mdl, current_va, u64::from(length))?),
        None => None,
    };
    let mut state = m.hal().dma();
    let a = live(m, &mut state, object)?;
    let config = a.config;
    let needed = registers_needed(m, &config, shift, current_va, length);
    if needed > u64::from(config.map_registers) {
        return Ok(Err(NtStatus::INSUFFICIENT_RESOURCES));
    }
    let elements = match &pieces {
        Some(p) => plan(&config, shift, a.map_buffer, (0, needed as u32), current_va.get() >> shift.0, p).len(),
        None if config.master && config.scatter_gather => {
            mdl::address_and_size_to_span_pages(shift, current_va, u64::from(length)) as usize
        }
        None => 1,
    };
    Ok(Ok((list_size(elements) as u32, needed as u32)))
}

/// The physical address of a list's element `i` as the adapter wrote it (for
/// reports and tests).
pub fn read_list(m: &Machine, list: Va) -> Option<Vec<(LogicalAddress, u32)>> {
    let mut head = [0u8; 4];
    m.space().read(list, &mut head).ok()?;
    let n = u32::from_le_bytes(head);
    let mut out = Vec::new();
    for i in 0..u64::from(n) {
        let mut e = [0u8; 12];
        m.space().read(Va::new(list.get() + LIST_HEADER_SIZE + ELEMENT_SIZE * i), &mut e).ok()?;
        let logical = u64::from_le_bytes(e[0..8].try_into().ok()?);
        out.push((LogicalAddress::new(logical), u32::from_le_bytes(e[8..12].try_into().ok()?)));
    }
    Some(out)
}

/// A physical address as a logical one, for device-side callers.
pub fn logical(pa: PhysAddr) -> LogicalAddress {
    LogicalAddress::of_phys(pa)
}
