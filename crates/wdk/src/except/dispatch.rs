//! `RtlDispatchException`: the search pass (research note §6.5; Microsoft, "x64 exception
//! handling"; "Timing of exception handling").
//!
//! From the exception's context, each frame is virtually unwound with its image's unwind
//! data; a frame whose PC is in the body of a function with an exception handler
//! (UNW_FLAG_EHANDLER) gets its language handler called as Windows calls it,
//! `handler(ExceptionRecord, EstablisherFrame, ContextRecord, DispatcherContext)` with the
//! DISPATCHER_CONTEXT's ContextRecord = the unwound (caller's) context. Its answer:
//! - ExceptionContinueExecution: resume the (possibly modified) exception context, unless
//!   the exception is noncontinuable: then a new exception is raised,
//!   STATUS_NONCONTINUABLE_EXCEPTION (noncontinuable, chained to the first), and searched
//!   from the same context again, as Windows' dispatcher raises it from its own frame (a
//!   filter that answers ExceptionContinueExecution to that one too recurses until the
//!   stack overflows, as on Windows);
//! - ExceptionContinueSearch: on to the next frame;
//! - a handler that takes the exception never answers: it calls `RtlUnwindEx`
//!   ([`super::unwind`]), which resumes in the handler's frame;
//! - anything else: STATUS_INVALID_DISPOSITION.
//!
//! The walk ends at the first PC outside every registered image (the ntmem frame that
//! entered driver code; but inside a handler of a dispatch in progress the search goes on
//! in that dispatch's frames, see the `except` module docs) or at a frame that cannot be
//! unwound (an invalid stack, as EXCEPTION_STACK_INVALID): the exception is unhandled and
//! the machine stops with
//! Windows' bugcheck for the thread (`seh` module docs): SYSTEM_THREAD_EXCEPTION_NOT_HANDLED
//! (0x7E: code, address, EXCEPTION_RECORD*, CONTEXT*) in a system thread; otherwise
//! KERNEL_MODE_EXCEPTION_NOT_HANDLED (0x8E: code, address, 0, 0) for a hardware fault and
//! KMODE_EXCEPTION_NOT_HANDLED (0x1E: code, address, parameters 0 and 1) for a raised
//! exception. The record and context are on the kernel stack (simulated addresses); the
//! exception address is the host address of the instruction, as the trap reports it.
//!
//! Entries: `fault_entry` (the host calls it on the faulting stack), [`RtlRaiseException`]
//! (drivers) and [`dispatch_from`] (ntmem routines raising on behalf of the driver that
//! called them, from the driver's context captured at the call).

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use ntmem_host::context::{ntmem_capture_context, restore_context, Context, ExceptionRecord, RSP};
use ntmem_kernel::trap::raise_bugcheck;
use ntmem_kernel::{BugCheck, BugCheckCode};
use ntmem_pe::unwind::{unwind_leaf, virtual_unwind, Context as Registers, UnwindFlags};

use super::images::{lookup, Memory};
use super::{disposition, registers, set_registers, DispatcherContext, LanguageHandler};
use super::{EXCEPTION_NESTED_CALL, EXCEPTION_NONCONTINUABLE, EXCEPTION_STACK_INVALID};
use super::{STATUS_INVALID_DISPOSITION, STATUS_NONCONTINUABLE_EXCEPTION};
use crate::seh::{thread_kind, ThreadKind};

/// A dispatch in progress on this thread: where its exception context is, so that an
/// unwind started by one of its handlers begins at the exception's frame (Windows walks
/// there through the dispatcher's own frames). Lives in [`dispatch`]'s frame.
#[derive(Debug)]
pub(crate) struct Active {
    prev: *const Active,
    /// The exception's context.
    pub(crate) context: *const Context,
    /// The guarded call it runs in: records of abandoned calls are ignored.
    token: usize,
    /// The caller's context of the frame whose handler is running: where a nested
    /// exception's search continues.
    next: Cell<Registers>,
    /// The unwind walking this dispatch's frames, once one has started (null before): a
    /// nested exception raised in one of its termination handlers is searched from this
    /// dispatch's exception context again, and an unwind for it collides with this one.
    pub(crate) unwinding: Cell<*const Progress>,
}

/// Where an unwind is (a local of `RtlUnwindEx`'s walk, live while it calls a handler):
/// what a colliding unwind takes over.
#[derive(Debug)]
pub(crate) struct Progress {
    /// The context of the frame whose termination handler is running.
    pub(crate) frame: *const Context,
    /// Its DISPATCHER_CONTEXT, whose ScopeIndex says which scope records its handler has
    /// done.
    pub(crate) dc: Cell<*const super::DispatcherContext>,
}

