//! Driver code by name: the symbols of loaded driver images, stack walks over their
//! `.pdata`, and the pieces of WinDbg's `!analyze -v` and `lm` that name driver code
//! (issue 10 item 6).
//!
//! - [`ImageSymbols`]: one image's functions and, when its PDB is found, source lines.
//!   Debug information is CodeView in a PDB beside the image, as the WDK and
//!   `ntmem build` produce it (clang `-g -gcodeview`, `lld-link /debug`), read with the
//!   `pdb` crate and accepted only when its GUID and age match the image's CodeView
//!   debug directory entry (as WinDbg requires). Without one, names come from the
//!   image's COFF symbol table if it has one, else its export table; an address no
//!   name covers is `module+0xOFFSET`.
//! - [`Symbolizer`]: several images; [`Symbolizer::describe`] gives a [`Frame`]
//!   (`mydrv!DriverEntry+0x1c [c:\src\mydrv.c @ 42]`), [`Symbolizer::stack_walk`]
//!   unwinds a context frame by frame with each image's `.pdata` (`RtlVirtualUnwind`
//!   semantics, [`ntmem_pe::unwind`]) through a [`ReadMemory`], so it never faults.
//! - [`Analysis`] and [`Symbolizer::modules`]: `FAULTING_IP`, `FAULTING_SOURCE_*`,
//!   `STACK_TEXT`, `SYMBOL_NAME`, `MODULE_NAME`, `IMAGE_NAME` and the `lm` list, as
//!   plain values (serialisable) and WinDbg-shaped text.
//!
//! How a report uses it:
//! 1. At the stop, while the stopped thread's kernel stack is still mapped, the WDK
//!    boundary walks it (`except::note_stop_stack`): from the faulting CONTEXT in the
//!    dispatcher's unhandled path, or from the driver's context at its import call for
//!    a stop an ntmem routine makes. The escape to `Machine::run` carries only words,
//!    so the frames go to the machine as a note (`ntmem_kernel::bugcheck::
//!    note_stop_stack`) that it attaches to its stop record (`BugCheck::stack`).
//! 2. `ntmem run` keeps a [`Symbolizer`] of the images it loaded (with the PDB its
//!    build wrote, or the one beside a `.sys`), and names the stop with
//!    [`Analysis::new`] (a faulting instruction) or [`Analysis::at_call`] (a stop a
//!    routine made), printing [`Analysis::text`], [`Analysis::failure_bucket_id`] and
//!    [`lm_text`] in the report and putting both in its JSON.
//!
//! Addresses are those the code runs at (host addresses: the simulated ones plus the
//! address space's relocation, zero unless the layout was moved).
//!
//! Where ntmem differs from WinDbg: no disassembly after the `FAULTING_IP` address and
//! no argument columns in `STACK_TEXT` (the `k` command's shape); a symbol of unknown
//! size (an export) names only the function it begins (by `.pdata`), where WinDbg names
//! the nearest preceding export at any distance; inline frames are not shown; a
//! function's first byte has the line of the statement whose code it is, not the
//! function's opening line that clang records there with no length.
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use ntmem_pe::unwind::{unwind_leaf, virtual_unwind, Context, UnwindFlags};
use ntmem_pe::{DriverImage, ExportTarget, ImageError, ReadMemory, RuntimeFunction};
use object::read::pe::PeFile64;
use object::{Object as _, ObjectSymbol as _, SymbolKind};
use pdb::FallibleIterator as _;

/// The most frames [`Symbolizer::stack_walk`] returns (a bound for a corrupt stack).
pub const MAX_FRAMES: usize = 64;

/// Why symbols could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SymbolError {
    /// The image is not a valid driver image.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The PDB could not be read.
    #[error("{path}: {error}")]
    Pdb {
        /// The PDB file.
        path: String,
        /// What the reader said.
        error: String,
    },
    /// The PDB belongs to another build (GUID or age differ from the image's CodeView
    /// entry; WinDbg refuses such a PDB too).
    #[error("{path} does not match the image (image {image}, PDB {pdb})")]
    PdbMismatch {
        /// The PDB file.
        path: String,
        /// The image's `GUID age`.
        image: String,
        /// The PDB's `GUID age`.
        pdb: String,
    },
}

/// What symbols an image has, as `lm` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SymbolStatus {
    /// Its PDB was read: functions and source lines (`(private pdb symbols)`).
    PrivatePdb,
    /// Function names from its COFF symbol table (`(coff symbols)`).
    Coff,
    /// Names from its export table only (`(export symbols)`).
    Export,
    /// No names at all (`(no symbols)`).
    None,
}

