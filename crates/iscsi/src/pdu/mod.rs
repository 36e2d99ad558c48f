//! iSCSI PDUs (RFC 7143 §11): the 48-byte Basic Header Segment, Additional Header Segments,
//! the padded data segment, and the optional CRC32C header and data digests (§11.1, §12.1).
//!
//! Every PDU type of §11 is a typed struct inside [`Bhs`]. A whole PDU is a [`Pdu`]: the typed
//! header, the raw AHS bytes and the data segment (without padding). Decoding is two steps, the
//! way a stream reader wants it: [`check_frame`] looks at the first bytes only and says how long
//! the frame is (or how many more bytes are needed), then [`decode_frame`] verifies digests and
//! parses. [`Decoder`] combines both over a `BytesMut` read buffer.
//!
//! Where things live:
//! * this file: the opcode table (§11.1.1) that defines both [`Opcode`] and [`Bhs`], the field
//!   offsets every BHS shares (§11.2.1), and the `Layout` trait each PDU type implements.
//! * `frame.rs`: framing (§11.2): [`Pdu`], AHS segments, padding, digests, [`check_frame`],
//!   [`decode_frame`], [`Decoder`], and the errors.
//! * one file per PDU family, each holding its structs, the offsets of their fields, their
//!   decode and encode side by side, and their code constants: `nop.rs` (NOP-Out / NOP-In,
//!   §11.18-§11.19), `scsi.rs` (SCSI Command / Response and their AHS, §11.3-§11.4),
//!   `task_mgmt.rs` (§11.5-§11.6), `data.rs` (Data-Out / Data-In and R2T, §11.7-§11.8),
//!   `async_msg.rs` (§11.9), `text.rs` (§11.10-§11.11), `login.rs` (§11.12-§11.13),
//!   `logout.rs` (§11.14-§11.15), `snack.rs` (§11.16), `reject.rs` (§11.17).
//! * `tests.rs`: a round-trip property test per PDU type, framing and digest tests.
//!
//! Decoding validates once: [`check_frame`] measures the frame, after which the header is a
//! fixed `[u8; 48]`, so every layout reads its fields at constant offsets without further
//! checks, and every 48-byte value parses (semantic checks belong to the receiver, which
//! knows its state).

mod async_msg;
mod data;
mod frame;
mod login;
pub mod logout;
mod nop;
mod reject;
mod scsi;
mod snack;
mod task_mgmt;
#[cfg(test)]
mod tests;
mod text;

pub use async_msg::{async_event, AsyncMessage};
pub use data::{DataIn, DataOut, R2t};
pub use frame::{
    check_frame, decode_frame, frame_len, pad_len, Ahs, Decoder, Digests, EncodeError, FrameCheck,
    Pdu, PduError,
};
pub use login::{login_status, LoginRequest, LoginResponse, Stage};
pub use logout::{LogoutRequest, LogoutResponse};
pub use nop::{NopIn, NopOut};
pub use reject::{reject_reason, Reject};
pub use scsi::{ahs_type, scsi_response, task_attr, ScsiCommand, ScsiResponse};
pub use snack::SnackRequest;
pub use task_mgmt::{tmf_function, tmf_response, TaskMgmtRequest, TaskMgmtResponse};
pub use text::{TextRequest, TextResponse};

/// Length of the Basic Header Segment.
pub const BHS_LEN: usize = 48;
/// Largest DataSegmentLength the 24-bit field can carry.
pub const MAX_DATA_SEGMENT_LEN: u32 = 0x00ff_ffff;
/// The reserved tag value (ITT / TTT "no tag", §11.2.1.8, §11.18.4).
pub const RESERVED_TAG: u32 = 0xffff_ffff;

/// A Basic Header Segment as bytes. Its fixed size is what lets every layout read and write
/// at constant offsets without checks.
type Raw = [u8; BHS_LEN];

