//! The structures a driver reads and writes directly, byte-exact with
//! `include/wdm.h` (the AMD64 layouts of the WDK's `UNICODE_STRING` and
//! `DRIVER_OBJECT`), and the scalar types of the boundary.

use std::ffi::c_void;

/// `NTSTATUS`.
pub type NtStatus = i32;
/// `KSPIN_LOCK`: a `ULONG_PTR` the driver owns; 0 is free.
pub type KSpinLock = usize;

/// `STATUS_SUCCESS`.
pub const STATUS_SUCCESS: NtStatus = 0;

/// `PDRIVER_UNLOAD`.
pub type DriverUnload = unsafe extern "win64" fn(*mut DriverObject);
/// `PDRIVER_INITIALIZE`: `DriverEntry`.
pub type DriverInitialize = unsafe extern "win64" fn(*mut DriverObject, *mut UnicodeString) -> NtStatus;
/// `PDRIVER_DISPATCH` (the device and IRP are opaque until the I/O manager exists).
pub type DriverDispatch = unsafe extern "win64" fn(*mut c_void, *mut c_void) -> NtStatus;

/// `IRP_MJ_MAXIMUM_FUNCTION`.
pub const IRP_MJ_MAXIMUM_FUNCTION: usize = 0x1b;
/// `IO_TYPE_DRIVER`: `DRIVER_OBJECT.Type`.
pub const IO_TYPE_DRIVER: i16 = 4;

/// `PDRIVER_ADD_DEVICE`: `AddDevice(DriverObject, PhysicalDeviceObject)`.
pub type DriverAddDevice = unsafe extern "win64" fn(*mut DriverObject, *mut c_void) -> NtStatus;

/// `DRIVER_EXTENSION` (AMD64 layout, 0x28 bytes): where a PnP driver's
/// `DriverEntry` stores its `AddDevice`.
#[repr(C)]
#[derive(Debug)]
pub struct DriverExtension {
    /// `DriverObject`: back to the driver.
    pub driver_object: *mut DriverObject,
    /// `AddDevice`.
    pub add_device: Option<DriverAddDevice>,
    /// `Count`: how many times the driver's reinitialization routine ran (0).
    pub count: u32,
    /// `ServiceKeyName`.
    pub service_key_name: UnicodeString,
}

const _: () = assert!(std::mem::size_of::<DriverExtension>() == 0x28);
const _: () = assert!(std::mem::offset_of!(DriverExtension, add_device) == 0x08);

/// `UNICODE_STRING`: `length` and `maximum_length` in bytes.
#[repr(C)]
#[derive(Debug)]
pub struct UnicodeString {
    /// `Length`.
    pub length: u16,
    /// `MaximumLength`.
    pub maximum_length: u16,
    /// `Buffer`.
    pub buffer: *mut u16,
}

/// `DRIVER_OBJECT` (AMD64 layout, 0x150 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct DriverObject {
    /// `Type`: [`IO_TYPE_DRIVER`].
    pub kind: i16,
    /// `Size`: bytes of the object.
    pub size: i16,
    /// `DeviceObject`.
    pub device_object: *mut c_void,
    /// `Flags`.
    pub flags: u32,
    /// `DriverStart`.
    pub driver_start: *mut c_void,
    /// `DriverSize`.
    pub driver_size: u32,
    /// `DriverSection`.
    pub driver_section: *mut c_void,
    /// `DriverExtension`: the driver's [`DriverExtension`] (owned by the loader).
    pub driver_extension: *mut DriverExtension,
    /// `DriverName`.
    pub driver_name: UnicodeString,
    /// `HardwareDatabase`.
    pub hardware_database: *mut UnicodeString,
    /// `FastIoDispatch`.
    pub fast_io_dispatch: *mut c_void,
    /// `DriverInit`.
    pub driver_init: Option<DriverInitialize>,
    /// `DriverStartIo`.
    pub driver_start_io: *mut c_void,
    /// `DriverUnload`: set by `DriverEntry` if the driver can be unloaded.
    pub driver_unload: Option<DriverUnload>,
    /// `MajorFunction`.
    pub major_function: [Option<DriverDispatch>; IRP_MJ_MAXIMUM_FUNCTION + 1],
}

impl DriverObject {
    /// A fresh object as the I/O manager hands it to `DriverEntry`: `Type`,
    /// `Size`, the name, the extension and `DriverInit` filled in, everything the
    /// driver sets (`DriverUnload`, `MajorFunction`, devices) empty.
    pub fn new(
        driver_name: UnicodeString,
        driver_extension: *mut DriverExtension,
        driver_init: Option<DriverInitialize>,
    ) -> DriverObject {
        DriverObject {
            kind: IO_TYPE_DRIVER,
            size: std::mem::size_of::<DriverObject>() as i16,
            device_object: std::ptr::null_mut(),
            flags: 0,
            driver_start: std::ptr::null_mut(),
            driver_size: 0,
            driver_section: std::ptr::null_mut(),
            driver_extension,
            driver_name,
            hardware_database: std::ptr::null_mut(),
            fast_io_dispatch: std::ptr::null_mut(),
            driver_init,
            driver_start_io: std::ptr::null_mut(),
            driver_unload: None,
            major_function: [None; IRP_MJ_MAXIMUM_FUNCTION + 1],
        }
    }
}

/// The service name of a driver file: `nic.c` → `nic` (its key under
/// `...\CurrentControlSet\Services` and its `\Driver\` name).
pub fn service_name(file: &str) -> &str {
    file.split('.').next().unwrap_or(file)
}

/// The registry path `DriverEntry` receives for service `service`.
pub fn registry_path(service: &str) -> String {
    format!("\\Registry\\Machine\\System\\CurrentControlSet\\Services\\{service}")
}

const _: () = assert!(std::mem::size_of::<DriverObject>() == 0x150);
const _: () = assert!(std::mem::offset_of!(DriverObject, driver_unload) == 0x68);
const _: () = assert!(std::mem::offset_of!(DriverObject, driver_name) == 0x38);
const _: () = assert!(std::mem::offset_of!(DriverObject, driver_extension) == 0x30);

/// UTF-16 text a [`UnicodeString`] points at, kept alive with it.
#[derive(Debug)]
pub struct OwnedUnicode {
    text: Box<[u16]>,
}

impl OwnedUnicode {
    /// `s` as UTF-16 with a terminating zero (not counted in `Length`).
    pub fn new(s: &str) -> OwnedUnicode {
        OwnedUnicode { text: s.encode_utf16().chain([0]).collect() }
    }

    /// A `UNICODE_STRING` describing the text; valid while `self` lives and is not moved out of its box.
    pub fn as_unicode_string(&mut self) -> UnicodeString {
        let bytes = |n: usize| u16::try_from(n * 2).unwrap_or(u16::MAX);
        UnicodeString {
            length: bytes(self.text.len() - 1),
            maximum_length: bytes(self.text.len()),
            buffer: self.text.as_mut_ptr(),
        }
    }
}

/// `STRING` / `ANSI_STRING`: `length` and `maximum_length` in bytes.
#[repr(C)]
#[derive(Debug)]
pub struct AnsiString {
    /// `Length`.
    pub length: u16,
    /// `MaximumLength`.
    pub maximum_length: u16,
    /// `Buffer`.
    pub buffer: *mut u8,
}

const _: () = assert!(std::mem::size_of::<AnsiString>() == 0x10);
const _: () = assert!(std::mem::size_of::<UnicodeString>() == 0x10);
