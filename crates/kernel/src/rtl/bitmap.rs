//! Bitmaps: what the `RTL_BITMAP` routines compute (wdm.h; learn.microsoft.com,
//! "RtlInitializeBitMap function (wdm.h)" and the page of each routine named
//! below), over the bitmap's `ULONG` words as a slice.
//!
//! Bit `i` is bit `i % 32` of word `i / 32` (the x86 bit order Windows uses).
//! [`BitMap`] holds the words a routine touches — the WDK boundary copies them in
//! from the driver's buffer and back — and the bitmap's `SizeOfBitMap`.
//!
//! The searches ([`BitMap::find`]) follow the pages of `RtlFindClearBits` and
//! `RtlFindSetBits`: from `HintIndex` to the end of the bitmap, then from its start
//! back to the hint (a run may start before the hint and end after it, never wrap
//! past the end); `0xFFFFFFFF` ([`NOT_FOUND`]) when no run exists. A hint at or past
//! the end searches from bit 0.
//!
//! Where the pages are silent, ntmem's answers (each documented on its method):
//! a search for 0 bits returns the hint (0 when the hint is out of range); a range
//! test ([`BitMap::all`]) of a range that does not lie inside the bitmap is FALSE.
//! Ranges a driver sets or clears past `SizeOfBitMap` are written, as Windows' free
//! build writes them (its range check is a checked-build `ASSERT`).
//!
//! No routine here panics on a driver's numbers: every index is bounded by the
//! slice, and the boundary sizes the slice from the range asked for.

/// The index the searches return when no run is found.
pub const NOT_FOUND: u32 = 0xFFFF_FFFF;

/// The words that hold `bits` bits.
pub fn words_for(bits: u64) -> u64 {
    bits.div_ceil(32)
}

/// Set or clear: the state a search or test looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bit {
    /// 0.
    Clear,
    /// 1.
    Set,
}

impl Bit {
    fn of(set: bool) -> Bit {
        if set {
            Bit::Set
        } else {
            Bit::Clear
        }
    }

    /// A word whose bits are all this.
    fn word(self) -> u32 {
        match self {
            Bit::Clear => 0,
            Bit::Set => u32::MAX,
        }
    }
}

/// A bitmap's words (all of them, or a window of them) and its size in bits.
#[derive(Debug)]
pub struct BitMap<'a> {
    words: &'a mut [u32],
    /// The index in the bitmap of `words[0]`.
    first: u64,
    size: u32,
}

