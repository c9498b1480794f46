//! Epilogue detection: is the PC inside an epilogue, and what does the rest of it do?
//!
//! "x64 prolog and epilog": an epilogue is `add rsp, constant` or `lea rsp,
//! constant[FPReg]`, then zero or more 8-byte register pops, then a return or a `jmp`; no
//! other code may appear in it, so the unwinder recognises one by decoding forward from the
//! PC. The accepted instruction forms (research note §6.5, step 2):
//!
//! | form | bytes |
//! |---|---|
//! | `add rsp, imm8` / `imm32` | `48 83 C4 ib` / `48 81 C4 id` |
//! | `lea rsp, [fp + disp8/disp32]` (only with the frame register) | `48/49 8D 64/A4 (24)` or `48/49 8D 6x/Ax …` |
//! | `pop r` | `58+r`, `41 58+r` |
//! | `ret`, `rep ret`, `ret imm16` | `C3`, `F3 C3`, `C2 iw` |
//! | `jmp rel8/rel32` leaving the function (a tail call) | `EB cb`, `E9 cd` |
//! | `jmp qword ptr [...]` with ModRM mod 00, `rex.w jmp reg` | `(REX) FF /4` |

use std::ops::Range;

use super::context::{Context, Gpr};
use super::info::FrameRegister;
use super::UnwindError;
use crate::memory::ReadMemory;

/// The most pops an epilogue is decoded with: one per integer register.
const MAX_POPS: usize = 16;

/// How an epilogue's first instruction moves RSP back to the pushed registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RspAdjust {
    /// `add rsp, imm` (sign-extended).
    Add(i64),
    /// `lea rsp, [frame register + disp]`.
    Lea(Gpr, i64),
}

/// The part of an epilogue from the PC on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Epilog {
    adjust: Option<RspAdjust>,
    pops: Vec<Gpr>,
}

impl Epilog {
    /// Executes the rest of the epilogue on `context`: the adjustment, the pops and the
    /// return (a tail jump returns to the same caller a `ret` would).
    pub(super) fn apply(&self, context: &mut Context, memory: &impl ReadMemory) -> Result<(), UnwindError> {
        match self.adjust {
            Some(RspAdjust::Add(n)) => context.set_rsp(context.rsp().wrapping_add_signed(n)),
            Some(RspAdjust::Lea(base, disp)) => context.set_rsp(context.get(base).wrapping_add_signed(disp)),
            None => {}
        }
        for &register in &self.pops {
            context.set(register, memory.read_u64(context.rsp())?);
            context.set_rsp(context.rsp().wrapping_add(8));
        }
        context.rip = memory.read_u64(context.rsp())?;
        context.set_rsp(context.rsp().wrapping_add(8));
        Ok(())
    }
}

/// Reads code bytes one at a time from the PC on.
struct Code<'m, M> {
    memory: &'m M,
    at: u64,
}

impl<M: ReadMemory> Code<'_, M> {
    fn peek(&self, ahead: u64) -> Result<u8, UnwindError> {
        Ok(self.memory.read_u8(self.at.wrapping_add(ahead))?)
    }

    fn skip(&mut self, n: u64) {
        self.at = self.at.wrapping_add(n);
    }

    fn imm32(&self, ahead: u64) -> Result<i64, UnwindError> {
        Ok(i64::from(self.memory.read_u32(self.at.wrapping_add(ahead))? as i32))
    }

    fn imm8(&self, ahead: u64) -> Result<i64, UnwindError> {
        Ok(i64::from(self.peek(ahead)? as i8))
    }
}

