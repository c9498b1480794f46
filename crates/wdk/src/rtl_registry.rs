//! The run-time library's registry routines: `RtlQueryRegistryValues`,
//! `RtlWriteRegistryValue`, `RtlCheckRegistryKey`, `RtlCreateRegistryKey`,
//! `RtlDeleteRegistryValue` (learn.microsoft.com, each routine's page in wdm.h, and
//! "RTL_QUERY_REGISTRY_TABLE structure").
//!
//! `RelativeTo` is one of `RTL_REGISTRY_ABSOLUTE` (0: `Path` is a full path),
//! `RTL_REGISTRY_SERVICES` (1), `RTL_REGISTRY_CONTROL` (2), `RTL_REGISTRY_WINDOWS_NT`
//! (3), `RTL_REGISTRY_DEVICEMAP` (4), `RTL_REGISTRY_USER` (5), or
//! `RTL_REGISTRY_HANDLE` (0x40000000: `Path` is a key handle), optionally with
//! `RTL_REGISTRY_OPTIONAL` (0x80000000: a missing key is no error); anything else is
//! STATUS_INVALID_PARAMETER.
//!
//! `RTL_QUERY_REGISTRY_TABLE` (x64, 0x38 bytes): `QueryRoutine` 0, `Flags` 8, `Name`
//! 0x10, `EntryContext` 0x18, `DefaultType` 0x20, `DefaultData` 0x28,
//! `DefaultLength` 0x30. The table ends at an entry whose `QueryRoutine` and `Name`
//! are both NULL. For each entry, in order:
//!
//! * `RTL_QUERY_REGISTRY_SUBKEY` (1): `Name` is a subkey of `Path`, and this and the
//!   following entries query it; `RTL_QUERY_REGISTRY_TOPKEY` (2) goes back to `Path`.
//!   A missing subkey is STATUS_OBJECT_NAME_NOT_FOUND with
//!   `RTL_QUERY_REGISTRY_REQUIRED`, else its entries are skipped.
//! * `RTL_QUERY_REGISTRY_NOVALUE` (8): the routine is called once with no value.
//! * A NULL `Name` (not direct): the routine is called for every value of the key.
//! * A missing value: STATUS_OBJECT_NAME_NOT_FOUND with `REQUIRED` (4); else, when
//!   `DefaultType` is not REG_NONE, `DefaultData` / `DefaultLength` stand in for it
//!   (a `DefaultLength` of 0 for a string type measures the string); else nothing
//!   happens.
//! * `RTL_QUERY_REGISTRY_DIRECT` (0x20): no routine; `EntryContext` receives the
//!   value — a string type into the `UNICODE_STRING` it points to (its buffer
//!   allocated from paged pool, tag `Ustr`, freed with `RtlFreeUnicodeString`, when
//!   `Buffer` is NULL; STATUS_BUFFER_TOO_SMALL when the caller's buffer cannot hold
//!   it with a NUL), data of at most 4 bytes stored at `EntryContext`, longer data
//!   into a buffer whose first LONG gives its size: negative, the data alone;
//!   positive, length, type, then the data (STATUS_BUFFER_TOO_SMALL when it does not
//!   fit). With `RTL_QUERY_REGISTRY_TYPECHECK` (0x100) a value whose type is not
//!   `DefaultType >> 24` is STATUS_OBJECT_TYPE_MISMATCH and nothing is written.
//! * Otherwise the routine is called with the value's name, type, data and length,
//!   `Context` and `EntryContext`: a REG_MULTI_SZ once per string (as REG_SZ) unless
//!   `RTL_QUERY_REGISTRY_NOEXPAND` (0x10). An error it returns ends the query with it.
//! * `RTL_QUERY_REGISTRY_DELETE` (0x40): the value is deleted once queried.
//!
//! The name and data a routine receives are in paged pool (tag `Rqrv`, ntmem's
//! choice), freed when it returns.
//!
//! REG_EXPAND_SZ values reach the routine or the `EntryContext` expanded, as REG_SZ,
//! unless `RTL_QUERY_REGISTRY_NOEXPAND`: `%NAME%` references are replaced from the
//! `Environment` block, or without one from the system's variables
//! ([`ntmem_kernel::rtl::environment`], which says where that differs).
//! `ZwQueryValueKey` returns them as stored.

