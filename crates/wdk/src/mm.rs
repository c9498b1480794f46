//! Memory-manager and HAL routines at the C boundary: contiguous and noncached
//! memory, `MmGetPhysicalAddress`, `MmMapIoSpace`, and the port accessors (seed 000
//! §7.3, §8), over `ntmem_kernel::mm::{contiguous, io_space}` and
//! `ntmem_kernel::hal::port`.
//!
//! `PHYSICAL_ADDRESS` (a `LARGE_INTEGER` union) travels by value as an `i64`, as the
//! x64 calling convention passes and returns an 8-byte union. A
//! `MEMORY_CACHING_TYPE` ntmem does not know makes the routine return NULL.
//! `READ_REGISTER_*` / `WRITE_REGISTER_*` are inline volatile accesses in
//! `include/ntmem/memory.h`, as in the x64 WDK: a device's registers are memory the
//! mapping really reaches.

use std::ffi::c_void;

use ntmem_kernel::hal::port::{self, IoPort};
use ntmem_kernel::mm::contiguous::{self, MemoryCachingType};
use ntmem_kernel::mm::{image_paging, io_space, secure, system_size};
use ntmem_kernel::trap::pageable_code;
use ntmem_machine::PhysAddr;

use crate::context::{host_ptr, kernel, va_of};
use crate::vf::{allocation, Ask};

fn phys(raw: i64) -> PhysAddr {
    PhysAddr::new(raw as u64)
}

/// `MmAllocateContiguousMemory`: cached, physically contiguous memory below `highest`.
pub extern "win64" fn MmAllocateContiguousMemory(bytes: usize, highest: i64) -> *mut c_void {
    kernel(|cpu| {
        let allocate = || Ok(contiguous::mm_allocate_contiguous_memory(cpu, bytes as u64, phys(highest)));
        Ok(host_ptr(cpu, allocation(cpu, Ask::resource("MmAllocateContiguousMemory"), || None, allocate, |_| None)?))
    })
}

/// `MmAllocateContiguousMemorySpecifyCache`.
pub extern "win64" fn MmAllocateContiguousMemorySpecifyCache(
    bytes: usize,
    lowest: i64,
    highest: i64,
    boundary: i64,
    cache: u32,
) -> *mut c_void {
    kernel(|cpu| {
        let Some(cache) = MemoryCachingType::from_raw(cache) else { return Ok(std::ptr::null_mut()) };
        let allocate = || {
            Ok(contiguous::mm_allocate_contiguous_memory_specify_cache(
                cpu,
                bytes as u64,
                phys(lowest),
                phys(highest),
                phys(boundary),
                cache,
            ))
        };
        let ask = Ask::resource("MmAllocateContiguousMemorySpecifyCache");
        Ok(host_ptr(cpu, allocation(cpu, ask, || None, allocate, |_| None)?))
    })
}

/// `MmFreeContiguousMemory`.
pub extern "win64" fn MmFreeContiguousMemory(base: *mut c_void) {
    kernel(|cpu| contiguous::mm_free_contiguous_memory(cpu, va_of(cpu, base)));
}

/// `MmFreeContiguousMemorySpecifyCache`.
pub extern "win64" fn MmFreeContiguousMemorySpecifyCache(base: *mut c_void, bytes: usize, cache: u32) {
    kernel(|cpu| {
        let cache = MemoryCachingType::from_raw(cache).unwrap_or(MemoryCachingType::Cached);
        contiguous::mm_free_contiguous_memory_specify_cache(cpu, va_of(cpu, base), bytes as u64, cache)
    });
}

/// `MmAllocateNonCachedMemory`.
pub extern "win64" fn MmAllocateNonCachedMemory(bytes: usize) -> *mut c_void {
    kernel(|cpu| {
        let allocate = || Ok(contiguous::mm_allocate_noncached_memory(cpu, bytes as u64));
        Ok(host_ptr(cpu, allocation(cpu, Ask::resource("MmAllocateNonCachedMemory"), || None, allocate, |_| None)?))
    })
}

/// `MmFreeNonCachedMemory`.
pub extern "win64" fn MmFreeNonCachedMemory(base: *mut c_void, bytes: usize) {
    kernel(|cpu| contiguous::mm_free_noncached_memory(cpu, va_of(cpu, base), bytes as u64));
}

