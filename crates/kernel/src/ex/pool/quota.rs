//! Pool quota (`ExAllocatePoolWithQuotaTag`, `POOL_FLAG_USE_QUOTA`).
//!
//! Until processes exist, a [`QuotaProcess`] stands in for the EPROCESS a charge
//! goes to: a name, a limit per pool and the bytes charged. Its
//! [`QuotaProcess::address`] is a token shaped like an EPROCESS address (not mapped)
//! that a charged block records (ProcessBilled on 64-bit, the block's last pointer
//! on x86) so the free can find whom to credit; an unknown token on free is
//! BAD_POOL_CALLER 0xD.

use std::sync::atomic::{AtomicU64, Ordering};

use super::types::PoolKind;

/// A process charged for pool.
#[derive(Debug)]
pub struct QuotaProcess {
    address: u64,
    name: String,
    limits: [u64; 2],
    used: [AtomicU64; 2],
}

impl QuotaProcess {
    pub(crate) fn new(address: u64, name: &str, limits: [u64; 2]) -> QuotaProcess {
        QuotaProcess { address, name: name.to_string(), limits, used: [AtomicU64::new(0), AtomicU64::new(0)] }
    }

    /// The token a charged block records.
    pub fn address(&self) -> u64 {
        self.address
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes charged now in `kind`.
    pub fn used(&self, kind: PoolKind) -> u64 {
        self.used[kind.index()].load(Ordering::Relaxed)
    }

    /// Charges `bytes`; `Err` if that would pass the limit.
    pub(crate) fn charge(&self, kind: PoolKind, bytes: u64) -> Result<(), ()> {
        let limit = self.limits[kind.index()];
        self.used[kind.index()]
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| u.checked_add(bytes).filter(|&n| n <= limit))
            .map(|_| ())
            .map_err(|_| ())
    }

    /// Returns `bytes`.
    pub(crate) fn release(&self, kind: PoolKind, bytes: u64) {
        self.used[kind.index()].fetch_sub(bytes, Ordering::Relaxed);
    }
}
