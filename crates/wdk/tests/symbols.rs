//! Driver code by name (issue 10 item 6): a C driver built by `ntmem-toolchain` (CodeView
//! in a PDB beside the `.sys`), loaded into a booted machine, faults three calls deep; its
//! exception filter hands the faulting CONTEXT to a routine of this test, which walks the
//! stack with `Symbolizer::stack_walk` while the frames are live. The names, offsets and
//! source lines are asserted exactly: function starts come from a table of function
//! pointers the driver exports (not from the PDB), lines from markers in the source, and
//! every address of `.text` is checked against llvm-symbolizer reading the same PDB.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ntmem_kernel::mm::sysload::LoadedImage;
use ntmem_kernel::Machine;
use ntmem_machine::{BootOptions, MachineConfig};
use ntmem_pe::unwind::Context;
use ntmem_pe::ExportTarget;
use ntmem_toolchain::{ImportLibrary, Toolchain};
use ntmem_wdk::except::{self, images::Registration};
use ntmem_wdk::symbols::{
    lm_text, walk as walk_registered, Analysis, ImageSymbols, StackFrame, SymbolError, SymbolStatus, Symbolizer,
};
use ntmem_wdk::{context, seh};

const DRIVER: &str = r#"typedef struct _EXCEPTION_POINTERS { void *ExceptionRecord; void *ContextRecord; } EXCEPTION_POINTERS;
void SymbolsTestWalk(void *Context);
#define EXPORT __declspec(dllexport)

EXPORT volatile int Sink;

__declspec(noinline) static int Leaf(volatile int *p, int k) {
    Sink = k;
    return *p + k; /* @fault */
}

__declspec(noinline) static int Middle(volatile int *p, int x) {
    int r = Leaf(p, x * 3) * x; /* @middle */
    Sink = r;
    return r + 3;
}

static int Walk(EXCEPTION_POINTERS *e) {
    SymbolsTestWalk(e->ContextRecord);
    return 1;
}

EXPORT int Outer(volatile int *p) {
    __try {
        return Middle(p, 5) + 1; /* @outer */
    } __except (Walk((EXCEPTION_POINTERS *)_exception_info())) {
        return -1;
    }
}

/* Function starts, as the loader relocates them: the test's oracle for offsets. */
EXPORT void *Starts[3] = { (void *)Leaf, (void *)Middle, (void *)Outer };

long DriverEntry(void *DriverObject, void *RegistryPath) { (void)DriverObject; (void)RegistryPath; return 0; }
"#;

/// The line of `marker` in [`DRIVER`].
fn line_of(marker: &str) -> u32 {
    DRIVER.lines().position(|l| l.contains(marker)).expect("marker") as u32 + 1
}

struct Built {
    sys: PathBuf,
    source: PathBuf,
    bytes: Vec<u8>,
}

/// `DRIVER` (with `extra` appended) built into `dir` under `name`.
fn build(dir: &str, name: &str, extra: &str) -> Built {
    let tc = Toolchain::find().expect("the driver toolchain (clang >= 19, lld, llvm)");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join(format!("{name}.c"));
    std::fs::write(&source, format!("{DRIVER}{extra}")).unwrap();
    let imports = [ImportLibrary {
        dll: "ntoskrnl.exe".into(),
        routines: vec!["SymbolsTestWalk".into(), "__C_specific_handler".into()],
        data: vec![],
    }];
    let sys = dir.join(format!("{name}.sys"));
    tc.build(std::slice::from_ref(&source), &imports, &["-O2".into()], &dir.join("work"), &sys).unwrap();
    Built { bytes: std::fs::read(&sys).unwrap(), sys, source }
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| build("symbols", "symtest", ""))
}

/// The walk the driver's filter asked for: the symbolizer it used, its frames, and the
/// frames `walk` finds over the dispatcher's registered images.
type Walked = (Symbolizer, Vec<StackFrame>, Vec<StackFrame>);
static WALK: Mutex<Option<Walked>> = Mutex::new(None);

