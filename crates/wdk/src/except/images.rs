//! The loaded-image list the dispatcher searches (`RtlLookupFunctionEntry`'s
//! `RtlpLookupFunctionTable`), and the memory it reads while unwinding.
//!
//! Each registered image is a base, a size, its validated `.pdata` and where `.pdata` is
//! mapped. Registering also tells the host's signal handlers that faults in the image are
//! exceptions to dispatch ([`ntmem_host::exception::register_image_code`]).
//!
//! Answers are plain values ([`Found`]): the dispatcher calls handlers that may never
//! return (an unwind resumes elsewhere), so it holds no lock, `Arc` or allocation across
//! them.

use std::sync::{Arc, RwLock};

use ntmem_host::exception::{register_image_code, ImageCode};
use ntmem_kernel::mm::sysload::LoadedImage;
use ntmem_pe::{DriverImage, FunctionTable, ReadError, ReadMemory, RuntimeFunction};

#[derive(Debug)]
struct Image {
    name: String,
    base: u64,
    size: u64,
    functions: FunctionTable,
    pdata: u32,
}

static IMAGES: RwLock<Vec<Arc<Image>>> = RwLock::new(Vec::new());

/// A registered image; unregistered on drop (drop it before unmapping the image).
#[derive(Debug)]
pub struct Registration {
    image: Arc<Image>,
    _code: ImageCode,
}

impl Registration {
    /// The image's name.
    pub fn name(&self) -> &str {
        &self.image.name
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut images = IMAGES.write().unwrap_or_else(|e| e.into_inner());
        images.retain(|i| !Arc::ptr_eq(i, &self.image));
    }
}

/// Registers a loaded driver image with the dispatcher. `None` when the host's image
/// table is full ([`ntmem_host::exception::IMAGE_SLOTS`]).
pub fn register(loaded: &LoadedImage) -> Option<Registration> {
    register_mapped(loaded.name(), loaded.host_base(), loaded.image())
}

/// Registers `image` as mapped at host address `base`.
pub fn register_mapped(name: &str, base: u64, image: &DriverImage) -> Option<Registration> {
    super::install();
    let size = u64::from(image.size_of_image);
    let code = register_image_code(usize::try_from(base).ok()?, usize::try_from(size).ok()?)?;
    let image = Arc::new(Image {
        name: name.to_owned(),
        base,
        size,
        functions: image.functions.clone(),
        pdata: image.exception_directory,
    });
    IMAGES.write().unwrap_or_else(|e| e.into_inner()).push(image.clone());
    Some(Registration { image, _code: code })
}

/// What the image list says about a PC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// The image's base.
    pub base: u64,
    /// The function holding the PC and the address of its RUNTIME_FUNCTION in the mapped
    /// `.pdata`; `None` for a leaf function.
    pub function: Option<(RuntimeFunction, u64)>,
}

/// The registered image holding `pc`: its name and `pc`'s offset from its base, as a
/// debugger without symbols names an address (`mydrv+0x100e`).
pub fn module_offset(pc: u64) -> Option<(String, u64)> {
    let images = IMAGES.read().unwrap_or_else(|e| e.into_inner());
    let image = images.iter().find(|i| pc.wrapping_sub(i.base) < i.size)?;
    Some((image.name.clone(), pc - image.base))
}

/// `RtlLookupFunctionEntry`: the image holding `pc` and its function entry, if any.
pub fn lookup(pc: u64) -> Option<Found> {
    let images = IMAGES.read().unwrap_or_else(|e| e.into_inner());
    let image = images.iter().find(|i| pc.wrapping_sub(i.base) < i.size)?;
    let rva = u32::try_from(pc - image.base).ok()?;
    let function = image.functions.position(rva).map(|index| {
        let entry = image.functions.entries()[index];
        let at = image.base + u64::from(image.pdata) + (index * RuntimeFunction::SIZE) as u64;
        (entry, at)
    });
    Some(Found { base: image.base, function })
}

fn in_image(address: u64, len: u64) -> bool {
    let images = IMAGES.read().unwrap_or_else(|e| e.into_inner());
    images.iter().any(|i| address.wrapping_sub(i.base) < i.size && len <= i.size - (address - i.base))
}

/// The memory an unwind reads: the current kernel stack and the registered images. Reads
/// anywhere else fail (an invalid stack, for the dispatcher), so a hostile frame never makes
/// ntmem fault.
#[derive(Debug, Clone, Copy)]
pub struct Memory;

impl Memory {
    /// Whether `address..address + len` is inside the current guarded call's stack.
    pub fn on_stack(address: u64, len: u64) -> bool {
        ntmem_host::current_stack().is_some_and(|s| {
            let (base, top) = (s.base as u64, (s.base + s.size) as u64);
            address >= base && address.checked_add(len).is_some_and(|end| end <= top)
        })
    }
}

impl ReadMemory for Memory {
    fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let len = buf.len() as u64;
        if !(Self::on_stack(address, len) || in_image(address, len)) {
            return Err(ReadError { address, len: buf.len() });
        }
        // SAFETY: the range is inside the mapped kernel stack or a mapped registered image
        // (a discarded INIT page would fault as in Windows; unwind data is never there).
        unsafe { std::ptr::copy_nonoverlapping(address as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }
}
