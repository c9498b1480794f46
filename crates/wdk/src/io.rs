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
