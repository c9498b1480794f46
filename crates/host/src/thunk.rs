//! Import thunks: what a driver image's import slots point at.
//!
//! A driver calls a kernel routine through its IAT. ntmem puts there, for each
//! exported routine, a small thunk of machine code that records the caller's
//! context — its stack pointer at the call (which points at the return address)
//! and its nonvolatile registers (rbx, rbp, rsi, rdi, r12–r15, xmm6–xmm15 in the
//! Microsoft x64 convention) — in the calling thread's [`ImportCapture`], then
//! jumps to the routine. The routine returns straight to the driver. With the
//! capture, an exception the routine raises (ExRaiseStatus, ProbeForRead) can
//! be dispatched from the driver's own frame, and a bugcheck inside a routine can
//! show the driver's stack (issue 10, "How": capturing the driver's context at
//! each import call).
//!
//! The capture lives at [`CAPTURE_OFFSET`] from the thread's GS base, which
//! [`GsBlock::enter`] points at a block of the thread's own (`arch_prctl
//! (ARCH_SET_GS)`; Linux x86-64 user code does not use GS). The offset leaves
//! the block's first 64 KB for the processor control region drivers built by the
//! WDK read through `gs:` (`KeGetCurrentThread` reads `gs:[0x188]`).
//!
//! The thunk touches only r11 (volatile, never an argument register) and the
//! capture: arguments in rcx, rdx, r8, r9 and on the stack, and rax, pass through
//! untouched, so variadic routines and `__chkstk`-style register conventions are
//! not disturbed (though `__chkstk` is bound directly: it runs in prologs, where
//! a capture means nothing).

use std::cell::Cell;
use std::ptr;

use crate::{page_size, HostError};

/// `ARCH_SET_GS` and `ARCH_GET_GS` (asm/prctl.h; not in the libc crate).
const ARCH_SET_GS: libc::c_int = 0x1001;
const ARCH_GET_GS: libc::c_int = 0x1004;

/// Where the capture lies from the GS base.
pub const CAPTURE_OFFSET: u32 = 0x1_0000;
/// Bytes of machine code per thunk (the code is shorter; the rest is `int3`).
pub const THUNK_SIZE: usize = 256;

/// The caller's context at its last import call (Microsoft x64 nonvolatiles).
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportCapture {
    /// rbx, rbp, rsi, rdi, r12, r13, r14, r15, in that order.
    pub gpr: [u64; 8],
    /// rsp at the thunk: the address of the driver's return address.
    pub rsp: u64,
    /// Padding so the xmm registers are 16-byte aligned.
    pub reserved: u64,
    /// xmm6 … xmm15.
    pub xmm: [u128; 10],
}

const _: () = assert!(std::mem::size_of::<ImportCapture>() == 0xF0);
const _: () = assert!(std::mem::offset_of!(ImportCapture, rsp) == 0x40);
const _: () = assert!(std::mem::offset_of!(ImportCapture, xmm) == 0x50);

impl ImportCapture {
    /// The driver's return address: the word at the captured rsp, or `None` when
    /// nothing was captured.
    pub fn return_address(&self) -> Option<u64> {
        if self.rsp == 0 {
            return None;
        }
        // SAFETY: a non-zero rsp was stored by a thunk: the stack pointer of a call
        // in progress on this thread or an earlier one whose stack is still mapped
        // (captures are only read while the driver call that made them is live).
        Some(unsafe { ptr::read_volatile(self.rsp as *const u64) })
    }
}

/// The per-thread block GS points at while driver code runs on the thread.
#[repr(C, align(4096))]
struct Block {
    /// Room for the processor control region drivers read through `gs:`.
    pcr: [u8; CAPTURE_OFFSET as usize],
    capture: ImportCapture,
}

thread_local! {
    static BLOCK: Cell<*mut Block> = const { Cell::new(ptr::null_mut()) };
}

fn block() -> *mut Block {
    BLOCK.with(|b| {
        if b.get().is_null() {
            // Zeroed (all of it is plain data) and never freed: the GS base of a
            // thread must stay valid as long as the thread might run driver code.
            let layout = std::alloc::Layout::new::<Block>();
            // SAFETY: `Block` has a non-zero size.
            let p = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<Block>();
            if p.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            b.set(p);
        }
        b.get()
    })
}

