//! `__C_specific_handler`: the language handler of C `__try` (research note §6.5, from
//! Wine's `dlls/ntdll/signal_x86_64.c` facts and Microsoft's "Timing of exception
//! handling").
//!
//! Its HandlerData is the function's SCOPE_TABLE (`ntmem_pe::scope`), innermost `__try`
//! first; records are read one at a time from `DispatcherContext.ScopeIndex` on.
//! - **Search pass** (no unwind flag): for each `__except` record whose range holds
//!   ControlPc, the filter decides — HandlerAddress 1 means EXCEPTION_EXECUTE_HANDLER with
//!   no filter to call; otherwise `LONG filter(EXCEPTION_POINTERS*, EstablisherFrame)`.
//!   Negative (EXCEPTION_CONTINUE_EXECUTION) → ExceptionContinueExecution; positive
//!   (EXCEPTION_EXECUTE_HANDLER) → `RtlUnwindEx(EstablisherFrame, ImageBase + JumpTarget,
//!   record, ExceptionCode)`, which resumes at the `__except` block with the exception code
//!   in RAX; 0 → next record. `__finally` records are skipped.
//! - **Unwind pass** (EXCEPTION_UNWIND flags): for each record whose range holds ControlPc —
//!   stopping at one that also holds TargetIp when this is the target frame
//!   (EXCEPTION_TARGET_UNWIND) — a `__finally` record's handler is called as
//!   `void fin(BOOLEAN AbnormalTermination = TRUE, EstablisherFrame)`, after ScopeIndex is
//!   set past it.
//!
//! Then ExceptionContinueSearch. Unreadable scope tables answer ExceptionContinueSearch for
//! the records that could not be read.

use ntmem_host::context::{Context, ExceptionRecord};
use ntmem_pe::scope::{ExceptFilter, ScopeHandler, ScopeTable};

use super::images::Memory;
use super::unwind::unwind;
use super::{disposition, DispatcherContext, ExceptionPointers, EXCEPTION_TARGET_UNWIND, EXCEPTION_UNWIND};

/// A filter funclet: `LONG filter(EXCEPTION_POINTERS*, EstablisherFrame)`.
type Filter = unsafe extern "win64" fn(*mut ExceptionPointers, u64) -> i32;
/// A termination handler: `void fin(BOOLEAN AbnormalTermination, EstablisherFrame)`.
type Termination = unsafe extern "win64" fn(u8, u64);

/// `__C_specific_handler(ExceptionRecord, EstablisherFrame, ContextRecord,
/// DispatcherContext)` (see the module docs).
///
/// # Safety
/// Called by the dispatcher (or driver code) with Windows' arguments, the
/// DISPATCHER_CONTEXT's HandlerData being a SCOPE_TABLE of the image at ImageBase.
pub unsafe extern "win64" fn __C_specific_handler(
    record: *mut ExceptionRecord,
    establisher_frame: u64,
    context: *mut Context,
    dc: *mut DispatcherContext,
) -> i32 {
    let memory = Memory;
    // SAFETY: the caller's arguments.
    let (base, control_pc, data, target_ip, flags) = unsafe {
        let dc = &*dc;
        (dc.image_base, dc.control_pc, dc.handler_data, dc.target_ip, (*record).flags)
    };
    let rva = |address: u64| u32::try_from(address.wrapping_sub(base)).unwrap_or(u32::MAX);
    let (pc, target) = (rva(control_pc), rva(target_ip));
    let Ok(count) = ScopeTable::count(&memory, data) else { return disposition::CONTINUE_SEARCH };
    // SAFETY: as above.
    let mut index = unsafe { (*dc).scope_index };
    while index < count {
        let Ok(scope) = ScopeTable::record(&memory, data, index) else { break };
        index += 1;
        if !scope.contains(pc) {
            continue;
        }
        if flags & EXCEPTION_UNWIND == 0 {
            let ScopeHandler::Except { filter, target } = scope.handler else { continue };
            let verdict = match filter {
                ExceptFilter::ExecuteHandler => 1,
                ExceptFilter::Function(filter) => {
                    let mut pointers = ExceptionPointers { record, context };
                    // SAFETY: the filter funclet the image's scope table names.
                    unsafe {
                        let filter: Filter = std::mem::transmute((base + u64::from(filter)) as usize);
                        filter(&mut pointers, establisher_frame)
                    }
                }
            };
            if verdict < 0 {
                return disposition::CONTINUE_EXECUTION;
            }
            if verdict > 0 {
                // SAFETY: unwinding to the `__except` block of this frame; we hold nothing.
                unsafe {
                    let code = (*record).code as u32;
                    unwind(establisher_frame, base + u64::from(target), record, u64::from(code), None)
                }
            }
        } else {
            if flags & EXCEPTION_TARGET_UNWIND != 0 && scope.contains(target) {
                break;
            }
            let ScopeHandler::Finally { handler } = scope.handler else { continue };
            // SAFETY: the caller's DISPATCHER_CONTEXT; then the termination handler the
            // image's scope table names.
            unsafe {
                (*dc).scope_index = index;
                let handler: Termination = std::mem::transmute((base + u64::from(handler)) as usize);
                handler(1, establisher_frame);
            }
        }
    }
    disposition::CONTINUE_SEARCH
}
