//! A real image (the fuzz seed `seh_frames.sys`, built by clang 19 and lld-link) with one
//! header field made hostile at a time: each gives its own typed error, never a panic.

use ntmem_pe::{DriverImage, ImageError, Subsystem};

fn seed() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/image/seh_frames.sys")).unwrap()
}

fn u16_at(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn put_u32(b: &mut [u8], at: usize, value: u32) {
    b[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// Offsets of the NT headers, the optional header and the section table ("PE Format").
#[derive(Clone, Copy)]
struct Layout {
    nt: usize,
    optional: usize,
    sections: usize,
}

fn layout(b: &[u8]) -> Layout {
    let nt = u32_at(b, 0x3c) as usize;
    let optional = nt + 24;
    Layout { nt, optional, sections: optional + u16_at(b, nt + 20) }
}

/// The file offset of the section header named `name`.
fn section_header(b: &[u8], name: &str) -> usize {
    let l = layout(b);
    (0..u16_at(b, l.nt + 6)).map(|i| l.sections + 40 * i).find(|&h| b[h..h + 8].starts_with(name.as_bytes())).unwrap()
}

fn parse_with(edit: impl FnOnce(&mut Vec<u8>)) -> Result<DriverImage, ImageError> {
    let mut b = seed();
    edit(&mut b);
    DriverImage::parse(&b)
}

#[test]
fn the_unedited_seed_is_a_native_amd64_driver() {
    let image = DriverImage::parse(&seed()).unwrap();
    assert_eq!(image.subsystem, Subsystem::Native);
}

#[test]
fn each_hostile_field_has_its_error() {
    let l = layout(&seed());
    let optional = |field: usize, value: u32| parse_with(|b| put_u32(b, l.optional + field, value));
    assert_eq!(parse_with(|b| b[l.nt + 4..l.nt + 6].copy_from_slice(&[0x4c, 0x01])), Err(ImageError::Machine(0x14c)));
    assert_eq!(optional(56, 0x4000_0000), Err(ImageError::SizeOfImage(0x4000_0000)));
    assert_eq!(optional(56, 0x8001), Err(ImageError::SizeOfImage(0x8001)));
    assert_eq!(optional(36, 0x300), Err(ImageError::Alignment { section: 0x1000, file: 0x300 }));
    assert_eq!(optional(60, 0x10_0000), Err(ImageError::Headers(0x10_0000)));
    assert_eq!(optional(16, 0x9000), Err(ImageError::EntryPoint(0x9000)));
    assert_eq!(parse_with(|b| b[l.optional + 68] = 2).unwrap().subsystem, Subsystem::WindowsGui);

    let section = |edit: fn(&mut Vec<u8>, usize)| parse_with(|b| edit(b, section_header(b, ".data")));
    let reason = |r: Result<DriverImage, ImageError>| match r {
        Err(ImageError::Section { name, reason, .. }) => (name, reason),
        other => panic!("{other:?}"),
    };
    assert_eq!(reason(section(|b, h| put_u32(b, h + 8, 0xFFFF_F000))), (".data".into(), "reaches past SizeOfImage"));
    assert_eq!(
        reason(section(|b, h| put_u32(b, h + 12, 0x2000))),
        (".data".into(), "out of order or overlapping the previous section")
    );
    assert_eq!(
        reason(section(|b, h| put_u32(b, h + 12, 0x3010))),
        (".data".into(), "RVA overlaps the headers or is not section-aligned")
    );
    assert_eq!(
        reason(section(|b, h| put_u32(b, h + 20, 0xFFFF_FF00))),
        (".data".into(), "raw data reaches past the end of the file")
    );
}

#[test]
fn relocations_other_than_dir64_and_unsorted_pdata_are_refused() {
    let image = DriverImage::parse(&seed()).unwrap();
    let first = image.relocations[0].rva;
    // The first entry of the first block: type 10 (DIR64) becomes 3 (HIGHLOW).
    let reloc = parse_with(|b| {
        let h = section_header(b, ".reloc");
        let entry = u32_at(b, h + 20) as usize + 8;
        b[entry + 1] = (b[entry + 1] & 0x0f) | 0x30;
    });
    assert_eq!(reloc, Err(ImageError::UnsupportedRelocation { rva: first, kind: 3 }));

    // Swap the first two RUNTIME_FUNCTIONs.
    let pdata = parse_with(|b| {
        let at = u32_at(b, section_header(b, ".pdata") + 20) as usize;
        let (first, second) = (b[at..at + 12].to_vec(), b[at + 12..at + 24].to_vec());
        b[at..at + 12].copy_from_slice(&second);
        b[at + 12..at + 24].copy_from_slice(&first);
    });
    assert!(matches!(pdata, Err(ImageError::ExceptionDirectory(_))), "{pdata:?}");
}
