//! The driver loader: opens a driver built against `include/wdm.h` (a shared
//! object), and calls its `DriverEntry` and `DriverUnload` on a simulated
//! processor with a `DRIVER_OBJECT` and registry path, as the I/O manager does.
//!
//! The driver's undefined symbols (the WDK routines) resolve against the
//! executable when it is opened (`RTLD_NOW`), so the executable must export them
//! (`-Wl,--export-dynamic`, and [`crate::exports`] to keep them). A routine ntmem
//! does not implement fails here, naming the symbol.
//!
//! The `DRIVER_OBJECT` lives in host memory owned by [`Driver`] (Windows puts it in
//! nonpaged pool; it is not counted against the driver's tags either way).

use std::ffi::{c_void, CStr, CString};
use std::path::Path;

use ntmem_kernel::io::returns::{check_return, Caller};
use ntmem_kernel::{BugCheck, Machine};

use crate::context;
use crate::seh::{self, ThreadKind};
use crate::types::{
    registry_path, service_name, DriverExtension, DriverInitialize, DriverObject, NtStatus, OwnedUnicode, UnicodeString,
};

/// Why a driver could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `dlopen` refused (missing file, unresolved symbol, wrong architecture).
    #[error("cannot load {path}: {message}")]
    Open {
        /// The file.
        path: String,
        /// `dlerror`'s text.
        message: String,
    },
    /// The driver has no `DriverEntry`.
    #[error("{0} has no DriverEntry")]
    NoEntry(String),
}

/// A loaded driver and its `DRIVER_OBJECT`.
#[derive(Debug)]
pub struct Driver {
    name: String,
    handle: *mut c_void,
    entry: DriverInitialize,
    object: Box<DriverObject>,
    extension: Box<DriverExtension>,
    registry_path: Box<UnicodeString>,
    /// The device stack the PnP manager built for it (see [`crate::pnp`]).
    pub(crate) pnp: crate::pnp::PnpState,
    /// Where the object is mapped in the host, when `/proc/self/maps` says.
    image: Option<(usize, usize)>,
    _texts: (Box<OwnedUnicode>, Box<OwnedUnicode>, Box<OwnedUnicode>),
}

fn dl_error() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated string valid until the next
    // dl* call on this thread; we copy it at once.
    let p = unsafe { libc::dlerror() };
    if p.is_null() {
        return "unknown error".to_string();
    }
    // SAFETY: non-null, NUL-terminated (dlerror's contract).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

