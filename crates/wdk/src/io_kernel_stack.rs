//! The kernel stack as a driver asks about it: `IoGetRemainingStackSize` and
//! `IoGetStackLimits` (learn.microsoft.com, each routine's page in wdm.h). The stack
//! is the running processor's kernel stack (12 KB on x86, 24 KB on x64), below which
//! a guard page makes an overflow 0x7F ([`ntmem_kernel::ke::processor`]).

use ntmem_kernel::BugCheck;

use crate::cm::store;
use crate::context::kernel;

/// `IoGetRemainingStackSize()`: bytes left between the stack pointer and the
/// stack's limit.
pub extern "win64" fn IoGetRemainingStackSize() -> usize {
    kernel(|cpu| Ok(cpu.remaining_stack()))
}

/// `IoGetStackLimits(LowLimit, HighLimit)`: the current kernel stack's bounds.
///
/// # Safety
/// Both point to the driver's `ULONG_PTR`s (checked: a bad one stops as on Windows).
pub unsafe extern "win64" fn IoGetStackLimits(low: *mut usize, high: *mut usize) {
    kernel(|cpu| -> Result<(), BugCheck> {
        let (l, h) = cpu.stack_limits();
        store(cpu, low, l)?;
        store(cpu, high, h)
    });
}
