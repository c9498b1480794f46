//! DMA_OPERATIONS version 3 at the C boundary (Windows 8; research/dma-verifier-views.md
//! §1.4 slots 16–28, §1.9; kernel side [`ntmem_kernel::hal::dma::v3`]). Like the
//! version 1 and 2 routines ([`crate::hal_dma`]) these are reached only through
//! the adapter's table, which IoGetDmaAdapter fills for a `DEVICE_DESCRIPTION_VERSION3`
//! description on a Windows 8 machine.
//!
//! Byte-exact x64 layouts (`include/ntmem/dma.h` asserts the C side):
//! `DMA_ADAPTER_INFO` {`Version` 0, `V1` 4} 0x18 bytes with `DMA_ADAPTER_INFO_V1`
//! five ULONGs; `DMA_TRANSFER_INFO` {`Version` 0, `V1` 4} 0x10 bytes with
//! `DMA_TRANSFER_INFO_V1` three ULONGs; a transfer context is
//! `DMA_TRANSFER_CONTEXT_SIZE_V1` (0x80) bytes.
//!
//! `Offset` parameters count from the start of the MDL's buffer
//! (`MmGetMdlVirtualAddress`), as CurrentVa does in version 1.
//!
//! **Where ntmem differs.** MDL chains: only the first MDL is used (MapTransferEx
//! maps less and says so in `*Length`, as the page allows; the list routines stop
//! with 0xE6/0x1B at a range beyond it). GetScatterGatherListEx and
//! BuildScatterGatherListEx need an `ExecutionRoutine` (without one: STATUS_NOT_SUPPORTED)
//! and ignore `DmaCompletionRoutine`. ConfigureAdapterChannel returns
//! STATUS_NOT_IMPLEMENTED: no ntmem DMA controller has custom functions.
//! `PreferredNode` (NUMA) of AllocateCommonBufferEx is ignored and `CacheEnabled`
//! too (x86 and x64 DMA is cache-coherent).
//!
//! A completion routine (`DMA_COMPLETION_ROUTINE`) runs at DISPATCH_LEVEL with
//! (DmaAdapter, DeviceObject, CompletionContext, Status) when the system DMA
//! transfer reaches terminal count — for a device that never waits, before
//! MapTransferEx returns; otherwise when a scenario's `dma` step completes it —
//! or with `DmaCancelled` from CancelMappedTransfer.

use std::ffi::c_void;

use ntmem_host::thunk::preserving_capture;
use ntmem_kernel::hal::dma::controller::Completion;
use ntmem_kernel::hal::dma::transfer::{self, ChannelOutcome, ChannelRequest, Grant, SystemDmaExtras};
use ntmem_kernel::hal::dma::{self, v3, AllocationAction};
use ntmem_kernel::mm::mdl::{self, Mdl};
use ntmem_kernel::{BugCheck, Cpu, Irql};
use ntmem_machine::Va;

use crate::context::{checked, host_ptr, kernel, va_of};
use crate::hal_dma::{dma_live, list, lower, read, run_grants, write};
use crate::types::NtStatus;

/// `STATUS_INSUFFICIENT_RESOURCES`.
const STATUS_INSUFFICIENT_RESOURCES: NtStatus = 0xC000_009A_u32 as i32;
/// `DMA_COMPLETION_STATUS`: `DmaComplete` 0, `DmaAborted` 1, `DmaError` 2,
/// `DmaCancelled` 3.
pub const DMA_COMPLETE: u32 = 0;
/// `DmaCancelled`.
pub const DMA_CANCELLED: u32 = 3;

fn status(s: ntmem_kernel::ex::pool::NtStatus) -> NtStatus {
    s.0 as i32
}

/// The CurrentVa of byte `offset` of the MDL's buffer.
fn current_va(cpu: &Cpu<'_>, mdl_ptr: *mut c_void, offset: u64) -> Result<(Mdl, Va), BugCheck> {
    let mdl = Mdl(va_of(cpu, mdl_ptr));
    let h = mdl::read_header(cpu, mdl)?;
    Ok((mdl, Va::new(h.virtual_address().get().wrapping_add(offset))))
}

