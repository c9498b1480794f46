//! DMA at the C boundary: `IoGetDmaAdapter` (an ntoskrnl export) and the routines
//! of the adapter's `DMA_OPERATIONS` table (research/dma-verifier-views.md §1;
//! kernel side [`ntmem_kernel::hal::dma`]). The table's routines are not exports:
//! drivers call them through the function pointers IoGetDmaAdapter writes into the
//! table, in Windows' order (§1.4), each through an import-style thunk so an
//! exception raised in it is dispatched from the driver's frame.
//!
//! Byte-exact x64 layouts (§1.1, §1.4, §1.7; `include/ntmem/dma.h` asserts the C
//! side): `DMA_ADAPTER` {`Version` 0, `Size` 2, `DmaOperations` 8}; `DMA_OPERATIONS`
//! `Size` 0 then one 8-byte slot per routine from 0x08; `SCATTER_GATHER_LIST`
//! {`NumberOfElements` 0, `Reserved` 8, `Elements` 0x10}, 0x18-byte elements.
//! A version-2 or 3 table's `BuildMdlFromScatterGatherList` slot is NULL: ntmem
//! does not implement it ("reserved for system use"). Version 3's routines are in
//! [`crate::hal_dma_v3`].
//!
//! Execution routines (AdapterControl, AdapterListControl) are called outside
//! ntmem's routines at DISPATCH_LEVEL (raised to it if the caller was below, §1.4),
//! with `Irp` = `DeviceObject->CurrentIrp` (x64 offset 0x20) for AdapterControl as
//! Windows passes it (§1.4); for AdapterListControl too (the documentation names
//! only "Irp"; ntmem passes the same field). A routine pointer that is no loaded
//! image's code is an access violation raised in the driver, as a call there would
//! be.

use std::ffi::c_void;
use std::sync::OnceLock;

use ntmem_host::thunk::{preserving_capture, ThunkTable};
use ntmem_kernel::hal::dma::transfer::{self, ChannelOutcome, ChannelRequest, Grant, ListOutcome, ListRequest};
use ntmem_kernel::hal::dma::{self, AllocationAction, DeviceDescription};
use ntmem_kernel::mm::mdl::Mdl;
use ntmem_kernel::{BugCheck, Cpu, Irql};
use ntmem_machine::Va;

use crate::context::{checked, host_ptr, kernel, va_of};
use crate::types::NtStatus;

/// `STATUS_INSUFFICIENT_RESOURCES`.
const STATUS_INSUFFICIENT_RESOURCES: NtStatus = 0xC000_009A_u32 as i32;
/// Offset of `CurrentIrp` in the x64 DEVICE_OBJECT.
const OFF_CURRENT_IRP: u64 = 0x20;

pub(crate) fn read<const N: usize>(cpu: &Cpu<'_>, p: *const c_void) -> Result<[u8; N], BugCheck> {
    checked(cpu, p.cast_mut(), N as u64)?;
    let mut b = [0u8; N];
    let va = va_of(cpu, p);
    let m = cpu.machine();
    m.space().read(va, &mut b).map_err(|_| ntmem_kernel::trap::wild_touch(cpu, va, false))?;
    Ok(b)
}

pub(crate) fn write(cpu: &Cpu<'_>, p: *mut c_void, bytes: &[u8]) -> Result<(), BugCheck> {
    checked(cpu, p, bytes.len() as u64)?;
    let va = va_of(cpu, p);
    cpu.machine().space().write(va, bytes).map_err(|_| ntmem_kernel::trap::wild_touch(cpu, va, true))
}

/// Routine slots of a version 3 table (slots 1–28, §1.4).
const SLOTS: usize = 28;

