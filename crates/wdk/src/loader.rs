//! The driver loader: maps a driver's PE image into simulated system space
//! (`MmLoadSystemImage`, [`ntmem_kernel::mm::sysload`]), binds its imports from
//! the export table ([`crate::exports`]), registers it with the exception
//! dispatcher, and calls its `DriverEntry` and `DriverUnload` on a simulated
//! processor with a `DRIVER_OBJECT` and registry path, as the I/O manager does.
//!
//! **Bindings.** Each routine import is bound to the routine's import thunk
//! ([`ntmem_host::thunk`]), which records the driver's context at the call so an
//! exception the routine raises is dispatched from the driver's frame; routines
//! that capture their caller themselves are bound directly
//! ([`crate::exports::Kind::Direct`]). Variables (`MmSystemRangeStart`,
//! `MmHighestUserAddress`, `MmUserProbeAddress`, `NtBuildNumber`,
//! `KeNumberProcessors`) are bound to this driver's [`KernelData`], filled from
//! the machine. An import nothing exports fails the load, naming every one.
//!
//! After a successful `DriverEntry` the image's discardable sections (`INIT`)
//! are freed ([`Driver::finish_entry`]); [`Driver::unload_image`] unmaps it.
//!
//! The `DRIVER_OBJECT` lives in host memory owned by [`Driver`] (Windows puts it in
//! nonpaged pool; it is not counted against the driver's tags either way).

use std::sync::OnceLock;

use ntmem_host::thunk::ThunkTable;
use ntmem_kernel::io::returns::{check_return, Caller};
use ntmem_kernel::mm::sysload::{self, LoadedImage};
use ntmem_kernel::{BugCheck, Machine};
use ntmem_machine::Va;

use crate::context;
use crate::except::images::{self, Registration};
use crate::exports::{self, Kind, EXPORTS};
use crate::seh::ThreadKind;
use crate::types::{
    registry_path, service_name, DriverExtension, DriverInitialize, DriverObject, NtStatus, OwnedUnicode, UnicodeString,
};

/// The line an error about a routine ntmem lacks ends with: where to see what
/// it has.
pub const API_HINT: &str =
    "\nhint: ntmem does not export every WDK routine yet; `ntmem api` lists each routine and variable it does";

/// Why a driver could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not an image, no room for it, or imports ntmem does not export (then the
    /// message points to `ntmem api`, [`API_HINT`]).
    #[error("cannot load {name}: {source}{}", if matches!(.source, sysload::LoadError::MissingImports(_)) { API_HINT } else { "" })]
    Image {
        /// The driver.
        name: String,
        /// Why.
        source: sysload::LoadError,
    },
    /// The image has no entry point.
    #[error("{0} has no entry point (DriverEntry)")]
    NoEntry(String),
    /// The process's table of driver images is full.
    #[error("cannot load {0}: too many driver images in this process")]
    TooManyImages(String),
    /// Paged pool had no room for the `RegistryPath` string, or the machine stopped.
    #[error("cannot load {0}: no pool for its RegistryPath")]
    RegistryPath(String),
}

/// The kernel variables a driver image imports, with the values of its machine
/// (Microsoft's documentation of each; `NtBuildNumber` as a free build writes it,
/// 0xF000_0000 | build number). Addresses are host addresses, as every pointer a
/// driver holds.
#[repr(C)]
#[derive(Debug)]
pub struct KernelData {
    /// `MmSystemRangeStart`: the lowest system address.
    pub system_range_start: u64,
    /// `MmHighestUserAddress`: the highest user address.
    pub highest_user_address: u64,
    /// `MmUserProbeAddress`: the first address above user space that probes reject.
    pub user_probe_address: u64,
    /// `NtBuildNumber`.
    pub build_number: u32,
    /// `KeNumberProcessors` (a CCHAR).
    pub number_processors: i8,
    /// `PsThreadType`: where the thread object type's `POBJECT_TYPE` is (a `POBJECT_TYPE *`).
    pub thread_type: u64,
    /// `ExEventObjectType`: where the event object type's `POBJECT_TYPE` is.
    pub event_type: u64,
    /// `PsProcessType`: where the process object type's `POBJECT_TYPE` is.
    pub process_type: u64,
    /// `IoFileObjectType`: where the file object type's `POBJECT_TYPE` is.
    pub file_type: u64,
    /// `PsInitialSystemProcess`: the System process's `PEPROCESS`.
    pub system_process: u64,
    /// `KiUserSharedData`: where `KUSER_SHARED_DATA` is mapped (ntmem's own variable,
    /// read by the header's `KI_USER_SHARED_DATA`; Windows uses a constant).
    pub user_shared_data: u64,
}

