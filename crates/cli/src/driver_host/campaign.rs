//! Systematic low resources simulation as a campaign: one run records every
//! allocation site the driver reaches, failing nothing (Windows' "what-if" mode,
//! `/faultssystematic recordboottime`); then the driver runs once per site, each run
//! on a fresh machine failing only that site (`ntmem_kernel::vf::Plan`). Each site's
//! run says what its failure led to — handled, leaked or a bugcheck — so one bugcheck
//! does not hide what the other failures do. Windows' own option fails every new stack
//! in one boot (research note `dma-verifier-views.md` §3.5); ntmem's Harness and
//! scenarios keep that single-run behaviour.
//!
//! Stacks on the exclusion list (`--systematic-exclude`, `systematic_exclude`;
//! Windows' `excludestack`) are listed and never failed. The site runs do not depend
//! on each other, so `--jobs N` fans them out over N child processes (the ntmem
//! binary again, `run … --systematic-target ID`, which prints its [`SiteResult`] as
//! JSON); the campaign is the same, byte for byte, whatever N.
//!
//! A site reached only on another site's failure path (the driver's cleanup
//! allocating) is reached in that site's run, after its failure, and is counted
//! there but not failed: no run without that failure takes the path.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use ntmem_kernel::vf::Plan;
use serde::{Deserialize, Serialize};

use super::{run, InjectedCall, Report, Request};
use crate::Failure;

/// At most this many runs: a driver with more allocation sites is cut short, and says so.
pub const MAX_RUNS: usize = 1000;

/// What a site's failure led to (JSON: "handled", "leaked", "bugcheck", "did not
/// return", "not reached").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Nothing wrong: a failing status is the driver handling the failure.
    #[serde(rename = "handled")]
    Handled,
    /// Pool or a symbolic link left behind.
    #[serde(rename = "leaked")]
    Leaked,
    /// A bugcheck.
    #[serde(rename = "bugcheck")]
    Bugcheck,
    /// A routine that did not return (a timeout or a wait that never ends).
    #[serde(rename = "did not return")]
    DidNotReturn,
    /// The site's own run did not reach it (the driver does not take the same path
    /// twice): nothing failed.
    #[serde(rename = "not reached")]
    NotReached,
}

impl Outcome {
    /// As the report writes it.
    pub fn text(self) -> &'static str {
        match self {
            Outcome::Handled => "handled",
            Outcome::Leaked => "leaked",
            Outcome::Bugcheck => "bugcheck",
            Outcome::DidNotReturn => "did not return",
            Outcome::NotReached => "not reached",
        }
    }

    /// The exit status it earns the campaign: 4, 3, 1 or 0.
    fn exit(self) -> u8 {
        match self {
            Outcome::DidNotReturn => 4,
            Outcome::Bugcheck => 3,
            Outcome::Leaked => 1,
            Outcome::Handled | Outcome::NotReached => 0,
        }
    }
}

/// What failing one site led to.
#[derive(Debug, Clone, Serialize)]
pub struct SiteRun {
    /// The driver's call site, named.
    pub site: String,
    /// The routine failed there.
    pub routine: &'static str,
    /// The stack's identity.
    pub stack_id: u64,
    /// What the failure led to.
    pub outcome: Outcome,
    /// The run's one-line verdict.
    pub verdict: String,
    /// For a bugcheck, where it happened (`FAULTING_IP`, named).
    pub faulting: Option<String>,
    /// The run's exit status.
    pub exit: u8,
    /// Sites this run reached after the failure that the recording run did not: they
    /// are reached only on this failure's path.
    pub reached_after: usize,
}

/// A site's run, as a child process reports it to the campaign.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteResult {
    /// What the failure led to.
    pub outcome: Outcome,
    /// The run's one-line verdict.
    pub verdict: String,
    /// For a bugcheck, where it happened (`FAULTING_IP`, named).
    pub faulting: Option<String>,
    /// The run's exit status.
    pub exit: u8,
    /// The stacks the run reached for the first time after the failure, in order.
    pub after: Vec<u64>,
}

/// A site the recording run reached: the call, and whether the exclusion list spares
/// it.
#[derive(Debug, Clone, Serialize)]
pub struct Reached {
    /// The first call from the site's stack (`site`, `routine`, `stack_id`, `stack`).
    #[serde(flatten)]
    pub call: InjectedCall,
    /// On the exclusion list: never failed.
    pub excluded: bool,
}

