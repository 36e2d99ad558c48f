//! A scriptable misbehaving iSCSI target on loopback for the `ironlun host` tests: it logs in
//! without authentication (RFC 7143 §6.3, §11.12-13), answers SendTargets (Appendix C),
//! standard INQUIRY and the VPD pages 0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2 (SPC-4 §6.6, §7.8;
//! SBC-3 §6.6), REPORT TARGET PORT GROUPS in both parameter data formats (SPC-4 §6.36), TEST
//! UNIT READY, READ CAPACITY and PERSISTENT RESERVE IN (§6.15) like a small conforming target,
//! and misbehaves where the test's [`Script`] says: at login ([`Login`]), in the SendTargets
//! text, or on any command ([`Reply`], chosen per command by a closure that sees the CDB and
//! how many commands of that kind came before).
//!
//! With a [`Store`] in its [`Lu`] the fake is also a path to a small disk: READ and WRITE (10)
//! and (16) and SYNCHRONIZE CACHE (SBC-4 §5.16, §5.46, §5.28) over memory that several fakes
//! can share (each a path to one LU), write data taken as immediate data and then solicited
//! with R2Ts of at most MaxBurstLength (RFC 7143 §11.8; the initiator asks InitialR2T=Yes, so
//! nothing else comes unsolicited), read data sent in Data-In PDUs of at most the initiator's
//! MaxRecvDataSegmentLength with status in the last (§11.7.4), task management answered
//! (§11.5-6). A running fake's script can be swapped ([`Fake::set_script`]) so a path turns
//! bad, or good again, in the middle of I/O; and it can flood every connection with
//! unsolicited PDUs ([`Fake::flood`]).
//!
//! Everything the initiator sends is recorded ([`Fake::commands`], [`Fake::connections`]) so a
//! test can check what the host did (retries, allocation lengths, redirects followed).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ironlun_initiator::alua::{AccessState, PortGroup, Rtpg, RtpgFormat, SupportedStates};
use ironlun_initiator::iscsi::negotiation::{self, Answer};
use ironlun_initiator::iscsi::pdu::{async_event, login_status, reject_reason, tmf_function};
use ironlun_initiator::iscsi::{
    check_frame, decode_frame, text, AsyncMessage, Bhs, DataIn, DataOut, Digests, FrameCheck,
    LoginRequest, LoginResponse, LogoutResponse, NopIn, Pdu, R2t, Reject, ScsiCommand,
    ScsiResponse, Stage, TaskMgmtResponse, TextResponse, RESERVED_TAG,
};
use ironlun_initiator::scsi_codes::lun;
use ironlun_initiator::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

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
    /// READ (10) or READ (16).
    Read,
    /// WRITE (10) or WRITE (16).
    Write,
    /// SYNCHRONIZE CACHE (10) or (16).
    SyncCache,
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
            0x28 | 0x88 => Kind::Read,
            0x2a | 0x8a => Kind::Write,
            0x35 | 0x91 => Kind::SyncCache,
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

    /// For READ and WRITE: (LOGICAL BLOCK ADDRESS, TRANSFER LENGTH) of the (10) or (16) CDB
    /// (SBC-4 §5.15, §5.16, §5.45, §5.46).
    pub fn blocks(&self) -> Option<(u64, u32)> {
        let c = &self.cdb;
        match (self.kind, c[0]) {
            (Kind::Read | Kind::Write, 0x28 | 0x2a) if c.len() >= 10 => Some((
                u64::from(u32::from_be_bytes([c[2], c[3], c[4], c[5]])),
                u32::from(u16::from_be_bytes([c[7], c[8]])),
            )),
            (Kind::Read | Kind::Write, 0x88 | 0x8a) if c.len() >= 16 => {
                let mut lba = [0u8; 8];
                lba.copy_from_slice(&c[2..10]);
                Some((
                    u64::from_be_bytes(lba),
                    u32::from_be_bytes([c[10], c[11], c[12], c[13]]),
                ))
            }
            _ => None,
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
    /// Send these bytes instead of an answer, then read on without answering anything.
    Garbage(Vec<u8>),
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
    /// The blocks READ and WRITE reach (and READ CAPACITY reports); without one, READ and
    /// WRITE are refused as unsupported and READ CAPACITY names 8192 blocks.
    pub store: Option<Store>,
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
            store: None,
        }
    }
}

