//! Lookaside-list routines at the C boundary (seed 000 §5.2, §7.2), over
//! `ntmem_kernel::ex::lookaside`.
//!
//! The list head is the driver's `NPAGED_LOOKASIDE_LIST` / `PAGED_LOOKASIDE_LIST` /
//! `LOOKASIDE_LIST_EX`; the kernel keeps every field in it. The head must be in the
//! machine's memory — pool, a device extension — as the seed's samples put it
//! (`&FdoData->RecvLookasideList`); ntmem does not yet load driver images into
//! simulated system space, so a head in a driver's global variable stops the
//! machine with BAD_POOL_CALLER (0xC2, 0x42: not a kernel address ntmem knows) —
//! a difference from Windows, where a driver's globals are nonpaged system memory.
//!
//! Custom allocate and free routines (non-NULL arguments) are called on every miss,
//! on the same simulated processor; NULL means the pool routines. The `Flags` and
//! `Depth` arguments are ignored, as Windows ignores them.

use std::ffi::c_void;
use std::sync::Arc;

use ntmem_host::thunk::preserving_capture;
use ntmem_kernel::bugcheck::{BugCheck, BugCheckCode};
use ntmem_kernel::ex::lookaside::{Routines, ALLOCATE_ROUTINE, FREE_ROUTINE};
use ntmem_kernel::ex::pool::{PoolTag, PoolType, Raise};
use ntmem_kernel::Cpu;
use ntmem_machine::Va;

use crate::context::{host_ptr, kernel, va_of};
use crate::seh::raise_status;
use crate::types::{NtStatus, STATUS_SUCCESS};

/// `PALLOCATE_FUNCTION`.
pub type AllocateFunction = unsafe extern "win64" fn(u32, usize, u32) -> *mut c_void;
/// `PFREE_FUNCTION`.
pub type FreeFunction = unsafe extern "win64" fn(*mut c_void);
/// `PALLOCATE_FUNCTION_EX`.
pub type AllocateFunctionEx = unsafe extern "win64" fn(u32, usize, u32, *mut c_void) -> *mut c_void;
/// `PFREE_FUNCTION_EX`.
pub type FreeFunctionEx = unsafe extern "win64" fn(*mut c_void, *mut c_void);

/// The simulated address of a list head, or the bugcheck for one outside the machine.
fn head_va(cpu: &Cpu<'_>, head: *mut c_void) -> Result<Va, BugCheck> {
    cpu.machine()
        .space()
        .va_of_host(head as usize)
        .ok_or_else(|| cpu.machine().bugcheck(BugCheckCode::BAD_POOL_CALLER, [0x42, head as u64, 0, 0]))
}

/// Custom routines calling the driver's C functions (`list` is passed to the Ex forms).
fn routines(allocate: Option<AllocateFunctionEx>, free: Option<FreeFunctionEx>, list: usize) -> Routines {
    Routines {
        allocate: allocate.map(|f| {
            Arc::new(move |cpu: &Cpu<'_>, t: PoolType, size: u64, tag: PoolTag| {
                // SAFETY: `f` is the driver's PALLOCATE_FUNCTION_EX, called as the WDK
                // documents, on the processor the driver runs on. The driver's own
                // import calls inside it must not replace the capture of the call that
                // brought us here (a raise after it is still from that frame).
                let p = preserving_capture(|| unsafe { f(t.raw(), size as usize, tag.0, list as *mut c_void) });
                Ok((!p.is_null()).then(|| va_of(cpu, p)))
            }) as _
        }),
        free: free.map(|f| {
            Arc::new(move |cpu: &Cpu<'_>, entry: Va| {
                let p = cpu.machine().space().host_addr(entry) as *mut c_void;
                // SAFETY: as above, for the driver's PFREE_FUNCTION_EX.
                preserving_capture(|| unsafe { f(p, list as *mut c_void) });
                Ok(())
            }) as _
        }),
    }
}

fn initialize(
    head: *mut c_void,
    pool_type: u32,
    size: usize,
    tag: u32,
    allocate: Option<AllocateFunctionEx>,
    free: Option<FreeFunctionEx>,
) -> NtStatus {
    let r = kernel(|cpu| {
        let va = head_va(cpu, head)?;
        let t = PoolType::from_raw(pool_type).unwrap_or(PoolType::NonPagedPool);
        let size = u32::try_from(size).unwrap_or(u32::MAX);
        let routines = routines(allocate, free, head as usize);
        Ok(cpu.machine().lookasides().initialize(cpu, va, t, size, PoolTag(tag), routines))
    });
    match r {
        Ok(()) => STATUS_SUCCESS,
        Err(Raise(status)) => raise_status(status.0 as i32),
    }
}

