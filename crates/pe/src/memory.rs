//! Reading the memory an unwind looks at: the mapped image (unwind data, code bytes for
//! epilogue detection) and the stack (saved registers, return addresses).
//!
//! The unwinder never holds a pointer: it asks a [`ReadMemory`] for bytes at a virtual
//! address, so the same code walks a simulated machine's memory, a laid-out image in a test
//! or a fuzzer's bytes. A read the reader cannot satisfy is a [`ReadError`], which the
//! caller turns into whatever Windows does there (for the dispatcher: an invalid stack).

/// Bytes at `address..address + len` could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {len} bytes at {address:#x}")]
pub struct ReadError {
    /// First byte asked for.
    pub address: u64,
    /// Number of bytes asked for.
    pub len: usize,
}

/// Something the unwinder can read virtual memory from.
pub trait ReadMemory {
    /// Fills `buf` with the bytes at `address`, or fails without a partial guarantee.
    fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), ReadError>;

    /// Reads a little-endian byte.
    fn read_u8(&self, address: u64) -> Result<u8, ReadError> {
        let mut b = [0; 1];
        self.read(address, &mut b)?;
        Ok(b[0])
    }

    /// Reads a little-endian 16-bit value.
    fn read_u16(&self, address: u64) -> Result<u16, ReadError> {
        let mut b = [0; 2];
        self.read(address, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Reads a little-endian 32-bit value.
    fn read_u32(&self, address: u64) -> Result<u32, ReadError> {
        let mut b = [0; 4];
        self.read(address, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads a little-endian 64-bit value.
    fn read_u64(&self, address: u64) -> Result<u64, ReadError> {
        let mut b = [0; 8];
        self.read(address, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads a little-endian 128-bit value (an XMM register's save slot).
    fn read_u128(&self, address: u64) -> Result<u128, ReadError> {
        let mut b = [0; 16];
        self.read(address, &mut b)?;
        Ok(u128::from_le_bytes(b))
    }
}

/// An image laid out at its RVAs (see [`crate::DriverImage::layout`]) as if mapped at `base`.
#[derive(Debug, Clone, Copy)]
pub struct MappedImage<'a> {
    /// Virtual address of the image's first byte (its headers).
    pub base: u64,
    /// The image, `SizeOfImage` bytes.
    pub bytes: &'a [u8],
}

impl ReadMemory for MappedImage<'_> {
    fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let error = ReadError { address, len: buf.len() };
        let start = usize::try_from(address.checked_sub(self.base).ok_or(error)?).map_err(|_| error)?;
        let end = start.checked_add(buf.len()).ok_or(error)?;
        buf.copy_from_slice(self.bytes.get(start..end).ok_or(error)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_image_reads_inside_and_refuses_outside() {
        let bytes = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
        let image = MappedImage { base: 0x1000, bytes: &bytes };
        assert_eq!(image.read_u32(0x1001), Ok(0x0504_0302));
        assert_eq!(image.read_u64(0x1001), Ok(0x0908_0706_0504_0302));
        assert_eq!(image.read_u64(0x1002), Err(ReadError { address: 0x1002, len: 8 }));
        assert_eq!(image.read_u8(0xfff), Err(ReadError { address: 0xfff, len: 1 }));
        assert_eq!(image.read_u8(u64::MAX), Err(ReadError { address: u64::MAX, len: 1 }));
    }
}
