//! The I/O manager (issue 4 item 5; seed 000 §9): each transfer type delivered as
//! Windows delivers it — buffered copies in and out, direct MDLs that alias the
//! caller's buffer, neither's raw pointers in the caller's context — and the IRP's
//! x64 layout.

use std::cell::RefCell;
use std::sync::Arc;

use ntmem_kernel::ex::pool::NtStatus;
use ntmem_kernel::io::device::{io_create_device, io_delete_device, DeviceFlags, NewDevice};
use ntmem_kernel::io::irp::{io_complete_request, IrpFlags};
use ntmem_kernel::io::request::{BufferAction, IoCall, IoRequest, Ioctl};
use ntmem_kernel::io::{ctl_code, DeviceObject, Dispatch, Irp, MajorFunction, TransferMethod};
use ntmem_kernel::mm::mdl::{mm_get_system_address_for_mdl_safe, read_header, Mdl, MdlFlags, PagePriority};
use ntmem_kernel::mm::process::{
    nt_allocate_virtual_memory, ps_create_process, AllocationType, PageProtection, Process,
};
use ntmem_kernel::{BugCheck, BugCheckCode, Cpu, Machine};
use ntmem_machine::{BootOptions, MachineConfig, Va};

const BOTH: AllocationType = AllocationType::RESERVE.union(AllocationType::COMMIT);
const FILE_DEVICE_UNKNOWN: u32 = 0x22;

fn boot() -> Machine {
    let mut config = MachineConfig::for_edition("ws03sp1-enterprise-x64").unwrap();
    config.ram = 512 << 20;
    config.boot = BootOptions::parse("").unwrap();
    Machine::boot(config.build().unwrap()).unwrap()
}

fn device(cpu: &Cpu<'_>, flags: DeviceFlags) -> DeviceObject {
    let new = NewDevice {
        driver: 0x1234_0000,
        extension_size: 24,
        device_type: FILE_DEVICE_UNKNOWN,
        characteristics: 0,
        exclusive: false,
    };
    let d = io_create_device(cpu, new).unwrap().unwrap();
    d.set_flags(cpu, flags).unwrap();
    d
}

fn buffer(cpu: &Cpu<'_>, p: &Arc<Process>, bytes: &[u8], len: u64) -> Va {
    let (va, _) = nt_allocate_virtual_memory(cpu, p, None, len.max(1), BOTH, PageProtection::ReadWrite).unwrap();
    p.write(cpu, va, bytes).unwrap();
    va
}

/// What the test driver saw, for the assertions.
#[derive(Debug, Default, Clone)]
struct Seen {
    major: Option<MajorFunction>,
    system_buffer: u64,
    mdl: u64,
    user_buffer: u64,
    type3: u64,
    lengths: (u32, u32),
    flags: Option<IrpFlags>,
    input: Vec<u8>,
    mdl_flags: Option<MdlFlags>,
    mdl_process: u64,
}

/// A driver written in Rust against the kernel API: upper-cases the input into
/// the output, by whichever route the transfer type gives it.
struct Upcase {
    seen: RefCell<Seen>,
}

