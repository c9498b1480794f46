//! `cm`: the configuration manager — the registry as drivers see it
//! (learn.microsoft.com "Registry Trees and Keys for Devices and Drivers", "Using the
//! Registry in a Driver", "ZwCreateKey", "ZwOpenKey", "ZwQueryValueKey",
//! "ZwEnumerateKey", "ZwEnumerateValueKey", "ZwSetValueKey", "ZwDeleteValueKey").
//!
//! One registry per machine, in host memory: keys named by their path from
//! `\REGISTRY`, compared without case as Windows compares them; each key holds values
//! (a name, a `REG_*` type and bytes) in the order they were first set, and subkeys
//! enumerated in the order of their upcased names (a hive keeps its subkey index
//! sorted). Nothing is checked against security descriptors: every caller is the
//! kernel.
//!
//! An open key is a key object: [`Registry::open`] gives each open its own object
//! (as each `ZwOpenKey` creates a key body on Windows), which the object manager
//! ([`crate::ob`]) counts and names by a handle; [`Registry::close`] forgets it when
//! its last reference goes. Its "address" is an opaque number outside every address
//! space (a driver may pass it around, never touch it).
//!
//! The information classes' layouts are [`info`]'s.
//!
//! **Where it differs.** `CurrentControlSet` is a key of its own, not a link to
//! `ControlSet001`; keys have no class names, and nothing is ever written to disk
//! (every key is volatile).

pub mod info;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// An NTSTATUS as drivers see it.
pub type NtStatus = i32;

/// `REG_NONE`.
pub const REG_NONE: u32 = 0;
/// `REG_SZ`: a NUL-terminated UTF-16 string.
pub const REG_SZ: u32 = 1;
/// `REG_EXPAND_SZ`: a string with `%variables%`.
pub const REG_EXPAND_SZ: u32 = 2;
/// `REG_BINARY`.
pub const REG_BINARY: u32 = 3;
/// `REG_DWORD`: a little-endian ULONG.
pub const REG_DWORD: u32 = 4;
/// `REG_MULTI_SZ`: NUL-terminated strings, then one more NUL.
pub const REG_MULTI_SZ: u32 = 7;
/// `REG_QWORD`: a little-endian ULONGLONG.
pub const REG_QWORD: u32 = 11;

/// `STATUS_OBJECT_NAME_NOT_FOUND`.
pub const STATUS_OBJECT_NAME_NOT_FOUND: NtStatus = 0xC000_0034_u32 as NtStatus;
/// `STATUS_OBJECT_NAME_INVALID`.
pub const STATUS_OBJECT_NAME_INVALID: NtStatus = 0xC000_0033_u32 as NtStatus;
/// `STATUS_OBJECT_PATH_SYNTAX_BAD`.
pub const STATUS_OBJECT_PATH_SYNTAX_BAD: NtStatus = 0xC000_003B_u32 as NtStatus;
/// `STATUS_NO_MORE_ENTRIES` (a warning).
pub const STATUS_NO_MORE_ENTRIES: NtStatus = 0x8000_001A_u32 as NtStatus;
/// `STATUS_INVALID_PARAMETER`.
pub const STATUS_INVALID_PARAMETER: NtStatus = 0xC000_000D_u32 as NtStatus;
/// `STATUS_KEY_DELETED`.
pub const STATUS_KEY_DELETED: NtStatus = 0xC000_017C_u32 as NtStatus;

/// The longest key name component, in characters (Microsoft's "Registry Element
/// Size Limits": 255).
pub const MAX_KEY_NAME: usize = 255;
/// The longest value name, in characters ("Registry Element Size Limits": 16,383).
pub const MAX_VALUE_NAME: usize = 16_383;
/// The most bytes a value's data may hold here: 1 MB, within Windows' "available
/// memory" limit and far above what a driver's parameters need.
pub const MAX_VALUE_DATA: usize = 1 << 20;

/// `\Registry\Machine\System\CurrentControlSet\Services`: `RTL_REGISTRY_SERVICES`,
/// the parent of every driver's service key.
pub const SERVICES: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Services";
/// `\Registry\Machine\System\CurrentControlSet\Control`: `RTL_REGISTRY_CONTROL`.
pub const CONTROL: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Control";
/// `RTL_REGISTRY_WINDOWS_NT`.
pub const WINDOWS_NT: &str = "\\Registry\\Machine\\Software\\Microsoft\\Windows NT\\CurrentVersion";
/// `RTL_REGISTRY_DEVICEMAP`.
pub const DEVICEMAP: &str = "\\Registry\\Machine\\Hardware\\DeviceMap";
/// `RTL_REGISTRY_USER`: the current user's key (the kernel's: `.Default`).
pub const USER: &str = "\\Registry\\User\\.Default";
/// The memory manager's knobs (`NonPagedPoolSize`, `PagedPoolSize`, `SystemPages`).
pub const MEMORY_MANAGEMENT: &str =
    "\\Registry\\Machine\\System\\CurrentControlSet\\Control\\Session Manager\\Memory Management";

