//! A raw-PDU initiator connection for adversarial traffic (RFC 7143 framing through
//! `ironlun-initiator`'s [`Connection`]): the test chooses every field and sees every PDU.

use std::net::SocketAddr;

use ironlun_initiator::iscsi::pdu::task_attr;
use ironlun_initiator::iscsi::{Bhs, NopOut, Pdu, ScsiCommand, TextRequest, BHS_LEN, RESERVED_TAG};
use ironlun_initiator::scsi_codes::lun;
use ironlun_initiator::scsi_codes::{sense, status};
use ironlun_initiator::{Bytes, Connection, Error, LoginConfig, Negotiated};

use super::guard;

/// The outcome of a SCSI command on a [`Raw`] connection.
#[derive(Debug)]
pub struct RawOutcome {
    pub status: u8,
    pub data: Vec<u8>,
    /// Sense key / ASC / ASCQ from fixed or descriptor sense data.
    pub sense: Option<(u8, u8, u8)>,
}

/// A logged-in connection driven PDU by PDU: the test chooses every field (CmdSN included)
/// and sees every PDU the target sends.
pub struct Raw {
    pub conn: Connection,
    pub neg: Negotiated,
}

impl Raw {
    /// Connect and log in with `cfg`.
    pub async fn login(addr: SocketAddr, cfg: &LoginConfig) -> Raw {
        let mut conn = guard("connect", Connection::connect(addr))
            .await
            .expect("connect");
        let neg = guard("login", ironlun_initiator::login::login(&mut conn, cfg))
            .await
            .unwrap_or_else(|e| panic!("raw login failed: {e}"));
        Raw { conn, neg }
    }

    /// CmdSN of the next non-immediate command.
    pub fn cmd_sn(&self) -> u32 {
        self.conn.counters.cmd_sn
    }

    /// Take the next CmdSN (advancing it).
    pub fn take_cmd_sn(&mut self) -> u32 {
        let sn = self.conn.counters.cmd_sn;
        self.conn.counters.cmd_sn = sn.wrapping_add(1);
        sn
    }

    pub fn itt(&mut self) -> u32 {
        self.conn.next_itt()
    }

    pub fn exp_stat_sn(&self) -> u32 {
        self.conn.counters.exp_stat_sn
    }

    /// Encode with the negotiated digests and send.
    pub async fn send(&mut self, pdu: Pdu) {
        guard("send", self.conn.send_pdu(&pdu))
            .await
            .expect("send PDU");
    }

    pub async fn send_bytes(&mut self, b: &[u8]) -> Result<(), Error> {
        guard("send bytes", self.conn.send_bytes(b)).await
    }

    /// The next PDU other than a target ping (pings are answered, §11.18).
    pub async fn recv(&mut self) -> Result<Pdu, Error> {
        loop {
            let p = guard("receive", self.conn.recv_pdu()).await?;
            self.conn.observe(&p);
            if let Bhs::NopIn(n) = &p.bhs {
                if n.itt == RESERVED_TAG && n.ttt != RESERVED_TAG {
                    let answer = Bhs::NopOut(NopOut {
                        immediate: true,
                        lun: n.lun,
                        itt: RESERVED_TAG,
                        ttt: n.ttt,
                        cmd_sn: self.cmd_sn(),
                        exp_stat_sn: self.exp_stat_sn(),
                    });
                    self.send(Pdu::new(answer)).await;
                    continue;
                }
            }
            return Ok(p);
        }
    }

    /// A SCSI Command BHS on LUN `lun` with F set.
    pub fn scsi_bhs(
        &mut self,
        lun: u64,
        cdb: [u8; 16],
        read: bool,
        write: bool,
        edtl: u32,
        cmd_sn: u32,
    ) -> ScsiCommand {
        ScsiCommand {
            immediate: false,
            final_: true,
            read,
            write,
            attr: task_attr::SIMPLE,
            lun: lun::encode(lun),
            itt: self.itt(),
            expected_data_length: edtl,
            cmd_sn,
            exp_stat_sn: self.exp_stat_sn(),
            cdb,
        }
    }

    /// A Text Request BHS (RFC 7143 §11.10) on LUN 0: the last of its sequence (F set) or,
    /// with `last` false, one to be continued (C set).
    pub fn text_bhs(&self, itt: u32, ttt: u32, cmd_sn: u32, last: bool) -> Bhs {
        Bhs::TextRequest(TextRequest {
            immediate: false,
            final_: last,
            cont: !last,
            lun: [0; 8],
            itt,
            ttt,
            cmd_sn,
            exp_stat_sn: self.exp_stat_sn(),
        })
    }

    /// Collect the outcome of the command with `itt`: Data-In then status. Any other PDU
    /// fails the test (nothing else is outstanding on a raw connection).
    pub async fn outcome(&mut self, itt: u32) -> RawOutcome {
        let mut data = Vec::new();
        loop {
            let p = self
                .recv()
                .await
                .unwrap_or_else(|e| panic!("waiting for ITT {itt:#x}: {e}"));
            match &p.bhs {
                Bhs::DataIn(d) if d.itt == itt => {
                    let off = d.buffer_offset as usize;
                    if data.len() < off + p.data.len() {
                        data.resize(off + p.data.len(), 0);
                    }
                    data[off..off + p.data.len()].copy_from_slice(&p.data);
                    if let Some(st) = d.status {
                        return RawOutcome {
                            status: st,
                            data,
                            sense: None,
                        };
                    }
                }
                Bhs::ScsiResponse(r) if r.itt == itt => {
                    let sense = if p.data.len() > 2 {
                        let n = usize::from(u16::from_be_bytes([p.data[0], p.data[1]]));
                        let s = &p.data[2..(2 + n).min(p.data.len())];
                        ironlun_initiator::scsi_codes::Sense::parse(s)
                            .ok()
                            .map(|s| (s.key, s.asc.asc, s.asc.ascq))
                    } else {
                        None
                    };
                    return RawOutcome {
                        status: r.status,
                        data,
                        sense,
                    };
                }
                other => panic!("waiting for ITT {itt:#x}: unexpected {other:?}"),
            }
        }
    }

