//! UNWIND_INFO and its unwind codes, decoded.
//!
//! Layout ("x64 exception handling", Struct UNWIND_INFO and Struct UNWIND_CODE): byte 0 is
//! Version (3 bits) | Flags (5 bits); byte 1 SizeOfProlog; byte 2 CountOfCodes (slots);
//! byte 3 FrameRegister (4 bits) | FrameOffset (4 bits, ×16); then CountOfCodes 16-bit
//! slots, padded to an even count; then the language handler's RVA and its data
//! (EHANDLER/UHANDLER) or a chained RUNTIME_FUNCTION (CHAININFO). Each code is
//! {CodeOffset: u8, UnwindOp: 4 bits, OpInfo: 4 bits}, some followed by 1 or 2 operand slots.

use bitflags::bitflags;

use super::context::Gpr;
use super::UnwindError;
use crate::memory::ReadMemory;
use crate::pdata::RuntimeFunction;

bitflags! {
    /// UNWIND_INFO.Flags (UNW_FLAG_*); also `RtlVirtualUnwind`'s HandlerType argument, where
    /// empty is UNW_FLAG_NHANDLER.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct UnwindFlags: u8 {
        /// UNW_FLAG_EHANDLER: the function has an exception handler for the search pass.
        const EHANDLER = 0x1;
        /// UNW_FLAG_UHANDLER: the function has a termination handler for the unwind pass.
        const UHANDLER = 0x2;
        /// UNW_FLAG_CHAININFO: the info ends with the RUNTIME_FUNCTION of the primary code.
        const CHAININFO = 0x4;
    }
}

/// The frame pointer a function establishes with UWOP_SET_FPREG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRegister {
    /// The register (FrameRegister, never 0 = RAX, which means "none").
    pub register: Gpr,
    /// FrameOffset × 16: bytes between the fixed allocation's base and the frame pointer.
    pub offset: u32,
}

/// One unwind operation with its operands, as the prolog performed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnwindOp {
    /// UWOP_PUSH_NONVOL (0): `push reg`.
    PushNonvol(Gpr),
    /// UWOP_ALLOC_LARGE (1): `sub rsp, size`; OpInfo 0 stores size/8 in one slot (up to
    /// 512 KB − 8), OpInfo 1 the unscaled size in two (up to 4 GB − 8).
    AllocLarge(u32),
    /// UWOP_ALLOC_SMALL (2): `sub rsp, OpInfo × 8 + 8` (8 to 128 bytes).
    AllocSmall(u32),
    /// UWOP_SET_FPREG (3): the frame register := RSP + FrameOffset × 16.
    SetFpreg,
    /// UWOP_SAVE_NONVOL (4): `mov [base + offset], reg`, offset = slot × 8.
    SaveNonvol {
        /// The saved register.
        register: Gpr,
        /// Bytes from the fixed allocation's base.
        offset: u32,
    },
    /// UWOP_SAVE_NONVOL_FAR (5): as SAVE_NONVOL with an unscaled 32-bit offset.
    SaveNonvolFar {
        /// The saved register.
        register: Gpr,
        /// Bytes from the fixed allocation's base.
        offset: u32,
    },
    /// UWOP_EPILOG (6, version 2 only): an epilogue descriptor; not an action of the prolog.
    /// Its meaning is undocumented by Microsoft (research note U-13); it is kept raw and the
    /// unwinder finds epilogues by reading the code, which version 2 images still allow.
    Epilog {
        /// The OpInfo nibble.
        info: u8,
    },
    /// UWOP_SAVE_XMM128 (8): `movdqa [base + offset], xmmN`, offset = slot × 16.
    SaveXmm128 {
        /// XMM register number.
        register: u8,
        /// Bytes from the fixed allocation's base.
        offset: u32,
    },
    /// UWOP_SAVE_XMM128_FAR (9): as SAVE_XMM128 with an unscaled 32-bit offset.
    SaveXmm128Far {
        /// XMM register number.
        register: u8,
        /// Bytes from the fixed allocation's base.
        offset: u32,
    },
    /// UWOP_PUSH_MACHFRAME (10): the processor pushed a machine frame (RIP, CS, EFLAGS, old
    /// RSP, SS), preceded by an error code when `error_code`.
    PushMachframe {
        /// OpInfo 1: an error code sits below the frame.
        error_code: bool,
    },
}

/// An unwind operation and the prolog offset just past the instruction it describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnwindCode {
    /// CodeOffset: offset from the function start of the end of the prolog instruction.
    pub offset: u8,
    /// The operation.
    pub op: UnwindOp,
}

/// What follows the unwind codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnwindTail {
    /// Neither a handler nor a chain.
    None,
    /// EHANDLER and/or UHANDLER: the language-specific handler and its data.
    Handler {
        /// RVA of the handler (e.g. `__C_specific_handler`'s IAT thunk or the routine).
        handler_rva: u32,
        /// Virtual address of the handler's data (for `__C_specific_handler`, the
        /// SCOPE_TABLE), just after the handler's RVA.
        data: u64,
    },
    /// CHAININFO: the primary function whose unwind info continues this one.
    Chained(RuntimeFunction),
}

