//! Foundation benchmarks (issue 2, item 9; issue 4, item 8's contiguous search):
//!
//! - map + unmap of one page, and of a 64-page run, through system PTEs;
//! - a page-table walk (`MmGetPhysicalAddress`'s path);
//! - a contiguous 64 MB allocation below 4 GB on a 1 TB machine whose free memory
//!   has been fragmented to 50%, against a first-fit linear scan of a PFN array
//!   (the way ReactOS's MiFindContiguousPages searches), in the same run.
//!
//! Run: `cargo bench -p ntmem-kernel --bench foundation`. Numbers go to BENCHMARKS.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ntmem_kernel::mm::frames::FrameRequest;
use ntmem_kernel::mm::pfn::PageUse;
use ntmem_kernel::mm::space::Access;
use ntmem_kernel::Machine;
use ntmem_machine::{MachineConfig, PhysAddr, Va};

const MB: u64 = 1 << 20;
const GB: u64 = 1 << 30;
const PAGE: u64 = 4096;

/// Median time per iteration over `rounds` rounds of `iters` iterations.
fn measure(rounds: usize, iters: u32, mut f: impl FnMut()) -> Duration {
    let mut samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed() / iters
        })
        .collect();
    samples.sort();
    samples[rounds / 2]
}

fn boot(ram: u64) -> Machine {
    let config = MachineConfig { ram, ..MachineConfig::default() };
    Machine::boot(config.build().expect("default profile")).expect("boots")
}

fn map_unmap(m: &Machine, pages: u64) -> Duration {
    let frames = m.phys().allocate(&FrameRequest::new(pages, PageUse::NonPagedPool).contiguous()).unwrap();
    measure(21, 2000, || {
        let va = m.system_ptes().reserve(pages).unwrap();
        m.space().map(m.phys(), va, &frames, Access::ReadWrite).unwrap();
        m.space().unmap(m.phys(), va, pages).unwrap();
        m.system_ptes().release(va, pages);
    })
}

fn walk(m: &Machine) -> Duration {
    let frames = m.phys().allocate(&FrameRequest::new(1, PageUse::NonPagedPool)).unwrap();
    let va = m.system_ptes().reserve(1).unwrap();
    m.space().map(m.phys(), va, &frames, Access::ReadWrite).unwrap();
    let at = Va::new(va.get() + 0x234);
    measure(21, 100_000, || {
        black_box(m.space().walk(m.phys(), black_box(at)).phys);
    })
}

/// Frees pattern of the fragmented machine, as page ranges `[start, end)` that are
/// taken: below 4 GB every other page except one 64 MB hole at 2 GB; above 4 GB
/// every other 2 MB. Half of free memory stays free; no free run reaches 64 MB
/// except the hole.
fn taken_below_4g() -> impl Iterator<Item = u64> {
    let hole = (2 * GB / PAGE)..((2 * GB + 64 * MB) / PAGE);
    (0..(4 * GB / PAGE)).filter(move |p| p % 2 == 1 && !hole.contains(p))
}

fn fragment(m: &Machine) {
    let phys = m.phys();
    for p in taken_below_4g() {
        let pa = PhysAddr::new(p * PAGE);
        if phys.file_offset(pa.pfn(m.profile().arch.page_shift())).is_none() {
            continue;
        }
        let req = FrameRequest::new(1, PageUse::Reserved).lowest(pa).highest(PhysAddr::new(pa.get() + PAGE - 1));
        let _ = phys.allocate(&req);
    }
    let top = m.profile().physmap.highest_ram_address().get();
    let mut at = 4 * GB + 2 * MB;
    while at + 2 * MB <= top {
        let req = FrameRequest::new(512, PageUse::Reserved)
            .contiguous()
            .lowest(PhysAddr::new(at))
            .highest(PhysAddr::new(at + 2 * MB - 1));
        let _ = phys.allocate(&req);
        at += 4 * MB;
    }
}

