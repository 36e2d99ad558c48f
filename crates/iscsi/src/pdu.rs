//! iSCSI PDUs (RFC 7143 §11): the 48-byte Basic Header Segment, Additional Header Segments,
//! the padded data segment, and the optional CRC32C header and data digests (§11.1, §12.1).
//!
//! Every PDU type of §11 is a typed struct inside [`Bhs`]. A whole PDU is a [`Pdu`]: the typed
//! header, the raw AHS bytes and the data segment (without padding). Decoding is two steps, the
//! way a stream reader wants it: [`check_frame`] looks at the first bytes only and says how long
//! the frame is (or how many more bytes are needed), then [`decode_frame`] verifies digests and
//! parses. [`Decoder`] combines both over a `BytesMut` read buffer.

use bytes::{BufMut, Bytes, BytesMut};

use crate::digest::crc32c;

/// Length of the Basic Header Segment.
pub const BHS_LEN: usize = 48;
/// Largest DataSegmentLength the 24-bit field can carry.
pub const MAX_DATA_SEGMENT_LEN: u32 = 0x00ff_ffff;
/// The reserved tag value (ITT / TTT "no tag", §11.2.1.8, §11.18.4).
pub const RESERVED_TAG: u32 = 0xffff_ffff;

/// PDU opcodes (§11.1.1 table of §10.2.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
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

impl Opcode {
    /// The opcode for the low 6 bits of BHS byte 0, if it is one RFC 7143 defines.
    pub fn from_u8(v: u8) -> Option<Opcode> {
        use Opcode::*;
        Some(match v & 0x3f {
            0x00 => NopOut,
            0x01 => ScsiCommand,
            0x02 => TaskMgmtRequest,
            0x03 => LoginRequest,
            0x04 => TextRequest,
            0x05 => DataOut,
            0x06 => LogoutRequest,
            0x10 => SnackRequest,
            0x20 => NopIn,
            0x21 => ScsiResponse,
            0x22 => TaskMgmtResponse,
            0x23 => LoginResponse,
            0x24 => TextResponse,
            0x25 => DataIn,
            0x26 => LogoutResponse,
            0x31 => R2t,
            0x32 => AsyncMessage,
            0x3f => Reject,
            _ => return None,
        })
    }
    /// True for PDUs an initiator sends.
    pub fn is_initiator(self) -> bool {
        (self as u8) & 0x20 == 0
    }
}

/// Login stages (CSG/NSG, §11.12.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    Security = 0,
    Operational = 1,
    /// Value 2 is reserved; kept so a decoded header round-trips and can be refused.
    Reserved = 2,
    FullFeature = 3,
}

impl Stage {
    pub fn from_bits(v: u8) -> Stage {
        match v & 3 {
            0 => Stage::Security,
            1 => Stage::Operational,
            2 => Stage::Reserved,
            _ => Stage::FullFeature,
        }
    }
}

/// SCSI Command task attributes (§11.3.1.3, ATTR field).
pub mod task_attr {
    pub const UNTAGGED: u8 = 0;
    pub const SIMPLE: u8 = 1;
    pub const ORDERED: u8 = 2;
    pub const HEAD_OF_QUEUE: u8 = 3;
    pub const ACA: u8 = 4;
}

/// Task management function codes (§11.5.1).
pub mod tmf_function {
    pub const ABORT_TASK: u8 = 1;
    pub const ABORT_TASK_SET: u8 = 2;
    pub const CLEAR_ACA: u8 = 3;
    pub const CLEAR_TASK_SET: u8 = 4;
    pub const LOGICAL_UNIT_RESET: u8 = 5;
    pub const TARGET_WARM_RESET: u8 = 6;
    pub const TARGET_COLD_RESET: u8 = 7;
    pub const TASK_REASSIGN: u8 = 8;
}

/// Task management response codes (§11.6.1).
pub mod tmf_response {
    pub const FUNCTION_COMPLETE: u8 = 0;
    pub const TASK_DOES_NOT_EXIST: u8 = 1;
    pub const LUN_DOES_NOT_EXIST: u8 = 2;
    pub const TASK_STILL_ALLEGIANT: u8 = 3;
    pub const REASSIGNMENT_NOT_SUPPORTED: u8 = 4;
    pub const NOT_SUPPORTED: u8 = 5;
    pub const AUTHORIZATION_FAILED: u8 = 6;
    pub const REJECTED: u8 = 255;
}

/// Logout reason codes (§11.14.1) and response codes (§11.15.1).
pub mod logout {
    pub const CLOSE_SESSION: u8 = 0;
    pub const CLOSE_CONNECTION: u8 = 1;
    pub const REMOVE_CONNECTION_FOR_RECOVERY: u8 = 2;

