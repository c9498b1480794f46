//! `!pool ADDRESS`: the blocks of the pool page holding an address, read from their
//! POOL_HEADERs as the debugger reads them (learn.microsoft.com "!pool"), for the
//! analysis of a pool bugcheck.
//!
//! ```text
//! Pool page fffff8a000001040 region is Paged pool
//!  fffff8a000001000 size:   40 previous size:    0  (Allocated)  Leak
//! *fffff8a000001040 size:   70 previous size:   40  (Free)      *Dubl
//!  fffff8a0000010b0 size:  f50 previous size:   70  (Free)       ....
//! ```
//!
//! Sizes are the headers' BlockSize and PreviousSize in bytes (hex), the block
//! holding the address is marked `*`. The walk goes from the page's first header
//! to its end and stops, saying so, at a header whose size is zero or runs past
//! the page — the damage a BAD_POOL_HEADER reports. Only pages mapped now are read
//! (a paged-out page, a big allocation's later page or special pool give no view).

use std::fmt::Write as _;

use ntmem_machine::{RegionKind, Va};

use super::header::PoolHeader;
use super::PoolTag;
use crate::Machine;

/// One block of the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PoolEntry {
    /// The header's address.
    pub entry: u64,
    /// BlockSize in bytes (header included).
    pub size: u64,
    /// PreviousSize in bytes.
    pub previous_size: u64,
    /// Allocated (PoolType not 0).
    pub allocated: bool,
    /// The tag (JSON: its four characters, as PoolMon prints them).
    #[serde(serialize_with = "tag_text")]
    pub tag: PoolTag,
    /// Whether the address asked about lies in this block.
    pub holds_address: bool,
}

fn tag_text<S: serde::Serializer>(tag: &PoolTag, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(tag)
}

/// The page's blocks.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PoolPage {
    /// The address asked about.
    pub address: u64,
    /// `Paged pool` or `Nonpaged pool`.
    pub region: &'static str,
    /// The blocks, from the page's start.
    pub entries: Vec<PoolEntry>,
    /// Why the walk stopped before the page's end, if it did.
    pub damaged: Option<String>,
}

/// The allocated blocks of `kind` pool tagged `tag`, by address: (address the
/// caller got, bytes it can use) — what `!poolfind Tag` finds by walking the pool's
/// pages. Special pool's blocks are not walked.
pub fn find_blocks(m: &Machine, tag: PoolTag, kind: super::PoolKind) -> Vec<(u64, u64)> {
    let unit = m.pool().geometry().unit;
    let tag = tag.tracked();
    let mut found: Vec<(u64, u64)> = m
        .pool()
        .small_pages(kind)
        .into_iter()
        .filter_map(|page| pool_page(m, page))
        .flat_map(|p| p.entries)
        .filter(|e| e.allocated && e.tag.tracked() == tag)
        .map(|e| (e.entry + unit, e.size - unit))
        .collect();
    let big = m.pool().big_blocks(kind).into_iter().filter(|b| b.2.tracked() == tag).map(|b| (b.0, b.1));
    found.extend(big);
    found.sort_unstable();
    found
}

/// The page of pool holding `va`, if `va` is in paged or nonpaged pool and its page
/// is mapped now.
pub fn pool_page(m: &Machine, va: u64) -> Option<PoolPage> {
    let layout = m.space().layout();
    let region = match layout.region_at(Va::new(va))?.kind {
        RegionKind::PagedPool => "Paged pool",
        RegionKind::NonPagedPool | RegionKind::NonPagedPoolExpansion => "Nonpaged pool",
        _ => return None,
    };
    let g = m.pool().geometry();
    let page = va & !(g.page - 1);
    m.space().walk(m.phys(), Va::new(page)).phys?;
    let mut bytes = vec![0u8; usize::try_from(g.page).ok()?];
    m.space().read(Va::new(page), &mut bytes).ok()?;
    let mut entries = Vec::new();
    let mut damaged = None;
    let mut at = 0u64;
    while at < g.page {
        let mut raw = [0u8; 16];
        let start = usize::try_from(at).ok()?;
        let header_bytes = usize::try_from(g.unit).ok()?;
        raw[..header_bytes].copy_from_slice(&bytes[start..start + header_bytes]);
        let h = PoolHeader::decode(&raw, &g);
        let size = u64::from(h.block_size) * g.unit;
        if size == 0 || at + size > g.page {
            damaged =
                Some(format!("the header at {:x} has BlockSize {:#x}: the walk stops there", page + at, h.block_size));
            break;
        }
        entries.push(PoolEntry {
            entry: page + at,
            size,
            previous_size: u64::from(h.previous_size) * g.unit,
            allocated: h.in_use(),
            tag: PoolTag(h.tag),
            holds_address: (page + at..page + at + size).contains(&va),
        });
        at += size;
    }
    Some(PoolPage { address: va, region, entries, damaged })
}

impl PoolPage {
    /// As `!pool` prints it.
    pub fn text(&self) -> String {
        let mut out = format!("Pool page {:x} region is {}\n", self.address, self.region);
        for e in &self.entries {
            let mark = if e.holds_address { '*' } else { ' ' };
            let state = if e.allocated { "(Allocated)" } else { "(Free)     " };
            let _ = writeln!(
                out,
                "{mark}{:x} size: {:>4x} previous size: {:>4x}  {state} {mark}{}",
                e.entry, e.size, e.previous_size, e.tag
            );
        }
        if let Some(d) = &self.damaged {
            let _ = writeln!(out, "{d}");
        }
        out
    }
}

/// The pool page a pool bugcheck (BAD_POOL_HEADER 0x19, BAD_POOL_CALLER 0xC2) is
/// about: that of the first of its parameters 2, 4 and 3 that is an address in
/// pool whose page is mapped.
pub fn pool_page_of_stop(m: &Machine, b: &crate::BugCheck) -> Option<PoolPage> {
    use crate::BugCheckCode;
    if b.halt.is_some() || !matches!(b.code, BugCheckCode::BAD_POOL_HEADER | BugCheckCode::BAD_POOL_CALLER) {
        return None;
    }
    [b.parameters[1], b.parameters[3], b.parameters[2]].into_iter().find_map(|p| pool_page(m, p))
}
