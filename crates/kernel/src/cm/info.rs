//! The information classes `ZwQueryValueKey`, `ZwEnumerateValueKey`, `ZwQueryKey`
//! and `ZwEnumerateKey` fill, byte for byte as on x64 (learn.microsoft.com
//! "KEY_VALUE_BASIC_INFORMATION", "KEY_VALUE_FULL_INFORMATION",
//! "KEY_VALUE_PARTIAL_INFORMATION", "KEY_BASIC_INFORMATION", "KEY_NODE_INFORMATION",
//! "KEY_FULL_INFORMATION", "KEY_NAME_INFORMATION"; `include/ntmem/registry.h`
//! checks the same offsets at compile time):
//!
//! | structure                        | fixed part | fields (offset)                                      |
//! |----------------------------------|-----------:|------------------------------------------------------|
//! | `KEY_VALUE_BASIC_INFORMATION`    | 12 | TitleIndex 0, Type 4, NameLength 8, Name 12                  |
//! | `KEY_VALUE_FULL_INFORMATION`     | 20 | TitleIndex 0, Type 4, DataOffset 8, DataLength 12, NameLength 16, Name 20 |
//! | `KEY_VALUE_PARTIAL_INFORMATION`  | 12 | TitleIndex 0, Type 4, DataLength 8, Data 12                  |
//! | `KEY_BASIC_INFORMATION`          | 16 | LastWriteTime 0, TitleIndex 8, NameLength 12, Name 16        |
//! | `KEY_NODE_INFORMATION`           | 24 | LastWriteTime 0, TitleIndex 8, ClassOffset 12, ClassLength 16, NameLength 20, Name 24 |
//! | `KEY_FULL_INFORMATION`           | 44 | LastWriteTime 0, TitleIndex 8, ClassOffset 12, ClassLength 16, SubKeys 20, MaxNameLen 24, MaxClassLen 28, Values 32, MaxValueNameLen 36, MaxValueDataLen 40, Class 44 |
//! | `KEY_NAME_INFORMATION`           | 4  | NameLength 0, Name 4                                          |
//!
//! The rules are the documented ones ("ZwQueryValueKey", Return value): the result
//! length is always what the whole answer needs; a buffer shorter than the fixed part
//! is STATUS_BUFFER_TOO_SMALL and nothing is written; a buffer holding the fixed part
//! but not everything is STATUS_BUFFER_OVERFLOW with as much as fits written. In the
//! full form the data starts at the next 8-byte boundary after the name on 64-bit
//! Windows, and `DataOffset` is 0xFFFFFFFF when there is no data; a key's
//! `ClassOffset` is 0xFFFFFFFF (keys have no class here). An unknown class is
//! STATUS_INVALID_PARAMETER with the result length untouched.

use super::{KeySummary, NtStatus, Value, STATUS_INVALID_PARAMETER};

/// `STATUS_BUFFER_OVERFLOW` (a warning: partial data written).
pub const STATUS_BUFFER_OVERFLOW: NtStatus = 0x8000_0005_u32 as NtStatus;
/// `STATUS_BUFFER_TOO_SMALL` (an error: nothing written).
pub const STATUS_BUFFER_TOO_SMALL: NtStatus = 0xC000_0023_u32 as NtStatus;

/// `KeyValueBasicInformation`.
pub const KEY_VALUE_BASIC: u32 = 0;
/// `KeyValueFullInformation`.
pub const KEY_VALUE_FULL: u32 = 1;
/// `KeyValuePartialInformation`.
pub const KEY_VALUE_PARTIAL: u32 = 2;
/// `KeyBasicInformation`.
pub const KEY_BASIC: u32 = 0;
/// `KeyNodeInformation`.
pub const KEY_NODE: u32 = 1;
/// `KeyFullInformation`.
pub const KEY_FULL: u32 = 2;
/// `KeyNameInformation`.
pub const KEY_NAME: u32 = 3;

/// What to store in the caller's buffer: pieces at offsets, every one inside the
/// buffer's length.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    /// `(offset, bytes)` to store.
    pub writes: Vec<(usize, Vec<u8>)>,
    /// `*ResultLength` (None: left alone).
    pub result_length: Option<u32>,
    /// The status.
    pub status: NtStatus,
}

/// An answer laid out as a fixed part, then pieces at their offsets, cut to
/// `length` bytes.
fn cut(fixed: Vec<u8>, pieces: Vec<(usize, Vec<u8>)>, required: usize, length: u32) -> Answer {
    let length = length as usize;
    let result_length = Some(u32::try_from(required).unwrap_or(u32::MAX));
    if length < fixed.len() {
        return Answer { writes: Vec::new(), result_length, status: STATUS_BUFFER_TOO_SMALL };
    }
    let status = if length < required { STATUS_BUFFER_OVERFLOW } else { 0 };
    let mut writes = vec![(0, fixed)];
    for (at, bytes) in pieces {
        let fits = length.saturating_sub(at).min(bytes.len());
        if fits > 0 {
            writes.push((at, bytes[..fits].to_vec()));
        }
    }
    Answer { writes, result_length, status }
}

