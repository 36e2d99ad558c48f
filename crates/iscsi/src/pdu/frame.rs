//! iSCSI framing (RFC 7143 §11.2, §12.1): a whole [`Pdu`] is the BHS, the Additional Header
//! Segments, the optional header digest, the data segment padded to 4 bytes and the optional
//! data digest. Decoding is check-then-parse: [`check_frame`] measures a frame from its first
//! bytes, [`decode_frame`] verifies the digests and parses it, [`Decoder`] does both over a
//! read buffer.

use bytes::{BufMut, Bytes, BytesMut};

use super::{Bhs, BHS_LEN, DATA_SEGMENT_LENGTH, LUN, MAX_DATA_SEGMENT_LEN, TOTAL_AHS_LENGTH};
use crate::digest::{crc32c, crc32c_append};

/// Which digests are in force on a connection (negotiated HeaderDigest / DataDigest; both off
/// during login).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Digests {
    pub header: bool,
    pub data: bool,
}

/// One Additional Header Segment (§11.2.1.2): type and the bytes after the 3-byte AHS header
/// (AHSLength of them, without padding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ahs {
    pub ahs_type: u8,
    pub data: Bytes,
}

/// A whole PDU: typed header, raw AHS (a multiple of 4 bytes, at most 1020), data segment
/// (unpadded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pdu {
    pub bhs: Bhs,
    pub ahs: Bytes,
    pub data: Bytes,
}

/// Why a PDU could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("data segment of {0} bytes exceeds the 24-bit DataSegmentLength")]
    DataTooLong(usize),
    #[error("AHS of {0} bytes is not a multiple of 4 up to 1020")]
    BadAhs(usize),
}

/// Why bytes could not be framed or decoded into a PDU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    /// DataSegmentLength above what the receiver declared (MaxRecvDataSegmentLength).
    #[error("DataSegmentLength {len} exceeds the limit {max}")]
    DataSegmentTooLong { len: u32, max: u32 },
    /// Header digest mismatch: under ERL 0 the connection must be dropped (§7.8).
    #[error("header digest mismatch")]
    HeaderDigest,
    /// Data digest mismatch: the PDU is discarded and a Reject (reason 0x02) quoting `header`
    /// may be sent (§7.8.1). `frame_len` bytes were consumed.
    #[error("data digest mismatch")]
    DataDigest { header: Box<[u8; BHS_LEN]> },
    /// A frame shorter than its own header says (only from [`decode_frame`] misuse).
    #[error("truncated PDU")]
    Truncated,
}

/// Result of [`check_frame`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameCheck {
    /// At least this many more bytes are needed before the frame length is known or complete.
    Incomplete(usize),
    /// A whole frame of this many bytes is present at the start of the buffer.
    Complete(usize),
}

/// Padding needed to bring `len` to a multiple of 4.
pub fn pad_len(len: usize) -> usize {
    (4 - (len & 3)) & 3
}

/// Total frame length given the header fields: BHS + AHS + header digest + padded data +
/// data digest.
pub fn frame_len(total_ahs_words: u8, data_len: u32, d: Digests) -> usize {
    let data = data_len as usize;
    BHS_LEN
        + usize::from(total_ahs_words) * 4
        + if d.header { 4 } else { 0 }
        + data
        + pad_len(data)
        + if d.data && data > 0 { 4 } else { 0 }
}

/// The two length fields of the BHS at the start of `h` (which holds at least [`BHS_LEN`]
/// bytes): TotalAHSLength in 4-byte words and the 24-bit DataSegmentLength (§11.2.1.3-4).
fn lengths(h: &[u8]) -> (u8, u32) {
    let mut dsl = [0u8; 4];
    dsl[1..].copy_from_slice(&h[DATA_SEGMENT_LENGTH..LUN]);
    (h[TOTAL_AHS_LENGTH], u32::from_be_bytes(dsl))
}

/// The cheap pass of check-then-parse: how long is the frame at the start of `buf`?
/// `max_data` bounds DataSegmentLength (the declared MaxRecvDataSegmentLength, or a small
/// login limit), so a hostile length never makes the reader buffer megabytes.
pub fn check_frame(buf: &[u8], d: Digests, max_data: u32) -> Result<FrameCheck, PduError> {
    if buf.len() < BHS_LEN {
        return Ok(FrameCheck::Incomplete(BHS_LEN - buf.len()));
    }
    let (ahs_words, dsl) = lengths(buf);
    if dsl > max_data {
        return Err(PduError::DataSegmentTooLong {
            len: dsl,
            max: max_data,
        });
    }
    let total = frame_len(ahs_words, dsl, d);
    if buf.len() < total {
        Ok(FrameCheck::Incomplete(total - buf.len()))
    } else {
        Ok(FrameCheck::Complete(total))
    }
}

/// Parse one complete frame (as measured by [`check_frame`]), verifying digests.
pub fn decode_frame(frame: Bytes, d: Digests) -> Result<Pdu, PduError> {
    if frame.len() < BHS_LEN {
        return Err(PduError::Truncated);
    }
    let mut raw = [0u8; BHS_LEN];
    raw.copy_from_slice(&frame[..BHS_LEN]);
    let (ahs_words, dsl) = lengths(&raw);
    let ahs_len = usize::from(ahs_words) * 4;
    let data_len = dsl as usize;
    if frame.len() < frame_len(ahs_words, dsl, d) {
        return Err(PduError::Truncated);
    }
    let mut pos = BHS_LEN + ahs_len;
    if d.header {
        let want = crc32c(&frame[..pos]);
        let got = u32::from_le_bytes([frame[pos], frame[pos + 1], frame[pos + 2], frame[pos + 3]]);
        if want != got {
            return Err(PduError::HeaderDigest);
        }
        pos += 4;
    }
    let ahs = frame.slice(BHS_LEN..BHS_LEN + ahs_len);
    let padded = data_len + pad_len(data_len);
    let data = frame.slice(pos..pos + data_len);
    if d.data && data_len > 0 {
        let want = crc32c(&frame[pos..pos + padded]);
        let at = pos + padded;
        let got = u32::from_le_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]]);
        if want != got {
            return Err(PduError::DataDigest {
                header: Box::new(raw),
            });
        }
    }
    Ok(Pdu {
        bhs: Bhs::decode(&raw),
        ahs,
        data,
    })
}

