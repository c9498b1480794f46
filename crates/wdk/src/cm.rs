//! The registry routines at the C boundary: `ZwOpenKey`, `ZwCreateKey`,
//! `ZwQueryValueKey`, `ZwEnumerateKey`, `ZwEnumerateValueKey`, `ZwQueryKey`,
//! `ZwSetValueKey`, `ZwDeleteValueKey` (learn.microsoft.com, each routine's page in
//! wdm.h). The keys and values are the machine's ([`ntmem_kernel::cm`]); the
//! information classes' bytes are [`ntmem_kernel::cm::info`]'s; a handle to a key is
//! a kernel handle in the object manager's table ([`crate::ob`]), closed by `ZwClose`.
//!
//! Every pointer a driver passes is checked mapped before it is touched (a bad one is
//! the stop the kernel's own touch of it gives, as for a kernel-mode caller on
//! Windows, which probes nothing). The routines are pageable (PASSIVE_LEVEL): at
//! DISPATCH_LEVEL or above they are 0x0A, as the touch of their paged-out code would
//! be. A handle that is not open is STATUS_INVALID_HANDLE; one to another kind of
//! object, STATUS_OBJECT_TYPE_MISMATCH. Access is not checked: kernel-mode callers'
//! handles are not (the object manager skips the check for KernelMode), and the
//! registry has no security descriptors here.
//!
//! `OBJECT_ATTRIBUTES` (x64, 0x30 bytes): `Length` 0, `RootDirectory` 8,
//! `ObjectName` 0x10, `Attributes` 0x18; a `Length` other than 0x30 is
//! STATUS_INVALID_PARAMETER. A name is absolute (`\Registry\…`) without a root
//! directory, else relative to the root key (and must not start with `\`:
//! STATUS_OBJECT_PATH_SYNTAX_BAD).

use std::ffi::c_void;

use ntmem_kernel::cm::info::{self, Answer};
use ntmem_kernel::cm::{self, Value};
use ntmem_kernel::ob::ObjectType;
use ntmem_kernel::trap::pageable_code;
use ntmem_kernel::{BugCheck, Cpu};

use crate::context::{checked, checked_all, kernel};
use crate::types::{NtStatus, UnicodeString};

/// `STATUS_INVALID_HANDLE`.
const STATUS_INVALID_HANDLE: NtStatus = 0xC000_0008_u32 as NtStatus;
/// `STATUS_OBJECT_TYPE_MISMATCH`.
const STATUS_OBJECT_TYPE_MISMATCH: NtStatus = 0xC000_0024_u32 as NtStatus;
/// `sizeof(OBJECT_ATTRIBUTES)` on x64.
const OBJECT_ATTRIBUTES_SIZE: u32 = 0x30;
/// `KEY_ALL_ACCESS`: what a key handle is recorded as granting.
const KEY_ALL_ACCESS: u32 = 0xF_003F;

/// A routine's outcome: a bugcheck stops the machine, else a status.
type Outcome<T> = Result<Result<T, NtStatus>, BugCheck>;

/// The characters of the driver's `UNICODE_STRING` at `s` (header and buffer checked
/// mapped); an odd `Length` drops its last byte.
pub(crate) fn unicode(cpu: &Cpu<'_>, s: *const UnicodeString) -> Result<Vec<u16>, BugCheck> {
    let at = checked(cpu, s.cast_mut().cast(), 0x10)?;
    // SAFETY: 16 mapped bytes (checked above).
    let (length, buffer) =
        unsafe { (at.cast::<u16>().read_unaligned(), at.add(8).cast::<*const u16>().read_unaligned()) };
    wide(cpu, buffer, usize::from(length / 2))
}

/// `chars` characters at `p`, checked mapped.
pub(crate) fn wide(cpu: &Cpu<'_>, p: *const u16, chars: usize) -> Result<Vec<u16>, BugCheck> {
    if chars == 0 {
        return Ok(Vec::new());
    }
    let at = checked_all(cpu, p.cast_mut().cast(), 2 * chars as u64)?;
    // SAFETY: every page of the `2 * chars` bytes is mapped (checked above).
    Ok((0..chars).map(|i| unsafe { at.cast::<u16>().add(i).read_unaligned() }).collect())
}

/// The key object `handle` names.
pub(crate) fn key_object(cpu: &Cpu<'_>, handle: u64) -> Result<u64, NtStatus> {
    match crate::ob::handle_entry(cpu, handle) {
        None => Err(STATUS_INVALID_HANDLE),
        Some(e) if e.object_type != ObjectType::Key => Err(STATUS_OBJECT_TYPE_MISMATCH),
        Some(e) => Ok(e.object),
    }
}

