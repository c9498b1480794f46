//! The driver host's report: the machine, `DriverEntry`'s status, the driver's
//! pool tags (PoolMon columns), leaks, scenario steps (none yet), and any bugcheck
//! with its `!analyze -v` text — as text or as one JSON object — and the exit
//! status: 0 clean, 1 `DriverEntry` failed or the driver leaked, 3 bugcheck, 4 a
//! driver routine did not return (the watchdog's timeout below DISPATCH_LEVEL), 5 an
//! internal error of ntmem (a panic caught at the WDK boundary: a bug to report). A
//! halt (4, 5) appears as `halt` in JSON, with `bugcheck` null.

use std::fmt::Write as _;

use ntmem_kernel::ex::pool::view::PoolPage;
use ntmem_kernel::ex::pool::{PoolKind, PoolMonRow};
use ntmem_kernel::hal::dma::{AdapterView, DmaEvent};
use ntmem_kernel::io::symlink::SymbolicLink;
use ntmem_kernel::{BootSummary, BugCheck, Halt};
use ntmem_machine::{format_size, Arch};
use ntmem_wdk::harness::allocated_by_system;
use ntmem_wdk::pnp::PnpEvent;
use ntmem_wdk::symbols::{lm_text, Analysis, Module};
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

/// Whether the driver was unloaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unload {
    /// `DriverUnload` was called.
    Called,
    /// `DriverEntry` registered none: the driver stays loaded, its pool is not a leak.
    NotRegistered,
    /// Not called: `DriverEntry` failed or the machine stopped.
    NotCalled,
}

/// What happened.
#[derive(Debug)]
pub struct Report {
    /// The driver's name.
    pub driver: String,
    /// The machine.
    pub machine: BootSummary,
    /// `DriverEntry`'s NTSTATUS; `None` if it never returned.
    pub driver_entry_status: Option<i32>,
    /// Whether the driver was unloaded.
    pub unload: Unload,
    /// The driver's pool tags.
    pub pool: Vec<PoolMonRow>,
    /// Whether leaks were looked for (after unload or a failed DriverEntry).
    pub leaks_checked: bool,
    /// Tags with blocks still allocated.
    pub leaks: Vec<PoolMonRow>,
    /// Symbolic links the driver created and did not delete (checked with the
    /// leaks): on Windows they outlive the driver, naming a device that is gone.
    pub symbolic_links: Vec<SymbolicLink>,
    /// The bugcheck that stopped the machine.
    pub bugcheck: Option<BugCheck>,
    /// DbgPrint text (JSON reports; text reports print it as it happens).
    pub debug_output: Option<String>,
    /// The scenario's steps.
    pub steps: Vec<super::steps::StepResult>,
    /// What the PnP manager did: AddDevice, start-device, remove-device.
    pub pnp: Vec<PnpEvent>,
    /// Driver Verifier options asked for, by name.
    pub verifier: Vec<String>,
    /// What Driver Verifier counted and did: its counters, the driver's pool counts,
    /// the calls it failed on purpose. `None` without options.
    pub verifier_state: Option<VerifierState>,
    /// The driver's pool blocks never freed (with the leaks), each with its address,
    /// size and the driver's stack at the allocation, named; after a 0xC4/0x61 stop
    /// (an allocation during the unload), the blocks outstanding at the stop.
    pub leaked_blocks: Vec<LeakedBlock>,
    /// For a pool bugcheck, the pool page it is about, as `!pool` shows it.
    pub pool_page: Option<PoolPage>,
    /// The PoolMon column the text report sorts by.
    pub sort: PoolSort,
    /// What DMA routines refused the driver and why (seed 001: why a DMA buffer
    /// cannot be had).
    pub dma: Vec<DmaEvent>,
    /// DMA adapters still live when the run ended (not released, or the machine
    /// stopped), as `!dma` shows them.
    pub dma_adapters: Vec<AdapterView>,
    /// What the system DMA controllers moved for subordinate devices.
    pub system_dma: Vec<ntmem_kernel::hal::dma::controller::Moved>,
    /// The stop in the driver's terms: its faulting instruction and stack named from
    /// the image's symbols, and the loaded modules (`lm`). `None` without a stop.
    pub symbols: Option<StopSymbols>,
    /// The driver's threads still waiting (with no timeout) when it unloaded: on
    /// Windows they wait on forever inside an unloaded image (checked with the leaks).
    pub threads_left: Vec<ntmem_wdk::sched::LeftThread>,
}

/// A pool block the driver allocated and never freed (`!verifier 3`'s "Pool
/// Allocations" table: Address, Length, Tag, Caller).
#[derive(Debug, Clone, Serialize)]
pub struct LeakedBlock {
    /// The block's address.
    pub address: u64,
    /// The address in hex.
    pub address_hex: String,
    /// Bytes asked for.
    pub bytes: u64,
    /// Its tag.
    pub tag: String,
    /// Paged or nonpaged.
    pub pool: &'static str,
    /// The routine that allocated it (known under Driver Verifier).
    pub routine: Option<&'static str>,
    /// The driver's stack at the allocation, innermost first, named from its symbols
    /// (under Driver Verifier: the whole stack with pool tracking, the call site
    /// otherwise; without it, empty — the block was found by walking the pool).
    pub stack: Vec<String>,
}

