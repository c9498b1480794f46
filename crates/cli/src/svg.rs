//! Draws an address space as an SVG figure: one box per range, the top of the
//! address space at the top, unused gaps drawn hatched and labelled.
//!
//! Scale: a box's height grows with log2 of its size (so 3 GB of user space and a
//! 4 MB region are both legible); the figure says so in its caption. Labels sit in
//! two columns beside the boxes (addresses on the left, names and sizes on the
//! right) and are pushed apart when boxes are too short to hold them, with a
//! leader line to their box; [`Figure::labels`] is the layout model the tests check
//! for overlaps.

use std::fmt::Write as _;

use ntmem_machine::{format_size, Layout};

const WIDTH: f64 = 900.0;
const ADDR_X: f64 = 10.0;
const BOX_X: f64 = 200.0;
const BOX_W: f64 = 220.0;
const NAME_X: f64 = 470.0;
const TOP: f64 = 60.0;
/// Height of a line of 11-pixel text, and the estimated width of one character.
const LINE: f64 = 13.0;
const CHAR_W: f64 = 6.6;
/// Pixels per doubling of size, and the height of a 4 KB box.
const PER_DOUBLING: f64 = 4.0;
const BASE: f64 = 8.0;

/// One range to draw: [start, end] inclusive, a label, and its fill.
#[derive(Clone, Debug)]
pub struct Span {
    /// First byte.
    pub start: u64,
    /// Last byte.
    pub end: u64,
    /// What it is (empty for an unused gap).
    pub name: String,
    /// Fill colour; `None` for an unused gap (hatched).
    pub fill: Option<&'static str>,
}

/// A text label's box in the figure (x, y of its top-left corner, width, height).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TextBox {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

/// A laid-out figure: its shapes and its labels, from which [`Figure::svg`]
/// writes the SVG text.
#[derive(Debug)]
pub struct Figure {
    /// Every text element: its box, its text and its font size.
    pub labels: Vec<(TextBox, String, f64)>,
    shapes: String,
    height: f64,
}

