//! The bugchecks the pool raises, with their documented subcodes.
//!
//! Sources: "Bug Check 0xC2: BAD_POOL_CALLER" and "Bug Check 0x19: BAD_POOL_HEADER"
//! (learn.microsoft.com/windows-hardware/drivers/debugger/bug-check-0xc2--bad-pool-caller,
//! …/bug-check-0x19--bad-pool-header), "Bug Check 0x41: MUST_SUCCEED_POOL_EMPTY"
//! (…/bug-check-0x41--must-succeed-pool-empty), "Bug Check 0xC1:
//! SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION" (…/bug-check-0xc1--special-pool-detected-memory-corruption);
//! research/nt-algorithms.md §1.7, §1.8, §2.

/// BAD_POOL_CALLER (0xC2) subcodes (parameter 1).
pub mod caller {
    /// Zero-byte request: (0, 0, pool type, tag).
    pub const ZERO_BYTES: u64 = 0x00;
    /// Freeing pool that was already freed: (7, 0, pool header contents, block
    /// address). Header contents: `Ulong1` on x86, the first 8 header bytes on x64.
    pub const ALREADY_FREED: u64 = 0x07;
    /// Allocation at a bad IRQL: (8, IRQL, pool type, bytes).
    pub const ALLOCATE_AT_BAD_IRQL: u64 = 0x08;
    /// Free at a bad IRQL: (9, IRQL, pool type (0 nonpaged, 1 paged), address).
    pub const FREE_AT_BAD_IRQL: u64 = 0x09;
    /// Free with the wrong tag of a protected allocation: (0xA, address,
    /// allocator's tag, tag used — 0 for ExFreePool).
    pub const WRONG_TAG: u64 = 0x0A;
    /// Quota release on a corrupted allocation: (0xD, address, tag, bad process).
    pub const BAD_QUOTA_PROCESS: u64 = 0x0D;
    /// Free of a user-mode address: (0x40, address, MmSystemRangeStart, 0).
    pub const USER_ADDRESS: u64 = 0x40;
    /// Free of an address never in any pool: (0x42, address, 0, 0).
    pub const NOT_POOL: u64 = 0x42;
    /// Free of a non-allocated nonpaged pool address: (0x44, address, 0, 0).
    pub const NONPAGED_NOT_ALLOCATED: u64 = 0x44;
    /// Free of a non-allocated paged pool address: (0x50, address, page offset
    /// from the paged pool's start, paged pool size in bytes).
    pub const PAGED_NOT_ALLOCATED: u64 = 0x50;
    /// Free of an invalid address (misaligned for a pool block): (0x99, address, 0, 0).
    pub const INVALID_ADDRESS: u64 = 0x99;
    /// Must-succeed request under Driver Verifier: (0x9A, pool type, bytes, tag).
    pub const MUST_SUCCEED: u64 = 0x9A;
    /// Tag 0: (0x9B, pool type, bytes, caller's address — 0, ntmem does not know it).
    pub const TAG_ZERO: u64 = 0x9B;
    /// Tag "BIG ": (0x9C, pool type, bytes, caller's address — 0).
    pub const TAG_BIG: u64 = 0x9C;
    /// A tag with no letter or digit: (0x9D, tag, pool type, caller's address — 0).
    pub const TAG_NOT_ALPHANUMERIC: u64 = 0x9D;
    /// Free of a paged pool address in the middle of an allocation: (0x41286, 0, 0,
    /// page offset from the paged pool's start).
    pub const PAGED_MIDDLE_OF_ALLOCATION: u64 = 0x41286;
}

/// BAD_POOL_HEADER (0x19) subcodes (parameter 1).
pub mod header {
    /// Adjacent headers contradict each other: (5, one entry, 0, the other entry).
    pub const NEIGHBOURS_DISAGREE: u64 = 0x05;
    /// PreviousSize reaches before the page: (6, computed entry, 0, bad entry).
    pub const PREVIOUS_TOO_LARGE: u64 = 0x06;
    /// PreviousSize 0 but the entry does not start its page: (7, 0, 0, bad entry).
    pub const SIZE_CORRUPT: u64 = 0x07;
    /// BlockSize 0: (8, 0, 0, bad entry).
    pub const BLOCK_SIZE_ZERO: u64 = 0x08;
    /// BlockSize reaches past the page: (9, computed next entry, 0, bad entry).
    pub const BLOCK_SIZE_TOO_LARGE: u64 = 0x09;
    /// The next block's PreviousSize is not this BlockSize: (0x20, entry, next
    /// entry, the next header's first ULONG) — the shape of the dumps Windows 7+
    /// writes for an overrun into the following header.
    pub const NEXT_DISAGREES: u64 = 0x20;
    /// A page-aligned address with no big-page tracking entry (freed twice, or
    /// never allocated): (0x22, address, 0, 0).
    pub const NO_TRACKING_ENTRY: u64 = 0x22;
}

/// SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION (0xC1) subcodes (parameter 4: the special
/// pool puts its subcode last). Parameter 3, "reserved" in the 0x23/0x24/0x32 rows,
/// carries the block's fill pattern in ntmem.
pub mod special {
    /// Free of special pool that is not allocated: (address, 0, 0, 0x20).
    pub const NOT_ALLOCATED: u64 = 0x20;
    /// Free of a bad address: the bytes from it to the end of the space the block may
    /// use are fewer than the bytes requested: (address, requested, calculated, 0x21).
    pub const SIZE_TOO_SMALL: u64 = 0x21;
    /// Free of a bad address: the block cannot start there for the bytes requested:
    /// (address, requested, calculated, 0x22).
    pub const SIZE_MISPLACED: u64 = 0x22;
    /// The pattern before the block (its page's start, Verify End) is overwritten: an
    /// underrun. (address, first corrupt byte, pattern, 0x23).
    pub const CORRUPT_BEFORE: u64 = 0x23;
    /// The pattern after the block is overwritten: an overrun that stayed inside the
    /// page. (address, first corrupt byte, pattern, 0x24).
    pub const CORRUPT_AFTER: u64 = 0x24;
    /// Allocation at a bad IRQL: (IRQL, pool type, bytes, 0x30).
    pub const ALLOCATE_AT_BAD_IRQL: u64 = 0x30;
    /// Free at a bad IRQL: (IRQL, pool type (0 nonpaged, 1 paged), address, 0x31).
    pub const FREE_AT_BAD_IRQL: u64 = 0x31;
    /// The only damage to the pattern is one flipped bit: (address, the byte, pattern, 0x32).
    pub const SINGLE_BIT_ERROR: u64 = 0x32;
}