/// A value: its name as set, its type and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// The name (empty: the key's default value).
    pub name: Vec<u16>,
    /// `REG_*`.
    pub kind: u32,
    /// The data.
    pub data: Vec<u8>,
}

/// A key.
#[derive(Clone, Debug, Default)]
struct Key {
    /// The last path component as created (case kept).
    name: Vec<u16>,
    values: Vec<Value>,
    /// Simulated time of the last change, in 100-ns units since boot.
    last_write: u64,
}

/// What [`Registry::create`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// `REG_CREATED_NEW_KEY` (1).
    Created = 1,
    /// `REG_OPENED_EXISTING_KEY` (2).
    Opened = 2,
}

/// What a driver reads about a key (`KEY_*_INFORMATION`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySummary {
    /// The last component (for `KeyBasicInformation`, `KeyNodeInformation`) or the
    /// full path (`KeyNameInformation`).
    pub name: Vec<u16>,
    /// Last write, 100-ns units since boot.
    pub last_write: u64,
    /// Subkeys.
    pub subkeys: u32,
    /// The longest subkey name, bytes.
    pub max_name_len: u32,
    /// Values.
    pub values: u32,
    /// The longest value name, bytes.
    pub max_value_name_len: u32,
    /// The longest value data, bytes.
    pub max_value_data_len: u32,
}

#[derive(Debug, Default)]
struct Tree {
    /// Keys by upcased full path (`\REGISTRY\MACHINE\…`).
    keys: BTreeMap<Vec<u16>, Key>,
    /// Open key objects: object → upcased path.
    open: BTreeMap<u64, Vec<u16>>,
    next_object: u64,
}

/// The machine's registry.
#[derive(Debug)]
pub struct Registry(Mutex<Tree>);

/// Key objects' numbers start here: non-canonical on x64, outside every address
/// space a machine lays out, so never an address.
const KEY_OBJECT_BASE: u64 = 0x4B45_5900_0000_0000;

fn upcase(s: &[u16]) -> Vec<u16> {
    s.iter().map(|&c| crate::rtl::string::upcase(c)).collect()
}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

/// The components of an absolute path (`\Registry\…`), checked: empty components and
/// names longer than [`MAX_KEY_NAME`] are STATUS_OBJECT_NAME_INVALID.
fn components(path: &[u16]) -> Result<Vec<&[u16]>, NtStatus> {
    let rest = path.strip_prefix(&[u16::from(b'\\')]).ok_or(STATUS_OBJECT_PATH_SYNTAX_BAD)?;
    let parts: Vec<&[u16]> = rest.split(|&c| c == u16::from(b'\\')).collect();
    if parts.iter().any(|p| p.is_empty() || p.len() > MAX_KEY_NAME) {
        return Err(STATUS_OBJECT_NAME_INVALID);
    }
    Ok(parts)
}

fn join(parts: &[&[u16]]) -> Vec<u16> {
    let mut out = Vec::new();
    for p in parts {
        out.push(u16::from(b'\\'));
        out.extend_from_slice(p);
    }
    out
}

impl Default for Registry {
    /// The registry a machine boots with: `\Registry`, `Machine` with `System`
    /// (`CurrentControlSet` with `Services`, `Control`, `Enum`), `Software` and
    /// `Hardware\DeviceMap`, and `User\.Default`.
    fn default() -> Registry {
        let r = Registry(Mutex::new(Tree { next_object: 0, ..Tree::default() }));
        r.tree().keys.insert(upcase(&wide("\\Registry")), Key { name: wide("Registry"), ..Key::default() });
        for path in [SERVICES, CONTROL, WINDOWS_NT, DEVICEMAP, USER, MEMORY_MANAGEMENT] {
            r.create_path(&wide(path), 0).expect("the boot registry's paths are valid");
        }
        r
    }
}

