//! The kernel's own objects that ntmem keeps outside simulated memory, and the
//! addresses drivers and reports know them by.
//!
//! On Windows these objects live in ntoskrnl: the cancel spin lock is a variable of
//! the kernel image, the threads that run a driver's DriverEntry and its work items
//! are kernel threads with their `KTHREAD` in system space. ntmem keeps their state in
//! its own structures (the cancel lock's word in the I/O manager, a thread's state per
//! host thread), so the address a driver sees (`KeGetCurrentThread`, a mutex's owner,
//! 0xC4/0x1004's threads) and the one deadlock detection names (`!deadlock`'s lock
//! list) must come from somewhere else: a fixed place in the layout's region for
//! "kernel, HAL and boot drivers" ([`RegionKind::KernelImages`]), where ntoskrnl would
//! be. Nothing is mapped there, so a touch of one of them is the wild touch it was
//! when they were host variables; and since the layout is fixed, the same run gives
//! the same addresses — a host variable's address changed with the host's address
//! space layout randomisation, and with it every report that named one.
//!
//! Where ntmem differs: the names. Windows' public symbols call the cancel spin lock
//! `nt!IopCancelSpinLock`; Microsoft's documentation names no variable ("the system
//! cancel spin lock", "Using the System's Cancel Spin Lock"), so the name in
//! `!deadlock`'s lock list is ntmem's choice. The threads have no names.

use ntmem_machine::{RegionKind, Va};

use crate::Machine;

/// A kernel object with a fixed address in the kernel-image region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelObject {
    /// The system-wide cancel spin lock (`IoAcquireCancelSpinLock`).
    CancelSpinLock,
    /// The thread that runs DriverEntry, DriverUnload, dispatch routines, DPCs and
    /// timers (`crate::ke::sched`'s requesting thread).
    RequestingThread,
    /// System worker thread `slot` (up to [`crate::ke::sched::MAX_WORKERS`]).
    WorkerThread(u8),
}

/// Where the objects begin in the region: past the first page (the image's
/// headers on Windows).
const BASE: u64 = 0x1000;
/// The room a thread's identity takes (a `KTHREAD` would take more; nothing is read).
const THREAD_STRIDE: u64 = 0x80;
/// The first thread's offset from [`BASE`].
const THREADS: u64 = 0x100;

impl KernelObject {
    /// Its offset from the start of the kernel-image region.
    fn offset(self) -> u64 {
        BASE + match self {
            KernelObject::CancelSpinLock => 0,
            KernelObject::RequestingThread => THREADS,
            KernelObject::WorkerThread(slot) => THREADS + THREAD_STRIDE * (1 + u64::from(slot)),
        }
    }

    /// Its name in reports (`!deadlock`'s lock list), if it has one.
    pub fn name(self) -> Option<&'static str> {
        match self {
            KernelObject::CancelSpinLock => Some("nt!IopCancelSpinLock"),
            KernelObject::RequestingThread | KernelObject::WorkerThread(_) => None,
        }
    }

    /// Every object, in address order.
    fn all() -> impl Iterator<Item = KernelObject> {
        [KernelObject::CancelSpinLock, KernelObject::RequestingThread]
            .into_iter()
            .chain((0..crate::ke::sched::MAX_WORKERS).map(KernelObject::WorkerThread))
    }
}

impl Machine {
    /// The address drivers see for `object` (the host address of its place in the
    /// kernel-image region; the simulated one unless the layout was relocated).
    pub fn kernel_object(&self, object: KernelObject) -> u64 {
        let start = self.space().layout().region(RegionKind::KernelImages).map_or(0, |r| r.start.get());
        self.space().host_addr(Va::new(start + object.offset())) as u64
    }

    /// The kernel object whose address drivers see as `address`, if any.
    pub fn kernel_object_at(&self, address: u64) -> Option<KernelObject> {
        KernelObject::all().find(|&o| self.kernel_object(o) == address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ntmem_machine::{BootOptions, MachineConfig};

    #[test]
    fn each_object_has_its_own_fixed_unmapped_address_in_the_kernel_image_region() {
        for edition in ["ws03sp1-enterprise-x64", "xp-professional"] {
            let mut config = MachineConfig::for_edition(edition).unwrap();
            config.ram = 512 << 20;
            config.boot = BootOptions::parse("").unwrap();
            let m = Machine::boot(config.build().unwrap()).unwrap();
            let region = *m.space().layout().region(RegionKind::KernelImages).unwrap();
            let objects: Vec<KernelObject> = KernelObject::all().collect();
            for (i, &o) in objects.iter().enumerate() {
                let a = m.kernel_object(o);
                let va = m.space().va_of_host(a as usize).unwrap();
                assert!(region.start <= va && va.get() < region.start.get() + 0x10_0000, "{edition} {o:?} {va:?}");
                assert_eq!(m.space().walk(m.phys(), va).phys, None, "nothing mapped at {o:?}");
                assert_eq!(m.kernel_object_at(a), Some(o));
                assert!(objects[..i].iter().all(|&p| m.kernel_object(p) + 0x80 <= a), "{o:?} overlaps another");
            }
            // 0x1100 into the region (0x980_0000_1100 in the x64 layout, unless this
            // process already holds a machine there and the layout was relocated).
            let requesting = m.kernel_object(KernelObject::RequestingThread);
            let va = m.space().va_of_host(requesting as usize).unwrap();
            assert_eq!(va.get(), region.start.get() + 0x1100, "{edition}");
            assert_eq!(m.kernel_object_at(requesting + 8), None);
        }
    }
}
