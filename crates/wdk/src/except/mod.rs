//! x64 structured exception handling for PE driver images, as Windows does it (issue 10
//! item 3; research note `dma-verifier-views.md` §6.5; DESIGN.md "SEH as Windows does it").
//!
//! - [`images`]: the image list (`RtlLookupFunctionEntry`) and the memory unwinding reads.
//! - [`dispatch`]: `RtlDispatchException` — the search pass over the driver's frames,
//!   entered from a hardware fault (the host rewrites the faulting context to call it,
//!   `ntmem_host::exception`), from `RtlRaiseException`, or from ntmem code with a driver
//!   context ([`dispatch::dispatch_from`]).
//! - [`unwind`]: `RtlUnwindEx` (the unwind pass, then resuming at the target),
//!   `RtlVirtualUnwind` and `RtlLookupFunctionEntry` as driver-callable routines.
//! - [`c_specific`]: `__C_specific_handler`, the language handler of C `__try`.
//! - `cr8`: reads and writes of `cr8` in driver code emulated as the IRQL.
//!
//! Frames are walked with the image's own `.pdata`/`.xdata` (`ntmem_pe::unwind`). The walk
//! stops at the first return address outside every registered image: the ntmem frame that
//! entered driver code. An exception no frame handles stops the machine (see
//! [`dispatch`] for the bugcheck).
//!
//! Nested exceptions: an exception raised inside a filter is searched first in the filter's
//! own frames, then in the frames above the one whose filter raised (the frames already
//! being handled are skipped, as Windows' nested-exception handling does); the unwind to
//! its handler runs every termination handler from the first exception's frame up. An
//! exception raised inside a `__finally` while an unwind runs it is searched from the first
//! exception's frame again (those frames are still on the stack, as on Windows), and the
//! unwind for it *collides* with the running one: it takes over where that one was, in the
//! frame whose `__finally` raised, from the scope record after it (EXCEPTION_COLLIDED_UNWIND),
//! so no termination handler runs twice.
//!
//! Where ntmem differs from Windows (not done yet): the walk does not continue through
//! ntmem's own frames (a driver callback called by an ntmem routine called by the driver
//! sees only the callback's frames); the EXCEPTION_NESTED_CALL flag is not set; a language
//! handler answering ExceptionNestedException or ExceptionCollidedUnwind (only Windows'
//! internal handlers do) is an invalid disposition; `ContextPointers` and the history
//! table are not produced.

//! Every routine a driver calls is a Microsoft-x64 (`extern "win64"`) function;
//! [`crate::exports::routine_address`] gives their addresses by export name, for binding imports.
//!
//! How the PE loader and the WDK boundary use this (the tests in `tests/pe_seh.rs` do the
//! same by hand):
//! - after `LoadedImage::load`, [`images::register`] the image (its faults become
//!   exceptions; the dispatcher finds its `.pdata`); drop the [`images::Registration`]
//!   before unloading it;
//! - bind `__C_specific_handler`, `RtlRaiseException`, `RtlRaiseStatus`,
//!   `RtlCaptureContext`, `RtlUnwindEx`, `RtlVirtualUnwind` and `RtlLookupFunctionEntry`
//!   with [`crate::exports::routine_address`];
//! - call driver code inside `Machine::run` with `seh::run_as` (the thread kind decides
//!   the bugcheck of an unhandled exception) and `context::enter` (`cr8` emulation and the
//!   0x7E parameters need the current processor);
//! - a routine that raises on the driver's behalf (ExRaiseStatus, ProbeForRead, …) calls
//!   [`dispatch::dispatch_from`] with the driver's context captured at the import call.

#[allow(non_snake_case)]
pub mod c_specific;
mod cr8;
#[allow(non_snake_case)]
pub mod dispatch;
pub mod images;
#[allow(non_snake_case)]
pub mod unwind;

use ntmem_host::context::{Context, ExceptionRecord};
use ntmem_pe::unwind::Context as Registers;

/// EXCEPTION_NONCONTINUABLE.
pub const EXCEPTION_NONCONTINUABLE: u32 = 0x1;
/// EXCEPTION_UNWINDING.
pub const EXCEPTION_UNWINDING: u32 = 0x2;
/// EXCEPTION_EXIT_UNWIND.
pub const EXCEPTION_EXIT_UNWIND: u32 = 0x4;
/// EXCEPTION_STACK_INVALID.
pub const EXCEPTION_STACK_INVALID: u32 = 0x8;
/// EXCEPTION_NESTED_CALL.
pub const EXCEPTION_NESTED_CALL: u32 = 0x10;
/// EXCEPTION_TARGET_UNWIND.
pub const EXCEPTION_TARGET_UNWIND: u32 = 0x20;
/// EXCEPTION_COLLIDED_UNWIND.
pub const EXCEPTION_COLLIDED_UNWIND: u32 = 0x40;
/// EXCEPTION_UNWIND: the flags that mean "unwind pass".
pub const EXCEPTION_UNWIND: u32 = 0x66;