impl KernelData {
    /// The values for `machine`.
    pub fn of(machine: &Machine) -> KernelData {
        let profile = machine.profile();
        let layout = &profile.layout;
        let host = |va: Va| machine.space().host_addr(va) as u64;
        KernelData {
            system_range_start: host(layout.system_start),
            highest_user_address: host(layout.user_end),
            user_probe_address: host(layout.user_probe_address),
            build_number: 0xF000_0000 | profile.edition.release.build_number(),
            number_processors: i8::try_from(profile.processors).unwrap_or(i8::MAX),
            thread_type: std::ptr::addr_of!(crate::ob::THREAD_TYPE_VARIABLE) as u64,
            event_type: std::ptr::addr_of!(crate::ob::EVENT_TYPE_VARIABLE) as u64,
            process_type: std::ptr::addr_of!(crate::ob::PROCESS_TYPE_VARIABLE) as u64,
            file_type: std::ptr::addr_of!(crate::ob::FILE_TYPE_VARIABLE) as u64,
            system_process: std::ptr::addr_of!(crate::ps::SYSTEM_PROCESS) as u64,
            user_shared_data: host(machine.shared_user_data()),
        }
    }

    /// The address of the variable exported as `name`.
    fn address_of(&self, name: &str) -> Option<u64> {
        let p: *const u8 = match name {
            "MmSystemRangeStart" => std::ptr::addr_of!(self.system_range_start).cast(),
            "MmHighestUserAddress" => std::ptr::addr_of!(self.highest_user_address).cast(),
            "MmUserProbeAddress" => std::ptr::addr_of!(self.user_probe_address).cast(),
            "NtBuildNumber" => std::ptr::addr_of!(self.build_number).cast(),
            "KeNumberProcessors" => std::ptr::addr_of!(self.number_processors).cast(),
            "PsThreadType" => std::ptr::addr_of!(self.thread_type).cast(),
            "ExEventObjectType" => std::ptr::addr_of!(self.event_type).cast(),
            "PsProcessType" => std::ptr::addr_of!(self.process_type).cast(),
            "IoFileObjectType" => std::ptr::addr_of!(self.file_type).cast(),
            "PsInitialSystemProcess" => std::ptr::addr_of!(self.system_process).cast(),
            "KiUserSharedData" => std::ptr::addr_of!(self.user_shared_data).cast(),
            _ => return None,
        };
        Some(p as u64)
    }
}

/// The import thunks of every [`Kind::Routine`] export, in the order of
/// [`EXPORTS`], made once per process.
fn thunks() -> Option<&'static ThunkTable> {
    static THUNKS: OnceLock<Option<ThunkTable>> = OnceLock::new();
    THUNKS
        .get_or_init(|| {
            let targets: Vec<usize> = EXPORTS
                .iter()
                .filter(|e| e.kind == Kind::Routine)
                .map(|e| exports::routine_address(e.name).unwrap_or(0))
                .collect();
            ThunkTable::new(&targets).ok()
        })
        .as_ref()
}

/// The address an import of `name` from `dll` is bound to (see the module docs).
fn resolve(dll: &str, name: &str, data: &KernelData) -> Option<u64> {
    match exports::find(dll, name)?.kind {
        Kind::Data => data.address_of(name),
        Kind::Routine | Kind::Direct => routine_entry(name),
    }
}

/// The address an import of routine `name` is bound to: its import thunk (its own
/// address for [`Kind::Direct`]); `None` for variables and names not exported.
pub(crate) fn routine_entry(name: &str) -> Option<u64> {
    match EXPORTS.iter().find(|e| e.name == name)?.kind {
        Kind::Routine => {
            let index = EXPORTS.iter().filter(|e| e.kind == Kind::Routine).position(|e| e.name == name)?;
            thunks()?.address(index).map(|a| a as u64)
        }
        Kind::Direct => exports::routine_address(name).map(|a| a as u64),
        Kind::Data => None,
    }
}

