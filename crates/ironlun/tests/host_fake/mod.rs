//! A scriptable misbehaving iSCSI target on loopback for the `ironlun host` tests: it logs in
//! without authentication (RFC 7143 §6.3, §11.12-13), answers SendTargets (Appendix C),
//! standard INQUIRY and the VPD pages 0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2 (SPC-4 §6.6, §7.8;
//! SBC-3 §6.6), REPORT TARGET PORT GROUPS in both parameter data formats (SPC-4 §6.36), TEST
//! UNIT READY, READ CAPACITY and PERSISTENT RESERVE IN (§6.15) like a small conforming target,
//! and misbehaves where the test's [`Script`] says: at login ([`Login`]), in the SendTargets
//! text, or on any command ([`Reply`], chosen per command by a closure that sees the CDB and
//! how many commands of that kind came before).
//!
//! Everything the initiator sends is recorded ([`Fake::commands`], [`Fake::connections`]) so a
//! test can check what the host did (retries, allocation lengths, redirects followed).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ironlun_initiator::alua::{AccessState, PortGroup, Rtpg, RtpgFormat, SupportedStates};
use ironlun_initiator::iscsi::negotiation::{self, Answer};
use ironlun_initiator::iscsi::pdu::login_status;
use ironlun_initiator::iscsi::{
    check_frame, decode_frame, text, Bhs, DataIn, Digests, FrameCheck, LoginRequest, LoginResponse,
    LogoutResponse, NopIn, Pdu, Reject, ScsiCommand, ScsiResponse, Stage, TextResponse,
    RESERVED_TAG,
};
use ironlun_initiator::scsi_codes::lun;
use ironlun_initiator::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The fake's target name.
pub const TARGET: &str = "iqn.2026-11.test:misbehaving";
/// Its logical unit's NAA 6 designator (the WWID is `3` followed by these bytes in hex).
pub const NAA: [u8; 16] = [
    0x60, 0x01, 0x40, 0x5f, 0xa4, 0xe0, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09,
];
/// The WWID Linux derives from [`NAA`].
pub const WWID: &str = "36001405fa4e000010000000000000009";

/// Sense keys used by the tests (SPC-4 Table 49).
pub const NOT_READY: u8 = 0x2;
pub const ILLEGAL_REQUEST: u8 = 0x5;
pub const UNIT_ATTENTION: u8 = 0x6;

/// How the fake answers a login.
#[derive(Clone, Debug)]
pub enum Login {
    /// Like a target with no authentication.
    Normal,
    /// Read the Login Request and never answer (the TCP connection stays open).
    Silent,
    /// Reject with this status (class << 8 | detail, RFC 7143 §11.13.5).
    Reject(u16),
    /// Redirect (class 1, detail 1) with this TargetAddress, or none.
    Redirect(Option<String>),
    /// Redirect to the fake's own address: a loop.
    RedirectToSelf,
    /// Send these bytes instead of a Login Response, then keep the connection open.
    Garbage(Vec<u8>),
    /// Close the connection after reading the first Login Request.
    CloseMidway,
    /// Complete the login, then close the connection at once.
    CloseOnceLoggedIn,
}

/// What kind of command the initiator sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Standard INQUIRY (EVPD 0).
    Inquiry,
    /// INQUIRY with EVPD 1 for this page.
    Vpd(u8),
    /// REPORT TARGET PORT GROUPS.
    Rtpg,
    TestUnitReady,
    ReadCapacity,
    /// PERSISTENT RESERVE IN with this service action.
    PrIn(u8),
    /// Anything else, by operation code.
    Other(u8),
}

impl Kind {
    fn of(cdb: &[u8]) -> Kind {
        match cdb[0] {
            0x12 if cdb[1] & 1 == 1 => Kind::Vpd(cdb[2]),
            0x12 => Kind::Inquiry,
            0xa3 if cdb[1] & 0x1f == 0x0a => Kind::Rtpg,
            0x00 => Kind::TestUnitReady,
            0x25 => Kind::ReadCapacity,
            0x9e if cdb[1] & 0x1f == 0x10 => Kind::ReadCapacity,
            0x5e => Kind::PrIn(cdb[1] & 0x1f),
            op => Kind::Other(op),
        }
    }
}