impl Pdu {
    /// A PDU with no AHS and no data.
    pub fn new(bhs: Bhs) -> Pdu {
        Pdu {
            bhs,
            ahs: Bytes::new(),
            data: Bytes::new(),
        }
    }

    /// A PDU with a data segment.
    pub fn with_data(bhs: Bhs, data: impl Into<Bytes>) -> Pdu {
        Pdu {
            bhs,
            ahs: Bytes::new(),
            data: data.into(),
        }
    }

    /// Bytes this PDU takes on the wire.
    pub fn encoded_len(&self, d: Digests) -> usize {
        frame_len((self.ahs.len() / 4) as u8, self.data.len() as u32, d)
    }

    /// Append the wire form (header, AHS, header digest, padded data, data digest) to `out`.
    /// Digests are CRC32C, stored little-endian as RFC 7143 §12.1 and every implementation do.
    pub fn encode(&self, d: Digests, out: &mut BytesMut) -> Result<(), EncodeError> {
        out.reserve(self.encoded_len(d));
        self.encode_header(d, out)?;
        if !self.data.is_empty() {
            out.put_slice(&self.data);
            let (trailer, n) = self.data_trailer(d);
            out.put_slice(&trailer[..n]);
        }
        Ok(())
    }

    /// Append only the header part (BHS with its length fields, AHS, header digest): a writer
    /// can then send [`Pdu::data`] and [`Pdu::data_trailer`] without copying the data.
    pub fn encode_header(&self, d: Digests, out: &mut BytesMut) -> Result<(), EncodeError> {
        if self.data.len() > MAX_DATA_SEGMENT_LEN as usize {
            return Err(EncodeError::DataTooLong(self.data.len()));
        }
        if self.ahs.len() & 3 != 0 || self.ahs.len() > 1020 {
            return Err(EncodeError::BadAhs(self.ahs.len()));
        }
        let mut raw = [0u8; BHS_LEN];
        self.bhs.encode(&mut raw);
        raw[TOTAL_AHS_LENGTH] = (self.ahs.len() / 4) as u8;
        let dl = (self.data.len() as u32).to_be_bytes();
        raw[DATA_SEGMENT_LENGTH..LUN].copy_from_slice(&dl[1..4]);
        let start = out.len();
        out.put_slice(&raw);
        out.put_slice(&self.ahs);
        if d.header {
            let c = crc32c(&out[start..]);
            out.put_u32_le(c);
        }
        Ok(())
    }

    /// What follows the data segment on the wire: padding and the data digest, as
    /// `(bytes, count)`. Empty when there is no data.
    pub fn data_trailer(&self, d: Digests) -> ([u8; 7], usize) {
        let mut t = [0u8; 7];
        if self.data.is_empty() {
            return (t, 0);
        }
        let pad = pad_len(self.data.len());
        let mut n = pad;
        if d.data {
            let c = crc32c_append(crc32c(&self.data), &t[..pad]);
            t[pad..pad + 4].copy_from_slice(&c.to_le_bytes());
            n += 4;
        }
        (t, n)
    }

    /// Encode into a fresh buffer.
    pub fn to_bytes(&self, d: Digests) -> Result<BytesMut, EncodeError> {
        let mut out = BytesMut::with_capacity(self.encoded_len(d));
        self.encode(d, &mut out)?;
        Ok(out)
    }

    /// Parse the AHS bytes into segments. Err on a segment whose length runs past the end.
    pub fn ahs_segments(&self) -> Result<Vec<Ahs>, &'static str> {
        let mut v = Vec::new();
        let mut pos = 0usize;
        let a = &self.ahs;
        while pos < a.len() {
            if a.len() - pos < 4 {
                return Err("AHS header truncated");
            }
            let len = usize::from(u16::from_be_bytes([a[pos], a[pos + 1]]));
            let ty = a[pos + 2];
            let start = pos + 3;
            let end = start + len;
            if end > a.len() {
                return Err("AHS length runs past TotalAHSLength");
            }
            v.push(Ahs {
                ahs_type: ty,
                data: self.ahs.slice(start..end),
            });
            pos = end + pad_len(end - pos);
        }
        Ok(v)
    }
}

/// Stream framing over a read buffer: check-then-parse, consuming a frame from the front.
#[derive(Clone, Copy, Debug)]
pub struct Decoder {
    pub digests: Digests,
    /// Largest acceptable DataSegmentLength.
    pub max_data: u32,
}

impl Decoder {
    /// `Ok(None)`: more bytes are needed. On `Err(DataDigest)` the bad frame has been consumed
    /// and the stream can continue; on other errors the stream is unusable.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Pdu>, PduError> {
        match check_frame(buf, self.digests, self.max_data)? {
            FrameCheck::Incomplete(_) => Ok(None),
            FrameCheck::Complete(len) => {
                let frame = buf.split_to(len).freeze();
                decode_frame(frame, self.digests).map(Some)
            }
        }
    }
}