/// Driver Verifier's counts for a run (`!verifier`'s summary and the driver's entry).
#[derive(Debug, Clone, Serialize)]
pub struct VerifierState {
    /// The options in force (`Verify Flags Level`).
    pub flags: u32,
    /// The driver's image base, as `!verifier` lists the module.
    pub module_base: u64,
    /// The global counters.
    pub counters: ntmem_kernel::vf::Counters,
    /// The driver's pool: current and peak, nonpaged then paged.
    pub pool: ntmem_kernel::vf::DriverPool,
    /// Randomized low resources simulation's settings, seed included (with the
    /// option on): the same driver, scenario and seed fail the same calls.
    pub faults: Option<ntmem_kernel::vf::FaultSettings>,
    /// The calls low resources simulation failed.
    pub injected: Vec<InjectedCall>,
    /// Force IRQL checking's IRQL transition log (`!verifier 8`), oldest first: the
    /// last entries of up to 0x100, with the driver's call named.
    pub irql_log: Vec<(ntmem_kernel::vf::IrqlTransition, String)>,
    /// Systematic low resources simulation's first call from each distinct stack,
    /// in order (`systematic`: whether it was failed).
    pub reached: Vec<InjectedCall>,
    /// Pool tracking's allocate/free log (`!verifier 0x80`), when asked for.
    pub pool_log: Option<PoolLog>,
    /// Deadlock detection's cycle after a 0x1001: both acquisition orders with their
    /// stacks (`!deadlock 1`).
    pub deadlock: Option<super::deadlock::DeadlockView>,
    /// I/O verification's non-fatal WDM DRIVER ERRORs, in order: warnings, not stops
    /// (Windows halts for them only under a kernel debugger).
    pub wdm_errors: Vec<WdmWarning>,
}

/// Pool tracking's log of recent allocate and free operations as `!verifier 0x80`
/// shows it (Microsoft, "!verifier"; research note `dma-verifier-views.md` §5.7).
#[derive(Debug, Clone, Serialize)]
pub struct PoolLog {
    /// How many entries the log holds (up to 0x10000).
    pub entries_in_log: usize,
    /// The address searched for (`!verifier 0x80 Address`), if any.
    pub address: Option<u64>,
    /// The entries shown, most recent first.
    pub entries: Vec<PoolLogEntry>,
}

/// One allocate or free in [`PoolLog`].
#[derive(Debug, Clone, Serialize)]
pub struct PoolLogEntry {
    /// "allocate" or "free".
    pub operation: &'static str,
    /// The block.
    pub address: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its tag.
    pub tag: String,
    /// The driver it is charged to.
    pub driver: String,
    /// The allocating thread (`KTHREAD`; 0 for a free: ntmem does not note who freed).
    pub thread: u64,
    /// The driver's stack at the allocation, innermost first, named (empty for a free).
    pub stack: Vec<String>,
}

/// A non-fatal WDM DRIVER ERROR (Microsoft, "Bug Check 0xC9", second table).
#[derive(Debug, Clone, Serialize)]
pub struct WdmWarning {
    /// The I/O error code (0x23D, 0x23E, 0x312, …).
    pub code: u32,
    /// The IRP.
    pub irp: u64,
    /// The device object (0: none).
    pub device: u64,
    /// What the code means.
    pub meaning: &'static str,
}

/// A call low resources simulation failed on purpose (`!verifier 4`).
#[derive(Debug, Clone, Serialize)]
pub struct InjectedCall {
    /// The routine.
    pub routine: &'static str,
    /// The pool tag asked for, if any.
    pub tag: Option<String>,
    /// The driver's call site, named (`driver!Function+0x… [file @ line]`).
    pub site: String,
    /// The driver's stack at the call, innermost first, named.
    pub stack: Vec<String>,
    /// Simulated milliseconds since boot.
    pub at_ms: u64,
    /// Systematic (else randomized).
    pub systematic: bool,
    /// The identity of the driver's stack (systematic simulation fails each once).
    pub stack_id: u64,
}

impl InjectedCall {
    /// As the report prints it.
    pub fn text(&self) -> String {
        let tag = self.tag.as_ref().map_or(String::new(), |t| format!(" '{t}'"));
        let how = if self.systematic { "systematic" } else { "random" };
        format!("{}{tag} from {} at {} ms ({how})", self.routine, self.site, self.at_ms)
    }
}

/// The named part of `!analyze -v` and `lm` for a stop (`ntmem_wdk::symbols`).
#[derive(Debug, Clone, Serialize)]
pub struct StopSymbols {
    /// FAULTING_IP, the stack, SYMBOL_NAME, MODULE_NAME, IMAGE_NAME.
    pub analysis: Analysis,
    /// The loaded driver images.
    pub modules: Vec<Module>,
}

/// `!analyze -v` for `b`: named from `symbols` when the stop is in driver code, else
/// with bare addresses ([`BugCheck::analysis`]); `lm` after it.
fn analysis(b: &BugCheck, symbols: Option<&StopSymbols>, pool_page: Option<&PoolPage>) -> String {
    let pool = pool_page.map_or_else(String::new, |p| format!("\n{}", p.text()));
    let Some(symbols) = symbols.filter(|_| b.halt.is_none()) else { return b.analysis() + &pool };
    let mut out = b.analysis_header();
    out.push_str(&pool);
    out.push('\n');
    out.push_str(&symbols.analysis.text());
    let bucket = symbols.analysis.failure_bucket_id(b.code.0);
    let blamed = b.driver.as_deref().unwrap_or("nt");
    let _ = writeln!(out, "FAILURE_BUCKET_ID:  {}", bucket.unwrap_or_else(|| format!("0x{:X}_{blamed}", b.code.0)));
    let _ = write!(out, "\nlm\n{}", lm_text(&symbols.modules));
    out
}

