//! The bodies of the fuzz targets (issue 9 item 7): `fuzz/` runs them under
//! `cargo fuzz`, and `tests/fuzz_corpus.rs` replays their seed corpora in
//! `cargo test`, so both drive exactly the same code.
//!
//! * [`scenario`]: any bytes as a scenario file — a parsed scenario or a message,
//!   never a panic.
//! * [`routines`]: any bytes as a program of WDK routine calls with hostile
//!   arguments, run as a Rust driver's `DriverEntry` on a fresh simulated machine
//!   (x64 or x86, with or without special pool) at PASSIVE_LEVEL and, after a
//!   raise the program asks for, at DISPATCH_LEVEL or above. Every outcome is a
//!   [`Report`]: the calls returned, or the machine stopped with a bugcheck. A
//!   panic, an abort or a hang is a bug ntmem must fix.
//!
//! The program's format ([`Program`]): byte 0 picks the machine; then each call
//! is an opcode byte (its low 6 bits the routine, bit 7 "inside `__try`", which
//! runs it under [`seh::catch`]) followed by the argument bytes it reads. Pointer
//! arguments come from a palette — NULL, a block an earlier call returned (as
//! is, or at an offset), an arbitrary number, a user address, a kernel-space
//! address, an address on the driver's stack — and sizes from small, page-sized
//! and huge ones, so that short inputs reach deep states.
//!
//! Opcodes 40–43 drive the run-time library (bitmaps, counted-string
//! conversions, `RtlCompareMemory`/`RtlFillMemoryUlong`/`RtlGetVersion`, and
//! `_vsnprintf`/`_vsnwprintf`); where the palette says "the driver's stack" they
//! get a two-page nonpaged scratch block instead, since they store as much as their
//! arguments say.
//!
//! Not driven yet: spin locks on words the program did not initialise (spinning
//! forever is a hang until the DPC watchdog lands), lookaside lists with
//! driver callbacks, and requests through dispatch routines (the scenario
//! target and the driver tests cover those).

use std::ffi::c_void;

use super::{DriverEntryArgs, Harness, Report, RustDriver};
use crate::crt_printf::{_vsnprintf, _vsnwprintf};
use crate::ex::{
    ExAllocatePool2, ExAllocatePoolWithQuotaTag, ExAllocatePoolWithTag, ExAllocatePoolWithTagPriority, ExFreePool,
    ExFreePoolWithTag, ExQueryPoolBlockSize,
};
use crate::io_cancel::{IoAcquireCancelSpinLock, IoCancelIrp, IoReleaseCancelSpinLock};
use crate::ke::{KeAcquireSpinLockRaiseToDpc, KeInitializeSpinLock, KeLowerIrql, KeReleaseSpinLock, KfRaiseIrql};
use crate::ke_dispatcher::{
    KeCancelTimer, KeInitializeDpc, KeInitializeEvent, KeInitializeTimerEx, KeInsertQueueDpc, KeSetEvent,
    KeSetImportanceDpc, KeSetTimerEx,
};
use crate::ke_wait::KeWaitForSingleObject;
use crate::lookaside::{
    ExAllocateFromLookasideListEx, ExDeleteLookasideListEx, ExFreeToLookasideListEx, ExInitializeLookasideListEx,
    ExInitializeNPagedLookasideList,
};
use crate::mdl::{
    IoAllocateMdl, IoFreeMdl, MmAllocateMappingAddress, MmFreeMappingAddress, MmMapLockedPagesSpecifyCache,
    MmMapLockedPagesWithReservedMapping, MmProbeAndLockPages, MmUnlockPages, MmUnmapLockedPages,
    MmUnmapReservedMapping, ProbeForRead, ProbeForWrite,
};
use crate::mm::{
    MmAllocateContiguousMemory, MmAllocateContiguousMemorySpecifyCache, MmAllocateNonCachedMemory,
    MmFreeContiguousMemory, MmFreeNonCachedMemory, MmGetPhysicalAddress, MmMapIoSpace, MmUnmapIoSpace,
};
use crate::ps::PsGetVersion;
use crate::rtl_bitmap::{
    RtlAreBitsSet, RtlClearBits, RtlFindClearBitsAndSet, RtlInitializeBitMap, RtlNumberOfSetBits, RtlSetAllBits,
    RtlTestBit,
};
use crate::rtl_convert::{
    RtlAnsiStringToUnicodeString, RtlFreeUnicodeString, RtlIntegerToUnicodeString, RtlUnicodeStringToAnsiString,
    RtlUnicodeStringToInteger, RtlUpcaseUnicodeString,
};
use crate::rtl_memory::{RtlCompareMemory, RtlFillMemoryUlong, RtlGetVersion};
use crate::seh;
use crate::types::{NtStatus, STATUS_SUCCESS};