/// An x64 PFN database entry as the reference scan sees it: 0x30 bytes (`_MMPFN`),
/// with the page's list in one field.
#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Mmpfn {
    links: [u64; 2],
    pte_address: u64,
    share_count: u64,
    reference_count: u16,
    page_location: u16,
    flags: u32,
    original_pte: u64,
}

/// ReactOS's MiFindContiguousPages in spirit: a first-fit linear scan of the PFN
/// database for `count` consecutive free pages.
fn reference_scan(pfns: &[Mmpfn], count: usize) -> Option<usize> {
    let mut run = 0;
    for (i, entry) in pfns.iter().enumerate() {
        if entry.page_location == 0 && entry.reference_count == 0 {
            run += 1;
            if run == count {
                return Some(i + 1 - count);
            }
        } else {
            run = 0;
        }
    }
    None
}

fn main() {
    let m = boot(8 * GB);
    println!("map + unmap, 1 page:          {:>10.0?}", map_unmap(&m, 1));
    println!("map + unmap, 64-page run:     {:>10.0?}", map_unmap(&m, 64));
    println!("page-table walk (x64, 4 lvl): {:>10.0?}", walk(&m));

    let t = Instant::now();
    let big = boot(1 << 40);
    println!("boot 1 TB machine (in-process): {:>8.2?}", t.elapsed());
    let t = Instant::now();
    fragment(&big);
    println!(
        "fragmenting it to 50%: {:.2?} ({} free pages, largest run below 4 GB {} pages)",
        t.elapsed(),
        big.phys().free_pages(),
        big.phys().largest_free_run(Some(PhysAddr::new(4 * GB)))
    );
    let count = 64 * MB / PAGE;
    let below_4g = |req: FrameRequest| req.contiguous().highest(PhysAddr::new(4 * GB - 1));
    let ours = |req: FrameRequest| {
        measure(11, 20, || {
            let f = big.phys().allocate(&req).expect("the hole fits");
            big.phys().free(f.first(), count).unwrap();
        })
    };
    let top_down = ours(below_4g(FrameRequest::new(count, PageUse::Contiguous)));
    let bottom_up = ours(below_4g(FrameRequest::new(count, PageUse::Contiguous).bottom_up()));
    let search = |req: FrameRequest| {
        measure(11, 1000, || {
            black_box(big.phys().probe(&req).expect("the hole fits"));
        })
    };
    let search_top_down = search(below_4g(FrameRequest::new(count, PageUse::Contiguous)));
    let search_bottom_up = search(below_4g(FrameRequest::new(count, PageUse::Contiguous).bottom_up()));
    let in_use = Mmpfn { reference_count: 1, page_location: 6, ..Mmpfn::default() };
    let mut pfns = vec![Mmpfn::default(); (4 * GB / PAGE) as usize];
    let holes = ((0xA0000 / PAGE)..(0x10_0000 / PAGE)).chain((3 * GB / PAGE)..(4 * GB / PAGE));
    for p in taken_below_4g().chain(holes) {
        pfns[p as usize] = in_use;
    }
    let reference = measure(11, 3, || {
        black_box(reference_scan(black_box(&pfns), count as usize));
    });
    assert_eq!(reference_scan(&pfns, count as usize), Some((2 * GB / PAGE) as usize));
    let ratio = |d: Duration| reference.as_secs_f64() / d.as_secs_f64();
    println!("contiguous 64 MB below 4 GB, fragmented 1 TB machine:");
    println!("  first-fit PFN scan (ReactOS way), search only: {reference:>10.1?}");
    println!("  ntmem search, top-down (default):  {search_top_down:>10.1?}  {:>6.0}x faster", ratio(search_top_down));
    println!(
        "  ntmem search, bottom-up:           {search_bottom_up:>10.1?}  {:>6.0}x faster",
        ratio(search_bottom_up)
    );
    println!("  ntmem allocate + free (16384 PFN entries each way), top-down: {top_down:>10.1?}");
    println!("  ntmem allocate + free, bottom-up:  {bottom_up:>10.1?}");
}