/// The NTSTATUS names the headers define.
fn status_name(s: i32) -> Option<&'static str> {
    Some(match s as u32 {
        0 => "STATUS_SUCCESS",
        0x102 => "STATUS_TIMEOUT",
        0x103 => "STATUS_PENDING",
        0xC000_0001 => "STATUS_UNSUCCESSFUL",
        0xC000_0002 => "STATUS_NOT_IMPLEMENTED",
        0x8000_0002 => "STATUS_DATATYPE_MISALIGNMENT",
        0xC000_0005 => "STATUS_ACCESS_VIOLATION",
        0xC000_0008 => "STATUS_INVALID_HANDLE",
        0xC000_000D => "STATUS_INVALID_PARAMETER",
        0xC000_0010 => "STATUS_INVALID_DEVICE_REQUEST",
        0xC000_0017 => "STATUS_NO_MEMORY",
        0xC000_0022 => "STATUS_ACCESS_DENIED",
        0xC000_0023 => "STATUS_BUFFER_TOO_SMALL",
        0xC000_0024 => "STATUS_OBJECT_TYPE_MISMATCH",
        0xC000_0033 => "STATUS_OBJECT_NAME_INVALID",
        0xC000_0034 => "STATUS_OBJECT_NAME_NOT_FOUND",
        0xC000_0035 => "STATUS_OBJECT_NAME_COLLISION",
        0xC000_009A => "STATUS_INSUFFICIENT_RESOURCES",
        0xC000_00BB => "STATUS_NOT_SUPPORTED",
        0xC000_0120 => "STATUS_CANCELLED",
        _ => return None,
    })
}

fn status_text(s: i32) -> String {
    match status_name(s) {
        Some(n) => format!("{n} ({:#010x})", s as u32),
        None => format!("{:#010x}", s as u32),
    }
}

/// How many IRQL transitions the report shows (`!verifier 8` shows 4 by default;
/// the JSON has all).
const IRQL_LOG_SHOWN: usize = 16;

/// Driver Verifier's flags as `!verifier` lists them (Microsoft, "!verifier";
/// research note `dma-verifier-views.md` §3.1, §5.7): standard, then additional.
const VERIFIER_FLAGS: [(bool, u32, &str); 21] = [
    (true, 0x0, "Automatic Checks"),
    (true, 0x1, "Special pool"),
    (true, 0x2, "Force IRQL checking"),
    (true, 0x8, "Pool tracking"),
    (true, 0x10, "I/O verification"),
    (true, 0x20, "Deadlock detection"),
    (true, 0x80, "DMA checking"),
    (true, 0x100, "Security checks"),
    (true, 0x800, "Miscellaneous checks"),
    (true, 0x20000, "DDI compliance checking"),
    (false, 0x4, "Randomized low resources simulation"),
    (false, 0x200, "Force pending I/O requests"),
    (false, 0x400, "IRP logging"),
    (false, 0x2000, "Invariant MDL checking for stack"),
    (false, 0x4000, "Invariant MDL checking for driver"),
    (false, 0x8000, "Power framework delay fuzzing"),
    (false, 0x40000, "Systematic low resources simulation"),
    (false, 0x80000, "DDI compliance checking (additional)"),
    (false, 0x200000, "NDIS/WIFI verification"),
    (false, 0x800000, "Kernel synchronization delay fuzzing"),
    (false, 0x1000000, "VM switch verification"),
];

