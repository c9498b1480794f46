//! Real driver images, built by clang 19 and lld-link exactly as issue 10 prescribes, read by
//! this crate and checked against LLVM's own reading of them (llvm-objdump, llvm-readobj)
//! and against the instructions themselves: every prolog, body and epilogue instruction of
//! every function is unwound and must give back the caller's context.

mod toolchain;

use std::collections::HashMap;
use std::sync::OnceLock;

use ntmem_pe::scope::{ExceptFilter, ScopeHandler, ScopeTable};
use ntmem_pe::unwind::{
    virtual_unwind, Context, Gpr, PcLocation, UnwindFlags, UnwindInfo, UnwindOp, UnwindOutcome, UnwindTail,
};
use ntmem_pe::{DriverImage, ExportTarget, ImageError, MappedImage, ReadError, ReadMemory, SectionFlags, Subsystem};
use toolchain::{build_driver, llvm, Built, ImportLib};

const NTOSKRNL: ImportLib<'static> = ImportLib {
    dll: "ntoskrnl.exe",
    exports: &["ExAllocatePool2", "ExFreePoolWithTag", "MmSystemRangeStart DATA", "__C_specific_handler", "__chkstk"],
};
const HAL: ImportLib<'static> = ImportLib { dll: "hal.dll", exports: &["KeStallExecutionProcessor"] };

struct Fixture {
    built: Built,
    image: DriverImage,
    mapped: Vec<u8>,
    exports: HashMap<String, u32>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let built = build_driver("seh_frames", include_str!("drivers/seh_frames.c"), &[NTOSKRNL, HAL]);
        let image = DriverImage::parse(&built.bytes).expect("clang's image parses");
        let mapped = image.layout(&built.bytes).unwrap();
        let exports = image
            .exports
            .iter()
            .filter_map(|e| match (&e.name, &e.target) {
                (Some(name), ExportTarget::Rva(rva)) => Some((name.clone(), *rva)),
                _ => None,
            })
            .collect();
        Fixture { built, image, mapped, exports }
    })
}

impl Fixture {
    fn memory(&self) -> MappedImage<'_> {
        MappedImage { base: self.image.image_base, bytes: &self.mapped }
    }

    fn rva(&self, name: &str) -> u32 {
        self.exports[name]
    }

    fn bytes_at(&self, rva: u32, len: usize) -> &[u8] {
        &self.mapped[rva as usize..rva as usize + len]
    }
}

fn hex(text: &str) -> u64 {
    u64::from_str_radix(text.trim().trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("not hex: {text:?}"))
}

#[test]
fn headers_and_sections_match_llvm_objdump() {
    let f = fixture();
    let image = &f.image;
    assert_eq!(image.subsystem, Subsystem::Native);
    assert_eq!(image.section_alignment, 0x1000);
    let listing = llvm("llvm-objdump", &["-h"], &f.built.path);
    let listed: Vec<(String, u64, u64)> = listing
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [index, name, size, vma, ..] if index.parse::<u32>().is_ok() => {
                    Some((name.to_string(), hex(vma) - image.image_base, hex(size)))
                }
                _ => None,
            }
        })
        .collect();
    let ours: Vec<(String, u64, u64)> = image
        .sections
        .iter()
        .map(|s| (s.name.clone(), u64::from(s.virtual_address), u64::from(s.virtual_size)))
        .collect();
    assert_eq!(ours, listed);

    let section = |name: &str| image.sections.iter().find(|s| s.name == name).unwrap();
    let text = section(".text");
    assert!(text.characteristics.contains(SectionFlags::CODE | SectionFlags::EXECUTE | SectionFlags::READ));
    assert!(!text.characteristics.contains(SectionFlags::WRITE) && !text.is_pageable() && !text.is_discardable());
    assert!(!section(".rdata").characteristics.intersects(SectionFlags::WRITE | SectionFlags::EXECUTE));
    assert!(section(".data").characteristics.contains(SectionFlags::READ | SectionFlags::WRITE));
    let init = section("INIT");
    assert!(init.is_discardable() && init.characteristics.contains(SectionFlags::EXECUTE) && !init.is_pageable());
    assert!(section("PAGE").is_pageable() && !section("PAGE").is_discardable());

    let entry = image.entry_point.unwrap();
    assert_eq!(entry, f.rva("DriverEntry"));
    assert_eq!(image.section_at(entry).unwrap().name, "INIT");
    assert_eq!(image.section_at(f.rva("paged_routine")).unwrap().name, "PAGE");
    assert_eq!(image.section_at(f.rva("nested")).unwrap().name, ".text");
    // exported_routine is `lea eax, [rcx+1]; ret`.
    assert_eq!(f.bytes_at(f.rva("exported_routine"), 4), [0x8D, 0x41, 0x01, 0xC3]);
}

