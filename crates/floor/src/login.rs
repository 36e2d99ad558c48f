//! Login (RFC 7143 §6, §11.12-§11.13), just enough for libiscsi and qemu: no authentication
//! (AuthMethod=None), no digests, one connection per session, ERL 0. Every key offered is
//! answered; one the floor does not know is answered NotUnderstood (§6.2).

use crate::wire::{be32, put32, BHS_LEN, FINAL, LOGIN_RSP, MAX_RECV};

/// What the session keeps from the login.
#[derive(Clone, Copy)]
pub struct Params {
    /// The initiator's MaxRecvDataSegmentLength: the largest Data-In the floor may send.
    pub peer_max_recv: usize,
    /// MaxBurstLength: the largest R2T.
    pub max_burst: usize,
    /// ImmediateData=Yes.
    pub immediate: bool,
    pub first_burst: usize,
}

impl Default for Params {
    // §13 defaults, which hold for keys the initiator never offers.
    fn default() -> Self {
        Params {
            peer_max_recv: 8192,
            max_burst: 262_144,
            immediate: true,
            first_burst: 65_536,
        }
    }
}

/// One login request's answer, and whether the session is now in full feature phase.
pub struct Answer {
    pub bhs: [u8; BHS_LEN],
    pub text: Vec<u8>,
    pub full_feature: bool,
}

fn num(v: &str) -> Option<usize> {
    v.parse().ok()
}

/// Answers one key, updating `p`; `None` drops the key from the answer (declarations).
fn answer_key(key: &str, value: &str, p: &mut Params) -> Option<String> {
    let yes = value == "Yes";
    let ours = match key {
        "InitiatorName" | "InitiatorAlias" | "TargetName" | "SessionType" => return None,
        "AuthMethod" => "None".to_string(),
        "HeaderDigest" | "DataDigest" => "None".to_string(),
        "MaxRecvDataSegmentLength" => {
            p.peer_max_recv = num(value).unwrap_or(8192).clamp(512, 16_777_215);
            return Some(format!("{key}={MAX_RECV}"));
        }
        "MaxBurstLength" => {
            p.max_burst = num(value).unwrap_or(262_144).clamp(512, MAX_RECV);
            p.max_burst.to_string()
        }
        "FirstBurstLength" => {
            p.first_burst = num(value).unwrap_or(65_536).clamp(512, MAX_RECV);
            p.first_burst.to_string()
        }
        "ImmediateData" => {
            p.immediate = yes;
            value.to_string()
        }
        // Yes whatever is offered (the result is the OR, §13.10): the floor takes no
        // unsolicited Data-Out, only immediate data and R2T bursts.
        "InitialR2T" => "Yes".to_string(),
        "MaxConnections" | "MaxOutstandingR2T" => "1".to_string(),
        "ErrorRecoveryLevel" => "0".to_string(),
        "DataPDUInOrder" | "DataSequenceInOrder" => "Yes".to_string(),
        "DefaultTime2Wait" | "DefaultTime2Retain" => value.to_string(),
        "IFMarker" | "OFMarker" => "No".to_string(),
        _ => "NotUnderstood".to_string(),
    };
    Some(format!("{key}={ours}"))
}

/// Answers a Login Request (§11.12) with a Login Response (§11.13): the keys answered, the
/// transit the initiator asked for granted, TSIH 1 on the way to full feature phase.
pub fn answer(
    req: &[u8; BHS_LEN],
    text: &[u8],
    p: &mut Params,
    stat_sn: u32,
    first: bool,
) -> Answer {
    let mut out = Vec::new();
    for pair in text.split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let s = String::from_utf8_lossy(pair);
        let Some((k, v)) = s.split_once('=') else {
            continue;
        };
        if let Some(a) = answer_key(k, v, p) {
            out.extend_from_slice(a.as_bytes());
            out.push(0);
        }
    }
    let flags = req[1];
    let transit = flags & FINAL != 0;
    let csg = (flags >> 2) & 3;
    let nsg = flags & 3;
    if first {
        // §13.9: the first response of a normal session names the portal group.
        out.extend_from_slice(b"TargetPortalGroupTag=1\0");
    }
    let mut bhs = [0u8; BHS_LEN];
    bhs[0] = LOGIN_RSP;
    bhs[1] = if transit {
        FINAL | (csg << 2) | nsg
    } else {
        csg << 2
    };
    bhs[8..14].copy_from_slice(&req[8..14]); // ISID
    let full_feature = transit && nsg == 3;
    if full_feature {
        bhs[14..16].copy_from_slice(&1u16.to_be_bytes());
    }
    bhs[16..20].copy_from_slice(&req[16..20]); // ITT
    put32(&mut bhs, 24, stat_sn);
    let cmd_sn = be32(req, 24);
    put32(&mut bhs, 28, cmd_sn);
    put32(&mut bhs, 32, cmd_sn.wrapping_add(127));
    Answer {
        bhs,
        text: out,
        full_feature,
    }
}