/// One command as the fake received it.
#[derive(Clone, Debug)]
pub struct Cmd {
    pub kind: Kind,
    pub cdb: Vec<u8>,
    /// Expected Data Transfer Length of the SCSI Command PDU.
    pub expected: u32,
    /// The LUN addressed.
    pub lun: u64,
    /// How many commands of this kind the fake received before this one (all connections).
    pub nth: usize,
}

impl Cmd {
    /// For REPORT TARGET PORT GROUPS: PARAMETER DATA FORMAT 001b was asked for.
    pub fn rtpg_extended(&self) -> bool {
        self.kind == Kind::Rtpg && self.cdb[1] >> 5 == 1
    }

    /// The CDB's ALLOCATION LENGTH (INQUIRY, RTPG, PR IN), else the expected length.
    pub fn alloc(&self) -> u32 {
        let c = &self.cdb;
        match self.kind {
            Kind::Inquiry | Kind::Vpd(_) => u32::from(u16::from_be_bytes([c[3], c[4]])),
            Kind::Rtpg => u32::from_be_bytes([c[6], c[7], c[8], c[9]]),
            Kind::PrIn(_) => u32::from(u16::from_be_bytes([c[7], c[8]])),
            _ => self.expected,
        }
    }
}

/// How the fake answers one command.
#[derive(Clone, Debug)]
pub enum Reply {
    /// What a conforming target answers (the fake's standard data).
    Normal,
    /// GOOD with these bytes, cut to the allocation length as SPC-4 §4.2.5.6 says.
    Data(Vec<u8>),
    /// GOOD with these bytes whatever the allocation length (Data-In beyond the expected
    /// transfer length).
    DataUncut(Vec<u8>),
    /// GOOD with one Data-In PDU carrying `data` at this buffer offset.
    DataAt { offset: u32, data: Vec<u8> },
    /// CHECK CONDITION with fixed-format sense (SPC-4 §4.5.3).
    Check { key: u8, asc: u8, ascq: u8 },
    /// This status without sense data (BUSY, TASK SET FULL, ...).
    Status(u8),
    /// A SCSI Response with this status, iSCSI response code and raw data segment
    /// (SenseLength, sense, response data: RFC 7143 §11.4.7).
    Raw {
        status: u8,
        response: u8,
        segment: Vec<u8>,
    },
    /// Never answer this command nor anything after it on the connection.
    Silent,
    /// Close the connection instead of answering.
    Close,
    /// A Reject PDU (§11.17) with this reason, quoting the command's header.
    Reject(u8),
    /// Answer GOOD under an Initiator Task Tag the initiator never used.
    WrongTag,
}

/// The logical unit the fake presents and its ALUA view.
#[derive(Clone, Debug)]
pub struct Lu {
    /// LUNs that hold the logical unit (others answer ILLEGAL REQUEST 25h/00h).
    pub luns: Vec<u64>,
    pub naa: [u8; 16],
    /// TPGS of standard INQUIRY (0 none, 1 implicit, 2 explicit, 3 both).
    pub tpgs: u8,
    /// This port's relative target port identifier and target port group (VPD 0x83).
    pub rel_port: u16,
    pub group: u16,
    /// The groups REPORT TARGET PORT GROUPS lists.
    pub groups: Vec<PortGroup>,
}

impl Default for Lu {
    fn default() -> Lu {
        Lu {
            luns: vec![0],
            naa: NAA,
            tpgs: 1,
            rel_port: 1,
            group: 1,
            groups: vec![
                group(1, true, AccessState::ActiveOptimized, &[1]),
                group(2, false, AccessState::ActiveNonOptimized, &[2]),
            ],
        }
    }
}

/// A port group descriptor supporting every state (T, O, U, S, AN, AO), status 0.
pub fn group(id: u16, pref: bool, state: AccessState, ports: &[u16]) -> PortGroup {
    PortGroup {
        pref,
        state,
        supported: SupportedStates::from_byte(0x8f),
        group_id: id,
        status: 0,
        vendor_specific: 0,
        ports: ports.to_vec(),
    }
}

type Decide = Arc<dyn Fn(&Cmd) -> Reply + Send + Sync>;

/// What the fake does.
#[derive(Clone)]
pub struct Script {
    pub login: Login,
    /// The SendTargets answer's text bytes instead of the fake's own name and address.
    pub send_targets: Option<Vec<u8>>,
    pub lu: Lu,
    pub reply: Decide,
}

