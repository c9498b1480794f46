//! Low resources simulation: Driver Verifier failing a verified driver's resource
//! allocations on purpose, so that the code which handles a failed allocation runs
//! (seed 000 §12: "Failure to check the status after attempting to allocate").
//!
//! Two options, as Windows has them (research note `dma-verifier-views.md` §3.4, §3.5;
//! Microsoft, "Low Resources Simulation" and "Systematic low resources simulation"):
//!
//! - **Randomized** (`/flags 0x4`): each eligible call fails with a probability of
//!   `probability` in 10,000 (Windows' default 600, 6%), only for pool tags matching
//!   `tags` (`*` and `?` wildcards; none: every tag), only for calls made in the
//!   context of a process named in `processes` (the `/faults` "App list"; none: every
//!   process) and only once `delay_ms` of simulated time has passed since boot. How Windows draws its random numbers is
//!   not documented; ntmem uses a seeded generator, so a run is reproducible from its
//!   seed.
//! - **Systematic** (`/flags 0x40000`): the first call from each distinct driver stack
//!   fails, every later call from the same stack succeeds. The stack is the part of
//!   the call stack inside the driver, as offsets in its image, so it is the same
//!   after a reload at another address. Stacks on the exclusion list
//!   (`/faultssystematic excludestack STACKID`) are never failed. Besides Windows'
//!   behaviour ([`Plan::EveryNewStack`]), a run can record without failing
//!   (`recordboottime`, the "what-if" mode: [`Plan::Record`]) or fail one given stack
//!   ([`Plan::Only`]): a campaign records the stacks once, then runs the driver once
//!   per stack, failing only that one, so that one bugcheck does not hide what the
//!   other failures lead to.
//!
//! Where ntmem differs: Windows waits `DelayMins` (default 8) minutes after boot
//! before injecting, because boot-start drivers load in those minutes; an ntmem
//! machine loads the driver under test at boot, so the default delay is 0.

use std::collections::HashSet;

use crate::ex::pool::PoolTag;

use super::CallSite;

/// Windows' default chance of failing an eligible call: 600 in 10,000.
pub const DEFAULT_PROBABILITY: u32 = 600;

/// The settings of randomized low resources simulation (`verifier /faults`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FaultSettings {
    /// Chances in 10,000 that an eligible call fails (0–10,000).
    pub probability: u32,
    /// Pool tag patterns to fail (`*`, `?` wildcards); empty: every tag.
    pub tags: Vec<String>,
    /// Process image names whose calls may fail (`app.exe`; compared without case;
    /// the System process is `System`); empty: every process.
    pub processes: Vec<String>,
    /// Simulated milliseconds after boot before the first injection.
    pub delay_ms: u64,
    /// The seed of the random sequence.
    pub seed: u64,
}

impl Default for FaultSettings {
    fn default() -> Self {
        FaultSettings {
            probability: DEFAULT_PROBABILITY,
            tags: Vec::new(),
            processes: Vec::new(),
            delay_ms: 0,
            seed: 0x6e74_6d65_6d5f_7666,
        }
    }
}

/// A call Driver Verifier failed on purpose: the routine, the pool tag if it had
/// one, the driver's stack, and when (`!verifier 4`'s "Resource fault injection
/// history").
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Injection {
    /// The routine the driver called (`ExAllocatePoolWithTag`, `IoAllocateMdl`, …).
    pub routine: &'static str,
    /// The pool tag asked for, if any.
    pub tag: Option<PoolTag>,
    /// The driver that called it.
    pub driver: String,
    /// The driver's return addresses, innermost first.
    pub stack: Vec<u64>,
    /// Simulated time, milliseconds since boot.
    pub at_ms: u64,
    /// Randomized (`false`) or systematic (`true`).
    pub systematic: bool,
    /// The identity of the driver's stack ([`CallSite::stack_hash`]).
    pub stack_id: u64,
}

/// What systematic low resources simulation does with a stack it sees for the first
/// time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Plan {
    /// Fails it (Windows' `/faultssystematic enableboottime`).
    #[default]
    EveryNewStack,
    /// Fails nothing, only records (`recordboottime`, "what-if").
    Record,
    /// Fails only the stack with this id (a campaign's run).
    Only(u64),
}

