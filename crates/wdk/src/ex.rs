//! Executive routines: the pool (`ExAllocatePoolWithTag` and friends), over
//! `ntmem_kernel::ex::pool`.
//!
//! Pointers cross the boundary as host addresses; the pool works in simulated
//! ones (`Va`), which differ when the machine's layout is relocated. A pointer
//! outside the machine's address space is passed on as the same number, so the
//! pool reports it as Windows would (not pool memory: BAD_POOL_CALLER).
//!
//! Differences from Windows: a `POOL_TYPE` ntmem does not implement (flag bits such
//! as `POOL_RAISE_IF_ALLOCATION_FAILURE`, session pool) makes the allocation return
//! NULL.

use std::ffi::c_void;

use ntmem_kernel::ex::pool::{self, PoolTag, PoolType};

use crate::context::{host_ptr, kernel, va_of};

/// `ExAllocatePoolWithTag`: `bytes` of `pool_type` pool tagged `tag`, or NULL.
#[no_mangle]
pub extern "C" fn ExAllocatePoolWithTag(pool_type: u32, bytes: usize, tag: u32) -> *mut c_void {
    kernel(|cpu| {
        let Some(t) = PoolType::from_raw(pool_type) else { return Ok(std::ptr::null_mut()) };
        let va = pool::allocate(cpu, t, bytes as u64, PoolTag(tag))?;
        Ok(host_ptr(cpu, va))
    })
}

/// `ExAllocatePool`: as `ExAllocatePoolWithTag` with the tag "None".
#[no_mangle]
pub extern "C" fn ExAllocatePool(pool_type: u32, bytes: usize) -> *mut c_void {
    kernel(|cpu| {
        let Some(t) = PoolType::from_raw(pool_type) else { return Ok(std::ptr::null_mut()) };
        let va = pool::allocate_untagged(cpu, t, bytes as u64)?;
        Ok(host_ptr(cpu, va))
    })
}

/// `ExFreePoolWithTag`: frees `p`, which must carry `tag`.
#[no_mangle]
pub extern "C" fn ExFreePoolWithTag(p: *mut c_void, tag: u32) {
    kernel(|cpu| pool::free(cpu, va_of(cpu, p), Some(PoolTag(tag))));
}

/// `ExFreePool`: frees `p`.
#[no_mangle]
pub extern "C" fn ExFreePool(p: *mut c_void) {
    kernel(|cpu| pool::free(cpu, va_of(cpu, p), None));
}
