//! I/O manager routines at the C boundary (`IoCreateDevice`, `IoDeleteDevice`,
//! symbolic links; IRPs and completion are in [`crate::io_stack`]) and the bridge from the kernel's
//! [`ntmem_kernel::io::Dispatch`] to a C driver's `DRIVER_OBJECT.MajorFunction`
//! table ([`send`]).
//!
//! The `DRIVER_OBJECT` is host memory owned by [`Driver`]; its `DeviceObject` head
//! is kept here, the devices' `NextDevice` links by the kernel. Dispatch routines
//! run in the caller's thread (an arbitrary thread for SEH purposes: an exception
//! no `__try` takes stops the machine with 0x1E).

use std::ffi::c_void;

use ntmem_kernel::ex::pool::NtStatus as KStatus;
use ntmem_kernel::io::device::{self, NewDevice};
use ntmem_kernel::io::request::{IoCall, IoOutcome};
use ntmem_kernel::io::returns::{check_pending, check_return, Caller};
use ntmem_kernel::io::{DeviceObject, Dispatch, Irp, MajorFunction};
use ntmem_kernel::{BugCheck, Cpu, Machine};

use crate::context::{self, host_ptr, kernel, va_of};
use crate::loader::Driver;
use crate::seh::ThreadKind;
use crate::types::{DriverObject, NtStatus, UnicodeString};

/// `STATUS_INVALID_PARAMETER`.
const STATUS_INVALID_PARAMETER: NtStatus = 0xC000_000D_u32 as NtStatus;

/// `IoCreateDevice`: a device object with its extension, found by `DeviceName`
/// when it has one ([`ntmem_kernel::io::device::io_create_named_device`]:
/// STATUS_OBJECT_NAME_COLLISION for a name taken). PASSIVE_LEVEL only: at
/// DISPATCH_LEVEL or above, the pageable-code stop of
/// [`ntmem_kernel::trap::pageable_code`] (0x0A).
///
/// # Safety
/// `driver` is the `DRIVER_OBJECT` the driver was given; `out` is writable; `name`
/// is NULL or a valid `UNICODE_STRING` (a bad one faults, as on Windows).
pub unsafe extern "win64" fn IoCreateDevice(
    driver: *mut DriverObject,
    extension_size: u32,
    name: *mut UnicodeString,
    device_type: u32,
    characteristics: u32,
    exclusive: u8,
    out: *mut *mut c_void,
) -> NtStatus {
    if driver.is_null() || out.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let new =
        NewDevice { driver: driver as u64, extension_size, device_type, characteristics, exclusive: exclusive != 0 };
    kernel(|cpu| ntmem_kernel::trap::pageable_code(cpu, IoCreateDevice as *const () as u64));
    // SAFETY: the caller's string (`# Safety`).
    let name = (!name.is_null()).then(|| unsafe { crate::rtl::unicode_chars(name) });
    let created =
        kernel(|cpu| Ok(device::io_create_named_device(cpu, new, name.as_deref())?.map(|d| host_ptr(cpu, Some(d.0)))));
    match created {
        Ok(p) => {
            // SAFETY: the caller passes its own DRIVER_OBJECT and a writable
            // PDEVICE_OBJECT (`# Safety`); both checked non-null above.
            unsafe {
                (*driver).device_object = p;
                *out = p;
            }
            0
        }
        Err(status) => status.0 as NtStatus,
    }
}

/// `IoDeleteDevice`.
///
/// # Safety
/// `device` came from `IoCreateDevice`, whose driver object is still live.
pub unsafe extern "win64" fn IoDeleteDevice(device: *mut c_void) {
    let (driver, head) = kernel(|cpu| {
        let (driver, head) = device::io_delete_device(cpu, DeviceObject(va_of(cpu, device)))?;
        Ok((driver, host_ptr(cpu, head.map(|d| d.0))))
    });
    if driver != 0 {
        // SAFETY: `driver` is the DRIVER_OBJECT address the driver passed to
        // IoCreateDevice for this device; the loader keeps it alive while the
        // driver is loaded (`# Safety`).
        unsafe { (*(driver as *mut DriverObject)).device_object = head };
    }
}

