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

/// A leaf function (no RUNTIME_FUNCTION) has not moved RSP: its return address is at `[RSP]`.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MappedImage, ReadError};
    use crate::unwind::Gpr;

    const BASE: u64 = 0x1_0000;
    const STACK: u64 = 0x7_0000;

    /// An image of 0x1000 bytes at BASE and a stack of 0x400 bytes at STACK.
    struct Memory {
        image: Vec<u8>,
        stack: Vec<u8>,
    }

    impl ReadMemory for Memory {
        fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), ReadError> {
            MappedImage { base: BASE, bytes: &self.image }
                .read(address, buf)
                .or_else(|_| MappedImage { base: STACK, bytes: &self.stack }.read(address, buf))
        }
    }

    impl Memory {
        fn new() -> Self {
            Memory { image: vec![0xCC; 0x1000], stack: vec![0; 0x400] }
        }

        fn put(&mut self, rva: usize, bytes: &[u8]) {
            self.image[rva..rva + bytes.len()].copy_from_slice(bytes);
        }

        fn push_word(&mut self, address: u64, value: u64) {
            let at = (address - STACK) as usize;
            self.stack[at..at + 8].copy_from_slice(&value.to_le_bytes());
        }
    }

    /// UNWIND_INFO bytes: header, codes (slots), padding, then `tail`.
    fn info(flags: u8, prolog: u8, frame: u8, slots: &[[u8; 2]], tail: &[u8]) -> Vec<u8> {
        let mut b = vec![1 | flags << 3, prolog, slots.len() as u8, frame];
        b.extend(slots.iter().flatten());
        if slots.len() % 2 == 1 {
            b.extend([0, 0]);
        }
        b.extend_from_slice(tail);
        b
    }

    fn code(offset: u8, op: u8, op_info: u8) -> [u8; 2] {
        [offset, op | op_info << 4]
    }

    fn function(begin: u32, end: u32, unwind_info: u32) -> RuntimeFunction {
        RuntimeFunction { begin, end, unwind_info }
    }

    fn rf_bytes(f: RuntimeFunction) -> Vec<u8> {
        [f.begin, f.end, f.unwind_info].iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    fn context(rip: u64, rsp: u64) -> Context {
        let mut c = Context { rip, ..Context::default() };
        c.set_rsp(rsp);
        c
    }

    /// A primary function (push rbx; sub rsp, 0x20; EHANDLER at 0x300) and a chained fragment
    /// that saves RSI into the home area with UWOP_SAVE_NONVOL (MSVC's shrink-wrapping).
    fn chained() -> (Memory, RuntimeFunction, RuntimeFunction) {
        let mut m = Memory::new();
        let primary = function(0x100, 0x200, 0x800);
        let fragment = function(0x400, 0x480, 0x840);
        m.put(0x800, &info(0x1, 6, 0, &[code(6, 2, 3), code(1, 0, 3)], &0x300u32.to_le_bytes()));
        m.put(0x840, &info(0x4, 5, 0, &[code(5, 4, 6), [6, 0]], &rf_bytes(primary)));
        let s = STACK + 0x100;
        m.push_word(s + 0x20, 0xB0B0); // pushed rbx
        m.push_word(s + 0x28, 0xCA11); // return address
        m.push_word(s + 0x30, 0x5151); // rsi in the home area
        (m, primary, fragment)
    }

    #[test]
    fn chained_info_undoes_the_fragment_then_the_primary_and_takes_its_handler() {
        let (m, _, fragment) = chained();
        let mut c = context(BASE + 0x410, STACK + 0x100);
        let outcome = virtual_unwind(UnwindFlags::EHANDLER, BASE, &fragment, &mut c, &m).unwrap();
        assert_eq!((c.rip, c.rsp(), c.get(Gpr::Rbx), c.get(Gpr::Rsi)), (0xCA11, STACK + 0x130, 0xB0B0, 0x5151));
        assert_eq!(outcome.location, PcLocation::Body);
        assert_eq!(outcome.establisher_frame, STACK + 0x100);
        assert_eq!(outcome.handler, Some(LanguageHandler { routine: BASE + 0x300, data: BASE + 0x800 + 12 }));

        // The same frame asked for a termination handler: the primary has none.
        let mut c = context(BASE + 0x410, STACK + 0x100);
        assert_eq!(virtual_unwind(UnwindFlags::UHANDLER, BASE, &fragment, &mut c, &m).unwrap().handler, None);
    }

    #[test]
    fn in_a_prolog_only_the_executed_codes_are_undone_and_no_handler_is_given() {
        let (m, _, fragment) = chained();
        // Offset 2 in the fragment: the save (CodeOffset 5) has not executed; RSI keeps its value.
        let mut c = context(BASE + 0x402, STACK + 0x100);
        c.set(Gpr::Rsi, 0x1234);
        let outcome = virtual_unwind(UnwindFlags::EHANDLER, BASE, &fragment, &mut c, &m).unwrap();
        assert_eq!((c.rip, c.get(Gpr::Rsi), c.get(Gpr::Rbx)), (0xCA11, 0x1234, 0xB0B0));
        assert_eq!((outcome.location, outcome.handler), (PcLocation::Prolog, None));
    }

    #[test]
    fn a_frame_register_locates_the_frame_once_set_and_xmm_saves_are_restored() {
        let mut m = Memory::new();
        // push rbp (1); sub rsp, 0x40 (5); lea rbp, [rsp+0x20] (10); movaps [rsp+0x10], xmm6 (15)
        let f = function(0x600, 0x700, 0x8c0);
        m.put(0x8c0, &info(0, 15, 0x25, &[code(15, 8, 6), [1, 0], code(10, 3, 0), code(5, 2, 7), code(1, 0, 5)], &[]));
        m.put(0x650, &[0x90]); // a body instruction that is not an epilogue
        let frame = STACK + 0x100;
        m.push_word(frame + 0x10, 0x6666);
        m.push_word(frame + 0x18, 0x7777);
        m.push_word(frame + 0x40, 0xB9B9); // pushed rbp
        m.push_word(frame + 0x48, 0xCA11);

        // Body, after an alloca moved RSP: the frame register gives the frame.
        let mut c = context(BASE + 0x650, frame - 0x80);
        c.set(Gpr::Rbp, frame + 0x20);
        let outcome = virtual_unwind(UnwindFlags::EHANDLER, BASE, &f, &mut c, &m).unwrap();
        assert_eq!(outcome.establisher_frame, frame);
        assert_eq!((c.rip, c.rsp(), c.get(Gpr::Rbp)), (0xCA11, frame + 0x50, 0xB9B9));
        assert_eq!(c.xmm[6], 0x7777_u128 << 64 | 0x6666);

        // Prolog offset 7: allocated, SET_FPREG not yet executed: RSP is the frame, RBP is the
        // caller's and XMM6 was not saved yet.
        let mut c = context(BASE + 0x607, frame);
        c.set(Gpr::Rbp, 0xAAAA);
        c.xmm[6] = 9;
        let outcome = virtual_unwind(UnwindFlags::EHANDLER, BASE, &f, &mut c, &m).unwrap();
        assert_eq!((outcome.location, outcome.establisher_frame), (PcLocation::Prolog, frame));
        assert_eq!((c.rip, c.rsp(), c.get(Gpr::Rbp), c.xmm[6]), (0xCA11, frame + 0x50, 0xB9B9, 9));
    }

    #[test]
    fn a_machine_frame_supplies_rip_and_rsp() {
        let mut m = Memory::new();
        let f = function(0x500, 0x540, 0x880);
        m.put(0x880, &info(0, 0, 0, &[code(0, 10, 1)], &[]));
        m.put(0x510, &[0x90]);
        let s = STACK + 0x100;
        m.push_word(s, 0xE); // error code
        m.push_word(s + 8, 0x7777_0000); // RIP
        m.push_word(s + 32, STACK + 0x300); // RSP
        let mut c = context(BASE + 0x510, s);
        virtual_unwind(UnwindFlags::empty(), BASE, &f, &mut c, &m).unwrap();
        assert_eq!((c.rip, c.rsp()), (0x7777_0000, STACK + 0x300));
    }

    #[test]
    fn bad_entries_fail_and_leave_the_context_alone() {
        let (mut m, primary, _) = chained();
        let mut c = context(BASE + 0x250, STACK + 0x100);
        let before = c;
        assert!(matches!(
            virtual_unwind(UnwindFlags::EHANDLER, BASE, &primary, &mut c, &m),
            Err(UnwindError::PcOutsideFunction { .. })
        ));
        assert_eq!(c, before);
        // A chain that points back at itself.
        let looped = function(0x900, 0x980, 0x8c0);
        m.put(0x8c0, &info(0x4, 0, 0, &[], &rf_bytes(looped)));
        let mut c = context(BASE + 0x910, STACK + 0x100);
        assert_eq!(virtual_unwind(UnwindFlags::EHANDLER, BASE, &looped, &mut c, &m), Err(UnwindError::ChainTooDeep));
        assert_eq!(c, context(BASE + 0x910, STACK + 0x100));
        // A return address beyond the readable stack.
        let mut c = context(BASE + 0x150, STACK + 0x3f8 - 0x20);
        let start = c;
        assert!(matches!(virtual_unwind(UnwindFlags::EHANDLER, BASE, &primary, &mut c, &m), Err(UnwindError::Read(_))));
        assert_eq!(c, start);
    }

    #[test]
    fn a_leaf_returns_through_its_stack_pointer() {
        let mut m = Memory::new();
        m.push_word(STACK + 0x10, 0xCA11);
        let mut c = context(BASE + 0x123, STACK + 0x10);
        unwind_leaf(&mut c, &m).unwrap();
        assert_eq!((c.rip, c.rsp()), (0xCA11, STACK + 0x18));
    }
}
