//! The DLedger entry as stored in the data files and as its 32-byte index unit
//! (`DLedgerEntry`, `DLedgerEntryCoder` of dledger 0.3.1.2).
//!
//! Entry (big-endian): magic i32, size i32 (whole entry), index i64, term i64, pos i64 (absolute
//! position of the entry in the data files), channel i32, chainCrc i32, bodyCrc i32, body length
//! i32, then the body at [`BODY_OFFSET`] = 48. DLedger 0.3.1.2 never computes the two CRC fields:
//! it writes 0 and never checks them, and so does this implementation.
//!
//! Index unit at `index * 32` in the index files: magic i32, pos i64, size i32, index i64, term i64.

use bytes::{Buf, BufMut};

/// `CURRENT_MAGIC` of 0.3.1.2 (`MAGIC_1`).
pub const MAGIC: i32 = 1;
/// `MmapFileList.BLANK_MAGIC_CODE`: the rest of the data file is unused.
pub const BLANK_MAGIC: i32 = -1;
/// `MmapFileList.MIN_BLANK_LEN`: an entry is never written closer than this to a file's end.
pub const MIN_BLANK_LEN: usize = 8;
/// Where `pos` sits in the entry (`POS_OFFSET`).
pub const POS_OFFSET: usize = 24;
/// `HEADER_SIZE` (the body length field follows it).
pub const HEADER_SIZE: usize = 44;
/// Where the body starts (`BODY_OFFSET`).
pub const BODY_OFFSET: usize = 48;
/// Bytes per index unit (`INDEX_UNIT_SIZE`).
pub const INDEX_UNIT_SIZE: usize = 32;

/// An entry's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryHeader {
    /// Magic ([`MAGIC`]).
    pub magic: i32,
    /// Whole entry size (`BODY_OFFSET + body length`).
    pub size: i32,
    /// Log index.
    pub index: i64,
    /// Term it was written in.
    pub term: i64,
    /// Absolute position in the data files.
    pub pos: i64,
    /// Reserved.
    pub channel: i32,
    /// Always 0 (see the module doc).
    pub chain_crc: i32,
    /// Always 0 (see the module doc).
    pub body_crc: i32,
    /// Body length.
    pub body_len: i32,
}

impl EntryHeader {
    /// The header of an entry with a body of `body_len` bytes.
    pub fn new(index: i64, term: i64, pos: i64, body_len: usize) -> Self {
        EntryHeader {
            magic: MAGIC,
            size: (BODY_OFFSET + body_len) as i32,
            index,
            term,
            pos,
            channel: 0,
            chain_crc: 0,
            body_crc: 0,
            body_len: body_len as i32,
        }
    }
}

/// Writes header + body into `out`.
pub fn encode(h: &EntryHeader, body: &[u8], out: &mut Vec<u8>) {
    out.reserve(BODY_OFFSET + body.len());
    out.put_i32(h.magic);
    out.put_i32(h.size);
    out.put_i64(h.index);
    out.put_i64(h.term);
    out.put_i64(h.pos);
    out.put_i32(h.channel);
    out.put_i32(h.chain_crc);
    out.put_i32(h.body_crc);
    out.put_i32(h.body_len);
    out.put_slice(body);
}

/// Reads the 48-byte header at the start of `b` (`None` if shorter). No validation.
pub fn decode_header(mut b: &[u8]) -> Option<EntryHeader> {
    if b.len() < BODY_OFFSET {
        return None;
    }
    Some(EntryHeader {
        magic: b.get_i32(),
        size: b.get_i32(),
        index: b.get_i64(),
        term: b.get_i64(),
        pos: b.get_i64(),
        channel: b.get_i32(),
        chain_crc: b.get_i32(),
        body_crc: b.get_i32(),
        body_len: b.get_i32(),
    })
}

/// Why a header is not a valid entry at its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Unknown magic.
    #[error("unknown magic {0}")]
    Magic(i32),
    /// Size inconsistent with the body length or the header size.
    #[error("size {size} does not match body length {body_len} + 48")]
    Size {
        /// Entry size.
        size: i32,
        /// Body length.
        body_len: i32,
    },
    /// `pos` is not where the entry lies.
    #[error("entry says pos {said} but lies at {actual}")]
    Pos {
        /// Stored pos.
        said: i64,
        /// Actual position.
        actual: i64,
    },
}

