//! The object manager at the C boundary: handles and references
//! (learn.microsoft.com "ObReferenceObjectByHandle", "ObReferenceObjectByPointer",
//! "ObfReferenceObject", "ObfDereferenceObject", "ObDereferenceObjectWithTag",
//! "ZwClose", bug checks 0x18 "REFERENCE_BY_POINTER" and 0x93
//! "INVALID_KERNEL_HANDLE").
//!
//! The objects counted are those ntmem creates for drivers — thread objects
//! ([`crate::ps`]) and open registry keys ([`crate::cm`]); the counts and the kernel handle table are the machine's
//! ([`ntmem_kernel::ob`]). A handle holds a reference; the last dereference deletes
//! the object (a thread object is freed once the thread has ended and nothing
//! refers to it, so a handle never closed is a `Thre` leak at unload).
//!
//! `PsThreadType`, `ExEventObjectType`, `PsProcessType` and `IoFileObjectType` are
//! exported variables, each a
//! `POBJECT_TYPE *` (as the WDK declares them) through which a driver reads the
//! `POBJECT_TYPE` naming an opaque type block; `ObReferenceObjectByHandle` checks the
//! handle's object against the type asked for (STATUS_OBJECT_TYPE_MISMATCH) and, for
//! a UserMode caller, the access asked for against the access the handle was granted
//! (STATUS_ACCESS_DENIED); KernelMode callers are not checked, as on Windows. The
//! handle `NtCurrentThread()` (-2) names the calling system thread.
//!
//! Event objects a scenario's process creates ([`crate::ex_event`]) are counted too:
//! their handles are in that process's table, found when a dispatch routine running
//! in the process's context references them. Device objects are counted
//! ([`ntmem_kernel::io::device`]): a reference keeps a deleted device's memory until
//! the last `ObDereferenceObject`.
//!
//! **Where it differs.** Objects ntmem does not count (file objects, the requesting
//! thread) are references ntmem ignores: referencing or dereferencing them changes
//! nothing. Process and file objects exist only as types to check against: no
//! routine creates a handle to one yet.

use std::ffi::c_void;

use ntmem_kernel::io::DeviceObject;
use ntmem_kernel::ob::{Dereferenced, ObjectType};
use ntmem_kernel::{BugCheck, BugCheckCode, Cpu};

use crate::context::{checked, kernel};
use crate::types::NtStatus;

/// `STATUS_INVALID_HANDLE`.
const STATUS_INVALID_HANDLE: NtStatus = 0xC000_0008_u32 as NtStatus;
/// `STATUS_OBJECT_TYPE_MISMATCH`.
const STATUS_OBJECT_TYPE_MISMATCH: NtStatus = 0xC000_0024_u32 as NtStatus;
/// `STATUS_ACCESS_DENIED`.
const STATUS_ACCESS_DENIED: NtStatus = 0xC000_0022_u32 as NtStatus;
/// `NtCurrentThread()`.
const CURRENT_THREAD_HANDLE: u64 = (-2_i64) as u64;
/// `UserMode` (KPROCESSOR_MODE).
const USER_MODE: i8 = 1;

/// An object type block (`OBJECT_TYPE`), opaque to drivers.
#[derive(Debug)]
#[repr(C, align(16))]
pub struct TypeBlock([u8; 16]);

/// The block `*PsThreadType` points at.
pub static THREAD_TYPE: TypeBlock = TypeBlock(*b"Thread\0\0\0\0\0\0\0\0\0\0");
/// The block `*ExEventObjectType` points at.
pub static EVENT_TYPE: TypeBlock = TypeBlock(*b"Event\0\0\0\0\0\0\0\0\0\0\0");
/// The block `*PsProcessType` points at.
pub static PROCESS_TYPE: TypeBlock = TypeBlock(*b"Process\0\0\0\0\0\0\0\0\0");
/// The block `*IoFileObjectType` points at.
pub static FILE_TYPE: TypeBlock = TypeBlock(*b"File\0\0\0\0\0\0\0\0\0\0\0\0");
/// The type block of registry keys (`CmKeyObjectType`, not exported to drivers).
pub static KEY_TYPE: TypeBlock = TypeBlock(*b"Key\0\0\0\0\0\0\0\0\0\0\0\0\0");
/// The device object type's block (`IoDeviceObjectType`, not exported yet): what
/// REFERENCE_BY_POINTER names for a device.
pub static DEVICE_TYPE: TypeBlock = TypeBlock(*b"Device\0\0\0\0\0\0\0\0\0\0");

