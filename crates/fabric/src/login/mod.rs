//! The login phase (RFC 7143 §6.3, §11.12, §11.13): stages (CSG/NSG with the T bit), the
//! security stage with AuthMethod None or CHAP (§12.1.3, MD5 and SHA-256, one-way and
//! mutual), operational negotiation of the §13 keys, and the leading / added connection
//! and session reinstatement rules (§6.3.5, §5.3.5). A failed login gets one Login Response
//! with the status class and detail of §11.13.5 and the connection closes; nothing else
//! (no target list, no key answers) leaks. The CHAP exchange is `chap`. Logins are refused
//! past the fabric's limits (`FabricOptions`: connections, sessions per initiator) with 0x0302,
//! and while the failed-login back-off (`crate::guard`) holds an initiator name or address.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use bytes::BytesMut;
use ironlun_engine::{InitiatorPortId, LoginDenied, TaskListener};
use ironlun_iscsi::negotiation::{self, Answer, KeyType, OperationalParams, Sender, Usage};
use ironlun_iscsi::pdu::login_status as st;
use ironlun_iscsi::text::{self, TextCollector};
use ironlun_iscsi::{Bhs, Decoder, Digests, LoginRequest, LoginResponse, Pdu, Stage};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::OwnedSemaphorePermit;
use tracing::{debug, info, warn};

use crate::conn::ConnSetup;
use crate::params::{discovery_params, TpgParams};
use crate::session::Session;
use crate::shared::Shared;
use crate::{AuthConfig, TpgConfig};

mod chap;
mod finish;
use chap::Chap;
use finish::Unsent;

/// Largest data segment accepted during login (RFC 7143 §6.1 suggests 8192; some slack for
/// long CHAP values).
const LOGIN_MAX_DATA: u32 = 16 * 1024;
/// Bound on the keys of one login request gathered over continuation PDUs.
const LOGIN_TEXT_MAX: usize = 64 * 1024;
/// How long a reinstating login waits for the replaced session's connections to give back
/// their places among `max_connections`.
const REINSTATE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

pub(crate) struct LoginOk {
    pub setup: ConnSetup,
    pub leftover: BytesMut,
    /// This connection's place among `max_connections`, held while it runs.
    pub slot: OwnedSemaphorePermit,
}

struct First {
    isid: [u8; 6],
    tsih: u16,
    cid: u16,
    cmd_sn: u32,
    initiator: String,
    /// `None` for a discovery session.
    target: Option<(String, TpgConfig)>,
    /// The session this connection joins (TSIH ≠ 0).
    joining: Option<Arc<Session>>,
}

struct Login<'a> {
    shared: &'a Arc<Shared>,
    peer: SocketAddr,
    portal: SocketAddr,
    /// Refused by the failed-login back-off (not counted as another failure).
    backed_off: bool,
    first: Option<First>,
    params: TpgParams,
    agreed: OperationalParams,
    auth_acceptable: String,
    creds: Option<AuthConfig>,
    auth_method: Option<String>,
    chap: Chap,
    stage: Stage,
    declared: bool,
    sent_tpgt: bool,
    stat_sn: u32,
}

type Fail = u16;

