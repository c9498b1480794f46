//! Scenario files (issue 5 item 4): what `ntmem run --scenario FILE.toml` runs,
//! and what [`super::Harness`] runs for a Rust driver — one schema for both.
//!
//! ```toml
//! machine = "ws03sp1-enterprise-x64"   # optional; --machine overrides
//! ram = "2G"                           # optional; --ram overrides
//! boot = "/PAE"                        # optional; --boot overrides
//! processors = 2                       # optional; --processors overrides
//! timeout = 10                        # optional; seconds below DISPATCH_LEVEL; --timeout overrides
//! verifier = ["special_pool"]          # optional: Driver Verifier options (names or /flags)
//! verify_drivers = ["mydriver.sys"]    # optional: verifier /driver (default: every driver)
//! special_pool_tag = "Tag1"            # optional: GFlags special pool by tag ("Fat*", "*") or size ("0x30")
//! pool_tag_overruns = 1                # optional: 1 Verify End (default), 0 Verify Start
//! systematic_exclude = ["0x5f3c…"]     # optional: stack ids systematic_low_resources never fails
//!
//! [faults]                             # optional: verifier /faults, for low_resources
//! probability = 600                    # chances in 10,000 (default 600)
//! tags = ["Ab*"]                       # pool tags to fail (default: all)
//! processes = ["app.exe"]              # only calls in these processes (default: all)
//! delay_ms = 0                         # simulated ms after boot before the first (default 0)
//! seed = 1                             # the random sequence (default fixed)
//!
//! [[relocate]]                         # optional: before start-device, the chipset
//! block = 0                            # decodes the NIC's block 0 (its memory CSRs)
//! space = "port"                       # in I/O space ("memory" for the reverse)
//!
//! [[device]]                           # optional: the NIC masters DMA with 32 address
//! name = "nic0"                        # lines (default 64): its transfers drop the
//! dma_address_bits = 32                # higher bits of the address programmed
//!
//! [[device]]                           # optional: a device on request line 0x1000 of a
//! name = "uart"                        # Windows 8 system DMA controller (ACPI CSRT);
//! dma_request_line = 0x1000            # dma_ready: it never makes the controller wait,
//! dma_ready = true                     # so a programmed transfer runs to its end at once
//!
//! [[step]]
//! ioctl = { code = 0x222400, input = "68656c6c6f", output_len = 16, process = "app.exe" }
//! [[step]]
//! ioctl = { code = 0x22240F, input = "00", output_len = 4 }
//! free_buffer = true                   # or protect_buffer = "readonly" / "noaccess"
//! expect_status = 0xC0000005           # the step fails unless its status is this
//! [[step]]
//! read = { length = 64 }               # also: write = { data = "hex" }
//! [[step]]
//! trim = true                          # also: advance_ms = 100, unload = true
//! [[step]]
//! open = { name = "\\\\.\\IoctlTest", handle = "h1" }   # IRP_MJ_CREATE (also access, share, options, process)
//! [[step]]
//! ioctl = { code = 0x222400, output_len = 4 }
//! handle = "h1"                        # through the handle: FileObject set
//! [[step]]
//! close = "h1"                         # IRP_MJ_CLEANUP, then IRP_MJ_CLOSE
//! [[step]]
//! cancel = 3                           # IoCancelIrp of step 3's request, still pending
//! [[step]]
//! dma = { device = "nic0", direction = "from_device", data = "a5" }  # the device writes at
//!                                      # its DMA registers' address ("to_device": it reads)
//! [[step]]
//! dma = { channel = 2, direction = "from_device", data = "a5", length = 512 }  # a subordinate
//!                                      # device on ISA channel 2 (or request_line = N) asks
//!                                      # the system DMA controller for 512 bytes (default: all)
//! [[step]]
//! fragment = 5                         # pin 5 % of free RAM in 64 KB blocks, as uptime
//!                                      # fragments it (ntmem_kernel::mm::fragment; seed 001)
//! [[step]]
//! power = { minor = "set_power", system_state = "S3" }   # IRP_MJ_POWER to the top of the
//!                                      # stack: set_power / query_power, system_state S0-S5
//!                                      # or device_state D0-D3 (ntmem_kernel::io::power)
//! [[step]]
//! event = { handle = "e" }             # CreateEvent(NULL, TRUE, FALSE, NULL) in app.exe
//!                                      # (also manual_reset, signalled, process)
//! [[step]]
//! ioctl = { code = 0x222000, input = "01000000 00000000 {e} 803c36feffffffff" }
//!                                      # {e}: the handle's value, pointer-sized
//! [[step]]
//! wait = "e"                           # WaitForSingleObject: time moves on until it is
//!                                      # signalled (also { handle = "e", timeout_ms = N })
//! [[step]]
//! reset = "e"                          # ResetEvent; close = "e" closes it
//!
//! [registry]                           # optional: values of the driver's Parameters key,
//! BufferSize = { dword = 4096 }        # \Registry\Machine\System\CurrentControlSet\
//! Limit = { qword = 0x100000000 }      #   Services\<driver>\Parameters, set before
//! Name = { sz = "nic" }                #   DriverEntry (in the order of their names)
//! Path = { expand_sz = "%SystemRoot%\\x" }
//! Names = { multi_sz = ["a", "b"] }
//! Blob = { binary = "deadbeef" }
//! ```
//!
//! Each step holds exactly one action. `internal_ioctl` (same keys, no process)
//! sends IRP_MJ_INTERNAL_DEVICE_CONTROL from kernel code with buffers in nonpaged
//! pool. Without `expect_status`, a step fails when its status is an error
//! (`NT_ERROR`). Invalid files are rejected naming the line and the key.

use std::ops::Range;
use std::path::Path;

use ntmem_kernel::ex::pool::special::TagSelection;
use serde::Deserialize;
use toml::Spanned;

/// A parsed scenario.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// `machine`.
    pub machine: Option<String>,
    /// `ram`.
    pub ram: Option<String>,
    /// `boot`.
    pub boot: Option<String>,
    /// `processors`.
    pub processors: Option<u32>,
    /// `timeout`: seconds a driver routine may run below DISPATCH_LEVEL (`--timeout`).
    pub timeout: Option<f64>,
    /// `verifier`.
    #[serde(default)]
    pub verifier: Vec<String>,
    /// `verify_drivers`: the drivers Driver Verifier checks (none: every driver).
    #[serde(default)]
    pub verify_drivers: Vec<String>,
    /// `[faults]`: randomized low resources simulation's knobs.
    pub faults: Option<Faults>,
    /// `special_pool_tag`: GFlags' special pool by tag or size.
    pub special_pool_tag: Option<String>,
    /// `pool_tag_overruns`: 1 Verify End (default), 0 Verify Start.
    pub pool_tag_overruns: Option<u8>,
    /// `systematic_exclude`: stack ids (`0x…` or decimal, as strings: TOML integers
    /// stop at 2^63) systematic low resources simulation never fails.
    #[serde(default)]
    pub systematic_exclude: Vec<String>,
    /// `[[relocate]]`: register blocks a chipset decodes in the other space.
    #[serde(default)]
    pub relocate: Vec<Relocate>,
    /// `[[device]]`: what the machine's devices can do (issue 13).
    #[serde(default, rename = "device")]
    pub devices: Vec<DeviceDecl>,
    /// `[[step]]`.
    #[serde(default, rename = "step")]
    pub steps: Vec<Spanned<StepSpec>>,
    /// `[registry]`: the driver's `Parameters` values, by name.
    #[serde(default)]
    pub registry: std::collections::BTreeMap<String, Spanned<RegistryValueSpec>>,
    /// The `[registry]` values, checked by [`parse`].
    #[serde(skip)]
    pub parameters: Vec<RegistryValue>,
}

