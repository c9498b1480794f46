//! The pool routines under their WDK names (`ExAllocatePoolWithTag` and
//! friends), over [`Pool`]; each says which routine it is.

use ntmem_machine::Va;

use super::*;

/// Driver Verifier's hook for `NonPagedPoolMustSucceed`: with any verifier option
/// on, a must-succeed request is fatal (seed 000 §7.1: "The Driver Verifier flags
/// any pool allocation that is specified as NonPagedPoolMustSucceed as fatal";
/// BAD_POOL_CALLER (0x9A, pool type, bytes, tag), Microsoft's bug check 0xC2
/// page). Without the verifier the request is served like `NonPagedPool`.
pub fn verifier_must_succeed(cpu: &Cpu<'_>, pool_type: PoolType, bytes: u64, tag: PoolTag) -> Option<BugCheck> {
    (!cpu.machine().verifier().is_empty()).then(|| {
        cpu.machine()
            .bugcheck(BugCheckCode::BAD_POOL_CALLER, [0x9A, u64::from(pool_type.raw()), bytes, u64::from(tag.0)])
    })
}

/// `ExAllocatePoolWithTag`: `bytes` of `pool_type` pool tagged `tag`; `None` is
/// NULL (no memory). Not zeroed.
///
/// # Errors
/// The bugchecks of [`checks::caller`]: bad IRQL (8), zero bytes (0), tag 0 (0x9B),
/// "BIG " (0x9C), no letter or digit (0x9D); MUST_SUCCEED_POOL_EMPTY (0x41).
pub fn allocate(cpu: &Cpu<'_>, pool_type: PoolType, bytes: u64, tag: PoolTag) -> Result<Option<Va>, BugCheck> {
    let pool = cpu.machine().pool();
    if let Some(va) = pool.allocate_cached(cpu, pool_type, bytes, tag.0) {
        return Ok(Some(va));
    }
    Ok(pool.allocate(cpu, pool_type, bytes, tag.0, PLAIN)?.ok())
}

/// [`allocate`] from special pool when the block fits one (a page of its own against
/// a guard page, freed inaccessible), whatever the options: Driver Verifier's I/O
/// verification takes the IRPs of `IoAllocateIrp` from there (research note
/// `dma-verifier-views.md` §3.7). Normal pool when special pool is exhausted.
///
/// # Errors
/// As [`allocate`].
pub fn allocate_special(cpu: &Cpu<'_>, pool_type: PoolType, bytes: u64, tag: PoolTag) -> Result<Option<Va>, BugCheck> {
    let req = Request { special: true, ..PLAIN };
    Ok(cpu.machine().pool().allocate(cpu, pool_type, bytes, tag.0, req)?.ok())
}

/// `ExAllocatePool`: [`allocate`] with the tag "None".
///
/// # Errors
/// As [`allocate`].
pub fn allocate_untagged(cpu: &Cpu<'_>, pool_type: PoolType, bytes: u64) -> Result<Option<Va>, BugCheck> {
    allocate(cpu, pool_type, bytes, PoolTag::NONE)
}

/// `ExAllocatePoolWithTagPriority`: as [`allocate`], but refused early when the
/// pool or memory is short for `priority` (thresholds in the module docs).
///
/// # Errors
/// As [`allocate`].
pub fn allocate_with_priority(
    cpu: &Cpu<'_>,
    pool_type: PoolType,
    bytes: u64,
    tag: PoolTag,
    priority: PoolPriority,
) -> Result<Option<Va>, BugCheck> {
    let req = Request { priority, ..PLAIN };
    Ok(cpu.machine().pool().allocate(cpu, pool_type, bytes, tag.0, req)?.ok())
}

/// `ExAllocatePoolWithQuotaTag`: as [`allocate`], charging `process` (the block's
/// size incl. header, or its pages). On failure raises STATUS_INSUFFICIENT_RESOURCES
/// (no memory) or STATUS_QUOTA_EXCEEDED (over the process's limit), or returns NULL
/// with [`OnQuotaFailure::ReturnNull`] (`POOL_QUOTA_FAIL_INSTEAD_OF_RAISE`).
///
/// # Errors
/// As [`allocate`].
pub fn allocate_with_quota(
    cpu: &Cpu<'_>,
    pool_type: PoolType,
    bytes: u64,
    tag: PoolTag,
    process: &QuotaProcess,
    on_failure: OnQuotaFailure,
) -> Result<Raising, BugCheck> {
    let req = Request { quota: Some(process), ..PLAIN };
    Ok(match cpu.machine().pool().allocate(cpu, pool_type, bytes, tag.0, req)? {
        Ok(va) => Ok(Some(va)),
        Err(_) if on_failure == OnQuotaFailure::ReturnNull => Ok(None),
        Err(Failure::NoMemory) => Err(Raise(NtStatus::INSUFFICIENT_RESOURCES)),
        Err(Failure::Quota) => Err(Raise(NtStatus::QUOTA_EXCEEDED)),
    })
}

