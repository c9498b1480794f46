//! Cancelling IRPs and cancel-safe queues, at the C boundary (learn.microsoft.com
//! "IoCancelIrp", "IoAcquireCancelSpinLock", "IoReleaseCancelSpinLock", "Cancel-Safe
//! IRP Queues", "IoCsqInitialize", "IoCsqInitializeEx", "IoCsqInsertIrp",
//! "IoCsqInsertIrpEx", "IoCsqRemoveIrp", "IoCsqRemoveNextIrp", "IO_CSQ",
//! "IO_CSQ_IRP_CONTEXT").
//!
//! - `IoCancelIrp` takes the cancel spin lock, sets `Irp->Cancel`, and exchanges
//!   `Irp->CancelRoutine` with NULL: if there was one, it stores the IRQL the lock
//!   was taken at in `Irp->CancelIrql` and calls the routine with the device of the
//!   IRP's current stack location — the routine releases the lock
//!   (`IoReleaseCancelSpinLock(Irp->CancelIrql)`) — and returns TRUE; otherwise it
//!   releases the lock and returns FALSE.
//! - Under Driver Verifier's deadlock detection the cancel spin lock is a spin lock
//!   like the driver's own (`ntmem_kernel::vf::deadlock`): `IoAcquireCancelSpinLock`
//!   and `IoReleaseCancelSpinLock` go through its hooks, and `IoCancelIrp` records the
//!   lock it takes for the cancel routine as held by the calling thread.
//! - A cancel-safe queue is the driver's (its `IO_CSQ` callbacks insert, remove,
//!   peek, lock and complete); the `IoCsq*` routines do the cancel bookkeeping
//!   around them: `IoCsqInsertIrp(Ex)` inserts under the queue's lock, marks the IRP
//!   pending, records its context in `Irp->Tail.Overlay.DriverContext[3]` and sets
//!   ntmem's cancel routine — which, if the IRP is cancelled while queued, takes it
//!   out and calls `CsqCompleteCanceledIrp`; if the IRP was cancelled before it was
//!   queued, it is taken out and completed as cancelled at once. `IoCsqRemoveIrp` and
//!   `IoCsqRemoveNextIrp` take IRPs out only if they win the race against
//!   cancellation (they clear the cancel routine), skipping IRPs being cancelled.
//!
//! IRPs are in the x64 layout (`ntmem_kernel::io::irp`): `Cancel` 0x44,
//! `CancelIrql` 0x45, `CancelRoutine` 0x68, `DriverContext[3]` 0x90,
//! `CurrentStackLocation` 0xB8; the stack location's `Control` 0x03 and
//! `DeviceObject` 0x28. Driver callbacks are called outside ntmem's routines, with the
//! driver's own import capture kept ([`preserving_capture`]).

use std::ffi::c_void;
use std::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

use ntmem_host::thunk::preserving_capture;
use ntmem_kernel::io::Irp;
use ntmem_kernel::ke::kernel_objects::KernelObject;
use ntmem_kernel::vf::{Attempt, LockKind, LockRequest, Violation};
use ntmem_kernel::{BugCheck, Cpu, Irql, Machine};

use crate::context::{self, kernel};
use crate::seh::ThreadKind;
use crate::types::NtStatus;

const OFF_CANCEL: usize = 0x44;
const OFF_CANCEL_IRQL: usize = 0x45;
const OFF_CANCEL_ROUTINE: usize = ntmem_kernel::io::irp::OFF_CANCEL_ROUTINE as usize;
const OFF_DRIVER_CONTEXT_3: usize = 0x90;
const OFF_CURRENT_STACK: usize = 0xB8;
const IRP_SIZE: u64 = 0xD0;
const STACK_LOCATION_SIZE: u64 = 0x48;
/// `STATUS_ACCESS_VIOLATION`.
const STATUS_ACCESS_VIOLATION: i32 = 0xC000_0005_u32 as i32;
/// `SL_PENDING_RETURNED` in the stack location's `Control` (`IoMarkIrpPending`).
const SL_PENDING_RETURNED: u8 = 0x01;

