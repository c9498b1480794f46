//! The free-page map: which physical frames are free, and where the runs are.
//!
//! One bit per frame (1 = free), grouped so that nothing has to look at every
//! frame: 64-bit *words* form *blocks* (64 words, 4096 frames by default), blocks
//! form *groups* (64 blocks, 2^18 frames: 1 GB of 4 KB pages). A group whose frames
//! are all free or all in use stores no bits at all, so a 1 TB machine costs a few
//! kilobytes until its memory is used. Every stored block keeps a summary (free
//! count, free run at its start, at its end, longest inside), so a search for a
//! contiguous run looks at summaries and scans the bits of a block only when that
//! block alone could hold the run. Finding 64 MB below 4 GB is therefore a walk over
//! a few thousand summaries, never a scan of the PFN database (issue 2, item 3;
//! compare ReactOS's first-fit PFN scan in `research/nt-algorithms.md` §3.1).
//!
//! The map knows nothing of policy (which end to prefer, /NOLOWMEM): that is
//! [`super::frames`].

use std::ops::ControlFlow;

/// Which end of a range a search starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Lowest frame first (ReactOS's first fit).
    BottomUp,
    /// Highest frame first: keeps low memory for devices that cannot reach high.
    TopDown,
}

/// The sizes of blocks and groups, as powers of two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// log2 of the words in a block.
    pub block_words_shift: u32,
    /// log2 of the blocks in a group.
    pub group_blocks_shift: u32,
}

impl Geometry {
    /// 4096-frame blocks, 2^18-frame groups.
    pub const DEFAULT: Geometry = Geometry { block_words_shift: 6, group_blocks_shift: 6 };

    const fn block_frames_shift(self) -> u32 {
        self.block_words_shift + 6
    }
    const fn block_frames(self) -> u64 {
        1 << self.block_frames_shift()
    }
    const fn group_frames_shift(self) -> u32 {
        self.block_frames_shift() + self.group_blocks_shift
    }
    const fn group_frames(self) -> u64 {
        1 << self.group_frames_shift()
    }
}

/// Free runs at a block's edges and inside it, in frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Summary {
    free: u32,
    prefix: u32,
    suffix: u32,
    longest: u32,
}

impl Summary {
    /// Summarises a block from its words (bit `i` of word `w` is frame `64w + i`),
    /// word by word: runs inside a word by repeated shift-and, runs across words by
    /// carrying the ones at each word's top.
    fn of(words: &[u64]) -> Summary {
        let bits = (words.len() * 64) as u32;
        let free: u32 = words.iter().map(|w| w.count_ones()).sum();
        if free == 0 || free == bits {
            return Summary { free, prefix: free, suffix: free, longest: free };
        }
        let full = words.iter().take_while(|&&w| w == !0).count();
        let prefix = full as u32 * 64 + words[full].trailing_ones();
        let full_top = words.iter().rev().take_while(|&&w| w == !0).count();
        let suffix = full_top as u32 * 64 + words[words.len() - 1 - full_top].leading_ones();
        let (mut longest, mut carry) = (0, 0);
        for &w in words {
            if w == !0 {
                carry += 64;
                continue;
            }
            longest = longest.max(carry + w.trailing_ones()).max(longest_inside(w));
            carry = w.leading_ones();
        }
        Summary { free, prefix, suffix, longest: longest.max(carry) }
    }
}

/// The longest run of set bits in `w`.
fn longest_inside(mut w: u64) -> u32 {
    let mut n = 0;
    while w != 0 {
        w &= w << 1;
        n += 1;
    }
    n
}

/// Index of the first bit at or after `from` that is one in `view(word)`, if any.
fn first_at_or_after(words: &[u64], from: u64, view: impl Fn(u64) -> u64) -> Option<u64> {
    let mut w = (from / 64) as usize;
    let mut bits = view(*words.get(w)?) & (!0u64 << (from % 64));
    loop {
        if bits != 0 {
            return Some(w as u64 * 64 + u64::from(bits.trailing_zeros()));
        }
        w += 1;
        bits = view(*words.get(w)?);
    }
}

