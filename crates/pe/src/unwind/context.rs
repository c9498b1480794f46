//! The registers a virtual unwind reads and restores: the CONTEXT fields x64 unwinding
//! touches (RIP, the 16 integer registers, XMM0–15).

/// An x64 integer register, numbered as unwind codes number them ("x64 exception handling",
/// Operation info: 0 RAX, 1 RCX, 2 RDX, 3 RBX, 4 RSP, 5 RBP, 6 RSI, 7 RDI, 8–15 R8–R15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Gpr {
    Rax,
    Rcx,
    Rdx,
    Rbx,
    Rsp,
    Rbp,
    Rsi,
    Rdi,
    R8,
    R9,
    R10,
    R11,
    R12,
    R13,
    R14,
    R15,
}

impl Gpr {
    const ALL: [Gpr; 16] = [
        Gpr::Rax,
        Gpr::Rcx,
        Gpr::Rdx,
        Gpr::Rbx,
        Gpr::Rsp,
        Gpr::Rbp,
        Gpr::Rsi,
        Gpr::Rdi,
        Gpr::R8,
        Gpr::R9,
        Gpr::R10,
        Gpr::R11,
        Gpr::R12,
        Gpr::R13,
        Gpr::R14,
        Gpr::R15,
    ];

    /// The register with this 4-bit number (only the low 4 bits are used).
    pub fn from_number(number: u8) -> Gpr {
        Gpr::ALL[usize::from(number & 0xf)]
    }

    /// The register's 4-bit number.
    pub fn number(self) -> u8 {
        self as u8
    }
}

/// The part of an x64 CONTEXT that unwinding reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Context {
    /// The instruction pointer.
    pub rip: u64,
    /// RAX…R15, indexed by [`Gpr::number`].
    pub gpr: [u64; 16],
    /// XMM0…XMM15 (only XMM6–15 are non-volatile).
    pub xmm: [u128; 16],
}

impl Context {
    /// The value of an integer register.
    pub fn get(&self, register: Gpr) -> u64 {
        self.gpr[usize::from(register.number())]
    }

    /// Sets an integer register.
    pub fn set(&mut self, register: Gpr, value: u64) {
        self.gpr[usize::from(register.number())] = value;
    }

    /// RSP.
    pub fn rsp(&self) -> u64 {
        self.get(Gpr::Rsp)
    }

    /// Sets RSP.
    pub fn set_rsp(&mut self, value: u64) {
        self.set(Gpr::Rsp, value);
    }
}
