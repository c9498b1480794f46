//! Device queues (learn.microsoft.com "KeInitializeDeviceQueue",
//! "KeInsertDeviceQueue", "KeInsertByKeyDeviceQueue", "KeRemoveDeviceQueue",
//! "KeRemoveByKeyDeviceQueue", "KeRemoveEntryDeviceQueue", "KDEVICE_QUEUE",
//! "Introduction to Device Queue Objects"), the queue behind `IoStartPacket`.
//!
//! A `KDEVICE_QUEUE` (x64, 0x28 bytes) is the driver's memory: `Type` 0x00
//! (DeviceQueueObject, 20), `Size` 0x02, `DeviceListHead` 0x08 (a `LIST_ENTRY`),
//! `Lock` 0x18, `Busy` 0x20. A `KDEVICE_QUEUE_ENTRY` (0x18 bytes; an IRP's is
//! `Tail.Overlay.DeviceQueueEntry` at 0x78): `DeviceListEntry` 0x00, `SortKey` 0x10,
//! `Inserted` 0x14.
//!
//! An insert into a queue that is not busy only makes it busy (the caller starts the
//! entry's work itself) and returns FALSE; into a busy queue it links the entry (at
//! the tail, or before the first entry with a greater key) and returns TRUE. A remove
//! from an empty queue makes it not busy and returns none; by key, it takes the first
//! entry whose key is at least the one given, else the first entry. Windows takes the
//! queue's spin lock around each of these at DISPATCH_LEVEL; ntmem runs each routine
//! whole, with no other processor in between.

use ntmem_machine::Va;

use crate::bugcheck::BugCheck;
use crate::io::device::{at, read_bytes, write_bytes};
use crate::ke::processor::Cpu;

/// `sizeof(KDEVICE_QUEUE)` on x64.
pub const KDEVICE_QUEUE_SIZE: u64 = 0x28;
/// `sizeof(KDEVICE_QUEUE_ENTRY)` on x64.
pub const KDEVICE_QUEUE_ENTRY_SIZE: u64 = 0x18;
/// `KDEVICE_QUEUE.Type`: DeviceQueueObject.
pub const DEVICE_QUEUE_OBJECT: u16 = 20;

const OFF_HEAD: u64 = 0x08;
const OFF_BUSY: u64 = 0x20;
const OFF_SORT_KEY: u64 = 0x10;
const OFF_INSERTED: u64 = 0x14;
const _: () = assert!(OFF_BUSY < KDEVICE_QUEUE_SIZE && OFF_INSERTED < KDEVICE_QUEUE_ENTRY_SIZE);

/// A device queue: its address (`PKDEVICE_QUEUE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceQueue(pub Va);

/// A device queue entry: its address (`PKDEVICE_QUEUE_ENTRY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceQueueEntry(pub Va);

fn u64_at(cpu: &Cpu<'_>, va: Va) -> Result<u64, BugCheck> {
    Ok(u64::from_le_bytes(read_bytes(cpu, va)?))
}

fn put_u64(cpu: &Cpu<'_>, va: Va, v: u64) -> Result<(), BugCheck> {
    write_bytes(cpu, va, &v.to_le_bytes())
}

fn set_byte(cpu: &Cpu<'_>, va: Va, v: u8) -> Result<(), BugCheck> {
    write_bytes(cpu, va, &[v])
}

fn key(cpu: &Cpu<'_>, entry: u64) -> Result<u32, BugCheck> {
    Ok(u32::from_le_bytes(read_bytes(cpu, Va::new(entry + OFF_SORT_KEY))?))
}

/// Links `entry` before `next` (a list entry or the head).
fn link_before(cpu: &Cpu<'_>, entry: u64, next: u64) -> Result<(), BugCheck> {
    let prev = u64_at(cpu, Va::new(next + 8))?;
    put_u64(cpu, Va::new(entry), next)?;
    put_u64(cpu, Va::new(entry + 8), prev)?;
    put_u64(cpu, Va::new(prev), entry)?;
    put_u64(cpu, Va::new(next + 8), entry)
}

fn unlink(cpu: &Cpu<'_>, entry: u64) -> Result<(), BugCheck> {
    let next = u64_at(cpu, Va::new(entry))?;
    let prev = u64_at(cpu, Va::new(entry + 8))?;
    put_u64(cpu, Va::new(prev), next)?;
    put_u64(cpu, Va::new(next + 8), prev)
}

/// How many entries a walk of a queue visits at most (a list a driver corrupted into
/// a loop ends there).
const WALK_LIMIT: usize = 1 << 16;

impl DeviceQueue {
    fn head(self) -> u64 {
        self.0.get() + OFF_HEAD
    }

    fn busy(self, cpu: &Cpu<'_>) -> Result<bool, BugCheck> {
        Ok(read_bytes::<1>(cpu, at(self.0, OFF_BUSY))?[0] != 0)
    }

    fn set_busy(self, cpu: &Cpu<'_>, busy: bool) -> Result<(), BugCheck> {
        set_byte(cpu, at(self.0, OFF_BUSY), u8::from(busy))
    }