/// Index of the last bit at or before `from` that is one in `view(word)`, if any.
fn last_at_or_before(words: &[u64], from: u64, view: impl Fn(u64) -> u64) -> Option<u64> {
    let mut w = (from / 64) as usize;
    let mut bits = view(words[w]) & (!0u64 >> (63 - from % 64));
    loop {
        if bits != 0 {
            return Some(w as u64 * 64 + 63 - u64::from(bits.leading_zeros()));
        }
        w = w.checked_sub(1)?;
        bits = view(words[w]);
    }
}

/// Index of the first set (free) bit at or after `from`, if any.
fn next_set(words: &[u64], from: u64) -> Option<u64> {
    first_at_or_after(words, from, |w| w)
}

/// Index of the first clear bit at or after `from` (the bit count if none).
fn next_clear(words: &[u64], from: u64) -> u64 {
    first_at_or_after(words, from, |w| !w).unwrap_or(words.len() as u64 * 64)
}

/// Index of the last set bit at or before `from`, if any.
fn prev_set(words: &[u64], from: u64) -> Option<u64> {
    last_at_or_before(words, from, |w| w)
}

/// Index of the last clear bit at or before `from`, if any.
fn prev_clear(words: &[u64], from: u64) -> Option<u64> {
    last_at_or_before(words, from, |w| !w)
}

/// A group of blocks: either uniform (no bits stored) or mixed.
#[derive(Debug, Clone)]
struct Group {
    free: u64,
    mixed: Option<Mixed>,
}

#[derive(Debug, Clone)]
struct Mixed {
    words: Box<[u64]>,
    blocks: Box<[Summary]>,
}

/// What a search sees of one stretch of frames.
#[derive(Clone, Copy)]
enum Unit<'a> {
    Free,
    Used,
    Bits(Summary, &'a [u64]),
}

/// The free-page bitmap with run summaries.
#[derive(Debug, Clone)]
pub struct FreeMap {
    geometry: Geometry,
    frames: u64,
    free: u64,
    groups: Vec<Group>,
}

impl FreeMap {
    /// A map of `frames` frames, all in use.
    pub fn new(frames: u64, geometry: Geometry) -> FreeMap {
        let count = frames.div_ceil(geometry.group_frames()) as usize;
        FreeMap { geometry, frames, free: 0, groups: vec![Group { free: 0, mixed: None }; count] }
    }

    /// Frames the map covers.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Free frames.
    pub fn free(&self) -> u64 {
        self.free
    }

    /// Whether `frame` is free.
    pub fn is_free(&self, frame: u64) -> bool {
        let g = &self.groups[(frame >> self.geometry.group_frames_shift()) as usize];
        match &g.mixed {
            None => g.free != 0,
            Some(m) => {
                let bit = frame & (self.geometry.group_frames() - 1);
                m.words[(bit / 64) as usize] & (1 << (bit % 64)) != 0
            }
        }
    }

    /// Whether every frame of `[start, start + count)` is free.
    pub fn is_range_free(&self, start: u64, count: u64) -> bool {
        count > 0 && find_run(self, start, start + count - 1, count, 0, Direction::BottomUp) == Some(start)
    }

    /// Marks `[start, start + count)` free (`true`) or in use (`false`).
    ///
    /// # Panics
    /// If the range leaves the map.
    pub fn set(&mut self, start: u64, count: u64, free: bool) {
        assert!(start + count <= self.frames, "frames {start:#x}+{count:#x} beyond the map");
        let gshift = self.geometry.group_frames_shift();
        let gframes = self.geometry.group_frames();
        let mut at = start;
        let end = start + count;
        while at < end {
            let gi = (at >> gshift) as usize;
            let gbase = (gi as u64) << gshift;
            let gend = (gbase + gframes).min(end);
            let before = self.groups[gi].free;
            if at == gbase && gend == gbase + gframes {
                self.groups[gi] = Group { free: if free { gframes } else { 0 }, mixed: None };
            } else {
                self.set_in_group(gi, at - gbase, gend - gbase, free);
            }
            self.free = self.free - before + self.groups[gi].free;
            at = gend;
        }
    }