#[test]
fn base_relocations_match_llvm_readobj_and_move_with_the_image() {
    let f = fixture();
    let image = &f.image;
    let listing = llvm("llvm-readobj", &["--coff-basereloc"], &f.built.path);
    let listed: Vec<u32> = listing
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Address: "))
        .map(|a| u32::try_from(hex(a)).unwrap())
        .collect();
    assert!(listing.lines().filter(|l| l.contains("Type:")).all(|l| l.contains("DIR64")));
    let ours: Vec<u32> = image.relocations.iter().map(|r| r.rva).collect();
    assert_eq!(ours, listed);
    assert!(!ours.is_empty(), "g_pointer and g_callbacks need relocations");

    let value =
        |mapped: &[u8], rva: u32| u64::from_le_bytes(mapped[rva as usize..rva as usize + 8].try_into().unwrap());
    let image_range = image.image_base..image.image_base + u64::from(image.size_of_image);
    for &rva in &ours {
        assert!(image_range.contains(&value(&f.mapped, rva)), "relocated value at {rva:#x} points into the image");
    }
    let new_base = 0xFFFF_F806_1234_0000;
    let mut moved = f.mapped.clone();
    image.relocate(&mut moved, new_base).unwrap();
    for (i, (old, new)) in f.mapped.iter().zip(&moved).enumerate() {
        if !ours.iter().any(|&rva| (rva as usize..rva as usize + 8).contains(&i)) {
            assert_eq!(old, new, "byte {i:#x} is not relocated and must not change");
        }
    }
    for &rva in &ours {
        assert_eq!(value(&moved, rva), value(&f.mapped, rva) - image.image_base + new_base);
    }
}

#[test]
fn imports_by_dll_and_name_with_their_iat_slots() {
    let f = fixture();
    let names: Vec<(&str, Vec<&str>)> = f
        .image
        .imports
        .iter()
        .map(|d| (d.name.as_str(), d.functions.iter().map(|i| i.name.as_str()).collect()))
        .collect();
    let mut ntoskrnl: Vec<&str> = NTOSKRNL.exports.iter().map(|e| e.trim_end_matches(" DATA")).collect();
    ntoskrnl.sort();
    let mut found = names.clone();
    for (_, functions) in &mut found {
        functions.sort();
    }
    assert_eq!(found, [("ntoskrnl.exe", ntoskrnl), ("hal.dll", vec!["KeStallExecutionProcessor"])]);
    for function in f.image.imports.iter().flat_map(|d| &d.functions) {
        // lld puts the IAT in .rdata (issue 10, "How").
        assert_eq!(f.image.section_at(function.iat_rva).unwrap().name, ".rdata");
        assert_eq!(function.iat_rva % 8, 0);
        // Before binding, the slot holds the RVA of the hint/name entry naming the import.
        let hint_name = u64::from_le_bytes(f.bytes_at(function.iat_rva, 8).try_into().unwrap()) as u32;
        let name = f.bytes_at(hint_name + 2, function.name.len() + 1);
        assert_eq!(&name[..function.name.len()], function.name.as_bytes());
        assert_eq!(name[function.name.len()], 0);
    }
}

#[test]
fn an_import_by_ordinal_is_refused() {
    let built = build_driver(
        "by_ordinal",
        "__declspec(dllimport) void KeBugCheck(unsigned long);\n\
         long DriverEntry(void *d, void *r) { KeBugCheck(1); return 0; }\n",
        &[ImportLib { dll: "ntoskrnl.exe", exports: &["KeBugCheck @5 NONAME"] }],
    );
    assert_eq!(
        DriverImage::parse(&built.bytes),
        Err(ImageError::ImportByOrdinal { dll: "ntoskrnl.exe".into(), ordinal: 5 })
    );
}

