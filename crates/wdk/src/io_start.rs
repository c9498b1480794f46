//! Device queues and StartIo at the C boundary (learn.microsoft.com
//! "KeInitializeDeviceQueue", "KeInsertDeviceQueue", "KeInsertByKeyDeviceQueue",
//! "KeRemoveDeviceQueue", "KeRemoveByKeyDeviceQueue", "KeRemoveEntryDeviceQueue",
//! "IoStartPacket", "IoStartNextPacket", "IoStartNextPacketByKey", "Writing a StartIo
//! Routine"; kernel side: [`ntmem_kernel::ke::device_queue`]).
//!
//! `IoStartPacket` raises to DISPATCH_LEVEL; with a cancel routine it takes the cancel
//! spin lock and sets `Irp->CancelRoutine`; it inserts the IRP's
//! `Tail.Overlay.DeviceQueueEntry` into `DeviceObject->DeviceQueue` (by `*Key` if
//! given). An idle device gets the IRP at once: `DeviceObject->CurrentIrp` = the IRP,
//! the cancel lock released, the driver's `DriverStartIo` called. A busy one keeps it
//! queued — unless it was cancelled meanwhile, when its cancel routine is called
//! (holding the cancel lock, which it releases) as `IoCancelIrp` would. The IRQL is
//! then lowered back. `IoStartNextPacket(ByKey)` clears `CurrentIrp`, takes the next
//! IRP off the queue (the cancel lock held around it if `Cancelable`) and calls
//! `DriverStartIo` with it, or leaves the device idle.
//!
//! `DEVICE_OBJECT` (x64): `CurrentIrp` 0x20, `DeviceQueue` 0xA0; `IRP`:
//! `Tail.Overlay.DeviceQueueEntry` 0x78, `Cancel` 0x44, `CancelIrql` 0x45.

use std::ffi::c_void;

use ntmem_host::thunk::preserving_capture;
use ntmem_kernel::io::device::DEVICE_OBJECT_SIZE;
use ntmem_kernel::ke::device_queue::{DeviceQueue, DeviceQueueEntry, KDEVICE_QUEUE_ENTRY_SIZE, KDEVICE_QUEUE_SIZE};
use ntmem_kernel::vf::Violation;
use ntmem_kernel::{BugCheck, Cpu, Irql};
use ntmem_machine::Va;

use crate::context::{checked, kernel, va_of};
use crate::io_cancel::{checked_irp, routine, set_cancel_routine, IoAcquireCancelSpinLock, IoReleaseCancelSpinLock};
use crate::types::DriverObject;

const OFF_CURRENT_IRP: usize = 0x20;
const OFF_DEVICE_QUEUE: u64 = 0xA0;
const OFF_DEVICE_QUEUE_ENTRY: u64 = 0x78;
const OFF_DRIVER: usize = 0x08;
const OFF_CANCEL: usize = 0x44;
const OFF_CANCEL_IRQL: usize = 0x45;

/// `PDRIVER_STARTIO`, and `PDRIVER_CANCEL` (the same shape).
type StartIo = unsafe extern "win64" fn(*mut c_void, *mut c_void);

fn queue(cpu: &Cpu<'_>, p: *mut c_void) -> Result<DeviceQueue, BugCheck> {
    checked(cpu, p, KDEVICE_QUEUE_SIZE)?;
    Ok(DeviceQueue(va_of(cpu, p)))
}

/// `KDEVICE_QUEUE.Lock`.
const OFF_QUEUE_LOCK: u64 = 0x18;

/// The queue of a routine Microsoft documents for DISPATCH_LEVEL only (the inserts and
/// the removes but `KeRemoveEntryDeviceQueue`, which raises itself): the kernel takes
/// and releases the queue's spin lock without changing the IRQL, so under Driver
/// Verifier a call at another IRQL is the kernel releasing a spin lock off
/// DISPATCH_LEVEL, 0xC4/0x35 (the IRQL, the address of the queue's `Lock`, the IRQL
/// it leaves — the same). Microsoft's table names no routine for 0x35; this is
/// ntmem's reading of it. Without Verifier nothing is checked.
fn dispatch_queue(cpu: &Cpu<'_>, p: *mut c_void) -> Result<DeviceQueue, BugCheck> {
    let q = queue(cpu, p)?;
    let irql = cpu.irql();
    if irql != Irql::DISPATCH && !cpu.machine().verifier().is_empty() {
        let lock = p as u64 + OFF_QUEUE_LOCK;
        return Err(Violation::KernelSpinLockReleaseNotAtDispatch { irql, lock, old: irql }.stop(cpu.machine()));
    }
    Ok(q)
}

