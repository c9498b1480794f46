//! Imports (what the image needs from `ntoskrnl.exe`, `hal.dll`, …) and exports.
//!
//! "PE Format", The .idata Section and The .edata Section. The loader binds each import by
//! DLL and name and writes the target's address into the import's IAT slot (a data import
//! such as `MmSystemRangeStart` gets the variable's address, not a thunk: issue 10, "How").
//! Imports by ordinal are refused, since ntmem's export table is keyed by name.

use object::pe::ImageNtHeaders64;
use object::read::pe::{ExportTarget as ObjectExportTarget, Import, PeFile64};
use object::LittleEndian as LE;

use crate::image::ImageError;

/// One DLL the image imports from, in the import directory's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedDll {
    /// The DLL's name as written in the image (e.g. `ntoskrnl.exe`).
    pub name: String,
    /// The routines and variables imported from it, in IAT order.
    pub functions: Vec<ImportedFunction>,
}

/// One name imported from a DLL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedFunction {
    /// The imported name.
    pub name: String,
    /// The hint: the exporter's name-table index the linker expected.
    pub hint: u16,
    /// RVA of the 8-byte IAT slot the loader fills with the target's address.
    pub iat_rva: u32,
}

/// One exported symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The exported name, if it has one.
    pub name: Option<String>,
    /// The export's ordinal (ordinal base + index).
    pub ordinal: u32,
    /// What it refers to.
    pub target: ExportTarget,
}

/// What an export refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportTarget {
    /// An RVA inside the image.
    Rva(u32),
    /// A forwarder string, `DLL.Name` or `DLL.#Ordinal`.
    Forwarder(String),
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Reads the import directory: every DLL and name, refusing imports by ordinal.
pub(crate) fn read_imports(file: &PeFile64<'_>) -> Result<Vec<ImportedDll>, ImageError> {
    let Some(table) = file.import_table()? else { return Ok(Vec::new()) };
    let mut dlls = Vec::new();
    let mut descriptors = table.descriptors()?;
    while let Some(descriptor) = descriptors.next()? {
        let name = text(table.name(descriptor.name.get(LE))?);
        let first_thunk = descriptor.first_thunk.get(LE);
        let lookup = match descriptor.original_first_thunk.get(LE) {
            0 => first_thunk,
            rva => rva,
        };
        let mut thunks = table.thunks(lookup)?;
        let mut functions = Vec::new();
        while let Some(thunk) = thunks.next::<ImageNtHeaders64>()? {
            let slot = u32::try_from(functions.len())
                .ok()
                .and_then(|i| i.checked_mul(8))
                .and_then(|offset| first_thunk.checked_add(offset))
                .ok_or(ImageError::Imports("IAT slot RVA overflows"))?;
            match table.import::<ImageNtHeaders64>(thunk)? {
                Import::Ordinal(ordinal) => return Err(ImageError::ImportByOrdinal { dll: name, ordinal }),
                Import::Name(hint, symbol) => {
                    functions.push(ImportedFunction { name: text(symbol), hint, iat_rva: slot })
                }
            }
        }
        dlls.push(ImportedDll { name, functions });
    }
    Ok(dlls)
}

/// Reads the export directory, if any.
pub(crate) fn read_exports(file: &PeFile64<'_>) -> Result<Vec<Export>, ImageError> {
    let Some(table) = file.export_table()? else { return Ok(Vec::new()) };
    let exports = table.exports()?;
    Ok(exports
        .into_iter()
        .map(|e| Export {
            name: e.name.map(text),
            ordinal: e.ordinal.0.into(),
            target: match e.target {
                ObjectExportTarget::Address(rva) => ExportTarget::Rva(rva),
                ObjectExportTarget::ForwardByName(dll, name) => {
                    ExportTarget::Forwarder(format!("{}.{}", text(dll), text(name)))
                }
                ObjectExportTarget::ForwardByOrdinal(dll, ordinal) => {
                    ExportTarget::Forwarder(format!("{}.#{}", text(dll), ordinal.0))
                }
            },
        })
        .collect())
}