/// One `[registry]` value as written: exactly one of its types.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryValueSpec {
    /// `dword`: REG_DWORD, 0 to 0xFFFFFFFF.
    pub dword: Option<i64>,
    /// `qword`: REG_QWORD, 0 to 2^63-1 (TOML's integers).
    pub qword: Option<i64>,
    /// `sz`: REG_SZ.
    pub sz: Option<String>,
    /// `expand_sz`: REG_EXPAND_SZ.
    pub expand_sz: Option<String>,
    /// `multi_sz`: REG_MULTI_SZ, non-empty strings.
    pub multi_sz: Option<Vec<String>>,
    /// `binary`: REG_BINARY, hex bytes.
    pub binary: Option<Spanned<String>>,
}

/// UTF-16 with a NUL, as a string value stores it; a NUL inside is an error.
fn reg_string(s: &str) -> Result<Vec<u16>, String> {
    if s.contains('\0') {
        return Err(format!("{s:?} holds a NUL character (it would end the string)"));
    }
    Ok(s.encode_utf16().chain([0]).collect())
}

impl RegistryValueSpec {
    /// The value's `REG_*` type and data.
    fn value(&self, lines: &Lines, file: &str, name: &str) -> Result<(u32, Vec<u8>), String> {
        use ntmem_kernel::cm::{REG_BINARY, REG_DWORD, REG_EXPAND_SZ, REG_MULTI_SZ, REG_QWORD, REG_SZ};
        let units = |u: Vec<u16>| u.iter().flat_map(|c| c.to_le_bytes()).collect::<Vec<u8>>();
        let set = [
            self.dword.is_some(),
            self.qword.is_some(),
            self.sz.is_some(),
            self.expand_sz.is_some(),
            self.multi_sz.is_some(),
            self.binary.is_some(),
        ];
        if set.iter().filter(|&&b| b).count() != 1 {
            return Err("holds exactly one of dword, qword, sz, expand_sz, multi_sz, binary".to_string());
        }
        let (kind, data) = if let Some(d) = self.dword {
            let d = u32::try_from(d).map_err(|_| format!("dword {d} is not in 0..=0xFFFFFFFF"))?;
            (REG_DWORD, d.to_le_bytes().to_vec())
        } else if let Some(q) = self.qword {
            let q = u64::try_from(q).map_err(|_| format!("qword {q} is negative"))?;
            (REG_QWORD, q.to_le_bytes().to_vec())
        } else if let Some(s) = &self.sz {
            (REG_SZ, units(reg_string(s)?))
        } else if let Some(s) = &self.expand_sz {
            (REG_EXPAND_SZ, units(reg_string(s)?))
        } else if let Some(list) = &self.multi_sz {
            let mut all = Vec::new();
            for s in list {
                if s.is_empty() {
                    return Err("multi_sz holds an empty string (it would end the list)".to_string());
                }
                all.extend(reg_string(s)?);
            }
            all.push(0);
            (REG_MULTI_SZ, units(all))
        } else {
            let b = self.binary.as_ref().map_or(Ok(Vec::new()), |b| hex(b, lines, file, name))?;
            (REG_BINARY, b)
        };
        if data.len() > ntmem_kernel::cm::MAX_VALUE_DATA {
            return Err(format!("{} bytes of data, more than {}", data.len(), ntmem_kernel::cm::MAX_VALUE_DATA));
        }
        Ok((kind, data))
    }
}

/// One `[registry]` value, checked: name, `REG_*` type, data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryValue {
    /// The name.
    pub name: String,
    /// `REG_*`.
    pub kind: u32,
    /// The bytes stored.
    pub data: Vec<u8>,
}

impl RegistryValue {
    /// As the registry keeps it.
    pub fn to_value(&self) -> ntmem_kernel::cm::Value {
        ntmem_kernel::cm::Value { name: self.name.encode_utf16().collect(), kind: self.kind, data: self.data.clone() }
    }
}

impl Scenario {
    /// The `[registry]` values, checked (the errors name the line and the value).
    ///
    /// # Errors
    /// A value with no type or two, a number out of range, a string with a NUL, an
    /// empty string in a multi_sz, bad hex, a name longer than 16,383 characters.
    fn check_registry(&self, file: &str, text: &str) -> Result<Vec<RegistryValue>, String> {
        let lines = Lines::of(text);
        self.registry
            .iter()
            .map(|(name, spec)| {
                let line = lines.line(spec.span().start);
                let fail = |e: String| format!("{file}:{line}: registry value `{name}`: {e}");
                if name.encode_utf16().count() > ntmem_kernel::cm::MAX_VALUE_NAME {
                    return Err(fail("the name is longer than 16383 characters".to_string()));
                }
                let (kind, data) = spec.get_ref().value(&lines, file, name).map_err(fail)?;
                Ok(RegistryValue { name: name.clone(), kind, data })
            })
            .collect()
    }
}
/// `[faults]`: `verifier /faults Probability "Tags" "" DelayMins`, with a seed
/// (`ntmem_kernel::vf::faults`). Missing keys take the defaults.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Chances in 10,000 (0–10,000).
    pub probability: Option<u32>,
    /// Pool tag patterns (`*`, `?`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Process image names (the `/faults` "App list").
    #[serde(default)]
    pub processes: Vec<String>,
    /// Simulated milliseconds after boot before the first injection.
    pub delay_ms: Option<u64>,
    /// The random sequence's seed.
    pub seed: Option<u64>,
}

impl Faults {
    /// The settings, checked.
    ///
    /// # Errors
    /// A probability above 10,000 or a tag pattern longer than four characters.
    pub fn settings(&self) -> Result<ntmem_kernel::vf::FaultSettings, String> {
        let d = ntmem_kernel::vf::FaultSettings::default();
        let probability = self.probability.unwrap_or(d.probability);
        if probability > 10_000 {
            return Err(format!("faults: probability {probability} is more than 10000 (chances in 10,000)"));
        }
        if let Some(t) = self.tags.iter().find(|t| t.is_empty() || t.chars().count() > 4) {
            return Err(format!("faults: tag pattern {t:?} is not 1 to 4 characters"));
        }
        Ok(ntmem_kernel::vf::FaultSettings {
            probability,
            tags: self.tags.clone(),
            processes: self.processes.clone(),
            delay_ms: self.delay_ms.unwrap_or(d.delay_ms),
            seed: self.seed.unwrap_or(d.seed),
        })
    }
}

