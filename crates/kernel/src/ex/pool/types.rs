//! The WDK's pool vocabulary: `POOL_TYPE`, `POOL_FLAGS`, `EX_POOL_PRIORITY`, pool
//! tags, and the NTSTATUS values the pool raises.
//!
//! Values are those of `wdm.h` (learn.microsoft.com, "POOL_TYPE enumeration",
//! "POOL_FLAGS", "EX_POOL_PRIORITY enumeration").

use std::fmt;

/// `POOL_TYPE` (WDK `wdm.h`), the pool types ntmem implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum PoolType {
    /// `NonPagedPool` (0): executable nonpaged pool.
    NonPagedPool = 0,
    /// `PagedPool` (1).
    PagedPool = 1,
    /// `NonPagedPoolMustSucceed` (2): deprecated (seed 000 §7.1). Works like
    /// `NonPagedPool`; when it cannot be satisfied the machine stops with
    /// MUST_SUCCEED_POOL_EMPTY (0x41); under Driver Verifier any use is fatal
    /// ([`crate::ex::pool::verifier_must_succeed`]).
    NonPagedPoolMustSucceed = 2,
    /// `NonPagedPoolCacheAligned` (4): the block is aligned to the cache line.
    NonPagedPoolCacheAligned = 4,
    /// `PagedPoolCacheAligned` (5).
    PagedPoolCacheAligned = 5,
    /// `NonPagedPoolCacheAlignedMustS` (6).
    NonPagedPoolCacheAlignedMustS = 6,
    /// `NonPagedPoolNx` (0x200): no-execute nonpaged pool (Windows 8+).
    NonPagedPoolNx = 0x200,
    /// `NonPagedPoolNxCacheAligned` (0x204).
    NonPagedPoolNxCacheAligned = 0x204,
}

impl PoolType {
    /// Every type, for tests and the C boundary.
    pub const ALL: [PoolType; 8] = [
        PoolType::NonPagedPool,
        PoolType::PagedPool,
        PoolType::NonPagedPoolMustSucceed,
        PoolType::NonPagedPoolCacheAligned,
        PoolType::PagedPoolCacheAligned,
        PoolType::NonPagedPoolCacheAlignedMustS,
        PoolType::NonPagedPoolNx,
        PoolType::NonPagedPoolNxCacheAligned,
    ];

    /// The WDK value.
    pub fn raw(self) -> u32 {
        self as u32
    }

    /// The type with WDK value `raw`, if ntmem implements it (the C boundary's
    /// conversion; flag bits such as `POOL_QUOTA_FAIL_INSTEAD_OF_RAISE` must be
    /// stripped first).
    pub fn from_raw(raw: u32) -> Option<PoolType> {
        PoolType::ALL.into_iter().find(|t| t.raw() == raw)
    }

    /// Which pool the memory comes from.
    pub fn kind(self) -> PoolKind {
        if self.raw() & 1 == 1 {
            PoolKind::Paged
        } else {
            PoolKind::Nonpaged
        }
    }

    /// Whether the block must start on a cache line.
    pub fn cache_aligned(self) -> bool {
        self.raw() & 4 != 0
    }

    /// Whether this is one of the deprecated must-succeed types.
    pub fn must_succeed(self) -> bool {
        self.raw() & 2 != 0
    }

    /// The value stored in a POOL_HEADER's PoolType field for an allocated block,
    /// before the quota bit: `(POOL_TYPE & 7) + 1` (research/nt-algorithms.md §1.1:
    /// 0 means free, otherwise the type plus one). The NX bit (0x200) does not fit
    /// the 7/8-bit field and is not recorded.
    pub(crate) fn header_value(self) -> u8 {
        ((self.raw() & 7) + 1) as u8
    }
}

/// The two pools PoolMon shows: `Nonp` and `Paged`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum PoolKind {
    /// Nonpaged pool.
    Nonpaged = 0,
    /// Paged pool.
    Paged = 1,
}