/// Parses `data` as a scenario file: `Ok(steps)` or the message a user would
/// see. Bytes that are not UTF-8 are rejected as `load` rejects them.
///
/// # Errors
/// The message naming the line and the key.
pub fn scenario(data: &[u8]) -> Result<usize, String> {
    let text = std::str::from_utf8(data).map_err(|e| format!("fuzz.toml: {e}"))?;
    let (_, steps) = super::scenario::parse("fuzz.toml", text)?;
    for step in &steps {
        assert!(step.line >= 1 && step.line <= text.lines().count().max(1), "step line {} out of the file", step.line);
    }
    Ok(steps.len())
}

/// Runs `data` as a [`Program`] (see the module docs) and returns the report.
pub fn routines(data: &[u8]) -> Report {
    let mut program = Program { bytes: data, at: 0 };
    let choice = program.byte();
    let (edition, special_pool) =
        (["ws03sp1-enterprise-x64", "xp-professional"][usize::from(choice & 1)], choice & 2 != 0);
    let text = format!(
        "machine = \"{edition}\"\nram = \"128M\"\nprocessors = 1\nverifier = [{}]\n",
        if special_pool { "\"special_pool\"" } else { "" }
    );
    let (harness, _) = match Harness::from_scenario("fuzz.toml", &text) {
        Ok(h) => h,
        Err(e) => panic!("the fuzzing machine does not boot: {e}"),
    };
    let mut driver = Fuzzer { program, blocks: Vec::new(), scratch: 0 };
    harness.run("fuzz.sys", &mut driver, &[])
}

/// The bytes of a program and how far the calls have read.
#[derive(Debug)]
pub struct Program<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Program<'_> {
    /// The next byte; 0 past the end.
    fn byte(&mut self) -> u8 {
        let b = self.bytes.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }

    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    /// A size: small, page-sized, around the 4 GB and address-space limits, or any.
    fn size(&mut self) -> usize {
        let b = self.byte();
        (match b % 8 {
            0 => 0,
            1..=3 => u64::from(self.byte()) + 1,
            4 => (u64::from(self.byte() % 17) + 1) * 4096,
            5 => [u64::from(u32::MAX), u64::from(u32::MAX) + 1, 1 << 40, u64::MAX, u64::MAX - 4095]
                [usize::from(b >> 3) % 5],
            6 => u64::from(self.u32()),
            _ => self.u64(),
        }) as usize
    }
}

/// The Rust driver whose `DriverEntry` runs the program.
struct Fuzzer<'a> {
    program: Program<'a>,
    /// What earlier calls returned (blocks, MDLs, mappings, physical addresses).
    blocks: Vec<usize>,
    /// Two nonpaged pages the run-time library opcodes (40–43) use where the
    /// palette says "the driver's stack": those routines store as much as their
    /// arguments say, which on the 128-byte stack array would overwrite the
    /// host's own frame.
    scratch: usize,
}