/// `IoCreateSymbolicLink` (learn.microsoft.com, "IoCreateSymbolicLink function
/// (wdm.h)"): records `link` → `device` in the object namespace
/// ([`ntmem_kernel::io::symlink`]); `STATUS_OBJECT_NAME_COLLISION` when the link
/// exists. PASSIVE_LEVEL: above it, the pageable-code stop (0x0A).
///
/// # Safety
/// Both are valid `UNICODE_STRING`s (a bad one faults, as on Windows).
pub unsafe extern "win64" fn IoCreateSymbolicLink(
    link: *const UnicodeString,
    device: *const UnicodeString,
) -> NtStatus {
    // SAFETY: the caller's contract.
    unsafe { create_link(IoCreateSymbolicLink as *const () as u64, link, device) }
}

/// `IoCreateUnprotectedSymbolicLink` (learn.microsoft.com,
/// "IoCreateUnprotectedSymbolicLink function (wdm.h)"): as [`IoCreateSymbolicLink`];
/// on Windows the link gets a security descriptor anyone may change, which ntmem
/// (no security model) does not model.
///
/// # Safety
/// As [`IoCreateSymbolicLink`].
pub unsafe extern "win64" fn IoCreateUnprotectedSymbolicLink(
    link: *const UnicodeString,
    device: *const UnicodeString,
) -> NtStatus {
    // SAFETY: the caller's contract.
    unsafe { create_link(IoCreateUnprotectedSymbolicLink as *const () as u64, link, device) }
}

/// A symbolic link created by `routine` (its address names it in a pageable-code stop).
///
/// # Safety
/// As [`IoCreateSymbolicLink`].
unsafe fn create_link(routine: u64, link: *const UnicodeString, device: *const UnicodeString) -> NtStatus {
    kernel(|cpu| ntmem_kernel::trap::pageable_code(cpu, routine));
    // SAFETY: the caller's strings (`# Safety`).
    let (link, device) = unsafe { (crate::rtl::unicode_chars(link), crate::rtl::unicode_chars(device)) };
    let created = kernel(|cpu| Ok(cpu.machine().io().symbolic_links().create(&link, &device)));
    created.map_or_else(|s| s.0 as NtStatus, |()| 0)
}

/// `IoIsWdmVersionAvailable(MajorVersion, MinorVersion)`: TRUE when the machine's
/// release supports that WDM version ([`ntmem_kernel::rtl::version::wdm_version_available`]).
/// Callable at any IRQL.
pub extern "win64" fn IoIsWdmVersionAvailable(major: u8, minor: u8) -> u8 {
    kernel(|cpu| {
        Ok(u8::from(ntmem_kernel::rtl::version::wdm_version_available(cpu.machine().profile().edition, major, minor)))
    })
}

/// `IoDeleteSymbolicLink` (learn.microsoft.com, "IoDeleteSymbolicLink function
/// (wdm.h)"): removes `link`; `STATUS_OBJECT_NAME_NOT_FOUND` when it is not a
/// link. PASSIVE_LEVEL: above it, the pageable-code stop (0x0A).
///
/// # Safety
/// `link` is a valid `UNICODE_STRING`.
pub unsafe extern "win64" fn IoDeleteSymbolicLink(link: *const UnicodeString) -> NtStatus {
    kernel(|cpu| ntmem_kernel::trap::pageable_code(cpu, IoDeleteSymbolicLink as *const () as u64));
    // SAFETY: the caller's string (`# Safety`).
    let link = unsafe { crate::rtl::unicode_chars(link) };
    let deleted = kernel(|cpu| Ok(cpu.machine().io().symbolic_links().delete(&link)));
    deleted.map_or_else(|s| s.0 as NtStatus, |_| 0)
}

/// A C driver's dispatch table.
pub(crate) struct CDispatch {
    pub(crate) object: *const DriverObject,
    /// Who sends the requests: the IRQL a routine returns at is checked for it.
    pub(crate) caller: Caller,
}