/// `SymbolsTestWalk(CONTEXT *)`: walks the stack from the faulting context while the
/// driver's frames are live, reading through the dispatcher's memory view.
extern "win64" fn symbols_test_walk(context: *const ntmem_host::context::Context) {
    // SAFETY: the driver's filter passes its EXCEPTION_POINTERS' ContextRecord.
    let c = unsafe { &*context };
    let registers = Context { rip: c.rip, gpr: c.gpr, xmm: [0; 16] };
    if let Ok(mut walk) = WALK.lock() {
        if let Some((symbolizer, frames, registered)) = walk.as_mut() {
            *frames = symbolizer.stack_walk(registers, &except::images::Memory);
            *registered = walk_registered(registers, &except::images::Memory, |pc| {
                except::images::lookup(pc).map(|f| (f.base, f.function.map(|(entry, _)| entry)))
            });
        }
    }
}

struct Driver {
    machine: Machine,
    image: Option<LoadedImage>,
    registration: Option<Registration>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        drop(self.registration.take());
        if let Some(image) = self.image.take() {
            image.unload(&self.machine);
        }
    }
}

fn load() -> Driver {
    let mut config = MachineConfig::for_edition("ws03sp1-enterprise-x64").unwrap();
    config.ram = 256 << 20;
    config.boot = BootOptions::parse("").unwrap();
    let machine = Machine::boot(config.build().unwrap()).unwrap();
    let walk = symbols_test_walk as *const () as u64;
    let resolve = |dll: &str, name: &str| match (dll, name) {
        ("ntoskrnl.exe", "SymbolsTestWalk") => Some(walk),
        ("ntoskrnl.exe", name) => ntmem_wdk::exports::routine_address(name).map(|a| a as u64),
        _ => None,
    };
    let image = LoadedImage::load(&machine, "symtest.sys", &built().bytes, &resolve).unwrap();
    let registration = except::images::register(&image).expect("an image slot");
    Driver { machine, image: Some(image), registration: Some(registration) }
}

impl Driver {
    fn image(&self) -> &LoadedImage {
        self.image.as_ref().unwrap()
    }

    fn address(&self, name: &str) -> u64 {
        let e = self.image().image().exports.iter().find(|e| e.name.as_deref() == Some(name)).unwrap();
        match e.target {
            ExportTarget::Rva(rva) => self.image().host_base() + u64::from(rva),
            ExportTarget::Forwarder(_) => panic!("{name} is forwarded"),
        }
    }

    /// The host addresses of Leaf, Middle and Outer.
    fn starts(&self) -> [u64; 3] {
        let at = self.address("Starts") as *const u64;
        // SAFETY: `Starts` is a mapped, relocated global of three pointers.
        std::array::from_fn(|i| unsafe { std::ptr::read_volatile(at.add(i)) })
    }

    fn symbols(&self) -> ImageSymbols {
        let (symbols, problem) =
            ImageSymbols::load("symtest.sys", self.image().host_base(), &built().bytes, Some(&built().sys)).unwrap();
        assert!(problem.is_none(), "{problem:?}");
        symbols
    }
}

/// The source file as the PDB records it.
fn source() -> String {
    built().source.display().to_string()
}

/// A call instruction (`call rel32`) ends just before `return_address` and targets `callee`.
fn calls(return_address: u64, callee: u64) -> bool {
    // SAFETY: the five bytes before a return address inside the mapped image's code.
    let bytes: [u8; 5] = std::array::from_fn(|i| unsafe { *((return_address - 5) as *const u8).add(i) });
    let rel = i32::from_le_bytes(bytes[1..].try_into().unwrap());
    bytes[0] == 0xE8 && return_address.wrapping_add_signed(i64::from(rel)) == callee
}