/// The variable `PsThreadType` points at: it holds the thread type's `POBJECT_TYPE`
/// (the WDK declares the export `POBJECT_TYPE *`).
pub static THREAD_TYPE_VARIABLE: &TypeBlock = &THREAD_TYPE;
/// The variable `ExEventObjectType` points at.
pub static EVENT_TYPE_VARIABLE: &TypeBlock = &EVENT_TYPE;
/// The variable `PsProcessType` points at.
pub static PROCESS_TYPE_VARIABLE: &TypeBlock = &PROCESS_TYPE;
/// The variable `IoFileObjectType` points at.
pub static FILE_TYPE_VARIABLE: &TypeBlock = &FILE_TYPE;

/// The `POBJECT_TYPE` value of `t`.
pub fn type_pointer(t: ObjectType) -> u64 {
    match t {
        ObjectType::Thread => std::ptr::addr_of!(THREAD_TYPE) as u64,
        ObjectType::Event => std::ptr::addr_of!(EVENT_TYPE) as u64,
        ObjectType::Process => std::ptr::addr_of!(PROCESS_TYPE) as u64,
        ObjectType::File => std::ptr::addr_of!(FILE_TYPE) as u64,
        ObjectType::Key => std::ptr::addr_of!(KEY_TYPE) as u64,
        ObjectType::Device => std::ptr::addr_of!(DEVICE_TYPE) as u64,
    }
}

/// Drops one reference to `object`; the last deletes it; one too many is
/// REFERENCE_BY_POINTER (0x18: type, object, 0, 0).
pub(crate) fn dereference(cpu: &Cpu<'_>, object: u64) -> Result<(), BugCheck> {
    let objects = cpu.machine().objects();
    let kind = objects.get(object).map(|(kind, _)| kind);
    match objects.dereference(object) {
        Dereferenced::Live | Dereferenced::Unknown => Ok(()),
        // A device IoDeleteDevice deleted already (its own reference gone first).
        Dereferenced::Last if kind == Some(ObjectType::Device) => ntmem_kernel::io::device::free_deleted(
            cpu,
            DeviceObject(crate::context::va_of(cpu, object as *const c_void)),
        ),
        Dereferenced::Last if cpu.machine().workers().thread(object).is_some() => crate::ps::delete_thread(cpu, object),
        Dereferenced::Last if kind == Some(ObjectType::Event) => crate::ex_event::delete(cpu, object),
        Dereferenced::Last if cpu.machine().registry().is_key(object) => {
            cpu.machine().registry().close(object);
            Ok(())
        }
        // Other objects are deleted by whoever inserted them, when they see it gone.
        Dereferenced::Last => Ok(()),
        Dereferenced::Underflow(t) => {
            Err(cpu.machine().bugcheck(BugCheckCode::REFERENCE_BY_POINTER, [type_pointer(t), object, 0, 0]))
        }
    }
}

/// The id of the process whose handle table a handle without the kernel bit names:
/// the current one (`None`: the System process, whose table is the kernel's).
fn current_process(cpu: &Cpu<'_>) -> Option<u64> {
    cpu.machine().processes().current().map(|p| p.id())
}

/// The entry `handle` names for a caller running now: a kernel handle in the kernel
/// table, any other in the current process's (see the module docs).
pub(crate) fn handle_entry(cpu: &Cpu<'_>, handle: u64) -> Option<ntmem_kernel::ob::HandleEntry> {
    cpu.machine().objects().lookup_from(current_process(cpu), handle)
}

/// `ZwClose(Handle)`: closes a kernel handle, dropping its reference. A handle that is
/// not open is INVALID_KERNEL_HANDLE (0x93: handle, 1, 0, 0), as kernel-mode callers
/// get on Windows. PASSIVE_LEVEL.
pub extern "win64" fn ZwClose(handle: u64) -> NtStatus {
    kernel(|cpu| {
        ntmem_kernel::trap::pageable_code(cpu, ZwClose as *const () as u64)?;
        let Some(entry) = cpu.machine().objects().close_from(current_process(cpu), handle) else {
            return Err(cpu.machine().bugcheck(BugCheckCode::INVALID_KERNEL_HANDLE, [handle, 1, 0, 0]));
        };
        dereference(cpu, entry.object)?;
        Ok(0)
    })
}

