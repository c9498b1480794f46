//! `__C_specific_handler`'s SCOPE_TABLE: the `__try` blocks of one function.
//!
//! Layout (winnt.h `SCOPE_TABLE_AMD64`; research note §6.5): `ULONG Count`, then Count
//! records of four RVAs `{BeginAddress, EndAddress, HandlerAddress, JumpTarget}`, innermost
//! `__try` first. A record with JumpTarget 0 is a `__finally` (HandlerAddress is the
//! termination handler); otherwise it is an `__except` whose HandlerAddress is the filter
//! or the literal 1, EXCEPTION_EXECUTE_HANDLER with no filter to call, and JumpTarget is the
//! `__except` block.

use crate::memory::ReadMemory;
use crate::unwind::UnwindError;

/// HandlerAddress value meaning "no filter: EXCEPTION_EXECUTE_HANDLER".
const EXCEPTION_EXECUTE_HANDLER: u32 = 1;

/// What an `__except` does to decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptFilter {
    /// HandlerAddress 1: the filter expression was the constant EXCEPTION_EXECUTE_HANDLER.
    ExecuteHandler,
    /// RVA of the filter function, called with (EXCEPTION_POINTERS*, EstablisherFrame).
    Function(u32),
}

/// What a scope record guards with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeHandler {
    /// `__finally`: JumpTarget 0; the termination handler's RVA, called with
    /// (AbnormalTermination, EstablisherFrame) during an unwind.
    Finally {
        /// RVA of the termination handler.
        handler: u32,
    },
    /// `__except`: the filter and the RVA the except block starts at.
    Except {
        /// The filter.
        filter: ExceptFilter,
        /// RVA of the `__except` block (JumpTarget).
        target: u32,
    },
}

/// One `__try` scope: code `begin..end` (RVAs) is guarded by `handler`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeRecord {
    /// RVA of the first guarded byte.
    pub begin: u32,
    /// RVA one past the guarded code.
    pub end: u32,
    /// How it is guarded.
    pub handler: ScopeHandler,
}

impl ScopeRecord {
    /// Whether the guarded range holds `rva`.
    pub fn contains(&self, rva: u32) -> bool {
        (self.begin..self.end).contains(&rva)
    }
}

/// A decoded SCOPE_TABLE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeTable {
    /// The records in table order (innermost first).
    pub records: Vec<ScopeRecord>,
}

impl ScopeTable {
    /// Size of one record.
    const RECORD: u64 = 16;

    /// Decodes the table at virtual address `data` (the handler data of
    /// [`LanguageHandler`](crate::unwind::LanguageHandler) or
    /// [`UnwindTail::Handler`](crate::unwind::UnwindTail::Handler)). A Count larger than the
    /// readable memory fails with a read error once a record cannot be read.
    pub fn read(memory: &impl ReadMemory, data: u64) -> Result<Self, UnwindError> {
        let count = Self::count(memory, data)?;
        let records = (0..count).map(|i| Self::record(memory, data, i)).collect::<Result<_, _>>()?;
        Ok(ScopeTable { records })
    }

    /// The table's Count, read without reading the records (for a handler that must not
    /// allocate: it reads one [`record`](Self::record) at a time).
    pub fn count(memory: &impl ReadMemory, data: u64) -> Result<u32, UnwindError> {
        Ok(memory.read_u32(data)?)
    }

    /// Record `index` of the table at `data` (not checked against Count).
    pub fn record(memory: &impl ReadMemory, data: u64, index: u32) -> Result<ScopeRecord, UnwindError> {
        let mut raw = [0u8; 16];
        memory.read(data.wrapping_add(4).wrapping_add(u64::from(index) * Self::RECORD), &mut raw)?;
        let word = |n: usize| u32::from_le_bytes([raw[n], raw[n + 1], raw[n + 2], raw[n + 3]]);
        let (begin, end, handler_address, jump_target) = (word(0), word(4), word(8), word(12));
        let handler = match (jump_target, handler_address) {
            (0, handler) => ScopeHandler::Finally { handler },
            (target, EXCEPTION_EXECUTE_HANDLER) => {
                ScopeHandler::Except { filter: ExceptFilter::ExecuteHandler, target }
            }
            (target, filter) => ScopeHandler::Except { filter: ExceptFilter::Function(filter), target },
        };
        Ok(ScopeRecord { begin, end, handler })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MappedImage;

    #[test]
    fn finally_except_and_no_filter_records_are_told_apart() {
        let words: [u32; 13] = [3, 0x10, 0x20, 0x500, 0, 0x10, 0x30, 1, 0x40, 0x08, 0x50, 0x600, 0x60];
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let table = ScopeTable::read(&MappedImage { base: 0x100, bytes: &bytes }, 0x100).unwrap();
        assert_eq!(
            table.records,
            [
                ScopeRecord { begin: 0x10, end: 0x20, handler: ScopeHandler::Finally { handler: 0x500 } },
                ScopeRecord {
                    begin: 0x10,
                    end: 0x30,
                    handler: ScopeHandler::Except { filter: ExceptFilter::ExecuteHandler, target: 0x40 }
                },
                ScopeRecord {
                    begin: 0x08,
                    end: 0x50,
                    handler: ScopeHandler::Except { filter: ExceptFilter::Function(0x600), target: 0x60 }
                },
            ]
        );
        assert!(table.records[0].contains(0x1f) && !table.records[0].contains(0x20));
    }

    #[test]
    fn a_count_beyond_the_data_is_a_read_error() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert!(matches!(ScopeTable::read(&MappedImage { base: 0, bytes: &bytes }, 0), Err(UnwindError::Read(_))));
    }
}