impl Dispatch for CDispatch {
    fn dispatch(
        &self,
        cpu: &Cpu<'_>,
        major: MajorFunction,
        device: DeviceObject,
        irp: Irp,
    ) -> Result<Option<KStatus>, BugCheck> {
        // The device's own driver (the top of a stack may be another driver's device).
        let object = match device.driver(cpu)? {
            0 => self.object as u64,
            d => d,
        };
        let Some(routine) = crate::io_stack::major_function(cpu, object, major as u8)? else { return Ok(None) };
        let (d, i) = (host_ptr(cpu, Some(device.0)), host_ptr(cpu, Some(irp.0)));
        let entry = cpu.irql();
        let location = irp.current_stack_location(cpu)?;
        // SAFETY: `routine` is the driver's PDRIVER_DISPATCH; `d` and `i` are the
        // device object and IRP the I/O manager built for it.
        let status = KStatus(context::enter(cpu, major.dispatch_routine(), || unsafe { routine(d, i) }) as u32);
        check_return(cpu, self.caller, routine as usize as u64, Some(d as u64), entry)?;
        check_pending(cpu, irp, location, d as u64, status)?;
        Ok(Some(status))
    }
}

/// Sends `call` to `driver` on processor `cpu` and returns what the caller sees.
///
/// # Errors
/// The bugcheck that stopped the machine, blaming the driver.
pub fn send(driver: &Driver, machine: &Machine, cpu: u32, call: &IoCall) -> Result<IoOutcome, BugCheck> {
    let dispatch = CDispatch { object: driver.object_ptr(), caller: Caller::Service };
    let r = context::call_driver(machine, cpu, ThreadKind::Arbitrary, |c| call.send(c, &dispatch));
    r.map_err(|mut b| {
        b.driver = Some(driver.name().to_string());
        b
    })
}

/// The devices `driver` created, oldest first (requests go to the first).
pub fn devices(driver: &Driver, machine: &Machine) -> Vec<DeviceObject> {
    machine.io().devices_of(driver.object_ptr() as u64)
}

/// What the I/O manager does once DriverEntry returns: clears
/// DO_DEVICE_INITIALIZING on the devices it created.
///
/// # Errors
/// The bugcheck that stopped the machine.
pub fn finish_driver_entry(driver: &Driver, machine: &Machine, cpu: u32) -> Result<(), BugCheck> {
    let key = driver.object_ptr() as u64;
    machine.run(cpu, |c| device::finish_initializing(c, key))
}

/// `FILE_OPEN` (a create disposition, bits 24–31 of `Parameters.Create.Options`).
const FILE_OPEN: u32 = 1;
/// `FILE_NON_DIRECTORY_FILE`.
const FILE_NON_DIRECTORY_FILE: u32 = 0x40;

/// Sends a kernel caller's `call` from driver code: the IRP built and recorded in the
/// kernel ([`IoCall::build_request`]), delivered to the top device's dispatch routine
/// outside it ([`crate::io_stack::deliver`]), and waited for if the driver left it
/// pending, as a synchronous request is (`routine` names the wait in a report).
fn send_from_driver(routine: &'static str, call: &IoCall) -> IoOutcome {
    let built = kernel(|cpu| {
        Ok(call.build_request(cpu)?.map(|(top, irp)| (host_ptr(cpu, Some(top.0)), host_ptr(cpu, Some(irp.0)), irp)))
    });
    let (top, irp_ptr, irp) = match built {
        Ok(built) => built,
        Err(failed) => return failed,
    };
    let returned = crate::io_stack::deliver(top, irp_ptr);
    let outcome = kernel(|cpu| Ok(IoCall::outcome(cpu, irp, KStatus(returned as u32))));
    if outcome.pending.is_none() {
        return outcome;
    }
    let on = ntmem_kernel::ke::sched::WaitOn::Irp(irp.0.get());
    let done = crate::ke_wait::wait_until(routine, None, false, &on, |cpu| {
        Ok(match cpu.machine().io().take_completion(irp) {
            Some(done) => crate::ke_wait::Poll::Done(done),
            None => crate::ke_wait::Poll::Blocked(irp.0.get(), crate::ke_dispatcher::SYNCHRONIZATION_EVENT),
        })
    });
    let (status, information) = done.unwrap_or((KStatus::PENDING, 0));
    IoOutcome { completed: true, status, information, pending: None, ..outcome }
}