/// The DMA_OPERATIONS routines in slot order (slots 1–28; §1.4), `None` for the
/// slot ntmem leaves NULL.
fn slot_routines() -> [Option<usize>; SLOTS] {
    use crate::hal_dma_v3 as v3;
    [
        Some(PutDmaAdapter as *const () as usize),
        Some(AllocateCommonBuffer as *const () as usize),
        Some(FreeCommonBuffer as *const () as usize),
        Some(AllocateAdapterChannel as *const () as usize),
        Some(FlushAdapterBuffers as *const () as usize),
        Some(FreeAdapterChannel as *const () as usize),
        Some(FreeMapRegisters as *const () as usize),
        Some(MapTransfer as *const () as usize),
        Some(GetDmaAlignment as *const () as usize),
        Some(ReadDmaCounter as *const () as usize),
        Some(GetScatterGatherList as *const () as usize),
        Some(PutScatterGatherList as *const () as usize),
        Some(CalculateScatterGatherList as *const () as usize),
        Some(BuildScatterGatherList as *const () as usize),
        None,
        Some(v3::GetDmaAdapterInfo as *const () as usize),
        Some(v3::GetDmaTransferInfo as *const () as usize),
        Some(v3::InitializeDmaTransferContext as *const () as usize),
        Some(v3::AllocateCommonBufferEx as *const () as usize),
        Some(v3::AllocateAdapterChannelEx as *const () as usize),
        Some(v3::ConfigureAdapterChannel as *const () as usize),
        Some(v3::CancelAdapterChannel as *const () as usize),
        Some(v3::MapTransferEx as *const () as usize),
        Some(v3::GetScatterGatherListEx as *const () as usize),
        Some(v3::BuildScatterGatherListEx as *const () as usize),
        Some(v3::FlushAdapterBuffersEx as *const () as usize),
        Some(v3::FreeAdapterObject as *const () as usize),
        Some(v3::CancelMappedTransfer as *const () as usize),
    ]
}

/// The slot values: thunks to the routines, made once per process (the routines
/// themselves if the host refuses the thunk page).
fn slots() -> [u64; SLOTS] {
    static THUNKS: OnceLock<Option<ThunkTable>> = OnceLock::new();
    let routines = slot_routines();
    let table = THUNKS.get_or_init(|| ThunkTable::new(&routines.map(|r| r.unwrap_or(0))).ok()).as_ref();
    let mut out = [0u64; SLOTS];
    for (i, r) in routines.iter().enumerate() {
        out[i] = match (r, table) {
            (None, _) => 0,
            (Some(_), Some(t)) => t.address(i).unwrap_or(0) as u64,
            (Some(a), None) => *a as u64,
        };
    }
    out
}