    pub const RESP_SUCCESS: u8 = 0;
    pub const RESP_CID_NOT_FOUND: u8 = 1;
    pub const RESP_RECOVERY_NOT_SUPPORTED: u8 = 2;
    pub const RESP_CLEANUP_FAILED: u8 = 3;
}

/// Reject reasons (§11.17.1).
pub mod reject_reason {
    pub const DATA_DIGEST_ERROR: u8 = 0x02;
    pub const SNACK_REJECT: u8 = 0x03;
    pub const PROTOCOL_ERROR: u8 = 0x04;
    pub const COMMAND_NOT_SUPPORTED: u8 = 0x05;
    pub const IMMEDIATE_COMMAND_REJECT: u8 = 0x06;
    pub const TASK_IN_PROGRESS: u8 = 0x07;
    pub const INVALID_DATA_ACK: u8 = 0x08;
    pub const INVALID_PDU_FIELD: u8 = 0x09;
    pub const LONG_OPERATION_REJECT: u8 = 0x0a;
    pub const NEGOTIATION_RESET: u8 = 0x0b;
    pub const WAITING_FOR_LOGOUT: u8 = 0x0c;
}

/// Asynchronous event codes (§11.9.1).
pub mod async_event {
    pub const SCSI_ASYNC_EVENT: u8 = 0;
    pub const LOGOUT_REQUEST: u8 = 1;
    pub const CONNECTION_DROP: u8 = 2;
    pub const SESSION_DROP: u8 = 3;
    pub const NEGOTIATION_REQUEST: u8 = 4;
    pub const TASK_TERMINATION: u8 = 5;
    pub const VENDOR_SPECIFIC: u8 = 255;
}

/// SCSI Response "Response" field (§11.4.3).
pub mod scsi_response {
    pub const COMMAND_COMPLETED: u8 = 0x00;
    pub const TARGET_FAILURE: u8 = 0x01;
}

/// Login Response status class and detail (§11.13.5), as `(class << 8) | detail`.
pub mod login_status {
    pub const SUCCESS: u16 = 0x0000;
    pub const TARGET_MOVED_TEMPORARILY: u16 = 0x0101;
    pub const TARGET_MOVED_PERMANENTLY: u16 = 0x0102;
    pub const INITIATOR_ERROR: u16 = 0x0200;
    pub const AUTHENTICATION_FAILURE: u16 = 0x0201;
    pub const AUTHORIZATION_FAILURE: u16 = 0x0202;
    pub const NOT_FOUND: u16 = 0x0203;
    pub const TARGET_REMOVED: u16 = 0x0204;
    pub const UNSUPPORTED_VERSION: u16 = 0x0205;
    pub const TOO_MANY_CONNECTIONS: u16 = 0x0206;
    pub const MISSING_PARAMETER: u16 = 0x0207;
    pub const CANT_INCLUDE_IN_SESSION: u16 = 0x0208;
    pub const SESSION_TYPE_NOT_SUPPORTED: u16 = 0x0209;
    pub const SESSION_DOES_NOT_EXIST: u16 = 0x020a;
    pub const INVALID_DURING_LOGIN: u16 = 0x020b;
    pub const TARGET_ERROR: u16 = 0x0300;
    pub const SERVICE_UNAVAILABLE: u16 = 0x0301;
    pub const OUT_OF_RESOURCES: u16 = 0x0302;
}

fn be16(b: &[u8; BHS_LEN], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}
fn be32(b: &[u8; BHS_LEN], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
fn put16(b: &mut [u8; BHS_LEN], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_be_bytes());
}
fn put32(b: &mut [u8; BHS_LEN], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}
fn lun8(b: &[u8; BHS_LEN]) -> [u8; 8] {
    let mut l = [0u8; 8];
    l.copy_from_slice(&b[8..16]);
    l
}
fn flag(b: u8, mask: u8) -> bool {
    b & mask != 0
}
fn bit(on: bool, mask: u8) -> u8 {
    if on {
        mask
    } else {
        0
    }
}

/// NOP-Out (§11.18).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NopOut {
    pub immediate: bool,
    pub lun: [u8; 8],
    pub itt: u32,
    pub ttt: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

/// SCSI Command (§11.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScsiCommand {
    pub immediate: bool,
    /// F: no unsolicited Data-Out PDUs follow.
    pub final_: bool,
    pub read: bool,
    pub write: bool,
    /// ATTR, see [`task_attr`].
    pub attr: u8,
    pub lun: [u8; 8],
    pub itt: u32,
    pub expected_data_length: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    pub cdb: [u8; 16],
}

/// Task Management Function Request (§11.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskMgmtRequest {
    pub immediate: bool,
    /// Function code (7 bits), see [`tmf_function`].
    pub function: u8,
    pub lun: [u8; 8],
    pub itt: u32,
    pub referenced_task_tag: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    pub ref_cmd_sn: u32,
    pub exp_data_sn: u32,
}