impl SymbolStatus {
    /// The text of `lm`'s symbol column.
    pub fn lm_text(self) -> &'static str {
        match self {
            SymbolStatus::PrivatePdb => "(private pdb symbols)",
            SymbolStatus::Coff => "(coff symbols)",
            SymbolStatus::Export => "(export symbols)",
            SymbolStatus::None => "(no symbols)",
        }
    }
}

/// A named function: `rva..rva + len` (`len` 0: extent unknown, an export, COFF or
/// public symbol).
#[derive(Debug, Clone)]
struct Function {
    rva: u32,
    len: u32,
    name: String,
}

/// A line-table entry: code at `rva..rva + len` (`len` unknown: to the function's end).
#[derive(Debug, Clone, Copy)]
struct Line {
    rva: u32,
    len: Option<u32>,
    file: usize,
    line: u32,
}

/// What a PDB gives: functions, lines and the files lines name.
type PdbSymbols = (Vec<Function>, Vec<Line>, Vec<String>);

/// The image's CodeView debug directory entry (RSDS): which PDB it was linked with.
#[derive(Debug, Clone)]
struct CodeView {
    guid: [u8; 16],
    age: u32,
    path: String,
}

/// A GUID in its registry form with the age, as `!lmi` shows a PDB's identity.
fn guid_age(guid: &[u8; 16], age: u32) -> String {
    let d1 = u32::from_le_bytes([guid[0], guid[1], guid[2], guid[3]]);
    let d2 = u16::from_le_bytes([guid[4], guid[5]]);
    let d3 = u16::from_le_bytes([guid[6], guid[7]]);
    let tail: String = guid[8..].iter().map(|b| format!("{b:02X}")).collect();
    format!("{{{d1:08X}-{d2:04X}-{d3:04X}-{}-{}}} {age}", &tail[..4], &tail[4..])
}

/// The symbols of one loaded image.
#[derive(Debug, Clone)]
pub struct ImageSymbols {
    image_name: String,
    base: u64,
    image: DriverImage,
    codeview: Option<CodeView>,
    functions: Vec<Function>,
    lines: Vec<Line>,
    files: Vec<String>,
    status: SymbolStatus,
    pdb_path: Option<String>,
}

impl ImageSymbols {
    /// The image `file` loaded as `name` (`mydrv.sys`) at `base`, named from its COFF
    /// symbol table when it has one (`lld-link /debug:symtab`, MinGW's linker), else from
    /// its export table (see [`ImageSymbols::with_pdb`] for debug information).
    ///
    /// # Errors
    /// [`SymbolError::Image`] when `file` is not a driver image.
    pub fn new(name: &str, base: u64, file: &[u8]) -> Result<Self, SymbolError> {
        let image = DriverImage::parse(file)?;
        // A malformed debug directory or symbol table only means fewer symbols.
        let pe = PeFile64::parse(file).ok();
        let codeview = pe.as_ref().and_then(|pe| {
            let cv = pe.pdb_info().ok()??;
            Some(CodeView { guid: cv.guid(), age: cv.age(), path: String::from_utf8_lossy(cv.path()).into_owned() })
        });
        let in_image = |address: u64| {
            let rva = u32::try_from(address.checked_sub(image.image_base)?).ok()?;
            (rva < image.size_of_image).then_some(rva)
        };
        let coff: Vec<Function> = pe.as_ref().map_or_else(Vec::new, |pe| {
            pe.symbols()
                .filter(|s| s.kind() == SymbolKind::Text && s.is_definition())
                .filter_map(|s| Some(Function { rva: in_image(s.address())?, len: 0, name: s.name().ok()?.to_owned() }))
                .collect()
        });
        let (mut functions, status) = if coff.is_empty() {
            let exports: Vec<Function> = image
                .exports
                .iter()
                .filter_map(|e| match (&e.name, &e.target) {
                    (Some(name), ExportTarget::Rva(rva)) => Some(Function { rva: *rva, len: 0, name: name.clone() }),
                    _ => None,
                })
                .collect();
            let status = if exports.is_empty() { SymbolStatus::None } else { SymbolStatus::Export };
            (exports, status)
        } else {
            (coff, SymbolStatus::Coff)
        };
        functions.sort_by_key(|f| f.rva);
        Ok(ImageSymbols {
            image_name: name.to_owned(),
            base,
            image,
            codeview,
            functions,
            lines: Vec::new(),
            files: Vec::new(),
            status,
            pdb_path: None,
        })
    }