fn entry(cpu: &Cpu<'_>, p: *mut c_void) -> Result<DeviceQueueEntry, BugCheck> {
    checked(cpu, p, KDEVICE_QUEUE_ENTRY_SIZE)?;
    Ok(DeviceQueueEntry(va_of(cpu, p)))
}

/// `KeInitializeDeviceQueue`.
///
/// # Safety
/// `q` is the caller's `KDEVICE_QUEUE` (checked as memory).
pub unsafe extern "win64" fn KeInitializeDeviceQueue(q: *mut c_void) {
    kernel(|cpu| queue(cpu, q)?.initialize(cpu));
}

/// `KeInsertDeviceQueue`: TRUE if queued, FALSE if the queue was idle (now busy).
///
/// # Safety
/// `q` and `e` are the caller's (checked as memory).
pub unsafe extern "win64" fn KeInsertDeviceQueue(q: *mut c_void, e: *mut c_void) -> u8 {
    kernel(|cpu| Ok(u8::from(dispatch_queue(cpu, q)?.insert(cpu, entry(cpu, e)?, None)?)))
}

/// `KeInsertByKeyDeviceQueue`: as `KeInsertDeviceQueue`, after entries with keys not
/// greater than `SortKey`.
///
/// # Safety
/// As `KeInsertDeviceQueue`.
pub unsafe extern "win64" fn KeInsertByKeyDeviceQueue(q: *mut c_void, e: *mut c_void, key: u32) -> u8 {
    kernel(|cpu| Ok(u8::from(dispatch_queue(cpu, q)?.insert(cpu, entry(cpu, e)?, Some(key))?)))
}

fn removed(cpu: &Cpu<'_>, e: Option<DeviceQueueEntry>) -> *mut c_void {
    crate::context::host_ptr(cpu, e.map(|e| e.0))
}

/// `KeRemoveDeviceQueue`: the first entry, or NULL (the queue is then idle).
///
/// # Safety
/// `q` is the caller's (checked as memory).
pub unsafe extern "win64" fn KeRemoveDeviceQueue(q: *mut c_void) -> *mut c_void {
    kernel(|cpu| Ok(removed(cpu, dispatch_queue(cpu, q)?.remove(cpu, None)?)))
}

/// `KeRemoveByKeyDeviceQueue`: the first entry with a key at least `SortKey` (else the
/// first), or NULL.
///
/// # Safety
/// As `KeRemoveDeviceQueue`.
pub unsafe extern "win64" fn KeRemoveByKeyDeviceQueue(q: *mut c_void, key: u32) -> *mut c_void {
    kernel(|cpu| Ok(removed(cpu, dispatch_queue(cpu, q)?.remove(cpu, Some(key))?)))
}

/// `KeRemoveEntryDeviceQueue`: TRUE if `Entry` was queued and is now out.
///
/// # Safety
/// As `KeInsertDeviceQueue`.
pub unsafe extern "win64" fn KeRemoveEntryDeviceQueue(q: *mut c_void, e: *mut c_void) -> u8 {
    kernel(|cpu| Ok(u8::from(queue(cpu, q)?.remove_entry(cpu, entry(cpu, e)?)?)))
}

/// The device's driver's `DriverStartIo` (NULL: none; called, an access violation).
fn start_io_of(cpu: &Cpu<'_>, device: *mut u8) -> Result<*const c_void, BugCheck> {
    // SAFETY: `device` is a mapped DEVICE_OBJECT (checked by the caller).
    let object = unsafe { device.add(OFF_DRIVER).cast::<u64>().read_unaligned() };
    crate::io_stack::driver_start_io(cpu, object)
}

fn set_current_irp(device: *mut u8, irp: *mut c_void) {
    // SAFETY: a mapped DEVICE_OBJECT (checked by the callers); the field is a pointer.
    unsafe { device.add(OFF_CURRENT_IRP).cast::<*mut c_void>().write_unaligned(irp) };
}

fn call_start_io(start_io: *const c_void, device: *mut c_void, irp: *mut c_void) {
    // SAFETY: the driver's PDRIVER_STARTIO ([`routine`] refuses what is not image code).
    let f: StartIo = unsafe { routine(start_io) };
    // SAFETY: called as Windows calls it, with the device and its current IRP.
    preserving_capture(|| unsafe { f(device, irp) });
}