/// Login Request (§11.12). The I bit is always set on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginRequest {
    pub transit: bool,
    pub cont: bool,
    pub csg: Stage,
    pub nsg: Stage,
    pub version_max: u8,
    pub version_min: u8,
    pub isid: [u8; 6],
    pub tsih: u16,
    pub itt: u32,
    pub cid: u16,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

/// Text Request (§11.10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextRequest {
    pub immediate: bool,
    pub final_: bool,
    pub cont: bool,
    pub lun: [u8; 8],
    pub itt: u32,
    pub ttt: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

/// SCSI Data-Out (§11.7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataOut {
    pub final_: bool,
    pub lun: [u8; 8],
    pub itt: u32,
    pub ttt: u32,
    pub exp_stat_sn: u32,
    pub data_sn: u32,
    pub buffer_offset: u32,
}

/// Logout Request (§11.14).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoutRequest {
    pub immediate: bool,
    /// Reason code (7 bits), see [`logout`].
    pub reason: u8,
    pub itt: u32,
    pub cid: u16,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

/// SNACK Request (§11.16).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnackRequest {
    /// Type (4 bits): 0 Data/R2T, 1 Status, 2 DataACK, 3 R-Data.
    pub snack_type: u8,
    pub lun: [u8; 8],
    pub itt: u32,
    pub ttt: u32,
    pub exp_stat_sn: u32,
    pub beg_run: u32,
    pub run_length: u32,
}

/// NOP-In (§11.19).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NopIn {
    pub lun: [u8; 8],
    pub itt: u32,
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
}

/// SCSI Response (§11.4). The data segment carries SenseLength + sense + response data.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ScsiResponse {
    pub bidi_overflow: bool,
    pub bidi_underflow: bool,
    pub overflow: bool,
    pub underflow: bool,
    pub response: u8,
    pub status: u8,
    pub itt: u32,
    pub snack_tag: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub exp_data_sn: u32,
    pub bidi_residual: u32,
    pub residual: u32,
}

/// Task Management Function Response (§11.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskMgmtResponse {
    /// See [`tmf_response`].
    pub response: u8,
    pub itt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
}

/// Login Response (§11.13).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginResponse {
    pub transit: bool,
    pub cont: bool,
    pub csg: Stage,
    pub nsg: Stage,
    pub version_max: u8,
    pub version_active: u8,
    pub isid: [u8; 6],
    pub tsih: u16,
    pub itt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub status_class: u8,
    pub status_detail: u8,
}

impl LoginResponse {
    /// Status class and detail as one number, comparable with [`login_status`] constants.
    pub fn status(&self) -> u16 {
        (u16::from(self.status_class) << 8) | u16::from(self.status_detail)
    }
}

/// Text Response (§11.11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextResponse {
    pub final_: bool,
    pub cont: bool,
    pub lun: [u8; 8],
    pub itt: u32,
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
}

/// SCSI Data-In (§11.7).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DataIn {
    pub final_: bool,
    /// A: the target requests a DataACK (ERL > 0 only).
    pub ack: bool,
    pub overflow: bool,
    pub underflow: bool,
    /// S bit set with this status: the PDU carries the command's status.
    pub status: Option<u8>,
    pub lun: [u8; 8],
    pub itt: u32,
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub data_sn: u32,
    pub buffer_offset: u32,
    pub residual: u32,
}

/// Logout Response (§11.15).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoutResponse {
    /// See [`logout`] `RESP_*`.
    pub response: u8,
    pub itt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub time2wait: u16,
    pub time2retain: u16,
}

/// Ready To Transfer (§11.8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct R2t {
    pub lun: [u8; 8],
    pub itt: u32,
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub r2t_sn: u32,
    pub buffer_offset: u32,
    pub desired_length: u32,
}

/// Asynchronous Message (§11.9). ITT is always 0xffffffff on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsyncMessage {
    pub lun: [u8; 8],
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    /// See [`async_event`].
    pub event: u8,
    pub vcode: u8,
    pub param1: u16,
    pub param2: u16,
    pub param3: u16,
}

/// Reject (§11.17). ITT is always 0xffffffff; the data segment is the rejected PDU's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// See [`reject_reason`].
    pub reason: u8,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub data_sn_r2t_sn: u32,
}

/// A typed Basic Header Segment: one variant per PDU type of RFC 7143 §11, plus `Unknown`
/// for opcodes RFC 7143 does not define (vendor-specific or garbage), kept raw so the
/// receiver can answer with a Reject that quotes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bhs {
    NopOut(NopOut),
    ScsiCommand(ScsiCommand),
    TaskMgmtRequest(TaskMgmtRequest),
    LoginRequest(LoginRequest),
    TextRequest(TextRequest),
    DataOut(DataOut),
    LogoutRequest(LogoutRequest),
    SnackRequest(SnackRequest),
    NopIn(NopIn),
    ScsiResponse(ScsiResponse),
    TaskMgmtResponse(TaskMgmtResponse),
    LoginResponse(LoginResponse),
    TextResponse(TextResponse),
    DataIn(DataIn),
    LogoutResponse(LogoutResponse),
    R2t(R2t),
    AsyncMessage(AsyncMessage),
    Reject(Reject),
    Unknown(Box<[u8; BHS_LEN]>),
}