/// `IO_TYPE_CSQ_IRP_CONTEXT`, `IO_TYPE_CSQ`, `IO_TYPE_CSQ_EX` (wdm.h).
const IO_TYPE_CSQ_IRP_CONTEXT: u32 = 1;
const IO_TYPE_CSQ: u32 = 2;
const IO_TYPE_CSQ_EX: u32 = 3;

/// `PDRIVER_CANCEL`.
type DriverCancel = unsafe extern "win64" fn(*mut c_void, *mut c_void);

/// `IO_CSQ` (x64: 0x40 bytes). `insert` is `PIO_CSQ_INSERT_IRP` for `IO_TYPE_CSQ`,
/// `PIO_CSQ_INSERT_IRP_EX` (it returns an NTSTATUS and takes a context) for
/// `IO_TYPE_CSQ_EX`.
#[repr(C)]
#[derive(Debug)]
pub struct IoCsq {
    kind: u32,
    insert: *const c_void,
    remove: *const c_void,
    peek_next: *const c_void,
    acquire_lock: *const c_void,
    release_lock: *const c_void,
    complete_canceled: *const c_void,
    reserve: *mut c_void,
}
const _: () = assert!(std::mem::size_of::<IoCsq>() == 0x40);

/// `IO_CSQ_IRP_CONTEXT` (x64: 0x18 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct IoCsqIrpContext {
    kind: u32,
    irp: *mut c_void,
    csq: *mut IoCsq,
}
const _: () = assert!(std::mem::size_of::<IoCsqIrpContext>() == 0x18);

type InsertIrp = unsafe extern "win64" fn(*mut IoCsq, *mut c_void);
type InsertIrpEx = unsafe extern "win64" fn(*mut IoCsq, *mut c_void, *mut c_void) -> NtStatus;
type RemoveIrp = unsafe extern "win64" fn(*mut IoCsq, *mut c_void);
type PeekNextIrp = unsafe extern "win64" fn(*mut IoCsq, *mut c_void, *mut c_void) -> *mut c_void;
type AcquireLock = unsafe extern "win64" fn(*mut IoCsq, *mut u8);
type ReleaseLock = unsafe extern "win64" fn(*mut IoCsq, u8);

/// The driver routine at `p` as the function type `F` (a Microsoft-x64 function
/// pointer); a NULL one is called as Windows would call it: [`null_call`].
///
/// # Safety
/// `p` is NULL or a routine of type `F`; `F` is a function pointer type.
pub(crate) unsafe fn routine<F: Copy>(p: *const c_void) -> F {
    if p.is_null() {
        null_call()
    }
    if !callable(p as usize) {
        bad_call(p as usize)
    }
    // SAFETY: the caller's contract: `F` is a function pointer, the size of `p`.
    unsafe { std::mem::transmute_copy::<*const c_void, F>(&p) }
}

/// Whether a driver routine at `address` may be called: code of a loaded image, or
/// the range of a driver image unloaded since (a cancel or completion routine left
/// behind), called for real — the instruction fetch faults in the machine's own
/// reservation and the trap stops the machine for the unloaded driver (0xCE, 0xD4
/// at raised IRQL). Anything else would be a jump into the host.
fn callable(address: usize) -> bool {
    ntmem_host::exception::is_image_code(address)
        || kernel(|cpu| Ok(cpu.machine().images().unloaded_at(address).is_some()))
}

/// The IRP at `irp`, [`crate::context::checked`].
/// An IRP must be pointer-aligned (the cancel routine is exchanged atomically): a
/// misaligned one stops the machine as a misaligned spin lock does
/// (IRQL_NOT_LESS_OR_EQUAL 0x0A: address, DISPATCH_LEVEL, 1 write, 0; ntmem's choice).
pub(crate) fn checked_irp(cpu: &Cpu<'_>, irp: *mut c_void) -> Result<*mut u8, BugCheck> {
    let p = crate::context::checked(cpu, irp, IRP_SIZE)?;
    if !p.cast::<usize>().is_aligned() {
        return Err(cpu.machine().bugcheck(ntmem_kernel::BugCheckCode::IRQL_NOT_LESS_OR_EQUAL, [p as u64, 2, 1, 0]));
    }
    Ok(p)
}