/// The injector's state.
#[derive(Debug)]
pub(super) struct Faults {
    pub(super) settings: FaultSettings,
    rng: u64,
    /// Stacks systematic simulation has seen.
    seen: HashSet<u64>,
    /// Stacks never failed (`excludestack`).
    excluded: HashSet<u64>,
    plan: Plan,
}

impl Default for Faults {
    fn default() -> Self {
        Faults::new(FaultSettings::default())
    }
}

impl Faults {
    pub(super) fn new(settings: FaultSettings) -> Faults {
        // xorshift needs a non-zero state.
        let rng = settings.seed | 1;
        Faults { settings, rng, seen: HashSet::new(), excluded: HashSet::new(), plan: Plan::default() }
    }

    /// Whether a randomized-simulation call at `now_ms` for `tag`, in the context of
    /// the process named `process`, fails.
    pub(super) fn random(&mut self, now_ms: u64, tag: Option<PoolTag>, process: &str) -> bool {
        if now_ms < self.settings.delay_ms || !self.tag_selected(tag) || !self.process_selected(process) {
            return false;
        }
        (self.next() % 10_000) < u64::from(self.settings.probability)
    }

    /// Systematic simulation's verdict on a call from `site`: whether its stack is
    /// new (seen for the first time), and whether the call fails — a new stack, not
    /// excluded, that the plan fails.
    pub(super) fn systematic(&mut self, site: &CallSite) -> (bool, bool) {
        let h = site.stack_hash();
        let new = self.seen.insert(h);
        let planned = match self.plan {
            Plan::EveryNewStack => true,
            Plan::Record => false,
            Plan::Only(id) => id == h,
        };
        (new, new && planned && !self.excluded.contains(&h))
    }

    /// Sets the plan; forgets the stacks seen (`/faultssystematic resetruntime`).
    pub(super) fn plan(&mut self, plan: Plan) {
        self.seen.clear();
        self.plan = plan;
    }

    /// Adds stacks to the exclusion list.
    pub(super) fn exclude(&mut self, ids: &[u64]) {
        self.excluded.extend(ids);
    }

    /// Whether the stack `id` is on the exclusion list.
    pub(super) fn is_excluded(&self, id: u64) -> bool {
        self.excluded.contains(&id)
    }

    fn process_selected(&self, process: &str) -> bool {
        let p = &self.settings.processes;
        p.is_empty() || p.iter().any(|name| name.eq_ignore_ascii_case(process))
    }

    fn tag_selected(&self, tag: Option<PoolTag>) -> bool {
        if self.settings.tags.is_empty() {
            return true;
        }
        let Some(tag) = tag else { return false };
        self.settings.tags.iter().any(|p| tag_matches(p, tag))
    }