/// `!verifier 3 driver.sys` as WinDbg prints it (Windows 8 and later): the flags,
/// the global counters, and the driver's entry with its pool and outstanding blocks.
/// Counters ntmem does not keep (Synch Executions, allocations without a tag) read 0.
fn verifier_text(o: &mut String, driver: &str, v: &VerifierState, blocks: &[LeakedBlock]) {
    let _ = writeln!(o, "\n!verifier\nVerify Flags Level 0x{:08x}\n", v.flags);
    for (standard, heading) in [(true, "STANDARD FLAGS:"), (false, "ADDITIONAL FLAGS:")] {
        let _ = writeln!(o, "  {heading}");
        for (_, bit, name) in VERIFIER_FLAGS.iter().filter(|f| f.0 == standard) {
            let on = if *bit == 0 || v.flags & bit != 0 { "X" } else { " " };
            let _ = writeln!(o, "    [{on}] (0x{bit:08x}) {name}");
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "    [X] Indicates flag is enabled\n\nSummary of All Verifier Statistics\n");
    let c = &v.counters;
    let rows: [(&str, u64); 10] = [
        ("RaiseIrqls", c.raise_irqls),
        ("AcquireSpinLocks", c.acquire_spin_locks),
        ("Synch Executions", 0),
        ("Trims", c.trims),
        ("Pool Allocations Attempted", c.pool_allocations_attempted),
        ("Pool Allocations Succeeded", c.pool_allocations_succeeded),
        ("Pool Allocations Succeeded SpecialPool", c.pool_allocations_special),
        ("Pool Allocations With NO TAG", 0),
        ("Pool Allocations Failed", c.pool_allocations_failed),
        ("Resource Allocations Failed Deliberately", c.faults_injected),
    ];
    for (i, (name, value)) in rows.iter().enumerate() {
        if i == 4 {
            let _ = writeln!(o);
        }
        let _ = writeln!(o, "  {name:<41}0x{value:x}");
    }
    let [np, p] = v.pool.current;
    let [pnp, pp] = v.pool.peak;
    let _ = writeln!(o);
    for (name, count) in [
        ("Current paged pool allocations", p),
        ("Peak paged pool allocations", pp),
        ("Current nonpaged pool allocations", np),
        ("Peak nonpaged pool allocations", pnp),
    ] {
        let _ = writeln!(o, "  {name:<41}0x{:x} for {:08x} bytes", count.allocations, count.bytes);
    }
    let _ = writeln!(o, "\nDriver Verification List\n  MODULE: 0x{:016x} {driver} (Loaded)", v.module_base);
    let _ = writeln!(o, "    Pool Allocation Statistics: ( NonPagedPool / PagedPool )");
    let pair = |a: u64, b: u64| format!("( 0x{a:08x} / 0x{b:08x} )");
    let _ = writeln!(o, "      Current Pool Allocations: {}", pair(np.allocations, p.allocations));
    let _ = writeln!(o, "      Current Pool Bytes:       {}", pair(np.bytes, p.bytes));
    let _ = writeln!(o, "      Peak Pool Allocations:    {}", pair(pnp.allocations, pp.allocations));
    let _ = writeln!(o, "      Peak Pool Bytes:          {}", pair(pnp.bytes, pp.bytes));
    if !v.injected.is_empty() {
        let _ = writeln!(o, "\nResource fault injection history (!verifier 4):");
        for (i, call) in v.injected.iter().enumerate() {
            let _ = writeln!(
                o,
                "  Entry (index {i}): {} at {} ms, stack id {:#018x}",
                call.routine, call.at_ms, call.stack_id
            );
            for frame in &call.stack {
                let _ = writeln!(o, "    {frame}");
            }
        }
    }
    if !v.irql_log.is_empty() {
        let shown = v.irql_log.len().min(IRQL_LOG_SHOWN);
        let _ = writeln!(
            o,
            "\nTrack irql trace log (!verifier 8): displaying the most recent {shown:#x} entries; there are up to {:#x} in the log.",
            ntmem_kernel::vf::IRQL_LOG_ENTRIES
        );
        for (t, caller) in &v.irql_log[v.irql_log.len() - shown..] {
            let _ = writeln!(
                o,
                "  Old irql {:x}  New irql {:x}  Processor {:x}  Time stamp {} ms  {caller}",
                t.old, t.new, t.processor, t.at_ms
            );
        }
    }
    let tracked: Vec<&LeakedBlock> = blocks.iter().filter(|b| b.routine.is_some()).collect();
    if !tracked.is_empty() {
        let _ = writeln!(o, "    Pool Allocations:\n      Address             Length      Tag   Caller");
        let _ = writeln!(o, "      ------------------  ----------  ----  ------------------");
        for b in tracked {
            let caller = b.stack.first().map_or("", String::as_str);
            let _ = writeln!(o, "      0x{:016x}  0x{:08x}  {:<4}  {caller}", b.address, b.bytes, b.tag);
        }
    }
    if let Some(d) = &v.deadlock {
        o.push_str(&d.text());
    }
    if let Some(log) = &v.pool_log {
        pool_log_text(o, log);
    }
}

/// `!verifier 0x80 [Quantity | Address]`: the log's header, then each entry's block,
/// size and thread, and its stack. Frees are marked (WinDbg tells them apart by the
/// free routine at the top of the stack, which ntmem's log does not hold).
fn pool_log_text(o: &mut String, log: &PoolLog) {
    let _ = writeln!(o, "\n!verifier 0x80\nLog of recent kernel pool Allocate and Free operations:\n");
    let _ = writeln!(o, "There are up to {:#x} entries in the log.\n", ntmem_kernel::vf::tracking::LOG_ENTRIES);
    match log.address {
        Some(a) => {
            let _ = writeln!(o, "Parsing 0x{:08x} log entries, searching for address {a:#x}.\n", log.entries_in_log);
        }
        None => {
            let _ = writeln!(
                o,
                "Displaying the most recent 0x{:x} of 0x{:08x} log entries.\n",
                log.entries.len(),
                log.entries_in_log
            );
        }
    }
    for e in &log.entries {
        let _ = writeln!(o, "======================================================================");
        let _ = writeln!(o, "Pool block {:016x}, Size {:016x}, Thread {:016x}", e.address, e.bytes, e.thread);
        let _ = writeln!(o, "  ({} of a '{}' block charged to {})", e.operation, e.tag, e.driver);
        for frame in &e.stack {
            let _ = writeln!(o, "  {frame}");
        }
    }
    let _ = writeln!(o, "Finished parsing all pool tracking information.");
}

pub(crate) fn kind(k: PoolKind) -> &'static str {
    match k {
        PoolKind::Nonpaged => "Nonp",
        PoolKind::Paged => "Paged",
    }
}

impl Report {
    /// A report for `driver` on `machine`, before anything ran.
    pub fn new(driver: String, machine: BootSummary) -> Report {
        Report {
            driver,
            machine,
            driver_entry_status: None,
            unload: Unload::NotCalled,
            pool: Vec::new(),
            leaks_checked: false,
            leaks: Vec::new(),
            symbolic_links: Vec::new(),
            bugcheck: None,
            debug_output: None,
            steps: Vec::new(),
            pnp: Vec::new(),
            verifier: Vec::new(),
            verifier_state: None,
            leaked_blocks: Vec::new(),
            symbols: None,
            sort: PoolSort::Tag,
            pool_page: None,
            dma: Vec::new(),
            dma_adapters: Vec::new(),
            system_dma: Vec::new(),
            threads_left: Vec::new(),
        }
    }

    /// The exit status: 5 internal error, 4 timeout, 3 bugcheck, 1 DriverEntry
    /// failed or leaked, else 0.
    pub fn exit(&self) -> u8 {
        if let Some(b) = &self.bugcheck {
            match b.halt.as_deref() {
                Some(Halt::Internal { .. }) => 5,
                Some(Halt::Timeout { .. } | Halt::WaitNeverEnds { .. }) => 4,
                None => 3,
            }
        } else if self.driver_entry_status.is_none_or(|s| s < 0)
            || !self.leaks.is_empty()
            || !self.symbolic_links.is_empty()
            || !self.threads_left.is_empty()
            || self.steps.iter().any(|s| !s.ok)
            || self.pnp.iter().any(PnpEvent::failed)
        {
            1
        } else {
            0
        }
    }

