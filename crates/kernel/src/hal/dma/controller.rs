//! The system DMA controller that transfers for subordinate (non-bus-master)
//! devices (research/dma-verifier-views.md §1.2 `DmaChannel`, `AutoInitialize`,
//! `DmaRequestLine`; §1.3 table; §1.6 "the returned logical address is meaningless
//! for subordinate DMA"; §1.9 MapTransferEx's completion routine).
//!
//! Two kinds of channel:
//! - **ISA channels 0–7** of the PC's pair of 8237 controllers: channels 0–3 move
//!   bytes, 5–7 move 16-bit words; 4 is the cascade between the two controllers and
//!   is refused. Each reaches the low 16 MB only (24 address lines), and one
//!   transfer may not cross a 64 KB (byte channels) or 128 KB (word channels)
//!   physical boundary, because the page register holds the high address bits
//!   and does not count (the 8237's datasheet; Microsoft's "System DMA"
//!   documentation for ISA). The map buffer that keeps transfers inside these
//!   rules is the adapter's ([`super::adapter::configure`]).
//! - **Request lines** of the system DMA controllers Windows 8 describes in ACPI's
//!   CSRT for SoC devices (DEVICE_DESCRIPTION version 3, `DmaRequestLine`). A PC
//!   has none: a scenario declares one (`[[system_dma]]`), as firmware would.
//!
//! MapTransfer / MapTransferEx on a subordinate adapter **programs** the channel:
//! base address, byte count, direction, mode. The device then moves data through
//! it (a scenario `dma` step: the device asserts its request for some bytes, as an
//! 8237 would service it), and the count register falls as it does — what
//! ReadDmaCounter returns. At terminal count a single-mode channel stops; an
//! auto-initialize channel reloads its base and count and goes on. A line
//! declared `ready` belongs to a device that always has room (or data): its
//! transfer runs to terminal count as soon as it is programmed.
//!
//! Pure bookkeeping but for [`SystemDma::device_moves`], which moves the bytes in
//! RAM through [`super::device_access`].

use std::collections::BTreeMap;

use super::{device_access, LogicalAddress};
use crate::Machine;

/// The ISA channel that cascades the second 8237 into the first: no device uses it.
pub const CASCADE_CHANNEL: u32 = 4;
/// Highest ISA channel.
pub const LAST_ISA_CHANNEL: u32 = 7;
/// The boundary a word channel's transfer may not cross: 128 KB.
pub const WORD_CHANNEL_BOUNDARY: u64 = 0x2_0000;

/// A channel of the system DMA controllers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Channel {
    /// ISA channel 0–7 (not 4).
    Isa(u32),
    /// A Windows 8 request line of a declared controller.
    RequestLine(u32),
}

impl Channel {
    /// The ISA channel moves 16-bit words (channels 5–7).
    pub fn is_word_channel(self) -> bool {
        matches!(self, Channel::Isa(5..=7))
    }
    /// The controller and the channel number, as Verifier's 0xE6/0x23 names them:
    /// controller 0 for ISA 0–3, 1 for 5–7 (channel numbers 0–3 within it), and 2
    /// for declared request lines (ntmem's numbering).
    pub fn controller_and_number(self) -> (u64, u64) {
        match self {
            Channel::Isa(n) if n >= 4 => (1, u64::from(n - 4)),
            Channel::Isa(n) => (0, u64::from(n)),
            Channel::RequestLine(l) => (2, u64::from(l)),
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Channel::Isa(n) => write!(f, "ISA DMA channel {n}"),
            Channel::RequestLine(l) => write!(f, "DMA request line {l:#x}"),
        }
    }
}

/// What the driver's MapTransferEx asked to be told at terminal count
/// (`DmaCompletionRoutine`, `CompletionContext`, the channel's device object).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The adapter (DMA_ADAPTER).
    pub adapter: u64,
    /// `DmaCompletionRoutine`.
    pub routine: u64,
    /// `CompletionContext`.
    pub context: u64,
    /// The DeviceObject of the channel's holder.
    pub device: u64,
}

/// How a channel is programmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Program {
    /// Logical address of the first byte.
    pub base: LogicalAddress,
    /// Bytes to move.
    pub count: u32,
    /// Memory to device (the driver's WriteToDevice).
    pub to_device: bool,
    /// Auto-initialize mode (DEVICE_DESCRIPTION `AutoInitialize`).
    pub auto_initialize: bool,
    /// MapTransferEx's `DeviceOffset` (0 otherwise).
    pub device_offset: u32,
}

/// A channel's registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    adapter: u64,
    program: Program,
    /// Bytes moved since the base was (re)loaded.
    done: u32,
    /// Stopped at terminal count (single mode) or by the driver.
    stopped: bool,
    completion: Option<Completion>,
}

/// One stretch of bytes the controller moved, for the report.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Moved {
    /// The channel.
    pub channel: Channel,
    /// Memory to device.
    pub to_device: bool,
    /// Where in memory.
    pub logical: LogicalAddress,
    /// MapTransferEx's `DeviceOffset`.
    pub device_offset: u32,
    /// Bytes moved.
    pub bytes: u32,
    /// Bytes still to move on the channel afterwards (ReadDmaCounter).
    pub left: u32,
    /// What the device read (memory to device), the first 64 bytes.
    pub sample: Vec<u8>,
}

