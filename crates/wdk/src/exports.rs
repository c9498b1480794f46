//! The export table: every routine and variable ntmem exports to drivers, once.
//!
//! Each row names the DLL a driver imports it from (`ntoskrnl.exe` or `HAL.dll`,
//! as the WDK's import libraries do), its WDK name, whether it is a routine or a
//! variable, the highest IRQL Microsoft's documentation allows a caller (the
//! "IRQL" row of each routine's page on learn.microsoft.com), and where ntmem
//! differs from Windows, if anywhere. From it come the import libraries drivers
//! link against ([`import_libraries`]), the check that `include/` declares
//! exactly what is exported, and `ntmem api`.
//!
//! The routines themselves live in the module of their prefix ([`crate::ex`],
//! [`crate::ke`], [`crate::mm`], …).

use ntmem_toolchain::ImportLibrary;

/// The DLL a driver imports a name from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Dll {
    /// `ntoskrnl.exe`: the kernel.
    Ntoskrnl,
    /// `HAL.dll`: the hardware abstraction layer (I/O ports, stalls).
    Hal,
}

impl Dll {
    /// The name drivers import it by.
    pub fn file_name(self) -> &'static str {
        match self {
            Dll::Ntoskrnl => "ntoskrnl.exe",
            Dll::Hal => "HAL.dll",
        }
    }
}

/// A routine or a variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Kind {
    /// Called through its import thunk.
    Routine,
    /// Read through its import: bound to the variable's address.
    Data,
}

/// The highest IRQL a caller may be at, as documented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum MaxIrql {
    /// Any IRQL.
    Any,
    /// PASSIVE_LEVEL.
    Passive,
    /// APC_LEVEL or below.
    Apc,
    /// DISPATCH_LEVEL or below.
    Dispatch,
    /// Below DISPATCH_LEVEL for paged memory or user buffers, DISPATCH_LEVEL otherwise.
    DependsOnMemory,
    /// Exactly DISPATCH_LEVEL (a release that lowers).
    AtDispatch,
}

impl MaxIrql {
    /// As the documentation writes it.
    pub fn text(self) -> &'static str {
        match self {
            MaxIrql::Any => "any",
            MaxIrql::Passive => "PASSIVE_LEVEL",
            MaxIrql::Apc => "<= APC_LEVEL",
            MaxIrql::Dispatch => "<= DISPATCH_LEVEL",
            MaxIrql::DependsOnMemory => "<= APC_LEVEL (<= DISPATCH_LEVEL for nonpaged memory)",
            MaxIrql::AtDispatch => "DISPATCH_LEVEL",
        }
    }
}

/// One exported name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Export {
    /// Where drivers import it from.
    pub dll: Dll,
    /// Its WDK name.
    pub name: &'static str,
    /// Routine or variable.
    pub kind: Kind,
    /// The highest IRQL a caller may be at.
    pub irql: MaxIrql,
    /// Where ntmem differs from Windows ("" when it does not).
    pub differs: &'static str,
}

impl Export {
    /// The NT component its prefix names (`Ex`, `Ke`, `Mm`, `Io`, `Rtl`, …).
    pub fn component(&self) -> &'static str {
        const PREFIXES: &[&str] = &["Rtl", "Ex", "Ke", "Kf", "Mm", "Io", "Ob", "Ps", "Zw", "Po", "Dbg", "Kd", "Probe"];
        let prefix = PREFIXES.iter().find(|p| self.name.starts_with(*p)).copied();
        match prefix {
            Some("Kf") => "Ke",
            Some("Probe") => "Mm",
            Some(p) => p,
            None if self.name.starts_with("READ_") || self.name.starts_with("WRITE_") => "Hal",
            None => "CRT",
        }
    }
}

macro_rules! exports {
    ($($dll:ident $kind:ident $name:ident $irql:ident $($differs:literal)?;)*) => {
        /// Every exported name, in the order of this file.
        pub const EXPORTS: &[Export] = &[$(Export {
            dll: Dll::$dll,
            name: stringify!($name),
            kind: Kind::$kind,
            irql: MaxIrql::$irql,
            differs: concat!("" $(, $differs)?),
        }),*];
    };
}

