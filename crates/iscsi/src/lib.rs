//! Pure iSCSI encodings (RFC 7143), shared by the target (`ironlun-fabric`) and the initiator.
//! No I/O, no runtime, no randomness: callers own sockets, clocks and random bytes.
//!
//! Layout:
//! * [`pdu`] (a folder, §11): `pdu/mod.rs` holds the opcode table that defines [`Opcode`] and
//!   the typed header [`Bhs`], and the field offsets every BHS shares; `pdu/frame.rs` the
//!   framing of a whole [`Pdu`] (AHS, padding, digests) with check-then-parse decoding
//!   ([`check_frame`], [`decode_frame`], [`Decoder`]); then one file per PDU family with its
//!   structs, field offsets, decode and encode side by side, and its code constants:
//!   `nop.rs`, `scsi.rs` (command, response, AHS), `task_mgmt.rs`, `data.rs` (Data-In/Out,
//!   R2T), `async_msg.rs`, `text.rs`, `login.rs`, `logout.rs`, `snack.rs`, `reject.rs`;
//!   `pdu/tests.rs` has a round-trip property test per PDU type.
//! * [`digest`]: CRC32C header and data digests (§12.1).
//! * [`text`]: `key=value` text parsing and encoding with the §6.1 limits, continuation.
//! * [`negotiation`] (a folder, §6.2-§6.6, §13): `negotiation/keys.rs` the key catalogue,
//!   `negotiation/mod.rs` the result functions, responder ([`negotiation::respond`]) and
//!   originator ([`negotiation::conclude`]) sides and [`negotiation::OperationalParams`].
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

pub use pdu::{
    check_frame, decode_frame, AsyncMessage, Bhs, DataIn, DataOut, Decoder, Digests, FrameCheck,
    LoginRequest, LoginResponse, LogoutRequest, LogoutResponse, NopIn, NopOut, Opcode, Pdu,
    PduError, R2t, Reject, ScsiCommand, ScsiResponse, SnackRequest, Stage, TaskMgmtRequest,
    TaskMgmtResponse, TextRequest, TextResponse, BHS_LEN, RESERVED_TAG,
};

/// The only iSCSI version there is (Version-max / Version-min / Version-active, §11.12.4).
pub const ISCSI_VERSION: u8 = 0x00;