/// Frees this thread's GS block, if it has one and it is not the current GS base: for
/// a thread that will run no more driver code (a simulated thread's host thread as it
/// ends). A later driver call on the thread would get a fresh block.
pub fn release_block() {
    let p = BLOCK.with(Cell::get);
    if p.is_null() || gs_base() == p as usize {
        return;
    }
    BLOCK.with(|b| b.set(ptr::null_mut()));
    // SAFETY: `p` was allocated in `block` with this layout, by this thread; it is not
    // the GS base (checked above), and no reference into it outlives the calls that
    // read or wrote it.
    unsafe { std::alloc::dealloc(p.cast(), std::alloc::Layout::new::<Block>()) };
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn set_gs_base(base: usize) -> Result<(), HostError> {
    // SAFETY: ARCH_SET_GS only changes this thread's GS base; nothing in the Rust
    // runtime or glibc on x86-64 Linux uses GS.
    let rc = unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_SET_GS, base) };
    if rc != 0 {
        return Err(crate::sys::os_error("arch_prctl(ARCH_SET_GS)"));
    }
    Ok(())
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn gs_base() -> usize {
    let mut base: usize = 0;
    // SAFETY: ARCH_GET_GS writes the base to the valid out-pointer.
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_GET_GS, &mut base as *mut usize) };
    base
}

/// This thread's GS block, made current; the previous GS base comes back on drop.
#[derive(Debug)]
pub struct GsBlock {
    previous: usize,
    saved: ImportCapture,
}

impl GsBlock {
    /// Points this thread's GS base at its block and keeps its current capture, so
    /// that a nested driver call (a routine calling back into driver code) cannot
    /// lose the outer call's capture.
    ///
    /// # Errors
    /// When the kernel refuses the new base.
    /// The capture starts empty: no import call of this driver call has been made.
    pub fn enter() -> Result<GsBlock, HostError> {
        let previous = gs_base();
        let b = block();
        set_gs_base(b as usize)?;
        let saved = current_capture();
        set_capture(ImportCapture::default());
        Ok(GsBlock { previous, saved })
    }
}

impl Drop for GsBlock {
    fn drop(&mut self) {
        set_capture(self.saved);
        let _ = set_gs_base(self.previous);
    }
}

fn set_capture(capture: ImportCapture) {
    // SAFETY: the block is this thread's and lives forever; nothing else holds a
    // reference into it (thunks write it with plain stores on this thread only).
    unsafe { ptr::write_volatile(ptr::addr_of_mut!((*block()).capture), capture) };
}

/// This thread's capture: the context of the last import call a driver made on it.
pub fn current_capture() -> ImportCapture {
    // SAFETY: as in `set_capture`; a copy is read.
    unsafe { ptr::read_volatile(ptr::addr_of!((*block()).capture)) }
}

/// The capture of the import call a driver image made to the routine running now, if
/// the last capture is one: its stack pointer is on the current guarded call's stack
/// and its return address is in a registered driver image
/// ([`crate::exception::is_image_code`]). Async-signal-safe.
pub fn driver_frame() -> Option<ImportCapture> {
    let c = current_capture();
    let stack = crate::guard::current_stack()?;
    let (base, top) = (stack.base as u64, (stack.base + stack.size) as u64);
    if !c.rsp.is_multiple_of(8) || c.rsp < base || c.rsp >= top - 8 {
        return None;
    }
    let ret = c.return_address()?;
    crate::exception::is_image_code(ret as usize).then_some(c)
}

/// Runs `f` — ntmem code calling back into driver code (a lookaside list's allocate
/// routine, a completion routine) from a routine the driver called — and puts the
/// capture of the outer import call back afterwards, so that the routine still raises
/// from its own caller's frame.
pub fn preserving_capture<R>(f: impl FnOnce() -> R) -> R {
    let saved = current_capture();
    let r = f();
    set_capture(saved);
    r
}

impl ImportCapture {
    /// Writes the driver's context at its import call into `c`: RIP the return address,
    /// RSP just above it (as after the return), the nonvolatile registers as the thunk
    /// recorded them. Volatile registers are left as they are (no caller may rely on
    /// them after a call).
    pub fn apply_to(&self, c: &mut crate::context::Context) {
        c.rip = self.return_address().unwrap_or(0);
        c.gpr[crate::context::RSP] = self.rsp + 8;
        for (reg, value) in [3usize, 5, 6, 7, 12, 13, 14, 15].into_iter().zip(self.gpr) {
            c.gpr[reg] = value;
        }
        c.flt_save.xmm_registers[6..16].copy_from_slice(&self.xmm);
    }
}

