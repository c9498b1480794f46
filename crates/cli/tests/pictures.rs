//! `ntmem layout --svg` and `ntmem physmap --svg` rendered as a viewer would: the SVG
//! is parsed and its text laid out with the system's fonts by usvg, rasterised by
//! resvg, and the rendered text boxes checked pairwise for overlaps — the real
//! extents of the glyphs, not the layout's estimate (issue 15 item 5).

use std::path::PathBuf;
use std::process::Command;

use resvg::{tiny_skia, usvg};

fn svg_of(args: &[&str], name: &str) -> String {
    let path: PathBuf = std::env::temp_dir().join(format!("ntmem-picture-{}-{name}.svg", std::process::id()));
    let out =
        Command::new(env!("CARGO_BIN_EXE_ntmem")).args(args).arg("--svg").arg(&path).output().expect("ntmem runs");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(&path).expect("the SVG was written");
    let _ = std::fs::remove_file(&path);
    svg
}

/// Every text element's rendered box, with its text.
fn text_boxes(group: &usvg::Group, out: &mut Vec<(String, tiny_skia::Rect)>) {
    for node in group.children() {
        match node {
            usvg::Node::Group(g) => text_boxes(g, out),
            usvg::Node::Text(t) => {
                let text: String = t.chunks().iter().map(|c| c.text()).collect();
                out.push((text, t.abs_bounding_box()));
            }
            _ => {}
        }
    }
}

/// Renders `svg`, checks it drew something and that no two text boxes overlap.
fn check(svg: &str, what: &str) {
    let mut options = usvg::Options::default();
    let fonts = options.fontdb_mut();
    fonts.load_system_fonts();
    // The figures ask for the generic `monospace`: map it to a monospaced face the
    // machine has, as a browser would.
    let mono = fonts.faces().find(|f| f.monospaced).map(|f| f.families[0].0.clone());
    let mono = mono.expect("no monospaced system font to lay out text with (install fonts-dejavu-core)");
    fonts.set_monospace_family(mono);
    let tree = usvg::Tree::from_str(svg, &options).unwrap_or_else(|e| panic!("{what}: not SVG usvg reads: {e}"));
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).expect("a non-empty picture");
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    let png = pixmap.encode_png().expect("PNG");
    assert!(png.len() > 1000, "{what}: the PNG is {} bytes", png.len());
    let painted = pixmap.pixels().iter().filter(|p| p.alpha() > 0).count();
    assert!(painted > pixmap.pixels().len() / 20, "{what}: only {painted} pixels painted");

    let mut boxes = Vec::new();
    text_boxes(tree.root(), &mut boxes);
    assert!(boxes.len() > 10, "{what}: {} text elements laid out", boxes.len());
    for (i, (a, ra)) in boxes.iter().enumerate() {
        for (b, rb) in &boxes[i + 1..] {
            // Touching edges are not an overlap; half a pixel of antialiasing is allowed.
            let overlap_x = ra.right().min(rb.right()) - ra.left().max(rb.left());
            let overlap_y = ra.bottom().min(rb.bottom()) - ra.top().max(rb.top());
            assert!(overlap_x <= 0.5 || overlap_y <= 0.5, "{what}: {a:?} {ra:?} overlaps {b:?} {rb:?}");
        }
    }
}

#[test]
fn the_address_space_pictures_render_without_overlapping_labels() {
    for (args, name) in [
        (&["layout"][..], "x64"),
        (&["layout", "--machine", "xp-professional", "--boot", "/3GB"][..], "x86-3gb"),
        (&["layout", "--machine", "ws03sp1-enterprise", "--boot", "/PAE"][..], "x86-pae"),
    ] {
        check(&svg_of(args, name), name);
    }
}

#[test]
fn the_physical_memory_maps_render_without_overlapping_labels() {
    for (args, name) in [
        (&["physmap", "--machine", "xp-professional", "--ram", "512M"][..], "phys-512m"),
        (&["physmap"][..], "phys-x64-8g"),
    ] {
        check(&svg_of(args, name), name);
    }
}

/// The check itself bites: two labels drawn over each other are caught.
#[test]
fn overlapping_labels_are_caught() {
    let mut svg = String::from(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400" font-family="monospace" font-size="11"><rect width="400" height="400" fill="white"/>"#,
    );
    for i in 0..12 {
        svg += &format!(r#"<text x="10" y="{}">label {i}</text>"#, 20 + 20 * i);
    }
    check(&(svg.clone() + "</svg>"), "apart");
    svg += r#"<text x="14" y="24">on top</text></svg>"#;
    let caught = std::panic::catch_unwind(|| check(&svg, "overlapping")).is_err();
    assert!(caught, "an overlap went unnoticed");
}