impl Default for Script {
    fn default() -> Script {
        Script {
            login: Login::Normal,
            send_targets: None,
            lu: Lu::default(),
            reply: Arc::new(|_| Reply::Normal),
        }
    }
}

impl Script {
    /// A conforming target except at login.
    pub fn login(login: Login) -> Script {
        Script {
            login,
            ..Script::default()
        }
    }

    /// A conforming target except where `f` says otherwise.
    pub fn on(f: impl Fn(&Cmd) -> Reply + Send + Sync + 'static) -> Script {
        Script {
            reply: Arc::new(f),
            ..Script::default()
        }
    }

    /// Answer commands of `kind` with `reply` every time, the rest normally.
    pub fn always(kind: Kind, reply: Reply) -> Script {
        Script::on(move |c| {
            if c.kind == kind {
                reply.clone()
            } else {
                Reply::Normal
            }
        })
    }
}

struct Shared {
    script: Script,
    addr: SocketAddr,
    commands: Mutex<Vec<Cmd>>,
    connections: AtomicUsize,
}

/// A running fake target (it lives as long as the test's runtime).
#[derive(Clone)]
pub struct Fake {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Fake {
    /// Listen on 127.0.0.1 (a free port) and serve `script` to every connection.
    pub async fn spawn(script: Script) -> Fake {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let shared = Arc::new(Shared {
            script,
            addr,
            commands: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
        });
        let sh = shared.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                sh.connections.fetch_add(1, Ordering::SeqCst);
                let sh = sh.clone();
                tokio::spawn(async move {
                    let _ = Conn::new(sock, sh).run().await;
                });
            }
        });
        Fake { addr, shared }
    }

    /// `iscsi://127.0.0.1:PORT/TARGET/lun`.
    pub fn url(&self, lun: u64) -> String {
        format!("iscsi://{}/{TARGET}/{lun}", self.addr)
    }

    /// `127.0.0.1:PORT`.
    pub fn portal(&self) -> String {
        self.addr.to_string()
    }

    /// The commands received so far, in order.
    pub fn commands(&self) -> Vec<Cmd> {
        self.shared.commands.lock().unwrap().clone()
    }

    /// The commands of one kind received so far.
    pub fn commands_of(&self, kind: Kind) -> Vec<Cmd> {
        self.commands()
            .into_iter()
            .filter(|c| c.kind == kind)
            .collect()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

/// An address nobody listens on: a port bound on 127.0.0.2 and released (the fakes use
/// 127.0.0.1, so none of them can take it over meanwhile).
pub fn closed_portal() -> String {
    let l = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    l.local_addr().unwrap().to_string()
}

type R<T> = Result<T, String>;

struct Conn {
    sock: TcpStream,
    buf: Vec<u8>,
    sh: Arc<Shared>,
    stat_sn: u32,
    exp_cmd_sn: u32,
}

impl Conn {
    fn new(sock: TcpStream, sh: Arc<Shared>) -> Conn {
        Conn {
            sock,
            buf: Vec::new(),
            sh,
            stat_sn: 0x100,
            exp_cmd_sn: 0,
        }
    }

    async fn recv(&mut self) -> R<Pdu> {
        loop {
            match check_frame(&self.buf, Digests::default(), 1 << 20).map_err(|e| e.to_string())? {
                FrameCheck::Complete(n) => {
                    let frame = Bytes::copy_from_slice(&self.buf[..n]);
                    self.buf.drain(..n);
                    return decode_frame(frame, Digests::default()).map_err(|e| e.to_string());
                }
                FrameCheck::Incomplete(_) => {
                    let mut chunk = [0u8; 4096];
                    let n = self
                        .sock
                        .read(&mut chunk)
                        .await
                        .map_err(|e| e.to_string())?;
                    if n == 0 {
                        return Err("eof".into());
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }

    async fn send(&mut self, p: Pdu) -> R<()> {
        let b = p.to_bytes(Digests::default()).map_err(|e| e.to_string())?;
        self.sock.write_all(&b).await.map_err(|e| e.to_string())
    }

    /// Read and drop everything until the initiator closes the connection.
    async fn deaf(&mut self) -> R<()> {
        let mut chunk = [0u8; 4096];
        while self
            .sock
            .read(&mut chunk)
            .await
            .map_err(|e| e.to_string())?
            > 0
        {}
        Ok(())
    }

    fn next_stat(&mut self) -> u32 {
        let s = self.stat_sn;
        self.stat_sn = self.stat_sn.wrapping_add(1);
        s
    }

    fn max_cmd_sn(&self) -> u32 {
        self.exp_cmd_sn.wrapping_add(63)
    }

    async fn run(mut self) -> R<()> {
        if !self.login().await? {
            return Ok(());
        }
        loop {
            let p = self.recv().await?;
            match p.bhs.clone() {
                Bhs::ScsiCommand(c) => {
                    if !c.immediate && c.cmd_sn == self.exp_cmd_sn {
                        self.exp_cmd_sn = self.exp_cmd_sn.wrapping_add(1);
                    }
                    if !self.command(&c, &p).await? {
                        return Ok(());
                    }
                }
                Bhs::TextRequest(t) => {
                    if !t.immediate && t.cmd_sn == self.exp_cmd_sn {
                        self.exp_cmd_sn = self.exp_cmd_sn.wrapping_add(1);
                    }
                    let pairs = text::parse(&p.data).map_err(|e| e.to_string())?;
                    let mut data = Vec::new();
                    if pairs.iter().any(|(k, _)| k == "SendTargets") {
                        data = match &self.sh.script.send_targets {
                            Some(raw) => raw.clone(),
                            None => {
                                let addr = format!("{},1", self.sh.addr);
                                text::encode([("TargetName", TARGET), ("TargetAddress", &addr)])
                            }
                        };
                    }
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
                    self.send(Pdu::with_data(bhs, data)).await?;
                }
                Bhs::LogoutRequest(l) => {
                    if !l.immediate && l.cmd_sn == self.exp_cmd_sn {
                        self.exp_cmd_sn = self.exp_cmd_sn.wrapping_add(1);
                    }
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
                    return Ok(());
                }
                Bhs::NopOut(n) if n.itt != RESERVED_TAG => {
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
                }
                _ => {}
            }
        }
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
                0x21
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

    /// The login phase; `Ok(true)` when the full feature phase begins.
    async fn login(&mut self) -> R<bool> {
        let mode = self.sh.script.login.clone();
        let mut first = true;
        loop {
            let p = self.recv().await?;
            let Bhs::LoginRequest(req) = p.bhs.clone() else {
                return Err("not a Login Request".into());
            };
            self.exp_cmd_sn = req.cmd_sn;
            if first {
                first = false;
                match &mode {
                    Login::Normal | Login::CloseOnceLoggedIn => {}
                    Login::Silent => {
                        self.deaf().await?;
                        return Ok(false);
                    }
                    Login::Reject(status) => {
                        self.login_reply(&req, false, Stage::Security, *status, &[])
                            .await?;
                        return Ok(false);
                    }
                    Login::Redirect(to) => {
                        let pairs: Vec<_> = to
                            .iter()
                            .map(|a| ("TargetAddress".to_string(), a.clone()))
                            .collect();
                        self.login_reply(
                            &req,
                            true,
                            Stage::Security,
                            login_status::TARGET_MOVED_TEMPORARILY,
                            &pairs,
                        )
                        .await?;
                        return Ok(false);
                    }
                    Login::RedirectToSelf => {
                        let pairs = [("TargetAddress".to_string(), format!("{},1", self.sh.addr))];
                        self.login_reply(
                            &req,
                            true,
                            Stage::Security,
                            login_status::TARGET_MOVED_TEMPORARILY,
                            &pairs,
                        )
                        .await?;
                        return Ok(false);
                    }
                    Login::Garbage(bytes) => {
                        self.sock
                            .write_all(bytes)
                            .await
                            .map_err(|e| e.to_string())?;
                        self.deaf().await?;
                        return Ok(false);
                    }
                    Login::CloseMidway => return Ok(false),
                }
            }
            let pairs = text::parse(&p.data).map_err(|e| e.to_string())?;
            let mut answer: Vec<(String, String)> = Vec::new();
            if req.csg == Stage::Security {
                if pairs.iter().any(|(k, _)| k == "AuthMethod") {
                    answer.push(("AuthMethod".into(), "None".into()));
                }
                answer.push(("TargetPortalGroupTag".into(), "1".into()));
                if req.transit {
                    self.login_reply(&req, true, req.nsg, 0, &answer).await?;
                    if req.nsg == Stage::FullFeature {
                        return self.enter_full_feature(&mode).await;
                    }
                } else {
                    self.login_reply(&req, false, Stage::Security, 0, &answer)
                        .await?;
                }
                continue;
            }
            for (k, v) in &pairs {
                let Some(def) = negotiation::key(k) else {
                    if !matches!(k.as_str(), "InitiatorName" | "SessionType" | "TargetName") {
                        answer.push((k.clone(), "NotUnderstood".into()));
                    }
                    continue;
                };
                if matches!(
                    k.as_str(),
                    "MaxRecvDataSegmentLength"
                        | "InitiatorName"
                        | "InitiatorAlias"
                        | "SessionType"
                        | "TargetName"
                ) {
                    continue;
                }
                let ours = match k.as_str() {
                    "HeaderDigest" | "DataDigest" => "None",
                    _ => v.as_str(),
                };
                match negotiation::respond(def, v, ours) {
                    Answer::Value(a) => answer.push((k.clone(), a)),
                    Answer::Accepted => {}
                    other => answer.push((k.clone(), other.text().unwrap_or("").into())),
                }
            }
            answer.push(("MaxRecvDataSegmentLength".into(), "262144".into()));
            if req.transit {
                self.login_reply(&req, true, Stage::FullFeature, 0, &answer)
                    .await?;
                return self.enter_full_feature(&mode).await;
            }
            self.login_reply(&req, false, Stage::Operational, 0, &answer)
                .await?;
        }
    }

    async fn enter_full_feature(&mut self, mode: &Login) -> R<bool> {
        if matches!(mode, Login::CloseOnceLoggedIn) {
            let _ = self.sock.shutdown().await;
            return Ok(false);
        }
        Ok(true)
    }

    /// Answer one SCSI command; `Ok(false)` ends the connection.
    async fn command(&mut self, c: &ScsiCommand, p: &Pdu) -> R<bool> {
        let cdb = p.full_cdb()?;
        let kind = Kind::of(&cdb);
        let cmd = {
            let mut log = self.sh.commands.lock().unwrap();
            let nth = log.iter().filter(|x| x.kind == kind).count();
            let cmd = Cmd {
                kind,
                cdb,
                expected: c.expected_data_length,
                lun: lun::decode_or_raw(c.lun),
                nth,
            };
            log.push(cmd.clone());
            cmd
        };
        let reply = (self.sh.script.reply)(&cmd);
        let reply = match reply {
            Reply::Normal => self.normal(&cmd),
            r => r,
        };
        match reply {
            Reply::Normal => unreachable!("resolved above"),
            Reply::Data(mut d) => {
                let alloc = cmd.alloc().min(c.expected_data_length) as usize;
                let full = d.len();
                d.truncate(alloc);
                self.data_in(c, 0, d, full).await?;
            }
            Reply::DataUncut(d) => {
                let n = d.len();
                self.data_in(c, 0, d, n).await?;
            }
            Reply::DataAt { offset, data } => {
                let n = data.len();
                self.data_in(c, offset, data, n).await?;
            }
            Reply::Check { key, asc, ascq } => {
                let mut seg = vec![0, 18];
                seg.extend_from_slice(&fixed_sense(key, asc, ascq));
                self.response(c.itt, 2, 0, seg).await?;
            }
            Reply::Status(s) => self.response(c.itt, s, 0, Vec::new()).await?,
            Reply::Raw {
                status,
                response,
                segment,
            } => self.response(c.itt, status, response, segment).await?,
            Reply::Silent => {
                self.deaf().await?;
                return Ok(false);
            }
            Reply::Close => {
                let _ = self.sock.shutdown().await;
                return Ok(false);
            }
            Reply::Reject(reason) => {
                let header = Pdu::new(p.bhs.clone())
                    .to_bytes(Digests::default())
                    .map_err(|e| e.to_string())?;
                let stat_sn = self.next_stat();
                let bhs = Bhs::Reject(Reject {
                    reason,
                    stat_sn,
                    exp_cmd_sn: self.exp_cmd_sn,
                    max_cmd_sn: self.max_cmd_sn(),
                    data_sn_r2t_sn: 0,
                });
                self.send(Pdu::with_data(bhs, header[..48].to_vec()))
                    .await?;
            }
            Reply::WrongTag => self.response(c.itt ^ 0x5a5a_0000, 0, 0, Vec::new()).await?,
        }
        Ok(true)
    }

    /// GOOD with `data` in one Data-In PDU at `offset` (status in it, RFC 7143 §11.7.4);
    /// `full` is how much the command would have returned without the allocation length
    /// (for the residual, §11.7.7).
    async fn data_in(&mut self, c: &ScsiCommand, offset: u32, data: Vec<u8>, full: usize) -> R<()> {
        let exp = c.expected_data_length as usize;
        if data.is_empty() {
            return self.response(c.itt, 0, 0, Vec::new()).await;
        }
        let sent = offset as usize + data.len();
        let (underflow, overflow, residual) = if full > exp {
            (false, true, (full - exp) as u32)
        } else if sent < exp {
            (true, false, (exp - sent) as u32)
        } else {
            (false, false, 0)
        };
        let stat_sn = self.next_stat();
        let bhs = Bhs::DataIn(DataIn {
            final_: true,
            ack: false,
            overflow,
            underflow,
            status: Some(0),
            lun: c.lun,
            itt: c.itt,
            ttt: RESERVED_TAG,
            stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
            data_sn: 0,
            buffer_offset: offset,
            residual,
        });
        self.send(Pdu::with_data(bhs, data)).await
    }

    async fn response(&mut self, itt: u32, status: u8, response: u8, seg: Vec<u8>) -> R<()> {
        let stat_sn = self.next_stat();
        let bhs = Bhs::ScsiResponse(ScsiResponse {
            response,
            status,
            itt,
            stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
            ..ScsiResponse::default()
        });
        self.send(Pdu::with_data(bhs, seg)).await
    }

    /// What a conforming target answers.
    fn normal(&self, c: &Cmd) -> Reply {
        let lu = &self.sh.script.lu;
        if !lu.luns.contains(&c.lun) {
            if c.kind == Kind::Inquiry {
                // SPC-4 §6.6.2: peripheral qualifier 011b for a LUN with no LU ...
                let mut d = standard_inquiry(lu.tpgs);
                d[0] = 0x7f;
                return Reply::Data(d);
            }
            // ... and LOGICAL UNIT NOT SUPPORTED for other commands (§4.5.5).
            return check(ILLEGAL_REQUEST, 0x25, 0x00);
        }
        match c.kind {
            Kind::Inquiry => Reply::Data(standard_inquiry(lu.tpgs)),
            Kind::Vpd(page) => match vpd(lu, page) {
                Some(d) => Reply::Data(d),
                None => check(ILLEGAL_REQUEST, 0x24, 0x00),
            },
            Kind::Rtpg => {
                if lu.tpgs == 0 {
                    return check(ILLEGAL_REQUEST, 0x20, 0x00);
                }
                Reply::Data(rtpg_data(c.rtpg_extended(), &lu.groups))
            }
            Kind::TestUnitReady => Reply::Data(Vec::new()),
            Kind::ReadCapacity if c.cdb[0] == 0x25 => {
                Reply::Data(vec![0, 0, 0x1f, 0xff, 0, 0, 2, 0])
            }
            Kind::ReadCapacity => {
                let mut d = vec![0u8; 32];
                d[4..8].copy_from_slice(&[0, 0, 0x1f, 0xff]);
                d[8..12].copy_from_slice(&[0, 0, 2, 0]);
                Reply::Data(d)
            }
            Kind::PrIn(sa) => match sa {
                // READ KEYS / READ RESERVATION: generation 0, nothing listed (§6.15.2-3).
                0 | 1 => Reply::Data(vec![0u8; 8]),
                // REPORT CAPABILITIES (§6.15.4): length 8, no types supported.
                2 => Reply::Data(vec![0, 8, 0, 0, 0, 0, 0, 0]),
                3 => Reply::Data(vec![0u8; 8]),
                _ => check(ILLEGAL_REQUEST, 0x24, 0x00),
            },
            Kind::Other(_) => check(ILLEGAL_REQUEST, 0x20, 0x00),
        }
    }
}

/// CHECK CONDITION with this sense.
pub fn check(key: u8, asc: u8, ascq: u8) -> Reply {
    Reply::Check { key, asc, ascq }
}

/// Fixed-format sense data, current error (SPC-4 §4.5.3, 18 bytes).
pub fn fixed_sense(key: u8, asc: u8, ascq: u8) -> Vec<u8> {
    let mut s = vec![0u8; 18];
    s[0] = 0x70;
    s[2] = key & 0x0f;
    s[7] = 10;
    s[12] = asc;
    s[13] = ascq;
    s
}

/// Standard INQUIRY data (SPC-4 §6.6.2): a direct-access block device, SPC-4, HISUP, CMDQUE,
/// TPGS as given; 96 bytes.
pub fn standard_inquiry(tpgs: u8) -> Vec<u8> {
    let mut d = vec![0u8; 96];
    d[2] = 0x06;
    d[3] = 0x12;
    d[4] = (d.len() - 5) as u8;
    d[5] = (tpgs & 3) << 4;
    d[7] = 0x02;
    d[8..16].copy_from_slice(b"FAKE    ");
    d[16..32].copy_from_slice(b"MISBEHAVING LU  ");
    d[32..36].copy_from_slice(b"0001");
    d
}

/// A VPD page: header with this page code and PAGE LENGTH, then `body`.
pub fn vpd_page(code: u8, body: &[u8]) -> Vec<u8> {
    let mut d = vec![0, code];
    d.extend_from_slice(&(body.len() as u16).to_be_bytes());
    d.extend_from_slice(body);
    d
}

/// One designation descriptor (SPC-4 §7.8.6.1, Table 459): protocol iSCSI (5) with PIV for
/// target-port associations, `code_set`, association, designator type.
pub fn designation(code_set: u8, assoc: u8, kind: u8, body: &[u8]) -> Vec<u8> {
    let piv = assoc != 0;
    let proto = if piv { 0x50 } else { 0 };
    let mut d = vec![
        proto | code_set,
        (u8::from(piv) << 7) | (assoc << 4) | kind,
        0,
        body.len() as u8,
    ];
    d.extend_from_slice(body);
    d
}

/// The Device Identification designators of `lu` (VPD 0x83 body): NAA (LU), relative target
/// port and target port group (target port), SCSI name string (target device).
pub fn designators(lu: &Lu) -> Vec<u8> {
    let mut b = designation(1, 0, 3, &lu.naa);
    let rp = lu.rel_port.to_be_bytes();
    b.extend(designation(1, 1, 4, &[0, 0, rp[0], rp[1]]));
    let g = lu.group.to_be_bytes();
    b.extend(designation(1, 1, 5, &[0, 0, g[0], g[1]]));
    let mut name = TARGET.as_bytes().to_vec();
    name.push(0);
    while !name.len().is_multiple_of(4) {
        name.push(0);
    }
    b.extend(designation(3, 2, 8, &name));
    b
}

/// The fake's VPD pages (None: not supported).
pub fn vpd(lu: &Lu, page: u8) -> Option<Vec<u8>> {
    Some(match page {
        0x00 => vpd_page(0x00, &[0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2]),
        0x80 => vpd_page(0x80, b"FAKE0001"),
        0x83 => vpd_page(0x83, &designators(lu)),
        0xb0 => {
            // Block Limits (SBC-3 §6.6.4): transfer lengths only.
            let mut b = vec![0u8; 0x3c];
            b[2..4].copy_from_slice(&1u16.to_be_bytes());
            b[4..8].copy_from_slice(&0x800u32.to_be_bytes());
            b[8..12].copy_from_slice(&0x80u32.to_be_bytes());
            vpd_page(0xb0, &b)
        }
        0xb1 => {
            // Block Device Characteristics (SBC-3 §6.6.2): non-rotating.
            let mut b = vec![0u8; 0x3c];
            b[1] = 1;
            vpd_page(0xb1, &b)
        }
        // Logical Block Provisioning (SBC-3 §6.6.5): none.
        0xb2 => vpd_page(0xb2, &[0, 0, 0, 0]),
        _ => return None,
    })
}

/// REPORT TARGET PORT GROUPS parameter data for `groups` (extended header when asked).
pub fn rtpg_data(extended: bool, groups: &[PortGroup]) -> Vec<u8> {
    let format = if extended {
        RtpgFormat::Extended {
            implicit_transition_secs: 10,
        }
    } else {
        RtpgFormat::LengthOnly
    };
    Rtpg::encode(format, groups)
}

/// Set RETURN DATA LENGTH (bytes 0..4) of RTPG data.
pub fn set_return_length(d: &mut [u8], len: u32) {
    d[0..4].copy_from_slice(&len.to_be_bytes());
}