/// Driver Verifier as a run asks for it: the options (names or `/flags` numbers), the
/// drivers verified (empty: all) and the fault-injection knobs; and GFlags' special
/// pool by tag or size, which needs no Verifier.
#[derive(Clone, Debug, Default)]
pub struct VerifierSpec {
    /// Options.
    pub options: Vec<String>,
    /// `verify_drivers` / `--verify-driver`.
    pub drivers: Vec<String>,
    /// `[faults]`.
    pub faults: Faults,
    /// `special_pool_tag` / `--special-pool-tag`.
    pub special_pool_tag: Option<String>,
    /// `pool_tag_overruns` / `--pool-tag-overruns`: `false` is Verify Start.
    pub pool_tag_overruns: Option<bool>,
    /// `systematic_exclude` / `--systematic-exclude`: stack ids never failed.
    pub systematic_exclude: Vec<String>,
}

/// A stack id as `systematic_exclude` and `--systematic-exclude` spell it: `0x` hex
/// or decimal.
///
/// # Errors
/// A message naming the text.
pub fn parse_stack_id(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse(),
    };
    parsed.map_err(|_| format!("systematic_exclude: {text:?} is not a stack id (0x hex or decimal)"))
}

impl VerifierSpec {
    /// The options, once every value is checked.
    ///
    /// # Errors
    /// An unknown option or a bad `[faults]` value, as a message.
    pub fn check(&self) -> Result<ntmem_kernel::vf::VerifierFlags, String> {
        self.faults.settings()?;
        self.tag_selection(4096)?;
        self.stack_ids()?;
        let mut flags = ntmem_kernel::vf::VerifierFlags::empty();
        for option in &self.options {
            flags |= ntmem_kernel::vf::VerifierFlags::parse_one(option)?;
        }
        Ok(flags)
    }

    /// The stacks excluded from systematic low resources simulation.
    fn stack_ids(&self) -> Result<Vec<u64>, String> {
        self.systematic_exclude.iter().map(|t| parse_stack_id(t)).collect()
    }

    /// GFlags' special pool selection, for pages of `page` bytes.
    fn tag_selection(&self, page: u64) -> Result<Option<TagSelection>, String> {
        let overruns = self.pool_tag_overruns.unwrap_or(true);
        self.special_pool_tag.as_deref().map(|t| TagSelection::parse(t, page, overruns)).transpose()
    }

    /// Turns it on for `machine`; returns the options.
    ///
    /// # Errors
    /// An unknown option or a bad `[faults]` value, as a message.
    pub fn apply(&self, machine: &ntmem_kernel::Machine) -> Result<ntmem_kernel::vf::VerifierFlags, String> {
        let flags = self.check()?;
        let page = machine.pool().geometry().page;
        machine.pool().special().set_selection(self.tag_selection(page)?);
        let vf = machine.vf();
        vf.set_faults(self.faults.settings()?);
        vf.exclude_stacks(&self.stack_ids()?);
        vf.set_drivers((!self.drivers.is_empty()).then(|| self.drivers.clone()));
        vf.set_flags(flags);
        Ok(flags)
    }
}

/// `[[relocate]]`: before the driver starts, the chipset decodes block `block` of
/// device `device` (default "nic0", the machine's NIC) in `space` (seed §8: "some
/// chipsets change the mapping"); the raw resource list keeps how it is wired,
/// the translated list says where it now is.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relocate {
    /// `device`: the device's name.
    #[serde(default = "nic0")]
    pub device: String,
    /// `block`: the register block, in BAR order (the NIC: 0 memory CSRs, 1 I/O CSRs).
    pub block: usize,
    /// `space`: "port" or "memory".
    pub space: RelocateSpace,
}

/// `[[device]]`: a device's DMA capability, declared before the driver starts
/// (the machine has one device, the NIC `nic0`; this says how it masters DMA), or
/// a device on a request line of a Windows 8 system DMA controller (then `name` is
/// only its label).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceDecl {
    /// `name`: the device.
    #[serde(default = "nic0")]
    pub name: String,
    /// `dma_address_bits`: the address lines it drives as a bus master (24, 32, 64,
    /// or any of 1..=64): a transfer drops the higher bits of its address.
    pub dma_address_bits: Option<u32>,
    /// `dma_request_line`: the device is on this request line of a system DMA
    /// controller, which the machine's firmware therefore describes.
    pub dma_request_line: Option<u32>,
    /// `dma_ready`: the request line's device never makes the controller wait.
    #[serde(default)]
    pub dma_ready: bool,
}

fn nic0() -> String {
    "nic0".to_string()
}

/// Where a relocated block goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelocateSpace {
    /// I/O-port space.
    Port,
    /// Memory space.
    Memory,
}

/// The buffers of an `ioctl` / `internal_ioctl` step.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IoctlSpec {
    /// `code`: the I/O control code.
    pub code: u32,
    /// `input`: hex bytes.
    pub input: Option<Spanned<String>>,
    /// `output_len`.
    #[serde(default)]
    pub output_len: u32,
    /// `process`: the calling process's image name (default `app.exe`).
    pub process: Option<String>,
}

/// A `read` step.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadSpec {
    /// `length`.
    pub length: u32,
    /// `offset`: `ByteOffset`.
    #[serde(default)]
    pub offset: i64,
    /// `process`.
    pub process: Option<String>,
}

/// A `write` step.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteSpec {
    /// `data`: hex bytes.
    pub data: Spanned<String>,
    /// `offset`: `ByteOffset`.
    #[serde(default)]
    pub offset: i64,
    /// `process`.
    pub process: Option<String>,
}

/// A `dma` step: a device transfers as its DMA registers say (issue 13;
/// `ntmem_kernel::hal::dma::device_side`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DmaSpec {
    /// `device`: the device's name (`nic0`).
    #[serde(default = "nic0")]
    pub device: String,
    /// `channel`: instead, the subordinate device on this ISA DMA channel.
    pub channel: Option<u32>,
    /// `request_line`: instead, the device on this system DMA request line.
    pub request_line: Option<u32>,
    /// `length`: for a system DMA channel, the bytes the device asks for (default:
    /// all that are left).
    pub length: Option<u32>,
    /// `direction`: `to_device` (it reads memory) or `from_device` (it writes).
    pub direction: ntmem_kernel::hal::dma::device_side::Direction,
    /// `data`: hex bytes the device writes, repeated to the programmed length
    /// (`from_device` only).
    pub data: Option<Spanned<String>>,
}

/// A `power` step: `IRP_MJ_POWER` to the top of the driver's stack, as the power
/// manager sends one ([`ntmem_kernel::io::power`]).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerSpec {
    /// `minor`: `set_power` or `query_power`.
    pub minor: String,
    /// `system_state`: `S0` (working) to `S5` (shutdown): a system power IRP.
    pub system_state: Option<String>,
    /// `device_state`: `D0` to `D3`: a device power IRP.
    pub device_state: Option<String>,
}