    /// xorshift64*.
    fn next(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Whether `tag` matches `pattern`: `?` any one character, `*` any rest
/// (GFlags' and `verifier /faults`' tag patterns).
pub fn tag_matches(pattern: &str, tag: PoolTag) -> bool {
    let text: Vec<char> = tag.to_string().chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    matches(&pattern, &text)
}

fn matches(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.iter().all(|c| *c == ' '),
        Some(('*', _)) => true,
        Some(('?', rest)) => text.split_first().is_some_and(|(_, t)| matches(rest, t)),
        Some((p, rest)) => text.split_first().is_some_and(|(c, t)| c == p && matches(rest, t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(text: &str) -> PoolTag {
        let mut b = [b' '; 4];
        b[..text.len()].copy_from_slice(text.as_bytes());
        PoolTag(u32::from_le_bytes(b))
    }

    #[test]
    fn tag_patterns_take_wildcards() {
        assert!(tag_matches("Fat*", tag("Fatx")));
        assert!(tag_matches("Av?4", tag("Av94")));
        assert!(!tag_matches("Av?4", tag("Av95")));
        assert!(tag_matches("*", tag("abcd")));
        assert!(tag_matches("Ab", tag("Ab")), "a short tag is padded with spaces");
        assert!(!tag_matches("Ab", tag("Abcd")));
    }

    #[test]
    fn the_rate_is_the_probability_and_the_seed_repeats_it() {
        let mut f = Faults::new(FaultSettings::default());
        // Within 3 standard deviations of 6% over 100,000 calls: sqrt(n p (1 - p)) = 75.1.
        let failed = (0..100_000).filter(|_| f.random(0, None, "System")).count();
        assert!((5_775..=6_225).contains(&failed), "6% of 100,000 +- 3 sigma, got {failed}");
        let mut f = Faults::new(FaultSettings { probability: 10_000, ..FaultSettings::default() });
        assert!((0..10_000).all(|_| f.random(0, None, "System")), "p = 10,000 fails every call");
        let mut f = Faults::new(FaultSettings { probability: 0, ..FaultSettings::default() });
        assert!(!(0..10_000).any(|_| f.random(0, None, "System")), "p = 0 fails none");
        let run = |seed| {
            let mut f = Faults::new(FaultSettings { seed, ..FaultSettings::default() });
            (0..64).map(|_| f.random(0, None, "System")).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn nothing_fails_before_the_delay_or_for_other_tags() {
        let settings = FaultSettings {
            probability: 10_000,
            tags: vec!["Ab*".into()],
            processes: Vec::new(),
            delay_ms: 1000,
            seed: 1,
        };
        let mut f = Faults::new(settings.clone());
        assert!(!f.random(999, Some(tag("Abcd")), "System"));
        assert!(f.random(1000, Some(tag("Abcd")), "System"));
        assert!(!f.random(1000, Some(tag("Xbcd")), "System"));
        assert!(!f.random(1000, None, "System"), "a tag list leaves untagged resources alone");
        let mut f = Faults::new(FaultSettings { processes: vec!["App.exe".into()], ..settings });
        assert!(f.random(1000, Some(tag("Abcd")), "app.exe"), "names compare without case");
        assert!(!f.random(1000, Some(tag("Abcd")), "System"), "other processes' calls pass");
    }

    #[test]
    fn systematic_fails_each_stack_once() {
        let mut f = Faults::default();
        let site = |offsets: &[u64]| CallSite {
            driver: "d.sys".into(),
            frames: offsets.iter().map(|&o| (0x1000 + o, o)).collect(),
        };
        assert_eq!(f.systematic(&site(&[0x10, 0x20])), (true, true));
        assert_eq!(f.systematic(&site(&[0x10, 0x20])), (false, false));
        assert_eq!(f.systematic(&site(&[0x10, 0x30])), (true, true), "same call site, other caller");
        let moved = CallSite { driver: "d.sys".into(), frames: vec![(0x9010, 0x10), (0x9020, 0x20)] };
        assert_eq!(f.systematic(&moved), (false, false), "offsets, not addresses, identify a stack");
    }

    #[test]
    fn record_fails_nothing_only_fails_its_stack_and_excluded_stacks_never_fail() {
        let site = |o: u64| CallSite { driver: "d.sys".into(), frames: vec![(0x1000 + o, o)] };
        let mut f = Faults::default();
        f.plan(Plan::Record);
        assert_eq!(
            [f.systematic(&site(1)), f.systematic(&site(2)), f.systematic(&site(1))],
            [(true, false), (true, false), (false, false)]
        );
        f.plan(Plan::Only(site(2).stack_hash()));
        assert_eq!(f.systematic(&site(1)), (true, false), "the plan forgot the stacks seen");
        assert_eq!([f.systematic(&site(2)), f.systematic(&site(2))], [(true, true), (false, false)]);
        let mut f = Faults::default();
        f.exclude(&[site(3).stack_hash()]);
        assert!(f.is_excluded(site(3).stack_hash()));
        assert_eq!([f.systematic(&site(3)), f.systematic(&site(4))], [(true, false), (true, true)]);
        f.plan(Plan::EveryNewStack);
        assert_eq!(f.systematic(&site(3)), (true, false), "a new plan keeps the exclusion list");
    }
}
