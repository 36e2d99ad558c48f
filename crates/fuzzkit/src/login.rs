//! Whole login sequences (RFC 7143 §6, §11.12-13, §12.1.3) against the fabric's login phase
//! (`ironlun_fabric::fuzzing::LoginRig`) over in-memory streams: security and operational
//! stages, CHAP one-way and mutual with MD5 and SHA-256, discovery and normal sessions, added
//! connections and reinstatement.
//!
//! Input: one byte picks the configuration (CHAP required or not, discovery CHAP, TPG-level
//! credentials, parameter overrides); then up to [`MAX_CONNECTIONS`] connections, each a
//! script of steps: raw bytes, or a Login Request whose header fields and keys the input
//! picks. Keys come from a dictionary of the values that matter (names, stages, algorithms,
//! the right CHAP response to the challenge the target just sent, a wrong one, mutual
//! challenges) or verbatim from the input. Time is paused, so a target waiting for bytes
//! that never come times out at once.
//!
//! Properties: a normal session that requires CHAP is never granted without the right
//! response; a target's mutual CHAP response is the right one for the configured secret.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use ironlun_engine::TargetPort;
use ironlun_fabric::fuzzing::{LoggedIn, LoginRig};
use ironlun_fabric::{AuthConfig, FabricConfig, TargetConfig, TpgConfig};
use ironlun_iscsi::chap::{self, ChapAlgorithm};
use ironlun_iscsi::{text, Bhs, Decoder, Digests, LoginRequest, Pdu, Stage};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use crate::input::Input;

pub const TARGET: &str = "iqn.2024-01.fuzz.ironlun:disk";
/// An initiator with its own ACL credentials (mutual too).
pub const ALICE: &str = "iqn.2024-01.fuzz.client:alice";
/// An initiator without an ACL: demo mode, TPG-level credentials if configured.
pub const BOB: &str = "iqn.2024-01.fuzz.client:bob";

const ALICE_AUTH: Creds = ("alice", "alice-secret-1", "target-a", "target-secret-a");
const TPG_AUTH: Creds = ("demo", "demo-secret-22", "", "");
const DISCOVERY_AUTH: Creds = ("disc", "disc-secret-333", "target-d", "target-secret-d");

/// userid, secret, mutual userid, mutual secret.
type Creds = (&'static str, &'static str, &'static str, &'static str);

/// The credentials the configuration holds for `initiator` in a discovery or normal session.
fn creds(bits: u8, discovery: bool, initiator: &str) -> Option<Creds> {
    if discovery {
        (bits & cfg::DISCOVERY_CHAP != 0).then_some(DISCOVERY_AUTH)
    } else if initiator == ALICE {
        Some(ALICE_AUTH)
    } else {
        (bits & cfg::TPG_CREDS != 0).then_some(TPG_AUTH)
    }
}

/// Keys whose value is one of four (bits 6-7 of the pick): dictionary index, key, values.
const CHOICES: &[(u8, &str, [&str; 4])] = &[
    (4, "AuthMethod", ["CHAP", "None", "CHAP,None", "KRB5,SRP"]),
    (5, "CHAP_A", ["5", "7", "7,5", "6,99"]),
    (
        9,
        "HeaderDigest",
        ["CRC32C", "None", "CRC32C,None", "bogus"],
    ),
    (10, "DataDigest", ["None,CRC32C", "CRC32C", "None", ""]),
    (14, "InitialR2T", ["Yes", "No", "yes", "Maybe"]),
    (15, "ImmediateData", ["Yes", "No", "", "Yes,No"]),
];

/// Connections one input may open.
pub const MAX_CONNECTIONS: usize = 4;
/// Steps of one connection.
const MAX_STEPS: usize = 16;

/// The configuration bits of the first input byte.
pub mod cfg {
    /// `attrib/authentication=1`: CHAP required for normal sessions.
    pub const CHAP_REQUIRED: u8 = 1;
    /// `discovery_auth` set: CHAP required for discovery sessions.
    pub const DISCOVERY_CHAP: u8 = 2;
    /// TPG-level credentials (used for initiators without their own).
    pub const TPG_CREDS: u8 = 4;
    /// `param/HeaderDigest=CRC32C,None`, `param/DataDigest=CRC32C,None`.
    pub const DIGESTS: u8 = 8;
    /// `param/AuthMethod=CHAP`: CHAP only, even with authentication=0.
    pub const CHAP_ONLY: u8 = 16;
}

