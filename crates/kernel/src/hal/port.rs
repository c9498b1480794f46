//! The 64 KB I/O-port space and the HAL's port routines (seed 000 §3, §8):
//! `READ_PORT_UCHAR/USHORT/ULONG`, `WRITE_PORT_*` and their `_BUFFER_` forms.
//!
//! A port access goes to the register block decoded at that port ([`super::device`]);
//! each byte of a wider access is decoded on its own, little-endian. A port no
//! device decodes reads as all ones and swallows writes, as on a PC (the ISA/PCI
//! bus floats high when nobody answers). The `_BUFFER_` forms transfer `Count`
//! items through the *same* port, as `rep insb`/`rep outsb` do on x86 and x64 (seed
//! §8: some platforms advance the port address; ntmem models x86/x64 on every
//! architecture).
//!
//! IRQL: any (the HAL's port routines may be called at any IRQL).

use crate::ke::processor::Cpu;

/// An I/O port number: an address in the 64 KB I/O space (what a driver casts
/// `u.Port.Start` to).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct IoPort(pub u16);

/// The value a read of a port that nobody decodes returns, byte by byte.
pub const FLOATING_BUS: u8 = 0xFF;

fn read(cpu: &Cpu<'_>, port: IoPort, buf: &mut [u8]) {
    let bus = cpu.machine().hal().bus();
    for (i, b) in buf.iter_mut().enumerate() {
        *b = match bus.decode_port(u64::from(port.0) + i as u64) {
            Some((regs, off)) => {
                let mut one = [0];
                regs.read(off, &mut one);
                one[0]
            }
            None => FLOATING_BUS,
        };
    }
}

fn write(cpu: &Cpu<'_>, port: IoPort, data: &[u8]) {
    let bus = cpu.machine().hal().bus();
    for (i, &b) in data.iter().enumerate() {
        if let Some((regs, off)) = bus.decode_port(u64::from(port.0) + i as u64) {
            regs.write(off, &[b]);
        }
    }
}

/// `READ_PORT_UCHAR`.
pub fn read_port_uchar(cpu: &Cpu<'_>, port: IoPort) -> u8 {
    let mut b = [0; 1];
    read(cpu, port, &mut b);
    b[0]
}

/// `READ_PORT_USHORT`.
pub fn read_port_ushort(cpu: &Cpu<'_>, port: IoPort) -> u16 {
    let mut b = [0; 2];
    read(cpu, port, &mut b);
    u16::from_le_bytes(b)
}

/// `READ_PORT_ULONG`.
pub fn read_port_ulong(cpu: &Cpu<'_>, port: IoPort) -> u32 {
    let mut b = [0; 4];
    read(cpu, port, &mut b);
    u32::from_le_bytes(b)
}

/// `WRITE_PORT_UCHAR`.
pub fn write_port_uchar(cpu: &Cpu<'_>, port: IoPort, value: u8) {
    write(cpu, port, &[value]);
}

/// `WRITE_PORT_USHORT`.
pub fn write_port_ushort(cpu: &Cpu<'_>, port: IoPort, value: u16) {
    write(cpu, port, &value.to_le_bytes());
}

/// `WRITE_PORT_ULONG`.
pub fn write_port_ulong(cpu: &Cpu<'_>, port: IoPort, value: u32) {
    write(cpu, port, &value.to_le_bytes());
}

/// `READ_PORT_BUFFER_UCHAR(Port, Buffer, Count)`: `buffer.len()` reads of one port.
pub fn read_port_buffer_uchar(cpu: &Cpu<'_>, port: IoPort, buffer: &mut [u8]) {
    buffer.iter_mut().for_each(|v| *v = read_port_uchar(cpu, port));
}

/// `READ_PORT_BUFFER_USHORT`.
pub fn read_port_buffer_ushort(cpu: &Cpu<'_>, port: IoPort, buffer: &mut [u16]) {
    buffer.iter_mut().for_each(|v| *v = read_port_ushort(cpu, port));
}

/// `READ_PORT_BUFFER_ULONG`.
pub fn read_port_buffer_ulong(cpu: &Cpu<'_>, port: IoPort, buffer: &mut [u32]) {
    buffer.iter_mut().for_each(|v| *v = read_port_ulong(cpu, port));
}

/// `WRITE_PORT_BUFFER_UCHAR(Port, Buffer, Count)`: `buffer.len()` writes to one port.
pub fn write_port_buffer_uchar(cpu: &Cpu<'_>, port: IoPort, buffer: &[u8]) {
    buffer.iter().for_each(|&v| write_port_uchar(cpu, port, v));
}

/// `WRITE_PORT_BUFFER_USHORT`.
pub fn write_port_buffer_ushort(cpu: &Cpu<'_>, port: IoPort, buffer: &[u16]) {
    buffer.iter().for_each(|&v| write_port_ushort(cpu, port, v));
}

/// `WRITE_PORT_BUFFER_ULONG`.
pub fn write_port_buffer_ulong(cpu: &Cpu<'_>, port: IoPort, buffer: &[u32]) {
    buffer.iter().for_each(|&v| write_port_ulong(cpu, port, v));
}
