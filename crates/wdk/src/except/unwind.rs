//! `RtlUnwindEx`: the unwind pass, then resuming in the target frame (research note §6.5;
//! `RtlUnwindEx` on learn.microsoft.com), and the unwind routines drivers may call
//! directly: `RtlVirtualUnwind`, `RtlLookupFunctionEntry`.
//!
//! From the start context each frame is virtually unwound with UNW_FLAG_UHANDLER; a frame
//! with a termination handler gets it called with EXCEPTION_UNWINDING (plus
//! EXCEPTION_EXIT_UNWIND when there is no target frame, EXCEPTION_TARGET_UNWIND for the
//! target frame itself) and ContextRecord = the frame's own context. A frame whose
//! establisher lies above the target is STATUS_INVALID_UNWIND_TARGET. At the target frame
//! the walk stops and its context is resumed with RIP = TargetIp and RAX = ReturnValue:
//! the nonvolatile registers (RBX, RBP, RSI, RDI, R12–R15, XMM6–15) are those the unwind
//! restored, as the target function expects them.
//!
//! The start: Windows captures RtlUnwindEx's own context and walks out through its caller
//! and, during a dispatch, the dispatcher's frames to the exception's frame. ntmem's
//! dispatcher frames have no unwind data, so when the walk reaches a PC outside every image
//! it continues at the exception context of the dispatch in progress that called the
//! handler ([`super::dispatch`]); `__C_specific_handler` starts there directly.
//!
//! A collided unwind (an unwind started for an exception raised in a termination handler
//! this unwind called) reaches ntmem's frames of the running unwind and takes over from
//! where it was: the frame whose handler raised, its handler called again with
//! EXCEPTION_COLLIDED_UNWIND and the ScopeIndex it had reached. Windows does this through
//! the ExceptionCollidedUnwind answer of its unwind-handler frame; ntmem has no such frame
//! and keeps the running unwind's place with the dispatch it unwinds
//! ([`super::dispatch`]).
//!
//! Where ntmem differs: the ContextRecord argument is not used as scratch (ntmem keeps its
//! own copy); the history table is ignored.

use std::ffi::c_void;

use ntmem_host::context::{ntmem_capture_context, Context, ExceptionRecord, RSP};
use ntmem_kernel::trap::raise_bugcheck;
use ntmem_pe::unwind::{unwind_leaf, virtual_unwind, UnwindFlags};
use ntmem_pe::RuntimeFunction;

use std::cell::Cell;

use super::dispatch::{abandon_below, active_above, resume, Active, Progress};
use super::images::{lookup, Memory};
use super::{disposition, registers, set_registers, DispatcherContext, LanguageHandler};
use super::{EXCEPTION_COLLIDED_UNWIND, EXCEPTION_EXIT_UNWIND, EXCEPTION_TARGET_UNWIND, EXCEPTION_UNWINDING};
use super::{STATUS_INVALID_DISPOSITION, STATUS_INVALID_UNWIND_TARGET, STATUS_UNWIND};
use crate::seh::{thread_kind, unhandled_bugcheck};

/// RAX's index in `Context::gpr`.
const RAX: usize = 0;

/// The unwind pass from `start` (or from the exception context of the dispatch in progress
/// when `None`), then resumes the target frame. Never returns; a failure stops the machine
/// with the status as an unhandled exception.
///
/// # Safety
/// `record`, if not null, is a valid writable EXCEPTION_RECORD; `start`, if given, is a
/// context of a frame of the current stack above this call.
pub(crate) unsafe fn unwind(
    target_frame: u64,
    target_ip: u64,
    record: *mut ExceptionRecord,
    return_value: u64,
    start: Option<&Context>,
) -> ! {
    let mut local = ExceptionRecord::empty();
    let record = if record.is_null() {
        local.code = STATUS_UNWIND as i32;
        local.address = target_ip as *mut c_void;
        &mut local as *mut ExceptionRecord
    } else {
        record
    };
    let mut current = Context::zeroed();
    let from = match start {
        Some(c) => {
            current = *c;
            Resume::Nowhere
        }
        None => match from_dispatch(ntmem_host::stack_pointer() as u64, &mut current) {
            Resume::Nowhere => fail(record, STATUS_INVALID_UNWIND_TARGET),
            from => from,
        },
    };
    // SAFETY: the caller's contract.
    match unsafe { walk(target_frame, target_ip, record, &mut current, from) } {
        Ok(()) => {
            current.gpr[RAX] = return_value;
            current.rip = target_ip;
            abandon_below(current.gpr[RSP]);
            // SAFETY: `current` is a local of this frame, which is below the target frame
            // (the walk went outward from here); we hold nothing that needs dropping.
            unsafe { resume(&current) }
        }
        Err(status) => fail(record, status),
    }
}

/// Where a walk that left the images continues.
enum Resume {
    /// Nowhere: no dispatch in progress above.
    Nowhere,
    /// At the exception context of a dispatch in progress.
    Exception(*const Active),
    /// A collided unwind: where the unwind of that dispatch was, in the frame whose
    /// termination handler raised, from its ScopeIndex.
    Collided(*const Active, u32),
}