/// Decodes forward from `pc` in the function `function` (absolute addresses); `Some` when the
/// code from `pc` is the rest of an epilogue.
pub(super) fn detect(
    memory: &impl ReadMemory,
    pc: u64,
    function: Range<u64>,
    frame: Option<FrameRegister>,
) -> Result<Option<Epilog>, UnwindError> {
    let mut code = Code { memory, at: pc };
    let adjust = match (code.peek(0)?, code.peek(1)?) {
        (0x48, 0x83) if code.peek(2)? == 0xC4 => {
            let n = code.imm8(3)?;
            code.skip(4);
            Some(RspAdjust::Add(n))
        }
        (0x48, 0x81) if code.peek(2)? == 0xC4 => {
            let n = code.imm32(3)?;
            code.skip(7);
            Some(RspAdjust::Add(n))
        }
        (rex @ (0x48 | 0x49), 0x8D) => match lea_rsp(&code, rex, frame)? {
            Some((adjust, len)) => {
                code.skip(len);
                Some(adjust)
            }
            None => return Ok(None),
        },
        _ => None,
    };
    let mut pops = Vec::new();
    while pops.len() < MAX_POPS {
        match code.peek(0)? {
            b @ 0x58..=0x5F => {
                pops.push(Gpr::from_number(b - 0x58));
                code.skip(1);
            }
            0x41 if matches!(code.peek(1)?, 0x58..=0x5F) => {
                pops.push(Gpr::from_number(code.peek(1)? - 0x58 + 8));
                code.skip(2);
            }
            _ => break,
        }
    }
    let ends = match code.peek(0)? {
        0xC3 | 0xC2 => true,
        0xF3 => code.peek(1)? == 0xC3,
        0xE9 => !function.contains(&code.at.wrapping_add(5).wrapping_add_signed(code.imm32(1)?)),
        0xEB => !function.contains(&code.at.wrapping_add(2).wrapping_add_signed(code.imm8(1)?)),
        0xFF => indirect_jmp(code.peek(1)?, false),
        rex @ 0x40..=0x4F if code.peek(1)? == 0xFF => indirect_jmp(code.peek(2)?, rex & 0x8 != 0),
        _ => false,
    };
    Ok(ends.then_some(Epilog { adjust, pops }))
}

/// `FF /4` (jmp near, indirect): memory operands with ModRM mod 00, or a register with REX.W.
fn indirect_jmp(modrm: u8, rex_w: bool) -> bool {
    let (mode, reg) = (modrm >> 6, (modrm >> 3) & 7);
    reg == 4 && (mode == 0 || (mode == 3 && rex_w))
}