/// A loaded driver and its `DRIVER_OBJECT`.
#[derive(Debug)]
pub struct Driver {
    name: String,
    image: Option<LoadedImage>,
    registration: Option<Registration>,
    entry: DriverInitialize,
    object: Box<DriverObject>,
    extension: Box<DriverExtension>,
    registry_path: RegistryPath,
    /// The device stack the PnP manager built for it (see [`crate::pnp`]).
    pub(crate) pnp: crate::pnp::PnpState,
    _data: Box<KernelData>,
    _texts: (Box<OwnedUnicode>, Box<OwnedUnicode>),
}

/// The `RegistryPath` `DriverEntry` receives: a `UNICODE_STRING` and its text in
/// paged pool (tag `NtRp`, ntmem's choice), so a driver may hand it to the registry
/// routines as Windows drivers do; and the service key it names, created with its
/// `Parameters` subkey (learn.microsoft.com "DriverEntry's RegistryPath", "Using the
/// Registry in a Driver"). Allocated before the pool is measured and kept for the
/// machine's life (a driver may be unloaded mid-run while its pool is measured), so
/// it is no driver's pool. (On Windows it is freed when `DriverEntry` returns: a
/// driver that keeps the pointer is wrong there, not here.)
///
/// The same for a Rust driver run by [`crate::harness`].
#[derive(Debug)]
pub(crate) struct RegistryPath {
    string: *mut UnicodeString,
}

/// The pool tag of [`RegistryPath`].
const REGISTRY_PATH_TAG: u32 = u32::from_le_bytes(*b"NtRp");

impl RegistryPath {
    /// The `PUNICODE_STRING` `DriverEntry` receives.
    pub(crate) fn unicode(&self) -> *mut UnicodeString {
        self.string
    }

    /// Creates the service key of `service` and its `RegistryPath`; `Ok(None)` when
    /// paged pool is short.
    pub(crate) fn allocate(machine: &Machine, service: &str) -> Result<Option<RegistryPath>, BugCheck> {
        let text: Vec<u16> = registry_path(service).encode_utf16().chain([0]).collect();
        let key: Vec<u16> = text[..text.len() - 1].to_vec();
        let parameters = ntmem_kernel::cm::under(&key, &"Parameters".encode_utf16().collect::<Vec<_>>());
        // The service name comes from a file name: one that makes a bad path gets no key.
        let _ = machine.registry().create_path(&parameters, 0);
        let bytes = 16 + 2 * text.len() as u64;
        machine.run(0, |cpu| {
            let tag = ntmem_kernel::ex::pool::PoolTag(REGISTRY_PATH_TAG);
            let pool_type = ntmem_kernel::ex::pool::PoolType::PagedPool;
            let Some(va) = ntmem_kernel::ex::pool::allocate(cpu, pool_type, bytes, tag)? else { return Ok(None) };
            let at = context::host_ptr(cpu, Some(va)).cast::<u8>();
            let length = u16::try_from(2 * (text.len() - 1)).unwrap_or(u16::MAX - 1);
            // SAFETY: a fresh, resident pool block of `bytes` bytes: the header, then
            // the text with its NUL.
            unsafe {
                let buffer = at.add(16).cast::<u16>();
                std::ptr::copy_nonoverlapping(text.as_ptr(), buffer, text.len());
                at.cast::<UnicodeString>().write_unaligned(UnicodeString {
                    length,
                    maximum_length: length + 2,
                    buffer,
                });
            }
            Ok(Some(RegistryPath { string: at.cast() }))
        })
    }
}

/// Sets `values` in the `Parameters` key of driver `name`'s service key (which
/// loading the driver created): a scenario's `[registry]` table, for C drivers and
/// Rust drivers alike.
///
/// # Errors
/// The key is missing or a value cannot be set (the message says which).
pub fn set_parameters(machine: &Machine, name: &str, values: &[ntmem_kernel::cm::Value]) -> Result<(), String> {
    let service = registry_path(service_name(name));
    let path: Vec<u16> = format!("{service}\\Parameters").encode_utf16().collect();
    let registry = machine.registry();
    let key = registry.open(&path).map_err(|s| format!("registry: no key {service}\\Parameters ({s:#x})"))?;
    let set = values.iter().try_for_each(|v| registry.set_value(key, v.clone(), 0));
    registry.close(key);
    set.map_err(|s| format!("registry: a value could not be set ({s:#x})"))
}

impl Drop for Driver {
    fn drop(&mut self) {
        crate::io_stack::unregister_driver(&*self.object);
    }
}

