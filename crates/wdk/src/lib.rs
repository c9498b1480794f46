//! The WDK boundary (DESIGN.md, "WDK names at the driver boundary"): the kernel
//! routines a driver calls, under their WDK names, as Microsoft-x64
//! (`extern "win64"`) functions; the structures a driver reads directly
//! (`DRIVER_OBJECT`, `UNICODE_STRING`); and the loader that maps a driver's PE
//! image into system space, binds its imports and calls into it on a simulated
//! processor.
//!
//! Key pieces:
//! * [`context`]: which simulated processor the calling thread is running driver
//!   code on. Every routine finds its [`ntmem_kernel::Cpu`] there, and leaves
//!   driver code with a bugcheck through [`context::kernel`].
//! * [`ex`], [`ke`], [`dbg`](mod@dbg): the routines, one module per NT component prefix;
//!   [`ke_dispatcher`], [`ke_wait`], [`ke_mutex`] the dispatcher objects and waits,
//!   [`ps`] system threads and the thread model, [`sched`] switching between them,
//!   [`ob`] handles and references,
//!   [`io_workitem`] work items, [`ex_resource`] executive resources.
//! * [`except`]: x64 structured exception handling over driver images' own unwind
//!   data; [`seh`]: the raise routines use, and [`seh::try_except`] for Rust drivers.
//! * [`crt`]: `memcpy` and the other C run-time routines the compiler calls;
//!   [`crt_string`] the string routines, [`crt_printf`] the bounded printf family.
//! * [`rtl`], [`rtl_convert`], [`rtl_bitmap`], [`rtl_memory`]: the run-time
//!   library (counted strings and their conversions, bitmaps, memory and version
//!   routines); `include/ntstrsafe.h` builds on them in C, as the WDK's does.
//! * [`loader`]: [`loader::Driver`] — load an image, `DriverEntry`, `DriverUnload`.
//! * [`harness`]: Rust drivers ([`harness::RustDriver`]) and the harness that runs
//!   one with a scenario inside `cargo test` ([`harness::Harness`]).
//! * [`exports`]: the export table — every routine and variable drivers import, by
//!   DLL and name, from which the import libraries and the loader's bindings come.
//!
//! `unsafe` is allowed here (the driver boundary) and only here besides `ntmem-host`;
//! every block says why it is sound.
//!
//! Rules every routine follows: it runs on a simulated processor's kernel stack at
//! the caller's IRQL; it never unwinds into C; a bugcheck leaves it through
//! [`context::kernel`], which drops everything before jumping back to the
//! `Machine::run` that entered driver code.

#[allow(non_snake_case)]
pub mod cm;
pub mod context;
#[allow(non_snake_case)]
pub mod crt;
#[allow(non_snake_case)]
pub mod crt_printf;
#[allow(non_snake_case)]
pub mod crt_stdlib;
#[allow(non_snake_case)]
pub mod crt_string;
#[allow(non_snake_case)]
pub mod dbg;
#[allow(non_snake_case)]
pub mod ex;
pub mod ex_event;
#[allow(non_snake_case)]
pub mod ex_interlocked;
#[allow(non_snake_case)]
pub mod ex_push_lock;
#[allow(non_snake_case)]
pub mod ex_resource;
#[allow(non_snake_case)]
pub mod ex_rundown;
pub mod except;
pub mod exports;
#[allow(non_snake_case)]
pub mod hal_dma;
#[allow(non_snake_case)]
pub mod hal_dma_v3;
pub mod harness;
#[allow(non_snake_case)]
pub mod io;
#[allow(non_snake_case)]
pub mod io_cancel;
#[allow(non_snake_case)]
pub mod io_kernel_stack;
#[allow(non_snake_case)]
pub mod io_registry;
#[allow(non_snake_case)]
pub mod io_remove_lock;
#[allow(non_snake_case)]
pub mod io_stack;
#[allow(non_snake_case)]
pub mod io_start;
#[allow(non_snake_case)]
pub mod io_workitem;
#[allow(non_snake_case)]
pub mod ke;
#[allow(non_snake_case)]
pub mod ke_dispatcher;
#[allow(non_snake_case)]
pub mod ke_mutex;
#[allow(non_snake_case)]
pub mod ke_processor;
#[allow(non_snake_case)]
pub mod ke_wait;
pub mod loader;
#[allow(non_snake_case)]
pub mod lookaside;
#[allow(non_snake_case)]
pub mod mdl;
#[allow(non_snake_case)]
pub mod mm;
#[allow(non_snake_case)]
pub mod ob;
#[allow(non_snake_case)]
pub mod pnp;
#[allow(non_snake_case)]
pub mod ps;
#[allow(non_snake_case)]
pub mod rtl;
#[allow(non_snake_case)]
pub mod rtl_bitmap;
#[allow(non_snake_case)]
pub mod rtl_convert;
#[allow(non_snake_case)]
pub mod rtl_memory;
#[allow(non_snake_case)]
pub mod rtl_registry;
pub mod sched;
pub mod seh;
pub mod symbols;
pub mod types;
pub(crate) mod vf;
