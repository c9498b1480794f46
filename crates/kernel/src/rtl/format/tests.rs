use super::*;
use std::collections::BTreeMap;

/// A `va_list` of 8-byte slots, as the Microsoft x64 convention passes varargs.
struct Slots(Vec<u64>);

impl Arguments for Slots {
    fn next(&mut self, size: ArgSize) -> u64 {
        let v = if self.0.is_empty() { 0 } else { self.0.remove(0) };
        match size {
            ArgSize::Bits32 => v & 0xFFFF_FFFF,
            ArgSize::Bits64 | ArgSize::Pointer => v,
        }
    }
}

/// Memory as a map from address to byte; anything else faults.
#[derive(Default)]
struct Bytes(BTreeMap<u64, u8>);

impl Bytes {
    fn put(&mut self, addr: u64, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            self.0.insert(addr + i as u64, b);
        }
    }
    fn put_wide(&mut self, addr: u64, text: &str) {
        let mut bytes: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        bytes.extend([0, 0]);
        self.put(addr, &bytes);
    }
    /// A counted string: Length, MaximumLength, Buffer at +8.
    fn put_counted(&mut self, addr: u64, length: u16, buffer: u64) {
        self.put(addr, &length.to_le_bytes());
        self.put(addr + 2, &length.to_le_bytes());
        self.put(addr + 8, &buffer.to_le_bytes());
    }
}

impl Memory for Bytes {
    fn read(&mut self, addr: u64, out: &mut [u8]) -> Result<(), Fault> {
        for (i, b) in out.iter_mut().enumerate() {
            let a = addr.wrapping_add(i as u64);
            *b = *self.0.get(&a).ok_or(Fault { addr: a })?;
        }
        Ok(())
    }
}

fn narrow(fmt: &str, args: &[u64], memory: &mut Bytes) -> String {
    let f = format::<u8>(fmt.as_bytes(), Target::X64, &mut Slots(args.to_vec()), memory, 512).unwrap();
    // The narrow result is ANSI: show each byte as the Latin-1 character it is.
    f.text.iter().map(|&b| char::from(b)).collect()
}

fn plain(fmt: &str, args: &[u64]) -> String {
    narrow(fmt, args, &mut Bytes::default())
}

#[test]
fn integers_follow_llp64_sizes() {
    assert_eq!(plain("%d %i %u", &[(-5i64) as u64, 7, u64::MAX]), "-5 7 4294967295");
    assert_eq!(plain("%lu %ld", &[0x1_0000_0001, 0xFFFF_FFFF]), "1 -1", "long is 32 bits");
    assert_eq!(
        plain("%I64x %llx %I64d", &[0x1234_5678_9ABC_DEF0, 1 << 40, u64::MAX]),
        "123456789abcdef0 10000000000 -1"
    );
    assert_eq!(plain("%Ix %Iu %zu", &[u64::MAX, 3, 4]), "ffffffffffffffff 3 4");
    assert_eq!(plain("%I32x", &[0xAB_0000_0001]), "1");
    assert_eq!(plain("%hx %hhx %hd", &[0x12345, 0x1FF, 0xFFFF]), "2345 ff -1");
}

#[test]
fn pointers_are_sixteen_upper_case_digits_without_prefix() {
    assert_eq!(plain("%p", &[0xFFFF_F800_0012_AB00]), "FFFFF8000012AB00");
    assert_eq!(plain("[%p]", &[0]), "[0000000000000000]");
    let x86 = Target { pointer_bytes: 4 };
    let f = format::<u8>(b"%p", x86, &mut Slots(vec![0x8012_3456]), &mut Bytes::default(), 64).unwrap();
    assert_eq!(f.text, b"80123456");
}

#[test]
fn flags_width_and_precision() {
    assert_eq!(plain("%08x|%-6d|%6d|%+d|% d", &[0xBEEF, 42, -42i64 as u64, 5, 5]), "0000beef|42    |   -42|+5| 5");
    assert_eq!(plain("%#x %#X %#o %#x", &[255, 255, 8, 0]), "0xff 0XFF 010 0");
    assert_eq!(plain("%.5d|%8.3x|%.0d|", &[42, 10, 0]), "00042|     00a||");
    assert_eq!(plain("%*d|%-*d|%.*d", &[5, 1, (-4i64) as u64, 2, 3, 7]), "    1|2   |007");
    assert_eq!(plain("%05d", &[(-3i64) as u64]), "-0003");
    assert_eq!(plain("%%|%c%C", &[b'A' as u64, b'z' as u64]), "%|Az");
}

