//! Physical memory as uptime leaves it: fragmented (seed 001, "the success of the
//! DMA allocation is dependent of the amount of available system resources at the
//! time of the attempted allocation. Therefore, the earlier you try to allocate the
//! buffer, the better your chances"; research/dma-verifier-views.md §4.2,
//! "fragmentation grows with uptime").
//!
//! \[DESIGN\] Windows documents no fragmentation pattern, so ntmem makes a
//! deterministic one: [`fragment`] pins `percent` % of the free RAM in 64 KB blocks
//! (16 pages with 4 KB pages: a typical driver or cache allocation) at places drawn
//! by a fixed-seed xorshift generator over the whole of RAM — the same blocks on
//! every run of the same machine, so a plan and a driver run agree. Pinned frames
//! are [`PageUse::Reserved`] and stay pinned until [`Fragmented::release`].

use ntmem_machine::{Pfn, PhysAddr};

use super::frames::FrameRequest;
use super::pfn::PageUse;
use crate::Machine;

/// Bytes in one pinned block.
pub const BLOCK_BYTES: u64 = 64 << 10;
/// The most a caller may pin, percent of free RAM (beyond it nothing but the pins
/// would be left to allocate from).
pub const MAX_PERCENT: u32 = 90;
/// The generator's seed (any nonzero value; fixed so runs repeat).
const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// What [`fragment`] pinned.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Fragmented {
    /// The percentage asked for.
    pub percent: u32,
    /// Frames pinned.
    pub pinned_pages: u64,
    /// Free frames left.
    pub free_pages: u64,
    /// The longest run of free frames left, anywhere.
    pub largest_free_run: u64,
    /// The longest run of free frames left below 4 GB (a 32-bit device's reach).
    pub largest_free_run_below_4gb: u64,
    #[serde(skip)]
    blocks: Vec<(Pfn, u64)>,
}

impl Fragmented {
    /// Gives the pinned frames back.
    pub fn release(self, m: &Machine) {
        for (first, count) in self.blocks {
            let _ = m.phys().free(first, count);
        }
    }
}

fn next(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// Pins `percent` % (capped at [`MAX_PERCENT`]) of the free RAM of `m` in
/// [`BLOCK_BYTES`] blocks at deterministic pseudo-random places (module notes).
/// Blocks that are not wholly free are skipped; the draw gives up after four
/// tries per block wanted, so a machine whose free memory is already scattered
/// may get fewer pins than asked for.
pub fn fragment(m: &Machine, percent: u32) -> Fragmented {
    let shift = m.phys().shift();
    let per_block = shift.bytes_to_pages(BLOCK_BYTES).max(1);
    let percent = percent.min(MAX_PERCENT);
    let target = m.phys().free_pages() * u64::from(percent) / 100;
    let ram: Vec<_> = m.profile().physmap.ram.iter().filter(|r| r.len >= BLOCK_BYTES).copied().collect();
    let slots: u64 = ram.iter().map(|r| r.len / BLOCK_BYTES).sum();
    let mut out = Fragmented { percent, ..Fragmented::default() };
    let mut pinned = 0;
    let mut state = SEED;
    let mut tries = (target / per_block).saturating_mul(4);
    while pinned < target && tries > 0 && slots > 0 {
        tries -= 1;
        let mut slot = next(&mut state) % slots;
        let Some(run) = ram.iter().find(|r| {
            let n = r.len / BLOCK_BYTES;
            if slot < n {
                true
            } else {
                slot -= n;
                false
            }
        }) else {
            break;
        };
        let start = run.start.get().next_multiple_of(BLOCK_BYTES) + slot * BLOCK_BYTES;
        if start + BLOCK_BYTES > run.limit().get() {
            continue;
        }
        let req = FrameRequest::new(per_block, PageUse::Reserved)
            .contiguous()
            .lowest(PhysAddr::new(start))
            .highest(PhysAddr::new(start + BLOCK_BYTES - 1));
        if let Ok(frames) = m.phys().allocate(&req) {
            out.blocks.extend(frames.runs.iter().copied());
            pinned += frames.count();
        }
    }
    out.pinned_pages = pinned;
    out.free_pages = m.phys().free_pages();
    out.largest_free_run = m.phys().largest_free_run(None);
    out.largest_free_run_below_4gb = m.phys().largest_free_run(Some(PhysAddr::new(1 << 32)));
    out
}

#[cfg(test)]
mod tests {
    use ntmem_machine::{BootOptions, MachineConfig};

    use super::*;

    fn boot() -> Machine {
        let mut c = MachineConfig::for_edition("xp-professional").unwrap();
        c.ram = 1 << 30;
        c.boot = BootOptions::default();
        Machine::boot(c.build().unwrap()).unwrap()
    }

    #[test]
    fn the_same_machine_fragments_the_same_way_and_release_gives_it_all_back() {
        let (a, b) = (boot(), boot());
        let free = a.phys().free_pages();
        let fa = fragment(&a, 5);
        let fb = fragment(&b, 5);
        assert_eq!(fa, fb);
        assert!(fa.pinned_pages >= free * 5 / 100 - 16, "{fa:?}");
        assert!(fa.largest_free_run < free / 4, "{fa:?}");
        fa.release(&a);
        assert_eq!(a.phys().free_pages(), free);
        assert_eq!(fragment(&b, 0).pinned_pages, 0);
    }
}