/// STATUS_NONCONTINUABLE_EXCEPTION.
pub const STATUS_NONCONTINUABLE_EXCEPTION: u32 = 0xC000_0025;
/// STATUS_INVALID_DISPOSITION.
pub const STATUS_INVALID_DISPOSITION: u32 = 0xC000_0026;
/// STATUS_UNWIND.
pub const STATUS_UNWIND: u32 = 0xC000_0027;
/// STATUS_INVALID_UNWIND_TARGET.
pub const STATUS_INVALID_UNWIND_TARGET: u32 = 0xC000_0029;

/// `EXCEPTION_DISPOSITION` (excpt.h).
pub mod disposition {
    /// ExceptionContinueExecution.
    pub const CONTINUE_EXECUTION: i32 = 0;
    /// ExceptionContinueSearch.
    pub const CONTINUE_SEARCH: i32 = 1;
    /// ExceptionNestedException.
    pub const NESTED_EXCEPTION: i32 = 2;
    /// ExceptionCollidedUnwind.
    pub const COLLIDED_UNWIND: i32 = 3;
}

/// `DISPATCHER_CONTEXT` (x64, winnt.h; offsets in research note §6.5).
#[repr(C)]
#[derive(Debug)]
pub struct DispatcherContext {
    /// ControlPc: the PC in the frame whose handler is called.
    pub control_pc: u64,
    /// ImageBase.
    pub image_base: u64,
    /// FunctionEntry: the frame's RUNTIME_FUNCTION in the mapped `.pdata`.
    pub function_entry: u64,
    /// EstablisherFrame.
    pub establisher_frame: u64,
    /// TargetIp (unwind pass).
    pub target_ip: u64,
    /// ContextRecord: the context being unwound.
    pub context_record: *mut Context,
    /// LanguageHandler.
    pub language_handler: u64,
    /// HandlerData (for `__C_specific_handler`: the SCOPE_TABLE).
    pub handler_data: u64,
    /// HistoryTable (always null in ntmem).
    pub history_table: u64,
    /// ScopeIndex: the scope record a re-entered handler starts at.
    pub scope_index: u32,
    /// Fill0.
    pub fill0: u32,
}

const _: () = {
    assert!(std::mem::offset_of!(DispatcherContext, establisher_frame) == 0x18);
    assert!(std::mem::offset_of!(DispatcherContext, context_record) == 0x28);
    assert!(std::mem::offset_of!(DispatcherContext, handler_data) == 0x38);
    assert!(std::mem::offset_of!(DispatcherContext, scope_index) == 0x48);
    assert!(std::mem::size_of::<DispatcherContext>() == 0x50);
};

/// `EXCEPTION_POINTERS`.
#[repr(C)]
#[derive(Debug)]
pub struct ExceptionPointers {
    /// ExceptionRecord.
    pub record: *mut ExceptionRecord,
    /// ContextRecord.
    pub context: *mut Context,
}

/// A language handler (`PEXCEPTION_ROUTINE`).
pub type LanguageHandler =
    unsafe extern "win64" fn(*mut ExceptionRecord, u64, *mut Context, *mut DispatcherContext) -> i32;

/// The registers unwinding reads and writes, from a CONTEXT.
pub(crate) fn registers(c: &Context) -> Registers {
    Registers { rip: c.rip, gpr: c.gpr, xmm: c.flt_save.xmm_registers }
}

/// The driver's context at its import call into the routine running now (the capture
/// of [`ntmem_host::thunk::driver_frame`] over the current registers), if a driver image
/// called it: where an exception the routine raises is dispatched from, and where the
/// stack of a stop it makes starts.
// Not inlined: its CONTEXT and the capture's copy stay out of the caller's frame,
// which for a raise stays on the kernel stack (12 KB on x86) during the dispatch.
#[inline(never)]
pub(crate) fn driver_context() -> Option<Context> {
    let frame = ntmem_host::thunk::driver_frame()?;
    let mut context = Context::zeroed();
    // SAFETY: a valid, writable CONTEXT; the capture gives the state it describes.
    unsafe { ntmem_host::context::ntmem_capture_context(&mut context) };
    frame.apply_to(&mut context);
    Some(context)
}

/// Walks the driver stack from `context` over the registered images, now, while it is
/// live, and notes it as the stack of the stop this thread is about to make
/// (`ntmem_kernel::bugcheck::note_stop_stack`; the report's `STACK_TEXT`).
pub(crate) fn note_stop_stack(context: &Context) {
    let frames = crate::symbols::walk(registers(context), &images::Memory, |pc| {
        images::lookup(pc).map(|found| (found.base, found.function.map(|(entry, _)| entry)))
    });
    ntmem_kernel::bugcheck::note_stop_stack(frames);
}

/// Writes unwound registers back into a CONTEXT (the rest is kept).
fn set_registers(c: &mut Context, r: &Registers) {
    c.rip = r.rip;
    c.gpr = r.gpr;
    c.flt_save.xmm_registers = r.xmm;
}

/// `RtlCaptureContext(ContextRecord)` (Microsoft x64), in the host layer.
pub use ntmem_host::context::ntmem_capture_context as RtlCaptureContext;

/// Makes the host call this module's dispatcher for faults in registered images
/// (idempotent).
pub fn install() {
    ntmem_host::exception::set_dispatch_entry(dispatch::fault_entry);
    ntmem_host::exception::set_cr8_entry(cr8::emulate);
}
