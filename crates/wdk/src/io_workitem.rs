//! Work items (learn.microsoft.com "IoAllocateWorkItem", "IoQueueWorkItem",
//! "IoFreeWorkItem", "ExQueueWorkItem", "WORK_QUEUE_ITEM", "System Worker Threads",
//! bug checks 0xE1 "WORKER_THREAD_RETURNED_AT_BAD_IRQL" and 0x39
//! "SYSTEM_EXIT_OWNED_MUTEX").
//!
//! An `IO_WORKITEM` is opaque to drivers: ntmem allocates 0x58 bytes of nonpaged pool
//! under the tag `IoWk` for it, so one never freed is a leak the unload report shows.
//! A `WORK_QUEUE_ITEM` (0x20: `List` 0x00, `WorkerRoutine` 0x10, `Parameter` 0x18) is
//! the driver's; `ExInitializeWorkItem` is the WDK's macro.
//!
//! A queued item runs in a system worker thread at PASSIVE_LEVEL, started at the next
//! switch point ([`crate::sched`]: a settle point, or a thread blocking) in a free
//! worker thread, and may block there like any thread ([`crate::ps`]); the queue type
//! (critical, delayed, hypercritical) does not change the order, which is the order of
//! queueing. The routine must return at PASSIVE_LEVEL
//! (else 0xE1: routine, IRQL, parameter, item) owning no mutex (else 0x39: routine,
//! parameter, item, 0). Queueing an item that is queued already changes nothing.
//! All four routines are callable at IRQL <= DISPATCH_LEVEL.
//!
//! **Where it differs.** Work left queued when the driver unloads never runs (the
//! item is reported as a leak if not freed); freeing a queued `IO_WORKITEM` is not
//! detected (ntmem's worker never touches the item's memory).

use std::ffi::c_void;

use ntmem_kernel::ex::pool::{self, PoolTag, PoolType};
use ntmem_kernel::ke::workers::{Work, WorkKind};

use crate::context::{checked, host_ptr, kernel, va_of};

/// The pool tag of `IO_WORKITEM`s.
pub const WORK_ITEM_TAG: PoolTag = PoolTag::new(*b"IoWk");
/// The size ntmem gives an `IO_WORKITEM`.
const IO_WORKITEM_SIZE: u64 = 0x58;
/// `sizeof(WORK_QUEUE_ITEM)` on x64.
const WORK_QUEUE_ITEM_SIZE: u64 = 0x20;

/// `IoAllocateWorkItem(DeviceObject)`: a work item for the device, or NULL when the
/// pool is out of memory.
///
/// # Safety
/// `device` is a device object of the caller's driver.
pub unsafe extern "win64" fn IoAllocateWorkItem(device: *mut c_void) -> *mut c_void {
    kernel(|cpu| {
        // Driver Verifier fails (low resources simulation) and tracks it as the
        // driver's (research note §3.2: un-freed work items are 0xC4/0x62 too).
        let ask =
            crate::vf::Ask::object("IoAllocateWorkItem", WORK_ITEM_TAG, ntmem_kernel::ex::pool::PoolKind::Nonpaged);
        let allocate = || pool::allocate(cpu, PoolType::NonPagedPool, IO_WORKITEM_SIZE, WORK_ITEM_TAG);
        let Some(block) = crate::vf::allocation(cpu, ask, || None, allocate, |b| *b)? else {
            return Ok(std::ptr::null_mut());
        };
        let p = host_ptr(cpu, Some(block));
        // SAFETY: the block just allocated, IO_WORKITEM_SIZE bytes: zeroed, then the
        // device object at 0x28 (as Windows keeps its IoObject).
        unsafe {
            std::ptr::write_bytes(p.cast::<u8>(), 0, IO_WORKITEM_SIZE as usize);
            p.cast::<u8>().add(0x28).cast::<u64>().write_unaligned(device as u64);
        }
        Ok(p)
    })
}

/// `IoQueueWorkItem(IoWorkItem, WorkerRoutine, QueueType, Context)`: queues
/// `WorkerRoutine(DeviceObject, Context)` (see the module docs).
///
/// # Safety
/// `item` came from `IoAllocateWorkItem`; `routine` is the driver's
/// PIO_WORKITEM_ROUTINE.
pub unsafe extern "win64" fn IoQueueWorkItem(
    item: *mut c_void,
    routine: *mut c_void,
    _queue: u32,
    context: *mut c_void,
) {
    kernel(|cpu| {
        let p = checked(cpu, item, IO_WORKITEM_SIZE)?;
        // SAFETY: checked mapped above: the device object IoAllocateWorkItem stored.
        let device = unsafe { p.add(0x28).cast::<u64>().read_unaligned() };
        let work = Work {
            kind: WorkKind::IoWorkItem,
            routine: routine as u64,
            argument1: device,
            argument2: context as u64,
            item: item as u64,
        };
        cpu.machine().workers().queue(work);
        Ok(())
    });
}

/// `IoFreeWorkItem(IoWorkItem)`: frees it (pool rules: a second free is the pool's
/// bugcheck).
///
/// # Safety
/// `item` came from `IoAllocateWorkItem`.
pub unsafe extern "win64" fn IoFreeWorkItem(item: *mut c_void) {
    kernel(|cpu| pool::free(cpu, va_of(cpu, item), Some(WORK_ITEM_TAG)));
}

/// `ExQueueWorkItem(WorkItem, QueueType)`: queues `WorkerRoutine(Parameter)` from the
/// driver's `WORK_QUEUE_ITEM` (read now).
///
/// # Safety
/// `item` is an initialized `WORK_QUEUE_ITEM` in nonpaged memory.
pub unsafe extern "win64" fn ExQueueWorkItem(item: *mut c_void, _queue: u32) {
    kernel(|cpu| {
        let p = checked(cpu, item, WORK_QUEUE_ITEM_SIZE)?;
        // SAFETY: checked mapped above: WorkerRoutine and Parameter.
        let (routine, parameter) =
            unsafe { (p.add(0x10).cast::<u64>().read_unaligned(), p.add(0x18).cast::<u64>().read_unaligned()) };
        let work = Work { kind: WorkKind::ExWorkItem, routine, argument1: parameter, argument2: 0, item: item as u64 };
        cpu.machine().workers().queue(work);
        Ok(())
    });
}