/// `MmGetPhysicalAddress`: through the page tables; 0 when `base` is not mapped.
pub extern "win64" fn MmGetPhysicalAddress(base: *const c_void) -> i64 {
    kernel(|cpu| Ok(contiguous::mm_get_physical_address(cpu, va_of(cpu, base)).get() as i64))
}

/// `MmIsAddressValid`: TRUE when a touch of `address` would not page-fault.
pub extern "win64" fn MmIsAddressValid(address: *const c_void) -> u8 {
    kernel(|cpu| Ok(u8::from(contiguous::mm_is_address_valid(cpu, va_of(cpu, address)))))
}

/// `MmLockPagableDataSection` (and `MmLockPagableCodeSection`, a macro for it on x64):
/// makes the `PAGE*` section holding `address` resident and locked; returns its handle.
/// Pageable code itself: at DISPATCH_LEVEL or above it stops (see [`pageable_code`]).
pub extern "win64" fn MmLockPagableDataSection(address: *mut c_void) -> *mut c_void {
    kernel(|cpu| {
        pageable_code(cpu, MmLockPagableDataSection as *const () as u64)?;
        Ok(image_paging::mm_lock_pagable_data_section(cpu, address as u64)? as *mut c_void)
    })
}

/// `MmLockPagableSectionByHandle`: locks the section `handle` names again.
pub extern "win64" fn MmLockPagableSectionByHandle(handle: *mut c_void) {
    kernel(|cpu| {
        pageable_code(cpu, MmLockPagableSectionByHandle as *const () as u64)?;
        image_paging::mm_lock_pagable_section_by_handle(cpu, handle as u64)
    })
}

/// `MmUnlockPagableImageSection`: undoes one lock of the section `handle` names.
pub extern "win64" fn MmUnlockPagableImageSection(handle: *mut c_void) {
    kernel(|cpu| {
        pageable_code(cpu, MmUnlockPagableImageSection as *const () as u64)?;
        image_paging::mm_unlock_pagable_image_section(cpu, handle as u64)
    })
}

/// `MmPageEntireDriver`: makes the whole image holding `address` pageable; returns its
/// base, or NULL when `address` is in no loaded image.
pub extern "win64" fn MmPageEntireDriver(address: *mut c_void) -> *mut c_void {
    kernel(|cpu| {
        pageable_code(cpu, MmPageEntireDriver as *const () as u64)?;
        Ok(image_paging::mm_page_entire_driver(cpu, address as u64).map_or(std::ptr::null_mut(), |b| b as *mut c_void))
    })
}

/// `MmResetDriverPaging`: the image holding `address` pages as its sections say again.
pub extern "win64" fn MmResetDriverPaging(address: *mut c_void) {
    kernel(|cpu| {
        pageable_code(cpu, MmResetDriverPaging as *const () as u64)?;
        image_paging::mm_reset_driver_paging(cpu, address as u64);
        Ok(())
    })
}

/// `MmMapIoSpace`: maps `bytes` of physical address space (device registers) into
/// system space; NULL when it cannot.
pub extern "win64" fn MmMapIoSpace(pa: i64, bytes: usize, cache: u32) -> *mut c_void {
    kernel(|cpu| {
        let Some(cache) = MemoryCachingType::from_raw(cache) else { return Ok(std::ptr::null_mut()) };
        let map = || Ok(io_space::mm_map_io_space(cpu, phys(pa), bytes as u64, cache));
        Ok(host_ptr(cpu, allocation(cpu, Ask::resource("MmMapIoSpace"), || None, map, |_| None)?))
    })
}

/// `MmUnmapIoSpace`.
pub extern "win64" fn MmUnmapIoSpace(base: *mut c_void, bytes: usize) {
    kernel(|cpu| io_space::mm_unmap_io_space(cpu, va_of(cpu, base), bytes as u64));
}

/// The port a `READ_PORT_*` pointer names: its low 16 bits (the 64 KB I/O space).
fn port_of(p: *const c_void) -> IoPort {
    IoPort(p as usize as u16)
}

macro_rules! port_routines {
    ($($read:ident $write:ident $t:ty => $kread:ident $kwrite:ident;)*) => {$(
        #[doc = concat!("`", stringify!($read), "`: a read of the I/O port `port`.")]
        pub extern "win64" fn $read(port: *const $t) -> $t {
            kernel(|cpu| Ok(port::$kread(cpu, port_of(port.cast()))))
        }

        #[doc = concat!("`", stringify!($write), "`: a write of the I/O port `port`.")]
        pub extern "win64" fn $write(port: *mut $t, value: $t) {
            kernel(|cpu| {
                port::$kwrite(cpu, port_of(port.cast()), value);
                Ok(())
            })
        }
    )*};
}