/// Declared request lines and the channels' registers.
#[derive(Debug, Default)]
pub struct SystemDma {
    lines: BTreeMap<u32, bool>,
    channels: BTreeMap<Channel, State>,
    moved: Vec<Moved>,
}

/// What a device request did: the bytes moved, and the completion routine to call
/// when it reached terminal count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceMove {
    /// The stretch moved.
    pub moved: Moved,
    /// Terminal count was reached.
    pub terminal_count: bool,
    /// The driver's completion routine, due now.
    pub completion: Option<Completion>,
}

impl SystemDma {
    /// Declares request line `line` of a system DMA controller (a scenario's
    /// `[[system_dma]]`); `ready`: its device never makes the controller wait.
    pub fn declare_line(&mut self, line: u32, ready: bool) {
        self.lines.insert(line, ready);
    }

    /// Whether `line` was declared.
    pub fn has_line(&self, line: u32) -> bool {
        self.lines.contains_key(&line)
    }

    /// Whether the channel's device never makes the controller wait.
    pub fn is_ready(&self, channel: Channel) -> bool {
        matches!(channel, Channel::RequestLine(l) if self.lines.get(&l) == Some(&true))
    }

    /// Programs `channel` for `adapter` (MapTransfer): the count register holds
    /// `program.count`, the completion routine waits for terminal count.
    pub fn program(&mut self, channel: Channel, adapter: u64, program: Program, completion: Option<Completion>) {
        self.channels.insert(channel, State { adapter, program, done: 0, stopped: false, completion });
    }

    /// The bytes left on `adapter`'s channel (ReadDmaCounter): what its count
    /// register says — 0 when it was never programmed or reached terminal count; a
    /// stopped channel keeps its count, as a masked 8237 channel does.
    pub fn counter(&self, channel: Channel, adapter: u64) -> u32 {
        match self.channels.get(&channel) {
            Some(s) if s.adapter == adapter => s.program.count - s.done,
            _ => 0,
        }
    }

    /// Whether `channel` is programmed and has bytes left in single mode (a flush
    /// now is Verifier's 0xE6/0x23).
    pub fn running(&self, channel: Channel) -> bool {
        self.channels
            .get(&channel)
            .is_some_and(|s| !s.stopped && !s.program.auto_initialize && s.done < s.program.count)
    }

    /// Stops (masks) `channel` (FlushAdapterBuffers(Ex), CancelMappedTransfer): the
    /// count is kept for ReadDmaCounter until the channel is programmed again; the
    /// completion routine, if still due, is returned.
    pub fn stop(&mut self, channel: Channel) -> Option<Completion> {
        let s = self.channels.get_mut(&channel)?;
        s.stopped = true;
        s.completion.take()
    }

    /// Forgets `adapter`'s channel (PutDmaAdapter, FreeAdapterChannel).
    pub fn release(&mut self, channel: Channel, adapter: u64) {
        if self.channels.get(&channel).is_some_and(|s| s.adapter == adapter) {
            self.channels.remove(&channel);
        }
    }

    /// What the controllers moved so far.
    pub fn moved(&self) -> &[Moved] {
        &self.moved
    }

    /// The device on `channel` asserts its request for up to `bytes` bytes (None:
    /// until terminal count): the controller moves them between memory and the
    /// device as programmed — from `data` (repeated) for a transfer to memory. A
    /// word channel moves whole words. The bytes go wherever the base address
    /// points, with no check, as the hardware's would.
    ///
    /// # Errors
    /// The channel is not programmed or has stopped; a transfer to memory without
    /// data.
    pub fn device_moves(
        &mut self,
        m: &Machine,
        channel: Channel,
        bytes: Option<u32>,
        data: &[u8],
    ) -> Result<DeviceMove, String> {
        let s = self.channels.get_mut(&channel).ok_or_else(|| format!("{channel} is not programmed"))?;
        if s.stopped {
            return Err(format!("{channel} has stopped (terminal count, or the driver stopped it)"));
        }
        let left = s.program.count - s.done;
        let mut n = bytes.map_or(left, |b| b.min(left));
        if channel.is_word_channel() {
            n &= !1;
        }
        if !s.program.to_device && data.is_empty() {
            return Err(format!("{channel} writes memory: the device needs data to give"));
        }
        let logical = LogicalAddress::new(s.program.base.get().wrapping_add(u64::from(s.done)));
        let mut buf: Vec<u8> = if s.program.to_device {
            vec![0; n as usize]
        } else {
            data.iter().copied().cycle().take(n as usize).collect()
        };
        device_access(m, logical, &mut buf, !s.program.to_device);
        s.done += n;
        let terminal_count = s.done == s.program.count;
        let mut completion = None;
        if terminal_count {
            if s.program.auto_initialize {
                s.done = 0;
                completion = s.completion;
            } else {
                s.stopped = true;
                completion = s.completion.take();
            }
        }
        let moved = Moved {
            channel,
            to_device: s.program.to_device,
            logical,
            device_offset: s.program.device_offset,
            bytes: n,
            left: s.program.count - s.done,
            sample: if s.program.to_device { buf.iter().copied().take(64).collect() } else { Vec::new() },
        };
        self.moved.push(moved.clone());
        Ok(DeviceMove { moved, terminal_count, completion })
    }
}