#[test]
fn a_fault_three_calls_deep_is_named_and_walked_to_the_caller_of_the_driver() {
    let d = load();
    let mut symbolizer = Symbolizer::new();
    symbolizer.add(d.symbols());
    *WALK.lock().unwrap() = Some((symbolizer, Vec::new(), Vec::new()));
    let outer = d.address("Outer");
    // SAFETY: `Outer` is `int Outer(volatile int *)`, Microsoft x64.
    let outer_fn = unsafe { std::mem::transmute::<usize, extern "win64" fn(*const i32) -> i32>(outer as usize) };
    let r = seh::run_as(seh::ThreadKind::Arbitrary, || {
        d.machine.run(0, |c| Ok(context::enter(c, "symbols test", || outer_fn(std::ptr::null()))))
    });
    assert_eq!(context::leave(r).unwrap(), -1, "the filter's handler ran");
    let (symbolizer, frames, registered) = WALK.lock().unwrap().take().unwrap();
    assert_eq!(registered, frames, "the dispatcher's image list walks the same frames");

    let [leaf, middle, outer_start] = d.starts();
    assert_eq!(outer_start, outer);
    assert_eq!(frames.len(), 3, "Leaf, Middle, Outer: {frames:x?}");
    let (fault, in_middle, in_outer) = (frames[0].ip, frames[1].ip, frames[2].ip);
    assert_eq!(frames[0].return_address, Some(in_middle));
    assert_eq!(frames[1].return_address, Some(in_outer));
    assert!(calls(in_middle, leaf) && calls(in_outer, middle), "each return address follows the call");
    let outside = frames[2].return_address.expect("Outer returns to its caller");
    assert!(symbolizer.image_at(outside).is_none(), "the walk ends at the first address outside the image");
    assert!(frames[0].child_sp < frames[1].child_sp && frames[1].child_sp < frames[2].child_sp);

    let src = source();
    let faulting = symbolizer.describe(fault).unwrap();
    assert!(fault > leaf, "the load follows the store to Sink");
    assert_eq!(faulting.to_string(), format!("symtest!Leaf+{:#x} [{src} @ {}]", fault - leaf, line_of("@fault")));
    assert_eq!(faulting.analyze_symbol(), format!("symtest!Leaf+{:x}", fault - leaf));
    assert_eq!(
        symbolizer.describe_return(in_middle).unwrap().to_string(),
        format!("symtest!Middle+{:#x} [{src} @ {}]", in_middle - middle, line_of("@middle"))
    );
    assert_eq!(
        symbolizer.describe_return(in_outer).unwrap().to_string(),
        format!("symtest!Outer+{:#x} [{src} @ {}]", in_outer - outer, line_of("@outer"))
    );

    let analysis = Analysis::new(&symbolizer, fault, &frames);
    let a = |x: u64| format!("{:08x}`{:08x}", x >> 32, x & 0xffff_ffff);
    let expected = format!(
        "FAULTING_IP: \n\
         symtest!Leaf+{leaf_off:x}\n\
         {fault_text}\n\
         \n\
         FAULTING_SOURCE_FILE:  {src}\n\
         \n\
         FAULTING_SOURCE_LINE_NUMBER:  {fault_line}\n\
         \n\
         STACK_TEXT:  \n\
         Child-SP          RetAddr           Call Site\n\
         {sp0} {ret0} symtest!Leaf+{leaf_off:#x} [{src} @ {fault_line}]\n\
         {sp1} {ret1} symtest!Middle+{middle_off:#x} [{src} @ {middle_line}]\n\
         {sp2} {ret2} symtest!Outer+{outer_off:#x} [{src} @ {outer_line}]\n\
         \n\
         SYMBOL_NAME:  symtest!Leaf+{leaf_off:x}\n\
         \n\
         MODULE_NAME:  symtest\n\
         \n\
         IMAGE_NAME:  symtest.sys\n\
         \n",
        leaf_off = fault - leaf,
        middle_off = in_middle - middle,
        outer_off = in_outer - outer,
        fault_text = a(fault),
        fault_line = line_of("@fault"),
        middle_line = line_of("@middle"),
        outer_line = line_of("@outer"),
        sp0 = a(frames[0].child_sp),
        sp1 = a(frames[1].child_sp),
        sp2 = a(frames[2].child_sp),
        ret0 = a(in_middle),
        ret1 = a(in_outer),
        // The return into the code that called the driver (the host's, not an
        // image's) is shown unknown: its host address moves from run to run.
        ret2 = a(0),
    );
    assert_eq!(analysis.text(), expected);

    assert_eq!(analysis.failure_bucket_id(0x8E).as_deref(), Some("0x8E_symtest!Leaf"));
    let pdb = built().sys.with_extension("pdb");
    let base = d.image().host_base();
    let end = base + u64::from(d.image().image().size_of_image);
    assert_eq!(
        lm_text(&symbolizer.modules()),
        format!(
            "start             end                 module name\n\
             {}   symtest    (private pdb symbols)  {}\n",
            format_args!("{} {}", a(base), a(end)),
            pdb.display()
        )
    );
    let json = serde_json::to_value(&analysis).unwrap();
    assert_eq!(json["stack"][1]["call_site"]["function"], "Middle");
    assert_eq!(json["stack"][1]["call_site"]["line"], line_of("@middle"));
}

