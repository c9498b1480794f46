//! Loaded driver images (the list `lm` shows; Windows' `PsLoadedModuleList`) and
//! the images unloaded since boot (`lm`'s `Unloaded modules:`, Windows'
//! `MmUnloadedDrivers`).
//!
//! The driver host registers each driver it loads with the host range its code
//! occupies, so that a fault can be blamed on a driver: a fault at raised IRQL
//! whose instruction lies in a driver's image is DRIVER_IRQL_NOT_LESS_OR_EQUAL
//! (0xD1) rather than IRQL_NOT_LESS_OR_EQUAL (0x0A), and the analysis names the
//! image. An image the kernel's loader mapped ([`crate::mm::sysload`]) is marked
//! as such: its pages are the machine's own and may be paged out, so the fault
//! handler may page them back in. When such an image is unloaded its range is
//! remembered, so that a later touch of it — a timer or dispatch routine left
//! behind — is blamed on the driver that left it
//! (DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS, research note
//! `dma-verifier-views.md` §5.10, §6.4). The lookups run in the fault handler, so
//! the ranges live in fixed tables of atomics; the names beside them are only
//! read outside it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// How many images one machine can have loaded at once.
pub const MAX_IMAGES: usize = 32;

/// How many unloaded images a machine remembers: the most recent ones, in a
/// ring. Windows also keeps a bounded list of recent ones; 50 is ntmem's choice.
pub const MAX_UNLOADED: usize = 50;

/// The loaded images of one machine, and the ones unloaded.
#[derive(Debug)]
pub struct Images {
    starts: [AtomicUsize; MAX_IMAGES],
    ends: [AtomicUsize; MAX_IMAGES],
    /// Whether the image in a slot was mapped by the kernel's loader.
    mapped: [AtomicBool; MAX_IMAGES],
    names: Mutex<Vec<Option<String>>>,
    unloaded_starts: [AtomicUsize; MAX_UNLOADED],
    unloaded_ends: [AtomicUsize; MAX_UNLOADED],
    unloaded: Mutex<Unloaded>,
}

/// The names of the remembered unloaded images and the ring's next entry.
#[derive(Debug)]
struct Unloaded {
    names: Vec<Option<String>>,
    next: usize,
}

/// One remembered unloaded image, as `lm` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnloadedImage {
    /// The name it was loaded as.
    pub name: String,
    /// First host address it occupied.
    pub start: usize,
    /// One past its last host address.
    pub end: usize,
}

impl Default for Images {
    fn default() -> Self {
        Images {
            starts: std::array::from_fn(|_| AtomicUsize::new(0)),
            ends: std::array::from_fn(|_| AtomicUsize::new(0)),
            mapped: std::array::from_fn(|_| AtomicBool::new(false)),
            names: Mutex::new(vec![None; MAX_IMAGES]),
            unloaded_starts: std::array::from_fn(|_| AtomicUsize::new(0)),
            unloaded_ends: std::array::from_fn(|_| AtomicUsize::new(0)),
            unloaded: Mutex::new(Unloaded { names: vec![None; MAX_UNLOADED], next: 0 }),
        }
    }
}

impl Images {
    /// Records `name` as loaded at host addresses `[start, end)`; its slot, or
    /// `None` when the table is full.
    pub fn load(&self, name: &str, start: usize, end: usize) -> Option<usize> {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        let slot = names.iter().position(Option::is_none)?;
        names[slot] = Some(name.to_string());
        self.starts[slot].store(start, Ordering::Release);
        self.ends[slot].store(end, Ordering::Release);
        Some(slot)
    }

    /// [`Images::load`] for an image the kernel's loader mapped in the machine's
    /// address space: the fault handler may page its pages in.
    pub fn load_mapped(&self, name: &str, start: usize, end: usize) -> Option<usize> {
        let slot = self.load(name, start, end)?;
        self.mapped[slot].store(true, Ordering::Release);
        Some(slot)
    }

    /// Forgets the image in `slot`.
    pub fn unload(&self, slot: usize) {
        self.mapped[slot].store(false, Ordering::Release);
        self.ends[slot].store(0, Ordering::Release);
        self.starts[slot].store(0, Ordering::Release);
        self.names.lock().unwrap_or_else(|e| e.into_inner())[slot] = None;
    }

    /// Remembers that `name` occupied `[start, end)` until it was unloaded
    /// (Windows' `MiRememberUnloadedDriver`); the oldest entry gives way when the
    /// ring is full.
    pub fn remember_unloaded(&self, name: &str, start: usize, end: usize) {
        let mut u = self.unloaded.lock().unwrap_or_else(|e| e.into_inner());
        let i = u.next;
        u.next = (i + 1) % MAX_UNLOADED;
        self.unloaded_ends[i].store(0, Ordering::Release);
        self.unloaded_starts[i].store(0, Ordering::Release);
        u.names[i] = Some(name.to_string());
        self.unloaded_starts[i].store(start, Ordering::Release);
        self.unloaded_ends[i].store(end, Ordering::Release);
    }