impl PowerSpec {
    /// The request, checked.
    fn request(&self) -> Result<ntmem_kernel::io::power::PowerRequest, String> {
        use ntmem_kernel::io::power::{PowerMinor, PowerRequest, PowerState};
        let minor = match self.minor.to_ascii_lowercase().as_str() {
            "set_power" => PowerMinor::SetPower,
            "query_power" => PowerMinor::QueryPower,
            m => {
                return Err(format!(
                    "minor `{m}`: use set_power or query_power (ntmem sends neither wait_wake nor power_sequence)"
                ))
            }
        };
        // S0..S5 are PowerSystemWorking (1) .. PowerSystemShutdown (6); D0..D3 are
        // PowerDeviceD0 (1) .. PowerDeviceD3 (4).
        let level = |text: &str, letter: char, max: u32| {
            let t = text.trim().to_ascii_uppercase();
            t.strip_prefix(letter).and_then(|n| n.parse::<u32>().ok()).filter(|&n| n <= max).map(|n| n + 1)
        };
        let state = match (&self.system_state, &self.device_state) {
            (Some(s), None) => {
                PowerState::System(level(s, 'S', 5).ok_or_else(|| format!("system_state `{s}`: use S0 to S5"))?)
            }
            (None, Some(d)) => {
                PowerState::Device(level(d, 'D', 3).ok_or_else(|| format!("device_state `{d}`: use D0 to D3"))?)
            }
            _ => return Err("give exactly one of system_state and device_state".to_string()),
        };
        Ok(PowerRequest { minor, state })
    }
}

/// An `open` step: `CreateFile` of a device by name.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenSpec {
    /// `name`: `\\.\X`, `\DosDevices\X`, `\??\X` or `\Device\X`.
    pub name: String,
    /// `handle`: what later steps call the handle.
    pub handle: String,
    /// `process`: the opening process's image name (default `app.exe`).
    pub process: Option<String>,
    /// `access`: `DesiredAccess` (default GENERIC_READ | GENERIC_WRITE).
    pub access: Option<u32>,
    /// `share`: `ShareAccess` (`FILE_SHARE_*`, default 0).
    #[serde(default)]
    pub share: u32,
    /// `options`: `Parameters.Create.Options` (default FILE_OPEN << 24, what
    /// `CreateFile(OPEN_EXISTING)` sends).
    pub options: Option<u32>,
}

/// An `event` step: `CreateEvent(NULL, manual_reset, signalled, NULL)`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// `handle`: what later steps call the handle.
    pub handle: String,
    /// `process`: the creating process's image name (default `app.exe`).
    pub process: Option<String>,
    /// `manual_reset` (default true).
    pub manual_reset: Option<bool>,
    /// `signalled`: the initial state (default false).
    #[serde(default)]
    pub signalled: bool,
}

/// A `wait` step: `"e"` or `{ handle = "e", timeout_ms = N }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum WaitSpec {
    /// `wait = "e"`.
    Handle(String),
    /// `wait = { handle, timeout_ms }`.
    #[serde(rename_all = "snake_case")]
    Table {
        /// The handle.
        handle: String,
        /// The longest wait in simulated ms.
        timeout_ms: Option<u64>,
    },
}

/// `GENERIC_READ | GENERIC_WRITE`.
const GENERIC_READ_WRITE: u32 = 0xC000_0000;
/// `FILE_OPEN` (1) in the disposition byte of `Parameters.Create.Options`.
const FILE_OPEN_OPTIONS: u32 = 1 << 24;

/// What the caller does to its buffer while the request is in the driver.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Protection {
    /// `PAGE_READONLY`.
    Readonly,
    /// `PAGE_NOACCESS`.
    Noaccess,
    /// `PAGE_READWRITE`.
    Readwrite,
}

/// One `[[step]]` table as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// `ioctl`.
    pub ioctl: Option<IoctlSpec>,
    /// `internal_ioctl`.
    pub internal_ioctl: Option<IoctlSpec>,
    /// `read`.
    pub read: Option<ReadSpec>,
    /// `write`.
    pub write: Option<WriteSpec>,
    /// `trim`.
    pub trim: Option<bool>,
    /// `advance_ms`.
    pub advance_ms: Option<u64>,
    /// `unload`.
    pub unload: Option<bool>,
    /// `open`: open a device by name, as a handle later steps use.
    pub open: Option<OpenSpec>,
    /// `close`: close a handle (IRP_MJ_CLEANUP, IRP_MJ_CLOSE).
    pub close: Option<String>,
    /// `handle`: send this step's request through an open handle (default: to the
    /// driver's first device, with no file object).
    pub handle: Option<String>,
    /// `cancel`: cancel the request of step N, still pending (`IoCancelIrp`, as
    /// `CancelIo` does).
    pub cancel: Option<usize>,
    /// `dma`: a device transfers at the address the driver programmed.
    pub dma: Option<DmaSpec>,
    /// `fragment`: percent of free RAM to pin in 64 KB blocks.
    pub fragment: Option<u32>,
    /// `event`: create a user event.
    pub event: Option<EventSpec>,
    /// `wait`: wait for a user event.
    pub wait: Option<WaitSpec>,
    /// `reset`: reset a user event.
    pub reset: Option<String>,
    /// `power`: a power IRP to the driver's stack.
    pub power: Option<PowerSpec>,
    /// `free_buffer`: decommit the request's buffer while it is in the driver.
    #[serde(default)]
    pub free_buffer: bool,
    /// `protect_buffer`: re-protect it instead.
    pub protect_buffer: Option<Protection>,
    /// `expect_status`: the status the step must end with.
    pub expect_status: Option<u32>,
}