    /// These symbols with the functions and lines of the PDB `bytes` read from `path`.
    ///
    /// The `pdb` crate (0.8) can panic on damaged input (a debug assertion in its line
    /// iterator, found by this module's tests; its address map, which ntmem does not use,
    /// overflows too): its reading is fenced with `catch_unwind`, and such a PDB is an
    /// error like any unreadable one.
    ///
    /// # Errors
    /// [`SymbolError::PdbMismatch`] when the PDB is not the one the image names (or the
    /// image names none); [`SymbolError::Pdb`] when it cannot be read.
    pub fn with_pdb(mut self, bytes: Vec<u8>, path: &Path) -> Result<Self, SymbolError> {
        let shown = path.display().to_string();
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.read_pdb(bytes, &shown)));
        let (functions, lines, files) = match read {
            Ok(read) => read?,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned());
                let error = format!("damaged: the PDB reader stopped ({})", what.unwrap_or_default());
                return Err(SymbolError::Pdb { path: shown, error });
            }
        };
        self.functions = functions;
        self.lines = lines;
        self.files = files;
        self.status = SymbolStatus::PrivatePdb;
        self.pdb_path = Some(shown);
        Ok(self)
    }

    /// The functions, lines and files of the PDB `bytes` (shown as `shown`), when it is the
    /// image's.
    fn read_pdb(&self, bytes: Vec<u8>, shown: &str) -> Result<PdbSymbols, SymbolError> {
        let fail = |error: pdb::Error| SymbolError::Pdb { path: shown.to_owned(), error: error.to_string() };
        let mut pdb = pdb::PDB::open(std::io::Cursor::new(bytes)).map_err(fail)?;
        let info = pdb.pdb_information().map_err(fail)?;
        let dbi = pdb.debug_information().map_err(fail)?;
        let age = dbi.age().unwrap_or(info.age);
        let guid = info.guid.to_bytes_le();
        match &self.codeview {
            Some(cv) if cv.guid == guid && cv.age == age => {}
            cv => {
                return Err(SymbolError::PdbMismatch {
                    path: shown.to_owned(),
                    image: cv.as_ref().map_or_else(|| "no CodeView entry".into(), |cv| guid_age(&cv.guid, cv.age)),
                    pdb: guid_age(&guid, age),
                })
            }
        }
        // Without a names stream there are no file names; functions still count.
        let strings = pdb.string_table().ok();
        let mut functions = Vec::new();
        let mut lines = Vec::new();
        let mut files: Vec<String> = Vec::new();
        let mut file_index: HashMap<String, usize> = HashMap::new();
        let mut modules = dbi.modules().map_err(fail)?;
        while let Some(module) = modules.next().map_err(fail)? {
            let Some(module) = pdb.module_info(&module).map_err(fail)? else { continue };
            let mut symbols = module.symbols().map_err(fail)?;
            while let Some(symbol) = symbols.next().map_err(fail)? {
                if let Ok(pdb::SymbolData::Procedure(p)) = symbol.parse() {
                    if let Some(rva) = self.rva_of(p.offset) {
                        functions.push(Function { rva, len: p.len, name: p.name.to_string().into_owned() });
                    }
                }
            }
            let program = module.line_program().map_err(fail)?;
            let mut entries = program.lines();
            while let Some(entry) = entries.next().map_err(fail)? {
                // An entry that covers no byte (clang's record of a function's opening line
                // when the function has no prologue) names no code.
                let Some(rva) = self.rva_of(entry.offset).filter(|_| entry.length != Some(0)) else { continue };
                let name = program
                    .get_file_info(entry.file_index)
                    .ok()
                    .and_then(|f| Some(f.name.to_string_lossy(strings.as_ref()?).ok()?.into_owned()))
                    .unwrap_or_else(|| "?".into());
                let file = *file_index.entry(name).or_insert_with_key(|name| {
                    files.push(name.clone());
                    files.len() - 1
                });
                lines.push(Line { rva, len: entry.length, file, line: entry.line_start });
            }
        }
        // Public function symbols name what has no procedure record (assembly).
        functions.sort_by_key(|f| f.rva);
        let mut publics = Vec::new();
        let globals = pdb.global_symbols().map_err(fail)?;
        let mut symbols = globals.iter();
        while let Some(symbol) = symbols.next().map_err(fail)? {
            if let Ok(pdb::SymbolData::Public(p)) = symbol.parse() {
                let rva = self.rva_of(p.offset);
                if let Some(rva) =
                    rva.filter(|&rva| p.function && functions.binary_search_by_key(&rva, |f| f.rva).is_err())
                {
                    publics.push(Function { rva, len: 0, name: p.name.to_string().into_owned() });
                }
            }
        }
        functions.append(&mut publics);
        functions.sort_by_key(|f| f.rva);
        lines.sort_by_key(|l| l.rva);
        lines.dedup_by_key(|l| l.rva);
        Ok((functions, lines, files))
    }

    /// The image in `file`, as [`ImageSymbols::new`], with its PDB when one that matches
    /// is found: at the path its CodeView entry names, else beside `sys` (the `.sys` file)
    /// under that entry's file name or the image's own stem. The second value says why a
    /// PDB was not used (none found, or one that did not match or could not be read).
    ///
    /// # Errors
    /// [`SymbolError::Image`] when `file` is not a driver image.
    pub fn load(
        name: &str,
        base: u64,
        file: &[u8],
        sys: Option<&Path>,
    ) -> Result<(Self, Option<SymbolError>), SymbolError> {
        let symbols = ImageSymbols::new(name, base, file)?;
        let mut problem = None;
        for path in symbols.pdb_candidates(sys) {
            let Ok(bytes) = std::fs::read(&path) else { continue };
            match symbols.clone().with_pdb(bytes, &path) {
                Ok(with) => return Ok((with, None)),
                Err(e) => problem = problem.or(Some(e)),
            }
        }
        Ok((symbols, problem))
    }

    /// The RVA of a PDB `section:offset`, through the image's own section table (the PDB
    /// was matched to this image; lld writes no OMAP, the address map of images rewritten
    /// after linking, which ntmem does not read).
    fn rva_of(&self, at: pdb::PdbInternalSectionOffset) -> Option<u32> {
        let section = self.image.sections.get(usize::from(at.section).checked_sub(1)?)?;
        let rva = section.virtual_address.checked_add(at.offset)?;
        (at.offset < section.virtual_size.max(section.raw_size) && rva < self.image.size_of_image).then_some(rva)
    }

    /// Where [`ImageSymbols::load`] looks for the PDB, in order.
    fn pdb_candidates(&self, sys: Option<&Path>) -> Vec<PathBuf> {
        let mut paths = Vec::new();
        let named = self.codeview.as_ref().map(|cv| cv.path.as_str()).filter(|p| !p.is_empty());
        if let Some(p) = named {
            paths.push(PathBuf::from(p));
        }
        if let Some(dir) = sys.and_then(Path::parent) {
            // A Windows path's file name (`C:\src\x64\Release\mydrv.pdb`).
            if let Some(file) = named.and_then(|p| p.rsplit(['\\', '/']).next()).filter(|f| !f.is_empty()) {
                paths.push(dir.join(file));
            }
            if let Some(stem) = sys.and_then(Path::file_stem) {
                paths.push(dir.join(stem).with_extension("pdb"));
            }
        }
        paths.dedup();
        paths
    }

    /// The image's file name (`mydrv.sys`), `IMAGE_NAME`.
    pub fn image_name(&self) -> &str {
        &self.image_name
    }

    /// The module name WinDbg shows: the file name without its extension (`mydrv`).
    pub fn module_name(&self) -> &str {
        self.image_name.rsplit_once('.').map_or(&self.image_name, |(stem, _)| stem)
    }

    /// The address the image is mapped at.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// One past the image's last byte (base + SizeOfImage).
    pub fn end(&self) -> u64 {
        self.base.saturating_add(u64::from(self.image.size_of_image))
    }

    /// Which symbols were found.
    pub fn status(&self) -> SymbolStatus {
        self.status
    }

    /// The PDB read, if any.
    pub fn pdb_path(&self) -> Option<&str> {
        self.pdb_path.as_deref()
    }

    /// Whether `address` is inside the image.
    pub fn contains(&self, address: u64) -> bool {
        address.wrapping_sub(self.base) < u64::from(self.image.size_of_image)
    }

    /// The function containing image offset `rva`: its name and start.
    fn function_at(&self, rva: u32) -> Option<&Function> {
        let i = self.functions.partition_point(|f| f.rva <= rva).checked_sub(1)?;
        let f = &self.functions[i];
        if f.len != 0 {
            return (rva - f.rva < f.len).then_some(f);
        }
        // A symbol of unknown size (export, COFF or public symbol): its extent is the `.pdata` function it begins, or,
        // for a leaf without an entry, up to the next entry in the same section.
        let table = &self.image.functions;
        match table.lookup(rva) {
            Some(entry) => (entry.begin == f.rva).then_some(f),
            None => {
                let section = self.image.section_at(rva)?;
                let entries = table.entries();
                let next_entry = entries.get(entries.partition_point(|e| e.begin <= f.rva)).map(|e| e.begin);
                let leaf = table.lookup(f.rva).is_none() && next_entry.is_none_or(|b| b > rva);
                (leaf && section.contains(f.rva)).then_some(f)
            }
        }
    }

    /// The source line of image offset `rva`.
    fn line_at(&self, rva: u32) -> Option<(&str, u32)> {
        let i = self.lines.partition_point(|l| l.rva <= rva).checked_sub(1)?;
        let l = self.lines[i];
        let inside = match l.len {
            Some(len) => rva - l.rva < len,
            None => self.function_at(rva).is_some_and(|f| self.function_at(l.rva).is_some_and(|g| g.rva == f.rva)),
        };
        inside.then(|| (self.files[l.file].as_str(), l.line))
    }

    /// `address` in this image, or `None` outside it. `return_address`: the address is
    /// where a call returns, so its source line is the call's (the byte before).
    fn describe(&self, address: u64, return_address: bool) -> Option<Frame> {
        if !self.contains(address) {
            return None;
        }
        let rva = u32::try_from(address - self.base).ok()?;
        let function = self.function_at(rva);
        let line_rva = if return_address { rva.saturating_sub(1) } else { rva };
        let line = self.line_at(line_rva);
        Some(Frame {
            address,
            module: self.module_name().to_owned(),
            image: self.image_name.clone(),
            function: function.map(|f| f.name.clone()),
            offset: u64::from(rva - function.map_or(0, |f| f.rva)),
            file: line.map(|(f, _)| f.to_owned()),
            line: line.map(|(_, l)| l),
        })
    }
}

