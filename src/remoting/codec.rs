//! The frame codec: `length | headerWord | header | body` (spec: remoting.md §1).

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::command::{RemotingCommand, SerializeType};
use super::RemotingError;

/// Apache's default `com.rocketmq.remoting.frameMaxLength`: the largest frame, length prefix included.
pub const DEFAULT_MAX_FRAME_LENGTH: usize = 16 * 1024 * 1024;

/// Encodes and decodes whole remoting frames.
///
/// Decoding rejects, with an error that closes the connection: a frame larger than the limit, a length
/// too small to hold the header word, a header length past the frame end, an unknown serialization
/// byte, and a header that does not parse.
#[derive(Debug, Clone)]
pub struct RemotingCodec {
    max_frame_length: usize,
}

impl Default for RemotingCodec {
    fn default() -> Self {
        RemotingCodec { max_frame_length: DEFAULT_MAX_FRAME_LENGTH }
    }
}

impl RemotingCodec {
    /// A codec with a custom frame limit (length prefix included).
    pub fn with_max_frame_length(max_frame_length: usize) -> Self {
        RemotingCodec { max_frame_length }
    }
}

/// Decodes one frame from the front of `src`, if it is whole. Exposed for the fuzz target.
pub fn decode_frame(src: &mut BytesMut, max_frame_length: usize) -> Result<Option<RemotingCommand>, RemotingError> {
    if src.len() < 4 {
        return Ok(None);
    }
    let length = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
    if length + 4 > max_frame_length {
        return Err(RemotingError::FrameTooLarge { length: length + 4, max: max_frame_length });
    }
    if length < 4 {
        return Err(RemotingError::BadFrame(format!("frame length {length} is too small for a header")));
    }
    if src.len() < 4 + length {
        src.reserve(4 + length - src.len());
        return Ok(None);
    }
    let word = u32::from_be_bytes([src[4], src[5], src[6], src[7]]);
    let kind_byte = (word >> 24) as u8;
    let header_len = (word & 0x00FF_FFFF) as usize;
    if header_len > length - 4 {
        return Err(RemotingError::BadFrame(format!(
            "bad header length {header_len}: the frame holds only {} bytes after the length word",
            length - 4
        )));
    }
    let kind = SerializeType::from_code(kind_byte)
        .ok_or_else(|| RemotingError::BadFrame(format!("unknown serialize type {kind_byte}")))?;
    let mut frame = src.split_to(4 + length);
    frame.advance(8);
    let header = frame.split_to(header_len);
    let mut cmd = RemotingCommand::decode_header_bytes(kind, &header)?;
    cmd.body = frame.freeze();
    Ok(Some(cmd))
}

impl Decoder for RemotingCodec {
    type Item = RemotingCommand;
    type Error = RemotingError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        decode_frame(src, self.max_frame_length)
    }
}

impl Encoder<RemotingCommand> for RemotingCodec {
    type Error = RemotingError;

    fn encode(&mut self, item: RemotingCommand, dst: &mut BytesMut) -> Result<(), Self::Error> {
        let start = dst.len();
        item.encode_frame(dst);
        let len = dst.len() - start;
        if len > self.max_frame_length {
            dst.truncate(start);
            return Err(RemotingError::FrameTooLarge { length: len, max: self.max_frame_length });
        }
        Ok(())
    }
}