port_routines! {
    READ_PORT_UCHAR WRITE_PORT_UCHAR u8 => read_port_uchar write_port_uchar;
    READ_PORT_USHORT WRITE_PORT_USHORT u16 => read_port_ushort write_port_ushort;
    READ_PORT_ULONG WRITE_PORT_ULONG u32 => read_port_ulong write_port_ulong;
}

macro_rules! port_buffer_routines {
    ($($read:ident $write:ident $t:ty => $kread:ident $kwrite:ident;)*) => {$(
        #[doc = concat!("`", stringify!($read), "`: `count` reads of one I/O port into `buffer`.")]
        ///
        /// # Safety
        /// `buffer` must be valid for `count` writes, as the WDK requires.
        pub unsafe extern "win64" fn $read(port: *const $t, buffer: *mut $t, count: u32) {
            // SAFETY: the caller passes a buffer of `count` elements (the routine's contract).
            let buffer = unsafe { std::slice::from_raw_parts_mut(buffer, count as usize) };
            kernel(|cpu| {
                port::$kread(cpu, port_of(port.cast()), buffer);
                Ok(())
            })
        }

        #[doc = concat!("`", stringify!($write), "`: `count` writes of `buffer` to one I/O port.")]
        ///
        /// # Safety
        /// `buffer` must be valid for `count` reads, as the WDK requires.
        pub unsafe extern "win64" fn $write(port: *mut $t, buffer: *const $t, count: u32) {
            // SAFETY: the caller passes a buffer of `count` elements (the routine's contract).
            let buffer = unsafe { std::slice::from_raw_parts(buffer, count as usize) };
            kernel(|cpu| {
                port::$kwrite(cpu, port_of(port.cast()), buffer);
                Ok(())
            })
        }
    )*};
}

port_buffer_routines! {
    READ_PORT_BUFFER_UCHAR WRITE_PORT_BUFFER_UCHAR u8 => read_port_buffer_uchar write_port_buffer_uchar;
    READ_PORT_BUFFER_USHORT WRITE_PORT_BUFFER_USHORT u16 => read_port_buffer_ushort write_port_buffer_ushort;
    READ_PORT_BUFFER_ULONG WRITE_PORT_BUFFER_ULONG u32 => read_port_buffer_ulong write_port_buffer_ulong;
}

/// `MmIsNonPagedSystemAddressValid(VirtualAddress)` (obsolete): TRUE for a mapped
/// system address outside paged pool.
///
/// **Where it differs.** The pageable sections of driver images count as nonpaged
/// while they are resident.
pub extern "win64" fn MmIsNonPagedSystemAddressValid(address: *const c_void) -> u8 {
    kernel(|cpu| {
        let m = cpu.machine();
        let va = va_of(cpu, address);
        let paged = m.pool().kind_at(va) == Some(ntmem_kernel::ex::pool::PoolKind::Paged);
        Ok(u8::from(m.space().layout().is_system(va) && !paged && contiguous::mm_is_address_valid(cpu, va)))
    })
}

/// `MmGetSystemRoutineAddress(SystemRoutineName)` (learn.microsoft.com): the address
/// of the ntoskrnl or HAL routine of that name, as an import of it is bound
/// ([`crate::loader`]); NULL for a name not exported. PASSIVE_LEVEL.
///
/// **Where it differs.** Variables (`MmSystemRangeStart`, …) give NULL: each driver
/// image has its own copy of them.
///
/// # Safety
/// `name` is the driver's `UNICODE_STRING` (checked: a bad one stops as on Windows).
pub unsafe extern "win64" fn MmGetSystemRoutineAddress(name: *const crate::types::UnicodeString) -> *mut c_void {
    let name = kernel(|cpu| {
        pageable_code(cpu, MmGetSystemRoutineAddress as *const () as u64)?;
        crate::cm::unicode(cpu, name)
    });
    let name = String::from_utf16_lossy(&name);
    crate::loader::routine_entry(&name).map_or(std::ptr::null_mut(), |a| a as *mut c_void)
}

