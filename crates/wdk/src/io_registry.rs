//! `IoOpenDeviceRegistryKey` (learn.microsoft.com, "IoOpenDeviceRegistryKey function
//! (wdm.h)", "Opening a Device's Hardware Key", "Opening a Device's Software Key"): a
//! handle to a device's hardware key (`PLUGPLAY_REGKEY_DEVICE`, 1: its instance key's
//! `Device Parameters` subkey under `…\CurrentControlSet\Enum`) or software key
//! (`PLUGPLAY_REGKEY_DRIVER`, 2: its `…\Control\Class\{class GUID}\0000` key), with
//! `PLUGPLAY_REGKEY_CURRENT_HWPROFILE` (4) the same path under the current hardware
//! profile. The keys are created on the first open. `DeviceObject` must be a PDO
//! (`DO_BUS_ENUMERATED_DEVICE`): anything else is STATUS_INVALID_DEVICE_REQUEST;
//! another key type is STATUS_INVALID_PARAMETER. PASSIVE_LEVEL.
//!
//! **Where it differs.** The machine's one bus device has the instance path
//! `ROOT\NTMEM\0000` and the network adapters' class, whatever PDO is passed.

use std::ffi::c_void;

use ntmem_kernel::cm;
use ntmem_kernel::io::device::DeviceFlags;
use ntmem_kernel::io::DeviceObject;
use ntmem_kernel::trap::pageable_code;

use crate::cm::{new_handle, store};
use crate::context::{checked, kernel, va_of};
use crate::types::NtStatus;

/// `STATUS_INVALID_DEVICE_REQUEST`.
const STATUS_INVALID_DEVICE_REQUEST: NtStatus = 0xC000_0010_u32 as NtStatus;
/// `PLUGPLAY_REGKEY_DEVICE`.
const PLUGPLAY_REGKEY_DEVICE: u32 = 1;
/// `PLUGPLAY_REGKEY_DRIVER`.
const PLUGPLAY_REGKEY_DRIVER: u32 = 2;
/// `PLUGPLAY_REGKEY_CURRENT_HWPROFILE`.
const PLUGPLAY_REGKEY_CURRENT_HWPROFILE: u32 = 4;
/// The hardware key of the machine's bus device.
const HARDWARE_KEY: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Enum\\ROOT\\NTMEM\\0000\\Device Parameters";
/// Its software key (the Net class, {4d36e972-e325-11ce-bfc1-08002be10318}).
const SOFTWARE_KEY: &str =
    "\\Registry\\Machine\\System\\CurrentControlSet\\Control\\Class\\{4d36e972-e325-11ce-bfc1-08002be10318}\\0000";
/// Where the current hardware profile's copies live.
const CURRENT_PROFILE: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Hardware Profiles\\Current";

/// `IoOpenDeviceRegistryKey(DeviceObject, DevInstKeyType, DesiredAccess,
/// DevInstRegKey)`: see the module docs.
///
/// # Safety
/// Driver code passes its device object and handle pointer (checked: a bad one stops
/// as on Windows).
pub unsafe extern "win64" fn IoOpenDeviceRegistryKey(
    device: *mut c_void,
    key_type: u32,
    _access: u32,
    handle: *mut u64,
) -> NtStatus {
    kernel(|cpu| {
        pageable_code(cpu, IoOpenDeviceRegistryKey as *const () as u64)?;
        checked(cpu, handle.cast(), 8)?;
        checked(cpu, device, 0x150)?;
        if !DeviceObject(va_of(cpu, device)).flags(cpu)?.contains(DeviceFlags::BUS_ENUMERATED_DEVICE) {
            return Ok(STATUS_INVALID_DEVICE_REQUEST);
        }
        let key = match key_type & !PLUGPLAY_REGKEY_CURRENT_HWPROFILE {
            PLUGPLAY_REGKEY_DEVICE => HARDWARE_KEY,
            PLUGPLAY_REGKEY_DRIVER => SOFTWARE_KEY,
            _ => return Ok(cm::STATUS_INVALID_PARAMETER),
        };
        let path = if key_type & PLUGPLAY_REGKEY_CURRENT_HWPROFILE != 0 {
            format!("{CURRENT_PROFILE}{}", &key["\\Registry\\Machine".len()..])
        } else {
            key.to_string()
        };
        let path: Vec<u16> = path.encode_utf16().collect();
        let registry = cpu.machine().registry();
        let now = cpu.machine().now_ms().saturating_mul(10_000);
        let opened = registry.create_path(&path, now).and_then(|()| registry.open(&path));
        Ok(match opened {
            Ok(object) => {
                store(cpu, handle, new_handle(cpu, object))?;
                0
            }
            Err(s) => s,
        })
    })
}
