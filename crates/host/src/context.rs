//! The processor state of x64 structured exception handling: Windows' AMD64 `CONTEXT` and
//! `EXCEPTION_RECORD`, captured from the running code ([`ntmem_capture_context`], which is
//! `RtlCaptureContext`), from a signal's `ucontext_t` ([`Context::from_ucontext`]), and
//! resumed ([`restore_context`], `RtlRestoreContext` without its special records).
//!
//! Layouts are winnt.h's (`CONTEXT` for AMD64, `XMM_SAVE_AREA32`, `EXCEPTION_RECORD`), checked
//! at compile time; research note `dma-verifier-views.md` §6.5 lists the offsets drivers and
//! language handlers read. The floating-point part is the FXSAVE image, as on Windows.

use std::ffi::c_void;

/// `CONTEXT_AMD64`: ContextFlags says the record is an x64 context.
pub const CONTEXT_AMD64: u32 = 0x0010_0000;
/// `CONTEXT_FULL | CONTEXT_SEGMENTS` (control, integer, floating point, segments): what
/// `RtlCaptureContext` and a trap fill in.
pub const CONTEXT_ALL_CAPTURED: u32 = CONTEXT_AMD64 | 0x1 | 0x2 | 0x4 | 0x8;

/// `XMM_SAVE_AREA32`: the 512-byte FXSAVE image (legacy x87 state, MXCSR, XMM0–15).
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct XmmSaveArea32 {
    pub control_word: u16,
    pub status_word: u16,
    pub tag_word: u8,
    pub reserved1: u8,
    pub error_opcode: u16,
    pub error_offset: u32,
    pub error_selector: u16,
    pub reserved2: u16,
    pub data_offset: u32,
    pub data_selector: u16,
    pub reserved3: u16,
    pub mx_csr: u32,
    pub mx_csr_mask: u32,
    pub float_registers: [u128; 8],
    pub xmm_registers: [u128; 16],
    pub reserved4: [u8; 96],
}

/// Windows' AMD64 `CONTEXT` (0x4D0 bytes, 16-aligned). The integer registers are kept as
/// one array in CONTEXT's order, which is also the unwind codes' register numbering
/// (0 RAX, 1 RCX, 2 RDX, 3 RBX, 4 RSP, 5 RBP, 6 RSI, 7 RDI, 8–15 R8–R15).
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    /// P1Home … P6Home: register parameter home addresses.
    pub home: [u64; 6],
    /// ContextFlags (`CONTEXT_AMD64 | …`).
    pub context_flags: u32,
    /// MxCsr.
    pub mx_csr: u32,
    /// SegCs, SegDs, SegEs, SegFs, SegGs, SegSs.
    pub segments: [u16; 6],
    /// EFlags.
    pub eflags: u32,
    /// Dr0, Dr1, Dr2, Dr3, Dr6, Dr7.
    pub debug_registers: [u64; 6],
    /// Rax … R15 (see the type's docs for the order).
    pub gpr: [u64; 16],
    /// Rip.
    pub rip: u64,
    /// FltSave: the FXSAVE image (XMM0–15 at 0x1A0).
    pub flt_save: XmmSaveArea32,
    /// VectorRegister\[26\].
    pub vector_register: [u128; 26],
    /// VectorControl.
    pub vector_control: u64,
    /// DebugControl, LastBranchToRip, LastBranchFromRip, LastExceptionToRip,
    /// LastExceptionFromRip.
    pub debug_control: [u64; 5],
}

/// Index of RSP in [`Context::gpr`].
pub const RSP: usize = 4;