impl Dispatch for Upcase {
    fn dispatch(
        &self,
        cpu: &Cpu<'_>,
        major: MajorFunction,
        _d: DeviceObject,
        irp: Irp,
    ) -> Result<Option<NtStatus>, BugCheck> {
        let m = cpu.machine();
        let (out_len, in_len, code, type3) = irp.device_io_control(cpu)?;
        let mut seen = Seen {
            major: Some(major),
            system_buffer: irp.system_buffer(cpu)?,
            mdl: irp.mdl_address(cpu)?,
            user_buffer: irp.user_buffer(cpu)?,
            type3,
            lengths: (in_len, out_len),
            flags: Some(irp.flags(cpu)?),
            ..Seen::default()
        };
        let mut input = vec![0u8; in_len as usize];
        let method = TransferMethod::of(code);
        let src = if method == TransferMethod::Neither { type3 } else { seen.system_buffer };
        m.space().read(Va::new(src), &mut input).expect("input readable");
        seen.input = input.clone();
        let output: Vec<u8> = input.iter().map(u8::to_ascii_uppercase).take(out_len as usize).collect();
        let dst = match method {
            TransferMethod::Buffered => seen.system_buffer,
            TransferMethod::InDirect | TransferMethod::OutDirect => {
                let mdl = Mdl(Va::new(seen.mdl));
                let h = read_header(cpu, mdl)?;
                seen.mdl_flags = Some(h.flags);
                seen.mdl_process = h.process;
                mm_get_system_address_for_mdl_safe(cpu, mdl, PagePriority::Normal)?.expect("mapped").get()
            }
            TransferMethod::Neither => seen.user_buffer,
        };
        m.space().write(Va::new(dst), &output).expect("output writable");
        *self.seen.borrow_mut() = seen;
        irp.set_io_status(cpu, NtStatus::SUCCESS, output.len() as u64)?;
        io_complete_request(cpu, irp)?;
        Ok(Some(NtStatus::SUCCESS))
    }
}

fn upcase() -> Upcase {
    Upcase { seen: RefCell::new(Seen::default()) }
}

fn ioctl(method: TransferMethod, input: Va, input_length: u32, output: Va, output_length: u32) -> IoRequest {
    let code = ctl_code(FILE_DEVICE_UNKNOWN, 0x800 + method as u32, method, 0);
    IoRequest::DeviceControl(Ioctl { code, input, input_length, output, output_length })
}

#[test]
fn ctl_code_is_the_wdk_macro() {
    assert_eq!(ctl_code(0x22, 0x800, TransferMethod::Buffered, 0), 0x0022_2000);
    assert_eq!(ctl_code(0x22, 0x902, TransferMethod::OutDirect, 0), 0x0022_240A);
    assert_eq!(TransferMethod::of(0x0022_2403), TransferMethod::Neither);
}