use std::ffi::c_void;

use ntmem_kernel::cm::{self, Value, REG_EXPAND_SZ, REG_MULTI_SZ, REG_NONE, REG_SZ};
use ntmem_kernel::ex::pool::{self, NtStatus as KStatus, PoolTag, PoolType};
use ntmem_kernel::rtl::convert;
use ntmem_kernel::rtl::environment::{self, Variable};
use ntmem_kernel::trap::pageable_code;
use ntmem_kernel::{BugCheck, Cpu};

use crate::cm::{key_object, wide};
use crate::context::{checked, checked_all, host_ptr, kernel, va_of};
use crate::types::NtStatus;

/// `RTL_REGISTRY_HANDLE`.
const RTL_REGISTRY_HANDLE: u32 = 0x4000_0000;
/// `RTL_REGISTRY_OPTIONAL`.
const RTL_REGISTRY_OPTIONAL: u32 = 0x8000_0000;
/// `RTL_QUERY_REGISTRY_SUBKEY`.
const SUBKEY: u32 = 0x1;
/// `RTL_QUERY_REGISTRY_TOPKEY`.
const TOPKEY: u32 = 0x2;
/// `RTL_QUERY_REGISTRY_REQUIRED`.
const REQUIRED: u32 = 0x4;
/// `RTL_QUERY_REGISTRY_NOVALUE`.
const NOVALUE: u32 = 0x8;
/// `RTL_QUERY_REGISTRY_NOEXPAND`.
const NOEXPAND: u32 = 0x10;
/// `RTL_QUERY_REGISTRY_DIRECT`.
const DIRECT: u32 = 0x20;
/// `RTL_QUERY_REGISTRY_DELETE`.
const DELETE: u32 = 0x40;
/// `RTL_QUERY_REGISTRY_TYPECHECK`.
const TYPECHECK: u32 = 0x100;
/// `sizeof(RTL_QUERY_REGISTRY_TABLE)` on x64.
const ENTRY_SIZE: usize = 0x38;
/// The pool tag of the value a query routine receives (ntmem's choice).
const QUERY_TAG: PoolTag = PoolTag(u32::from_le_bytes(*b"Rqrv"));
/// `STATUS_BUFFER_TOO_SMALL`.
const STATUS_BUFFER_TOO_SMALL: NtStatus = cm::info::STATUS_BUFFER_TOO_SMALL;
/// `STATUS_OBJECT_TYPE_MISMATCH`.
const STATUS_OBJECT_TYPE_MISMATCH: NtStatus = 0xC000_0024_u32 as NtStatus;
/// The longest path read from a driver's `PCWSTR`, in characters (a
/// `UNICODE_STRING`'s limit).
const MAX_PATH_CHARS: usize = 0x7FFF;

/// `PRTL_QUERY_REGISTRY_ROUTINE`.
type QueryRoutine = unsafe extern "win64" fn(*const u16, u32, *mut c_void, u32, *mut c_void, *mut c_void) -> NtStatus;

/// A routine's outcome: a bugcheck stops the machine, else a status.
type Outcome<T> = Result<Result<T, NtStatus>, BugCheck>;

/// The driver's NUL-terminated string at `p` (each character checked mapped); at most
/// [`MAX_PATH_CHARS`] (longer: STATUS_INVALID_PARAMETER).
fn terminated(cpu: &Cpu<'_>, p: *const u16) -> Outcome<Vec<u16>> {
    let mut out = Vec::new();
    loop {
        let c = wide(cpu, p.wrapping_add(out.len()), 1)?[0];
        if c == 0 {
            return Ok(Ok(out));
        }
        if out.len() == MAX_PATH_CHARS {
            return Ok(Err(cm::STATUS_INVALID_PARAMETER));
        }
        out.push(c);
    }
}