/// The current stack location of the mapped IRP `p`, [`crate::context::checked`].
///
/// # Safety
/// `p` is a mapped IRP.
unsafe fn current_stack(cpu: &Cpu<'_>, p: *mut u8) -> Result<*mut u8, BugCheck> {
    // SAFETY: the caller's contract; the field is the IRP's own pointer.
    let stack = unsafe { p.add(OFF_CURRENT_STACK).cast::<*mut c_void>().read() };
    crate::context::checked(cpu, stack, STACK_LOCATION_SIZE)
}

/// What calling a NULL routine does: an access violation at address 0, an
/// instruction fetch (parameters 8, 0), raised from the driver's frame.
fn null_call() -> ! {
    bad_call(0)
}

/// A call of `address`, which holds no code: the access violation an instruction
/// fetch there gives (parameters 8, the address), raised from the driver's frame.
pub(crate) fn bad_call(address: usize) -> ! {
    let mut record = ntmem_host::context::ExceptionRecord::empty();
    record.code = STATUS_ACCESS_VIOLATION;
    record.number_parameters = 2;
    record.information[0] = 8;
    record.information[1] = address;
    crate::seh::raise(&record)
}

/// `Irp->CancelRoutine`, as an atomic.
///
/// # Safety
/// `irp` is a mapped IRP ([`checked_irp`]).
unsafe fn cancel_routine<'a>(irp: *mut u8) -> &'a AtomicPtr<c_void> {
    // SAFETY: the field is pointer-aligned inside a mapped IRP (caller's contract).
    unsafe { AtomicPtr::from_ptr(irp.add(OFF_CANCEL_ROUTINE).cast()) }
}

/// `IoSetCancelRoutine(Irp, routine)`: the previous routine.
///
/// # Safety
/// As [`cancel_routine`].
pub(crate) unsafe fn set_cancel_routine(irp: *mut u8, routine: *mut c_void) -> *mut c_void {
    // SAFETY: the caller's contract.
    unsafe { cancel_routine(irp) }.swap(routine, Ordering::AcqRel)
}

/// `IoAcquireCancelSpinLock`: takes the system-wide cancel spin lock, raising to
/// DISPATCH_LEVEL, and stores the previous IRQL at `irql`.
///
/// # Safety
/// `irql` is writable.
pub unsafe extern "win64" fn IoAcquireCancelSpinLock(irql: *mut u8) {
    let old = kernel(|cpu| {
        let request = cancel_lock_request(cpu);
        crate::vf::lock_acquiring(cpu, request, Attempt::Wait)?;
        let old = cpu.acquire_spin_lock(cpu.machine().io().cancel_lock())?;
        crate::vf::lock_acquired(cpu, request);
        Ok(old.0)
    });
    // SAFETY: the caller's KIRQL (`# Safety`); a bad pointer faults as on Windows.
    unsafe { irql.write_volatile(old) };
}

/// `LockQueueIoCancelLock`: the cancel spin lock's number among the kernel's numbered
/// queued spin locks (`KSPIN_LOCK_QUEUE_NUMBER` in the WDK's `wdm.h`, 7 on every
/// release).
const LOCK_QUEUE_IO_CANCEL_LOCK: u64 = 7;

