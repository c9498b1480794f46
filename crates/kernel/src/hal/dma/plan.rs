//! How a transfer's pages reach the device (research/dma-verifier-views.md §1.3
//! table): the pages an MDL names for a range ([`pieces`]) and their routing,
//! directly or through map registers, into logically contiguous runs ([`plan`]).
//! Pure but for reading the MDL; [`super::transfer`] carries the runs out.

use ntmem_machine::{PageShift, Pfn, Va};

use super::{AdapterConfig, DRIVER_VERIFIER_DMA_VIOLATION};
use crate::bugcheck::BugCheck;
use crate::ke::processor::Cpu;
use crate::mm::mdl::{self, Mdl};
use crate::Machine;

/// The frame-number bits a device can address: 40, a 52-bit physical address with
/// 4 KB pages (the x64 PTE's frame field, bits 12–51). Higher bits of an MDL's frame
/// numbers are dropped as the bus would drop them, so no arithmetic on a hostile
/// MDL's frames can overflow.
const PFN_MASK: u64 = (1 << 40) - 1;

/// One page's share of a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    /// The virtual page number of the byte (`va >> PAGE_SHIFT`).
    pub vpage: u64,
    /// The frame the MDL names for it.
    pub pfn: Pfn,
    /// Byte offset in the page.
    pub offset: u64,
    /// Bytes of the transfer in this page.
    pub len: u64,
}

/// Where a piece goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// The device reaches the page itself.
    Direct,
    /// Through the register at this index of the file.
    Bounce(u32),
}

/// One logically contiguous run of a mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub logical: u64,
    pub len: u64,
    pub parts: Vec<(Piece, Route)>,
}

/// The pages of `(current_va, length)` in `mdl`.
///
/// # Errors
/// DRIVER_VERIFIER_DMA_VIOLATION (0xE6: 0x1B, CurrentVa, MDL, 0) when the range is
/// not inside the MDL — Windows' HAL would index past the MDL's page array; ntmem
/// stops as the verifier does. 0x50 when the MDL is not mapped.
pub(crate) fn pieces(cpu: &Cpu<'_>, mdl: Mdl, current_va: Va, length: u64) -> Result<Vec<Piece>, BugCheck> {
    let m = cpu.machine();
    let shift = m.phys().shift();
    let h = mdl::read_header(cpu, mdl)?;
    let start = h.virtual_address().get();
    let end = start.saturating_add(u64::from(h.byte_count));
    let va = current_va.get();
    if va < start || va.checked_add(length).is_none_or(|e| e > end) {
        return Err(m.bugcheck(DRIVER_VERIFIER_DMA_VIOLATION, [0x1B, va, mdl.0.get(), 0]));
    }
    let page = shift.page_size();
    let first_vpage = h.start_va >> shift.0;
    let end = va + length; // no overflow: checked above
    let mut out = Vec::new();
    let mut at = va;
    while at < end {
        let offset = shift.offset(at);
        let len = (page - offset).min(end - at);
        let vpage = at >> shift.0;
        // A StartVa and ByteOffset that wrap put `va` before StartVa's page.
        let Some(index) = vpage.checked_sub(first_vpage) else {
            return Err(m.bugcheck(DRIVER_VERIFIER_DMA_VIOLATION, [0x1B, va, mdl.0.get(), 0]));
        };
        let pfn = Pfn::new(mdl::read_pfn(cpu, mdl, index)? & PFN_MASK);
        out.push(Piece { vpage, pfn, offset, len });
        at += len;
    }
    Ok(out)
}

/// The physical address of byte `offset` of register `index` of the map buffer.
pub(crate) fn register_pa(shift: PageShift, map_buffer: Pfn, index: u32, offset: u64) -> u64 {
    map_buffer.add(u64::from(index)).addr(shift).get() + offset
}

