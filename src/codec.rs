//! Snapshot bytes: a little-endian writer and reader for the hand-written
//! parts of a state snapshot (counts, times, pseudonyms, roaring bitmaps).
//!
//! Owns: the byte layout of those primitives and the errors of reading them.
//! Never: does I/O, or knows what a snapshot holds (`state/` and the
//! processors lay out their own sections). Log records have their own codec
//! in `contract/`.

use roaring::RoaringBitmap;

/// A snapshot section that could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("snapshot truncated")]
    Truncated,
    #[error("snapshot bitmap: {0}")]
    Bitmap(std::io::Error),
}

/// Appends little-endian primitives to `bytes`.
#[derive(Default)]
pub struct Writer {
    pub bytes: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.bytes.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i32(&mut self, v: i32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    pub fn raw(&mut self, v: &[u8]) {
        self.bytes.extend_from_slice(v);
    }
    pub fn bitmap(&mut self, bitmap: &RoaringBitmap) {
        self.u32(bitmap.serialized_size() as u32);
        // Writing into a Vec cannot fail.
        let _ = bitmap.serialize_into(&mut self.bytes);
    }
}

/// Reads back what a [`Writer`] wrote, failing on a short input.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }
    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }
    pub fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() - self.at < len {
            return Err(DecodeError::Truncated);
        }
        let slice = &self.bytes[self.at..self.at + len];
        self.at += len;
        Ok(slice)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    pub fn bytes16(&mut self) -> Result<[u8; 16], DecodeError> {
        self.array()
    }
    pub fn bytes2(&mut self) -> Result<[u8; 2], DecodeError> {
        self.array()
    }
    pub fn bitmap(&mut self) -> Result<RoaringBitmap, DecodeError> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        RoaringBitmap::deserialize_from(bytes).map_err(DecodeError::Bitmap)
    }
}