/// The absolute path `RelativeTo` and `Path` name (NULL `Path`: the base itself).
fn key_path(cpu: &Cpu<'_>, relative_to: u32, path: *const u16) -> Outcome<Vec<u16>> {
    if relative_to & RTL_REGISTRY_HANDLE != 0 {
        let object = match key_object(cpu, path as u64) {
            Ok(o) => o,
            Err(s) => return Ok(Err(s)),
        };
        return Ok(cpu.machine().registry().path_of(object).ok_or(cm::STATUS_KEY_DELETED));
    }
    let base = match relative_to & !RTL_REGISTRY_OPTIONAL {
        0 => "",
        1 => cm::SERVICES,
        2 => cm::CONTROL,
        3 => cm::WINDOWS_NT,
        4 => cm::DEVICEMAP,
        5 => cm::USER,
        _ => return Ok(Err(cm::STATUS_INVALID_PARAMETER)),
    };
    let path = if path.is_null() {
        Vec::new()
    } else {
        match terminated(cpu, path)? {
            Ok(p) => p,
            Err(s) => return Ok(Err(s)),
        }
    };
    let base: Vec<u16> = base.encode_utf16().collect();
    Ok(Ok(if base.is_empty() { path } else { cm::under(&base, &path) }))
}

/// A key object for `RelativeTo` / `Path`, opened (or created, last component only).
fn open(cpu: &Cpu<'_>, relative_to: u32, path: *const u16, create: bool) -> Outcome<u64> {
    Ok(key_path(cpu, relative_to, path)?.and_then(|p| {
        let registry = cpu.machine().registry();
        if create {
            registry.create(&p, cpu.machine().now_ms().saturating_mul(10_000)).map(|(o, _)| o)
        } else {
            registry.open(&p)
        }
    }))
}

/// One table entry as the driver wrote it.
#[derive(Clone, Copy, Debug)]
struct Entry {
    routine: Option<QueryRoutine>,
    flags: u32,
    name: *const u16,
    context: *mut c_void,
    default_type: u32,
    default_data: *const c_void,
    default_length: u32,
}

fn entry(cpu: &Cpu<'_>, table: *const c_void, index: usize) -> Result<Entry, BugCheck> {
    let at = checked(cpu, table.wrapping_byte_add(index * ENTRY_SIZE).cast_mut(), ENTRY_SIZE as u64)?;
    // SAFETY: the entry's 0x38 bytes are mapped (checked above); a routine pointer is
    // the driver's (called only as the table says).
    unsafe {
        Ok(Entry {
            routine: at.cast::<Option<QueryRoutine>>().read_unaligned(),
            flags: at.add(8).cast::<u32>().read_unaligned(),
            name: at.add(0x10).cast::<*const u16>().read_unaligned(),
            context: at.add(0x18).cast::<*mut c_void>().read_unaligned(),
            default_type: at.add(0x20).cast::<u32>().read_unaligned(),
            default_data: at.add(0x28).cast::<*const c_void>().read_unaligned(),
            default_length: at.add(0x30).cast::<u32>().read_unaligned(),
        })
    }
}

fn is_string(kind: u32) -> bool {
    matches!(kind, REG_SZ | REG_EXPAND_SZ | REG_MULTI_SZ)
}

/// The default an entry gives for a missing value (`DefaultLength` 0 measures a
/// string type: to its NUL, or its double NUL for REG_MULTI_SZ, terminators
/// included).
fn default_value(cpu: &Cpu<'_>, e: &Entry, name: Vec<u16>) -> Result<Value, BugCheck> {
    let data = if e.default_length == 0 && is_string(e.default_type) && !e.default_data.is_null() {
        let p = e.default_data.cast::<u16>();
        let mut units = Vec::new();
        loop {
            let c = wide(cpu, p.wrapping_add(units.len()), 1)?[0];
            units.push(c);
            let ends = c == 0 && (e.default_type != REG_MULTI_SZ || units.len() == 1 || units[units.len() - 2] == 0);
            if ends || units.len() > MAX_PATH_CHARS {
                break;
            }
        }
        units.iter().flat_map(|c| c.to_le_bytes()).collect()
    } else if e.default_length == 0 {
        Vec::new()
    } else {
        let at = checked_all(cpu, e.default_data.cast_mut(), u64::from(e.default_length))?;
        // SAFETY: every page of `DefaultLength` bytes is mapped (checked above).
        unsafe { std::slice::from_raw_parts(at, e.default_length as usize) }.to_vec()
    };
    Ok(Value { name, kind: e.default_type, data })
}