    /// Run a command with the next CmdSN (no data-out) and return its outcome.
    pub async fn command(&mut self, lun: u64, cdb: [u8; 16], edtl: u32) -> RawOutcome {
        let sn = self.take_cmd_sn();
        self.command_with_sn(lun, cdb, edtl, sn).await
    }

    /// Run a command with an explicit CmdSN (to plug a gap left by a rejected PDU).
    pub async fn command_with_sn(
        &mut self,
        lun: u64,
        cdb: [u8; 16],
        edtl: u32,
        cmd_sn: u32,
    ) -> RawOutcome {
        let cmd = self.scsi_bhs(lun, cdb, edtl > 0, false, edtl, cmd_sn);
        let itt = cmd.itt;
        self.send(Pdu::new(Bhs::ScsiCommand(cmd))).await;
        self.outcome(itt).await
    }

    /// TEST UNIT READY on LUN 0 with the next CmdSN until GOOD (unit attentions of a new
    /// nexus are consumed); fails on anything else.
    pub async fn tur_good(&mut self) {
        for _ in 0..8 {
            let o = self.command(0, [0; 16], 0).await;
            if o.status == status::GOOD {
                return;
            }
            assert_eq!(o.status, status::CHECK_CONDITION, "TUR: {o:?}");
            assert_eq!(
                o.sense.map(|s| s.0),
                Some(sense::key::UNIT_ATTENTION),
                "{o:?}"
            );
        }
        panic!("TEST UNIT READY never returned GOOD");
    }

    /// Expect a Reject with one of `reasons` whose data segment is the header we sent
    /// (see [`check_reject`]); returns its reason.
    pub async fn expect_reject(&mut self, what: &str, reasons: &[u8], sent: &[u8]) -> u8 {
        let p = self
            .recv()
            .await
            .unwrap_or_else(|e| panic!("{what}: expected a Reject, got {e}"));
        check_reject(&p, what, reasons, sent)
    }

    /// Read until the target closes the connection; every PDU before the close must pass
    /// `allowed` (e.g. a Reject announcing the reason). Returns those PDUs.
    pub async fn expect_close(&mut self, what: &str, allowed: impl Fn(&Bhs) -> bool) -> Vec<Pdu> {
        let mut seen = Vec::new();
        loop {
            match self.recv().await {
                Ok(p) => {
                    assert!(
                        allowed(&p.bhs),
                        "{what}: unexpected {:?} before the close",
                        p.bhs
                    );
                    seen.push(p);
                }
                Err(Error::ConnectionClosed) => return seen,
                // A reset, or bytes we cannot frame after the target gave up: closed too.
                Err(Error::Io(_)) => return seen,
                Err(e) => panic!("{what}: expected the target to close, got {e}"),
            }
        }
    }

    /// NOP-Out ping (immediate) answered by a NOP-In with our ITT and data.
    pub async fn ping(&mut self) {
        let itt = self.itt();
        let bhs = Bhs::NopOut(NopOut {
            immediate: true,
            lun: [0; 8],
            itt,
            ttt: RESERVED_TAG,
            cmd_sn: self.cmd_sn(),
            exp_stat_sn: self.exp_stat_sn(),
        });
        self.send(Pdu::with_data(bhs, Bytes::from_static(b"ping")))
            .await;
        let p = self.recv().await.expect("NOP-In");
        match &p.bhs {
            Bhs::NopIn(n) if n.itt == itt => assert_eq!(&p.data[..], b"ping"),
            other => panic!("expected the NOP-In answering our ping, got {other:?}"),
        }
    }
}

/// The 48-byte header of `pdu` as encoded without digests (what a Reject must echo).
/// Assert that `p` is a Reject with one of `reasons` whose data segment is the header we
/// sent (RFC 7143 §11.17: the complete header of the rejected PDU); returns its reason.
#[track_caller]
pub fn check_reject(p: &Pdu, what: &str, reasons: &[u8], sent: &[u8]) -> u8 {
    let Bhs::Reject(r) = &p.bhs else {
        panic!("{what}: expected a Reject, got {:?}", p.bhs);
    };
    assert!(
        reasons.contains(&r.reason),
        "{what}: Reject reason {:#04x}, expected one of {reasons:02x?}",
        r.reason
    );
    assert!(
        p.data.len() >= BHS_LEN && p.data[..BHS_LEN] == sent[..BHS_LEN],
        "{what}: the Reject does not carry the rejected header ({} bytes)",
        p.data.len()
    );
    r.reason
}

pub fn header_of(pdu: &Pdu) -> Vec<u8> {
    let b = pdu
        .to_bytes(ironlun_initiator::iscsi::Digests::default())
        .expect("encode");
    b[..BHS_LEN].to_vec()
}

/// CDB builders not in the initiator crate.
pub fn cdb16(bytes: &[u8]) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[..bytes.len()].copy_from_slice(bytes);
    c
}
