//! What version 3 of DMA_OPERATIONS adds (Windows 8; research/dma-verifier-views.md
//! §1.4 slots 16–28, §1.9; learn.microsoft.com "Version 3 of the DMA Operations
//! Interface", "Basic calling pattern for version 3 DMA routines", and each
//! routine's page): transfer contexts, synchronous channel allocation and its
//! cancellation, FreeAdapterObject, GetDmaAdapterInfo, GetDmaTransferInfo, and the
//! checks of FlushAdapterBuffersEx. MapTransferEx, Get/BuildScatterGatherListEx and
//! AllocateCommonBufferEx are the version 1 machinery ([`super::transfer`],
//! [`super::allocate_common_buffer_below`]) with the version 3 parameters.
//!
//! **DMA_TRANSFER_CONTEXT** is opaque, `DMA_TRANSFER_CONTEXT_SIZE_V1` (128) bytes
//! of the driver's memory. ntmem's layout: `ULONG Version` at 0
//! (`DMA_TRANSFER_CONTEXT_VERSION1`, written by InitializeDmaTransferContext), the
//! rest zero. A context whose version is not 1 was not initialized:
//! AllocateAdapterChannelEx refuses it with STATUS_INVALID_PARAMETER (ntmem's
//! reading of "a pointer to an initialized DMA transfer context").
//!
//! IRQL as the pages give it: AllocateAdapterChannelEx at DISPATCH_LEVEL
//! (checked under DMA checking, 0xE6/0x13), the others at or below it.

use ntmem_machine::Va;

use super::controller::Completion;
use super::transfer::{self, ChannelOutcome, ChannelRequest, Grant};
use super::{live, verify, AllocationAction};
use crate::bugcheck::BugCheck;
use crate::ex::pool::NtStatus;
use crate::ke::irql::Irql;
use crate::ke::processor::Cpu;
use crate::mm::mdl::Mdl;

/// `DMA_TRANSFER_CONTEXT_SIZE_V1`: bytes of a transfer context.
pub const TRANSFER_CONTEXT_SIZE: u64 = 0x80;
/// `DMA_TRANSFER_CONTEXT_VERSION1`.
pub const TRANSFER_CONTEXT_VERSION1: u32 = 1;
/// `DMA_ADAPTER_INFO_VERSION1`.
pub const ADAPTER_INFO_VERSION1: u32 = 1;
/// `DMA_TRANSFER_INFO_VERSION1`.
pub const TRANSFER_INFO_VERSION1: u32 = 1;
/// `ADAPTER_INFO_SYNCHRONOUS_CALLBACK`: AllocateAdapterChannelEx takes
/// `DMA_SYNCHRONOUS_CALLBACK`.
pub const ADAPTER_INFO_SYNCHRONOUS_CALLBACK: u32 = 0x1;
/// `DMA_SYNCHRONOUS_CALLBACK`, AllocateAdapterChannelEx's one flag.
pub const DMA_SYNCHRONOUS_CALLBACK: u32 = 0x1;
/// `STATUS_NOT_SUPPORTED`: an info structure version the routine does not know.
pub const STATUS_NOT_SUPPORTED: NtStatus = NtStatus(0xC000_00BB);
/// `STATUS_INVALID_PARAMETER`.
pub const STATUS_INVALID_PARAMETER: NtStatus = NtStatus(0xC000_000D);
/// `STATUS_NOT_IMPLEMENTED`: ConfigureAdapterChannel, whose custom functions no
/// ntmem controller has.
pub const STATUS_NOT_IMPLEMENTED: NtStatus = NtStatus(0xC000_0002);

/// `DMA_ADAPTER_INFO_V1` (x64: five ULONGs, 0x14 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdapterInfo {
    /// `ReadDmaCounterAvailable`: TRUE for system DMA (the channel counts).
    pub read_dma_counter_available: bool,
    /// `ScatterGatherLimit`: the most elements one transfer's list may have —
    /// the adapter's map registers when its transfers go through them, else
    /// 0xFFFFFFFF (no limit; ntmem's reading).
    pub scatter_gather_limit: u32,
    /// `DmaAddressWidth`: bits the device (or controller) drives.
    pub dma_address_width: u32,
    /// `Flags`: ADAPTER_INFO_SYNCHRONOUS_CALLBACK.
    pub flags: u32,
    /// `MinimumTransferUnit`: bytes, 2 on an ISA word channel, else 1.
    pub minimum_transfer_unit: u32,
}

/// `GetDmaAdapterInfo(DmaAdapter, AdapterInfo)`.
///
/// # Errors
/// 0xE6 for an adapter that is not live.
pub fn adapter_info(cpu: &Cpu<'_>, object: Va) -> Result<AdapterInfo, BugCheck> {
    let m = cpu.machine();
    let mut state = m.hal().dma();
    let a = live(m, &mut state, object)?;
    let c = a.config;
    Ok(AdapterInfo {
        read_dma_counter_available: !c.master,
        scatter_gather_limit: if c.bounces { c.map_registers } else { u32::MAX },
        dma_address_width: 64 - c.limit.leading_zeros(),
        flags: ADAPTER_INFO_SYNCHRONOUS_CALLBACK,
        minimum_transfer_unit: if c.channel.is_some_and(|ch| ch.is_word_channel()) { 2 } else { 1 },
    })
}

/// `DMA_TRANSFER_INFO_V1`: map registers, elements and list bytes of a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferInfo {
    /// `MapRegisterCount`.
    pub map_register_count: u32,
    /// `ScatterGatherElementCount`.
    pub scatter_gather_element_count: u32,
    /// `ScatterGatherListSize`: bytes of the SCATTER_GATHER_LIST.
    pub scatter_gather_list_size: u32,
}

