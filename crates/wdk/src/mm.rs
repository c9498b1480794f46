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
use ntmem_kernel::mm::io_space;
use ntmem_machine::PhysAddr;

use crate::context::{host_ptr, kernel, va_of};

fn phys(raw: i64) -> PhysAddr {
    PhysAddr::new(raw as u64)
}

/// `MmAllocateContiguousMemory`: cached, physically contiguous memory below `highest`.
#[no_mangle]
pub extern "C" fn MmAllocateContiguousMemory(bytes: usize, highest: i64) -> *mut c_void {
    kernel(|cpu| Ok(host_ptr(cpu, contiguous::mm_allocate_contiguous_memory(cpu, bytes as u64, phys(highest)))))
}

/// `MmAllocateContiguousMemorySpecifyCache`.
#[no_mangle]
pub extern "C" fn MmAllocateContiguousMemorySpecifyCache(
    bytes: usize,
    lowest: i64,
    highest: i64,
    boundary: i64,
    cache: u32,
) -> *mut c_void {
    kernel(|cpu| {
        let Some(cache) = MemoryCachingType::from_raw(cache) else { return Ok(std::ptr::null_mut()) };
        let va = contiguous::mm_allocate_contiguous_memory_specify_cache(
            cpu,
            bytes as u64,
            phys(lowest),
            phys(highest),
            phys(boundary),
            cache,
        );
        Ok(host_ptr(cpu, va))
    })
}

/// `MmFreeContiguousMemory`.
#[no_mangle]
pub extern "C" fn MmFreeContiguousMemory(base: *mut c_void) {
    kernel(|cpu| contiguous::mm_free_contiguous_memory(cpu, va_of(cpu, base)));
}

/// `MmFreeContiguousMemorySpecifyCache`.
#[no_mangle]
pub extern "C" fn MmFreeContiguousMemorySpecifyCache(base: *mut c_void, bytes: usize, cache: u32) {
    kernel(|cpu| {
        let cache = MemoryCachingType::from_raw(cache).unwrap_or(MemoryCachingType::Cached);
        contiguous::mm_free_contiguous_memory_specify_cache(cpu, va_of(cpu, base), bytes as u64, cache)
    });
}

/// `MmAllocateNonCachedMemory`.
#[no_mangle]
pub extern "C" fn MmAllocateNonCachedMemory(bytes: usize) -> *mut c_void {
    kernel(|cpu| Ok(host_ptr(cpu, contiguous::mm_allocate_noncached_memory(cpu, bytes as u64))))
}

/// `MmFreeNonCachedMemory`.
#[no_mangle]
pub extern "C" fn MmFreeNonCachedMemory(base: *mut c_void, bytes: usize) {
    kernel(|cpu| contiguous::mm_free_noncached_memory(cpu, va_of(cpu, base), bytes as u64));
}

/// `MmGetPhysicalAddress`: through the page tables; 0 when `base` is not mapped.
#[no_mangle]
pub extern "C" fn MmGetPhysicalAddress(base: *const c_void) -> i64 {
    kernel(|cpu| Ok(contiguous::mm_get_physical_address(cpu, va_of(cpu, base)).get() as i64))
}

/// `MmMapIoSpace`: maps `bytes` of physical address space (device registers) into
/// system space; NULL when it cannot.
#[no_mangle]
pub extern "C" fn MmMapIoSpace(pa: i64, bytes: usize, cache: u32) -> *mut c_void {
    kernel(|cpu| {
        let Some(cache) = MemoryCachingType::from_raw(cache) else { return Ok(std::ptr::null_mut()) };
        Ok(host_ptr(cpu, io_space::mm_map_io_space(cpu, phys(pa), bytes as u64, cache)))
    })
}

/// `MmUnmapIoSpace`.
#[no_mangle]
pub extern "C" fn MmUnmapIoSpace(base: *mut c_void, bytes: usize) {
    kernel(|cpu| io_space::mm_unmap_io_space(cpu, va_of(cpu, base), bytes as u64));
}

/// The port a `READ_PORT_*` pointer names: its low 16 bits (the 64 KB I/O space).
fn port_of(p: *const c_void) -> IoPort {
    IoPort(p as usize as u16)
}

