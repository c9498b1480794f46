//! The processor queries (learn.microsoft.com "KeGetCurrentProcessorNumberEx",
//! "KeQueryActiveProcessorCountEx", "KeQueryActiveProcessorCount",
//! "KeQueryActiveProcessors", "KeStallExecutionProcessor"). ntmem's machines have one
//! processor group; driver code runs on processor 0.

use std::ffi::c_void;

use crate::context::{checked, kernel};

/// `KeGetCurrentProcessorNumberEx(ProcNumber)`: the processor's index; with a
/// `PROCESSOR_NUMBER` (x64: `Group` USHORT 0x00, `Number` UCHAR 0x02, `Reserved`
/// 0x03), group 0 and that number. ntmem's machines have one group.
///
/// # Safety
/// `number` is NULL or the caller's `PROCESSOR_NUMBER`.
pub unsafe extern "win64" fn KeGetCurrentProcessorNumberEx(number: *mut c_void) -> u32 {
    kernel(|cpu| {
        let n = cpu.number();
        if !number.is_null() {
            let p = checked(cpu, number, 4)?;
            // SAFETY: four mapped bytes (checked above).
            unsafe { p.cast::<[u8; 4]>().write([0, 0, n as u8, 0]) };
        }
        Ok(n)
    })
}

/// The machine's processors (one group).
fn processors(cpu: &ntmem_kernel::Cpu<'_>) -> u32 {
    cpu.machine().profile().processors
}

/// `KeQueryActiveProcessorCountEx(GroupNumber)`: the processors of group 0, or of
/// all groups (`ALL_PROCESSOR_GROUPS`, 0xFFFF); 0 for a group the machine lacks.
pub extern "win64" fn KeQueryActiveProcessorCountEx(group: u16) -> u32 {
    kernel(|cpu| Ok(if group == 0 || group == 0xFFFF { processors(cpu) } else { 0 }))
}

/// `KeQueryActiveProcessorCount(ActiveProcessors)`: the count, and the `KAFFINITY`
/// mask of the processors if asked.
///
/// # Safety
/// `mask` is NULL or the caller's `KAFFINITY`.
pub unsafe extern "win64" fn KeQueryActiveProcessorCount(mask: *mut u64) -> u32 {
    kernel(|cpu| {
        let n = processors(cpu);
        if !mask.is_null() {
            let p = checked(cpu, mask.cast(), 8)?;
            // SAFETY: eight mapped bytes (checked above).
            unsafe { p.cast::<u64>().write_unaligned(affinity(n)) };
        }
        Ok(n)
    })
}

fn affinity(n: u32) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// `KeQueryActiveProcessors()`: the `KAFFINITY` mask of the processors.
pub extern "win64" fn KeQueryActiveProcessors() -> u64 {
    kernel(|cpu| Ok(affinity(processors(cpu))))
}

/// `KeStallExecutionProcessor(MicroSeconds)` (HAL): a busy wait. Simulated time moves
/// in milliseconds by waits and steps; a stall moves none, and returns at once —
/// a driver polling hardware between stalls sees as many polls as it makes.
pub extern "win64" fn KeStallExecutionProcessor(_microseconds: u32) {}
