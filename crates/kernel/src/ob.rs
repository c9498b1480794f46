//! `ob`: the object manager's part drivers see — reference counts of the objects
//! the kernel creates for them and the handles that name those objects
//! (learn.microsoft.com "ObReferenceObjectByHandle", "ObDereferenceObject",
//! "ZwClose", "Object Handles").
//!
//! Only objects inserted here are counted (system threads and device objects; the I/O manager's
//! file objects and a scenario's events and processes may be inserted with
//! [`Objects::insert`] and given handles with [`Objects::open`]); a handle holds one
//! reference, as on Windows. Kernel handles, as Windows' kernel handles on x64, have
//! the top bit set (`0xFFFFFFFF8000xxxx`); a user process's handles (a scenario's
//! events, [`Objects::open_in`]) are small, from 4, in that process's own table. Both
//! are multiples of 4 and never reused within a run. A handle without the top bit is
//! looked up in the current process's table (the System process's is the kernel
//! table), as Windows does for a kernel-mode caller passing a user handle.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// The type of an object the object manager counts (`POBJECT_TYPE` as a closed choice).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectType {
    /// `PsThreadType`: a thread object.
    Thread,
    /// `ExEventObjectType`: an event object.
    Event,
    /// `PsProcessType`: a process object.
    Process,
    /// `IoFileObjectType`: a file object.
    File,
    /// `CmKeyObjectType`: an open registry key ([`crate::cm`]).
    Key,
    /// `IoDeviceObjectType`: a device object ([`crate::io::device`]).
    Device,
}

/// A handle's entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandleEntry {
    /// The object's address.
    pub object: u64,
    /// Its type.
    pub object_type: ObjectType,
    /// The access the handle was granted.
    pub granted: u32,
}

/// What a dereference did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dereferenced {
    /// References remain.
    Live,
    /// That was the last reference: the object is to be deleted.
    Last,
    /// The object is not one the object manager counts (left alone).
    Unknown,
    /// The count was zero already, or the object was deleted (REFERENCE_BY_POINTER on
    /// Windows).
    Underflow(ObjectType),
}

#[derive(Debug, Default)]
struct Table {
    refs: BTreeMap<u64, (ObjectType, u64)>,
    /// Objects deleted and not reused since: a dereference of one is one too many.
    deleted: BTreeMap<u64, ObjectType>,
    /// Open handles by owning process (0: the kernel table) and value.
    handles: BTreeMap<(u64, u64), HandleEntry>,
    /// Handles given so far, by owning process.
    given: BTreeMap<u64, u64>,
}

/// The machine's object references and kernel handle table.
#[derive(Debug, Default)]
pub struct Objects(Mutex<Table>);

/// The first kernel handle's value; the rest follow 4 apart.
pub const FIRST_KERNEL_HANDLE: u64 = 0xFFFF_FFFF_8000_0004;

/// The first handle of a process's own table; the rest follow 4 apart.
pub const FIRST_USER_HANDLE: u64 = 4;

/// The table `handle` names when process `current` (`None`: the System process)
/// uses it: kernel handles (top bit set) are the kernel's, others the process's.
fn owner(current: Option<u64>, handle: u64) -> u64 {
    if handle >> 63 == 1 {
        KERNEL
    } else {
        current.unwrap_or(KERNEL)
    }
}

/// The owner key of the kernel handle table.
const KERNEL: u64 = 0;

impl Objects {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts counting `object` with `refs` references.
    pub fn insert(&self, object: u64, object_type: ObjectType, refs: u64) {
        let mut t = self.table();
        t.deleted.remove(&object);
        t.refs.insert(object, (object_type, refs));
    }

    /// The type of `object` and its reference count, if it is counted.
    pub fn get(&self, object: u64) -> Option<(ObjectType, u64)> {
        self.table().refs.get(&object).copied()
    }

    /// One more reference to `object`; false if it is not counted.
    pub fn reference(&self, object: u64) -> bool {
        self.table().refs.get_mut(&object).map(|(_, n)| *n += 1).is_some()
    }

    /// One reference fewer; on the last the object is forgotten.
    pub fn dereference(&self, object: u64) -> Dereferenced {
        let mut t = self.table();
        let Some((kind, n)) = t.refs.get_mut(&object) else {
            return t.deleted.get(&object).map_or(Dereferenced::Unknown, |&k| Dereferenced::Underflow(k));
        };
        let kind = *kind;
        match *n {
            0 => Dereferenced::Underflow(kind),
            1 => {
                t.refs.remove(&object);
                t.deleted.insert(object, kind);
                Dereferenced::Last
            }
            _ => {
                *n -= 1;
                Dereferenced::Live
            }
        }
    }

