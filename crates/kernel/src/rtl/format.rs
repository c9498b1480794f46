//! Windows' printf format language, as `DbgPrint`, `DbgPrintEx`, `vDbgPrintEx`,
//! `_vsnprintf`, `_snwprintf` and the `ntstrsafe.h` printf routines read it.
//!
//! The language is Microsoft's CRT `printf` (learn.microsoft.com, "Format
//! specification syntax: printf and wprintf functions", and "Size specification"),
//! with the kernel's additions documented on the `DbgPrint` page (wdm.h):
//!
//! * `%[flags][width][.precision][size]type`, flags `-`, `+`, space, `#`, `0`;
//!   width and precision may be `*` (an `int` argument; a negative width
//!   left-justifies, a negative precision is as if none was given).
//! * Sizes: none and `l` are 32-bit (LLP64: `long` is 32 bits), `h` 16-bit, `hh`
//!   8-bit, `ll` and `I64` 64-bit, `I32` 32-bit, `I`, `z`, `t` pointer-sized, `j`
//!   64-bit.
//! * `%s`/`%c` are the format string's own width, `%S`/`%C` the other one; `h`
//!   forces narrow, `l` and `w` force wide (`%hs`, `%ls`, `%ws`, `%wc`).
//! * `%Z` prints a counted string: an `ANSI_STRING`, or with `w`/`l` (`%wZ`) a
//!   `UNICODE_STRING`, for `Length` bytes; precision does not apply. A NULL
//!   pointer (or a NULL `Buffer`) prints `(null)`, as a NULL `%s` does.
//! * `%p` prints the pointer as upper-case hex, zero-padded to two digits per byte
//!   of the pointer (16 on x64), with no `0x`.
//! * `%#x` prefixes `0x` to a non-zero value, `%#o` a `0`. A `0` flag pads with
//!   zeros (strings too, as Microsoft's CRT does) unless `-` is given or, for
//!   integers, a precision is.
//!
//! Where ntmem differs: `%n` writes nothing and consumes its pointer (Microsoft's
//! CRT disables `%n` by default); the floating-point conversions, which `DbgPrint`
//! does not support, consume their 8-byte argument and are printed as written
//! (`%f`), where Windows' output is undefined. Wide characters printed into a
//! narrow result become their low byte when below 0x100 and `?` otherwise (Windows
//! converts through the ANSI code page, which differs from this in 0x80–0x9F).
//!
//! The arguments and memory come from the caller through [`Arguments`] and
//! [`Memory`], so the same code reads a Microsoft-x64 `va_list`, an x86 one, or a
//! test's vector.

/// A code unit of a format string and its result: `u8` for the narrow routines,
/// `u16` (UTF-16, Windows' `WCHAR`) for the wide ones.
pub trait Unit: Copy + Eq + std::fmt::Debug {
    /// Whether `%s` and `%c` mean wide strings and characters in this width.
    const WIDE: bool;
    /// The unit's value.
    fn value(self) -> u32;
    /// The unit for character `c` (narrowed as the module docs say).
    fn from_char(c: u32) -> Self;
}

impl Unit for u8 {
    const WIDE: bool = false;
    fn value(self) -> u32 {
        u32::from(self)
    }
    fn from_char(c: u32) -> u8 {
        u8::try_from(c).unwrap_or(b'?')
    }
}

impl Unit for u16 {
    const WIDE: bool = true;
    fn value(self) -> u32 {
        u32::from(self)
    }
    fn from_char(c: u32) -> u16 {
        u16::try_from(c).unwrap_or(u16::from(b'?'))
    }
}

/// The size of one argument, as the format asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgSize {
    /// `int`, `long`, `short` and `char` (promoted), `%I32`.
    Bits32,
    /// `long long`, `%I64`, `double`.
    Bits64,
    /// A pointer or `SIZE_T` (`%p`, `%s`, `%I`, `%z`).
    Pointer,
}

/// The variable arguments of a call, in order.
pub trait Arguments {
    /// The next argument of `size`, zero-extended to 64 bits.
    fn next(&mut self, size: ArgSize) -> u64;
}

/// Reads the caller's memory for `%s`, `%S` and `%Z`.
pub trait Memory {
    /// Fills `out` from the caller's address `addr`.
    ///
    /// # Errors
    /// [`Fault`] with the first address that cannot be read.
    fn read(&mut self, addr: u64, out: &mut [u8]) -> Result<(), Fault>;
}