/// `ObReferenceObjectByHandle(Handle, DesiredAccess, ObjectType, AccessMode, Object,
/// HandleInformation)`: the handle's object, referenced, in `*Object` (see the module
/// docs for the checks). `HandleInformation` must be NULL for drivers; ntmem ignores it.
/// PASSIVE_LEVEL.
///
/// # Safety
/// `object` is writable; `object_type` NULL or a `POBJECT_TYPE`.
pub unsafe extern "win64" fn ObReferenceObjectByHandle(
    handle: u64,
    access: u32,
    object_type: *mut c_void,
    mode: i8,
    object: *mut *mut c_void,
    _information: *mut c_void,
) -> NtStatus {
    let current = crate::ps::current().thread;
    kernel(|cpu| {
        ntmem_kernel::trap::pageable_code(cpu, ObReferenceObjectByHandle as *const () as u64)?;
        let out = checked(cpu, object.cast(), 8)?;
        let objects = cpu.machine().objects();
        let entry = if handle == CURRENT_THREAD_HANDLE && current != 0 {
            Some((current, ObjectType::Thread, crate::ps::THREAD_ALL_ACCESS))
        } else {
            handle_entry(cpu, handle).map(|e| (e.object, e.object_type, e.granted))
        };
        let Some((target, kind, granted)) = entry else { return Ok(STATUS_INVALID_HANDLE) };
        if !object_type.is_null() && object_type as u64 != type_pointer(kind) {
            return Ok(STATUS_OBJECT_TYPE_MISMATCH);
        }
        if mode == USER_MODE && access & !granted != 0 {
            return Ok(STATUS_ACCESS_DENIED);
        }
        objects.reference(target);
        // SAFETY: checked writable above.
        unsafe { out.cast::<u64>().write_unaligned(target) };
        Ok(0)
    })
}

/// `ObReferenceObjectByPointer(Object, DesiredAccess, ObjectType, AccessMode)`: one
/// more reference; STATUS_OBJECT_TYPE_MISMATCH when `ObjectType` names another type.
///
/// # Safety
/// `object` is an object; `object_type` NULL or a `POBJECT_TYPE`.
pub unsafe extern "win64" fn ObReferenceObjectByPointer(
    object: *mut c_void,
    _access: u32,
    object_type: *mut c_void,
    _mode: i8,
) -> NtStatus {
    kernel(|cpu| {
        let objects = cpu.machine().objects();
        if let Some((kind, _)) = objects.get(object as u64) {
            if !object_type.is_null() && object_type as u64 != type_pointer(kind) {
                return Ok(STATUS_OBJECT_TYPE_MISMATCH);
            }
        }
        objects.reference(object as u64);
        Ok(0)
    })
}

/// `ObfReferenceObject(Object)` (`ObReferenceObject` in `wdm.h`): one more reference;
/// the new count (1 for an object ntmem does not count).
///
/// # Safety
/// `object` is an object.
pub unsafe extern "win64" fn ObfReferenceObject(object: *mut c_void) -> i64 {
    kernel(|cpu| {
        let objects = cpu.machine().objects();
        objects.reference(object as u64);
        Ok(objects.get(object as u64).map_or(1, |(_, n)| n as i64))
    })
}

/// `ObfDereferenceObject(Object)` (`ObDereferenceObject` in `wdm.h`): one reference
/// fewer; the last deletes the object. The count left.
///
/// # Safety
/// `object` is a referenced object.
pub unsafe extern "win64" fn ObfDereferenceObject(object: *mut c_void) -> i64 {
    let (left, closed) = kernel(|cpu| {
        let m = cpu.machine();
        let counted = m.objects().get(object as u64);
        let file = counted.filter(|(kind, _)| *kind == ObjectType::File).and_then(|_| {
            let va = crate::context::va_of(cpu, object);
            m.io().open_file(va)
        });
        dereference(cpu, object as u64)?;
        let left = m.objects().get(object as u64).map_or(0, |(_, n)| n as i64);
        Ok((left, file.filter(|_| left == 0)))
    });
    // A file object's last reference: the I/O manager closes it (driver code runs).
    if let Some(open) = closed {
        crate::io::close_file(&open);
    }
    left
}

/// `ObfReferenceObjectWithTag(Object, Tag)`: as `ObfReferenceObject` (the tag is for
/// debuggers' reference tracing).
///
/// # Safety
/// As `ObfReferenceObject`.
pub unsafe extern "win64" fn ObfReferenceObjectWithTag(object: *mut c_void, _tag: u32) -> i64 {
    // SAFETY: the caller's contract.
    unsafe { ObfReferenceObject(object) }
}

/// `ObfDereferenceObjectWithTag(Object, Tag)`: as `ObfDereferenceObject`.
///
/// # Safety
/// As `ObfDereferenceObject`.
pub unsafe extern "win64" fn ObfDereferenceObjectWithTag(object: *mut c_void, _tag: u32) -> i64 {
    // SAFETY: the caller's contract.
    unsafe { ObfDereferenceObject(object) }
}
