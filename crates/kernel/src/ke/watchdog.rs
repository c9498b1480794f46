//! The watchdogs over driver code (issue 9): a driver call that does not return ends
//! in a report instead of a hang.
//!
//! * At DISPATCH_LEVEL or above, Windows' DPC watchdog: after the processor has stayed
//!   at raised IRQL for the DPC watchdog period, DPC_WATCHDOG_VIOLATION (0x133). ntmem
//!   runs no DPCs or ISRs, so driver code at raised IRQL is what Windows counts as
//!   time spent "cumulatively at DISPATCH_LEVEL or above": parameters (1, the watchdog
//!   period in clock ticks, 0, 0). Windows' Arg3 points to its
//!   `DPC_WATCHDOG_GLOBAL_TRIAGE_BLOCK`; ntmem has none and passes 0. (Microsoft, "Bug
//!   Check 0x133 DPC_WATCHDOG_VIOLATION".) Windows' period is 0x1E00 ticks (120 s);
//!   ntmem's default is 20 s (0x500 ticks, Windows' single-DPC allotment), so a hung
//!   spin is reported sooner; Arg2 is the period ntmem used.
//! * Below DISPATCH_LEVEL Windows has no watchdog (a thread may loop forever); ntmem
//!   stops after the machine's timeout (default 10 s) with a [`Halt::Timeout`] naming
//!   the IRQL and the interrupted instruction; the caller adds the routine's name.
//!
//! A tick is one clock interrupt of Windows' default clock: 15.625 ms (64 per second).
//! Time is wall time of the host thread running the driver, less the time it spent
//! parked while other simulated threads ran ([`crate::ke::sched`]), measured by a host
//! [`Watchdog`](ntmem_host::Watchdog) timer that ticks at a tenth of the shorter limit (1 ms to 100 ms).
//!
//! [`Halt::Timeout`]: crate::halt::Halt::Timeout

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ntmem_host::{Escape, Watch};

use super::irql::Irql;
use super::processor::Processor;
use crate::bugcheck::{BugCheck, BugCheckCode};
use crate::mm::images::{Images, MAX_IMAGES};
use crate::trap::{encode_escape, timeout_escape};

/// How long driver code may run before the watchdog stops the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchdogLimits {
    /// Below DISPATCH_LEVEL: how long one driver call may take (`--timeout`).
    pub timeout: Duration,
    /// At DISPATCH_LEVEL or above: the DPC watchdog period (`--dpc-watchdog`).
    pub dpc_period: Duration,
}

impl Default for WatchdogLimits {
    fn default() -> Self {
        WatchdogLimits { timeout: Duration::from_secs(10), dpc_period: Duration::from_secs(20) }
    }
}

impl WatchdogLimits {
    /// How often the host timer asks: a tenth of the shorter limit, 1 ms to 100 ms.
    pub fn tick_period(&self) -> Duration {
        (self.timeout.min(self.dpc_period) / 10).clamp(Duration::from_millis(1), Duration::from_millis(100))
    }
}

/// Windows' clock ticks in `d` (15.625 ms each).
pub fn clock_ticks(d: Duration) -> u64 {
    (d.as_micros() / 15_625) as u64
}

/// The watch over one driver call on one processor.
#[derive(Debug)]
pub(crate) struct DriverWatch {
    processors: Arc<[Processor]>,
    images: Arc<Images>,
    cpu: usize,
    limits: WatchdogLimits,
    start: Instant,
    /// Nanoseconds after `start` at which the processor was first seen at raised
    /// IRQL, plus one; 0 while it is below DISPATCH_LEVEL.
    raised_at: AtomicU64,
    /// Whether a driver image was loaded when the call began (see `may_escape`).
    by_image: bool,
    /// Nanoseconds the thread spent parked, waiting for its turn ([`crate::ke::sched`]):
    /// not time the driver ran.
    parked_ns: AtomicU64,
}

impl DriverWatch {
    pub(crate) fn new(processors: Arc<[Processor]>, images: Arc<Images>, cpu: u32, limits: WatchdogLimits) -> Self {
        let by_image = (0..MAX_IMAGES).any(|slot| images.name(slot).is_some());
        let start = Instant::now();
        DriverWatch {
            processors,
            images,
            cpu: cpu as usize,
            limits,
            start,
            raised_at: AtomicU64::new(0),
            by_image,
            parked_ns: AtomicU64::new(0),
        }
    }

    /// The stop a tick at `now` (after the call began) decides on, if any.
    fn decide(&self, now: Duration, irql: Irql, ip: usize) -> Option<Escape> {
        let image = self.images.slot_at(ip);
        if irql >= Irql::DISPATCH {
            let seen = self.raised_at.load(Ordering::Relaxed);
            let since = if seen == 0 {
                self.raised_at.store(now.as_nanos() as u64 + 1, Ordering::Relaxed);
                now
            } else {
                Duration::from_nanos(seen - 1)
            };
            if now.saturating_sub(since) < self.limits.dpc_period {
                return None;
            }
            let mut b =
                BugCheck::new(BugCheckCode::DPC_WATCHDOG_VIOLATION, [1, clock_ticks(self.limits.dpc_period), 0, 0]);
            b.faulting_ip = Some(ip as u64);
            return Some(encode_escape(&b, image));
        }
        self.raised_at.store(0, Ordering::Relaxed);
        (now >= self.limits.timeout).then(|| timeout_escape(irql, ip as u64, self.limits.timeout, image))
    }
}

impl Watch for DriverWatch {
    fn on_tick(&self, ip: usize) -> Option<Escape> {
        let irql = self.processors.get(self.cpu).map_or(Irql::PASSIVE, Processor::irql);
        let parked = Duration::from_nanos(self.parked_ns.load(Ordering::Relaxed));
        self.decide(self.start.elapsed().saturating_sub(parked), irql, ip)
    }

    fn resumed(&self, for_how_long: Duration) {
        let ns = u64::try_from(for_how_long.as_nanos()).unwrap_or(u64::MAX);
        self.parked_ns.fetch_add(ns, Ordering::Relaxed);
        self.raised_at.store(0, Ordering::Relaxed);
    }

    /// With a driver image loaded, only the image's own code may be abandoned (it
    /// owns nothing of ntmem's; a library it called may hold locks); without one (a
    /// Rust driver), the code marked exposed.
    fn may_escape(&self, ip: usize, exposed: bool) -> bool {
        if self.by_image {
            self.images.slot_at(ip).is_some()
        } else {
            exposed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_seconds_are_windows_single_dpc_allotment_of_0x500_ticks() {
        assert_eq!(clock_ticks(Duration::from_secs(20)), 0x500);
        assert_eq!(clock_ticks(Duration::from_secs(120)), 0x1E00);
    }

    #[test]
    fn the_tick_is_a_tenth_of_the_shorter_limit_within_1_to_100_ms() {
        let l = |t, d| WatchdogLimits { timeout: Duration::from_millis(t), dpc_period: Duration::from_millis(d) };
        assert_eq!(l(500, 20_000).tick_period(), Duration::from_millis(50));
        assert_eq!(WatchdogLimits::default().tick_period(), Duration::from_millis(100));
        assert_eq!(l(2, 2).tick_period(), Duration::from_millis(1));
    }
}
