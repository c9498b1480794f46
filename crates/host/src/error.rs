//! Errors of the host layer. Upper layers convert them once, at their own edge (an
//! NTSTATUS, a failed boot, an exit code).

/// What went wrong in a host operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The requested fixed address range is already mapped in the host process.
    #[error("address range {addr:#x}..+{len:#x} is already in use in the host process")]
    AddressInUse { addr: usize, len: usize },
    /// A system call failed.
    #[error("{op} failed: {}", std::io::Error::from_raw_os_error(*errno))]
    Os { op: &'static str, errno: i32 },
    /// An address, offset or length is not a multiple of the host page size (or of the
    /// requested alignment), or is zero where a length is needed.
    #[error("{what} {value:#x} is not a non-zero multiple of {align:#x}")]
    Misaligned { what: &'static str, value: u64, align: u64 },
    /// A range does not lie inside the object it refers to.
    #[error("range {offset:#x}..+{len:#x} is outside {limit:#x} bytes")]
    OutOfRange { offset: u64, len: u64, limit: u64 },
    /// All slots of the fault-range table are taken.
    #[error("all {capacity} fault-range slots are in use")]
    TooManyFaultRanges { capacity: usize },
    /// The range overlaps one that is already registered for faults.
    #[error("fault range {start:#x}..+{len:#x} overlaps a registered range")]
    FaultRangeOverlap { start: usize, len: usize },
}
