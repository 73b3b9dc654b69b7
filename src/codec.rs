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
        check_bitmap_layout(bytes)?;
        RoaringBitmap::deserialize_from(bytes).map_err(DecodeError::Bitmap)
    }
}

/// The roaring format [`Writer::bitmap`] writes (no run containers).
const NO_RUN_COOKIE: u32 = 12346;

/// Refuses bitmap bytes a [`Writer`] cannot have written, before `roaring`
/// reads them: `deserialize_from` accepts a run container with no runs (an
/// empty container, which makes the bitmap panic when it is written again)
/// and containers out of key order. Ours are always in the no-run format,
/// with strictly increasing keys.
fn check_bitmap_layout(bytes: &[u8]) -> Result<(), DecodeError> {
    let invalid =
        |what: &str| DecodeError::Bitmap(std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string()));
    let mut reader = Reader::new(bytes);
    if reader.u32()? != NO_RUN_COOKIE {
        return Err(invalid("not the no-run-container format a snapshot writes"));
    }
    let containers = reader.u32()?;
    let mut previous: Option<u16> = None;
    for _ in 0..containers {
        let key = u16::from_le_bytes(reader.bytes2()?);
        let _cardinality_minus_one = reader.bytes2()?;
        if previous.is_some_and(|p| p >= key) {
            return Err(invalid("containers out of key order"));
        }
        previous = Some(key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(bitmap_bytes: &[u8]) -> Vec<u8> {
        let mut bytes = (bitmap_bytes.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(bitmap_bytes);
        bytes
    }

    #[test]
    fn bitmaps_round_trip() {
        let bitmap: RoaringBitmap = [1, 7, 70_000, 1 << 20].into_iter().chain(200_000..210_000).collect();
        let mut writer = Writer::default();
        writer.bitmap(&bitmap);
        writer.bitmap(&RoaringBitmap::new());
        let mut reader = Reader::new(&writer.bytes);
        assert_eq!(reader.bitmap().expect("read back"), bitmap);
        assert!(reader.bitmap().expect("empty").is_empty());
    }

    /// Found by the `snapshot` fuzz target: a run container with no runs
    /// deserialised into an empty container, and writing the snapshot
    /// again panicked (overflow) or, in release, wrote a corrupt one.
    #[test]
    fn an_empty_run_container_is_refused() {
        // One container (cookie 12347 | (1 - 1) << 16), run bitmap 0b1,
        // key 0, cardinality - 1 = 0, no offsets, then 0 runs.
        let bytes = [59, 48, 0, 0, 0b1, 0, 0, 0, 0, 0, 0];
        assert!(matches!(Reader::new(&framed(&bytes)).bitmap(), Err(DecodeError::Bitmap(_))));
    }

    #[test]
    fn containers_out_of_key_order_are_refused() {
        let mut bytes = NO_RUN_COOKIE.to_le_bytes().to_vec();
        bytes.extend_from_slice(&2u32.to_le_bytes());
        // Keys 5 then 3, one value each, offsets, then the two values.
        for key in [5u16, 3] {
            bytes.extend_from_slice(&key.to_le_bytes());
            bytes.extend_from_slice(&0u16.to_le_bytes());
        }
        for offset in [24u32, 26] {
            bytes.extend_from_slice(&offset.to_le_bytes());
        }
        bytes.extend_from_slice(&[1, 0, 2, 0]);
        assert!(matches!(Reader::new(&framed(&bytes)).bitmap(), Err(DecodeError::Bitmap(_))));
        // The same bitmap with its keys in order reads.
        bytes[8..10].copy_from_slice(&3u16.to_le_bytes());
        bytes[12..14].copy_from_slice(&5u16.to_le_bytes());
        let bitmap = Reader::new(&framed(&bytes)).bitmap().expect("in order");
        assert_eq!(bitmap.iter().collect::<Vec<_>>(), vec![(3 << 16) + 1, (5 << 16) + 2]);
    }
}