// Offsets of the fields at the same place in every BHS (§11.2.1).
/// Byte 0: the I bit and the opcode.
const OPCODE: usize = 0;
/// Byte 1: the F bit and the opcode-specific flags.
const FLAGS: usize = 1;
/// Byte 4: TotalAHSLength in 4-byte words.
const TOTAL_AHS_LENGTH: usize = 4;
/// Bytes 5..8: DataSegmentLength, 24 bits.
const DATA_SEGMENT_LENGTH: usize = 5;
/// Bytes 8..16: LUN, or opcode-specific fields.
const LUN: usize = 8;
/// Bytes 16..20: Initiator Task Tag.
const ITT: usize = 16;
/// Bytes 20..24: Target Transfer Tag, in the PDUs that carry one.
const TTT: usize = 20;
// Every PDU that carries these sequence numbers carries them here (§11.3-§11.19).
/// CmdSN in initiator PDUs.
const CMD_SN: usize = 24;
/// ExpStatSN in initiator PDUs.
const EXP_STAT_SN: usize = 28;
/// StatSN in target PDUs.
const STAT_SN: usize = 24;
/// ExpCmdSN in target PDUs.
const EXP_CMD_SN: usize = 28;
/// MaxCmdSN in target PDUs.
const MAX_CMD_SN: usize = 32;

/// The I (immediate delivery) bit of byte 0 (§11.2.1.1).
const IMMEDIATE: u8 = 0x40;
/// The opcode bits of byte 0.
const OPCODE_MASK: u8 = 0x3f;
/// The F (final) bit of byte 1 (§11.2.1.1); always set in PDUs that are never continued.
const FINAL: u8 = 0x80;
/// The C (continue) bit of byte 1 in Text and Login PDUs (§11.10.2, §11.12.2).
const CONTINUE: u8 = 0x40;

fn get16(b: &Raw, at: usize) -> u16 {
    u16::from_be_bytes(get_bytes(b, at))
}
fn get32(b: &Raw, at: usize) -> u32 {
    u32::from_be_bytes(get_bytes(b, at))
}
fn get_bytes<const N: usize>(b: &Raw, at: usize) -> [u8; N] {
    let mut v = [0u8; N];
    v.copy_from_slice(&b[at..at + N]);
    v
}
fn put16(b: &mut Raw, at: usize, v: u16) {
    put_bytes(b, at, &v.to_be_bytes());
}
fn put32(b: &mut Raw, at: usize, v: u32) {
    put_bytes(b, at, &v.to_be_bytes());
}
fn put_bytes(b: &mut Raw, at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}
/// CmdSN and ExpStatSN, where every initiator PDU that carries them has them.
fn get_initiator_sns(b: &Raw) -> (u32, u32) {
    (get32(b, CMD_SN), get32(b, EXP_STAT_SN))
}
fn put_initiator_sns(b: &mut Raw, cmd_sn: u32, exp_stat_sn: u32) {
    put32(b, CMD_SN, cmd_sn);
    put32(b, EXP_STAT_SN, exp_stat_sn);
}
/// StatSN, ExpCmdSN and MaxCmdSN, where every target PDU that carries them has them.
fn get_target_sns(b: &Raw) -> (u32, u32, u32) {
    (
        get32(b, STAT_SN),
        get32(b, EXP_CMD_SN),
        get32(b, MAX_CMD_SN),
    )
}
fn put_target_sns(b: &mut Raw, stat_sn: u32, exp_cmd_sn: u32, max_cmd_sn: u32) {
    put32(b, STAT_SN, stat_sn);
    put32(b, EXP_CMD_SN, exp_cmd_sn);
    put32(b, MAX_CMD_SN, max_cmd_sn);
}
/// LUN, ITT and TTT, in the PDUs that carry all three at their shared offsets.
fn get_tags(b: &Raw) -> ([u8; 8], u32, u32) {
    (get_bytes(b, LUN), get32(b, ITT), get32(b, TTT))
}
fn put_tags(b: &mut Raw, lun: &[u8; 8], itt: u32, ttt: u32) {
    put_bytes(b, LUN, lun);
    put32(b, ITT, itt);
    put32(b, TTT, ttt);
}
fn flag(byte: u8, mask: u8) -> bool {
    byte & mask != 0
}
fn bit(on: bool, mask: u8) -> u8 {
    if on {
        mask
    } else {
        0
    }
}