/// `GetDmaAdapterInfo(DmaAdapter, AdapterInfo)`: STATUS_NOT_SUPPORTED unless
/// `AdapterInfo->Version` is DMA_ADAPTER_INFO_VERSION1.
pub extern "win64" fn GetDmaAdapterInfo(adapter: *mut c_void, info: *mut c_void) -> NtStatus {
    kernel(|cpu| {
        let version = u32::from_le_bytes(read(cpu, info)?);
        if version != v3::ADAPTER_INFO_VERSION1 {
            return Ok(status(v3::STATUS_NOT_SUPPORTED));
        }
        let i = v3::adapter_info(cpu, va_of(cpu, adapter))?;
        let mut bytes = Vec::with_capacity(20);
        for v in [
            u32::from(i.read_dma_counter_available),
            i.scatter_gather_limit,
            i.dma_address_width,
            i.flags,
            i.minimum_transfer_unit,
        ] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        write(cpu, info.cast::<u8>().wrapping_add(4).cast(), &bytes)?;
        Ok(0)
    })
}

/// `GetDmaTransferInfo(DmaAdapter, Mdl, Offset, Length, WriteOnly, TransferInfo)`.
pub extern "win64" fn GetDmaTransferInfo(
    adapter: *mut c_void,
    mdl: *mut c_void,
    offset: u64,
    length: u32,
    _write_only: u8,
    info: *mut c_void,
) -> NtStatus {
    kernel(|cpu| {
        let version = u32::from_le_bytes(read(cpu, info)?);
        if version != v3::TRANSFER_INFO_VERSION1 {
            return Ok(status(v3::STATUS_NOT_SUPPORTED));
        }
        let (mdl, va) = current_va(cpu, mdl, offset)?;
        match v3::transfer_info(cpu, va_of(cpu, adapter), mdl, va, length)? {
            Err(s) => Ok(status(s)),
            Ok(t) => {
                let mut bytes = Vec::with_capacity(12);
                for v in [t.map_register_count, t.scatter_gather_element_count, t.scatter_gather_list_size] {
                    bytes.extend_from_slice(&v.to_le_bytes());
                }
                write(cpu, info.cast::<u8>().wrapping_add(4).cast(), &bytes)?;
                Ok(0)
            }
        }
    })
}

/// `InitializeDmaTransferContext(DmaAdapter, DmaTransferContext)`: the context's
/// 0x80 bytes become a fresh version-1 context (see [`v3`]).
pub extern "win64" fn InitializeDmaTransferContext(adapter: *mut c_void, context: *mut c_void) -> NtStatus {
    kernel(|cpu| {
        let m = cpu.machine();
        dma_live(cpu, &m.hal().dma(), va_of(cpu, adapter))?;
        let mut bytes = [0u8; v3::TRANSFER_CONTEXT_SIZE as usize];
        bytes[..4].copy_from_slice(&v3::TRANSFER_CONTEXT_VERSION1.to_le_bytes());
        write(cpu, context, &bytes)?;
        Ok(0)
    })
}

/// `AllocateCommonBufferEx(DmaAdapter, MaximumAddress, Length, LogicalAddress,
/// CacheEnabled, PreferredNode)`: AllocateCommonBuffer with the buffer's last
/// byte at or below `*MaximumAddress` when given.
pub extern "win64" fn AllocateCommonBufferEx(
    adapter: *mut c_void,
    maximum: *mut c_void,
    length: u32,
    logical: *mut c_void,
    _cache_enabled: u8,
    _node: u32,
) -> *mut c_void {
    kernel(|cpu| {
        checked(cpu, logical, 8)?;
        let below = if maximum.is_null() { u64::MAX } else { u64::from_le_bytes(read(cpu, maximum)?) };
        match dma::allocate_common_buffer_below(cpu, va_of(cpu, adapter), length, below)? {
            Ok((va, l)) => {
                write(cpu, logical, &l.get().to_le_bytes())?;
                Ok(host_ptr(cpu, Some(va)))
            }
            Err(_) => Ok(std::ptr::null_mut()),
        }
    })
}