impl PoolKind {
    /// The base `POOL_TYPE` value: 0 nonpaged, 1 paged (the "pool type" bugcheck
    /// parameters report).
    pub fn base_type(self) -> u64 {
        self as u64
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A pool tag: four characters stored little-endian, so the tag a C driver writes
/// as the multi-character literal `'derF'` reads "Fred" in memory and in PoolMon
/// (research/nt-algorithms.md §1.1). Bit 31 is `PROTECTED_POOL`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct PoolTag(pub u32);

impl PoolTag {
    /// `PROTECTED_POOL` (0x80000000): the block must be freed with its exact tag.
    pub const PROTECTED: u32 = 0x8000_0000;
    /// The tag `ExAllocatePool` uses: "None".
    pub const NONE: PoolTag = PoolTag::new(*b"None");
    /// The tag "BIG " the big-page tracker uses when it cannot record a tag; drivers
    /// may not use it (BAD_POOL_CALLER 0x9C).
    pub const BIG: PoolTag = PoolTag::new(*b"BIG ");

    /// The tag that reads `chars` in memory ("Fred" for `b"Fred"`).
    pub const fn new(chars: [u8; 4]) -> PoolTag {
        PoolTag(u32::from_le_bytes(chars))
    }

    /// This tag with `PROTECTED_POOL` set.
    pub const fn protected(self) -> PoolTag {
        PoolTag(self.0 | PoolTag::PROTECTED)
    }

    /// Whether `PROTECTED_POOL` is set.
    pub fn is_protected(self) -> bool {
        self.0 & PoolTag::PROTECTED != 0
    }

    /// The tag as tracked: without `PROTECTED_POOL`.
    pub fn tracked(self) -> PoolTag {
        PoolTag(self.0 & !PoolTag::PROTECTED)
    }

    /// Whether some character is a letter or digit (BAD_POOL_CALLER 0x9D otherwise).
    pub fn has_alphanumeric(self) -> bool {
        self.tracked().0.to_le_bytes().iter().any(u8::is_ascii_alphanumeric)
    }
}

impl fmt::Debug for PoolTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")?;
        if self.is_protected() {
            write!(f, " (protected)")?;
        }
        Ok(())
    }
}

impl fmt::Display for PoolTag {
    /// The four characters as PoolMon prints them (non-printable bytes as `.`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.tracked().0.to_le_bytes() {
            let c = if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' };
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

bitflags::bitflags! {
    /// `POOL_FLAGS` for `ExAllocatePool2`/`ExAllocatePool3` (WDK `wdm.h`,
    /// learn.microsoft.com "POOL_FLAGS"). The low 32 bits are required: an
    /// unknown one makes the allocation fail. The high 32 bits are optional and
    /// ignored when unknown.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct PoolFlags: u64 {
        /// `POOL_FLAG_USE_QUOTA`: charge the current process.
        const USE_QUOTA = 0x1;
        /// `POOL_FLAG_UNINITIALIZED`: do not zero the block.
        const UNINITIALIZED = 0x2;
        /// `POOL_FLAG_SESSION`: session pool (not modelled: the request fails).
        const SESSION = 0x4;
        /// `POOL_FLAG_CACHE_ALIGNED`.
        const CACHE_ALIGNED = 0x8;
        /// `POOL_FLAG_RAISE_ON_FAILURE`: raise STATUS_INSUFFICIENT_RESOURCES
        /// instead of returning NULL.
        const RAISE_ON_FAILURE = 0x20;
        /// `POOL_FLAG_NON_PAGED`: nonpaged, no-execute.
        const NON_PAGED = 0x40;
        /// `POOL_FLAG_NON_PAGED_EXECUTE`.
        const NON_PAGED_EXECUTE = 0x80;
        /// `POOL_FLAG_PAGED`.
        const PAGED = 0x100;
        /// `POOL_FLAG_SPECIAL_POOL` (optional): special pool when the verifier
        /// offers it; ignored otherwise.
        const SPECIAL_POOL = 0x1_0000_0000;
        /// Keep unknown bits: the required ones must make the call fail.
        const _ = !0;
    }
}

impl PoolFlags {
    /// `POOL_FLAG_REQUIRED_START..=POOL_FLAG_REQUIRED_END`: the required bits.
    pub const REQUIRED_MASK: u64 = 0xFFFF_FFFF;
    /// The required bits ntmem knows.
    const KNOWN_REQUIRED: u64 = 0x1 | 0x2 | 0x4 | 0x8 | 0x20 | 0x40 | 0x80 | 0x100;
}