/// Stores a value for an `RTL_QUERY_REGISTRY_DIRECT` entry (see the module docs).
fn direct(cpu: &Cpu<'_>, e: &Entry, v: &Value) -> Outcome<()> {
    if e.flags & TYPECHECK != 0 && e.default_type >> 24 != v.kind {
        return Ok(Err(STATUS_OBJECT_TYPE_MISMATCH));
    }
    let len = v.data.len();
    if is_string(v.kind) {
        let mut bytes = v.data.clone();
        if bytes.len() >= 2 && bytes[bytes.len() - 2..] == [0, 0] {
            bytes.truncate(bytes.len() - 2);
        }
        bytes.truncate(bytes.len() & !1);
        let s = checked(cpu, e.context, 0x10)?;
        // SAFETY: the UNICODE_STRING's 16 bytes are mapped (checked above).
        let allocate = u8::from(unsafe { s.add(8).cast::<*mut u8>().read_unaligned() }.is_null());
        let n = bytes.len();
        let sized = crate::rtl_convert::destination(cpu, "RtlQueryRegistryValues", e.context, allocate, 2, |to| {
            convert::size_terminated(n, 2, to)
        })?;
        return Ok(match sized {
            Ok((h, sized, buffer)) => {
                // SAFETY: `buffer` holds the string and its NUL (the sizing).
                unsafe { crate::rtl_convert::finish(&h, sized, buffer, &bytes, 2, allocate != 0) };
                Ok(())
            }
            Err(s) if s == KStatus::BUFFER_OVERFLOW.0 as NtStatus => Err(STATUS_BUFFER_TOO_SMALL),
            Err(s) => Err(s),
        });
    }
    if len <= 4 {
        if len > 0 {
            let at = checked(cpu, e.context, len as u64)?;
            // SAFETY: `len` mapped bytes (checked above).
            unsafe { std::ptr::copy_nonoverlapping(v.data.as_ptr(), at, len) };
        }
        return Ok(Ok(()));
    }
    let at = checked(cpu, e.context, 4)?;
    // SAFETY: 4 mapped bytes (checked above).
    let size = unsafe { at.cast::<i32>().read_unaligned() };
    let (header, room) = if size < 0 { (false, size.unsigned_abs() as usize) } else { (true, size as usize) };
    let needed = if header { len + 8 } else { len };
    if room < needed {
        return Ok(Err(STATUS_BUFFER_TOO_SMALL));
    }
    let at = checked_all(cpu, e.context, needed as u64)?;
    let mut out = Vec::with_capacity(needed);
    if header {
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.extend_from_slice(&v.kind.to_le_bytes());
    }
    out.extend_from_slice(&v.data);
    // SAFETY: `needed` mapped bytes (checked above).
    unsafe { std::ptr::copy_nonoverlapping(out.as_ptr(), at, needed) };
    Ok(Ok(()))
}