/// An address named: `module!Function+0xOFFSET [file @ line]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Frame {
    /// The address.
    pub address: u64,
    /// The module (`mydrv`).
    pub module: String,
    /// The image file (`mydrv.sys`).
    pub image: String,
    /// The function, when a symbol covers the address.
    pub function: Option<String>,
    /// Offset from the function's start, or from the image base when there is none.
    pub offset: u64,
    /// The source file, with debug information.
    pub file: Option<String>,
    /// The source line, with debug information.
    pub line: Option<u32>,
}

impl Frame {
    /// `module!Function+0x1c` (`module+0x1c` with no function; no `+0x0` at a function's
    /// start), as `k` and `ln` show it.
    pub fn symbol(&self) -> String {
        self.name_with(|o| format!("{o:#x}"))
    }

    /// `module!Function+1c`, as `!analyze`'s `SYMBOL_NAME` shows it (hex without `0x`).
    pub fn analyze_symbol(&self) -> String {
        self.name_with(|o| format!("{o:x}"))
    }

    fn name_with(&self, offset: impl Fn(u64) -> String) -> String {
        match &self.function {
            Some(f) if self.offset == 0 => format!("{}!{f}", self.module),
            Some(f) => format!("{}!{f}+{}", self.module, offset(self.offset)),
            None => format!("{}+{}", self.module, offset(self.offset)),
        }
    }