/// llvm-symbolizer's function and line for each RVA (it reads the PDB the image names).
fn llvm_symbolizer(sys: &Path, rvas: &[u32]) -> Vec<Option<(String, u32)>> {
    let tool = ["llvm-symbolizer-19", "llvm-symbolizer"]
        .iter()
        .find(|t| std::process::Command::new(t).arg("--version").output().is_ok())
        .expect("llvm-symbolizer");
    let out = std::process::Command::new(tool)
        .arg(format!("--obj={}", sys.display()))
        .args(["--relative-address", "--no-inlines"])
        .args(rvas.iter().map(|r| format!("{r:#x}")))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let blocks: Vec<&str> = text.split("\n\n").filter(|b| !b.trim().is_empty()).collect();
    assert_eq!(blocks.len(), rvas.len(), "{text}");
    blocks
        .iter()
        .map(|b| {
            let mut lines = b.trim().lines();
            let function = lines.next()?;
            let line = lines.next()?.rsplit(':').nth(1)?.parse().ok()?;
            (function != "??" && line != 0).then(|| (function.to_owned(), line))
        })
        .collect()
}

#[test]
fn every_code_address_has_the_function_and_line_llvm_symbolizer_reads_from_the_same_pdb() {
    let b = built();
    let base = 0xFFFF_F880_0300_0000;
    let (symbols, problem) = ImageSymbols::load("symtest.sys", base, &b.bytes, Some(&b.sys)).unwrap();
    assert!(problem.is_none(), "{problem:?}");
    assert_eq!(symbols.status(), SymbolStatus::PrivatePdb);
    let mut s = Symbolizer::new();
    s.add(symbols);
    let image = ntmem_pe::DriverImage::parse(&b.bytes).unwrap();
    let text = image.sections.iter().find(|s| s.name == ".text").unwrap();
    let rvas: Vec<u32> = (text.virtual_address..text.virtual_address + text.virtual_size).collect();
    let expected = llvm_symbolizer(&b.sys, &rvas);
    // At a function's first byte clang records the function's opening line with no length
    // and the first statement's line at the same address: llvm-symbolizer reports the first,
    // ntmem the line whose bytes these are (Leaf's `Sink = k;`).
    let mut named = 0;
    for (rva, want) in rvas.iter().zip(expected) {
        let Some((function, line)) = want else { continue };
        let frame = s.describe(base + u64::from(*rva)).unwrap();
        assert_eq!(frame.function.as_deref(), Some(function.as_str()), "rva {rva:#x}");
        if frame.offset != 0 {
            assert_eq!(frame.line, Some(line), "rva {rva:#x}");
        }
        assert_eq!(frame.file.as_deref(), Some(source().as_str()));
        named += 1;
    }
    assert!(named > 40, "{named} addresses compared");
}

