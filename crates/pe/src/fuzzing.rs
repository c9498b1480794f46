//! One entry point that runs untrusted bytes through every decoder of the crate; the fuzz
//! target (`crates/pe/fuzz`) calls it and `tests/corpus.rs` replays the seed corpus through
//! it. Its only possible failure is a panic, which is a bug.

use crate::image::DriverImage;
use crate::memory::{MappedImage, ReadError, ReadMemory};
use crate::pdata::RuntimeFunction;
use crate::scope::ScopeTable;
use crate::unwind::{virtual_unwind, Context, Gpr, UnwindFlags, UnwindInfo, UnwindTail};

/// Images larger than this are parsed but not laid out (the fuzzer's memory is limited).
const MAX_LAID_OUT: u32 = 16 << 20;
/// Where the image is relocated to and mapped for unwinding: a Windows x64 system address.
const LOAD_BASE: u64 = 0xFFFF_F806_1000_0000;
/// A stack for the unwinder to read saved registers and return addresses from.
const STACK_BASE: u64 = 0xFFFF_D000_0000_0000;

/// The image and a stack, side by side, as the dispatcher sees memory.
struct ImageAndStack<'a> {
    image: MappedImage<'a>,
    stack: MappedImage<'a>,
}

impl ReadMemory for ImageAndStack<'_> {
    fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        self.image.read(address, buf).or_else(|_| self.stack.read(address, buf))
    }
}

/// Parses `data` as a driver image and, when it is one, lays it out, relocates it, decodes
/// every RUNTIME_FUNCTION's unwind info and scope table and virtually unwinds each function
/// from several PCs. When it is not an image, decodes `data` itself as unwind info, a scope
/// table and code.
pub fn check_untrusted_image(data: &[u8]) {
    let stack: Vec<u8> = data.iter().copied().cycle().take(0x400).collect();
    let stack = MappedImage { base: STACK_BASE, bytes: &stack };
    let Ok(image) = DriverImage::parse(data) else {
        let raw = ImageAndStack { image: MappedImage { base: LOAD_BASE, bytes: data }, stack };
        let whole = RuntimeFunction { begin: 0, end: u32::try_from(data.len()).unwrap_or(u32::MAX), unwind_info: 0 };
        exercise_function(&raw, &whole);
        return;
    };
    if image.size_of_image > MAX_LAID_OUT {
        return;
    }
    let Ok(mut mapped) = image.layout(data) else { return };
    if image.relocate(&mut mapped, LOAD_BASE).is_err() {
        return;
    }
    let memory = ImageAndStack { image: MappedImage { base: LOAD_BASE, bytes: &mapped }, stack };
    for function in image.functions.entries() {
        exercise_function(&memory, function);
    }
}

fn exercise_function(memory: &ImageAndStack<'_>, function: &RuntimeFunction) {
    if let Ok(info) = UnwindInfo::read(memory, LOAD_BASE, function.unwind_info) {
        if let UnwindTail::Handler { data, .. } = info.tail {
            let _ = ScopeTable::read(memory, data);
        }
        let last = function.end.saturating_sub(1);
        let prolog_end = function.begin.saturating_add(u32::from(info.size_of_prolog));
        for rva in [function.begin, function.begin.saturating_add(1), prolog_end, last] {
            let mut context = Context { rip: LOAD_BASE.wrapping_add(u64::from(rva)), ..Context::default() };
            context.set(Gpr::Rsp, STACK_BASE + 0x100);
            context.set(Gpr::Rbp, STACK_BASE + 0x200);
            let _ = virtual_unwind(UnwindFlags::EHANDLER, LOAD_BASE, function, &mut context, memory);
        }
    }
}
