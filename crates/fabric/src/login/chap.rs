//! The CHAP exchange of the security stage (RFC 7143 §12.1.3, RFC 1994; MD5 and SHA-256,
//! one-way and mutual): the challenge, the initiator's response, and the target's answer to
//! the initiator's challenge.

use ironlun_iscsi::chap::{self, ChapAlgorithm};
use ironlun_iscsi::negotiation;
use ironlun_iscsi::pdu::login_status as st;
use ironlun_iscsi::text;
use rand::RngCore;
use tracing::warn;

use super::{Fail, Login};

pub(super) enum Chap {
    Idle,
    WaitA,
    WaitR {
        alg: ChapAlgorithm,
        id: u8,
        challenge: Vec<u8>,
    },
    Done,
}

impl Login<'_> {
    /// CHAP_A from the initiator: pick the algorithm, send CHAP_A, CHAP_I and CHAP_C.
    pub(super) fn chap_a(&mut self, offered: &str, out: &mut Vec<u8>) -> Result<(), Fail> {
        if !matches!(self.chap, Chap::WaitA) {
            return Err(st::AUTHENTICATION_FAILURE);
        }
        let alg = chap::select_algorithm(offered, &[ChapAlgorithm::Sha256, ChapAlgorithm::Md5])
            .ok_or(st::AUTHENTICATION_FAILURE)?;
        let mut challenge = vec![0u8; alg.digest_len()];
        let mut rng = rand::thread_rng();
        rng.fill_bytes(&mut challenge);
        let id = (rng.next_u32() & 0xff) as u8;
        text::encode_pair(out, "CHAP_A", &alg.code().to_string());
        text::encode_pair(out, "CHAP_I", &id.to_string());
        text::encode_pair(out, "CHAP_C", &chap::encode_hex(&challenge));
        self.chap = Chap::WaitR { alg, id, challenge };
        Ok(())
    }

    /// CHAP_N / CHAP_R from the initiator, with CHAP_I / CHAP_C when it wants mutual CHAP.
    pub(super) fn check_chap(
        &mut self,
        keys: &[(&str, &str)],
        out: &mut Vec<u8>,
    ) -> Result<(), Fail> {
        let get = |k: &str| keys.iter().find(|(x, _)| *x == k).map(|(_, v)| *v);
        let Chap::WaitR { alg, id, challenge } = &self.chap else {
            return Err(st::AUTHENTICATION_FAILURE);
        };
        let (alg, id) = (*alg, *id);
        let creds = self.creds.clone().ok_or(st::AUTHENTICATION_FAILURE)?;
        let name = get("CHAP_N").ok_or(st::AUTHENTICATION_FAILURE)?;
        let resp = get("CHAP_R").ok_or(st::AUTHENTICATION_FAILURE)?;
        let resp = chap::decode_binary(resp).map_err(|_| st::AUTHENTICATION_FAILURE)?;
        let good_name = name == creds.userid;
        let good_resp = alg.verify(id, creds.password.as_bytes(), challenge, &resp);
        if !(good_name && good_resp) {
            return Err(st::AUTHENTICATION_FAILURE);
        }
        match (get("CHAP_I"), get("CHAP_C")) {
            (None, None) => {}
            (Some(i), Some(c)) => {
                if creds.mutual_userid.is_empty() {
                    return Err(st::AUTHENTICATION_FAILURE);
                }
                // RFC 7143 §12.1.3: a response equal to the one we would give to our own
                // challenge means the same secret in both directions: an authentication
                // failure, whatever the configuration let through.
                if alg.verify(id, creds.mutual_password.as_bytes(), challenge, &resp) {
                    warn!(initiator = %name, "mutual CHAP refused: the initiator's secret is the target's");
                    return Err(st::AUTHENTICATION_FAILURE);
                }
                let their_id = negotiation::parse_number(i)
                    .and_then(|n| u8::try_from(n).ok())
                    .ok_or(st::AUTHENTICATION_FAILURE)?;
                let their_ch = chap::decode_binary(c).map_err(|_| st::AUTHENTICATION_FAILURE)?;
                if their_ch == *challenge {
                    // A reflected challenge (RFC 7143 §12.1.3).
                    return Err(st::AUTHENTICATION_FAILURE);
                }
                let r = alg.response(their_id, creds.mutual_password.as_bytes(), &their_ch);
                text::encode_pair(out, "CHAP_N", &creds.mutual_userid);
                text::encode_pair(out, "CHAP_R", &chap::encode_hex(&r));
            }
            _ => return Err(st::AUTHENTICATION_FAILURE),
        }
        self.chap = Chap::Done;
        Ok(())
    }
}
