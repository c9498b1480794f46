//! Windows x64 driver images and x64 unwind data, decoded from bytes.
//!
//! A Windows driver is a PE32+ image (`.sys`) that the kernel maps into system space,
//! relocates, binds to `ntoskrnl.exe`/`hal.dll` and later unwinds with its own tables. This
//! crate is the part of that which needs no machine: pure functions over the image's bytes
//! or over a [`ReadMemory`] view of wherever the image was mapped. It knows nothing of the
//! simulated machine; the loader (`MmLoadSystemImage`, in the kernel crate) and the exception
//! dispatcher (`RtlDispatchException`/`RtlUnwindEx`) are built on top of it.
//!
//! - [`DriverImage::parse`] validates a PE32+ AMD64 image and returns its headers,
//!   [`Section`]s (characteristics as [`SectionFlags`], INIT/PAGE classification), base
//!   relocations, imports (by DLL and name, with each IAT slot's RVA), exports, entry point
//!   and the exception directory ([`FunctionTable`] of [`RuntimeFunction`]s).
//!   [`DriverImage::layout`] lays the file out at its RVAs; [`DriverImage::relocate`] applies
//!   the base relocations to such a layout.
//! - [`unwind`] decodes `UNWIND_INFO` (versions 1 and 2, every unwind code, chained info,
//!   the language-specific handler) and performs a virtual unwind with `RtlVirtualUnwind`'s
//!   semantics (prolog offset, epilogue detection, frame register, machine frames).
//! - [`scope`] decodes `__C_specific_handler`'s `SCOPE_TABLE`.
//!
//! How the pieces are meant to be used:
//! - the loader: `DriverImage::parse(file)` → `layout(file)` → copy into system space at
//!   `base` → `relocate(&mut mapped, base)` → bind each `ImportedFunction::iat_rva` → protect
//!   by `Section::characteristics`; free `is_discardable` sections after `DriverEntry`, page
//!   `is_pageable` ones;
//! - the dispatcher, per frame: `functions.lookup(rip − base)` (none: [`unwind::unwind_leaf`])
//!   → [`unwind::virtual_unwind`] with UNW_FLAG_EHANDLER (search) or UHANDLER (unwind) →
//!   when a handler is returned and it is `__C_specific_handler`,
//!   [`scope::ScopeTable::read`] at its `data`.
//!
//! Every offset and count comes from the image and is checked: hostile input gives a typed
//! error, never a panic (the crate is fuzzed; see `fuzz/`).
//!
//! Sources: Microsoft, "PE Format" (learn.microsoft.com/windows/win32/debug/pe-format);
//! "x64 exception handling" and "x64 prolog and epilog"
//! (learn.microsoft.com/cpp/build/exception-handling-x64, …/prolog-and-epilog);
//! `RtlVirtualUnwind` (learn.microsoft.com/windows/win32/api/winnt/nf-winnt-rtlvirtualunwind);
//! the research note `research/dma-verifier-views.md` §6.1 (load sequence), §6.5 (the x64
//! exception model) and §7 U-13 (unwind version 2).
#![forbid(unsafe_code)]

mod fuzzing;
mod image;
mod imports;
mod memory;
mod pdata;
mod reloc;
pub mod scope;
mod section;
pub mod unwind;

pub use fuzzing::check_untrusted_image;
pub use image::{DriverImage, ImageError, Subsystem, MAX_IMAGE_SIZE};
pub use imports::{Export, ExportTarget, ImportedDll, ImportedFunction};
pub use memory::{MappedImage, ReadError, ReadMemory};
pub use pdata::{FunctionTable, RuntimeFunction};
pub use reloc::{BaseRelocation, RelocError};
pub use section::{Section, SectionFlags};