impl Bhs {
    /// The opcode, or `None` for [`Bhs::Unknown`].
    pub fn opcode(&self) -> Option<Opcode> {
        use Opcode as O;
        Some(match self {
            Bhs::NopOut(_) => O::NopOut,
            Bhs::ScsiCommand(_) => O::ScsiCommand,
            Bhs::TaskMgmtRequest(_) => O::TaskMgmtRequest,
            Bhs::LoginRequest(_) => O::LoginRequest,
            Bhs::TextRequest(_) => O::TextRequest,
            Bhs::DataOut(_) => O::DataOut,
            Bhs::LogoutRequest(_) => O::LogoutRequest,
            Bhs::SnackRequest(_) => O::SnackRequest,
            Bhs::NopIn(_) => O::NopIn,
            Bhs::ScsiResponse(_) => O::ScsiResponse,
            Bhs::TaskMgmtResponse(_) => O::TaskMgmtResponse,
            Bhs::LoginResponse(_) => O::LoginResponse,
            Bhs::TextResponse(_) => O::TextResponse,
            Bhs::DataIn(_) => O::DataIn,
            Bhs::LogoutResponse(_) => O::LogoutResponse,
            Bhs::R2t(_) => O::R2t,
            Bhs::AsyncMessage(_) => O::AsyncMessage,
            Bhs::Reject(_) => O::Reject,
            Bhs::Unknown(_) => return None,
        })
    }

    /// The Initiator Task Tag (bytes 16..20); 0xffffffff for Async Message and Reject.
    pub fn itt(&self) -> u32 {
        match self {
            Bhs::NopOut(p) => p.itt,
            Bhs::ScsiCommand(p) => p.itt,
            Bhs::TaskMgmtRequest(p) => p.itt,
            Bhs::LoginRequest(p) => p.itt,
            Bhs::TextRequest(p) => p.itt,
            Bhs::DataOut(p) => p.itt,
            Bhs::LogoutRequest(p) => p.itt,
            Bhs::SnackRequest(p) => p.itt,
            Bhs::NopIn(p) => p.itt,
            Bhs::ScsiResponse(p) => p.itt,
            Bhs::TaskMgmtResponse(p) => p.itt,
            Bhs::LoginResponse(p) => p.itt,
            Bhs::TextResponse(p) => p.itt,
            Bhs::DataIn(p) => p.itt,
            Bhs::LogoutResponse(p) => p.itt,
            Bhs::R2t(p) => p.itt,
            Bhs::AsyncMessage(_) | Bhs::Reject(_) => RESERVED_TAG,
            Bhs::Unknown(raw) => be32(raw, 16),
        }
    }

