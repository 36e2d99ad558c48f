//! The login phase (RFC 7143 §6.3, §7.1, §11.12-13): the security stage with AuthMethod
//! None or CHAP (§12.1.3: MD5 and SHA-256, one-way and mutual), the operational stage with
//! configurable offers concluded by the §6.2 result functions, and the transition to the
//! full feature phase. Login failures surface as [`Error::LoginRejected`] (or
//! [`Error::Redirected`] for status class 1) with the status
//! class and detail of §11.13.5.

pub use crate::chap_config::{ChapConfig, MutualChap};
use std::collections::BTreeMap;

use ironlun_iscsi::chap::{self, ChapAlgorithm};
use ironlun_iscsi::negotiation::{self, Answer, KeyType, NegotiationError, OperationalParams};
use ironlun_iscsi::text::{self, TextCollector};
use ironlun_iscsi::{Bhs, Digests, LoginRequest, LoginResponse, Pdu, Stage, ISCSI_VERSION};
use rand::RngCore;

use crate::connection::Connection;
use crate::{Error, Result};

/// SessionType (§13.21).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionType {
    Discovery,
    Normal,
}

impl SessionType {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionType::Discovery => "Discovery",
            SessionType::Normal => "Normal",
        }
    }
}

/// AuthMethod (§12.1, §13).
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Chap(ChapConfig),
}

/// What to log in as and what to offer.
#[derive(Clone, Debug)]
pub struct LoginConfig {
    pub initiator_name: String,
    pub initiator_alias: Option<String>,
    /// ISID (§11.12.5); the default is type 10b (random) with fixed bytes.
    pub isid: [u8; 6],
    /// 0 for a new session.
    pub tsih: u16,
    pub cid: u16,
    /// Required for Normal sessions.
    pub target_name: Option<String>,
    pub session_type: SessionType,
    pub auth: Auth,
    /// Start in the operational stage (no security negotiation at all).
    pub skip_security_stage: bool,
    /// Operational offers in order (key, value); see [`LoginConfig::offer`].
    pub offers: Vec<(String, String)>,
    /// Extra pairs sent verbatim in the first Login Request (adversarial tests).
    pub extra_keys: Vec<(String, String)>,
}

/// Our default offers: RFC 7143 defaults except a larger receive segment and no
/// DefaultTime2Retain (ERL 0 cannot use it).
const DEFAULT_OFFERS: &[(&str, &str)] = &[
    ("HeaderDigest", "None"),
    ("DataDigest", "None"),
    ("MaxConnections", "1"),
    ("InitialR2T", "Yes"),
    ("ImmediateData", "Yes"),
    ("MaxRecvDataSegmentLength", "262144"),
    ("MaxBurstLength", "262144"),
    ("FirstBurstLength", "65536"),
    ("DefaultTime2Wait", "2"),
    ("DefaultTime2Retain", "0"),
    ("MaxOutstandingR2T", "1"),
    ("DataPDUInOrder", "Yes"),
    ("DataSequenceInOrder", "Yes"),
    ("ErrorRecoveryLevel", "0"),
];

impl LoginConfig {
    fn base(initiator: &str, session_type: SessionType, target: Option<&str>) -> LoginConfig {
        let offers = DEFAULT_OFFERS
            .iter()
            .filter(|(k, _)| {
                session_type == SessionType::Normal
                    || negotiation::key(k).is_some_and(|d| d.discovery)
            })
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LoginConfig {
            initiator_name: initiator.to_owned(),
            initiator_alias: None,
            isid: [0x80, 0x00, 0x49, 0x4c, 0x00, 0x01],
            tsih: 0,
            cid: 0,
            target_name: target.map(str::to_owned),
            session_type,
            auth: Auth::None,
            skip_security_stage: false,
            offers,
            extra_keys: Vec::new(),
        }
    }

    /// A Normal session to `target`.
    pub fn normal(initiator: &str, target: &str) -> LoginConfig {
        Self::base(initiator, SessionType::Normal, Some(target))
    }

    /// A Discovery session.
    pub fn discovery(initiator: &str) -> LoginConfig {
        Self::base(initiator, SessionType::Discovery, None)
    }