/// A decoded UNWIND_INFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnwindInfo {
    /// Version: 1, or 2 (with UWOP_EPILOG descriptors).
    pub version: u8,
    /// The UNW_FLAG_* flags.
    pub flags: UnwindFlags,
    /// SizeOfProlog: bytes of prolog from the function start.
    pub size_of_prolog: u8,
    /// The frame register, if the function establishes one.
    pub frame: Option<FrameRegister>,
    /// The unwind codes in array order (descending CodeOffset: last prolog action first).
    pub codes: Vec<UnwindCode>,
    /// Handler, chain, or nothing.
    pub tail: UnwindTail,
}

impl UnwindInfo {
    /// Decodes the UNWIND_INFO at `image_base + rva`.
    pub fn read(memory: &impl ReadMemory, image_base: u64, rva: u32) -> Result<Self, UnwindError> {
        let at = image_base.wrapping_add(u64::from(rva));
        let mut header = [0u8; 4];
        memory.read(at, &mut header)?;
        let [version_flags, size_of_prolog, count, frame_byte] = header;
        let version = version_flags & 0x7;
        if version != 1 && version != 2 {
            return Err(UnwindError::Version(version));
        }
        let raw_flags = version_flags >> 3;
        let flags = UnwindFlags::from_bits(raw_flags).ok_or(UnwindError::Flags(raw_flags))?;
        if flags.contains(UnwindFlags::CHAININFO) && flags.intersects(UnwindFlags::EHANDLER | UnwindFlags::UHANDLER) {
            return Err(UnwindError::Flags(raw_flags));
        }
        let frame = match frame_byte & 0xf {
            0 => None,
            register => {
                Some(FrameRegister { register: Gpr::from_number(register), offset: u32::from(frame_byte >> 4) * 16 })
            }
        };
        let mut slots = vec![0u8; usize::from(count) * 2];
        memory.read(at.wrapping_add(4), &mut slots)?;
        let slots: Vec<u16> = slots.chunks_exact(2).map(|s| u16::from_le_bytes([s[0], s[1]])).collect();
        let codes = decode_codes(&slots, version)?;
        if codes.iter().any(|c| c.op == UnwindOp::SetFpreg) && frame.is_none() {
            return Err(UnwindError::NoFrameRegister);
        }
        let tail_at = at.wrapping_add(4 + 2 * ((u64::from(count) + 1) & !1));
        let tail = if flags.contains(UnwindFlags::CHAININFO) {
            let mut raw = [0u8; RuntimeFunction::SIZE];
            memory.read(tail_at, &mut raw)?;
            UnwindTail::Chained(RuntimeFunction::from_bytes(raw))
        } else if flags.intersects(UnwindFlags::EHANDLER | UnwindFlags::UHANDLER) {
            UnwindTail::Handler { handler_rva: memory.read_u32(tail_at)?, data: tail_at.wrapping_add(4) }
        } else {
            UnwindTail::None
        };
        Ok(UnwindInfo { version, flags, size_of_prolog, frame, codes, tail })
    }
}

