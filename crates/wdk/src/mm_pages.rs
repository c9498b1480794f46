//! MDLs that own their pages at the C boundary: `MmAllocatePagesForMdl`,
//! `MmAllocatePagesForMdlEx`, `MmFreePagesFromMdl` (learn.microsoft.com, each
//! routine's page; kernel side [`ntmem_kernel::mm::mdl::mm_allocate_pages_for_mdl_ex`],
//! which says what the routines do: may return fewer pages than asked, the MDL is
//! not mapped, pages zeroed unless MM_DONT_ZERO_ALLOCATION).
//!
//! `PHYSICAL_ADDRESS` travels by value as an `i64` (see [`crate::mm`]). Flags ntmem
//! does not know, or a `MEMORY_CACHING_TYPE` it does not know, give NULL. Driver
//! Verifier's low resources simulation fails the allocations (NULL), as Windows'
//! does from Vista on (research/dma-verifier-views.md §3.4).

use std::ffi::c_void;

use ntmem_kernel::mm::contiguous::MemoryCachingType;
use ntmem_kernel::mm::mdl::{self, AllocatePagesFlags, Mdl};
use ntmem_machine::PhysAddr;

use crate::context::{host_ptr, kernel, va_of};
use crate::vf::{allocation, Ask};

fn phys(raw: i64) -> PhysAddr {
    PhysAddr::new(raw as u64)
}

/// `MmAllocatePagesForMdl(LowAddress, HighAddress, SkipBytes, TotalBytes)`.
pub extern "win64" fn MmAllocatePagesForMdl(low: i64, high: i64, skip: i64, total: usize) -> *mut c_void {
    MmAllocatePagesForMdlEx(low, high, skip, total, MemoryCachingType::Cached as u32, 0)
}

/// `MmAllocatePagesForMdlEx(LowAddress, HighAddress, SkipBytes, TotalBytes,
/// CacheType, Flags)`.
pub extern "win64" fn MmAllocatePagesForMdlEx(
    low: i64,
    high: i64,
    skip: i64,
    total: usize,
    cache: u32,
    flags: u32,
) -> *mut c_void {
    kernel(|cpu| {
        let (Some(cache), Some(flags)) = (MemoryCachingType::from_raw(cache), AllocatePagesFlags::from_bits(flags))
        else {
            return Ok(std::ptr::null_mut());
        };
        let allocate = || {
            mdl::mm_allocate_pages_for_mdl_ex(cpu, phys(low), phys(high), skip as u64, total as u64, cache, flags)
                .map(|m| m.map(|m| m.0))
        };
        Ok(host_ptr(cpu, allocation(cpu, Ask::resource("MmAllocatePagesForMdlEx"), || None, allocate, |_| None)?))
    })
}

/// `MmFreePagesFromMdl(MemoryDescriptorList)`.
pub extern "win64" fn MmFreePagesFromMdl(mdl: *mut c_void) {
    kernel(|cpu| mdl::mm_free_pages_from_mdl(cpu, Mdl(va_of(cpu, mdl))));
}
