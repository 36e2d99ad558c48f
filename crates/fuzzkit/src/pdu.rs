//! iSCSI framing and PDU decoding (`ironlun_iscsi::pdu`, RFC 7143 §11, §12.1) with every
//! digest setting.
//!
//! Input: one byte of settings (bit 0 HeaderDigest, bit 1 DataDigest, bits 2-3 the
//! MaxRecvDataSegmentLength bound, bit 4 "sealed"), one byte of read size, then the stream.
//! A plain stream is fed to the [`Decoder`] in reads of that size, as a socket would. A sealed
//! stream is cut into (BHS, AHS, data) parts that the harness frames itself with correct
//! digests, so the decoding past the digest checks is reached too.
//!
//! Properties: every decoded PDU's AHS segments and text parse without panicking, and
//! encoding a decoded PDU and decoding it again gives the same PDU; a sealed frame decodes to
//! the AHS and data it was built from.

use bytes::{BufMut, BytesMut};
use ironlun_iscsi::digest::crc32c;
use ironlun_iscsi::pdu::pad_len;
use ironlun_iscsi::{text, Bhs, Decoder, Digests, Pdu, PduError, BHS_LEN};

use crate::input::Input;

/// The largest DataSegmentLength field (24 bits).
const MAX_DSL: u32 = (1 << 24) - 1;

pub fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    let settings = inp.byte();
    let digests = Digests {
        header: settings & 1 != 0,
        data: settings & 2 != 0,
    };
    let max_data = match (settings >> 2) & 3 {
        0 => 8192,
        1 => 512,
        2 => 262_144,
        _ => MAX_DSL,
    };
    let decoder = Decoder { digests, max_data };
    let read = usize::from(inp.byte() % 64) + 1;
    if settings & 0x10 != 0 {
        sealed(&mut inp, decoder);
    } else {
        stream(inp.rest(), read, decoder);
    }
}

fn stream(bytes: &[u8], read: usize, decoder: Decoder) {
    let mut buf = BytesMut::new();
    for piece in bytes.chunks(read) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(pdu)) => inspect(&pdu, decoder.digests),
                Ok(None) => break,
                // The bad frame was consumed; the stream goes on (§7.8.1).
                Err(PduError::DataDigest { .. }) => {}
                Err(_) => return,
            }
        }
    }
}

fn sealed(inp: &mut Input, decoder: Decoder) {
    let mut buf = BytesMut::new();
    let mut built = Vec::new();
    while !inp.is_empty() {
        let mut bhs = [0u8; BHS_LEN];
        bhs.copy_from_slice(&{
            let mut b = inp.take(BHS_LEN).to_vec();
            b.resize(BHS_LEN, 0);
            b
        });
        let ahs_words = inp.byte() % 8;
        let ahs = pad_to(
            inp.take(usize::from(ahs_words) * 4),
            usize::from(ahs_words) * 4,
        );
        let len = inp_len(inp);
        let data = inp.take(usize::from(len));
        bhs[4] = ahs_words;
        let dsl = (data.len() as u32).to_be_bytes();
        bhs[5..8].copy_from_slice(&dsl[1..]);
        let start = buf.len();
        buf.put_slice(&bhs);
        buf.put_slice(&ahs);
        if decoder.digests.header {
            let c = crc32c(&buf[start..]);
            buf.put_u32_le(c);
        }
        if !data.is_empty() {
            let at = buf.len();
            buf.put_slice(data);
            buf.put_bytes(0, pad_len(data.len()));
            if decoder.digests.data {
                let c = crc32c(&buf[at..]);
                buf.put_u32_le(c);
            }
        }
        built.push((ahs, data.to_vec()));
    }
    for (ahs, data) in built {
        match decoder.decode(&mut buf) {
            Ok(Some(pdu)) => {
                assert_eq!(pdu.ahs.as_ref(), &ahs[..], "a sealed frame keeps its AHS");
                assert_eq!(
                    pdu.data.as_ref(),
                    &data[..],
                    "a sealed frame keeps its data"
                );
                inspect(&pdu, decoder.digests);
            }
            // Over the receiver's limit: refused before any buffering.
            Err(PduError::DataSegmentTooLong { .. }) => return,
            other => panic!("a sealed frame must decode, got {other:?}"),
        }
    }
}

/// A data length: mostly small, sometimes past the login limit or a digest boundary.
fn inp_len(inp: &mut Input) -> u16 {
    match inp.byte() {
        0xff => inp.u16(),
        n => u16::from(n),
    }
}

fn pad_to(b: &[u8], n: usize) -> Vec<u8> {
    let mut v = b.to_vec();
    v.resize(n, 0);
    v
}

/// What a receiver does with a decoded PDU, and the round trip through the encoder.
fn inspect(pdu: &Pdu, digests: Digests) {
    let _ = pdu.ahs_segments();
    match &pdu.bhs {
        Bhs::ScsiCommand(_) => {
            let _ = pdu.full_cdb();
            let _ = pdu.bidi_read_length();
        }
        Bhs::LoginRequest(_)
        | Bhs::LoginResponse(_)
        | Bhs::TextRequest(_)
        | Bhs::TextResponse(_) => {
            let _ = text::parse(&pdu.data);
        }
        _ => {}
    }
    let _ = pdu.bhs.itt();
    let Ok(bytes) = pdu.to_bytes(digests) else {
        // Only an AHS or data the framing could not have produced is refused.
        panic!("a decoded PDU must encode");
    };
    let again = Decoder {
        digests,
        max_data: MAX_DSL,
    }
    .decode(&mut bytes.clone());
    match again {
        Ok(Some(p)) => assert_eq!(&p, pdu, "decode(encode(pdu)) == pdu"),
        other => panic!("an encoded PDU must decode, got {other:?}"),
    }
}