/// `AllocateAdapterChannelEx(DmaAdapter, DeviceObject, DmaTransferContext,
/// NumberOfMapRegisters, Flags, ExecutionRoutine, ExecutionContext,
/// MapRegisterBase)`: STATUS_INVALID_PARAMETER for a context not initialized, or
/// for the documented parameter rules (no routine without DMA_SYNCHRONOUS_CALLBACK
/// and a `MapRegisterBase`; a routine with one); STATUS_INSUFFICIENT_RESOURCES for
/// more registers than the adapter has, or, synchronously, for a channel or
/// registers not free now.
#[allow(clippy::too_many_arguments)]
pub extern "win64" fn AllocateAdapterChannelEx(
    adapter: *mut c_void,
    device: *mut c_void,
    context: *mut c_void,
    registers: u32,
    flags: u32,
    routine: *mut c_void,
    routine_context: *mut c_void,
    base_out: *mut c_void,
) -> NtStatus {
    let synchronous = flags & v3::DMA_SYNCHRONOUS_CALLBACK != 0;
    let request = ChannelRequest {
        device: device as u64,
        routine: routine as u64,
        context: routine_context as u64,
        transfer_context: context as u64,
    };
    let outcome = kernel(|cpu| {
        checked(cpu, device, 0x28)?;
        let version = u32::from_le_bytes(read(cpu, context)?);
        let bad_shape = if routine.is_null() { !synchronous || base_out.is_null() } else { !base_out.is_null() };
        if version != v3::TRANSFER_CONTEXT_VERSION1 || bad_shape {
            return Ok(None);
        }
        if !base_out.is_null() {
            checked(cpu, base_out, 8)?;
        }
        v3::allocate_adapter_channel_ex(cpu, va_of(cpu, adapter), registers, request, synchronous).map(Some)
    });
    match outcome {
        None => status(v3::STATUS_INVALID_PARAMETER),
        Some(ChannelOutcome::TooMany) => STATUS_INSUFFICIENT_RESOURCES,
        Some(ChannelOutcome::Queued) => 0,
        Some(ChannelOutcome::Run(Grant::Channel { base, .. })) if routine.is_null() => {
            kernel(|cpu| write(cpu, base_out, &base.to_le_bytes()));
            0
        }
        Some(ChannelOutcome::Run(g)) => {
            run_grants(adapter, vec![g]);
            0
        }
    }
}

/// `ConfigureAdapterChannel(DmaAdapter, FunctionNumber, Context)`:
/// STATUS_NOT_IMPLEMENTED — ntmem's controllers have no custom functions.
pub extern "win64" fn ConfigureAdapterChannel(adapter: *mut c_void, _function: u32, _context: *mut c_void) -> NtStatus {
    kernel(|cpu| {
        let m = cpu.machine();
        dma_live(cpu, &m.hal().dma(), va_of(cpu, adapter))?;
        Ok(status(v3::STATUS_NOT_IMPLEMENTED))
    })
}

/// `CancelAdapterChannel(DmaAdapter, DeviceObject, DmaTransferContext)`: TRUE when
/// the pending request was withdrawn.
pub extern "win64" fn CancelAdapterChannel(adapter: *mut c_void, _device: *mut c_void, context: *mut c_void) -> u8 {
    kernel(|cpu| Ok(u8::from(v3::cancel_adapter_channel(cpu, va_of(cpu, adapter), context as u64)?)))
}