/// `IoReleaseCancelSpinLock`: releases the cancel spin lock and lowers to `irql`.
/// Under Driver Verifier, a release at an IRQL other than DISPATCH_LEVEL (the driver
/// lowered the IRQL while it held the lock) is the kernel's release of a queued spin
/// lock off DISPATCH_LEVEL: 0xC4/0x36 (the IRQL, the lock's number, `irql`), as
/// Microsoft's bug check 0xC4 table gives it.
pub extern "win64" fn IoReleaseCancelSpinLock(irql: u8) {
    kernel(|cpu| {
        crate::vf::kernel_lock_released(cpu, cancel_lock_request(cpu).lock, LockKind::SpinLock)?;
        let current = cpu.irql();
        if current != Irql::DISPATCH && !cpu.machine().verifier().is_empty() {
            let number = LOCK_QUEUE_IO_CANCEL_LOCK;
            let v = Violation::QueuedSpinLockReleaseNotAtDispatch { irql: current, number, old: Irql(irql) };
            return Err(v.stop(cpu.machine()));
        }
        cpu.release_spin_lock(cpu.machine().io().cancel_lock(), Irql(irql))
    });
}

/// The cancel spin lock as deadlock detection follows it: a spin lock at the address
/// ntmem gives it ([`KernelObject::CancelSpinLock`], shown as `nt!IopCancelSpinLock`).
/// A driver that takes it while holding a lock of its own, and takes that lock while
/// holding it elsewhere (a cancel routine, which `IoCancelIrp` calls with it held),
/// closes a cycle: 0xC4/0x1001.
fn cancel_lock_request(cpu: &Cpu<'_>) -> LockRequest {
    LockRequest::exclusive(cpu.machine().kernel_object(KernelObject::CancelSpinLock), LockKind::SpinLock)
}

/// `IoCancelIrp` (see the module docs).
///
/// # Safety
/// `irp` is an IRP the caller may cancel.
pub unsafe extern "win64" fn IoCancelIrp(irp: *mut c_void) -> u8 {
    let taken = kernel(|cpu| {
        let p = checked_irp(cpu, irp)?;
        let old = cpu.acquire_spin_lock(cpu.machine().io().cancel_lock())?;
        let request = cancel_lock_request(cpu);
        crate::vf::kernel_lock_acquired(cpu, request);
        // SAFETY: `p` is a mapped IRP (checked above); the fields are bytes and a
        // pointer inside it.
        let routine = unsafe {
            AtomicU8::from_ptr(p.add(OFF_CANCEL)).store(1, Ordering::Release);
            set_cancel_routine(p, std::ptr::null_mut())
        };
        if routine.is_null() {
            cpu.machine().vf().lock_dropped(crate::ps::current_thread(), request.lock);
            cpu.release_spin_lock(cpu.machine().io().cancel_lock(), old)?;
            return Ok(None);
        }
        // SAFETY: as above; the stack location is checked mapped.
        let device = unsafe {
            p.add(OFF_CANCEL_IRQL).write(old.0);
            current_stack(cpu, p)?.add(0x28).cast::<*mut c_void>().read_unaligned()
        };
        Ok(Some((routine, device)))
    });
    let Some((cancel, device)) = taken else { return 0 };
    if cancel != CSQ_CANCEL as *mut c_void && !callable(cancel as usize) {
        // Not code (a stale or garbage CancelRoutine): executing it is an access
        // violation at that address, as on Windows — never a jump into the host.
        bad_call(cancel as usize)
    }
    // SAFETY: the routine the driver (or ntmem's queue) set with IoSetCancelRoutine, a
    // PDRIVER_CANCEL, called as Windows calls it: the lock held, released by it.
    let cancel: DriverCancel = unsafe { std::mem::transmute::<*mut c_void, DriverCancel>(cancel) };
    // SAFETY: as above: the device and IRP are those Windows passes.
    preserving_capture(|| unsafe { cancel(device, irp) });
    1
}

/// `IoCsqInitialize`: the queue with its callbacks; STATUS_SUCCESS.
///
/// # Safety
/// `csq` points to the driver's `IO_CSQ`.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "win64" fn IoCsqInitialize(
    csq: *mut IoCsq,
    insert: *const c_void,
    remove: *const c_void,
    peek_next: *const c_void,
    acquire_lock: *const c_void,
    release_lock: *const c_void,
    complete_canceled: *const c_void,
) -> NtStatus {
    // SAFETY: the caller's contract.
    unsafe { initialize(csq, IO_TYPE_CSQ, [insert, remove, peek_next, acquire_lock, release_lock, complete_canceled]) }
}

