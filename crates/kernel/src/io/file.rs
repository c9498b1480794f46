//! Opening devices by name, and file objects (learn.microsoft.com "FILE_OBJECT
//! structure (wdm.h)", "IRP_MJ_CREATE", "IRP_MJ_CLEANUP", "IRP_MJ_CLOSE",
//! "Introduction to File Objects", "Controlling Device Access").
//!
//! A device named by `IoCreateDevice` (`\Device\X`) is found by its name, or through
//! a symbolic link (`\DosDevices\X`, `\??\X`, or as user mode spells it, `\\.\X`);
//! names compare without case. Each open makes a `FILE_OBJECT` in nonpaged pool
//! (tag "File"), in the **x64 layout** (0xD8 bytes): `Type` 0x00 (5,
//! IO_TYPE_FILE), `Size` 0x02, `DeviceObject` 0x08, `FsContext` 0x18 and
//! `FsContext2` 0x20 (the driver's, zero at first), `ReadAccess`..`SharedDelete`
//! 0x4A–0x4F, `FileName` 0x58 (the remainder of the name after the device's: empty
//! when the device itself is opened). The I/O manager then sends IRP_MJ_CREATE
//! with the file object in the stack location; a create that fails frees it. Closing
//! the last handle sends IRP_MJ_CLEANUP, dropping the last reference IRP_MJ_CLOSE,
//! and the file object is freed after the close. A scenario's handle holds the only
//! reference, so both follow its close at once; a file object
//! `IoGetDeviceObjectPointer` opened for a driver is referenced by the object
//! manager, and its close waits for the driver's last `ObDereferenceObject`.
//!
//! An exclusive device (`DO_EXCLUSIVE`) that is already open refuses another open
//! with STATUS_ACCESS_DENIED, as the I/O manager does before the driver sees it.

use std::sync::Arc;

use ntmem_machine::Va;

use super::device::{write_bytes, DeviceFlags, DeviceObject};
use super::request::{IoCall, IoOutcome, IoRequest};
use crate::bugcheck::BugCheck;
use crate::ex::pool::{self, NtStatus, PoolTag, PoolType};
use crate::ke::processor::Cpu;
use crate::mm::process::Process;
use crate::rtl::string::upcase;

/// `sizeof(FILE_OBJECT)` on x64.
pub const FILE_OBJECT_SIZE: u64 = 0xD8;
/// `IO_TYPE_FILE`.
pub const IO_TYPE_FILE: u16 = 5;
/// Pool tag of file objects ("File").
pub const FILE_TAG: PoolTag = PoolTag::new(*b"File");

const OFF_DEVICE: u64 = 0x08;
const OFF_READ_ACCESS: u64 = 0x4A;
const OFF_FILE_NAME: u64 = 0x58;

// The fields written lie inside the x64 FILE_OBJECT (include/ntmem/io.h asserts the C
// side: FsContext at 0x18, FileName at 0x58, size 0xD8).
const _: () = assert!(OFF_FILE_NAME + 0x10 <= FILE_OBJECT_SIZE && OFF_READ_ACCESS + 6 <= OFF_FILE_NAME);

impl NtStatus {
    /// `STATUS_ACCESS_DENIED`: an exclusive device already open.
    pub const ACCESS_DENIED: NtStatus = NtStatus(0xC000_0022);
}

/// `FILE_READ_DATA` / `FILE_WRITE_DATA` / `DELETE` and the generic rights that
/// include them (`GENERIC_READ`, `GENERIC_WRITE`, `GENERIC_ALL`): what a file
/// object's `ReadAccess`, `WriteAccess` and `DeleteAccess` record.
const READ_RIGHTS: u32 = 0x0001 | 0x8000_0000 | 0x1000_0000;
const WRITE_RIGHTS: u32 = 0x0002 | 0x0004 | 0x4000_0000 | 0x1000_0000;
const DELETE_RIGHTS: u32 = 0x0001_0000 | 0x1000_0000;