thread_local! {
    static ACTIVE: Cell<*const Active> = const { Cell::new(std::ptr::null()) };
}

/// The innermost dispatch in progress whose record lies above `sp` (in an outer frame),
/// dropping records of dispatches that were abandoned.
pub(crate) fn active_above(sp: u64) -> Option<*const Active> {
    let token = ntmem_host::token();
    let here = ntmem_host::stack_pointer() as u64;
    let mut a = ACTIVE.with(Cell::get);
    // SAFETY: records on the list live in frames of this guarded call above the current
    // stack pointer; others (abandoned by a bugcheck or an unwind) are skipped unread
    // past their token, which is stored first.
    unsafe {
        while !a.is_null() && ((*a).token != token || (a as u64) < here) {
            a = (*a).prev;
        }
        ACTIVE.with(|c| c.set(a));
        while !a.is_null() && (a as u64) <= sp {
            a = (*a).prev;
        }
    }
    (!a.is_null()).then_some(a)
}

/// Forgets the dispatches whose frames lie below `rsp` (about to be abandoned by resuming
/// a context there).
pub(crate) fn abandon_below(rsp: u64) {
    let mut a = ACTIVE.with(Cell::get);
    // SAFETY: as in `active_above`; only records above `rsp` are kept.
    unsafe {
        while !a.is_null() && (a as u64) < rsp {
            a = (*a).prev;
        }
    }
    ACTIVE.with(|c| c.set(a));
}

/// How a search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A handler answered ExceptionContinueExecution: resume the exception context.
    Continue,
    /// No handler took it: stop the machine with this exception code.
    Unhandled(u32),
    /// A handler answered ExceptionContinueExecution to a noncontinuable exception.
    Noncontinuable,
}

/// The search pass over the frames from `context`. Holds nothing that needs dropping while
/// a handler runs (a handler may resume elsewhere and never return).
///
/// # Safety
/// `record` and `context` are valid, writable, and outlive the call.
unsafe fn search(record: *mut ExceptionRecord, context: *mut Context) -> Outcome {
    let memory = Memory;
    // SAFETY: the caller's contract.
    let (rec, ctx) = unsafe { (&mut *record, &mut *context) };
    let mut frame = registers(ctx);
    let mut work = *ctx;
    let active = Active {
        prev: active_above(0).unwrap_or(std::ptr::null()),
        context,
        token: ntmem_host::token(),
        next: Cell::new(frame),
        unwinding: Cell::new(std::ptr::null()),
    };
    ACTIVE.with(|c| c.set(&active));
    let outcome = loop {
        let pc = frame.rip;
        let Some(found) = lookup(pc) else {
            // Out of the images. Inside a handler of a dispatch in progress, the search goes
            // on above the frame that handler was called for (a filter that raised), or,
            // when that dispatch is unwinding (a termination handler that raised), from its
            // exception's frame again, as the frames still are on the stack.
            // SAFETY: `active_above` returns live records only.
            match active_above(frame.rsp()).map(|outer| unsafe { &*outer }) {
                Some(outer) if outer.unwinding.get().is_null() => frame = outer.next.get(),
                // SAFETY: a live record's context is live.
                Some(outer) => frame = registers(unsafe { &*outer.context }),
                None => break Outcome::Unhandled(rec.code as u32),
            }
            continue;
        };
        let Some((function, entry)) = found.function else {
            if unwind_leaf(&mut frame, &memory).is_err() {
                rec.flags |= EXCEPTION_STACK_INVALID;
                break Outcome::Unhandled(rec.code as u32);
            }
            continue;
        };
        let Ok(unwound) = virtual_unwind(UnwindFlags::EHANDLER, found.base, &function, &mut frame, &memory) else {
            rec.flags |= EXCEPTION_STACK_INVALID;
            break Outcome::Unhandled(rec.code as u32);
        };
        let Some(handler) = unwound.handler else { continue };
        let establisher = unwound.establisher_frame;
        if establisher % 8 != 0 || !Memory::on_stack(establisher, 8) {
            rec.flags |= EXCEPTION_STACK_INVALID;
            break Outcome::Unhandled(rec.code as u32);
        }
        set_registers(&mut work, &frame);
        active.next.set(frame);
        let mut dc = DispatcherContext {
            control_pc: pc,
            image_base: found.base,
            function_entry: entry,
            establisher_frame: establisher,
            target_ip: 0,
            context_record: &mut work,
            language_handler: handler.routine,
            handler_data: handler.data,
            history_table: 0,
            scope_index: 0,
            fill0: 0,
        };
        // SAFETY: `routine` is the language handler the image's unwind data names, inside
        // the registered image; it is called with Windows' arguments, all live here.
        let answer = unsafe {
            let routine: LanguageHandler = std::mem::transmute(handler.routine as usize);
            routine(record, establisher, context, &mut dc)
        };
        // SAFETY: the handler had the record; we read it again.
        let rec = unsafe { &mut *record };
        rec.flags &= !EXCEPTION_NESTED_CALL;
        match answer {
            disposition::CONTINUE_EXECUTION if rec.flags & EXCEPTION_NONCONTINUABLE != 0 => {
                break Outcome::Noncontinuable
            }
            disposition::CONTINUE_EXECUTION => break Outcome::Continue,
            disposition::CONTINUE_SEARCH => {}
            _ => break Outcome::Unhandled(STATUS_INVALID_DISPOSITION),
        }
    };
    ACTIVE.with(|c| c.set(active.prev));
    outcome
}