/// `lea rsp, [fp + disp]` with the function's frame register as base: the adjustment and the
/// instruction's length, or `None` when it is some other `lea`.
fn lea_rsp<M: ReadMemory>(
    code: &Code<'_, M>,
    rex: u8,
    frame: Option<FrameRegister>,
) -> Result<Option<(RspAdjust, u64)>, UnwindError> {
    let Some(frame) = frame else { return Ok(None) };
    let modrm = code.peek(2)?;
    let (mode, reg, rm) = (modrm >> 6, (modrm >> 3) & 7, modrm & 7);
    let base = Gpr::from_number(rm + if rex & 1 != 0 { 8 } else { 0 });
    if reg != 4 || base != frame.register || !(mode == 1 || mode == 2) {
        return Ok(None);
    }
    // rm 100 needs a SIB byte; only "no index, base = rm" (0x24) is a plain [fp + disp].
    let sib = u64::from(rm == 4);
    if sib == 1 && code.peek(3)? != 0x24 {
        return Ok(None);
    }
    let at = 3 + sib;
    Ok(Some(if mode == 1 {
        (RspAdjust::Lea(base, code.imm8(at)?), at + 1)
    } else {
        (RspAdjust::Lea(base, code.imm32(at)?), at + 4)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MappedImage;

    const BASE: u64 = 0x1000;

    fn epilog(code: &[u8], frame: Option<FrameRegister>) -> Option<Epilog> {
        let mut bytes = code.to_vec();
        bytes.resize(64, 0xCC);
        detect(&MappedImage { base: BASE, bytes: &bytes }, BASE, BASE..BASE + 0x20, frame).unwrap()
    }

    const RBP: Option<FrameRegister> = Some(FrameRegister { register: Gpr::Rbp, offset: 0 });
    const R12: Option<FrameRegister> = Some(FrameRegister { register: Gpr::R12, offset: 0 });

    #[test]
    fn documented_epilogues_are_recognised() {
        let add_pops_ret = epilog(&[0x48, 0x83, 0xC4, 0x28, 0x5E, 0x41, 0x5F, 0xC3], None).unwrap();
        assert_eq!(add_pops_ret.adjust, Some(RspAdjust::Add(0x28)));
        assert_eq!(add_pops_ret.pops, [Gpr::Rsi, Gpr::R15]);
        let add32 = epilog(&[0x48, 0x81, 0xC4, 0x00, 0x10, 0, 0, 0xC3], None).unwrap();
        assert_eq!(add32.adjust, Some(RspAdjust::Add(0x1000)));
        let lea8 = epilog(&[0x48, 0x8D, 0x65, 0x10, 0x5D, 0xC3], RBP).unwrap();
        assert_eq!(lea8.adjust, Some(RspAdjust::Lea(Gpr::Rbp, 0x10)));
        let lea32_r12 = epilog(&[0x49, 0x8D, 0xA4, 0x24, 0x80, 0, 0, 0, 0xC3], R12).unwrap();
        assert_eq!(lea32_r12.adjust, Some(RspAdjust::Lea(Gpr::R12, 0x80)));
        assert!(epilog(&[0xC3], None).is_some());
        assert!(epilog(&[0xF3, 0xC3], None).is_some());
        assert!(epilog(&[0x5B, 0xC2, 0x08, 0x00], None).is_some());
        assert!(epilog(&[0x48, 0xFF, 0x25, 0, 0, 0, 0], None).is_some(), "rex64 jmp [rip+x] (a tail call via the IAT)");
        assert!(epilog(&[0x48, 0xFF, 0xE0], None).is_some(), "rex.w jmp rax");
        assert!(epilog(&[0xE9, 0x00, 0x01, 0, 0], None).is_some(), "jmp out of the function");
    }

    #[test]
    fn body_code_is_not_an_epilogue() {
        assert!(epilog(&[0xE9, 0x04, 0, 0, 0], None).is_none(), "jmp inside the function");
        assert!(epilog(&[0xEB, 0x02], None).is_none());
        assert!(epilog(&[0xFF, 0x65, 0x08], None).is_none(), "jmp [rbp+8]: ModRM mod 01 is not allowed");
        assert!(epilog(&[0xFF, 0xE0], None).is_none(), "jmp rax without REX.W");
        assert!(epilog(&[0x48, 0x8D, 0x65, 0x10, 0xC3], None).is_none(), "lea rsp without a frame register");
        assert!(
            epilog(&[0x48, 0x8D, 0x65, 0x10, 0xC3], R12).is_none(),
            "lea rsp from a register that is not the frame"
        );
        assert!(epilog(&[0x48, 0x83, 0xC4, 0x28, 0x48, 0x89, 0xC8, 0xC3], None).is_none(), "mov inside");
        assert!(epilog(&[0x48, 0x83, 0xC4, 0x28, 0xE8, 0, 0, 0, 0], None).is_none(), "call");
    }

    #[test]
    fn the_rest_of_an_epilogue_is_executed() {
        // Stack: [rsp+0x28] = saved rsi, [rsp+0x30] = return address.
        let mut stack = vec![0u8; 0x40];
        stack[0x28..0x30].copy_from_slice(&0x5151u64.to_le_bytes());
        stack[0x30..0x38].copy_from_slice(&0xCA11u64.to_le_bytes());
        let memory = MappedImage { base: 0x8000, bytes: &stack };
        let mut context = Context::default();
        context.set_rsp(0x8000);
        Epilog { adjust: Some(RspAdjust::Add(0x28)), pops: vec![Gpr::Rsi] }.apply(&mut context, &memory).unwrap();
        assert_eq!((context.rip, context.rsp(), context.get(Gpr::Rsi)), (0xCA11, 0x8038, 0x5151));
    }
}