    fn set_in_group(&mut self, gi: usize, from: u64, to: u64, free: bool) {
        let geo = self.geometry;
        let gframes = geo.group_frames();
        let g = &mut self.groups[gi];
        let m = g.mixed.get_or_insert_with(|| {
            let fill = if g.free == gframes { !0u64 } else { 0 };
            let words = vec![fill; (gframes / 64) as usize].into_boxed_slice();
            let block = Summary::of(&words[..1 << geo.block_words_shift]);
            Mixed { words, blocks: vec![block; 1 << geo.group_blocks_shift].into_boxed_slice() }
        });
        let mut bit = from;
        while bit < to {
            let (w, b) = ((bit / 64) as usize, bit % 64);
            let n = (64 - b).min(to - bit);
            let mask = if n == 64 { !0 } else { ((1u64 << n) - 1) << b };
            if free {
                m.words[w] |= mask;
            } else {
                m.words[w] &= !mask;
            }
            bit += n;
        }
        let bshift = geo.block_frames_shift();
        let wpb = 1usize << geo.block_words_shift;
        for bi in (from >> bshift)..=((to - 1) >> bshift) {
            let bi = bi as usize;
            m.blocks[bi] = Summary::of(&m.words[bi * wpb..(bi + 1) * wpb]);
        }
        g.free = m.blocks.iter().map(|s| u64::from(s.free)).sum();
        if g.free == 0 || g.free == gframes {
            g.mixed = None;
        }
    }

    /// The stretches a search walks over `[first, last]`, in ascending order.
    fn units(&self, first: u64, last: u64) -> Vec<(u64, u64, Unit<'_>)> {
        let geo = self.geometry;
        let gshift = geo.group_frames_shift();
        let bshift = geo.block_frames_shift();
        let wpb = 1usize << geo.block_words_shift;
        let mut out = Vec::new();
        for gi in (first >> gshift)..=(last >> gshift) {
            let g = &self.groups[gi as usize];
            let gbase = gi << gshift;
            match &g.mixed {
                None => {
                    let unit = if g.free == 0 { Unit::Used } else { Unit::Free };
                    out.push((gbase, geo.group_frames(), unit));
                }
                Some(m) => {
                    let lo = if gbase < first { (first - gbase) >> bshift } else { 0 };
                    let hi = ((last.min(gbase + geo.group_frames() - 1) - gbase) >> bshift) as usize;
                    for bi in lo as usize..=hi {
                        let s = m.blocks[bi];
                        let unit = match s.free as u64 {
                            0 => Unit::Used,
                            f if f == geo.block_frames() => Unit::Free,
                            _ => Unit::Bits(s, &m.words[bi * wpb..(bi + 1) * wpb]),
                        };
                        out.push((gbase + ((bi as u64) << bshift), geo.block_frames(), unit));
                    }
                }
            }
        }
        out
    }