/// One "Function Table" entry of `llvm-objdump --unwind-info`.
#[derive(Debug, Default)]
struct Listed {
    start: u32,
    end: u32,
    unwind: u32,
    version: u8,
    flags: u8,
    prolog: u8,
    frame: Option<(String, u32)>,
    codes: Vec<String>,
}

fn unwind_listing(f: &Fixture) -> Vec<Listed> {
    let text = llvm("llvm-objdump", &["--unwind-info"], &f.built.path);
    let mut entries: Vec<Listed> = Vec::new();
    let mut in_codes = false;
    for line in text.lines().map(str::trim) {
        let field = |name: &str| line.strip_prefix(name).map(str::trim);
        if line == "Function Table:" {
            entries.push(Listed::default());
            in_codes = false;
            continue;
        }
        let Some(e) = entries.last_mut() else { continue };
        if let Some(v) = field("Start Address:") {
            e.start = hex(v) as u32;
        } else if let Some(v) = field("End Address:") {
            e.end = hex(v) as u32;
        } else if let Some(v) = field("Unwind Info Address:") {
            e.unwind = hex(v) as u32;
        } else if let Some(v) = field("Version:") {
            e.version = v.parse().unwrap();
        } else if let Some(v) = field("Flags:") {
            e.flags = v.split_whitespace().next().unwrap().parse().unwrap();
        } else if let Some(v) = field("Size of prolog:") {
            e.prolog = v.parse().unwrap();
        } else if let Some(v) = field("Frame register:") {
            e.frame = Some((v.to_string(), 0));
        } else if let Some(v) = field("Frame offset:") {
            e.frame.as_mut().unwrap().1 = v.parse().unwrap();
        } else if line == "Unwind Codes:" {
            in_codes = true;
        } else if in_codes && line.starts_with("0x") {
            e.codes.push(line.to_string());
        }
    }
    entries
}

/// A decoded code written as llvm-objdump writes it.
fn render(offset: u8, op: UnwindOp) -> String {
    let reg = |r: Gpr| format!("{r:?}").to_uppercase();
    let text = match op {
        UnwindOp::PushNonvol(r) => format!("UOP_PushNonVol {}", reg(r)),
        UnwindOp::AllocLarge(size) if size <= 0x7FFF8 => format!("UOP_AllocLarge {}", size / 8),
        UnwindOp::AllocLarge(size) => format!("UOP_AllocLarge {size}"),
        UnwindOp::AllocSmall(size) => format!("UOP_AllocSmall {size}"),
        UnwindOp::SetFpreg => "UOP_SetFPReg".to_string(),
        UnwindOp::SaveNonvol { register, offset } => format!("UOP_SaveNonVol {} [0x{offset:04x}]", reg(register)),
        UnwindOp::SaveNonvolFar { register, offset } => format!("UOP_SaveNonVolBig {} [0x{offset:08x}]", reg(register)),
        UnwindOp::SaveXmm128 { register, offset } => format!("UOP_SaveXMM128 XMM{register} [0x{offset:04x}]"),
        UnwindOp::SaveXmm128Far { register, offset } => format!("UOP_SaveXMM128Big XMM{register} [0x{offset:08x}]"),
        UnwindOp::PushMachframe { error_code: false } => "UOP_PushMachFrame w/o error code".to_string(),
        UnwindOp::PushMachframe { error_code: true } => "UOP_PushMachFrame w/ error code".to_string(),
        UnwindOp::Epilog { info } => format!("UOP_Epilog {info}"),
    };
    format!("0x{offset:02x}: {text}")
}

