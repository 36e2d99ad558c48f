//! What `ironlun sessions` and `ironlun status` show of the fabric: every session (RFC 7143
//! §4.2: InitiatorName + ISID, TSIH, the target and portal group) with its negotiated
//! operational keys (§13) and its connections (CID, addresses, whether the login used CHAP).
//! A snapshot taken under the registry's lock; nothing here is on the I/O path.

use std::net::SocketAddr;
use std::time::SystemTime;

pub use ironlun_iscsi::negotiation::OperationalParams;

/// One connection of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    pub cid: u16,
    /// The initiator's address.
    pub peer: SocketAddr,
    /// The portal address the initiator reached.
    pub local: SocketAddr,
    /// The login of this connection authenticated with CHAP.
    pub chap: bool,
    /// HeaderDigest and DataDigest in use (CRC32C when true).
    pub digests: (bool, bool),
    /// When its login completed.
    pub since: SystemTime,
}

/// One session.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub tsih: u16,
    pub initiator: String,
    pub isid: [u8; 6],
    /// `None` for a discovery session.
    pub target: Option<String>,
    pub tpgt: u16,
    pub params: OperationalParams,
    pub connections: Vec<ConnInfo>,
    /// SCSI commands answered on this session's I_T nexus: reads, writes, others.
    pub commands: [u64; 3],
}

impl SessionInfo {
    /// The ISID as LIO prints it (12 hex digits).
    pub fn isid_hex(&self) -> String {
        self.isid.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Every connection's login used CHAP.
    pub fn authenticated(&self) -> bool {
        !self.connections.is_empty() && self.connections.iter().all(|c| c.chap)
    }

    /// The negotiated session-wide keys, as `Key=Value` in RFC 7143's names.
    pub fn keys(&self) -> Vec<(&'static str, String)> {
        let p = &self.params;
        let yn = |b: bool| if b { "Yes" } else { "No" }.to_string();
        let digest = |b: bool| if b { "CRC32C" } else { "None" }.to_string();
        vec![
            ("HeaderDigest", digest(p.header_digest)),
            ("DataDigest", digest(p.data_digest)),
            ("MaxConnections", p.max_connections.to_string()),
            ("InitialR2T", yn(p.initial_r2t)),
            ("ImmediateData", yn(p.immediate_data)),
            (
                "MaxRecvDataSegmentLength",
                p.max_recv_data_segment_length.to_string(),
            ),
            (
                "MaxXmitDataSegmentLength",
                p.max_xmit_data_segment_length.to_string(),
            ),
            ("MaxBurstLength", p.max_burst_length.to_string()),
            ("FirstBurstLength", p.first_burst_length.to_string()),
            ("DefaultTime2Wait", p.default_time2wait.to_string()),
            ("DefaultTime2Retain", p.default_time2retain.to_string()),
            ("MaxOutstandingR2T", p.max_outstanding_r2t.to_string()),
            ("DataPDUInOrder", yn(p.data_pdu_in_order)),
            ("DataSequenceInOrder", yn(p.data_sequence_in_order)),
            ("ErrorRecoveryLevel", p.error_recovery_level.to_string()),
        ]
    }
}