/// Generic over the stream so the fuzz harness (`crate::fuzzing`) can drive it in memory.
pub(crate) async fn login<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
    portal: SocketAddr,
    local: SocketAddr,
    shared: &Arc<Shared>,
) -> Option<LoginOk> {
    let mut buf = BytesMut::with_capacity(4096);
    let decoder = Decoder {
        digests: Digests::default(),
        max_data: LOGIN_MAX_DATA,
    };
    let mut l = Login {
        shared,
        peer,
        portal,
        backed_off: false,
        first: None,
        params: discovery_params(),
        agreed: OperationalParams::default(),
        auth_acceptable: String::new(),
        creds: None,
        auth_method: None,
        chap: Chap::Idle,
        stage: Stage::Security,
        declared: false,
        sent_tpgt: false,
        stat_sn: 0,
    };
    let mut collector = TextCollector::new(LOGIN_TEXT_MAX);
    loop {
        let pdu = loop {
            match decoder.decode(&mut buf) {
                Ok(Some(p)) => break p,
                Ok(None) => {}
                Err(e) => {
                    shared.counters.login_bad_pdu();
                    warn!(%peer, error = %e, "bad PDU during login");
                    return None;
                }
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        };
        let Bhs::LoginRequest(req) = pdu.bhs else {
            if l.first.is_some() {
                // Any other PDU before login completes (§6.3).
                let _ = l.fail_with(stream, None, st::INVALID_DURING_LOGIN).await;
            } else {
                shared.counters.login_bad_pdu();
                warn!(%peer, "first PDU is not a Login Request; closing");
            }
            return None;
        };
        if l.first.is_none() {
            l.stat_sn = req.exp_stat_sn;
        }
        if req.version_min > ironlun_iscsi::ISCSI_VERSION {
            let _ = l
                .fail_with(stream, Some(&req), st::UNSUPPORTED_VERSION)
                .await;
            return None;
        }
        if collector.push(&pdu.data).is_err() {
            let _ = l.fail_with(stream, Some(&req), st::INITIATOR_ERROR).await;
            return None;
        }
        if req.cont {
            // More keys follow in the next Login Request (§11.12.2): answer empty.
            let resp = l.response(&req, false, req.csg, req.csg, 0, req.cmd_sn, req.cmd_sn);
            if write_pdu(stream, Pdu::new(resp)).await.is_err() {
                return None;
            }
            continue;
        }
        let Ok(pairs) = collector.finish() else {
            let _ = l.fail_with(stream, Some(&req), st::INITIATOR_ERROR).await;
            return None;
        };
        match l.step(&req, &pairs) {
            Err(code) => {
                if l.backed_off {
                    // Logged once, when the back-off began (`guard`).
                    debug!(%peer, "login refused: too many failed authentications");
                } else {
                    info!(%peer, status = format!("{code:04x}"), "login failed");
                    if code == st::AUTHENTICATION_FAILURE {
                        if let Some(f) = &l.first {
                            shared.auth_guard.failed(&f.initiator, peer.ip());
                        }
                    }
                }
                let _ = l.fail_with(stream, Some(&req), code).await;
                return None;
            }
            Ok((keys, transit)) => {
                if transit && req.nsg == Stage::FullFeature {
                    return match l.finish(&req).await {
                        Err(code) => {
                            info!(%peer, status = format!("{code:04x}"), "login failed");
                            let _ = l.fail_with(stream, Some(&req), code).await;
                            None
                        }
                        Ok((session, cid, slot)) => {
                            let unsent = Unsent {
                                shared,
                                session: Some(session.clone()),
                            };
                            let resp = l.response(
                                &req,
                                true,
                                req.csg,
                                Stage::FullFeature,
                                session.tsih,
                                session.exp_cmd_sn(),
                                session.max_cmd_sn(),
                            );
                            if write_pdu(stream, Pdu::with_data(resp, keys)).await.is_err() {
                                return None;
                            }
                            unsent.sent();
                            info!(
                                %peer,
                                initiator = %session.initiator,
                                target = session.target.as_deref().unwrap_or("(discovery)"),
                                tsih = session.tsih,
                                cid,
                                "login complete"
                            );
                            let digests = Digests {
                                header: l.agreed.header_digest,
                                data: l.agreed.data_digest,
                            };
                            Some(LoginOk {
                                slot,
                                setup: ConnSetup {
                                    cid,
                                    session,
                                    shared: shared.clone(),
                                    max_xmit: l.agreed.max_xmit_data_segment_length,
                                    max_recv: l.params.max_recv(),
                                    xmit_cap: l.params.max_xmit_cap(),
                                    stat_sn: l.stat_sn,
                                    local,
                                    peer,
                                    chap: matches!(l.chap, Chap::Done),
                                    digests,
                                },
                                leftover: buf,
                            })
                        }
                    };
                }
                let nsg = if transit { req.nsg } else { req.csg };
                if transit {
                    l.stage = req.nsg;
                }
                let resp = l.response(&req, transit, req.csg, nsg, 0, req.cmd_sn, req.cmd_sn);
                if write_pdu(stream, Pdu::with_data(resp, keys)).await.is_err() {
                    return None;
                }
            }
        }
    }
}

async fn write_pdu<S: AsyncWrite + Unpin>(stream: &mut S, pdu: Pdu) -> std::io::Result<()> {
    let bytes = pdu
        .to_bytes(Digests::default())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    stream.write_all(&bytes).await
}

impl Login<'_> {
    #[allow(clippy::too_many_arguments)]
    fn response(
        &mut self,
        req: &LoginRequest,
        transit: bool,
        csg: Stage,
        nsg: Stage,
        tsih: u16,
        exp: u32,
        max: u32,
    ) -> Bhs {
        let stat_sn = self.stat_sn;
        self.stat_sn = self.stat_sn.wrapping_add(1);
        Bhs::LoginResponse(LoginResponse {
            transit,
            cont: false,
            csg,
            nsg: if transit { nsg } else { Stage::Security },
            version_max: ironlun_iscsi::ISCSI_VERSION,
            version_active: ironlun_iscsi::ISCSI_VERSION,
            isid: req.isid,
            tsih: if tsih != 0 { tsih } else { req.tsih },
            itt: req.itt,
            stat_sn,
            exp_cmd_sn: exp,
            max_cmd_sn: max,
            status_class: 0,
            status_detail: 0,
        })
    }

    async fn fail_with<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        req: Option<&LoginRequest>,
        code: Fail,
    ) -> std::io::Result<()> {
        let (isid, tsih, itt, cmd_sn) = match req {
            Some(r) => (r.isid, r.tsih, r.itt, r.cmd_sn),
            None => ([0; 6], 0, 0, 0),
        };
        self.shared.counters.login_failed(code);
        let bhs = Bhs::LoginResponse(LoginResponse {
            transit: false,
            cont: false,
            csg: req.map(|r| r.csg).unwrap_or(Stage::Security),
            nsg: Stage::Security,
            version_max: ironlun_iscsi::ISCSI_VERSION,
            version_active: ironlun_iscsi::ISCSI_VERSION,
            isid,
            tsih,
            itt,
            stat_sn: self.stat_sn,
            exp_cmd_sn: cmd_sn,
            max_cmd_sn: cmd_sn,
            status_class: (code >> 8) as u8,
            status_detail: code as u8,
        });
        write_pdu(stream, Pdu::new(bhs)).await?;
        stream.flush().await
    }

    /// Process one complete Login Request: the answer keys and whether we agree to transit.
    fn step(
        &mut self,
        req: &LoginRequest,
        pairs: &[(String, String)],
    ) -> Result<(Vec<u8>, bool), Fail> {
        if self.first.is_none() {
            self.begin(req, pairs)?;
        }
        let Some(first) = &self.first else {
            return Err(st::TARGET_ERROR);
        };
        if req.isid != first.isid || req.tsih != first.tsih || req.cid != first.cid {
            return Err(st::INITIATOR_ERROR);
        }
        let is_discovery = first.target.is_none();
        let leading = first.tsih == 0;
        let tpg = first.target.as_ref().map(|(_, g)| g.tpgt);
        match req.csg {
            Stage::Security | Stage::Operational => {}
            _ => return Err(st::INITIATOR_ERROR),
        }
        // Stages only move forward (§6.3).
        if (req.csg as u8) < (self.stage as u8) {
            return Err(st::INITIATOR_ERROR);
        }
        if req.transit && (req.nsg == Stage::Reserved || (req.nsg as u8) <= (req.csg as u8)) {
            return Err(st::INITIATOR_ERROR);
        }
        if req.csg == Stage::Operational && self.stage == Stage::Security {
            // The initiator skipped the security stage: only fine when no auth is required.
            if !self.none_acceptable() {
                return Err(st::AUTHENTICATION_FAILURE);
            }
            self.stage = Stage::Operational;
        }
        let mut out = Vec::new();
        if !self.sent_tpgt {
            // The first response of a normal session carries the portal group tag (§13.9).
            self.sent_tpgt = true;
            if let Some(t) = tpg {
                text::encode_pair(&mut out, "TargetPortalGroupTag", &t.to_string());
                let alias = self.params.get("TargetAlias").to_string();
                if !alias.is_empty() {
                    text::encode_pair(&mut out, "TargetAlias", &alias);
                }
            }
        }
        let mut chap_keys: Vec<(&str, &str)> = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for (k, v) in pairs {
            if seen.contains(&k.as_str()) {
                // A key offered twice in one request is a protocol error (§6.2).
                return Err(st::INITIATOR_ERROR);
            }
            seen.push(k);
            match k.as_str() {
                "InitiatorName" | "TargetName" | "SessionType" | "InitiatorAlias" => {}
                "AuthMethod" => {
                    if req.csg != Stage::Security {
                        return Err(st::INITIATOR_ERROR);
                    }
                    let def = negotiation::key("AuthMethod").ok_or(st::TARGET_ERROR)?;
                    let a = negotiation::respond(def, v, &self.auth_acceptable);
                    match &a {
                        Answer::Value(m) => {
                            self.auth_method = Some(m.clone());
                            if m == "CHAP" {
                                self.chap = Chap::WaitA;
                            }
                        }
                        _ => return Err(st::AUTHENTICATION_FAILURE),
                    }
                    if let Some(t) = a.text() {
                        text::encode_pair(&mut out, k, t);
                    }
                }
                "CHAP_A" => {
                    if req.csg != Stage::Security {
                        return Err(st::AUTHENTICATION_FAILURE);
                    }
                    self.chap_a(v, &mut out)?;
                }
                "CHAP_N" | "CHAP_R" | "CHAP_I" | "CHAP_C" => {
                    if req.csg != Stage::Security {
                        return Err(st::INITIATOR_ERROR);
                    }
                    chap_keys.push((k, v));
                }
                _ => self.answer_key(k, v, is_discovery, leading, &mut out),
            }
        }
        if !chap_keys.is_empty() {
            self.check_chap(&chap_keys, &mut out)?;
        }
        let mut transit = req.transit;
        if transit && req.csg == Stage::Security {
            let done = match (&self.auth_method, &self.chap) {
                (_, Chap::Done) => true,
                (Some(m), _) if m == "None" => true,
                (None, Chap::Idle) => {
                    if !self.none_acceptable() {
                        return Err(st::AUTHENTICATION_FAILURE);
                    }
                    true
                }
                _ => false,
            };
            if !done {
                // CHAP still running: stay in the security stage this round.
                transit = false;
            }
        }
        let to_ffp = transit && req.nsg == Stage::FullFeature;
        if !self.declared && (to_ffp || req.csg == Stage::Operational) {
            self.declare(&mut out);
        }
        Ok((out, transit))
    }

    fn none_acceptable(&self) -> bool {
        self.auth_acceptable.split(',').any(|m| m == "None")
    }

    fn declare(&mut self, out: &mut Vec<u8>) {
        self.declared = true;
        text::encode_pair(
            out,
            "MaxRecvDataSegmentLength",
            &self.params.max_recv().to_string(),
        );
    }

    /// Checks made on the first Login Request: names, session type, target, TSIH, auth.
    fn begin(&mut self, req: &LoginRequest, pairs: &[(String, String)]) -> Result<(), Fail> {
        let get = |k: &str| pairs.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
        let initiator = get("InitiatorName").ok_or(st::MISSING_PARAMETER)?;
        // RFC 7143 §4.2.7: 223 bytes at most, and no name has control characters (they
        // would forge lines in `ironlun sessions`, logs and terminals).
        if initiator.is_empty() || initiator.len() > 223 || initiator.chars().any(char::is_control)
        {
            return Err(st::INITIATOR_ERROR);
        }
        if self.shared.auth_guard.blocked(initiator, self.peer.ip()) {
            self.backed_off = true;
            return Err(st::AUTHENTICATION_FAILURE);
        }
        let discovery = match get("SessionType") {
            None | Some("Normal") => false,
            Some("Discovery") => true,
            Some(_) => return Err(st::SESSION_TYPE_NOT_SUPPORTED),
        };
        let target = if discovery {
            None
        } else {
            let name = get("TargetName").ok_or(st::MISSING_PARAMETER)?;
            let tpg = self
                .shared
                .find_tpg(name, self.portal)
                .ok_or(st::NOT_FOUND)?;
            Some((name.to_string(), tpg))
        };
        let joining = if req.tsih != 0 {
            let s = self
                .shared
                .registry
                .get(req.tsih)
                .ok_or(st::SESSION_DOES_NOT_EXIST)?;
            let same_target = s.target.as_deref() == target.as_ref().map(|(n, _)| n.as_str())
                && target.as_ref().is_none_or(|(_, g)| g.tpgt == s.tpgt);
            if s.initiator != initiator || s.isid != req.isid || !same_target || s.is_closed() {
                return Err(st::SESSION_DOES_NOT_EXIST);
            }
            if !s.can_add(req.cid) {
                return Err(st::TOO_MANY_CONNECTIONS);
            }
            Some(s)
        } else {
            None
        };
        match &target {
            None => {
                self.params = discovery_params();
                self.creds = self.shared.config.read().discovery_auth.clone();
                self.auth_acceptable = if self.creds.is_some() { "CHAP" } else { "None" }.into();
            }
            Some((_, g)) => {
                self.params = TpgParams::new(&g.params);
                let creds = g
                    .acl_auth
                    .get(initiator)
                    .filter(|a| !a.userid.is_empty())
                    .or(Some(&g.auth).filter(|a| !a.userid.is_empty()))
                    .cloned();
                self.auth_acceptable = if g.authentication {
                    "CHAP".to_string()
                } else {
                    self.params
                        .get("AuthMethod")
                        .split(',')
                        .filter(|m| *m != "CHAP" || creds.is_some())
                        .collect::<Vec<_>>()
                        .join(",")
                };
                self.creds = creds;
            }
        }
        // Until negotiated otherwise, we may send at most the RFC default (8192).
        self.agreed.max_xmit_data_segment_length = 8192;
        if let Some(s) = &joining {
            // Session-wide values come from the leading login.
            let conn_keys = OperationalParams {
                header_digest: false,
                data_digest: false,
                max_xmit_data_segment_length: 8192,
                ..s.params.clone()
            };
            self.agreed = conn_keys;
        }
        self.first = Some(First {
            isid: req.isid,
            tsih: req.tsih,
            cid: req.cid,
            cmd_sn: req.cmd_sn,
            initiator: initiator.to_string(),
            target,
            joining,
        });
        Ok(())
    }

    fn answer_key(&mut self, k: &str, v: &str, discovery: bool, leading: bool, out: &mut Vec<u8>) {
        let answer = match negotiation::key(k) {
            None => Answer::NotUnderstood,
            Some(def) => {
                if def.sender == Sender::Target {
                    // Keys only a target may send (TargetAlias, TargetAddress, TPGT).
                    Answer::Reject
                } else if def.usage == Usage::FullFeatureOnly
                    || (discovery && !def.discovery)
                    || (def.usage == Usage::LeadingOnly && !leading)
                {
                    // SendTargets in login, operational keys in discovery, session-wide keys
                    // on an added connection.
                    Answer::Irrelevant
                } else if matches!(def.ty, KeyType::Special) {
                    Answer::Reject
                } else {
                    let a = negotiation::respond(def, v, &self.params.ours(k));
                    match &a {
                        Answer::Value(val) => {
                            self.agreed.set(k, val);
                        }
                        Answer::Accepted if k == "MaxRecvDataSegmentLength" => {
                            self.agreed.set(k, v);
                            let cap = self.params.max_xmit_cap();
                            if self.agreed.max_xmit_data_segment_length > cap {
                                self.agreed.max_xmit_data_segment_length = cap;
                            }
                        }
                        _ => {}
                    }
                    a
                }
            }
        };
        if let Some(t) = answer.text() {
            text::encode_pair(out, k, t);
        }
    }
}