fn portal() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 3260))
}

fn auth(a: (&str, &str, &str, &str)) -> AuthConfig {
    AuthConfig {
        userid: a.0.into(),
        password: a.1.into(),
        mutual_userid: a.2.into(),
        mutual_password: a.3.into(),
    }
}

fn config(bits: u8) -> Option<FabricConfig> {
    let dev = crate::engine::ram_device(9, 1 << 20)?;
    let port = TargetPort::new(TARGET, 1, 1);
    port.add_lun(0, dev).ok()?;
    port.set_demo_mode(true, false);
    let mut params = BTreeMap::new();
    if bits & cfg::DIGESTS != 0 {
        params.insert("HeaderDigest".into(), "CRC32C,None".into());
        params.insert("DataDigest".into(), "CRC32C,None".into());
    }
    if bits & cfg::CHAP_ONLY != 0 {
        params.insert("AuthMethod".into(), "CHAP".into());
    }
    let mut acl_auth = BTreeMap::new();
    acl_auth.insert(ALICE.to_string(), auth(ALICE_AUTH));
    let tpg = TpgConfig {
        tpgt: 1,
        enabled: true,
        portals: vec![portal()],
        port,
        authentication: bits & cfg::CHAP_REQUIRED != 0,
        auth: if bits & cfg::TPG_CREDS != 0 {
            auth(TPG_AUTH)
        } else {
            AuthConfig::default()
        },
        acl_auth,
        params,
        nopin: None,
    };
    Some(FabricConfig {
        targets: vec![TargetConfig {
            name: TARGET.into(),
            tpgs: vec![tpg],
        }],
        discovery_auth: (bits & cfg::DISCOVERY_CHAP != 0).then(|| auth(DISCOVERY_AUTH)),
    })
}

pub fn run(data: &[u8]) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
    else {
        return;
    };
    rt.block_on(session(data));
}

async fn session(data: &[u8]) {
    let mut inp = Input::new(data);
    let bits = inp.byte();
    // The harness's own setup, not input: if it cannot be built, nothing is tested.
    let config = config(bits).expect("the login configuration builds");
    let rig = LoginRig::new(config);
    let mut tsihs: Vec<u16> = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        if inp.is_empty() {
            break;
        }
        let (mut ours, mut theirs) = tokio::io::duplex(64 * 1024);
        let mut client = Client::new(bits, &tsihs);
        let target = async {
            tokio::time::timeout(Duration::from_secs(15), rig.login(&mut theirs, portal()))
                .await
                .ok()
                .flatten()
        };
        let (done, ()) = tokio::join!(target, async {
            client.script(&mut inp, &mut ours).await;
            drop(ours);
        });
        if let Some(LoggedIn {
            tsih,
            initiator,
            normal,
        }) = done
        {
            client.check_granted(&initiator, normal);
            tsihs.push(tsih);
        }
    }
    rig.close();
}

/// The initiator's side of one connection.
struct Client<'a> {
    bits: u8,
    tsihs: &'a [u16],
    initiator: &'static str,
    discovery: bool,
    /// The target's last CHAP challenge: algorithm, identifier, challenge.
    challenge: Option<(ChapAlgorithm, u8, Vec<u8>)>,
    /// Our mutual challenge in the last request: identifier and challenge.
    mutual: Option<(u8, Vec<u8>)>,
    /// The last request carried verbatim text: its keys are not known here.
    opaque: bool,
    /// The user whose right CHAP_N and CHAP_R we sent for the target's last challenge.
    proved: Option<&'static str>,
    /// What `proved` was when the target let us out of the security stage.
    left_security: Option<Option<&'static str>>,
    stat_sn: u32,
    cmd_sn: u32,
}