/// A small disk in memory (512-byte blocks) shared by the fakes that are paths to one LU.
#[derive(Clone)]
pub struct Store(Arc<Mutex<Vec<u8>>>);

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({} blocks)", self.blocks())
    }
}

impl Store {
    pub const BLOCK: usize = 512;

    /// `bytes` of zeroes (a multiple of [`Store::BLOCK`]).
    pub fn new(bytes: usize) -> Store {
        assert!(bytes > 0 && bytes.is_multiple_of(Store::BLOCK));
        Store(Arc::new(Mutex::new(vec![0u8; bytes])))
    }

    pub fn blocks(&self) -> u64 {
        (self.0.lock().unwrap().len() / Store::BLOCK) as u64
    }

    /// The bytes of `blocks` blocks at `lba`; `None` past the end.
    pub fn read(&self, lba: u64, blocks: u32) -> Option<Vec<u8>> {
        let d = self.0.lock().unwrap();
        let r = Store::range(d.len(), lba, blocks)?;
        Some(d[r].to_vec())
    }

    /// Write `data` at `lba`; false (nothing written) past the end.
    pub fn write(&self, lba: u64, data: &[u8]) -> bool {
        let mut d = self.0.lock().unwrap();
        let blocks = (data.len() / Store::BLOCK) as u32;
        match Store::range(d.len(), lba, blocks) {
            Some(r) if r.len() == data.len() => {
                d[r].copy_from_slice(data);
                true
            }
            _ => false,
        }
    }