/// Decodes the slots into operations; each operation's operand slots follow it.
fn decode_codes(slots: &[u16], version: u8) -> Result<Vec<UnwindCode>, UnwindError> {
    let mut codes = Vec::new();
    let mut slot = 0;
    while let Some(&first) = slots.get(slot) {
        let [offset, op_byte] = first.to_le_bytes();
        let (op, info) = (op_byte & 0xf, op_byte >> 4);
        let operand = |n: usize| slots.get(slot + n).copied().map(u32::from).ok_or(UnwindError::Truncated { slot });
        let far = || Ok::<u32, UnwindError>(operand(1)? | operand(2)? << 16);
        let register = Gpr::from_number(info);
        let (decoded, used) = match op {
            0 => (UnwindOp::PushNonvol(register), 1),
            1 if info == 0 => (UnwindOp::AllocLarge(operand(1)? * 8), 2),
            1 if info == 1 => (UnwindOp::AllocLarge(far()?), 3),
            2 => (UnwindOp::AllocSmall(u32::from(info) * 8 + 8), 1),
            3 => (UnwindOp::SetFpreg, 1),
            4 => (UnwindOp::SaveNonvol { register, offset: operand(1)? * 8 }, 2),
            5 => (UnwindOp::SaveNonvolFar { register, offset: far()? }, 3),
            6 if version == 2 => (UnwindOp::Epilog { info }, 1),
            8 => (UnwindOp::SaveXmm128 { register: info, offset: operand(1)? * 16 }, 2),
            9 => (UnwindOp::SaveXmm128Far { register: info, offset: far()? }, 3),
            10 if info <= 1 => (UnwindOp::PushMachframe { error_code: info == 1 }, 1),
            _ => return Err(UnwindError::UnknownOp { op, info, version }),
        };
        codes.push(UnwindCode { offset, op: decoded });
        slot += used;
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MappedImage;

    fn read(bytes: &[u8]) -> Result<UnwindInfo, UnwindError> {
        UnwindInfo::read(&MappedImage { base: 0x10000, bytes }, 0x10000, 0)
    }

    fn slot(offset: u8, op: u8, info: u8) -> [u8; 2] {
        [offset, op | info << 4]
    }

    #[test]
    fn every_documented_operation_decodes_with_its_operands() {
        let mut b = vec![0x01 | (0x3 << 3), 0x40, 0, 0x35]; // v1, EHANDLER|UHANDLER, rbp + 0x30
        let codes: Vec<u8> = [
            slot(0x40, 3, 0),
            slot(0x3c, 8, 6),
            [2, 0],
            slot(0x38, 9, 15),
            [0x10, 0],
            [1, 0],
            slot(0x30, 5, 3),
            [0x08, 0],
            [2, 0],
            slot(0x28, 4, 7),
            [3, 0],
            slot(0x20, 1, 1),
            [0, 0],
            [1, 0],
            slot(0x18, 1, 0),
            [0x20, 0],
            slot(0x10, 2, 15),
            slot(0x08, 0, 12),
            slot(0x02, 10, 1),
        ]
        .concat();
        b[2] = (codes.len() / 2) as u8;
        b.extend_from_slice(&codes);
        b.extend_from_slice(&[0, 0]); // pad to an even count
        b.extend_from_slice(&0x1234u32.to_le_bytes());
        let info = read(&b).unwrap();
        assert_eq!(info.version, 1);
        assert_eq!(info.flags, UnwindFlags::EHANDLER | UnwindFlags::UHANDLER);
        assert_eq!(info.frame, Some(FrameRegister { register: Gpr::Rbp, offset: 0x30 }));
        let ops: Vec<UnwindOp> = info.codes.iter().map(|c| c.op).collect();
        assert_eq!(
            ops,
            [
                UnwindOp::SetFpreg,
                UnwindOp::SaveXmm128 { register: 6, offset: 0x20 },
                UnwindOp::SaveXmm128Far { register: 15, offset: 0x10010 },
                UnwindOp::SaveNonvolFar { register: Gpr::Rbx, offset: 0x20008 },
                UnwindOp::SaveNonvol { register: Gpr::Rdi, offset: 0x18 },
                UnwindOp::AllocLarge(0x10000),
                UnwindOp::AllocLarge(0x100),
                UnwindOp::AllocSmall(128),
                UnwindOp::PushNonvol(Gpr::R12),
                UnwindOp::PushMachframe { error_code: true },
            ]
        );
        assert_eq!(info.tail, UnwindTail::Handler { handler_rva: 0x1234, data: 0x10000 + b.len() as u64 });
    }

    #[test]
    fn chained_info_ends_with_the_primary_function() {
        let mut b = vec![0x01 | (0x4 << 3), 5, 1, 0];
        b.extend_from_slice(&slot(5, 4, 3));
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&[0x00, 0x10, 0, 0, 0x80, 0x10, 0, 0, 0x00, 0x20, 0, 0]);
        // One slot only: SAVE_NONVOL's operand is missing.
        assert_eq!(read(&b), Err(UnwindError::Truncated { slot: 0 }));
        b[2] = 2; // the padding slot becomes the operand
        let info = read(&b).unwrap();
        assert_eq!(info.tail, UnwindTail::Chained(RuntimeFunction { begin: 0x1000, end: 0x1080, unwind_info: 0x2000 }));
    }

    #[test]
    fn undefined_versions_flags_and_operations_are_refused() {
        assert_eq!(read(&[0x03, 0, 0, 0]), Err(UnwindError::Version(3)));
        assert_eq!(read(&[0x01 | (0x8 << 3), 0, 0, 0]), Err(UnwindError::Flags(0x8)));
        assert_eq!(read(&[0x01 | (0x5 << 3), 0, 0, 0]), Err(UnwindError::Flags(0x5)));
        for op in [6u8, 7, 11, 15] {
            let b = [0x01, 0, 2, 0, 1, op, 0, 0];
            assert_eq!(read(&b), Err(UnwindError::UnknownOp { op, info: 0, version: 1 }));
        }
        assert_eq!(read(&[0x02, 0, 2, 0, 4, 0x16, 0, 0]).unwrap().codes[0].op, UnwindOp::Epilog { info: 1 });
        assert_eq!(read(&[0x01, 0, 2, 0, 4, 0x21, 0, 0]), Err(UnwindError::UnknownOp { op: 1, info: 2, version: 1 }));
        assert_eq!(read(&[0x01, 0, 2, 0, 4, 0x03, 0, 0]), Err(UnwindError::NoFrameRegister));
        assert!(matches!(read(&[0x01, 0, 4, 0]), Err(UnwindError::Read(_))));
    }
}