    /// `KeInitializeDeviceQueue`: empty, not busy.
    ///
    /// # Errors
    /// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for a queue outside the address space (as
    /// every routine here).
    pub fn initialize(self, cpu: &Cpu<'_>) -> Result<(), BugCheck> {
        write_bytes(cpu, self.0, &[0; KDEVICE_QUEUE_SIZE as usize])?;
        write_bytes(cpu, self.0, &DEVICE_QUEUE_OBJECT.to_le_bytes())?;
        write_bytes(cpu, at(self.0, 2), &(KDEVICE_QUEUE_SIZE as u16).to_le_bytes())?;
        put_u64(cpu, Va::new(self.head()), self.head())?;
        put_u64(cpu, Va::new(self.head() + 8), self.head())
    }

    /// `KeInsertDeviceQueue` (`key` None) / `KeInsertByKeyDeviceQueue`: whether the
    /// entry was queued (false: the queue was idle and is now busy).
    ///
    /// # Errors
    /// As [`DeviceQueue::initialize`].
    pub fn insert(self, cpu: &Cpu<'_>, entry: DeviceQueueEntry, key: Option<u32>) -> Result<bool, BugCheck> {
        let e = entry.0.get();
        if let Some(k) = key {
            write_bytes(cpu, Va::new(e + OFF_SORT_KEY), &k.to_le_bytes())?;
        }
        if !self.busy(cpu)? {
            self.set_busy(cpu, true)?;
            set_byte(cpu, Va::new(e + OFF_INSERTED), 0)?;
            return Ok(false);
        }
        let mut next = self.head();
        if let Some(k) = key {
            let mut cursor = u64_at(cpu, Va::new(self.head()))?;
            for _ in 0..WALK_LIMIT {
                if cursor == self.head() || self::key(cpu, cursor)? > k {
                    break;
                }
                cursor = u64_at(cpu, Va::new(cursor))?;
            }
            next = cursor;
        }
        link_before(cpu, e, next)?;
        set_byte(cpu, Va::new(e + OFF_INSERTED), 1)?;
        Ok(true)
    }

    /// `KeRemoveDeviceQueue` (`key` None) / `KeRemoveByKeyDeviceQueue`: the entry taken
    /// out, or none (the queue is then not busy).
    ///
    /// # Errors
    /// As [`DeviceQueue::initialize`].
    pub fn remove(self, cpu: &Cpu<'_>, key: Option<u32>) -> Result<Option<DeviceQueueEntry>, BugCheck> {
        let first = u64_at(cpu, Va::new(self.head()))?;
        if first == self.head() {
            self.set_busy(cpu, false)?;
            return Ok(None);
        }
        let mut taken = first;
        if let Some(k) = key {
            let mut cursor = first;
            for _ in 0..WALK_LIMIT {
                if cursor == self.head() {
                    break;
                }
                if self::key(cpu, cursor)? >= k {
                    taken = cursor;
                    break;
                }
                cursor = u64_at(cpu, Va::new(cursor))?;
            }
        }
        unlink(cpu, taken)?;
        set_byte(cpu, Va::new(taken + OFF_INSERTED), 0)?;
        Ok(Some(DeviceQueueEntry(Va::new(taken))))
    }

    /// `KeRemoveEntryDeviceQueue`: whether `entry` was queued (and is now taken out).
    ///
    /// # Errors
    /// As [`DeviceQueue::initialize`].
    pub fn remove_entry(self, cpu: &Cpu<'_>, entry: DeviceQueueEntry) -> Result<bool, BugCheck> {
        let e = entry.0.get();
        if read_bytes::<1>(cpu, Va::new(e + OFF_INSERTED))?[0] == 0 {
            return Ok(false);
        }
        unlink(cpu, e)?;
        set_byte(cpu, Va::new(e + OFF_INSERTED), 0)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ex::pool::{self, PoolTag, PoolType};
    use crate::machine::Machine;
    use ntmem_machine::{BootOptions, MachineConfig};

    fn machine() -> Machine {
        let mut config = MachineConfig::for_edition("ws03sp1-enterprise-x64").unwrap();
        config.ram = 512 << 20;
        config.boot = BootOptions::parse("").unwrap();
        Machine::boot(config.build().unwrap()).unwrap()
    }

    #[test]
    fn an_idle_queue_only_becomes_busy_and_keys_order_the_rest() {
        let m = machine();
        m.run(0, |cpu| {
            let block = pool::allocate(cpu, PoolType::NonPagedPool, 0x100, PoolTag::new(*b"DvQ "))?.unwrap();
            let q = DeviceQueue(block);
            q.initialize(cpu)?;
            let e = |i: u64| DeviceQueueEntry(Va::new(block.get() + 0x30 + i * 0x18));
            assert!(!q.insert(cpu, e(0), None)?, "idle: not queued, now busy");
            assert!(q.busy(cpu)?);
            for (i, k) in [(1, 7), (2, 3), (3, 5), (4, 5)] {
                assert!(q.insert(cpu, e(i), Some(k))?);
            }
            assert!(q.remove_entry(cpu, e(1))?, "key 7 taken out");
            assert!(!q.remove_entry(cpu, e(1))?, "not queued any more");
            assert_eq!(q.remove(cpu, Some(4))?, Some(e(3)), "the first key >= 4, the earlier of two 5s");
            assert_eq!(q.remove(cpu, Some(9))?, Some(e(2)), "none >= 9: the first");
            assert_eq!(q.remove(cpu, None)?, Some(e(4)));
            assert_eq!(q.remove(cpu, None)?, None);
            assert!(!q.busy(cpu)?, "empty: idle again");
            pool::free(cpu, block, None)
        })
        .unwrap();
    }
}
