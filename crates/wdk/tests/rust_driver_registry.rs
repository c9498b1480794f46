//! A Rust driver's registry (issue 11 item 4): like a C driver under `ntmem run`, it
//! receives `RegistryPath` as a `PUNICODE_STRING` naming its service key, which
//! exists with a `Parameters` subkey holding the scenario's `[registry]` values.

use std::ffi::c_void;

use ntmem_wdk::cm::{ZwOpenKey, ZwQueryValueKey};
use ntmem_wdk::ex::{ExAllocatePoolWithTag, ExFreePoolWithTag};
use ntmem_wdk::harness::driver::NON_PAGED_POOL;
use ntmem_wdk::harness::{tag, DriverEntryArgs, Harness, RustDriver};
use ntmem_wdk::ob::ZwClose;
use ntmem_wdk::types::{NtStatus, UnicodeString, STATUS_SUCCESS};

/// `OBJECT_ATTRIBUTES` (x64, 0x30 bytes).
#[repr(C)]
struct ObjectAttributes {
    length: u32,
    root_directory: u64,
    object_name: *const UnicodeString,
    attributes: u32,
    security_descriptor: *const c_void,
    security_quality_of_service: *const c_void,
}

/// `OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE`.
const ATTRIBUTES: u32 = 0x40 | 0x200;
/// `KeyValuePartialInformation`.
const PARTIAL: u32 = 2;
const TAG: u32 = tag(*b"Regt");

/// What the registry routines read and write, in nonpaged pool: driver memory is
/// simulated memory (a Rust driver's own heap is not in the machine).
#[repr(C)]
struct Scratch {
    attributes: ObjectAttributes,
    name: UnicodeString,
    text: [u16; 32],
    key: u64,
    result: u32,
    buffer: [u8; 128],
}

/// A zeroed [`Scratch`] in nonpaged pool, freed on drop.
struct Pool(*mut Scratch);

impl Pool {
    fn new() -> Pool {
        let p = ExAllocatePoolWithTag(NON_PAGED_POOL, std::mem::size_of::<Scratch>(), TAG).cast::<Scratch>();
        assert!(!p.is_null());
        // SAFETY: a fresh block of the size of Scratch.
        unsafe { p.cast::<u8>().write_bytes(0, std::mem::size_of::<Scratch>()) };
        Pool(p)
    }

    /// The scratch area with `name` as its UNICODE_STRING.
    fn named(&mut self, name: &str) -> &mut Scratch {
        // SAFETY: our own block, zeroed, of the size of Scratch.
        let s = unsafe { &mut *self.0 };
        let units: Vec<u16> = name.encode_utf16().collect();
        s.text[..units.len()].copy_from_slice(&units);
        s.name = UnicodeString {
            length: 2 * units.len() as u16,
            maximum_length: 2 * units.len() as u16,
            buffer: s.text.as_mut_ptr(),
        };
        s
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        ExFreePoolWithTag(self.0.cast(), TAG);
    }
}

/// The key `name` names (relative to `root`, 0 for none).
fn open(root: u64, name: *const UnicodeString) -> Result<u64, NtStatus> {
    let mut pool = Pool::new();
    let s = pool.named("");
    s.attributes = ObjectAttributes {
        length: std::mem::size_of::<ObjectAttributes>() as u32,
        root_directory: root,
        object_name: name,
        attributes: ATTRIBUTES,
        security_descriptor: std::ptr::null(),
        security_quality_of_service: std::ptr::null(),
    };
    // SAFETY: a writable handle slot and an OBJECT_ATTRIBUTES naming a UNICODE_STRING.
    let status = unsafe { ZwOpenKey(&mut s.key, 0x20019, std::ptr::from_ref(&s.attributes).cast()) };
    if status == STATUS_SUCCESS {
        Ok(s.key)
    } else {
        Err(status)
    }
}

/// The key `name` under `root`.
fn open_named(root: u64, name: &str) -> Result<u64, NtStatus> {
    let mut pool = Pool::new();
    let s = pool.named(name);
    open(root, &s.name)
}

/// `(Type, Data)` of value `name` of `key`, from KEY_VALUE_PARTIAL_INFORMATION.
fn value(key: u64, name: &str) -> Result<(u32, Vec<u8>), NtStatus> {
    let mut pool = Pool::new();
    let s = pool.named(name);
    // SAFETY: the name, a 128-byte buffer and a result slot, all in our pool block.
    let status = unsafe {
        ZwQueryValueKey(key, &s.name, PARTIAL, s.buffer.as_mut_ptr().cast(), s.buffer.len() as u32, &mut s.result)
    };
    if status != STATUS_SUCCESS {
        return Err(status);
    }
    let word = |o: usize| u32::from_le_bytes(s.buffer[o..o + 4].try_into().expect("4 bytes"));
    Ok((word(4), s.buffer[12..12 + word(8) as usize].to_vec()))
}

/// Reads its own Parameters in DriverEntry and keeps what it found.
#[derive(Default)]
struct ParametersDriver {
    path: String,
    buffer_size: Option<(u32, Vec<u8>)>,
    name: Option<(u32, Vec<u8>)>,
    missing: Option<NtStatus>,
}

impl RustDriver for ParametersDriver {
    fn driver_entry(&mut self, args: &mut DriverEntryArgs<'_>) -> NtStatus {
        // SAFETY: the harness's RegistryPath: a UNICODE_STRING over `Length` bytes.
        let path = unsafe { &*args.registry_path_unicode };
        // SAFETY: as above.
        let text = unsafe { std::slice::from_raw_parts(path.buffer, usize::from(path.length / 2)) };
        self.path = String::from_utf16_lossy(text);
        let service = match open(0, path) {
            Ok(k) => k,
            Err(s) => return s,
        };
        let Ok(key) = open_named(service, "Parameters") else { return -1 };
        self.buffer_size = value(key, "BufferSize").ok();
        self.name = value(key, "Name").ok();
        self.missing = value(key, "Missing").err();
        ZwClose(key);
        ZwClose(service);
        args.set_unload();
        STATUS_SUCCESS
    }
}

#[test]
fn a_rust_driver_gets_its_service_key_and_the_scenarios_parameters() {
    let text = "[registry]\nBufferSize = { dword = 4096 }\nName = { sz = \"nic\" }\n";
    let (harness, steps) = Harness::from_scenario("registry.toml", text).unwrap();
    let mut driver = ParametersDriver::default();
    let report = harness.run("params.sys", &mut driver, &steps);
    assert!(report.clean(), "{report:?}");
    assert_eq!(driver.path, "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\params");
    assert_eq!(driver.buffer_size, Some((4, 4096u32.to_le_bytes().to_vec())), "REG_DWORD 4096");
    let nic: Vec<u8> = "nic\0".encode_utf16().flat_map(u16::to_le_bytes).collect();
    assert_eq!(driver.name, Some((1, nic)), "REG_SZ with its NUL");
    assert_eq!(driver.missing, Some(0xC000_0034_u32 as NtStatus), "STATUS_OBJECT_NAME_NOT_FOUND");
    assert!(report.pool.iter().all(|r| r.tag.to_string() != "NtRp"), "RegistryPath is no driver's pool");
}

#[test]
fn without_a_scenario_the_parameters_key_exists_and_is_empty() {
    let harness = Harness::boot_default().unwrap();
    let mut driver = ParametersDriver::default();
    let report = harness.run("bare.sys", &mut driver, &[]);
    assert!(report.clean(), "{report:?}");
    assert_eq!(driver.buffer_size, None);
    assert_eq!(driver.missing, Some(0xC000_0034_u32 as NtStatus));
}
