//! PERSISTENT RESERVE OUT (SPC-4 §6.16): the CDB (§6.16.1), the basic parameter list
//! (§6.16.3) with SPEC_I_PT TransportIDs, and the REGISTER AND MOVE parameter list (§6.16.4).

use ironlun_scsi::cdb::PersistentReserveOut;

use super::transport_id::TransportId;

/// The PERSISTENT RESERVE OUT CDB (SPC-4 §6.16.1).
pub fn prout_cdb(service_action: u8, scope: u8, pr_type: u8, param_len: u32) -> [u8; 10] {
    PersistentReserveOut {
        service_action,
        scope,
        kind: pr_type,
        parameter_list_length: param_len,
    }
    .encode()
}

/// The basic PERSISTENT RESERVE OUT parameter list (SPC-4 §6.16.3), used by every service
/// action but REGISTER AND MOVE.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProutParams {
    /// RESERVATION KEY.
    pub key: u64,
    /// SERVICE ACTION RESERVATION KEY.
    pub sa_key: u64,
    /// SPEC_I_PT: the TransportIDs below are registered too (bytes 24.. present).
    pub spec_i_pt: bool,
    pub all_tg_pt: bool,
    pub aptpl: bool,
    pub transport_ids: Vec<TransportId>,
}

impl ProutParams {
    pub fn keys(key: u64, sa_key: u64) -> ProutParams {
        ProutParams {
            key,
            sa_key,
            ..ProutParams::default()
        }
    }

    /// 24 bytes, or with SPEC_I_PT 28 + the TransportIDs.
    pub fn encode(&self) -> Vec<u8> {
        let tids: Vec<u8> = self.transport_ids.iter().flat_map(|t| t.encode()).collect();
        self.encode_with(&tids)
    }

    /// As [`encode`](Self::encode) but with `tid_data` (possibly malformed) as the
    /// TransportIDs when SPEC_I_PT is set; TRANSPORTID PARAMETER DATA LENGTH is its length.
    pub fn encode_with(&self, tid_data: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 24];
        out[0..8].copy_from_slice(&self.key.to_be_bytes());
        out[8..16].copy_from_slice(&self.sa_key.to_be_bytes());
        out[20] = (u8::from(self.spec_i_pt) << 3)
            | (u8::from(self.all_tg_pt) << 2)
            | u8::from(self.aptpl);
        if self.spec_i_pt {
            out.extend_from_slice(&(tid_data.len() as u32).to_be_bytes());
            out.extend_from_slice(tid_data);
        }
        out
    }
}

/// The REGISTER AND MOVE parameter list (SPC-4 §6.16.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterAndMoveParams {
    pub key: u64,
    /// The key the destination I_T nexus gets.
    pub sa_key: u64,
    /// Unregister the source I_T nexus.
    pub unreg: bool,
    pub aptpl: bool,
    /// RELATIVE TARGET PORT IDENTIFIER of the destination target port.
    pub rtpi: u16,
    /// The destination initiator port.
    pub transport_id: TransportId,
}

impl RegisterAndMoveParams {
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with(&self.transport_id.encode())
    }

    /// With `tid` (possibly malformed) as the TransportID.
    pub fn encode_with(&self, tid: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 24];
        out[0..8].copy_from_slice(&self.key.to_be_bytes());
        out[8..16].copy_from_slice(&self.sa_key.to_be_bytes());
        out[17] = (u8::from(self.unreg) << 1) | u8::from(self.aptpl);
        out[18..20].copy_from_slice(&self.rtpi.to_be_bytes());
        out[20..24].copy_from_slice(&(tid.len() as u32).to_be_bytes());
        out.extend_from_slice(tid);
        out
    }
}

/// Flags of a registration (REGISTER / REGISTER AND IGNORE EXISTING KEY).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegisterFlags {
    pub aptpl: bool,
    pub all_tg_pt: bool,
    /// `Some`: SPEC_I_PT = 1 with these TransportIDs.
    pub spec_i_pt: Option<Vec<TransportId>>,
}

impl RegisterFlags {
    pub fn aptpl() -> RegisterFlags {
        RegisterFlags {
            aptpl: true,
            ..RegisterFlags::default()
        }
    }

    pub(super) fn params(&self, key: u64, sa_key: u64) -> ProutParams {
        ProutParams {
            key,
            sa_key,
            spec_i_pt: self.spec_i_pt.is_some(),
            all_tg_pt: self.all_tg_pt,
            aptpl: self.aptpl,
            transport_ids: self.spec_i_pt.clone().unwrap_or_default(),
        }
    }
}