/// The recording run ("what-if"): every site reached, none failed.
#[derive(Debug, Serialize)]
pub struct Recording {
    /// The driver.
    pub driver: String,
    /// The sites, in the order the run reached them.
    pub sites: Vec<Reached>,
    /// The run itself.
    pub baseline: Report,
}

/// A whole campaign.
#[derive(Debug, Serialize)]
pub struct Campaign {
    /// The driver.
    pub driver: String,
    /// One entry per site failed, in the order the recording run reached them.
    pub sites: Vec<SiteRun>,
    /// Sites on the exclusion list, not failed.
    pub excluded: Vec<Reached>,
    /// Whether [`MAX_RUNS`] cut the campaign short.
    pub cut_short: bool,
    /// The recording run: no site failed.
    pub baseline: Report,
}

/// How a campaign runs its sites' runs.
pub enum Runs<'a> {
    /// One after another, in this process.
    InProcess,
    /// `jobs` at a time, each by `child` (a child process).
    Children {
        /// How many at once.
        jobs: usize,
        /// Runs the site with this stack id.
        child: &'a (dyn Fn(u64) -> Result<SiteResult, Failure> + Sync),
    },
}

/// Runs `request` once, failing nothing, recording every site reached.
///
/// # Errors
/// As [`run`]: the driver does not build or load (2).
pub fn record(request: &Request) -> Result<Recording, Failure> {
    let mut r = request.clone();
    r.systematic = Some(Plan::Record);
    // Each run's DbgPrint text stays in its report, not on standard output.
    r.json = true;
    let baseline = run(r)?;
    let excluded: HashSet<u64> =
        request.verifier.systematic_exclude.iter().filter_map(|t| super::scenario::parse_stack_id(t).ok()).collect();
    let reached = baseline.verifier_state.as_ref().map(|v| v.reached.clone()).unwrap_or_default();
    let sites = reached.into_iter().map(|call| Reached { excluded: excluded.contains(&call.stack_id), call }).collect();
    Ok(Recording { driver: baseline.driver.clone(), sites, baseline })
}

/// Runs `request` failing only the stack `id`: what that led to.
///
/// # Errors
/// As [`run`].
pub fn site_run(request: &Request, id: u64) -> Result<SiteResult, Failure> {
    let mut r = request.clone();
    r.systematic = Some(Plan::Only(id));
    r.json = true;
    let report = run(r)?;
    let reached = report.verifier_state.as_ref().map(|v| v.reached.as_slice()).unwrap_or_default();
    let failed = reached.iter().position(|c| c.stack_id == id && c.systematic);
    let after = failed.map(|i| reached[i + 1..].iter().map(|c| c.stack_id).collect()).unwrap_or_default();
    Ok(SiteResult {
        outcome: if failed.is_some() { outcome(&report) } else { Outcome::NotReached },
        verdict: report.verdict(),
        faulting: report.symbols.as_ref().and_then(|s| s.analysis.faulting_frame.as_ref()).map(ToString::to_string),
        exit: report.exit(),
        after,
    })
}

/// Runs the campaign for `request`: the recording run, then one run per site not
/// excluded, as `runs` says.
///
/// # Errors
/// As [`run`]: the driver does not build or load (2); a child process that does not
/// report.
pub fn systematic(request: &Request, runs: &Runs<'_>) -> Result<Campaign, Failure> {
    let recording = record(request)?;
    let (excluded, mut targets): (Vec<Reached>, Vec<Reached>) =
        recording.sites.iter().cloned().partition(|s| s.excluded);
    let cut_short = targets.len() > MAX_RUNS;
    targets.truncate(MAX_RUNS);
    let ids: Vec<u64> = targets.iter().map(|t| t.call.stack_id).collect();
    let results = match runs {
        Runs::InProcess => ids.iter().map(|&id| site_run(request, id)).collect::<Result<Vec<_>, _>>()?,
        Runs::Children { jobs, child } => fan_out(&ids, *jobs, child)?,
    };
    let known: HashSet<u64> = recording.sites.iter().map(|s| s.call.stack_id).collect();
    let sites = targets
        .into_iter()
        .zip(results)
        .map(|(t, r)| SiteRun {
            site: t.call.site,
            routine: t.call.routine,
            stack_id: t.call.stack_id,
            outcome: r.outcome,
            verdict: r.verdict,
            faulting: r.faulting,
            exit: r.exit,
            reached_after: r.after.iter().filter(|id| !known.contains(id)).count(),
        })
        .collect();
    Ok(Campaign { driver: recording.driver, sites, excluded, cut_short, baseline: recording.baseline })
}