/// `IoStartPacket` (see the module docs).
///
/// # Safety
/// `device` and `irp` are a device object and an IRP (checked as memory); `key` is
/// NULL or a ULONG; `cancel` NULL or a `PDRIVER_CANCEL`.
pub unsafe extern "win64" fn IoStartPacket(
    device: *mut c_void,
    irp: *mut c_void,
    key: *const u32,
    cancel: *mut c_void,
) {
    let (d, p, old, key) = kernel(|cpu| {
        let d = checked(cpu, device, DEVICE_OBJECT_SIZE)?;
        let p = checked_irp(cpu, irp)?;
        let key = if key.is_null() {
            None
        } else {
            let k = checked(cpu, key.cast_mut().cast(), 4)?;
            // SAFETY: 4 mapped bytes (checked).
            Some(unsafe { k.cast::<u32>().read_unaligned() })
        };
        let old = cpu.raise_irql(Irql::DISPATCH)?;
        Ok((d, p, old, key))
    });
    let mut cancel_irql = 0u8;
    if !cancel.is_null() {
        // SAFETY: a local KIRQL; `p` is a mapped IRP (checked).
        unsafe {
            IoAcquireCancelSpinLock(&mut cancel_irql);
            set_cancel_routine(p, cancel);
        }
    }
    let (queued, start_io) = kernel(|cpu| {
        let q = DeviceQueue(Va::new(va_of(cpu, device).get() + OFF_DEVICE_QUEUE));
        let e = DeviceQueueEntry(Va::new(va_of(cpu, irp).get() + OFF_DEVICE_QUEUE_ENTRY));
        let queued = q.insert(cpu, e, key)?;
        Ok((queued, if queued { std::ptr::null() } else { start_io_of(cpu, d)? }))
    });
    if !queued {
        set_current_irp(d, irp);
        if !cancel.is_null() {
            IoReleaseCancelSpinLock(cancel_irql);
        }
        call_start_io(start_io, device, irp);
    } else if !cancel.is_null() {
        // SAFETY: `p` is a mapped IRP (checked).
        let cancelled = unsafe { p.add(OFF_CANCEL).read() != 0 };
        // SAFETY: as above.
        if cancelled && !unsafe { set_cancel_routine(p, std::ptr::null_mut()) }.is_null() {
            // SAFETY: as above; the routine the caller gave, called holding the cancel
            // lock, which it releases with Irp->CancelIrql.
            unsafe { p.add(OFF_CANCEL_IRQL).write(cancel_irql) };
            // SAFETY: the caller's PDRIVER_CANCEL ([`routine`] refuses what is not code).
            let f: StartIo = unsafe { routine(cancel) };
            // SAFETY: as Windows calls a cancel routine.
            preserving_capture(|| unsafe { f(device, irp) });
        } else {
            IoReleaseCancelSpinLock(cancel_irql);
        }
    }
    kernel(|cpu| cpu.lower_irql(old));
}

/// `IoStartNextPacket` / `IoStartNextPacketByKey` (see the module docs).
fn start_next(device: *mut c_void, cancelable: bool, key: Option<u32>) {
    let d = kernel(|cpu| checked(cpu, device, DEVICE_OBJECT_SIZE));
    let mut cancel_irql = 0u8;
    if cancelable {
        // SAFETY: a local KIRQL.
        unsafe { IoAcquireCancelSpinLock(&mut cancel_irql) };
    }
    set_current_irp(d, std::ptr::null_mut());
    let next = kernel(|cpu| {
        let q = DeviceQueue(Va::new(va_of(cpu, device).get() + OFF_DEVICE_QUEUE));
        let Some(e) = q.remove(cpu, key)? else { return Ok(None) };
        let irp = crate::context::host_ptr(cpu, Some(Va::new(e.0.get() - OFF_DEVICE_QUEUE_ENTRY)));
        Ok(Some((irp, start_io_of(cpu, d)?)))
    });
    if let Some((irp, _)) = next {
        set_current_irp(d, irp);
    }
    if cancelable {
        IoReleaseCancelSpinLock(cancel_irql);
    }
    if let Some((irp, start_io)) = next {
        call_start_io(start_io, device, irp);
    }
}

/// `IoStartNextPacket`.
///
/// # Safety
/// `device` is a device object (checked as memory).
pub unsafe extern "win64" fn IoStartNextPacket(device: *mut c_void, cancelable: u8) {
    start_next(device, cancelable != 0, None);
}

/// `IoStartNextPacketByKey`.
///
/// # Safety
/// As `IoStartNextPacket`.
pub unsafe extern "win64" fn IoStartNextPacketByKey(device: *mut c_void, cancelable: u8, key: u32) {
    start_next(device, cancelable != 0, Some(key));
}

const _: () = assert!(std::mem::offset_of!(DriverObject, driver_start_io) == 0x60);