const _: () = {
    assert!(std::mem::size_of::<XmmSaveArea32>() == 512);
    assert!(std::mem::size_of::<Context>() == 0x4D0);
    assert!(std::mem::offset_of!(Context, context_flags) == 0x30);
    assert!(std::mem::offset_of!(Context, mx_csr) == 0x34);
    assert!(std::mem::offset_of!(Context, segments) == 0x38);
    assert!(std::mem::offset_of!(Context, eflags) == 0x44);
    assert!(std::mem::offset_of!(Context, gpr) == 0x78);
    assert!(std::mem::offset_of!(Context, gpr) + 8 * RSP == 0x98);
    assert!(std::mem::offset_of!(Context, gpr) + 8 * 15 == 0xF0);
    assert!(std::mem::offset_of!(Context, rip) == 0xF8);
    assert!(std::mem::offset_of!(Context, flt_save) == 0x100);
    assert!(std::mem::offset_of!(Context, flt_save) + std::mem::offset_of!(XmmSaveArea32, xmm_registers) == 0x1A0);
    assert!(std::mem::offset_of!(Context, vector_register) == 0x300);
    assert!(std::mem::offset_of!(Context, vector_control) == 0x4A0);
};

impl Context {
    /// An all-zero context.
    pub const fn zeroed() -> Context {
        Context {
            home: [0; 6],
            context_flags: 0,
            mx_csr: 0,
            segments: [0; 6],
            eflags: 0,
            debug_registers: [0; 6],
            gpr: [0; 16],
            rip: 0,
            flt_save: XmmSaveArea32 {
                control_word: 0,
                status_word: 0,
                tag_word: 0,
                reserved1: 0,
                error_opcode: 0,
                error_offset: 0,
                error_selector: 0,
                reserved2: 0,
                data_offset: 0,
                data_selector: 0,
                reserved3: 0,
                mx_csr: 0,
                mx_csr_mask: 0,
                float_registers: [0; 8],
                xmm_registers: [0; 16],
                reserved4: [0; 96],
            },
            vector_register: [0; 26],
            vector_control: 0,
            debug_control: [0; 5],
        }
    }

    /// The interrupted state a signal handler received, as a trap frame gives it to
    /// Windows' `KiDispatchException`: every integer register, RIP, EFLAGS, the segment
    /// selectors Linux reports (CS, GS, FS) and the FXSAVE image at `uc_mcontext.fpregs`.
    ///
    /// # Safety
    /// `uc` must be the `ucontext_t` the kernel passed to an `SA_SIGINFO` handler, still live.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    pub unsafe fn from_ucontext(uc: *const c_void) -> Context {
        // SAFETY: the caller passes the handler's live ucontext_t.
        let uc = unsafe { &*uc.cast::<libc::ucontext_t>() };
        let g = &uc.uc_mcontext.gregs;
        let reg = |r: libc::c_int| g[r as usize] as u64;
        let mut c = Context::zeroed();
        c.context_flags = CONTEXT_ALL_CAPTURED;
        c.gpr = [
            reg(libc::REG_RAX),
            reg(libc::REG_RCX),
            reg(libc::REG_RDX),
            reg(libc::REG_RBX),
            reg(libc::REG_RSP),
            reg(libc::REG_RBP),
            reg(libc::REG_RSI),
            reg(libc::REG_RDI),
            reg(libc::REG_R8),
            reg(libc::REG_R9),
            reg(libc::REG_R10),
            reg(libc::REG_R11),
            reg(libc::REG_R12),
            reg(libc::REG_R13),
            reg(libc::REG_R14),
            reg(libc::REG_R15),
        ];
        c.rip = reg(libc::REG_RIP);
        c.eflags = reg(libc::REG_EFL) as u32;
        // REG_CSGSFS packs CS, GS, FS (and SS on newer kernels) as 16-bit fields.
        let csgsfs = reg(libc::REG_CSGSFS);
        c.segments[0] = csgsfs as u16;
        c.segments[4] = (csgsfs >> 16) as u16;
        c.segments[3] = (csgsfs >> 32) as u16;
        let fp = uc.uc_mcontext.fpregs;
        if !fp.is_null() {
            // SAFETY: `fpregs` points to the 512-byte FXSAVE image in the signal frame,
            // and the destination is a distinct 512-byte, plain-data field.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    fp.cast::<u8>(),
                    std::ptr::addr_of_mut!(c.flt_save).cast::<u8>(),
                    std::mem::size_of::<XmmSaveArea32>(),
                );
            }
            c.mx_csr = c.flt_save.mx_csr;
        }
        c
    }
}

