//! `RtlVirtualUnwind`: from a context inside a function, the caller's context.
//!
//! The procedure ("x64 exception handling", Unwind procedure; `RtlVirtualUnwind` on
//! learn.microsoft.com; research note §6.5):
//! 1. If the PC is past the prolog and the code from the PC is an epilogue (see
//!    `epilog`), execute the rest of the epilogue: the caller's context, no handler.
//! 2. Otherwise undo the unwind codes in array order — in the prolog only those whose
//!    CodeOffset is at or before the PC's offset (the instructions already executed) — then
//!    every code of each chained UNWIND_INFO, then pop the return address (unless a machine
//!    frame supplied RIP and RSP).
//! 3. The establisher frame is the base of the fixed allocation: RSP, or the frame register
//!    − FrameOffset × 16 once UWOP_SET_FPREG has executed. Register save offsets are
//!    relative to it.
//! 4. The language handler is returned when the PC is in the body (neither prolog nor
//!    epilogue) and the primary UNWIND_INFO's flags include the HandlerType asked for.
//!
//! Where ntmem differs: `ContextPointers` (where each register was restored from) is not
//! produced, and chains deeper than [`MAX_CHAIN_DEPTH`] are refused instead of followed.

use super::context::Context;
use super::epilog;
use super::info::{UnwindFlags, UnwindInfo, UnwindOp, UnwindTail};
use super::UnwindError;
use crate::memory::ReadMemory;
use crate::pdata::RuntimeFunction;

/// The most chained UNWIND_INFOs followed from one function entry. Windows sets no documented
/// bound; ntmem needs one so that a cycle in hostile data ends.
pub const MAX_CHAIN_DEPTH: usize = 32;

/// Where in its function the PC was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcLocation {
    /// Inside the prolog: only the executed codes were undone; no handler.
    Prolog,
    /// In the body: every code was undone; the handler may be called.
    Body,
    /// Inside an epilogue: the rest of it was executed; no handler.
    Epilog,
}

/// A language-specific handler (e.g. `__C_specific_handler`) and its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LanguageHandler {
    /// The handler's virtual address (image base + its RVA).
    pub routine: u64,
    /// Virtual address of the handler's data (for `__C_specific_handler`, the SCOPE_TABLE).
    pub data: u64,
}

/// What a virtual unwind found besides the caller's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnwindOutcome {
    /// The handler to call for this frame, if asked for and the PC is in the body.
    pub handler: Option<LanguageHandler>,
    /// The establisher frame: the base of the function's fixed stack allocation.
    pub establisher_frame: u64,
    /// Where in the function the PC was.
    pub location: PcLocation,
}

/// `RtlVirtualUnwind(HandlerType, ImageBase, ControlPc = context.rip, FunctionEntry, context)`:
/// replaces `context` by the caller's context and reports the handler and establisher frame.
/// `handler_type` is UNW_FLAG_EHANDLER (search pass), UNW_FLAG_UHANDLER (unwind pass) or empty
/// (no handler wanted). On error `context` is left unchanged.
pub fn virtual_unwind(
    handler_type: UnwindFlags,
    image_base: u64,
    function: &RuntimeFunction,
    context: &mut Context,
    memory: &impl ReadMemory,
) -> Result<UnwindOutcome, UnwindError> {
    let pc = context.rip;
    let begin = image_base.wrapping_add(u64::from(function.begin));
    let end = image_base.wrapping_add(u64::from(function.end));
    if !(begin..end).contains(&pc) {
        return Err(UnwindError::PcOutsideFunction { pc, begin, end });
    }
    let offset = pc - begin;
    let info = UnwindInfo::read(memory, image_base, function.unwind_info)?;
    let in_prolog = offset < u64::from(info.size_of_prolog);
    let establisher_frame = establisher_frame(&info, in_prolog.then_some(offset), context);
    let mut caller = *context;

    if !in_prolog {
        if let Some(rest) = epilog::detect(memory, pc, begin..end, info.frame)? {
            rest.apply(&mut caller, memory)?;
            *context = caller;
            return Ok(UnwindOutcome { handler: None, establisher_frame, location: PcLocation::Epilog });
        }
    }

    let mut machine_frame = undo(&info, in_prolog.then_some(offset), establisher_frame, &mut caller, memory)?;
    let mut primary = info;
    let mut depth = 0;
    while let UnwindTail::Chained(parent) = primary.tail {
        depth += 1;
        if depth > MAX_CHAIN_DEPTH {
            return Err(UnwindError::ChainTooDeep);
        }
        primary = UnwindInfo::read(memory, image_base, parent.unwind_info)?;
        machine_frame |= undo(&primary, None, establisher_frame, &mut caller, memory)?;
    }
    if !machine_frame {
        caller.rip = memory.read_u64(caller.rsp())?;
        caller.set_rsp(caller.rsp().wrapping_add(8));
    }

    let wanted = handler_type & (UnwindFlags::EHANDLER | UnwindFlags::UHANDLER);
    let handler = match primary.tail {
        UnwindTail::Handler { handler_rva, data } if !in_prolog && primary.flags.intersects(wanted) => {
            Some(LanguageHandler { routine: image_base.wrapping_add(u64::from(handler_rva)), data })
        }
        _ => None,
    };
    *context = caller;
    let location = if in_prolog { PcLocation::Prolog } else { PcLocation::Body };
    Ok(UnwindOutcome { handler, establisher_frame, location })
}