/// A string argument pointed at memory that cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the format's argument points at unreadable memory {addr:#x}")]
pub struct Fault {
    /// The first unreadable address.
    pub addr: u64,
}

/// The machine whose conventions the arguments follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// Bytes in a pointer: 8 on x64, 4 on x86.
    pub pointer_bytes: u8,
}

impl Target {
    /// An x64 driver's arguments (LLP64).
    pub const X64: Target = Target { pointer_bytes: 8 };

    fn pointer_mask(self) -> u64 {
        if self.pointer_bytes >= 8 {
            u64::MAX
        } else {
            (1u64 << (u32::from(self.pointer_bytes) * 8)) - 1
        }
    }
}

/// What [`format`](fn@format) produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Formatted<U> {
    /// The text, at most `limit` units.
    pub text: Vec<U>,
    /// Whether the text was cut at `limit`.
    pub truncated: bool,
}

const NULL_TEXT: &[u8] = b"(null)";

#[derive(Clone, Copy, Debug, Default)]
struct Spec {
    left: bool,
    plus: bool,
    space: bool,
    alternate: bool,
    zero: bool,
    width: usize,
    precision: Option<usize>,
    size: Size,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Size {
    #[default]
    Default,
    Char,
    Short,
    Long,
    LongLong,
    Pointer,
    Wide,
}

impl Size {
    fn arg(self) -> (ArgSize, u32) {
        match self {
            Size::Default | Size::Long | Size::Wide => (ArgSize::Bits32, 32),
            Size::Char => (ArgSize::Bits32, 8),
            Size::Short => (ArgSize::Bits32, 16),
            Size::LongLong => (ArgSize::Bits64, 64),
            Size::Pointer => (ArgSize::Pointer, 64),
        }
    }

    /// Whether `%s`/`%c`/`%Z` with this size mean wide, for format width `wide`.
    fn wide_text(self, wide: bool, upper: bool) -> bool {
        match self {
            Size::Short | Size::Char => false,
            Size::Long | Size::Wide => true,
            _ => wide != upper,
        }
    }
}

/// Output with a limit: pushes stop at `limit` units and remember the cut.
struct Out<U> {
    text: Vec<U>,
    limit: usize,
    truncated: bool,
}

impl<U: Unit> Out<U> {
    fn push(&mut self, c: u32) -> bool {
        if self.text.len() >= self.limit {
            self.truncated = true;
            return false;
        }
        self.text.push(U::from_char(c));
        true
    }

    fn full(&self) -> bool {
        self.truncated
    }

    fn repeat(&mut self, c: u32, n: usize) {
        for _ in 0..n {
            if !self.push(c) {
                return;
            }
        }
    }