/// `EXCEPTION_RECORD`, AMD64 layout (winnt.h / wdm.h): 0x98 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExceptionRecord {
    /// `ExceptionCode` (an NTSTATUS).
    pub code: i32,
    /// `ExceptionFlags` (EXCEPTION_NONCONTINUABLE 0x1, EXCEPTION_UNWINDING 0x2, …).
    pub flags: u32,
    /// `ExceptionRecord`: a chained record (null in ntmem).
    pub chained: *mut ExceptionRecord,
    /// `ExceptionAddress`: the faulting instruction or the raise's call site.
    pub address: *mut c_void,
    /// `NumberParameters`.
    pub number_parameters: u32,
    /// `ExceptionInformation`.
    pub information: [usize; 15],
}

const _: () = {
    assert!(std::mem::size_of::<ExceptionRecord>() == 0x98);
    assert!(std::mem::offset_of!(ExceptionRecord, address) == 0x10);
    assert!(std::mem::offset_of!(ExceptionRecord, number_parameters) == 0x18);
    assert!(std::mem::offset_of!(ExceptionRecord, information) == 0x20);
};

impl ExceptionRecord {
    /// A record with every field zero.
    pub const fn empty() -> ExceptionRecord {
        ExceptionRecord {
            code: 0,
            flags: 0,
            chained: std::ptr::null_mut(),
            address: std::ptr::null_mut(),
            number_parameters: 0,
            information: [0; 15],
        }
    }
}

extern "win64" {
    /// `RtlCaptureContext(ContextRecord)`: fills the 16-aligned `CONTEXT` at `context` with
    /// the state of the code that called it, as it is when the call returns (RIP = the
    /// return address, RSP = the caller's RSP after the return, every other register as at
    /// the call; ContextFlags = CONTEXT_FULL | CONTEXT_SEGMENTS). Microsoft x64 convention,
    /// so drivers can import it directly.
    pub fn ntmem_capture_context(context: *mut Context);
}

extern "C" {
    fn ntmem_restore_context_asm(context: *const Context) -> !;
}