#[test]
fn every_runtime_function_decodes_as_llvm_objdump_reads_it() {
    let f = fixture();
    let listed = unwind_listing(f);
    let functions = f.image.functions.entries();
    assert_eq!(functions.len(), listed.len());
    assert!(functions.len() >= 8, "one entry per function that has a frame, filters included");
    for (function, expected) in functions.iter().zip(&listed) {
        assert_eq!(
            (function.begin, function.end, function.unwind_info),
            (expected.start, expected.end, expected.unwind)
        );
        let info = UnwindInfo::read(&f.memory(), f.image.image_base, function.unwind_info).unwrap();
        assert_eq!(info.version, expected.version);
        assert_eq!(info.flags.bits(), expected.flags);
        assert_eq!(info.size_of_prolog, expected.prolog);
        let frame = info.frame.map(|fr| (format!("{:?}", fr.register).to_uppercase(), fr.offset));
        assert_eq!(frame, expected.frame);
        let codes: Vec<String> = info.codes.iter().map(|c| render(c.offset, c.op)).collect();
        let expected_codes: Vec<String> = expected.codes.iter().map(|c| c.trim_end().to_string()).collect();
        assert_eq!(codes, expected_codes, "function at {:#x}", function.begin);
    }
    // The shapes the driver was written to produce are all there.
    let ops: Vec<UnwindOp> = functions
        .iter()
        .flat_map(|fun| UnwindInfo::read(&f.memory(), f.image.image_base, fun.unwind_info).unwrap().codes)
        .map(|c| c.op)
        .collect();
    assert!(ops.iter().any(|op| matches!(op, UnwindOp::AllocLarge(_))));
    assert!(ops.iter().any(|op| matches!(op, UnwindOp::SaveXmm128 { register: 6, .. })));
    assert!(ops.contains(&UnwindOp::SetFpreg));
    assert!(ops.contains(&UnwindOp::PushNonvol(Gpr::R15)));
}

/// The language handler of the function exported as `name`, and its scope table.
fn scopes(f: &Fixture, name: &str) -> (u32, ScopeTable) {
    let function = f.image.functions.lookup(f.rva(name)).unwrap();
    let info = UnwindInfo::read(&f.memory(), f.image.image_base, function.unwind_info).unwrap();
    assert!(info.flags.contains(UnwindFlags::EHANDLER | UnwindFlags::UHANDLER), "{name} has __try");
    let UnwindTail::Handler { handler_rva, data } = info.tail else { panic!("{name} has no handler") };
    (handler_rva, ScopeTable::read(&f.memory(), data).unwrap())
}

/// The IAT slot RVA of an import.
fn iat_slot(f: &Fixture, name: &str) -> u32 {
    f.image.imports.iter().flat_map(|d| &d.functions).find(|i| i.name == name).unwrap().iat_rva
}

#[test]
fn scope_tables_follow_the_try_nesting() {
    let f = fixture();
    // The handler is lld's thunk for the import: `jmp qword ptr [rip + disp32]` to the IAT slot.
    let (handler, nested) = scopes(f, "nested");
    let thunk = f.bytes_at(handler, 6);
    assert_eq!(thunk[..2], [0xFF, 0x25]);
    let disp = i32::from_le_bytes(thunk[2..6].try_into().unwrap());
    assert_eq!(handler.wrapping_add(6).wrapping_add_signed(disp), iat_slot(f, "__C_specific_handler"));

    // nested: __try { __try { … } __finally { … } } __except (filter(…)) { … }. Records come
    // innermost first: the __finally, then the __except (clang 19 splits its range in two
    // around the end of the inner scope), every piece with the same filter and target.
    let function = *f.image.functions.lookup(f.rva("nested")).unwrap();
    let [inner, outer @ ..] = nested.records.as_slice() else { panic!("no scopes") };
    let ScopeHandler::Finally { handler: finally } = inner.handler else { panic!("inner is __finally: {inner:?}") };
    assert!(!outer.is_empty(), "an __except around the __finally: {nested:?}");
    let ScopeHandler::Except { filter: ExceptFilter::Function(filter), target } = outer[0].handler else {
        panic!("outer is __except with a filter: {:?}", outer[0])
    };
    assert!(outer.iter().all(|r| r.handler == outer[0].handler), "one __except: {outer:?}");
    assert!(
        outer.iter().any(|r| r.begin <= inner.begin && inner.end <= r.end),
        "the __finally scope nests in the __except scope: {nested:?}"
    );
    for scope in &nested.records {
        assert!(function.begin <= scope.begin && scope.end <= function.end);
        assert!(!scope.contains(target), "the __except block is outside its __try");
    }
    assert!(function.contains(target));
    for outlined in [finally, filter] {
        assert!(!function.contains(outlined), "filters and __finally bodies are outlined");
        assert_eq!(f.image.section_at(outlined).unwrap().name, ".text");
    }

    // no_filter and DriverEntry: __except (1) has no filter to call.
    for name in ["no_filter", "DriverEntry"] {
        let (h, table) = scopes(f, name);
        assert_eq!(h, handler);
        let [only] = table.records.as_slice() else { panic!("{name}: one scope: {table:?}") };
        let ScopeHandler::Except { filter: ExceptFilter::ExecuteHandler, target } = only.handler else {
            panic!("{name}: __except(1): {only:?}")
        };
        assert!(f.image.functions.lookup(f.rva(name)).unwrap().contains(target));
    }

    // Functions without __try carry no handler.
    for name in ["large_frame", "dynamic_frame", "many_registers", "paged_routine"] {
        let function = f.image.functions.lookup(f.rva(name)).unwrap();
        let info = UnwindInfo::read(&f.memory(), f.image.image_base, function.unwind_info).unwrap();
        assert_eq!((info.flags, info.tail), (UnwindFlags::empty(), UnwindTail::None), "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Virtual unwinding against the instructions: run each function's prolog (and epilogue) on a
// small interpreter of the instruction forms clang emits there, then unwind from every
// instruction boundary; the result must be the caller's context.

/// A stack of 8-byte words; reading a word never written is an error, so a wrong address in
/// the unwinder shows up.
#[derive(Clone, Default)]
struct Stack(HashMap<u64, u64>);

impl Stack {
    fn write(&mut self, address: u64, value: u64) {
        assert_eq!(address % 8, 0, "the prologs under test write aligned words");
        self.0.insert(address, value);
    }

    fn word(&self, address: u64) -> u64 {
        self.0[&address]
    }
}

struct ImageAndStack<'a> {
    image: MappedImage<'a>,
    stack: &'a Stack,
}

impl ReadMemory for ImageAndStack<'_> {
    fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        if self.image.read(address, buf).is_ok() {
            return Ok(());
        }
        for (i, byte) in buf.iter_mut().enumerate() {
            let a = address + i as u64;
            let word = self.stack.0.get(&(a & !7)).ok_or(ReadError { address, len: 1 })?;
            *byte = (word >> (8 * (a & 7))) as u8;
        }
        Ok(())
    }
}

