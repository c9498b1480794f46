//! `ke`: the kernel core — IRQL, processors, spin locks, kernel stacks
//! (DESIGN.md, layer `ke`).

pub mod device_queue;
pub mod irql;
pub mod kernel_objects;
pub mod processor;
pub mod sched;
pub mod shared_data;
pub mod timers;
pub mod watchdog;
pub mod workers;