impl<'a> Client<'a> {
    fn new(bits: u8, tsihs: &'a [u16]) -> Client<'a> {
        Client {
            bits,
            tsihs,
            initiator: ALICE,
            discovery: false,
            challenge: None,
            mutual: None,
            opaque: false,
            proved: None,
            left_security: None,
            stat_sn: 0,
            cmd_sn: 0,
        }
    }

    /// The credentials the target checks us against, as far as we know what it took from
    /// our first request.
    fn creds(&self) -> Option<Creds> {
        creds(self.bits, self.discovery, self.initiator)
    }

    /// The target let this connection log in (as `initiator`, a normal session or not): if
    /// the configuration requires CHAP there, we must have proved that user's secret.
    fn check_granted(&self, initiator: &str, normal: bool) {
        let required = if normal {
            self.bits & (cfg::CHAP_REQUIRED | cfg::CHAP_ONLY) != 0
        } else {
            self.bits & cfg::DISCOVERY_CHAP != 0
        };
        if !required {
            return;
        }
        let user = creds(self.bits, !normal, initiator).map(|c| c.0);
        let proved = self.left_security.flatten();
        assert!(
            user.is_some() && proved == user,
            "login granted without CHAP (initiator {initiator}, normal {normal}, proved {proved:?})"
        );
    }

    async fn script(&mut self, inp: &mut Input<'_>, s: &mut DuplexStream) {
        let mut rbuf = BytesMut::new();
        for _ in 0..MAX_STEPS {
            match inp.byte() % 8 {
                0 => return,
                1 => {
                    let raw = inp.chunk();
                    if s.write_all(raw).await.is_err() {
                        return;
                    }
                }
                _ => {
                    let pdu = self.request(inp);
                    let Ok(bytes) = pdu.to_bytes(Digests::default()) else {
                        return;
                    };
                    if s.write_all(&bytes).await.is_err() {
                        return;
                    }
                    if !self.response(s, &mut rbuf).await {
                        return;
                    }
                }
            }
        }
    }

    fn request(&mut self, inp: &mut Input) -> Pdu {
        let flags = inp.byte();
        let ids = inp.byte();
        let isid = [0x40, 0, 0, 0, 0, ids & 3];
        let tsih = match (ids >> 2) & 3 {
            0 | 1 => 0,
            2 => self.tsihs.last().copied().unwrap_or(1),
            _ => inp.u16(),
        };
        let req = LoginRequest {
            transit: flags & 1 != 0,
            cont: flags & 2 != 0,
            csg: Stage::from_bits((flags >> 2) & 3),
            nsg: Stage::from_bits((flags >> 4) & 3),
            version_max: 0,
            version_min: (flags >> 6) & 1,
            isid,
            tsih,
            itt: u32::from(ids),
            cid: u16::from(ids >> 4),
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.stat_sn,
        };
        let mut keys = Vec::new();
        self.mutual = None;
        self.opaque = false;
        for _ in 0..(inp.byte() % 12) {
            self.key(inp, &mut keys);
        }
        Pdu::with_data(Bhs::LoginRequest(req), keys)
    }

    /// Append one key from the dictionary (or raw text) to `out`.
    fn key(&mut self, inp: &mut Input, out: &mut Vec<u8>) {
        let pick = inp.byte();
        let pair = |out: &mut Vec<u8>, k: &str, v: &str| text::encode_pair(out, k, v);
        let index = (pick & 0x1f) % 24;
        if let Some((_, k, values)) = CHOICES.iter().find(|c| c.0 == index) {
            pair(out, k, values[usize::from(pick >> 6)]);
            return;
        }
        match index {
            0 => {
                self.initiator = if pick & 0x80 != 0 { BOB } else { ALICE };
                pair(out, "InitiatorName", self.initiator);
            }
            1 => pair(out, "TargetName", TARGET),
            2 => pair(out, "TargetName", "iqn.2024-01.fuzz.ironlun:nothing"),
            3 => {
                self.discovery = pick & 0x80 != 0;
                let v = if self.discovery {
                    "Discovery"
                } else {
                    "Normal"
                };
                pair(out, "SessionType", v);
            }
            6 => {
                let name = self.creds().map(|c| c.0).unwrap_or("nobody");
                pair(
                    out,
                    "CHAP_N",
                    if pick & 0x80 != 0 { "mallory" } else { name },
                );
            }
            7 => self.chap_response(out, pick & 0x80 != 0),
            8 => {
                let id = inp.byte();
                let len = [16, 32, 1, 0][usize::from(pick >> 6)];
                let c = inp.take(len).to_vec();
                let c = if pick & 0x20 != 0 {
                    // Reflect the target's own challenge (must be refused, §12.1.3).
                    self.challenge.as_ref().map(|x| x.2.clone()).unwrap_or(c)
                } else {
                    c
                };
                pair(out, "CHAP_I", &id.to_string());
                pair(out, "CHAP_C", &chap::encode_hex(&c));
                self.mutual = Some((id, c));
            }
            11 => pair(out, "MaxRecvDataSegmentLength", &inp.u32().to_string()),
            12 => pair(out, "MaxBurstLength", &inp.u32().to_string()),
            13 => pair(out, "FirstBurstLength", &inp.u32().to_string()),
            16 => pair(out, "MaxConnections", &inp.u16().to_string()),
            17 => pair(out, "ErrorRecoveryLevel", &inp.byte().to_string()),
            18 => pair(out, "MaxOutstandingR2T", &inp.u16().to_string()),
            19 => pair(out, "DefaultTime2Wait", &inp.u16().to_string()),
            20 => pair(out, "SendTargets", "All"),
            21 => pair(out, "TargetAlias", "spoof"),
            22 => pair(out, "X-com.example.key", "Value"),
            _ => {
                // Verbatim text: any bytes, NULs and all.
                self.opaque = true;
                out.extend_from_slice(inp.chunk());
            }
        }
    }

    /// CHAP_N and CHAP_R for the target's last challenge: right, or one byte off.
    fn chap_response(&mut self, out: &mut Vec<u8>, wrong: bool) {
        let Some((alg, id, challenge)) = &self.challenge else {
            text::encode_pair(out, "CHAP_R", "0x00");
            return;
        };
        let (name, secret) = self.creds().map(|c| (c.0, c.1)).unwrap_or(("nobody", "x"));
        let mut r = alg.response(*id, secret.as_bytes(), challenge);
        if wrong {
            if let Some(b) = r.first_mut() {
                *b ^= 1;
            }
        }
        text::encode_pair(out, "CHAP_N", name);
        text::encode_pair(out, "CHAP_R", &chap::encode_hex(&r));
        self.proved = self.creds().filter(|_| !wrong).map(|c| c.0);
    }

    /// Read the target's answer. false: the login is over (refused, or the stream closed).
    async fn response(&mut self, s: &mut DuplexStream, buf: &mut BytesMut) -> bool {
        let decoder = Decoder {
            digests: Digests::default(),
            max_data: 1 << 20,
        };
        let pdu = loop {
            match decoder.decode(buf) {
                Ok(Some(p)) => break p,
                Ok(None) => {}
                Err(e) => panic!("the target sent a bad PDU: {e}"),
            }
            let read = tokio::time::timeout(Duration::from_secs(30), s.read_buf(buf)).await;
            match read {
                Ok(Ok(n)) if n > 0 => {}
                _ => return false,
            }
        };
        let Bhs::LoginResponse(resp) = pdu.bhs else {
            panic!("the target answered a login with {:?}", pdu.bhs.opcode());
        };
        self.stat_sn = resp.stat_sn.wrapping_add(1);
        if resp.status_class != 0 {
            return false;
        }
        if resp.transit && resp.csg == Stage::Security && self.left_security.is_none() {
            self.left_security = Some(self.proved);
        }
        let Ok(keys) = text::parse(&pdu.data) else {
            panic!("the target's keys do not parse");
        };
        let get = |k: &str| keys.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
        if let (Some(a), Some(i), Some(c)) = (get("CHAP_A"), get("CHAP_I"), get("CHAP_C")) {
            let alg = a
                .parse()
                .ok()
                .and_then(ChapAlgorithm::from_code)
                .expect("the target picks an algorithm it offers");
            let id = i.parse().expect("CHAP_I is a number");
            let c = chap::decode_binary(c).expect("CHAP_C is binary");
            self.challenge = Some((alg, id, c));
            self.proved = None;
        }
        if let Some(r) = get("CHAP_R") {
            self.check_mutual(get("CHAP_N"), r);
        }
        true
    }

    /// The target's answer to our mutual challenge must be the right one for the mutual
    /// secret of the user it names.
    fn check_mutual(&self, name: Option<&str>, r: &str) {
        let (Some((id, c)), Some((alg, _, _))) = (&self.mutual, &self.challenge) else {
            // Our challenge came in verbatim text the script does not follow.
            return;
        };
        if self.opaque {
            return;
        }
        let creds = [ALICE_AUTH, DISCOVERY_AUTH]
            .into_iter()
            .find(|x| Some(x.2) == name)
            .expect("the target names a configured mutual user");
        let want = alg.response(*id, creds.3.as_bytes(), c);
        assert_eq!(
            chap::decode_binary(r).ok(),
            Some(want),
            "mutual CHAP_R is right"
        );
    }
}
