//! A tiny in-test iSCSI target over loopback TCP: enough of RFC 7143 to exercise the
//! initiator's login, negotiation, CHAP, R2T / Data-In flows, NOP, TMF, text and logout
//! against a peer whose behaviour the test controls. One RAM LUN 0 of 512-byte blocks.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use ironlun_iscsi::chap::{self, ChapAlgorithm};
use ironlun_iscsi::negotiation::{self, Answer, OperationalParams};
use ironlun_iscsi::pdu::{tmf_function, tmf_response};
use ironlun_iscsi::text;
use ironlun_iscsi::*;
use ironlun_scsi::lun;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const TARGET: &str = "iqn.2026-11.test:fake";
pub const BLOCK: usize = 512;
pub const BLOCKS: usize = 8192;

#[derive(Clone, Default)]
pub struct FakeConfig {
    /// (user, secret) the initiator must present; with Some, AuthMethod=CHAP is required.
    pub chap: Option<(String, Vec<u8>)>,
    /// Mutual: (target user, secret) used to answer the initiator's challenge.
    pub mutual: Option<(String, Vec<u8>)>,
    /// Answer mutual CHAP with a wrong response.
    pub bad_mutual: bool,
    pub chap_algs: Vec<ChapAlgorithm>,
    /// Target-side values / limits for operational keys.
    pub ours: Vec<(&'static str, &'static str)>,
    /// Keys the target offers on its own in the operational stage.
    pub target_offers: Vec<(&'static str, &'static str)>,
    /// Commands the window admits beyond ExpCmdSN - 1 (MaxCmdSN = ExpCmdSN + window - 1).
    pub window: u32,
    /// Send a NOP-In ping right after login.
    pub ping_after_login: bool,
    /// Send a NOP-In ping (TTT 0x56) just before answering the initiator's first NOP-Out
    /// ping, so the initiator has it in hand when its ping returns.
    pub ping_before_echo: bool,
    /// Send Data-In segments of this size regardless of what the initiator declared.
    pub force_data_in_seg: Option<usize>,
    /// After login, send these raw bytes instead of serving.
    pub garbage_after_first_command: Option<Vec<u8>>,
}

/// Login pairs received so far, one entry per login PDU (cumulative).
pub type Seen = Arc<Mutex<Vec<Vec<(String, String)>>>>;

pub struct Fake {
    pub addr: SocketAddr,
    pub disk: Arc<Mutex<Vec<u8>>>,
    /// Login key/value pairs received, per connection, for assertions.
    pub seen: Seen,
}

pub async fn spawn(cfg: FakeConfig) -> Fake {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let disk = Arc::new(Mutex::new(vec![0u8; BLOCK * BLOCKS]));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (d, s) = (disk.clone(), seen.clone());
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = l.accept().await else {
                return;
            };
            let (cfg, d, s) = (cfg.clone(), d.clone(), s.clone());
            tokio::spawn(async move {
                let _ = Conn::new(sock, cfg, d, s).run().await;
            });
        }
    });
    Fake { addr, disk, seen }
}

struct WriteTask {
    lun: [u8; 8],
    lba: usize,
    data: Vec<u8>,
    got: usize,
    next_r2t_offset: usize,
    outstanding: u32,
    r2t_sn: u32,
    unsolicited_done: bool,
}

struct Conn {
    sock: TcpStream,
    buf: BytesMut,
    cfg: FakeConfig,
    disk: Arc<Mutex<Vec<u8>>>,
    seen: Seen,
    d: Digests,
    p: OperationalParams,
    stat_sn: u32,
    exp_cmd_sn: u32,
    writes: HashMap<u32, WriteTask>,
    ttt: u32,
    ua: bool,
}

type R<T> = Result<T, String>;

impl Conn {
    fn new(sock: TcpStream, cfg: FakeConfig, disk: Arc<Mutex<Vec<u8>>>, seen: Seen) -> Conn {
        Conn {
            sock,
            buf: BytesMut::new(),
            cfg,
            disk,
            seen,
            d: Digests::default(),
            p: OperationalParams::default(),
            stat_sn: 100,
            exp_cmd_sn: 0,
            writes: HashMap::new(),
            ttt: 0x1000,
            ua: false,
        }
    }

