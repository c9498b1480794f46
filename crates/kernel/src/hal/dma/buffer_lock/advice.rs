//! `ntmem dma-plan`: boot the machine, fragment it, try the lock, and — when it
//! fails — try again with each change seed 001 and research §4.2 name (a smaller
//! buffer; allocating at boot or in DriverEntry, before memory fragments;
//! scatter/gather instead of contiguous; 64-bit addressing; SystemPages;
//! NonPagedPoolSize; /3GB), each by booting and running the lock again with that
//! change, so a suggestion is only as good as the model says it is.

use ntmem_machine::{format_size, MachineConfig, MachineError, SYSTEM_PAGES_MAXIMUM};

use super::{attempt, AddressWidth, Attempt, LockFailure, LockMode, LockRequest, Step, MAX_LOCK_BYTES};
use crate::bugcheck::BugCheck;
use crate::mm::fragment::{self, Fragmented};
use crate::{BootError, Machine};

/// The NonPagedPoolSize ntmem tries on 32-bit editions: the x86 nonpaged maximum
/// (256 MB, "Memory Limits for Windows Releases").
const NONPAGED_POOL_SIZE_TRY: u64 = 256 << 20;

/// What to plan.
#[derive(Clone, Debug)]
pub struct PlanInput {
    /// The machine.
    pub config: MachineConfig,
    /// The lock.
    pub request: LockRequest,
    /// Percent of free RAM pinned before the lock ([`fragment::fragment`]).
    pub fragment_percent: u32,
}

/// Why there is no plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The machine configuration is invalid.
    #[error(transparent)]
    Config(#[from] MachineError),
    /// The machine did not boot.
    #[error(transparent)]
    Boot(#[from] BootError),
    /// The model stopped (a bug of ntmem).
    #[error("the model stopped with bug check {0:?}")]
    BugCheck(BugCheck),
    /// The buffer size is 0 or above `MAX_LOCK_BYTES`.
    #[error("the buffer size must be 1 byte to 4 GB - 1 (WinDriver's dwDMABufSize is a DWORD), not {0}")]
    BadSize(u64),
}

/// One change, tried.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Suggestion {
    /// The change, in words.
    pub change: String,
    /// The `dma-plan` flags that make it.
    pub flags: String,
    /// Whether the lock then succeeds.
    pub succeeds: bool,
    /// Otherwise the step that still fails first.
    pub failed_step: Option<Step>,
    /// And why.
    pub reason: Option<String>,
}

/// The answer.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Plan {
    /// The edition's key.
    pub machine: &'static str,
    /// RAM installed.
    pub ram: u64,
    /// The lock.
    pub request: LockRequest,
    /// What fragmenting did.
    pub fragmentation: Fragmented,
    /// System PTEs, free and total, before the lock.
    pub system_ptes: (u64, u64),
    /// The lock as it went.
    pub attempt: Attempt,
    /// The first failure, in words.
    pub reason: Option<String>,
    /// What changes the outcome (tried), when the lock fails.
    pub suggestions: Vec<Suggestion>,
}

impl Plan {
    /// Whether the lock succeeds.
    pub fn succeeds(&self) -> bool {
        self.attempt.failure.is_none()
    }
}

/// Boots `config`, fragments it and tries `request`.
fn try_once(
    config: &MachineConfig,
    request: &LockRequest,
    percent: u32,
) -> Result<(Machine, Fragmented, Attempt), PlanError> {
    let m = Machine::boot(config.build()?)?;
    let fragmented = fragment::fragment(&m, percent);
    let got = attempt(&m, request).map_err(PlanError::BugCheck)?;
    Ok((m, fragmented, got))
}

fn suggestion(change: String, flags: String, got: &Attempt) -> Suggestion {
    Suggestion {
        change,
        flags,
        succeeds: got.failure.is_none(),
        failed_step: got.failed_step(),
        reason: got.failure.as_ref().map(|(_, f)| f.to_string()),
    }
}

/// The largest buffer that locks on `m` below `bytes`, to within 1/128 of
/// `bytes` (whole pages), found by bisection with real attempts; `None` when not
/// even the smallest step does.
fn largest_that_locks(m: &Machine, request: &LockRequest) -> Result<Option<Attempt>, PlanError> {
    let page = m.phys().shift().page_size();
    let step = (request.bytes / 128).next_multiple_of(page).max(page);
    // In steps: `low` locks (0 trivially), above `high` nothing is known to.
    let (mut low, mut high) = (0u64, request.bytes.saturating_sub(1) / step);
    let mut best = None;
    while low < high {
        let mid = low + (high - low).div_ceil(2);
        let got = attempt(m, &LockRequest { bytes: mid * step, ..*request }).map_err(PlanError::BugCheck)?;
        if got.failure.is_none() {
            low = mid;
            best = Some(got);
        } else {
            high = mid - 1;
        }
    }
    Ok(best)
}