fn gpr(name: &str) -> Option<(Gpr, bool)> {
    const NAMES: [(&str, &str); 16] = [
        ("rax", "eax"),
        ("rcx", "ecx"),
        ("rdx", "edx"),
        ("rbx", "ebx"),
        ("rsp", "esp"),
        ("rbp", "ebp"),
        ("rsi", "esi"),
        ("rdi", "edi"),
        ("r8", "r8d"),
        ("r9", "r9d"),
        ("r10", "r10d"),
        ("r11", "r11d"),
        ("r12", "r12d"),
        ("r13", "r13d"),
        ("r14", "r14d"),
        ("r15", "r15d"),
    ];
    NAMES.iter().position(|(q, d)| *q == name || *d == name).map(|i| (Gpr::from_number(i as u8), NAMES[i].0 == name))
}

/// `[base + disp]` / `[base - disp]` / `[base]` → (base, disp).
fn memory_operand(text: &str) -> (Gpr, i64) {
    let inner = text.split('[').nth(1).and_then(|t| t.strip_suffix(']')).unwrap_or_else(|| panic!("operand {text}"));
    let mut parts = inner.split_whitespace();
    let base = gpr(parts.next().unwrap()).unwrap().0;
    let disp = match (parts.next(), parts.next()) {
        (Some("+"), Some(d)) => hex(d) as i64,
        (Some("-"), Some(d)) => -(hex(d) as i64),
        (None, None) => 0,
        other => panic!("operand {text}: {other:?}"),
    };
    (base, disp)
}

fn immediate(text: &str) -> u64 {
    if let Some(negative) = text.strip_prefix('-') {
        hex(negative).wrapping_neg()
    } else {
        hex(text)
    }
}

