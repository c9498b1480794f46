//! A driver image: the PE32+ headers, sections, relocations, imports, exports and exception
//! directory of a `.sys` file, validated before anything is mapped.
//!
//! "PE Format" (learn.microsoft.com/windows/win32/debug/pe-format) gives the layout; the
//! checks are the ones Windows' loader makes before mapping (research note §6.1 step 2:
//! machine and magic) plus the bounds every later step relies on, so that the loader never
//! indexes past what it was given. Headers are read with the `object` crate.

use object::pe;
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile64};
use object::LittleEndian as LE;

use crate::imports::{read_exports, read_imports, Export, ImportedDll};
use crate::pdata::{FunctionTable, PdataError};
use crate::reloc::{self, BaseRelocation, RelocError, IMAGE_REL_BASED_ABSOLUTE, IMAGE_REL_BASED_DIR64};
use crate::section::{Section, SectionFlags};

/// The largest SizeOfImage ntmem maps (512 MB). Windows' own limit is the free system PTE
/// space; this bound keeps a hostile header from asking the host for gigabytes.
pub const MAX_IMAGE_SIZE: u32 = 512 << 20;

/// IMAGE_FILE_MACHINE_AMD64.
const MACHINE_AMD64: u16 = 0x8664;

/// Why an image cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// The `object` crate could not read the headers or a directory (not a PE32+ file,
    /// truncated, an RVA no section holds, …).
    #[error("malformed PE image: {0}")]
    Malformed(#[from] object::read::Error),
    /// FileHeader.Machine is not IMAGE_FILE_MACHINE_AMD64 (Windows: STATUS_INVALID_IMAGE_FORMAT).
    #[error("machine {0:#06x} is not AMD64 (0x8664)")]
    Machine(u16),
    /// SizeOfImage is 0, above [`MAX_IMAGE_SIZE`], or not a multiple of SectionAlignment.
    #[error("SizeOfImage {0:#x} is not a loadable size")]
    SizeOfImage(u32),
    /// SectionAlignment or FileAlignment is not a power of two, or FileAlignment exceeds it.
    #[error("alignments (section {section:#x}, file {file:#x}) are not powers of two with file ≤ section")]
    Alignment {
        /// SectionAlignment.
        section: u32,
        /// FileAlignment.
        file: u32,
    },
    /// SizeOfHeaders reaches past the file or the image.
    #[error("SizeOfHeaders {0:#x} reaches past the file or the image")]
    Headers(u32),
    /// A section header is not usable.
    #[error("section {index} ({name}): {reason}")]
    Section {
        /// Index in the section table.
        index: usize,
        /// The section's name.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// AddressOfEntryPoint lies outside the image.
    #[error("entry point {0:#x} lies outside the image")]
    EntryPoint(u32),
    /// A base relocation of a type other than DIR64 and ABSOLUTE.
    #[error("base relocation of type {kind} at RVA {rva:#x} is not supported (only DIR64)")]
    UnsupportedRelocation {
        /// RVA the relocation applies to.
        rva: u32,
        /// Its IMAGE_REL_BASED_* type.
        kind: u16,
    },
    /// A DIR64 relocation whose 8 bytes reach past SizeOfImage.
    #[error("base relocation at RVA {0:#x} reaches past the image")]
    RelocationOutside(u32),
    /// An import by ordinal; ntmem binds by name only.
    #[error("import of ordinal {ordinal} from {dll}: imports by ordinal are not supported")]
    ImportByOrdinal {
        /// The DLL imported from.
        dll: String,
        /// The ordinal.
        ordinal: u16,
    },
    /// The import directory is inconsistent.
    #[error("import directory: {0}")]
    Imports(&'static str),
    /// The exception directory is inconsistent.
    #[error("exception directory: {0}")]
    ExceptionDirectory(#[from] PdataError),
    /// A laid-out image was asked of bytes that are not this image's file.
    #[error("the file given is not the one this image was parsed from")]
    WrongFile,
    /// A relocation could not be applied to the layout given.
    #[error(transparent)]
    Relocate(#[from] RelocError),
}

/// IMAGE_OPTIONAL_HEADER.Subsystem. A driver is IMAGE_SUBSYSTEM_NATIVE; the parser reports
/// what the image says and leaves refusing to the loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subsystem {
    /// IMAGE_SUBSYSTEM_NATIVE (1): drivers and native NT processes.
    Native,
    /// IMAGE_SUBSYSTEM_WINDOWS_GUI (2).
    WindowsGui,
    /// IMAGE_SUBSYSTEM_WINDOWS_CUI (3).
    WindowsCui,
    /// Any other IMAGE_SUBSYSTEM_* value.
    Other(u16),
}

impl Subsystem {
    fn from_raw(value: u16) -> Self {
        match value {
            1 => Subsystem::Native,
            2 => Subsystem::WindowsGui,
            3 => Subsystem::WindowsCui,
            other => Subsystem::Other(other),
        }
    }
}

/// A validated PE32+ AMD64 image: everything the loader and the unwinder need, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverImage {
    /// OptionalHeader.ImageBase: the address the image was linked for.
    pub image_base: u64,
    /// OptionalHeader.SizeOfImage: bytes the mapped image occupies.
    pub size_of_image: u32,
    /// OptionalHeader.SizeOfHeaders: bytes of headers mapped at RVA 0.
    pub size_of_headers: u32,
    /// OptionalHeader.SectionAlignment.
    pub section_alignment: u32,
    /// OptionalHeader.FileAlignment.
    pub file_alignment: u32,
    /// AddressOfEntryPoint (the driver's `DriverEntry` or its CRT wrapper), `None` when 0.
    pub entry_point: Option<u32>,
    /// OptionalHeader.Subsystem.
    pub subsystem: Subsystem,
    /// OptionalHeader.DllCharacteristics (IMAGE_DLLCHARACTERISTICS_*).
    pub dll_characteristics: u16,
    /// The section table, in ascending, non-overlapping RVA order.
    pub sections: Vec<Section>,
    /// The DIR64 base relocations, in directory order.
    pub relocations: Vec<BaseRelocation>,
    /// The import directory.
    pub imports: Vec<ImportedDll>,
    /// The export directory (empty for most drivers).
    pub exports: Vec<Export>,
    /// The exception directory's RUNTIME_FUNCTION entries.
    pub functions: FunctionTable,
    /// RVA of the exception directory (`.pdata`), 0 when there is none: where
    /// `RtlLookupFunctionEntry`'s answers point.
    pub exception_directory: u32,
}

impl DriverImage {
    /// Parses and validates a `.sys` file.
    pub fn parse(file: &[u8]) -> Result<Self, ImageError> {
        let pe = PeFile64::parse(file)?;
        let nt = pe.nt_headers();
        let machine = nt.file_header().machine.get(LE).0;
        if machine != MACHINE_AMD64 {
            return Err(ImageError::Machine(machine));
        }
        let optional = nt.optional_header();
        let section_alignment = optional.section_alignment();
        let file_alignment = optional.file_alignment();
        if !section_alignment.is_power_of_two()
            || !file_alignment.is_power_of_two()
            || file_alignment > section_alignment
        {
            return Err(ImageError::Alignment { section: section_alignment, file: file_alignment });
        }
        let size_of_image = optional.size_of_image();
        if size_of_image == 0 || size_of_image > MAX_IMAGE_SIZE || !size_of_image.is_multiple_of(section_alignment) {
            return Err(ImageError::SizeOfImage(size_of_image));
        }
        let size_of_headers = optional.size_of_headers();
        if usize::try_from(size_of_headers).map_or(true, |h| h > file.len()) || size_of_headers > size_of_image {
            return Err(ImageError::Headers(size_of_headers));
        }
        let entry_point = match optional.address_of_entry_point() {
            0 => None,
            rva if rva < size_of_image => Some(rva),
            rva => return Err(ImageError::EntryPoint(rva)),
        };
        let sections = read_sections(&pe, file.len(), size_of_headers, section_alignment, size_of_image)?;
        let relocations = read_relocations(&pe, file, size_of_image)?;
        let (functions, exception_directory) = match pe.data_directory(pe::IMAGE_DIRECTORY_ENTRY_EXCEPTION) {
            Some(dir) if dir.size.get(LE) != 0 => (
                FunctionTable::parse(dir.data(file, &pe.section_table())?, size_of_image)?,
                dir.virtual_address.get(LE),
            ),
            _ => (FunctionTable::default(), 0),
        };
        Ok(DriverImage {
            image_base: optional.image_base(),
            size_of_image,
            size_of_headers,
            section_alignment,
            file_alignment,
            entry_point,
            subsystem: Subsystem::from_raw(optional.subsystem().0),
            dll_characteristics: optional.dll_characteristics().0,
            sections,
            relocations,
            imports: read_imports(&pe)?,
            exports: read_exports(&pe)?,
            functions,
            exception_directory,
        })
    }

    /// The image as the loader maps it: SizeOfImage bytes, headers at RVA 0, each section's
    /// initialised bytes at its RVA, zeros elsewhere. `file` must be the bytes this image was
    /// parsed from.
    pub fn layout(&self, file: &[u8]) -> Result<Vec<u8>, ImageError> {
        let mut mapped = vec![0; usize::try_from(self.size_of_image).map_err(|_| ImageError::WrongFile)?];
        copy(file, 0, self.size_of_headers, &mut mapped, 0)?;
        for s in &self.sections {
            copy(file, s.raw_offset, s.mapped_raw_size(), &mut mapped, s.virtual_address)?;
        }
        Ok(mapped)
    }

    /// Applies the base relocations to `mapped` (this image laid out at its RVAs) for a load
    /// at `new_base`, as `LdrRelocateImageWithBias` does. The headers are left as they are.
    pub fn relocate(&self, mapped: &mut [u8], new_base: u64) -> Result<(), ImageError> {
        Ok(reloc::apply(&self.relocations, mapped, new_base.wrapping_sub(self.image_base))?)
    }

    /// The section holding `rva`, if any.
    pub fn section_at(&self, rva: u32) -> Option<&Section> {
        self.sections.iter().find(|s| s.contains(rva))
    }
}

fn copy(file: &[u8], from: u32, len: u32, mapped: &mut [u8], to: u32) -> Result<(), ImageError> {
    if len == 0 {
        return Ok(());
    }
    let span = |start: u32| {
        let start = usize::try_from(start).ok()?;
        Some(start..start.checked_add(usize::try_from(len).ok()?)?)
    };
    let source = span(from).and_then(|r| file.get(r)).ok_or(ImageError::WrongFile)?;
    let dest = span(to).and_then(|r| mapped.get_mut(r)).ok_or(ImageError::WrongFile)?;
    dest.copy_from_slice(source);
    Ok(())
}

fn read_sections(
    pe: &PeFile64<'_>,
    file_len: usize,
    size_of_headers: u32,
    section_alignment: u32,
    size_of_image: u32,
) -> Result<Vec<Section>, ImageError> {
    let mut sections: Vec<Section> = Vec::new();
    for (index, header) in pe.section_table().iter().enumerate() {
        let name_len = header.name.iter().position(|&b| b == 0).unwrap_or(header.name.len());
        let name = String::from_utf8_lossy(header.name.get(..name_len).unwrap_or_default()).into_owned();
        let raw_size = header.size_of_raw_data.get(LE);
        let virtual_size = match header.virtual_size.get(LE) {
            0 => raw_size,
            size => size,
        };
        let section = Section {
            name,
            virtual_address: header.virtual_address.get(LE),
            virtual_size,
            raw_offset: header.pointer_to_raw_data.get(LE),
            raw_size,
            characteristics: SectionFlags::from_bits_retain(header.characteristics.get(LE).0),
        };
        let fail = |reason| Err(ImageError::Section { index, name: section.name.clone(), reason });
        if section.virtual_address < size_of_headers || !section.virtual_address.is_multiple_of(section_alignment) {
            return fail("RVA overlaps the headers or is not section-aligned");
        }
        if section.virtual_address.checked_add(virtual_size).is_none_or(|end| end > size_of_image) {
            return fail("reaches past SizeOfImage");
        }
        if sections.last().is_some_and(|prev| section.virtual_address < prev.end()) {
            return fail("out of order or overlapping the previous section");
        }
        let raw = section.mapped_raw_size();
        if raw != 0
            && usize::try_from(section.raw_offset)
                .ok()
                .and_then(|o| o.checked_add(usize::try_from(raw).ok()?))
                .is_none_or(|end| end > file_len)
        {
            return fail("raw data reaches past the end of the file");
        }
        sections.push(section);
    }
    Ok(sections)
}

fn read_relocations(pe: &PeFile64<'_>, file: &[u8], size_of_image: u32) -> Result<Vec<BaseRelocation>, ImageError> {
    let Some(mut blocks) = pe.data_directories().relocation_blocks(file, &pe.section_table())? else {
        return Ok(Vec::new());
    };
    let mut relocations = Vec::new();
    while let Some(block) = blocks.next()? {
        for r in block {
            match r.typ.0 {
                IMAGE_REL_BASED_ABSOLUTE => {}
                IMAGE_REL_BASED_DIR64 => {
                    if r.virtual_address.checked_add(8).is_none_or(|end| end > size_of_image) {
                        return Err(ImageError::RelocationOutside(r.virtual_address));
                    }
                    relocations.push(BaseRelocation { rva: r.virtual_address });
                }
                kind => return Err(ImageError::UnsupportedRelocation { rva: r.virtual_address, kind }),
            }
        }
    }
    Ok(relocations)
}