exports! {
    Ntoskrnl Routine ExAllocatePoolWithTag DependsOnMemory;
    Ntoskrnl Routine ExAllocatePool DependsOnMemory;
    Ntoskrnl Routine ExAllocatePoolWithTagPriority DependsOnMemory;
    Ntoskrnl Routine ExAllocatePoolWithQuotaTag DependsOnMemory "quota is charged to the System process";
    Ntoskrnl Routine ExAllocatePool2 DependsOnMemory;
    Ntoskrnl Routine ExFreePoolWithTag DependsOnMemory;
    Ntoskrnl Routine ExFreePool DependsOnMemory;
    Ntoskrnl Routine ExQueryPoolBlockSize Dispatch;
    Ntoskrnl Routine ExInitializeNPagedLookasideList Dispatch;
    Ntoskrnl Routine ExInitializePagedLookasideList Apc;
    Ntoskrnl Routine ExInitializeLookasideListEx Dispatch;
    Ntoskrnl Routine ExAllocateFromLookasideListEx Dispatch;
    Ntoskrnl Routine ExFreeToLookasideListEx Dispatch;
    Ntoskrnl Routine ExDeleteLookasideListEx Dispatch;
    Ntoskrnl Routine ExRaiseStatus Dispatch;
    Ntoskrnl Routine ExRaiseAccessViolation Dispatch;
    Ntoskrnl Routine ExRaiseDatatypeMisalignment Dispatch;
    Ntoskrnl Routine KeGetCurrentIrql Any;
    Ntoskrnl Routine KfRaiseIrql Any;
    Ntoskrnl Routine KeLowerIrql Any;
    Ntoskrnl Routine KeInitializeSpinLock Any;
    Ntoskrnl Routine KeAcquireSpinLockRaiseToDpc Dispatch;
    Ntoskrnl Routine KeReleaseSpinLock AtDispatch;
    Ntoskrnl Routine IoCreateDevice Passive;
    Ntoskrnl Routine IoDeleteDevice Passive;
    Ntoskrnl Routine IofCompleteRequest Dispatch;
    Ntoskrnl Routine IoCreateSymbolicLink Passive "links are recorded, not yet resolved to open devices";
    Ntoskrnl Routine IoDeleteSymbolicLink Passive;
    Ntoskrnl Routine IoAttachDeviceToDeviceStack Passive;
    Ntoskrnl Routine IoDetachDevice Passive;
    Ntoskrnl Routine IoAllocateMdl Dispatch;
    Ntoskrnl Routine IoFreeMdl Dispatch;
    Ntoskrnl Routine MmProbeAndLockPages DependsOnMemory;
    Ntoskrnl Routine MmUnlockPages Dispatch;
    Ntoskrnl Routine MmMapLockedPagesSpecifyCache DependsOnMemory;
    Ntoskrnl Routine MmUnmapLockedPages DependsOnMemory;
    Ntoskrnl Routine MmAllocateMappingAddress Apc;
    Ntoskrnl Routine MmFreeMappingAddress Apc;
    Ntoskrnl Routine MmMapLockedPagesWithReservedMapping Dispatch;
    Ntoskrnl Routine MmUnmapReservedMapping Dispatch;
    Ntoskrnl Routine ProbeForRead Apc;
    Ntoskrnl Routine ProbeForWrite Apc;
    Ntoskrnl Routine MmAllocateContiguousMemory Dispatch;
    Ntoskrnl Routine MmAllocateContiguousMemorySpecifyCache Dispatch;
    Ntoskrnl Routine MmFreeContiguousMemory Dispatch;
    Ntoskrnl Routine MmFreeContiguousMemorySpecifyCache Dispatch;
    Ntoskrnl Routine MmAllocateNonCachedMemory Apc;
    Ntoskrnl Routine MmFreeNonCachedMemory Apc;
    Ntoskrnl Routine MmGetPhysicalAddress Any;
    Ntoskrnl Routine MmMapIoSpace Dispatch;
    Ntoskrnl Routine MmUnmapIoSpace Dispatch;
    Ntoskrnl Routine DbgPrint Any;
    Ntoskrnl Routine DbgPrintEx Any;
    Ntoskrnl Routine vDbgPrintEx Any;
    Ntoskrnl Routine vDbgPrintExWithPrefix Any;
    Ntoskrnl Routine RtlInitUnicodeString DependsOnMemory;
    Ntoskrnl Routine RtlInitAnsiString DependsOnMemory;
    Ntoskrnl Routine RtlInitString DependsOnMemory;
    Ntoskrnl Routine RtlCopyUnicodeString DependsOnMemory;
    Ntoskrnl Routine RtlAppendUnicodeToString DependsOnMemory;
    Ntoskrnl Routine RtlAppendUnicodeStringToString DependsOnMemory;
    Ntoskrnl Routine RtlCompareUnicodeString Passive "case-insensitive comparison uses Unicode's simple uppercase, not Windows' table";
    Ntoskrnl Routine RtlEqualUnicodeString Passive "case-insensitive comparison uses Unicode's simple uppercase, not Windows' table";
    Hal Routine READ_PORT_UCHAR Any;
    Hal Routine READ_PORT_USHORT Any;
    Hal Routine READ_PORT_ULONG Any;
    Hal Routine WRITE_PORT_UCHAR Any;
    Hal Routine WRITE_PORT_USHORT Any;
    Hal Routine WRITE_PORT_ULONG Any;
    Hal Routine READ_PORT_BUFFER_UCHAR Any;
    Hal Routine READ_PORT_BUFFER_USHORT Any;
    Hal Routine READ_PORT_BUFFER_ULONG Any;
    Hal Routine WRITE_PORT_BUFFER_UCHAR Any;
    Hal Routine WRITE_PORT_BUFFER_USHORT Any;
    Hal Routine WRITE_PORT_BUFFER_ULONG Any;
}