    /// One field: `prefix` then `body`, padded to the spec's width.
    fn field(&mut self, spec: &Spec, prefix: &[u32], body: &[u32], zero_pad: bool) {
        let len = prefix.len() + body.len();
        let pad = spec.width.saturating_sub(len);
        if !spec.left && !zero_pad {
            self.repeat(u32::from(b' '), pad);
        }
        prefix.iter().for_each(|&c| _ = self.push(c));
        if !spec.left && zero_pad {
            self.repeat(u32::from(b'0'), pad);
        }
        body.iter().for_each(|&c| _ = self.push(c));
        if spec.left {
            self.repeat(u32::from(b' '), pad);
        }
    }
}

/// Formats `fmt` (up to its first NUL, or its end) with `args`, reading strings
/// from `memory`, into at most `limit` units.
///
/// # Errors
/// [`Fault`] when a string argument points at unreadable memory.
pub fn format<U: Unit>(
    fmt: &[U],
    target: Target,
    args: &mut dyn Arguments,
    memory: &mut dyn Memory,
    limit: usize,
) -> Result<Formatted<U>, Fault> {
    let mut out = Out { text: Vec::new(), limit, truncated: false };
    let units: Vec<u32> = fmt.iter().map(|u| u.value()).take_while(|&c| c != 0).collect();
    let mut i = 0;
    while i < units.len() && !out.full() {
        let c = units[i];
        i += 1;
        if c != u32::from(b'%') {
            out.push(c);
            continue;
        }
        let start = i - 1;
        let (spec, type_at) = parse_spec(&units, i, args);
        let Some(&conversion) = units.get(type_at) else { break };
        i = type_at + 1;
        convert::<U>(conversion, &spec, &units[start..i], target, args, memory, &mut out)?;
    }
    Ok(Formatted { text: out.text, truncated: out.truncated })
}

/// Reads flags, width, precision and size from `units[i..]`; returns the spec and
/// the index of the conversion character.
fn parse_spec(units: &[u32], mut i: usize, args: &mut dyn Arguments) -> (Spec, usize) {
    let at = |i: usize| units.get(i).and_then(|&c| u8::try_from(c).ok()).unwrap_or(0);
    let mut spec = Spec::default();
    loop {
        match at(i) {
            b'-' => spec.left = true,
            b'+' => spec.plus = true,
            b' ' => spec.space = true,
            b'#' => spec.alternate = true,
            b'0' => spec.zero = true,
            _ => break,
        }
        i += 1;
    }
    if at(i) == b'*' {
        let w = args.next(ArgSize::Bits32) as u32 as i32;
        spec.left |= w < 0;
        spec.width = w.unsigned_abs() as usize;
        i += 1;
    } else {
        (spec.width, i) = digits(units, i);
    }
    if at(i) == b'.' {
        i += 1;
        if at(i) == b'*' {
            let p = args.next(ArgSize::Bits32) as u32 as i32;
            spec.precision = usize::try_from(p).ok();
            i += 1;
        } else {
            let (p, next) = digits(units, i);
            spec.precision = Some(p);
            i = next;
        }
    }
    (spec.size, i) = match (at(i), at(i + 1), at(i + 2)) {
        (b'h', b'h', _) => (Size::Char, i + 2),
        (b'h', _, _) => (Size::Short, i + 1),
        (b'l', b'l', _) => (Size::LongLong, i + 2),
        (b'l', _, _) => (Size::Long, i + 1),
        (b'w', _, _) => (Size::Wide, i + 1),
        (b'I', b'6', b'4') => (Size::LongLong, i + 3),
        (b'I', b'3', b'2') => (Size::Long, i + 3),
        (b'I' | b'z' | b't', _, _) => (Size::Pointer, i + 1),
        (b'j', _, _) => (Size::LongLong, i + 1),
        _ => (Size::Default, i),
    };
    (spec, i)
}

/// A decimal number at `units[i..]` (saturating), and the index after it.
fn digits(units: &[u32], mut i: usize) -> (usize, usize) {
    let mut n: usize = 0;
    while let Some(d) = units.get(i).and_then(|&c| char::from_u32(c)).and_then(|c| c.to_digit(10)) {
        n = n.saturating_mul(10).saturating_add(d as usize);
        i += 1;
    }
    (n, i)
}

fn convert<U: Unit>(
    conversion: u32,
    spec: &Spec,
    written: &[u32],
    target: Target,
    args: &mut dyn Arguments,
    memory: &mut dyn Memory,
    out: &mut Out<U>,
) -> Result<(), Fault> {
    let Ok(conversion) = u8::try_from(conversion) else {
        out.push(conversion);
        return Ok(());
    };
    let ascii = |s: &[u8]| s.iter().map(|&b| u32::from(b)).collect::<Vec<_>>();
    match conversion {
        b'%' => _ = out.push(u32::from(b'%')),
        b'd' | b'i' | b'u' | b'o' | b'x' | b'X' | b'p' => integer(conversion, spec, target, args, out),
        b'c' | b'C' => {
            let wide = spec.size.wide_text(U::WIDE, conversion == b'C');
            let v = args.next(ArgSize::Bits32);
            let c = if wide { v & 0xFFFF } else { v & 0xFF };
            out.field(spec, &[], &[c as u32], spec.zero);
        }
        b's' | b'S' => {
            let wide = spec.size.wide_text(U::WIDE, conversion == b'S');
            let p = args.next(ArgSize::Pointer) & target.pointer_mask();
            let body = if p == 0 {
                ascii(&NULL_TEXT[..spec.precision.unwrap_or(usize::MAX).min(NULL_TEXT.len())])
            } else {
                let max = spec.precision.unwrap_or(usize::MAX).min(out.limit);
                terminated(memory, p, wide, max)?
            };
            out.field(spec, &[], &body, spec.zero);
        }
        b'Z' => {
            let wide = matches!(spec.size, Size::Long | Size::Wide);
            let p = args.next(ArgSize::Pointer) & target.pointer_mask();
            let body = counted(memory, target, p, wide)?;
            out.field(spec, &[], &body, spec.zero);
        }
        b'n' => _ = args.next(ArgSize::Pointer),
        b'e' | b'E' | b'f' | b'F' | b'g' | b'G' | b'a' | b'A' => {
            _ = args.next(ArgSize::Bits64);
            written.iter().for_each(|&c| _ = out.push(c));
        }
        other => _ = out.push(u32::from(other)),
    }
    Ok(())
}

fn integer<U: Unit>(conversion: u8, spec: &Spec, target: Target, args: &mut dyn Arguments, out: &mut Out<U>) {
    let (arg, mut bits) = if conversion == b'p' { (ArgSize::Pointer, 64) } else { spec.size.arg() };
    if arg == ArgSize::Pointer {
        bits = u32::from(target.pointer_bytes) * 8;
    }
    let raw = args.next(arg);
    let mask = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let value = raw & mask;
    let signed = matches!(conversion, b'd' | b'i');
    let negative = signed && bits > 0 && (value >> (bits - 1)) & 1 == 1;
    let magnitude = if negative { (!value).wrapping_add(1) & mask } else { value };
    let (radix, upper) = match conversion {
        b'o' => (8, false),
        b'x' => (16, false),
        b'X' | b'p' => (16, true),
        _ => (10, false),
    };
    let mut digits_text: Vec<u32> = Vec::new();
    let mut v = magnitude;
    while v != 0 {
        let d = (v % radix) as u8;
        let ch = match d {
            0..=9 => b'0' + d,
            _ if upper => b'A' + d - 10,
            _ => b'a' + d - 10,
        };
        digits_text.push(u32::from(ch));
        v /= radix;
    }
    let precision = if conversion == b'p' { Some(usize::from(target.pointer_bytes) * 2) } else { spec.precision };
    let min_digits = precision.unwrap_or(1);
    while digits_text.len() < min_digits {
        digits_text.push(u32::from(b'0'));
    }
    digits_text.reverse();
    let mut prefix: Vec<u32> = Vec::new();
    if negative {
        prefix.push(u32::from(b'-'));
    } else if signed && spec.plus {
        prefix.push(u32::from(b'+'));
    } else if signed && spec.space {
        prefix.push(u32::from(b' '));
    }
    if spec.alternate && value != 0 {
        match conversion {
            b'x' => prefix.extend([u32::from(b'0'), u32::from(b'x')]),
            b'X' => prefix.extend([u32::from(b'0'), u32::from(b'X')]),
            b'o' if digits_text.first() != Some(&u32::from(b'0')) => prefix.push(u32::from(b'0')),
            _ => {}
        }
    }
    let zero_pad = spec.zero && spec.precision.is_none();
    out.field(spec, &prefix, &digits_text, zero_pad);
}

/// A NUL-terminated string at `p`, at most `max` characters.
fn terminated(memory: &mut dyn Memory, p: u64, wide: bool, max: usize) -> Result<Vec<u32>, Fault> {
    let unit = if wide { 2 } else { 1 };
    let mut text = Vec::new();
    let mut addr = p;
    while text.len() < max {
        let mut buf = [0u8; 2];
        memory.read(addr, &mut buf[..unit])?;
        let c = if wide { u32::from(u16::from_le_bytes(buf)) } else { u32::from(buf[0]) };
        if c == 0 {
            break;
        }
        text.push(c);
        addr = addr.wrapping_add(unit as u64);
    }
    Ok(text)
}

/// The text of the `ANSI_STRING` (or, `wide`, `UNICODE_STRING`) at `p`:
/// `USHORT Length; USHORT MaximumLength; PCHAR Buffer` with `Buffer` at the
/// pointer-aligned offset (8 on x64, 4 on x86).
fn counted(memory: &mut dyn Memory, target: Target, p: u64, wide: bool) -> Result<Vec<u32>, Fault> {
    let null = || NULL_TEXT.iter().map(|&b| u32::from(b)).collect();
    if p == 0 {
        return Ok(null());
    }
    let mut length = [0u8; 2];
    memory.read(p, &mut length)?;
    let mut buffer = [0u8; 8];
    let pointer = usize::from(target.pointer_bytes).min(8);
    memory.read(p.wrapping_add(pointer as u64), &mut buffer[..pointer])?;
    let buffer = u64::from_le_bytes(buffer);
    if buffer == 0 {
        return Ok(null());
    }
    let length = usize::from(u16::from_le_bytes(length));
    let mut bytes = vec![0u8; if wide { length & !1 } else { length }];
    memory.read(buffer, &mut bytes)?;
    Ok(if wide {
        bytes.chunks_exact(2).map(|c| u32::from(u16::from_le_bytes([c[0], c[1]]))).collect()
    } else {
        bytes.iter().map(|&b| u32::from(b)).collect()
    })
}

#[cfg(test)]
mod tests;