/// A step's action, checked.
#[derive(Clone, Debug)]
pub enum Action {
    /// A device control from a user process (or kernel code: `internal`).
    Ioctl {
        /// IRP_MJ_INTERNAL_DEVICE_CONTROL from kernel code.
        internal: bool,
        /// Code.
        code: u32,
        /// Input bytes.
        input: Vec<u8>,
        /// Handle values to insert into the input: at each offset of `input`, the
        /// named handle's value, pointer-sized.
        handles: Vec<(usize, String)>,
        /// Output length.
        output_len: u32,
        /// Process name.
        process: String,
    },
    /// IRP_MJ_READ.
    Read {
        /// Length.
        length: u32,
        /// Offset.
        offset: i64,
        /// Process name.
        process: String,
    },
    /// IRP_MJ_WRITE.
    Write {
        /// Data.
        data: Vec<u8>,
        /// Offset.
        offset: i64,
        /// Process name.
        process: String,
    },
    /// Trim pageable memory.
    Trim,
    /// Advance simulated time.
    AdvanceMs(u64),
    /// Call DriverUnload.
    Unload,
    /// Open a device by name.
    Open {
        /// The name.
        name: String,
        /// The handle's name.
        handle: String,
        /// Process name.
        process: String,
        /// Access, sharing and options.
        request: ntmem_kernel::io::file::OpenRequest,
    },
    /// Close a handle.
    Close(String),
    /// Cancel the pending request of a step (its 1-based number).
    Cancel(usize),
    /// `CreateEvent`: a user event, named by a handle later steps use.
    CreateEvent {
        /// The handle's name.
        handle: String,
        /// Process name.
        process: String,
        /// Manual reset (a notification event) or auto reset (synchronization).
        manual_reset: bool,
        /// Initially signalled.
        signalled: bool,
    },
    /// `WaitForSingleObject` on an event: simulated time moves on until it is
    /// signalled, or for at most `timeout_ms`.
    WaitEvent {
        /// The handle's name.
        handle: String,
        /// The longest wait, in simulated ms (`None`: as long as a timer is set).
        timeout_ms: Option<u64>,
    },
    /// `ResetEvent`.
    ResetEvent(String),
    /// A device's DMA transfer.
    Dma {
        /// The device's name.
        device: String,
        /// Which way.
        direction: ntmem_kernel::hal::dma::device_side::Direction,
        /// What it writes (from the device).
        data: Vec<u8>,
        /// A system DMA channel's device instead of a bus master's.
        channel: Option<ntmem_kernel::hal::dma::controller::Channel>,
        /// The bytes it asks the controller for (None: all left).
        length: Option<u32>,
    },
    /// Fragment physical memory: pin this percent of the free RAM
    /// ([`ntmem_kernel::mm::fragment::fragment`]).
    Fragment(u32),
    /// A power IRP to the top of the driver's stack.
    Power(ntmem_kernel::io::power::PowerRequest),
}

/// A checked step.
#[derive(Clone, Debug)]
pub struct Step {
    /// Line of its `[[step]]` header (1-based).
    pub line: usize,
    /// The action.
    pub action: Action,
    /// `free_buffer` / `protect_buffer`.
    pub while_in_driver: Option<Option<Protection>>,
    /// `expect_status`.
    pub expect_status: Option<u32>,
    /// `handle`: the open handle a request goes through.
    pub handle: Option<String>,
}

/// The longest simulated time a scenario may reach, in milliseconds: what a
/// `LARGE_INTEGER` counting 100-ns units (`KeQuerySystemTime`,
/// `KeQueryInterruptTime`) can hold, `i64::MAX / 10_000` ms (about 29,227 years).
/// The `advance_ms` steps of a scenario add up to at most this; a file that asks
/// for more is rejected. Source: Microsoft's `KeQuerySystemTime` page ("a count of
/// 100-nanosecond intervals", a `LARGE_INTEGER`).
pub const MAX_SIMULATED_MS: u64 = (i64::MAX / 10_000) as u64;

/// Line numbers of byte offsets in one text: the offset of each line's start,
/// found once, so that naming the line of every step stays linear in the file.
struct Lines(Vec<usize>);

impl Lines {
    fn of(text: &str) -> Lines {
        Lines(std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect())
    }

    /// 1-based line of byte `offset`.
    fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&start| start <= offset)
    }
}