/// One PDU type's BHS layout (§11): where its fields sit in the 48 bytes. The opcode is not
/// here: the opcode table below writes and reads it.
trait Layout: Sized {
    /// Read the fields out of a header whose opcode is this type's.
    fn decode(b: &Raw) -> Self;
    /// Write the fields into a zeroed header whose byte 0 already holds the opcode (a request
    /// adds its I bit there). TotalAHSLength and DataSegmentLength are left to the frame.
    fn encode(&self, b: &mut Raw);
}

/// The opcode table of §11.1.1, written once: it defines [`Opcode`], the [`Bhs`] enum with
/// one variant per PDU type (named like its struct), and the dispatch from one to the other.
macro_rules! pdu_types {
    ($($name:ident = $code:literal,)*) => {
        /// PDU opcodes (§11.1.1 table of §10.2.1.2).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Opcode {
            $($name = $code,)*
        }

        impl Opcode {
            /// The opcode for the low 6 bits of BHS byte 0, if it is one RFC 7143 defines.
            pub fn from_u8(v: u8) -> Option<Opcode> {
                match v & OPCODE_MASK {
                    $($code => Some(Opcode::$name),)*
                    _ => None,
                }
            }
        }

        /// A typed Basic Header Segment: one variant per PDU type of RFC 7143 §11, plus
        /// `Unknown` for opcodes RFC 7143 does not define (vendor-specific or garbage), kept
        /// raw so the receiver can answer with a Reject that quotes it.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Bhs {
            $($name($name),)*
            Unknown(Box<[u8; BHS_LEN]>),
        }

        impl Bhs {
            /// The opcode, or `None` for [`Bhs::Unknown`].
            pub fn opcode(&self) -> Option<Opcode> {
                match self {
                    $(Bhs::$name(_) => Some(Opcode::$name),)*
                    Bhs::Unknown(_) => None,
                }
            }

            /// Parse a BHS. Total: every 48-byte value parses (unknown opcodes become
            /// [`Bhs::Unknown`]); the semantic checks belong to the receiver, which knows its
            /// state.
            pub fn decode(b: &[u8; BHS_LEN]) -> Bhs {
                match Opcode::from_u8(b[OPCODE]) {
                    $(Some(Opcode::$name) => Bhs::$name($name::decode(b)),)*
                    None => Bhs::Unknown(Box::new(*b)),
                }
            }

            /// Write this header into `b`. TotalAHSLength and DataSegmentLength (bytes 4..8)
            /// are left zero; [`Pdu::encode`] fills them from the AHS and data it carries.
            pub fn encode(&self, b: &mut [u8; BHS_LEN]) {
                *b = [0u8; BHS_LEN];
                match self {
                    $(Bhs::$name(p) => {
                        b[OPCODE] = Opcode::$name as u8;
                        p.encode(b);
                    })*
                    Bhs::Unknown(raw) => {
                        *b = **raw;
                        b[TOTAL_AHS_LENGTH..LUN].fill(0);
                    }
                }
            }
        }
    };
}

pdu_types! {
    NopOut = 0x00,
    ScsiCommand = 0x01,
    TaskMgmtRequest = 0x02,
    LoginRequest = 0x03,
    TextRequest = 0x04,
    DataOut = 0x05,
    LogoutRequest = 0x06,
    SnackRequest = 0x10,
    NopIn = 0x20,
    ScsiResponse = 0x21,
    TaskMgmtResponse = 0x22,
    LoginResponse = 0x23,
    TextResponse = 0x24,
    DataIn = 0x25,
    LogoutResponse = 0x26,
    R2t = 0x31,
    AsyncMessage = 0x32,
    Reject = 0x3f,
}

impl Bhs {
    /// The Initiator Task Tag, as the header carries it at bytes 16..20: 0xffffffff for Async
    /// Message and Reject.
    pub fn itt(&self) -> u32 {
        let mut b = [0u8; BHS_LEN];
        self.encode(&mut b);
        get32(&b, ITT)
    }
}

impl Opcode {
    /// True for PDUs an initiator sends.
    pub fn is_initiator(self) -> bool {
        (self as u8) & 0x20 == 0
    }
}
