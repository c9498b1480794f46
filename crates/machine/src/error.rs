//! Errors of building a machine profile.
//!
//! Every message names what would have been valid, so a user of the CLI can fix the
//! command line without reading the source (STYLE.md §7: typed errors per module).

/// Why a machine description cannot become a [`crate::MachineProfile`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MachineError {
    /// The edition name matches no row of Table 1 (nor an alias of one).
    #[error("unknown machine `{name}`; valid machines: {valid}")]
    UnknownEdition {
        /// What was asked for.
        name: String,
        /// Every valid key, comma-separated.
        valid: String,
    },
    /// A Boot.ini switch ntmem does not model.
    #[error("unknown boot option `{switch}`; valid options: {valid}")]
    UnknownBootOption {
        /// The switch as written.
        switch: String,
        /// The switches ntmem understands.
        valid: &'static str,
    },
    /// A Boot.ini switch with a missing or malformed value.
    #[error("boot option `{switch}` needs {expected}")]
    BadBootValue {
        /// The switch as written.
        switch: String,
        /// What the value must look like.
        expected: &'static str,
    },
    /// A Boot.ini switch this edition does not support.
    #[error("{switch} is not supported on {edition}; it is supported on {supported}")]
    BootOptionUnsupported {
        /// `/3GB` or `/BURNMEMORY`.
        switch: &'static str,
        /// The edition, as Table 1 names it.
        edition: String,
        /// Who supports it (seed 000 §2.1, §12.1).
        supported: String,
    },
    /// Installed RAM above the edition's Table 1 maximum.
    #[error("{ram} of RAM exceeds the {max} maximum of {edition}")]
    RamAboveMaximum {
        /// Installed RAM, formatted.
        ram: String,
        /// The edition's maximum, formatted.
        max: String,
        /// The edition.
        edition: String,
    },
    /// Too little memory to boot (installed, or left by /MAXMEM or /BURNMEMORY).
    #[error("{what} leaves {left} of RAM; ntmem needs at least {min} to boot")]
    TooLittleMemory {
        /// What reduced the memory (`installed RAM`, `/MAXMEM=32`, …).
        what: String,
        /// What is left, formatted.
        left: String,
        /// The minimum, formatted.
        min: String,
    },
    /// RAM that is not a whole number of pages.
    #[error("{ram} bytes of RAM is not a whole number of {page}-byte pages")]
    RamNotPageMultiple {
        /// Installed RAM in bytes.
        ram: u64,
        /// The page size in bytes.
        page: u64,
    },
    /// A processor count the edition cannot run.
    #[error("{count} processors: {arch} Windows supports 1 to {max}")]
    Processors {
        /// What was asked for.
        count: u32,
        /// The architecture name.
        arch: &'static str,
        /// The architecture's maximum.
        max: u32,
    },
    /// The system regions cannot fit the system address space even at their minimum sizes.
    #[error("the system address space of {edition} ({space}) cannot hold {need} of fixed regions; {hint}")]
    LayoutDoesNotFit {
        /// The edition.
        edition: String,
        /// Size of the space that was packed.
        space: String,
        /// Sum of the minimum sizes.
        need: String,
        /// What to change.
        hint: &'static str,
    },
}