/// A new kernel handle to key object `object` (the handle holds its one reference).
pub(crate) fn new_handle(cpu: &Cpu<'_>, object: u64) -> u64 {
    let objects = cpu.machine().objects();
    objects.insert(object, ObjectType::Key, 0);
    objects.open(object, ObjectType::Key, KEY_ALL_ACCESS)
}

/// The absolute path `name` names, relative to the key `root` names when `root` is
/// not NULL.
pub(crate) fn resolve(cpu: &Cpu<'_>, root: u64, name: &[u16]) -> Result<Vec<u16>, NtStatus> {
    if root == 0 {
        return Ok(name.to_vec());
    }
    if name.first() == Some(&u16::from(b'\\')) {
        return Err(cm::STATUS_OBJECT_PATH_SYNTAX_BAD);
    }
    let base = cpu.machine().registry().path_of(key_object(cpu, root)?).ok_or(cm::STATUS_KEY_DELETED)?;
    Ok(cm::under(&base, name))
}

/// The path an `OBJECT_ATTRIBUTES` names.
fn attributes_path(cpu: &Cpu<'_>, attributes: *const c_void) -> Outcome<Vec<u16>> {
    let at = checked(cpu, attributes.cast_mut(), u64::from(OBJECT_ATTRIBUTES_SIZE))?;
    // SAFETY: the structure's 0x30 bytes are mapped (checked above).
    let (length, root, name) = unsafe {
        (
            at.cast::<u32>().read_unaligned(),
            at.add(8).cast::<u64>().read_unaligned(),
            at.add(0x10).cast::<*const UnicodeString>().read_unaligned(),
        )
    };
    if length != OBJECT_ATTRIBUTES_SIZE {
        return Ok(Err(cm::STATUS_INVALID_PARAMETER));
    }
    if name.is_null() {
        return Ok(Err(cm::STATUS_OBJECT_NAME_INVALID));
    }
    let name = unicode(cpu, name)?;
    Ok(resolve(cpu, root, &name))
}

/// Stores `value` at the driver's `p` (checked mapped).
pub(crate) fn store<T: Copy>(cpu: &Cpu<'_>, p: *mut T, value: T) -> Result<(), BugCheck> {
    let at = checked(cpu, p.cast(), std::mem::size_of::<T>() as u64)?;
    // SAFETY: `size_of::<T>()` mapped bytes (checked above).
    unsafe { at.cast::<T>().write_unaligned(value) };
    Ok(())
}

/// `ZwOpenKey(KeyHandle, DesiredAccess, ObjectAttributes)`: a handle to an existing
/// key; STATUS_OBJECT_NAME_NOT_FOUND when there is none (also when a key above it is
/// missing).
///
/// # Safety
/// Driver code passes its pointers (checked: a bad one stops as on Windows).
pub unsafe extern "win64" fn ZwOpenKey(handle: *mut u64, _access: u32, attributes: *const c_void) -> NtStatus {
    kernel(|cpu| {
        pageable_code(cpu, ZwOpenKey as *const () as u64)?;
        checked(cpu, handle.cast(), 8)?;
        let opened = attributes_path(cpu, attributes)?.and_then(|p| cpu.machine().registry().open(&p));
        Ok(match opened {
            Ok(object) => {
                store(cpu, handle, new_handle(cpu, object))?;
                0
            }
            Err(s) => s,
        })
    })
}

/// `ZwCreateKey(KeyHandle, DesiredAccess, ObjectAttributes, TitleIndex, Class,
/// CreateOptions, Disposition)`: opens the key, creating it if missing (its parent
/// must exist: STATUS_OBJECT_NAME_NOT_FOUND otherwise); `*Disposition`, when not NULL,
/// is REG_CREATED_NEW_KEY (1) or REG_OPENED_EXISTING_KEY (2). The class and the
/// options (volatile or not) are accepted and not kept.
///
/// # Safety
/// As [`ZwOpenKey`]; `disposition` is NULL or writable.
pub unsafe extern "win64" fn ZwCreateKey(
    handle: *mut u64,
    _access: u32,
    attributes: *const c_void,
    _title_index: u32,
    _class: *const UnicodeString,
    _options: u32,
    disposition: *mut u32,
) -> NtStatus {
    kernel(|cpu| {
        pageable_code(cpu, ZwCreateKey as *const () as u64)?;
        checked(cpu, handle.cast(), 8)?;
        if !disposition.is_null() {
            checked(cpu, disposition.cast(), 4)?;
        }
        let created = attributes_path(cpu, attributes)?
            .and_then(|p| cpu.machine().registry().create(&p, crate::ke_dispatcher::now(cpu)));
        Ok(match created {
            Ok((object, how)) => {
                store(cpu, handle, new_handle(cpu, object))?;
                if !disposition.is_null() {
                    store(cpu, disposition, how as u32)?;
                }
                0
            }
            Err(s) => s,
        })
    })
}