/// Calls the entry's routine with `name` (None: no value name) and `kind` / `data`,
/// both copied to paged pool for it; its status.
fn call(
    e: &Entry,
    routine: QueryRoutine,
    name: Option<&[u16]>,
    kind: u32,
    data: &[u8],
    context: *mut c_void,
) -> NtStatus {
    let name_bytes: Vec<u8> = name.map_or(Vec::new(), |n| n.iter().chain([&0]).flat_map(|c| c.to_le_bytes()).collect());
    let total = name_bytes.len() + data.len();
    let block = if total == 0 {
        None
    } else {
        let va = kernel(|cpu| pool::allocate(cpu, PoolType::PagedPool, total as u64, QUERY_TAG));
        let Some(va) = va else { return KStatus::INSUFFICIENT_RESOURCES.0 as NtStatus };
        let p = kernel(|cpu| Ok(host_ptr(cpu, Some(va)).cast::<u8>()));
        // SAFETY: a fresh pool block of `total` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(name_bytes.as_ptr(), p, name_bytes.len());
            std::ptr::copy_nonoverlapping(data.as_ptr(), p.add(name_bytes.len()), data.len());
        }
        Some(p)
    };
    let name_ptr = match (name, block) {
        (Some(_), Some(p)) => p.cast::<u16>().cast_const(),
        _ => std::ptr::null(),
    };
    let data_ptr = match block {
        Some(p) if !data.is_empty() => p.wrapping_add(name_bytes.len()).cast::<c_void>(),
        _ => std::ptr::null_mut(),
    };
    // SAFETY: the driver's routine, called as `RTL_QUERY_REGISTRY_ROUTINE` is declared.
    let status = unsafe { routine(name_ptr, kind, data_ptr, data.len() as u32, context, e.context) };
    if let Some(p) = block {
        kernel(|cpu| pool::free(cpu, va_of(cpu, p.cast()), Some(QUERY_TAG)));
    }
    status
}

/// The variables REG_EXPAND_SZ values expand with: the driver's `Environment`
/// block at `p` (read to its empty string, at most [`MAX_PATH_CHARS`] characters),
/// or the system's when `p` is NULL.
fn variables(cpu: &Cpu<'_>, p: *const u16) -> Result<Vec<Variable>, BugCheck> {
    if p.is_null() {
        return Ok(environment::system_environment(cpu.machine().profile().edition));
    }
    let mut block = Vec::new();
    while block.len() < MAX_PATH_CHARS {
        let c = wide(cpu, p.wrapping_add(block.len()), 1)?[0];
        block.push(c);
        if c == 0 && (block.len() == 1 || block[block.len() - 2] == 0) {
            break;
        }
    }
    Ok(environment::parse_block(&block))
}

/// A REG_EXPAND_SZ value expanded with `env`, as the REG_SZ it becomes.
fn expanded(v: &Value, env: &[Variable]) -> Value {
    let units: Vec<u16> = v.data.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    let text = units.split(|&c| c == 0).next().unwrap_or_default();
    let data = environment::expand(text, env).iter().chain([&0]).flat_map(|c| c.to_le_bytes()).collect();
    Value { name: v.name.clone(), kind: REG_SZ, data }
}

/// Hands value `v` to the entry (directly or through its routine), a REG_EXPAND_SZ
/// one expanded with `env` unless the entry says NOEXPAND.
fn deliver(e: &Entry, v: &Value, context: *mut c_void, env: &[Variable]) -> NtStatus {
    let expanded_value;
    let v = if v.kind == REG_EXPAND_SZ && e.flags & NOEXPAND == 0 {
        expanded_value = expanded(v, env);
        &expanded_value
    } else {
        v
    };
    if e.flags & DIRECT != 0 {
        return match kernel(|cpu| direct(cpu, e, v)) {
            Ok(()) => 0,
            Err(s) => s,
        };
    }
    let Some(routine) = e.routine else { return 0 };
    if v.kind == REG_MULTI_SZ && e.flags & NOEXPAND == 0 {
        let units: Vec<u16> = v.data.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        for s in units.split(|&c| c == 0).filter(|s| !s.is_empty()) {
            let bytes: Vec<u8> = s.iter().chain([&0]).flat_map(|c| c.to_le_bytes()).collect();
            let status = call(e, routine, Some(&v.name), REG_SZ, &bytes, context);
            if status < 0 {
                return status;
            }
        }
        return 0;
    }
    call(e, routine, Some(&v.name), v.kind, &v.data, context)
}

