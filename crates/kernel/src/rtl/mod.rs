//! The run-time library (`Rtl…`) and the C run-time routines `ntoskrnl.exe`
//! exports, as pure functions over the caller's data.
//!
//! * [`bitmap`]: `RTL_BITMAP` (`RtlInitializeBitMap`, `RtlSetBits`,
//!   `RtlFindClearBits`, `RtlNumberOfSetBits`, …).
//! * [`convert`]: conversions, case and prefixes (`RtlUpcaseUnicodeString`,
//!   `RtlUnicodeStringToAnsiString`, `RtlIntegerToUnicodeString`, …).
//! * [`environment`]: `%NAME%` expansion of REG_EXPAND_SZ values.
//! * [`format`](mod@format): Windows' printf format language (`DbgPrint`, `_vsnprintf`,
//!   `RtlStringCbPrintf`).
//! * [`string`]: counted strings (`RtlInitUnicodeString`, `RtlCopyUnicodeString`,
//!   `RtlAppendUnicodeToString`, `RtlCompareUnicodeString`, …).
//! * [`version`]: `RtlGetVersion` and `RtlIsNtDdiVersionAvailable` for the
//!   machine's edition.

pub mod bitmap;
pub mod convert;
pub mod environment;
pub mod format;
pub mod string;
pub mod version;