/// A file object: its address (`PFILE_OBJECT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileObject(pub Va);

/// What `CreateFile` / `ZwCreateFile` ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenRequest {
    /// `DesiredAccess` (ACCESS_MASK).
    pub access: u32,
    /// `ShareAccess` (`FILE_SHARE_*`).
    pub share: u32,
    /// `CreateDisposition` (high byte of `Parameters.Create.Options`) and
    /// `CreateOptions` (its low 24 bits).
    pub options: u32,
}

/// An open file: its object, the device, and the process that opened it.
#[derive(Clone, Debug)]
pub struct OpenFile {
    /// The file object.
    pub file: FileObject,
    /// The device it is open on.
    pub device: DeviceObject,
    /// The caller (None: kernel code).
    pub process: Option<Arc<Process>>,
}

/// The name with user mode's `\\.\` read as `\??\` (the Win32 device namespace);
/// its case is kept (lookups upcase, the rest of a name reaches the driver as
/// written).
fn canonical(name: &str) -> String {
    match name.strip_prefix("\\\\.\\") {
        Some(rest) => format!("\\??\\{rest}"),
        None => name.to_string(),
    }
}

/// `name` upcased as the object manager compares names.
pub(crate) fn upcased(name: &str) -> String {
    String::from_utf16_lossy(&name.encode_utf16().map(upcase).collect::<Vec<_>>())
}

/// The device `name` reaches (following at most a few symbolic links), and what
/// remains of the name after the device's own (`FileName`).
///
/// # Errors
/// STATUS_OBJECT_NAME_INVALID for a name that is not a full path;
/// STATUS_OBJECT_NAME_NOT_FOUND when nothing has that name.
pub fn resolve(cpu: &Cpu<'_>, name: &str) -> Result<(DeviceObject, String), NtStatus> {
    let io = cpu.machine().io();
    let mut name = canonical(name);
    for _ in 0..8 {
        if !name.starts_with('\\') {
            return Err(NtStatus::OBJECT_NAME_INVALID);
        }
        if let Some((device, rest)) = io.device_by_path(&name) {
            return Ok((device, rest));
        }
        // A link names the whole path or its first components (`\??\X\rest`).
        let split = name.match_indices('\\').map(|(i, _)| i).skip(1).chain([name.len()]);
        let mut next = None;
        for end in split {
            let utf16: Vec<u16> = name[..end].encode_utf16().collect();
            if let Some(target) = io.symbolic_links().target(&utf16) {
                next = Some(format!("{}{}", canonical(target), &name[end..]));
            }
        }
        name = next.ok_or(NtStatus::OBJECT_NAME_NOT_FOUND)?;
    }
    Err(NtStatus::OBJECT_NAME_NOT_FOUND)
}

/// The first half of an open: resolves `name` and makes the file object. Inner
/// `Err`: the status the open fails with before the driver sees it (no such name,
/// an exclusive device already open, no pool). Then send
/// [`IoRequest::Create`] with [`IoCall::on_file`] and finish with [`end_open`].
///
/// # Errors
/// A bugcheck from the pool.
pub fn begin_open(
    cpu: &Cpu<'_>,
    name: &str,
    request: OpenRequest,
) -> Result<Result<(DeviceObject, FileObject), NtStatus>, BugCheck> {
    let (device, rest) = match resolve(cpu, name) {
        Ok(found) => found,
        Err(status) => return Ok(Err(status)),
    };
    if device.flags(cpu)?.contains(DeviceFlags::EXCLUSIVE) && cpu.machine().io().open_count(device) > 0 {
        return Ok(Err(NtStatus::ACCESS_DENIED));
    }
    Ok(new_file_object(cpu, device, &rest, request)?.map(|f| (device, f)).ok_or(NtStatus::INSUFFICIENT_RESOURCES))
}