/// `IoGetDeviceObjectPointer(ObjectName, DesiredAccess, FileObject, DeviceObject)`
/// (learn.microsoft.com, "IoGetDeviceObjectPointer function (wdm.h)"): opens the
/// device `name` reaches as a kernel caller (`ZwOpenFile`: FILE_OPEN,
/// FILE_NON_DIRECTORY_FILE, no sharing) — IRP_MJ_CREATE to the top of its stack —,
/// takes a reference to the file object and closes the handle, which sends
/// IRP_MJ_CLEANUP at once; returns the file object and the device at the top of the
/// stack (`IoGetRelatedDeviceObject`). The caller's `ObDereferenceObject` of the file
/// object is its last reference: IRP_MJ_CLOSE, then the file object is freed. A name
/// nothing has is STATUS_OBJECT_NAME_NOT_FOUND; a create the driver fails returns
/// its status. PASSIVE_LEVEL.
///
/// # Safety
/// `name` is a valid `UNICODE_STRING`; the two out pointers are the caller's.
pub unsafe extern "win64" fn IoGetDeviceObjectPointer(
    name: *const UnicodeString,
    access: u32,
    file_out: *mut *mut c_void,
    device_out: *mut *mut c_void,
) -> NtStatus {
    kernel(|cpu| {
        ntmem_kernel::trap::pageable_code(cpu, IoGetDeviceObjectPointer as *const () as u64)?;
        context::checked(cpu, file_out.cast(), 8)?;
        context::checked(cpu, device_out.cast(), 8)
    });
    // SAFETY: the caller's string (`# Safety`).
    let name = String::from_utf16_lossy(&unsafe { crate::rtl::unicode_chars(name) });
    let options = FILE_OPEN << 24 | FILE_NON_DIRECTORY_FILE;
    let request = ntmem_kernel::io::file::OpenRequest { access, share: 0, options };
    let opened = kernel(|cpu| ntmem_kernel::io::file::begin_open(cpu, &name, request));
    let (device, file) = match opened {
        Ok(opened) => opened,
        Err(status) => return status.0 as NtStatus,
    };
    let create = ntmem_kernel::io::file::create_call(device, file, request, None);
    let outcome = send_from_driver("IoGetDeviceObjectPointer", &create);
    let Some(open) = kernel(|cpu| ntmem_kernel::io::file::end_open(cpu, device, file, None, &outcome)) else {
        return outcome.status.0 as NtStatus;
    };
    let [cleanup, _] = ntmem_kernel::io::file::close_calls(&open);
    send_from_driver("IoGetDeviceObjectPointer", &cleanup);
    kernel(|cpu| {
        let m = cpu.machine();
        m.objects().insert(file.0.get(), ntmem_kernel::ob::ObjectType::File, 1);
        let top = ntmem_kernel::io::pnp::io_get_attached_device(cpu, device)?;
        // SAFETY: both out pointers are mapped (checked above).
        unsafe {
            file_out.write_unaligned(host_ptr(cpu, Some(file.0)));
            device_out.write_unaligned(host_ptr(cpu, Some(top.0)));
        }
        Ok(())
    });
    0
}

/// After `ObDereferenceObject` dropped the last reference to `open`'s file object:
/// IRP_MJ_CLOSE, then the file object is freed.
pub(crate) fn close_file(open: &ntmem_kernel::io::file::OpenFile) {
    let [_, close] = ntmem_kernel::io::file::close_calls(open);
    send_from_driver("ObfDereferenceObject", &close);
    kernel(|cpu| ntmem_kernel::io::file::end_close(cpu, open));
}