/// The Ex-form wrappers of the classic routines: the classic ones take no list argument.
unsafe extern "win64" fn call_allocate(t: u32, size: usize, tag: u32, list: *mut c_void) -> *mut c_void {
    // SAFETY: `list` is a head initialised by `ExInitialize[N]PagedLookasideList`, whose
    // `Allocate` field (`ALLOCATE_ROUTINE`) holds the driver's PALLOCATE_FUNCTION; see there.
    unsafe {
        let f: AllocateFunction =
            std::mem::transmute(list.cast::<u8>().add(ALLOCATE_ROUTINE).cast::<*const c_void>().read_volatile());
        f(t, size, tag)
    }
}

unsafe extern "win64" fn call_free(entry: *mut c_void, list: *mut c_void) {
    // SAFETY: as `call_allocate`, for the `Free` field (`FREE_ROUTINE`).
    unsafe {
        let f: FreeFunction =
            std::mem::transmute(list.cast::<u8>().add(FREE_ROUTINE).cast::<*const c_void>().read_volatile());
        f(entry)
    }
}

fn initialize_classic(
    head: *mut c_void,
    allocate: Option<AllocateFunction>,
    free: Option<FreeFunction>,
    pool_type: u32,
    size: usize,
    tag: u32,
) {
    initialize(head, pool_type, size, tag, allocate.map(|_| call_allocate as _), free.map(|_| call_free as _));
    let write = |offset: usize, f: Option<*const c_void>| {
        if let Some(f) = f {
            // SAFETY: `head` is in the machine's memory and aligned (checked by
            // `initialize`, which bugchecks or raises otherwise) and at least 0x60
            // bytes long (`GENERAL_LOOKASIDE_POOL_SIZE`; the WDK requires
            // `sizeof(NPAGED_LOOKASIDE_LIST)`, 0x80).
            unsafe { head.cast::<u8>().add(offset).cast::<*const c_void>().write_volatile(f) };
        }
    };
    write(ALLOCATE_ROUTINE, allocate.map(|f| f as *const c_void));
    write(FREE_ROUTINE, free.map(|f| f as *const c_void));
}

/// `ExInitializeNPagedLookasideList`.
pub extern "win64" fn ExInitializeNPagedLookasideList(
    head: *mut c_void,
    allocate: Option<AllocateFunction>,
    free: Option<FreeFunction>,
    _flags: u32,
    size: usize,
    tag: u32,
    _depth: u16,
) {
    initialize_classic(head, allocate, free, PoolType::NonPagedPool.raw(), size, tag);
}

/// `ExInitializePagedLookasideList`.
pub extern "win64" fn ExInitializePagedLookasideList(
    head: *mut c_void,
    allocate: Option<AllocateFunction>,
    free: Option<FreeFunction>,
    _flags: u32,
    size: usize,
    tag: u32,
    _depth: u16,
) {
    initialize_classic(head, allocate, free, PoolType::PagedPool.raw(), size, tag);
}

/// `ExInitializeLookasideListEx`.
pub extern "win64" fn ExInitializeLookasideListEx(
    head: *mut c_void,
    allocate: Option<AllocateFunctionEx>,
    free: Option<FreeFunctionEx>,
    pool_type: u32,
    _flags: u32,
    size: usize,
    tag: u32,
    _depth: u16,
) -> NtStatus {
    initialize(head, pool_type, size, tag, allocate, free)
}

/// `ExAllocateFromNPagedLookasideList`, `ExAllocateFromPagedLookasideList`,
/// `ExAllocateFromLookasideListEx`: an entry, or NULL.
pub extern "win64" fn ExAllocateFromLookasideListEx(head: *mut c_void) -> *mut c_void {
    kernel(|cpu| {
        let va = head_va(cpu, head)?;
        let entry = cpu.machine().lookasides().allocate(cpu, va)?;
        Ok(host_ptr(cpu, entry))
    })
}

/// `ExFreeToNPagedLookasideList` and its paged and Ex forms.
pub extern "win64" fn ExFreeToLookasideListEx(head: *mut c_void, entry: *mut c_void) {
    kernel(|cpu| {
        let va = head_va(cpu, head)?;
        let entry = cpu.machine().space().va_of_host(entry as usize).unwrap_or(Va::new(entry as u64));
        cpu.machine().lookasides().free(cpu, va, entry)
    });
}

/// `ExDeleteNPagedLookasideList` and its paged and Ex forms: frees what the list holds.
pub extern "win64" fn ExDeleteLookasideListEx(head: *mut c_void) {
    kernel(|cpu| {
        let va = head_va(cpu, head)?;
        cpu.machine().lookasides().delete(cpu, va)
    });
}
