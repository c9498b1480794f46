//! `ntmem dma-plan`: will WinDriver's DMA buffer lock of this size work on that
//! machine, and if not, which step fails first, why, and what would change it
//! (seed 001; the kernel's `hal::dma::buffer_lock` does the work on a booted
//! machine).

use ntmem_kernel::hal::dma::buffer_lock::{
    plan, AddressWidth, LockFailure, LockMode, LockRequest, PageList, Plan, PlanInput, Step, StepRecord, Suggestion,
};
use ntmem_kernel::mm::fragment::{Fragmented, MAX_PERCENT};
use ntmem_machine::{format_size, parse_size};

use crate::options::MachineFlags;
use crate::output;
use crate::Failure;

/// Flags of `ntmem dma-plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    machine: MachineFlags,
    /// The buffer's size (dwDMABufSize), with K/M/G suffix, e.g. 1G; at most 4 GB - 1.
    #[arg(long, value_name = "SIZE")]
    size: String,
    /// WDC_DMAContigBufLock: a physically contiguous kernel buffer (the default).
    #[arg(long, conflicts_with = "sg")]
    contiguous: bool,
    /// WDC_DMASGBufLock: the application's own buffer, locked page by page (scatter/gather).
    #[arg(long)]
    sg: bool,
    /// Address bits the device drives: 32 (the buffer must lie below 4 GB) or 64.
    #[arg(long, value_name = "BITS", default_value_t = 32)]
    address_width: u32,
    /// Fragment physical memory first, as uptime does: pin PERCENT % of the free RAM in
    /// 64 KB blocks at deterministic pseudo-random places (0-90; 0 = just booted).
    #[arg(long, value_name = "PERCENT", default_value_t = 0)]
    fragment: u32,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Report<'a> {
    exit: u8,
    machine: &'static str,
    ram: u64,
    mode: LockMode,
    size: u64,
    address_width: u32,
    fragmentation: &'a Fragmented,
    system_ptes_free: u64,
    system_ptes_total: u64,
    /// "locks" or "fails".
    verdict: &'static str,
    steps: &'a [StepRecord],
    failed_step: Option<Step>,
    failed_routine: Option<&'static str>,
    failure: Option<&'a LockFailure>,
    reason: Option<&'a str>,
    page_list: Option<PageList>,
    suggestions: &'a [Suggestion],
}

fn report(p: &Plan) -> Report<'_> {
    let failure = p.attempt.failure.as_ref();
    Report {
        exit: if p.succeeds() { 0 } else { 1 },
        machine: p.machine,
        ram: p.ram,
        mode: p.request.mode,
        size: p.request.bytes,
        address_width: p.request.address_width.bits(),
        fragmentation: &p.fragmentation,
        system_ptes_free: p.system_ptes.0,
        system_ptes_total: p.system_ptes.1,
        verdict: if p.succeeds() { "locks" } else { "fails" },
        steps: &p.attempt.steps,
        failed_step: failure.map(|(s, _)| *s),
        failed_routine: failure.map(|(s, _)| s.routine()),
        failure: failure.map(|(_, f)| f),
        reason: p.reason.as_deref(),
        page_list: p.attempt.page_list,
        suggestions: &p.suggestions,
    }
}

fn text(p: &Plan) -> String {
    let r = &p.request;
    let f = &p.fragmentation;
    let lock = match r.mode {
        LockMode::Contiguous => "WDC_DMAContigBufLock (contiguous)",
        LockMode::ScatterGather => "WDC_DMASGBufLock (scatter/gather)",
    };
    let mut out = format!(
        "machine        {}, {} RAM\nlock           {lock} of {} ({} bytes), {}-bit device\n",
        p.machine,
        format_size(p.ram),
        format_size(r.bytes),
        r.bytes,
        r.address_width.bits()
    );
    out += &if f.percent == 0 {
        format!("fragmentation  none (just booted); largest free run {} pages\n", f.largest_free_run)
    } else {
        format!(
            "fragmentation  {}% of free RAM pinned in 64 KB blocks ({} pages); largest free run {} pages, {} below 4 GB\n",
            f.percent, f.pinned_pages, f.largest_free_run, f.largest_free_run_below_4gb
        )
    };
    out += &format!("system PTEs    {} free of {}\n\nsteps\n", p.system_ptes.0, p.system_ptes.1);
    for s in &p.attempt.steps {
        out += &format!("  {:<5} {}\n", if s.ok { "ok" } else { "FAIL" }, s.routine);
    }
    match (&p.attempt.failure, &p.attempt.page_list) {
        (Some((step, failure)), _) => {
            out += &format!("\nverdict        fails at {}: {failure}\n", step.routine());
        }
        (None, Some(l)) => {
            out += &format!(
                "\nverdict        locks: {} pages in {} page-list entries{}{}\n",
                l.pages,
                l.entries,
                if l.wd_dma_pages > 256 { " (DMA_LARGE_BUFFER: more than WD_DMA_PAGES = 256)" } else { "" },
                if l.beyond_reach > 0 {
                    format!("; {} pages beyond the device's reach", l.beyond_reach)
                } else {
                    String::new()
                }
            );
        }
        (None, None) => out += "\nverdict        locks\n",
    }
    if !p.suggestions.is_empty() {
        out += "\nwhat changes the outcome (each tried on a freshly planned machine)\n";
        for s in &p.suggestions {
            let result = match (&s.failed_step, &s.reason) {
                (Some(step), Some(reason)) => format!("still fails at {}: {reason}", step.routine()),
                _ => "locks".to_string(),
            };
            out += &format!(
                "  {:<4} {}  [{}]\n       {result}\n",
                if s.succeeds { "yes" } else { "no" },
                s.change,
                s.flags
            );
        }
    }
    out
}

/// Runs the command.
///
/// # Errors
/// Bad flags or an invalid machine (2); the lock fails (1, after the report).
pub fn main(args: &Args) -> Result<(), Failure> {
    let config = args.machine.config()?;
    let bytes = parse_size(&args.size).map_err(|e| Failure::usage(format!("--size: {e}")))?;
    if args.fragment > MAX_PERCENT {
        return Err(Failure::usage(format!("--fragment: {} is above {MAX_PERCENT}", args.fragment)));
    }
    let address_width = AddressWidth::from_bits(args.address_width)
        .ok_or_else(|| Failure::usage(format!("--address-width: {} is not 32 or 64", args.address_width)))?;
    let mode = if args.sg { LockMode::ScatterGather } else { LockMode::Contiguous };
    let input =
        PlanInput { config, request: LockRequest { mode, bytes, address_width }, fragment_percent: args.fragment };
    let p = plan(&input).map_err(Failure::usage)?;
    if args.json {
        super::print_json(&report(&p))?;
    } else {
        output::emit(&text(&p))?;
    }
    if p.succeeds() {
        Ok(())
    } else {
        let step = p.attempt.failed_step().map_or("", Step::routine);
        Err(Failure::with_status(1, format!("the lock fails at {step}")))
    }
}