impl Driver {
    /// Opens the shared object at `path` as the driver `name` (the name the
    /// analysis blames and the service name in its registry path).
    ///
    /// # Errors
    /// [`LoadError`].
    pub fn open(path: &Path, name: &str) -> Result<Driver, LoadError> {
        let _ = crate::exports();
        let shown = path.display().to_string();
        let open_err = |message: String| LoadError::Open { path: shown.clone(), message };
        let c_path = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| open_err(e.to_string()))?;
        // SAFETY: `c_path` is NUL-terminated. Opening runs the object's
        // constructors: the driver is trusted code the user asked to run.
        let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(open_err(dl_error()));
        }
        // SAFETY: `handle` is a live handle from dlopen; the name is NUL-terminated.
        let sym = unsafe { libc::dlsym(handle, c"DriverEntry".as_ptr()) };
        if sym.is_null() {
            // SAFETY: `handle` is live and not used again.
            unsafe { libc::dlclose(handle) };
            return Err(LoadError::NoEntry(shown));
        }
        // SAFETY: `DriverEntry` is declared in wdm.h as DRIVER_INITIALIZE, which
        // has exactly this C signature; a driver built against it defines it so.
        let entry = unsafe { std::mem::transmute::<*mut c_void, DriverInitialize>(sym) };
        let service = service_name(name);
        let mut driver_name = Box::new(OwnedUnicode::new(&format!("\\Driver\\{service}")));
        let mut path_text = Box::new(OwnedUnicode::new(&registry_path(service)));
        let mut service_text = Box::new(OwnedUnicode::new(service));
        let mut extension = Box::new(DriverExtension {
            driver_object: std::ptr::null_mut(),
            add_device: None,
            count: 0,
            service_key_name: service_text.as_unicode_string(),
        });
        let mut object = Box::new(DriverObject::new(driver_name.as_unicode_string(), &mut *extension, Some(entry)));
        extension.driver_object = &mut *object;
        let registry_path = Box::new(path_text.as_unicode_string());
        let image = image_range(path);
        Ok(Driver {
            name: name.to_string(),
            handle,
            entry,
            object,
            extension,
            registry_path,
            pnp: crate::pnp::PnpState::default(),
            image,
            _texts: (driver_name, path_text, service_text),
        })
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

    /// Runs `f`, which runs the driver's code on `machine`, with the driver's image
    /// registered there, so that a fault in its code is blamed on it (0xD1, 0xD5,
    /// 0xD6, IMAGE_NAME).
    pub(crate) fn in_image<R>(&self, machine: &Machine, f: impl FnOnce() -> R) -> R {
        let slot = self.image.and_then(|(start, end)| machine.images().load(&self.name, start, end));
        let r = f();
        if let Some(slot) = slot {
            machine.images().unload(slot);
        }
        r
    }

    /// Whether `DriverEntry` registered a `DriverUnload`.
    pub fn has_unload(&self) -> bool {
        self.object.driver_unload.is_some()
    }

    /// Runs driver code `call`, the driver's `routine` (at host address `address`),
    /// on processor `cpu` of `machine` under its watchdog, and checks the IRQL it
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
        let r = self.in_image(machine, || {
            seh::run_as(ThreadKind::System, || {
                machine.run_driver(cpu, |c| {
                    let entry = c.irql();
                    let r = context::enter(c, routine, call);
                    check_return(c, Caller::Worker, address as u64, None, entry)?;
                    Ok(r)
                })
            })
        });
        context::leave(r).map_err(|mut b| {
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
        let path: *mut UnicodeString = &mut *self.registry_path;
        let entry = self.entry;
        // SAFETY: `entry` is the driver's DriverEntry (see `open`); `object` and
        // `path` point to live boxes this `Driver` owns, not otherwise borrowed
        // during the call. The library stays open while `self` lives.
        self.call(machine, cpu, ("DriverEntry", entry as usize), || unsafe { entry(object, path) })
    }

    /// Calls the `DriverUnload` that `DriverEntry` registered, if any. Returns
    /// whether there was one.
    ///
    /// # Errors
    /// The bugcheck that stopped the machine.
    pub fn unload(&mut self, machine: &Machine, cpu: u32) -> Result<bool, BugCheck> {
        let Some(unload) = self.object.driver_unload else { return Ok(false) };
        let object: *mut DriverObject = &mut *self.object;
        // SAFETY: `unload` is the routine the driver stored in its DRIVER_OBJECT,
        // of type PDRIVER_UNLOAD; `object` is the live box it was given.
        self.call(machine, cpu, ("DriverUnload", unload as usize), || unsafe { unload(object) })?;
        Ok(true)
    }
}

/// The host address range the loaded object at `path` occupies: from the first to
/// the end of the last of its mappings in `/proc/self/maps`.
fn image_range(path: &Path) -> Option<(usize, usize)> {
    let path = path.canonicalize().ok()?;
    let path = path.to_str()?;
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let ranges = maps.lines().filter(|l| l.ends_with(path)).filter_map(|l| {
        let (start, end) = l.split_whitespace().next()?.split_once('-')?;
        Some((usize::from_str_radix(start, 16).ok()?, usize::from_str_radix(end, 16).ok()?))
    });
    ranges.reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SAFETY: `handle` came from dlopen and is closed once; no driver code runs
        // after this (calls need `&mut self` or `&self`, which end here).
        unsafe { libc::dlclose(self.handle) };
    }
}