    /// `[file @ line]`, when known.
    pub fn source(&self) -> Option<String> {
        Some(format!("[{} @ {}]", self.file.as_ref()?, self.line?))
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.symbol())?;
        match self.source() {
            Some(source) => write!(f, " {source}"),
            None => Ok(()),
        }
    }
}

pub use ntmem_kernel::StackFrame;

/// The frames from `context` outward, unwound with the functions `lookup` finds: for a
/// PC in an image, the image's base and the `.pdata` entry of the function holding it
/// (`None`: a leaf function, whose return address is at RSP), or `None` outside every
/// image. The first frame is the context's; each next is its caller's. The walk stops
/// after the first frame that returns outside every image (its
/// [`StackFrame::return_address`] is that address), when a frame cannot be unwound
/// (unreadable memory, bad unwind data, a stack pointer that does not grow) or at
/// [`MAX_FRAMES`]. A context outside every image gives no frame. Memory is read only
/// through `memory`, so a corrupt stack ends the walk instead of faulting.
///
/// The dispatcher can walk the registered images at a stop, before the stack is gone:
/// `walk(context, &except::images::Memory, |pc| except::images::lookup(pc).map(|f|
/// (f.base, f.function.map(|(entry, _)| entry))))`.
pub fn walk(
    context: Context,
    memory: &impl ReadMemory,
    lookup: impl Fn(u64) -> Option<(u64, Option<RuntimeFunction>)>,
) -> Vec<StackFrame> {
    let mut context = context;
    let mut frames = Vec::new();
    while frames.len() < MAX_FRAMES {
        let Some((base, function)) = lookup(context.rip) else { break };
        let (child_sp, ip) = (context.rsp(), context.rip);
        let unwound = match function {
            Some(entry) => virtual_unwind(UnwindFlags::empty(), base, &entry, &mut context, memory).map(drop),
            None => unwind_leaf(&mut context, memory),
        };
        let return_address = (unwound.is_ok() && context.rsp() > child_sp).then_some(context.rip);
        frames.push(StackFrame { child_sp, ip, return_address });
        if return_address.is_none() {
            break;
        }
    }
    frames
}