/// Executes one instruction of a prolog or epilogue (`mnemonic\toperands`, Intel syntax).
fn execute(instruction: &str, c: &mut Context, stack: &mut Stack) {
    let (mnemonic, operands) = instruction.split_once('\t').unwrap_or((instruction, ""));
    let ops: Vec<&str> = operands.split(", ").map(str::trim).collect();
    let address = |c: &Context, text: &str| {
        let (base, disp) = memory_operand(text);
        c.get(base).wrapping_add_signed(disp)
    };
    match (mnemonic, ops.as_slice()) {
        ("nop", _) | ("call", _) => {} // the only call in a prolog is __chkstk, which keeps RSP
        ("push", [r]) => {
            let value = c.get(gpr(r).unwrap().0);
            c.set_rsp(c.rsp() - 8);
            stack.write(c.rsp(), value);
        }
        ("pop", [r]) => {
            c.set(gpr(r).unwrap().0, stack.word(c.rsp()));
            c.set_rsp(c.rsp() + 8);
        }
        ("sub", ["rsp", "rax"]) => c.set_rsp(c.rsp() - c.get(Gpr::Rax)),
        ("sub", ["rsp", n]) => c.set_rsp(c.rsp().wrapping_sub(immediate(n))),
        ("add", ["rsp", n]) => c.set_rsp(c.rsp().wrapping_add(immediate(n))),
        ("lea", [r, m]) => {
            let value = address(c, m);
            c.set(gpr(r).unwrap().0, value);
        }
        ("mov", [d, s]) if d.contains('[') => stack.write(address(c, d), c.get(gpr(s).unwrap().0)),
        ("mov", [d, s]) => {
            let (dst, wide) = gpr(d).unwrap();
            let value = gpr(s).map(|(r, _)| c.get(r)).unwrap_or_else(|| immediate(s));
            c.set(dst, if wide { value } else { value & 0xFFFF_FFFF });
        }
        ("movaps", [d, s]) if d.starts_with("xmmword ptr") => {
            let at = address(c, d);
            let value = c.xmm[s.trim_start_matches("xmm").parse::<usize>().unwrap()];
            stack.write(at, value as u64);
            stack.write(at + 8, (value >> 64) as u64);
        }
        _ => panic!("the test interpreter does not know `{instruction}`"),
    }
}

const NONVOLATILE: [Gpr; 8] = [Gpr::Rbx, Gpr::Rbp, Gpr::Rsi, Gpr::Rdi, Gpr::R12, Gpr::R13, Gpr::R14, Gpr::R15];
const RETURN_ADDRESS: u64 = 0xFFFF_F800_0BAD_C0DE;
const CALLER_RSP: u64 = 0xFFFF_D000_0001_0008;

/// The caller's context at the call: distinct values everywhere, the return address at [RSP].
fn caller_at_call(entry: u64) -> (Context, Stack) {
    let mut c = Context { rip: entry, ..Context::default() };
    for i in 0..16u8 {
        c.gpr[usize::from(i)] = 0x1111_0000_0000_0000 | u64::from(i) << 8;
        c.xmm[usize::from(i)] = 0x2222_0000_0000_0000_0000_0000_0000_0000 | u128::from(i) << 16;
    }
    c.set_rsp(CALLER_RSP);
    let mut stack = Stack::default();
    stack.write(CALLER_RSP, RETURN_ADDRESS);
    (c, stack)
}

/// Overwrites every register the function saved (a body is free to use them), except the
/// frame register.
fn clobber_saved(c: &mut Context, info: &UnwindInfo) {
    for code in &info.codes {
        match code.op {
            UnwindOp::PushNonvol(r) | UnwindOp::SaveNonvol { register: r, .. }
                if info.frame.map(|fr| fr.register) != Some(r) && r != Gpr::Rsp =>
            {
                c.set(r, 0xDEAD_0000 | u64::from(r.number()))
            }
            UnwindOp::SaveXmm128 { register, .. } => c.xmm[usize::from(register)] = 0xDEAD,
            _ => {}
        }
    }
}

fn assert_returns_to_caller(
    f: &Fixture,
    at: &str,
    function: &ntmem_pe::RuntimeFunction,
    mut context: Context,
    stack: &Stack,
    caller: &Context,
) -> UnwindOutcome {
    let memory = ImageAndStack { image: f.memory(), stack };
    let outcome = virtual_unwind(UnwindFlags::EHANDLER, f.image.image_base, function, &mut context, &memory)
        .unwrap_or_else(|e| panic!("{at}: {e}"));
    assert_eq!(context.rip, RETURN_ADDRESS, "{at}: rip");
    assert_eq!(context.rsp(), CALLER_RSP + 8, "{at}: rsp");
    for r in NONVOLATILE {
        assert_eq!(context.get(r), caller.get(r), "{at}: {r:?}");
    }
    assert_eq!(context.xmm[6..], caller.xmm[6..], "{at}: xmm6-15");
    outcome
}