    /// One line saying why the exit status is not 0.
    pub fn verdict(&self) -> String {
        if let Some(b) = &self.bugcheck {
            return match b.halt.as_deref() {
                Some(Halt::Timeout { .. } | Halt::WaitNeverEnds { .. }) => format!("the driver did not return: {b}"),
                Some(Halt::Internal { .. }) => format!("ntmem failed (please report this bug): {b}"),
                None => format!("the machine bugchecked: {b}"),
            };
        }
        if let Some(s) = self.driver_entry_status.filter(|&s| s < 0) {
            return format!("DriverEntry failed: {}", status_text(s));
        }
        if let Some(s) = self.steps.iter().find(|s| !s.ok) {
            let status = s.status.map_or("no status".to_string(), |v| status_text(v as i32));
            return format!("step {} (line {}, {}) failed: {status}", s.index, s.line, s.kind);
        }
        if let Some(e) = self.pnp.iter().find(|e| e.failed()) {
            return format!("{} failed: {}", e.step, status_text(e.status.unwrap_or(0)));
        }
        if !self.leaks.is_empty() {
            let tags: Vec<String> = self.leaks.iter().map(|r| format!("'{}'", r.tag)).collect();
            return format!("{} leaked pool: {}", self.driver, tags.join(", "));
        }
        if !self.symbolic_links.is_empty() {
            let names: Vec<&str> = self.symbolic_links.iter().map(|l| l.name.as_str()).collect();
            return format!("{} left symbolic links behind: {}", self.driver, names.join(", "));
        }
        if let Some(t) = self.threads_left.first() {
            return format!(
                "{} unloaded with {} thread{} still waiting (the first started at {:#x}, in {})",
                self.driver,
                self.threads_left.len(),
                if self.threads_left.len() == 1 { "" } else { "s" },
                t.start_routine,
                t.routine.unwrap_or("no wait")
            );
        }
        "clean".to_string()
    }