std::arch::global_asm!(
    ".globl ntmem_capture_context",
    ".p2align 4",
    "ntmem_capture_context:",
    "pushfq",
    "mov [rcx + 0x78], rax",
    "mov [rcx + 0x80], rcx",
    "mov [rcx + 0x88], rdx",
    "mov [rcx + 0x90], rbx",
    "lea rax, [rsp + 16]",
    "mov [rcx + 0x98], rax",
    "mov [rcx + 0xA0], rbp",
    "mov [rcx + 0xA8], rsi",
    "mov [rcx + 0xB0], rdi",
    "mov [rcx + 0xB8], r8",
    "mov [rcx + 0xC0], r9",
    "mov [rcx + 0xC8], r10",
    "mov [rcx + 0xD0], r11",
    "mov [rcx + 0xD8], r12",
    "mov [rcx + 0xE0], r13",
    "mov [rcx + 0xE8], r14",
    "mov [rcx + 0xF0], r15",
    "mov rax, [rsp + 8]",
    "mov [rcx + 0xF8], rax",
    "mov eax, [rsp]",
    "mov [rcx + 0x44], eax",
    "mov word ptr [rcx + 0x38], cs",
    "mov word ptr [rcx + 0x3A], ds",
    "mov word ptr [rcx + 0x3C], es",
    "mov word ptr [rcx + 0x3E], fs",
    "mov word ptr [rcx + 0x40], gs",
    "mov word ptr [rcx + 0x42], ss",
    "fxsave [rcx + 0x100]",
    "stmxcsr [rcx + 0x34]",
    "mov dword ptr [rcx + 0x30], 0x10000F",
    "mov rax, [rcx + 0x78]",
    "popfq",
    "ret",
    "",
    ".globl ntmem_restore_context_asm",
    ".p2align 4",
    "ntmem_restore_context_asm:",
    "fxrstor [rdi + 0x100]",
    "mov rax, [rdi + 0x98]",
    "mov rcx, [rdi + 0xF8]",
    "mov [rax - 8], rcx",
    "mov ecx, [rdi + 0x44]",
    "and ecx, 0xFFFFFEFF",
    "mov [rax - 16], rcx",
    "mov rcx, [rdi + 0x78]",
    "mov [rax - 24], rcx",
    "mov rcx, [rdi + 0xB0]",
    "mov [rax - 32], rcx",
    "mov rcx, [rdi + 0x80]",
    "mov rdx, [rdi + 0x88]",
    "mov rbx, [rdi + 0x90]",
    "mov rbp, [rdi + 0xA0]",
    "mov rsi, [rdi + 0xA8]",
    "mov r8, [rdi + 0xB8]",
    "mov r9, [rdi + 0xC0]",
    "mov r10, [rdi + 0xC8]",
    "mov r11, [rdi + 0xD0]",
    "mov r12, [rdi + 0xD8]",
    "mov r13, [rdi + 0xE0]",
    "mov r14, [rdi + 0xE8]",
    "mov r15, [rdi + 0xF0]",
    "lea rsp, [rax - 32]",
    "pop rdi",
    "pop rax",
    "popfq",
    "ret",
);

/// How many bytes below the target RSP [`restore_context`] writes before switching to it.
pub const RESTORE_SCRATCH: u64 = 32;

/// Resumes execution in `context`: the FXSAVE image (x87, MXCSR, XMM0–15), every integer
/// register, RSP, EFLAGS (without the trap flag, as Windows sanitizes a context it is
/// given) and RIP.
///
/// **The rule.** The restore writes RIP, EFLAGS, RAX and RDI into the
/// [`RESTORE_SCRATCH`] bytes just below the target RSP, then switches to the target stack
/// and pops them. So `context` must not lie in `[Rsp − 32, Rsp)`, and nothing live may be
/// there (on x64 Windows code keeps nothing below RSP). Every frame of the current stack
/// below the target RSP is abandoned without running destructors: the caller must hold
/// nothing that needs dropping (the escape contract of [`crate::guard`]).
///
/// # Safety
/// `context` must be 16-aligned (FXRSTOR) and describe a state that is safe to resume:
/// a mapped stack at Rsp, code at Rip, and a valid FXSAVE image.
pub unsafe fn restore_context(context: *const Context) -> ! {
    // SAFETY: the caller's contract above.
    unsafe { ntmem_restore_context_asm(context) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_then_restore_resumes_after_the_capture() {
        use std::hint::black_box;
        use std::sync::atomic::{AtomicU32, Ordering};
        static PASSES: AtomicU32 = AtomicU32::new(0);
        let mut c = Box::new(Context::zeroed());
        // SAFETY: `c` is a 16-aligned CONTEXT.
        unsafe { ntmem_capture_context(&mut *c) };
        let pass = PASSES.fetch_add(1, Ordering::SeqCst);
        assert_eq!(c.context_flags, CONTEXT_ALL_CAPTURED);
        assert!(c.gpr[RSP] <= black_box(&c as *const _ as u64), "the caller's locals are at or above its RSP");
        if pass == 0 {
            // The captured state is the caller's at the return: resuming it lands just
            // after the capture, with every callee-saved register the caller relies on.
            // SAFETY: the context was captured in this frame, which is still live; the box
            // is on the heap, away from the scratch below the target RSP.
            unsafe { restore_context(&*c) };
        }
        assert_eq!(pass, 1);
    }
}
