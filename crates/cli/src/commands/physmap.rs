//! `ntmem physmap`: the physical address map of a booted machine — RAM runs split
//! by what their frames are used for (the PFN database's usage), the reserved
//! ranges and the device (MMIO) windows — as a table, JSON or an SVG figure.

use std::path::PathBuf;

use ntmem_kernel::mm::pfn::{PageState, PageUse};
use ntmem_kernel::Machine;
use ntmem_machine::{format_size, Pfn};

use crate::options::MachineFlags;
use crate::output;
use crate::svg::{self, Span};
use crate::Failure;

/// Flags of `ntmem physmap`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    machine: MachineFlags,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also draw the map as an SVG figure into FILE (box heights grow with log2 of size).
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

/// One range of the map: [start, end] inclusive.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Row {
    /// First byte.
    pub start: u64,
    /// Last byte.
    pub end: u64,
    /// What it is: a frame use (`free`, `nonpaged pool`, ...) for RAM, else the
    /// reserved range's or device window's name.
    pub what: String,
    /// Whether the range is RAM.
    pub ram: bool,
}

fn use_name(state: PageState, usage: PageUse) -> &'static str {
    match (state, usage) {
        (PageState::Zeroed | PageState::Free, _) => "free",
        (PageState::Bad, _) => "not usable",
        (PageState::Active, u) => match u {
            PageUse::None => "in use",
            PageUse::PageTable => "page tables",
            PageUse::NonPagedPool => "nonpaged pool",
            PageUse::PagedPool => "paged pool",
            PageUse::KernelStack => "kernel stacks",
            PageUse::Contiguous => "contiguous memory",
            PageUse::MdlPages => "MDL pages",
            PageUse::UserPrivate => "user private",
            PageUse::DriverImage => "driver images",
            PageUse::Burned => "burned (/BURNMEMORY)",
            PageUse::SharedUserData => "KUSER_SHARED_DATA",
            PageUse::Reserved => "reserved",
        },
    }
}

/// The map of `machine`, sorted by address, RAM split into runs of frames of one use.
pub fn rows(machine: &Machine) -> Vec<Row> {
    let map = &machine.profile().physmap;
    let phys = machine.phys();
    let shift = phys.shift().0;
    let mut rows = Vec::new();
    for run in &map.ram {
        let first = run.start.get() >> shift;
        let last = (run.start.get() + run.len) >> shift;
        let mut begin = first;
        let mut current = None;
        for pfn in first..=last {
            let what = (pfn < last).then(|| {
                let e = phys.pfn(Pfn::new(pfn));
                use_name(e.state, e.usage)
            });
            if what != current {
                if let Some(name) = current {
                    rows.push(Row { start: begin << shift, end: (pfn << shift) - 1, what: name.into(), ram: true });
                }
                begin = pfn;
                current = what;
            }
        }
    }
    for r in &map.reserved {
        let (start, end) = (r.start.get(), r.start.get() + r.len - 1);
        let inside: Vec<Span> = map
            .mmio_windows
            .iter()
            .filter(|w| w.start.get() >= start && w.start.get() <= end)
            .map(|w| Span {
                start: w.start.get(),
                end: w.start.get() + w.len - 1,
                name: w.name.to_string(),
                fill: Some("#e3d5f6"),
            })
            .collect();
        for s in svg::with_gaps(inside, start, end) {
            let what = if s.fill.is_none() { r.name.to_string() } else { s.name };
            rows.push(Row { start: s.start, end: s.end, what, ram: false });
        }
    }
    // The ranges between: address space with neither RAM nor a device behind it.
    let high = rows.iter().map(|r| r.end).max().unwrap_or(0);
    let spans = rows.iter().map(|r| Span { start: r.start, end: r.end, name: String::new(), fill: Some("") }).collect();
    for gap in svg::with_gaps(spans, 0, high).into_iter().filter(|s| s.fill.is_none()) {
        rows.push(Row { start: gap.start, end: gap.end, what: "unused (nothing decodes it)".into(), ram: false });
    }
    rows.sort_by_key(|r| r.start);
    rows
}

