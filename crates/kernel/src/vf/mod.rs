//! `vf`: Driver Verifier (seed 000 §12.1; research/peers.md §7.1–§7.2).
//!
//! The options are Windows' `verifier /flags` bits; a machine carries the set in
//! force ([`crate::Machine::set_verifier`]). What each option does lives with the
//! code it checks: special pool gives every small pool allocation a page of its own
//! against a guard page ([`crate::ex::pool::special`]); force IRQL checking trims
//! pageable memory on every raise to DISPATCH_LEVEL or above
//! ([`crate::Cpu::raise_irql`]), so a driver that touches paged memory at raised IRQL
//! fails every time, not only when memory is short. Options ntmem does not act on
//! yet are accepted and recorded.

bitflags::bitflags! {
    /// `verifier /flags` values (Microsoft, "Driver Verifier options and rule classes").
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct VerifierFlags: u32 {
        /// Special pool (0x1): [`crate::ex::pool::special`].
        const SPECIAL_POOL = 0x1;
        /// Force IRQL checking (0x2): pageable memory is trimmed on every IRQL raise.
        const FORCE_IRQL_CHECKING = 0x2;
        /// Low resources simulation (0x4).
        const LOW_RESOURCES_SIMULATION = 0x4;
        /// Pool tracking (0x8).
        const POOL_TRACKING = 0x8;
        /// I/O verification (0x10).
        const IO_VERIFICATION = 0x10;
        /// Deadlock detection (0x20).
        const DEADLOCK_DETECTION = 0x20;
        /// DMA checking (0x80).
        const DMA_CHECKING = 0x80;
        /// Security checks (0x100).
        const SECURITY_CHECKS = 0x100;
        /// Miscellaneous checks (0x800).
        const MISCELLANEOUS_CHECKS = 0x800;
    }
}

/// Each option's name as `parse_one` reads it, with its flag.
const NAMES: [(&str, VerifierFlags); 9] = [
    ("special_pool", VerifierFlags::SPECIAL_POOL),
    ("irql", VerifierFlags::FORCE_IRQL_CHECKING),
    ("low_resources", VerifierFlags::LOW_RESOURCES_SIMULATION),
    ("pool_tracking", VerifierFlags::POOL_TRACKING),
    ("io", VerifierFlags::IO_VERIFICATION),
    ("deadlock", VerifierFlags::DEADLOCK_DETECTION),
    ("dma", VerifierFlags::DMA_CHECKING),
    ("security", VerifierFlags::SECURITY_CHECKS),
    ("misc", VerifierFlags::MISCELLANEOUS_CHECKS),
];

impl VerifierFlags {
    /// The names of the options set, in flag order (`0x9` → `special_pool`,
    /// `pool_tracking`).
    pub fn names(self) -> Vec<&'static str> {
        NAMES.iter().filter(|(_, f)| self.contains(*f)).map(|(n, _)| *n).collect()
    }

    /// Parses a verifier option by name, as `ntmem run --verifier` and scenario
    /// files spell them (`special_pool`, `irql`, `low_resources`, `pool_tracking`,
    /// `io`, `deadlock`, `dma`, `security`, `misc`), or as a number (`0x2b`).
    ///
    /// # Errors
    /// A message listing the valid names.
    pub fn parse_one(text: &str) -> Result<VerifierFlags, String> {
        let t = text.trim().to_ascii_lowercase().replace('-', "_");
        let t = if t == "force_irql_checking" { "irql".to_string() } else { t };
        let named = NAMES.iter().find(|(n, _)| *n == t).map(|(_, f)| *f);
        if let Some(f) = named {
            return Ok(f);
        }
        let number = t.strip_prefix("0x").map_or_else(|| t.parse::<u32>().ok(), |h| u32::from_str_radix(h, 16).ok());
        number.and_then(VerifierFlags::from_bits).ok_or_else(|| {
            format!(
                "unknown verifier option `{text}`: use special_pool, irql, low_resources, pool_tracking, io, deadlock, dma, security, misc, or a /flags number"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_by_name_and_number() {
        assert_eq!(VerifierFlags::parse_one("irql"), Ok(VerifierFlags::FORCE_IRQL_CHECKING));
        assert_eq!(VerifierFlags::parse_one("0x9"), Ok(VerifierFlags::SPECIAL_POOL | VerifierFlags::POOL_TRACKING));
        assert!(VerifierFlags::parse_one("turbo").unwrap_err().contains("special_pool"));
        assert_eq!(
            (VerifierFlags::SPECIAL_POOL | VerifierFlags::POOL_TRACKING).names(),
            ["special_pool", "pool_tracking"]
        );
        for (name, flag) in NAMES {
            assert_eq!(VerifierFlags::parse_one(name), Ok(flag), "{name} reads back");
        }
    }
}