impl Registry {
    fn tree(&self) -> MutexGuard<'_, Tree> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The registry a machine with `knobs` boots with: [`Registry::default`], and
    /// the memory manager's knobs as REG_DWORD values of `Memory Management`
    /// (`NonPagedPoolSize`, `PagedPoolSize`, `SystemPages`; 0 — the system's choice —
    /// for a knob the profile leaves alone, as Windows ships them). The memory manager
    /// sized itself from the same values.
    pub fn boot(knobs: &ntmem_machine::RegistryKnobs) -> Registry {
        let r = Registry::default();
        let key = r.open(&wide(MEMORY_MANAGEMENT)).expect("the boot registry has the key");
        for (name, knob) in [
            ("NonPagedPoolSize", knobs.non_paged_pool_size),
            ("PagedPoolSize", knobs.paged_pool_size),
            ("SystemPages", knobs.system_pages),
        ] {
            let dword = u32::try_from(knob.unwrap_or(0)).unwrap_or(u32::MAX);
            let value = Value { name: wide(name), kind: REG_DWORD, data: dword.to_le_bytes().to_vec() };
            r.set_value(key, value, 0).expect("a DWORD value is within the limits");
        }
        r.close(key);
        r
    }

    /// Creates `path` (absolute) and every missing key above it — what
    /// `RtlCreateRegistryKey` does, and what the system does for the service and
    /// hardware keys. `now` is the time of the change (100-ns units since boot).
    ///
    /// # Errors
    /// A bad path's status.
    pub fn create_path(&self, path: &[u16], now: u64) -> Result<(), NtStatus> {
        let parts = components(path)?;
        let mut t = self.tree();
        for n in 1..=parts.len() {
            let full = upcase(&join(&parts[..n]));
            t.keys.entry(full).or_insert_with(|| Key {
                name: parts[n - 1].to_vec(),
                values: Vec::new(),
                last_write: now,
            });
        }
        Ok(())
    }

    /// Opens the key at `path`: a new key object.
    ///
    /// # Errors
    /// STATUS_OBJECT_NAME_NOT_FOUND (no such key; also when a key above it is
    /// missing, as the registry answers), or a bad path's status.
    pub fn open(&self, path: &[u16]) -> Result<u64, NtStatus> {
        let full = upcase(&join(&components(path)?));
        let mut t = self.tree();
        if !t.keys.contains_key(&full) {
            return Err(STATUS_OBJECT_NAME_NOT_FOUND);
        }
        Ok(Self::new_object(&mut t, full))
    }

    fn new_object(t: &mut Tree, full: Vec<u16>) -> u64 {
        let object = KEY_OBJECT_BASE + 8 * t.next_object;
        t.next_object += 1;
        t.open.insert(object, full);
        object
    }

    /// Opens the key at `path`, creating it if missing — only the last component:
    /// its parent must exist (`ZwCreateKey`).
    ///
    /// # Errors
    /// As [`Registry::open`].
    pub fn create(&self, path: &[u16], now: u64) -> Result<(u64, Disposition), NtStatus> {
        let parts = components(path)?;
        let full = upcase(&join(&parts));
        let mut t = self.tree();
        let disposition = if t.keys.contains_key(&full) {
            Disposition::Opened
        } else {
            let parent = upcase(&join(&parts[..parts.len() - 1]));
            if parts.len() < 2 || !t.keys.contains_key(&parent) {
                return Err(STATUS_OBJECT_NAME_NOT_FOUND);
            }
            let name = parts[parts.len() - 1].to_vec();
            t.keys.insert(full.clone(), Key { name, values: Vec::new(), last_write: now });
            if let Some(p) = t.keys.get_mut(&parent) {
                p.last_write = now;
            }
            Disposition::Created
        };
        Ok((Self::new_object(&mut t, full), disposition))
    }

    /// Whether `object` is an open key object.
    pub fn is_key(&self, object: u64) -> bool {
        self.tree().open.contains_key(&object)
    }

    /// The full path of key object `object` as created (for `KeyNameInformation` and
    /// paths relative to it).
    pub fn path_of(&self, object: u64) -> Option<Vec<u16>> {
        let t = self.tree();
        let full = t.open.get(&object)?;
        let mut path = Vec::new();
        let parts: Vec<&[u16]> = full[1..].split(|&c| c == u16::from(b'\\')).collect();
        for n in 1..=parts.len() {
            let key = t.keys.get(&join(&parts[..n]))?;
            path.push(u16::from(b'\\'));
            path.extend_from_slice(&key.name);
        }
        Some(path)
    }

    /// Forgets key object `object` (its last reference is gone).
    pub fn close(&self, object: u64) {
        self.tree().open.remove(&object);
    }