/// Checks what DLedger's recovery checks of an entry lying at `actual_pos`.
pub fn check(h: &EntryHeader, actual_pos: i64) -> Result<(), EntryError> {
    if h.magic != MAGIC {
        return Err(EntryError::Magic(h.magic));
    }
    if h.size as i64 <= HEADER_SIZE as i64 || h.body_len < 0 || h.body_len as i64 + BODY_OFFSET as i64 != h.size as i64
    {
        return Err(EntryError::Size { size: h.size, body_len: h.body_len });
    }
    if h.pos != actual_pos {
        return Err(EntryError::Pos { said: h.pos, actual: actual_pos });
    }
    Ok(())
}

/// One index unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexUnit {
    /// Entry magic.
    pub magic: i32,
    /// Entry position.
    pub pos: i64,
    /// Entry size.
    pub size: i32,
    /// Entry index.
    pub index: i64,
    /// Entry term.
    pub term: i64,
}

impl IndexUnit {
    /// The unit of an entry.
    pub fn of(h: &EntryHeader) -> Self {
        IndexUnit { magic: h.magic, pos: h.pos, size: h.size, index: h.index, term: h.term }
    }
    /// Its 32 bytes.
    pub fn encode(&self) -> [u8; INDEX_UNIT_SIZE] {
        let mut out = [0u8; INDEX_UNIT_SIZE];
        let mut w = &mut out[..];
        w.put_i32(self.magic);
        w.put_i64(self.pos);
        w.put_i32(self.size);
        w.put_i64(self.index);
        w.put_i64(self.term);
        out
    }
    /// Reads a unit (`None` if `b` is shorter than 32 bytes).
    pub fn decode(mut b: &[u8]) -> Option<Self> {
        if b.len() < INDEX_UNIT_SIZE {
            return None;
        }
        Some(IndexUnit {
            magic: b.get_i32(),
            pos: b.get_i64(),
            size: b.get_i32(),
            index: b.get_i64(),
            term: b.get_i64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_layout_matches_dledger() {
        let h = EntryHeader::new(7, 3, 4096, 5);
        let mut b = Vec::new();
        encode(&h, b"hello", &mut b);
        assert_eq!(b.len(), 53);
        assert_eq!(&b[0..4], &[0, 0, 0, 1]); // magic
        assert_eq!(&b[4..8], &53i32.to_be_bytes()); // size
        assert_eq!(&b[8..16], &7i64.to_be_bytes()); // index
        assert_eq!(&b[16..24], &3i64.to_be_bytes()); // term
        assert_eq!(&b[POS_OFFSET..POS_OFFSET + 8], &4096i64.to_be_bytes());
        assert_eq!(&b[32..44], &[0u8; 12]); // channel, chainCrc, bodyCrc
        assert_eq!(&b[44..48], &5i32.to_be_bytes());
        assert_eq!(&b[BODY_OFFSET..], b"hello");
        let d = decode_header(&b).unwrap();
        assert_eq!(d, h);
        assert_eq!(check(&d, 4096), Ok(()));
        assert_eq!(check(&d, 0), Err(EntryError::Pos { said: 4096, actual: 0 }));
        let mut bad = d;
        bad.size = 52;
        assert!(check(&bad, 4096).is_err());
        assert!(decode_header(&b[..47]).is_none());
    }

    #[test]
    fn index_unit_layout() {
        let u = IndexUnit { magic: 1, pos: 0x0102, size: 53, index: 9, term: 2 };
        let b = u.encode();
        assert_eq!(&b[0..4], &[0, 0, 0, 1]);
        assert_eq!(&b[4..12], &0x0102i64.to_be_bytes());
        assert_eq!(&b[12..16], &53i32.to_be_bytes());
        assert_eq!(&b[16..24], &9i64.to_be_bytes());
        assert_eq!(&b[24..32], &2i64.to_be_bytes());
        assert_eq!(IndexUnit::decode(&b), Some(u));
    }
}