#[test]
fn without_its_pdb_an_image_is_named_by_its_exports_and_offsets() {
    let b = built();
    let base = 0xFFFF_F880_0300_0000;
    let symbols = ImageSymbols::new("symtest.sys", base, &b.bytes).unwrap();
    assert_eq!(symbols.status(), SymbolStatus::Export);
    let image = ntmem_pe::DriverImage::parse(&b.bytes).unwrap();
    let rva_of = |name: &str| match image.exports.iter().find(|e| e.name.as_deref() == Some(name)).unwrap().target {
        ExportTarget::Rva(rva) => u64::from(rva),
        ExportTarget::Forwarder(_) => unreachable!(),
    };
    let mut s = Symbolizer::new();
    s.add(symbols);
    let outer = base + rva_of("Outer");
    assert_eq!(s.describe(outer).unwrap().to_string(), "symtest!Outer");
    assert_eq!(s.describe(outer + 4).unwrap().to_string(), "symtest!Outer+0x4");
    // A static function has no export: the image base and offset name it.
    let leaf = image.functions.entries().iter().map(|f| u64::from(f.begin)).find(|&b| b != rva_of("Outer")).unwrap();
    assert_eq!(s.describe(base + leaf + 2).unwrap().to_string(), format!("symtest+{:#x}", leaf + 2));
    assert_eq!(s.describe(base - 1), None);
    assert_eq!(
        lm_text(&s.modules()),
        "start             end                 module name\n\
         fffff880`03000000 fffff880`03005000   symtest    (export symbols)       symtest.sys\n"
            .replace("03005000", &format!("{:08x}", (base + u64::from(image.size_of_image)) & 0xffff_ffff))
    );
}

#[test]
fn a_pdb_is_found_beside_a_moved_image_and_one_of_another_build_is_refused() {
    // Built, then moved: the path the image names no longer exists.
    let from = build("symbols-moving", "moved", "int Another(int x) { return x * 2; }\n");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("symbols-moved");
    std::fs::create_dir_all(&dir).unwrap();
    let (sys, pdb) = (dir.join("moved.sys"), dir.join("moved.pdb"));
    std::fs::rename(&from.sys, &sys).unwrap();
    std::fs::rename(from.sys.with_extension("pdb"), &pdb).unwrap();
    let (moved, problem) = ImageSymbols::load("moved.sys", 0x1000_0000, &from.bytes, Some(&sys)).unwrap();
    assert!(problem.is_none(), "{problem:?}");
    assert_eq!(
        (moved.status(), moved.pdb_path()),
        (SymbolStatus::PrivatePdb, Some(pdb.display().to_string().as_str()))
    );

    // The PDB of another build beside it: refused (GUID and age differ), export names kept.
    std::fs::copy(built().sys.with_extension("pdb"), &pdb).unwrap();
    let (refused, problem) = ImageSymbols::load("moved.sys", 0x1000_0000, &from.bytes, Some(&sys)).unwrap();
    assert!(matches!(problem, Some(SymbolError::PdbMismatch { .. })), "{problem:?}");
    assert_eq!(refused.status(), SymbolStatus::Export);
    let e = ImageSymbols::new("moved.sys", 0, &from.bytes).unwrap().with_pdb(std::fs::read(&pdb).unwrap(), &pdb);
    assert!(matches!(e, Err(SymbolError::PdbMismatch { .. })));
}

#[test]
fn a_damaged_pdb_is_an_error_or_fewer_names_never_a_panic() {
    let b = built();
    let path = b.sys.with_extension("pdb");
    let good = std::fs::read(&path).unwrap();
    let symbols = ImageSymbols::new("symtest.sys", 0x1000_0000, &b.bytes).unwrap();
    let mut outcomes = [0usize; 2];
    let damaged = (0..good.len()).step_by(61).flat_map(|at| {
        let mut flipped = good.clone();
        flipped[at] ^= 0xFF;
        let mut huge = good.clone();
        huge[at..].iter_mut().take(4).for_each(|b| *b = 0xFF);
        [flipped, huge, good[..at].to_vec()]
    });
    for bytes in damaged {
        outcomes[usize::from(symbols.clone().with_pdb(bytes, &path).is_ok())] += 1;
    }
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}

/// Memory whose every word is `word`, or none at all.
struct Words(Option<u64>);

impl ntmem_pe::ReadMemory for Words {
    fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), ntmem_pe::ReadError> {
        let word = self.0.ok_or(ntmem_pe::ReadError { address, len: buf.len() })?;
        for (i, b) in buf.iter_mut().enumerate() {
            *b = word.to_le_bytes()[(address as usize + i) % 8];
        }
        Ok(())
    }
}