#[test]
fn buffered_copies_in_to_a_system_buffer_and_back_out() {
    let m = boot();
    m.run(0, |cpu| {
        let d = device(cpu, DeviceFlags::empty());
        let p = ps_create_process(cpu, "app.exe")?.unwrap();
        let input = buffer(cpu, &p, b"hello, driver", 4096);
        let output = buffer(cpu, &p, &[0xEE; 32], 4096);
        let driver = upcase();
        let irps_before = m.pool().snapshot();
        let out = IoCall::new(d, ioctl(TransferMethod::Buffered, input, 13, output, 32))
            .from_process(&p)
            .send(cpu, &driver)?;
        assert!(out.reached_driver && out.completed);
        assert_eq!((out.status, out.information), (NtStatus::SUCCESS, 13));
        let seen = driver.seen.borrow().clone();
        assert_eq!(seen.major, Some(MajorFunction::DeviceControl));
        assert!(m.profile().layout.is_system(Va::new(seen.system_buffer)), "a system buffer");
        assert_eq!(seen.input, b"hello, driver");
        assert_eq!(seen.user_buffer, output.get());
        assert_eq!(seen.mdl, 0);
        assert_eq!(seen.lengths, (13, 32));
        let f = seen.flags.unwrap();
        assert!(f.contains(IrpFlags::BUFFERED_IO | IrpFlags::DEALLOCATE_BUFFER | IrpFlags::INPUT_OPERATION));
        let mut back = [0u8; 32];
        p.read(cpu, output, &mut back).unwrap();
        assert_eq!(&back[..13], b"HELLO, DRIVER");
        assert_eq!(back[13..], [0xEE; 19], "only Information bytes are copied back");
        // Everything the I/O manager allocated went back.
        let after = m.pool().snapshot();
        for tag in ["Irp ", "IoSB"] {
            let row = after.iter().find(|r| r.tag.to_string() == tag).expect(tag);
            let before = irps_before.iter().find(|r| r.tag == row.tag).map_or(0, |r| r.allocs - r.frees);
            assert_eq!(row.allocs - row.frees, before, "{tag} balanced");
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn out_direct_gives_an_mdl_that_aliases_the_user_buffer() {
    let m = boot();
    m.run(0, |cpu| {
        let d = device(cpu, DeviceFlags::empty());
        let p = ps_create_process(cpu, "app.exe")?.unwrap();
        let input = buffer(cpu, &p, b"direct", 4096);
        let output = buffer(cpu, &p, &[0; 8], 3 * 4096);
        let output = Va::new(output.get() + 0xFF8); // straddles a page boundary
        let driver = upcase();
        let out = IoCall::new(d, ioctl(TransferMethod::OutDirect, input, 6, output, 6))
            .from_process(&p)
            .send(cpu, &driver)?;
        assert_eq!((out.status, out.information), (NtStatus::SUCCESS, 6));
        let seen = driver.seen.borrow().clone();
        assert_ne!(seen.mdl, 0);
        let f = seen.mdl_flags.unwrap();
        assert!(f.contains(MdlFlags::PAGES_LOCKED | MdlFlags::WRITE_OPERATION), "{f:?}");
        assert_eq!(seen.mdl_process, p.object().get(), "charged to the caller");
        assert_eq!(seen.input, b"direct", "input still buffered");
        let mut back = [0u8; 6];
        p.read(cpu, output, &mut back).unwrap();
        assert_eq!(&back, b"DIRECT", "the driver wrote through the system mapping");
        assert_eq!(p.locked_pages(), 0, "completion unlocked the pages");
        Ok(())
    })
    .unwrap();
}

#[test]
fn in_direct_locks_the_output_buffer_for_read() {
    let m = boot();
    m.run(0, |cpu| {
        let d = device(cpu, DeviceFlags::empty());
        let p = ps_create_process(cpu, "app.exe")?.unwrap();
        let input = buffer(cpu, &p, b"x", 4096);
        let output = buffer(cpu, &p, &[0; 1], 4096);
        let driver = upcase();
        IoCall::new(d, ioctl(TransferMethod::InDirect, input, 1, output, 1)).from_process(&p).send(cpu, &driver)?;
        let f = driver.seen.borrow().mdl_flags.unwrap();
        assert!(f.contains(MdlFlags::PAGES_LOCKED) && !f.contains(MdlFlags::WRITE_OPERATION), "{f:?}");
        Ok(())
    })
    .unwrap();
}

#[test]
fn neither_passes_raw_user_pointers_in_the_callers_context() {
    let m = boot();
    m.run(0, |cpu| {
        let d = device(cpu, DeviceFlags::empty());
        let p = ps_create_process(cpu, "app.exe")?.unwrap();
        let input = buffer(cpu, &p, b"neither", 4096);
        let output = buffer(cpu, &p, &[0; 7], 4096);
        let driver = upcase();
        let out =
            IoCall::new(d, ioctl(TransferMethod::Neither, input, 7, output, 7)).from_process(&p).send(cpu, &driver)?;
        assert_eq!((out.status, out.information), (NtStatus::SUCCESS, 7));
        let seen = driver.seen.borrow().clone();
        assert_eq!((seen.type3, seen.user_buffer, seen.system_buffer, seen.mdl), (input.get(), output.get(), 0, 0));
        let mut back = [0u8; 7];
        p.read(cpu, output, &mut back).unwrap();
        assert_eq!(&back, b"NEITHER");
        Ok(())
    })
    .unwrap();
}

/// A driver that only records what it got and completes with `length` bytes.
struct Recorder(RefCell<Seen>);

impl Dispatch for Recorder {
    fn dispatch(
        &self,
        cpu: &Cpu<'_>,
        major: MajorFunction,
        _d: DeviceObject,
        irp: Irp,
    ) -> Result<Option<NtStatus>, BugCheck> {
        let sb = irp.system_buffer(cpu)?;
        if sb != 0 && major == MajorFunction::Read {
            cpu.machine().space().write(Va::new(sb), b"from device").unwrap();
        }
        let mdl = irp.mdl_address(cpu)?;
        *self.0.borrow_mut() = Seen {
            major: Some(major),
            system_buffer: sb,
            mdl,
            user_buffer: irp.user_buffer(cpu)?,
            mdl_flags: if mdl != 0 { Some(read_header(cpu, Mdl(Va::new(mdl)))?.flags) } else { None },
            ..Seen::default()
        };
        irp.set_io_status(cpu, NtStatus::SUCCESS, 11)?;
        io_complete_request(cpu, irp)?;
        Ok(Some(NtStatus::SUCCESS))
    }
}

#[test]
fn reads_and_writes_follow_the_device_flags() {
    let m = boot();
    m.run(0, |cpu| {
        let p = ps_create_process(cpu, "app.exe")?.unwrap();
        let buf = buffer(cpu, &p, &[0; 16], 4096);
        let read = IoRequest::Read { buffer: buf, length: 16, offset: 0 };
        let write = IoRequest::Write { buffer: buf, length: 16, offset: 0 };
        let r = Recorder(RefCell::new(Seen::default()));

        let buffered = device(cpu, DeviceFlags::BUFFERED_IO);
        IoCall::new(buffered, read).from_process(&p).send(cpu, &r)?;
        assert_ne!(r.0.borrow().system_buffer, 0);
        let mut back = [0u8; 11];
        p.read(cpu, buf, &mut back).unwrap();
        assert_eq!(&back, b"from device", "a buffered read is copied back");

        let direct = device(cpu, DeviceFlags::DIRECT_IO);
        IoCall::new(direct, read).from_process(&p).send(cpu, &r)?;
        assert!(r.0.borrow().mdl_flags.unwrap().contains(MdlFlags::WRITE_OPERATION), "read: IoWriteAccess");
        IoCall::new(direct, write).from_process(&p).send(cpu, &r)?;
        assert!(!r.0.borrow().mdl_flags.unwrap().contains(MdlFlags::WRITE_OPERATION), "write: IoReadAccess");

        let neither = device(cpu, DeviceFlags::empty());
        IoCall::new(neither, write).from_process(&p).send(cpu, &r)?;
        let seen = r.0.borrow().clone();
        assert_eq!((seen.system_buffer, seen.mdl, seen.user_buffer), (0, 0, buf.get()));
        assert_eq!(seen.major, Some(MajorFunction::Write));
        Ok(())
    })
    .unwrap();
}

#[test]
fn a_bad_user_buffer_fails_before_the_driver_sees_it() {
    let m = boot();
    m.run(0, |cpu| {
        let d = device(cpu, DeviceFlags::empty());
        let p = ps_create_process(cpu, "app.exe")?.unwrap();
        let output = buffer(cpu, &p, &[0; 4], 4096);
        let r = Recorder(RefCell::new(Seen::default()));
        let system = Va::new(m.profile().layout.system_start.get() + 0x1000);
        for method in [TransferMethod::Buffered, TransferMethod::OutDirect] {
            let out = IoCall::new(d, ioctl(method, system, 4, output, 4)).from_process(&p).send(cpu, &r)?;
            assert!(!out.reached_driver);
            assert_eq!(out.status, NtStatus::ACCESS_VIOLATION, "{method:?}");
        }
        assert_eq!(p.locked_pages(), 0);
        Ok(())
    })
    .unwrap();
}

#[test]
fn a_buffer_freed_while_in_the_driver() {
    let m = boot();
    m.run(0, |cpu| {
        let d = device(cpu, DeviceFlags::empty());
        let p = ps_create_process(cpu, "app.exe")?.unwrap();
        let input = buffer(cpu, &p, b"abc", 4096);
        // Direct: the locked pages stay; the driver writes them through its mapping.
        let output = buffer(cpu, &p, &[0; 3], 4096);
        let driver = upcase();
        let out = IoCall::new(d, ioctl(TransferMethod::OutDirect, input, 3, output, 3))
            .from_process(&p)
            .while_in_driver(BufferAction::Free)
            .send(cpu, &driver)?;
        assert_eq!(out.status, NtStatus::SUCCESS);
        assert_eq!(p.read(cpu, output, &mut [0u8; 3]), Err(NtStatus::ACCESS_VIOLATION), "decommitted");
        assert_eq!(p.locked_pages(), 0);
        // Buffered: the driver is unaffected; the copy back faults.
        let output = buffer(cpu, &p, &[0; 3], 4096);
        let out = IoCall::new(d, ioctl(TransferMethod::Buffered, input, 3, output, 3))
            .from_process(&p)
            .while_in_driver(BufferAction::Protect(PageProtection::ReadOnly))
            .send(cpu, &driver)?;
        assert_eq!(out.returned, NtStatus::SUCCESS);
        assert_eq!(out.status, NtStatus::ACCESS_VIOLATION, "the copy back to a read-only buffer faulted");
        Ok(())
    })
    .unwrap();
}

struct NoRoutine;

impl Dispatch for NoRoutine {
    fn dispatch(&self, _: &Cpu<'_>, _: MajorFunction, _: DeviceObject, _: Irp) -> Result<Option<NtStatus>, BugCheck> {
        Ok(None)
    }
}

/// Completes every IRP twice.
struct Twice;

impl Dispatch for Twice {
    fn dispatch(
        &self,
        cpu: &Cpu<'_>,
        _: MajorFunction,
        _: DeviceObject,
        irp: Irp,
    ) -> Result<Option<NtStatus>, BugCheck> {
        io_complete_request(cpu, irp)?;
        io_complete_request(cpu, irp)?;
        Ok(Some(NtStatus::SUCCESS))
    }
}

#[test]
fn no_dispatch_routine_and_double_completion() {
    let m = boot();
    let irp = m
        .run(0, |cpu| {
            let d = device(cpu, DeviceFlags::empty());
            let req = ioctl(TransferMethod::Neither, Va::new(0), 0, Va::new(0), 0);
            let out = IoCall::new(d, req).send(cpu, &NoRoutine)?;
            assert_eq!(out.status, NtStatus::INVALID_DEVICE_REQUEST);
            IoCall::new(d, req).send(cpu, &Twice)
        })
        .unwrap_err();
    assert_eq!(irp.code, BugCheckCode::MULTIPLE_IRP_COMPLETE_REQUESTS);
}

#[test]
fn device_objects_are_byte_exact_and_linked() {
    let m = boot();
    m.run(0, |cpu| {
        let new = NewDevice {
            driver: 0xABC0,
            extension_size: 40,
            device_type: FILE_DEVICE_UNKNOWN,
            characteristics: 0x100,
            exclusive: true,
        };
        let a = io_create_device(cpu, new)?.unwrap();
        let b = io_create_device(cpu, new)?.unwrap();
        let mut raw = [0u8; 0x50];
        m.space().read(a.0, &mut raw).unwrap();
        assert_eq!(u16::from_le_bytes([raw[0], raw[1]]), 3, "IO_TYPE_DEVICE");
        assert_eq!(u64::from_le_bytes(raw[8..16].try_into().unwrap()), 0xABC0, "DriverObject");
        assert_eq!(a.flags(cpu)?, DeviceFlags::DEVICE_INITIALIZING | DeviceFlags::EXCLUSIVE);
        assert_eq!(a.extension(cpu)?, Va::new(a.0.get() + 0x150));
        assert_eq!(u32::from_le_bytes(raw[0x48..0x4C].try_into().unwrap()), FILE_DEVICE_UNKNOWN);
        assert_eq!(raw[0x4C], 1, "StackSize");
        assert_eq!(b.next_device(cpu)?, a.0.get(), "newest first");
        assert_eq!(m.io().devices_of(0xABC0), vec![a, b]);
        assert_eq!(io_delete_device(cpu, b)?, (0xABC0, Some(a)));
        assert_eq!(io_delete_device(cpu, a)?, (0xABC0, None));
        Ok(())
    })
    .unwrap();
}