/// An executable page run of import thunks, one per target routine, made once and
/// never changed (mapped read-execute after it is written). Unmapped on drop.
#[derive(Debug)]
pub struct ThunkTable {
    base: usize,
    len: usize,
    count: usize,
}

// SAFETY: the table owns an immutable executable mapping; its addresses are plain
// integers shared between threads.
unsafe impl Send for ThunkTable {}
// SAFETY: as above: nothing in it is mutated after `new`.
unsafe impl Sync for ThunkTable {}

impl ThunkTable {
    /// Makes a thunk for each of `targets` (routine addresses).
    ///
    /// # Errors
    /// When the host refuses the mapping.
    pub fn new(targets: &[usize]) -> Result<ThunkTable, HostError> {
        let page = page_size();
        let len = (targets.len().max(1) * THUNK_SIZE).next_multiple_of(page);
        // SAFETY: a fresh anonymous private mapping chosen by the kernel.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(crate::sys::os_error("mmap(thunks)"));
        }
        let mut code = vec![0xCC_u8; len];
        for (i, &target) in targets.iter().enumerate() {
            let thunk = encode(target as u64);
            code[i * THUNK_SIZE..i * THUNK_SIZE + thunk.len()].copy_from_slice(&thunk);
        }
        // SAFETY: `p` is a fresh writable mapping of `len` bytes; `code` has `len` bytes.
        unsafe { ptr::copy_nonoverlapping(code.as_ptr(), p.cast::<u8>(), len) };
        // SAFETY: the mapping just made; code is complete before it becomes executable.
        if unsafe { libc::mprotect(p, len, libc::PROT_READ | libc::PROT_EXEC) } != 0 {
            let e = crate::sys::os_error("mprotect(thunks)");
            // SAFETY: the mapping just made, referenced by nobody.
            unsafe { libc::munmap(p, len) };
            return Err(e);
        }
        Ok(ThunkTable { base: p as usize, len, count: targets.len() })
    }

    /// The address of thunk `i` (for target `i` of [`ThunkTable::new`]).
    pub fn address(&self, i: usize) -> Option<usize> {
        (i < self.count).then(|| self.base + i * THUNK_SIZE)
    }

    /// Whether `ip` lies in a thunk.
    pub fn contains(&self, ip: usize) -> bool {
        ip.wrapping_sub(self.base) < self.count * THUNK_SIZE
    }
}

impl Drop for ThunkTable {
    fn drop(&mut self) {
        // SAFETY: the mapping `new` made; no driver calls through it any more (tables
        // live as long as the images bound to them).
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}

/// The machine code of one thunk.
fn encode(target: u64) -> Vec<u8> {
    let mut c = Vec::with_capacity(THUNK_SIZE);
    let at = |off: usize| (CAPTURE_OFFSET as usize + off) as u32;
    // mov gs:[disp32], r64 — 65 REX.W(+R) 89 /r with SIB 0x25 (no base, no index).
    let store = |c: &mut Vec<u8>, reg: u8, disp: u32| {
        c.extend([0x65, 0x48 | ((reg >> 3) << 2), 0x89, ((reg & 7) << 3) | 0b100, 0x25]);
        c.extend(disp.to_le_bytes());
    };
    // rbx 3, rbp 5, rsi 6, rdi 7, r12–r15 12–15.
    for (i, reg) in [3u8, 5, 6, 7, 12, 13, 14, 15].into_iter().enumerate() {
        store(&mut c, reg, at(i * 8));
    }
    store(&mut c, 4, at(0x40)); // rsp
    for (i, xmm) in (6u8..16).enumerate() {
        // movdqu gs:[disp32], xmmN — 65 F3 [REX.R] 0F 7F /r.
        c.extend([0x65, 0xF3]);
        if xmm >= 8 {
            c.push(0x44);
        }
        c.extend([0x0F, 0x7F, ((xmm & 7) << 3) | 0b100, 0x25]);
        c.extend(at(0x50 + i * 16).to_le_bytes());
    }
    c.extend([0x49, 0xBB]); // mov r11, imm64
    c.extend(target.to_le_bytes());
    c.extend([0x41, 0xFF, 0xE3]); // jmp r11
    debug_assert!(c.len() <= THUNK_SIZE);
    c
}

#[cfg(test)]
mod tests;