    /// Calls `visit(start, len)` for every maximal free run of at least `min_len`
    /// frames inside `[first, last]` (runs clipped to the range), in `dir` order,
    /// until it breaks.
    pub fn visit_runs<B>(
        &self,
        first: u64,
        last: u64,
        min_len: u64,
        dir: Direction,
        visit: &mut dyn FnMut(u64, u64) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        if first > last || first >= self.frames {
            return ControlFlow::Continue(());
        }
        let last = last.min(self.frames - 1);
        let mut emit = |s: u64, e: u64| -> ControlFlow<B> {
            let (s, e) = (s.max(first), e.min(last + 1));
            if e > s && e - s >= min_len.max(1) {
                visit(s, e - s)?;
            }
            ControlFlow::Continue(())
        };
        let units = self.units(first, last);
        let mut open: Option<u64> = None;
        match dir {
            Direction::BottomUp => {
                for &(base, size, unit) in &units {
                    match unit {
                        Unit::Free => {
                            open.get_or_insert(base);
                        }
                        Unit::Used => {
                            if let Some(s) = open.take() {
                                emit(s, base)?;
                            }
                        }
                        Unit::Bits(sum, words) => {
                            emit(open.take().unwrap_or(base), base + u64::from(sum.prefix))?;
                            if u64::from(sum.longest) >= min_len {
                                for (s, e) in InteriorRuns::new(words, sum, Direction::BottomUp) {
                                    emit(base + s, base + e)?;
                                }
                            }
                            if sum.suffix > 0 {
                                open = Some(base + size - u64::from(sum.suffix));
                            }
                        }
                    }
                }
                if let Some(s) = open {
                    let &(base, size, _) = units.last().expect("at least one unit");
                    emit(s, base + size)?;
                }
            }
            Direction::TopDown => {
                for &(base, size, unit) in units.iter().rev() {
                    match unit {
                        Unit::Free => {
                            open.get_or_insert(base + size);
                        }
                        Unit::Used => {
                            if let Some(e) = open.take() {
                                emit(base + size, e)?;
                            }
                        }
                        Unit::Bits(sum, words) => {
                            emit(base + size - u64::from(sum.suffix), open.take().unwrap_or(base + size))?;
                            if u64::from(sum.longest) >= min_len {
                                for (s, e) in InteriorRuns::new(words, sum, Direction::TopDown) {
                                    emit(base + s, base + e)?;
                                }
                            }
                            if sum.prefix > 0 {
                                open = Some(base + u64::from(sum.prefix));
                            }
                        }
                    }
                }
                if let Some(e) = open {
                    emit(units[0].0, e)?;
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// The longest free run inside `[first, last]`, in frames.
    pub fn largest_run(&self, first: u64, last: u64) -> u64 {
        let mut best = 0;
        let _ = self.visit_runs::<()>(first, last, 1, Direction::BottomUp, &mut |_, len| {
            best = best.max(len);
            ControlFlow::Continue(())
        });
        best
    }
}

/// Free runs `(start, end)` of a mixed block that touch neither of its edges, in
/// `dir` order, found lazily (a search usually stops at the first that fits).
struct InteriorRuns<'a> {
    words: &'a [u64],
    /// Ascending: the next bit to look from. Descending: one past it.
    at: u64,
    /// The interior's bounds: `[low, high)`.
    low: u64,
    high: u64,
    dir: Direction,
}

impl<'a> InteriorRuns<'a> {
    fn new(words: &'a [u64], sum: Summary, dir: Direction) -> InteriorRuns<'a> {
        let low = u64::from(sum.prefix);
        let high = words.len() as u64 * 64 - u64::from(sum.suffix);
        let at = if dir == Direction::BottomUp { low } else { high };
        InteriorRuns { words, at, low, high, dir }
    }
}

impl Iterator for InteriorRuns<'_> {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        match self.dir {
            Direction::BottomUp => {
                let start = next_set(self.words, self.at).filter(|&s| s < self.high)?;
                let end = next_clear(self.words, start);
                self.at = end;
                Some((start, end))
            }
            Direction::TopDown => {
                if self.at <= self.low {
                    return None;
                }
                let last = prev_set(self.words, self.at - 1).filter(|&l| l >= self.low)?;
                let start = prev_clear(self.words, last).map_or(0, |c| c + 1);
                self.at = start;
                Some((start, last + 1))
            }
        }
    }
}

/// The highest (`TopDown`) or lowest (`BottomUp`) start for `count` frames inside
/// the free run `[start, start + len)` such that they do not cross a multiple of
/// `boundary` frames (0 = no boundary), if there is one.
pub fn place_in_run(start: u64, len: u64, count: u64, boundary: u64, dir: Direction) -> Option<u64> {
    if count == 0 || len < count || (boundary != 0 && count > boundary) {
        return None;
    }
    let end = start + len;
    let crosses = |x: u64| boundary != 0 && x / boundary != (x + count - 1) / boundary;
    let x = match dir {
        Direction::BottomUp => {
            let x = start;
            if crosses(x) {
                (x / boundary + 1) * boundary
            } else {
                x
            }
        }
        Direction::TopDown => {
            let x = end - count;
            if crosses(x) {
                ((x + count - 1) / boundary * boundary).checked_sub(count)?
            } else {
                x
            }
        }
    };
    (x >= start && x + count <= end).then_some(x)
}

/// Finds the `dir`-most free frame in `[first, last]`.
pub fn find_one(map: &FreeMap, first: u64, last: u64, dir: Direction) -> Option<u64> {
    find_run(map, first, last, 1, 0, dir)
}

/// Finds `count` contiguous free frames in `[first, last]` not crossing a
/// multiple of `boundary`, preferring the `dir` end.
pub fn find_run(map: &FreeMap, first: u64, last: u64, count: u64, boundary: u64, dir: Direction) -> Option<u64> {
    match map.visit_runs(first, last, count, dir, &mut |s, len| match place_in_run(s, len, count, boundary, dir) {
        Some(x) => ControlFlow::Break(x),
        None => ControlFlow::Continue(()),
    }) {
        ControlFlow::Break(x) => Some(x),
        ControlFlow::Continue(()) => None,
    }
}

#[cfg(test)]
mod tests;