#[test]
fn a_walk_over_a_bad_stack_is_bounded_and_reads_only_through_its_memory() {
    let b = built();
    let base = 0xFFFF_F880_0300_0000;
    let (symbols, _) = ImageSymbols::load("symtest.sys", base, &b.bytes, Some(&b.sys)).unwrap();
    let mut s = Symbolizer::new();
    s.add(symbols);
    let leaf =
        (base..base + 0x1000 * 4).find(|&a| s.describe(a).is_some_and(|f| f.symbol() == "symtest!Leaf")).unwrap();
    let mut context = Context { rip: leaf + 2, ..Context::default() };
    context.set_rsp(0x7000_0000);
    // Every return address leads back into Leaf, a leaf function: the walk stops at its bound.
    let frames = s.stack_walk(context, &Words(Some(leaf)));
    assert_eq!(frames.len(), ntmem_wdk::symbols::MAX_FRAMES);
    assert!(frames.windows(2).all(|w| w[1].child_sp == w[0].child_sp + 8 && w[0].return_address == Some(leaf)));
    // Nothing readable: the first frame, which could not be unwound.
    assert_eq!(
        s.stack_walk(context, &Words(None)),
        [StackFrame { child_sp: 0x7000_0000, ip: leaf + 2, return_address: None }]
    );
    // A context outside every image: no frame.
    assert_eq!(s.stack_walk(Context { rip: 0x1000, ..context }, &Words(Some(leaf))), []);
}

#[test]
fn an_image_with_a_coff_symbol_table_names_its_static_functions() {
    // The same driver linked with `/debug:symtab` (a COFF symbol table, no PDB), as a
    // plain lld-link run outside ntmem may do.
    let tc = Toolchain::find().unwrap();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("symbols-coff");
    std::fs::create_dir_all(&dir).unwrap();
    let (obj, lib, sys) = (dir.join("coff.obj"), dir.join("ntoskrnl.lib"), dir.join("coff.sys"));
    tc.compile(&built().source, &obj, &["-O2".into()]).unwrap();
    let imports = ImportLibrary {
        dll: "ntoskrnl.exe".into(),
        routines: vec!["SymbolsTestWalk".into(), "__C_specific_handler".into()],
        data: vec![],
    };
    tc.import_library(&imports, &lib).unwrap();
    let lld = ["lld-link-19", "lld-link"]
        .into_iter()
        .find(|t| std::process::Command::new(t).arg("--version").output().is_ok());
    let flags = ntmem_toolchain::LDFLAGS.iter().filter(|f| !f.starts_with("/debug"));
    let out = std::process::Command::new(lld.expect("lld-link"))
        .args(flags)
        .args(["/debug:symtab".as_ref(), obj.as_os_str(), lib.as_os_str()])
        .arg(format!("/out:{}", sys.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&sys).unwrap();
    let base = 0xFFFF_F880_0300_0000;
    let (symbols, problem) = ImageSymbols::load("coff.sys", base, &bytes, Some(&sys)).unwrap();
    assert!(problem.is_none() && symbols.pdb_path().is_none());
    assert_eq!(symbols.status(), SymbolStatus::Coff);
    let mut s = Symbolizer::new();
    s.add(symbols);
    // The PDB build's names, offsets and all, without lines.
    let (pdb_symbols, _) = ImageSymbols::load("coff.sys", base, &built().bytes, Some(&built().sys)).unwrap();
    let mut with_pdb = Symbolizer::new();
    with_pdb.add(pdb_symbols);
    let text = ntmem_pe::DriverImage::parse(&bytes).unwrap().sections.into_iter().find(|s| s.name == ".text").unwrap();
    let mut compared = 0;
    for rva in text.virtual_address..text.virtual_address + text.virtual_size {
        let address = base + u64::from(rva);
        let Some(want) = with_pdb.describe(address).filter(|f| f.function.is_some()) else { continue };
        assert_eq!(s.describe(address).unwrap().symbol(), want.symbol(), "rva {rva:#x}");
        compared += 1;
    }
    assert!(compared > 40);
    assert!(lm_text(&s.modules()).contains("   coff       (coff symbols)         coff.sys\n"));
}