/// Dispatches and never returns: resumes the context a handler chose, or stops the machine.
///
/// # Safety
/// As [`search`]; additionally `context` lies above the current stack pointer by more than
/// the restore's scratch (it is in a caller's frame or below the faulting RSP with a gap).
unsafe fn dispatch(record: *mut ExceptionRecord, context: *mut Context, fault: bool) -> ! {
    // SAFETY: the caller's contract.
    if fault && unsafe { (*record).code } as u32 == ntmem_host::exception::STATUS_BREAKPOINT {
        // SAFETY: as above.
        unsafe { debugger_first_chance(record, context) }
    }
    // SAFETY: the caller's contract; a panic in the walk is a bug reported as unhandled.
    let outcome = catch_unwind(AssertUnwindSafe(|| unsafe { search(record, context) }))
        .unwrap_or(Outcome::Unhandled(STATUS_INVALID_DISPOSITION));
    match outcome {
        Outcome::Continue => {
            // SAFETY: the context is live and above us (contract); we hold nothing.
            unsafe {
                abandon_below((*context).gpr[RSP]);
                resume(context)
            }
        }
        // SAFETY: the caller's contract.
        Outcome::Noncontinuable => unsafe { raise_noncontinuable(record, context, fault) },
        Outcome::Unhandled(code) => {
            if crate::seh::catch_innermost() {
                // A Rust driver's `seh::catch` above the driver frames takes it.
                // SAFETY: the caller's contract.
                let mut r = unsafe { *record };
                r.code = code as i32;
                crate::seh::unhandled(&r)
            }
            // SAFETY: the caller's contract.
            let b = unsafe { unhandled(&*record, context, code, fault) };
            if ntmem_host::token() == 0 {
                // SAFETY: as above.
                crate::seh::unhandled_outside_machine(unsafe { &*record }, &b)
            }
            // SAFETY: the caller's contract: `context` is live.
            crate::except::note_stop_stack(unsafe { &*context });
            raise_bugcheck(&b)
        }
    }
}

/// A breakpoint instruction in driver code on a `/DEBUG` machine: the kernel debugger
/// gets the exception before any handler (KdTrap, Microsoft "Timing of exception
/// handling"), and ntmem's debugger continues past the `int 3`.
/// Returns when no debugger is attached.
///
/// # Safety
/// As [`dispatch`].
#[inline(never)]
unsafe fn debugger_first_chance(record: *mut ExceptionRecord, context: *mut Context) {
    if !crate::dbg::debugger_attached() {
        return;
    }
    // SAFETY: the caller's contract.
    let at = unsafe { (*record).address } as u64;
    crate::dbg::debugger_continues(at);
    // The host reports the byte before the trap's RIP (the `CC`), so the instruction
    // after the breakpoint is one past it.
    // SAFETY: the caller's contract: the context is live and above us; we hold nothing.
    unsafe {
        (*context).rip = at + 1;
        abandon_below((*context).gpr[RSP]);
        resume(context)
    }
}