/// The images of a run, for naming addresses and walking stacks.
#[derive(Debug, Clone, Default)]
pub struct Symbolizer {
    images: Vec<ImageSymbols>,
}

impl Symbolizer {
    /// No images yet.
    pub fn new() -> Self {
        Symbolizer::default()
    }

    /// Adds an image.
    pub fn add(&mut self, image: ImageSymbols) {
        self.images.push(image);
    }

    /// The image containing `address`.
    pub fn image_at(&self, address: u64) -> Option<&ImageSymbols> {
        self.images.iter().find(|i| i.contains(address))
    }

    /// `address` named, or `None` outside every image.
    pub fn describe(&self, address: u64) -> Option<Frame> {
        self.image_at(address)?.describe(address, false)
    }

    /// Return address `address` named: the name and offset of the address itself (as
    /// WinDbg shows a caller's frame), the source line of the call before it.
    pub fn describe_return(&self, address: u64) -> Option<Frame> {
        self.image_at(address)?.describe(address, true)
    }

    /// The frames from `context` outward over these images ([`walk`]).
    pub fn stack_walk(&self, context: Context, memory: &impl ReadMemory) -> Vec<StackFrame> {
        walk(context, memory, |pc| {
            let image = self.image_at(pc)?;
            let rva = u32::try_from(pc - image.base).ok()?;
            Some((image.base, image.image.functions.lookup(rva).copied()))
        })
    }

    /// The loaded images, as `lm` lists them.
    pub fn modules(&self) -> Vec<Module> {
        self.images
            .iter()
            .map(|i| Module {
                start: i.base(),
                end: i.end(),
                module: i.module_name().to_owned(),
                image: i.image_name().to_owned(),
                symbols: i.status(),
                pdb: i.pdb_path().map(str::to_owned),
            })
            .collect()
    }
}

/// A 64-bit address as WinDbg prints it: `fffff880`03c01005`.
pub fn address_text(address: u64) -> String {
    format!("{:08x}`{:08x}", address >> 32, address & 0xffff_ffff)
}

/// One row of `lm`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Module {
    /// The image base.
    pub start: u64,
    /// One past its last byte.
    pub end: u64,
    /// The module name (`mydrv`).
    pub module: String,
    /// The image file name (`mydrv.sys`).
    pub image: String,
    /// Which symbols were found.
    pub symbols: SymbolStatus,
    /// The PDB read, if any.
    pub pdb: Option<String>,
}

/// `lm`'s list:
/// ```text
/// start             end                 module name
/// fffff880`03c00000 fffff880`03c07000   mydrv      (private pdb symbols)  c:\src\mydrv.pdb
/// ```
/// (the last column is the PDB, or the image for COFF and export symbols).
pub fn lm_text(modules: &[Module]) -> String {
    let mut out = String::from("start             end                 module name\n");
    for m in modules {
        let path = match m.symbols {
            SymbolStatus::PrivatePdb => m.pdb.as_deref().unwrap_or(""),
            SymbolStatus::Coff | SymbolStatus::Export => &m.image,
            SymbolStatus::None => "",
        };
        let row = format!(
            "{} {}   {:<10} {:<22} {path}",
            address_text(m.start),
            address_text(m.end),
            m.module,
            m.symbols.lm_text()
        );
        let _ = writeln!(out, "{}", row.trim_end());
    }
    out
}

