//! Asynchronous Message (RFC 7143 §11.9) and its event codes.

use super::{
    get16, get_bytes, get_target_sns, put16, put32, put_bytes, put_target_sns, Layout, Raw, FINAL,
    FLAGS, ITT, LUN, RESERVED_TAG,
};

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

impl AsyncMessage {
    /// AsyncEvent (§11.9.1).
    const EVENT: usize = 36;
    /// AsyncVCode (§11.9.2).
    const VCODE: usize = 37;
    /// Parameter1..Parameter3 (§11.9.1).
    const PARAM1: usize = 38;
    const PARAM2: usize = 40;
    const PARAM3: usize = 42;
}

impl Layout for AsyncMessage {
    fn decode(b: &Raw) -> Self {
        let (stat_sn, exp_cmd_sn, max_cmd_sn) = get_target_sns(b);
        AsyncMessage {
            lun: get_bytes(b, LUN),
            stat_sn,
            exp_cmd_sn,
            max_cmd_sn,
            event: b[Self::EVENT],
            vcode: b[Self::VCODE],
            param1: get16(b, Self::PARAM1),
            param2: get16(b, Self::PARAM2),
            param3: get16(b, Self::PARAM3),
        }
    }
    fn encode(&self, b: &mut Raw) {
        b[FLAGS] = FINAL;
        put_bytes(b, LUN, &self.lun);
        put32(b, ITT, RESERVED_TAG);
        put_target_sns(b, self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn);
        b[Self::EVENT] = self.event;
        b[Self::VCODE] = self.vcode;
        put16(b, Self::PARAM1, self.param1);
        put16(b, Self::PARAM2, self.param2);
        put16(b, Self::PARAM3, self.param3);
    }
}
