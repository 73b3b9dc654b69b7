//! Little-endian binary writer and reader for snapshots.

use roaring::RoaringBitmap;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot truncated")]
    Truncated,
    #[error("snapshot is not a proviso v2 snapshot")]
    Magic,
    #[error("snapshot section: {0}")]
    Encode(String),
    #[error("snapshot checksum mismatch")]
    Checksum,
    #[error("snapshot bitmap: {0}")]
    Bitmap(std::io::Error),
    #[error("snapshot i/o on {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

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

pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }
    pub fn take(&mut self, len: usize) -> Result<&'a [u8], SnapshotError> {
        if self.bytes.len() - self.at < len {
            return Err(SnapshotError::Truncated);
        }
        let slice = &self.bytes[self.at..self.at + len];
        self.at += len;
        Ok(slice)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }
    pub fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn i32(&mut self) -> Result<i32, SnapshotError> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    pub fn bytes16(&mut self) -> Result<[u8; 16], SnapshotError> {
        self.array()
    }
    pub fn bytes2(&mut self) -> Result<[u8; 2], SnapshotError> {
        self.array()
    }
    pub fn bitmap(&mut self) -> Result<RoaringBitmap, SnapshotError> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        RoaringBitmap::deserialize_from(bytes).map_err(SnapshotError::Bitmap)
    }
}