    /// Offer `key=value` (replacing an earlier offer of the key).
    pub fn offer(mut self, key: &str, value: &str) -> LoginConfig {
        match self.offers.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_owned(),
            None => self.offers.push((key.to_owned(), value.to_owned())),
        }
        self
    }

    /// Do not offer `key` (it keeps its default unless the target offers it).
    pub fn without_offer(mut self, key: &str) -> LoginConfig {
        self.offers.retain(|(k, _)| k != key);
        self
    }

    pub fn isid(mut self, isid: [u8; 6]) -> LoginConfig {
        self.isid = isid;
        self
    }

    pub fn chap(mut self, c: ChapConfig) -> LoginConfig {
        self.auth = Auth::Chap(c);
        self
    }

    fn offered(&self, key: &str) -> Option<&str> {
        self.offers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The outcome of a successful login.
#[derive(Clone, Debug)]
pub struct Negotiated {
    /// Typed operational parameters in force (RFC defaults for keys not negotiated).
    /// `max_recv_data_segment_length` is ours, `max_xmit_data_segment_length` the target's.
    pub params: OperationalParams,
    /// Every key's outcome as text: the agreed value, or `Reject` / `Irrelevant` /
    /// `NotUnderstood` when the target answered so; declarations the target made
    /// (TargetAlias, TargetPortalGroupTag, its MaxRecvDataSegmentLength ...) as declared.
    pub values: BTreeMap<String, String>,
    pub tsih: u16,
    pub target_portal_group_tag: Option<u16>,
    pub auth_method: String,
    pub chap_algorithm: Option<ChapAlgorithm>,
    pub session_type: SessionType,
}

impl Negotiated {
    /// The outcome of one key, if it was exchanged.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

/// Bound on login round trips: a target that never transits is an error, not a hang.
const MAX_ROUNDS: usize = 32;

struct Exchange<'a> {
    conn: &'a mut Connection,
    cfg: &'a LoginConfig,
    itt: u32,
    tsih: u16,
}

impl Exchange<'_> {
    /// Send one login request carrying `text` (split with C if long) and gather the whole
    /// response (asking for continuations). Returns the last response header and its pairs.
    async fn round(
        &mut self,
        csg: Stage,
        nsg: Stage,
        transit: bool,
        text_bytes: &[u8],
    ) -> Result<(LoginResponse, Vec<(String, String)>)> {
        let pieces = text::split_for_pdus(text_bytes, 8192);
        let count = pieces.len();
        let mut resp = None;
        for (i, piece) in pieces.into_iter().enumerate() {
            let last = i + 1 == count;
            self.send(csg, nsg, transit && last, !last, piece.to_vec())
                .await?;
            let r = self.recv().await?;
            if !last {
                // While we continue, the target answers with empty responses (§11.12.2).
                continue;
            }
            resp = Some(r);
        }
        let (mut hdr, mut data) = resp.ok_or_else(|| Error::Invalid("empty login text".into()))?;
        let mut collector = TextCollector::new(256 * 1024);
        for _ in 0..MAX_ROUNDS {
            collector
                .push(&data)
                .map_err(|e| Error::Protocol(e.to_string()))?;
            if !hdr.cont {
                let pairs = collector
                    .finish()
                    .map_err(|e| Error::Protocol(format!("login text: {e}")))?;
                return Ok((hdr, pairs));
            }
            // Ask for the rest with an empty request (T must be 0 while C is set).
            self.send(csg, nsg, false, false, Vec::new()).await?;
            (hdr, data) = self.recv().await?;
        }
        Err(Error::Protocol(
            "endless login response continuation".into(),
        ))
    }

    async fn send(
        &mut self,
        csg: Stage,
        nsg: Stage,
        transit: bool,
        cont: bool,
        data: Vec<u8>,
    ) -> Result<()> {
        let c = self.conn.counters;
        let req = LoginRequest {
            transit,
            cont,
            csg,
            nsg: if transit { nsg } else { Stage::Security },
            version_max: ISCSI_VERSION,
            version_min: ISCSI_VERSION,
            isid: self.cfg.isid,
            tsih: self.tsih,
            itt: self.itt,
            cid: self.cfg.cid,
            cmd_sn: c.cmd_sn,
            exp_stat_sn: c.exp_stat_sn,
        };
        self.conn
            .send_pdu(&Pdu::with_data(Bhs::LoginRequest(req), data))
            .await
    }

    async fn recv(&mut self) -> Result<(LoginResponse, bytes::Bytes)> {
        let pdu = self.conn.recv_pdu().await?;
        let Bhs::LoginResponse(r) = pdu.bhs else {
            return Err(Error::Protocol(match pdu.bhs.opcode() {
                Some(op) => format!("expected a Login Response, got a {op:?} PDU"),
                None => "expected a Login Response, got a PDU of an unknown opcode".into(),
            }));
        };
        self.conn.counters.exp_stat_sn = r.stat_sn.wrapping_add(1);
        self.conn.counters.exp_cmd_sn = r.exp_cmd_sn;
        self.conn.counters.max_cmd_sn = r.max_cmd_sn;
        if r.status_class == 1 {
            // Redirection (§11.13.5): TargetAddress names where to log in instead.
            let address = ironlun_iscsi::text::parse(&pdu.data)
                .ok()
                .and_then(|pairs| {
                    pairs
                        .into_iter()
                        .find(|(k, _)| k == "TargetAddress")
                        .map(|(_, v)| v)
                });
            return Err(Error::Redirected {
                status_detail: r.status_detail,
                target_address: address,
            });
        }
        if r.status_class != 0 {
            return Err(Error::LoginRejected {
                status_class: r.status_class,
                status_detail: r.status_detail,
            });
        }
        if r.itt != self.itt {
            return Err(Error::Protocol(format!(
                "login response ITT {:#x} for ours {:#x}",
                r.itt, self.itt
            )));
        }
        if r.version_active != ISCSI_VERSION {
            return Err(Error::Protocol(format!(
                "unsupported Version-active {}",
                r.version_active
            )));
        }
        if r.transit && r.cont {
            return Err(Error::Protocol("login response with both T and C".into()));
        }
        if r.tsih != 0 {
            self.tsih = r.tsih;
        }
        Ok((r, pdu.data))
    }
}