    /// Parse a BHS. Total: every 48-byte value parses (unknown opcodes become [`Bhs::Unknown`]);
    /// the semantic checks belong to the receiver, which knows its state.
    pub fn decode(b: &[u8; BHS_LEN]) -> Bhs {
        let imm = flag(b[0], 0x40);
        let f = b[1];
        let Some(op) = Opcode::from_u8(b[0]) else {
            return Bhs::Unknown(Box::new(*b));
        };
        match op {
            Opcode::NopOut => Bhs::NopOut(NopOut {
                immediate: imm,
                lun: lun8(b),
                itt: be32(b, 16),
                ttt: be32(b, 20),
                cmd_sn: be32(b, 24),
                exp_stat_sn: be32(b, 28),
            }),
            Opcode::ScsiCommand => {
                let mut cdb = [0u8; 16];
                cdb.copy_from_slice(&b[32..48]);
                Bhs::ScsiCommand(ScsiCommand {
                    immediate: imm,
                    final_: flag(f, 0x80),
                    read: flag(f, 0x40),
                    write: flag(f, 0x20),
                    attr: f & 0x07,
                    lun: lun8(b),
                    itt: be32(b, 16),
                    expected_data_length: be32(b, 20),
                    cmd_sn: be32(b, 24),
                    exp_stat_sn: be32(b, 28),
                    cdb,
                })
            }
            Opcode::TaskMgmtRequest => Bhs::TaskMgmtRequest(TaskMgmtRequest {
                immediate: imm,
                function: f & 0x7f,
                lun: lun8(b),
                itt: be32(b, 16),
                referenced_task_tag: be32(b, 20),
                cmd_sn: be32(b, 24),
                exp_stat_sn: be32(b, 28),
                ref_cmd_sn: be32(b, 32),
                exp_data_sn: be32(b, 36),
            }),
            Opcode::LoginRequest => {
                let mut isid = [0u8; 6];
                isid.copy_from_slice(&b[8..14]);
                Bhs::LoginRequest(LoginRequest {
                    transit: flag(f, 0x80),
                    cont: flag(f, 0x40),
                    csg: Stage::from_bits(f >> 2),
                    nsg: Stage::from_bits(f),
                    version_max: b[2],
                    version_min: b[3],
                    isid,
                    tsih: be16(b, 14),
                    itt: be32(b, 16),
                    cid: be16(b, 20),
                    cmd_sn: be32(b, 24),
                    exp_stat_sn: be32(b, 28),
                })
            }
            Opcode::TextRequest => Bhs::TextRequest(TextRequest {
                immediate: imm,
                final_: flag(f, 0x80),
                cont: flag(f, 0x40),
                lun: lun8(b),
                itt: be32(b, 16),
                ttt: be32(b, 20),
                cmd_sn: be32(b, 24),
                exp_stat_sn: be32(b, 28),
            }),
            Opcode::DataOut => Bhs::DataOut(DataOut {
                final_: flag(f, 0x80),
                lun: lun8(b),
                itt: be32(b, 16),
                ttt: be32(b, 20),
                exp_stat_sn: be32(b, 28),
                data_sn: be32(b, 36),
                buffer_offset: be32(b, 40),
            }),
            Opcode::LogoutRequest => Bhs::LogoutRequest(LogoutRequest {
                immediate: imm,
                reason: f & 0x7f,
                itt: be32(b, 16),
                cid: be16(b, 20),
                cmd_sn: be32(b, 24),
                exp_stat_sn: be32(b, 28),
            }),
            Opcode::SnackRequest => Bhs::SnackRequest(SnackRequest {
                snack_type: f & 0x0f,
                lun: lun8(b),
                itt: be32(b, 16),
                ttt: be32(b, 20),
                exp_stat_sn: be32(b, 28),
                beg_run: be32(b, 40),
                run_length: be32(b, 44),
            }),
            Opcode::NopIn => Bhs::NopIn(NopIn {
                lun: lun8(b),
                itt: be32(b, 16),
                ttt: be32(b, 20),
                stat_sn: be32(b, 24),
                exp_cmd_sn: be32(b, 28),
                max_cmd_sn: be32(b, 32),
            }),
            Opcode::ScsiResponse => Bhs::ScsiResponse(ScsiResponse {
                bidi_overflow: flag(f, 0x10),
                bidi_underflow: flag(f, 0x08),
                overflow: flag(f, 0x04),
                underflow: flag(f, 0x02),
                response: b[2],
                status: b[3],
                itt: be32(b, 16),
                snack_tag: be32(b, 20),
                stat_sn: be32(b, 24),
                exp_cmd_sn: be32(b, 28),
                max_cmd_sn: be32(b, 32),
                exp_data_sn: be32(b, 36),
                bidi_residual: be32(b, 40),
                residual: be32(b, 44),
            }),
            Opcode::TaskMgmtResponse => Bhs::TaskMgmtResponse(TaskMgmtResponse {
                response: b[2],
                itt: be32(b, 16),
                stat_sn: be32(b, 24),
                exp_cmd_sn: be32(b, 28),
                max_cmd_sn: be32(b, 32),
            }),
            Opcode::LoginResponse => {
                let mut isid = [0u8; 6];
                isid.copy_from_slice(&b[8..14]);
                Bhs::LoginResponse(LoginResponse {
                    transit: flag(f, 0x80),
                    cont: flag(f, 0x40),
                    csg: Stage::from_bits(f >> 2),
                    nsg: Stage::from_bits(f),
                    version_max: b[2],
                    version_active: b[3],
                    isid,
                    tsih: be16(b, 14),
                    itt: be32(b, 16),
                    stat_sn: be32(b, 24),
                    exp_cmd_sn: be32(b, 28),
                    max_cmd_sn: be32(b, 32),
                    status_class: b[36],
                    status_detail: b[37],
                })
            }
            Opcode::TextResponse => Bhs::TextResponse(TextResponse {
                final_: flag(f, 0x80),
                cont: flag(f, 0x40),
                lun: lun8(b),
                itt: be32(b, 16),
                ttt: be32(b, 20),
                stat_sn: be32(b, 24),
                exp_cmd_sn: be32(b, 28),
                max_cmd_sn: be32(b, 32),
            }),
            Opcode::DataIn => Bhs::DataIn(DataIn {
                final_: flag(f, 0x80),
                ack: flag(f, 0x40),
                overflow: flag(f, 0x04),
                underflow: flag(f, 0x02),
                status: if flag(f, 0x01) { Some(b[3]) } else { None },
                lun: lun8(b),
                itt: be32(b, 16),
                ttt: be32(b, 20),
                stat_sn: be32(b, 24),
                exp_cmd_sn: be32(b, 28),
                max_cmd_sn: be32(b, 32),
                data_sn: be32(b, 36),
                buffer_offset: be32(b, 40),
                residual: be32(b, 44),
            }),
            Opcode::LogoutResponse => Bhs::LogoutResponse(LogoutResponse {
                response: b[2],
                itt: be32(b, 16),
                stat_sn: be32(b, 24),
                exp_cmd_sn: be32(b, 28),
                max_cmd_sn: be32(b, 32),
                time2wait: be16(b, 40),
                time2retain: be16(b, 42),
            }),
            Opcode::R2t => Bhs::R2t(R2t {
                lun: lun8(b),
                itt: be32(b, 16),
                ttt: be32(b, 20),
                stat_sn: be32(b, 24),
                exp_cmd_sn: be32(b, 28),
                max_cmd_sn: be32(b, 32),
                r2t_sn: be32(b, 36),
                buffer_offset: be32(b, 40),
                desired_length: be32(b, 44),
            }),
            Opcode::AsyncMessage => Bhs::AsyncMessage(AsyncMessage {
                lun: lun8(b),
                stat_sn: be32(b, 24),
                exp_cmd_sn: be32(b, 28),
                max_cmd_sn: be32(b, 32),
                event: b[36],
                vcode: b[37],
                param1: be16(b, 38),
                param2: be16(b, 40),
                param3: be16(b, 42),
            }),
            Opcode::Reject => Bhs::Reject(Reject {
                reason: b[2],
                stat_sn: be32(b, 24),
                exp_cmd_sn: be32(b, 28),
                max_cmd_sn: be32(b, 32),
                data_sn_r2t_sn: be32(b, 36),
            }),
        }
    }