    fn with_key<R>(&self, object: u64, f: impl FnOnce(&mut Key) -> R) -> Result<R, NtStatus> {
        let mut t = self.tree();
        let full = t.open.get(&object).cloned().ok_or(STATUS_KEY_DELETED)?;
        t.keys.get_mut(&full).map(f).ok_or(STATUS_KEY_DELETED)
    }

    /// Sets value `name` of the key (replacing one of the same name, case ignored).
    ///
    /// # Errors
    /// STATUS_INVALID_PARAMETER for a name or data over the limits.
    pub fn set_value(&self, object: u64, value: Value, now: u64) -> Result<(), NtStatus> {
        if value.name.len() > MAX_VALUE_NAME || value.data.len() > MAX_VALUE_DATA {
            return Err(STATUS_INVALID_PARAMETER);
        }
        self.with_key(object, |k| {
            let wanted = upcase(&value.name);
            match k.values.iter_mut().find(|v| upcase(&v.name) == wanted) {
                Some(v) => {
                    v.kind = value.kind;
                    v.data = value.data;
                }
                None => k.values.push(value),
            }
            k.last_write = now;
        })
    }

    /// Value `name` of the key.
    ///
    /// # Errors
    /// STATUS_OBJECT_NAME_NOT_FOUND when the key has no such value.
    pub fn value(&self, object: u64, name: &[u16]) -> Result<Value, NtStatus> {
        let wanted = upcase(name);
        self.with_key(object, |k| k.values.iter().find(|v| upcase(&v.name) == wanted).cloned())?
            .ok_or(STATUS_OBJECT_NAME_NOT_FOUND)
    }

    /// Deletes value `name`; the values after it move up one index.
    ///
    /// # Errors
    /// STATUS_OBJECT_NAME_NOT_FOUND when there is none.
    pub fn delete_value(&self, object: u64, name: &[u16], now: u64) -> Result<(), NtStatus> {
        let wanted = upcase(name);
        self.with_key(object, |k| {
            let at = k.values.iter().position(|v| upcase(&v.name) == wanted).ok_or(STATUS_OBJECT_NAME_NOT_FOUND)?;
            k.values.remove(at);
            k.last_write = now;
            Ok(())
        })?
    }

    /// The key's value number `index`.
    ///
    /// # Errors
    /// STATUS_NO_MORE_ENTRIES past the last.
    pub fn value_at(&self, object: u64, index: u32) -> Result<Value, NtStatus> {
        self.with_key(object, |k| k.values.get(index as usize).cloned())?.ok_or(STATUS_NO_MORE_ENTRIES)
    }

    /// The upcased paths of the key's subkeys, in enumeration order.
    fn children(t: &Tree, full: &[u16]) -> Vec<Vec<u16>> {
        let mut prefix = full.to_vec();
        prefix.push(u16::from(b'\\'));
        t.keys
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| !p[prefix.len()..].contains(&u16::from(b'\\')))
            .map(|(p, _)| p.clone())
            .collect()
    }

    fn summary(t: &Tree, full: &[u16], key: &Key) -> KeySummary {
        let children = Self::children(t, full);
        let bytes = |n: usize| (2 * n) as u32;
        KeySummary {
            name: key.name.clone(),
            last_write: key.last_write,
            subkeys: children.len() as u32,
            max_name_len: children.iter().filter_map(|c| t.keys.get(c)).map(|k| bytes(k.name.len())).max().unwrap_or(0),
            values: key.values.len() as u32,
            max_value_name_len: key.values.iter().map(|v| bytes(v.name.len())).max().unwrap_or(0),
            max_value_data_len: key.values.iter().map(|v| v.data.len() as u32).max().unwrap_or(0),
        }
    }

    /// What `ZwQueryKey` tells about the key itself.
    ///
    /// # Errors
    /// STATUS_KEY_DELETED for an object that is not an open key.
    pub fn query(&self, object: u64) -> Result<KeySummary, NtStatus> {
        let t = self.tree();
        let full = t.open.get(&object).ok_or(STATUS_KEY_DELETED)?;
        let key = t.keys.get(full).ok_or(STATUS_KEY_DELETED)?;
        Ok(Self::summary(&t, full, key))
    }

    /// What `ZwEnumerateKey` tells about subkey number `index`.
    ///
    /// # Errors
    /// STATUS_NO_MORE_ENTRIES past the last.
    pub fn subkey_at(&self, object: u64, index: u32) -> Result<KeySummary, NtStatus> {
        let t = self.tree();
        let full = t.open.get(&object).ok_or(STATUS_KEY_DELETED)?;
        let children = Self::children(&t, full);
        let child = children.get(index as usize).ok_or(STATUS_NO_MORE_ENTRIES)?;
        let key = t.keys.get(child).ok_or(STATUS_NO_MORE_ENTRIES)?;
        Ok(Self::summary(&t, child, key))
    }

    /// How many key objects are open.
    pub fn open_keys(&self) -> usize {
        self.tree().open.len()
    }
}