/// `ExAllocatePool2`: zeroed unless `POOL_FLAG_UNINITIALIZED`; NULL for an
/// invalid flag combination ([`PoolFlags`]), or raises STATUS_INSUFFICIENT_RESOURCES
/// with `POOL_FLAG_RAISE_ON_FAILURE`. `POOL_FLAG_USE_QUOTA` needs a process: pass
/// it as `process` (without one the flag makes the call fail: there is no current
/// process yet).
///
/// # Errors
/// As [`allocate`].
pub fn allocate2(
    cpu: &Cpu<'_>,
    flags: PoolFlags,
    bytes: u64,
    tag: PoolTag,
    process: Option<&QuotaProcess>,
) -> Result<Raising, BugCheck> {
    allocate3(cpu, flags, bytes, tag, PoolPriority::High, process)
}

/// `ExAllocatePool3`: [`allocate2`] at `priority` (a `PoolExtendedParameterPriority`
/// parameter; `ExAllocatePool2` allocates at HighPoolPriority). The C boundary reads
/// the extended parameters.
///
/// # Errors
/// As [`allocate`].
pub fn allocate3(
    cpu: &Cpu<'_>,
    flags: PoolFlags,
    bytes: u64,
    tag: PoolTag,
    priority: PoolPriority,
    process: Option<&QuotaProcess>,
) -> Result<Raising, BugCheck> {
    let Some(r) = flags.decode() else { return Ok(Ok(None)) };
    if r.quota && process.is_none() {
        return Ok(Ok(None));
    }
    let req = Request { zero: r.zero, priority, quota: if r.quota { process } else { None }, special: false };
    Ok(match cpu.machine().pool().allocate(cpu, r.pool_type, bytes, tag.0, req)? {
        Ok(va) => Ok(Some(va)),
        Err(_) if r.raise => Err(Raise(NtStatus::INSUFFICIENT_RESOURCES)),
        Err(_) => Ok(None),
    })
}

/// `ExFreePoolWithTag` (`tag` = Some) or `ExFreePool` (`None`, which is tag 0).
/// Under I/O verification an IRP the driver allocated is DRIVER_VERIFIER_DETECTED_VIOLATION
/// 0x105 (Microsoft, "Bug Check 0xC4").
/// A protected allocation (tag bit 31) must be freed with its exact tag.
///
/// # Errors
/// BAD_POOL_CALLER: user address (0x40), not pool (0x42), bad IRQL (9), already
/// freed (7), wrong tag (0xA), non-allocated address (0x44 / 0x50 / 0x41286),
/// misaligned (0x99), bad quota process (0xD); BAD_POOL_HEADER: 5, 6, 7, 8, 9,
/// 0x20, 0x22 ([`checks`]).
pub fn free(cpu: &Cpu<'_>, va: Va, tag: Option<PoolTag>) -> Result<(), BugCheck> {
    let m = cpu.machine();
    // I/O verification: a driver's IRP goes back through IoFreeIrp (0xC4/0x105).
    if m.verifier().contains(crate::vf::VerifierFlags::IO_VERIFICATION) && m.io().is_allocated_irp(va.get()) {
        return Err(crate::vf::Violation::IrpFreedAsPool { irp: va.get() }.stop(m));
    }
    // Deadlock detection: the locks in the block go with it (0xC4/0x100B if held).
    if m.verifier().contains(crate::vf::VerifierFlags::DEADLOCK_DETECTION) {
        let bytes = query_block_size(cpu, va).map_or(0, |b| b.bytes);
        m.vf().memory_freed(va.get(), bytes).map_err(|v| v.stop(m))?;
    }
    cpu.machine().pool().free(cpu, va.get(), tag.map_or(0, |t| t.0))?;
    cpu.machine().vf().freed(va.get());
    Ok(())
}

/// `ExQueryPoolBlockSize`: the usable bytes of the block at `va` and whether a
/// process was charged for it; `None` when `va` is not an allocated block.
pub fn query_block_size(cpu: &Cpu<'_>, va: Va) -> Option<BlockSize> {
    cpu.machine().pool().query(cpu, va.get())
}

/// The POOL_HEADER in front of the small block at `va` (what `!pool` reads).
pub fn header_of(cpu: &Cpu<'_>, va: Va) -> PoolHeader {
    let pool = cpu.machine().pool();
    pool.mem(cpu).header(va.get() - pool.g.unit)
}
