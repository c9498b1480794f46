//! Loaded driver images (the list `lm` shows; Windows' `PsLoadedModuleList`).
//!
//! The driver host registers each driver it loads with the host range its code
//! occupies, so that a fault can be blamed on a driver: a fault at raised IRQL
//! whose instruction lies in a driver's image is DRIVER_IRQL_NOT_LESS_OR_EQUAL
//! (0xD1) rather than IRQL_NOT_LESS_OR_EQUAL (0x0A), and the analysis names the
//! image. The lookup runs in the fault handler, so the ranges live in a fixed
//! table of atomics; the names beside them are only read outside it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// How many images one machine can have loaded at once.
pub const MAX_IMAGES: usize = 32;

/// The loaded images of one machine.
#[derive(Debug)]
pub struct Images {
    starts: [AtomicUsize; MAX_IMAGES],
    ends: [AtomicUsize; MAX_IMAGES],
    names: Mutex<Vec<Option<String>>>,
}

impl Default for Images {
    fn default() -> Self {
        Images {
            starts: std::array::from_fn(|_| AtomicUsize::new(0)),
            ends: std::array::from_fn(|_| AtomicUsize::new(0)),
            names: Mutex::new(vec![None; MAX_IMAGES]),
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

    /// Forgets the image in `slot`.
    pub fn unload(&self, slot: usize) {
        self.ends[slot].store(0, Ordering::Release);
        self.starts[slot].store(0, Ordering::Release);
        self.names.lock().unwrap_or_else(|e| e.into_inner())[slot] = None;
    }

    /// The slot of the image holding host address `ip`, if any. Async-signal-safe.
    pub fn slot_at(&self, ip: usize) -> Option<usize> {
        (0..MAX_IMAGES).find(|&i| {
            let (s, e) = (self.starts[i].load(Ordering::Acquire), self.ends[i].load(Ordering::Acquire));
            s <= ip && ip < e
        })
    }

    /// The name of the image in `slot`.
    pub fn name(&self, slot: usize) -> Option<String> {
        self.names.lock().unwrap_or_else(|e| e.into_inner()).get(slot).cloned().flatten()
    }

    /// The name of the image holding `ip`, if any.
    pub fn name_at(&self, ip: usize) -> Option<String> {
        self.slot_at(ip).and_then(|slot| self.name(slot))
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
}