    fn range(len: usize, lba: u64, blocks: u32) -> Option<std::ops::Range<usize>> {
        let start = usize::try_from(lba).ok()?.checked_mul(Store::BLOCK)?;
        let end = start.checked_add(blocks as usize * Store::BLOCK)?;
        (end <= len).then_some(start..end)
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

/// What every connection of one fake shares.
struct Shared {
    script: Mutex<Script>,
    addr: SocketAddr,
    log: Mutex<Log>,
    connections: AtomicUsize,
    /// Unsolicited PDUs still to send, taken in batches by the connections' flooders.
    flood_left: AtomicUsize,
    flood_sent: AtomicUsize,
    flood_go: Notify,
    /// NOP-Outs that answered a ping (TTT not reserved).
    ping_answers: AtomicUsize,
}

/// The commands received, and how many of each kind (for [`Cmd::nth`]).
#[derive(Default)]
struct Log {
    commands: Vec<Cmd>,
    counts: HashMap<Kind, usize>,
}

impl Shared {
    fn script(&self) -> Script {
        self.script.lock().unwrap().clone()
    }

    fn record(&self, kind: Kind, cdb: Vec<u8>, c: &ScsiCommand) -> Cmd {
        let mut log = self.log.lock().unwrap();
        let n = log.counts.entry(kind).or_insert(0);
        let cmd = Cmd {
            kind,
            cdb,
            expected: c.expected_data_length,
            lun: lun::decode_or_raw(c.lun),
            nth: *n,
        };
        *n += 1;
        log.commands.push(cmd.clone());
        cmd
    }
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
            script: Mutex::new(script),
            addr,
            log: Mutex::new(Log::default()),
            connections: AtomicUsize::new(0),
            flood_left: AtomicUsize::new(0),
            flood_sent: AtomicUsize::new(0),
            flood_go: Notify::new(),
            ping_answers: AtomicUsize::new(0),
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
        self.shared.log.lock().unwrap().commands.clone()
    }

    /// The commands of one kind received so far.
    pub fn commands_of(&self, kind: Kind) -> Vec<Cmd> {
        self.shared
            .log
            .lock()
            .unwrap()
            .commands
            .iter()
            .filter(|c| c.kind == kind)
            .cloned()
            .collect()
    }

    /// How many commands of one kind were received so far.
    pub fn count_of(&self, kind: Kind) -> usize {
        let log = self.shared.log.lock().unwrap();
        log.counts.get(&kind).copied().unwrap_or(0)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Serve `script` from now on: commands decide by its reply, new connections log in by
    /// its login (connections already logged in stay so).
    pub fn set_script(&self, script: Script) {
        *self.shared.script.lock().unwrap() = script;
    }

    /// Answer commands by `f` from now on.
    pub fn set_reply(&self, f: impl Fn(&Cmd) -> Reply + Send + Sync + 'static) {
        self.shared.script.lock().unwrap().reply = Arc::new(f);
    }

    /// Answer every command normally from now on.
    pub fn behave(&self) {
        self.set_reply(|_| Reply::Normal);
    }

    /// Log new connections in this way from now on.
    pub fn set_login(&self, login: Login) {
        self.shared.script.lock().unwrap().login = login;
    }

    /// Send `n` more unsolicited PDUs (see `flood_pdu`) on the connections in full feature
    /// phase, as fast as they are read.
    pub fn flood(&self, n: usize) {
        self.shared.flood_left.fetch_add(n, Ordering::SeqCst);
        self.shared.flood_go.notify_waiters();
    }

    /// Unsolicited PDUs sent so far.
    pub fn flooded(&self) -> usize {
        self.shared.flood_sent.load(Ordering::SeqCst)
    }

    /// NOP-Outs received that answer a NOP-In ping of the fake (RFC 7143 §11.18: TTT copied).
    pub fn ping_answers(&self) -> usize {
        self.shared.ping_answers.load(Ordering::SeqCst)
    }
}

/// An address nobody listens on: a port bound on 127.0.0.2 and released (the fakes use
/// 127.0.0.1, so none of them can take it over meanwhile).
pub fn closed_portal() -> String {
    let l = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    l.local_addr().unwrap().to_string()
}

type R<T> = Result<T, String>;

/// The target's sequence numbers of one connection (RFC 7143 §4.2.2): StatSN and the
/// command window it advertises.
struct Seq {
    stat_sn: u32,
    exp_cmd_sn: u32,
}

/// The numbers one PDU carries.
#[derive(Clone, Copy)]
struct Sn {
    stat_sn: u32,
    exp_cmd_sn: u32,
    max_cmd_sn: u32,
}

impl Seq {
    /// The numbers for a PDU that does not advance StatSN (R2T, Data-In without status,
    /// NOP-In pings: §11.7.4, §11.8, §11.19).
    fn peek(&self) -> Sn {
        Sn {
            stat_sn: self.stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.exp_cmd_sn.wrapping_add(63),
        }
    }

    /// The numbers for a PDU that takes a StatSN.
    fn take(&mut self) -> Sn {
        let sn = self.peek();
        self.stat_sn = self.stat_sn.wrapping_add(1);
        sn
    }
}

/// The sending side of a connection, shared by its reader and its flooder: one PDU (or one
/// batch) is written whole, and StatSN is taken in the order of the wire.
struct Link {
    wire: tokio::sync::Mutex<(OwnedWriteHalf, Seq)>,
    /// ExpCmdSN as the reader advances it.
    exp_cmd_sn: AtomicU32,
}

impl Link {
    /// Write what `f` encodes, with the sequence numbers it takes.
    async fn emit(&self, f: impl FnOnce(&mut Seq) -> R<Vec<u8>>) -> R<()> {
        let mut w = self.wire.lock().await;
        let (wr, seq) = &mut *w;
        seq.exp_cmd_sn = self.exp_cmd_sn.load(Ordering::SeqCst);
        let bytes = f(seq)?;
        wr.write_all(&bytes).await.map_err(|e| e.to_string())
    }

    /// One PDU; `advance`: it takes a StatSN.
    async fn send(&self, advance: bool, build: impl FnOnce(Sn) -> Pdu) -> R<()> {
        self.emit(|q| {
            let sn = if advance { q.take() } else { q.peek() };
            encode(&build(sn))
        })
        .await
    }

    async fn raw(&self, bytes: &[u8]) -> R<()> {
        let mut w = self.wire.lock().await;
        w.0.write_all(bytes).await.map_err(|e| e.to_string())
    }

    async fn shutdown(&self) {
        let _ = self.wire.lock().await.0.shutdown().await;
    }

    /// A command with this CmdSN arrived: advance ExpCmdSN past it (§3.2.2.1).
    fn arrived(&self, immediate: bool, cmd_sn: u32) {
        if !immediate {
            let _ = self.exp_cmd_sn.compare_exchange(
                cmd_sn,
                cmd_sn.wrapping_add(1),
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
    }
}

fn encode(p: &Pdu) -> R<Vec<u8>> {
    p.to_bytes(Digests::default())
        .map(|b| b.to_vec())
        .map_err(|e| e.to_string())
}

/// Unsolicited PDU number `i` of a flood, in turn: an Asynchronous Message with a SCSI event
/// that is no ALUA news (UNIT ATTENTION 29h/00h, §11.9.1), a vendor-specific one with 1 KiB
/// of data, a NOP-In ping that wants a NOP-Out back (§11.19), a Reject quoting a command the
/// initiator never sent (§11.17), a SCSI Response and a Data-In with 8 KiB under tags the
/// initiator never used. An initiator that kept what it was not waiting for would grow by
/// about 1.5 KiB a PDU.
fn flood_pdu(i: usize, q: &mut Seq) -> Pdu {
    let tag = 0xfeed_0000 | (i as u32 & 0xffff);
    match i % 6 {
        0 | 1 => {
            let (event, data) = if i.is_multiple_of(6) {
                let mut d = vec![0, 18];
                d.extend_from_slice(&fixed_sense(UNIT_ATTENTION, 0x29, 0x00));
                (async_event::SCSI_ASYNC_EVENT, d)
            } else {
                (async_event::VENDOR_SPECIFIC, vec![0x5a; 1024])
            };
            let sn = q.take();
            let bhs = Bhs::AsyncMessage(AsyncMessage {
                lun: [0; 8],
                stat_sn: sn.stat_sn,
                exp_cmd_sn: sn.exp_cmd_sn,
                max_cmd_sn: sn.max_cmd_sn,
                event,
                vcode: 0,
                param1: 0,
                param2: 0,
                param3: 0,
            });
            Pdu::with_data(bhs, data)
        }
        2 => {
            let sn = q.peek();
            Pdu::new(Bhs::NopIn(NopIn {
                lun: [0; 8],
                itt: RESERVED_TAG,
                ttt: 0x7000_0000 | (i as u32 & 0x0fff_ffff),
                stat_sn: sn.stat_sn,
                exp_cmd_sn: sn.exp_cmd_sn,
                max_cmd_sn: sn.max_cmd_sn,
            }))
        }
        3 => {
            let quoted = Pdu::new(Bhs::ScsiCommand(ScsiCommand {
                immediate: false,
                final_: true,
                read: true,
                write: false,
                attr: 1,
                lun: [0; 8],
                itt: tag,
                expected_data_length: 512,
                cmd_sn: 0,
                exp_stat_sn: 0,
                cdb: [0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0],
            }));
            let header = encode(&quoted).unwrap_or_default();
            let sn = q.take();
            let bhs = Bhs::Reject(Reject {
                reason: reject_reason::PROTOCOL_ERROR,
                stat_sn: sn.stat_sn,
                exp_cmd_sn: sn.exp_cmd_sn,
                max_cmd_sn: sn.max_cmd_sn,
                data_sn_r2t_sn: 0,
            });
            Pdu::with_data(bhs, header)
        }
        4 => {
            let sn = q.take();
            Pdu::new(Bhs::ScsiResponse(ScsiResponse {
                itt: tag,
                stat_sn: sn.stat_sn,
                exp_cmd_sn: sn.exp_cmd_sn,
                max_cmd_sn: sn.max_cmd_sn,
                ..ScsiResponse::default()
            }))
        }
        _ => {
            let sn = q.peek();
            let bhs = Bhs::DataIn(DataIn {
                final_: false,
                ack: false,
                overflow: false,
                underflow: false,
                status: None,
                lun: [0; 8],
                itt: tag,
                ttt: RESERVED_TAG,
                stat_sn: sn.stat_sn,
                exp_cmd_sn: sn.exp_cmd_sn,
                max_cmd_sn: sn.max_cmd_sn,
                data_sn: 0,
                buffer_offset: 0,
                residual: 0,
            });
            Pdu::with_data(bhs, vec![0xa5; 8192])
        }
    }
}

/// Send the fake's flood on one connection until it ends (module docs).
async fn flood_loop(sh: Arc<Shared>, link: Arc<Link>) {
    const BATCH: usize = 64;
    let mut i = 0usize;
    loop {
        let go = sh.flood_go.notified();
        tokio::pin!(go);
        go.as_mut().enable();
        let n = sh
            .flood_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                (left > 0).then(|| left - left.min(BATCH))
            })
            .map_or(0, |left| left.min(BATCH));
        if n == 0 {
            go.await;
            continue;
        }
        let first = i;
        let r = link
            .emit(|q| {
                let mut out = Vec::new();
                for k in first..first + n {
                    out.extend(encode(&flood_pdu(k, q))?);
                }
                Ok(out)
            })
            .await;
        i += n;
        sh.flood_sent.fetch_add(n, Ordering::SeqCst);
        if r.is_err() {
            return;
        }
        tokio::task::yield_now().await;
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A WRITE whose data is still coming: what came, and the R2T outstanding.
struct PendingWrite {
    lun: [u8; 8],
    store: Store,
    lba: u64,
    data: Vec<u8>,
    /// The end of the data asked for so far (immediate data, then each R2T).
    asked_end: usize,
    r2t_sn: u32,
    ttt: u32,
}

struct Conn {
    rd: OwnedReadHalf,
    buf: Vec<u8>,
    sh: Arc<Shared>,
    link: Arc<Link>,
    /// The initiator's MaxRecvDataSegmentLength (RFC 7143 §13.12; 8192 until it declares).
    mrdsl: usize,
    /// MaxBurstLength as negotiated (§13.14).
    max_burst: usize,
    writes: HashMap<u32, PendingWrite>,
    next_ttt: u32,
}

impl Conn {
    fn new(sock: TcpStream, sh: Arc<Shared>) -> Conn {
        let (rd, wr) = sock.into_split();
        let link = Arc::new(Link {
            wire: tokio::sync::Mutex::new((
                wr,
                Seq {
                    stat_sn: 0x100,
                    exp_cmd_sn: 0,
                },
            )),
            exp_cmd_sn: AtomicU32::new(0),
        });
        Conn {
            rd,
            buf: Vec::new(),
            sh,
            link,
            mrdsl: 8192,
            max_burst: 262_144,
            writes: HashMap::new(),
            next_ttt: 0x10,
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
                    let mut chunk = [0u8; 16384];
                    let n = self.rd.read(&mut chunk).await.map_err(|e| e.to_string())?;
                    if n == 0 {
                        return Err("eof".into());
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }

    /// Read and drop everything until the initiator closes the connection.
    async fn deaf(&mut self) -> R<()> {
        let mut chunk = [0u8; 16384];
        while self.rd.read(&mut chunk).await.map_err(|e| e.to_string())? > 0 {}
        Ok(())
    }

    async fn run(mut self) -> R<()> {
        if !self.login().await? {
            return Ok(());
        }
        let _flooder = AbortOnDrop(tokio::spawn(flood_loop(self.sh.clone(), self.link.clone())));
        loop {
            let p = self.recv().await?;
            match p.bhs.clone() {
                Bhs::ScsiCommand(c) => {
                    self.link.arrived(c.immediate, c.cmd_sn);
                    if !self.command(&c, &p).await? {
                        return Ok(());
                    }
                }
                Bhs::DataOut(d) => self.data_out(&d, &p.data).await?,
                Bhs::TaskMgmtRequest(t) => {
                    self.link.arrived(t.immediate, t.cmd_sn);
                    // ABORT TASK ends the task named, the other functions every task
                    // (§11.5.1): only the writes waiting for data are still open here.
                    if t.function == tmf_function::ABORT_TASK {
                        self.writes.remove(&t.referenced_task_tag);
                    } else {
                        self.writes.clear();
                    }
                    self.link
                        .send(true, |sn| {
                            Pdu::new(Bhs::TaskMgmtResponse(TaskMgmtResponse {
                                response: 0,
                                itt: t.itt,
                                stat_sn: sn.stat_sn,
                                exp_cmd_sn: sn.exp_cmd_sn,
                                max_cmd_sn: sn.max_cmd_sn,
                            }))
                        })
                        .await?;
                }
                Bhs::TextRequest(t) => {
                    self.link.arrived(t.immediate, t.cmd_sn);
                    let pairs = text::parse(&p.data).map_err(|e| e.to_string())?;
                    let mut data = Vec::new();
                    if pairs.iter().any(|(k, _)| k == "SendTargets") {
                        data = match &self.sh.script().send_targets {
                            Some(raw) => raw.clone(),
                            None => {
                                let addr = format!("{},1", self.sh.addr);
                                text::encode([("TargetName", TARGET), ("TargetAddress", &addr)])
                            }
                        };
                    }
                    self.link
                        .send(true, |sn| {
                            let bhs = Bhs::TextResponse(TextResponse {
                                final_: true,
                                cont: false,
                                lun: [0; 8],
                                itt: t.itt,
                                ttt: RESERVED_TAG,
                                stat_sn: sn.stat_sn,
                                exp_cmd_sn: sn.exp_cmd_sn,
                                max_cmd_sn: sn.max_cmd_sn,
                            });
                            Pdu::with_data(bhs, data)
                        })
                        .await?;
                }
                Bhs::LogoutRequest(l) => {
                    self.link.arrived(l.immediate, l.cmd_sn);
                    self.link
                        .send(true, |sn| {
                            Pdu::new(Bhs::LogoutResponse(LogoutResponse {
                                response: 0,
                                itt: l.itt,
                                stat_sn: sn.stat_sn,
                                exp_cmd_sn: sn.exp_cmd_sn,
                                max_cmd_sn: sn.max_cmd_sn,
                                time2wait: 0,
                                time2retain: 0,
                            }))
                        })
                        .await?;
                    self.link.shutdown().await;
                    return Ok(());
                }
                Bhs::NopOut(n) if n.itt != RESERVED_TAG => {
                    let data = p.data.clone();
                    self.link
                        .send(true, |sn| {
                            let bhs = Bhs::NopIn(NopIn {
                                lun: n.lun,
                                itt: n.itt,
                                ttt: RESERVED_TAG,
                                stat_sn: sn.stat_sn,
                                exp_cmd_sn: sn.exp_cmd_sn,
                                max_cmd_sn: sn.max_cmd_sn,
                            });
                            Pdu::with_data(bhs, data)
                        })
                        .await?;
                }
                Bhs::NopOut(n) if n.ttt != RESERVED_TAG => {
                    self.sh.ping_answers.fetch_add(1, Ordering::SeqCst);
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
        self.link
            .send(true, |sn| {
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
                    stat_sn: sn.stat_sn,
                    exp_cmd_sn: sn.exp_cmd_sn,
                    max_cmd_sn: sn.max_cmd_sn,
                    status_class: (status >> 8) as u8,
                    status_detail: status as u8,
                });
                Pdu::with_data(bhs, data)
            })
            .await
    }

    /// The login phase; `Ok(true)` when the full feature phase begins.
    async fn login(&mut self) -> R<bool> {
        let mode = self.sh.script().login;
        let mut first = true;
        loop {
            let p = self.recv().await?;
            let Bhs::LoginRequest(req) = p.bhs.clone() else {
                return Err("not a Login Request".into());
            };
            self.link.exp_cmd_sn.store(req.cmd_sn, Ordering::SeqCst);
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
                        self.link.raw(bytes).await?;
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
                // What the data transfers must keep to: the initiator's receive limit, and
                // the burst length it offered (the fake answers each offer with itself).
                match (k.as_str(), v.parse::<usize>()) {
                    ("MaxRecvDataSegmentLength", Ok(n)) if n >= 512 => self.mrdsl = n,
                    ("MaxBurstLength", Ok(n)) if n >= 512 => self.max_burst = n,
                    _ => {}
                }
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
            self.link.shutdown().await;
            return Ok(false);
        }
        Ok(true)
    }

    /// Answer one SCSI command; `Ok(false)` ends the connection.
    async fn command(&mut self, c: &ScsiCommand, p: &Pdu) -> R<bool> {
        let cdb = p.full_cdb()?;
        let cmd = self.sh.record(Kind::of(&cdb), cdb, c);
        let script = self.sh.script();
        let reply = (script.reply)(&cmd);
        if let (Reply::Normal, Kind::Write, Some(store)) = (&reply, cmd.kind, &script.lu.store) {
            if script.lu.luns.contains(&cmd.lun) {
                self.write_begin(c, p, &cmd, store.clone()).await?;
                return Ok(true);
            }
        }
        let reply = match reply {
            Reply::Normal => normal(&script.lu, &cmd),
            r => r,
        };
        self.answer(c, p, &cmd, reply).await
    }

    /// Send `reply` to command `c`; `Ok(false)` ends the connection.
    async fn answer(&mut self, c: &ScsiCommand, p: &Pdu, cmd: &Cmd, reply: Reply) -> R<bool> {
        match reply {
            Reply::Normal => unreachable!("resolved by the caller"),
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
                self.link.shutdown().await;
                return Ok(false);
            }
            Reply::Garbage(bytes) => {
                self.link.raw(&bytes).await?;
                self.deaf().await?;
                return Ok(false);
            }
            Reply::Reject(reason) => {
                let header = encode(&Pdu::new(p.bhs.clone()))?;
                self.link
                    .send(true, |sn| {
                        let bhs = Bhs::Reject(Reject {
                            reason,
                            stat_sn: sn.stat_sn,
                            exp_cmd_sn: sn.exp_cmd_sn,
                            max_cmd_sn: sn.max_cmd_sn,
                            data_sn_r2t_sn: 0,
                        });
                        Pdu::with_data(bhs, header[..48].to_vec())
                    })
                    .await?;
            }
            Reply::WrongTag => self.response(c.itt ^ 0x5a5a_0000, 0, 0, Vec::new()).await?,
        }
        Ok(true)
    }

    /// A WRITE to the store: take its immediate data, then ask for the rest (SBC-4 §5.46;
    /// RFC 7143 §11.8), or refuse it as a conforming target would.
    async fn write_begin(&mut self, c: &ScsiCommand, p: &Pdu, cmd: &Cmd, store: Store) -> R<()> {
        let Some((lba, blocks)) = cmd.blocks() else {
            return self
                .answer(c, p, cmd, check(ILLEGAL_REQUEST, 0x24, 0x00))
                .await
                .map(drop);
        };
        let len = blocks as usize * Store::BLOCK;
        if lba.saturating_add(u64::from(blocks)) > store.blocks() {
            // LOGICAL BLOCK ADDRESS OUT OF RANGE (SBC-4 §4.5.2).
            return self
                .answer(c, p, cmd, check(ILLEGAL_REQUEST, 0x21, 0x00))
                .await
                .map(drop);
        }
        if c.expected_data_length as usize != len || p.data.len() > len {
            return self
                .answer(c, p, cmd, check(ILLEGAL_REQUEST, 0x24, 0x00))
                .await
                .map(drop);
        }
        let mut data = vec![0u8; len];
        data[..p.data.len()].copy_from_slice(&p.data);
        let w = PendingWrite {
            lun: c.lun,
            store,
            lba,
            data,
            asked_end: p.data.len(),
            r2t_sn: 0,
            ttt: RESERVED_TAG,
        };
        self.write_next(c.itt, w).await
    }

    /// Ask for the next burst of a write's data, or, with all of it in, write it and answer
    /// GOOD.
    async fn write_next(&mut self, itt: u32, mut w: PendingWrite) -> R<()> {
        if w.asked_end >= w.data.len() {
            w.store.write(w.lba, &w.data);
            return self.response(itt, 0, 0, Vec::new()).await;
        }
        let len = (w.data.len() - w.asked_end).min(self.max_burst);
        let ttt = self.next_ttt;
        self.next_ttt = self.next_ttt.wrapping_add(1).max(0x10);
        let (offset, r2t_sn) = (w.asked_end, w.r2t_sn);
        w.ttt = ttt;
        w.asked_end += len;
        w.r2t_sn += 1;
        let lun = w.lun;
        self.writes.insert(itt, w);
        self.link
            .send(false, |sn| {
                Pdu::new(Bhs::R2t(R2t {
                    lun,
                    itt,
                    ttt,
                    stat_sn: sn.stat_sn,
                    exp_cmd_sn: sn.exp_cmd_sn,
                    max_cmd_sn: sn.max_cmd_sn,
                    r2t_sn,
                    buffer_offset: offset as u32,
                    desired_length: len as u32,
                }))
            })
            .await
    }

    /// Data-Out for a pending write: kept at its offset; the last of a burst asks for the
    /// next one (or completes the write). Anything else is dropped.
    async fn data_out(&mut self, d: &DataOut, data: &[u8]) -> R<()> {
        let Some(w) = self.writes.get_mut(&d.itt) else {
            return Ok(());
        };
        let at = d.buffer_offset as usize;
        if let Some(dst) = w.data.get_mut(at..at + data.len()) {
            dst.copy_from_slice(data);
        }
        if d.final_ && d.ttt == w.ttt {
            if let Some(w) = self.writes.remove(&d.itt) {
                self.write_next(d.itt, w).await?;
            }
        }
        Ok(())
    }

    /// GOOD with `data` from `offset` in Data-In PDUs of at most the initiator's
    /// MaxRecvDataSegmentLength, status in the last (RFC 7143 §11.7.4); `full` is how much the
    /// command would have returned without the allocation length (for the residual, §11.7.7).
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
        let data = Bytes::from(data);
        let step = self.mrdsl.max(512);
        let mut at = 0usize;
        let mut data_sn = 0u32;
        while at < data.len() {
            let n = (data.len() - at).min(step);
            let last = at + n == data.len();
            let chunk = data.slice(at..at + n);
            let buffer_offset = offset + at as u32;
            self.link
                .send(last, |sn| {
                    let bhs = Bhs::DataIn(DataIn {
                        final_: last,
                        ack: false,
                        overflow: last && overflow,
                        underflow: last && underflow,
                        status: last.then_some(0),
                        lun: c.lun,
                        itt: c.itt,
                        ttt: RESERVED_TAG,
                        stat_sn: sn.stat_sn,
                        exp_cmd_sn: sn.exp_cmd_sn,
                        max_cmd_sn: sn.max_cmd_sn,
                        data_sn,
                        buffer_offset,
                        residual: if last { residual } else { 0 },
                    });
                    Pdu::with_data(bhs, chunk)
                })
                .await?;
            at += n;
            data_sn += 1;
        }
        Ok(())
    }

    async fn response(&mut self, itt: u32, status: u8, response: u8, seg: Vec<u8>) -> R<()> {
        self.link
            .send(true, |sn| {
                let bhs = Bhs::ScsiResponse(ScsiResponse {
                    response,
                    status,
                    itt,
                    stat_sn: sn.stat_sn,
                    exp_cmd_sn: sn.exp_cmd_sn,
                    max_cmd_sn: sn.max_cmd_sn,
                    ..ScsiResponse::default()
                });
                Pdu::with_data(bhs, seg)
            })
            .await
    }
}

/// What a conforming target answers (for a WRITE to a store: see [`Conn::write_begin`]).
fn normal(lu: &Lu, c: &Cmd) -> Reply {
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
    // The capacity: the store's, else 8192 blocks (SBC-4 §5.20, §5.21).
    let last_lba = lu.store.as_ref().map_or(0x1fff, |s| s.blocks() - 1);
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
            let mut d = u32::try_from(last_lba)
                .unwrap_or(u32::MAX)
                .to_be_bytes()
                .to_vec();
            d.extend_from_slice(&512u32.to_be_bytes());
            Reply::Data(d)
        }
        Kind::ReadCapacity => {
            let mut d = vec![0u8; 32];
            d[0..8].copy_from_slice(&last_lba.to_be_bytes());
            d[8..12].copy_from_slice(&512u32.to_be_bytes());
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
        Kind::Read | Kind::Write | Kind::SyncCache => {
            let Some(store) = &lu.store else {
                return check(ILLEGAL_REQUEST, 0x20, 0x00);
            };
            match c.blocks() {
                Some((lba, blocks)) => match store.read(lba, blocks) {
                    Some(d) => Reply::Data(d),
                    // LOGICAL BLOCK ADDRESS OUT OF RANGE (SBC-4 §4.5.2).
                    None => check(ILLEGAL_REQUEST, 0x21, 0x00),
                },
                // SYNCHRONIZE CACHE: the store is the medium.
                None => Reply::Data(Vec::new()),
            }
        }
        Kind::Other(_) => check(ILLEGAL_REQUEST, 0x20, 0x00),
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
