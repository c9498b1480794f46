//! `cr8` as the IRQL: on x64 Windows the task-priority register *is* the IRQL, and
//! MSVC-built drivers read and write it directly (inline `KeGetCurrentIrql`, `KeRaiseIrql`,
//! `KeLowerIrql`; research note §6.5 context, issue 10 item 3). User-mode code cannot, so
//! the host turns such an instruction in a driver image into a call of [`emulate`] on the
//! faulting stack (`ntmem_host::exception`), which does what the instruction does to the
//! simulated processor and resumes after it.
//!
//! - `mov reg, cr8` reads the current IRQL (zero-extended);
//! - `mov cr8, reg` sets it: above the current level as `KeRaiseIrql`, below it as
//!   `KeLowerIrql` (pending work at the lower level runs then, as the hardware delivers
//!   it). Only the low 4 bits are used (the TPR's width; Windows never writes more).
//!
//! Outside a driver call (no simulated processor) the instruction is
//! STATUS_PRIVILEGED_INSTRUCTION, as on hardware without the emulation.

use ntmem_host::context::{Context, ExceptionRecord};
use ntmem_host::exception::{Cr8Access, STATUS_PRIVILEGED_INSTRUCTION};
use ntmem_kernel::Irql;

use super::dispatch::{dispatch_fault, resume};
use crate::context::{in_driver, kernel};

/// The emulation entry (see the module docs).
pub(crate) extern "C" fn emulate(context: *mut Context, access: u64) -> ! {
    let access = Cr8Access::from_word(access);
    if !in_driver() {
        let mut record = ExceptionRecord::empty();
        record.code = STATUS_PRIVILEGED_INSTRUCTION as i32;
        // SAFETY: the host wrote the context below the faulting RSP, above this frame.
        record.address = unsafe { (*context).rip } as *mut std::ffi::c_void;
        // SAFETY: the record is a local of this frame; the context is as above.
        unsafe { dispatch_fault(&mut record, context) }
    }
    // SAFETY: as above; nothing else refers to the context.
    let ctx = unsafe { &mut *context };
    let register = usize::from(access.register);
    if access.write {
        let new = Irql((ctx.gpr[register] & 0xF) as u8);
        kernel(|cpu| {
            let current = cpu.irql();
            if new > current {
                cpu.raise_irql(new).map(drop)
            } else if new < current {
                cpu.lower_irql(new)
            } else {
                Ok(())
            }
        });
    } else {
        ctx.gpr[register] = u64::from(kernel(|cpu| Ok(cpu.irql().0)));
    }
    ctx.rip += u64::from(access.length);
    // SAFETY: the context is 16-aligned, below the driver's RSP with the host's gap, above
    // this frame; we hold nothing that needs dropping.
    unsafe { resume(context) }
}