/// Stores an information class's answer in the driver's buffer of `length` bytes
/// and `*ResultLength`; its status.
fn answer(cpu: &Cpu<'_>, a: &Answer, buffer: *mut c_void, length: u32, result: *mut u32) -> Result<NtStatus, BugCheck> {
    if a.result_length.is_some() {
        checked(cpu, result.cast(), 4)?;
    }
    if let Some(end) = a.writes.iter().map(|(at, b)| at + b.len()).max() {
        let at = checked_all(cpu, buffer, end.min(length as usize) as u64)?;
        for (offset, bytes) in &a.writes {
            // SAFETY: every write ends within the first `end` bytes, all mapped
            // (checked above), and within the caller's `length` (`info::cut`).
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), at.add(*offset), bytes.len()) };
        }
    }
    if let Some(n) = a.result_length {
        store(cpu, result, n)?;
    }
    Ok(a.status)
}

/// The key object of `handle`, or the status that ends the call.
fn key_of(cpu: &Cpu<'_>, routine: u64, handle: u64) -> Outcome<u64> {
    pageable_code(cpu, routine)?;
    Ok(key_object(cpu, handle))
}

/// `ZwQueryValueKey(KeyHandle, ValueName, KeyValueInformationClass,
/// KeyValueInformation, Length, ResultLength)`: the value in the class asked
/// (`KeyValueBasicInformation`, `KeyValueFullInformation`,
/// `KeyValuePartialInformation`), with STATUS_BUFFER_TOO_SMALL /
/// STATUS_BUFFER_OVERFLOW and `*ResultLength` as documented (see
/// [`ntmem_kernel::cm::info`]); STATUS_OBJECT_NAME_NOT_FOUND when the key has no such
/// value.
///
/// # Safety
/// As [`ZwOpenKey`].
pub unsafe extern "win64" fn ZwQueryValueKey(
    key: u64,
    name: *const UnicodeString,
    class: u32,
    buffer: *mut c_void,
    length: u32,
    result: *mut u32,
) -> NtStatus {
    kernel(|cpu| {
        let object = match key_of(cpu, ZwQueryValueKey as *const () as u64, key)? {
            Ok(o) => o,
            Err(s) => return Ok(s),
        };
        let name = unicode(cpu, name)?;
        match cpu.machine().registry().value(object, &name) {
            Ok(v) => answer(cpu, &info::value_information(class, &v, length), buffer, length, result),
            Err(s) => Ok(s),
        }
    })
}

/// `ZwEnumerateValueKey(KeyHandle, Index, KeyValueInformationClass,
/// KeyValueInformation, Length, ResultLength)`: value number `Index`, in the order the
/// values were first set; STATUS_NO_MORE_ENTRIES past the last.
///
/// # Safety
/// As [`ZwOpenKey`].
pub unsafe extern "win64" fn ZwEnumerateValueKey(
    key: u64,
    index: u32,
    class: u32,
    buffer: *mut c_void,
    length: u32,
    result: *mut u32,
) -> NtStatus {
    kernel(|cpu| {
        let object = match key_of(cpu, ZwEnumerateValueKey as *const () as u64, key)? {
            Ok(o) => o,
            Err(s) => return Ok(s),
        };
        match cpu.machine().registry().value_at(object, index) {
            Ok(v) => answer(cpu, &info::value_information(class, &v, length), buffer, length, result),
            Err(s) => Ok(s),
        }
    })
}