    /// The text report.
    pub fn text(&self) -> String {
        let mut o = String::new();
        let m = &self.machine;
        let _ = writeln!(
            o,
            "\nntmem run: {} on {} ({} RAM, {} processor{})",
            self.driver,
            m.machine,
            format_size(m.ram),
            m.processors,
            if m.processors == 1 { "" } else { "s" }
        );
        if let Some(arch) = ntmem_machine::find_edition(&m.machine).ok().map(|e| e.arch).filter(|&a| a != Arch::X64) {
            let _ = writeln!(
                o,
                "Driver code    x64 on this {} machine: ntmem runs drivers as x64 images everywhere (x64 structure layouts; the machine's page size, pool and address space)",
                arch.name()
            );
        }
        let entry = self.driver_entry_status.map_or("did not return".to_string(), status_text);
        let _ = writeln!(o, "DriverEntry    {entry}");
        let unload = match self.unload {
            Unload::Called => "called",
            Unload::NotRegistered => "none registered (the driver stays loaded)",
            Unload::NotCalled => "not called",
        };
        let _ = writeln!(o, "DriverUnload   {unload}");
        if !self.verifier.is_empty() {
            let _ = writeln!(o, "Verifier       {}", self.verifier.join(", "));
        }
        if let Some(v) = &self.verifier_state {
            let c = &v.counters;
            let _ = writeln!(
                o,
                "               pool allocations attempted {}, succeeded {}, failed {}; resource allocations failed deliberately {} (!verifier below)",
                c.pool_allocations_attempted, c.pool_allocations_succeeded, c.pool_allocations_failed, c.faults_injected
            );
            for w in &v.wdm_errors {
                let _ = writeln!(
                    o,
                    "warning        WDM DRIVER ERROR {:#X} (non-fatal): {} (IRP {:#x}, device {:#x})",
                    w.code, w.meaning, w.irp, w.device
                );
            }
            if let Some(f) = &v.faults {
                let tags = if f.tags.is_empty() { "all".to_string() } else { f.tags.join(" ") };
                let processes = if f.processes.is_empty() {
                    String::new()
                } else {
                    format!(", processes {}", f.processes.join(" "))
                };
                let _ = writeln!(
                    o,
                    "               low resources simulation: probability {}/10000, tags {tags}{processes}, delay {} ms, seed {}",
                    f.probability, f.delay_ms, f.seed
                );
            }
            let [np, p] = v.pool.peak;
            let _ = writeln!(
                o,
                "               peak pool: nonpaged {} allocation(s), {} bytes; paged {} allocation(s), {} bytes",
                np.allocations, np.bytes, p.allocations, p.bytes
            );
            for i in &v.injected {
                let _ = writeln!(o, "               failed on purpose: {}", i.text());
            }
        }
        if !self.pnp.is_empty() {
            let _ = writeln!(o, "\nPlug and Play");
            for e in &self.pnp {
                let status = e.status.map_or("not called".to_string(), status_text);
                let _ = writeln!(o, " {:<21} {status}", e.step);
                let _ = writeln!(o, "     {}", e.note);
            }
        }
        if !self.steps.is_empty() {
            let _ = writeln!(o, "\nScenario steps");
            for s in &self.steps {
                let code = s.code.map_or(String::new(), |c| format!(" {c:#010x}"));
                let status = s.status.map_or(String::new(), |v| format!("  {}", status_text(v as i32)));
                let info = s.information.map_or(String::new(), |i| format!("  Information {i}"));
                let mark = if s.ok { "" } else { "  FAILED" };
                let _ = writeln!(o, " {:>2}. line {:<3} {}{code}{status}{info}{mark}", s.index, s.line, s.kind);
                if let Some(out) = s.output.as_deref().filter(|o| !o.is_empty()) {
                    let _ = writeln!(o, "     output {out}");
                }
                if let Some(n) = &s.note {
                    let _ = writeln!(o, "     {n}");
                }
            }
        }
        if !self.dma.is_empty() {
            let _ = writeln!(o, "\nDMA refusals (the routine returned NULL or failed)");
            for e in &self.dma {
                let _ = writeln!(o, " {:<21} {}", e.routine, e.refusal);
            }
        }
        if !self.system_dma.is_empty() {
            let _ = writeln!(o, "\nSystem DMA transfers");
            for t in &self.system_dma {
                let way = if t.to_device { "memory -> device" } else { "device -> memory" };
                let _ = write!(
                    o,
                    "  {}: {way}, {:#x} bytes at logical {:#x}, device offset {:#x}, {:#x} left",
                    t.channel,
                    t.bytes,
                    t.logical.get(),
                    t.device_offset,
                    t.left
                );
                if !t.sample.is_empty() {
                    let head: Vec<String> = t.sample.iter().take(16).map(|b| format!("{b:02x}")).collect();
                    let _ = write!(o, "; the device got {}", head.join(" "));
                }
                let _ = writeln!(o);
            }
        }
        if !self.dma_adapters.is_empty() {
            let _ = writeln!(o, "\nDMA adapters still live (!dma)");
            for a in &self.dma_adapters {
                let c = &a.config;
                let reach =
                    if c.limit == u64::MAX { "64-bit".to_string() } else { format!("below {:#x}", c.limit + 1) };
                let kind = match (c.master, c.scatter_gather, c.channel) {
                    (true, true, _) => "bus master, S/G".to_string(),
                    (true, false, _) => "bus master".to_string(),
                    (false, _, Some(channel)) => format!("system DMA, {channel}"),
                    (false, _, None) => "system DMA".to_string(),
                };
                let _ = writeln!(
                    o,
                    " Adapter {:#x}: {kind}, reaches {reach}, {}, map registers {} of {} in use{}",
                    a.adapter,
                    if c.bounces { "bounces through low memory" } else { "no bouncing" },
                    a.map_registers_in_use,
                    c.map_registers,
                    if a.channel_held { ", channel held" } else { "" }
                );
                let _ = writeln!(o, "   device description: {}", description(&a.description));
                for f in &a.map_register_files {
                    let _ = writeln!(
                        o,
                        "   map register file {:#x}: {} register(s){}{}, {:#x} bytes mapped",
                        f.base,
                        f.registers,
                        if f.channel { ", with the channel" } else { ", a scatter/gather list's" },
                        if f.shadowed { ", double-buffered (DMA checking)" } else { "" },
                        f.mapped_bytes
                    );
                }
                for b in &a.common_buffers {
                    let _ = writeln!(
                        o,
                        "   common buffer VA {:#x} logical {:#x} length {:#x} ({} page(s){})",
                        b.va.get(),
                        b.logical.get(),
                        b.length,
                        b.pages,
                        if b.padded { ", padded by DMA checking" } else { "" }
                    );
                }
                for l in &a.scatter_gather_lists {
                    let _ = writeln!(o, "   scatter/gather list {l:#x} not put back");
                }
                if a.waiting > 0 {
                    let _ = writeln!(o, "   {} request(s) waiting for the channel or map registers", a.waiting);
                }
                let n = &a.counts;
                let _ = writeln!(
                    o,
                    "   map registers {} allocated, {} freed; scatter/gather lists {} allocated, {} freed; \
                     common buffers {} allocated, {} freed; adapter channels {} allocated, {} freed; \
                     bytes mapped since last flush {:#x}",
                    n.map_registers.allocated,
                    n.map_registers.freed,
                    n.scatter_gather_lists.allocated,
                    n.scatter_gather_lists.freed,
                    n.common_buffers.allocated,
                    n.common_buffers.freed,
                    n.adapter_channels.allocated,
                    n.adapter_channels.freed,
                    a.bytes_mapped_since_flush
                );
            }
        }
        let (system, own): (Vec<PoolMonRow>, Vec<PoolMonRow>) =
            self.sort.sorted(&self.pool).into_iter().partition(|r| allocated_by_system(r.tag));
        let _ = writeln!(o, "\nPool tags of the driver (PoolMon, sorted by {})", self.sort.name());
        poolmon(&mut o, &own);
        if !system.is_empty() {
            let _ = writeln!(
                o,
                "\nPool the system allocated for the driver (I/O manager, PnP manager, scenario; IoCreateDevice, IoAllocateMdl)"
            );
            poolmon(&mut o, &system);
        }
        let _ = writeln!(o);
        if !self.leaks_checked {
            let _ = writeln!(o, "Leaks          not checked (the driver was not unloaded)");
        } else if self.leaks.is_empty() {
            let _ = writeln!(o, "Leaks          none");
        } else {
            for r in &self.leaks {
                let _ = writeln!(
                    o,
                    "LEAK           tag '{}' ({}): {} block(s), {} bytes never freed",
                    r.tag,
                    kind(r.pool_type),
                    r.diff,
                    r.bytes
                );
                let tag = r.tag.to_string();
                for b in self.leaked_blocks.iter().filter(|b| b.tag == tag && b.pool == kind(r.pool_type)) {
                    let by = b.routine.map_or(String::new(), |r| format!(" by {r}"));
                    let at = b.stack.first().map_or(String::new(), |s| format!(", allocated at {s}"));
                    let _ = writeln!(o, "               {:<18} {:>8} bytes{by}{at}", b.address_hex, b.bytes);
                }
            }
        }
        if self.leaked_blocks.iter().any(|b| b.stack.is_empty()) {
            let _ = writeln!(o, "               (where each was allocated: run with --verifier pool_tracking)");
        }
        for l in &self.symbolic_links {
            let _ = writeln!(o, "LEFT LINK      {} -> {} (outlives the driver)", l.name, l.target);
        }
        for t in &self.threads_left {
            let _ = writeln!(
                o,
                "LEFT THREAD    {} {:#x} started at {:#x}, waiting in {} on {:#x}, to resume at {:#x} in the unloaded image (0xCE if anything wakes it)",
                t.thread,
                t.thread_address,
                t.start_routine,
                t.routine.unwrap_or("nothing"),
                t.object,
                t.resume_ip
            );
        }
        if let Some(v) = &self.verifier_state {
            verifier_text(&mut o, &self.driver, v, &self.leaked_blocks);
        }
        if let Some(b) = &self.bugcheck {
            let _ = writeln!(o, "\n{b}\n");
            let _ = write!(o, "{}", analysis(b, self.symbols.as_ref(), self.pool_page.as_ref()));
        }
        let _ = writeln!(o, "\nResult         {} (exit {})", self.verdict(), self.exit());
        o
    }
}