/// The second half: a create the driver completed with success makes the file
/// open (its handle counted); otherwise the file object is freed.
///
/// # Errors
/// A bugcheck from the pool.
pub fn end_open(
    cpu: &Cpu<'_>,
    device: DeviceObject,
    file: FileObject,
    caller: Option<&Arc<Process>>,
    outcome: &IoOutcome,
) -> Result<Option<OpenFile>, BugCheck> {
    if outcome.completed && !outcome.status.is_error() {
        let open = OpenFile { file, device, process: caller.cloned() };
        cpu.machine().io().files().push(open.clone());
        Ok(Some(open))
    } else {
        free_file_object(cpu, file)?;
        Ok(None)
    }
}

/// The IRP_MJ_CREATE of an open.
pub fn create_call(
    device: DeviceObject,
    file: FileObject,
    request: OpenRequest,
    caller: Option<&Arc<Process>>,
) -> IoCall {
    let call = IoCall::new(device, IoRequest::Create(request)).on_file(file);
    match caller {
        Some(p) => call.from_process(p),
        None => call,
    }
}

/// The IRP_MJ_CLEANUP and IRP_MJ_CLOSE that closing `open`'s handle sends, in order.
pub fn close_calls(open: &OpenFile) -> [IoCall; 2] {
    [IoRequest::Cleanup, IoRequest::Close].map(|request| {
        let call = IoCall::new(open.device, request).on_file(open.file);
        match &open.process {
            Some(p) => call.from_process(p),
            None => call,
        }
    })
}

/// After the close: the file is no longer open and its object is freed.
///
/// # Errors
/// A bugcheck from the pool.
pub fn end_close(cpu: &Cpu<'_>, open: &OpenFile) -> Result<(), BugCheck> {
    cpu.machine().io().files().retain(|f| f.file != open.file);
    free_file_object(cpu, open.file)
}

/// A zeroed FILE_OBJECT for `device`, with its access, sharing and file name.
fn new_file_object(
    cpu: &Cpu<'_>,
    device: DeviceObject,
    rest: &str,
    request: OpenRequest,
) -> Result<Option<FileObject>, BugCheck> {
    let name: Vec<u8> = rest.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let name_len = u16::try_from(name.len()).unwrap_or(0xFFFE);
    let size = FILE_OBJECT_SIZE + u64::from(name_len);
    let Some(block) = pool::allocate(cpu, PoolType::NonPagedPool, size, FILE_TAG)? else { return Ok(None) };
    let mut b = vec![0u8; size as usize];
    let put = |b: &mut [u8], off: u64, v: &[u8]| b[off as usize..off as usize + v.len()].copy_from_slice(v);
    put(&mut b, 0, &IO_TYPE_FILE.to_le_bytes());
    put(&mut b, 2, &(FILE_OBJECT_SIZE as u16).to_le_bytes());
    put(&mut b, OFF_DEVICE, &device.0.get().to_le_bytes());
    let has = |rights: u32| u8::from(request.access & rights != 0);
    let shares = |bit: u32| u8::from(request.share & bit != 0);
    let access = [has(READ_RIGHTS), has(WRITE_RIGHTS), has(DELETE_RIGHTS), shares(1), shares(2), shares(4)];
    put(&mut b, OFF_READ_ACCESS, &access);
    put(&mut b, OFF_FILE_NAME, &name_len.to_le_bytes());
    put(&mut b, OFF_FILE_NAME + 2, &name_len.to_le_bytes());
    let buffer = if name_len > 0 { block.get() + FILE_OBJECT_SIZE } else { 0 };
    put(&mut b, OFF_FILE_NAME + 8, &buffer.to_le_bytes());
    put(&mut b, FILE_OBJECT_SIZE, &name[..usize::from(name_len)]);
    write_bytes(cpu, block, &b)?;
    Ok(Some(FileObject(block)))
}

fn free_file_object(cpu: &Cpu<'_>, file: FileObject) -> Result<(), BugCheck> {
    pool::free(cpu, file.0, Some(FILE_TAG))
}