    /// Write this header into `b`. TotalAHSLength and DataSegmentLength (bytes 4..8) are left
    /// zero; [`Pdu::encode`] fills them from the AHS and data it carries.
    pub fn encode(&self, b: &mut [u8; BHS_LEN]) {
        *b = [0u8; BHS_LEN];
        let imm = |on: bool| bit(on, 0x40);
        match self {
            Bhs::NopOut(p) => {
                b[0] = imm(p.immediate) | Opcode::NopOut as u8;
                b[1] = 0x80;
                b[8..16].copy_from_slice(&p.lun);
                put32(b, 16, p.itt);
                put32(b, 20, p.ttt);
                put32(b, 24, p.cmd_sn);
                put32(b, 28, p.exp_stat_sn);
            }
            Bhs::ScsiCommand(p) => {
                b[0] = imm(p.immediate) | Opcode::ScsiCommand as u8;
                b[1] =
                    bit(p.final_, 0x80) | bit(p.read, 0x40) | bit(p.write, 0x20) | (p.attr & 0x07);
                b[8..16].copy_from_slice(&p.lun);
                put32(b, 16, p.itt);
                put32(b, 20, p.expected_data_length);
                put32(b, 24, p.cmd_sn);
                put32(b, 28, p.exp_stat_sn);
                b[32..48].copy_from_slice(&p.cdb);
            }
            Bhs::TaskMgmtRequest(p) => {
                b[0] = imm(p.immediate) | Opcode::TaskMgmtRequest as u8;
                b[1] = 0x80 | (p.function & 0x7f);
                b[8..16].copy_from_slice(&p.lun);
                put32(b, 16, p.itt);
                put32(b, 20, p.referenced_task_tag);
                put32(b, 24, p.cmd_sn);
                put32(b, 28, p.exp_stat_sn);
                put32(b, 32, p.ref_cmd_sn);
                put32(b, 36, p.exp_data_sn);
            }
            Bhs::LoginRequest(p) => {
                b[0] = 0x40 | Opcode::LoginRequest as u8;
                b[1] =
                    bit(p.transit, 0x80) | bit(p.cont, 0x40) | ((p.csg as u8) << 2) | p.nsg as u8;
                b[2] = p.version_max;
                b[3] = p.version_min;
                b[8..14].copy_from_slice(&p.isid);
                put16(b, 14, p.tsih);
                put32(b, 16, p.itt);
                put16(b, 20, p.cid);
                put32(b, 24, p.cmd_sn);
                put32(b, 28, p.exp_stat_sn);
            }
            Bhs::TextRequest(p) => {
                b[0] = imm(p.immediate) | Opcode::TextRequest as u8;
                b[1] = bit(p.final_, 0x80) | bit(p.cont, 0x40);
                b[8..16].copy_from_slice(&p.lun);
                put32(b, 16, p.itt);
                put32(b, 20, p.ttt);
                put32(b, 24, p.cmd_sn);
                put32(b, 28, p.exp_stat_sn);
            }
            Bhs::DataOut(p) => {
                b[0] = Opcode::DataOut as u8;
                b[1] = bit(p.final_, 0x80);
                b[8..16].copy_from_slice(&p.lun);
                put32(b, 16, p.itt);
                put32(b, 20, p.ttt);
                put32(b, 28, p.exp_stat_sn);
                put32(b, 36, p.data_sn);
                put32(b, 40, p.buffer_offset);
            }
            Bhs::LogoutRequest(p) => {
                b[0] = imm(p.immediate) | Opcode::LogoutRequest as u8;
                b[1] = 0x80 | (p.reason & 0x7f);
                put32(b, 16, p.itt);
                put16(b, 20, p.cid);
                put32(b, 24, p.cmd_sn);
                put32(b, 28, p.exp_stat_sn);
            }
            Bhs::SnackRequest(p) => {
                b[0] = Opcode::SnackRequest as u8;
                b[1] = 0x80 | (p.snack_type & 0x0f);
                b[8..16].copy_from_slice(&p.lun);
                put32(b, 16, p.itt);
                put32(b, 20, p.ttt);
                put32(b, 28, p.exp_stat_sn);
                put32(b, 40, p.beg_run);
                put32(b, 44, p.run_length);
            }
            Bhs::NopIn(p) => {
                b[0] = Opcode::NopIn as u8;
                b[1] = 0x80;
                b[8..16].copy_from_slice(&p.lun);
                put32(b, 16, p.itt);
                put32(b, 20, p.ttt);
                put32(b, 24, p.stat_sn);
                put32(b, 28, p.exp_cmd_sn);
                put32(b, 32, p.max_cmd_sn);
            }
            Bhs::ScsiResponse(p) => {
                b[0] = Opcode::ScsiResponse as u8;
                b[1] = 0x80
                    | bit(p.bidi_overflow, 0x10)
                    | bit(p.bidi_underflow, 0x08)
                    | bit(p.overflow, 0x04)
                    | bit(p.underflow, 0x02);
                b[2] = p.response;
                b[3] = p.status;
                put32(b, 16, p.itt);
                put32(b, 20, p.snack_tag);
                put32(b, 24, p.stat_sn);
                put32(b, 28, p.exp_cmd_sn);
                put32(b, 32, p.max_cmd_sn);
                put32(b, 36, p.exp_data_sn);
                put32(b, 40, p.bidi_residual);
                put32(b, 44, p.residual);
            }
            Bhs::TaskMgmtResponse(p) => {
                b[0] = Opcode::TaskMgmtResponse as u8;
                b[1] = 0x80;
                b[2] = p.response;
                put32(b, 16, p.itt);
                put32(b, 24, p.stat_sn);
                put32(b, 28, p.exp_cmd_sn);
                put32(b, 32, p.max_cmd_sn);
            }
            Bhs::LoginResponse(p) => {
                b[0] = Opcode::LoginResponse as u8;
                b[1] =
                    bit(p.transit, 0x80) | bit(p.cont, 0x40) | ((p.csg as u8) << 2) | p.nsg as u8;
                b[2] = p.version_max;
                b[3] = p.version_active;
                b[8..14].copy_from_slice(&p.isid);
                put16(b, 14, p.tsih);
                put32(b, 16, p.itt);
                put32(b, 24, p.stat_sn);
                put32(b, 28, p.exp_cmd_sn);
                put32(b, 32, p.max_cmd_sn);
                b[36] = p.status_class;
                b[37] = p.status_detail;
            }
            Bhs::TextResponse(p) => {
                b[0] = Opcode::TextResponse as u8;
                b[1] = bit(p.final_, 0x80) | bit(p.cont, 0x40);
                b[8..16].copy_from_slice(&p.lun);
                put32(b, 16, p.itt);
                put32(b, 20, p.ttt);
                put32(b, 24, p.stat_sn);
                put32(b, 28, p.exp_cmd_sn);
                put32(b, 32, p.max_cmd_sn);
            }
            Bhs::DataIn(p) => {
                b[0] = Opcode::DataIn as u8;
                b[1] = bit(p.final_, 0x80)
                    | bit(p.ack, 0x40)
                    | bit(p.overflow, 0x04)
                    | bit(p.underflow, 0x02)
                    | bit(p.status.is_some(), 0x01);
                b[3] = p.status.unwrap_or(0);
                b[8..16].copy_from_slice(&p.lun);
                put32(b, 16, p.itt);
                put32(b, 20, p.ttt);
                put32(b, 24, p.stat_sn);
                put32(b, 28, p.exp_cmd_sn);
                put32(b, 32, p.max_cmd_sn);
                put32(b, 36, p.data_sn);
                put32(b, 40, p.buffer_offset);
                put32(b, 44, p.residual);
            }
            Bhs::LogoutResponse(p) => {
                b[0] = Opcode::LogoutResponse as u8;
                b[1] = 0x80;
                b[2] = p.response;
                put32(b, 16, p.itt);
                put32(b, 24, p.stat_sn);
                put32(b, 28, p.exp_cmd_sn);
                put32(b, 32, p.max_cmd_sn);
                put16(b, 40, p.time2wait);
                put16(b, 42, p.time2retain);
            }
            Bhs::R2t(p) => {
                b[0] = Opcode::R2t as u8;
                b[1] = 0x80;
                b[8..16].copy_from_slice(&p.lun);
                put32(b, 16, p.itt);
                put32(b, 20, p.ttt);
                put32(b, 24, p.stat_sn);
                put32(b, 28, p.exp_cmd_sn);
                put32(b, 32, p.max_cmd_sn);
                put32(b, 36, p.r2t_sn);
                put32(b, 40, p.buffer_offset);
                put32(b, 44, p.desired_length);
            }
            Bhs::AsyncMessage(p) => {
                b[0] = Opcode::AsyncMessage as u8;
                b[1] = 0x80;
                b[8..16].copy_from_slice(&p.lun);
                put32(b, 16, RESERVED_TAG);
                put32(b, 24, p.stat_sn);
                put32(b, 28, p.exp_cmd_sn);
                put32(b, 32, p.max_cmd_sn);
                b[36] = p.event;
                b[37] = p.vcode;
                put16(b, 38, p.param1);
                put16(b, 40, p.param2);
                put16(b, 42, p.param3);
            }
            Bhs::Reject(p) => {
                b[0] = Opcode::Reject as u8;
                b[1] = 0x80;
                b[2] = p.reason;
                put32(b, 16, RESERVED_TAG);
                put32(b, 24, p.stat_sn);
                put32(b, 28, p.exp_cmd_sn);
                put32(b, 32, p.max_cmd_sn);
                put32(b, 36, p.data_sn_r2t_sn);
            }
            Bhs::Unknown(raw) => {
                *b = **raw;
                b[4..8].fill(0);
            }
        }
    }
}

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