/// `MapTransferEx(DmaAdapter, Mdl, MapRegisterBase, Offset, DeviceOffset, Length,
/// WriteToDevice, ScatterGatherBuffer, ScatterGatherBufferLength,
/// DmaCompletionRoutine, CompletionContext)`: MapTransfer from byte `Offset` of the
/// MDL's buffer; `*Length` out is what was mapped; a `ScatterGatherBuffer` gets a
/// one-element list of the mapped run (STATUS_BUFFER_TOO_SMALL when it cannot
/// hold one, before anything is mapped).
#[allow(clippy::too_many_arguments)]
pub extern "win64" fn MapTransferEx(
    adapter: *mut c_void,
    mdl: *mut c_void,
    base: *mut c_void,
    offset: u64,
    device_offset: u32,
    length: *mut c_void,
    write_to_device: u8,
    list_buffer: *mut c_void,
    list_length: u32,
    completion: *mut c_void,
    completion_context: *mut c_void,
) -> NtStatus {
    let result = kernel(|cpu| {
        let asked = u32::from_le_bytes(read(cpu, length)?);
        if !list_buffer.is_null() && u64::from(list_length) < transfer::list_size(1) {
            return Ok(Err(transfer::STATUS_BUFFER_TOO_SMALL));
        }
        let (mdl, va) = current_va(cpu, mdl, offset)?;
        let extras = SystemDmaExtras { device_offset, routine: completion as u64, context: completion_context as u64 };
        let mapped = transfer::map_transfer(
            cpu,
            va_of(cpu, adapter),
            mdl,
            base as u64,
            va,
            asked,
            write_to_device != 0,
            extras,
        )?;
        write(cpu, length, &mapped.length.to_le_bytes())?;
        if !list_buffer.is_null() {
            let mut bytes = vec![0u8; transfer::list_size(1) as usize];
            bytes[0..4].copy_from_slice(&1u32.to_le_bytes());
            bytes[0x10..0x18].copy_from_slice(&mapped.logical.get().to_le_bytes());
            bytes[0x18..0x1C].copy_from_slice(&mapped.length.to_le_bytes());
            write(cpu, list_buffer, &bytes)?;
        }
        Ok(Ok(mapped.completion))
    });
    match result {
        Err(s) => status(s),
        Ok(due) => {
            if let Some(c) = due {
                complete(c, DMA_COMPLETE);
            }
            0
        }
    }
}

/// `GetScatterGatherListEx(DmaAdapter, DeviceObject, DmaTransferContext, Mdl,
/// Offset, Length, Flags, ExecutionRoutine, Context, WriteToDevice,
/// DmaCompletionRoutine, CompletionContext, ScatterGatherList)`: GetScatterGatherList
/// from byte `Offset` (see the module's differences).
#[allow(clippy::too_many_arguments)]
pub extern "win64" fn GetScatterGatherListEx(
    adapter: *mut c_void,
    device: *mut c_void,
    _context: *mut c_void,
    mdl: *mut c_void,
    offset: u64,
    length: u32,
    _flags: u32,
    routine: *mut c_void,
    routine_context: *mut c_void,
    write_to_device: u8,
    _completion: *mut c_void,
    _completion_context: *mut c_void,
    _list_out: *mut c_void,
) -> NtStatus {
    list_ex(adapter, device, mdl, offset, length, routine, routine_context, write_to_device, None)
}

/// `BuildScatterGatherListEx(DmaAdapter, DeviceObject, DmaTransferContext, Mdl,
/// Offset, Length, Flags, ExecutionRoutine, Context, WriteToDevice,
/// ScatterGatherBuffer, ScatterGatherLength, DmaCompletionRoutine,
/// CompletionContext, ScatterGatherList)`: BuildScatterGatherList from byte
/// `Offset` (see the module's differences).
#[allow(clippy::too_many_arguments)]
pub extern "win64" fn BuildScatterGatherListEx(
    adapter: *mut c_void,
    device: *mut c_void,
    _context: *mut c_void,
    mdl: *mut c_void,
    offset: u64,
    length: u32,
    _flags: u32,
    routine: *mut c_void,
    routine_context: *mut c_void,
    write_to_device: u8,
    buffer: *mut c_void,
    buffer_length: u32,
    _completion: *mut c_void,
    _completion_context: *mut c_void,
    _list_out: *mut c_void,
) -> NtStatus {
    let buffer = Some((buffer, buffer_length));
    list_ex(adapter, device, mdl, offset, length, routine, routine_context, write_to_device, buffer)
}