/// PoolMon's columns, one row a tag and pool type.
fn poolmon(o: &mut String, rows: &[PoolMonRow]) {
    let _ = writeln!(
        o,
        " {:<4}  {:<5} {:>8}  {:>8}  {:>8}  {:>8}  {:>9}",
        "Tag", "Type", "Allocs", "Frees", "Diff", "Bytes", "Per Alloc"
    );
    for r in rows {
        let _ = writeln!(
            o,
            " {:<4}  {:<5} {:>8}  {:>8}  {:>8}  {:>8}  {:>9}",
            r.tag.to_string(),
            kind(r.pool_type),
            r.allocs,
            r.frees,
            r.diff,
            r.bytes,
            r.per_alloc
        );
    }
    if rows.is_empty() {
        let _ = writeln!(o, " (none)");
    }
}

/// The column PoolMon sorts by (`--sort`): the tag ascending, the counters descending.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PoolSort {
    /// The tag, then the pool type.
    #[default]
    Tag,
    /// Allocations.
    Allocs,
    /// Frees.
    Frees,
    /// Allocations not freed.
    Diff,
    /// Bytes in use.
    Bytes,
    /// Bytes per allocation not freed.
    PerAlloc,
}

impl PoolSort {
    fn name(self) -> &'static str {
        match self {
            PoolSort::Tag => "tag",
            PoolSort::Allocs => "allocs",
            PoolSort::Frees => "frees",
            PoolSort::Diff => "diff",
            PoolSort::Bytes => "bytes",
            PoolSort::PerAlloc => "per alloc",
        }
    }

    fn sorted(self, rows: &[PoolMonRow]) -> Vec<PoolMonRow> {
        let mut rows = rows.to_vec();
        let key = |r: &PoolMonRow| match self {
            PoolSort::Tag => 0,
            PoolSort::Allocs => r.allocs,
            PoolSort::Frees => r.frees,
            PoolSort::Diff => r.diff,
            PoolSort::Bytes => r.bytes,
            PoolSort::PerAlloc => r.per_alloc,
        };
        rows.sort_by(|a, b| {
            key(b)
                .cmp(&key(a))
                .then_with(|| a.tag.to_string().cmp(&b.tag.to_string()))
                .then(a.pool_type.cmp(&b.pool_type))
        });
        rows
    }
}

/// A PoolMon row in JSON.
#[derive(Serialize)]
struct Row {
    tag: String,
    pool_type: &'static str,
    allocs: u64,
    frees: u64,
    diff: u64,
    bytes: u64,
    per_alloc: u64,
    /// `driver`: a tag the driver chose; `system`: one the system allocates under
    /// for it (`ntmem_wdk::harness::allocated_by_system`).
    allocated_by: &'static str,
}

fn rows(rows: &[PoolMonRow]) -> Vec<Row> {
    rows.iter()
        .map(|r| Row {
            tag: r.tag.to_string(),
            pool_type: kind(r.pool_type),
            allocs: r.allocs,
            frees: r.frees,
            diff: r.diff,
            bytes: r.bytes,
            per_alloc: r.per_alloc,
            allocated_by: if allocated_by_system(r.tag) { "system" } else { "driver" },
        })
        .collect()
}

/// A bugcheck in JSON.
#[derive(Serialize)]
struct Stop<'a> {
    code: u32,
    name: &'static str,
    parameters: [u64; 4],
    driver: Option<&'a str>,
    faulting_ip: Option<u64>,
    /// The same, as hex strings (a person reads them).
    parameters_hex: [String; 4],
    faulting_ip_hex: Option<String>,
    /// What each parameter means (by subcode where it has one).
    parameter_meanings: [&'static str; 4],
    current_irql: Option<u8>,
    /// The pool page a pool bugcheck is about (`!pool`).
    pool_page: Option<&'a PoolPage>,
    analysis: String,
    symbols: Option<&'a StopSymbols>,
}

