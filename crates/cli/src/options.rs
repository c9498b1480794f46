//! The flags every machine-taking command shares, turned into a profile.

use ntmem_machine::{find_edition, parse_size, BootOptions, MachineConfig, MachineProfile, RegistryKnobs};

use crate::Failure;

/// `--machine`, `--ram`, `--boot`, `--processors` and the registry knobs.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MachineFlags {
    /// Machine profile (see `ntmem machines`), e.g. xp-professional. Default: ws03sp1-enterprise-x64.
    #[arg(long, value_name = "NAME")]
    pub machine: Option<String>,
    /// Installed RAM, with K/M/G/T suffix (e.g. 512M, 8G, 1T). Default: 8G, or the edition's maximum if less.
    #[arg(long, value_name = "SIZE")]
    pub ram: Option<String>,
    /// Boot.ini options, e.g. "/3GB /PAE /NOLOWMEM /MAXMEM=2048 /BURNMEMORY=256 /DEBUG"
    /// (/DEBUG: a kernel debugger is attached and continues from breakpoints).
    #[arg(long, value_name = "OPTIONS", allow_hyphen_values = true)]
    pub boot: Option<String>,
    /// Number of processors. Default: 2.
    #[arg(long, value_name = "N")]
    pub processors: Option<u32>,
    /// Registry NonPagedPoolSize (Memory Management key), with K/M/G suffix.
    #[arg(long, value_name = "SIZE")]
    pub nonpaged_pool_size: Option<String>,
    /// Registry PagedPoolSize (Memory Management key), with K/M/G suffix.
    #[arg(long, value_name = "SIZE")]
    pub paged_pool_size: Option<String>,
    /// Registry SystemPages (Memory Management key): a count of system PTEs, 32-bit
    /// editions only; 0xFFFFFFFF = as many as fit.
    #[arg(long, value_name = "COUNT")]
    pub system_pages: Option<String>,
}

/// A count in decimal or `0x` hexadecimal (`--system-pages`).
fn parse_count(text: &str) -> Result<u64, Failure> {
    let t = text.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse(),
    };
    parsed.map_err(|_| Failure::usage(format!("--system-pages: {text:?} is not a count (decimal or 0x hex)")))
}

impl MachineFlags {
    /// The machine configuration these flags describe (defaults for what is absent).
    ///
    /// # Errors
    /// An unknown machine, a malformed size or boot option.
    pub fn config(&self) -> Result<MachineConfig, Failure> {
        let mut config = MachineConfig::default();
        if let Some(name) = &self.machine {
            config.edition = find_edition(name).map_err(Failure::usage)?;
        }
        config.ram = match &self.ram {
            Some(ram) => parse_size(ram).map_err(|e| Failure::usage(format!("--ram: {e}")))?,
            None => config.ram.min(config.edition.max_physical_memory),
        };
        if let Some(boot) = &self.boot {
            config.boot = BootOptions::parse(boot).map_err(Failure::usage)?;
        }
        if let Some(n) = self.processors {
            config.processors = n;
        }
        let knob = |v: &Option<String>, name: &str| -> Result<Option<u64>, Failure> {
            v.as_deref().map(|s| parse_size(s).map_err(|e| Failure::usage(format!("--{name}: {e}")))).transpose()
        };
        config.registry = RegistryKnobs {
            non_paged_pool_size: knob(&self.nonpaged_pool_size, "nonpaged-pool-size")?,
            paged_pool_size: knob(&self.paged_pool_size, "paged-pool-size")?,
            system_pages: self.system_pages.as_deref().map(parse_count).transpose()?,
        };
        Ok(config)
    }

    /// The validated profile.
    ///
    /// # Errors
    /// As [`MachineFlags::config`], plus invalid combinations (RAM above the
    /// edition's maximum, /3GB where unsupported, ...).
    pub fn profile(&self) -> Result<MachineProfile, Failure> {
        self.config()?.build().map_err(Failure::usage)
    }
}
