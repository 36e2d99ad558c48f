//! Login Request (RFC 7143 §11.12) and Login Response (§11.13): the stages they move
//! through and the status classes and details of the response.

use super::{
    bit, flag, get16, get32, get_bytes, get_initiator_sns, get_target_sns, put16, put32, put_bytes,
    put_initiator_sns, put_target_sns, Layout, Raw, CONTINUE, FLAGS, IMMEDIATE, ITT, OPCODE,
};

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

// The layout both login PDUs share (§11.12.1-§11.12.5, §11.13.1-§11.13.3).
/// The T (transit) bit of the flags byte.
const TRANSIT: u8 = 0x80;
/// CSG sits in bits 2-3 of the flags byte, NSG in bits 0-1.
const CSG_SHIFT: u8 = 2;
/// Version-max.
const VERSION_MAX: usize = 2;
/// Version-min (request) or Version-active (response).
const VERSION_OTHER: usize = 3;
/// ISID, 6 bytes.
const ISID: usize = 8;
/// TSIH.
const TSIH: usize = 14;

/// The flags byte: T, C, CSG and NSG.
fn stage_flags(transit: bool, cont: bool, csg: Stage, nsg: Stage) -> u8 {
    bit(transit, TRANSIT) | bit(cont, CONTINUE) | ((csg as u8) << CSG_SHIFT) | nsg as u8
}

/// The flags byte read back: `(transit, cont, csg, nsg)`.
fn read_stage_flags(f: u8) -> (bool, bool, Stage, Stage) {
    (
        flag(f, TRANSIT),
        flag(f, CONTINUE),
        Stage::from_bits(f >> CSG_SHIFT),
        Stage::from_bits(f),
    )
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

impl LoginRequest {
    /// CID (§11.12.6).
    const CID: usize = 20;
}

impl Layout for LoginRequest {
    fn decode(b: &Raw) -> Self {
        let (cmd_sn, exp_stat_sn) = get_initiator_sns(b);
        let (transit, cont, csg, nsg) = read_stage_flags(b[FLAGS]);
        LoginRequest {
            transit,
            cont,
            csg,
            nsg,
            version_max: b[VERSION_MAX],
            version_min: b[VERSION_OTHER],
            isid: get_bytes(b, ISID),
            tsih: get16(b, TSIH),
            itt: get32(b, ITT),
            cid: get16(b, Self::CID),
            cmd_sn,
            exp_stat_sn,
        }
    }
    fn encode(&self, b: &mut Raw) {
        b[OPCODE] |= IMMEDIATE;
        b[FLAGS] = stage_flags(self.transit, self.cont, self.csg, self.nsg);
        b[VERSION_MAX] = self.version_max;
        b[VERSION_OTHER] = self.version_min;
        put_bytes(b, ISID, &self.isid);
        put16(b, TSIH, self.tsih);
        put32(b, ITT, self.itt);
        put16(b, Self::CID, self.cid);
        put_initiator_sns(b, self.cmd_sn, self.exp_stat_sn);
    }
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
    /// Status-Class and Status-Detail (§11.13.5).
    const STATUS_CLASS: usize = 36;
    const STATUS_DETAIL: usize = 37;

    /// Status class and detail as one number, comparable with [`login_status`] constants.
    pub fn status(&self) -> u16 {
        (u16::from(self.status_class) << 8) | u16::from(self.status_detail)
    }
}

impl Layout for LoginResponse {
    fn decode(b: &Raw) -> Self {
        let (stat_sn, exp_cmd_sn, max_cmd_sn) = get_target_sns(b);
        let (transit, cont, csg, nsg) = read_stage_flags(b[FLAGS]);
        LoginResponse {
            transit,
            cont,
            csg,
            nsg,
            version_max: b[VERSION_MAX],
            version_active: b[VERSION_OTHER],
            isid: get_bytes(b, ISID),
            tsih: get16(b, TSIH),
            itt: get32(b, ITT),
            stat_sn,
            exp_cmd_sn,
            max_cmd_sn,
            status_class: b[Self::STATUS_CLASS],
            status_detail: b[Self::STATUS_DETAIL],
        }
    }
    fn encode(&self, b: &mut Raw) {
        b[FLAGS] = stage_flags(self.transit, self.cont, self.csg, self.nsg);
        b[VERSION_MAX] = self.version_max;
        b[VERSION_OTHER] = self.version_active;
        put_bytes(b, ISID, &self.isid);
        put16(b, TSIH, self.tsih);
        put32(b, ITT, self.itt);
        put_target_sns(b, self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn);
        b[Self::STATUS_CLASS] = self.status_class;
        b[Self::STATUS_DETAIL] = self.status_detail;
    }
}