/// `ZwEnumerateKey(KeyHandle, Index, KeyInformationClass, KeyInformation, Length,
/// ResultLength)`: subkey number `Index` (in the order of their upcased names) as
/// `KeyBasicInformation`, `KeyNodeInformation` or `KeyFullInformation`;
/// STATUS_NO_MORE_ENTRIES past the last.
///
/// # Safety
/// As [`ZwOpenKey`].
pub unsafe extern "win64" fn ZwEnumerateKey(
    key: u64,
    index: u32,
    class: u32,
    buffer: *mut c_void,
    length: u32,
    result: *mut u32,
) -> NtStatus {
    kernel(|cpu| {
        let object = match key_of(cpu, ZwEnumerateKey as *const () as u64, key)? {
            Ok(o) => o,
            Err(s) => return Ok(s),
        };
        if class == info::KEY_NAME {
            return Ok(cm::STATUS_INVALID_PARAMETER);
        }
        match cpu.machine().registry().subkey_at(object, index) {
            Ok(k) => {
                let a = info::key_information(class, &k, system_time(k.last_write), &[], length);
                answer(cpu, &a, buffer, length, result)
            }
            Err(s) => Ok(s),
        }
    })
}

/// A time since boot (100-ns units) as system time.
fn system_time(since_boot: u64) -> i64 {
    crate::ke::BOOT_SYSTEM_TIME.saturating_add(i64::try_from(since_boot).unwrap_or(i64::MAX))
}

/// `ZwQueryKey(KeyHandle, KeyInformationClass, KeyInformation, Length,
/// ResultLength)`: the key itself as `KeyBasicInformation`, `KeyNodeInformation`,
/// `KeyFullInformation` or `KeyNameInformation` (its full path).
///
/// # Safety
/// As [`ZwOpenKey`].
pub unsafe extern "win64" fn ZwQueryKey(
    key: u64,
    class: u32,
    buffer: *mut c_void,
    length: u32,
    result: *mut u32,
) -> NtStatus {
    kernel(|cpu| {
        let object = match key_of(cpu, ZwQueryKey as *const () as u64, key)? {
            Ok(o) => o,
            Err(s) => return Ok(s),
        };
        let registry = cpu.machine().registry();
        match (registry.query(object), registry.path_of(object)) {
            (Ok(k), Some(path)) => {
                let a = info::key_information(class, &k, system_time(k.last_write), &path, length);
                answer(cpu, &a, buffer, length, result)
            }
            (Err(s), _) => Ok(s),
            (_, None) => Ok(cm::STATUS_KEY_DELETED),
        }
    })
}

/// `ZwSetValueKey(KeyHandle, ValueName, TitleIndex, Type, Data, DataSize)`: creates
/// or replaces the value (a name longer than 16,383 characters or data over
/// [`cm::MAX_VALUE_DATA`] is STATUS_INVALID_PARAMETER). The data is stored as given,
/// whatever the type says.
///
/// # Safety
/// As [`ZwOpenKey`]; `data` holds `size` bytes.
pub unsafe extern "win64" fn ZwSetValueKey(
    key: u64,
    name: *const UnicodeString,
    _title_index: u32,
    kind: u32,
    data: *const c_void,
    size: u32,
) -> NtStatus {
    kernel(|cpu| {
        let object = match key_of(cpu, ZwSetValueKey as *const () as u64, key)? {
            Ok(o) => o,
            Err(s) => return Ok(s),
        };
        let name = unicode(cpu, name)?;
        if size as usize > cm::MAX_VALUE_DATA {
            return Ok(cm::STATUS_INVALID_PARAMETER);
        }
        let bytes = if size == 0 {
            Vec::new()
        } else {
            let at = checked_all(cpu, data.cast_mut(), u64::from(size))?;
            // SAFETY: every page of the `size` bytes is mapped (checked above).
            unsafe { std::slice::from_raw_parts(at, size as usize) }.to_vec()
        };
        let value = Value { name, kind, data: bytes };
        Ok(cpu.machine().registry().set_value(object, value, crate::ke_dispatcher::now(cpu)).err().unwrap_or(0))
    })
}

/// `ZwDeleteValueKey(KeyHandle, ValueName)`: STATUS_OBJECT_NAME_NOT_FOUND when there
/// is no such value; the values after it move up one index.
///
/// # Safety
/// As [`ZwOpenKey`].
pub unsafe extern "win64" fn ZwDeleteValueKey(key: u64, name: *const UnicodeString) -> NtStatus {
    kernel(|cpu| {
        let object = match key_of(cpu, ZwDeleteValueKey as *const () as u64, key)? {
            Ok(o) => o,
            Err(s) => return Ok(s),
        };
        let name = unicode(cpu, name)?;
        Ok(cpu.machine().registry().delete_value(object, &name, crate::ke_dispatcher::now(cpu)).err().unwrap_or(0))
    })
}