/// Copies into `into` where a walk that left the images at `sp` continues (see [`Resume`]).
fn from_dispatch(sp: u64, into: &mut Context) -> Resume {
    let Some(a) = active_above(sp) else { return Resume::Nowhere };
    // SAFETY: a live record's context is in a frame above the record, still live; so is
    // the progress of an unwind whose handler is running (it called us).
    unsafe {
        let progress = (*a).unwinding.get();
        if progress.is_null() {
            std::ptr::copy_nonoverlapping((*a).context, into, 1);
            Resume::Exception(a)
        } else {
            std::ptr::copy_nonoverlapping((*progress).frame, into, 1);
            Resume::Collided(a, (*(*progress).dc.get()).scope_index)
        }
    }
}

/// Stops the machine: an unwind that cannot complete.
fn fail(record: *mut ExceptionRecord, status: u32) -> ! {
    // SAFETY: `record` is valid (the caller's or our local).
    let mut r = unsafe { *record };
    r.code = status as i32;
    raise_bugcheck(&unhandled_bugcheck(thread_kind(), &r))
}

/// Walks from `current` to the target frame calling termination handlers; leaves the
/// target frame's context in `current`. Holds nothing that needs dropping while a handler
/// runs.
///
/// # Safety
/// As [`unwind`].
unsafe fn walk(
    target_frame: u64,
    target_ip: u64,
    record: *mut ExceptionRecord,
    current: &mut Context,
    mut next: Resume,
) -> Result<(), u32> {
    let memory = Memory;
    let mut flags = EXCEPTION_UNWINDING;
    if target_frame == 0 {
        flags |= EXCEPTION_EXIT_UNWIND;
    }
    let progress = Progress { frame: current, dc: Cell::new(std::ptr::null()) };
    // The dispatch whose frames are being walked, and the ScopeIndex a collided unwind
    // resumes its first frame at.
    let mut owner: *const Active = std::ptr::null();
    let mut collided: Option<u32> = None;
    loop {
        match next {
            Resume::Nowhere => {}
            Resume::Exception(a) => (owner, collided) = (a, None),
            Resume::Collided(a, index) => (owner, collided) = (a, Some(index)),
        }
        next = Resume::Nowhere;
        let mut frame = registers(current);
        let pc = frame.rip;
        let Some(found) = lookup(pc) else {
            // Out of the images: through ntmem's dispatcher frames to the exception.
            next = from_dispatch(frame.gpr[RSP], current);
            if matches!(next, Resume::Nowhere) {
                return Err(STATUS_INVALID_UNWIND_TARGET);
            }
            continue;
        };
        let Some((function, entry)) = found.function else {
            unwind_leaf(&mut frame, &memory).map_err(|_| STATUS_INVALID_UNWIND_TARGET)?;
            set_registers(current, &frame);
            continue;
        };
        let unwound = virtual_unwind(UnwindFlags::UHANDLER, found.base, &function, &mut frame, &memory)
            .map_err(|_| STATUS_INVALID_UNWIND_TARGET)?;
        let establisher = unwound.establisher_frame;
        if target_frame != 0 && establisher > target_frame {
            return Err(STATUS_INVALID_UNWIND_TARGET);
        }
        if let Some(handler) = unwound.handler {
            let mut these = flags;
            if establisher == target_frame {
                these |= EXCEPTION_TARGET_UNWIND;
            }
            let scope_index = collided.take();
            if scope_index.is_some() {
                these |= EXCEPTION_COLLIDED_UNWIND;
            }
            // SAFETY: `record` is valid (the caller's contract).
            unsafe {
                (*record).flags = ((*record).flags & !(EXCEPTION_TARGET_UNWIND | EXCEPTION_COLLIDED_UNWIND)) | these
            };
            let mut dc = DispatcherContext {
                control_pc: pc,
                image_base: found.base,
                function_entry: entry,
                establisher_frame: establisher,
                target_ip,
                context_record: current,
                language_handler: handler.routine,
                handler_data: handler.data,
                history_table: 0,
                scope_index: scope_index.unwrap_or(0),
                fill0: 0,
            };
            if !owner.is_null() {
                // SAFETY: `owner` is a live dispatch record (from `active_above`).
                unsafe { (*owner).unwinding.set(&progress) };
            }
            // SAFETY: the handler the image's unwind data names, called with Windows'
            // arguments, all live in this frame. While it runs, `progress` says where this
            // unwind is, for an unwind that collides with it.
            let answer = unsafe {
                let routine: LanguageHandler = std::mem::transmute(handler.routine as usize);
                let dc_ptr: *mut DispatcherContext = &mut dc;
                progress.dc.set(dc_ptr);
                routine(record, establisher, current, dc_ptr)
            };
            // SAFETY: as above.
            unsafe { (*record).flags &= !(EXCEPTION_TARGET_UNWIND | EXCEPTION_COLLIDED_UNWIND) };
            if answer != disposition::CONTINUE_SEARCH {
                return Err(STATUS_INVALID_DISPOSITION);
            }
        }
        if establisher == target_frame {
            return Ok(());
        }
        set_registers(current, &frame);
    }
}

