//! `!deadlock 1` for the report: after Driver Verifier's deadlock detection stopped
//! the machine with 0xC4/0x1001, the orders that make the cycle — the earlier ones,
//! then the one that closed it — each as the thread that took the locks and the
//! driver's stack at each acquisition, named from its symbols (Microsoft,
//! "!deadlock": "Deadlock detected (2 resources in 2 threads)", "Thread 0 (…) took
//! locks in the following order", "Lock A -- address (Spinlock)", "Stack: …").
//!
//! Locks are lettered A, B, … in the order they first appear. Each order is shown as
//! one "thread" entry, so a cycle one thread made alone shows the same thread twice;
//! the header counts distinct threads, as WinDbg does.

use std::fmt::Write as _;

use ntmem_kernel::vf::{Acquisition, Cycle};
use ntmem_wdk::symbols::Symbolizer;
use serde::Serialize;

/// A lock in the cycle.
#[derive(Debug, Clone, Serialize)]
pub struct DeadlockLock {
    /// Its letter (`A`, `B`, …).
    pub name: String,
    /// Its address.
    pub address: u64,
    /// Its address named (`driver!Global`), when it is in an image.
    pub symbol: Option<String>,
    /// Its type as `!deadlock` prints it (`Spinlock`, `Fast Mutex`, …).
    pub kind: &'static str,
}

/// One lock taken in an order, with the driver's stack then.
#[derive(Debug, Clone, Serialize)]
pub struct DeadlockTaken {
    /// The lock's letter.
    pub lock: String,
    /// The driver's stack, innermost first, named.
    pub stack: Vec<String>,
}

/// One order of the cycle: a thread held the first lock when it took the second.
#[derive(Debug, Clone, Serialize)]
pub struct DeadlockThread {
    /// The thread (`KeGetCurrentThread`).
    pub thread: u64,
    /// The two acquisitions, in the order made.
    pub took: [DeadlockTaken; 2],
}

/// The cycle as `!deadlock 1` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadlockView {
    /// The orders, the earlier ones first, the one that closed the cycle last.
    pub threads: Vec<DeadlockThread>,
    /// The locks, lettered.
    pub locks: Vec<DeadlockLock>,
}

impl DeadlockView {
    /// The view of `cycle`, its stacks and locks named with `symbolizer`, and the
    /// kernel's own locks (the cancel spin lock) by `kernel_name`.
    pub fn new(
        cycle: &Cycle,
        symbolizer: &Symbolizer,
        kernel_name: impl Fn(u64) -> Option<&'static str>,
    ) -> DeadlockView {
        let mut locks: Vec<DeadlockLock> = Vec::new();
        let mut letter = |a: &Acquisition| -> String {
            if let Some(l) = locks.iter().find(|l| l.address == a.lock) {
                return l.name.clone();
            }
            let name = char::from(b'A' + (locks.len() % 26) as u8).to_string();
            let symbol =
                symbolizer.describe(a.lock).map(|f| f.symbol()).or_else(|| kernel_name(a.lock).map(str::to_string));
            locks.push(DeadlockLock { name: name.clone(), address: a.lock, symbol, kind: a.kind.name() });
            name
        };
        let named = |a: &Acquisition| a.stack.iter().map(|&ip| super::return_site(symbolizer, ip)).collect();
        let threads = cycle
            .orders
            .iter()
            .map(|o| DeadlockThread {
                thread: o.first.thread,
                took: [
                    DeadlockTaken { lock: letter(&o.first), stack: named(&o.first) },
                    DeadlockTaken { lock: letter(&o.then), stack: named(&o.then) },
                ],
            })
            .collect();
        DeadlockView { threads, locks }
    }

    /// As WinDbg's `!deadlock` then `!deadlock 1` print it.
    pub fn text(&self) -> String {
        let mut o = String::new();
        let mut distinct: Vec<u64> = self.threads.iter().map(|t| t.thread).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let header = format!("Deadlock detected ({} resources in {} threads):", self.locks.len(), distinct.len());
        let _ = writeln!(o, "\n!deadlock\n{header}\n");
        for (i, t) in self.threads.iter().enumerate() {
            let _ = writeln!(o, "Thread {i}: {} {}", t.took[0].lock, t.took[1].lock);
        }
        let _ = writeln!(o, "\nWhere:");
        for (i, t) in self.threads.iter().enumerate() {
            let _ = writeln!(o, "Thread {i} = {:016x}", t.thread);
        }
        for l in &self.locks {
            let at = l.symbol.clone().unwrap_or_else(|| format!("{:016x}", l.address));
            let _ = writeln!(o, "Lock {} =   {at} Type '{}'", l.name, l.kind);
        }
        let _ = writeln!(o, "\n!deadlock 1\n{header}\n");
        for (i, t) in self.threads.iter().enumerate() {
            let _ = writeln!(o, "Thread {i} ({:016x}) took locks in the following order:\n", t.thread);
            for taken in &t.took {
                let lock = self.locks.iter().find(|l| l.name == taken.lock);
                let (address, kind) = lock.map_or((0, ""), |l| (l.address, l.kind));
                let _ = writeln!(o, "    Lock {} -- {address:016x} ({kind})", taken.lock);
                let mut label = "Stack:";
                for frame in &taken.stack {
                    let _ = writeln!(o, "    {label:<9}{frame}");
                    label = "";
                }
                let _ = writeln!(o);
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ntmem_kernel::vf::{LockKind, Order};

    fn taken(lock: u64, thread: u64, ip: u64) -> Acquisition {
        Acquisition { lock, kind: LockKind::SpinLock, thread, stack: vec![ip] }
    }

    #[test]
    fn both_orders_are_shown_with_their_stacks_as_windbg_prints_them() {
        let cycle = Cycle {
            orders: vec![
                Order { first: taken(0xA0, 1, 0x10), then: taken(0xB0, 1, 0x11) },
                Order { first: taken(0xB0, 2, 0x20), then: taken(0xA0, 2, 0x21) },
            ],
        };
        let text = DeadlockView::new(&cycle, &Symbolizer::new(), |_| None).text();
        assert!(
            text.contains("Deadlock detected (2 resources in 2 threads):\n\nThread 0: A B\nThread 1: B A\n"),
            "{text}"
        );
        assert!(text.contains("Lock A =   00000000000000a0 Type 'Spinlock'"), "{text}");
        assert!(text.contains("Thread 1 (0000000000000002) took locks in the following order:\n\n    Lock B -- 00000000000000b0 (Spinlock)\n    Stack:   0x20\n"), "{text}");
    }
}