fn find<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn neg_err(e: NegotiationError) -> Error {
    Error::Negotiation(e.to_string())
}

/// Log in on `conn` (freshly connected). On success the connection is in the full feature
/// phase with the negotiated digests and receive limit applied.
pub async fn login(conn: &mut Connection, cfg: &LoginConfig) -> Result<Negotiated> {
    if cfg.session_type == SessionType::Normal && cfg.target_name.is_none() {
        return Err(Error::Invalid("a Normal session needs a TargetName".into()));
    }
    let itt = conn.next_itt();
    let mut ex = Exchange {
        conn,
        cfg,
        itt,
        tsih: cfg.tsih,
    };
    let mut out = Negotiated {
        params: OperationalParams::default(),
        values: BTreeMap::new(),
        tsih: 0,
        target_portal_group_tag: None,
        auth_method: "None".into(),
        chap_algorithm: None,
        session_type: cfg.session_type,
    };

    let mut leading: Vec<(String, String)> =
        vec![("InitiatorName".into(), cfg.initiator_name.clone())];
    if let Some(a) = &cfg.initiator_alias {
        leading.push(("InitiatorAlias".into(), a.clone()));
    }
    leading.push(("SessionType".into(), cfg.session_type.as_str().into()));
    if let Some(t) = &cfg.target_name {
        leading.push(("TargetName".into(), t.clone()));
    }
    leading.extend(cfg.extra_keys.iter().cloned());

    let stage = if cfg.skip_security_stage {
        Stage::Operational
    } else {
        let s = security(&mut ex, &leading, &mut out).await?;
        leading.clear();
        s
    };
    if stage == Stage::Operational {
        operational(&mut ex, &leading, &mut out).await?;
    }
    out.tsih = ex.tsih;

    // Enter the full feature phase: digests and our declared receive limit now apply.
    let p = &out.params;
    let digests = Digests {
        header: p.header_digest,
        data: p.data_digest,
    };
    let max_recv = p.max_recv_data_segment_length;
    conn.set_digests(digests);
    conn.set_max_recv_data(max_recv);
    Ok(out)
}

/// Record target declarations and the keys the target may volunteer.
fn record_declaration(out: &mut Negotiated, k: &str, v: &str) -> bool {
    match k {
        "TargetPortalGroupTag" => {
            out.target_portal_group_tag =
                negotiation::parse_number(v).and_then(|n| u16::try_from(n).ok());
        }
        "TargetAlias" | "TargetAddress" => {}
        "MaxRecvDataSegmentLength" => {
            if !out.params.set(k, v) {
                return false;
            }
        }
        _ => return false,
    }
    out.values.insert(k.to_owned(), v.to_owned());
    true
}