/// `MmIsThisAnNtAsSystem()`: TRUE on a server edition (its product type is not
/// VER_NT_WORKSTATION), as `RtlGetVersion` reports it.
pub extern "win64" fn MmIsThisAnNtAsSystem() -> u8 {
    kernel(|cpu| {
        let v = ntmem_kernel::rtl::version::OsVersion::of(cpu.machine().profile().edition);
        Ok(u8::from(v.product_type != 1))
    })
}

/// `MmQuerySystemSize()`: MmSmallSystem (0), MmMediumSystem (1) or MmLargeSystem (2)
/// by the machine's RAM and product type (see
/// [`ntmem_kernel::mm::system_size`] for Windows' thresholds). Any IRQL.
pub extern "win64" fn MmQuerySystemSize() -> u32 {
    kernel(|cpu| Ok(system_size::mm_query_system_size(cpu) as u32))
}

/// `MmAllocateContiguousNodeMemory(NumberOfBytes, LowestAcceptableAddress,
/// HighestAcceptableAddress, BoundaryAddressMultiple, Protect, PreferredNode)`
/// (learn.microsoft.com, "MmAllocateContiguousNodeMemory function (wdm.h)"): see
/// [`contiguous::mm_allocate_contiguous_node_memory`]; NULL for an invalid
/// `Protect` or a node the machine lacks. Freed by `MmFreeContiguousMemory`.
pub extern "win64" fn MmAllocateContiguousNodeMemory(
    bytes: usize,
    lowest: i64,
    highest: i64,
    boundary: i64,
    protect: u32,
    node: u32,
) -> *mut c_void {
    kernel(|cpu| {
        let allocate = || {
            let range = (phys(lowest), phys(highest));
            Ok(contiguous::mm_allocate_contiguous_node_memory(cpu, bytes as u64, range, phys(boundary), protect, node))
        };
        let ask = Ask::resource("MmAllocateContiguousNodeMemory");
        Ok(host_ptr(cpu, allocation(cpu, ask, || None, allocate, |_| None)?))
    })
}

/// `MmGetVirtualForPhysical(PhysicalAddress)` (learn.microsoft.com,
/// "MmGetVirtualForPhysical function (ntddk.h)"): the system address mapping `pa`;
/// NULL for a page with no system mapping (see
/// [`contiguous::mm_get_virtual_for_physical`] for where that differs). Any IRQL.
pub extern "win64" fn MmGetVirtualForPhysical(pa: i64) -> *mut c_void {
    kernel(|cpu| Ok(host_ptr(cpu, contiguous::mm_get_virtual_for_physical(cpu, phys(pa)))))
}

/// `MmSecureVirtualMemory(Address, Size, ProbeMode)` (learn.microsoft.com,
/// "MmSecureVirtualMemory function (ntddk.h)"): a handle that keeps the current
/// process's range from being freed or losing `ProbeMode`'s access
/// ([`ntmem_kernel::mm::secure`]); NULL when the range cannot be secured or
/// `ProbeMode` is neither PAGE_READONLY nor PAGE_READWRITE. IRQL <= APC_LEVEL: at
/// DISPATCH_LEVEL or above, the pageable-code stop (0x0A, [`pageable_code`]).
pub extern "win64" fn MmSecureVirtualMemory(address: *mut c_void, size: usize, probe_mode: u32) -> *mut c_void {
    kernel(|cpu| {
        pageable_code(cpu, MmSecureVirtualMemory as *const () as u64)?;
        let Some(mode) = secure::ProbeMode::from_raw(probe_mode) else { return Ok(std::ptr::null_mut()) };
        let handle = secure::mm_secure_virtual_memory(cpu, va_of(cpu, address), size as u64, mode);
        Ok(handle.map_or(std::ptr::null_mut(), |h| h as *mut c_void))
    })
}

/// `MmUnsecureVirtualMemory(SecureHandle)` (learn.microsoft.com,
/// "MmUnsecureVirtualMemory function (ntddk.h)"): ends a securing in the current
/// process. IRQL <= APC_LEVEL, as [`MmSecureVirtualMemory`].
pub extern "win64" fn MmUnsecureVirtualMemory(handle: *mut c_void) {
    kernel(|cpu| {
        pageable_code(cpu, MmUnsecureVirtualMemory as *const () as u64)?;
        secure::mm_unsecure_virtual_memory(cpu, handle as u64);
        Ok(())
    })
}