    /// A new kernel handle to `object` (which must be counted; the handle takes a
    /// reference).
    pub fn open(&self, object: u64, object_type: ObjectType, granted: u32) -> u64 {
        self.open_owned(KERNEL, FIRST_KERNEL_HANDLE, HandleEntry { object, object_type, granted })
    }

    /// A new handle to `object` in the table of the process with id `process`.
    pub fn open_in(&self, process: u64, object: u64, object_type: ObjectType, granted: u32) -> u64 {
        self.open_owned(process, FIRST_USER_HANDLE, HandleEntry { object, object_type, granted })
    }

    fn open_owned(&self, owner: u64, first: u64, entry: HandleEntry) -> u64 {
        let mut t = self.table();
        if let Some((_, n)) = t.refs.get_mut(&entry.object) {
            *n += 1;
        }
        let given = t.given.entry(owner).or_default();
        let handle = first + 4 * *given;
        *given += 1;
        t.handles.insert((owner, handle), entry);
        handle
    }

    /// The entry `handle` names for a caller in process `current` (`None`: the System
    /// process), if it is open.
    pub fn lookup_from(&self, current: Option<u64>, handle: u64) -> Option<HandleEntry> {
        self.table().handles.get(&(owner(current, handle), handle)).copied()
    }

    /// Closes `handle` as named by a caller in process `current`: its entry, whose
    /// reference the caller drops.
    pub fn close_from(&self, current: Option<u64>, handle: u64) -> Option<HandleEntry> {
        self.table().handles.remove(&(owner(current, handle), handle))
    }

    /// How many handles are open.
    pub fn open_handles(&self) -> usize {
        self.table().handles.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_holds_a_reference_and_the_last_dereference_deletes() {
        let o = Objects::default();
        o.insert(0x1000, ObjectType::Thread, 1);
        let h = o.open(0x1000, ObjectType::Thread, 0x1F_FFFF);
        assert_eq!(h, FIRST_KERNEL_HANDLE);
        assert_eq!(o.get(0x1000), Some((ObjectType::Thread, 2)));
        assert!(o.reference(0x1000));
        assert_eq!(o.close_from(None, h).map(|e| e.object), Some(0x1000));
        assert_eq!(o.dereference(0x1000), Dereferenced::Live);
        assert_eq!(o.dereference(0x1000), Dereferenced::Live);
        assert_eq!(o.dereference(0x1000), Dereferenced::Last);
        assert_eq!(o.dereference(0x1000), Dereferenced::Underflow(ObjectType::Thread), "deleted already");
        assert_eq!(o.dereference(0x3000), Dereferenced::Unknown);
        o.insert(0x1000, ObjectType::Thread, 1);
        assert_eq!(o.dereference(0x1000), Dereferenced::Last, "reused");
        assert_eq!(o.lookup_from(None, h), None, "closed");
        assert_eq!(o.open(0x2000, ObjectType::Event, 0), FIRST_KERNEL_HANDLE + 4, "never reused");
    }

    #[test]
    fn each_process_has_its_own_table_and_kernel_handles_are_the_kernels_everywhere() {
        let o = Objects::default();
        o.insert(0x1000, ObjectType::Event, 0);
        let a = o.open_in(7, 0x1000, ObjectType::Event, 0x1F_0003);
        let b = o.open_in(9, 0x1000, ObjectType::Event, 0x2);
        let k = o.open(0x1000, ObjectType::Event, 0);
        assert_eq!((a, b), (FIRST_USER_HANDLE, FIRST_USER_HANDLE), "numbered per process");
        assert_eq!(o.get(0x1000), Some((ObjectType::Event, 3)));
        assert_eq!(o.lookup_from(Some(7), a).map(|e| e.granted), Some(0x1F_0003));
        assert_eq!(o.lookup_from(Some(9), b).map(|e| e.granted), Some(0x2));
        assert_eq!(o.lookup_from(None, a), None, "the System process's table is the kernel's");
        assert_eq!(o.lookup_from(Some(7), k).map(|e| e.object), Some(0x1000), "a kernel handle from any process");
        assert_eq!(o.close_from(Some(9), b).map(|e| e.object), Some(0x1000));
        assert_eq!(o.lookup_from(Some(9), b), None);
        assert_eq!(o.lookup_from(Some(7), a).map(|e| e.object), Some(0x1000), "the other table is untouched");
        assert_eq!(o.open_in(9, 0x1000, ObjectType::Event, 0), FIRST_USER_HANDLE + 4, "never reused");
    }
}