impl Fuzzer<'_> {
    /// A pointer argument from the palette (module docs).
    fn pointer(&mut self, stack: *mut u8) -> *mut c_void {
        let b = self.program.byte();
        let pick = usize::from(self.program.byte());
        let block = |blocks: &[usize]| if blocks.is_empty() { 0 } else { blocks[pick % blocks.len()] };
        (match b % 8 {
            0 => 0,
            1 => block(&self.blocks),
            2 => block(&self.blocks).wrapping_add_signed(isize::from(self.program.byte() as i8) * 8),
            3 => self.program.u64() as usize,
            4 => 0x10000 + usize::from(self.program.byte()) * 4096,
            5 => [0xFFFF_F800_0000_0000_u64 as usize, 0x8000_0000, 0xC000_0000, usize::MAX][pick % 4],
            6 => stack as usize + pick % 64,
            _ => self.blocks.last().copied().unwrap_or(0),
        }) as *mut c_void
    }

    /// A pointer argument for the routines that store as much as they are told
    /// (opcodes 40–43): the palette's, with the stack choice moved to `scratch`.
    fn store_pointer(&mut self, stack: *mut u8) -> *mut c_void {
        let p = self.pointer(stack) as usize;
        match p.checked_sub(stack as usize) {
            Some(offset) if offset < 128 => (self.scratch + offset) as *mut c_void,
            _ => p as *mut c_void,
        }
    }

    /// Runs one call; returns a value to remember, if it made one.
    fn call(&mut self, opcode: u8, stack: *mut u8) -> Option<usize> {
        let p = &mut self.program;
        let (pool_type, tag) = (u32::from(p.byte() % 40), u32::from_le_bytes(*b"Fuzz") ^ u32::from(p.byte() & 3));
        let small = u32::from(p.byte());
        Some(match opcode & 0x3F {
            0 => {
                let n = p.size();
                ExAllocatePoolWithTag(pool_type, n, tag) as usize
            }
            1 => {
                let n = p.size();
                ExAllocatePoolWithQuotaTag(pool_type, n, tag) as usize
            }
            2 => {
                let (flags, n) = (p.u64(), p.size());
                ExAllocatePool2(flags, n, tag) as usize
            }
            3 => {
                let n = p.size();
                ExAllocatePoolWithTagPriority(pool_type, n, tag, small % 40) as usize
            }
            4 => {
                ExFreePool(self.pointer(stack));
                return None;
            }
            5 => {
                ExFreePoolWithTag(self.pointer(stack), tag);
                return None;
            }
            6 => {
                let mut charged = 0u8;
                // SAFETY: hostile block pointers are what is tested; `charged` is ours.
                unsafe { ExQueryPoolBlockSize(self.pointer(stack), &mut charged) }
            }
            7 => {
                let va = self.pointer(stack);
                let length = self.program.size() as u32;
                IoAllocateMdl(va, length, (small & 1) as u8, 0, std::ptr::null_mut()) as usize
            }
            8 => {
                MmProbeAndLockPages(self.pointer(stack), (small & 1) as i8, small % 4);
                return None;
            }
            9 => {
                MmUnlockPages(self.pointer(stack));
                return None;
            }
            10 => {
                IoFreeMdl(self.pointer(stack));
                return None;
            }
            11 => {
                let m = self.pointer(stack);
                let requested = self.pointer(stack);
                MmMapLockedPagesSpecifyCache(m, (small & 1) as i8, small % 4, requested, small & 2, pool_type) as usize
            }
            12 => {
                let base = self.pointer(stack);
                MmUnmapLockedPages(base, self.pointer(stack));
                return None;
            }
            13 => {
                let n = p.size();
                MmAllocateMappingAddress(n, tag) as usize
            }
            14 => {
                MmFreeMappingAddress(self.pointer(stack), tag);
                return None;
            }
            15 => {
                let base = self.pointer(stack);
                MmMapLockedPagesWithReservedMapping(base, tag, self.pointer(stack), small % 4) as usize
            }
            16 => {
                let base = self.pointer(stack);
                MmUnmapReservedMapping(base, tag, self.pointer(stack));
                return None;
            }
            17 => {
                let at = self.pointer(stack);
                ProbeForRead(at, self.program.size(), small % 17);
                return None;
            }
            18 => {
                let at = self.pointer(stack);
                ProbeForWrite(at, self.program.size(), small % 17);
                return None;
            }
            19 => {
                let (n, highest) = (p.size(), p.u64() as i64);
                MmAllocateContiguousMemory(n, highest) as usize
            }
            20 => {
                let (n, lowest, highest, boundary) = (p.size(), p.u64() as i64, p.u64() as i64, p.u64() as i64);
                MmAllocateContiguousMemorySpecifyCache(n, lowest, highest, boundary, small % 4) as usize
            }
            21 => {
                MmFreeContiguousMemory(self.pointer(stack));
                return None;
            }
            22 => {
                let n = p.size();
                MmAllocateNonCachedMemory(n) as usize
            }
            23 => {
                let base = self.pointer(stack);
                MmFreeNonCachedMemory(base, self.program.size());
                return None;
            }
            24 => MmGetPhysicalAddress(self.pointer(stack)) as usize,
            25 => {
                let pa = match small % 3 {
                    0 => self.pointer(stack) as i64,
                    1 => (usize::from(self.program.byte()) << 12) as i64,
                    _ => self.program.u64() as i64,
                };
                MmMapIoSpace(pa, self.program.size(), small % 4) as usize
            }
            26 => {
                let base = self.pointer(stack);
                MmUnmapIoSpace(base, self.program.size());
                return None;
            }
            27 => {
                let head = self.pointer(stack);
                let n = self.program.size();
                ExInitializeLookasideListEx(head, None, None, pool_type, 0, n, tag, 0) as u32 as usize
            }
            28 => ExAllocateFromLookasideListEx(self.pointer(stack)) as usize,
            29 => {
                let head = self.pointer(stack);
                ExFreeToLookasideListEx(head, self.pointer(stack));
                return None;
            }
            30 => {
                ExDeleteLookasideListEx(self.pointer(stack));
                return None;
            }
            31 => {
                let head = self.pointer(stack);
                ExInitializeNPagedLookasideList(head, None, None, 0, self.program.size(), tag, 0);
                return None;
            }
            32 => usize::from(KfRaiseIrql((small % 32) as u8)),
            33 => {
                KeLowerIrql((small % 32) as u8);
                return None;
            }
            34 => {
                let lock = self.pointer(stack).cast();
                // SAFETY: hostile lock pointers are what is tested; the routines
                // check the simulated address. The lock word is initialised first,
                // so the acquire cannot spin forever.
                unsafe {
                    KeInitializeSpinLock(lock);
                    let old = KeAcquireSpinLockRaiseToDpc(lock);
                    KeReleaseSpinLock(lock, old);
                }
                return None;
            }
            35 => {
                // What a driver does with its memory: a write at a block (or near it).
                let at = self.pointer(stack).cast::<u8>();
                // SAFETY: the address is the machine's or a number the machine does
                // not map: the write faults and the trap reports it as Windows would.
                unsafe { at.write_volatile(small as u8) };
                return None;
            }
            36 => {
                // Dispatcher objects at hostile addresses: a poll never sleeps.
                let object = self.pointer(stack).cast();
                let zero = 0i64;
                // SAFETY: hostile object pointers are what is tested (checked mapped by
                // the routines); the wait only polls.
                unsafe {
                    KeInitializeEvent(object, small & 1, (small & 2) as u8);
                    KeSetEvent(object, 0, 0);
                    return Some(KeWaitForSingleObject(object, 0, 0, 0, &zero) as usize);
                }
            }
            37 => {
                let (timer, dpc) = (self.pointer(stack).cast(), self.pointer(stack).cast());
                let due = -(i64::from(small) * 10_000);
                // SAFETY: as above, for timers and DPCs; the DPC routine is NULL (a DPC
                // with no routine does nothing), cancelled or run by the next settle.
                unsafe {
                    KeInitializeTimerEx(timer, small & 1);
                    KeInitializeDpc(dpc, std::ptr::null_mut(), std::ptr::null_mut());
                    KeSetImportanceDpc(dpc, small);
                    KeSetTimerEx(timer, due, (small & 3) as i32, dpc);
                    KeInsertQueueDpc(dpc, std::ptr::null_mut(), std::ptr::null_mut());
                    return Some(usize::from(KeCancelTimer(timer)));
                }
            }
            38 => {
                // SAFETY: a hostile IRP pointer: IoCancelIrp checks it mapped.
                return Some(usize::from(unsafe { IoCancelIrp(self.pointer(stack).cast()) }));
            }
            39 => {
                let mut irql = 0u8;
                // SAFETY: a local KIRQL; the lock is the machine's.
                unsafe { IoAcquireCancelSpinLock(&mut irql) };
                IoReleaseCancelSpinLock(irql);
                return None;
            }
            40 => {
                // Bitmaps over hostile headers, buffers and sizes.
                let (h, buffer) = (self.store_pointer(stack).cast(), self.store_pointer(stack).cast());
                let (size, a, b) = (self.program.size() as u32, self.program.u32(), self.program.u32());
                // SAFETY: hostile pointers are what is tested; the routines check every
                // page they touch.
                unsafe {
                    RtlInitializeBitMap(h, buffer, size);
                    match small % 6 {
                        0 => RtlSetAllBits(h),
                        1 => RtlClearBits(h, a, b),
                        2 => return Some(RtlFindClearBitsAndSet(h, a % 64, b) as usize),
                        3 => return Some(RtlNumberOfSetBits(h) as usize),
                        4 => return Some(usize::from(RtlTestBit(h, a))),
                        _ => return Some(usize::from(RtlAreBitsSet(h, a, b))),
                    }
                }
                return None;
            }
            41 => {
                // Counted-string conversions over hostile strings (PASSIVE_LEVEL
                // routines: at a raised IRQL, 0x0A).
                let (d, s) = (self.store_pointer(stack), self.store_pointer(stack));
                let (allocate, value) = ((small & 1) as u8, self.program.u32());
                // SAFETY: as above: the routines check the headers and buffers.
                let status = unsafe {
                    match (small >> 1) % 6 {
                        0 => RtlUnicodeStringToAnsiString(d.cast(), s.cast(), allocate),
                        1 => RtlAnsiStringToUnicodeString(d.cast(), s.cast(), allocate),
                        2 => RtlUpcaseUnicodeString(d.cast(), s.cast(), allocate),
                        3 => {
                            RtlFreeUnicodeString(d.cast());
                            0
                        }
                        4 => RtlUnicodeStringToInteger(s.cast(), value % 20, d.cast()),
                        _ => RtlIntegerToUnicodeString(value, small >> 4, d.cast()),
                    }
                };
                status as u32 as usize
            }
            42 => {
                let (a, b) = (self.store_pointer(stack), self.store_pointer(stack));
                let n = self.program.size();
                // SAFETY: as above: the routines check every page they touch.
                unsafe {
                    match small % 4 {
                        0 => RtlCompareMemory(a, b, n),
                        1 => {
                            RtlFillMemoryUlong(a, n, small);
                            return None;
                        }
                        2 => RtlGetVersion(a) as u32 as usize,
                        _ => usize::from(PsGetVersion(a.cast(), b.cast(), std::ptr::null_mut(), b.cast())),
                    }
                }
            }
            43 => {
                // The bounded printf routines: hostile buffers and counts, formats
                // whose arguments are hostile pointers.
                let buffer = self.store_pointer(stack);
                let count = self.program.size();
                let args = [self.store_pointer(stack) as u64, self.store_pointer(stack) as u64, u64::from(small), 0];
                let formats: [&[u8]; 5] = [b"%s\0", b"%wZ|%Z\0", b"%d %x %I64u\0", b"%99d%ls\0", b"plain\0"];
                let format = formats[small as usize % formats.len()];
                if self.scratch == 0 {
                    return None;
                }
                // The format lives in the machine's memory, as a driver's does: in the
                // scratch block's second page.
                let at = self.scratch + 0x1000;
                // SAFETY: `at` is the second of the scratch block's two pages, ours;
                // the formats are short. `args` is a va_list of four 8-byte slots.
                unsafe {
                    if small & 0x80 == 0 {
                        std::ptr::copy_nonoverlapping(format.as_ptr(), at as *mut u8, format.len());
                        _vsnprintf(buffer.cast(), count, at as *const u8, args.as_ptr().cast()) as usize
                    } else {
                        for (i, &c) in format.iter().enumerate() {
                            (at as *mut u16).add(i).write_unaligned(u16::from(c));
                        }
                        _vsnwprintf(buffer.cast(), count, at as *const u16, args.as_ptr().cast()) as usize
                    }
                }
            }
            _ => return None,
        })
    }
}

impl RustDriver for Fuzzer<'_> {
    fn driver_entry(&mut self, _args: &mut DriverEntryArgs<'_>) -> NtStatus {
        let mut stack = [0u8; 128];
        let stack = stack.as_mut_ptr();
        self.scratch = ExAllocatePoolWithTag(0, 0x2000, u32::from_le_bytes(*b"Fuzz")) as usize;
        while !self.program.done() {
            let opcode = self.program.byte();
            let made = if opcode & 0x80 != 0 {
                seh::catch(|| self.call(opcode, stack)).ok().flatten()
            } else {
                self.call(opcode, stack)
            };
            self.blocks.extend(made.filter(|&v| v != 0));
        }
        if self.scratch != 0 {
            ExFreePoolWithTag(self.scratch as *mut c_void, u32::from_le_bytes(*b"Fuzz"));
        }
        STATUS_SUCCESS
    }
}
