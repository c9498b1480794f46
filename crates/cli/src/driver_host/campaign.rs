//! Systematic low resources simulation as a campaign: the driver runs once per
//! allocation site, each run on a fresh machine, failing the first site no earlier run
//! failed (`ntmem_kernel::vf::faults`), until a run reaches no new site. Each site's
//! run says what its failure led to — handled, leaked or a bugcheck — so one bugcheck
//! does not hide what the other failures do. Windows' own option fails every new stack
//! in one boot (research note `dma-verifier-views.md` §3.5); ntmem's Harness and
//! scenarios keep that single-run behaviour.
//!
//! A site reached only on another site's failure path (the driver's cleanup
//! allocating) is reached in that site's run, after its failure, and is listed as
//! such but not failed: no later run takes that path.

use std::fmt::Write as _;

use serde::Serialize;

use super::{run, Report, Request};
use crate::Failure;

/// At most this many runs: a driver with more allocation sites is cut short, and says so.
pub const MAX_RUNS: usize = 1000;

/// What a site's failure led to (JSON: "handled", "leaked", "bugcheck", "did not return").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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
}

impl Outcome {
    /// As the report writes it.
    pub fn text(self) -> &'static str {
        match self {
            Outcome::Handled => "handled",
            Outcome::Leaked => "leaked",
            Outcome::Bugcheck => "bugcheck",
            Outcome::DidNotReturn => "did not return",
        }
    }

    /// The exit status it earns the campaign: 4, 3, 1 or 0.
    fn exit(self) -> u8 {
        match self {
            Outcome::DidNotReturn => 4,
            Outcome::Bugcheck => 3,
            Outcome::Leaked => 1,
            Outcome::Handled => 0,
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
    /// Sites this run reached after the failure that no run failed: they are reached
    /// only on this failure's path.
    pub reached_after: usize,
}

/// A whole campaign.
#[derive(Debug, Serialize)]
pub struct Campaign {
    /// The driver.
    pub driver: String,
    /// One entry per site, in the order the runs reached them.
    pub sites: Vec<SiteRun>,
    /// Whether [`MAX_RUNS`] cut the campaign short.
    pub cut_short: bool,
    /// The last run: the one that reached no new site (every site passed).
    pub baseline: Report,
}

/// Runs the campaign for `request`.
///
/// # Errors
/// As [`run`]: the driver does not build or load (2).
pub fn systematic(request: &Request) -> Result<Campaign, Failure> {
    let mut failed: Vec<u64> = Vec::new();
    let mut sites = Vec::new();
    let mut discovered: Vec<Vec<u64>> = Vec::new();
    let finish = |mut sites: Vec<SiteRun>, discovered: Vec<Vec<u64>>, failed: &[u64], cut_short, baseline: Report| {
        for (s, d) in sites.iter_mut().zip(discovered) {
            s.reached_after = d.iter().filter(|id| !failed.contains(id)).count();
        }
        Campaign { driver: baseline.driver.clone(), sites, cut_short, baseline }
    };
    loop {
        let mut r = request.clone();
        r.systematic_failed_before = Some(failed.clone());
        // Each run's DbgPrint text stays in its report, not on standard output.
        r.json = true;
        let report = run(r)?;
        let state = report.verifier_state.as_ref();
        let injected = state.and_then(|v| v.injected.iter().find(|i| i.systematic && !failed.contains(&i.stack_id)));
        let Some(i) = injected.cloned() else {
            return Ok(finish(sites, discovered, &failed, false, report));
        };
        failed.push(i.stack_id);
        discovered.push(state.map(|v| v.discovered.clone()).unwrap_or_default());
        sites.push(SiteRun {
            site: i.site,
            routine: i.routine,
            stack_id: i.stack_id,
            outcome: outcome(&report),
            verdict: report.verdict(),
            faulting: report.symbols.as_ref().and_then(|s| s.analysis.faulting_frame.as_ref()).map(ToString::to_string),
            exit: report.exit(),
            reached_after: 0,
        });
        if failed.len() >= MAX_RUNS {
            return Ok(finish(sites, discovered, &failed, true, report));
        }
    }
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
            .filter(|s| s.outcome != Outcome::Handled)
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
        let _ = writeln!(o, "\nBaseline run (no site failed):");
        o.push_str(&self.baseline.text());
        o
    }
}
