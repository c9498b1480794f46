//! Event objects a user process creates — what `CreateEvent` gets from `NtCreateEvent`
//! (learn.microsoft.com "CreateEventW", "ObReferenceObjectByHandle", "KeSetEvent";
//! Microsoft's general/event sample hands such a handle to its driver, which
//! references it with `ObReferenceObjectByHandle(…, *ExEventObjectType, UserMode, …)`
//! and signals it from a DPC).
//!
//! The object is a `KEVENT` (a `DISPATCHER_HEADER` of type 0, notification, or 1,
//! synchronization) in a nonpaged-pool block tagged `Even`, as the object manager
//! allocates event objects; it is counted by the object manager
//! ([`ntmem_kernel::ob`]) and named by a handle in the creating process's table with
//! `EVENT_ALL_ACCESS`. The last reference — the handle closed, the process ended, the
//! driver's `ObDereferenceObject` — frees it.
//!
//! **Where it differs.** The object header Windows puts before the body is not
//! modelled: the block holds the `KEVENT` alone.

use std::ffi::c_void;

use ntmem_kernel::ex::pool::{self, NtStatus, PoolTag, PoolType};
use ntmem_kernel::ob::ObjectType;
use ntmem_kernel::{BugCheck, Cpu};
use ntmem_machine::Va;

use crate::context::{host_ptr, va_of};
use crate::ke_dispatcher::{Object, HEADER_SIZE, NOTIFICATION_EVENT, SYNCHRONIZATION_EVENT};

/// The pool tag of event objects.
pub const EVENT_TAG: PoolTag = PoolTag::new(*b"Even");
/// `EVENT_ALL_ACCESS`: what `CreateEvent` grants its handle.
pub const EVENT_ALL_ACCESS: u32 = 0x001F_0003;

/// A user process's event: its handle there and the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserEvent {
    /// The handle, in the table of the process that created it.
    pub handle: u64,
    /// The event object (the `PKEVENT` a driver gets by referencing the handle).
    pub object: Va,
}

/// `CreateEvent(NULL, manual_reset, signalled, NULL)` in the process with id
/// `process`. Inner `Err`: STATUS_INSUFFICIENT_RESOURCES when the pool is out.
///
/// # Errors
/// A bugcheck from the pool.
pub fn create(
    cpu: &Cpu<'_>,
    process: u64,
    manual_reset: bool,
    signalled: bool,
) -> Result<Result<UserEvent, NtStatus>, BugCheck> {
    let Some(object) = pool::allocate(cpu, PoolType::NonPagedPool, HEADER_SIZE, EVENT_TAG)? else {
        return Ok(Err(NtStatus::INSUFFICIENT_RESOURCES));
    };
    let kind = if manual_reset { NOTIFICATION_EVENT } else { SYNCHRONIZATION_EVENT };
    event(cpu, object)?.initialize(kind, HEADER_SIZE, i32::from(signalled));
    let objects = cpu.machine().objects();
    let address = host_ptr(cpu, Some(object)) as u64;
    objects.insert(address, ObjectType::Event, 0);
    let handle = objects.open_in(process, address, ObjectType::Event, EVENT_ALL_ACCESS);
    Ok(Ok(UserEvent { handle, object }))
}

fn event(cpu: &Cpu<'_>, object: Va) -> Result<Object, BugCheck> {
    Object::of(cpu, host_ptr(cpu, Some(object)), HEADER_SIZE)
}

/// `WaitForSingleObject(event, 0)` by the process's thread: whether the event is
/// signalled, and if so the change a satisfied wait makes (an auto-reset event is
/// reset), by the dispatcher's own rules ([`crate::ke_wait::signalled`],
/// [`crate::ke_wait::take`]).
///
/// # Errors
/// A bugcheck if the object's memory is gone.
pub fn try_wait(cpu: &Cpu<'_>, object: Va) -> Result<bool, BugCheck> {
    let o = event(cpu, object)?;
    if !crate::ke_wait::signalled(&o, 0) {
        return Ok(false);
    }
    // An event's satisfied wait cannot fail (only a mutex's recursion limit does).
    let _ = crate::ke_wait::take(&o, 0);
    Ok(true)
}

/// `ResetEvent`: not signalled.
///
/// # Errors
/// As [`try_wait`].
pub fn reset(cpu: &Cpu<'_>, object: Va) -> Result<(), BugCheck> {
    event(cpu, object)?.set_signal_state(0);
    Ok(())
}

/// Frees an event object whose last reference went (`object` the host address drivers
/// hold).
///
/// # Errors
/// A bugcheck from the pool (a block the driver damaged).
pub(crate) fn delete(cpu: &Cpu<'_>, object: u64) -> Result<(), BugCheck> {
    pool::free(cpu, va_of(cpu, object as *const c_void), Some(EVENT_TAG))
}