/// One `STACK_TEXT` row: `Child-SP`, `RetAddr` and the call site, named.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StackRow {
    /// The frame's RSP.
    pub child_sp: u64,
    /// Where it returns (0 when unknown, as WinDbg prints it, and when it is ntmem's
    /// own code rather than an image's).
    pub return_address: u64,
    /// The frame's instruction, named (`None` outside every image).
    pub call_site: Option<Frame>,
    /// The frame's instruction.
    pub ip: u64,
}

impl StackRow {
    /// `fffff880`0335f6e8 fffff880`03c01042 mydrv!Outer+0x12 [c:\src\mydrv.c @ 9]`.
    pub fn text(&self) -> String {
        let site = self.call_site.as_ref().map_or_else(|| format!("0x{}", address_text(self.ip)), Frame::to_string);
        format!("{} {} {site}", address_text(self.child_sp), address_text(self.return_address))
    }
}

/// The symbol-dependent part of `!analyze -v` for a stop in driver code.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Analysis {
    /// The faulting instruction.
    pub faulting_ip: u64,
    /// It, named (`None` outside every image).
    pub faulting_frame: Option<Frame>,
    /// The walked stack.
    pub stack: Vec<StackRow>,
    /// `SYMBOL_NAME`: the faulting function (`mydrv!Inner+5`).
    pub symbol_name: Option<String>,
    /// `MODULE_NAME` (`mydrv`).
    pub module_name: Option<String>,
    /// `IMAGE_NAME` (`mydrv.sys`).
    pub image_name: Option<String>,
}

impl Analysis {
    /// The analysis of a stop at `faulting_ip` with the stack `frames`
    /// ([`Symbolizer::stack_walk`]).
    pub fn new(symbolizer: &Symbolizer, faulting_ip: u64, frames: &[StackFrame]) -> Self {
        Analysis::with(symbolizer, faulting_ip, frames, false)
    }

    /// The analysis of a stop a routine made for the driver that called it (a pool
    /// routine's 0xC2): every frame of `frames`, the first included, is a return
    /// address in the driver, named as such (the line is the call's); the first is
    /// where the analysis points.
    pub fn at_call(symbolizer: &Symbolizer, frames: &[StackFrame]) -> Option<Self> {
        Some(Analysis::with(symbolizer, frames.first()?.ip, frames, true))
    }

    fn with(symbolizer: &Symbolizer, faulting_ip: u64, frames: &[StackFrame], at_call: bool) -> Self {
        let name = |i: usize, ip: u64| {
            if i == 0 && !at_call {
                symbolizer.describe(ip)
            } else {
                symbolizer.describe_return(ip)
            }
        };
        let faulting_frame = name(0, faulting_ip);
        let stack = frames
            .iter()
            .enumerate()
            .map(|(i, f)| StackRow {
                child_sp: f.child_sp,
                // A return into ntmem's own code (the routine that called the driver's
                // outermost frame) has a host address, which moves with the host's
                // address space randomisation: unknown, as WinDbg prints one.
                return_address: f.return_address.filter(|&r| symbolizer.image_at(r).is_some()).unwrap_or(0),
                call_site: name(i, f.ip),
                ip: f.ip,
            })
            .collect();
        Analysis {
            faulting_ip,
            symbol_name: faulting_frame.as_ref().map(Frame::analyze_symbol),
            module_name: faulting_frame.as_ref().map(|f| f.module.clone()),
            image_name: faulting_frame.as_ref().map(|f| f.image.clone()),
            faulting_frame,
            stack,
        }
    }

    /// `FAILURE_BUCKET_ID` for bugcheck `code` when the faulting function is known:
    /// `0xE6_mydma!CompleteTransfer` (research note `dma-verifier-views.md` §5.6).
    pub fn failure_bucket_id(&self, code: u32) -> Option<String> {
        let frame = self.faulting_frame.as_ref()?;
        Some(format!("0x{code:X}_{}!{}", frame.module, frame.function.as_ref()?))
    }

    /// The `FAULTING_IP:` block: the name, then the address.
    pub fn faulting_ip_text(&self) -> String {
        let name = self.faulting_frame.as_ref().map_or(Cow::Borrowed(""), |f| Cow::Owned(f.analyze_symbol()));
        format!("FAULTING_IP: \n{name}\n{}\n", address_text(self.faulting_ip))
    }