fn ulongs(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn bytes_of(name: &[u16]) -> Vec<u8> {
    name.iter().flat_map(|c| c.to_le_bytes()).collect()
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A `KEY_VALUE_*_INFORMATION` of class `class` for `value` in a buffer of `length`
/// bytes.
pub fn value_information(class: u32, value: &Value, length: u32) -> Answer {
    let name = bytes_of(&value.name);
    let data_len = len32(value.data.len());
    match class {
        KEY_VALUE_BASIC => {
            let fixed = ulongs(&[0, value.kind, len32(name.len())]);
            let required = 12 + name.len();
            cut(fixed, vec![(12, name)], required, length)
        }
        KEY_VALUE_FULL => {
            let base = 20 + name.len();
            let (offset, required) = if value.data.is_empty() {
                (u32::MAX, base)
            } else {
                let at = base.next_multiple_of(8);
                (len32(at), at + value.data.len())
            };
            let fixed = ulongs(&[0, value.kind, offset, data_len, len32(name.len())]);
            let mut pieces = vec![(20, name)];
            if !value.data.is_empty() {
                pieces.push((offset as usize, value.data.clone()));
            }
            cut(fixed, pieces, required, length)
        }
        KEY_VALUE_PARTIAL => {
            let fixed = ulongs(&[0, value.kind, data_len]);
            cut(fixed, vec![(12, value.data.clone())], 12 + value.data.len(), length)
        }
        _ => Answer { writes: Vec::new(), result_length: None, status: STATUS_INVALID_PARAMETER },
    }
}

/// A `KEY_*_INFORMATION` of class `class` for key `key` (last written at system
/// time `last_write`), in a buffer of `length` bytes. `full_name` is the key's path
/// (`KeyNameInformation`).
pub fn key_information(class: u32, key: &KeySummary, last_write: i64, full_name: &[u16], length: u32) -> Answer {
    let time = last_write.to_le_bytes().to_vec();
    let with_time = |rest: &[u32]| [time.clone(), ulongs(rest)].concat();
    let name = bytes_of(&key.name);
    match class {
        KEY_BASIC => {
            let fixed = with_time(&[0, len32(name.len())]);
            cut(fixed, vec![(16, name.clone())], 16 + name.len(), length)
        }
        KEY_NODE => {
            let fixed = with_time(&[0, u32::MAX, 0, len32(name.len())]);
            cut(fixed, vec![(24, name.clone())], 24 + name.len(), length)
        }
        KEY_FULL => {
            let fixed = with_time(&[
                0,
                u32::MAX,
                0,
                key.subkeys,
                key.max_name_len,
                0,
                key.values,
                key.max_value_name_len,
                key.max_value_data_len,
            ]);
            cut(fixed, Vec::new(), 44, length)
        }
        KEY_NAME => {
            let full = bytes_of(full_name);
            cut(ulongs(&[len32(full.len())]), vec![(4, full.clone())], 4 + full.len(), length)
        }
        _ => Answer { writes: Vec::new(), result_length: None, status: STATUS_INVALID_PARAMETER },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value() -> Value {
        Value { name: "Size".encode_utf16().collect(), kind: super::super::REG_DWORD, data: vec![0x10, 0, 0, 0] }
    }

    #[test]
    fn the_full_form_puts_data_at_the_next_8_byte_boundary() {
        // 20 + 8 bytes of name = 28 → data at 32; 36 in all.
        let a = value_information(KEY_VALUE_FULL, &value(), 64);
        assert_eq!((a.status, a.result_length), (0, Some(36)));
        assert_eq!(a.writes[0].1, ulongs(&[0, 4, 32, 4, 8]));
        assert_eq!(a.writes[2], (32, vec![0x10, 0, 0, 0]));
        let empty = Value { data: Vec::new(), ..value() };
        assert_eq!(value_information(KEY_VALUE_FULL, &empty, 64).writes[0].1[8..12], [0xFF; 4]);
    }

    #[test]
    fn short_buffers_overflow_or_are_too_small_and_say_what_is_needed() {
        let a = value_information(KEY_VALUE_PARTIAL, &value(), 14);
        assert_eq!((a.status, a.result_length), (STATUS_BUFFER_OVERFLOW, Some(16)));
        assert_eq!(a.writes[1], (12, vec![0x10, 0]), "as much as fits");
        let a = value_information(KEY_VALUE_PARTIAL, &value(), 11);
        assert_eq!((a.status, a.result_length, a.writes.len()), (STATUS_BUFFER_TOO_SMALL, Some(16), 0));
        let a = value_information(KEY_VALUE_BASIC, &value(), 12);
        assert_eq!((a.status, a.result_length), (STATUS_BUFFER_OVERFLOW, Some(20)));
        let a = value_information(7, &value(), 100);
        assert_eq!((a.status, a.result_length), (STATUS_INVALID_PARAMETER, None));
    }

    #[test]
    fn key_forms() {
        let k = KeySummary {
            name: "Parameters".encode_utf16().collect(),
            last_write: 0,
            subkeys: 1,
            max_name_len: 2,
            values: 3,
            max_value_name_len: 4,
            max_value_data_len: 5,
        };
        let a = key_information(KEY_FULL, &k, 7, &[], 44);
        assert_eq!((a.status, a.result_length), (0, Some(44)));
        assert_eq!(a.writes[0].1[20..], ulongs(&[1, 2, 0, 3, 4, 5]));
        let a = key_information(KEY_BASIC, &k, 7, &[], 20);
        assert_eq!((a.status, a.result_length), (STATUS_BUFFER_OVERFLOW, Some(36)));
    }
}