/// The values of `key` an entry asks for: all of them (NULL `Name`), the one named,
/// its default, or none; or the status that ends the query.
fn wanted(cpu: &Cpu<'_>, e: &Entry, key: u64) -> Outcome<Vec<Value>> {
    let registry = cpu.machine().registry();
    if e.name.is_null() {
        let mut all = Vec::new();
        while let Ok(v) = registry.value_at(key, all.len() as u32) {
            all.push(v);
        }
        return Ok(Ok(all));
    }
    let name = match terminated(cpu, e.name)? {
        Ok(n) => n,
        Err(s) => return Ok(Err(s)),
    };
    Ok(match registry.value(key, &name) {
        Ok(v) => Ok(vec![v]),
        Err(_) if e.flags & REQUIRED != 0 => Err(cm::STATUS_OBJECT_NAME_NOT_FOUND),
        Err(_) if e.default_type != REG_NONE => Ok(vec![default_value(cpu, e, name)?]),
        Err(_) => Ok(Vec::new()),
    })
}

/// The query loop over the table (the key objects are open; see the module docs).
fn query(top: u64, table: *const c_void, context: *mut c_void, env: &[Variable], opened: &mut Vec<u64>) -> NtStatus {
    let mut current = Some(top);
    for index in 0.. {
        let e = kernel(|cpu| entry(cpu, table, index));
        if e.routine.is_none() && e.name.is_null() {
            return 0;
        }
        if e.flags & (SUBKEY | TOPKEY) != 0 {
            current = if e.flags & TOPKEY != 0 {
                Some(top)
            } else {
                let sub = kernel(|cpu| {
                    let path = cpu.machine().registry().path_of(top).unwrap_or_default();
                    Ok(terminated(cpu, e.name)?.and_then(|n| cpu.machine().registry().open(&cm::under(&path, &n))))
                });
                match sub {
                    Ok(o) => {
                        opened.push(o);
                        Some(o)
                    }
                    Err(s) if e.flags & REQUIRED != 0 => return s,
                    Err(_) => None,
                }
            };
            if e.routine.is_none() {
                continue;
            }
        }
        let Some(key) = current else { continue };
        if e.routine.is_none() && e.flags & DIRECT == 0 {
            return cm::STATUS_INVALID_PARAMETER;
        }
        if e.flags & NOVALUE != 0 {
            if let Some(routine) = e.routine {
                let status = call(&e, routine, None, REG_NONE, &[], context);
                if status < 0 {
                    return status;
                }
            }
            continue;
        }
        // A SUBKEY entry with a routine gets every value of the subkey.
        let e_values = if e.flags & SUBKEY != 0 { Entry { name: std::ptr::null(), ..e } } else { e };
        let values = match kernel(|cpu| wanted(cpu, &e_values, key)) {
            Ok(v) => v,
            Err(s) => return s,
        };
        for v in &values {
            let status = deliver(&e, v, context, env);
            if status < 0 {
                return status;
            }
            if e.flags & DELETE != 0 {
                kernel(|cpu| Ok(cpu.machine().registry().delete_value(key, &v.name, 0).ok()));
            }
        }
    }
    0
}

/// `RtlQueryRegistryValues(RelativeTo, Path, QueryTable, Context, Environment)`: see
/// the module docs. PASSIVE_LEVEL.
///
/// # Safety
/// Driver code passes its table, strings and buffers (checked: a bad one stops as on
/// Windows); the table's routines are the driver's.
pub unsafe extern "win64" fn RtlQueryRegistryValues(
    relative_to: u32,
    path: *const u16,
    table: *const c_void,
    context: *mut c_void,
    environment: *mut c_void,
) -> NtStatus {
    let (top, env) = kernel(|cpu| {
        pageable_code(cpu, RtlQueryRegistryValues as *const () as u64)?;
        Ok((open(cpu, relative_to, path, false)?, variables(cpu, environment.cast())?))
    });
    let top = match top {
        Ok(o) => o,
        Err(_) if relative_to & RTL_REGISTRY_OPTIONAL != 0 => return 0,
        Err(s) => return s,
    };
    let mut opened = vec![top];
    let status = query(top, table, context, &env, &mut opened);
    kernel(|cpu| {
        opened.iter().for_each(|&o| cpu.machine().registry().close(o));
        Ok(())
    });
    status
}