    /// `STACK_TEXT:` with its column header and one row per frame.
    pub fn stack_text(&self) -> String {
        let mut out = String::from("STACK_TEXT:  \nChild-SP          RetAddr           Call Site\n");
        for row in &self.stack {
            let _ = writeln!(out, "{}", row.text());
        }
        out
    }

    /// The fields in `!analyze -v`'s order: FAULTING_IP, FAULTING_SOURCE_* (with a
    /// source line), STACK_TEXT, SYMBOL_NAME, MODULE_NAME, IMAGE_NAME; each followed by
    /// a blank line, as WinDbg separates them.
    pub fn text(&self) -> String {
        let mut out = self.faulting_ip_text();
        out.push('\n');
        if let Some(Frame { file: Some(file), line: Some(line), .. }) = &self.faulting_frame {
            let _ = writeln!(out, "FAULTING_SOURCE_FILE:  {file}\n");
            let _ = writeln!(out, "FAULTING_SOURCE_LINE_NUMBER:  {line}\n");
        }
        out.push_str(&self.stack_text());
        out.push('\n');
        for (key, value) in
            [("SYMBOL_NAME", &self.symbol_name), ("MODULE_NAME", &self.module_name), ("IMAGE_NAME", &self.image_name)]
        {
            if let Some(value) = value {
                let _ = writeln!(out, "{key}:  {value}\n");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: Option<&str>, offset: u64, line: Option<u32>) -> Frame {
        Frame {
            address: 0xFFFF_F880_0300_1234,
            module: "mydrv".into(),
            image: "mydrv.sys".into(),
            function: function.map(str::to_owned),
            offset,
            file: line.map(|_| r"c:\src\mydrv.c".to_owned()),
            line,
        }
    }

    #[test]
    fn names_read_as_windbg_prints_them() {
        assert_eq!(address_text(0xFFFF_F880_0300_1234), "fffff880`03001234");
        assert_eq!(address_text(0x1000), "00000000`00001000");
        assert_eq!(
            frame(Some("DriverEntry"), 0x1c, Some(42)).to_string(),
            r"mydrv!DriverEntry+0x1c [c:\src\mydrv.c @ 42]"
        );
        assert_eq!(frame(Some("DriverEntry"), 0x1c, None).analyze_symbol(), "mydrv!DriverEntry+1c");
        assert_eq!(frame(Some("DriverEntry"), 0, None).to_string(), "mydrv!DriverEntry");
        assert_eq!(frame(None, 0x1234, None).to_string(), "mydrv+0x1234");
        let guid = [0xA0, 0x38, 0x6D, 0xC7, 0x4A, 0x95, 0xDF, 0xCA, 0x4C, 0x4C, 0x44, 0x20, 0x50, 0x44, 0x42, 0x2E];
        assert_eq!(guid_age(&guid, 1), "{C76D38A0-954A-CADF-4C4C-44205044422E} 1");
    }

    #[test]
    fn lm_and_stack_rows_keep_windbg_columns() {
        let modules = [
            Module {
                start: 0xFFFF_F880_0300_0000,
                end: 0xFFFF_F880_0300_7000,
                module: "mydrv".into(),
                image: "mydrv.sys".into(),
                symbols: SymbolStatus::None,
                pdb: None,
            },
            Module {
                start: 0xFFFF_F880_0301_0000,
                end: 0xFFFF_F880_0301_5000,
                module: "other".into(),
                image: "other.sys".into(),
                symbols: SymbolStatus::PrivatePdb,
                pdb: Some("/b/other.pdb".into()),
            },
        ];
        assert_eq!(
            lm_text(&modules),
            "start             end                 module name\n\
             fffff880`03000000 fffff880`03007000   mydrv      (no symbols)\n\
             fffff880`03010000 fffff880`03015000   other      (private pdb symbols)  /b/other.pdb\n"
        );
        let row =
            StackRow { child_sp: 0xFFFF_F880_0335_F6E8, return_address: 0, call_site: None, ip: 0x5555_0000_1000 };
        assert_eq!(row.text(), "fffff880`0335f6e8 00000000`00000000 0x00005555`00001000");
        let empty = Analysis::new(&Symbolizer::new(), 0x10, &[]);
        assert_eq!(
            empty.text(),
            "FAULTING_IP: \n\n00000000`00000010\n\nSTACK_TEXT:  \nChild-SP          RetAddr           Call Site\n\n"
        );
    }
}