/// The export named `name` from `dll` (DLL names compare without case, as the
/// Windows loader compares them).
pub fn find(dll: &str, name: &str) -> Option<&'static Export> {
    EXPORTS.iter().find(|e| e.name == name && e.dll.file_name().eq_ignore_ascii_case(dll))
}

/// The import libraries drivers link against, one per DLL, made from [`EXPORTS`].
pub fn import_libraries() -> Vec<ImportLibrary> {
    [Dll::Ntoskrnl, Dll::Hal]
        .into_iter()
        .map(|dll| {
            let of = |kind| EXPORTS.iter().filter(move |e| e.dll == dll && e.kind == kind).map(|e| e.name.to_string());
            ImportLibrary {
                dll: dll.file_name().to_string(),
                routines: of(Kind::Routine).collect(),
                data: of(Kind::Data).collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_is_exported_once() {
        let mut names: Vec<_> = EXPORTS.iter().map(|e| e.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "a name is listed twice");
    }

    #[test]
    fn lookups_ignore_the_dlls_case_and_components_follow_prefixes() {
        assert_eq!(find("NTOSKRNL.EXE", "ExAllocatePoolWithTag").map(Export::component), Some("Ex"));
        assert_eq!(find("hal.dll", "READ_PORT_UCHAR").map(Export::component), Some("Hal"));
        assert_eq!(find("hal.dll", "ExAllocatePoolWithTag"), None, "not exported from the HAL");
        assert_eq!(find("ntoskrnl.exe", "KfRaiseIrql").map(Export::component), Some("Ke"));
        assert_eq!(find("ntoskrnl.exe", "ProbeForRead").map(Export::component), Some("Mm"));
    }

    #[test]
    fn import_libraries_list_every_export_under_its_dll() {
        let libs = import_libraries();
        let total: usize = libs.iter().map(|l| l.routines.len() + l.data.len()).sum();
        assert_eq!(total, EXPORTS.len());
        assert!(libs[1].routines.contains(&"WRITE_PORT_ULONG".to_string()));
    }
}