/// Raises STATUS_NONCONTINUABLE_EXCEPTION for `record`, whose handler answered
/// ExceptionContinueExecution though it is noncontinuable, and dispatches it from the same
/// context (see the module docs). Out of line: its copies must not enlarge [`dispatch`]'s
/// frame, which every dispatch pays for.
///
/// # Safety
/// As [`dispatch`].
#[inline(never)]
unsafe fn raise_noncontinuable(record: *mut ExceptionRecord, context: *mut Context, fault: bool) -> ! {
    let mut nested = ExceptionRecord::empty();
    nested.code = STATUS_NONCONTINUABLE_EXCEPTION as i32;
    nested.flags = EXCEPTION_NONCONTINUABLE;
    nested.chained = record;
    // SAFETY: the caller's contract; the copy is a local above the nested dispatch.
    let mut again = unsafe {
        nested.address = (*record).address;
        *context
    };
    // SAFETY: both are locals of this frame, above the nested dispatch's.
    unsafe { dispatch(&mut nested, &mut again, fault) }
}

/// Resumes `context`, copied first to a 16-aligned place if it is not (a driver's CONTEXT
/// may be misaligned; FXRSTOR needs alignment).
///
/// Kept out of line: its aligned copy must not enlarge the frames that call handlers.
///
/// # Safety
/// As [`restore_context`], except alignment.
#[inline(never)]
pub(crate) unsafe fn resume(context: *const Context) -> ! {
    if (context as usize).is_multiple_of(16) {
        // SAFETY: the caller's contract.
        unsafe { restore_context(context) }
    }
    // SAFETY: reading the caller's context unaligned into an aligned local below it.
    let aligned = unsafe { std::ptr::read_unaligned(context) };
    // SAFETY: `aligned` is in this frame, below the target RSP.
    unsafe { restore_context(&aligned) }
}

/// The bugcheck for an exception no frame handled (see the module docs).
///
/// # Safety
/// `context` is only used as an address.
unsafe fn unhandled(record: &ExceptionRecord, context: *const Context, code: u32, fault: bool) -> BugCheck {
    let mut r = *record;
    r.code = code as i32;
    let kind = thread_kind();
    let mut b = crate::seh::unhandled_bugcheck(kind, &r);
    match kind {
        ThreadKind::System => {
            b.parameters[2] = simulated(std::ptr::from_ref(record).cast());
            b.parameters[3] = simulated(context.cast());
        }
        ThreadKind::Arbitrary if fault => {
            b = BugCheck::new(
                BugCheckCode::KERNEL_MODE_EXCEPTION_NOT_HANDLED,
                [u64::from(code), r.address as u64, 0, 0],
            );
            b.faulting_ip = Some(r.address as u64);
        }
        ThreadKind::Arbitrary => {}
    }
    b
}

/// The simulated address of a pointer to the kernel stack (the record and context of a
/// 0x7E), when driver code is running on a machine.
fn simulated(p: *const std::ffi::c_void) -> u64 {
    if !crate::context::in_driver() {
        return p as u64;
    }
    crate::context::kernel(|cpu| Ok(crate::context::va_of(cpu, p).get()))
}

/// [`dispatch`] of a hardware exception whose record is not the host's (see `cr8`).
///
/// # Safety
/// As [`dispatch`].
pub(crate) unsafe fn dispatch_fault(record: *mut ExceptionRecord, context: *mut Context) -> ! {
    // SAFETY: the caller's contract.
    unsafe { dispatch(record, context, true) }
}

/// Where the host sends a hardware exception in a registered image, or in a routine a
/// driver image called (`ntmem_host::exception::raisable`): called on the faulting stack
/// with the record and faulting context just below the faulting RSP. A fault inside a
/// routine is dispatched from the driver's frame at its call, keeping the faulting
/// instruction as the exception's address; the routine's frames are abandoned (the
/// escape contract: routines touch driver memory holding nothing to drop).
pub(crate) extern "C" fn fault_entry(record: *mut ExceptionRecord, context: *mut Context) -> ! {
    // SAFETY: the host wrote both, aligned, below the faulting RSP with a gap of
    // `ntmem_host::exception::GAP` bytes, above this frame; the driver's frame is above
    // the routine's.
    unsafe {
        if lookup((*context).rip).is_none() {
            if let Some(frame) = ntmem_host::thunk::driver_frame() {
                frame.apply_to(&mut *context);
            }
        }
        dispatch(record, context, true)
    }
}

/// Dispatches `record` from a driver's `context` on behalf of an ntmem routine the driver
/// called (ExRaiseStatus, ProbeForRead, …): the exception appears raised at the driver's
/// call site. Never returns: a handler resumes the driver (at its `__except` block, or at
/// `context` for EXCEPTION_CONTINUE_EXECUTION), or the machine stops.
///
/// The caller must hold nothing that needs dropping (everything between here and the
/// driver's frame is abandoned) and `context` must be a context of a frame of the current
/// kernel stack above this call (captured at the driver's import call).
pub fn dispatch_from(record: &ExceptionRecord, context: &Context) -> ! {
    let mut record = *record;
    let mut context = *context;
    if record.address.is_null() {
        record.address = context.rip as *mut std::ffi::c_void;
    }
    // SAFETY: both are locals of this frame, which lives until the dispatch ends; the
    // driver's RSP is above this frame (the caller's contract).
    unsafe { dispatch(&mut record, &mut context, false) }
}