/// The security stage; returns the stage the target moved us to.
async fn security(
    ex: &mut Exchange<'_>,
    leading: &[(String, String)],
    out: &mut Negotiated,
) -> Result<Stage> {
    let refs =
        |v: &[(String, String)]| text::encode(v.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let chap_cfg = match &ex.cfg.auth {
        Auth::None => None,
        Auth::Chap(c) => Some(c.clone()),
    };
    let offer = if chap_cfg.is_some() { "CHAP" } else { "None" };
    let mut first = leading.to_vec();
    first.push(("AuthMethod".into(), offer.into()));
    let def = negotiation::key("AuthMethod").ok_or_else(|| Error::Invalid("catalogue".into()))?;

    // Without CHAP we may transit at once.
    let transit = chap_cfg.is_none();
    let (mut resp, pairs) = ex
        .round(Stage::Security, Stage::Operational, transit, &refs(&first))
        .await?;
    for (k, v) in &pairs {
        if k == "AuthMethod" {
            let agreed = negotiation::conclude(def, offer, v).map_err(neg_err)?;
            out.auth_method = agreed.clone();
            out.values.insert(k.clone(), agreed);
        } else {
            record_declaration(out, k, v);
        }
    }

    if let Some(c) = chap_cfg {
        if out.auth_method != "CHAP" {
            return Err(Error::Negotiation(format!(
                "target chose AuthMethod {} for our CHAP",
                out.auth_method
            )));
        }
        resp = chap_exchange(ex, &c, out).await?;
    }
    for _ in 0..MAX_ROUNDS {
        if resp.transit {
            return match resp.nsg {
                Stage::Operational | Stage::FullFeature => Ok(resp.nsg),
                s => Err(Error::Protocol(format!("login response transits to {s:?}"))),
            };
        }
        // The target wants another round in this stage; we have nothing more to say.
        let (r, pairs) = ex
            .round(Stage::Security, Stage::Operational, true, &[])
            .await?;
        for (k, v) in &pairs {
            record_declaration(out, k, v);
        }
        resp = r;
    }
    Err(Error::Protocol(
        "target never left the security stage".into(),
    ))
}

async fn chap_exchange(
    ex: &mut Exchange<'_>,
    c: &ChapConfig,
    out: &mut Negotiated,
) -> Result<LoginResponse> {
    let offer: Vec<String> = c.algorithms.iter().map(|a| a.code().to_string()).collect();
    let offer = offer.join(",");
    let t = text::encode([("CHAP_A", offer.as_str())]);
    let (_, pairs) = ex
        .round(Stage::Security, Stage::Operational, false, &t)
        .await?;
    let a = find(&pairs, "CHAP_A").ok_or_else(|| Error::Negotiation("no CHAP_A answer".into()))?;
    let alg = negotiation::parse_number(a)
        .and_then(ChapAlgorithm::from_code)
        .filter(|x| c.algorithms.contains(x))
        .ok_or_else(|| Error::Negotiation(format!("CHAP_A answer {a} not offered")))?;
    out.chap_algorithm = Some(alg);
    let id = find(&pairs, "CHAP_I")
        .and_then(negotiation::parse_number)
        .and_then(|n| u8::try_from(n).ok())
        .ok_or_else(|| Error::Negotiation("missing or bad CHAP_I".into()))?;
    let challenge = find(&pairs, "CHAP_C")
        .ok_or_else(|| Error::Negotiation("missing CHAP_C".into()))
        .and_then(|v| {
            chap::decode_binary(v).map_err(|e| Error::Negotiation(format!("CHAP_C: {e}")))
        })?;

    let response = alg.response(id, &c.secret, &challenge);
    let mut reply = vec![
        ("CHAP_N".to_string(), c.username.clone()),
        ("CHAP_R".to_string(), chap::encode_hex(&response)),
    ];
    let mut ours = None;
    if let Some(m) = &c.mutual {
        let mut rng = rand::thread_rng();
        let our_id = (rng.next_u32() & 0xff) as u8;
        let mut our_challenge = vec![0u8; alg.digest_len()];
        rng.fill_bytes(&mut our_challenge);
        // A target echoing our own challenge back would let it reflect our response
        // (RFC 7143 §12.1.3); regenerate in the unlikely case of equality.
        if our_challenge == challenge {
            rng.fill_bytes(&mut our_challenge);
        }
        reply.push(("CHAP_I".into(), our_id.to_string()));
        reply.push(("CHAP_C".into(), chap::encode_hex(&our_challenge)));
        ours = Some((m.clone(), our_id, our_challenge));
    }
    let t = text::encode(reply.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let (resp, pairs) = ex
        .round(Stage::Security, Stage::Operational, true, &t)
        .await?;
    if let Some((m, our_id, our_challenge)) = ours {
        let n = find(&pairs, "CHAP_N");
        let r = find(&pairs, "CHAP_R")
            .ok_or_else(|| Error::MutualAuthFailed("target sent no CHAP_R".into()))?;
        if let Some(want) = &m.username {
            if n != Some(want.as_str()) {
                return Err(Error::MutualAuthFailed(format!(
                    "target CHAP_N {n:?}, expected {want}"
                )));
            }
        }
        let r =
            chap::decode_binary(r).map_err(|e| Error::MutualAuthFailed(format!("CHAP_R: {e}")))?;
        if !alg.verify(our_id, &m.secret, &our_challenge, &r) {
            return Err(Error::MutualAuthFailed("CHAP_R does not verify".into()));
        }
    }
    for (k, v) in &pairs {
        if !k.starts_with("CHAP_") {
            record_declaration(out, k, v);
        }
    }
    Ok(resp)
}

/// The operational stage: offer, conclude, answer the target's own offers, until the
/// target transits to the full feature phase.
async fn operational(
    ex: &mut Exchange<'_>,
    leading: &[(String, String)],
    out: &mut Negotiated,
) -> Result<()> {
    let cfg = ex.cfg;
    let mut pending: BTreeMap<String, String> = BTreeMap::new();
    let mut send: Vec<(String, String)> = leading.to_vec();
    for (k, v) in &cfg.offers {
        send.push((k.clone(), v.clone()));
        match negotiation::key(k).map(|d| d.ty) {
            Some(KeyType::DeclarativeNumeric { .. }) | Some(KeyType::Declarative) => {
                if k == "MaxRecvDataSegmentLength" {
                    let n = negotiation::parse_number(v)
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| Error::Invalid(format!("MaxRecvDataSegmentLength={v}")))?;
                    out.params.max_recv_data_segment_length = n;
                }
            }
            _ => {
                pending.insert(k.clone(), v.clone());
            }
        }
    }
    for _ in 0..MAX_ROUNDS {
        let t = text::encode(send.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let (resp, pairs) = ex
            .round(Stage::Operational, Stage::FullFeature, true, &t)
            .await?;
        send.clear();
        for (k, v) in pairs {
            if let Some(offered) = pending.remove(&k) {
                let Some(def) = negotiation::key(&k) else {
                    // An unknown key of ours: the target answering NotUnderstood is right.
                    out.values.insert(k, v);
                    continue;
                };
                match negotiation::conclude(def, &offered, &v) {
                    Ok(agreed) => {
                        out.params.set(&k, &agreed);
                        out.values.insert(k, agreed);
                    }
                    Err(
                        NegotiationError::Rejected(_)
                        | NegotiationError::Irrelevant(_)
                        | NegotiationError::NotUnderstood(_),
                    ) => {
                        // The key keeps its default (§6.2); the caller can see the answer.
                        out.values.insert(k, v);
                    }
                    Err(e) => return Err(neg_err(e)),
                }
            } else if record_declaration(out, &k, &v) {
            } else if matches!(
                v.as_str(),
                negotiation::REJECT | negotiation::IRRELEVANT | negotiation::NOT_UNDERSTOOD
            ) {
                // Not an offer (nothing to answer): a stray answer, recorded for the caller.
                out.values.insert(k, v);
            } else {
                // The target's own offer: answer it with our value (or the default).
                let answer = match negotiation::key(&k) {
                    None => Answer::NotUnderstood,
                    Some(def) => {
                        let ours = cfg.offered(&k).unwrap_or(def.default);
                        if cfg.session_type == SessionType::Discovery && !def.discovery {
                            Answer::Irrelevant
                        } else {
                            negotiation::respond(def, &v, ours)
                        }
                    }
                };
                if let Answer::Value(a) = &answer {
                    out.params.set(&k, a);
                    out.values.insert(k.clone(), a.clone());
                }
                if let Some(text) = answer.text() {
                    send.push((k, text.to_owned()));
                }
            }
        }
        if resp.transit && send.is_empty() {
            return match resp.nsg {
                Stage::FullFeature => Ok(()),
                s => Err(Error::Protocol(format!(
                    "operational stage transits to {s:?}"
                ))),
            };
        }
    }
    Err(Error::Protocol(
        "target never entered the full feature phase".into(),
    ))
}

/// The CHAP response a test can compute itself (e.g. for hand-built logins).
pub fn chap_response(alg: ChapAlgorithm, id: u8, secret: &[u8], challenge: &[u8]) -> Vec<u8> {
    alg.response(id, secret, challenge)
}