/// `RtlUnwindEx(TargetFrame, TargetIp, ExceptionRecord, ReturnValue, ContextRecord,
/// HistoryTable)` (Microsoft x64): captures the caller's context and unwinds from it.
///
/// # Safety
/// Called by driver code with Windows' arguments.
#[unsafe(naked)]
pub unsafe extern "win64" fn RtlUnwindEx(
    target_frame: u64,
    target_ip: u64,
    record: *mut ExceptionRecord,
    return_value: u64,
    context: *mut Context,
    history: *mut c_void,
) {
    // Frame: 0x20 home, 5th argument slot at 0x20, CONTEXT at 0x30..0x500, 0x28 bytes of
    // gap below the return address at 0x528; the caller's RSP is 0x530.
    std::arch::naked_asm!(
        "sub rsp, 0x528",
        "mov [rsp + 0x530 + 0x00], rcx",
        "mov [rsp + 0x530 + 0x08], rdx",
        "mov [rsp + 0x530 + 0x10], r8",
        "mov [rsp + 0x530 + 0x18], r9",
        "lea rcx, [rsp + 0x30]",
        "call {capture}",
        "lea rax, [rsp + 0x530]",
        "mov [rsp + 0x30 + 0x98], rax",
        "mov rax, [rsp + 0x528]",
        "mov [rsp + 0x30 + 0xF8], rax",
        "mov rcx, [rsp + 0x530 + 0x00]",
        "mov rdx, [rsp + 0x530 + 0x08]",
        "mov r8, [rsp + 0x530 + 0x10]",
        "mov r9, [rsp + 0x530 + 0x18]",
        "lea rax, [rsp + 0x30]",
        "mov [rsp + 0x20], rax",
        "call {body}",
        "ud2",
        capture = sym ntmem_capture_context,
        body = sym unwind_captured,
    )
}

/// `RtlUnwindEx`'s body, with the caller's context captured in the entry's frame.
unsafe extern "win64" fn unwind_captured(
    target_frame: u64,
    target_ip: u64,
    record: *mut ExceptionRecord,
    return_value: u64,
    caller: *const Context,
) -> ! {
    // SAFETY: `caller` is in RtlUnwindEx's frame, above this one; the rest is the driver's.
    unsafe { unwind(target_frame, target_ip, record, return_value, Some(&*caller)) }
}

/// `RtlVirtualUnwind(HandlerType, ImageBase, ControlPc, FunctionEntry, ContextRecord,
/// HandlerData, EstablisherFrame, ContextPointers)`: unwinds one frame in `ContextRecord`
/// and returns the frame's handler (or null). ContextPointers is not filled in; a frame
/// that cannot be unwound leaves the context unchanged and returns null with
/// EstablisherFrame 0.
///
/// # Safety
/// Called by driver code with valid pointers.
pub unsafe extern "win64" fn RtlVirtualUnwind(
    handler_type: u32,
    image_base: u64,
    control_pc: u64,
    function_entry: *const [u32; 3],
    context: *mut Context,
    handler_data: *mut u64,
    establisher_frame: *mut u64,
    _context_pointers: *mut c_void,
) -> u64 {
    // SAFETY: the caller's pointers.
    let (entry, ctx) = unsafe { (std::ptr::read_unaligned(function_entry), &mut *context) };
    let function = RuntimeFunction { begin: entry[0], end: entry[1], unwind_info: entry[2] };
    let mut frame = registers(ctx);
    frame.rip = control_pc;
    let flags = UnwindFlags::from_bits_truncate(handler_type as u8);
    match virtual_unwind(flags, image_base, &function, &mut frame, &Memory) {
        Ok(unwound) => {
            set_registers(ctx, &frame);
            // SAFETY: the caller's out-pointers.
            unsafe {
                *establisher_frame = unwound.establisher_frame;
                if let Some(h) = unwound.handler {
                    *handler_data = h.data;
                }
            }
            unwound.handler.map_or(0, |h| h.routine)
        }
        Err(_) => {
            // SAFETY: as above.
            unsafe { *establisher_frame = 0 };
            0
        }
    }
}

/// `RtlLookupFunctionEntry(ControlPc, ImageBase, HistoryTable)`: the RUNTIME_FUNCTION
/// holding `control_pc` in its image's mapped `.pdata` (null for a leaf function or an
/// address in no registered image), with the image's base in `*image_base`.
///
/// # Safety
/// `image_base` is writable.
pub unsafe extern "win64" fn RtlLookupFunctionEntry(
    control_pc: u64,
    image_base: *mut u64,
    _history: *mut c_void,
) -> u64 {
    let Some(found) = lookup(control_pc) else { return 0 };
    // SAFETY: the caller's out-pointer.
    unsafe { *image_base = found.base };
    found.function.map_or(0, |(_, at)| at)
}