/// The text table of `rows`, addresses `digits` hex digits wide.
pub fn table(rows: &[Row], digits: usize) -> String {
    let w = digits + 2;
    let mut out = format!("{:>w$}  {:>w$}  {:>9}  what\n", "start", "end", "size");
    for r in rows.iter().rev() {
        let kind = if r.ram { "RAM: " } else { "" };
        out +=
            &format!("{:#0w$x}  {:#0w$x}  {:>9}  {kind}{}\n", r.start, r.end, format_size(r.end - r.start + 1), r.what);
    }
    out
}

fn fill(what: &str, ram: bool) -> Option<&'static str> {
    if what.starts_with("unused") {
        return None;
    }
    Some(match (ram, what) {
        (false, _) => "#e3d5f6",
        (true, "free") => "#e8f3e1",
        (true, "contiguous memory") => "#f6c9a9",
        (true, _) => "#dbe9f6",
    })
}

/// The SVG figure of `rows`, to the same scale as `ntmem layout --svg`.
pub fn figure(title: &str, rows: &[Row], digits: usize) -> svg::Figure {
    let spans = rows
        .iter()
        .map(|r| Span { start: r.start, end: r.end, name: r.what.clone(), fill: fill(&r.what, r.ram) })
        .collect();
    svg::figure(title, spans, digits)
}

/// Runs the command.
///
/// # Errors
/// Bad flags, an invalid machine, or an SVG file that cannot be written.
pub fn main(args: &Args) -> Result<(), Failure> {
    let profile = args.machine.profile()?;
    let digits = if profile.physmap.highest_ram_address().get() > u64::from(u32::MAX) { 12 } else { 8 };
    let booted = super::boot::boot(profile)?;
    let rows = rows(&booted.machine);
    if let Some(path) = &args.svg {
        let p = booted.machine.profile();
        let title = format!("{} {}: physical address map", p.edition.os, p.edition.edition);
        std::fs::write(path, figure(&title, &rows, digits).svg())
            .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))?;
    }
    if args.json {
        return super::print_json(&serde_json::json!({ "map": rows }));
    }
    output::emit(&table(&rows, digits))
}

#[cfg(test)]
mod tests {
    use ntmem_kernel::mm::frames::FrameRequest;
    use ntmem_machine::MachineConfig;

    use super::*;

    #[test]
    fn a_contiguous_buffer_shows_where_it_is_on_a_512_mb_machine() {
        let config = MachineConfig { ram: 512 << 20, ..MachineConfig::default() };
        let machine = Machine::boot(config.build().expect("profile")).expect("boot");
        let frames = machine
            .phys()
            .allocate(&FrameRequest::new(8, PageUse::Contiguous).contiguous())
            .expect("8 contiguous frames");
        let start = frames.first().get() << 12;
        let rows = rows(&machine);
        let row = Row { start, end: start + 8 * 4096 - 1, what: "contiguous memory".into(), ram: true };
        assert!(rows.contains(&row), "{rows:#?}");
        let text = table(&rows, 8);
        let line = format!("{:#010x}  {:#010x}      32 KB  RAM: contiguous memory", row.start, row.end);
        assert!(text.lines().any(|l| l == line), "{text}");
        assert!(text.lines().any(|l| l.ends_with("  local APIC")), "{text}");
        assert!(text.lines().any(|l| l.ends_with("  RAM: free")), "{text}");
        assert!(text.lines().any(|l| l.ends_with("  unused (nothing decodes it)")), "{text}");
        // Rows tile the map from 0 to 4 GB without overlapping or leaving holes.
        assert!(rows.windows(2).all(|w| w[0].end + 1 == w[1].start), "{rows:#?}");
        assert_eq!((rows[0].start, rows[rows.len() - 1].end), (0, 0xffff_ffff));
        let fig = figure("physmap", &rows, 8);
        crate::svg::tests::assert_labels_apart(&fig, "physmap 512 MB");
    }
}