#[test]
fn virtual_unwind_returns_to_the_caller_from_every_instruction() {
    let f = fixture();
    let base = f.image.image_base;
    let listing = llvm("llvm-objdump", &["-d", "-M", "intel", "--no-show-raw-insn"], &f.built.path);
    let instructions: Vec<(u64, String)> = listing
        .lines()
        .filter_map(|line| {
            let (address, text) = line.split_once(':')?;
            let address = u64::from_str_radix(address.trim(), 16).ok()?;
            Some((address, text.trim().to_string()))
        })
        .collect();
    let handler_thunk = scopes(f, "nested").0;
    let mut checked = [0usize; 3];
    for function in f.image.functions.entries() {
        let (begin, end) = (base + u64::from(function.begin), base + u64::from(function.end));
        let code: Vec<&(u64, String)> = instructions.iter().filter(|(a, _)| (begin..end).contains(a)).collect();
        let info = UnwindInfo::read(&f.memory(), base, function.unwind_info).unwrap();
        let prolog_end = begin + u64::from(info.size_of_prolog);
        let (caller, mut stack) = caller_at_call(begin);
        let mut context = caller;

        // Prolog: unwind before each instruction, then execute it.
        for (address, text) in code.iter().take_while(|(a, _)| *a < prolog_end) {
            context.rip = *address;
            let outcome = assert_returns_to_caller(f, text, function, context, &stack, &caller);
            assert_eq!((outcome.location, outcome.handler), (PcLocation::Prolog, None), "{address:#x} {text}");
            execute(text, &mut context, &mut stack);
            checked[0] += 1;
        }
        clobber_saved(&mut context, &info);
        let after_prolog = context;
        let establisher = after_prolog.rsp();

        // Epilogues: from each `ret` back over the pops to `add rsp`/`lea rsp`.
        let mut in_epilog = vec![false; code.len()];
        for (r, _) in code.iter().enumerate().filter(|(_, (_, t))| t == "ret") {
            let mut first = r;
            while first > 0 && code[first - 1].1.starts_with("pop\t") {
                first -= 1;
            }
            if first > 0 && ["add\trsp, ", "lea\trsp, "].iter().any(|p| code[first - 1].1.starts_with(p)) {
                first -= 1;
            }
            for j in first..=r {
                let mut at = after_prolog;
                // The body restores saved XMM registers before the epilogue, which only pops.
                at.xmm = caller.xmm;
                let mut s = stack.clone();
                if code[first].1.starts_with("lea\trsp") {
                    at.set_rsp(at.rsp() - 0x40); // alloca'd space the `lea rsp` gives back
                }
                for (_, text) in &code[first..j] {
                    execute(text, &mut at, &mut s);
                }
                at.rip = code[j].0;
                let outcome = assert_returns_to_caller(f, &code[j].1, function, at, &s, &caller);
                assert_eq!((outcome.location, outcome.handler), (PcLocation::Epilog, None), "{:#x}", code[j].0);
                in_epilog[j] = true;
                checked[2] += 1;
            }
        }

        // Body: every other instruction past the prolog.
        for (j, (address, text)) in code.iter().enumerate() {
            if *address < prolog_end || in_epilog[j] {
                continue;
            }
            let mut at = after_prolog;
            if info.frame.is_some() {
                at.set_rsp(at.rsp() - 0x40); // alloca: RSP moves, the frame register does not
            }
            at.rip = *address;
            let outcome = assert_returns_to_caller(f, text, function, at, &stack, &caller);
            assert_eq!(outcome.location, PcLocation::Body, "{address:#x} {text}");
            assert_eq!(outcome.establisher_frame, establisher, "{address:#x} {text}: establisher frame");
            let handler = outcome.handler.map(|h| h.routine - base);
            let expected = info.flags.contains(UnwindFlags::EHANDLER).then_some(u64::from(handler_thunk));
            assert_eq!(handler, expected, "{address:#x} {text}: handler");
            checked[1] += 1;
        }
    }
    let [prolog, body, epilog] = checked;
    assert!(prolog >= 30 && body >= 100 && epilog >= 20, "instructions checked: {checked:?}");
}