/// Whether a run from `start` of `len` bytes stays inside one `boundary` window.
fn inside_window(boundary: u64, start: u64, len: u64) -> bool {
    boundary == 0 || len == 0 || start / boundary == (start + len - 1) / boundary
}

/// The mapping of `pieces` through a file whose registers start at `first` (index
/// in the map buffer) and number `count`, the first piece at register `slot0` (its
/// page distance from the origin): the runs, in order. For a device without
/// hardware scatter/gather there is at most one run; a mapping that runs out of
/// registers stops there (the caller maps the rest later, as MapTransfer's
/// `*Length` out says).
pub(crate) fn plan(
    config: &AdapterConfig,
    shift: PageShift,
    map_buffer: Option<Pfn>,
    file: (u32, u32),
    origin: u64,
    pieces: &[Piece],
) -> Vec<Run> {
    let (first, count) = file;
    let reach = |p: &Piece| {
        let pa = p.pfn.addr(shift).get() + p.offset;
        pa.checked_add(p.len.saturating_sub(1)).is_some_and(|e| e <= config.limit)
    };
    let slot = |p: &Piece| p.vpage.checked_sub(origin).filter(|&s| s < u64::from(count)).map(|s| s as u32);
    let mut runs: Vec<Run> = Vec::new();
    if config.master && config.scatter_gather {
        for &p in pieces {
            let (logical, route) = if !config.bounces || reach(&p) {
                (p.pfn.addr(shift).get() + p.offset, Route::Direct)
            } else {
                match (slot(&p), map_buffer) {
                    (Some(s), Some(mb)) => (register_pa(shift, mb, first + s, p.offset), Route::Bounce(s)),
                    _ => break,
                }
            };
            match runs.last_mut() {
                Some(r) if r.logical + r.len == logical && inside_window(config.boundary, r.logical, r.len + p.len) => {
                    r.len += p.len;
                    r.parts.push((p, route));
                }
                _ => runs.push(Run { logical, len: p.len, parts: vec![(p, route)] }),
            }
        }
        return runs;
    }
    let Some(&head) = pieces.first() else { return runs };
    let head_pa = head.pfn.addr(shift).get() + head.offset;
    let total: u64 = pieces.iter().map(|p| p.len).sum();
    let consecutive = pieces.windows(2).all(|w| w[0].pfn.add(1) == w[1].pfn);
    if pieces.iter().all(reach) && consecutive && inside_window(config.boundary, head_pa, total) {
        return vec![Run { logical: head_pa, len: total, parts: pieces.iter().map(|&p| (p, Route::Direct)).collect() }];
    }
    let Some(mb) = map_buffer.filter(|_| config.bounces) else {
        // No map buffer (a device that reaches all RAM): the first physically
        // consecutive stretch only.
        let mut run = Run { logical: head_pa, len: 0, parts: Vec::new() };
        for (i, &p) in pieces.iter().enumerate() {
            if i > 0 && pieces[i - 1].pfn.add(1) != p.pfn {
                break;
            }
            run.len += p.len;
            run.parts.push((p, Route::Direct));
        }
        return vec![run];
    };
    let Some(s0) = slot(&head) else { return runs };
    let mut run = Run { logical: register_pa(shift, mb, first + s0, head.offset), len: 0, parts: Vec::new() };
    for &p in pieces {
        let Some(s) = slot(&p) else { break };
        run.len += p.len;
        run.parts.push((p, Route::Bounce(s)));
    }
    vec![run]
}

/// Copies `len` bytes between frames at byte `offset` of each (frames that are not
/// RAM are skipped: nothing to copy).
pub(crate) fn copy_frames(m: &Machine, from: Pfn, to: Pfn, offset: u64, len: u64) {
    let (Some(src), Some(dst)) = (m.phys().file_offset(from), m.phys().file_offset(to)) else { return };
    let mut buf = vec![0u8; len as usize];
    m.phys().ram().read(src + offset, &mut buf);
    m.phys().ram().write(dst + offset, &buf);
}
