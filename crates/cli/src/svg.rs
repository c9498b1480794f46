//! Draws a layout as an SVG figure in the manner of seed 000 Figure 1: one box per
//! region, top of the address space at the top, not to scale (boxes get a height
//! that grows with the logarithm of their size so small regions stay legible).

use std::fmt::Write as _;

use ntmem_machine::{format_size, Layout};

const WIDTH: u32 = 760;
const BOX_X: u32 = 200;
const BOX_W: u32 = 300;

fn height(size: u64) -> u32 {
    18 + 4 * (64 - size.leading_zeros()).saturating_sub(12)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The SVG text of `layout`, titled `title`.
pub fn figure(title: &str, layout: &Layout) -> String {
    let mut rows: Vec<(u64, u64, String)> =
        layout.regions.iter().map(|r| (r.start.get(), r.end().get(), r.name.to_string())).collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    let total: u32 = rows.iter().map(|r| height(r.1 - r.0 + 1)).sum::<u32>() + 60;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{total}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(svg, r#"<text x="10" y="20" font-size="14" font-weight="bold">{}</text>"#, escape(title));
    let mut y = 40;
    for (start, end, name) in &rows {
        let h = height(end - start + 1);
        let fill = if *start < layout.system_start.get() { "#dbe9f6" } else { "#f6e3d5" };
        let _ =
            writeln!(svg, r##"<rect x="{BOX_X}" y="{y}" width="{BOX_W}" height="{h}" fill="{fill}" stroke="#333"/>"##);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}">{} ({})</text>"#,
            BOX_X + 6,
            y + h / 2 + 4,
            escape(name),
            format_size(end - start + 1)
        );
        let _ = writeln!(svg, r#"<text x="10" y="{}">{end:#x}</text>"#, y + 11);
        let _ = writeln!(svg, r#"<text x="10" y="{}">{start:#x}</text>"#, y + h - 2);
        y += h;
    }
    svg.push_str("</svg>\n");
    svg
}