/// `IoGetDmaAdapter(PhysicalDeviceObject, DeviceDescription, NumberOfMapRegisters)`:
/// the adapter, or NULL (the reason is kept for the report). The description is
/// read as 0x28 bytes, or 0x40 for version 3.
pub extern "win64" fn IoGetDmaAdapter(pdo: *mut c_void, description: *mut c_void, count: *mut u32) -> *mut c_void {
    kernel(|cpu| {
        checked(cpu, pdo, 0x28)?;
        let head: [u8; 0x28] = read(cpu, description)?;
        let desc = if u32::from_le_bytes([head[0], head[1], head[2], head[3]]) >= 3 {
            let all: [u8; 0x40] = read(cpu, description)?;
            DeviceDescription::from_bytes(&all)
        } else {
            DeviceDescription::from_bytes(&head)
        };
        let Some(desc) = desc else { return Ok(std::ptr::null_mut()) };
        checked(cpu, count.cast(), 4)?;
        let Ok(adapter) = dma::io_get_dma_adapter(cpu, &desc)? else { return Ok(std::ptr::null_mut()) };
        let slots = slots();
        let n = match adapter.operations_version {
            1 => 12,
            2 => 15,
            _ => SLOTS,
        };
        let mut bytes = Vec::with_capacity(8 * n);
        for s in &slots[..n] {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        let table = host_ptr(cpu, Some(Va::new(adapter.operations.get() + 8)));
        write(cpu, table, &bytes)?;
        write(cpu, count.cast(), &adapter.map_registers.to_le_bytes())?;
        Ok(host_ptr(cpu, Some(adapter.object)))
    })
}

/// `PutDmaAdapter`.
pub extern "win64" fn PutDmaAdapter(adapter: *mut c_void) {
    kernel(|cpu| dma::put_dma_adapter(cpu, va_of(cpu, adapter)));
}

/// `AllocateCommonBuffer`: NULL on failure (the reason is kept for the report);
/// `CacheEnabled` is ignored (§1.5). Driver Verifier's low resources simulation may
/// fail it (NULL), as Windows' does (research note §3.4; issue 14).
pub extern "win64" fn AllocateCommonBuffer(
    adapter: *mut c_void,
    length: u32,
    logical: *mut i64,
    _cache_enabled: u8,
) -> *mut c_void {
    kernel(|cpu| {
        checked(cpu, logical.cast(), 8)?;
        let allocate = || dma::allocate_common_buffer(cpu, va_of(cpu, adapter), length).map(Some);
        let ask = crate::vf::Ask::resource("AllocateCommonBuffer");
        let Some(allocated) = crate::vf::allocation(cpu, ask, || None, allocate, |_| None)? else {
            return Ok(std::ptr::null_mut());
        };
        match allocated {
            Ok((va, l)) => {
                write(cpu, logical.cast(), &l.get().to_le_bytes())?;
                Ok(host_ptr(cpu, Some(va)))
            }
            Err(_) => Ok(std::ptr::null_mut()),
        }
    })
}

/// `FreeCommonBuffer`.
pub extern "win64" fn FreeCommonBuffer(
    adapter: *mut c_void,
    length: u32,
    _logical: i64,
    va: *mut c_void,
    _cache_enabled: u8,
) {
    kernel(|cpu| dma::free_common_buffer(cpu, va_of(cpu, adapter), length, va_of(cpu, va)));
}

/// `AllocateAdapterChannel`: STATUS_SUCCESS (the execution routine ran, or is
/// queued), or STATUS_INSUFFICIENT_RESOURCES for more registers than the adapter
/// has (§1.6).
pub extern "win64" fn AllocateAdapterChannel(
    adapter: *mut c_void,
    device: *mut c_void,
    registers: u32,
    routine: *mut c_void,
    context: *mut c_void,
) -> NtStatus {
    let request =
        ChannelRequest { device: device as u64, routine: routine as u64, context: context as u64, transfer_context: 0 };
    let outcome = kernel(|cpu| {
        checked(cpu, device, 0x28)?;
        transfer::allocate_adapter_channel(cpu, va_of(cpu, adapter), registers, request)
    });
    match outcome {
        ChannelOutcome::TooMany => STATUS_INSUFFICIENT_RESOURCES,
        ChannelOutcome::Queued => 0,
        ChannelOutcome::Run(g) => {
            run_grants(adapter, vec![g]);
            0
        }
    }
}

/// `FlushAdapterBuffers`: TRUE.
pub extern "win64" fn FlushAdapterBuffers(
    adapter: *mut c_void,
    mdl: *mut c_void,
    base: *mut c_void,
    current_va: *mut c_void,
    _length: u32,
    _write: u8,
) -> u8 {
    kernel(|cpu| {
        let at = Some((Mdl(va_of(cpu, mdl)), va_of(cpu, current_va)));
        Ok(u8::from(transfer::flush_adapter_buffers(cpu, va_of(cpu, adapter), base as u64, at)?))
    })
}

/// `FreeAdapterChannel`.
pub extern "win64" fn FreeAdapterChannel(adapter: *mut c_void) {
    let grants = kernel(|cpu| transfer::free_adapter_channel(cpu, va_of(cpu, adapter)));
    run_grants(adapter, grants);
}

/// `FreeMapRegisters`.
pub extern "win64" fn FreeMapRegisters(adapter: *mut c_void, base: *mut c_void, registers: u32) {
    let grants = kernel(|cpu| transfer::free_map_registers(cpu, va_of(cpu, adapter), base as u64, registers));
    run_grants(adapter, grants);
}

/// `MapTransfer`: the logical address; `*Length` is updated (§1.6).
pub extern "win64" fn MapTransfer(
    adapter: *mut c_void,
    mdl: *mut c_void,
    base: *mut c_void,
    current_va: *mut c_void,
    length: *mut u32,
    write_to_device: u8,
) -> i64 {
    kernel(|cpu| {
        let asked = u32::from_le_bytes(read(cpu, length.cast())?);
        let mapped = transfer::map_transfer(
            cpu,
            va_of(cpu, adapter),
            Mdl(va_of(cpu, mdl)),
            base as u64,
            va_of(cpu, current_va),
            asked,
            write_to_device != 0,
            transfer::SystemDmaExtras::default(),
        )?;
        write(cpu, length.cast(), &mapped.length.to_le_bytes())?;
        Ok(mapped.logical.get() as i64)
    })
}

/// `GetDmaAlignment`: 1 — no alignment requirement on x86 and x64, as ReactOS's
/// HAL answers (hal/halx86/generic/dma.c); Windows documents only the contract.
pub extern "win64" fn GetDmaAlignment(adapter: *mut c_void) -> u32 {
    kernel(|cpu| {
        let m = cpu.machine();
        let object = va_of(cpu, adapter);
        let state = m.hal().dma();
        dma_live(cpu, &state, object)?;
        Ok(1)
    })
}

/// `ReadDmaCounter`: the bytes left on a subordinate adapter's system DMA channel
/// ([`dma::controller`]); 0 for a bus master (the page: subordinate devices only).
pub extern "win64" fn ReadDmaCounter(adapter: *mut c_void) -> u32 {
    kernel(|cpu| {
        let m = cpu.machine();
        let object = va_of(cpu, adapter);
        let state = m.hal().dma();
        dma_live(cpu, &state, object)?;
        let channel = state.adapter(object).and_then(|a| a.config.channel);
        Ok(channel.map_or(0, |c| state.controller.counter(c, object.get())))
    })
}

/// The adapter at `object` is live; else the 0xE6 stop ntmem gives for it
/// ([`dma::DRIVER_VERIFIER_DMA_VIOLATION`]).
pub(crate) fn dma_live(cpu: &Cpu<'_>, state: &dma::DmaState, object: Va) -> Result<(), BugCheck> {
    if state.adapter(object).is_some() {
        return Ok(());
    }
    let p1 = if object.get() == 0 { 0x19 } else { 0x18 };
    Err(cpu.machine().bugcheck(dma::DRIVER_VERIFIER_DMA_VIOLATION, [p1, object.get(), 0, 0]))
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn list(
    adapter: *mut c_void,
    device: *mut c_void,
    mdl: *mut c_void,
    current_va: *mut c_void,
    length: u32,
    routine: *mut c_void,
    context: *mut c_void,
    write_to_device: u8,
    buffer: Option<(*mut c_void, u32)>,
) -> NtStatus {
    let outcome = kernel(|cpu| {
        checked(cpu, device, 0x28)?;
        let request = ListRequest {
            device: device as u64,
            routine: routine as u64,
            context: context as u64,
            mdl: Mdl(va_of(cpu, mdl)),
            current_va: va_of(cpu, current_va),
            length,
            write: write_to_device != 0,
            buffer: match buffer {
                Some((p, len)) => {
                    checked(cpu, p, u64::from(len.max(1)))?;
                    Some((va_of(cpu, p), len))
                }
                None => None,
            },
        };
        transfer::get_scatter_gather_list(cpu, va_of(cpu, adapter), request)
    });
    match outcome {
        ListOutcome::Status(s) => s.0 as i32,
        ListOutcome::Queued => 0,
        ListOutcome::Run(g) => {
            run_grants(adapter, vec![g]);
            0
        }
    }
}

/// `GetScatterGatherList` (§1.7).
#[allow(clippy::too_many_arguments)]
pub extern "win64" fn GetScatterGatherList(
    adapter: *mut c_void,
    device: *mut c_void,
    mdl: *mut c_void,
    current_va: *mut c_void,
    length: u32,
    routine: *mut c_void,
    context: *mut c_void,
    write_to_device: u8,
) -> NtStatus {
    list(adapter, device, mdl, current_va, length, routine, context, write_to_device, None)
}

/// `BuildScatterGatherList` (§1.7): the list goes into the caller's buffer.
#[allow(clippy::too_many_arguments)]
pub extern "win64" fn BuildScatterGatherList(
    adapter: *mut c_void,
    device: *mut c_void,
    mdl: *mut c_void,
    current_va: *mut c_void,
    length: u32,
    routine: *mut c_void,
    context: *mut c_void,
    write_to_device: u8,
    buffer: *mut c_void,
    buffer_length: u32,
) -> NtStatus {
    list(adapter, device, mdl, current_va, length, routine, context, write_to_device, Some((buffer, buffer_length)))
}

/// `PutScatterGatherList` (§1.7).
pub extern "win64" fn PutScatterGatherList(adapter: *mut c_void, list: *mut c_void, _write: u8) {
    let grants = kernel(|cpu| transfer::put_scatter_gather_list(cpu, va_of(cpu, adapter), va_of(cpu, list)));
    run_grants(adapter, grants);
}

/// `CalculateScatterGatherList` (§1.7).
pub extern "win64" fn CalculateScatterGatherList(
    adapter: *mut c_void,
    mdl: *mut c_void,
    current_va: *mut c_void,
    length: u32,
    size: *mut u32,
    registers: *mut u32,
) -> NtStatus {
    kernel(|cpu| {
        checked(cpu, size.cast(), 4)?;
        let mdl = (!mdl.is_null()).then(|| Mdl(va_of(cpu, mdl)));
        match transfer::calculate_scatter_gather_list(cpu, va_of(cpu, adapter), mdl, va_of(cpu, current_va), length)? {
            Err(s) => Ok(s.0 as i32),
            Ok((bytes, n)) => {
                write(cpu, size.cast(), &bytes.to_le_bytes())?;
                if !registers.is_null() {
                    write(cpu, registers.cast(), &n.to_le_bytes())?;
                }
                Ok(0)
            }
        }
    })
}

/// `DRIVER_CONTROL`.
type DriverControl = unsafe extern "win64" fn(*mut c_void, *mut c_void, *mut c_void, *mut c_void) -> u32;
/// `DRIVER_LIST_CONTROL`.
type DriverListControl = unsafe extern "win64" fn(*mut c_void, *mut c_void, *mut c_void, *mut c_void);

/// Runs the execution routines of `grants` (and of the requests they let run) at
/// DISPATCH_LEVEL, reporting each AdapterControl's IO_ALLOCATION_ACTION.
pub(crate) fn run_grants(adapter: *mut c_void, mut grants: Vec<Grant>) {
    while !grants.is_empty() {
        let g = grants.remove(0);
        let (device, routine) = match g {
            Grant::Channel { request, .. } => (request.device, request.routine),
            Grant::List { request, .. } => (request.device, request.routine),
        };
        if !ntmem_host::exception::is_image_code(routine as usize) {
            crate::io_cancel::bad_call(routine as usize);
        }
        let (irp, old) = kernel(|cpu| {
            let irp = u64::from_le_bytes(read(cpu, device.wrapping_add(OFF_CURRENT_IRP) as *const c_void)?);
            let old = cpu.irql();
            if old < Irql::DISPATCH {
                cpu.raise_irql(Irql::DISPATCH)?;
            }
            Ok((irp, old))
        });
        match g {
            Grant::Channel { request, base } => {
                // SAFETY: the driver's DRIVER_CONTROL routine (image code, checked
                // above), called as Windows calls it: (DeviceObject, Irp,
                // MapRegisterBase, Context).
                let action = preserving_capture(|| unsafe {
                    let f = std::mem::transmute::<usize, DriverControl>(routine as usize);
                    f(device as *mut c_void, irp as *mut c_void, base as *mut c_void, request.context as *mut c_void)
                });
                let more = kernel(|cpu| {
                    lower(cpu, old)?;
                    let action = AllocationAction::from_raw(action);
                    transfer::adapter_control_returned(cpu, va_of(cpu, adapter), base, action)
                });
                grants.extend(more);
            }
            Grant::List { request, list } => {
                let list = kernel(|cpu| Ok(host_ptr(cpu, Some(list))));
                // SAFETY: the driver's DRIVER_LIST_CONTROL routine (image code,
                // checked above): (DeviceObject, Irp, ScatterGather, Context).
                preserving_capture(|| unsafe {
                    let f = std::mem::transmute::<usize, DriverListControl>(routine as usize);
                    f(device as *mut c_void, irp as *mut c_void, list, request.context as *mut c_void)
                });
                kernel(|cpu| lower(cpu, old));
            }
        }
    }
}

pub(crate) fn lower(cpu: &Cpu<'_>, old: Irql) -> Result<(), BugCheck> {
    if cpu.irql() != old && old < Irql::DISPATCH {
        cpu.lower_irql(old)?;
    }
    Ok(())
}