impl Driver {
    /// Loads the image `file` on `machine` as the driver `name` (the name `lm`
    /// and the analysis show, and the service name of its registry path).
    ///
    /// # Errors
    /// [`LoadError`]; nothing stays mapped.
    pub fn load(machine: &Machine, name: &str, file: &[u8]) -> Result<Driver, LoadError> {
        crate::seh::install();
        let data = Box::new(KernelData::of(machine));
        let image = LoadedImage::load(machine, name, file, &|dll, import| resolve(dll, import, &data))
            .map_err(|source| LoadError::Image { name: name.to_string(), source })?;
        let Some(entry) = image.entry() else {
            image.unload(machine);
            return Err(LoadError::NoEntry(name.to_string()));
        };
        let Some(registration) = images::register(&image) else {
            image.unload(machine);
            return Err(LoadError::TooManyImages(name.to_string()));
        };
        // SAFETY: the entry point of a driver image is its DriverEntry (DRIVER_INITIALIZE,
        // Microsoft x64), mapped executable inside the image, which stays mapped while
        // `self` holds it.
        let entry = unsafe { std::mem::transmute::<usize, DriverInitialize>(entry as usize) };
        let service = service_name(name);
        let Ok(Some(registry_path)) = RegistryPath::allocate(machine, service) else {
            image.unload(machine);
            return Err(LoadError::RegistryPath(name.to_string()));
        };
        let mut driver_name = Box::new(OwnedUnicode::new(&format!("\\Driver\\{service}")));
        let mut service_text = Box::new(OwnedUnicode::new(service));
        let mut extension = Box::new(DriverExtension {
            driver_object: std::ptr::null_mut(),
            add_device: None,
            count: 0,
            service_key_name: service_text.as_unicode_string(),
        });
        let mut object = Box::new(DriverObject::new(driver_name.as_unicode_string(), &mut *extension, Some(entry)));
        object.driver_start = image.host_base() as *mut std::ffi::c_void;
        object.driver_size = u32::try_from(image.size(machine)).unwrap_or(u32::MAX);
        extension.driver_object = &mut *object;
        crate::io_stack::register_driver(&*object);
        Ok(Driver {
            name: name.to_string(),
            image: Some(image),
            registration: Some(registration),
            entry,
            object,
            extension,
            registry_path,
            pnp: crate::pnp::PnpState::default(),
            _data: data,
            _texts: (driver_name, service_text),
        })
    }

    /// The loaded image (until [`Driver::unload_image`]).
    pub fn image(&self) -> Option<&LoadedImage> {
        self.image.as_ref()
    }

    /// What the I/O manager does after a successful `DriverEntry`: frees the image's
    /// discardable (`INIT`) pages. Returns how many pages were freed.
    pub fn finish_entry(&mut self, machine: &Machine) -> u64 {
        self.image.as_mut().map_or(0, |i| i.discard_init(machine))
    }

    /// Unmaps the image (`MmUnloadSystemImage`), after its `DriverUnload` or a failed
    /// `DriverEntry`: no driver code may run afterwards.
    pub fn unload_image(&mut self, machine: &Machine) {
        self.registration = None;
        machine.vf().unload_finished(&self.name);
        if let Some(image) = self.image.take() {
            image.unload(machine);
        }
    }

    /// The driver's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `DRIVER_OBJECT` (host memory, at a fixed address while `self` lives).
    pub fn object_ptr(&self) -> *const DriverObject {
        &*self.object
    }

    /// The `AddDevice` routine `DriverEntry` stored in `DriverExtension`, if any.
    pub fn add_device_routine(&self) -> Option<crate::types::DriverAddDevice> {
        self.extension.add_device
    }

    /// Calls `AddDevice(DriverObject, pdo)` on processor `cpu` at PASSIVE_LEVEL in
    /// a system thread, as the PnP manager does; `None` when the driver has none.
    ///
    /// # Errors
    /// The bugcheck that stopped the machine.
    pub fn add_device(
        &mut self,
        machine: &Machine,
        cpu: u32,
        pdo: ntmem_kernel::io::DeviceObject,
    ) -> Result<Option<NtStatus>, BugCheck> {
        let Some(add) = self.extension.add_device else { return Ok(None) };
        let pdo = machine.run(cpu, |c| Ok(crate::context::host_ptr(c, Some(pdo.0))))?;
        let object: *mut DriverObject = &mut *self.object;
        // SAFETY: `add` is the PDRIVER_ADD_DEVICE the driver stored in its
        // DRIVER_EXTENSION; `object` is the live box it was given and `pdo` a device
        // object the I/O manager made.
        self.call(machine, cpu, ("AddDevice", add as usize), || unsafe { add(object, pdo) }).map(Some)
    }