/// Height of a box for `size` bytes.
pub fn box_height(size: u64) -> f64 {
    let doublings = (size.max(4096) as f64).log2() - 12.0;
    BASE + PER_DOUBLING * doublings
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn text_box(x: f64, baseline: f64, text: &str) -> TextBox {
    TextBox { x, y: baseline - LINE + 3.0, w: CHAR_W * text.chars().count() as f64, h: LINE }
}

/// Places labels wanting baselines `wanted` (top to bottom) so that none is
/// closer than a line to the previous one.
fn spread(wanted: &[f64], floor: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(wanted.len());
    let mut next = floor;
    for &w in wanted {
        let y = w.max(next);
        out.push(y);
        next = y + LINE;
    }
    out
}

/// `spans` from `low` to `high` inclusive, with the unused ranges between them
/// added as gaps.
pub fn with_gaps(mut spans: Vec<Span>, low: u64, high: u64) -> Vec<Span> {
    spans.sort_by_key(|s| s.start);
    let mut out = Vec::new();
    let mut next = low;
    for s in spans {
        if s.start > next {
            out.push(Span { start: next, end: s.start - 1, name: String::new(), fill: None });
        }
        next = next.max(s.end.saturating_add(1));
        out.push(s);
    }
    if next != 0 && next <= high {
        out.push(Span { start: next, end: high, name: String::new(), fill: None });
    }
    out
}

/// Lays out `spans` (any order, non-overlapping) titled `title`, addresses printed
/// `digits` hex digits wide.
pub fn figure(title: &str, spans: Vec<Span>, digits: usize) -> Figure {
    let mut spans = spans;
    spans.sort_by_key(|s| std::cmp::Reverse(s.start));
    let mut boxes = Vec::new();
    let mut y = TOP;
    for s in spans {
        let h = box_height(s.end - s.start + 1);
        boxes.push((s, y, h));
        y += h;
    }
    let bottom = y;
    let mut labels: Vec<(TextBox, String, f64)> = Vec::new();
    let mut body = String::new();
    let caption =
        "Not to linear scale: each box's height grows with log2 of its size (4 KB = 8 px, +4 px per doubling).";
    for (text, baseline, size) in [(title, 20.0, 14.0), (caption, 40.0, 11.0)] {
        let mut b = text_box(ADDR_X, baseline, text);
        b.w *= size / 11.0;
        labels.push((b, text.to_string(), size));
    }
    // Boxes, then names on the right and boundary addresses on the left.
    let mut names = Vec::new();
    for (s, y, h) in &boxes {
        let attrs = s.fill.map_or_else(|| r#"fill="url(#gap)""#.to_string(), |f| format!(r#"fill="{f}""#));
        let _ =
            writeln!(body, r##"<rect x="{BOX_X}" y="{y:.1}" width="{BOX_W}" height="{h:.1}" {attrs} stroke="#333"/>"##);
        let size = format_size(s.end - s.start + 1);
        let text = if s.name.is_empty() { format!("unused ({size})") } else { format!("{} ({size})", s.name) };
        names.push((y + h / 2.0 + 4.0, text));
    }
    let wanted: Vec<f64> = names.iter().map(|n| n.0).collect();
    for ((want, text), at) in names.iter().zip(spread(&wanted, TOP + LINE - 3.0)) {
        let _ = writeln!(
            body,
            r##"<polyline points="{},{:.1} {},{:.1} {},{:.1}" fill="none" stroke="#888"/>"##,
            BOX_X + BOX_W,
            want - 4.0,
            NAME_X - 20.0,
            want - 4.0,
            NAME_X - 4.0,
            at - 4.0
        );
        labels.push((text_box(NAME_X, at, text), text.clone(), 11.0));
    }
    // Addresses: the top of each box (its last byte), plus the very bottom.
    let mut addrs: Vec<(f64, String)> =
        boxes.iter().map(|(s, y, _)| (*y, format!("{:#0w$x}", s.end, w = digits + 2))).collect();
    if let Some((s, _, _)) = boxes.last() {
        addrs.push((bottom, format!("{:#0w$x}", s.start, w = digits + 2)));
    }
    let wanted: Vec<f64> = addrs.iter().map(|a| a.0 + 4.0).collect();
    for ((edge, text), at) in addrs.iter().zip(spread(&wanted, TOP + 4.0)) {
        let _ = writeln!(
            body,
            r##"<polyline points="{},{:.1} {},{:.1}" fill="none" stroke="#888"/>"##,
            ADDR_X + CHAR_W * text.len() as f64 + 2.0,
            at - 4.0,
            BOX_X,
            edge
        );
        labels.push((text_box(ADDR_X, at, text), text.clone(), 11.0));
    }
    let height = labels.iter().map(|l| l.0.y + l.0.h).fold(bottom, f64::max) + 10.0;
    Figure { labels, shapes: body, height }
}

impl Figure {
    /// The SVG text.
    pub fn svg(&self) -> String {
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{:.0}" font-family="monospace" font-size="11">"#,
            self.height
        );
        svg.push_str(
            r##"<defs><pattern id="gap" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="#fff"/><path d="M0,6 L6,0" stroke="#bbb"/></pattern></defs>"##,
        );
        svg.push('\n');
        svg.push_str(&self.shapes);
        for (b, text, size) in &self.labels {
            let baseline = b.y + LINE - 3.0;
            let _ = writeln!(svg, r#"<text x="{}" y="{baseline:.1}" font-size="{size}">{}</text>"#, b.x, escape(text));
        }
        svg.push_str("</svg>\n");
        svg
    }
}

/// The virtual layout of a machine, gaps included.
pub fn layout_figure(title: &str, layout: &Layout, digits: usize) -> Figure {
    let system = layout.system_start.get();
    let spans = layout
        .regions
        .iter()
        .map(|r| Span {
            start: r.start.get(),
            end: r.end().get(),
            name: r.name.to_string(),
            fill: Some(if r.start.get() < system { "#dbe9f6" } else { "#f6e3d5" }),
        })
        .collect();
    let low = layout.regions.iter().map(|r| r.start.get()).min().unwrap_or(0);
    let high = layout.regions.iter().map(|r| r.end().get()).max().unwrap_or(0);
    figure(title, with_gaps(spans, low, high), digits)
}

#[cfg(test)]
pub(crate) mod tests {
    use ntmem_machine::{BootOptions, MachineConfig, EDITIONS};

    use super::*;

    fn overlaps(a: &TextBox, b: &TextBox) -> bool {
        a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h
    }

    /// Asserts that no two labels of `fig` overlap, that all lie inside the
    /// figure, and that the SVG carries exactly those labels.
    pub(crate) fn assert_labels_apart(fig: &Figure, what: &str) {
        for (i, a) in fig.labels.iter().enumerate() {
            assert!(a.0.x + a.0.w <= WIDTH, "{what}: {:?} leaves the figure", a.1);
            for b in &fig.labels[i + 1..] {
                assert!(!overlaps(&a.0, &b.0), "{what}: {:?} overlaps {:?}", a.1, b.1);
            }
        }
        let svg = fig.svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<text").count(), fig.labels.len());
    }

    fn boots(edition: &'static ntmem_machine::Edition) -> Vec<&'static str> {
        let mut b = vec![""];
        if edition.arch == ntmem_machine::Arch::X86 {
            b.extend(["/3GB", "/PAE"]);
        }
        b
    }

    #[test]
    fn no_two_labels_overlap_on_any_edition() {
        let mut drawn = 0;
        for edition in EDITIONS {
            for boot in boots(edition) {
                let config = MachineConfig {
                    edition,
                    ram: (512 << 20u64).min(edition.max_physical_memory),
                    boot: BootOptions::parse(boot).expect("boot options"),
                    ..MachineConfig::default()
                };
                let Ok(profile) = config.build() else { continue };
                let fig = layout_figure(edition.key, &profile.layout, 16);
                assert_labels_apart(&fig, &format!("{} {boot}", edition.key));
                drawn += 1;
            }
        }
        assert!(drawn >= EDITIONS.len(), "only {drawn} layouts drawn");
    }

    #[test]
    fn four_megabytes_is_legible_beside_three_gigabytes() {
        let (small, big) = (box_height(4 << 20), box_height(3 << 30));
        assert!(small >= 40.0, "4 MB box is {small} px");
        assert!(big < 3.0 * small, "3 GB box is {big} px against {small} px");
        assert!(big > small);
    }

    #[test]
    fn gaps_are_added_between_ranges() {
        let s = |start, end| Span { start, end, name: "r".into(), fill: Some("#fff") };
        let out = with_gaps(vec![s(0x3000, 0x3fff), s(0x1000, 0x1fff)], 0, 0x4fff);
        let unused: Vec<(u64, u64)> = out.iter().filter(|s| s.fill.is_none()).map(|s| (s.start, s.end)).collect();
        assert_eq!(unused, [(0, 0xfff), (0x2000, 0x2fff), (0x4000, 0x4fff)]);
    }
}
