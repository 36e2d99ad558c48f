//! The few RFC 7143 §11 layouts the floor needs, as byte offsets into a 48-byte BHS. Written
//! here, not taken from `ironlun-iscsi`, so the floor measures framing alone: no typed decode,
//! no allocation per header.

use std::io::{self, Read, Write};

pub const BHS_LEN: usize = 48;
/// The largest data segment the floor accepts (it declares 256 KiB; a peer sending more is
/// dropped).
pub const MAX_RECV: usize = 262_144;

// Opcodes (§11.1.1), initiator to target and back.
pub const NOP_OUT: u8 = 0x00;
pub const SCSI_CMD: u8 = 0x01;
pub const TMF_REQ: u8 = 0x02;
pub const LOGIN_REQ: u8 = 0x03;
pub const TEXT_REQ: u8 = 0x04;
pub const DATA_OUT: u8 = 0x05;
pub const LOGOUT_REQ: u8 = 0x06;
pub const NOP_IN: u8 = 0x20;
pub const SCSI_RSP: u8 = 0x21;
pub const TMF_RSP: u8 = 0x22;
pub const LOGIN_RSP: u8 = 0x23;
pub const TEXT_RSP: u8 = 0x24;
pub const DATA_IN: u8 = 0x25;
pub const LOGOUT_RSP: u8 = 0x26;
pub const R2T: u8 = 0x31;

pub const FINAL: u8 = 0x80;
pub const NO_TAG: u32 = 0xffff_ffff;

pub fn be32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(x)
}

pub fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// One PDU as read: its BHS and its data segment (AHS skipped, padding removed).
pub struct Pdu {
    pub bhs: [u8; BHS_LEN],
    pub data: Vec<u8>,
}

impl Pdu {
    pub fn opcode(&self) -> u8 {
        self.bhs[0] & 0x3f
    }
    pub fn immediate(&self) -> bool {
        self.bhs[0] & 0x40 != 0
    }
    pub fn itt(&self) -> u32 {
        be32(&self.bhs, 16)
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Reads one PDU (§11.2); `data` is reused to keep the read path free of allocation. No digests
/// are negotiated, so none are read.
pub fn read_pdu(r: &mut impl Read, data: &mut Vec<u8>) -> io::Result<[u8; BHS_LEN]> {
    let mut bhs = [0u8; BHS_LEN];
    r.read_exact(&mut bhs)?;
    let ahs = usize::from(bhs[4]) * 4;
    let len = (usize::from(bhs[5]) << 16) | (usize::from(bhs[6]) << 8) | usize::from(bhs[7]);
    if len > MAX_RECV {
        return Err(invalid("data segment over MaxRecvDataSegmentLength"));
    }
    if ahs > 0 {
        let mut skip = vec![0u8; ahs];
        r.read_exact(&mut skip)?;
    }
    data.resize(len, 0);
    r.read_exact(data)?;
    let pad = (4 - len % 4) % 4;
    if pad > 0 {
        let mut p = [0u8; 3];
        r.read_exact(&mut p[..pad])?;
    }
    Ok(bhs)
}

/// Writes a BHS with its data segment length set, the data and its padding.
pub fn write_pdu(w: &mut impl Write, mut bhs: [u8; BHS_LEN], data: &[u8]) -> io::Result<()> {
    let len = data.len();
    bhs[5] = (len >> 16) as u8;
    bhs[6] = (len >> 8) as u8;
    bhs[7] = len as u8;
    w.write_all(&bhs)?;
    w.write_all(data)?;
    let pad = (4 - len % 4) % 4;
    w.write_all(&[0u8; 3][..pad])
}