/// A leaf function (no RUNTIME_FUNCTION) has not moved RSP: its return address is at [RSP].
pub fn unwind_leaf(context: &mut Context, memory: &impl ReadMemory) -> Result<(), UnwindError> {
    context.rip = memory.read_u64(context.rsp())?;
    context.set_rsp(context.rsp().wrapping_add(8));
    Ok(())
}

/// RSP, or frame register − FrameOffset × 16 once UWOP_SET_FPREG has executed (always, past
/// the prolog or when this info has no SET_FPREG of its own, as in chained info).
fn establisher_frame(info: &UnwindInfo, prolog_offset: Option<u64>, context: &Context) -> u64 {
    let Some(frame) = info.frame else { return context.rsp() };
    let set_fpreg_pending = prolog_offset
        .is_some_and(|offset| info.codes.iter().any(|c| c.op == UnwindOp::SetFpreg && u64::from(c.offset) > offset));
    if set_fpreg_pending {
        context.rsp()
    } else {
        context.get(frame.register).wrapping_sub(u64::from(frame.offset))
    }
}

/// Undoes `info`'s codes on `context` (only those executed when `prolog_offset` is given).
/// Returns whether a machine frame supplied RIP and RSP.
fn undo(
    info: &UnwindInfo,
    prolog_offset: Option<u64>,
    frame: u64,
    context: &mut Context,
    memory: &impl ReadMemory,
) -> Result<bool, UnwindError> {
    let mut machine_frame = false;
    for code in &info.codes {
        if prolog_offset.is_some_and(|offset| u64::from(code.offset) > offset) {
            continue;
        }
        let rsp = context.rsp();
        match code.op {
            UnwindOp::PushNonvol(register) => {
                let value = memory.read_u64(rsp)?;
                context.set_rsp(rsp.wrapping_add(8));
                context.set(register, value);
            }
            UnwindOp::AllocLarge(size) | UnwindOp::AllocSmall(size) => {
                context.set_rsp(rsp.wrapping_add(u64::from(size)))
            }
            UnwindOp::SetFpreg => context.set_rsp(frame),
            UnwindOp::SaveNonvol { register, offset } | UnwindOp::SaveNonvolFar { register, offset } => {
                context.set(register, memory.read_u64(frame.wrapping_add(u64::from(offset)))?);
            }
            UnwindOp::SaveXmm128 { register, offset } | UnwindOp::SaveXmm128Far { register, offset } => {
                context.xmm[usize::from(register & 0xf)] = memory.read_u128(frame.wrapping_add(u64::from(offset)))?;
            }
            UnwindOp::PushMachframe { error_code } => {
                let base = rsp.wrapping_add(if error_code { 8 } else { 0 });
                context.rip = memory.read_u64(base)?;
                context.set_rsp(memory.read_u64(base.wrapping_add(24))?);
                machine_frame = true;
            }
            UnwindOp::Epilog { .. } => {}
        }
    }
    Ok(machine_frame)
}