/// `RtlWriteRegistryValue(RelativeTo, Path, ValueName, ValueType, ValueData,
/// ValueLength)`: sets the value, creating the key's last component if it is missing.
/// PASSIVE_LEVEL.
///
/// # Safety
/// As [`RtlQueryRegistryValues`]; `data` holds `length` bytes.
pub unsafe extern "win64" fn RtlWriteRegistryValue(
    relative_to: u32,
    path: *const u16,
    name: *const u16,
    kind: u32,
    data: *const c_void,
    length: u32,
) -> NtStatus {
    kernel(|cpu| {
        pageable_code(cpu, RtlWriteRegistryValue as *const () as u64)?;
        let key = match open(cpu, relative_to, path, true)? {
            Ok(k) => k,
            Err(s) => return Ok(s),
        };
        let name = match terminated(cpu, name)? {
            Ok(n) => n,
            Err(s) => return Ok(s),
        };
        let data = if length == 0 || length as usize > cm::MAX_VALUE_DATA {
            Vec::new()
        } else {
            let at = checked_all(cpu, data.cast_mut(), u64::from(length))?;
            // SAFETY: every page of `length` bytes is mapped (checked above).
            unsafe { std::slice::from_raw_parts(at, length as usize) }.to_vec()
        };
        let status = if length as usize > cm::MAX_VALUE_DATA {
            cm::STATUS_INVALID_PARAMETER
        } else {
            let now = cpu.machine().now_ms().saturating_mul(10_000);
            cpu.machine().registry().set_value(key, Value { name, kind, data }, now).err().unwrap_or(0)
        };
        cpu.machine().registry().close(key);
        Ok(status)
    })
}

/// `RtlCheckRegistryKey(RelativeTo, Path)`: STATUS_SUCCESS when the key exists,
/// else STATUS_OBJECT_NAME_NOT_FOUND. PASSIVE_LEVEL.
///
/// # Safety
/// As [`RtlQueryRegistryValues`].
pub unsafe extern "win64" fn RtlCheckRegistryKey(relative_to: u32, path: *const u16) -> NtStatus {
    kernel(|cpu| {
        pageable_code(cpu, RtlCheckRegistryKey as *const () as u64)?;
        Ok(match open(cpu, relative_to, path, false)? {
            Ok(k) => {
                cpu.machine().registry().close(k);
                0
            }
            Err(s) => s,
        })
    })
}

/// `RtlCreateRegistryKey(RelativeTo, Path)`: creates the key and every missing key
/// above it. PASSIVE_LEVEL.
///
/// # Safety
/// As [`RtlQueryRegistryValues`].
pub unsafe extern "win64" fn RtlCreateRegistryKey(relative_to: u32, path: *const u16) -> NtStatus {
    kernel(|cpu| {
        pageable_code(cpu, RtlCreateRegistryKey as *const () as u64)?;
        Ok(match key_path(cpu, relative_to, path)? {
            Ok(p) => {
                let now = cpu.machine().now_ms().saturating_mul(10_000);
                cpu.machine().registry().create_path(&p, now).err().unwrap_or(0)
            }
            Err(s) => s,
        })
    })
}

/// `RtlDeleteRegistryValue(RelativeTo, Path, ValueName)`: STATUS_OBJECT_NAME_NOT_FOUND
/// when the key or the value is missing. PASSIVE_LEVEL.
///
/// # Safety
/// As [`RtlQueryRegistryValues`].
pub unsafe extern "win64" fn RtlDeleteRegistryValue(relative_to: u32, path: *const u16, name: *const u16) -> NtStatus {
    kernel(|cpu| {
        pageable_code(cpu, RtlDeleteRegistryValue as *const () as u64)?;
        let key = match open(cpu, relative_to, path, false)? {
            Ok(k) => k,
            Err(s) => return Ok(s),
        };
        let status = match terminated(cpu, name)? {
            Ok(n) => cpu.machine().registry().delete_value(key, &n, 0).err().unwrap_or(0),
            Err(s) => s,
        };
        cpu.machine().registry().close(key);
        Ok(status)
    })
}