/// Runs `child` for each id, `jobs` at a time; the results in the ids' order.
fn fan_out(
    ids: &[u64],
    jobs: usize,
    child: &(dyn Fn(u64) -> Result<SiteResult, Failure> + Sync),
) -> Result<Vec<SiteResult>, Failure> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<SiteResult, Failure>>>> = Mutex::new(ids.iter().map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, ids.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&id) = ids.get(i) else { break };
                let r = child(id);
                results.lock().unwrap_or_else(std::sync::PoisonError::into_inner)[i] = Some(r);
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    results.into_iter().map(|r| r.unwrap_or_else(|| Err(Failure::usage("a site's run was not made")))).collect()
}

/// What a run's failure led to: a stop, a leak, or nothing wrong (a failing status
/// is the driver handling the failure).
fn outcome(report: &Report) -> Outcome {
    match &report.bugcheck {
        Some(b) if b.halt.is_some() => Outcome::DidNotReturn,
        Some(_) => Outcome::Bugcheck,
        None if !report.leaks.is_empty() || !report.symbolic_links.is_empty() => Outcome::Leaked,
        None => Outcome::Handled,
    }
}

impl Campaign {
    /// The exit status: the worst mishandled site's (3 bugcheck, 4 did not return, 1
    /// leaked), else the baseline run's.
    pub fn exit(&self) -> u8 {
        let worst = |s: &SiteRun| s.outcome.exit();
        self.sites.iter().map(worst).max().unwrap_or(0).max(self.baseline.exit())
    }

    /// One line saying why the exit status is not 0.
    pub fn verdict(&self) -> String {
        let bad: Vec<String> = self
            .sites
            .iter()
            .filter(|s| !matches!(s.outcome, Outcome::Handled | Outcome::NotReached))
            .map(|s| format!("{} failing at {}: {}", s.routine, s.site, s.verdict))
            .collect();
        match bad.first() {
            Some(first) => {
                format!("{} of {} site(s) mishandled a failure; first: {first}", bad.len(), self.sites.len())
            }
            None if self.baseline.exit() != 0 => self.baseline.verdict(),
            None => "clean".to_string(),
        }
    }

    /// The text report: the table of sites, then the baseline run's report.
    pub fn text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "Systematic low resources simulation of {}: {} allocation site(s), each failed once in a run of its own ({} runs)",
            self.driver,
            self.sites.len(),
            self.sites.len() + 1
        );
        if self.cut_short {
            let _ = writeln!(o, "(cut short after {MAX_RUNS} runs)");
        }
        for (n, s) in self.sites.iter().enumerate() {
            let _ = writeln!(o, "{:>3}  {} failing at {}", n + 1, s.routine, s.site);
            let what = if s.outcome == Outcome::Handled {
                "handled".to_string()
            } else {
                format!("{}: {}", s.outcome.text(), s.verdict)
            };
            let _ = writeln!(o, "     -> {what}");
            if let Some(at) = &s.faulting {
                let _ = writeln!(o, "        at {at}");
            }
            if s.reached_after > 0 {
                let _ = writeln!(
                    o,
                    "     (then reached {} more site(s) on this failure's path, not failed)",
                    s.reached_after
                );
            }
        }
        for e in &self.excluded {
            let _ = writeln!(
                o,
                "  -  {} at {} (stack id {:#018x}): excluded, not failed",
                e.call.routine, e.call.site, e.call.stack_id
            );
        }
        let _ = writeln!(o, "\nBaseline run (no site failed):");
        o.push_str(&self.baseline.text());
        o
    }
}

impl Recording {
    /// The text report: each site reached, then the run's report.
    pub fn text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "Systematic low resources simulation of {}, record only: {} allocation site(s) reached, none failed",
            self.driver,
            self.sites.len()
        );
        let _ = writeln!(o, "  #  stack id            routine and site");
        for (n, s) in self.sites.iter().enumerate() {
            let excluded = if s.excluded { "  (excluded)" } else { "" };
            let _ =
                writeln!(o, "{:>3}  {:#018x}  {} at {}{excluded}", n + 1, s.call.stack_id, s.call.routine, s.call.site);
        }
        let _ = writeln!(o, "\nThe run:");
        o.push_str(&self.baseline.text());
        o
    }
}