/// `EX_POOL_PRIORITY` (WDK `wdm.h`). The special-pool variants behave like their
/// base priority and, when Driver Verifier's special pool takes the request, choose
/// where the block sits in its page ([`PoolPriority::special_alignment`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum PoolPriority {
    /// `LowPoolPriority` (0).
    Low = 0,
    /// `LowPoolPrioritySpecialPoolOverrun` (8).
    LowSpecialPoolOverrun = 8,
    /// `LowPoolPrioritySpecialPoolUnderrun` (9).
    LowSpecialPoolUnderrun = 9,
    /// `NormalPoolPriority` (16).
    Normal = 16,
    /// `NormalPoolPrioritySpecialPoolOverrun` (24).
    NormalSpecialPoolOverrun = 24,
    /// `NormalPoolPrioritySpecialPoolUnderrun` (25).
    NormalSpecialPoolUnderrun = 25,
    /// `HighPoolPriority` (32).
    High = 32,
    /// `HighPoolPrioritySpecialPoolOverrun` (40).
    HighSpecialPoolOverrun = 40,
    /// `HighPoolPrioritySpecialPoolUnderrun` (41).
    HighSpecialPoolUnderrun = 41,
}

impl PoolPriority {
    /// Every priority, for the C boundary's conversion.
    pub const ALL: [PoolPriority; 9] = [
        PoolPriority::Low,
        PoolPriority::LowSpecialPoolOverrun,
        PoolPriority::LowSpecialPoolUnderrun,
        PoolPriority::Normal,
        PoolPriority::NormalSpecialPoolOverrun,
        PoolPriority::NormalSpecialPoolUnderrun,
        PoolPriority::High,
        PoolPriority::HighSpecialPoolOverrun,
        PoolPriority::HighSpecialPoolUnderrun,
    ];

    /// The priority with `EX_POOL_PRIORITY` value `raw`.
    pub fn from_raw(raw: u32) -> Option<PoolPriority> {
        PoolPriority::ALL.into_iter().find(|p| *p as u32 == raw)
    }

    /// The base level: `Low`, `Normal` or `High`.
    pub fn base(self) -> PoolPriority {
        match self as u32 {
            0..=15 => PoolPriority::Low,
            16..=31 => PoolPriority::Normal,
            _ => PoolPriority::High,
        }
    }
}

/// An NTSTATUS value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct NtStatus(pub u32);

impl NtStatus {
    /// `STATUS_INSUFFICIENT_RESOURCES`.
    pub const INSUFFICIENT_RESOURCES: NtStatus = NtStatus(0xC000_009A);
    /// `STATUS_QUOTA_EXCEEDED`.
    pub const QUOTA_EXCEEDED: NtStatus = NtStatus(0xC000_0044);
}

impl fmt::Debug for NtStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            NtStatus::INSUFFICIENT_RESOURCES => write!(f, "STATUS_INSUFFICIENT_RESOURCES"),
            NtStatus::QUOTA_EXCEEDED => write!(f, "STATUS_QUOTA_EXCEEDED"),
            NtStatus(v) => write!(f, "NTSTATUS {v:#010x}"),
        }
    }
}

/// A routine that raises instead of returning NULL (`ExAllocatePoolWithQuotaTag`,
/// `POOL_FLAG_RAISE_ON_FAILURE`) returns this; the C boundary turns it into an SEH
/// exception with the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raise(pub NtStatus);

/// What a routine that may raise returns: the block, NULL, or the raise.
pub type Raising = Result<Option<ntmem_machine::Va>, Raise>;

/// What `ExAllocatePool2` asks for, decoded from its flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2Request {
    /// The pool.
    pub pool_type: PoolType,
    /// Zeroed (no `POOL_FLAG_UNINITIALIZED`).
    pub zero: bool,
    /// `POOL_FLAG_RAISE_ON_FAILURE`.
    pub raise: bool,
    /// `POOL_FLAG_USE_QUOTA`.
    pub quota: bool,
}