/// The entry of a routine that needs its caller's context: captures it in the entry's frame
/// and calls `$body(first argument, CONTEXT*)`, which must not return. Frame: 0x20 home,
/// the first argument at 0x28, the CONTEXT at 0x30..0x500, then 0x28 bytes of gap (more than
/// the restore's scratch) below the return address at 0x528; the caller's RSP is 0x530.
macro_rules! capture_caller_then {
    ($body:path) => {
        std::arch::naked_asm!(
            "sub rsp, 0x528",
            "mov [rsp + 0x28], rcx",
            "lea rcx, [rsp + 0x30]",
            "call {capture}",
            "lea rax, [rsp + 0x530]",
            "mov [rsp + 0x30 + 0x98], rax",
            "mov rax, [rsp + 0x528]",
            "mov [rsp + 0x30 + 0xF8], rax",
            "mov rcx, [rsp + 0x28]",
            "lea rdx, [rsp + 0x30]",
            "call {body}",
            "ud2",
            capture = sym ntmem_capture_context,
            body = sym $body,
        )
    };
}

/// `RtlRaiseException(ExceptionRecord)` (Microsoft x64): captures the caller's context,
/// sets ExceptionAddress to the caller's return address and dispatches. Returns to the
/// caller only when a filter answers EXCEPTION_CONTINUE_EXECUTION.
///
/// # Safety
/// Called by driver code with a valid, writable EXCEPTION_RECORD.
#[unsafe(naked)]
pub unsafe extern "win64" fn RtlRaiseException(record: *mut ExceptionRecord) {
    capture_caller_then!(raise_captured)
}

/// `RtlRaiseException`'s body: the caller's context has been captured in the entry's frame.
unsafe extern "win64" fn raise_captured(record: *mut ExceptionRecord, context: *mut Context) -> ! {
    // SAFETY: `record` is the driver's; `context` is in RtlRaiseException's frame, above us.
    unsafe {
        (*record).address = (*context).rip as *mut std::ffi::c_void;
        dispatch(record, context, false)
    }
}

/// `RtlRaiseStatus(Status)` (Microsoft x64; what `ExRaiseStatus` is on x64 Windows): raises
/// a noncontinuable exception (EXCEPTION_NONCONTINUABLE, no parameters) with code `Status`
/// at the caller's return address, through [`dispatch_from`].
///
/// # Safety
/// Called by driver code.
#[unsafe(naked)]
pub unsafe extern "win64" fn RtlRaiseStatus(status: i32) {
    capture_caller_then!(raise_status_captured)
}

/// `ExRaiseAccessViolation()`: `ExRaiseStatus(STATUS_ACCESS_VIOLATION)`.
///
/// # Safety
/// Called by driver code.
#[unsafe(naked)]
pub unsafe extern "win64" fn ExRaiseAccessViolation() {
    capture_caller_then!(raise_access_violation_captured)
}

unsafe extern "win64" fn raise_access_violation_captured(_: u64, context: *const Context) -> ! {
    // SAFETY: as for `raise_status_captured`.
    unsafe { raise_status_captured(crate::seh::STATUS_ACCESS_VIOLATION, context) }
}

/// `ExRaiseDatatypeMisalignment()`: `ExRaiseStatus(STATUS_DATATYPE_MISALIGNMENT)`.
///
/// # Safety
/// Called by driver code.
#[unsafe(naked)]
pub unsafe extern "win64" fn ExRaiseDatatypeMisalignment() {
    capture_caller_then!(raise_misalignment_captured)
}

unsafe extern "win64" fn raise_misalignment_captured(_: u64, context: *const Context) -> ! {
    // SAFETY: as for `raise_status_captured`.
    unsafe { raise_status_captured(crate::seh::STATUS_DATATYPE_MISALIGNMENT, context) }
}

/// `RtlRaiseStatus`'s body.
unsafe extern "win64" fn raise_status_captured(status: i32, context: *const Context) -> ! {
    let mut record = ExceptionRecord::empty();
    record.code = status;
    record.flags = EXCEPTION_NONCONTINUABLE;
    // SAFETY: `context` is in RtlRaiseStatus's frame, above us.
    dispatch_from(&record, unsafe { &*context })
}
