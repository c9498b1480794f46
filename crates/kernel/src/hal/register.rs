//! Memory-mapped device registers: `READ_REGISTER_UCHAR/USHORT/ULONG/ULONG64`,
//! `WRITE_REGISTER_*` and their `_BUFFER_` forms (seed 000 §8).
//!
//! The register address is a system virtual address that MmMapIoSpace returned
//! ([`crate::mm::io_space`]); every access is a real load or store through that
//! mapping, so it reaches the device's register file, and an address that is not
//! mapped faults for real (inside [`crate::Machine::run`], a bugcheck). The
//! `_BUFFER_` forms copy between consecutive register addresses and the buffer, as
//! `rep movs` does on x86 and x64. Little-endian.
//!
//! IRQL: any.

use ntmem_machine::Va;

use crate::bugcheck::{BugCheck, BugCheckCode};
use crate::ke::processor::Cpu;

/// An address outside the simulated address space: the fault Windows would take,
/// PAGE_FAULT_IN_NONPAGED_AREA (address, 0 read / 1 write, 0, 0).
fn outside(cpu: &Cpu<'_>, va: Va, write: bool) -> BugCheck {
    cpu.machine().bugcheck(BugCheckCode::PAGE_FAULT_IN_NONPAGED_AREA, [va.get(), u64::from(write), 0, 0])
}

fn read(cpu: &Cpu<'_>, va: Va, buf: &mut [u8]) -> Result<(), BugCheck> {
    cpu.machine().space().read(va, buf).map_err(|_| outside(cpu, va, false))
}

fn write(cpu: &Cpu<'_>, va: Va, data: &[u8]) -> Result<(), BugCheck> {
    cpu.machine().space().write(va, data).map_err(|_| outside(cpu, va, true))
}

macro_rules! register_routines {
    ($($t:ty, $n:expr, $read:ident, $write:ident, $read_buf:ident, $write_buf:ident, $name:literal;)*) => {$(
        #[doc = concat!("`READ_REGISTER_", $name, "`.\n\n# Errors\nThe bugcheck of a fault.")]
        pub fn $read(cpu: &Cpu<'_>, register: Va) -> Result<$t, BugCheck> {
            let mut b = [0; $n];
            read(cpu, register, &mut b)?;
            Ok(<$t>::from_le_bytes(b))
        }

        #[doc = concat!("`WRITE_REGISTER_", $name, "`.\n\n# Errors\nThe bugcheck of a fault.")]
        pub fn $write(cpu: &Cpu<'_>, register: Va, value: $t) -> Result<(), BugCheck> {
            write(cpu, register, &value.to_le_bytes())
        }

        #[doc = concat!("`READ_REGISTER_BUFFER_", $name, "(Register, Buffer, Count)`: `buffer.len()` items from consecutive registers.\n\n# Errors\nThe bugcheck of a fault.")]
        pub fn $read_buf(cpu: &Cpu<'_>, register: Va, buffer: &mut [$t]) -> Result<(), BugCheck> {
            let mut bytes = vec![0u8; buffer.len() * $n];
            read(cpu, register, &mut bytes)?;
            for (v, c) in buffer.iter_mut().zip(bytes.chunks_exact($n)) {
                *v = <$t>::from_le_bytes(c.try_into().expect("chunk of the item size"));
            }
            Ok(())
        }

        #[doc = concat!("`WRITE_REGISTER_BUFFER_", $name, "(Register, Buffer, Count)`: `buffer.len()` items to consecutive registers.\n\n# Errors\nThe bugcheck of a fault.")]
        pub fn $write_buf(cpu: &Cpu<'_>, register: Va, buffer: &[$t]) -> Result<(), BugCheck> {
            let bytes: Vec<u8> = buffer.iter().flat_map(|v| v.to_le_bytes()).collect();
            write(cpu, register, &bytes)
        }
    )*};
}

register_routines! {
    u8, 1, read_register_uchar, write_register_uchar, read_register_buffer_uchar, write_register_buffer_uchar, "UCHAR";
    u16, 2, read_register_ushort, write_register_ushort, read_register_buffer_ushort, write_register_buffer_ushort, "USHORT";
    u32, 4, read_register_ulong, write_register_ulong, read_register_buffer_ulong, write_register_buffer_ulong, "ULONG";
    u64, 8, read_register_ulong64, write_register_ulong64, read_register_buffer_ulong64, write_register_buffer_ulong64, "ULONG64";
}