/// AHS types (§11.2.1.2).
pub mod ahs_type {
    pub const EXTENDED_CDB: u8 = 1;
    pub const BIDI_READ_LENGTH: u8 = 2;
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

/// The cheap pass of check-then-parse: how long is the frame at the start of `buf`?
/// `max_data` bounds DataSegmentLength (the declared MaxRecvDataSegmentLength, or a small
/// login limit), so a hostile length never makes the reader buffer megabytes.
pub fn check_frame(buf: &[u8], d: Digests, max_data: u32) -> Result<FrameCheck, PduError> {
    if buf.len() < BHS_LEN {
        return Ok(FrameCheck::Incomplete(BHS_LEN - buf.len()));
    }
    let dsl = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]);
    if dsl > max_data {
        return Err(PduError::DataSegmentTooLong {
            len: dsl,
            max: max_data,
        });
    }
    let total = frame_len(buf[4], dsl, d);
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
    let ahs_len = usize::from(raw[4]) * 4;
    let data_len = u32::from_be_bytes([0, raw[5], raw[6], raw[7]]) as usize;
    if frame.len() < frame_len(raw[4], data_len as u32, d) {
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
        raw[4] = (self.ahs.len() / 4) as u8;
        let dl = (self.data.len() as u32).to_be_bytes();
        raw[5..8].copy_from_slice(&dl[1..4]);
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
            let c = crate::digest::crc32c_append(crc32c(&self.data), &t[..pad]);
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

    /// For a SCSI Command: the whole CDB, the 16 BHS bytes followed by any Extended CDB AHS
    /// (§11.3.5, whose first byte is reserved).
    pub fn full_cdb(&self) -> Result<Vec<u8>, &'static str> {
        let Bhs::ScsiCommand(c) = &self.bhs else {
            return Err("not a SCSI Command");
        };
        let mut cdb = c.cdb.to_vec();
        for a in self.ahs_segments()? {
            if a.ahs_type == ahs_type::EXTENDED_CDB {
                if a.data.is_empty() {
                    return Err("empty extended CDB AHS");
                }
                cdb.extend_from_slice(&a.data[1..]);
            }
        }
        Ok(cdb)
    }

    /// For a SCSI Command: the Bidirectional Read Expected Data Transfer Length AHS, if any.
    pub fn bidi_read_length(&self) -> Option<u32> {
        let segs = self.ahs_segments().ok()?;
        segs.iter()
            .find(|a| a.ahs_type == ahs_type::BIDI_READ_LENGTH && a.data.len() >= 5)
            .map(|a| u32::from_be_bytes([a.data[1], a.data[2], a.data[3], a.data[4]]))
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
