//! Boot.ini options that change the memory map (seed 000 §2.1 and §12.1).
//!
//! Syntax as in Boot.ini: switches separated by spaces, each starting with `/`, names
//! case-insensitive, values as `=n` in megabytes (`/MAXMEM=4096 /BURNMEMORY=128`).
//! A switch given twice keeps its last value. Whether a switch is valid for an edition
//! is decided when the profile is built ([`crate::MachineConfig::build`]), not here.

use std::fmt;

use crate::error::MachineError;

/// The switches ntmem understands, as the error message lists them.
const VALID: &str = "/3GB, /PAE, /NOLOWMEM, /MAXMEM=<MB>, /BURNMEMORY=<MB>, /DEBUG";

/// Boot options of the simulated machine.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug, serde::Serialize)]
pub struct BootOptions {
    /// `/3GB`: 3 GB user space, 1 GB system space (x86 only).
    pub three_gb: bool,
    /// `/PAE`: the PAE kernel (x86 only; ignored on 64-bit).
    pub pae: bool,
    /// `/NOLOWMEM`: load the system, drivers and applications above 4 GB.
    pub nolowmem: bool,
    /// `/MAXMEM=n`: ignore physical memory at or above n MB.
    pub maxmem_mb: Option<u64>,
    /// `/BURNMEMORY=n`: take n MB away from the system at boot.
    pub burnmemory_mb: Option<u64>,
    /// `/DEBUG`: kernel debugging is enabled, and ntmem plays the kernel debugger
    /// attached to it, as a developer at WinDbg who answers every stop with `g`: a
    /// breakpoint (`DbgBreakPoint`, `__debugbreak`, `int 3`) is reported in the debug
    /// output and execution continues after it, and a failed checked-build `ASSERT` is
    /// answered "Ignore". `KdDebuggerEnabled` reads TRUE and `KdDebuggerNotPresent`
    /// FALSE. Without it a breakpoint is an unhandled exception, as on a machine booted
    /// without a debugger (Microsoft, "Boot Parameters to Enable Debugging", "Handling
    /// a Bug Check When Driver Verifier is Enabled": with no debugger a breakpoint
    /// bugchecks).
    pub debug: bool,
}

impl BootOptions {
    /// Parses Boot.ini switches, e.g. `"/3GB /PAE /NOLOWMEM /MAXMEM=4096 /BURNMEMORY=128"`.
    ///
    /// # Errors
    /// [`MachineError::UnknownBootOption`] for a switch ntmem does not know (the message
    /// lists the valid ones); [`MachineError::BadBootValue`] for a missing, stray or
    /// non-numeric value.
    pub fn parse(text: &str) -> Result<BootOptions, MachineError> {
        let mut boot = BootOptions::default();
        for word in text.split_whitespace() {
            let upper = word.to_ascii_uppercase();
            let unknown = || MachineError::UnknownBootOption { switch: word.to_string(), valid: VALID };
            let body = upper.strip_prefix('/').ok_or_else(unknown)?;
            let (name, value) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (body, None),
            };
            let flag = |target: &mut bool| match value {
                None => {
                    *target = true;
                    Ok(())
                }
                Some(_) => Err(MachineError::BadBootValue { switch: word.to_string(), expected: "no value" }),
            };
            let megabytes = || match value.map(str::parse::<u64>) {
                Some(Ok(mb)) => Ok(Some(mb)),
                _ => Err(MachineError::BadBootValue {
                    switch: word.to_string(),
                    expected: "a number of megabytes, as in /MAXMEM=4096",
                }),
            };
            match name {
                "3GB" => flag(&mut boot.three_gb)?,
                "PAE" => flag(&mut boot.pae)?,
                "NOLOWMEM" => flag(&mut boot.nolowmem)?,
                "MAXMEM" => boot.maxmem_mb = megabytes()?,
                "BURNMEMORY" => boot.burnmemory_mb = megabytes()?,
                "DEBUG" => flag(&mut boot.debug)?,
                _ => return Err(unknown()),
            }
        }
        Ok(boot)
    }
}

/// Prints the options back in Boot.ini syntax (empty when there are none).
impl fmt::Display for BootOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words = Vec::new();
        for (on, name) in [(self.three_gb, "/3GB"), (self.pae, "/PAE"), (self.nolowmem, "/NOLOWMEM")] {
            if on {
                words.push(name.to_string());
            }
        }
        for (value, name) in [(self.maxmem_mb, "/MAXMEM"), (self.burnmemory_mb, "/BURNMEMORY")] {
            if let Some(mb) = value {
                words.push(format!("{name}={mb}"));
            }
        }
        if self.debug {
            words.push("/DEBUG".to_string());
        }
        f.write_str(&words.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_switch_parses_and_prints_back() {
        let text = "/3GB /PAE /NOLOWMEM /MAXMEM=4096 /BURNMEMORY=128 /DEBUG";
        let boot = BootOptions::parse(&text.to_lowercase()).unwrap();
        let expected = BootOptions {
            three_gb: true,
            pae: true,
            nolowmem: true,
            maxmem_mb: Some(4096),
            burnmemory_mb: Some(128),
            debug: true,
        };
        assert_eq!(boot, expected);
        assert_eq!(boot.to_string(), text);
        assert_eq!(BootOptions::parse("  ").unwrap(), BootOptions::default());
        assert_eq!(BootOptions::default().to_string(), "");
    }

    #[test]
    fn bad_switches_name_the_valid_ones() {
        for text in ["/FASTDETECT", "3GB", "/MAXMEMORY=5"] {
            let err = BootOptions::parse(text).unwrap_err();
            assert!(matches!(err, MachineError::UnknownBootOption { .. }), "{text}");
            assert!(err.to_string().contains("/3GB, /PAE, /NOLOWMEM, /MAXMEM=<MB>, /BURNMEMORY=<MB>, /DEBUG"));
        }
        for text in ["/MAXMEM", "/MAXMEM=lots", "/PAE=1", "/BURNMEMORY=", "/DEBUG=1"] {
            assert!(matches!(BootOptions::parse(text), Err(MachineError::BadBootValue { .. })), "{text}");
        }
    }
}