impl PoolFlags {
    /// Decodes the flags of `ExAllocatePool2`: exactly one of NON_PAGED,
    /// NON_PAGED_EXECUTE and PAGED; no unknown required bit; no session pool (not
    /// modelled). `None` is an invalid combination: the call returns NULL.
    pub fn decode(self) -> Option<Pool2Request> {
        let bits = self.bits();
        if bits & PoolFlags::REQUIRED_MASK & !PoolFlags::KNOWN_REQUIRED != 0 || self.contains(PoolFlags::SESSION) {
            return None;
        }
        let aligned = self.contains(PoolFlags::CACHE_ALIGNED);
        let kinds = self & (PoolFlags::NON_PAGED | PoolFlags::NON_PAGED_EXECUTE | PoolFlags::PAGED);
        let pool_type = if kinds == PoolFlags::NON_PAGED {
            if aligned {
                PoolType::NonPagedPoolNxCacheAligned
            } else {
                PoolType::NonPagedPoolNx
            }
        } else if kinds == PoolFlags::NON_PAGED_EXECUTE {
            if aligned {
                PoolType::NonPagedPoolCacheAligned
            } else {
                PoolType::NonPagedPool
            }
        } else if kinds == PoolFlags::PAGED {
            if aligned {
                PoolType::PagedPoolCacheAligned
            } else {
                PoolType::PagedPool
            }
        } else {
            return None;
        };
        Some(Pool2Request {
            pool_type,
            zero: !self.contains(PoolFlags::UNINITIALIZED),
            raise: self.contains(PoolFlags::RAISE_ON_FAILURE),
            quota: self.contains(PoolFlags::USE_QUOTA),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_types_have_wdk_values_and_kinds() {
        assert_eq!(PoolType::NonPagedPoolNx.raw(), 0x200);
        assert_eq!(PoolType::from_raw(5), Some(PoolType::PagedPoolCacheAligned));
        assert_eq!(PoolType::from_raw(3), None);
        assert_eq!(PoolType::PagedPoolCacheAligned.kind(), PoolKind::Paged);
        assert_eq!(PoolType::NonPagedPoolNx.kind(), PoolKind::Nonpaged);
        assert!(PoolType::NonPagedPoolNxCacheAligned.cache_aligned());
        assert_eq!(PoolType::PagedPool.header_value(), 2);
        assert_eq!(PoolType::NonPagedPoolNx.header_value(), 1);
    }

    #[test]
    fn tags_read_in_memory_order() {
        let t = PoolTag::new(*b"Fred");
        assert_eq!(t.0, 0x6465_7246); // 'derF'
        assert_eq!(t.to_string(), "Fred");
        assert_eq!(t.protected().tracked(), t);
        assert!(!PoolTag(0x0101_0101).has_alphanumeric());
    }

    #[test]
    fn pool2_flags_decode() {
        let d = (PoolFlags::NON_PAGED).decode().unwrap();
        assert_eq!((d.pool_type, d.zero, d.raise), (PoolType::NonPagedPoolNx, true, false));
        let d = (PoolFlags::PAGED | PoolFlags::UNINITIALIZED | PoolFlags::CACHE_ALIGNED).decode().unwrap();
        assert_eq!((d.pool_type, d.zero), (PoolType::PagedPoolCacheAligned, false));
        assert_eq!((PoolFlags::NON_PAGED | PoolFlags::PAGED).decode(), None);
        assert_eq!(PoolFlags::UNINITIALIZED.decode(), None);
        assert_eq!(PoolFlags::from_bits_retain(0x40 | 0x800).decode(), None);
        assert!(PoolFlags::from_bits_retain(0x40 | 0x2_0000_0000).decode().is_some());
        assert_eq!((PoolFlags::PAGED | PoolFlags::SESSION).decode(), None);
    }

    #[test]
    fn priorities_have_bases() {
        assert_eq!(PoolPriority::NormalSpecialPoolUnderrun.base(), PoolPriority::Normal);
        assert_eq!(PoolPriority::LowSpecialPoolOverrun.base(), PoolPriority::Low);
        assert_eq!(PoolPriority::HighSpecialPoolOverrun.base(), PoolPriority::High);
    }
}