    async fn recv(&mut self) -> R<Pdu> {
        let dec = Decoder {
            digests: self.d,
            max_data: 1 << 24,
        };
        loop {
            if let Some(p) = dec.decode(&mut self.buf).map_err(|e| e.to_string())? {
                return Ok(p);
            }
            if self
                .sock
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| e.to_string())?
                == 0
            {
                return Err("eof".into());
            }
        }
    }

    async fn send(&mut self, p: Pdu) -> R<()> {
        let b = p.to_bytes(self.d).map_err(|e| e.to_string())?;
        self.sock.write_all(&b).await.map_err(|e| e.to_string())
    }

    fn max_cmd_sn(&self) -> u32 {
        let w = if self.cfg.window == 0 {
            64
        } else {
            self.cfg.window
        };
        self.exp_cmd_sn.wrapping_add(w - 1)
    }

    fn next_stat(&mut self) -> u32 {
        let s = self.stat_sn;
        self.stat_sn += 1;
        s
    }

    async fn login_reply(
        &mut self,
        req: &LoginRequest,
        transit: bool,
        nsg: Stage,
        status: u16,
        pairs: &[(String, String)],
    ) -> R<()> {
        let data = text::encode(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let stat_sn = self.next_stat();
        let bhs = Bhs::LoginResponse(LoginResponse {
            transit,
            cont: false,
            csg: req.csg,
            nsg: if transit { nsg } else { Stage::Security },
            version_max: 0,
            version_active: 0,
            isid: req.isid,
            tsih: if transit && nsg == Stage::FullFeature {
                7
            } else {
                0
            },
            itt: req.itt,
            stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
            status_class: (status >> 8) as u8,
            status_detail: status as u8,
        });
        self.send(Pdu::with_data(bhs, data)).await
    }

    /// A NOP-In ping (§11.19) with target transfer tag `ttt`.
    async fn ping(&mut self, ttt: u32) -> R<()> {
        let bhs = Bhs::NopIn(NopIn {
            lun: [0; 8],
            itt: RESERVED_TAG,
            ttt,
            stat_sn: self.stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
        });
        self.send(Pdu::new(bhs)).await
    }

    async fn run(mut self) -> R<()> {
        self.login().await?;
        if self.cfg.ping_after_login {
            self.ping(0x55).await?;
        }
        loop {
            let p = self.recv().await?;
            if let Some(g) = self.cfg.garbage_after_first_command.take() {
                self.sock.write_all(&g).await.map_err(|e| e.to_string())?;
                continue;
            }
            if !self.full_feature(p).await? {
                return Ok(());
            }
        }
    }

    async fn login(&mut self) -> R<()> {
        let mut all = Vec::new();
        let mut chap_state: Option<(ChapAlgorithm, u8, Vec<u8>)> = None;
        let mut authed = self.cfg.chap.is_none();
        loop {
            let p = self.recv().await?;
            let Bhs::LoginRequest(req) = p.bhs.clone() else {
                return Err("not a login".into());
            };
            self.exp_cmd_sn = req.cmd_sn;
            let pairs = text::parse(&p.data).map_err(|e| e.to_string())?;
            all.extend(pairs.clone());
            self.seen.lock().unwrap().push(all.clone());
            let mut answer: Vec<(String, String)> = Vec::new();
            if req.csg == Stage::Security {
                let get = |k: &str| pairs.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
                if let Some(m) = get("AuthMethod") {
                    let want = if self.cfg.chap.is_some() {
                        "CHAP"
                    } else {
                        "None"
                    };
                    if !m.split(',').any(|x| x == want) {
                        return self
                            .login_reply(&req, false, Stage::Security, 0x0201, &[])
                            .await;
                    }
                    answer.push(("AuthMethod".into(), want.into()));
                }
                if let Some(a) = get("CHAP_A") {
                    let algs = if self.cfg.chap_algs.is_empty() {
                        vec![ChapAlgorithm::Md5]
                    } else {
                        self.cfg.chap_algs.clone()
                    };
                    let Some(alg) = chap::select_algorithm(&a, &algs) else {
                        answer.push(("CHAP_A".into(), "Reject".into()));
                        self.login_reply(&req, false, Stage::Security, 0x0201, &answer)
                            .await?;
                        return Err("no alg".into());
                    };
                    let ch: Vec<u8> = (0..alg.digest_len() as u8)
                        .map(|i| i.wrapping_mul(37))
                        .collect();
                    answer.push(("CHAP_A".into(), alg.code().to_string()));
                    answer.push(("CHAP_I".into(), "9".into()));
                    answer.push(("CHAP_C".into(), chap::encode_hex(&ch)));
                    chap_state = Some((alg, 9, ch));
                }
                if let (Some(n), Some(r)) = (get("CHAP_N"), get("CHAP_R")) {
                    let (alg, id, ch) = chap_state.clone().ok_or("CHAP_R before CHAP_C")?;
                    let (user, secret) = self.cfg.chap.clone().ok_or("no chap cfg")?;
                    let r = chap::decode_binary(&r).map_err(|e| e.to_string())?;
                    if n != user || !alg.verify(id, &secret, &ch, &r) {
                        return self
                            .login_reply(&req, false, Stage::Security, 0x0201, &[])
                            .await;
                    }
                    authed = true;
                    if let (Some(i), Some(c)) = (get("CHAP_I"), get("CHAP_C")) {
                        let (tu, ts) = self.cfg.mutual.clone().ok_or("no mutual cfg")?;
                        let i: u8 = i.parse().map_err(|_| "CHAP_I")?;
                        let c = chap::decode_binary(&c).map_err(|e| e.to_string())?;
                        let mut resp = alg.response(i, &ts, &c);
                        if self.cfg.bad_mutual {
                            resp[0] ^= 1;
                        }
                        answer.push(("CHAP_N".into(), tu));
                        answer.push(("CHAP_R".into(), chap::encode_hex(&resp)));
                    }
                }
                if req.transit && authed {
                    answer.push(("TargetPortalGroupTag".into(), "1".into()));
                    return_or_continue(self, &req, req.nsg, answer).await?;
                    if req.nsg == Stage::FullFeature {
                        return Ok(());
                    }
                    continue;
                }
                self.login_reply(&req, false, Stage::Security, 0, &answer)
                    .await?;
                continue;
            }
            if !authed {
                return self
                    .login_reply(&req, false, Stage::Security, 0x0201, &[])
                    .await;
            }
            // Operational stage.
            for (k, v) in &pairs {
                if v == "NotUnderstood" {
                    continue;
                }
                let Some(def) = negotiation::key(k) else {
                    answer.push((k.clone(), "NotUnderstood".into()));
                    continue;
                };
                if k == "MaxRecvDataSegmentLength" {
                    self.p.max_recv_data_segment_length = v.parse().unwrap_or(8192);
                    continue;
                }
                if self.cfg.target_offers.iter().any(|(tk, _)| tk == k) {
                    // An answer to our own offer.
                    self.p.set(k, v);
                    continue;
                }
                let ours = self
                    .cfg
                    .ours
                    .iter()
                    .find(|(a, _)| a == k)
                    .map(|(_, v)| *v)
                    .unwrap_or(match k.as_str() {
                        "HeaderDigest" | "DataDigest" => "CRC32C,None",
                        "MaxBurstLength" | "FirstBurstLength" => "16776192",
                        "MaxOutstandingR2T" => "16",
                        "MaxConnections" => "8",
                        "InitialR2T" => "No",
                        _ => def.default,
                    });
                match negotiation::respond(def, v, ours) {
                    Answer::Value(a) => {
                        self.p.set(k, &a);
                        answer.push((k.clone(), a));
                    }
                    Answer::Accepted => {}
                    other => answer.push((k.clone(), other.text().unwrap_or("").into())),
                }
            }
            if self.p.first_burst_irrelevant() {
                for a in answer.iter_mut() {
                    if a.0 == "FirstBurstLength" {
                        a.1 = "Irrelevant".into();
                    }
                }
            }
            let offers: Vec<_> = self
                .cfg
                .target_offers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let mut first_round_offers = false;
            if !offers.is_empty() && !all.iter().any(|(k, _)| k == "__offered") {
                all.push(("__offered".into(), String::new()));
                answer.extend(offers);
                first_round_offers = true;
            }
            answer.push(("MaxRecvDataSegmentLength".into(), "65536".into()));
            self.p.max_xmit_data_segment_length = 65536;
            if req.transit && !first_round_offers {
                self.login_reply(&req, true, Stage::FullFeature, 0, &answer)
                    .await?;
                self.d = Digests {
                    header: self.p.header_digest,
                    data: self.p.data_digest,
                };
                return Ok(());
            }
            self.login_reply(&req, false, Stage::Operational, 0, &answer)
                .await?;
        }
    }

    fn mrdsl(&self) -> usize {
        self.cfg
            .force_data_in_seg
            .unwrap_or(self.p.max_recv_data_segment_length as usize)
    }

    fn advance(&mut self, immediate: bool, cmd_sn: u32) {
        if !immediate && cmd_sn == self.exp_cmd_sn {
            self.exp_cmd_sn = self.exp_cmd_sn.wrapping_add(1);
        }
    }

    async fn respond_scsi(&mut self, itt: u32, status: u8, sense: Option<Vec<u8>>) -> R<()> {
        let data = match sense {
            Some(s) => {
                let mut d = (s.len() as u16).to_be_bytes().to_vec();
                d.extend(s);
                d
            }
            None => Vec::new(),
        };
        let stat_sn = self.next_stat();
        let bhs = Bhs::ScsiResponse(ScsiResponse {
            status,
            itt,
            stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
            ..ScsiResponse::default()
        });
        self.send(Pdu::with_data(bhs, data)).await
    }

    async fn send_r2ts(&mut self, itt: u32) -> R<()> {
        let mbl = self.p.max_burst_length as usize;
        let max_out = self.p.max_outstanding_r2t;
        let mut out = Vec::new();
        if let Some(t) = self.writes.get_mut(&itt) {
            while t.outstanding < max_out && t.next_r2t_offset < t.data.len() {
                let len = (t.data.len() - t.next_r2t_offset).min(mbl);
                self.ttt += 1;
                out.push(Bhs::R2t(R2t {
                    lun: t.lun,
                    itt,
                    ttt: self.ttt,
                    stat_sn: self.stat_sn,
                    exp_cmd_sn: self.exp_cmd_sn,
                    max_cmd_sn: 0,
                    r2t_sn: t.r2t_sn,
                    buffer_offset: t.next_r2t_offset as u32,
                    desired_length: len as u32,
                }));
                t.r2t_sn += 1;
                t.outstanding += 1;
                t.next_r2t_offset += len;
            }
        }
        let max = self.max_cmd_sn();
        for mut b in out {
            if let Bhs::R2t(r) = &mut b {
                r.max_cmd_sn = max;
            }
            self.send(Pdu::new(b)).await?;
        }
        Ok(())
    }

    async fn finish_write_if_done(&mut self, itt: u32) -> R<()> {
        let done = self.writes.get(&itt).is_some_and(|t| t.got >= t.data.len());
        if done {
            let t = self.writes.remove(&itt).unwrap();
            let off = t.lba * BLOCK;
            self.disk.lock().unwrap()[off..off + t.data.len()].copy_from_slice(&t.data);
            self.respond_scsi(itt, 0, None).await?;
        } else if self.writes.get(&itt).is_some_and(|t| t.unsolicited_done) {
            self.send_r2ts(itt).await?;
        }
        Ok(())
    }

    /// Returns false when the connection should end.
    async fn full_feature(&mut self, p: Pdu) -> R<bool> {
        match p.bhs.clone() {
            Bhs::ScsiCommand(c) => {
                self.advance(c.immediate, c.cmd_sn);
                if self.ua {
                    self.ua = false;
                    let s = ironlun_scsi::Sense::unit_attention(
                        ironlun_scsi::sense::asc::BUS_DEVICE_RESET_FUNCTION_OCCURRED,
                    );
                    self.respond_scsi(c.itt, 2, Some(s.encode_fixed())).await?;
                    return Ok(true);
                }
                let cdb = c.cdb;
                match cdb[0] {
                    0x88 => {
                        let lba = u64::from_be_bytes(cdb[2..10].try_into().unwrap()) as usize;
                        let n = u32::from_be_bytes(cdb[10..14].try_into().unwrap()) as usize;
                        let data =
                            self.disk.lock().unwrap()[lba * BLOCK..(lba + n) * BLOCK].to_vec();
                        let seg = self.mrdsl();
                        let chunks: Vec<_> = data.chunks(seg).map(|c| c.to_vec()).collect();
                        let count = chunks.len();
                        for (i, ch) in chunks.into_iter().enumerate() {
                            let last = i + 1 == count;
                            let stat_sn = if last { self.next_stat() } else { 0 };
                            let bhs = Bhs::DataIn(DataIn {
                                final_: last,
                                status: last.then_some(0),
                                lun: c.lun,
                                itt: c.itt,
                                ttt: RESERVED_TAG,
                                stat_sn,
                                exp_cmd_sn: self.exp_cmd_sn,
                                max_cmd_sn: self.max_cmd_sn(),
                                data_sn: i as u32,
                                buffer_offset: (i * seg) as u32,
                                ..DataIn::default()
                            });
                            self.send(Pdu::with_data(bhs, ch)).await?;
                        }
                    }
                    0x8a => {
                        let lba = u64::from_be_bytes(cdb[2..10].try_into().unwrap()) as usize;
                        let len = c.expected_data_length as usize;
                        let mut data = vec![0u8; len];
                        data[..p.data.len()].copy_from_slice(&p.data);
                        let imm = p.data.len();
                        let unsolicited_done = c.final_;
                        self.writes.insert(
                            c.itt,
                            WriteTask {
                                lun: c.lun,
                                lba,
                                data,
                                got: imm,
                                next_r2t_offset: if self.p.initial_r2t {
                                    imm
                                } else {
                                    len.min(self.p.first_burst_length as usize).max(imm)
                                },
                                outstanding: 0,
                                r2t_sn: 0,
                                unsolicited_done,
                            },
                        );
                        self.finish_write_if_done(c.itt).await?;
                    }
                    _ => self.respond_scsi(c.itt, 0, None).await?,
                }
            }
            Bhs::DataOut(d) => {
                let Some(t) = self.writes.get_mut(&d.itt) else {
                    return Ok(true);
                };
                let off = d.buffer_offset as usize;
                t.data[off..off + p.data.len()].copy_from_slice(&p.data);
                t.got += p.data.len();
                if d.final_ {
                    if d.ttt == RESERVED_TAG {
                        t.unsolicited_done = true;
                    } else {
                        t.outstanding -= 1;
                    }
                }
                if d.final_ {
                    self.finish_write_if_done(d.itt).await?;
                }
            }
            Bhs::NopOut(n) => {
                self.advance(n.immediate, n.cmd_sn);
                if n.itt != RESERVED_TAG && std::mem::take(&mut self.cfg.ping_before_echo) {
                    self.ping(0x56).await?;
                }
                if n.itt != RESERVED_TAG {
                    let stat_sn = self.next_stat();
                    let bhs = Bhs::NopIn(NopIn {
                        lun: n.lun,
                        itt: n.itt,
                        ttt: RESERVED_TAG,
                        stat_sn,
                        exp_cmd_sn: self.exp_cmd_sn,
                        max_cmd_sn: self.max_cmd_sn(),
                    });
                    self.send(Pdu::with_data(bhs, p.data.clone())).await?;
                } else {
                    // The answer to our ping: record it as a "seen" pair.
                    self.seen
                        .lock()
                        .unwrap()
                        .push(vec![("NopOutTTT".into(), n.ttt.to_string())]);
                }
            }
            Bhs::TaskMgmtRequest(t) => {
                self.advance(t.immediate, t.cmd_sn);
                let resp = match t.function {
                    tmf_function::ABORT_TASK => {
                        if self.writes.remove(&t.referenced_task_tag).is_some() {
                            tmf_response::FUNCTION_COMPLETE
                        } else {
                            tmf_response::TASK_DOES_NOT_EXIST
                        }
                    }
                    tmf_function::LOGICAL_UNIT_RESET => {
                        let lun = lun::decode_or_raw(t.lun);
                        self.writes.retain(|_, w| lun::decode_or_raw(w.lun) != lun);
                        self.ua = true;
                        tmf_response::FUNCTION_COMPLETE
                    }
                    tmf_function::ABORT_TASK_SET | tmf_function::CLEAR_TASK_SET => {
                        self.writes.clear();
                        tmf_response::FUNCTION_COMPLETE
                    }
                    _ => tmf_response::NOT_SUPPORTED,
                };
                let stat_sn = self.next_stat();
                let bhs = Bhs::TaskMgmtResponse(TaskMgmtResponse {
                    response: resp,
                    itt: t.itt,
                    stat_sn,
                    exp_cmd_sn: self.exp_cmd_sn,
                    max_cmd_sn: self.max_cmd_sn(),
                });
                self.send(Pdu::new(bhs)).await?;
            }
            Bhs::TextRequest(t) => {
                self.advance(t.immediate, t.cmd_sn);
                let pairs = text::parse(&p.data).map_err(|e| e.to_string())?;
                let mut ans = Vec::new();
                if pairs.iter().any(|(k, _)| k == "SendTargets") {
                    ans = text::encode([
                        ("TargetName", TARGET),
                        ("TargetAddress", "127.0.0.1:3260,1"),
                        ("TargetAddress", "[::1]:3260,1"),
                        ("TargetName", "iqn.2026-11.test:second"),
                        ("TargetAddress", "127.0.0.1:3261,2"),
                    ]);
                }
                // Split in two to exercise continuation.
                let (a, b) = ans.split_at(ans.len() / 2);
                let (a, b) = (a.to_vec(), b.to_vec());
                let stat_sn = self.next_stat();
                let bhs = Bhs::TextResponse(TextResponse {
                    final_: false,
                    cont: true,
                    lun: [0; 8],
                    itt: t.itt,
                    ttt: 0x77,
                    stat_sn,
                    exp_cmd_sn: self.exp_cmd_sn,
                    max_cmd_sn: self.max_cmd_sn(),
                });
                self.send(Pdu::with_data(bhs, a)).await?;
                let q = self.recv().await?;
                let Bhs::TextRequest(t2) = q.bhs else {
                    return Err("expected a continuation text request".into());
                };
                if t2.ttt != 0x77 {
                    return Err("continuation without our TTT".into());
                }
                self.advance(false, t2.cmd_sn);
                let stat_sn = self.next_stat();
                let bhs = Bhs::TextResponse(TextResponse {
                    final_: true,
                    cont: false,
                    lun: [0; 8],
                    itt: t.itt,
                    ttt: RESERVED_TAG,
                    stat_sn,
                    exp_cmd_sn: self.exp_cmd_sn,
                    max_cmd_sn: self.max_cmd_sn(),
                });
                self.send(Pdu::with_data(bhs, b)).await?;
            }
            Bhs::LogoutRequest(l) => {
                self.advance(l.immediate, l.cmd_sn);
                let stat_sn = self.next_stat();
                let bhs = Bhs::LogoutResponse(LogoutResponse {
                    response: 0,
                    itt: l.itt,
                    stat_sn,
                    exp_cmd_sn: self.exp_cmd_sn,
                    max_cmd_sn: self.max_cmd_sn(),
                    time2wait: 0,
                    time2retain: 0,
                });
                self.send(Pdu::new(bhs)).await?;
                let _ = self.sock.shutdown().await;
                return Ok(false);
            }
            _ => {}
        }
        Ok(true)
    }
}

async fn return_or_continue(
    c: &mut Conn,
    req: &LoginRequest,
    nsg: Stage,
    answer: Vec<(String, String)>,
) -> R<()> {
    c.login_reply(req, true, nsg, 0, &answer).await
}

pub fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

pub fn bytes(v: &[u8]) -> Bytes {
    Bytes::copy_from_slice(v)
}