/// The highest RAM address of `config`'s machine.
fn highest_ram(config: &MachineConfig) -> Result<u64, PlanError> {
    Ok(config.build()?.physmap.highest_ram_address().get())
}

/// Plans `input` (module notes).
///
/// # Errors
/// [`PlanError`]: a bad configuration or size, a machine that does not boot.
pub fn plan(input: &PlanInput) -> Result<Plan, PlanError> {
    let req = input.request;
    if req.bytes == 0 || req.bytes > MAX_LOCK_BYTES {
        return Err(PlanError::BadSize(req.bytes));
    }
    let config = &input.config;
    let percent = input.fragment_percent;
    let m = Machine::boot(config.build()?)?;
    let fragmentation = fragment::fragment(&m, percent);
    let system_ptes = (m.system_ptes().free(), m.system_ptes().total());
    let got = attempt(&m, &req).map_err(PlanError::BugCheck)?;
    let mut plan = Plan {
        machine: config.edition.key,
        ram: config.ram,
        request: req,
        fragmentation,
        system_ptes,
        reason: got.failure.as_ref().map(|(_, f)| f.to_string()),
        attempt: got,
        suggestions: Vec::new(),
    };
    let Some((_, failure)) = plan.attempt.failure.clone() else { return Ok(plan) };
    let mut out = Vec::new();
    if let Some(smaller) = largest_that_locks(&m, &req)? {
        let bytes = smaller.request.bytes;
        out.push(suggestion(
            format!("a smaller buffer: {} ({bytes} bytes) is the largest that locks now", format_size(bytes)),
            format!("--size {bytes}"),
            &smaller,
        ));
    }
    drop(m);
    let mut retry = |change: String, flags: String, config: &MachineConfig, r: LockRequest, pct: u32| {
        match try_once(config, &r, pct) {
            Ok((_, _, got)) => out.push(suggestion(change, flags, &got)),
            Err(PlanError::BugCheck(b)) => return Err(PlanError::BugCheck(b)),
            // A change this machine cannot take (say, a knob out of range) is no suggestion.
            Err(_) => {}
        }
        Ok(())
    };
    if percent > 0 {
        retry(
            "allocate at boot or in DriverEntry, before memory fragments (Technical Document #3)".to_string(),
            "--fragment 0".to_string(),
            config,
            req,
            0,
        )?;
    }
    if req.mode == LockMode::Contiguous {
        let sg = LockRequest { mode: LockMode::ScatterGather, ..req };
        retry("scatter/gather instead of contiguous".to_string(), "--sg".to_string(), config, sg, percent)?;
        // Wider addressing helps only where there is RAM above 4 GB to reach.
        let ram_above_4gb = highest_ram(config)? >= 1 << 32;
        if req.address_width == AddressWidth::Bits32 && ram_above_4gb {
            let wide = LockRequest { address_width: AddressWidth::Bits64, ..req };
            retry("64-bit addressing".to_string(), "--address-width 64".to_string(), config, wide, percent)?;
        }
    }
    if !config.edition.arch.is_64bit() {
        let mut c = config.clone();
        c.registry.system_pages = Some(SYSTEM_PAGES_MAXIMUM);
        retry(
            "SystemPages = 0xFFFFFFFF (as many system PTEs as fit; Technical Document #59)".to_string(),
            "--system-pages 0xFFFFFFFF".to_string(),
            &c,
            req,
            percent,
        )?;
        let mut c = config.clone();
        c.registry.non_paged_pool_size = Some(NONPAGED_POOL_SIZE_TRY);
        retry(
            format!("NonPagedPoolSize = {} (Technical Document #58)", format_size(NONPAGED_POOL_SIZE_TRY)),
            "--nonpaged-pool-size 256M".to_string(),
            &c,
            req,
            percent,
        )?;
    }
    if config.boot.three_gb {
        let mut c = config.clone();
        c.boot.three_gb = false;
        retry(
            "/3GB off (more system address space for PTEs)".to_string(),
            "without /3GB".to_string(),
            &c,
            req,
            percent,
        )?;
    } else if config.edition.supports_3gb && matches!(failure, LockFailure::NoUserAddressSpace { .. }) {
        let mut c = config.clone();
        c.boot.three_gb = true;
        retry("/3GB on (a 3 GB user address space)".to_string(), "--boot /3GB".to_string(), &c, req, percent)?;
    }
    plan.suggestions = out;
    Ok(plan)
}