    /// The slot of the image holding host address `ip`, if any. Async-signal-safe.
    pub fn slot_at(&self, ip: usize) -> Option<usize> {
        (0..MAX_IMAGES).find(|&i| {
            let (s, e) = (self.starts[i].load(Ordering::Acquire), self.ends[i].load(Ordering::Acquire));
            s <= ip && ip < e
        })
    }

    /// Whether host address `addr` lies in an image the kernel's loader mapped.
    /// Async-signal-safe.
    pub fn is_mapped_image(&self, addr: usize) -> bool {
        self.slot_at(addr).is_some_and(|slot| self.mapped[slot].load(Ordering::Acquire))
    }

    /// The slot under which the most recently unloaded image that occupied host
    /// address `addr` is named ([`Images::name`] takes it), if `addr` is in no
    /// loaded image and some unloaded one held it. Async-signal-safe.
    pub fn unloaded_at(&self, addr: usize) -> Option<usize> {
        if self.slot_at(addr).is_some() {
            return None;
        }
        (0..MAX_UNLOADED)
            .find(|&i| {
                let (s, e) =
                    (self.unloaded_starts[i].load(Ordering::Acquire), self.unloaded_ends[i].load(Ordering::Acquire));
                s <= addr && addr < e
            })
            .map(|i| MAX_IMAGES + i)
    }

    /// The name of the image in `slot` (a loaded one, or an unloaded one from
    /// [`Images::unloaded_at`]).
    pub fn name(&self, slot: usize) -> Option<String> {
        match slot.checked_sub(MAX_IMAGES) {
            None => self.names.lock().unwrap_or_else(|e| e.into_inner()).get(slot).cloned().flatten(),
            Some(i) => self.unloaded.lock().unwrap_or_else(|e| e.into_inner()).names.get(i).cloned().flatten(),
        }
    }

    /// The name of the image holding `ip`, if any.
    pub fn name_at(&self, ip: usize) -> Option<String> {
        self.slot_at(ip).and_then(|slot| self.name(slot))
    }

    /// The unloaded images remembered, oldest first (`lm`'s `Unloaded modules:`).
    pub fn unloaded(&self) -> Vec<UnloadedImage> {
        let u = self.unloaded.lock().unwrap_or_else(|e| e.into_inner());
        (0..MAX_UNLOADED)
            .map(|k| (u.next + k) % MAX_UNLOADED)
            .filter_map(|i| {
                let name = u.names[i].clone()?;
                let (start, end) =
                    (self.unloaded_starts[i].load(Ordering::Acquire), self.unloaded_ends[i].load(Ordering::Acquire));
                Some(UnloadedImage { name, start, end })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_find_their_image_until_it_unloads() {
        let images = Images::default();
        let a = images.load("nic.sys", 0x1000, 0x5000).unwrap();
        images.load("ioctl.sys", 0x9000, 0xA000).unwrap();
        assert_eq!(images.name_at(0x4FFF).as_deref(), Some("nic.sys"));
        assert_eq!(images.name_at(0x9000).as_deref(), Some("ioctl.sys"));
        assert_eq!(images.name_at(0x5000), None);
        images.unload(a);
        assert_eq!(images.name_at(0x2000), None);
    }

    #[test]
    fn unloaded_images_are_remembered_until_their_range_is_loaded_again() {
        let images = Images::default();
        let a = images.load_mapped("timer.sys", 0x1000, 0x5000).unwrap();
        assert!(images.is_mapped_image(0x1000));
        assert_eq!(images.unloaded_at(0x2000), None, "loaded: not unloaded");
        images.unload(a);
        images.remember_unloaded("timer.sys", 0x1000, 0x5000);
        assert!(!images.is_mapped_image(0x1000));
        let slot = images.unloaded_at(0x2000).unwrap();
        assert_eq!(images.name(slot).as_deref(), Some("timer.sys"));
        assert_eq!(images.unloaded_at(0x5000), None);
        images.load("again.sys", 0x1000, 0x3000).unwrap();
        assert_eq!(images.unloaded_at(0x2000), None, "a loaded image owns the range now");
        assert!(images.unloaded_at(0x4000).is_some());
        assert_eq!(images.unloaded(), [UnloadedImage { name: "timer.sys".into(), start: 0x1000, end: 0x5000 }]);
    }

    #[test]
    fn the_oldest_unloaded_image_gives_way() {
        let images = Images::default();
        for i in 0..=MAX_UNLOADED {
            images.remember_unloaded(&format!("d{i}.sys"), 0x1000 * (i + 1), 0x1000 * (i + 2));
        }
        assert_eq!(images.unloaded_at(0x1000), None, "d0 was forgotten");
        assert_eq!(images.unloaded().len(), MAX_UNLOADED);
        assert_eq!(images.unloaded()[0].name, "d1.sys");
        let last = images.unloaded_at(0x1000 * (MAX_UNLOADED + 1)).unwrap();
        assert_eq!(images.name(last), Some(format!("d{MAX_UNLOADED}.sys")));
    }
}