/// `path` under `base` (`base\path`; `path` may be empty).
pub fn under(base: &[u16], path: &[u16]) -> Vec<u16> {
    let mut out = base.to_vec();
    if !path.is_empty() {
        out.push(u16::from(b'\\'));
        out.extend_from_slice(path);
    }
    out
}

/// The service key of driver `service`.
pub fn service_key(service: &str) -> Vec<u16> {
    wide(&format!("{SERVICES}\\{service}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<u16> {
        wide(s)
    }

    #[test]
    fn the_memory_managers_knobs_are_in_the_registry() {
        let knobs = ntmem_machine::RegistryKnobs { paged_pool_size: Some(0xFFFF_FFFF), ..Default::default() };
        let r = Registry::boot(&knobs);
        let k = r.open(&w(MEMORY_MANAGEMENT)).unwrap();
        assert_eq!(r.value(k, &w("pagedpoolsize")).unwrap().data, vec![0xFF; 4]);
        assert_eq!(r.value(k, &w("NonPagedPoolSize")).unwrap().data, vec![0; 4]);
    }

    #[test]
    fn keys_are_created_one_level_at_a_time_and_found_without_case() {
        let r = Registry::default();
        let svc = w(&format!("{SERVICES}\\Drv"));
        let (k, d) = r.create(&svc, 5).unwrap();
        assert_eq!(d, Disposition::Created);
        assert_eq!(r.create(&w(&format!("{SERVICES}\\DRV")), 6).unwrap().1, Disposition::Opened);
        assert_eq!(r.create(&w(&format!("{SERVICES}\\Nope\\Deeper")), 6), Err(STATUS_OBJECT_NAME_NOT_FOUND));
        assert_eq!(r.open(&w(&format!("{SERVICES}\\Nope"))), Err(STATUS_OBJECT_NAME_NOT_FOUND));
        assert_eq!(r.open(&w("Registry\\Machine")), Err(STATUS_OBJECT_PATH_SYNTAX_BAD));
        assert_eq!(r.open(&w("\\Registry\\\\Machine")), Err(STATUS_OBJECT_NAME_INVALID));
        assert_eq!(r.path_of(k), Some(svc));
        r.close(k);
        assert!(!r.is_key(k));
    }

    #[test]
    fn values_keep_their_order_and_subkeys_sort_by_upcased_name() {
        let r = Registry::default();
        let (k, _) = r.create(&w(&format!("{SERVICES}\\Drv")), 0).unwrap();
        for (name, kind) in [("b", REG_DWORD), ("A", REG_SZ), ("c", REG_BINARY)] {
            r.set_value(k, Value { name: w(name), kind, data: vec![1, 0, 0, 0] }, 1).unwrap();
        }
        r.set_value(k, Value { name: w("B"), kind: REG_QWORD, data: vec![2; 8] }, 2).unwrap();
        assert_eq!(r.value_at(k, 0).unwrap().kind, REG_QWORD, "replaced in place");
        assert_eq!(r.value_at(k, 3), Err(STATUS_NO_MORE_ENTRIES));
        r.delete_value(k, &w("a"), 3).unwrap();
        assert_eq!(r.value_at(k, 1).unwrap().name, w("c"));
        assert_eq!(r.delete_value(k, &w("a"), 3), Err(STATUS_OBJECT_NAME_NOT_FOUND));
        for sub in ["zeta", "Alpha", "beta"] {
            r.create(&w(&format!("{SERVICES}\\Drv\\{sub}")), 4).unwrap();
        }
        r.create(&w(&format!("{SERVICES}\\Drv\\beta\\inner")), 4).unwrap();
        let names: Vec<_> = (0..3).map(|i| String::from_utf16_lossy(&r.subkey_at(k, i).unwrap().name)).collect();
        assert_eq!(names, ["Alpha", "beta", "zeta"]);
        assert_eq!(r.subkey_at(k, 3), Err(STATUS_NO_MORE_ENTRIES));
        let q = r.query(k).unwrap();
        assert_eq!((q.subkeys, q.values, q.max_name_len, q.max_value_data_len), (3, 2, 10, 8));
    }
}