impl<'a> BitMap<'a> {
    /// `size` bits over `words`; bits past `words` (a short buffer) read as clear
    /// and are never written.
    pub fn new(words: &'a mut [u32], size: u32) -> BitMap<'a> {
        BitMap { words, first: 0, size }
    }

    /// `size` bits of which `words` are the ones from word `first` on: what a
    /// routine that touches only a range of the bitmap needs (`RtlSetBits`,
    /// `RtlTestBit`, `RtlAreBitsClear`). Bits outside the window read as clear and
    /// are never written.
    pub fn window(words: &'a mut [u32], first: u64, size: u32) -> BitMap<'a> {
        BitMap { words, first, size }
    }

    /// Word `w` of the bitmap, 0 outside the words held.
    fn word(&self, w: u64) -> u32 {
        w.checked_sub(self.first)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.words.get(i))
            .copied()
            .unwrap_or(0)
    }

    /// The bits past the words held: `(first + len) * 32`.
    fn held_end(&self) -> u64 {
        self.first.saturating_add(self.words.len() as u64).saturating_mul(32)
    }

    /// `SizeOfBitMap`.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Bit `i` (`RtlTestBit`, `RtlCheckBit`); clear past the words held.
    pub fn test(&self, i: u64) -> bool {
        self.word(i / 32) >> (i % 32) & 1 == 1
    }

    /// Sets (or clears) `count` bits from `start` (`RtlSetBits`, `RtlClearBits`),
    /// within the words held.
    pub fn write_range(&mut self, start: u64, count: u64, to: Bit) {
        let end = start.saturating_add(count).min(self.held_end());
        let mut i = start.max(self.first.saturating_mul(32));
        while i < end {
            let (w, b) = (i / 32 - self.first, i % 32);
            let n = (32 - b).min(end - i);
            let mask = if n == 32 { u32::MAX } else { ((1u32 << n) - 1) << b };
            if let Some(word) = usize::try_from(w).ok().and_then(|w| self.words.get_mut(w)) {
                match to {
                    Bit::Set => *word |= mask,
                    Bit::Clear => *word &= !mask,
                }
            }
            i += n;
        }
    }

    /// Every word of the bitmap set to all-ones or all-zeros (`RtlSetAllBits`,
    /// `RtlClearAllBits`): whole `ULONG`s, the bits of the last word past
    /// `SizeOfBitMap` included, as Windows fills them.
    pub fn write_all(&mut self, to: Bit) {
        let n = words_for(u64::from(self.size)).saturating_sub(self.first).min(self.words.len() as u64) as usize;
        self.words[..n].iter_mut().for_each(|w| *w = to.word());
    }

    /// How many of the bitmap's `SizeOfBitMap` bits are `which`
    /// (`RtlNumberOfSetBits`, `RtlNumberOfClearBits`), over a whole bitmap
    /// ([`BitMap::new`]).
    pub fn count(&self, which: Bit) -> u32 {
        let size = u64::from(self.size);
        let mut set = 0u32;
        for (w, &word) in self.words.iter().enumerate() {
            let first = (self.first + w as u64) * 32;
            if first >= size {
                break;
            }
            let bits = (size - first).min(32);
            let mask = if bits == 32 { u32::MAX } else { (1u32 << bits) - 1 };
            set += (word & mask).count_ones();
        }
        match which {
            Bit::Set => set,
            Bit::Clear => self.size - set,
        }
    }

    /// Whether the `length` bits from `start` are all `which` (`RtlAreBitsSet`,
    /// `RtlAreBitsClear`). FALSE when the range does not lie inside the bitmap, or
    /// is empty (ntmem's answer where the pages are silent).
    pub fn all(&self, start: u32, length: u32, which: Bit) -> bool {
        let end = u64::from(start) + u64::from(length);
        if length == 0 || end > u64::from(self.size) {
            return false;
        }
        self.run_from(u64::from(start), end, which) >= end
    }

    /// The first bit at or after `i`, before `end`, that is not `which` (`end` when
    /// there is none), skipping whole words.
    fn run_from(&self, mut i: u64, end: u64, which: Bit) -> u64 {
        while i < end {
            if i.is_multiple_of(32) && end - i >= 32 && self.word(i / 32) == which.word() {
                i += 32;
                continue;
            }
            if Bit::of(self.test(i)) != which {
                return i;
            }
            i += 1;
        }
        end
    }

    /// The first start in `from..limit` of a run of `count` bits that are `which`,
    /// the run ending within the bitmap.
    fn first_run(&self, from: u64, limit: u64, count: u64, which: Bit) -> Option<u64> {
        let size = u64::from(self.size);
        let mut start = from;
        while start < limit && start + count <= size {
            let stop = self.run_from(start, start + count, which);
            if stop >= start + count {
                return Some(start);
            }
            start = stop + 1;
        }
        None
    }

    /// The search of `RtlFindClearBits` / `RtlFindSetBits` (module docs): a run of
    /// `count` bits that are `which`, from `hint` to the end, then from 0 back to
    /// the hint; [`NOT_FOUND`] when there is none. `count` 0 returns the hint (0
    /// for a hint out of range).
    pub fn find(&self, count: u32, hint: u32, which: Bit) -> u32 {
        let (size, count) = (u64::from(self.size), u64::from(count));
        let hint = if u64::from(hint) >= size { 0 } else { u64::from(hint) };
        if count == 0 {
            return hint as u32;
        }
        if count > size {
            return NOT_FOUND;
        }
        self.first_run(hint, size, count, which)
            .or_else(|| self.first_run(0, hint, count, which))
            .map_or(NOT_FOUND, |i| i as u32)
    }

    /// `RtlFindClearBitsAndSet` / `RtlFindSetBitsAndClear`: [`BitMap::find`], then
    /// the run found flipped.
    pub fn find_and_flip(&mut self, count: u32, hint: u32, which: Bit) -> u32 {
        let at = self.find(count, hint, which);
        if at != NOT_FOUND {
            let to = match which {
                Bit::Clear => Bit::Set,
                Bit::Set => Bit::Clear,
            };
            self.write_range(u64::from(at), u64::from(count), to);
        }
        at
    }
}

#[cfg(test)]
mod tests;