/// `IoCsqInitializeEx`: as `IoCsqInitialize`, with an insert routine that returns an
/// NTSTATUS (`IoCsqInsertIrpEx` passes it the status to return).
///
/// # Safety
/// As `IoCsqInitialize`.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "win64" fn IoCsqInitializeEx(
    csq: *mut IoCsq,
    insert: *const c_void,
    remove: *const c_void,
    peek_next: *const c_void,
    acquire_lock: *const c_void,
    release_lock: *const c_void,
    complete_canceled: *const c_void,
) -> NtStatus {
    // SAFETY: the caller's contract.
    unsafe {
        initialize(csq, IO_TYPE_CSQ_EX, [insert, remove, peek_next, acquire_lock, release_lock, complete_canceled])
    }
}

/// Fills `csq`.
///
/// # Safety
/// `csq` points to a writable `IO_CSQ`.
unsafe fn initialize(csq: *mut IoCsq, kind: u32, routines: [*const c_void; 6]) -> NtStatus {
    let [insert, remove, peek_next, acquire_lock, release_lock, complete_canceled] = routines;
    // SAFETY: `csq` is the caller's writable IO_CSQ; the routines are stored as given
    // and called with their types by [`Queue`].
    unsafe {
        csq.write_unaligned(IoCsq {
            kind,
            insert,
            remove,
            peek_next,
            acquire_lock,
            release_lock,
            complete_canceled,
            reserve: std::ptr::null_mut(),
        });
    }
    0
}

/// The queue's own callbacks, called as the driver defined them.
struct Queue(*mut IoCsq);

impl Queue {
    fn lock(&self) -> u8 {
        let mut irql = 0u8;
        // SAFETY: the driver's IO_CSQ and its CsqAcquireLock ([`routine`]).
        preserving_capture(|| unsafe {
            routine::<AcquireLock>(std::ptr::addr_of!((*self.0).acquire_lock).read_unaligned())(self.0, &mut irql)
        });
        irql
    }

    fn unlock(&self, irql: u8) {
        // SAFETY: as `lock`, CsqReleaseLock.
        preserving_capture(|| unsafe {
            routine::<ReleaseLock>(std::ptr::addr_of!((*self.0).release_lock).read_unaligned())(self.0, irql)
        });
    }

    fn remove(&self, irp: *mut c_void) {
        // SAFETY: as `lock`, CsqRemoveIrp.
        preserving_capture(|| unsafe {
            routine::<RemoveIrp>(std::ptr::addr_of!((*self.0).remove).read_unaligned())(self.0, irp)
        });
    }

    fn peek(&self, irp: *mut c_void, context: *mut c_void) -> *mut c_void {
        // SAFETY: as `lock`, CsqPeekNextIrp.
        preserving_capture(|| unsafe {
            routine::<PeekNextIrp>(std::ptr::addr_of!((*self.0).peek_next).read_unaligned())(self.0, irp, context)
        })
    }

    fn complete_canceled(&self, irp: *mut c_void) {
        // SAFETY: as `lock`, CsqCompleteCanceledIrp.
        preserving_capture(|| unsafe {
            routine::<RemoveIrp>(std::ptr::addr_of!((*self.0).complete_canceled).read_unaligned())(self.0, irp)
        });
    }

    /// Inserts `irp`: the status the insert gave (always success for a plain queue).
    fn insert(&self, irp: *mut c_void, insert_context: *mut c_void) -> NtStatus {
        // SAFETY: the driver's IO_CSQ; `insert` has the type its `Type` says.
        preserving_capture(|| unsafe {
            let insert = std::ptr::addr_of!((*self.0).insert).read_unaligned();
            if std::ptr::addr_of!((*self.0).kind).read_unaligned() == IO_TYPE_CSQ_EX {
                routine::<InsertIrpEx>(insert)(self.0, irp, insert_context)
            } else {
                routine::<InsertIrp>(insert)(self.0, irp);
                0
            }
        })
    }
}

