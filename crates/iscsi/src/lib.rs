//! Pure iSCSI encodings (RFC 7143), shared by the target (`ironlun-fabric`) and the initiator.
//! No I/O, no runtime, no randomness: callers own sockets, clocks and random bytes.
//!
//! Layout:
//! * [`pdu`]: the PDU types of §11 as typed structs ([`Bhs`]), [`Pdu`] framing with AHS,
//!   padding and digests, check-then-parse decoding ([`check_frame`], [`decode_frame`],
//!   [`Decoder`]), status / reason / function code constants.
//! * [`digest`]: CRC32C header and data digests (§12.1).
//! * [`text`]: `key=value` text parsing and encoding with the §6.1 limits, continuation.
//! * [`negotiation`]: the §13 key catalogue, result functions, responder ([`negotiation::respond`])
//!   and originator ([`negotiation::conclude`]) sides, [`negotiation::OperationalParams`].
//! * [`chap`]: CHAP (§12.1.3) with MD5 and SHA-256, binary value encodings.
//! * [`serial`]: serial number arithmetic (CmdSN windows) and the 8-byte LUN field.

// Tests may unwrap: a panic there is a test failure, not a wire input.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod chap;
pub mod digest;
pub mod negotiation;
pub mod pdu;
pub mod serial;
pub mod text;

#[cfg(test)]
mod pdu_tests;

pub use pdu::{
    check_frame, decode_frame, AsyncMessage, Bhs, DataIn, DataOut, Decoder, Digests, FrameCheck,
    LoginRequest, LoginResponse, LogoutRequest, LogoutResponse, NopIn, NopOut, Opcode, Pdu,
    PduError, R2t, Reject, ScsiCommand, ScsiResponse, SnackRequest, Stage, TaskMgmtRequest,
    TaskMgmtResponse, TextRequest, TextResponse, BHS_LEN, RESERVED_TAG,
};

/// The only iSCSI version there is (Version-max / Version-min / Version-active, §11.12.4).
pub const ISCSI_VERSION: u8 = 0x00;
