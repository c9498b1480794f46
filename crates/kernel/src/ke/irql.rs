//! Interrupt request levels (seed 000 §5.1; WDK `wdm.h` `*_LEVEL` constants).
//!
//! IRQL is per processor. The named levels differ between 32-bit and 64-bit
//! Windows above DISPATCH_LEVEL; [`IrqlLevels`] gives each architecture's values.

use std::fmt;

use ntmem_machine::Arch;

/// A processor's interrupt request level (`KIRQL`, a UCHAR).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Irql(pub u8);

impl Irql {
    /// PASSIVE_LEVEL (0): threads run here; everything may be touched.
    pub const PASSIVE: Irql = Irql(0);
    /// APC_LEVEL (1): the highest level at which paged memory may be touched.
    pub const APC: Irql = Irql(1);
    /// DISPATCH_LEVEL (2): the scheduler is off; page faults are fatal.
    pub const DISPATCH: Irql = Irql(2);
    /// The lowest device IRQL (DIRQL) on every architecture.
    pub const FIRST_DEVICE: Irql = Irql(3);
}

impl fmt::Debug for Irql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => write!(f, "PASSIVE_LEVEL"),
            1 => write!(f, "APC_LEVEL"),
            2 => write!(f, "DISPATCH_LEVEL"),
            n => write!(f, "IRQL {n}"),
        }
    }
}

/// The levels above DISPATCH_LEVEL, per architecture (`wdm.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqlLevels {
    /// PROFILE_LEVEL.
    pub profile: Irql,
    /// CLOCK_LEVEL (CLOCK2_LEVEL on x86).
    pub clock: Irql,
    /// IPI_LEVEL.
    pub ipi: Irql,
    /// HIGH_LEVEL: the top.
    pub high: Irql,
}

impl IrqlLevels {
    /// x86: PROFILE 27, CLOCK2 28, IPI 29, HIGH 31. x64 and IA-64: PROFILE 15,
    /// CLOCK 13, IPI 14, HIGH 15 (`wdm.h`).
    pub const fn of(arch: Arch) -> IrqlLevels {
        match arch {
            Arch::X86 => IrqlLevels { profile: Irql(27), clock: Irql(28), ipi: Irql(29), high: Irql(31) },
            Arch::X64 | Arch::Ia64 => IrqlLevels { profile: Irql(15), clock: Irql(13), ipi: Irql(14), high: Irql(15) },
        }
    }
}