/// The IRP's `DriverContext[3]`.
///
/// # Safety
/// `irp` is mapped.
unsafe fn queue_context<'a>(irp: *mut c_void) -> &'a AtomicPtr<c_void> {
    // SAFETY: pointer-aligned field of a mapped IRP.
    unsafe { AtomicPtr::from_ptr(irp.cast::<u8>().add(OFF_DRIVER_CONTEXT_3).cast()) }
}

/// Clears the queue context of an IRP leaving the queue (and the context's IRP).
///
/// # Safety
/// `irp` is mapped; its DriverContext[3] is the queue or an IO_CSQ_IRP_CONTEXT.
unsafe fn forget(irp: *mut c_void) {
    // SAFETY: the caller's contract.
    unsafe {
        let context = queue_context(irp).swap(std::ptr::null_mut(), Ordering::AcqRel);
        if !context.is_null() && context.cast::<u32>().read_unaligned() == IO_TYPE_CSQ_IRP_CONTEXT {
            std::ptr::addr_of_mut!((*context.cast::<IoCsqIrpContext>()).irp).write_unaligned(std::ptr::null_mut());
        }
    }
}

/// [`csq_cancel`] as one function pointer (a function item may coerce to different
/// addresses in different places; the cancel routine is compared by address).
static CSQ_CANCEL: DriverCancel = csq_cancel;

/// The cancel routine `IoCsqInsertIrp(Ex)` gives queued IRPs (see the module docs).
unsafe extern "win64" fn csq_cancel(_device: *mut c_void, irp: *mut c_void) {
    // SAFETY: called by IoCancelIrp for an IRP it checked; CancelIrql was stored there.
    let irql = unsafe { irp.cast::<u8>().add(OFF_CANCEL_IRQL).read() };
    IoReleaseCancelSpinLock(irql);
    // SAFETY: a queued IRP's DriverContext[3] holds its queue or context.
    let context = unsafe { queue_context(irp) }.load(Ordering::Acquire);
    // SAFETY: as above: the queue's IO_CSQ, directly or through the context.
    let csq = unsafe {
        if context.cast::<u32>().read_unaligned() == IO_TYPE_CSQ_IRP_CONTEXT {
            std::ptr::addr_of!((*context.cast::<IoCsqIrpContext>()).csq).read_unaligned()
        } else {
            context.cast::<IoCsq>()
        }
    };
    let queue = Queue(csq);
    let irql = queue.lock();
    queue.remove(irp);
    // SAFETY: as above.
    unsafe { forget(irp) };
    queue.unlock(irql);
    queue.complete_canceled(irp);
}

/// `IoCsqInsertIrp`: `IoCsqInsertIrpEx` with no insert context, its status dropped.
///
/// # Safety
/// As `IoCsqInsertIrpEx`.
pub unsafe extern "win64" fn IoCsqInsertIrp(csq: *mut IoCsq, irp: *mut c_void, context: *mut IoCsqIrpContext) {
    // SAFETY: the caller's contract.
    unsafe { IoCsqInsertIrpEx(csq, irp, context, std::ptr::null_mut()) };
}

