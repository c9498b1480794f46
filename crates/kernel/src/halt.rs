//! Stops of a machine that are not Windows bugchecks.
//!
//! Two things end a run where Windows would show no blue screen: a driver routine
//! that runs below DISPATCH_LEVEL for longer than the machine's timeout (Windows
//! would wait forever; ntmem's watchdog, [`crate::ke::watchdog`], ends it), and a
//! failure of ntmem itself inside a routine a driver called (a Rust panic, caught at
//! the WDK boundary). Either stops the machine like a bugcheck — the driver's frames
//! are abandoned — so it travels as a [`crate::BugCheck`] whose
//! [`halt`](crate::BugCheck::halt) is set (its code and parameters are then 0).

use std::fmt;

use crate::ke::irql::Irql;

/// Why the machine halted without a bugcheck.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Halt {
    /// A driver routine had not returned when the timeout expired, below DISPATCH_LEVEL.
    Timeout {
        /// The driver routine that did not return (`DriverEntry`, `IRP_MJ_READ`
        /// dispatch, …), when the caller knows it.
        routine: Option<String>,
        /// The IRQL it was running at.
        irql: Irql,
        /// Where it was: the interrupted instruction (a host address).
        ip: u64,
        /// The limit, in milliseconds of wall time.
        limit_ms: u64,
    },
    /// A wait nothing can ever satisfy: the object is not signalled, no timer is set
    /// and no DPC is queued that could signal it, every other thread waits too and no
    /// later scenario step can come (the requesting thread is among the waiters). On
    /// Windows the threads would wait forever. `routine`, `object` and `object_type`
    /// are the wait of the thread that found it; `waiters` lists every waiting thread.
    WaitNeverEnds {
        /// The routine that waits (`KeWaitForSingleObject`, …).
        routine: String,
        /// The object waited on (the driver's address).
        object: u64,
        /// Its dispatcher type (`DISPATCHER_HEADER.Type`: 0 notification event, 1
        /// synchronization event, 5 semaphore, 8/9 timer, …).
        object_type: u8,
        /// Every thread that waits, in the order they began waiting.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        waiters: Vec<Waiter>,
    },
    /// ntmem itself failed (panicked) inside a routine a driver called: a bug in ntmem.
    Internal {
        /// The routine (`KeInitializeSpinLock`, …).
        routine: String,
        /// The panic's message.
        message: String,
    },
}

/// One waiting thread in a [`Halt::WaitNeverEnds`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Waiter {
    /// Which thread: `requesting thread`, `system thread` or `worker thread`.
    pub thread: String,
    /// A system thread's object (0 for the requesting and worker threads).
    pub thread_address: u64,
    /// The driver routine it started in (0 for the requesting thread).
    pub start_routine: u64,
    /// The routine that waits.
    pub routine: String,
    /// The object (0 for a delay, or a fast mutex's or resource's address).
    pub object: u64,
    /// Its dispatcher type.
    pub object_type: u8,
}

impl fmt::Display for Waiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.thread)?;
        if self.thread_address != 0 {
            write!(f, " {:#x}", self.thread_address)?;
        }
        if self.start_routine != 0 {
            write!(f, " (started at {:#x})", self.start_routine)?;
        }
        write!(f, ": {} on {:#x} (dispatcher type {})", self.routine, self.object, self.object_type)
    }
}

impl Halt {
    /// The analysis a report prints for it (the counterpart of `!analyze -v`).
    pub fn analysis(&self) -> String {
        match self {
            Halt::Timeout { routine, irql, ip, limit_ms } => format!(
                "DRIVER ROUTINE DID NOT RETURN\n{} was still running at {irql:?} after {limit_ms} ms (the \
                 timeout). Windows has no watchdog below DISPATCH_LEVEL: the thread would hang there forever.\n\
                 FAULTING_IP: {ip:#x}\n",
                routine.as_deref().unwrap_or("Driver code"),
            ),
            Halt::WaitNeverEnds { routine, object, object_type, waiters } => {
                let mut s = format!(
                    "WAIT THAT CAN NEVER END\n{routine} waits with no timeout on the object at {object:#x} \
                     (dispatcher type {object_type}), which is not signalled; no timer is set and no DPC queued that \
                     could signal it, and no other thread runs. Windows would wait forever.\n"
                );
                if !waiters.is_empty() {
                    s.push_str("WAITING THREADS:\n");
                    for w in waiters {
                        s.push_str(&format!("  {w}\n"));
                    }
                }
                s
            }
            Halt::Internal { routine, message } => format!(
                "NTMEM INTERNAL ERROR\n{routine} failed inside ntmem: {message}\nThis is a bug in ntmem (the \
                 simulated kernel), not a Windows bugcheck; the run was stopped where it failed.\n"
            ),
        }
    }
}

impl fmt::Display for Halt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Halt::Timeout { routine, irql, ip, limit_ms } => write!(
                f,
                "*** TIMEOUT: {} did not return within {} ms (at {irql:?}, instruction {ip:#x})",
                routine.as_deref().unwrap_or("driver code"),
                limit_ms
            ),
            Halt::Internal { routine, message } => {
                write!(f, "*** INTERNAL ERROR in ntmem: {routine} failed: {message}")
            }
            Halt::WaitNeverEnds { routine, object, .. } => {
                write!(f, "*** WAIT NEVER ENDS: {routine} on {object:#x}, which nothing can signal")
            }
        }
    }
}