macro_rules! port_routines {
    ($($read:ident $write:ident $t:ty => $kread:ident $kwrite:ident;)*) => {$(
        #[doc = concat!("`", stringify!($read), "`: a read of the I/O port `port`.")]
        #[no_mangle]
        pub extern "C" fn $read(port: *const $t) -> $t {
            kernel(|cpu| Ok(port::$kread(cpu, port_of(port.cast()))))
        }

        #[doc = concat!("`", stringify!($write), "`: a write of the I/O port `port`.")]
        #[no_mangle]
        pub extern "C" fn $write(port: *mut $t, value: $t) {
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
        #[no_mangle]
        pub unsafe extern "C" fn $read(port: *const $t, buffer: *mut $t, count: u32) {
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
        #[no_mangle]
        pub unsafe extern "C" fn $write(port: *mut $t, buffer: *const $t, count: u32) {
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

/// Every routine of this module, by address, so the linker keeps them (see
/// [`crate::exports`]).
#[derive(Debug)]
pub struct Exports {
    /// Routines of the `contiguous` group.
    pub contiguous: [extern "C" fn(usize, i64) -> *mut c_void; 1],
    /// Routines of the `specify_cache` group.
    pub specify_cache: extern "C" fn(usize, i64, i64, i64, u32) -> *mut c_void,
    /// Routines of the `frees` group.
    pub frees: [extern "C" fn(*mut c_void); 1],
    /// Routines of the `free_sized` group.
    pub free_sized: [extern "C" fn(*mut c_void, usize); 2],
    /// Routines of the `free_specify_cache` group.
    pub free_specify_cache: extern "C" fn(*mut c_void, usize, u32),
    /// Routines of the `noncached` group.
    pub noncached: extern "C" fn(usize) -> *mut c_void,
    /// Routines of the `physical` group.
    pub physical: extern "C" fn(*const c_void) -> i64,
    /// Routines of the `map_io` group.
    pub map_io: extern "C" fn(i64, usize, u32) -> *mut c_void,
    /// Routines of the `read_ports` group.
    pub read_ports:
        (extern "C" fn(*const u8) -> u8, extern "C" fn(*const u16) -> u16, extern "C" fn(*const u32) -> u32),
    /// Routines of the `write_ports` group.
    pub write_ports: (extern "C" fn(*mut u8, u8), extern "C" fn(*mut u16, u16), extern "C" fn(*mut u32, u32)),
    /// Routines of the `read_buffers` group.
    pub read_buffers: (
        unsafe extern "C" fn(*const u8, *mut u8, u32),
        unsafe extern "C" fn(*const u16, *mut u16, u32),
        unsafe extern "C" fn(*const u32, *mut u32, u32),
    ),
    /// Routines of the `write_buffers` group.
    pub write_buffers: (
        unsafe extern "C" fn(*mut u8, *const u8, u32),
        unsafe extern "C" fn(*mut u16, *const u16, u32),
        unsafe extern "C" fn(*mut u32, *const u32, u32),
    ),
}

/// The table.
pub static EXPORTS: Exports = Exports {
    contiguous: [MmAllocateContiguousMemory],
    specify_cache: MmAllocateContiguousMemorySpecifyCache,
    frees: [MmFreeContiguousMemory],
    free_sized: [MmFreeNonCachedMemory, MmUnmapIoSpace],
    free_specify_cache: MmFreeContiguousMemorySpecifyCache,
    noncached: MmAllocateNonCachedMemory,
    physical: MmGetPhysicalAddress,
    map_io: MmMapIoSpace,
    read_ports: (READ_PORT_UCHAR, READ_PORT_USHORT, READ_PORT_ULONG),
    write_ports: (WRITE_PORT_UCHAR, WRITE_PORT_USHORT, WRITE_PORT_ULONG),
    read_buffers: (READ_PORT_BUFFER_UCHAR, READ_PORT_BUFFER_USHORT, READ_PORT_BUFFER_ULONG),
    write_buffers: (WRITE_PORT_BUFFER_UCHAR, WRITE_PORT_BUFFER_USHORT, WRITE_PORT_BUFFER_ULONG),
};
