//! The WDK boundary (DESIGN.md, "WDK names at the driver boundary"): the kernel
//! routines a driver calls, under their WDK names, as `extern "C"` functions; the
//! structures a driver reads directly (`DRIVER_OBJECT`, `UNICODE_STRING`); and the
//! loader that `dlopen`s a driver built against `include/wdm.h` and calls into it
//! on a simulated processor.
//!
//! Key pieces:
//! * [`context`]: which simulated processor the calling thread is running driver
//!   code on. Every routine finds its [`ntmem_kernel::Cpu`] there, and leaves
//!   driver code with a bugcheck through [`context::kernel`].
//! * [`ex`], [`ke`], [`dbg`](mod@dbg): the routines, one module per NT component prefix.
//! * [`seh`]: structured exceptions — `__try`/`__except`/`__finally` for C drivers,
//!   `ExRaiseStatus`, the raise routines use, and [`seh::try_except`] for Rust.
//! * [`loader`]: [`loader::Driver`] — open, `DriverEntry`, `DriverUnload`.
//! * [`harness`]: Rust drivers ([`harness::RustDriver`]) and the harness that runs
//!   one with a scenario inside `cargo test` ([`harness::Harness`]).
//! * [`exports`]: a table of every routine, so the executable that links this crate
//!   keeps them and (linked with `--export-dynamic`) exports them to drivers.
//!
//! `unsafe` is allowed here (the C boundary) and only here besides `ntmem-host`;
//! every block says why it is sound.
//!
//! Rules every routine follows: it runs on a simulated processor's kernel stack at
//! the caller's IRQL; it never unwinds into C; a bugcheck leaves it through
//! [`context::kernel`], which drops everything before jumping back to the
//! `Machine::run` that entered driver code.

pub mod context;
pub mod dbg;
pub mod ex;
pub mod except;
pub mod exports;
pub mod harness;
pub mod io;
pub mod ke;
pub mod loader;
pub mod lookaside;
pub mod mdl;
pub mod mm;
pub mod pnp;
pub mod rtl;
pub mod seh;
pub mod symbols;
pub mod types;

use std::ffi::c_char;
use std::ffi::c_void;

use types::KSpinLock;

extern "C" {
    /// `DbgPrint`, in `c/dbgprint.c` (C varargs).
    fn DbgPrint(format: *const c_char, ...) -> u32;
}

/// Every routine of the boundary, by address. Referencing it (see [`exports`])
/// keeps each routine in the final executable.
#[derive(Debug)]
pub struct Exports {
    /// `ExAllocatePoolWithTag`.
    pub ex_allocate_pool_with_tag: extern "C" fn(u32, usize, u32) -> *mut c_void,
    /// `ExAllocatePool`.
    pub ex_allocate_pool: extern "C" fn(u32, usize) -> *mut c_void,
    /// `ExFreePoolWithTag`.
    pub ex_free_pool_with_tag: extern "C" fn(*mut c_void, u32),
    /// `ExFreePool`.
    pub ex_free_pool: extern "C" fn(*mut c_void),
    /// `ExAllocatePoolWithTagPriority`.
    pub ex_allocate_pool_with_tag_priority: extern "C" fn(u32, usize, u32, u32) -> *mut c_void,
    /// `ExAllocatePoolWithQuotaTag`.
    pub ex_allocate_pool_with_quota_tag: extern "C" fn(u32, usize, u32) -> *mut c_void,
    /// `ExAllocatePool2`.
    pub ex_allocate_pool2: extern "C" fn(u64, usize, u32) -> *mut c_void,
    /// `ExQueryPoolBlockSize`.
    pub ex_query_pool_block_size: unsafe extern "C" fn(*mut c_void, *mut u8) -> usize,
    /// `KeGetCurrentIrql`.
    pub ke_get_current_irql: extern "C" fn() -> u8,
    /// `KfRaiseIrql` (behind the `KeRaiseIrql` macro).
    pub kf_raise_irql: extern "C" fn(u8) -> u8,
    /// `KeLowerIrql`.
    pub ke_lower_irql: extern "C" fn(u8),
    /// `KeInitializeSpinLock`.
    pub ke_initialize_spin_lock: unsafe extern "C" fn(*mut KSpinLock),
    /// `KeAcquireSpinLockRaiseToDpc` (behind the `KeAcquireSpinLock` macro).
    pub ke_acquire_spin_lock_raise_to_dpc: unsafe extern "C" fn(*mut KSpinLock) -> u8,
    /// `KeReleaseSpinLock`.
    pub ke_release_spin_lock: unsafe extern "C" fn(*mut KSpinLock, u8),
    /// `DbgPrint`.
    pub dbg_print: unsafe extern "C" fn(*const c_char, ...) -> u32,
    /// `ExRaiseStatus` and the structured-exception helpers.
    pub seh: seh::Exports,
}

#[used]
static EXPORTS: Exports = Exports {
    ex_allocate_pool_with_tag: ex::ExAllocatePoolWithTag,
    ex_allocate_pool: ex::ExAllocatePool,
    ex_free_pool_with_tag: ex::ExFreePoolWithTag,
    ex_free_pool: ex::ExFreePool,
    ex_allocate_pool_with_tag_priority: ex::ExAllocatePoolWithTagPriority,
    ex_allocate_pool_with_quota_tag: ex::ExAllocatePoolWithQuotaTag,
    ex_allocate_pool2: ex::ExAllocatePool2,
    ex_query_pool_block_size: ex::ExQueryPoolBlockSize,
    ke_get_current_irql: ke::KeGetCurrentIrql,
    kf_raise_irql: ke::KfRaiseIrql,
    ke_lower_irql: ke::KeLowerIrql,
    ke_initialize_spin_lock: ke::KeInitializeSpinLock,
    ke_acquire_spin_lock_raise_to_dpc: ke::KeAcquireSpinLockRaiseToDpc,
    ke_release_spin_lock: ke::KeReleaseSpinLock,
    dbg_print: DbgPrint,
    seh: seh::EXPORTS,
};

/// The routine table. An executable that loads drivers calls this once (the
/// loader does) so the linker keeps every routine; linking it with
/// `-Wl,--export-dynamic` puts them in its dynamic symbol table, where a driver's
/// undefined symbols resolve when it is `dlopen`ed.
pub fn exports() -> &'static Exports {
    seh::install();
    std::hint::black_box(&mm::EXPORTS);
    std::hint::black_box(&mdl::EXPORTS);
    std::hint::black_box(&io::EXPORTS);
    std::hint::black_box(&lookaside::EXPORTS);
    std::hint::black_box(&pnp::EXPORTS);
    std::hint::black_box(&rtl::EXPORTS);
    std::hint::black_box(&EXPORTS)
}