#[test]
fn strings_narrow_wide_and_counted() {
    let mut m = Bytes::default();
    m.put(0x1000, b"hello\0");
    m.put_wide(0x2000, "W\u{e9}de \u{263a}");
    m.put_counted(0x3000, 10, 0x2000);
    m.put(0x4000, b"ansi text");
    m.put_counted(0x5000, 4, 0x4000);
    m.put_counted(0x6000, 4, 0);
    let out = narrow(
        "%s|%ws|%S|%ls|%hs|%wZ|%Z|%Z",
        &[0x1000, 0x2000, 0x2000, 0x2000, 0x1000, 0x3000, 0x5000, 0x6000],
        &mut m,
    );
    assert_eq!(out, "hello|W\u{e9}de ?|W\u{e9}de ?|W\u{e9}de ?|hello|W\u{e9}de |ansi|(null)");
    assert_eq!(narrow("%.3s|%-7s|%7.2s", &[0x1000, 0x1000, 0x1000], &mut m), "hel|hello  |     he");
    assert_eq!(plain("%s|%ws|%wZ|%.2s", &[0, 0, 0, 0]), "(null)|(null)|(null)|(n");
}

#[test]
fn wide_format_strings_make_wide_text() {
    let mut m = Bytes::default();
    m.put_wide(0x2000, "wide");
    m.put(0x1000, b"narrow\0");
    let fmt: Vec<u16> = "%s %S %hs %d".encode_utf16().collect();
    let f = format::<u16>(&fmt, Target::X64, &mut Slots(vec![0x2000, 0x1000, 0x1000, 7]), &mut m, 64).unwrap();
    assert_eq!(String::from_utf16(&f.text).unwrap(), "wide narrow narrow 7");
}

#[test]
fn an_unreadable_string_is_a_fault_at_its_address() {
    let mut m = Bytes::default();
    m.put(0x1000, b"ab");
    let r = format::<u8>(b"%s", Target::X64, &mut Slots(vec![0x1000]), &mut m, 64);
    assert_eq!(r, Err(Fault { addr: 0x1002 }));
    let r = format::<u8>(b"x%wZ", Target::X64, &mut Slots(vec![0x9000]), &mut m, 64);
    assert_eq!(r, Err(Fault { addr: 0x9000 }));
}

#[test]
fn output_stops_at_the_limit() {
    let f = format::<u8>(b"0123456789%d", Target::X64, &mut Slots(vec![42]), &mut Bytes::default(), 8).unwrap();
    assert_eq!((f.text.as_slice(), f.truncated), (&b"01234567"[..], true));
    let f = format::<u8>(b"%d", Target::X64, &mut Slots(vec![42]), &mut Bytes::default(), 8).unwrap();
    assert!(!f.truncated);
}

#[test]
fn unsupported_conversions_are_visible_and_keep_the_arguments_in_step() {
    assert_eq!(plain("%f %d", &[0x4000_0000_0000_0000, 3]), "%f 3");
    assert_eq!(plain("%n%d", &[0x1234, 9]), "9");
    assert_eq!(plain("%y%", &[]), "y");
    assert_eq!(plain("a\0b", &[]), "a");
}

proptest::proptest! {
    /// Any format and arguments give text within the limit or a fault, never a
    /// panic; memory at low addresses is readable, the rest faults.
    #[test]
    fn any_format_is_text_or_a_fault(fmt in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
                                     args in proptest::collection::vec(0u64..0x3000, 0..16),
                                     limit in 0usize..600) {
        let mut m = Bytes::default();
        m.put(0, &(0..0x2000u32).map(|i| (i % 97) as u8).collect::<Vec<_>>());
        if let Ok(f) = format::<u8>(&fmt, Target::X64, &mut Slots(args), &mut m, limit) {
            proptest::prop_assert!(f.text.len() <= limit);
        }
    }
}
