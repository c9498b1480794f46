//! The exception directory (`.pdata`): one RUNTIME_FUNCTION per function that allocates
//! stack or calls others, and `RtlLookupFunctionEntry`'s search over them.
//!
//! "x64 exception handling", Struct RUNTIME_FUNCTION: `{BeginAddress, EndAddress,
//! UnwindData}`, image-relative, sorted by address (research note §6.5). A leaf function has
//! no entry: its return address is at `[rsp]`.

/// One RUNTIME_FUNCTION: the code `begin..end` (RVAs) is described by the UNWIND_INFO at
/// `unwind_info` (RVA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuntimeFunction {
    /// RVA of the function's first byte.
    pub begin: u32,
    /// RVA one past the function's last byte.
    pub end: u32,
    /// RVA of the function's UNWIND_INFO.
    pub unwind_info: u32,
}

impl RuntimeFunction {
    /// Size of one RUNTIME_FUNCTION in `.pdata` or in a chained UNWIND_INFO.
    pub const SIZE: usize = 12;

    /// Decodes the 12 little-endian bytes of a RUNTIME_FUNCTION.
    pub fn from_bytes(bytes: [u8; Self::SIZE]) -> Self {
        let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        RuntimeFunction { begin: word(0), end: word(4), unwind_info: word(8) }
    }

    /// Whether the RVA lies in `begin..end`.
    pub fn contains(&self, rva: u32) -> bool {
        (self.begin..self.end).contains(&rva)
    }
}

/// What is wrong with an exception directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PdataError {
    /// The directory's size is not a whole number of 12-byte entries.
    #[error("exception directory size {0:#x} is not a multiple of 12")]
    Size(usize),
    /// Entry `index` is empty, reversed, or reaches past SizeOfImage.
    #[error("RUNTIME_FUNCTION {index} ({begin:#x}..{end:#x}) is not a range inside the image")]
    Range {
        /// Index of the entry.
        index: usize,
        /// Its BeginAddress.
        begin: u32,
        /// Its EndAddress.
        end: u32,
    },
    /// Entry `index` starts before the previous one ends: the table is not sorted.
    #[error("RUNTIME_FUNCTION {index} at {begin:#x} is out of order or overlaps the one before")]
    Order {
        /// Index of the entry.
        index: usize,
        /// Its BeginAddress.
        begin: u32,
    },
    /// Entry `index`'s UnwindData is not a 4-byte aligned RVA inside the image (the low-bit
    /// "indirect" encoding some Windows binaries use is not supported).
    #[error("RUNTIME_FUNCTION {index} has unwind data at {unwind_info:#x}, not an aligned RVA in the image")]
    UnwindData {
        /// Index of the entry.
        index: usize,
        /// Its UnwindData.
        unwind_info: u32,
    },
}

/// An image's RUNTIME_FUNCTION entries, validated: each inside the image, sorted, disjoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionTable {
    entries: Vec<RuntimeFunction>,
}

impl FunctionTable {
    /// Decodes and validates the exception directory's bytes for an image of `size_of_image`.
    pub fn parse(bytes: &[u8], size_of_image: u32) -> Result<Self, PdataError> {
        if !bytes.len().is_multiple_of(RuntimeFunction::SIZE) {
            return Err(PdataError::Size(bytes.len()));
        }
        let mut entries: Vec<RuntimeFunction> = Vec::with_capacity(bytes.len() / RuntimeFunction::SIZE);
        for (index, chunk) in bytes.chunks_exact(RuntimeFunction::SIZE).enumerate() {
            let mut raw = [0; RuntimeFunction::SIZE];
            raw.copy_from_slice(chunk);
            let f = RuntimeFunction::from_bytes(raw);
            if f.begin >= f.end || f.end > size_of_image {
                return Err(PdataError::Range { index, begin: f.begin, end: f.end });
            }
            if entries.last().is_some_and(|prev| f.begin < prev.end) {
                return Err(PdataError::Order { index, begin: f.begin });
            }
            if !f.unwind_info.is_multiple_of(4) || f.unwind_info >= size_of_image {
                return Err(PdataError::UnwindData { index, unwind_info: f.unwind_info });
            }
            entries.push(f);
        }
        Ok(FunctionTable { entries })
    }

    /// The entries in address order.
    pub fn entries(&self) -> &[RuntimeFunction] {
        &self.entries
    }

    /// `RtlLookupFunctionEntry` within one image: the entry whose range holds `rva`, by binary
    /// search; `None` for a leaf function (or an address outside any function).
    pub fn lookup(&self, rva: u32) -> Option<&RuntimeFunction> {
        self.position(rva).map(|i| &self.entries[i])
    }

    /// [`lookup`](Self::lookup)'s entry as an index into [`entries`](Self::entries) (the
    /// entry's address in the mapped `.pdata` is the directory's + 12 × index).
    pub fn position(&self, rva: u32) -> Option<usize> {
        let after = self.entries.partition_point(|f| f.begin <= rva);
        after.checked_sub(1).filter(|&i| self.entries.get(i).is_some_and(|f| f.contains(rva)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(entries: &[(u32, u32, u32)]) -> Vec<u8> {
        entries.iter().flat_map(|&(b, e, u)| [b, e, u]).flat_map(u32::to_le_bytes).collect()
    }

    #[test]
    fn lookup_finds_the_containing_function_only() {
        let table =
            FunctionTable::parse(&bytes(&[(0x1000, 0x1010, 0x2000), (0x1020, 0x1030, 0x2008)]), 0x3000).unwrap();
        assert_eq!(table.lookup(0x1000).map(|f| f.unwind_info), Some(0x2000));
        assert_eq!(table.lookup(0x100f).map(|f| f.unwind_info), Some(0x2000));
        assert_eq!(table.lookup(0x1010), None);
        assert_eq!(table.lookup(0x1025).map(|f| f.unwind_info), Some(0x2008));
        assert_eq!(table.lookup(0xfff), None);
        assert_eq!(table.lookup(0x1030), None);
    }

    #[test]
    fn hostile_tables_are_refused() {
        assert_eq!(FunctionTable::parse(&[0; 13], 0x3000), Err(PdataError::Size(13)));
        assert!(matches!(FunctionTable::parse(&bytes(&[(0x1010, 0x1000, 0)]), 0x3000), Err(PdataError::Range { .. })));
        assert!(matches!(FunctionTable::parse(&bytes(&[(0x1000, 0x4000, 0)]), 0x3000), Err(PdataError::Range { .. })));
        assert!(matches!(
            FunctionTable::parse(&bytes(&[(0x1000, 0x1010, 0), (0x100c, 0x1020, 0)]), 0x3000),
            Err(PdataError::Order { index: 1, .. })
        ));
        assert!(matches!(
            FunctionTable::parse(&bytes(&[(0x1000, 0x1010, 0x2001)]), 0x3000),
            Err(PdataError::UnwindData { .. })
        ));
    }
}