/// `text[..offset]`, `offset` moved back to a character boundary (spans from the
/// TOML parser are byte offsets; a message must not split a character).
fn before(text: &str, offset: usize) -> &str {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The key an error span belongs to: the span itself when it covers a key (an
/// unknown field), else the key before the `=` that precedes the value.
fn key_at(text: &str, span: &Range<usize>) -> Option<String> {
    let before = before(text, span.start).trim_end();
    let is_key = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '"';
    if let Some(lhs) = before.strip_suffix('=') {
        let lhs = lhs.trim_end();
        let start = lhs.char_indices().rev().find(|&(_, c)| !is_key(c)).map_or(0, |(i, c)| i + c.len_utf8());
        return Some(lhs[start..].trim_matches('"').to_string()).filter(|k| !k.is_empty());
    }
    let spanned = text.get(span.clone())?.trim().trim_matches('"');
    (!spanned.is_empty() && spanned.chars().all(is_key)).then(|| spanned.to_string())
}

/// The bytes of a hex string (whitespace ignored); any other character, ASCII or
/// not, makes it invalid.
fn hex(field: &Spanned<String>, lines: &Lines, file: &str, key: &str) -> Result<Vec<u8>, String> {
    let (bytes, handles) = hex_with_handles(field, lines, file, key)?;
    match handles.first() {
        None => Ok(bytes),
        Some(_) => Err(format!(
            "{file}:{}: key `{key}`: a handle ({{name}}) may stand only in an ioctl's input",
            lines.line(field.span().start)
        )),
    }
}

/// The bytes of a hex string in which `{name}` stands for the value of the handle
/// `name` (an event a `event` step created): the literal bytes, and where each
/// handle's value is inserted (its offset in them, its name).
fn hex_with_handles(field: &Spanned<String>, lines: &Lines, file: &str, key: &str) -> Result<InputBytes, String> {
    let s: String = field.get_ref().chars().filter(|c| !c.is_whitespace()).collect();
    let bad = || format!("{file}:{}: key `{key}`: \"{s}\" is not hex bytes", lines.line(field.span().start));
    let digit = |b: u8| char::from(b).to_digit(16).ok_or_else(bad);
    let (mut bytes, mut handles) = (Vec::new(), Vec::new());
    let mut rest = s.as_str();
    loop {
        let (literal, slot) = match rest.split_once('{') {
            Some((literal, slot)) => (literal, Some(slot)),
            None => (rest, None),
        };
        let literal = literal.as_bytes();
        if !literal.len().is_multiple_of(2) {
            return Err(bad());
        }
        for pair in literal.chunks_exact(2) {
            bytes.push((digit(pair[0])? << 4 | digit(pair[1])?) as u8);
        }
        let Some(slot) = slot else { return Ok((bytes, handles)) };
        let (name, after) = slot.split_once('}').ok_or_else(bad)?;
        if name.is_empty() {
            return Err(bad());
        }
        handles.push((bytes.len(), name.to_string()));
        rest = after;
    }
}

/// An input's literal bytes and its handle slots (offset, handle name).
type InputBytes = (Vec<u8>, Vec<(usize, String)>);

/// Parses `text` (the contents of `file`); `Err` is the message to print.
pub fn parse(file: &str, text: &str) -> Result<(Scenario, Vec<Step>), String> {
    let scenario: Scenario = toml::from_str(text).map_err(|e| {
        let message = e.message().trim_end().to_string();
        match e.span() {
            Some(span) => {
                let key = key_at(text, &span).map_or(String::new(), |k| format!(" key `{k}`:"));
                format!("{file}:{}:{key} {message}", Lines::of(text).line(span.start))
            }
            None => format!("{file}: {message}"),
        }
    })?;
    let mut scenario = scenario;
    scenario.parameters = scenario.check_registry(file, text)?;
    let lines = Lines::of(text);
    let mut steps = Vec::new();
    let mut simulated_ms = 0u64;
    for spanned in &scenario.steps {
        let line = lines.line(spanned.span().start);
        let s = spanned.get_ref();
        let process = |p: &Option<String>| p.clone().unwrap_or_else(|| "app.exe".to_string());
        let mut actions = Vec::new();
        if let Some(c) = &s.ioctl {
            let (input, handles) =
                c.input.as_ref().map_or(Ok(Default::default()), |i| hex_with_handles(i, &lines, file, "input"))?;
            actions.push(Action::Ioctl {
                internal: false,
                code: c.code,
                input,
                handles,
                output_len: c.output_len,
                process: process(&c.process),
            });
        }
        if let Some(c) = &s.internal_ioctl {
            let input = c.input.as_ref().map_or(Ok(Vec::new()), |i| hex(i, &lines, file, "input"))?;
            actions.push(Action::Ioctl {
                internal: true,
                code: c.code,
                input,
                handles: Vec::new(),
                output_len: c.output_len,
                process: String::new(),
            });
        }
        if let Some(r) = &s.read {
            actions.push(Action::Read { length: r.length, offset: r.offset, process: process(&r.process) });
        }
        if let Some(w) = &s.write {
            let data = hex(&w.data, &lines, file, "data")?;
            actions.push(Action::Write { data, offset: w.offset, process: process(&w.process) });
        }
        if s.trim == Some(true) {
            actions.push(Action::Trim);
        }
        if let Some(ms) = s.advance_ms {
            simulated_ms = simulated_ms.saturating_add(ms);
            if simulated_ms > MAX_SIMULATED_MS {
                return Err(format!(
                    "{file}:{line}: key `advance_ms`: simulated time would reach {simulated_ms} ms, past the {MAX_SIMULATED_MS} ms a 100-ns LARGE_INTEGER can hold"
                ));
            }
            actions.push(Action::AdvanceMs(ms));
        }
        if s.unload == Some(true) {
            actions.push(Action::Unload);
        }
        if let Some(o) = &s.open {
            let request = ntmem_kernel::io::file::OpenRequest {
                access: o.access.unwrap_or(GENERIC_READ_WRITE),
                share: o.share,
                options: o.options.unwrap_or(FILE_OPEN_OPTIONS),
            };
            let (name, handle) = (o.name.clone(), o.handle.clone());
            actions.push(Action::Open { name, handle, process: process(&o.process), request });
        }
        if let Some(h) = &s.close {
            actions.push(Action::Close(h.clone()));
        }
        if let Some(n) = s.cancel {
            if n == 0 || n > steps.len() {
                return Err(format!("{file}:{line}: key `cancel`: {n} is not the number of an earlier step"));
            }
            actions.push(Action::Cancel(n));
        }
        if let Some(d) = &s.dma {
            use ntmem_kernel::hal::dma::device_side::Direction;
            let data = match (&d.data, d.direction) {
                (Some(h), _) => hex(h, &lines, file, "data")?,
                (None, Direction::FromDevice) => {
                    return Err(format!("{file}:{line}: key `dma`: a transfer from the device needs `data`"))
                }
                (None, Direction::ToDevice) => Vec::new(),
            };
            if d.direction == Direction::FromDevice && data.is_empty() {
                return Err(format!("{file}:{line}: key `dma`: `data` is empty"));
            }
            use ntmem_kernel::hal::dma::controller::Channel;
            let channel = match (d.channel, d.request_line) {
                (Some(_), Some(_)) => {
                    return Err(format!("{file}:{line}: key `dma`: name a `channel` or a `request_line`, not both"))
                }
                (Some(c), None) => Some(Channel::Isa(c)),
                (None, Some(l)) => Some(Channel::RequestLine(l)),
                (None, None) => None,
            };
            actions.push(Action::Dma {
                device: d.device.clone(),
                direction: d.direction,
                data,
                channel,
                length: d.length,
            });
        }
        if let Some(percent) = s.fragment {
            let max = ntmem_kernel::mm::fragment::MAX_PERCENT;
            if percent > max {
                return Err(format!("{file}:{line}: key `fragment`: {percent} is above {max} (percent of free RAM)"));
            }
            actions.push(Action::Fragment(percent));
        }
        if let Some(e) = &s.event {
            actions.push(Action::CreateEvent {
                handle: e.handle.clone(),
                process: process(&e.process),
                manual_reset: e.manual_reset.unwrap_or(true),
                signalled: e.signalled,
            });
        }
        if let Some(w) = &s.wait {
            let (handle, timeout_ms) = match w {
                WaitSpec::Handle(h) => (h.clone(), None),
                WaitSpec::Table { handle, timeout_ms } => (handle.clone(), *timeout_ms),
            };
            if timeout_ms.is_some_and(|t| t > MAX_SIMULATED_MS) {
                return Err(format!(
                    "{file}:{line}: key `timeout_ms`: past the {MAX_SIMULATED_MS} ms simulated time can reach"
                ));
            }
            actions.push(Action::WaitEvent { handle, timeout_ms });
        }
        if let Some(h) = &s.reset {
            actions.push(Action::ResetEvent(h.clone()));
        }
        if let Some(p) = &s.power {
            actions.push(Action::Power(p.request().map_err(|e| format!("{file}:{line}: key `power`: {e}"))?));
        }
        if actions.len() != 1 {
            return Err(format!(
                "{file}:{line}: a [[step]] holds exactly one of ioctl, internal_ioctl, read, write, trim, advance_ms, unload, open, close, cancel, dma, fragment, event, wait, reset, power (this one has {})",
                actions.len()
            ));
        }
        let action = actions.remove(0);
        let is_request = matches!(action, Action::Ioctl { .. } | Action::Read { .. } | Action::Write { .. });
        let while_in_driver = match (s.free_buffer, s.protect_buffer) {
            (false, None) => None,
            (true, None) => Some(None),
            (false, Some(p)) => Some(Some(p)),
            (true, Some(_)) => {
                return Err(format!(
                    "{file}:{line}: key `protect_buffer`: a step frees or re-protects its buffer, not both"
                ))
            }
        };
        if while_in_driver.is_some() && !is_request {
            return Err(format!("{file}:{line}: key `free_buffer`/`protect_buffer`: only a request step has a buffer"));
        }
        if s.handle.is_some() && !is_request {
            return Err(format!("{file}:{line}: key `handle`: only a request step goes through a handle"));
        }
        steps.push(Step { line, action, while_in_driver, expect_status: s.expect_status, handle: s.handle.clone() });
    }
    Ok((scenario, steps))
}

/// Reads and parses `path`.
pub fn load(path: &Path) -> Result<(Scenario, Vec<Step>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&path.display().to_string(), &text)
}

/// Steps built in Rust (for [`super::Harness`]), the same actions a file holds;
/// their `line` is 0.
impl Step {
    fn of(action: Action) -> Step {
        Step { line: 0, action, while_in_driver: None, expect_status: None, handle: None }
    }

    /// `ioctl = { code, input, output_len }` from process `app.exe`.
    pub fn ioctl(code: u32, input: &[u8], output_len: u32) -> Step {
        Step::of(Action::Ioctl {
            internal: false,
            code,
            input: input.to_vec(),
            handles: Vec::new(),
            output_len,
            process: "app.exe".into(),
        })
    }

    /// `internal_ioctl = { code, input, output_len }` from kernel code.
    pub fn internal_ioctl(code: u32, input: &[u8], output_len: u32) -> Step {
        Step::of(Action::Ioctl {
            internal: true,
            code,
            input: input.to_vec(),
            handles: Vec::new(),
            output_len,
            process: String::new(),
        })
    }

    /// `read = { length }` from `app.exe`.
    pub fn read(length: u32) -> Step {
        Step::of(Action::Read { length, offset: 0, process: "app.exe".into() })
    }

    /// `write = { data }` from `app.exe`.
    pub fn write(data: &[u8]) -> Step {
        Step::of(Action::Write { data: data.to_vec(), offset: 0, process: "app.exe".into() })
    }

    /// `trim = true`.
    pub fn trim() -> Step {
        Step::of(Action::Trim)
    }

    /// `advance_ms = ms`.
    pub fn advance_ms(ms: u64) -> Step {
        Step::of(Action::AdvanceMs(ms))
    }

    /// `unload = true`.
    pub fn unload() -> Step {
        Step::of(Action::Unload)
    }

    /// `process = name`: the calling process of a request step.
    #[must_use]
    pub fn process(mut self, name: &str) -> Step {
        if let Action::Ioctl { internal: false, process, .. }
        | Action::Read { process, .. }
        | Action::Write { process, .. } = &mut self.action
        {
            *process = name.to_string();
        }
        self
    }

    /// `expect_status = status`.
    #[must_use]
    pub fn expect_status(mut self, status: u32) -> Step {
        self.expect_status = Some(status);
        self
    }

    /// `free_buffer = true` (`None`) or `protect_buffer = p` while in the driver.
    #[must_use]
    pub fn while_in_driver(mut self, action: Option<Protection>) -> Step {
        self.while_in_driver = Some(action);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_values_take_one_type_each_and_hostile_ones_are_errors() {
        let text = "[registry]\nA = { dword = 4096 }\nB = { qword = 0x100000000 }\nC = { sz = 'x' }\n\
                    D = { multi_sz = ['a', 'bc'] }\nE = { binary = 'dead' }\nF = { expand_sz = '%X%' }\n";
        let (s, _) = parse("s.toml", text).unwrap();
        let v = s.parameters;
        assert_eq!((v[0].kind, v[0].data.clone()), (4, vec![0, 0x10, 0, 0]));
        assert_eq!((v[1].kind, v[1].data.clone()), (11, vec![0, 0, 0, 0, 1, 0, 0, 0]));
        assert_eq!((v[2].kind, v[2].data.clone()), (1, vec![b'x', 0, 0, 0]));
        assert_eq!((v[3].kind, v[3].data.len()), (7, 2 * (2 + 3 + 1)));
        assert_eq!((v[4].kind, v[4].data.clone()), (3, vec![0xDE, 0xAD]));
        assert_eq!(v[5].kind, 2);
        for (bad, says) in [
            ("X = { dword = 4294967296 }", "not in 0..=0xFFFFFFFF"),
            ("X = { dword = -1 }", "not in 0..=0xFFFFFFFF"),
            ("X = { qword = -5 }", "negative"),
            ("X = { sz = \"a\\u0000b\" }", "NUL"),
            ("X = { multi_sz = ['a', ''] }", "empty string"),
            ("X = { binary = 'xyz' }", "not hex"),
            ("X = { dword = 1, sz = 'a' }", "exactly one"),
            ("X = { }", "exactly one"),
        ] {
            let text = format!("[registry]\n{bad}\n");
            let e = parse("s.toml", &text).unwrap_err();
            assert!(e.contains("s.toml:2") && e.contains(says), "{bad}: {e}");
        }
        assert!(parse("s.toml", "[registry]\nX = { word = 1 }\n").unwrap_err().contains("word"));
        let long = format!("[registry]\n{} = {{ dword = 1 }}\n", "n".repeat(16_384));
        assert!(parse("s.toml", &long).unwrap_err().contains("longer than 16383"));
    }

    #[test]
    fn device_tables_declare_dma_address_bits() {
        let (s, _) = parse("s.toml", "[[device]]\nname = \"nic0\"\ndma_address_bits = 32\n").unwrap();
        assert_eq!((s.devices[0].name.as_str(), s.devices[0].dma_address_bits), ("nic0", Some(32)));
        let (s, _) = parse("s.toml", "[[device]]\ndma_address_bits = 24\n").unwrap();
        assert_eq!(s.devices[0].name, "nic0", "the NIC by default");
        assert!(parse("s.toml", "[[device]]\ncolour = 1\n").is_err());
    }

    #[test]
    fn dma_steps_name_a_device_a_direction_and_data_for_writes() {
        use ntmem_kernel::hal::dma::device_side::Direction;
        let text = "[[step]]\ndma = { device = \"nic0\", direction = \"from_device\", data = \"a5b6\" }\n\
                    [[step]]\ndma = { device = \"nic0\", direction = \"to_device\" }\n";
        let (_, steps) = parse("s.toml", text).unwrap();
        let want = Action::Dma {
            device: "nic0".into(),
            direction: Direction::FromDevice,
            data: vec![0xA5, 0xB6],
            channel: None,
            length: None,
        };
        assert_eq!(format!("{:?}", steps[0].action), format!("{want:?}"));
        assert!(
            matches!(&steps[1].action, Action::Dma { direction: Direction::ToDevice, data, .. } if data.is_empty())
        );
        let e = parse("s.toml", "[[step]]\ndma = { device = \"nic0\", direction = \"from_device\" }\n").unwrap_err();
        assert!(e.contains("s.toml:1") && e.contains("needs `data`"), "{e}");
        let e = parse("s.toml", "[[step]]\ndma = { device = \"nic0\", direction = \"sideways\" }\n").unwrap_err();
        assert!(e.contains("sideways"), "{e}");
    }

    #[test]
    fn unknown_key_and_bad_type_name_line_and_key() {
        let e = parse("s.toml", "machine = \"x\"\n\n[[step]]\nioctl = { code = 1, colour = 2 }\n").unwrap_err();
        assert!(e.starts_with("s.toml:4: key `colour`:"), "{e}");
        let e = parse("s.toml", "[[step]]\nadvance_ms = \"soon\"\n").unwrap_err();
        assert!(e.starts_with("s.toml:2: key `advance_ms`:"), "{e}");
        let e = parse("s.toml", "[[step]]\nioctl = { code = \"x\" }\n").unwrap_err();
        assert!(e.starts_with("s.toml:2: key `code`:"), "{e}");
        let e = parse("s.toml", "[[step]]\nwrite = { data = \"zz\" }\n").unwrap_err();
        assert!(e.starts_with("s.toml:2: key `data`:"), "{e}");
        let e = parse("s.toml", "\n[[step]]\ntrim = true\nunload = true\n").unwrap_err();
        assert!(e.starts_with("s.toml:2:"), "{e}");
    }

    #[test]
    fn a_good_file() {
        let text = "processors = 1\nverifier = [\"pool\"]\n[[step]]\nioctl = { code = 0x222400, input = \"6869\", output_len = 4 }\nfree_buffer = true\n[[step]]\nadvance_ms = 5\n";
        let (s, steps) = parse("s.toml", text).unwrap();
        assert_eq!(s.processors, Some(1));
        assert_eq!(s.verifier, vec!["pool"]);
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].line, 3);
        assert!(
            matches!(&steps[0].action, Action::Ioctl { code: 0x222400, input, output_len: 4, .. } if input == b"hi")
        );
        assert_eq!(steps[0].while_in_driver, Some(None));
    }

    #[test]
    fn an_ioctl_input_names_handles_by_braces_and_only_there() {
        let text = "[[step]]\nevent = { handle = \"e\", manual_reset = false }\n[[step]]\nioctl = { code = 1, input = \"01 {e} 0203{e}\" }\n[[step]]\nwait = { handle = \"e\", timeout_ms = 5 }\n[[step]]\nreset = \"e\"\n";
        let (_, steps) = parse("s.toml", text).unwrap();
        assert!(
            matches!(&steps[0].action, Action::CreateEvent { handle, manual_reset: false, signalled: false, .. } if handle == "e")
        );
        let Action::Ioctl { input, handles, .. } = &steps[1].action else { panic!("{:?}", steps[1].action) };
        assert_eq!(
            (input.as_slice(), handles.as_slice()),
            (&[1, 2, 3][..], &[(1, "e".to_string()), (3, "e".to_string())][..])
        );
        assert!(matches!(&steps[2].action, Action::WaitEvent { timeout_ms: Some(5), .. }));
        assert!(matches!(&steps[3].action, Action::ResetEvent(h) if h == "e"));
        for bad in ["0{e", "{}", "0{e}1", "{e}}"] {
            let e = parse("s.toml", &format!("[[step]]\nioctl = {{ code = 1, input = \"{bad}\" }}\n")).unwrap_err();
            assert!(e.contains("is not hex bytes"), "{bad}: {e}");
        }
        let e = parse("s.toml", "[[step]]\nwrite = { data = \"{e}\" }\n").unwrap_err();
        assert!(e.contains("only in an ioctl's input"), "{e}");
        let e =
            parse("s.toml", "[[step]]\nwait = { handle = \"e\", timeout_ms = 18446744073709551615 }\n").unwrap_err();
        assert!(e.contains("timeout_ms"), "{e}");
    }

    #[test]
    fn multibyte_characters_in_hex_and_near_errors_are_errors_not_panics() {
        let e = parse("s.toml", "[[step]]\nwrite = { data = \"0é\" }\n").unwrap_err();
        assert!(e.starts_with("s.toml:2: key `data`:") && e.contains("0é"), "{e}");
        let e = parse("s.toml", "[[step]]\nwrite = { data = \"éé\" }\n").unwrap_err();
        assert!(e.starts_with("s.toml:2: key `data`:"), "{e}");
        let e = parse("s.toml", "[[step]]\nioctl = { code = 1, input = \"€1\" }\n").unwrap_err();
        assert!(e.starts_with("s.toml:2: key `input`:"), "{e}");
        // A multibyte character right before the key of a bad value, and inside a bad key.
        let e = parse("s.toml", "[[step]]\nioctl = { code = 1, é= 2 }\n").unwrap_err();
        assert!(e.starts_with("s.toml:2:"), "{e}");
        let e = parse("s.toml", "[[step]]\nioctl = {é code = \"x\" }\n").unwrap_err();
        assert!(e.starts_with("s.toml:2:"), "{e}");
        let e = parse("s.toml", "[[step]]\nadvance_ms = \"日本\"\n").unwrap_err();
        assert!(e.starts_with("s.toml:2: key `advance_ms`:"), "{e}");
    }

    #[test]
    fn key_at_takes_the_whole_key_after_a_multibyte_character() {
        let text = "x = 1\n\u{e9}code = 5";
        let start = text.len() - 1;
        assert_eq!(key_at(text, &(start..text.len())), Some("code".to_string()));
        assert_eq!(before("ab\u{e9}", 3), "ab");
    }

    #[test]
    fn a_hundred_thousand_steps_parse_with_their_lines() {
        let mut text = String::from("processors = 1\n");
        for i in 0..100_000 {
            text.push_str(&format!("[[step]]\nioctl = {{ code = {i}, input = \"00ff\", output_len = 4 }}\n"));
        }
        let (_, steps) = parse("big.toml", &text).unwrap();
        assert_eq!(steps.len(), 100_000);
        assert_eq!(steps[0].line, 2);
        assert_eq!(steps[99_999].line, 2 + 2 * 99_999);
        assert!(matches!(&steps[99_999].action, Action::Ioctl { code: 99_999, input, .. } if input == &[0, 0xff]));
    }

    #[test]
    fn simulated_time_is_bounded_by_what_a_100ns_large_integer_holds() {
        let at_limit = format!("[[step]]\nadvance_ms = {}\n", MAX_SIMULATED_MS);
        assert!(parse("s.toml", &at_limit).is_ok());
        let e = parse("s.toml", "[[step]]\nadvance_ms = 9223372036854775807\n").unwrap_err();
        assert!(e.starts_with("s.toml:1: key `advance_ms`: simulated time would reach"), "{e}");
        let twice = format!("[[step]]\nadvance_ms = {MAX_SIMULATED_MS}\n[[step]]\nadvance_ms = 1\n");
        let e = parse("s.toml", &twice).unwrap_err();
        assert!(e.starts_with("s.toml:3: key `advance_ms`:"), "{e}");
    }

    #[test]
    fn open_and_close_steps_and_handles_on_requests_only() {
        let text = "[[step]]\nopen = { name = '\\\\.\\X', handle = 'h' }\n[[step]]\nread = { length = 4 }\nhandle = 'h'\n[[step]]\nclose = 'h'\n";
        let (_, steps) = parse("s.toml", text).unwrap();
        match &steps[0].action {
            Action::Open { name, handle, request, .. } => {
                assert_eq!((name.as_str(), handle.as_str()), ("\\\\.\\X", "h"));
                assert_eq!((request.access, request.options), (GENERIC_READ_WRITE, FILE_OPEN_OPTIONS));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(steps[1].handle.as_deref(), Some("h"));
        assert!(matches!(&steps[2].action, Action::Close(h) if h == "h"));
        let err = parse("s.toml", "[[step]]\ntrim = true\nhandle = 'h'\n").unwrap_err();
        assert!(err.contains("s.toml:1: key `handle`"), "{err}");
    }
}