/// `IoCsqInsertIrpEx` (see the module docs): the insert routine's status.
///
/// # Safety
/// `csq` was initialized by `IoCsqInitialize(Ex)`; `irp` is an IRP the driver owns;
/// `context` is NULL or the driver's `IO_CSQ_IRP_CONTEXT`.
pub unsafe extern "win64" fn IoCsqInsertIrpEx(
    csq: *mut IoCsq,
    irp: *mut c_void,
    context: *mut IoCsqIrpContext,
    insert_context: *mut c_void,
) -> NtStatus {
    let p = kernel(|cpu| checked_irp(cpu, irp));
    let queue = Queue(csq);
    let irql = queue.lock();
    let status = queue.insert(irp, insert_context);
    if status < 0 {
        queue.unlock(irql);
        return status;
    }
    // SAFETY: `p` is the mapped IRP (checked); `context` is the driver's (`# Safety`).
    unsafe {
        let owner: *mut c_void = if context.is_null() {
            csq.cast()
        } else {
            context.write_unaligned(IoCsqIrpContext { kind: IO_TYPE_CSQ_IRP_CONTEXT, irp, csq });
            context.cast()
        };
        queue_context(irp).store(owner, Ordering::Release);
        let control = kernel(|cpu| current_stack(cpu, p)).add(3);
        control.write(control.read() | SL_PENDING_RETURNED);
        set_cancel_routine(p, CSQ_CANCEL as *mut c_void);
        if AtomicU8::from_ptr(p.add(OFF_CANCEL)).load(Ordering::Acquire) != 0
            && !set_cancel_routine(p, std::ptr::null_mut()).is_null()
        {
            // Cancelled before it was queued, and the cancel routine was not called:
            // out again, completed as cancelled.
            queue.remove(irp);
            forget(irp);
            queue.unlock(irql);
            queue.complete_canceled(irp);
            return status;
        }
    }
    queue.unlock(irql);
    status
}

/// `IoCsqRemoveIrp`: the IRP `context` names, taken out of the queue — NULL if it is
/// gone or being cancelled.
///
/// # Safety
/// As `IoCsqInsertIrpEx`; `context` is the one the IRP was inserted with.
pub unsafe extern "win64" fn IoCsqRemoveIrp(csq: *mut IoCsq, context: *mut IoCsqIrpContext) -> *mut c_void {
    let queue = Queue(csq);
    let irql = queue.lock();
    // SAFETY: the driver's context (`# Safety`).
    let irp = unsafe { std::ptr::addr_of!((*context).irp).read_unaligned() };
    let mut taken = std::ptr::null_mut();
    if !irp.is_null() {
        let p = kernel(|cpu| checked_irp(cpu, irp));
        // SAFETY: `p` is mapped (checked).
        if !unsafe { set_cancel_routine(p, std::ptr::null_mut()) }.is_null() {
            queue.remove(irp);
            // SAFETY: as above.
            unsafe { forget(irp) };
            taken = irp;
        }
    }
    queue.unlock(irql);
    taken
}

/// `IoCsqRemoveNextIrp`: the next IRP `CsqPeekNextIrp` gives for `peek_context` that
/// is not being cancelled, taken out of the queue (NULL: none).
///
/// # Safety
/// As `IoCsqInsertIrpEx`.
pub unsafe extern "win64" fn IoCsqRemoveNextIrp(csq: *mut IoCsq, peek_context: *mut c_void) -> *mut c_void {
    let queue = Queue(csq);
    let irql = queue.lock();
    let mut irp = queue.peek(std::ptr::null_mut(), peek_context);
    while !irp.is_null() {
        let p = kernel(|cpu| checked_irp(cpu, irp));
        // SAFETY: `p` is mapped (checked).
        if unsafe { set_cancel_routine(p, std::ptr::null_mut()) }.is_null() {
            irp = queue.peek(irp, peek_context);
            continue;
        }
        queue.remove(irp);
        // SAFETY: as above.
        unsafe { forget(irp) };
        break;
    }
    queue.unlock(irql);
    irp
}

/// Cancels `irp` as `CancelIo` does for its caller: `IoCancelIrp` on processor
/// `cpu`, from an arbitrary thread. Returns what `IoCancelIrp` returned.
///
/// # Errors
/// The bugcheck that stopped the machine.
pub fn cancel(machine: &Machine, cpu: u32, irp: Irp) -> Result<bool, BugCheck> {
    context::call_driver(machine, cpu, ThreadKind::Arbitrary, |c| {
        let p = crate::context::host_ptr(c, Some(irp.0));
        // SAFETY: an IRP the I/O manager sent and is still outstanding.
        Ok(context::enter(c, "IoCancelIrp", || unsafe { IoCancelIrp(p) }) != 0)
    })
}