#[allow(clippy::too_many_arguments)]
fn list_ex(
    adapter: *mut c_void,
    device: *mut c_void,
    mdl: *mut c_void,
    offset: u64,
    length: u32,
    routine: *mut c_void,
    routine_context: *mut c_void,
    write_to_device: u8,
    buffer: Option<(*mut c_void, u32)>,
) -> NtStatus {
    if routine.is_null() {
        return status(v3::STATUS_NOT_SUPPORTED);
    }
    let va = kernel(|cpu| current_va(cpu, mdl, offset).map(|(_, va)| va.get()));
    list(adapter, device, mdl, va as *mut c_void, length, routine, routine_context, write_to_device, buffer)
}

/// `FlushAdapterBuffersEx(DmaAdapter, Mdl, MapRegisterBase, Offset, Length,
/// WriteToDevice)`: STATUS_SUCCESS (under DMA checking, 0xE6/0x23 for a system DMA
/// transfer still running).
pub extern "win64" fn FlushAdapterBuffersEx(
    adapter: *mut c_void,
    _mdl: *mut c_void,
    base: *mut c_void,
    _offset: u64,
    _length: u32,
    _write: u8,
) -> NtStatus {
    kernel(|cpu| v3::flush_adapter_buffers_ex(cpu, va_of(cpu, adapter), base as u64).map(|()| 0))
}

/// `FreeAdapterObject(DmaAdapter, AllocationAction)`.
pub extern "win64" fn FreeAdapterObject(adapter: *mut c_void, action: u32) {
    let grants = kernel(|cpu| v3::free_adapter_object(cpu, va_of(cpu, adapter), AllocationAction::from_raw(action)));
    run_grants(adapter, grants);
}

/// `CancelMappedTransfer(DmaAdapter, DmaTransferContext)`: stops a system DMA
/// transfer; its completion routine runs with DmaCancelled.
pub extern "win64" fn CancelMappedTransfer(adapter: *mut c_void, _context: *mut c_void) -> NtStatus {
    let (s, due) = kernel(|cpu| v3::cancel_mapped_transfer(cpu, va_of(cpu, adapter)));
    if let Some(c) = due {
        complete(c, DMA_CANCELLED);
    }
    status(s)
}

/// `DMA_COMPLETION_ROUTINE`.
type DmaCompletionRoutine = unsafe extern "win64" fn(*mut c_void, *mut c_void, *mut c_void, u32);

/// Calls a driver's DMA completion routine at DISPATCH_LEVEL with `status`.
pub fn complete(c: Completion, status: u32) {
    if !ntmem_host::exception::is_image_code(c.routine as usize) {
        crate::io_cancel::bad_call(c.routine as usize);
    }
    let old = kernel(|cpu| {
        let old = cpu.irql();
        if old < Irql::DISPATCH {
            cpu.raise_irql(Irql::DISPATCH)?;
        }
        Ok(old)
    });
    let (adapter, device) = kernel(|cpu| {
        Ok((host_ptr(cpu, Some(Va::new(c.adapter))), host_ptr(cpu, Some(Va::new(c.device)).filter(|v| v.get() != 0))))
    });
    // SAFETY: the driver's DMA_COMPLETION_ROUTINE (image code, checked above),
    // called as Windows calls it: (DmaAdapter, DeviceObject, CompletionContext,
    // Status).
    preserving_capture(|| unsafe {
        let f = std::mem::transmute::<usize, DmaCompletionRoutine>(c.routine as usize);
        f(adapter, device, c.context as *mut c_void, status)
    });
    kernel(|cpu| lower(cpu, old));
}