impl Serialize for Report {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut o = s.serialize_struct("Report", 21)?;
        o.serialize_field("exit", &self.exit())?;
        o.serialize_field("driver", &self.driver)?;
        o.serialize_field("machine", &self.machine)?;
        o.serialize_field("driver_entry_status", &self.driver_entry_status.map(|s| s as u32))?;
        o.serialize_field("driver_entry_status_name", &self.driver_entry_status.and_then(status_name))?;
        o.serialize_field("unload", &self.unload)?;
        o.serialize_field("pool", &rows(&self.pool))?;
        o.serialize_field("leaks_checked", &self.leaks_checked)?;
        o.serialize_field("leaks", &rows(&self.leaks))?;
        o.serialize_field("leaked_blocks", &self.leaked_blocks)?;
        o.serialize_field("symbolic_links", &self.symbolic_links)?;
        o.serialize_field("threads_left", &self.threads_left)?;
        let steps: Vec<_> = self
            .steps
            .iter()
            .map(|s| {
                let mut v = serde_json::to_value(s).unwrap_or_default();
                v["status_name"] = s.status.and_then(|x| status_name(x as i32)).into();
                v
            })
            .collect();
        o.serialize_field("steps", &steps)?;
        let pnp: Vec<_> = self
            .pnp
            .iter()
            .map(|e| {
                serde_json::json!({
                    "step": e.step,
                    "status": e.status.map(|s| s as u32),
                    "status_name": e.status.and_then(status_name),
                    "note": e.note,
                })
            })
            .collect();
        o.serialize_field("pnp", &pnp)?;
        let dma: Vec<_> = self
            .dma
            .iter()
            .map(|e| {
                serde_json::json!({
                    "routine": e.routine,
                    "adapter": e.adapter,
                    "reason": e.refusal.to_string(),
                    "refusal": e.refusal,
                })
            })
            .collect();
        o.serialize_field("dma_refusals", &dma)?;
        o.serialize_field("dma_adapters", &self.dma_adapters)?;
        o.serialize_field("system_dma", &self.system_dma)?;
        o.serialize_field("verifier", &self.verifier)?;
        o.serialize_field("verifier_state", &self.verifier_state)?;
        let stop = self.bugcheck.as_ref().filter(|b| b.halt.is_none()).map(|b| Stop {
            code: b.code.0,
            name: b.name(),
            parameters: b.parameters,
            driver: b.driver.as_deref(),
            faulting_ip: b.faulting_ip,
            parameters_hex: b.parameters.map(|p| format!("{p:#x}")),
            faulting_ip_hex: b.faulting_ip.map(|ip| format!("{ip:#x}")),
            parameter_meanings: ntmem_kernel::bugcheck::parameter_meanings(b),
            current_irql: b.irql,
            pool_page: self.pool_page.as_ref(),
            analysis: analysis(b, self.symbols.as_ref(), self.pool_page.as_ref()),
            symbols: self.symbols.as_ref(),
        });
        o.serialize_field("bugcheck", &stop)?;
        let halt = self.bugcheck.as_ref().and_then(|b| {
            let mut v = serde_json::to_value(b.halt.as_ref()?).ok()?;
            v["driver"] = b.driver.as_deref().into();
            Some(v)
        });
        o.serialize_field("halt", &halt)?;
        o.serialize_field("debug_output", &self.debug_output)?;
        o.end()
    }
}

/// A DEVICE_DESCRIPTION in a line, the fields its version and kind of device use
/// (research/dma-verifier-views.md §1.2): what `!dma` flag 0x10 prints.
fn description(d: &ntmem_kernel::hal::dma::DeviceDescription) -> String {
    let mut parts = vec![format!("version {}", d.version)];
    if d.master {
        parts.push("bus master".into());
        if d.scatter_gather {
            parts.push("ScatterGather".into());
        }
    } else {
        parts.push(format!("subordinate, DmaChannel {}, DmaWidth {:?}", d.dma_channel, d.dma_width));
    }
    if d.version < 3 {
        if d.dma64_bit_addresses {
            parts.push("Dma64BitAddresses".into());
        } else if d.dma32_bit_addresses {
            parts.push("Dma32BitAddresses".into());
        }
    } else if d.master {
        parts.push(format!("DmaAddressWidth {}", d.dma_address_width));
    } else {
        parts.push(format!("DmaRequestLine {:#x}", d.dma_request_line));
    }
    parts.push(d.interface_type.name());
    parts.push(format!("MaximumLength {:#x}", d.maximum_length));
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ntmem_kernel::{BugCheckCode, Irql};

    fn report(stop: BugCheck) -> Report {
        let machine = BootSummary {
            machine: "test".to_string(),
            ram: 0,
            usable_ram: 0,
            page_size: 4096,
            free_pages: 0,
            largest_free_run_below_4g: 0,
            largest_free_run: 0,
            nonpaged_pool_max: 0,
            paged_pool_max: 0,
            system_ptes: 0,
            system_ptes_free: 0,
            processors: 1,
            relocation: 0,
            page_directory: 0,
            warnings: Vec::new(),
        };
        let mut r = Report::new("drv.c".to_string(), machine);
        let mut stop = stop;
        stop.driver = Some("drv.c".to_string());
        r.bugcheck = Some(stop);
        r
    }

    #[test]
    fn an_internal_error_exits_5_and_reports_the_routine_and_message_as_a_halt_not_a_bugcheck() {
        let halt = Halt::Internal { routine: "MmUnmapLockedPages".to_string(), message: "boom".to_string() };
        let r = report(BugCheck::halted(halt));
        assert_eq!(r.exit(), 5);
        assert!(r.verdict().contains("INTERNAL ERROR in ntmem: MmUnmapLockedPages failed: boom"), "{}", r.verdict());
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["bugcheck"], serde_json::Value::Null);
        assert_eq!(v["halt"]["kind"], "internal");
        assert_eq!(v["halt"]["routine"], "MmUnmapLockedPages");
        assert_eq!(v["halt"]["message"], "boom");
        assert_eq!(v["halt"]["driver"], "drv.c");
        assert!(r.text().contains("NTMEM INTERNAL ERROR"), "{}", r.text());
    }

    #[test]
    fn a_timeout_exits_4_and_a_bugcheck_3() {
        let halt =
            Halt::Timeout { routine: Some("DriverEntry".to_string()), irql: Irql::PASSIVE, ip: 0x1234, limit_ms: 10 };
        assert_eq!(report(BugCheck::halted(halt)).exit(), 4);
        assert_eq!(report(BugCheck::new(BugCheckCode::DPC_WATCHDOG_VIOLATION, [1, 0x500, 0, 0])).exit(), 3);
    }
}