/// `GetDmaTransferInfo(DmaAdapter, Mdl, Offset, Length, WriteOnly, TransferInfo)`:
/// what CalculateScatterGatherList says for the same range (the page says it
/// replaces it). The inner `Err` is the status (STATUS_INSUFFICIENT_RESOURCES when
/// the transfer needs more map registers than the adapter has).
///
/// # Errors
/// 0xE6 for an adapter that is not live or a range outside the MDL.
pub fn transfer_info(
    cpu: &Cpu<'_>,
    object: Va,
    mdl: Mdl,
    current_va: Va,
    length: u32,
) -> Result<Result<TransferInfo, NtStatus>, BugCheck> {
    Ok(transfer::calculate_scatter_gather_list(cpu, object, Some(mdl), current_va, length)?.map(|(size, registers)| {
        TransferInfo {
            map_register_count: registers,
            scatter_gather_element_count: ((u64::from(size) - transfer::LIST_HEADER_SIZE) / transfer::ELEMENT_SIZE)
                as u32,
            scatter_gather_list_size: size,
        }
    }))
}

/// `AllocateAdapterChannelEx(DmaAdapter, DeviceObject, DmaTransferContext,
/// NumberOfMapRegisters, Flags, ExecutionRoutine, ExecutionContext,
/// MapRegisterBase)`: AllocateAdapterChannel, and with DMA_SYNCHRONOUS_CALLBACK
/// never queued — STATUS_INSUFFICIENT_RESOURCES (as [`ChannelOutcome::TooMany`])
/// when the channel or the registers are not free now.
///
/// # Errors
/// 0xE6 for an adapter that is not live; under DMA checking 0xE6/0x13 off
/// DISPATCH_LEVEL and the checks of AllocateAdapterChannel.
pub fn allocate_adapter_channel_ex(
    cpu: &Cpu<'_>,
    object: Va,
    n: u32,
    request: ChannelRequest,
    synchronous: bool,
) -> Result<ChannelOutcome, BugCheck> {
    if synchronous {
        let m = cpu.machine();
        let mut state = m.hal().dma();
        let a = live(m, &mut state, object)?;
        let mut probe = a.registers.clone();
        if !a.channel_free_now() || n > a.config.map_registers || probe.allocate(n).is_none() {
            verify::irql_exactly(cpu, Irql::DISPATCH)?;
            return Ok(ChannelOutcome::TooMany);
        }
    }
    transfer::allocate_adapter_channel(cpu, object, n, request)
}

/// `CancelAdapterChannel(DmaAdapter, DeviceObject, DmaTransferContext)`: TRUE when
/// the request made with `transfer_context` was still waiting and is now
/// withdrawn (its execution routine will not run); FALSE when it already ran.
///
/// # Errors
/// 0xE6 for an adapter that is not live.
pub fn cancel_adapter_channel(cpu: &Cpu<'_>, object: Va, transfer_context: u64) -> Result<bool, BugCheck> {
    let m = cpu.machine();
    let mut state = m.hal().dma();
    let a = live(m, &mut state, object)?;
    Ok(a.cancel_waiting(transfer_context))
}

/// `FreeAdapterObject(DmaAdapter, AllocationAction)`: what returning `action`
/// from an execution routine does, for a channel allocated synchronously without
/// one — DeallocateObject frees the channel and its registers,
/// DeallocateObjectKeepRegisters the channel only, KeepObject nothing. Returns the
/// requests that may run now.
///
/// # Errors
/// 0xE6 for an adapter that is not live.
pub fn free_adapter_object(cpu: &Cpu<'_>, object: Va, action: AllocationAction) -> Result<Vec<Grant>, BugCheck> {
    let base = {
        let m = cpu.machine();
        let mut state = m.hal().dma();
        let a = live(m, &mut state, object)?;
        a.channel_file()
    };
    match base {
        Some(base) => transfer::adapter_control_returned(cpu, object, base, action),
        None => Ok(Vec::new()),
    }
}

/// `FlushAdapterBuffersEx(DmaAdapter, Mdl, MapRegisterBase, Offset, Length,
/// WriteToDevice)`: FlushAdapterBuffers. Flushing a system DMA channel whose
/// transfer is neither complete nor cancelled is Verifier's 0xE6/0x23 (0,
/// controller, channel) under DMA checking; without it the channel is masked
/// where it stands.
///
/// # Errors
/// 0xE6 for an adapter that is not live.
pub fn flush_adapter_buffers_ex(cpu: &Cpu<'_>, object: Va, base: u64) -> Result<(), BugCheck> {
    {
        let m = cpu.machine();
        let mut state = m.hal().dma();
        let channel = live(m, &mut state, object)?.config.channel;
        if let Some(ch) = channel {
            let (controller, number) = ch.controller_and_number();
            verify::check(m, state.controller.running(ch), [0x23, 0, controller, number])?;
        }
    }
    transfer::flush_adapter_buffers(cpu, object, base, None).map(|_| ())
}

/// `CancelMappedTransfer(DmaAdapter, DmaTransferContext)`: stops the adapter's
/// system DMA transfer; its completion routine, if still due, is returned to be
/// called with DmaCancelled. STATUS_SUCCESS for a subordinate adapter,
/// STATUS_NOT_SUPPORTED for a bus master (no channel to stop).
///
/// # Errors
/// 0xE6 for an adapter that is not live.
pub fn cancel_mapped_transfer(cpu: &Cpu<'_>, object: Va) -> Result<(NtStatus, Option<Completion>), BugCheck> {
    let m = cpu.machine();
    let mut state = m.hal().dma();
    let Some(channel) = live(m, &mut state, object)?.config.channel else {
        return Ok((STATUS_NOT_SUPPORTED, None));
    };
    Ok((NtStatus(0), state.controller.stop(channel)))
}