    /// Whether `DriverEntry` registered a `DriverUnload`.
    pub fn has_unload(&self) -> bool {
        self.object.driver_unload.is_some()
    }

    /// Runs driver code `call`, the driver's `routine` (at host address `address`),
    /// on processor `cpu` of `machine` in a system thread, and checks the IRQL it
    /// returns at; a bugcheck gets the driver's name (every stop here happens in
    /// driver code or in a routine the driver called).
    fn call<R>(
        &self,
        machine: &Machine,
        cpu: u32,
        (routine, address): (&'static str, usize),
        call: impl FnOnce() -> R,
    ) -> Result<R, BugCheck> {
        // DriverEntry, DriverUnload and AddDevice run in system worker threads on Windows.
        context::call_driver(machine, cpu, ThreadKind::System, |c| {
            let entry = c.irql();
            let r = context::enter(c, routine, call);
            check_return(c, Caller::Worker, address as u64, None, entry)?;
            crate::ps::check_worker_return(c, address as u64)?;
            Ok(r)
        })
        .map_err(|mut b| {
            b.driver = Some(self.name.clone());
            b
        })
    }

    /// Calls `DriverEntry(DriverObject, RegistryPath)` on processor `cpu` at its
    /// current IRQL (PASSIVE_LEVEL after boot) and returns its NTSTATUS.
    ///
    /// # Errors
    /// The bugcheck that stopped the machine.
    pub fn driver_entry(&mut self, machine: &Machine, cpu: u32) -> Result<NtStatus, BugCheck> {
        let object: *mut DriverObject = &mut *self.object;
        let path: *mut UnicodeString = self.registry_path.string;
        let entry = self.entry;
        // SAFETY: `entry` is the driver's DriverEntry (see `load`); `object` and
        // `path` point to live boxes this `Driver` owns, not otherwise borrowed
        // during the call. The image stays mapped while `self` holds it.
        self.call(machine, cpu, ("DriverEntry", entry as usize), || unsafe { entry(object, path) })
    }

    /// Driver Verifier's check as the image unloads (`MmUnloadSystemImage`): with
    /// pool tracking on for this driver, pool it left allocated is
    /// DRIVER_VERIFIER_DETECTED_VIOLATION (0xC4) 0x62 — the second parameter the
    /// address of the driver's name (the DRIVER_OBJECT's `DriverName`
    /// UNICODE_STRING, which `dS` prints) — or, on Windows 2000, 0x60 with the bytes
    /// left ([`ntmem_kernel::vf::Verifier::unload_violation`]).
    ///
    /// # Errors
    /// The bugcheck.
    pub fn verify_unload(&self, machine: &Machine) -> Result<(), BugCheck> {
        let name = std::ptr::addr_of!(self.object.driver_name) as u64;
        let release = machine.profile().edition.release;
        match machine.vf().unload_violation(&self.name, name, release) {
            None => Ok(()),
            Some(v) => {
                let mut b = v.stop(machine);
                b.driver = Some(self.name.clone());
                Err(b)
            }
        }
    }

    /// Calls the `DriverUnload` that `DriverEntry` registered, if any. Returns
    /// whether there was one.
    ///
    /// # Errors
    /// The bugcheck that stopped the machine.
    pub fn unload(&mut self, machine: &Machine, cpu: u32) -> Result<bool, BugCheck> {
        let Some(unload) = self.object.driver_unload else { return Ok(false) };
        let object: *mut DriverObject = &mut *self.object;
        // Driver Verifier's unload window opens (0xC4/0x61 for another thread's
        // allocation) in the thread that runs DriverUnload, known inside the call; the
        // image's unload closes it (`unload_image`).
        crate::ke_dispatcher::outside_dpcs();
        let name = self.name.as_str();
        self.call(machine, cpu, ("DriverUnload", unload as usize), || {
            machine.vf().unload_started(name, crate::ps::current_thread());
            // SAFETY: `unload` is the routine the driver stored in its DRIVER_OBJECT,
            // of type PDRIVER_UNLOAD; `object` is the live box it was given.
            unsafe { unload(object) }
        })?;
        Ok(true)
    }
}
